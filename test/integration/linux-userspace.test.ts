/**
 * Guest userspace on the minimal kernel (guest-configs/, with its patch for hosts whose SYSCALL
 * stays in user mode): the default root image on virtio-blk, busybox init, and the checks of
 * guest-configs/init/checks.sh that its rcS runs for kvm.checks=. Every device is judged twice:
 * by the guest's `kvm-check:` lines and on the host (the file and the 8 MiB the guest wrote,
 * read from the image with debugfs; dnsmasq's lease; kvm's --metrics counters; a line the
 * guest wrote to /dev/hvc0, which only virtio-console can carry to our stdout).
 */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { copyFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertKvmUsable, readMetrics, runKvm } from '../helpers/run-kvm.js';
import { minimalKernel, rootfsImage } from '../helpers/guest-images.js';
import { requiresKvm } from '../helpers/kvm-host.js';
import { GUEST_ADDRESS, HOST_ADDRESS, LinuxNetBed, TAP_NAME } from '../linux/linux-net-bed.js';

/** Every test here boots a VM (skipped where the host has no /dev/kvm). */
const test = requiresKvm(uvuTest);

const CHECKS = ['disk', 'bulk', 'net', 'rng', 'cpus', 'console'];
const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-userspace-'));
let guest: { vmlinux: string; rootfs: string };

test.before(async () => {
  await assertKvmUsable();
  guest = { vmlinux: minimalKernel().vmlinux, rootfs: rootfsImage() };
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A file of the ext4 image, as the host reads it. */
function fileInImage(image: string, name: string): Buffer {
  const out = path.join(dir, `dump-${path.basename(image)}-${name}`);
  execFileSync('debugfs', ['-R', `dump /${name} ${out}`, image], { stdio: 'ignore' });
  return readFileSync(out);
}

function line(log: string, pattern: RegExp, context: string): string {
  const match = pattern.exec(log);
  assert.ok(match, `${pattern} not in the log\n${context}`);
  return match![1]!;
}

async function bootAndCheck(transport: 'pci' | 'mmio', then: 'poweroff' | 'reboot', status: number): Promise<void> {
  const image = path.join(dir, `rootfs-${transport}.ext4`);
  copyFileSync(guest.rootfs, image);
  const metricsFile = path.join(dir, `${transport}-metrics.json`);
  const net = await LinuxNetBed.create(dir);
  let run;
  try {
    run = await runKvm(
      ['run', '-k', guest.vmlinux, '-c', '2', '-m', '256', '--transport', transport, '--rng', '--console', 'virtio',
        '-d', image, '-n', TAP_NAME, '--metrics', metricsFile,
        '-p', `console=ttyS0 console=hvc0 root=/dev/vda rw ip=dhcp kvm.checks=${CHECKS.join(',')} kvm.cpus=2 ` +
          `kvm.peer=${HOST_ADDRESS} kvm.then=${then}`],
      { limitMs: 300_000, prefix: net.prefix },
    );
  } finally {
    await net.close();
  }
  const log = run.stdout;
  const context = `status ${run.status}\n${log.slice(-6000)}\n${run.stderr}`;
  // The guest's own verdicts.
  for (const check of CHECKS) assert.match(log, `kvm-check: ${check} ok`, context);
  assert.match(log, `kvm-check: done ${CHECKS.length} ok 0 failed`, context);
  // poweroff -f without ACPI halts every CPU (status 0); reboot -f resets (32).
  assert.is(run.status, status, context);
  assert.not.match(run.stderr, /data plane failed|did not stop/, run.stderr);

  // virtio-blk, from the host: the file and the 8 MiB are in the image, byte for byte.
  const wrote = line(log, /kvm-init: disk wrote: (written by the guest [0-9a-f-]{36})/, context);
  assert.is(fileInImage(image, 'kvm-guest-wrote').toString('utf8'), `${wrote}\n`);
  const guestSum = line(log, /kvm-init: bulk sha256: ([0-9a-f]{64})/, context);
  const bulk = fileInImage(image, 'kvm-bulk');
  assert.is(bulk.length, 8 * 2 ** 20);
  assert.is(createHash('sha256').update(bulk).digest('hex'), guestSum, 'the host reads what the guest wrote');

  // virtio-net: the guest's DHCP lease came from dnsmasq in the namespace; frames both ways.
  assert.match(net.dhcpLog, new RegExp(`DHCPACK\\(${TAP_NAME}\\) ${GUEST_ADDRESS.replace(/\./g, '\\.')}`), net.dhcpLog);
  assert.match(log, /kvm-init: net .* 3 packets transmitted, 3 packets received/, context);
  const metrics = readMetrics(metricsFile);
  const netCounters = metrics.devices[`virtio-net:${TAP_NAME}`]!;
  // DHCP and three pings each way at least.
  assert.ok(netCounters.txFrames! >= 5 && netCounters.rxFrames! >= 5, JSON.stringify(netCounters));

  // virtio-rng: the guest read 64 bytes of /dev/hwrng; kvm served at least as many.
  assert.ok((metrics.devices['virtio-rng']?.bytes ?? 0) >= 64, JSON.stringify(metrics.devices));
  // Two CPUs in /proc/cpuinfo; a line written to /dev/hvc0 reached our stdout.
  assert.match(log, 'kvm-init: cpus: 2 in /proc/cpuinfo', context);
  assert.match(log, /kvm-init: hvc0 carries this line [0-9a-f-]{36}/, context);
  assert.ok(metrics.devices['virtio-blk:vda']!.writes! > 0, JSON.stringify(metrics.devices['virtio-blk:vda']));
  assert.is(metrics.status, status);
}

test('minimal kernel, root on virtio-blk over virtio-pci: userspace uses every device, poweroff -f is status 0', async () => {
  await bootAndCheck('pci', 'poweroff', 0);
});

test('the same over virtio-mmio, ending with reboot -f: status 32', async () => {
  await bootAndCheck('mmio', 'reboot', 32);
});

test.run();
