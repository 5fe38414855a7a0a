/**
 * The Intel MultiProcessor Specification 1.4 table, for kernels that boot
 * without ACPI (acpi=off, or built without it): the floating pointer at the
 * start of the 0xF0000 area (Linux scans it on 16-byte boundaries) and the
 * configuration table right after it. It describes the same machine as the
 * MADT and _PRT: APIC id = vCPU index, one I/O APIC, ISA IRQs identity-mapped,
 * PCI INTx lines level-triggered and active-low.
 */

import type { GuestMemory } from '../vmm/guest-memory.js';
import { hex } from './boot-error.js';
import type { GuestRange } from './memory-map.js';
import { alignUp } from './layout.js';
import { ByteWriter, fixChecksum } from './acpi/byte-writer.js';
import { FirmwareError } from './acpi/firmware-error.js';
import { PCI_INTERRUPT_PINS, resolveDescription, type FirmwareDescription } from './acpi/firmware-description.js';
import { IO_APIC_ADDRESS, IO_APIC_VERSION, LOCAL_APIC_ADDRESS, LOCAL_APIC_VERSION, MP_AREA_END, MP_AREA_START } from './acpi/platform.js';
import { requireRam } from './acpi/acpi-tables.js';

export const MPF_SIGNATURE = '_MP_';
export const MPF_SIZE = 16;
/** Length in 16-byte paragraphs. */
export const MPF_LENGTH_PARAGRAPHS = 1;
export const MPF_CHECKSUM = 10;
/** Specification revision 1.4. */
export const MP_SPEC_REVISION = 4;
export const MPF_ALIGNMENT = 16;

export const MPC_SIGNATURE = 'PCMP';
export const MPC_HEADER_SIZE = 44;
export const MPC_LENGTH = 4;
export const MPC_CHECKSUM = 7;
export const MPC_ENTRY_COUNT = 34;
export const MPC_OEM_ID = 'KVMTS';
export const MPC_PRODUCT_ID = 'KVMTSVM';

export const MP_ENTRY_PROCESSOR = 0;
export const MP_ENTRY_BUS = 1;
export const MP_ENTRY_IO_APIC = 2;
export const MP_ENTRY_IO_INTERRUPT = 3;
export const MP_ENTRY_LOCAL_INTERRUPT = 4;
export const MP_PROCESSOR_ENTRY_SIZE = 20;
export const MP_SMALL_ENTRY_SIZE = 8;

export const MP_CPU_ENABLED = 1 << 0;
export const MP_CPU_BOOT_PROCESSOR = 1 << 1;
export const MP_IO_APIC_USABLE = 1 << 0;
export const MP_INT_TYPE_INT = 0;
export const MP_INT_TYPE_NMI = 1;
export const MP_INT_TYPE_EXTINT = 3;
/** Interrupt flags: polarity bits 1-0, trigger bits 3-2 (0 = conforms to the bus). */
export const MP_IRQ_CONFORMING = 0;
export const MP_IRQ_POLARITY_LOW = 0b11;
export const MP_IRQ_TRIGGER_LEVEL = 0b11 << 2;

export const MP_BUS_PCI = 0;
export const MP_BUS_ISA = 1;
export const ISA_IRQS = 16;
/** IRQ 2 is the 8259 cascade: nothing interrupts there. */
export const ISA_CASCADE_IRQ = 2;
export const ALL_LOCAL_APICS = 0xff;
export const LINT0 = 0;
export const LINT1 = 1;

export interface MpTable {
  readonly floatingPointer: number;
  readonly configTable: number;
  /** Everything written, [start, end). */
  readonly range: GuestRange;
}

function ioInterrupt(w: ByteWriter, type: number, flags: number, bus: number, busIrq: number, ioapicId: number, pin: number): void {
  w.u8(MP_ENTRY_IO_INTERRUPT).u8(type).u16(flags).u8(bus).u8(busIrq).u8(ioapicId).u8(pin);
}

function localInterrupt(w: ByteWriter, type: number, lint: number): void {
  w.u8(MP_ENTRY_LOCAL_INTERRUPT).u8(type).u16(MP_IRQ_CONFORMING).u8(MP_BUS_ISA).u8(0).u8(ALL_LOCAL_APICS).u8(lint);
}

