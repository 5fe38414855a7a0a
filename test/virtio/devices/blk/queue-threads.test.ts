// virtio-blk's per-queue data-plane threads: each queue is served by its own thread (up to the
// cap), so a request stuck in the kernel on one queue does not hold up another.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkTestDevice, SECTOR, S, V, pattern } from './helpers.js';
import { VirtioBlk } from '../../../../src/virtio/devices/blk/device.js';
import { BLK_COUNTERS, BLK_MAX_DATA_PLANE_THREADS, blkDataPlaneQueues } from '../../../../src/virtio/devices/blk/options.js';
import { DeviceCounters } from '../../../../src/virtio/device-counters.js';
import { UserFaultRange } from '../../../helpers/user-fault.js';

const HUGE_PAGE = 2 << 20;

/** Posts a read on queue 0 whose buffer sits in a userfaultfd range and waits until queue 0's thread is stuck on it. */
async function stickQueue0(d: BlkTestDevice): Promise<{ fault: UserFaultRange; status: number; trap: number }> {
  const { h } = d;
  // A 2 MiB-aligned (in host memory) stretch nothing has touched, so no transparent huge page
  // already backs the trapped page.
  const raw = h.allocate(2 * HUGE_PAGE);
  const rawHost = h.memory.hostAddress(raw, 2 * HUGE_PAGE);
  const trapHost = Math.ceil(rawHost / HUGE_PAGE) * HUGE_PAGE;
  const trap = raw + (trapHost - rawHost);
  const fault = UserFaultRange.register(trapHost, HUGE_PAGE);
  const header = h.allocate(S.BLK_REQ_HEADER_SIZE);
  h.memory.writeU32(header + S.BLK_REQ_TYPE, S.VIRTIO_BLK_T_IN);
  h.memory.writeU64(header + S.BLK_REQ_SECTOR, 0n);
  const status = h.allocate(1);
  h.memory.writeU8(status, 0xff);
  d.queues[0]!.addChain([
    { address: header, length: S.BLK_REQ_HEADER_SIZE, writable: false },
    { address: trap, length: 4096, writable: true },
    { address: status, length: 1, writable: true },
  ]);
  h.kick(0);
  const at = fault.waitForFault(5000);
  if (at === undefined || at < trapHost || at >= trapHost + HUGE_PAGE) {
    fault.close();
    throw new Error('queue 0 thread did not fault on the trapped buffer');
  }
  return { fault, status, trap };
}

test('queues are split one per thread up to the cap, then round robin; every queue exactly once', () => {
  assert.equal(blkDataPlaneQueues(1), [[0]]);
  assert.equal(blkDataPlaneQueues(2), [[0], [1]]);
  const many = blkDataPlaneQueues(BLK_MAX_DATA_PLANE_THREADS + 3);
  assert.is(many.length, BLK_MAX_DATA_PLANE_THREADS);
  assert.equal(many[0], [0, BLK_MAX_DATA_PLANE_THREADS]);
  assert.equal(many.flat().sort((a, b) => a - b), [...Array(BLK_MAX_DATA_PLANE_THREADS + 3).keys()]);
});

test('a read blocked inside the kernel on queue 0 does not hold up queue 1: each queue has its own thread', async () => {
  // The synchronous engine makes the read a preadv on the queue's own data-plane thread. Its
  // buffer is in a userfaultfd range, so that thread stays inside preadv until the test maps the
  // page: whatever queue 1 gets meanwhile was served by another thread.
  const counters = DeviceCounters.allocate(BLK_COUNTERS, 2);
  const d = await BlkTestDevice.create({ queues: 2, engine: 'sync', sectors: 64, counters });
  const { h } = d;
  const stuck = await stickQueue0(d);
  try {
    const other = await d.request(S.VIRTIO_BLK_T_IN, 16, { inLength: 4096 }, {}, 1);
    assert.is(other.status, S.VIRTIO_BLK_S_OK, 'queue 1 answered while queue 0 is stuck');
    assert.equal(Array.from(other.data), Array.from(pattern(16 * SECTOR, 4096)));
    assert.equal(d.queues[0]!.takeUsed(), [], 'queue 0 still in flight');
    assert.is(h.memory.readU8(stuck.status), 0xff);

    stuck.fault.release();
    const used = await h.waitForUsed(0, 1, 5000);
    assert.is(used.length, 1, 'queue 0 completes once its page is there');
    assert.is(h.memory.readU8(stuck.status), S.VIRTIO_BLK_S_OK);
    assert.equal(Array.from(h.memory.slice(stuck.trap, 4096)), Array.from(pattern(0, 4096)));

    const view = new DeviceCounters(BLK_COUNTERS, counters);
    assert.is(view.laneSnapshot(0).reads, 1, 'thread 0 counted queue 0');
    assert.is(view.laneSnapshot(1).reads, 1, 'thread 1 counted queue 1');
    assert.is(view.get('reads'), 2);
    assert.is(h.dataPlane.threadCount, 2);
  } finally {
    // Lets a thread still stuck in the fault go, so the device can be closed.
    stuck.fault.close();
    await d.close();
  }
});

