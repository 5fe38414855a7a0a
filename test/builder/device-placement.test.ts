/** Validation counts devices and queues without building them: its numbers must be the devices' own. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CONSOLE_QUEUES, NET_QUEUES, RNG_QUEUES, checkDevicesFit, MAX_MMIO_DEVICES, MAX_PCI_DEVICES } from '../../src/builder/device-placement.js';
import { TransportError } from '../../src/transport/transport-error.js';
import { virtioConsole } from '../../src/virtio/devices/console.js';
import { virtioNet } from '../../src/virtio/devices/net/device.js';
import { virtioRng } from '../../src/virtio/devices/rng.js';
import { virtioBlk } from '../../src/virtio/devices/blk/device.js';
import { MAX_MSI_ROUTES } from '../../src/vmm/irq-routing.js';

test('queue counts match the devices', () => {
  assert.is(virtioConsole.describe({ inputFd: -1, outputFd: -1 }).queueMaxSizes.length, CONSOLE_QUEUES);
  assert.is(virtioRng.describe({}).queueMaxSizes.length, RNG_QUEUES);
  assert.is(virtioNet.describe({ name: 't', tapFds: [-1], mac: [2, 0, 0, 0, 0, 1], tapOffloads: 0 }).queueMaxSizes.length, NET_QUEUES);
  const blk = virtioBlk.describe({ name: 'vda', fd: -1, sizeBytes: 4096, readOnly: true, direct: false, blockDevice: false, serial: 's', queues: 5, engine: 'sync' });
  assert.is(blk.queueMaxSizes.length, 5);
});

test('device limits per transport, as TransportError with status 2', () => {
  const devices = (count: number, queues = 1) => Array.from({ length: count }, (_, i) => ({ name: `d${i}`, queues }));
  assert.not.throws(() => checkDevicesFit('mmio', devices(MAX_MMIO_DEVICES)));
  assert.not.throws(() => checkDevicesFit('pci', devices(MAX_PCI_DEVICES)));
  for (const [transport, list] of [['mmio', devices(MAX_MMIO_DEVICES + 1)], ['pci', devices(MAX_PCI_DEVICES + 1)], ['pci', devices(2, MAX_MSI_ROUTES)]] as const) {
    try {
      checkDevicesFit(transport, list);
      assert.unreachable(`${transport}: ${list.length} devices fit`);
    } catch (error) {
      assert.instance(error, TransportError);
      assert.is((error as TransportError).status, 2);
    }
  }
});

test.run();
