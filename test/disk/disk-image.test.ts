/** Opening disk images: every way a named disk can be unusable, locking between VMMs, block devices. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, fstatSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import os from 'node:os';
import path from 'node:path';
import { DiskError, type DiskErrorKind } from '../../src/disk/disk-error.js';
import { defaultSerial, openDiskImage } from '../../src/disk/disk-image.js';
import type { DiskSpec } from '../../src/disk/disk-spec.js';
import { scratchMount } from '../helpers/scratch-mount.js';

const diskImageModule = new URL('../../src/disk/disk-image.js', import.meta.url).href;

function workdir(): { dir: string; file(name: string, bytes?: number): string; done(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-disk-'));
  chmodSync(dir, 0o755);
  return {
    dir,
    file(name, bytes = 4096) {
      const file = path.join(dir, name);
      writeFileSync(file, new Uint8Array(bytes).fill(1));
      return file;
    },
    done: () => rmSync(dir, { recursive: true, force: true }),
  };
}

function spec(file: string, extra: Partial<DiskSpec> = {}): DiskSpec {
  return { path: file, readOnly: false, direct: false, ...extra };
}

function expectError(kind: DiskErrorKind, status: number, open: () => unknown): string {
  try {
    const image = open() as { close?: () => void };
    image.close?.();
  } catch (error) {
    assert.instance(error, DiskError);
    assert.is((error as DiskError).kind, kind, (error as Error).message);
    assert.is((error as DiskError).status, status);
    assert.not.match((error as Error).message, /\n/);
    return (error as Error).message;
  }
  assert.unreachable(`expected a ${kind} error`);
  return '';
}

test('a regular file opens read-write with its size, a default serial and a write lock', () => {
  const w = workdir();
  try {
    const file = w.file('root.img', 10 * 512 + 7);
    const image = openDiskImage(spec(file));
    assert.is(image.sizeBytes, 10 * 512 + 7);
    assert.not.ok(image.readOnly);
    assert.not.ok(image.blockDevice);
    assert.match(image.serial, /^root\.img-[0-9a-f]{8}$/);
    assert.is(image.serial, defaultSerial(file));
    assert.is(image.bufferedFd, undefined);
    image.close();
    image.close(); // idempotent
  } finally {
    w.done();
  }
});

test('the default serial differs for same-named images in different folders and fits 20 bytes', () => {
  const a = defaultSerial('/srv/a/rootfs.img');
  const b = defaultSerial('/srv/b/rootfs.img');
  assert.is.not(a, b);
  assert.ok(Buffer.byteLength(defaultSerial('/x/a-very-long-image-name-indeed.qcow-raw')) <= 20);
});

test('missing path, directory, FIFO, empty and sub-sector files are refused with status 2', () => {
  const w = workdir();
  try {
    assert.match(expectError('missing', 2, () => openDiskImage(spec(path.join(w.dir, 'nope.img')))), /no such file/);
    assert.match(expectError('missing', 2, () => openDiskImage(spec(path.join(w.dir, 'nope', 'deeper.img')))), /no such file/);
    mkdirSync(path.join(w.dir, 'sub'));
    assert.match(expectError('not-a-disk', 2, () => openDiskImage(spec(path.join(w.dir, 'sub')))), /directory/);
    spawnSync('mkfifo', [path.join(w.dir, 'fifo')]);
    expectError('not-a-disk', 2, () => openDiskImage(spec(path.join(w.dir, 'fifo'))));
    expectError('not-a-disk', 2, () => openDiskImage(spec('/dev/null')));
    assert.match(expectError('empty', 2, () => openDiskImage(spec(w.file('empty.img', 0)))), /empty/);
    assert.match(expectError('empty', 2, () => openDiskImage(spec(w.file('tiny.img', 100)))), /smaller than one 512-byte sector/);
  } finally {
    w.done();
  }
});

test('a read-only file needs ,ro (even for root); with ,ro it opens and takes a shared lock', () => {
  const w = workdir();
  try {
    const file = w.file('ro.img');
    chmodSync(file, 0o444);
    assert.match(expectError('read-only', 2, () => openDiskImage(spec(file))), /add ,ro/);
    const a = openDiskImage(spec(file, { readOnly: true }));
    const b = openDiskImage(spec(file, { readOnly: true }));
    assert.ok(a.readOnly && b.readOnly, 'two read-only users share the image');
    a.close();
    b.close();
  } finally {
    w.done();
  }
});

test('a writer excludes every other user of the image, and a reader excludes writers', () => {
  const w = workdir();
  try {
    const file = w.file('shared.img');
    const writer = openDiskImage(spec(file));
    assert.match(expectError('locked', 4, () => openDiskImage(spec(file))), /in use by another VMM/);
    expectError('locked', 4, () => openDiskImage(spec(file, { readOnly: true })));
    writer.close();
    const reader = openDiskImage(spec(file, { readOnly: true }));
    expectError('locked', 4, () => openDiskImage(spec(file)));
    reader.close();
    openDiskImage(spec(file)).close();
  } finally {
    w.done();
  }
});

test('the lock holds against a second process, and goes with it', async () => {
  const w = workdir();
  try {
    const file = w.file('vm.img');
    const child = spawn(
      process.execPath,
      ['--input-type=module', '-e', `const m = await import(${JSON.stringify(diskImageModule)}); m.openDiskImage({ path: ${JSON.stringify(file)}, readOnly: false, direct: false }); console.log('open'); setInterval(() => {}, 1000);`],
      { stdio: ['ignore', 'pipe', 'inherit'] },
    );
    await new Promise<void>((resolve, reject) => {
      child.stdout.on('data', (d: Buffer) => d.toString().includes('open') && resolve());
      child.on('exit', (code) => reject(new Error(`child exited ${code}`)));
    });
    expectError('locked', 4, () => openDiskImage(spec(file)));
    child.kill('SIGKILL');
    await new Promise((resolve) => child.on('exit', resolve));
    openDiskImage(spec(file)).close();
  } finally {
    w.done();
  }
});

test('no permission: a user who may not read the file gets a permission error', () => {
  const w = workdir();
  try {
    const file = w.file('secret.img');
    chmodSync(file, 0o600);
    const script = `const m = await import(${JSON.stringify(diskImageModule)}); try { m.openDiskImage({ path: ${JSON.stringify(file)}, readOnly: true, direct: false }); console.log('opened'); } catch (e) { console.log(e.kind + ': ' + e.message); }`;
    const asNobody = spawnSync(process.execPath, ['--input-type=module', '-e', script], { uid: 65534, gid: 65534, encoding: 'utf8' });
    assert.is(asNobody.stdout.trim(), `permission: disk ${file}: permission denied`, asNobody.stderr);
  } finally {
    w.done();
  }
});

test('direct: O_DIRECT with the filesystem\'s alignment, and a second fd without it', () => {
  const w = workdir();
  try {
    const image = openDiskImage(spec(w.file('d.img', 1 << 20), { direct: true }));
    assert.ok(image.direct);
    assert.ok(image.bufferedFd !== undefined && image.bufferedFd !== image.fd);
    assert.ok(image.directMemoryAlign! >= 1 && image.directOffsetAlign! >= 512, `${image.directMemoryAlign}/${image.directOffsetAlign}`);
    image.close();
  } finally {
    w.done();
  }
});

test('direct: the second fd is the image that was opened, however often its path is replaced meanwhile', async () => {
  const w = workdir();
  // Another thread keeps replacing the image's path (atomically, by rename) with one of two files.
  const file = path.join(w.dir, 'swapped.img');
  const inodes = [w.file('a.img', 1 << 16), w.file('b.img', 1 << 16)];
  const swapper = new Worker(
    `const fs = require('node:fs'); const { workerData: d } = require('node:worker_threads');
     for (let i = 0; ; i++) { const t = d.file + '.t'; fs.linkSync(d.inodes[i % 2], t); fs.renameSync(t, d.file); }`,
    { eval: true, workerData: { file, inodes } },
  );
  try {
    writeFileSync(file, new Uint8Array(1 << 16));
    const deadline = Date.now() + 1500;
    let opens = 0;
    while (Date.now() < deadline) {
      let image;
      try {
        image = openDiskImage(spec(file, { direct: true }));
      } catch (error) {
        if (error instanceof DiskError && error.kind === 'missing') continue; // between the link and the rename
        throw error;
      }
      try {
        opens++;
        const [a, b] = [fstatSync(image.fd), fstatSync(image.bufferedFd!)];
        assert.ok(a.ino === b.ino && a.dev === b.dev, `open ${opens}: the buffered fd is inode ${b.ino}, the image inode ${a.ino}`);
      } finally {
        image.close();
      }
    }
    assert.ok(opens > 50, `only ${opens} opens`);
  } finally {
    await swapper.terminate();
    w.done();
  }
});

test('direct: misaligned writes through the second fd land in the opened image after its path is replaced', () => {
  const w = workdir();
  try {
    const file = w.file('live.img', 1 << 16);
    const image = openDiskImage(spec(file, { direct: true }));
    try {
      const original = path.join(w.dir, 'moved.img');
      spawnSync('mv', [file, original]);
      w.file('live.img', 1 << 16); // someone else's file now has the name
      writeSync(image.bufferedFd!, Buffer.from('misaligned'), 0, 10, 3);
      assert.is(readFileSync(original).subarray(3, 13).toString(), 'misaligned');
      assert.ok(readFileSync(file).every((b) => b === 1), 'the file now at the path is untouched');
    } finally {
      image.close();
    }
  } finally {
    w.done();
  }
});

test('an image on a read-only filesystem needs ,ro (status 2); with ,ro it opens', () => {
  const mount = scratchMount('tmpfs');
  try {
    const file = mount.file('rofs.img');
    mount.remountReadOnly();
    const message = expectError('read-only', 2, () => openDiskImage(spec(file)));
    assert.is(message, `disk ${file}: on a read-only filesystem; add ,ro to attach it read-only`);
    expectError('read-only', 2, () => openDiskImage(spec(file, { direct: true })));
    const image = openDiskImage(spec(file, { readOnly: true }));
    assert.ok(image.readOnly);
    assert.is(image.sizeBytes, 4096);
    image.close();
  } finally {
    mount.done();
  }
});

test('direct on a filesystem that refuses O_DIRECT (ramfs): an io error, status 4; without direct it opens', () => {
  const mount = scratchMount('ramfs');
  try {
    const file = mount.file('nodirect.img');
    const message = expectError('io', 4, () => openDiskImage(spec(file, { direct: true })));
    assert.is(message, `disk ${file}: the filesystem does not support O_DIRECT (drop ,direct)`);
    expectError('io', 4, () => openDiskImage(spec(file, { direct: true, readOnly: true })));
    openDiskImage(spec(file)).close();
  } finally {
    mount.done();
  }
});

test('a block device (loop device) opens with its size from BLKGETSIZE64', () => {
  const w = workdir();
  const backing = w.file('loop.img', 3 << 20);
  const attach = spawnSync('losetup', ['--find', '--show', backing], { encoding: 'utf8' });
  if (attach.status !== 0) {
    w.done();
    throw new Error(`losetup: ${attach.stderr.trim()}: the block-device open case needs loop devices (the tests need root)`);
  }
  const device = attach.stdout.trim();
  try {
    const image = openDiskImage(spec(device, { serial: 'LOOP' }));
    assert.ok(image.blockDevice);
    assert.is(image.sizeBytes, 3 << 20);
    assert.is(image.serial, 'LOOP');
    expectError('locked', 4, () => openDiskImage(spec(device)));
    image.close();
  } finally {
    spawnSync('losetup', ['-d', device]);
    w.done();
  }
});

test.run();
