/**
 * A fatal ring error in the middle of a transmit batch (a guest naming head 999 in a queue of 8)
 * must not leave writes queued in the transmit io_uring, which outlives the reset: the next
 * activation would send old frames from the old driver's buffers, and the new frame twice.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readSync } from 'node:fs';
import createDebug from 'debug';
import { memoryFromRegions } from '../../../../src/vmm/guest-ram.js';
import { pipe, setNonBlocking, close } from '../../../../src/sys/fd.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap } from '../../../../src/sys/memory.js';
import { SplitQueue } from '../../../../src/virtio/queue.js';
import { QueueError } from '../../../../src/virtio/queue-error.js';
import { TransmitBuffers, Transmitter } from '../../../../src/virtio/devices/net/tx.js';
import { NetStats } from '../../../../src/virtio/devices/net/stats.js';
import { MockSplitQueueDriver } from '../../mock-driver.js';
import { RecordingInterrupt } from '../../../helpers/recording-interrupt.js';

const RAM = 4 * 2 ** 20;

test('a bad avail head mid-batch: frames accepted before it go out at once, none after the reset', () => {
  const hostAddress = mmap(RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  const memory = memoryFromRegions([{ guestBase: 0, size: RAM, hostAddress }]);
  const [readEnd, writeEnd] = pipe();
  setNonBlocking(readEnd);
  const buffers = new TransmitBuffers();
  const log = createDebug('review');
  const interrupt = new RecordingInterrupt();
  const frame = (driver: MockSplitQueueDriver, at: number, fill: number): void => {
    memory.fill(at, 12, 0); // virtio-net header, no offloads
    memory.fill(at + 12, 60, fill);
    driver.addChain([{ address: at, length: 72, writable: false }]);
  };
  const drain = (): number => {
    const b = Buffer.alloc(1 << 16);
    try {
      return readSync(readEnd, b);
    } catch {
      return 0;
    }
  };

  // Activation 1: two good frames, then an avail entry naming head 999 (queue of 8).
  const d1 = MockSplitQueueDriver.create(memory, 0x1000, 8);
  const q1 = new SplitQueue(memory, d1.layout, { eventIdx: false, indirect: false });
  const tx1 = new Transmitter({ memory, queue: q1, queueIndex: 1, interrupt, tapFd: writeEnd, stats: new NetStats(), log, features: 0n }, buffers);
  frame(d1, 0x100000, 0xaa);
  frame(d1, 0x100100, 0xbb);
  d1.offer(999);
  assert.throws(() => tx1.transmit(), (e: unknown) => e instanceof QueueError && e.fatal);
  assert.is(drain(), 2 * 72, 'the two good frames were written before the error left transmit()');
  assert.is(d1.takeUsed().length, 2, 'and their buffers returned');

  // Reset + reactivation: new queue and Transmitter, same TransmitBuffers (as device.ts does).
  memory.fill(0, RAM, 0);
  const d2 = MockSplitQueueDriver.create(memory, 0x1000, 8);
  const q2 = new SplitQueue(memory, d2.layout, { eventIdx: false, indirect: false });
  const tx2 = new Transmitter({ memory, queue: q2, queueIndex: 1, interrupt, tapFd: writeEnd, stats: new NetStats(), log, features: 0n }, buffers);
  frame(d2, 0x200000, 0xcc);
  tx2.transmit();
  const written = drain();
  close(readEnd);
  close(writeEnd);
  // One frame was posted in this activation: exactly its 72 bytes go out.
  assert.is(written, 72, `expected one 72-byte write, the pipe got ${written} bytes`);
});

test.run();
