import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { DescriptorChain } from '../../src/virtio/descriptor-chain.js';
import { QueueError } from '../../src/virtio/queue.js';
import { walkChain } from '../../src/virtio/queue-chain-walker.js';
import { VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE } from '../../src/virtio/virtio-constants.js';
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

test('the walk finds each buffer in its own region, moving between regions and back', () => {
  const region1 = 0x10_0000;
  const hostOf = [0x10_0000_0000, 0x20_0000_0000];
  const memory = new GuestMemory([
    { guestBase: 0, bytes: new Uint8Array(0x1_0000), hostAddress: hostOf[0]! },
    { guestBase: region1, bytes: new Uint8Array(0x1_0000), hostAddress: hostOf[1]! },
  ]);
  const table = 0x1000;
  const put = (i: number, address: number, length: number, flags: number, next: number): void => {
    memory.writeU64(table + i * 16, BigInt(address));
    memory.writeU32(table + i * 16 + 8, length);
    memory.writeU16(table + i * 16 + 12, flags);
    memory.writeU16(table + i * 16 + 14, next);
  };
  put(0, 0x2000, 16, VIRTQ_DESC_F_NEXT, 1);
  put(1, region1 + 0x100, 32, VIRTQ_DESC_F_NEXT, 2);
  put(2, 0x3000, 8, VIRTQ_DESC_F_NEXT | VIRTQ_DESC_F_WRITE, 3);
  put(3, region1 + 0x200, 4, VIRTQ_DESC_F_WRITE, 0);
  const bytes = memory.slice(table, 8 * 16);
  const source = { memory, descTable: new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength), queueSize: 8, indirect: false };
  const chain = walkChain(source, 0);
  assert.is(chain.error, undefined);
  assert.equal(
    [0, 1, 2, 3].map((i) => chain.hostAt(i)),
    [hostOf[0]! + 0x2000, hostOf[1]! + 0x100, hostOf[0]! + 0x3000, hostOf[1]! + 0x200],
  );
  // A buffer that starts in the region just used but runs past its end is not RAM.
  put(3, region1 + 0xfff0, 0x20, VIRTQ_DESC_F_WRITE, 0);
  const straddling = walkChain(source, 0);
  assert.instance(straddling.error, QueueError);
  assert.is(straddling.error!.kind, 'buffer-out-of-range');
  assert.is(straddling.segmentCount, 0);
});

test.run();
