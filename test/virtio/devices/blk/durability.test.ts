/**
 * Durability: a write completed before a FLUSH that completed is on stable
 * storage. A child process (the VMM side) writes and flushes through the real
 * data plane; the moment it reports the flush complete, the test checks with
 * cachestat(2) that no page of the image is still dirty or under writeback in
 * the host's page cache (so the data does not depend on the VMM's or the
 * kernel's later work), SIGKILLs the child, and reads the image back.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { O_RDONLY, close, open } from '../../../../src/sys/fd.js';
import { pageCacheState } from '../../../helpers/host-bindings.js';
import { DURABILITY_BATCHES, DURABILITY_SECTORS_PER_WRITE, durabilityData } from './durability-child.js';
import { SECTOR } from './helpers.js';

const child = fileURLToPath(new URL('./durability-child.js', import.meta.url));
const IMAGE_SECTORS = 512;

async function crashAfterFlush(mode: 'buffered' | 'direct'): Promise<void> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-durable-'));
  const file = path.join(dir, 'disk.img');
  try {
    writeFileSync(file, new Uint8Array(IMAGE_SECTORS * SECTOR));
    const vmm = spawn(process.execPath, [child, file, mode], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stderr = '';
    vmm.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const exited = new Promise<NodeJS.Signals | null>((resolve) => vmm.on('exit', (_code, signal) => resolve(signal)));
    await new Promise<void>((resolve, reject) => {
      vmm.stdout.on('data', (d: Buffer) => d.toString().includes('flushed') && resolve());
      void exited.then(() => reject(new Error(`the VMM side exited before its flush completed: ${stderr}`)));
      setTimeout(() => reject(new Error('no flush completion in 20 s')), 20_000);
    });
    // At this instant, nothing of the image may be waiting in the page cache for writeback.
    const fd = open(file, O_RDONLY);
    const cache = pageCacheState(fd, 0, IMAGE_SECTORS * SECTOR);
    close(fd);
    // A SIGKILL never loses the page cache: only this check tells a flush that reached the disk.
    if (!cache) throw new Error('cachestat(2) is unavailable: cannot tell whether flushed data left the page cache');
    assert.is(cache.dirty, 0, `${mode}: dirty pages after the flush completed`);
    assert.is(cache.writeback, 0, `${mode}: pages under writeback after the flush completed`);
    vmm.kill('SIGKILL');
    assert.is(await exited, 'SIGKILL');
    const image = readFileSync(file);
    for (const batch of DURABILITY_BATCHES) {
      for (const sector of batch.sectors) {
        const at = sector * SECTOR;
        const expected = durabilityData(sector, batch.fill);
        assert.ok(image.subarray(at, at + expected.length).equals(expected), `${mode}: sector ${sector} lost`);
      }
    }
    // Everything else is still zero: no write went astray.
    const written = new Set(DURABILITY_BATCHES.flatMap((b) => b.sectors.flatMap((s) => Array.from({ length: DURABILITY_SECTORS_PER_WRITE }, (_, i) => s + i))));
    for (let s = 0; s < IMAGE_SECTORS; s++) {
      if (!written.has(s)) assert.ok(image.subarray(s * SECTOR, (s + 1) * SECTOR).every((b) => b === 0), `${mode}: sector ${s} changed`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

test('buffered: writes completed before a completed FLUSH survive SIGKILL of the VMM, and none is left dirty', async () => {
  await crashAfterFlush('buffered');
});

test('direct: the same with O_DIRECT', async () => {
  await crashAfterFlush('direct');
});

test.run();
