/**
 * A TAP that fails (its interface deleted under the VM: reads answer EBADFD; a write it refuses:
 * EIO while down, EINVAL for a header the kernel rejects) must cost the guest nothing but the
 * frames involved: receive stops for good instead of spinning on the error, with its buffers left
 * to the driver; transmit returns every buffer and counts the refused frames. Here an fd that
 * cannot be read as a TAP (a directory: EISDIR) and the write end of a pipe nobody reads (EPIPE)
 * stand in for the failing TAP.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { openSync, closeSync, constants } from 'node:fs';
import createDebug from 'debug';
import { memoryFromRegions } from '../../../../src/vmm/guest-ram.js';
import { close, pipe, setNonBlocking } from '../../../../src/sys/fd.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap } from '../../../../src/sys/memory.js';
import { SplitQueue } from '../../../../src/virtio/queue.js';
import { TransmitBuffers, Transmitter } from '../../../../src/virtio/devices/net/tx.js';
import { NetStats } from '../../../../src/virtio/devices/net/stats.js';
import { NET_GOOD_PACKET_BUFFER } from '../../../../src/virtio/devices/net/spec.js';
import { MockSplitQueueDriver } from '../../mock-driver.js';
import { RxBed } from './rx-bed.js';
import { RecordingInterrupt } from '../../../helpers/recording-interrupt.js';

test('receive: a TAP read that fails stops receiving for good (no spin), counts it, and leaves the buffers to the driver', () => {
  const directory = openSync('/', constants.O_RDONLY | constants.O_DIRECTORY);
  const bed = new RxBed(64, NET_GOOD_PACKET_BUFFER, false, directory);
  try {
    bed.send(0, 60);
    bed.receiver.receive();
    assert.is(bed.stats.get('rxErrors'), 1);
    assert.not.ok(bed.watching, 'the failing fd is no longer watched');
    // Later wake-ups (a kick from the driver) do not read again.
    bed.receiver.receive();
    bed.receiver.receive();
    assert.is(bed.stats.get('rxErrors'), 1, 'no further read was tried');
    assert.is(bed.frames().length, 0);
    assert.equal(bed.violations, []);
  } finally {
    bed.close();
    closeSync(directory);
  }
});

test('transmit: frames the TAP refuses are counted, and every buffer goes back to the driver', () => {
  const ram = 4 * 2 ** 20;
  const hostAddress = mmap(ram, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  const memory = memoryFromRegions([{ guestBase: 0, size: ram, hostAddress }]);
  const [readEnd, writeEnd] = pipe();
  setNonBlocking(writeEnd);
  close(readEnd); // nobody reads: every write is EPIPE (Node ignores SIGPIPE)
  const driver = MockSplitQueueDriver.create(memory, 0x1000, 16);
  const queue = new SplitQueue(memory, driver.layout, { eventIdx: false, indirect: false });
  const stats = new NetStats();
  const interrupt = new RecordingInterrupt();
  const tx = new Transmitter(
    { memory, queue, queueIndex: 1, interrupt, tapFd: writeEnd, stats, log: createDebug('kvm:test:tx'), features: 0n },
    new TransmitBuffers(),
  );
  try {
    for (let i = 0; i < 5; i++) {
      const at = 0x100000 + i * 0x1000;
      memory.fill(at, 12, 0); // virtio-net header, no offloads
      memory.fill(at + 12, 60, 0xa0 + i);
      driver.addChain([{ address: at, length: 72, writable: false }]);
    }
    tx.transmit();
    const used = driver.takeUsed();
    assert.is(used.length, 5, 'every buffer returned');
    assert.ok(used.every((u) => u.len === 0));
    assert.is(stats.get('txErrors'), 5);
    assert.is(stats.get('txFrames'), 0);
    assert.equal(interrupt.take(), [{ kind: 'used', queue: 1 }], 'one interrupt for the batch, on the transmit queue');
  } finally {
    close(writeEnd);
    munmap(hostAddress, ram);
  }
});

test.run();
