import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { SplitQueue, type QueueLayout, type QueueOptions } from '../../src/virtio/queue.js';
import { MockSplitQueueDriver } from './mock-driver.js';
import { assertQueueError } from './queue-fixture.js';

const plain: QueueOptions = { eventIdx: false, indirect: false };
const withEventIdx: QueueOptions = { eventIdx: true, indirect: false };

function ram(size = 0x10000): GuestMemory {
  return GuestMemory.fromLayout([[0, size]]);
}

/** Constructing must fail with 'bad-layout' and leave guest memory untouched. */
function assertBadLayout(memory: GuestMemory, layout: QueueLayout, options: QueueOptions = plain): void {
  const before = memory.regionList.map((r) => Uint8Array.from(r.bytes));
  const error = assertQueueError(() => new SplitQueue(memory, layout, options), 'bad-layout', true);
  assert.ok(error.message.length > 0);
  memory.regionList.forEach((r, i) => assert.equal(r.bytes, before[i]));
}

test('a packed layout is accepted and an all-zero ring has nothing pending', () => {
  const memory = ram();
  const layout = MockSplitQueueDriver.packedLayout(0x1000, 256);
  assert.equal(layout, { size: 256, descTable: 0x1000, availRing: 0x2000, usedRing: 0x2208 }); // 0x2000 + 4 + 2*256 + 2, rounded up to 4
  const queue = new SplitQueue(memory, layout, withEventIdx);
  assert.is(queue.size, 256);
  assert.is(queue.pendingCount, 0);
  assert.is(queue.pop(), undefined);
  assert.equal(queue.indexes, { nextAvail: 0, nextUsed: 0 });
  assert.is(memory.readU16(layout.usedRing + 2), 0, 'used.idx untouched');
});

test('queue size must be a power of 2 in 1..32768', () => {
  const memory = ram(0x200000);
  for (const size of [0, 3, 6, 100, 32769, 65536, -1, 1.5, Number.NaN]) {
    assertBadLayout(memory, { size, descTable: 0x1000, availRing: 0x100000, usedRing: 0x120000 });
  }
  for (const size of [1, 2, 1024, 32768]) {
    const queue = new SplitQueue(memory, { size, descTable: 0x1000, availRing: 0x100000, usedRing: 0x120000 }, withEventIdx);
    assert.is(queue.size, size);
  }
  // A 32768-entry ring at its real sizes: 512 KiB of descriptors, then both rings.
  const big = MockSplitQueueDriver.packedLayout(0x10000, 32768);
  assert.is(new SplitQueue(memory, big, withEventIdx).size, 32768);
});

test('each ring must be aligned: descriptors 16, avail 2, used 4', () => {
  const memory = ram();
  const good = { size: 8, descTable: 0x1000, availRing: 0x2000, usedRing: 0x3000 };
  new SplitQueue(memory, good, plain);
  assertBadLayout(memory, { ...good, descTable: 0x1008 });
  assertBadLayout(memory, { ...good, descTable: 0x1001 });
  assertBadLayout(memory, { ...good, availRing: 0x2001 });
  assertBadLayout(memory, { ...good, usedRing: 0x3002 });
  // The smallest legal alignments are fine.
  new SplitQueue(memory, { size: 8, descTable: 0x1010, availRing: 0x2002, usedRing: 0x3004 }, plain);
});

test('each whole ring must be inside guest RAM', () => {
  const memory = ram(0x10000);
  const good = { size: 8, descTable: 0x1000, availRing: 0x2000, usedRing: 0x3000 };
  assertBadLayout(memory, { ...good, descTable: 0x10000 });
  assertBadLayout(memory, { ...good, descTable: 0x10000 - 0x70 }, plain); // 0x80 bytes do not fit
  assertBadLayout(memory, { ...good, availRing: 0x10000 - 4 });
  assertBadLayout(memory, { ...good, usedRing: 0x10000 - 0x40 }); // 4 + 8*8 = 0x44 bytes
  assertBadLayout(memory, { ...good, usedRing: -4 });
  assertBadLayout(memory, { ...good, usedRing: 2 ** 60 });
  assertBadLayout(memory, { ...good, availRing: Number.NaN });
  // The used ring exactly reaching the end of RAM is fine.
  new SplitQueue(memory, { ...good, usedRing: 0x10000 - 0x44 }, plain);
});

test('with EVENT_IDX the used_event and avail_event words must fit too', () => {
  const memory = ram(0x10000);
  const layout = { size: 8, descTable: 0x1000, availRing: 0x10000 - 0x14, usedRing: 0x3000 }; // avail = 4 + 2*8
  new SplitQueue(memory, layout, plain);
  assertBadLayout(memory, layout, withEventIdx);
  const usedAtEnd = { size: 8, descTable: 0x1000, availRing: 0x2000, usedRing: 0x10000 - 0x44 };
  new SplitQueue(memory, usedAtEnd, plain);
  assertBadLayout(memory, usedAtEnd, withEventIdx);
});

test('a ring straddling two RAM regions is refused', () => {
  const memory = GuestMemory.fromLayout([[0, 0x10000], [0x10000, 0x10000]]);
  // Contiguous regions, but a ring must lie in one of them to be one slice of host memory.
  assertBadLayout(memory, { size: 8, descTable: 0x10000 - 0x40, availRing: 0x2000, usedRing: 0x3000 });
  new SplitQueue(memory, { size: 8, descTable: 0x10000, availRing: 0x2000, usedRing: 0x3000 }, plain);
});

test('rings must not overlap each other', () => {
  const memory = ram();
  assertBadLayout(memory, { size: 8, descTable: 0x1000, availRing: 0x1070, usedRing: 0x3000 }); // desc is 0x80 bytes
  assertBadLayout(memory, { size: 8, descTable: 0x1000, availRing: 0x2000, usedRing: 0x1000 });
  assertBadLayout(memory, { size: 8, descTable: 0x1000, availRing: 0x2000, usedRing: 0x2000 });
  assertBadLayout(memory, { size: 8, descTable: 0x3000, availRing: 0x2000, usedRing: 0x2fe0 });
  // Adjacent is fine: avail ends at 0x2014 without EVENT_IDX …
  const adjacent = { size: 8, descTable: 0x1000, availRing: 0x2000, usedRing: 0x2014 };
  new SplitQueue(memory, adjacent, plain);
  // … but its used_event word would overlap the used ring with EVENT_IDX.
  assertBadLayout(memory, adjacent, withEventIdx);
});

test.run();
