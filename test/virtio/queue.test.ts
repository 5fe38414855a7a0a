import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DescriptorChain } from '../../src/virtio/descriptor-chain.js';
import { MAX_INDIRECT_ENTRIES } from '../../src/virtio/queue-chain-walker.js';
import {
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_SIZE,
} from '../../src/virtio/virtio-constants.js';
import { BUFFER_BASE, assertQueueError, pattern, popMalformed, setupQueue } from './queue-fixture.js';

const NEXT = VIRTQ_DESC_F_NEXT;
const WRITE = VIRTQ_DESC_F_WRITE;
const INDIRECT = VIRTQ_DESC_F_INDIRECT;

test('a direct chain comes back split into readable then writable segments', () => {
  const fixture = setupQueue();
  const { memory, driver, queue } = fixture;
  memory.write(BUFFER_BASE, pattern(16, 1));
  memory.write(BUFFER_BASE + 0x100, pattern(8, 2));
  const head = driver.addChain([
    { address: BUFFER_BASE, length: 16, writable: false },
    { address: BUFFER_BASE + 0x100, length: 8, writable: false },
    { address: BUFFER_BASE + 0x200, length: 32, writable: true },
  ]);
  assert.is(queue.pendingCount, 1);
  const chain = queue.pop();
  assert.ok(chain);
  assert.is(chain.error, undefined);
  assert.is(chain.head, head);
  assert.equal(chain.segments, [
    { address: BUFFER_BASE, length: 16, writable: false },
    { address: BUFFER_BASE + 0x100, length: 8, writable: false },
    { address: BUFFER_BASE + 0x200, length: 32, writable: true },
  ]);
  assert.is(chain.readableLength, 24);
  assert.is(chain.writableLength, 32);
  assert.equal(chain.readableViews(memory), [pattern(16, 1), pattern(8, 2)]);
  // Writable views are live guest memory.
  const [out] = chain.writableViews(memory);
  out!.set(pattern(32, 7));
  assert.equal(memory.slice(BUFFER_BASE + 0x200, 32), pattern(32, 7));

  assert.is(queue.pendingCount, 0);
  assert.is(queue.pop(), undefined);
  queue.addUsed(chain.head, 32);
  assert.is(driver.usedIndex, 1);
  assert.equal(driver.takeUsed(), [{ id: head, len: 32 }]);
  assert.equal(queue.indexes, { nextAvail: 1, nextUsed: 1 });
});

test('chains come back in avail ring order', () => {
  const { driver, queue } = setupQueue();
  const heads = [0, 1, 2].map((i) => driver.addChain([{ address: BUFFER_BASE + i * 0x100, length: 4 + i, writable: i === 1 }]));
  assert.is(driver.availIndex, 3);
  assert.is(queue.pendingCount, 3);
  const popped = [queue.pop(), queue.pop(), queue.pop()];
  assert.equal(popped.map((c) => c?.head), heads);
  assert.equal(popped.map((c) => c?.segments[0]?.length), [4, 5, 6]);
  assert.equal(popped.map((c) => c?.writableLength), [0, 5, 0]);
  assert.is(queue.pop(), undefined);
  for (const chain of popped.reverse()) queue.addUsed(chain!.head, chain!.writableLength);
  assert.equal(driver.takeUsed(), [{ id: heads[2], len: 0 }, { id: heads[1], len: 5 }, { id: heads[0], len: 0 }]);
});