test('INTx: another thread re-asserts the line at the guest EOI while thread 0 is stuck', async () => {
  const d = await BlkTestDevice.create({ queues: 2, engine: 'sync', sectors: 64 });
  const { h } = d;
  const stuck = await stickQueue0(d);
  try {
    h.takeInterrupts();
    h.state.raiseIsr(V.VIRTIO_ISR_QUEUE);
    h.signalResample();
    assert.ok(h.waitForLine(2000), 'the line fired again after the EOI');
  } finally {
    stuck.fault.close();
    await d.close();
  }
});

test('a reset that times out while a thread is stuck: that thread drops the old session and serves the new one', async () => {
  const d = await BlkTestDevice.create({ queues: 2, engine: 'sync', sectors: 64 });
  const { h } = d;
  const stuck = await stickQueue0(d);
  try {
    // The reset waits RESET_TIMEOUT_MS for queue 0's thread, then the driver starts afresh.
    d.reinitialize(16);
    assert.is(h.status & V.VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    const other = await d.request(S.VIRTIO_BLK_T_IN, 2, { inLength: SECTOR }, {}, 1);
    assert.is(other.status, S.VIRTIO_BLK_S_OK, 'queue 1 serves the new session');

    stuck.fault.release();
    // Queue 0's thread finishes its read, must not answer it into the new session's rings, and
    // then takes up the new session.
    const fresh = await d.request(S.VIRTIO_BLK_T_IN, 3, { inLength: SECTOR }, {}, 0);
    assert.is(fresh.status, S.VIRTIO_BLK_S_OK, 'queue 0 serves the new session');
    assert.equal(Array.from(fresh.data), Array.from(pattern(3 * SECTOR, SECTOR)));
    assert.equal(d.queues[0]!.takeUsed(), [], 'no stale completion in the new ring');
    assert.is(h.memory.readU8(stuck.status), 0xff, 'the old request got no status');
    assert.is(h.status & V.VIRTIO_CONFIG_S_NEEDS_RESET, 0, 'the new session is not failed');
  } finally {
    stuck.fault.close();
    await d.close();
  }
});

test('tiny queues with io_uring: each thread\'s ring still has room for a request\'s largest fan-out', async () => {
  const d = await BlkTestDevice.create({ queues: 2, queueSize: 4, sectors: 64 });
  try {
    for (const q of [0, 1]) {
      const r = await d.request(S.VIRTIO_BLK_T_IN, q, { inLength: SECTOR }, {}, q);
      assert.is(r.status, S.VIRTIO_BLK_S_OK, `queue ${q}`);
    }
  } finally {
    await d.close();
  }
});

test('counters with fewer lanes than data-plane threads are refused where the device is built', () => {
  const options = { name: 'vda', fd: -1, sizeBytes: 1 << 20, readOnly: false, direct: false, blockDevice: false, serial: 'x', queues: 2 };
  assert.throws(() => new VirtioBlk({ ...options, counters: DeviceCounters.allocate(BLK_COUNTERS, 1) }), /2 lanes/);
  new VirtioBlk({ ...options, counters: DeviceCounters.allocate(BLK_COUNTERS, 2) });
});

test('more queues than threads: every queue is served, threads take two queues each', async () => {
  const queues = BLK_MAX_DATA_PLANE_THREADS + 2;
  const counters = DeviceCounters.allocate(BLK_COUNTERS, BLK_MAX_DATA_PLANE_THREADS);
  const d = await BlkTestDevice.create({ queues, sectors: 64, counters, queueSize: 16 });
  try {
    assert.is(d.h.dataPlane.threadCount, BLK_MAX_DATA_PLANE_THREADS);
    for (let q = 0; q < queues; q++) {
      const r = await d.request(S.VIRTIO_BLK_T_IN, q, { inLength: SECTOR }, {}, q);
      assert.is(r.status, S.VIRTIO_BLK_S_OK, `queue ${q}`);
      assert.equal(Array.from(r.data), Array.from(pattern(q * SECTOR, SECTOR)), `queue ${q} data`);
    }
    const view = new DeviceCounters(BLK_COUNTERS, counters);
    assert.is(view.laneSnapshot(0).reads, 2, 'thread 0 serves queues 0 and 8');
    assert.is(view.laneSnapshot(2).reads, 1);
    assert.is(view.get('reads'), queues);
  } finally {
    await d.close();
  }
});

test.run();
