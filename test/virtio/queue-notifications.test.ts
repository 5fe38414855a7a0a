import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { vringNeedEvent } from '../../src/virtio/queue-event-idx.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_USED_F_NO_NOTIFY } from '../../src/virtio/virtio-constants.js';
import type { SplitQueue } from '../../src/virtio/queue.js';
import { BUFFER_BASE, assertQueueError, setupQueue } from './queue-fixture.js';
import { SPEC_VIRTQ_AVAIL_F_NO_INTERRUPT, type MockSplitQueueDriver } from './mock-driver.js';

function addBuffer(driver: MockSplitQueueDriver): number {
  return driver.addChain([{ address: BUFFER_BASE, length: 16, writable: true }]);
}

/** Pops and completes `count` chains (length = their writable length). */
function serve(queue: SplitQueue, count: number): void {
  for (let i = 0; i < count; i++) {
    const chain = queue.pop();
    assert.ok(chain, `chain ${i} available`);
    queue.addUsed(chain.head, chain.writableLength);
  }
}

test('addUsed writes the element, then publishes used.idx, wrapping round the ring', () => {
  const { memory, driver, queue } = setupQueue({ size: 4 });
  for (let i = 0; i < 6; i++) {
    queue.addUsed(i % 4, 100 + i);
    assert.is(driver.usedIndex, i + 1);
    assert.equal(driver.usedElement(i), { id: i % 4, len: 100 + i });
  }
  // Slots 0 and 1 were overwritten by the 5th and 6th elements.
  const ring = driver.layout.usedRing + 4;
  assert.equal([0, 1, 2, 3].map((slot) => memory.readU32(ring + slot * 8 + 4)), [104, 105, 102, 103]);
  assert.is(queue.nextUsedIndex, 6);
});

test('addUsed refuses a head or length out of range without writing', () => {
  const { driver, queue } = setupQueue({ size: 4 });
  assertQueueError(() => queue.addUsed(4, 0), 'bad-used', true);
  assertQueueError(() => queue.addUsed(-1, 0), 'bad-used', true);
  assertQueueError(() => queue.addUsed(1.5, 0), 'bad-used', true);
  assertQueueError(() => queue.addUsed(0, 2 ** 32), 'bad-used', true);
  assertQueueError(() => queue.addUsed(0, -1), 'bad-used', true);
  assert.is(driver.usedIndex, 0);
  assert.equal(driver.usedElement(0), { id: 0, len: 0 });
  queue.addUsed(3, 0xffff_ffff);
  assert.equal(driver.takeUsed(), [{ id: 3, len: 0xffff_ffff }]);
});

test('restoreIndexes takes 16-bit indexes only', () => {
  const { queue } = setupQueue();
  assertQueueError(() => queue.restoreIndexes({ nextAvail: 0x10000, nextUsed: 0 }), 'bad-state', true);
  assertQueueError(() => queue.restoreIndexes({ nextAvail: 0, nextUsed: -1 }), 'bad-state', true);
  queue.restoreIndexes({ nextAvail: 0xffff, nextUsed: 7 });
  assert.equal(queue.indexes, { nextAvail: 0xffff, nextUsed: 7 });
});

test('without EVENT_IDX, VIRTQ_AVAIL_F_NO_INTERRUPT decides', () => {
  const { driver, queue } = setupQueue();
  assert.is(queue.needsNotification(), false, 'nothing used yet');
  addBuffer(driver);
  serve(queue, 1);
  assert.is(driver.usedIndex, 1);
  assert.is(queue.needsNotification(), true);
  assert.is(queue.needsNotification(), false, 'nothing new since');
  driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  addBuffer(driver);
  serve(queue, 1);
  assert.is(queue.needsNotification(), false);
  driver.setAvailFlags(0);
  addBuffer(driver);
  addBuffer(driver);
  serve(queue, 2);
  assert.is(queue.needsNotification(), true);
  assert.is(driver.usedIndex, 4);
  // used_event means nothing without EVENT_IDX.
  driver.setUsedEvent(100);
  addBuffer(driver);
  serve(queue, 1);
  assert.is(queue.needsNotification(), true);
});

test('vring_need_event: event in [old, new) modulo 2^16', () => {
  assert.is(vringNeedEvent(0, 1, 0), true);
  assert.is(vringNeedEvent(1, 1, 0), false);
  assert.is(vringNeedEvent(5, 10, 0), true);
  assert.is(vringNeedEvent(10, 10, 0), false);
  assert.is(vringNeedEvent(0xffff, 0, 0xfffe), true);
  assert.is(vringNeedEvent(0xffff, 2, 0xfffe), true);
  assert.is(vringNeedEvent(1, 2, 0xfffe), true);
  assert.is(vringNeedEvent(2, 2, 0xfffe), false);
  assert.is(vringNeedEvent(0xfffd, 2, 0xfffe), false);
  assert.is(vringNeedEvent(7, 7, 7), false);
});

