/**
 * The guests guest-configs/ builds from Debian packages (cached in ~/.cache/kvm-guests, built
 * on first use): each script prints its output paths, one per line.
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';
import { repoRoot, suiteCannotRun } from './run-kvm.js';

function build(script: string, args: readonly string[] = [], minutes = 40): string[] {
  const run = spawnSync('bash', [path.join(repoRoot(), 'guest-configs', script), ...args], {
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'inherit'],
    timeout: minutes * 60_000,
  });
  if (run.status !== 0) suiteCannotRun(`guest-configs/${script} failed (status ${run.status ?? run.signal})`);
  return run.stdout.trim().split('\n');
}

/** The minimal kernel from linux-source-6.1 + guest-configs/minimal.config (about 10 minutes the first time). */
export function minimalKernel(): { vmlinux: string; bzImage: string } {
  const [vmlinux, bzImage] = build('build-minimal-kernel.sh');
  return { vmlinux: vmlinux!, bzImage: bzImage! };
}

/** Debian's cloud kernel: its bzImage, the vmlinux inside it, and its virtio modules. */
export function debianKernel(): { vmlinux: string; vmlinuz: string; modules: string } {
  const [vmlinux, vmlinuz, modules] = build('build-debian-kernel.sh');
  return { vmlinux: vmlinux!, vmlinuz: vmlinuz!, modules: modules! };
}

/** The busybox check initramfs, with the given kernel modules loaded by its /init. */
export function checkInitramfs(modulesDir?: string): string {
  return build('build-initramfs.sh', modulesDir ? [modulesDir] : [])[0]!;
}

/** The default guest's ext4 root image (made without mounting); copy it before a guest writes to it. */
export function rootfsImage(): string {
  return build('build-rootfs.sh')[0]!;
}
