import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../../src/vmm/guest-memory.js';
import { buildAcpiTables, buildFirmwareTables, FirmwareError, type FirmwareDescription, type FirmwareErrorKind } from '../../../src/boot/acpi/index.js';
import * as platform from '../../../src/boot/acpi/platform.js';
import * as pm from '../../../src/legacy/acpi-pm.js';
import { PVPANIC_PORT } from '../../../src/legacy/pvpanic.js';
import { COM1_IRQ, COM1_PORT } from '../../../src/legacy/uart-8250.js';
import { RTC_CENTURY } from '../../../src/legacy/cmos-rtc.js';
import { PCI_CONFIG_ADDRESS_PORT, PCI_CONFIG_PORT_COUNT, PCI_MMIO_WINDOW_SIZE, PCI_MMIO_WINDOW_START } from '../../../src/transport/pci/pci-constants.js';
import { IOAPIC_PINS } from '../../../src/vmm/irq-routing.js';
import { describe, parseMadt, readAcpiTables, readGas, type MadtEntry } from '../../helpers/acpi-tables.js';
import { decodeDsdt, decodeResources, type NamespaceEntry } from '../../helpers/acpi-aml.js';

const MiB = 0x100000;

function build(description: FirmwareDescription) {
  const memory = GuestMemory.fromLayout([[0, 2 * MiB]]);
  const result = buildFirmwareTables(memory, description);
  return { memory, result, tables: readAcpiTables(memory, result.rsdpAddress) };
}

function throwsFirmware(fn: () => unknown, kind: FirmwareErrorKind, pattern?: RegExp): void {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof FirmwareError)) throw error;
    assert.is(error.kind, kind, error.message);
    assert.not.match(error.message, /\n/);
    if (pattern) assert.match(error.message, pattern);
    return;
  }
  assert.unreachable(`expected FirmwareError ${kind}`);
}