test('with EVENT_IDX, a notification is due when used.idx passes used_event', () => {
  const { driver, queue } = setupQueue({ eventIdx: true });
  driver.setUsedEvent(2); // "tell me once you have written used entry 2"
  const outcomes: boolean[] = [];
  for (let i = 0; i < 4; i++) {
    addBuffer(driver);
    serve(queue, 1);
    outcomes.push(queue.needsNotification());
  }
  assert.equal(outcomes, [false, false, true, false]);
  assert.is(driver.usedIndex, 4);
  // A batch whose window covers used_event notifies once.
  driver.setUsedEvent(5);
  for (let i = 0; i < 3; i++) addBuffer(driver);
  serve(queue, 3);
  assert.is(queue.needsNotification(), true);
  assert.is(queue.needsNotification(), false);
});

test('with EVENT_IDX, a used_event far ahead holds back every notification until used.idx crosses it', () => {
  const { driver, queue } = setupQueue({ eventIdx: true, size: 8 });
  driver.setUsedEvent(1000);
  const early: boolean[] = [];
  for (let i = 0; i < 20; i++) {
    addBuffer(driver);
    serve(queue, 1);
    early.push(queue.needsNotification());
  }
  assert.ok(early.every((due) => !due), 'none in 20 completions while used_event is ahead');
  // Moved to the next entry the device will write: the completion writing it is due, once.
  driver.setUsedEvent(driver.usedIndex);
  const late: boolean[] = [];
  for (let i = 0; i < 3; i++) {
    addBuffer(driver);
    serve(queue, 1);
    late.push(queue.needsNotification());
  }
  assert.equal(late, [true, false, false]);
});

test('without EVENT_IDX, completions made under NO_INTERRUPT are not notified late; clearing it restores the next', () => {
  const { driver, queue } = setupQueue();
  driver.setNoInterrupt(true);
  addBuffer(driver);
  addBuffer(driver);
  serve(queue, 2);
  assert.is(queue.needsNotification(), false);
  driver.setNoInterrupt(false);
  assert.is(queue.needsNotification(), false, 'clearing the flag alone does not notify what was already checked');
  addBuffer(driver);
  serve(queue, 1);
  assert.is(queue.needsNotification(), true);
  // The spec's flag value, independently of src: bit 0 of avail.flags.
  assert.is(VIRTQ_AVAIL_F_NO_INTERRUPT, SPEC_VIRTQ_AVAIL_F_NO_INTERRUPT);
});

test('with EVENT_IDX the NO_INTERRUPT flag is ignored', () => {
  const { driver, queue } = setupQueue({ eventIdx: true });
  driver.setAvailFlags(VIRTQ_AVAIL_F_NO_INTERRUPT);
  driver.setUsedEvent(0);
  addBuffer(driver);
  serve(queue, 1);
  assert.is(queue.needsNotification(), true);
  driver.setAvailFlags(0);
  addBuffer(driver);
  serve(queue, 1);
  assert.is(queue.needsNotification(), false, 'used_event 0 is behind');
});

test('EVENT_IDX around the 2^16 wrap of the used index', () => {
  const { driver, queue } = setupQueue({ eventIdx: true, size: 8 });
  driver.resetIndexes(0xfffe);
  queue.restoreIndexes({ nextAvail: 0xfffe, nextUsed: 0xfffe });
  driver.setUsedEvent(0xffff);
  addBuffer(driver);
  serve(queue, 1); // wrote entry 0xfffe, used.idx = 0xffff
  assert.is(driver.usedIndex, 0xffff);
  assert.is(queue.needsNotification(), false);
  addBuffer(driver);
  serve(queue, 1); // wrote entry 0xffff, used.idx wraps to 0
  assert.is(driver.usedIndex, 0);
  assert.is(queue.needsNotification(), true);
  driver.setUsedEvent(0); // the first entry after the wrap
  addBuffer(driver);
  serve(queue, 1);
  assert.is(driver.usedIndex, 1);
  assert.is(queue.needsNotification(), true);
  assert.equal(driver.takeUsed().length, 3);
});

