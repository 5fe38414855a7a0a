/**
 * Reads ACPI tables back out of guest memory the way an OS would: from the
 * RSDP through the XSDT (and RSDT) to each table, checking every checksum.
 * Offsets are written out from the ACPI 6.5 spec rather than imported, so the
 * tests do not just agree with the code they test.
 */

import * as assert from 'uvu/assert';
import type { GuestMemory } from '../../src/vmm/guest-memory.js';
import type { FirmwareDescription } from '../../src/boot/acpi/index.js';

/** A VM with PCI INTx lines (one on INTB) and two virtio-mmio devices, as the tests build it. */
export function describe(cpus: number): FirmwareDescription {
  return {
    cpus,
    pciInterrupts: [
      { slot: 1, gsi: 5 },
      { slot: 2, gsi: 10 },
      { slot: 3, pin: 'INTB', gsi: 11 },
    ],
    virtioMmio: [
      { base: 0xd000_0000, size: 0x1000, gsi: 6 },
      { base: 0xd000_1000, size: 0x1000, gsi: 7 },
    ],
  };
}

export function sum8(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return sum;
}

const ascii = (bytes: Uint8Array): string => Buffer.from(bytes).toString('latin1');

export interface Sdt {
  readonly address: number;
  readonly signature: string;
  readonly length: number;
  readonly revision: number;
  readonly oemId: string;
  readonly oemTableId: string;
  readonly creatorId: string;
  readonly creatorRevision: number;
  readonly bytes: Uint8Array;
  readonly view: DataView;
}

/** One table with its SDT header; asserts length and checksum. */
export function readSdt(memory: GuestMemory, address: number, signature: string): Sdt {
  const length = memory.readU32(address + 4);
  assert.ok(length >= 36 && length < 0x10000, `${signature} at 0x${address.toString(16)}: length ${length}`);
  const bytes = memory.slice(address, length).slice();
  assert.is(ascii(bytes.subarray(0, 4)), signature, `signature at 0x${address.toString(16)}`);
  assert.is(sum8(bytes), 0, `${signature} checksum`);
  const view = new DataView(bytes.buffer);
  return {
    address,
    signature,
    length,
    revision: bytes[8]!,
    oemId: ascii(bytes.subarray(10, 16)),
    oemTableId: ascii(bytes.subarray(16, 24)),
    creatorId: ascii(bytes.subarray(28, 32)),
    creatorRevision: view.getUint32(32, true),
    bytes,
    view,
  };
}

export interface Rsdp {
  readonly bytes: Uint8Array;
  readonly revision: number;
  readonly oemId: string;
  readonly rsdt: number;
  readonly length: number;
  readonly xsdt: number;
}

export function readRsdp(memory: GuestMemory, address: number): Rsdp {
  assert.is(address % 16, 0, 'RSDP on a 16-byte boundary');
  assert.ok(address >= 0xe0000 && address + 36 <= 0x100000, 'RSDP in the BIOS scan area');
  const bytes = memory.slice(address, 36).slice();
  const view = new DataView(bytes.buffer);
  assert.is(ascii(bytes.subarray(0, 8)), 'RSD PTR ');
  assert.is(sum8(bytes.subarray(0, 20)), 0, 'RSDP checksum (first 20 bytes)');
  assert.is(sum8(bytes), 0, 'RSDP extended checksum (36 bytes)');
  return {
    bytes,
    revision: bytes[15]!,
    oemId: ascii(bytes.subarray(9, 15)),
    rsdt: view.getUint32(16, true),
    length: view.getUint32(20, true),
    xsdt: Number(view.getBigUint64(24, true)),
  };
}

export interface AcpiTableSet {
  readonly rsdp: Rsdp;
  readonly xsdt: Sdt;
  readonly rsdt: Sdt;
  readonly fadt: Sdt;
  readonly madt: Sdt;
  readonly dsdt: Sdt;
  readonly facs: { readonly address: number; readonly bytes: Uint8Array };
}