for (const cpus of [1, 2, 8]) {
  test(`${cpus} vCPU(s): RSDP revision 2 at 0xE0000 → XSDT/RSDT → FADT, MADT; FADT → DSDT, FACS; all checksums`, () => {
    const { result, tables } = build(describe(cpus));
    assert.is(result.rsdpAddress, 0xe0000);
    const { rsdp, xsdt, fadt, madt, dsdt, facs } = tables;
    assert.is(rsdp.revision, 2);
    assert.is(rsdp.length, 36);
    assert.is(rsdp.oemId, 'KVMTS ');
    assert.is(rsdp.xsdt, result.acpi.xsdt);
    assert.is(rsdp.rsdt, result.acpi.rsdt);
    assert.is(xsdt.length, 36 + 2 * 8, 'XSDT lists FADT and MADT (no MCFG)');
    assert.is(fadt.address, result.acpi.fadt);
    assert.is(madt.address, result.acpi.madt);
    assert.is(dsdt.address, result.acpi.dsdt);
    assert.is(facs.address, result.acpi.facs);
    assert.is(facs.bytes[32], 2, 'FACS version');
    for (const t of [xsdt, tables.rsdt, fadt, madt, dsdt]) {
      assert.is(t.oemId, 'KVMTS ');
      assert.is(t.oemTableId, 'KVMTSVM ');
      assert.is(t.creatorId, 'KVMT');
      assert.ok(t.creatorRevision > 0);
    }
    // Every table inside the reported range, none overlapping another.
    const [start, end] = result.ranges[0]!;
    const spans = [[rsdp.xsdt, xsdt.length], [rsdp.rsdt, tables.rsdt.length], [fadt.address, fadt.length], [madt.address, madt.length], [dsdt.address, dsdt.length], [facs.address, 64], [result.rsdpAddress, 36]]
      .map(([a, l]) => [a!, a! + l!] as const)
      .sort((a, b) => a[0] - b[0]);
    assert.is(spans[0]![0], start);
    assert.ok(spans.at(-1)![1] <= end && end <= 0xf0000);
    for (let i = 1; i < spans.length; i++) assert.ok(spans[i]![0] >= spans[i - 1]![1], 'tables do not overlap');
  });

  test(`${cpus} vCPU(s): FADT 6.3 fields at their spec offsets`, () => {
    const { fadt } = build(describe(cpus)).tables;
    const v = fadt.view;
    assert.is(fadt.length, 276);
    assert.is(fadt.revision, 6);
    assert.is(v.getUint8(131), 3, 'FADT minor version');
    assert.is(v.getUint16(46, true), 9, 'SCI_INT');
    assert.is(v.getUint32(48, true), 0, 'SMI_CMD: ACPI always enabled');
    assert.is(v.getUint32(56, true), 0x600, 'PM1a_EVT_BLK');
    assert.is(v.getUint32(64, true), 0x604, 'PM1a_CNT_BLK');
    assert.is(v.getUint32(60, true) + v.getUint32(68, true), 0, 'no PM1b blocks');
    assert.is(v.getUint8(88), 4, 'PM1_EVT_LEN');
    assert.is(v.getUint8(89), 2, 'PM1_CNT_LEN');
    assert.is(v.getUint32(76, true), 0, 'no PM timer');
    assert.is(v.getUint8(91), 0, 'PM_TMR_LEN');
    assert.ok(v.getUint16(96, true) > 100 && v.getUint16(98, true) > 1000, 'no C2/C3');
    assert.is(v.getUint8(108), 0x32, 'CENTURY');
    const boot = v.getUint16(109, true);
    assert.is(boot & (1 << 1), 1 << 1, '8042 present');
    assert.is(boot & (1 << 2), 1 << 2, 'VGA not present');
    assert.is(boot & (1 << 3), 0, 'MSI supported');
    assert.is(boot & (1 << 5), 0, 'CMOS RTC present');
    const flags = v.getUint32(112, true);
    for (const [bit, what] of [[0, 'WBINVD'], [2, 'PROC_C1'], [4, 'PWR_BUTTON (none fixed)'], [5, 'SLP_BUTTON (none fixed)'], [10, 'RESET_REG_SUP']] as const) {
      assert.is((flags >>> bit) & 1, 1, what);
    }
    assert.is((flags >>> 20) & 1, 0, 'not HW_REDUCED_ACPI');
    assert.equal(readGas(v, 116), { space: 1, bitWidth: 8, bitOffset: 0, accessSize: 1, address: 0x608 }, 'RESET_REG');
    assert.is(v.getUint8(128), 0x01, 'RESET_VALUE');
    assert.equal(readGas(v, 148), { space: 1, bitWidth: 32, bitOffset: 0, accessSize: 2, address: 0x600 }, 'X_PM1a_EVT_BLK');
    assert.equal(readGas(v, 172), { space: 1, bitWidth: 16, bitOffset: 0, accessSize: 2, address: 0x604 }, 'X_PM1a_CNT_BLK');
    for (const at of [160, 184, 196, 208, 220, 232, 244, 256]) assert.is(readGas(v, at).address, 0, `GAS at ${at} unused`);
  });

  test(`${cpus} vCPU(s): MADT lists ${cpus} enabled local APIC(s), the I/O APIC, the SCI override and the NMI`, () => {
    const { localApicAddress, flags, entries } = parseMadt(build(describe(cpus)).tables.madt);
    assert.is(localApicAddress, 0xfee0_0000);
    assert.is(flags, 1, 'PCAT_COMPAT');
    const expected: MadtEntry[] = [
      ...Array.from({ length: cpus }, (_, i): MadtEntry => ({ type: 'lapic', uid: i, apicId: i, flags: 1 })),
      { type: 'ioapic', id: cpus, address: 0xfec0_0000, gsiBase: 0 },
      { type: 'override', bus: 0, source: 9, gsi: 9, flags: 0b1101 }, // level, active-high
      { type: 'lapic-nmi', uid: 0xff, flags: 0, lint: 1 },
    ];
    assert.equal(entries, expected);
    assert.not.ok(entries.some((e) => e.type === 'override' && e.source === 0), 'no IRQ 0 override: the PIT is on GSI 0');
  });

  test(`${cpus} vCPU(s): DSDT namespace: \\_S5, PCI0, COM1, PEVT, virtio-mmio and processor devices`, () => {
    const { dsdt } = build(describe(cpus)).tables;
    assert.is(dsdt.revision, 2);
    const ns = decodeDsdt(dsdt.bytes.subarray(36));
    const value = (path: string): unknown => {
      const e = ns.get(path);
      assert.ok(e && e.kind === 'name', `${path} is a Name`);
      return (e as Extract<NamespaceEntry, { kind: 'name' }>).value;
    };
    assert.equal(value('\\_S5_'), [5n, 5n, 0n, 0n]);
    assert.is(ns.get('\\_SB_')?.kind, 'scope');
    assert.is(ns.get('\\_SB_.PCI0')?.kind, 'device');
    assert.is(value('\\_SB_.PCI0._HID'), 0x030a_d041n); // EisaId("PNP0A03")
    for (const n of ['_UID', '_SEG', '_BBN']) assert.is(value(`\\_SB_.PCI0.${n}`), 0n, n);
    const crs = decodeResources(value('\\_SB_.PCI0._CRS') as Uint8Array);
    assert.equal(crs, [
      { type: 'address', width: 16, resourceType: 2, flags: 0x0c, typeFlags: 0, granularity: 0n, min: 0n, max: 0n, translation: 0n, length: 1n },
      { type: 'io', decode16: true, min: 0xcf8, max: 0xcf8, alignment: 1, length: 8 },
      { type: 'address', width: 32, resourceType: 1, flags: 0x0c, typeFlags: 3, granularity: 0n, min: 0n, max: 0xcf7n, translation: 0n, length: 0xcf8n },
      { type: 'address', width: 32, resourceType: 1, flags: 0x0c, typeFlags: 3, granularity: 0n, min: 0xd00n, max: 0xffffn, translation: 0n, length: 0xf300n },
      { type: 'address', width: 32, resourceType: 0, flags: 0x0c, typeFlags: 1, granularity: 0n, min: 0xc000_0000n, max: 0xcfff_ffffn, translation: 0n, length: 0x1000_0000n },
    ]);
    assert.equal(value('\\_SB_.PCI0._PRT'), [
      [0x1ffffn, 0n, 0n, 5n],
      [0x2ffffn, 0n, 0n, 10n],
      [0x3ffffn, 1n, 0n, 11n],
    ]);

    assert.is(value('\\_SB_.COM1._HID'), 0x0105_d041n); // EisaId("PNP0501")
    assert.is(value('\\_SB_.COM1._UID'), 1n);
    assert.equal(decodeResources(value('\\_SB_.COM1._CRS') as Uint8Array), [
      { type: 'io', decode16: true, min: 0x3f8, max: 0x3f8, alignment: 1, length: 8 },
      { type: 'irq', mask: 1 << 4 },
    ]);

    assert.is(value('\\_SB_.PEVT._HID'), 'QEMU0001');
    assert.equal(decodeResources(value('\\_SB_.PEVT._CRS') as Uint8Array), [{ type: 'io', decode16: true, min: 0x505, max: 0x505, alignment: 1, length: 1 }]);
    const sta = ns.get('\\_SB_.PEVT._STA');
    assert.ok(sta?.kind === 'method');
    assert.equal([...(sta as { body: Uint8Array }).body], [0xa4, 0x0a, 0x0f], 'Return (0x0F)');

    for (const [i, base] of [0xd000_0000, 0xd000_1000].entries()) {
      const dev = `\\_SB_.VR0${i}`;
      assert.is(value(`${dev}._HID`), 'LNRO0005');
      assert.is(value(`${dev}._UID`), BigInt(i));
      assert.equal(decodeResources(value(`${dev}._CRS`) as Uint8Array), [
        { type: 'memory32-fixed', writable: true, base, length: 0x1000 },
        { type: 'interrupt', flags: 0b0011, interrupts: [6 + i] }, // consumer, edge, active-high, exclusive
      ]);
    }
    for (let cpu = 0; cpu < cpus; cpu++) {
      const dev = `\\_SB_.C${cpu.toString(16).toUpperCase().padStart(3, '0')}`;
      assert.is(value(`${dev}._HID`), 'ACPI0007');
      assert.is(value(`${dev}._UID`), BigInt(cpu), 'processor UID = the MADT entry');
    }
  });
}

