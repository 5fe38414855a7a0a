/**
 * IovecArray.copyJoined: what the receive path hands the kernel for one read window. Entries
 * that continue the previous one in memory become one; everything else stays as it was.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { IovecArray } from '../../../../src/virtio/devices/net/host-buffer.js';
import { IOVEC_SIZE } from '../../../../src/sys/iovec.js';
import { view } from '../../../../src/sys/memory.js';

const TWO_32 = 2 ** 32;

function entries(array: IovecArray, from: number, count: number): Array<[number, number]> {
  const words = new Uint32Array(view(array.addressOf(from), count * IOVEC_SIZE));
  const out: Array<[number, number]> = [];
  for (let i = 0; i < count; i++) out.push([words[4 * i]! + words[4 * i + 1]! * TWO_32, words[4 * i + 2]! + words[4 * i + 3]! * TWO_32]);
  return out;
}

function filled(list: Array<[number, number]>): IovecArray {
  const array = new IovecArray(list.length + 4);
  list.forEach(([base, length], i) => array.set(i, base, length));
  return array;
}

test('set stores 64-bit host addresses: user-space addresses up to 2^47 and across 2^32', () => {
  const bases = [0, 0x1000, TWO_32 - 1, TWO_32, TWO_32 + 0x1234, 0x7fff_f7ff_f000, 2 ** 47 - 4096];
  const array = filled(bases.map((base) => [base, 64]));
  assert.equal(entries(array, 0, bases.length), bases.map((base) => [base, 64]));
});

test('adjacent entries are joined, gaps and backward steps are kept', () => {
  const source = filled([
    [0x10000, 4096],
    [0x11000, 4096],
    [0x12000, 100],
    [0x20000, 4096],
    [0x1f000, 4096],
    [0x20000, 8],
  ]);
  const target = new IovecArray(16);
  const written = target.copyJoined(source, 0, 3, 6);
  assert.is(written, 3);
  assert.equal(entries(target, 3, 3), [
    [0x10000, 8292],
    [0x20000, 4096],
    [0x1f000, 4104],
  ]);
  source.free();
  target.free();
});

test('a run crossing a 4 GiB boundary of the address is joined; a subrange copies only its entries', () => {
  const source = filled([
    [TWO_32 - 4096, 4096],
    [TWO_32, 4096],
    [TWO_32 + 8192, 16],
  ]);
  const target = new IovecArray(8);
  assert.is(target.copyJoined(source, 0, 0, 3), 2);
  assert.equal(entries(target, 0, 2), [
    [TWO_32 - 4096, 8192],
    [TWO_32 + 8192, 16],
  ]);
  assert.is(target.copyJoined(source, 1, 5, 1), 1);
  assert.equal(entries(target, 5, 1), [[TWO_32, 4096]]);
  source.free();
  target.free();
});

test.run();