test('an indirect chain is expanded in order', () => {
  const { memory, driver, queue } = setupQueue();
  const head = driver.addChain(
    [
      { address: BUFFER_BASE, length: 12, writable: false },
      { address: BUFFER_BASE + 0x1000, length: 100, writable: true },
      { address: BUFFER_BASE + 0x2000, length: 1, writable: true },
    ],
    { indirect: true, tableAddress: 0x40000 },
  );
  const ringDescriptor = driver.readDescriptor(head);
  assert.equal(ringDescriptor, { address: 0x40000n, length: 3 * VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
  assert.is(memory.readU64(0x40000 + VIRTQ_DESC_SIZE), BigInt(BUFFER_BASE + 0x1000));
  const chain = queue.pop();
  assert.ok(chain);
  assert.is(chain.error, undefined);
  assert.is(chain.head, head);
  assert.equal(chain.segments, [
    { address: BUFFER_BASE, length: 12, writable: false },
    { address: BUFFER_BASE + 0x1000, length: 100, writable: true },
    { address: BUFFER_BASE + 0x2000, length: 1, writable: true },
  ]);
  queue.addUsed(chain.head, 101);
  assert.equal(driver.takeUsed(), [{ id: head, len: 101 }]);
});

test('direct descriptors may precede one final indirect descriptor (2.7.5.3.2)', () => {
  const { driver, queue } = setupQueue();
  driver.writeDescriptorTable(0x40000, [
    { address: BUFFER_BASE + 0x100, length: 8, flags: NEXT, next: 1 },
    { address: BUFFER_BASE + 0x200, length: 16, flags: WRITE, next: 0 },
  ]);
  driver.writeDescriptor(5, { address: BUFFER_BASE, length: 4, flags: NEXT, next: 2 });
  // WRITE on the descriptor that points at the table must be ignored.
  driver.writeDescriptor(2, { address: 0x40000, length: 2 * VIRTQ_DESC_SIZE, flags: INDIRECT | WRITE, next: 7 });
  driver.offer(5);
  const chain = queue.pop();
  assert.ok(chain);
  assert.is(chain.error, undefined);
  assert.is(chain.head, 5);
  assert.equal(chain.segments, [
    { address: BUFFER_BASE, length: 4, writable: false },
    { address: BUFFER_BASE + 0x100, length: 8, writable: false },
    { address: BUFFER_BASE + 0x200, length: 16, writable: true },
  ]);
  queue.addUsed(5, 16);
  assert.equal(driver.takeUsed(), [{ id: 5, len: 16 }]);
});

test('an indirect descriptor inside an indirect table is refused', () => {
  const fixture = setupQueue();
  const { driver } = fixture;
  driver.writeDescriptorTable(0x41000, [{ address: BUFFER_BASE, length: 8, flags: 0, next: 0 }]);
  driver.writeDescriptorTable(0x40000, [
    { address: BUFFER_BASE, length: 8, flags: NEXT, next: 1 },
    { address: 0x41000, length: VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 },
  ]);
  driver.writeDescriptor(0, { address: 0x40000, length: 2 * VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
  driver.offer(0);
  popMalformed(fixture, 'nested-indirect');
});

test('INDIRECT is refused when VIRTIO_F_RING_INDIRECT_DESC was not negotiated', () => {
  const fixture = setupQueue({ indirect: false });
  fixture.driver.addChain([{ address: BUFFER_BASE, length: 8, writable: false }], { indirect: true });
  popMalformed(fixture, 'indirect-not-negotiated');
  // The queue carries on with the next chain.
  const head = fixture.driver.addChain([{ address: BUFFER_BASE, length: 8, writable: false }]);
  assert.is(fixture.queue.pop()?.head, head);
});

test('INDIRECT together with NEXT is refused', () => {
  const fixture = setupQueue();
  fixture.driver.writeDescriptorTable(0x40000, [{ address: BUFFER_BASE, length: 8, flags: 0, next: 0 }]);
  fixture.driver.writeDescriptor(0, { address: 0x40000, length: VIRTQ_DESC_SIZE, flags: INDIRECT | NEXT, next: 1 });
  fixture.driver.writeDescriptor(1, { address: BUFFER_BASE, length: 8, flags: 0, next: 0 });
  fixture.driver.offer(0);
  popMalformed(fixture, 'indirect-with-next');
});

test('an indirect table length must be a non-zero multiple of 16 up to the entry limit', () => {
  const fixture = setupQueue();
  const { driver } = fixture;
  for (const length of [0, 8, 24, 17, (MAX_INDIRECT_ENTRIES + 1) * VIRTQ_DESC_SIZE, 0xffff_fff0]) {
    driver.writeDescriptor(0, { address: 0x40000, length, flags: INDIRECT, next: 0 });
    driver.offer(0);
    popMalformed(fixture, 'bad-indirect-length');
  }
});

test('an indirect table outside RAM is refused', () => {
  const fixture = setupQueue({ ram: [[0, 0x100000], [0x200000, 0x1000]] });
  const { driver } = fixture;
  for (const address of [0x100000n, 0x100000n - 0x10n, 0x200ff0n, 0xffff_ffff_ffff_fff0n, 1n << 53n]) {
    driver.writeDescriptor(0, { address, length: 2 * VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
    driver.offer(0);
    popMalformed(fixture, 'indirect-out-of-range');
  }
  // The last 16 bytes of the second region hold a valid one-entry table.
  driver.writeDescriptorTable(0x200ff0, [{ address: BUFFER_BASE, length: 3, flags: 0, next: 0 }]);
  driver.writeDescriptor(0, { address: 0x200ff0, length: VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
  driver.offer(0);
  assert.equal(fixture.queue.pop()?.segments, [{ address: BUFFER_BASE, length: 3, writable: false }]);
});

test('an indirect table of the largest allowed size works', () => {
  const fixture = setupQueue({ ram: [[0, 0x200000]] });
  const entries = MAX_INDIRECT_ENTRIES;
  const table = 0x100000;
  for (let i = 0; i < entries; i++) {
    const last = i === entries - 1;
    fixture.driver.writeDescriptor(i, { address: BUFFER_BASE + (i % 16), length: 1, flags: last ? 0 : NEXT, next: last ? 0 : i + 1 }, table);
  }
  fixture.driver.writeDescriptor(3, { address: table, length: entries * VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
  fixture.driver.offer(3);
  const chain = fixture.queue.pop();
  assert.is(chain?.error, undefined);
  assert.is(chain?.segments.length, entries);
  assert.is(chain?.readableLength, entries);
});

test('a loop in a direct chain ends with an error', () => {
  const fixture = setupQueue();
  const { driver } = fixture;
  driver.writeDescriptor(0, { address: BUFFER_BASE, length: 8, flags: NEXT, next: 1 });
  driver.writeDescriptor(1, { address: BUFFER_BASE, length: 8, flags: NEXT, next: 0 });
  driver.writeDescriptor(2, { address: BUFFER_BASE, length: 8, flags: NEXT | WRITE, next: 2 }); // points at itself
  driver.offer(0);
  driver.offer(1);
  driver.offer(2);
  popMalformed(fixture, 'chain-too-long');
  popMalformed(fixture, 'chain-too-long');
  popMalformed(fixture, 'chain-too-long');
  assert.equal(fixture.driver.takeUsed(), [{ id: 0, len: 0 }, { id: 1, len: 0 }, { id: 2, len: 0 }]);
});

test('a loop inside an indirect table ends with an error', () => {
  const fixture = setupQueue();
  fixture.driver.writeDescriptorTable(0x40000, [
    { address: BUFFER_BASE, length: 8, flags: NEXT, next: 1 },
    { address: BUFFER_BASE, length: 8, flags: NEXT, next: 2 },
    { address: BUFFER_BASE, length: 8, flags: NEXT, next: 3 },
    { address: BUFFER_BASE, length: 8, flags: NEXT, next: 1 },
  ]);
  fixture.driver.writeDescriptor(0, { address: 0x40000, length: 4 * VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
  fixture.driver.offer(0);
  popMalformed(fixture, 'chain-too-long');
});

test('a next index beyond the table is refused, direct or indirect', () => {
  const fixture = setupQueue({ size: 8 });
  const { driver } = fixture;
  driver.writeDescriptor(0, { address: BUFFER_BASE, length: 8, flags: NEXT, next: 8 });
  driver.offer(0);
  popMalformed(fixture, 'bad-next');
  driver.writeDescriptor(1, { address: BUFFER_BASE, length: 8, flags: NEXT, next: 0xffff });
  driver.offer(1);
  popMalformed(fixture, 'bad-next');
  // Index 3 is fine for the 8-entry queue but not for a 3-entry indirect table.
  driver.writeDescriptorTable(0x40000, [
    { address: BUFFER_BASE, length: 8, flags: NEXT, next: 1 },
    { address: BUFFER_BASE, length: 8, flags: NEXT, next: 3 },
    { address: BUFFER_BASE, length: 8, flags: 0, next: 0 },
  ]);
  driver.writeDescriptor(2, { address: 0x40000, length: 3 * VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
  driver.offer(2);
  popMalformed(fixture, 'bad-next');
});

test('a buffer outside RAM or straddling a region boundary is refused', () => {
  const fixture = setupQueue({ ram: [[0, 0x100000], [0x100000, 0x10000], [0x200000, 0x1000]] });
  const { driver } = fixture;
  const cases: Array<[bigint, number]> = [
    [0x110000n, 1], // just past the second region
    [0x100000n - 4n, 8], // straddles two contiguous regions
    [0x200000n + 0xffcn, 5], // runs off the end of RAM
    [0x1f0000n, 0x20000], // starts in a hole
    [1n << 53n, 1], // not a safe integer
    [0xffff_ffff_ffff_ffffn, 16],
  ];
  for (const [address, length] of cases) {
    driver.writeDescriptor(0, { address: BUFFER_BASE, length: 4, flags: NEXT, next: 1 });
    driver.writeDescriptor(1, { address, length, flags: WRITE, next: 0 });
    driver.offer(0);
    popMalformed(fixture, 'buffer-out-of-range');
  }
  // The very last bytes of RAM are fine.
  driver.addChain([{ address: 0x200000 + 0xffc, length: 4, writable: true }]);
  assert.equal(fixture.queue.pop()?.segments, [{ address: 0x200ffc, length: 4, writable: true }]);
});

test('zero-length descriptors are allowed anywhere a valid address is', () => {
  const fixture = setupQueue();
  const { memory, driver, queue } = fixture;
  memory.write(BUFFER_BASE, pattern(4, 9));
  const head = driver.addChain([
    { address: 0xdead_0000_0000, length: 0, writable: false }, // not RAM, but never touched
    { address: BUFFER_BASE, length: 4, writable: false },
    { address: BUFFER_BASE + 0x100, length: 0, writable: true },
  ]);
  const chain = queue.pop();
  assert.ok(chain);
  assert.is(chain.error, undefined);
  assert.is(chain.head, head);
  assert.equal(chain.segments.map((s) => s.length), [0, 4, 0]);
  assert.equal(chain.readableViews(memory), [pattern(4, 9)]);
  assert.equal(chain.writableViews(memory), []);
  assert.is(chain.writeWritable(memory, 0, pattern(4)), 0);
  queue.addUsed(head, 0);
  assert.equal(driver.takeUsed(), [{ id: head, len: 0 }]);
  // A zero-length buffer still needs an address that is a number at all.
  driver.writeDescriptor(0, { address: 1n << 60n, length: 0, flags: 0, next: 0 });
  driver.offer(0);
  popMalformed(fixture, 'buffer-out-of-range');
});

test('an avail.idx more than size ahead is fatal', () => {
  const { driver, queue } = setupQueue({ size: 8 });
  for (let i = 0; i < 8; i++) driver.addChain([{ address: BUFFER_BASE, length: 1, writable: false }]);
  assert.is(queue.pendingCount, 8, 'a full ring is fine');
  driver.publishAvailIndex(9);
  assertQueueError(() => queue.pendingCount, 'avail-overrun', true);
  assertQueueError(() => queue.pop(), 'avail-overrun', true);
  assert.is(queue.nextAvailIndex, 0);
  // A driver moving avail.idx backwards looks like a 65535-entry overrun.
  driver.publishAvailIndex(0xffff);
  assertQueueError(() => queue.pop(), 'avail-overrun', true);
  assert.is(driver.usedIndex, 0, 'nothing was completed');
});

test('avail.idx moved back after a partial pop: the entries seen before are popped (checked), then the overrun is fatal', () => {
  const { driver, queue } = setupQueue({ size: 8 });
  for (let i = 0; i < 4; i++) driver.addChain([{ address: BUFFER_BASE + i * 64, length: 64, writable: true }]);
  const first = queue.pop();
  assert.ok(first && !first.error);
  driver.publishAvailIndex(1); // retracts entries 1-3, which a driver never does (2.7.6)
  for (let i = 1; i < 4; i++) {
    const chain = queue.pop();
    assert.ok(chain && !chain.error, `entry ${i} was published when avail.idx was read`);
    assert.is(chain.writableLength, 64);
  }
  assertQueueError(() => queue.pop(), 'avail-overrun', true);
  assertQueueError(() => queue.pop(), 'avail-overrun', true);
});

test('the avail index wraps at 2^16', () => {
  const { driver, queue } = setupQueue({ size: 8 });
  driver.resetIndexes(0xfffe);
  queue.restoreIndexes({ nextAvail: 0xfffe, nextUsed: 0xfffe });
  const heads = [0, 1, 2, 3].map(() => driver.addChain([{ address: BUFFER_BASE, length: 2, writable: true }]));
  assert.is(driver.availIndex, 2);
  assert.is(queue.pendingCount, 4);
  for (const head of heads) {
    const chain = queue.pop();
    assert.is(chain?.head, head);
    queue.addUsed(chain!.head, 2);
  }
  assert.is(queue.pop(), undefined);
  assert.equal(queue.indexes, { nextAvail: 2, nextUsed: 2 });
  assert.is(driver.usedIndex, 2);
  assert.equal(driver.takeUsed(), heads.map((id) => ({ id, len: 2 })));
  // 2 + 8 entries ahead, modulo 2^16, is still fine; 9 is not.
  driver.publishAvailIndex(10);
  assert.is(queue.pendingCount, 8);
  driver.publishAvailIndex(11);
  assertQueueError(() => queue.pendingCount, 'avail-overrun', true);
});

test('a head index ≥ size is fatal', () => {
  const { driver, queue } = setupQueue({ size: 8 });
  driver.writeAvailEntry(0, 8);
  driver.publishAvailIndex(1);
  const error = assertQueueError(() => queue.pop(), 'bad-head', true);
  assert.match(error.message, /head 8/);
  assert.is(queue.nextAvailIndex, 0);
  driver.writeAvailEntry(0, 0xffff);
  assertQueueError(() => queue.pop(), 'bad-head', true);
  assert.is(driver.usedIndex, 0);
});

test('a chain of exactly size descriptors works; one more can only be a loop', () => {
  const size = 16;
  const fixture = setupQueue({ size });
  const { driver, queue } = fixture;
  const buffers = Array.from({ length: size }, (_, i) => ({ address: BUFFER_BASE + i * 0x10, length: 0x10, writable: i >= 12 }));
  const head = driver.addChain(buffers);
  const chain = queue.pop();
  assert.is(chain?.error, undefined);
  assert.is(chain?.segments.length, size);
  assert.is(chain?.readableLength, 12 * 0x10);
  assert.is(chain?.writableLength, 4 * 0x10);
  queue.addUsed(head, 0x40);
  assert.equal(driver.takeUsed(), [{ id: head, len: 0x40 }]);
  // Every entry in use: the last one can only point back into the chain.
  driver.writeDescriptor(15, { address: BUFFER_BASE, length: 1, flags: WRITE | NEXT, next: 15 });
  driver.offer(0);
  popMalformed(fixture, 'chain-too-long');
});

test('a chain adding up to more than 2^32 - 1 bytes is refused', () => {
  const MiB = 0x100000;
  const fixture = setupQueue({ ram: [[0, 2 * MiB]] });
  const { driver, queue } = fixture;
  // 4096 overlapping 1 MiB buffers: 4095 MiB + (1 MiB - 1) is exactly 2^32 - 1 …
  const table = 0x20000;
  const entries = 4096;
  const writeTable = (lastLength: number): void => {
    for (let i = 0; i < entries; i++) {
      const last = i === entries - 1;
      driver.writeDescriptor(i, { address: MiB, length: last ? lastLength : MiB, flags: WRITE | (last ? 0 : NEXT), next: last ? 0 : i + 1 }, table);
    }
    driver.writeDescriptor(0, { address: table, length: entries * VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
    driver.offer(0);
  };
  writeTable(MiB - 1);
  const chain = queue.pop();
  assert.is(chain?.error, undefined);
  assert.is(chain?.writableLength, 0xffff_ffff);
  queue.addUsed(0, 0xffff_ffff);
  assert.equal(driver.takeUsed(), [{ id: 0, len: 0xffff_ffff }]);
  // … and one byte more is 2^32.
  writeTable(MiB);
  popMalformed(fixture, 'length-overflow');
});

test('a readable buffer after a writable one is refused', () => {
  const fixture = setupQueue();
  const { driver } = fixture;
  driver.addChain([
    { address: BUFFER_BASE, length: 4, writable: false },
    { address: BUFFER_BASE + 0x10, length: 4, writable: true },
    { address: BUFFER_BASE + 0x20, length: 4, writable: false },
  ]);
  popMalformed(fixture, 'readable-after-writable');
  // Also across a direct descriptor and the indirect table that follows it.
  driver.writeDescriptorTable(0x40000, [{ address: BUFFER_BASE, length: 4, flags: 0, next: 0 }]);
  driver.writeDescriptor(6, { address: BUFFER_BASE, length: 4, flags: WRITE | NEXT, next: 7 });
  driver.writeDescriptor(7, { address: 0x40000, length: VIRTQ_DESC_SIZE, flags: INDIRECT, next: 0 });
  driver.offer(6);
  popMalformed(fixture, 'readable-after-writable');
  assert.is(driver.usedIndex, 2);
});

test('a malformed chain does not stop the queue', () => {
  const fixture = setupQueue();
  const { driver, queue } = fixture;
  const [looping] = driver.allocateDescriptors(1);
  driver.writeDescriptor(looping!, { address: BUFFER_BASE, length: 8, flags: NEXT, next: looping! });
  driver.offer(looping!);
  const good = driver.addChain([{ address: BUFFER_BASE, length: 8, writable: true }]);
  assert.is.not(good, looping);
  assert.is(queue.pendingCount, 2);
  popMalformed(fixture, 'chain-too-long');
  const chain = queue.pop();
  assert.is(chain?.error, undefined);
  queue.addUsed(chain!.head, 8);
  assert.equal(driver.takeUsed(), [{ id: looping, len: 0 }, { id: good, len: 8 }]);
});

test('the chain keeps the values it validated even if the guest rewrites the descriptors', () => {
  const { driver, queue } = setupQueue();
  const head = driver.addChain([{ address: BUFFER_BASE, length: 8, writable: true }]);
  const chain = queue.pop();
  driver.writeDescriptor(head, { address: 0xffff_ffff_0000n, length: 0xffff_ffff, flags: WRITE, next: 0 });
  assert.equal(chain?.segments, [{ address: BUFFER_BASE, length: 8, writable: true }]);
  assert.is(driver.readDescriptor(head).length, 0xffff_ffff);
});


test('popInto refills one chain object: the same segments as pop, nothing left over from the previous chain', () => {
  const { driver, queue } = setupQueue({ indirect: true });
  const chain = new DescriptorChain();
  assert.is(queue.popInto(chain), false, 'nothing posted');
  const long = Array.from({ length: 40 }, (_, i) => ({ address: BUFFER_BASE + i * 0x100, length: 0x10 + i, writable: i >= 30 }));
  driver.addChain(long, { indirect: true });
  assert.ok(queue.popInto(chain));
  assert.is(chain.segmentCount, 40, 'the arrays grew past their first capacity');
  assert.is(chain.readableCount, 30);
  assert.equal(chain.segments, long);
  const head = driver.addChain([{ address: BUFFER_BASE, length: 8, writable: true }]);
  assert.ok(queue.popInto(chain));
  assert.is(chain.head, head);
  assert.equal(chain.segments, [{ address: BUFFER_BASE, length: 8, writable: true }]);
  assert.is(chain.readableLength, 0);
  assert.is(chain.writableLength, 8);
  assert.is(chain.hostAt(0), -1, 'memory over ArrayBuffers has no host addresses');
  const loop = driver.allocateDescriptors(1)[0]!;
  driver.writeDescriptor(loop, { address: BUFFER_BASE, length: 4, flags: NEXT, next: loop });
  driver.offer(loop);
  assert.ok(queue.popInto(chain));
  assert.is(chain.error?.kind, 'chain-too-long');
  assert.is(chain.segmentCount, 0, 'a malformed chain keeps no segment of the walk');
  assert.is(chain.readableLength + chain.writableLength, 0);
});

test.run();
