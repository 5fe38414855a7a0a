// virtio-blk's per-queue data-plane threads: each queue is served by its own thread (up to the
// cap), so a request stuck in the kernel on one queue does not hold up another.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BlkTestDevice, SECTOR, S, pattern } from './blk-helpers.js';
import { BLK_COUNTERS, BLK_MAX_DATA_PLANE_THREADS, blkDataPlaneQueues } from '../../src/virtio/devices/blk/options.js';
import { DeviceCounters } from '../../src/virtio/device-counters.js';
import { UserFaultRange } from '../helpers/user-fault.js';

const HUGE_PAGE = 2 << 20;

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
  // A 2 MiB-aligned (in host memory) stretch nothing has touched, so no transparent huge page
  // already backs the trapped page.
  const raw = h.allocate(2 * HUGE_PAGE);
  const rawHost = h.memory.hostAddress(raw, 2 * HUGE_PAGE);
  const trapHost = Math.ceil(rawHost / HUGE_PAGE) * HUGE_PAGE;
  const trap = raw + (trapHost - rawHost);
  const fault = UserFaultRange.register(trapHost, HUGE_PAGE);
  try {
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
    assert.ok(at !== undefined && at >= trapHost && at < trapHost + HUGE_PAGE, 'queue 0 thread faults on the trapped buffer');

    const other = await d.request(S.VIRTIO_BLK_T_IN, 16, { inLength: 4096 }, {}, 1);
    assert.is(other.status, S.VIRTIO_BLK_S_OK, 'queue 1 answered while queue 0 is stuck');
    assert.equal(Array.from(other.data), Array.from(pattern(16 * SECTOR, 4096)));
    assert.equal(d.queues[0]!.takeUsed(), [], 'queue 0 still in flight');
    assert.is(h.memory.readU8(status), 0xff);

    fault.release();
    const used = await h.waitForUsed(0, 1, 5000);
    assert.is(used.length, 1, 'queue 0 completes once its page is there');
    assert.is(h.memory.readU8(status), S.VIRTIO_BLK_S_OK);
    assert.equal(Array.from(h.memory.slice(trap, 4096)), Array.from(pattern(0, 4096)));

    const view = new DeviceCounters(BLK_COUNTERS, counters);
    assert.is(view.laneSnapshot(0).reads, 1, 'thread 0 counted queue 0');
    assert.is(view.laneSnapshot(1).reads, 1, 'thread 1 counted queue 1');
    assert.is(view.get('reads'), 2);
    assert.is(h.dataPlane.threadCount, 2);
  } finally {
    // Lets a thread still stuck in the fault go, so the device can be closed.
    fault.close();
    await d.close();
  }
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
