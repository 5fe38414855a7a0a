import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { buildMpTable } from '../../src/boot/mptable.js';
import { buildFirmwareTables, FirmwareError, type FirmwareDescription } from '../../src/boot/acpi/index.js';
import { sum8 } from '../helpers/acpi-tables.js';

const MiB = 0x100000;
const ascii = (b: Uint8Array): string => Buffer.from(b).toString('latin1');

const description = (cpus: number, extra: Partial<FirmwareDescription> = {}): FirmwareDescription => ({
  cpus,
  pciInterrupts: [
    { slot: 1, gsi: 10 },
    { slot: 2, gsi: 11 },
    { slot: 3, pin: 'INTC', gsi: 11 },
  ],
  virtioMmio: [{ base: 0xd000_0000, size: 0x1000, gsi: 5 }],
  ...extra,
});

type Entry =
  | { type: 'cpu'; apicId: number; version: number; flags: number; signature: number; features: number }
  | { type: 'bus'; id: number; name: string }
  | { type: 'ioapic'; id: number; version: number; flags: number; address: number }
  | ({ type: 'io-int' } & Interrupt)
  | ({ type: 'local-int' } & Interrupt);

interface Interrupt {
  intType: number;
  flags: number;
  bus: number;
  busIrq: number;
  dest: number;
  pin: number;
}

/** Finds the floating pointer the way Linux does (16-byte steps over 0xF0000-0xFFFFF) and parses what it points at. */
function scan(memory: GuestMemory) {
  const found: number[] = [];
  for (let a = 0xf0000; a < 0x100000; a += 16) if (ascii(memory.slice(a, 4)) === '_MP_') found.push(a);
  assert.is(found.length, 1, 'exactly one MP floating pointer');
  const mpf = memory.slice(found[0]!, 16);
  assert.is(mpf[8], 1, 'length in paragraphs');
  assert.is(mpf[9], 4, 'spec revision 1.4');
  assert.is(sum8(mpf), 0, 'floating pointer checksum');
  assert.equal([...mpf.subarray(11, 16)], [0, 0, 0, 0, 0], 'config table present, no IMCR');
  const config = new DataView(mpf.buffer, mpf.byteOffset).getUint32(4, true);
  const header = memory.slice(config, 44);
  const hv = new DataView(header.buffer, header.byteOffset, 44);
  assert.is(ascii(header.subarray(0, 4)), 'PCMP');
  const length = hv.getUint16(4, true);
  assert.is(header[6], 4, 'spec revision');
  const table = memory.slice(config, length);
  assert.is(sum8(table), 0, 'configuration table checksum');
  assert.is(ascii(table.subarray(8, 16)), 'KVMTS   ');
  assert.is(hv.getUint32(36, true), 0xfee0_0000, 'local APIC address');
  assert.is(hv.getUint16(40, true), 0, 'no extended table');
  const v = new DataView(table.buffer, table.byteOffset, length);
  const entries: Entry[] = [];
  for (let at = 44; at < length; ) {
    const type = v.getUint8(at);
    if (type === 0) {
      entries.push({ type: 'cpu', apicId: v.getUint8(at + 1), version: v.getUint8(at + 2), flags: v.getUint8(at + 3), signature: v.getUint32(at + 4, true), features: v.getUint32(at + 8, true) });
      at += 20;
      continue;
    }
    if (type === 1) entries.push({ type: 'bus', id: v.getUint8(at + 1), name: ascii(table.subarray(at + 2, at + 8)) });
    else if (type === 2) entries.push({ type: 'ioapic', id: v.getUint8(at + 1), version: v.getUint8(at + 2), flags: v.getUint8(at + 3), address: v.getUint32(at + 4, true) });
    else if (type === 3 || type === 4) {
      const int: Interrupt = { intType: v.getUint8(at + 1), flags: v.getUint16(at + 2, true), bus: v.getUint8(at + 4), busIrq: v.getUint8(at + 5), dest: v.getUint8(at + 6), pin: v.getUint8(at + 7) };
      entries.push(type === 3 ? { type: 'io-int', ...int } : { type: 'local-int', ...int });
    } else assert.unreachable(`unknown MP entry type ${type} at ${at}`);
    at += 8;
  }
  assert.is(hv.getUint16(34, true), entries.length, 'entry count');
  return { floatingPointer: found[0]!, config, length, entries };
}

