/**
 * virtio-blk request queues: one per vCPU unless the disk says queues=N, clamped to
 * MAX_DISK_QUEUES (vm.ts passes the vCPU count to blkOptionsFor as the default).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { MAX_CPUS } from '../../src/boot/acpi/index.js';
import { parseCommand } from '../../src/cli/args.js';
import { blkOptionsFor } from '../../src/builder/blk-options.js';
import { openDisks, type DiskImage } from '../../src/disk/disk-image.js';
import { MAX_DISK_QUEUES } from '../../src/disk/disk-spec.js';

/** An opened image as blkOptionsFor sees it (no file behind it). */
function image(queues?: number): DiskImage {
  return {
    path: '/images/root.img',
    fd: 99,
    sizeBytes: 1 << 20,
    readOnly: false,
    direct: false,
    blockDevice: false,
    serial: 'root.img-00000000',
    ...(queues !== undefined ? { queues } : {}),
    close() {},
  };
}

test('by default one queue per vCPU', () => {
  for (const cpus of [1, 2, 3, 4, 8, 16, 32]) {
    assert.is(blkOptionsFor(image(), 'vda', cpus).queues, cpus, `${cpus} vCPUs`);
  }
});

test('the default is clamped to MAX_DISK_QUEUES (64), and never below one', () => {
  assert.is(MAX_DISK_QUEUES, 64);
  assert.ok(MAX_CPUS > MAX_DISK_QUEUES, 'a VM may have more vCPUs than a disk gets queues');
  assert.is(blkOptionsFor(image(), 'vda', MAX_DISK_QUEUES).queues, MAX_DISK_QUEUES);
  assert.is(blkOptionsFor(image(), 'vda', MAX_DISK_QUEUES + 1).queues, MAX_DISK_QUEUES);
  assert.is(blkOptionsFor(image(), 'vda', MAX_CPUS).queues, MAX_DISK_QUEUES);
  assert.is(blkOptionsFor(image(), 'vda', 0).queues, 1);
});

test('queues=N wins over the vCPU count, fewer or more', () => {
  assert.is(blkOptionsFor(image(3), 'vda', 8).queues, 3);
  assert.is(blkOptionsFor(image(16), 'vda', 2).queues, 16);
  assert.is(blkOptionsFor(image(1), 'vda', MAX_CPUS).queues, 1);
  assert.is(blkOptionsFor(image(MAX_DISK_QUEUES), 'vda', 1).queues, MAX_DISK_QUEUES);
});

test('from the command line: -c and queues=N through the opened images, as vm.ts wires them', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-blk-queues-'));
  try {
    chmodSync(dir, 0o755);
    const a = path.join(dir, 'a.img');
    const b = path.join(dir, 'b.img');
    writeFileSync(a, new Uint8Array(4096));
    writeFileSync(b, new Uint8Array(4096));
    const queuesFor = (args: string[]): number[] => {
      const command = parseCommand(['run', '-k', 'vmlinux', ...args]);
      if (command.kind !== 'run') throw new Error(`not a run: ${command.kind}`);
      const disks = openDisks(command.config.disks ?? []);
      try {
        return disks.map((disk, i) => blkOptionsFor(disk, `vd${'ab'[i]}`, command.config.cpus).queues);
      } finally {
        disks.forEach((disk) => disk.close());
      }
    };
    assert.equal(queuesFor(['-d', a]), [1], 'one vCPU by default: one queue');
    assert.equal(queuesFor(['-c', '4', '-d', a, '-d', `${b},queues=2`]), [4, 2]);
    assert.equal(queuesFor(['--cpus', '100', '-d', a, '--disk', `${b},queues=7`]), [MAX_DISK_QUEUES, 7]);
    assert.equal(queuesFor(['-c', '1', '-d', `${a},queues=64`]), [64]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
