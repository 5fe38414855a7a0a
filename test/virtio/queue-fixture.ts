/** Shared setup for the virtqueue tests: guest RAM, a mock driver and the device queue over it. */
import * as assert from 'uvu/assert';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import type { DescriptorChain } from '../../src/virtio/descriptor-chain.js';
import { QueueError, SplitQueue, type QueueErrorKind } from '../../src/virtio/queue.js';
import { MockSplitQueueDriver } from './mock-driver.js';

export const RAM_SIZE = 0x100000;
/** Where the fixture's rings start. */
export const RING_BASE = 0x1000;
/** Free RAM for test buffers. */
export const BUFFER_BASE = 0x80000;

export interface QueueFixture {
  readonly memory: GuestMemory;
  readonly driver: MockSplitQueueDriver;
  readonly queue: SplitQueue;
}

export interface FixtureOptions {
  readonly size?: number;
  readonly eventIdx?: boolean;
  readonly indirect?: boolean;
  readonly ram?: ReadonlyArray<readonly [number, number]>;
}

export function setupQueue(options: FixtureOptions = {}): QueueFixture {
  const memory = GuestMemory.fromLayout(options.ram ?? [[0, RAM_SIZE]]);
  const driver = MockSplitQueueDriver.create(memory, RING_BASE, options.size ?? 8);
  const queue = new SplitQueue(memory, driver.layout, {
    eventIdx: options.eventIdx ?? false,
    indirect: options.indirect ?? true,
  });
  return { memory, driver, queue };
}

export function assertQueueError(run: () => unknown, kind: QueueErrorKind, fatal: boolean): QueueError {
  try {
    run();
  } catch (error) {
    assert.instance(error, QueueError);
    const queueError = error as QueueError;
    assert.is(queueError.kind, kind, queueError.message);
    assert.is(queueError.fatal, fatal);
    return queueError;
  }
  assert.unreachable(`expected QueueError '${kind}'`);
  throw new Error('unreachable');
}

/** Pops the next chain, which must be malformed with `kind`, completes it with length 0 and checks the used ring. */
export function popMalformed({ queue, driver }: QueueFixture, kind: QueueErrorKind): DescriptorChain {
  const chain = queue.pop();
  assert.ok(chain, 'a malformed chain is still returned');
  assert.is(chain.error?.kind, kind, chain.error?.message);
  assert.is(chain.error?.fatal, false);
  assert.equal(chain.segments, []);
  assert.is(chain.readableLength, 0);
  assert.is(chain.writableLength, 0);
  const before = driver.usedIndex;
  queue.addUsed(chain.head, 0);
  assert.is(driver.usedIndex, (before + 1) & 0xffff);
  assert.equal(driver.usedElement(before), { id: chain.head, len: 0 });
  return chain;
}

/** Bytes 0, 1, 2, … (mod 256) shifted by `seed`. */
export function pattern(length: number, seed = 0): Uint8Array {
  return Uint8Array.from({ length }, (_, i) => (i + seed) & 0xff);
}
