/**
 * Real Linux: the minimal guest kernel (guest-configs/, built and cached on first use,
 * about 10 minutes on 2 cores) boots under kvm and its own drivers use our devices. Each
 * check reads the console log or the host side (the ext4 superblock, dnsmasq's log, the
 * netconsole datagrams, kvm's --metrics counters). The guest's /init exits at once, so each
 * run ends with the kernel's panic and reboot=k: status 32. On nested PVM hosts kvm's host
 * quirks add the kernel parameters this host's emulator needs (src/vmm/host-quirks.ts).
 */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, mkdirSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertKvmUsable, readMetrics, repoRoot, runKvm } from '../helpers/run-kvm.js';
import { minimalKernel } from '../helpers/guest-images.js';
import { GUEST_ADDRESS, LinuxNetBed, TAP_NAME } from '../linux/linux-net-bed.js';
import { requiresKvm } from '../helpers/kvm-host.js';

/** Every test here boots a VM (skipped where the host has no /dev/kvm). */
const test = requiresKvm(uvuTest);

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
  vmlinux = minimalKernel().vmlinux;
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

/**
 * One boot with every device kvm has, over one transport: the kernel's own drivers must find
 * and use each, and each check reads the console log or the host side.
 */
async function bootWithEveryDevice(transport: 'pci' | 'mmio'): Promise<void> {
  const image = rootImage(transport);
  assert.is(mountCount(image), 0);
  const metricsFile = path.join(dir, `${transport}-metrics.json`);
  const net = await LinuxNetBed.create(dir);
  let run;
  try {
    run = await runKvm(
      ['run', '-k', vmlinux, '-c', '2', '-m', '256', '--transport', transport, '--rng', '--console', 'virtio', '-d', image,
        '-n', TAP_NAME, '--metrics', metricsFile,
        '-p', `console=ttyS0 console=hvc0 root=/dev/vda rw init=/init ${net.kernelParams}`],
      { limitMs: 300_000, prefix: net.prefix },
    );
  } finally {
    await net.close();
  }
  const log = run.stdout;
  const context = `status ${run.status}\n${log.slice(-4000)}\n${run.stderr}`;
  // The guest's /init ends at once (or faults where userspace cannot run): panic, then reboot=k.
  assert.is(run.status, 32, context);
  // The guest ends with its devices live (no reset): every data-plane thread must still end cleanly.
  assert.not.match(run.stderr, /data plane failed|did not stop/, run.stderr);
  if (transport === 'mmio') assert.match(log, /virtio_mmio\.device=4K@0xd0000000:5/);
  // -c 2: both CPUs from the MP table (this kernel has no ACPI).
  assert.match(log, 'smp: Brought up 1 node, 2 CPUs', context);
  // virtio-blk: root mounted read-write, and the host sees the mount in the superblock.
  assert.match(log, /virtio_blk virtio\d+: \[vda\] 131072 512-byte logical blocks/, context);
  // One request queue per vCPU, each served by its own data-plane thread.
  assert.match(log, /virtio_blk virtio\d+: 2\/0\/0 default\/read\/poll queues/, context);
  assert.match(log, 'EXT4-fs (vda): mounted filesystem', context);
  assert.is(mountCount(image), 1, 'the host sees the mount in the ext4 superblock');
  // virtio-console: after hvc0 registers, every message goes to both consoles (both reach our stdout).
  assert.is(log.split('Run /init as init process').length - 1, 2, 'hvc0 carries the kernel log');
  // virtio-net: DHCP answered by dnsmasq in the namespace, netconsole's UDP received there.
  assert.match(log, `IP-Config: Complete:`, context);
  assert.match(log, new RegExp(`addr=${GUEST_ADDRESS.replace(/\./g, '\\.')}`), context);
  assert.match(net.dhcpLog, new RegExp(`DHCPACK\\(${TAP_NAME}\\) ${GUEST_ADDRESS.replace(/\./g, '\\.')}`), net.dhcpLog);
  assert.match(net.netconsole, 'Run /init as init process', `netconsole received:\n${net.netconsole}`);
  // virtio-rng: the kernel's hwrng read entropy; the host counted what it served.
  const metrics = readMetrics(metricsFile);
  assert.is(metrics.status, 32);
  assert.ok((metrics.devices['virtio-rng']?.bytes ?? 0) > 0, `hwrng bytes served: ${JSON.stringify(metrics.devices)}`);
  assert.ok(metrics.devices['virtio-blk:vda']!.reads! > 0, JSON.stringify(metrics.devices['virtio-blk:vda']));
  const netCounters = metrics.devices[`virtio-net:${TAP_NAME}`]!;
  assert.ok(netCounters.txFrames! > 0 && netCounters.rxFrames! > 0, JSON.stringify(netCounters));
}

test('virtio-pci: every device found and used by Linux 6.1, 2 CPUs from the MP table', async () => {
  await bootWithEveryDevice('pci');
});

test('virtio-mmio (virtio_mmio.device=): every device found and used by Linux 6.1', async () => {
  await bootWithEveryDevice('mmio');
});

test.run();
