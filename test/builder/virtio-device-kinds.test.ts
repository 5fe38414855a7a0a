/**
 * A device kind's description is what the main thread builds the transport from: plain data that
 * survives structured clone unchanged (no class instances, no functions), for every kind a VM gets.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VIRTIO_DEVICE_KINDS } from '../../src/builder/virtio-devices.js';
import { virtioBlk } from '../../src/virtio/devices/blk/device.js';
import { virtioConsole } from '../../src/virtio/devices/console.js';
import { virtioNet } from '../../src/virtio/devices/net/device.js';
import { virtioRng } from '../../src/virtio/devices/rng.js';
import { BLK_COUNTERS } from '../../src/virtio/devices/blk/options.js';
import { DeviceCounters } from '../../src/virtio/device-counters.js';
import { configureVirtioDevice, type ConfiguredVirtioDevice } from '../../src/virtio/virtio-device.js';

const blk = { name: 'vda', fd: -1, sizeBytes: 1 << 20, readOnly: false, direct: false, blockDevice: false, serial: 's', queues: 3 };
const configured: ReadonlyArray<readonly [string, ConfiguredVirtioDevice]> = [
  ['console', configureVirtioDevice(virtioConsole, { inputFd: -1, outputFd: -1 })],
  ['rng', configureVirtioDevice(virtioRng, {})],
  ['net', configureVirtioDevice(virtioNet, { name: 't', tapFds: [-1], mac: [2, 0, 0, 0, 0, 1], tapOffloads: 0x3f, queueSize: 256 })],
  ['blk', configureVirtioDevice(virtioBlk, { ...blk, counters: DeviceCounters.allocate(BLK_COUNTERS, 3) })],
  ['blk read-only, one queue', configureVirtioDevice(virtioBlk, { ...blk, readOnly: true, queues: 1 })],
];

test('every kind a VM may get is described here', () => {
  for (const kind of VIRTIO_DEVICE_KINDS) {
    assert.ok(configured.some(([, c]) => c.spec.kind.module === kind.module && c.spec.kind.exportName === kind.exportName), kind.exportName);
  }
});

test("each kind's description survives structuredClone unchanged", () => {
  for (const [name, { description }] of configured) {
    assert.equal(structuredClone(description), description, name);
    assert.is(Object.getPrototypeOf(description), Object.prototype, `${name}: a plain object`);
    assert.ok(description.configSpace instanceof Uint8Array, name);
    // Every queue is served by exactly one data-plane thread.
    const served = description.dataPlaneQueues.flat().sort((a, b) => a - b);
    assert.equal(served, description.queueMaxSizes.map((_, q) => q), `${name}: queues per thread`);
  }
});

test('the spec a data-plane thread gets survives structuredClone (shared buffers stay shared)', () => {
  for (const [name, { spec }] of configured) {
    const clone = structuredClone(spec);
    assert.equal(clone.kind, spec.kind, name);
    assert.equal(clone.options, spec.options, name);
  }
});

test('describe checks options on the main thread, as the device would', () => {
  assert.throws(() => virtioBlk.describe({ ...blk, queues: 0 }), /0 queues/);
  assert.throws(() => virtioBlk.describe({ ...blk, counters: DeviceCounters.allocate(BLK_COUNTERS, 1) }), /3 lanes/);
  assert.throws(() => virtioNet.describe({ name: 't', tapFds: [-1], mac: [2, 0, 0], tapOffloads: 0 }), /6 bytes/);
});

test.run();
