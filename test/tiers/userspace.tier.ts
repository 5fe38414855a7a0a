/**
 * The userspace tier (`npm run test:userspace`): Debian's stock cloud kernel, unpatched, with
 * its virtio modules and guest-configs' busybox check initramfs, whose /init loads them, mounts
 * the disk and writes a file, pings the host over virtio-net, reads /dev/hwrng and powers off.
 * Every device is checked twice: by the guest's `kvm-check:` lines and on the host (the file in
 * the image, dnsmasq's lease, kvm's --metrics counters). It needs a host whose KVM runs guest
 * userspace as hardware does: on nested PVM hosts (kvm_pvm) a stock kernel's system calls fault,
 * and this tier says so and fails rather than pretending (KVM_TIER_FORCE=1 runs it anyway).
 * The minimal kernel's userspace checks, which run on such hosts too, are part of `npm test`
 * (test/integration/linux-userspace.test.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertKvmUsable, readMetrics, runKvm, suiteCannotRun } from '../helpers/run-kvm.js';
import { checkInitramfs, debianKernel, rootfsImage } from '../helpers/guest-images.js';
import { GUEST_ADDRESS, HOST_ADDRESS, LinuxNetBed, TAP_NAME } from '../linux/linux-net-bed.js';
import { KVM_PVM_SYSFS } from '../../src/vmm/host-quirks.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-userspace-'));
let guests: {
  debian: { kernel: string; initramfs: string };
  rootfs: string;
};

test.before(async () => {
  if (existsSync(KVM_PVM_SYSFS) && !process.env.KVM_TIER_FORCE) {
    suiteCannotRun(
      'the userspace tier boots Debian\'s unpatched kernel and needs a host with hardware virtualization (VMX/SVM): ' +
        `this host's KVM is nested PVM (${KVM_PVM_SYSFS} exists), where a stock kernel's system calls from userspace fault; ` +
        'KVM_TIER_FORCE=1 runs it anyway',
    );
  }
  await assertKvmUsable();
  const debian = debianKernel();
  guests = {
    debian: { kernel: debian.vmlinuz, initramfs: checkInitramfs(debian.modules) },
    rootfs: rootfsImage(),
  };
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Boots `kernel` with the check initramfs and every device; asserts the guest's checks and the host's view. */
async function bootAndCheck(name: string, guest: { kernel: string; initramfs: string }, transport: 'pci' | 'mmio') {
  const disk = path.join(dir, `${name}-${transport}.ext4`);
  copyFileSync(guests.rootfs, disk);
  const metricsFile = path.join(dir, `${name}-${transport}-metrics.json`);
  const net = await LinuxNetBed.create(dir);
  let run;
  try {
    // Debian's kernel has no IP_PNP (no ip=dhcp): /init runs udhcpc.
    const params = `kvm.peer=${HOST_ADDRESS} kvm.checks=disk,net,rng kvm.then=poweroff`;
    run = await runKvm(
      ['run', '-k', guest.kernel, '-i', guest.initramfs, '-c', '2', '-m', '512', '--transport', transport, '--rng',
        '-d', disk, '-n', TAP_NAME, '--metrics', metricsFile, '-p', params],
      { limitMs: 600_000, prefix: net.prefix },
    );
  } finally {
    await net.close();
  }
  const log = run.stdout;
  const context = `status ${run.status}\n${log.slice(-4000)}\n${run.stderr}`;
  for (const check of ['disk', 'net', 'rng']) assert.match(log, `kvm-check: ${check} ok`, context);
  assert.match(log, 'kvm-check: done 3 ok 0 failed', context);
  // poweroff -f: ACPI S5.
  assert.is(run.status, 0, context);
  const wrote = execFileSync('debugfs', ['-R', 'cat /kvm-guest-wrote', disk], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] });
  assert.match(wrote, /^written by the guest [0-9a-f-]{36}$/m, 'the guest\'s file is in the image');
  assert.match(net.dhcpLog, new RegExp(`DHCPACK\\(${TAP_NAME}\\) ${GUEST_ADDRESS.replace(/\./g, '\\.')}`), net.dhcpLog);
  const metrics = readMetrics(metricsFile);
  assert.ok((metrics.devices['virtio-rng']?.bytes ?? 0) >= 64, JSON.stringify(metrics.devices));
  const netCounters = metrics.devices[`virtio-net:${TAP_NAME}`]!;
  // DHCP and three pings each way at least.
  assert.ok(netCounters.txFrames! >= 5 && netCounters.rxFrames! >= 5, JSON.stringify(netCounters));
}

test("Debian's cloud kernel (bzImage) over virtio-pci: its virtio modules load, the same checks", async () => {
  await bootAndCheck('debian', guests.debian, 'pci');
});

test("Debian's cloud kernel over virtio-mmio: its virtio_mmio module finds the devices in the DSDT (LNRO0005)", async () => {
  await bootAndCheck('debian', guests.debian, 'mmio');
});

test.run();
