/**
 * When virtio-rng interrupts the driver (virtio 1.2 §2.7.7), in process over ArrayBuffer guest
 * memory with a RecordingInterrupt: once per kick that used buffers, never while the driver's
 * ring says no (VIRTQ_AVAIL_F_NO_INTERRUPT without EVENT_IDX, used_event with it).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import createDebug from 'debug';
import { GuestMemory } from '../../../src/vmm/guest-memory.js';
import { SplitQueue } from '../../../src/virtio/queue.js';
import { VirtioRng } from '../../../src/virtio/devices/rng.js';
import { featureBit, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from '../../../src/virtio/virtio-constants.js';
import { MockSplitQueueDriver } from '../mock-driver.js';
import { RecordingInterrupt } from '../../helpers/recording-interrupt.js';

const BUFFER = 0x80000;

function rngBed(eventIdx: boolean) {
  const memory = GuestMemory.fromLayout([[0, 1 << 20]]);
  const driver = MockSplitQueueDriver.create(memory, 0x1000, 16);
  const interrupt = new RecordingInterrupt();
  const rng = new VirtioRng();
  rng.activate({
    memory,
    queues: [new SplitQueue(memory, driver.layout, { eventIdx, indirect: false })],
    features: featureBit(VIRTIO_F_VERSION_1) | (eventIdx ? featureBit(VIRTIO_F_RING_EVENT_IDX) : 0n),
    interrupt,
    host: { watch: () => {}, unwatch: () => {}, resume: () => assert.unreachable('resume'), failDevice: (r) => assert.unreachable(r), log: createDebug('kvm:test') },
  });
  /** Posts `count` 64-byte buffers, kicks, and checks that all were filled; returns the interrupts raised. */
  const kick = (count: number) => {
    for (let i = 0; i < count; i++) driver.addChain([{ address: BUFFER + i * 64, length: 64, writable: true }]);
    rng.queueNotified(0);
    const used = driver.takeUsed();
    assert.is(used.length, count);
    assert.ok(used.every((u) => u.len === 64));
    return interrupt.take();
  };
  return { driver, interrupt, kick };
}

const ONE = [{ kind: 'used', queue: 0 }];

test('a kick that uses buffers interrupts once for the whole batch; a kick with none does not', () => {
  const { kick, interrupt } = rngBed(false);
  assert.equal(kick(5), ONE);
  assert.equal(kick(1), ONE);
  assert.equal(kick(0), [], 'nothing used, no interrupt');
  assert.is(interrupt.configChanges, 0);
});

test('without EVENT_IDX, NO_INTERRUPT suppresses the interrupt; clearing it restores it', () => {
  const { driver, kick } = rngBed(false);
  driver.setNoInterrupt(true);
  assert.equal(kick(3), [], 'NO_INTERRUPT: three buffers used, no interrupt');
  assert.equal(kick(1), []);
  driver.setNoInterrupt(false);
  assert.equal(kick(1), ONE);
  // used_event means nothing without EVENT_IDX.
  driver.setUsedEvent(500);
  assert.equal(kick(2), ONE);
});

test('with EVENT_IDX, no interrupt while used_event is ahead; exactly one when a kick crosses it', () => {
  const { driver, kick, interrupt } = rngBed(true);
  driver.setUsedEvent(100); // far ahead
  assert.equal(kick(4), []);
  assert.equal(kick(4), []);
  assert.is(driver.usedIndex, 8);
  driver.setUsedEvent(9); // "interrupt me once used entry 9 is written"
  assert.equal(kick(1), [], 'entry 8: not there yet');
  assert.equal(kick(3), ONE, 'entries 9..11 cross used_event: one interrupt');
  assert.equal(kick(2), [], 'used_event behind: none');
  // The flag is ignored under EVENT_IDX: used_event alone decides.
  driver.setNoInterrupt(true);
  driver.setUsedEvent(driver.usedIndex);
  assert.equal(kick(1), ONE);
  assert.is(interrupt.configChanges, 0);
});

test.run();
