/**
 * The VMM side of the durability test (durability.test.ts), run as its own
 * process so that it can be SIGKILLed: it drives a virtio-blk device over the
 * harness like a guest would, writes known data, sends FLUSH, and reports on
 * stdout the moment the flush is complete. Then it waits to be killed.
 *
 * argv: image path, "direct" or "buffered".
 */
import { BlkTestDevice, S, SECTOR } from './helpers.js';

/** What the parent expects on disk: two batches of writes, each followed by its own FLUSH. */
export const DURABILITY_BATCHES = [
  // Written and completed first, then flushed (the Linux order).
  { sectors: [0, 8, 64, 200], fill: 0x11, together: false },
  // Flushed in the same kick as the writes: the flush must still cover them.
  { sectors: [16, 100, 300], fill: 0x22, together: true },
];
export const DURABILITY_SECTORS_PER_WRITE = 8;

export function durabilityData(sector: number, fill: number): Uint8Array {
  return new Uint8Array(DURABILITY_SECTORS_PER_WRITE * SECTOR).map((_, i) => (fill + sector + i) & 0xff);
}

async function main(): Promise<void> {
  const [file, mode] = process.argv.slice(2);
  const d = await BlkTestDevice.create({ path: file!, direct: mode === 'direct' });
  for (const batch of DURABILITY_BATCHES) {
    for (const sector of batch.sectors) d.post(0, S.VIRTIO_BLK_T_OUT, sector, { out: durabilityData(sector, batch.fill) });
    if (!batch.together) {
      const used = await d.run(0, batch.sectors.length);
      if (used.length !== batch.sectors.length) throw new Error('writes did not complete');
    }
    const flush = d.post(0, S.VIRTIO_BLK_T_FLUSH, 0);
    const used = await d.run(0, batch.together ? batch.sectors.length + 1 : 1);
    if (!used.some((u) => u.id === flush.head) || d.status(flush) !== S.VIRTIO_BLK_S_OK) throw new Error('flush failed');
  }
  process.stdout.write('flushed\n');
  setInterval(() => {}, 60_000);
}

if (process.argv[1] && import.meta.url.endsWith(process.argv[1].split('/').pop()!)) {
  main().catch((error: unknown) => {
    process.stderr.write(`durability child: ${error instanceof Error ? error.stack : String(error)}\n`);
    process.exit(1);
  });
}
