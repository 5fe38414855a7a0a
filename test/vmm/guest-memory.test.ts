import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory, GuestMemoryError } from '../../src/vmm/guest-memory.js';
import { PCI_HOLE_END, PCI_HOLE_START, ramLayout } from '../../src/vmm/guest-ram.js';

const isRange = (e: unknown): boolean => e instanceof GuestMemoryError && e.kind === 'out-of-range';

test('reads and writes within regions, little-endian', () => {
  const mem = GuestMemory.fromLayout([[0, 0x1000], [0x10000, 0x1000]]);
  mem.writeU32(0x10, 0xdeadbeef);
  mem.writeU64(0x10008, 0x0102030405060708n);
  assert.is(mem.readU32(0x10), 0xdeadbeef);
  assert.is(mem.readU8(0x10), 0xef);
  assert.is(mem.readU64(0x10008), 0x0102030405060708n);
  assert.is(mem.size, 0x2000);
  assert.is(mem.end, 0x11000);
});

test('every access is checked as a whole range', () => {
  const mem = GuestMemory.fromLayout([[0, 0x1000], [0x1000 + 0x1000, 0x1000]]);
  assert.throws(() => mem.readU32(0xffe), isRange); // straddles the end of region 0
  assert.throws(() => mem.readU8(0x1000), isRange); // hole between regions
  assert.throws(() => mem.slice(0x2000, 0x1001), isRange);
  assert.throws(() => mem.slice(-1, 1), isRange);
  assert.throws(() => mem.slice(0, Number.MAX_SAFE_INTEGER + 2), isRange);
  assert.throws(() => mem.slice(0.5, 1), isRange);
  assert.not.ok(mem.contains(0xfff, 2));
  assert.ok(mem.contains(0x2000, 0x1000));
});

test('slices are live views, not copies', () => {
  const mem = GuestMemory.fromLayout([[0, 0x100]]);
  mem.slice(0x20, 4).set([1, 2, 3, 4]);
  assert.is(mem.readU32(0x20), 0x04030201);
});

test('guest-supplied 64-bit addresses are range-checked before conversion', () => {
  assert.is(GuestMemory.toAddress(0x1000n), 0x1000);
  assert.throws(() => GuestMemory.toAddress(1n << 60n), isRange);
  assert.throws(() => GuestMemory.toAddress(-1n), isRange);
});

test('overlapping regions are refused', () => {
  assert.throws(() => GuestMemory.fromLayout([[0, 0x2000], [0x1000, 0x1000]]), /overlap/);
});

test('RAM is split around the 32-bit PCI hole', () => {
  assert.equal(ramLayout(256 * 2 ** 20), [[0, 256 * 2 ** 20]]);
  assert.equal(ramLayout(PCI_HOLE_START), [[0, PCI_HOLE_START]]);
  assert.equal(ramLayout(4 * 2 ** 30), [[0, PCI_HOLE_START], [PCI_HOLE_END, 2 ** 30]]);
});

test('C strings stop at NUL, at the limit, or at the end of RAM', () => {
  const mem = GuestMemory.fromLayout([[0, 0x10]]);
  mem.write(0, new TextEncoder().encode('abc\0def'));
  assert.is(mem.readCString(0, 100), 'abc');
  assert.is(mem.readCString(4, 2), 'de');
  mem.write(0xc, new TextEncoder().encode('wxyz'));
  assert.is(mem.readCString(0xc, 100), 'wxyz');
});

test.run();
