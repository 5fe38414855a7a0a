/**
 * virtio-blk over other backings than a file on ext4: a block device (loop
 * device: size from the device, discard and write-zeroes by the block-device
 * fallocate modes) and a file on tmpfs (no ZERO_RANGE: write-zeroes falls
 * back to punching a hole).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { BlkTestDevice, S, SECTOR, pattern } from './helpers.js';

function dwz(sector: number, count: number, flags = 0): Uint8Array {
  const bytes = new Uint8Array(16);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, BigInt(sector), true);
  v.setUint32(8, count, true);
  v.setUint32(12, flags, true);
  return bytes;
}

test('a loop block device: capacity from the device, reads, writes, discard and write-zeroes', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-blk-loop-'));
  const backing = path.join(dir, 'backing.img');
  writeFileSync(backing, pattern(0, 2048 * SECTOR));
  const attach = spawnSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' });
  if (attach.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`losetup: ${attach.stderr.trim()}: the block-device backing case needs loop devices (the tests need root)`);
  }
  const device = attach.stdout.trim();
  try {
    const d = await BlkTestDevice.create({ path: device });
    try {
      assert.ok(d.image.blockDevice);
      assert.is(d.config(S.BLK_CFG_CAPACITY, 8), 2048n);
      const read = await d.request(S.VIRTIO_BLK_T_IN, 100, { inLength: 4 * SECTOR });
      assert.equal(Array.from(read.data), Array.from(pattern(100 * SECTOR, 4 * SECTOR)));
      const out = new Uint8Array(8 * SECTOR).fill(0x42);
      assert.is((await d.request(S.VIRTIO_BLK_T_OUT, 200, { out })).status, S.VIRTIO_BLK_S_OK);
      assert.is((await d.request(S.VIRTIO_BLK_T_FLUSH, 0)).status, S.VIRTIO_BLK_S_OK);
      assert.is((await d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: dwz(300, 16) })).status, S.VIRTIO_BLK_S_OK);
      assert.is((await d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: dwz(400, 16, 1) })).status, S.VIRTIO_BLK_S_OK);
      assert.is((await d.request(S.VIRTIO_BLK_T_DISCARD, 0, { out: dwz(512, 64) })).status, S.VIRTIO_BLK_S_OK);
      assert.is((await d.request(S.VIRTIO_BLK_T_IN, 2047, { inLength: 2 * SECTOR })).status, S.VIRTIO_BLK_S_IOERR, 'past the device end');
      const zeroed = await d.request(S.VIRTIO_BLK_T_IN, 300, { inLength: 16 * SECTOR });
      assert.ok(zeroed.data.every((b) => b === 0));
      const unmapped = await d.request(S.VIRTIO_BLK_T_IN, 400, { inLength: 16 * SECTOR });
      assert.ok(unmapped.data.every((b) => b === 0));
    } finally {
      await d.close();
    }
    spawnSync('sync');
    const image = readFileSync(backing);
    assert.ok(image.subarray(200 * SECTOR, 208 * SECTOR).every((b) => b === 0x42), 'the write reached the backing file');
    assert.ok(image.subarray(300 * SECTOR, 316 * SECTOR).every((b) => b === 0), 'write-zeroes reached the backing file');
    assert.ok(image.subarray(299 * SECTOR, 300 * SECTOR).equals(pattern(299 * SECTOR, SECTOR)));
  } finally {
    spawnSync('losetup', ['-d', device]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('tmpfs (no ZERO_RANGE): write-zeroes still zeroes, by punching a hole', async () => {
  if (!existsSync('/dev/shm')) {
    throw new Error('no /dev/shm here: the tmpfs backing case cannot run');
  }
  const dir = mkdtempSync('/dev/shm/kvm-blk-');
  const file = path.join(dir, 'disk.img');
  writeFileSync(file, pattern(0, 256 * SECTOR));
  try {
    const d = await BlkTestDevice.create({ path: file });
    try {
      assert.is((await d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: dwz(16, 32) })).status, S.VIRTIO_BLK_S_OK);
      assert.is((await d.request(S.VIRTIO_BLK_T_DISCARD, 0, { out: dwz(64, 8) })).status, S.VIRTIO_BLK_S_OK);
    } finally {
      await d.close();
    }
    const image = readFileSync(file);
    assert.ok(image.subarray(16 * SECTOR, 48 * SECTOR).every((b) => b === 0));
    assert.ok(image.subarray(15 * SECTOR, 16 * SECTOR).equals(pattern(15 * SECTOR, SECTOR)));
    assert.ok(image.subarray(48 * SECTOR, 49 * SECTOR).equals(pattern(48 * SECTOR, SECTOR)));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
