import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { DescriptorChain } from '../../src/virtio/descriptor-chain.js';
import { QueueError } from '../../src/virtio/queue.js';
import { BUFFER_BASE, assertQueueError, pattern, setupQueue } from './queue-fixture.js';

const SENTINEL = 0xee;

/** A chain of readable pieces of 3, 0, 5, 4 bytes and writable pieces of 2, 6, 3 bytes, popped from a queue. */
function scatteredChain() {
  const fixture = setupQueue();
  const { memory, driver, queue } = fixture;
  memory.fill(BUFFER_BASE, 0x1000, SENTINEL);
  const readable = [3, 0, 5, 4];
  const writable = [2, 6, 3];
  let seed = 0;
  const buffers = [
    ...readable.map((length, i) => {
      const address = BUFFER_BASE + i * 0x40;
      memory.write(address, pattern(length, seed));
      seed += length;
      return { address, length, writable: false };
    }),
    ...writable.map((length, i) => ({ address: BUFFER_BASE + 0x400 + i * 0x40, length, writable: true })),
  ];
  driver.addChain(buffers, { indirect: true });
  const chain = queue.pop();
  assert.ok(chain);
  assert.is(chain.error, undefined);
  return { ...fixture, chain };
}

test('readReadable copies across segment boundaries', () => {
  const { memory, chain } = scatteredChain();
  assert.is(chain.readableLength, 12);
  assert.equal(chain.readReadable(memory, 0, 12), pattern(12));
  assert.equal(chain.readReadable(memory, 2, 9), pattern(9, 2));
  assert.equal(chain.readReadable(memory, 3, 5), pattern(5, 3), 'exactly the middle segment');
  assert.equal(chain.readReadable(memory, 12, 0), new Uint8Array(0));
  // A copy, not a view: later guest writes do not show.
  const copy = chain.readReadable(memory, 0, 3);
  memory.writeU8(BUFFER_BASE, 0x55);
  assert.equal(copy, pattern(3));
});

test('readReadable refuses to read past the readable part', () => {
  const { memory, chain } = scatteredChain();
  const error = assertQueueError(() => chain.readReadable(memory, 8, 5), 'short-chain', false);
  assert.match(error.message, /12/);
  assertQueueError(() => chain.readReadable(memory, 13, 0), 'short-chain', false);
  assert.throws(() => chain.readReadable(memory, -1, 2), RangeError);
});

test('writeWritable writes across segments and stops at the end', () => {
  const { memory, chain } = scatteredChain();
  assert.is(chain.writableLength, 11);
  assert.is(chain.writeWritable(memory, 1, pattern(7, 100)), 7);
  const piece = (i: number, length: number) => Array.from(memory.slice(BUFFER_BASE + 0x400 + i * 0x40, length));
  assert.equal(piece(0, 3), [SENTINEL, 100, SENTINEL]);
  assert.equal(piece(1, 7), [101, 102, 103, 104, 105, 106, SENTINEL]);
  assert.equal(piece(2, 4), [SENTINEL, SENTINEL, SENTINEL, SENTINEL]);
  // More than fits: stops at the end of the last segment and reports what was written.
  assert.is(chain.writeWritable(memory, 6, pattern(20, 200)), 5);
  assert.equal(piece(1, 7), [101, 102, 103, 104, 200, 201, SENTINEL]);
  assert.equal(piece(2, 4), [202, 203, 204, SENTINEL]);
  assert.is(chain.writeWritable(memory, 11, pattern(4)), 0);
  assert.is(chain.writeWritable(memory, 50, pattern(4)), 0);
  // Readable buffers are never written.
  assert.equal(chain.readReadable(memory, 0, 12), pattern(12));
});

test('views leave out empty segments and write through to guest memory', () => {
  const { memory, chain } = scatteredChain();
  assert.equal(chain.readableViews(memory).map((v) => v.length), [3, 5, 4]);
  const views = chain.writableViews(memory);
  assert.equal(views.map((v) => v.length), [2, 6, 3]);
  views[2]!.fill(0x42);
  assert.equal(Array.from(memory.slice(BUFFER_BASE + 0x480, 4)), [0x42, 0x42, 0x42, SENTINEL]);
  assert.equal(chain.readableSegments.length, 4);
  assert.equal(chain.writableSegments.length, 3);
});

test('fromSegments enforces readable-before-writable and the 2^32 - 1 total', () => {
  const ok = DescriptorChain.fromSegments(3, [
    { address: 0x1000, length: 4, writable: false },
    { address: 0x2000, length: 0xffff_fffb, writable: true },
  ]);
  assert.is(ok.error, undefined);
  assert.is(ok.writableLength, 0xffff_fffb);
  const overflow = DescriptorChain.fromSegments(3, [
    { address: 0x1000, length: 5, writable: false },
    { address: 0x2000, length: 0xffff_fffb, writable: true },
  ]);
  assert.is(overflow.error?.kind, 'length-overflow');
  const misordered = DescriptorChain.fromSegments(4, [
    { address: 0x1000, length: 4, writable: true },
    { address: 0x2000, length: 4, writable: false },
  ]);
  assert.is(misordered.error?.kind, 'readable-after-writable');
  assert.is(misordered.head, 4);
  assert.equal(misordered.segments, []);
});

test('a malformed chain has nothing to read or write', () => {
  const memory = GuestMemory.fromLayout([[0, 0x1000]]);
  memory.fill(0, 0x1000, SENTINEL);
  const chain = DescriptorChain.malformed(1, new QueueError('bad-next', 'test'));
  assert.equal(chain.readableViews(memory), []);
  assert.equal(chain.writableViews(memory), []);
  assertQueueError(() => chain.readReadable(memory, 0, 1), 'short-chain', false);
  assert.is(chain.writeWritable(memory, 0, pattern(16)), 0);
  assert.ok(memory.slice(0, 0x1000).every((b) => b === SENTINEL));
});

test.run();
