/**
 * The userspace tier (`npm run test:userspace`): Linux guests whose /init (guest-configs'
 * busybox check initramfs) mounts the disk and writes a file, pings the host over virtio-net,
 * reads /dev/hwrng and powers off. Every device is checked twice: by the guest's
 * `kvm-check:` lines and on the host (the file in the image, dnsmasq's lease, kvm's
 * --metrics counters). It needs a host whose KVM runs guest userspace, i.e. hardware
 * virtualization: on nested PVM hosts (kvm_pvm) guest system calls fault, and this tier says
 * so and fails rather than pretending (KVM_TIER_FORCE=1 runs it anyway).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertKvmUsable, readMetrics, runKvm, suiteCannotRun } from '../helpers/run-kvm.js';
import { checkInitramfs, debianKernel, minimalKernel, rootfsImage } from '../helpers/guest-images.js';
import { GUEST_ADDRESS, HOST_ADDRESS, LinuxNetBed, TAP_NAME } from '../linux/linux-net-bed.js';
import { KVM_PVM_SYSFS } from '../../src/vmm/host-quirks.js';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-userspace-'));
let guests: {
  minimal: { kernel: string; initramfs: string };
  debian: { kernel: string; initramfs: string };
  rootfs: string;
};

test.before(async () => {
  if (existsSync(KVM_PVM_SYSFS) && !process.env.KVM_TIER_FORCE) {
    suiteCannotRun(
      'the userspace tier needs a host with hardware virtualization (VMX/SVM): this host\'s KVM is nested PVM ' +
        `(${KVM_PVM_SYSFS} exists), where guest userspace cannot make system calls; KVM_TIER_FORCE=1 runs it anyway`,
    );
  }
  await assertKvmUsable();
  const debian = debianKernel();
  guests = {
    minimal: { kernel: minimalKernel().bzImage, initramfs: checkInitramfs() },
    debian: { kernel: debian.vmlinuz, initramfs: checkInitramfs(debian.modules) },
    rootfs: rootfsImage(),
  };
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

/** Boots `kernel` with the check initramfs and every device; asserts the guest's checks and the host's view. */
async function bootAndCheck(name: string, guest: { kernel: string; initramfs: string }, transport: 'pci' | 'mmio', kernelDhcp: boolean) {
  const disk = path.join(dir, `${name}-${transport}.ext4`);
  copyFileSync(guests.rootfs, disk);
  const metricsFile = path.join(dir, `${name}-${transport}-metrics.json`);
  const net = await LinuxNetBed.create(dir);
  let run;
  try {
    // The minimal kernel configures eth0 itself (ip=dhcp); Debian's has no IP_PNP, so /init runs udhcpc.
    const params = `${kernelDhcp ? 'ip=dhcp ' : ''}kvm.peer=${HOST_ADDRESS} kvm.checks=disk,net,rng kvm.then=poweroff`;
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
  // poweroff -f: ACPI S5 (Debian's kernel), or every vCPU halted with interrupts off (the minimal kernel has no ACPI).
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

test('minimal kernel (bzImage) over virtio-pci: disk, network and hwrng from guest userspace, then power off', async () => {
  await bootAndCheck('minimal', guests.minimal, 'pci', true);
});

test('minimal kernel over virtio-mmio: the same checks', async () => {
  await bootAndCheck('minimal', guests.minimal, 'mmio', true);
});

test("Debian's cloud kernel (bzImage) over virtio-pci: its virtio modules load, the same checks", async () => {
  await bootAndCheck('debian', guests.debian, 'pci', false);
});

test("Debian's cloud kernel over virtio-mmio: its virtio_mmio module finds the devices in the DSDT (LNRO0005)", async () => {
  await bootAndCheck('debian', guests.debian, 'mmio', false);
});

test.run();
