/**
 * A guest driver looping reset → a ring outside RAM → DRIVER_OK against virtio-rng in its real
 * data-plane thread, run as its own process so the parent (failure-flood.test.ts) sees exactly
 * what the thread wrote to stderr. argv: rounds.
 */
import { VirtioMmioHarness } from '../../helpers/virtio-harness.js';
import { virtioRng } from '../../../src/virtio/devices/rng.js';
import { configureVirtioDevice } from '../../../src/virtio/virtio-device.js';
import * as V from '../../../src/virtio/virtio-constants.js';
import * as M from '../../../src/transport/virtio-mmio.js';

async function main(): Promise<void> {
  const rounds = Number(process.argv[2] ?? 300);
  const h = new VirtioMmioHarness({ name: 'virtio-rng', device: configureVirtioDevice(virtioRng, {}) });
  await h.ready();
  let failed = 0;
  for (let i = 0; i < rounds; i++) {
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1)); // starts with a reset
    h.write32(M.VIRTIO_MMIO_QUEUE_SEL, 0);
    h.write32(M.VIRTIO_MMIO_QUEUE_NUM, 8);
    h.write32(M.VIRTIO_MMIO_QUEUE_DESC_LOW, 0xffff_f000); // not RAM
    h.write32(M.VIRTIO_MMIO_QUEUE_READY, 1);
    h.driverOk();
    const deadline = Date.now() + 2000;
    while (!(h.status & V.VIRTIO_CONFIG_S_NEEDS_RESET) && Date.now() < deadline) await new Promise((r) => setImmediate(r));
    if (h.status & V.VIRTIO_CONFIG_S_NEEDS_RESET) failed++;
  }
  await h.close();
  process.stdout.write(`failed ${failed}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`failure-flood child: ${error instanceof Error ? error.stack : String(error)}\n`);
  process.exit(1);
});
