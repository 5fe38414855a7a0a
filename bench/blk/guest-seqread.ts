/**
 * The test guest's own sequential read of a disk through virtio-blk-pci
 * (test/guest `test=virtio-blk op=seqread`: 1 MiB requests, as many in flight
 * as fit, data not touched) under kvm and under QEMU: same guest ELF, same
 * image, same run. Each VMM runs the guest at two sizes; the difference of
 * the median wall times removes start-up and boot:
 *   MB/s = (bytes2 − bytes1) / (median(t2) − median(t1))
 */
import { spawnSync } from 'node:child_process';
import path from 'node:path';

export type GuestVmm = 'kvm' | 'qemu';

export interface GuestSeqreadResult {
  readonly vmm: GuestVmm;
  readonly mbPerSecond: number;
  readonly smallSeconds: number[];
  readonly largeSeconds: number[];
}

const median = (values: number[]): number => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = Math.floor(sorted.length / 2);
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

export function qemuAvailable(): boolean {
  return spawnSync('qemu-system-x86_64', ['--version'], { encoding: 'utf8' }).status === 0;
}

function command(vmm: GuestVmm, repoRoot: string, guest: string, image: string, cmdline: string): { file: string; args: string[] } {
  if (vmm === 'kvm') {
    return { file: process.execPath, args: [path.join(repoRoot, 'dist', 'src', 'cli', 'main.js'), 'run', '-k', guest, '-m', '128', '-d', image, '-p', cmdline] };
  }
  // As test/guest/qemu-smoke.sh boots it: PVH, modern-only virtio-blk-pci, default (page cache) caching like ours.
  return {
    file: 'qemu-system-x86_64',
    args: [
      '-M', 'pc,accel=kvm', '-cpu', 'host,-arch-capabilities', '-m', '128',
      '-nodefaults', '-no-user-config', '-nographic', '-serial', 'stdio', '-no-reboot',
      '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x01',
      '-kernel', guest, '-append', cmdline,
      '-drive', `file=${image},format=raw,if=none,id=d0`, '-device', 'virtio-blk-pci,drive=d0,disable-legacy=on',
    ],
  };
}

function runOnce(vmm: GuestVmm, repoRoot: string, guest: string, image: string, bytes: number): number {
  const cmdline = `test=virtio-blk transport=pci irq=msix op=seqread bytes=${bytes} req=1M`;
  const { file, args } = command(vmm, repoRoot, guest, image, cmdline);
  const started = performance.now();
  const run = spawnSync(file, args, { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  const seconds = (performance.now() - started) / 1000;
  if (run.status !== 1 || !run.stdout.includes(`virtio-blk: seqread ${bytes} bytes in`)) {
    throw new Error(`${vmm} guest seqread of ${bytes} bytes failed (status ${run.status}):\n${run.stdout}\n${run.stderr}`);
  }
  return seconds;
}

/** Rounds alternate the VMM order; within a round each VMM reads `small` then `large` bytes. */
export function guestSeqread(repoRoot: string, guest: string, image: string, vmms: readonly GuestVmm[], rounds: number, small: number, large: number): GuestSeqreadResult[] {
  const times = new Map<GuestVmm, { small: number[]; large: number[] }>(vmms.map((v) => [v, { small: [], large: [] }]));
  // Both read from the page cache: the whole image first, or the first large run (kvm's, in round
  // 0) reads from the disk (8.5 s instead of ~1.3 s for 4 GiB, once seen here).
  spawnSync('cat', [image], { stdio: 'ignore' });
  for (const vmm of vmms) runOnce(vmm, repoRoot, guest, image, small); // warm-up
  for (let round = 0; round < rounds; round++) {
    const order = round % 2 === 0 ? vmms : [...vmms].reverse();
    for (const vmm of order) {
      times.get(vmm)!.small.push(runOnce(vmm, repoRoot, guest, image, small));
      times.get(vmm)!.large.push(runOnce(vmm, repoRoot, guest, image, large));
    }
  }
  return vmms.map((vmm) => {
    const t = times.get(vmm)!;
    return { vmm, mbPerSecond: (large - small) / (median(t.large) - median(t.small)) / 1e6, smallSeconds: t.small, largeSeconds: t.large };
  });
}