for (const cpus of [1, 2, 8]) {
  test(`${cpus} vCPU(s): MP floating pointer → configuration table, checksums and entries`, () => {
    const memory = GuestMemory.fromLayout([[0, 2 * MiB]]);
    const result = buildMpTable(memory, description(cpus, { cpuSignature: { eax: 0x000806f8, edx: 0x178bfbff } }));
    const { floatingPointer, config, length, entries } = scan(memory);
    assert.is(result.floatingPointer, floatingPointer);
    assert.is(result.configTable, config);
    assert.equal(result.range, [0xf0000, config + length]);

    const cpuEntries = entries.filter((e) => e.type === 'cpu');
    assert.equal(cpuEntries, Array.from({ length: cpus }, (_, i) => ({ type: 'cpu', apicId: i, version: 0x14, flags: i === 0 ? 0b11 : 0b01, signature: 0x000806f8, features: 0x178bfbff })));
    assert.equal(entries.filter((e) => e.type === 'bus'), [{ type: 'bus', id: 0, name: 'PCI   ' }, { type: 'bus', id: 1, name: 'ISA   ' }]);
    assert.equal(entries.filter((e) => e.type === 'ioapic'), [{ type: 'ioapic', id: cpus, version: 0x11, flags: 1, address: 0xfec0_0000 }]);

    const io = entries.filter((e) => e.type === 'io-int') as Array<Extract<Entry, { type: 'io-int' }>>;
    const isa = io.filter((e) => e.bus === 1);
    // ISA IRQs map to the same pin, except 2 (cascade) and the pins PCI lines use (level, active-low).
    assert.equal(isa.map((e) => e.busIrq), [0, 1, 3, 4, 5, 6, 7, 8, 9, 12, 13, 14, 15]);
    for (const e of isa) assert.equal([e.intType, e.flags, e.dest, e.pin], [0, 0, cpus, e.busIrq], `ISA IRQ ${e.busIrq}`);
    assert.equal(io.filter((e) => e.bus === 0), [
      { type: 'io-int', intType: 0, flags: 0b1111, bus: 0, busIrq: (1 << 2) | 0, dest: cpus, pin: 10 },
      { type: 'io-int', intType: 0, flags: 0b1111, bus: 0, busIrq: (2 << 2) | 0, dest: cpus, pin: 11 },
      { type: 'io-int', intType: 0, flags: 0b1111, bus: 0, busIrq: (3 << 2) | 2, dest: cpus, pin: 11 },
    ]);
    assert.equal(entries.filter((e) => e.type === 'local-int'), [
      { type: 'local-int', intType: 3, flags: 0, bus: 1, busIrq: 0, dest: 0xff, pin: 0 }, // ExtINT → LINT0
      { type: 'local-int', intType: 1, flags: 0, bus: 1, busIrq: 0, dest: 0xff, pin: 1 }, // NMI → LINT1
    ]);
    const order = ['cpu', 'bus', 'ioapic', 'io-int', 'local-int'];
    for (let i = 1; i < entries.length; i++) assert.ok(order.indexOf(entries[i]!.type) >= order.indexOf(entries[i - 1]!.type), 'entries ordered by type');
  });
}

test('without a CPU signature the processor entries carry zeros; 254 vCPUs fit', () => {
  const memory = GuestMemory.fromLayout([[0, 2 * MiB]]);
  const result = buildMpTable(memory, { cpus: 254, pciInterrupts: [], virtioMmio: [] });
  const { entries } = scan(memory);
  const cpus = entries.filter((e) => e.type === 'cpu');
  assert.is(cpus.length, 254);
  assert.ok(cpus.every((e) => e.type === 'cpu' && e.signature === 0 && e.features === 0));
  assert.ok(result.range[1] <= 0x100000);
  assert.is(entries.filter((e) => e.type === 'io-int').length, 15, 'ISA IRQs 0-15 but 2');
});

test('buildFirmwareTables writes the MP table next to the ACPI tables, with the same I/O APIC id', () => {
  const memory = GuestMemory.fromLayout([[0, 2 * MiB]]);
  const result = buildFirmwareTables(memory, description(4, { ioapicId: 9 }));
  assert.is(result.mpFloatingPointer, 0xf0000);
  assert.is(result.ranges.length, 2);
  assert.ok(result.ranges[0]![1] <= result.ranges[1]![0], 'ACPI and MP areas apart');
  const { entries } = scan(memory);
  assert.ok(entries.some((e) => e.type === 'ioapic' && e.id === 9));
  assert.ok(entries.filter((e) => e.type === 'io-int').every((e) => e.type === 'io-int' && e.dest === 9));
});

test('the MP table refuses what the ACPI tables refuse, and needs RAM at 0xF0000', () => {
  const memory = GuestMemory.fromLayout([[0, 2 * MiB]]);
  assert.throws(() => buildMpTable(memory, description(300)), (e: unknown) => e instanceof FirmwareError && e.kind === 'too-many-cpus');
  assert.throws(() => buildMpTable(memory, description(2, { pciInterrupts: [{ slot: 40, gsi: 10 }] })), (e: unknown) => e instanceof FirmwareError && e.kind === 'bad-description');
  const noBios = GuestMemory.fromLayout([[0, 0xa0000], [MiB, MiB]]);
  assert.throws(() => buildMpTable(noBios, description(2)), (e: unknown) => e instanceof FirmwareError && e.kind === 'not-ram');
});

test.run();
