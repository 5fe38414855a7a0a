// SplitQueue.popWritableBuffer: the single-writable-descriptor fast path gives what a full walk
// would, and every other chain goes through the full walk with all of its checks.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { memoryFromRegions } from '../../src/vmm/guest-ram.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap } from '../../src/sys/memory.js';
import { DescriptorChain } from '../../src/virtio/descriptor-chain.js';
import { POP_BUFFER, POP_CHAIN, POP_NONE, SplitQueue } from '../../src/virtio/queue.js';
import { MockSplitQueueDriver } from './mock-driver.js';
import { assertQueueError } from './queue-fixture.js';

const RAM = 1 << 20;
const BUFFERS = 0x80000;

function setup(): { driver: MockSplitQueueDriver; queue: SplitQueue; host: number; done: () => void } {
  const host = mmap(RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  const memory = memoryFromRegions([{ guestBase: 0, size: RAM, hostAddress: host }]);
  const driver = MockSplitQueueDriver.create(memory, 0x1000, 8);
  const queue = new SplitQueue(memory, driver.layout, { eventIdx: false, indirect: true });
  return { driver, queue, host, done: () => munmap(host, RAM) };
}

test('one device-writable descriptor: head, guest and host address, length; no chain built', () => {
  const { driver, queue, host, done } = setup();
  try {
    const head = driver.addChain([{ address: BUFFERS + 64, length: 4096, writable: true }]);
    const buffer = new Float64Array(4);
    const chain = new DescriptorChain();
    assert.is(queue.popWritableBuffer(buffer, chain), POP_BUFFER);
    assert.equal(Array.from(buffer), [head, BUFFERS + 64, host + BUFFERS + 64, 4096]);
    assert.is(queue.popWritableBuffer(buffer, chain), POP_NONE);
    assert.is(queue.nextAvailIndex, 1);
  } finally {
    done();
  }
});

test('anything else is walked like popInto: readable, several descriptors, zero length, outside RAM, indirect', () => {
  const { driver, queue, done } = setup();
  try {
    const buffer = new Float64Array(4);
    const chain = new DescriptorChain();
    const readable = driver.addChain([{ address: BUFFERS, length: 64, writable: false }]);
    const two = driver.addChain([
      { address: BUFFERS, length: 12, writable: true },
      { address: BUFFERS + 4096, length: 1500, writable: true },
    ]);
    const empty = driver.addChain([{ address: BUFFERS, length: 0, writable: true }]);
    const outside = driver.addChain([{ address: RAM - 16, length: 64, writable: true }]);
    const indirect = driver.addChain([{ address: BUFFERS, length: 256, writable: true }], { indirect: true });
    const expect = (head: number, check: () => void): void => {
      assert.is(queue.popWritableBuffer(buffer, chain), POP_CHAIN);
      assert.is(chain.head, head);
      check();
    };
    expect(readable, () => assert.is(chain.readableLength, 64));
    expect(two, () => assert.equal([chain.segmentCount, chain.writableLength], [2, 1512]));
    expect(empty, () => assert.equal([chain.segmentCount, chain.writableLength, chain.error], [1, 0, undefined]));
    expect(outside, () => assert.is(chain.error?.kind, 'buffer-out-of-range'));
    expect(indirect, () => assert.equal([chain.segmentCount, chain.writableLength], [1, 256]));
  } finally {
    done();
  }
});

test('a head beyond the queue is fatal, as with popInto', () => {
  const { driver, queue, done } = setup();
  try {
    driver.writeAvailEntry(0, 9);
    driver.publishAvailIndex(1);
    assertQueueError(() => queue.popWritableBuffer(new Float64Array(4), new DescriptorChain()), 'bad-head', true);
  } finally {
    done();
  }
});

test.run();
