import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as aml from '../../../src/boot/acpi/aml.js';
import * as res from '../../../src/boot/acpi/aml-resources.js';
import { FirmwareError, type FirmwareErrorKind } from '../../../src/boot/acpi/firmware-error.js';
import { ByteWriter } from '../../../src/boot/acpi/byte-writer.js';
import { AmlReader, decodeDsdt, decodeResources } from '../../helpers/acpi-aml.js';

const bytes = (a: Uint8Array): number[] => [...a];
const ascii = (s: string): number[] => [...s].map((c) => c.charCodeAt(0));

function throwsFirmware(fn: () => unknown, kind: FirmwareErrorKind): void {
  try {
    fn();
  } catch (error) {
    assert.instance(error, FirmwareError);
    assert.is((error as FirmwareError).kind, kind, (error as Error).message);
    assert.not.match((error as Error).message, /\n/);
    return;
  }
  assert.unreachable(`expected FirmwareError ${kind}`);
}

const decodePkgLength = (encoded: Uint8Array): number => new AmlReader(encoded).pkgEnd();

test('PkgLength: one byte up to 63, two bytes from 64 to 4095, three from 4096', () => {
  assert.equal(bytes(aml.pkgLength(1)), [0x01]);
  assert.equal(bytes(aml.pkgLength(63)), [0x3f]);
  assert.equal(bytes(aml.pkgLength(64)), [0x40, 0x04]); // lead: 1 follow byte, low nibble 0
  assert.equal(bytes(aml.pkgLength(65)), [0x41, 0x04]);
  assert.equal(bytes(aml.pkgLength(4095)), [0x4f, 0xff]);
  assert.equal(bytes(aml.pkgLength(4096)), [0x80, 0x00, 0x01]);
  assert.equal(bytes(aml.pkgLength(0xf_ffff)), [0x8f, 0xff, 0xff]);
  assert.equal(bytes(aml.pkgLength(0x10_0000)), [0xc0, 0x00, 0x00, 0x01]);
  assert.equal(bytes(aml.pkgLength(0x0fff_ffff)), [0xcf, 0xff, 0xff, 0xff]);
  for (const n of [1, 63, 64, 4095, 4096, 0x12345, 0x0fff_ffff]) assert.is(decodePkgLength(aml.pkgLength(n)), n);
  throwsFirmware(() => aml.pkgLength(0), 'bad-aml');
  throwsFirmware(() => aml.pkgLength(0x1000_0000), 'bad-aml');
});

test('withPkgLength counts its own bytes: content 62/63 and 4093/4094 straddle the size steps', () => {
  const cases: Array<[number, number]> = [
    [0, 1],
    [62, 1], // total 63
    [63, 2], // total 65: 64 would need 2 bytes too
    [4093, 2], // total 4095
    [4094, 3], // total 4097
    [0xf_fffc, 3], // total 0xfffff
    [0xf_fffd, 4],
  ];
  for (const [content, size] of cases) {
    const out = aml.withPkgLength(new Uint8Array(content));
    assert.is(out.length, content + size, `content ${content}`);
    assert.is(decodePkgLength(out), content + size, `content ${content} decodes to its total`);
  }
});