/** Follows RSDP → XSDT → FADT/MADT, FADT → DSDT/FACS; the RSDT must list the same tables. */
export function readAcpiTables(memory: GuestMemory, rsdpAddress: number): AcpiTableSet {
  const rsdp = readRsdp(memory, rsdpAddress);
  const xsdt = readSdt(memory, rsdp.xsdt, 'XSDT');
  const rsdt = readSdt(memory, rsdp.rsdt, 'RSDT');
  const xEntries = Array.from({ length: (xsdt.length - 36) / 8 }, (_, i) => Number(xsdt.view.getBigUint64(36 + 8 * i, true)));
  const rEntries = Array.from({ length: (rsdt.length - 36) / 4 }, (_, i) => rsdt.view.getUint32(36 + 4 * i, true));
  assert.equal(rEntries, xEntries, 'RSDT and XSDT list the same tables');
  const bySignature = new Map(xEntries.map((a) => [ascii(memory.slice(a, 4)), a]));
  assert.is(bySignature.size, xEntries.length, 'no table listed twice');
  const fadt = readSdt(memory, bySignature.get('FACP')!, 'FACP');
  const madt = readSdt(memory, bySignature.get('APIC')!, 'APIC');
  const xDsdt = Number(fadt.view.getBigUint64(140, true));
  const xFacs = Number(fadt.view.getBigUint64(132, true));
  assert.is(fadt.view.getUint32(40, true), xDsdt, 'FADT DSDT = X_DSDT');
  assert.is(fadt.view.getUint32(36, true), xFacs, 'FADT FIRMWARE_CTRL = X_FIRMWARE_CTRL');
  const dsdt = readSdt(memory, xDsdt, 'DSDT');
  assert.is(xFacs % 64, 0, 'FACS 64-byte aligned');
  const facsBytes = memory.slice(xFacs, 64).slice();
  assert.is(ascii(facsBytes.subarray(0, 4)), 'FACS');
  assert.is(new DataView(facsBytes.buffer).getUint32(4, true), 64, 'FACS length');
  return { rsdp, xsdt, rsdt, fadt, madt, dsdt, facs: { address: xFacs, bytes: facsBytes } };
}

export type MadtEntry =
  | { type: 'lapic'; uid: number; apicId: number; flags: number }
  | { type: 'ioapic'; id: number; address: number; gsiBase: number }
  | { type: 'override'; bus: number; source: number; gsi: number; flags: number }
  | { type: 'lapic-nmi'; uid: number; flags: number; lint: number }
  | { type: 'other'; code: number };

export function parseMadt(madt: Sdt): { localApicAddress: number; flags: number; entries: MadtEntry[] } {
  const v = madt.view;
  const entries: MadtEntry[] = [];
  for (let at = 44; at < madt.length; ) {
    const code = v.getUint8(at);
    const length = v.getUint8(at + 1);
    assert.ok(length >= 2 && at + length <= madt.length, `MADT entry at ${at} has length ${length}`);
    if (code === 0) {
      assert.is(length, 8);
      entries.push({ type: 'lapic', uid: v.getUint8(at + 2), apicId: v.getUint8(at + 3), flags: v.getUint32(at + 4, true) });
    } else if (code === 1) {
      assert.is(length, 12);
      entries.push({ type: 'ioapic', id: v.getUint8(at + 2), address: v.getUint32(at + 4, true), gsiBase: v.getUint32(at + 8, true) });
    } else if (code === 2) {
      assert.is(length, 10);
      entries.push({ type: 'override', bus: v.getUint8(at + 2), source: v.getUint8(at + 3), gsi: v.getUint32(at + 4, true), flags: v.getUint16(at + 8, true) });
    } else if (code === 4) {
      assert.is(length, 6);
      entries.push({ type: 'lapic-nmi', uid: v.getUint8(at + 2), flags: v.getUint16(at + 3, true), lint: v.getUint8(at + 5) });
    } else {
      entries.push({ type: 'other', code });
    }
    at += length;
  }
  return { localApicAddress: v.getUint32(36, true), flags: v.getUint32(40, true), entries };
}

export interface GenericAddress {
  readonly space: number;
  readonly bitWidth: number;
  readonly bitOffset: number;
  readonly accessSize: number;
  readonly address: number;
}

export function readGas(view: DataView, offset: number): GenericAddress {
  return {
    space: view.getUint8(offset),
    bitWidth: view.getUint8(offset + 1),
    bitOffset: view.getUint8(offset + 2),
    accessSize: view.getUint8(offset + 3),
    address: Number(view.getBigUint64(offset + 4, true)),
  };
}