/** The configuration table with its entries (ordered by type, as the spec asks). */
export function buildMpConfigTable(description: FirmwareDescription): Uint8Array {
  const d = resolveDescription(description);
  const entries = new ByteWriter();
  let count = 0;
  for (let cpu = 0; cpu < d.cpus; cpu++) {
    const flags = MP_CPU_ENABLED | (cpu === 0 ? MP_CPU_BOOT_PROCESSOR : 0);
    entries.u8(MP_ENTRY_PROCESSOR).u8(cpu).u8(LOCAL_APIC_VERSION).u8(flags);
    entries.u32(d.cpuSignature.eax).u32(d.cpuSignature.edx).zeros(8);
    count++;
  }
  entries.u8(MP_ENTRY_BUS).u8(MP_BUS_PCI).ascii('PCI', 6);
  entries.u8(MP_ENTRY_BUS).u8(MP_BUS_ISA).ascii('ISA', 6);
  count += 2;
  entries.u8(MP_ENTRY_IO_APIC).u8(d.ioapicId).u8(IO_APIC_VERSION).u8(MP_IO_APIC_USABLE).u32(IO_APIC_ADDRESS);
  count++;
  // A pin a PCI line uses is level/active-low: no ISA entry may claim it edge-triggered.
  const pciPins = new Set(d.pciInterrupts.map((p) => p.gsi));
  for (let isaIrq = 0; isaIrq < ISA_IRQS; isaIrq++) {
    if (isaIrq === ISA_CASCADE_IRQ || pciPins.has(isaIrq)) continue;
    ioInterrupt(entries, MP_INT_TYPE_INT, MP_IRQ_CONFORMING, MP_BUS_ISA, isaIrq, d.ioapicId, isaIrq);
    count++;
  }
  for (const p of d.pciInterrupts) {
    const busIrq = (p.slot << 2) | PCI_INTERRUPT_PINS.indexOf(p.pin);
    ioInterrupt(entries, MP_INT_TYPE_INT, MP_IRQ_POLARITY_LOW | MP_IRQ_TRIGGER_LEVEL, MP_BUS_PCI, busIrq, d.ioapicId, p.gsi);
    count++;
  }
  localInterrupt(entries, MP_INT_TYPE_EXTINT, LINT0);
  localInterrupt(entries, MP_INT_TYPE_NMI, LINT1);
  count += 2;

  const body = entries.toBytes();
  const table = new ByteWriter()
    .ascii(MPC_SIGNATURE, 4)
    .u16(MPC_HEADER_SIZE + body.length)
    .u8(MP_SPEC_REVISION)
    .u8(0) // checksum, below
    .ascii(MPC_OEM_ID, 8)
    .ascii(MPC_PRODUCT_ID, 12)
    .u32(0) // no OEM table
    .u16(0)
    .u16(count)
    .u32(LOCAL_APIC_ADDRESS)
    .u16(0) // no extended entries
    .u8(0)
    .u8(0)
    .bytes(body)
    .toBytes();
  fixChecksum(table, MPC_CHECKSUM);
  return table;
}

/** Feature bytes all zero: a configuration table is present, and no IMCR (virtual wire mode). */
export function buildMpFloatingPointer(configTable: number): Uint8Array {
  const mpf = new ByteWriter()
    .ascii(MPF_SIGNATURE, 4)
    .u32(configTable)
    .u8(MPF_LENGTH_PARAGRAPHS)
    .u8(MP_SPEC_REVISION)
    .u8(0) // checksum, below
    .zeros(5)
    .toBytes();
  fixChecksum(mpf, MPF_CHECKSUM);
  return mpf;
}

export function buildMpTable(memory: GuestMemory, description: FirmwareDescription): MpTable {
  const floatingPointer = alignUp(MP_AREA_START, MPF_ALIGNMENT);
  const configTable = floatingPointer + MPF_SIZE;
  const config = buildMpConfigTable(description);
  const end = configTable + config.length;
  if (end > MP_AREA_END) {
    throw new FirmwareError('area-overflow', `the MP table needs ${hex(end - MP_AREA_START)} bytes; the area at ${hex(MP_AREA_START)} holds ${hex(MP_AREA_END - MP_AREA_START)}`);
  }
  requireRam(memory, MP_AREA_START, MP_AREA_END, 'MP table');
  memory.write(floatingPointer, buildMpFloatingPointer(configTable));
  memory.write(configTable, config);
  return { floatingPointer, configTable, range: [floatingPointer, end] };
}
