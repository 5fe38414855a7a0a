/**
 * Real Linux: the minimal guest kernel (guest-configs/, built and cached on first use,
 * about 10 minutes on 2 cores) boots under kvm and its own drivers use our devices. Each
 * check reads the console log or the host side. The guest's /init exits at once, so each
 * run ends with the kernel's panic and reboot=k: status 32.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertKvmUsable, repoRoot, runKvm } from '../helpers/run-kvm.js';

/** What this host's emulator needs (see guest-configs/README.md); harmless elsewhere. */
const SLOW_HOST_PARAMS =
  'nokaslr noxsave noreplace-smp tsc=reliable clearcpuid=popcnt,smap,erms,fsrm,pni,ssse3,sse4_1,sse4_2,pclmulqdq,aes,sha_ni,movbe';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-linux-'));
let vmlinux = '';

function rootImage(name: string): string {
  const tree = path.join(dir, `${name}-tree`);
  mkdirSync(tree);
  execFileSync('gcc', ['-static', '-nostdlib', '-O2', '-o', path.join(tree, 'init'), path.join(repoRoot(), 'test', 'linux', 'init.c')]);
  const image = path.join(dir, `${name}.ext4`);
  writeFileSync(image, '');
  truncateSync(image, 64 * 2 ** 20);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, image]);
  return image;
}

function mountCount(image: string): number {
  const header = execFileSync('dumpe2fs', ['-h', image], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  return Number(/Mount count:\s+(\d+)/.exec(header)?.[1] ?? -1);
}

test.before(async () => {
  await assertKvmUsable();
  const build = spawnSync('bash', [path.join(repoRoot(), 'guest-configs', 'build-minimal-kernel.sh')], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: 40 * 60_000,
  });
  if (build.status !== 0) throw new Error(`building the minimal kernel failed (status ${build.status})`);
  vmlinux = build.stdout.trim().split('\n')[0]!;
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test('virtio-pci: 2 CPUs from the MP table, root on virtio-blk mounted read-write, hvc0 and hwrng', async () => {
  const image = rootImage('pci');
  assert.is(mountCount(image), 0);
  const run = await runKvm(
    ['run', '-k', vmlinux, '-c', '2', '-m', '256', '--rng', '--console', 'virtio', '-d', image,
      '-p', `console=ttyS0 console=hvc0 root=/dev/vda rw init=/init ${SLOW_HOST_PARAMS}`],
    { limitMs: 300_000 },
  );
  const log = run.stdout;
  assert.is(run.status, 32, `status ${run.status}\n${log.slice(-3000)}\n${run.stderr}`);
  assert.match(log, 'smp: Brought up 1 node, 2 CPUs');
  assert.match(log, /virtio_blk virtio\d+: \[vda\] 131072 512-byte logical blocks/);
  assert.match(log, 'EXT4-fs (vda): mounted filesystem');
  assert.match(log, 'random: crng init done');
  // After virtio-console registers, every message goes to both consoles: seen twice on our stdout.
  assert.is(log.split('Run /init as init process').length - 1, 2, 'hvc0 carries the kernel log');
  assert.is(mountCount(image), 1, 'the host sees the mount in the ext4 superblock');
});

test('virtio-mmio (virtio_mmio.device=): the same disk and rng found by the kernel', async () => {
  const image = rootImage('mmio');
  const run = await runKvm(
    ['run', '-k', vmlinux, '-m', '256', '--rng', '--transport', 'mmio', '-d', image, '-p', `root=/dev/vda rw init=/init ${SLOW_HOST_PARAMS}`],
    { limitMs: 300_000 },
  );
  const log = run.stdout;
  assert.is(run.status, 32, `status ${run.status}\n${log.slice(-3000)}\n${run.stderr}`);
  assert.match(log, /virtio_mmio\.device=4K@0xd0000000:5/);
  assert.match(log, /virtio_blk virtio\d+: \[vda\] 131072 512-byte logical blocks/);
  assert.match(log, 'EXT4-fs (vda): mounted filesystem');
  assert.match(log, 'Run /init as init process');
  assert.is(mountCount(image), 1);
});

test.run();