test('integers take the shortest encoding: Zero, One, Byte, Word, DWord, QWord', () => {
  assert.equal(bytes(aml.integer(0)), [0x00]);
  assert.equal(bytes(aml.integer(1)), [0x01]);
  assert.equal(bytes(aml.integer(2)), [0x0a, 0x02]);
  assert.equal(bytes(aml.integer(0xff)), [0x0a, 0xff]);
  assert.equal(bytes(aml.integer(0x100)), [0x0b, 0x00, 0x01]);
  assert.equal(bytes(aml.integer(0xffff)), [0x0b, 0xff, 0xff]);
  assert.equal(bytes(aml.integer(0x1_0000)), [0x0c, 0x00, 0x00, 0x01, 0x00]);
  assert.equal(bytes(aml.integer(0xffff_ffff)), [0x0c, 0xff, 0xff, 0xff, 0xff]);
  assert.equal(bytes(aml.integer(0x1_0000_0000)), [0x0e, 0, 0, 0, 0, 1, 0, 0, 0]);
  assert.equal(bytes(aml.integer((1n << 64n) - 1n)), [0x0e, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  for (const v of [0n, 1n, 0xabn, 0x1234n, 0xdead_beefn, 0x1234_5678_9abc_def0n]) {
    assert.is(new AmlReader(aml.integer(v)).integer(), v);
  }
  throwsFirmware(() => aml.integer(-1), 'bad-aml');
  throwsFirmware(() => aml.integer(1n << 64n), 'bad-aml');
  throwsFirmware(() => aml.integer(1.5), 'bad-aml');
});

test('NameSeg: padded with "_" to four characters; invalid names refused', () => {
  assert.equal(bytes(aml.nameSeg('A')), ascii('A___'));
  assert.equal(bytes(aml.nameSeg('_S5')), ascii('_S5_'));
  assert.equal(bytes(aml.nameSeg('PCI0')), ascii('PCI0'));
  for (const bad of ['', 'pci0', '0ABC', 'ABCDE', 'A.B', 'A-B']) throwsFirmware(() => aml.nameSeg(bad), 'bad-aml');
});

test('NameString: root and parent prefixes, dual and multi-segment paths, the bare root', () => {
  assert.equal(bytes(aml.nameString('_HID')), ascii('_HID'));
  assert.equal(bytes(aml.nameString('\\_S5')), [0x5c, ...ascii('_S5_')]);
  assert.equal(bytes(aml.nameString('\\_SB.PCI0')), [0x5c, 0x2e, ...ascii('_SB_PCI0')]);
  assert.equal(bytes(aml.nameString('\\_SB.PCI0._HID')), [0x5c, 0x2f, 3, ...ascii('_SB_PCI0_HID')]);
  assert.equal(bytes(aml.nameString('^^FOO')), [0x5e, 0x5e, ...ascii('FOO_')]);
  assert.equal(bytes(aml.nameString('\\')), [0x5c, 0x00]);
  throwsFirmware(() => aml.nameString(''), 'bad-aml');
  throwsFirmware(() => aml.nameString('\\_SB..PCI0'), 'bad-aml');
});

test('strings and EISA ids', () => {
  assert.equal(bytes(aml.string('QEMU0001')), [0x0d, ...ascii('QEMU0001'), 0x00]);
  assert.is(aml.eisaIdValue('PNP0A03'), 0x030a_d041);
  assert.is(aml.eisaIdValue('PNP0501'), 0x0105_d041);
  assert.equal(bytes(aml.eisaId('PNP0A03')), [0x0c, 0x41, 0xd0, 0x0a, 0x03]);
  throwsFirmware(() => aml.eisaIdValue('PNP0A0'), 'bad-aml');
  throwsFirmware(() => aml.eisaIdValue('pnp0a03'), 'bad-aml');
  throwsFirmware(() => aml.string('a\u00e9'), 'bad-aml');
});

test('Name, Package, Buffer, Method, Device and Scope encodings', () => {
  // What iasl emits for Name (\_S5, Package (0x04) {5, 5, 0, 0}).
  const s5 = aml.name('\\_S5', aml.packageOf([aml.integer(5), aml.integer(5), aml.integer(0), aml.integer(0)]));
  assert.equal(bytes(s5), [0x08, 0x5c, ...ascii('_S5_'), 0x12, 0x08, 0x04, 0x0a, 0x05, 0x0a, 0x05, 0x00, 0x00]);
  assert.equal(bytes(aml.buffer(Uint8Array.of(1, 2, 3))), [0x11, 0x06, 0x0a, 0x03, 1, 2, 3]);
  // Method (_STA, 0, NotSerialized) { Return (0x0F) }
  const sta = aml.method('_STA', {}, aml.returnValue(aml.integer(0x0f)));
  assert.equal(bytes(sta), [0x14, 0x09, ...ascii('_STA'), 0x00, 0xa4, 0x0a, 0x0f]);
  const flags = aml.method('M', { args: 2, serialized: true, syncLevel: 3 })[6];
  assert.is(flags, 0x02 | 0x08 | 0x30);
  throwsFirmware(() => aml.method('M', { args: 8 }), 'bad-aml');
  const dev = aml.device('COM1', aml.name('_UID', aml.integer(1)));
  assert.equal(bytes(dev), [0x5b, 0x82, 0x0b, ...ascii('COM1'), 0x08, ...ascii('_UID'), 0x01]);
  const sb = aml.scope('\\_SB', dev);
  assert.equal(bytes(sb.subarray(0, 7)), [0x10, 0x13, 0x5c, ...ascii('_SB_')]);
  const ns = decodeDsdt(aml.concat(s5, sb));
  assert.equal(ns.get('\\_S5_'), { kind: 'name', value: [5n, 5n, 0n, 0n] });
  assert.equal(ns.get('\\_SB_.COM1._UID'), { kind: 'name', value: 1n });
});

test('packages over 255 elements become VarPackage; large packages get multi-byte PkgLengths', () => {
  const big = aml.packageOf(Array.from({ length: 300 }, (_, i) => aml.integer(i)));
  assert.is(big[0], 0x13);
  const value = new AmlReader(big).dataObject() as bigint[];
  assert.is(value.length, 300);
  assert.is(value[299], 299n);
  const buf = aml.buffer(new Uint8Array(5000).fill(7));
  assert.is((new AmlReader(buf).dataObject() as Uint8Array).length, 5000);
});

test('resource descriptors: IO, IRQ, Memory32Fixed, Extended Interrupt, End Tag', () => {
  assert.equal(bytes(res.ioPort(0x3f8, 0x3f8, 1, 8)), [0x47, 0x01, 0xf8, 0x03, 0xf8, 0x03, 0x01, 0x08]);
  assert.equal(bytes(res.irq([4])), [0x22, 0x10, 0x00]);
  assert.equal(bytes(res.irq([3, 4], res.IRQ_ACTIVE_LOW | res.IRQ_SHARED)), [0x23, 0x18, 0x00, 0x18]);
  assert.equal(bytes(res.memory32Fixed(0xd000_0000, 0x1000)), [0x86, 0x09, 0x00, 0x01, 0x00, 0x00, 0x00, 0xd0, 0x00, 0x10, 0x00, 0x00]);
  assert.equal(bytes(res.extendedInterrupt(res.EXT_IRQ_CONSUMER | res.EXT_IRQ_EDGE, [5])), [0x89, 0x06, 0x00, 0x03, 0x01, 0x05, 0x00, 0x00, 0x00]);
  const template = res.resourceTemplate(res.ioFixedRange(0x505, 1));
  assert.equal(bytes(template), [0x11, 0x0d, 0x0a, 0x0a, 0x47, 0x01, 0x05, 0x05, 0x05, 0x05, 0x01, 0x01, 0x79, 0x00]);
  throwsFirmware(() => res.ioPort(0x10000, 0, 1, 1), 'bad-aml');
  throwsFirmware(() => res.irq([16]), 'bad-aml');
  throwsFirmware(() => res.memory32Fixed(0.5, 1), 'bad-aml');
  throwsFirmware(() => res.extendedInterrupt(0, []), 'bad-aml');
});

test('address space descriptors: Word bus numbers, DWord I/O, DWord and QWord memory', () => {
  const bus = res.busNumberWindow(0, 0xff);
  assert.equal(bytes(bus), [0x88, 0x0d, 0x00, 0x02, 0x0c, 0x00, 0, 0, 0, 0, 0xff, 0, 0, 0, 0x00, 0x01]);
  const [io, mem, high] = decodeResources(
    aml.concat(res.ioWindow(0xd00, 0xffff), res.memoryWindow(0xc000_0000, 0xcfff_ffff), res.memoryWindow(0x1_0000_0000n, 0x1_ffff_ffffn), Uint8Array.of(0x79, 0)),
  );
  assert.equal(io, { type: 'address', width: 32, resourceType: 1, flags: 0x0c, typeFlags: 3, granularity: 0n, min: 0xd00n, max: 0xffffn, translation: 0n, length: 0xf300n });
  assert.equal(mem, { type: 'address', width: 32, resourceType: 0, flags: 0x0c, typeFlags: 1, granularity: 0n, min: 0xc000_0000n, max: 0xcfff_ffffn, translation: 0n, length: 0x1000_0000n });
  assert.equal(high, { type: 'address', width: 64, resourceType: 0, flags: 0x0c, typeFlags: 1, granularity: 0n, min: 0x1_0000_0000n, max: 0x1_ffff_ffffn, translation: 0n, length: 0x1_0000_0000n });
  throwsFirmware(() => res.addressSpace(16, { type: 0, flags: 0, typeFlags: 0, min: 0, max: 0x10000 }), 'bad-aml');
  throwsFirmware(() => res.busNumberWindow(2, 1), 'bad-aml');
});

test('ByteWriter keeps every value across growth of its buffer', () => {
  const w = new ByteWriter();
  for (let i = 0; i < 200; i++) w.u8(i).u16(0x1000 + i).u32(0x2000_0000 + i).u64(BigInt(i) << 40n).bytes(Uint8Array.of(0xee)).zeros(1);
  const out = w.toBytes();
  assert.is(out.length, 200 * 17);
  const v = new DataView(out.buffer);
  for (let i = 0; i < 200; i++) {
    const at = i * 17;
    assert.is(v.getUint8(at), i);
    assert.is(v.getUint16(at + 1, true), 0x1000 + i);
    assert.is(v.getUint32(at + 3, true), 0x2000_0000 + i);
    assert.is(v.getBigUint64(at + 7, true), BigInt(i) << 40n);
    assert.equal([out[at + 15], out[at + 16]], [0xee, 0]);
  }
  const padded = new ByteWriter().u8(1).align(16).ascii('AB', 4).toBytes();
  assert.equal([...padded.subarray(15)], [0, 0x41, 0x42, 0x20, 0x20]);
});

test.run();
