/**
 * Durability that O_DIRECT cannot fake: the image is a loop device (over a file, itself with
 * O_DIRECT), so a FLUSH that reaches the device shows in its "flush I/Os" counter
 * (/sys/block/loopN/stat). Writes are completed first, then a FLUSH: the counter must rise
 * between the writes' completion and the flush's, in buffered and in `,direct` mode. (With
 * `,direct` no page of the image is ever dirty, so the page-cache check of durability.test.ts
 * passes even when FLUSH does nothing; this one does not.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BlkTestDevice, S, SECTOR } from './helpers.js';

/** Index of "flush I/Os" in /sys/block/<dev>/stat (Documentation/block/stat.rst, field 16). */
const STAT_FLUSH_IOS = 15;

function flushCount(device: string): number {
  const fields = readFileSync(`/sys/block/${path.basename(device)}/stat`, 'utf8').trim().split(/\s+/);
  const value = fields[STAT_FLUSH_IOS];
  if (value === undefined) throw new Error(`/sys/block/${path.basename(device)}/stat has no flush counter (kernel older than 5.5)`);
  return Number(value);
}

async function flushReachesDevice(mode: 'buffered' | 'direct'): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-durable-loop-'));
  const backing = path.join(dir, 'backing.img');
  writeFileSync(backing, new Uint8Array(4 << 20));
  const attach = spawnSync('losetup', ['--find', '--show', '--direct-io=on', backing], { encoding: 'utf8' });
  if (attach.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`losetup: ${attach.stderr.trim()}: this test needs loop devices (root)`);
  }
  const device = attach.stdout.trim();
  try {
    const d = await BlkTestDevice.create({ path: device, direct: mode === 'direct' });
    try {
      for (const sector of [0, 64, 1000]) {
        const out = new Uint8Array(8 * SECTOR).fill((sector & 0xfe) | 1);
        assert.is((await d.request(S.VIRTIO_BLK_T_OUT, sector, { out })).status, S.VIRTIO_BLK_S_OK);
      }
      const before = flushCount(device);
      assert.is((await d.request(S.VIRTIO_BLK_T_FLUSH, 0)).status, S.VIRTIO_BLK_S_OK);
      const after = flushCount(device);
      assert.ok(after > before, `${mode}: the device saw no flush (flush I/Os ${before} → ${after})`);
    } finally {
      await d.close();
    }
  } finally {
    spawnSync('losetup', ['-d', device]);
    rmSync(dir, { recursive: true, force: true });
  }
}

test('buffered: a completed FLUSH has reached the block device under the image', async () => {
  await flushReachesDevice('buffered');
});

test('direct: a completed FLUSH has reached the block device under the image', async () => {
  await flushReachesDevice('direct');
});

test.run();