test('254 vCPUs (the most xAPIC ids allow, the I/O APIC taking 254) fit the area', () => {
  const { result, tables } = build({ cpus: 254, pciInterrupts: [], virtioMmio: [] });
  const { entries } = parseMadt(tables.madt);
  assert.is(entries.filter((e) => e.type === 'lapic').length, 254);
  assert.ok(entries.some((e) => e.type === 'ioapic' && e.id === 254));
  assert.ok(result.ranges[0]![1] <= 0xf0000);
  assert.equal(decodeDsdt(tables.dsdt.bytes.subarray(36)).get('\\_SB_.PCI0._PRT'), { kind: 'name', value: [] });
});

test('an explicit I/O APIC id is used in the MADT', () => {
  const { entries } = parseMadt(build({ ...describe(2), ioapicId: 0x20 }).tables.madt);
  assert.ok(entries.some((e) => e.type === 'ioapic' && e.id === 0x20));
});

test('rebuilding over old tables leaves no stale bytes (fewer vCPUs, smaller tables)', () => {
  const memory = GuestMemory.fromLayout([[0, 2 * MiB]]);
  memory.fill(0xe0000, 0x20000, 0xaa);
  buildFirmwareTables(memory, describe(8));
  const small = buildAcpiTables(memory, describe(1));
  const [start, end] = small.range;
  const fresh = GuestMemory.fromLayout([[0, 2 * MiB]]);
  buildAcpiTables(fresh, describe(1));
  assert.equal(memory.slice(start, end - start), fresh.slice(start, end - start));
  readAcpiTables(memory, small.rsdpAddress);
});

