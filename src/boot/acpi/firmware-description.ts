/**
 * What the firmware tables describe, given by the VMM per VM, and its
 * validation (shared by the ACPI tables and the MP table, so both always
 * describe the same machine).
 */

import { hex } from '../boot-error.js';
import { FirmwareError } from './firmware-error.js';
import { IO_APIC_PINS, MAX_XAPIC_ID, PCI_MAX_SLOT, RESERVED_GSIS } from './platform.js';

export type PciInterruptPin = 'INTA' | 'INTB' | 'INTC' | 'INTD';
export const PCI_INTERRUPT_PINS: readonly PciInterruptPin[] = ['INTA', 'INTB', 'INTC', 'INTD'];

/** A PCI device's INTx line wired straight to an I/O APIC pin (level-triggered, active-low). */
export interface PciInterrupt {
  /** Device number on bus 0 (0-31). */
  readonly slot: number;
  /** Defaults to INTA. */
  readonly pin?: PciInterruptPin;
  readonly gsi: number;
}

/** A virtio-mmio window and its edge-triggered, active-high interrupt. */
export interface VirtioMmioDevice {
  readonly base: number;
  readonly size: number;
  readonly gsi: number;
}

/** CPUID leaf 1 of the boot vCPU, for the MP table's processor entries. */
export interface CpuSignature {
  /** Leaf 1 EAX: stepping, model, family. */
  readonly eax: number;
  /** Leaf 1 EDX: feature flags. */
  readonly edx: number;
}

export interface FirmwareDescription {
  /** vCPUs; APIC id = ACPI processor UID = vCPU index. */
  readonly cpus: number;
  /** Defaults to `cpus` (the first id after the vCPUs'). */
  readonly ioapicId?: number;
  readonly pciInterrupts: readonly PciInterrupt[];
  readonly virtioMmio: readonly VirtioMmioDevice[];
  readonly cpuSignature?: CpuSignature;
}

/** A description with defaults applied, as the table builders use it. */
export interface ResolvedDescription {
  readonly cpus: number;
  readonly ioapicId: number;
  readonly pciInterrupts: ReadonlyArray<Required<PciInterrupt>>;
  readonly virtioMmio: readonly VirtioMmioDevice[];
  readonly cpuSignature: CpuSignature;
}

/** APIC ids 0..cpus-1 and the I/O APIC id must all be distinct xAPIC ids. */
export const MAX_CPUS = MAX_XAPIC_ID;
/** virtio-mmio devices are named VR00-VRFF in the DSDT. */
export const MAX_VIRTIO_MMIO_DEVICES = 0x100;
const FOUR_GIB = 0x1_0000_0000;

function bad(message: string): never {
  throw new FirmwareError('bad-description', message);
}

function integerIn(what: string, value: unknown, min: number, max: number): number {
  if (typeof value !== 'number' || !Number.isSafeInteger(value) || value < min || value > max) {
    bad(`${what} is ${String(value)}; it must be an integer in ${min}-${max}`);
  }
  return value;
}

function checkGsi(what: string, gsi: unknown): number {
  const line = integerIn(`${what} GSI`, gsi, 0, IO_APIC_PINS - 1);
  const owner = RESERVED_GSIS.get(line);
  if (owner !== undefined) throw new FirmwareError('irq-conflict', `${what} cannot use GSI ${line}: it belongs to ${owner}`);
  return line;
}

export function resolveDescription(description: FirmwareDescription): ResolvedDescription {
  if (typeof description.cpus !== 'number' || !Number.isSafeInteger(description.cpus) || description.cpus < 1) {
    bad(`cpus is ${String(description.cpus)}; it must be a positive integer`);
  }
  const cpus = description.cpus;
  if (cpus > MAX_CPUS) {
    throw new FirmwareError('too-many-cpus', `${cpus} vCPUs do not fit the xAPIC ids the tables describe (at most ${MAX_CPUS}, plus the I/O APIC)`);
  }
  const ioapicId = integerIn('ioapicId', description.ioapicId ?? cpus, 0, MAX_XAPIC_ID);
  if (ioapicId < cpus) bad(`ioapicId ${ioapicId} is also the APIC id of vCPU ${ioapicId}`);

  const pciInterrupts: Array<Required<PciInterrupt>> = [];
  const seen = new Set<string>();
  for (const [i, p] of (description.pciInterrupts ?? []).entries()) {
    const slot = integerIn(`pciInterrupts[${i}].slot`, p.slot, 0, PCI_MAX_SLOT);
    const pin = p.pin ?? 'INTA';
    if (!PCI_INTERRUPT_PINS.includes(pin)) bad(`pciInterrupts[${i}].pin is ${String(pin)}; it must be one of ${PCI_INTERRUPT_PINS.join(', ')}`);
    const gsi = checkGsi(`PCI slot ${slot} ${pin}`, p.gsi);
    const key = `${slot}.${pin}`;
    if (seen.has(key)) bad(`PCI slot ${slot} ${pin} is listed twice`);
    seen.add(key);
    pciInterrupts.push({ slot, pin, gsi });
  }

  const pciGsis = new Set(pciInterrupts.map((p) => p.gsi));
  const virtioMmio: VirtioMmioDevice[] = [];
  const list = description.virtioMmio ?? [];
  if (list.length > MAX_VIRTIO_MMIO_DEVICES) bad(`${list.length} virtio-mmio devices (at most ${MAX_VIRTIO_MMIO_DEVICES})`);
  for (const [i, d] of list.entries()) {
    const base = integerIn(`virtioMmio[${i}].base`, d.base, 0, FOUR_GIB - 1);
    const size = integerIn(`virtioMmio[${i}].size`, d.size, 1, FOUR_GIB - base);
    const gsi = checkGsi(`virtio-mmio device ${i}`, d.gsi);
    if (pciGsis.has(gsi)) {
      throw new FirmwareError('irq-conflict', `virtio-mmio device ${i} (edge-triggered) cannot share GSI ${gsi} with a PCI INTx line (level-triggered)`);
    }
    const other = virtioMmio.findIndex((o) => base < o.base + o.size && o.base < base + size);
    if (other >= 0) bad(`virtio-mmio device ${i} at ${hex(base)}+${hex(size)} overlaps device ${other}`);
    virtioMmio.push({ base, size, gsi });
  }

  const signature = description.cpuSignature ?? { eax: 0, edx: 0 };
  const cpuSignature = {
    eax: integerIn('cpuSignature.eax', signature.eax, 0, 0xffff_ffff),
    edx: integerIn('cpuSignature.edx', signature.edx, 0, 0xffff_ffff),
  };
  return { cpus, ioapicId, pciInterrupts, virtioMmio, cpuSignature };
}
