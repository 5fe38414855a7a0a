/**
 * MADT (signature "APIC", ACPI 6.5 §5.2.12): the local APICs, the I/O APIC and
 * how ISA IRQs reach it. Only IRQ 9 (the SCI, level-triggered) is overridden:
 * KVM's in-kernel PIT interrupts on GSI 0, the ISA identity mapping.
 */

import { ByteWriter } from './byte-writer.js';
import type { ResolvedDescription } from './firmware-description.js';
import { IO_APIC_ADDRESS, LOCAL_APIC_ADDRESS, SCI_IRQ } from './platform.js';
import { systemDescriptionTable } from './sdt.js';

export const MADT_SIGNATURE = 'APIC';
/** The MADT revision of ACPI 6.3 (the FADT's version). */
export const MADT_REVISION = 5;
export const MADT_PCAT_COMPAT = 1 << 0;

export const MADT_TYPE_LOCAL_APIC = 0;
export const MADT_TYPE_IO_APIC = 1;
export const MADT_TYPE_INTERRUPT_OVERRIDE = 2;
export const MADT_TYPE_LOCAL_APIC_NMI = 4;
export const MADT_LOCAL_APIC_SIZE = 8;
export const MADT_IO_APIC_SIZE = 12;
export const MADT_INTERRUPT_OVERRIDE_SIZE = 10;
export const MADT_LOCAL_APIC_NMI_SIZE = 6;

export const MADT_LOCAL_APIC_ENABLED = 1 << 0;
/** MPS INTI flags: polarity in bits 1-0, trigger mode in bits 3-2. */
export const MPS_INTI_POLARITY_ACTIVE_HIGH = 0b01;
export const MPS_INTI_POLARITY_ACTIVE_LOW = 0b11;
export const MPS_INTI_TRIGGER_EDGE = 0b01 << 2;
export const MPS_INTI_TRIGGER_LEVEL = 0b11 << 2;
export const MPS_INTI_CONFORMING = 0;
/** ACPI processor UID 0xff: the NMI entry applies to every processor. */
export const MADT_ALL_PROCESSORS = 0xff;
export const ISA_BUS = 0;
export const LINT1 = 1;

export function buildMadt(d: ResolvedDescription): Uint8Array {
  const w = new ByteWriter().u32(LOCAL_APIC_ADDRESS).u32(MADT_PCAT_COMPAT);
  for (let cpu = 0; cpu < d.cpus; cpu++) {
    w.u8(MADT_TYPE_LOCAL_APIC).u8(MADT_LOCAL_APIC_SIZE).u8(cpu).u8(cpu).u32(MADT_LOCAL_APIC_ENABLED);
  }
  w.u8(MADT_TYPE_IO_APIC).u8(MADT_IO_APIC_SIZE).u8(d.ioapicId).u8(0).u32(IO_APIC_ADDRESS).u32(0);
  w.u8(MADT_TYPE_INTERRUPT_OVERRIDE).u8(MADT_INTERRUPT_OVERRIDE_SIZE).u8(ISA_BUS).u8(SCI_IRQ).u32(SCI_IRQ);
  w.u16(MPS_INTI_POLARITY_ACTIVE_HIGH | MPS_INTI_TRIGGER_LEVEL);
  w.u8(MADT_TYPE_LOCAL_APIC_NMI).u8(MADT_LOCAL_APIC_NMI_SIZE).u8(MADT_ALL_PROCESSORS).u16(MPS_INTI_CONFORMING).u8(LINT1);
  return systemDescriptionTable(MADT_SIGNATURE, MADT_REVISION, w.toBytes());
}
