/** Data-plane thread lifecycle: how a thread learns that the VM ended, whenever it starts. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VirtioMmioHarness } from '../../helpers/virtio-harness.js';
import { RNG_COUNTERS, virtioRng } from '../../../src/virtio/devices/rng.js';
import { configureVirtioDevice } from '../../../src/virtio/virtio-device.js';
import { DeviceCounters } from '../../../src/virtio/device-counters.js';
import * as M from '../../../src/transport/virtio-mmio.js';

function rngHarness(): VirtioMmioHarness {
  const options = { counters: new DeviceCounters(RNG_COUNTERS).shared };
  return new VirtioMmioHarness({ name: 'virtio-rng', device: configureVirtioDevice(virtioRng, options) });
}

/** The promise's value, or a failure naming `what` after `ms`. */
async function within<T>(ms: number, what: string, promise: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      reject(new Error(`${what} did not finish within ${ms} ms`));
      // A thread stuck in epoll_wait keeps this process alive, and process.exit would wait to join
      // it: once uvu has reported, end the process the only way that does not wait.
      setTimeout(() => process.kill(process.pid, 'SIGKILL'), 1000).unref();
    }, ms);
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

test('a thread that starts after a reset and the end of the VM were asked for still ends', async () => {
  // Both happen before the new thread has run a line (a worker takes milliseconds to start):
  // when it attaches it finds a control request and the end, and its control eventfd already
  // signalled; it once served the request, drained the eventfd and then slept for good.
  const h = rngHarness();
  assert.not.ok(h.state.allDataPlanesAttached, 'the thread is not up yet');
  h.write32(M.VIRTIO_MMIO_STATUS, 0); // a reset: a control request the thread has not seen
  await within(5000, 'closing the harness (ending its data-plane thread)', h.close());
  assert.ok(h.state.dataPlaneEnding(0), 'the thread saw the end (so the stop timeout would not terminate it)');
  assert.not.ok(h.state.dataPlaneAttached(0));
});

test('a thread that starts after only the end of the VM was asked for ends', async () => {
  const h = rngHarness();
  assert.not.ok(h.state.allDataPlanesAttached);
  await within(5000, 'closing the harness', h.close());
  assert.ok(h.state.dataPlaneEnding(0));
});

test('a running thread marks itself ending when told to end, and detaches', async () => {
  const h = rngHarness();
  await h.ready();
  assert.not.ok(h.state.dataPlaneEnding(0));
  await within(5000, 'closing the harness', h.close());
  assert.ok(h.state.dataPlaneEnding(0));
  assert.not.ok(h.state.dataPlaneAttached(0));
});

test.run();
