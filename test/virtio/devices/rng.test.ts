/** virtio-rng through the host-side driver harness: the real transport and data-plane thread, no KVM. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VirtioMmioHarness } from '../../helpers/virtio-harness.js';
import { RNG_COUNTERS, RNG_MAX_BYTES_PER_REQUEST, virtioRng } from '../../../src/virtio/devices/rng.js';
import { configureVirtioDevice } from '../../../src/virtio/virtio-device.js';
import { DeviceCounters } from '../../../src/virtio/device-counters.js';
import * as V from '../../../src/virtio/virtio-constants.js';

/** Counters of the last harness, read here while its data-plane thread counts. */
let counters = new DeviceCounters(RNG_COUNTERS);

async function harness(): Promise<VirtioMmioHarness> {
  counters = new DeviceCounters(RNG_COUNTERS);
  const options = { counters: counters.shared };
  const h = new VirtioMmioHarness({ name: 'virtio-rng', device: configureVirtioDevice(virtioRng, options) });
  await h.ready();
  return h;
}

test('fills device-writable buffers with entropy, in place, up to RNG_MAX_BYTES_PER_REQUEST a request', async () => {
  const h = await harness();
  try {
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1) | V.featureBit(V.VIRTIO_F_RING_INDIRECT_DESC));
    const q = h.setupQueue(0, 16);
    h.driverOk();
    const sizes = [1, 64, 4096, 100_000];
    const buffers = sizes.map((n) => h.allocate(n));
    const heads = buffers.map((address, i) => q.addChain([{ address, length: sizes[i]!, writable: true }], { indirect: i === 3 }));
    h.kick(0);
    assert.is(h.waitForInterrupt() & V.VIRTIO_ISR_QUEUE, V.VIRTIO_ISR_QUEUE);
    const used = await h.waitForUsed(0, sizes.length);
    const served = sizes.map((n) => Math.min(n, RNG_MAX_BYTES_PER_REQUEST));
    assert.equal(used, heads.map((id, i) => ({ id, len: served[i]! })));
    for (const [i, address] of buffers.entries()) {
      const bytes = h.memory.slice(address, sizes[i]!);
      if (sizes[i]! >= 64) assert.ok(bytes.some((b) => b !== 0), `buffer ${i} is all zero`);
    }
    // Entropy differs between requests.
    assert.not.equal(Array.from(h.memory.slice(buffers[1]!, 64)), Array.from(h.memory.slice(buffers[2]!, 64)));
    // The data-plane thread's counts are visible here.
    assert.equal(counters.snapshot(), { requests: 4, bytes: 1 + 64 + 4096 + RNG_MAX_BYTES_PER_REQUEST });
  } finally {
    await h.close();
  }
});

test('a chain with a buffer outside guest RAM is returned with length 0 and the device goes on', async () => {
  const h = await harness();
  try {
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1));
    const q = h.setupQueue(0, 8);
    h.driverOk();
    const bad = q.addChain([{ address: 0x7fff_0000_0000, length: 64, writable: true }]);
    const good = q.addChain([{ address: h.allocate(32), length: 32, writable: true }]);
    h.kick(0);
    assert.equal(await h.waitForUsed(0, 2), [{ id: bad, len: 0 }, { id: good, len: 32 }]);
    assert.is(h.status & V.VIRTIO_CONFIG_S_NEEDS_RESET, 0);
    assert.is(counters.get('bytes'), 32, 'only the good chain carried entropy');
  } finally {
    await h.close();
  }
});

test('an avail index that runs ahead sets DEVICE_NEEDS_RESET and raises a config interrupt; reset recovers', async () => {
  const h = await harness();
  try {
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1));
    const q = h.setupQueue(0, 8);
    h.driverOk();
    q.publishAvailIndex(100); // 100 > queue size: impossible for an honest driver
    h.kick(0);
    assert.is(h.waitForInterrupt() & V.VIRTIO_ISR_CONFIG, V.VIRTIO_ISR_CONFIG);
    assert.ok(h.status & V.VIRTIO_CONFIG_S_NEEDS_RESET);
    h.reset();
    assert.is(h.status, 0);
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1));
    const q2 = h.setupQueue(0, 8);
    h.driverOk();
    const head = q2.addChain([{ address: h.allocate(16), length: 16, writable: true }]);
    h.kick(0);
    assert.equal(await h.waitForUsed(0, 1), [{ id: head, len: 16 }]);
  } finally {
    await h.close();
  }
});

test('a chain naming one large buffer 255 times, then a reset: the reset is prompt and nothing is written after it', async () => {
  const h = await harness();
  try {
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1));
    const q = h.setupQueue(0, 256);
    h.driverOk();
    // 255 × 16 MiB: almost 2^32 bytes asked of the device by one chain.
    const size = 16 * 2 ** 20;
    const buffer = h.allocate(size);
    q.addChain(Array.from({ length: 255 }, () => ({ address: buffer, length: size, writable: true })));
    h.kick(0);
    await new Promise((r) => setTimeout(r, 20));
    const started = performance.now();
    h.reset();
    const took = performance.now() - started;
    assert.is(h.status, 0);
    assert.ok(took < 200, `the reset took ${took.toFixed(0)} ms`);
    h.memory.fill(buffer, size, 0);
    await new Promise((r) => setTimeout(r, 200));
    assert.ok(h.memory.slice(buffer, size).every((b) => b === 0), 'the device wrote into the old buffer after the reset');
  } finally {
    await h.close();
  }
});

test('a ring outside guest RAM at DRIVER_OK is refused with DEVICE_NEEDS_RESET', async () => {
  const h = await harness();
  try {
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1));
    h.setupQueue(0, 8);
    h.write32(0x080, 0xffff_f000); // QueueDescLow: not RAM (the queue is ready; re-select a fresh one)
    h.reset();
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1));
    h.write32(0x030, 0);
    h.write32(0x038, 8);
    h.write32(0x080, 0xffff_f000);
    h.write32(0x044, 1);
    h.driverOk();
    assert.is(h.waitForInterrupt() & V.VIRTIO_ISR_CONFIG, V.VIRTIO_ISR_CONFIG);
    assert.ok(h.status & V.VIRTIO_CONFIG_S_NEEDS_RESET);
  } finally {
    await h.close();
  }
});

test.run();
