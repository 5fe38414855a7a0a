import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bus, BusError, dataValue, setDataValue, type BusDevice } from '../../src/vmm/bus.js';

function recorder(): BusDevice & { writes: Array<[number, number]> } {
  const writes: Array<[number, number]> = [];
  return {
    writes,
    read(offset, data) {
      setDataValue(data, 0x100 + offset);
    },
    write(offset, data) {
      writes.push([offset, dataValue(data)]);
    },
  };
}

test('dispatches by range with offsets relative to the base', () => {
  const bus = new Bus('pio');
  const a = recorder();
  const b = recorder();
  bus.insert(0x3f8, 8, 'uart', a);
  bus.insert(0x70, 2, 'cmos', b);
  bus.write(0x3fd, Uint8Array.of(7));
  bus.write(0x71, Uint8Array.of(9));
  assert.equal(a.writes, [[5, 7]]);
  assert.equal(b.writes, [[1, 9]]);
  const data = new Uint8Array(2);
  bus.read(0x3ff, data);
  assert.is(dataValue(data), 0x107);
});

test('refuses overlapping and invalid ranges', () => {
  const bus = new Bus('mmio');
  bus.insert(0x1000, 0x100, 'a', recorder());
  assert.throws(() => bus.insert(0x10ff, 1, 'b', recorder()), (e: unknown) => e instanceof BusError && e.kind === 'overlap');
  assert.throws(() => bus.insert(0xf00, 0x101, 'c', recorder()), /overlaps a/);
  assert.throws(() => bus.insert(0x2000, 0, 'd', recorder()), (e: unknown) => e instanceof BusError && e.kind === 'bad-range');
  bus.insert(0x1100, 0x10, 'adjacent', recorder());
  assert.is(bus.find(0x1100)?.name, 'adjacent');
  assert.is(bus.find(0x10ff)?.name, 'a');
});

test('unclaimed reads are all-ones and reported once per address', () => {
  const seen: number[] = [];
  const bus = new Bus('pio', (address) => seen.push(address));
  const data = new Uint8Array(4);
  bus.read(0x500, data);
  bus.read(0x500, data);
  bus.write(0x501, data);
  assert.equal(Array.from(data), [0xff, 0xff, 0xff, 0xff]);
  assert.equal(seen, [0x500, 0x501]);
});

test('data values are little-endian', () => {
  const data = new Uint8Array(4);
  setDataValue(data, 0x12345678);
  assert.equal(Array.from(data), [0x78, 0x56, 0x34, 0x12]);
  assert.is(dataValue(data), 0x12345678);
});

test.run();
