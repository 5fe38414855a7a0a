/**
 * The opt-in Debian-kernel tier (`npm run test:debian-kernel`): Debian's stock cloud kernel
 * (guest-configs/build-debian-kernel.sh; the vmlinux extracted from its bzImage, since the
 * decompressor alone takes minutes on emulating hosts) boots with 2 vCPUs, every kvm device
 * over virtio-pci, and the check initramfs carrying Debian's virtio modules.
 *
 * The kernel side is checked everywhere: ACPI tables accepted, both CPUs brought up from the
 * MADT (this kernel has no MP-table parsing), each virtio device enumerated on the PCI bus,
 * the initramfs unpacked and /init started. Where guest userspace runs (hardware
 * virtualization), /init then loads the modules and its checks must all pass and power off
 * (status 0). On nested PVM hosts, where guest system calls fault, the run must end the way
 * that defect ends it: init killed, panic, reboot=k (status 32). Several minutes there.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, existsSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { assertKvmUsable, readMetrics, runKvm } from '../helpers/run-kvm.js';
import { checkInitramfs, debianKernel, rootfsImage } from '../helpers/guest-images.js';
import { HOST_ADDRESS, LinuxNetBed, TAP_NAME } from '../linux/linux-net-bed.js';
import { KVM_PVM_SYSFS } from '../../src/vmm/host-quirks.js';

const VIRTIO_PCI_VENDOR = '1af4';
/** Modern virtio-pci device ids: 0x1040 + virtio device type (1 net, 2 block, 3 console, 4 entropy). */
const VIRTIO_PCI_IDS = { net: '1041', block: '1042', console: '1043', entropy: '1044' } as const;

const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-debian-'));

test.before(async () => {
  await assertKvmUsable();
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

test("Debian's cloud kernel: ACPI SMP, every virtio-pci device enumerated, /init from the initramfs", async () => {
  const kernel = debianKernel();
  const initramfs = checkInitramfs(kernel.modules);
  const disk = path.join(dir, 'disk.ext4');
  copyFileSync(rootfsImage(), disk);
  const metricsFile = path.join(dir, 'metrics.json');
  const userspaceRuns = !existsSync(KVM_PVM_SYSFS);
  const net = await LinuxNetBed.create(dir);
  let run;
  try {
    run = await runKvm(
      ['run', '-k', kernel.vmlinux, '-i', initramfs, '-c', '2', '-m', '512', '--rng', '--console', 'virtio', '-d', disk,
        '-n', TAP_NAME, '--metrics', metricsFile,
        // Emulating hosts are slow enough for the soft-lockup watchdog to fire (quieted), and the
        // crypto self-tests (ffdhe/RSA modular arithmetic) alone take many minutes there (skipped).
        '-p', `console=ttyS0 nowatchdog cryptomgr.notests kvm.peer=${HOST_ADDRESS} kvm.checks=disk,net,rng`],
      { limitMs: 40 * 60_000, prefix: net.prefix },
    );
  } finally {
    await net.close();
  }
  const log = run.stdout;
  const context = `status ${run.status}\n${log.slice(-4000)}\n${run.stderr}`;
  assert.match(log, /Linux version 6\.1\.\S+-cloud-amd64/, context);
  assert.match(log, /ACPI: RSDP 0x00000000000E0000 \d+ \(v02 KVMTS/, context);
  assert.match(log, 'smp: Brought up 1 node, 2 CPUs', context);
  for (const [device, id] of Object.entries(VIRTIO_PCI_IDS)) {
    assert.match(log, new RegExp(`pci 0000:00:0\\d\\.0: \\[${VIRTIO_PCI_VENDOR}:${id}\\]`), `virtio ${device} on the PCI bus\n${context}`);
  }
  assert.match(log, 'Run /init as init process', context);
  const initAt = /\[\s*([\d.]+)\] Run \/init as init process/.exec(log)?.[1];
  console.log(`  Debian ${/Linux version (\S+)/.exec(log)?.[1]}: /init at ${initAt} s guest time; run ended after ${Math.round(run.ms / 1000)} s (status ${run.status})`);
  if (userspaceRuns) {
    for (const module of ['virtio_pci', 'virtio_blk', 'virtio_net', 'virtio_console', 'virtio-rng']) {
      assert.match(log, `kvm-init: insmod ${module} ok`, context);
    }
    assert.match(log, 'kvm-check: done 3 ok 0 failed', context);
    assert.is(run.status, 0, context);
    const metrics = readMetrics(metricsFile);
    assert.ok((metrics.devices['virtio-rng']?.bytes ?? 0) >= 64, JSON.stringify(metrics.devices));
  } else {
    assert.match(log, 'Kernel panic - not syncing: Attempted to kill init!', context);
    assert.is(run.status, 32, context);
  }
});

test.run();