test('EVENT_IDX: a batch across the wrap is checked against used_event before and after it', () => {
  const run = (usedEvent: number): boolean => {
    const { driver, queue } = setupQueue({ eventIdx: true, size: 8 });
    driver.resetIndexes(0xfffe);
    queue.restoreIndexes({ nextAvail: 0xfffe, nextUsed: 0xfffe });
    driver.setUsedEvent(usedEvent);
    for (let i = 0; i < 4; i++) addBuffer(driver);
    serve(queue, 4); // entries 0xfffe, 0xffff, 0, 1; used.idx 0xfffe → 2
    assert.is(driver.usedIndex, 2);
    return queue.needsNotification();
  };
  assert.is(run(0xfffe), true);
  assert.is(run(0xffff), true);
  assert.is(run(0), true);
  assert.is(run(1), true);
  assert.is(run(2), false, 'not written yet');
  assert.is(run(0xfffd), false, 'already passed before the batch');
  assert.is(run(0x8000), false);
});

test('EVENT_IDX: 2^16 entries since the last check always notify', () => {
  const { driver, queue } = setupQueue({ eventIdx: true, size: 4 });
  driver.setUsedEvent(0x1234);
  for (let i = 0; i < 0x10000; i++) queue.addUsed(i & 3, 0);
  assert.is(driver.usedIndex, 0, 'used.idx went all the way round');
  assert.is(queue.needsNotification(), true);
});

test('without EVENT_IDX, disable and enable toggle VIRTQ_USED_F_NO_NOTIFY', () => {
  const { driver, queue } = setupQueue();
  assert.is(driver.usedFlags, 0);
  queue.disableNotifications();
  assert.is(driver.usedFlags, VIRTQ_USED_F_NO_NOTIFY);
  assert.is(driver.deviceWantsKick(0, 1, false), false);
  assert.is(queue.enableNotifications(), false);
  assert.is(driver.usedFlags, 0);
  assert.is(driver.deviceWantsKick(0, 1, false), true);
  addBuffer(driver);
  assert.is(queue.enableNotifications(), true, 'a buffer is pending');
  assert.is(driver.usedFlags, 0);
});

test('with EVENT_IDX, enable publishes avail_event = next avail index and flags stay 0', () => {
  const { driver, queue } = setupQueue({ eventIdx: true });
  addBuffer(driver);
  addBuffer(driver);
  queue.disableNotifications();
  assert.is(driver.usedFlags, 0);
  assert.is(driver.availEvent, 0);
  serve(queue, 2);
  assert.is(driver.availEvent, 0, 'disable leaves avail_event behind');
  assert.is(queue.enableNotifications(), false);
  assert.is(driver.availEvent, 2);
  assert.is(driver.usedFlags, 0);
  // The driver kicks for the next buffer (index 2) but not for the one after.
  addBuffer(driver);
  assert.is(driver.deviceWantsKick(2, 3, true), true);
  addBuffer(driver);
  assert.is(driver.deviceWantsKick(3, 4, true), false);
});

test('with EVENT_IDX, avail_event follows the avail index across the wrap', () => {
  const { driver, queue } = setupQueue({ eventIdx: true, size: 8 });
  driver.resetIndexes(0xffff);
  queue.restoreIndexes({ nextAvail: 0xffff, nextUsed: 0xffff });
  assert.is(queue.enableNotifications(), false);
  assert.is(driver.availEvent, 0xffff);
  addBuffer(driver);
  assert.is(driver.availIndex, 0);
  assert.is(driver.deviceWantsKick(0xffff, 0, true), true);
  queue.disableNotifications();
  serve(queue, 1);
  assert.is(queue.enableNotifications(), false);
  assert.is(driver.availEvent, 0);
});

test('disable → drain → enable loops while buffers arrive in between', () => {
  for (const eventIdx of [false, true]) {
    const { driver, queue } = setupQueue({ eventIdx });
    const first = addBuffer(driver);
    let rounds = 0;
    let late = -1;
    do {
      rounds++;
      queue.disableNotifications();
      for (let chain = queue.pop(); chain; chain = queue.pop()) queue.addUsed(chain.head, 16);
      // The driver adds a buffer after the drain but before notifications are back on; it
      // does not kick (they are suppressed), so only the re-check can find it.
      if (rounds === 1) {
        late = addBuffer(driver);
        assert.is(driver.deviceWantsKick(1, 2, eventIdx), false, 'suppressed');
      }
    } while (queue.enableNotifications());
    assert.is(rounds, 2);
    assert.equal(driver.takeUsed(), [{ id: first, len: 16 }, { id: late, len: 16 }]);
    assert.is(queue.pendingCount, 0);
    assert.is(driver.deviceWantsKick(2, 3, eventIdx), true, 'notifications are back on');
  }
});

test('enableNotifications re-checks avail.idx and reports an overrun', () => {
  const { driver, queue } = setupQueue({ size: 8 });
  driver.publishAvailIndex(9);
  assertQueueError(() => queue.enableNotifications(), 'avail-overrun', true);
});

test.run();
