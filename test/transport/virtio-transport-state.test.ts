// The shared transport state's control channel with several data-plane threads, and the status
// updates that must not lose a bit a data-plane thread sets meanwhile.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VirtioTransportState } from '../../src/transport/virtio-transport-state.js';
import * as V from '../../src/virtio/virtio-constants.js';

const create = (threads: number): VirtioTransportState =>
  VirtioTransportState.create({ deviceFeatures: 0n, queueMaxSizes: [8, 8], configSpace: new Uint8Array(4), msixVectors: 0, dataPlaneThreads: threads });

test('a reset waits for every running data-plane thread, and only for running ones', () => {
  const state = create(2);
  assert.is(state.dataPlaneThreads, 2);
  const sequence = state.requestControl();
  assert.ok(state.waitForControl(sequence, 10), 'no thread running: nothing to wait for');
  state.setDataPlaneAttached(0, true);
  state.setDataPlaneAttached(1, true);
  assert.ok(state.allDataPlanesAttached);
  state.acknowledgeControl(0, sequence);
  assert.not.ok(state.waitForControl(sequence, 30), 'thread 1 has not acknowledged');
  state.acknowledgeControl(1, sequence);
  assert.ok(state.waitForControl(sequence, 30));
  state.setDataPlaneAttached(1, false);
  const next = state.requestControl();
  state.acknowledgeControl(0, next);
  assert.ok(state.waitForControl(next, 30), 'a thread that ended is not waited for');
  assert.throws(() => state.acknowledgeControl(2, next), /thread 2/);
});

test('the queue and vector words sit after the per-thread words', () => {
  const state = create(3);
  state.setQueueSize(1, 4);
  state.setQueueReady(1, true);
  state.setDataPlaneAttached(2, true);
  assert.is(state.queue(1).size, 4);
  assert.ok(state.queue(1).ready);
  assert.is(state.queue(0).size, 8);
  assert.is(new VirtioTransportState(state.shared).dataPlaneThreads, 3);
});

test('updateStatus keeps NEEDS_RESET that another thread set between the read and the write', () => {
  const state = create(1);
  state.status = V.VIRTIO_CONFIG_S_ACKNOWLEDGE;
  let tries = 0;
  const [, now] = state.updateStatus((old) => {
    // The first attempt races with a data-plane thread's orStatus.
    if (tries++ === 0) state.orStatus(V.VIRTIO_CONFIG_S_NEEDS_RESET);
    return V.VIRTIO_CONFIG_S_DRIVER_OK | (old & V.VIRTIO_CONFIG_S_NEEDS_RESET);
  });
  assert.is(tries, 2);
  assert.is(now, V.VIRTIO_CONFIG_S_DRIVER_OK | V.VIRTIO_CONFIG_S_NEEDS_RESET);
  assert.is(state.status, now);
});

test('every reset moves the reset epoch', () => {
  const state = create(1);
  const before = state.resetEpoch;
  state.bumpResetEpoch();
  assert.is(state.resetEpoch, before + 1);
  assert.is(state.words[state.resetEpochIndex], before + 1);
});

test.run();