test('impossible descriptions are refused with typed, one-line errors and write nothing', () => {
  const memory = GuestMemory.fromLayout([[0, 2 * MiB]]);
  const base = describe(2);
  const refuse = (d: Partial<FirmwareDescription>, kind: FirmwareErrorKind, pattern?: RegExp): void =>
    throwsFirmware(() => buildFirmwareTables(memory, { ...base, ...d }), kind, pattern);
  refuse({ cpus: 0 }, 'bad-description', /cpus/);
  refuse({ cpus: 1.5 }, 'bad-description');
  refuse({ cpus: 255 }, 'too-many-cpus', /254/);
  refuse({ ioapicId: 1 }, 'bad-description', /vCPU 1/);
  refuse({ ioapicId: 0xff }, 'bad-description');
  refuse({ pciInterrupts: [{ slot: 32, gsi: 5 }] }, 'bad-description', /slot/);
  refuse({ pciInterrupts: [{ slot: 1, gsi: 24 }] }, 'bad-description', /GSI/);
  refuse({ pciInterrupts: [{ slot: 1, gsi: 9 }] }, 'irq-conflict', /SCI/);
  refuse({ pciInterrupts: [{ slot: 1, gsi: 4 }] }, 'irq-conflict', /COM1/);
  refuse({ pciInterrupts: [{ slot: 1, gsi: 5 }, { slot: 1, gsi: 6 }] }, 'bad-description', /twice/);
  refuse({ pciInterrupts: [{ slot: 1, pin: 'INTE' as never, gsi: 5 }] }, 'bad-description', /pin/);
  refuse({ virtioMmio: [{ base: 0xd000_0000, size: 0x1000, gsi: 0 }] }, 'irq-conflict', /PIT/);
  refuse({ virtioMmio: [{ base: 0xd000_0000, size: 0x1000, gsi: 5 }] }, 'irq-conflict', /PCI INTx/);
  refuse({ virtioMmio: [{ base: 0xd000_0000, size: 0x1000, gsi: 6 }, { base: 0xd000_0800, size: 0x1000, gsi: 7 }] }, 'bad-description', /overlaps/);
  refuse({ virtioMmio: [{ base: 0xffff_f000, size: 0x2000, gsi: 6 }] }, 'bad-description', /size/);
  refuse({ cpuSignature: { eax: -1, edx: 0 } }, 'bad-description');
  assert.ok(memory.slice(0xe0000, 0x20000).every((b) => b === 0), 'nothing was written');
  const noBios = GuestMemory.fromLayout([[0, 0xa0000], [MiB, MiB]]);
  throwsFirmware(() => buildFirmwareTables(noBios, base), 'not-ram', /0xe0000/);
});

test('platform constants agree with the devices behind them', () => {
  assert.is(platform.PM1A_EVT_BLK, pm.PM1A_EVT_BLK);
  assert.is(platform.PM1_EVT_LEN, pm.PM1A_EVT_LEN);
  assert.is(platform.PM1A_CNT_BLK, pm.PM1A_CNT_BLK);
  assert.is(platform.PM1_CNT_LEN, pm.PM1A_CNT_LEN);
  assert.is(platform.RESET_REG_PORT, pm.ACPI_RESET_PORT);
  assert.is(platform.RESET_VALUE, pm.ACPI_RESET_VALUE);
  assert.is(platform.SLP_TYP_S5, pm.SLP_TYP_S5);
  assert.is(platform.SCI_IRQ, pm.ACPI_SCI_IRQ);
  assert.is(platform.PVPANIC_PORT, PVPANIC_PORT);
  assert.is(platform.COM1_PORT, COM1_PORT);
  assert.is(platform.COM1_IRQ, COM1_IRQ);
  assert.is(platform.RTC_CENTURY_INDEX, RTC_CENTURY);
  assert.is(platform.PCI_CONFIG_PORT, PCI_CONFIG_ADDRESS_PORT);
  assert.is(platform.PCI_CONFIG_PORT_COUNT, PCI_CONFIG_PORT_COUNT);
  assert.is(platform.PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_START);
  assert.is(platform.PCI_MMIO_WINDOW_END, PCI_MMIO_WINDOW_START + PCI_MMIO_WINDOW_SIZE);
  assert.is(platform.IO_APIC_PINS, IOAPIC_PINS);
});

test.run();
