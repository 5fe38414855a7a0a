/**
 * The host's own throughput on the bench image with the same access pattern:
 * fio (io_uring engine, same block size, queue depth and O_DIRECT setting)
 * when it is installed, otherwise the same loop in-process over this
 * project's io_uring binding (src/sys/io-uring.ts), which is what the
 * device's data plane itself sits on.
 */
import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { IoUring } from '../../src/sys/io-uring.js';
import { setIovec } from '../../src/sys/iovec.js';
import { HostBuffer } from '../../src/sys/host-buffer.js';
import { mapGuestRam } from '../../src/vmm/guest-ram.js';
import { O_DIRECT, O_RDWR, close, open } from '../../src/sys/fd.js';
import { munmap } from '../../src/sys/memory.js';
import { HUGE_PAGE, type Pattern, type PatternResult } from './driver.js';

export type BaselineTool = 'fio' | 'io_uring loop';

export function fioAvailable(): boolean {
  return spawnSync('fio', ['--version'], { encoding: 'utf8' }).status === 0;
}

interface FioJob {
  read: { bw_bytes: number; iops: number; total_ios: number; runtime: number };
  write: { bw_bytes: number; iops: number; total_ios: number; runtime: number };
}

/**
 * Huge pages for fio's buffers. The device's guest RAM is backed by transparent huge pages, so a
 * 1 MiB guest buffer is a few physical segments and reaches the disk as one request; fio's
 * malloc'd buffer is 256 pages, more than a virtio disk's segment limit (254 here), and is split
 * in two. On this host an unsplit 1 MiB O_DIRECT read ran at 2600 MB/s and a split one at
 * 1150 MB/s: buffers of the same kind keep the comparison about the data path. Reserves
 * `count` pages (root) and gives them back afterwards; false when the host cannot.
 */
export function reserveHugePages(count: number): { readonly available: boolean; release(): void } {
  const field = (name: string): number => Number(new RegExp(`^${name}:\\s+(\\d+)`, 'm').exec(readFileSync('/proc/meminfo', 'utf8'))?.[1] ?? 0);
  const none = { available: false, release: () => {} };
  try {
    if (field('HugePages_Free') >= count) return { available: true, release: () => {} };
    const control = '/proc/sys/vm/nr_hugepages';
    const before = Number(readFileSync(control, 'utf8').trim());
    writeFileSync(control, String(before + count - field('HugePages_Free')));
    const release = (): void => writeFileSync(control, String(before));
    if (field('HugePages_Free') >= count) return { available: true, release };
    release();
    return none;
  } catch {
    return none;
  }
}

export function runFio(file: string, sizeBytes: number, pattern: Pattern, direct: boolean, seconds: number, hugeBuffers = false): PatternResult {
  const rw = pattern.write ? (pattern.random ? 'randwrite' : 'write') : pattern.random ? 'randread' : 'read';
  const args = [
    '--name=host',
    `--filename=${file}`,
    `--rw=${rw}`,
    `--bs=${pattern.blockBytes}`,
    `--iodepth=${pattern.depth}`,
    '--ioengine=io_uring',
    `--direct=${direct ? 1 : 0}`,
    '--time_based',
    `--runtime=${Math.round(seconds * 1000)}ms`, // fio reads a bare number as whole seconds
    `--size=${sizeBytes}`,
    '--invalidate=0',
    '--randrepeat=0',
    '--output-format=json',
    ...(hugeBuffers ? ['--iomem=shmhuge'] : []),
  ];
  const run = spawnSync('fio', args, { encoding: 'utf8', maxBuffer: 16 * 2 ** 20 });
  if (run.status !== 0) throw new Error(`fio failed (${run.status}): ${run.stderr.trim().split('\n')[0] ?? ''}`);
  const job = (JSON.parse(run.stdout) as { jobs: FioJob[] }).jobs[0]!;
  const side = pattern.write ? job.write : job.read;
  const elapsed = side.runtime / 1000;
  return {
    requests: side.total_ios,
    bytes: side.bw_bytes * elapsed,
    seconds: elapsed,
    iops: side.iops,
    mbPerSecond: side.bw_bytes / 1e6,
  };
}

/** The pattern through io_uring from this process: READV/WRITEV of one buffer per slot. */
export function runUringLoop(file: string, sizeBytes: number, pattern: Pattern, direct: boolean, seconds: number): PatternResult {
  const fd = open(file, O_RDWR | (direct ? O_DIRECT : 0));
  const ring = IoUring.create(Math.max(pattern.depth, 4));
  // The slots' buffers side by side in memory advised for huge pages, as the device's guest RAM
  // is (and fio's buffers are, with --iomem=shmhuge).
  // Room to start at a huge-page boundary and end on one: a huge page must lie wholly in the mapping.
  const areaBytes = (Math.ceil((pattern.depth * pattern.blockBytes) / HUGE_PAGE) + 1) * HUGE_PAGE;
  const area = mapGuestRam(areaBytes);
  const first = Math.ceil(area / HUGE_PAGE) * HUGE_PAGE;
  const iovecs = new HostBuffer(pattern.depth * 16);
  const words = iovecs.words;
  for (let slot = 0; slot < pattern.depth; slot++) setIovec(words, slot, first + slot * pattern.blockBytes, pattern.blockBytes);
  const blocks = Math.floor(sizeBytes / pattern.blockBytes);
  let next = 0;
  const offset = (): number => {
    if (pattern.random) return Math.floor(Math.random() * blocks) * pattern.blockBytes;
    const at = next;
    next = (next + 1) % blocks;
    return at * pattern.blockBytes;
  };
  const issue = (slot: number): void => {
    const op = pattern.write ? ring.writev.bind(ring) : ring.readv.bind(ring);
    op(fd, iovecs.address + slot * 16, 1, offset(), slot);
  };
  try {
    const started = performance.now();
    const deadline = started + seconds * 1000;
    let requests = 0;
    let inFlight = pattern.depth;
    for (let slot = 0; slot < pattern.depth; slot++) issue(slot);
    ring.submit();
    let stopping = false;
    while (inFlight > 0) {
      ring.submit(1);
      if (!stopping && performance.now() >= deadline) stopping = true;
      ring.reap((slot, _sub, result) => {
        if (result !== pattern.blockBytes) throw new Error(`host ${pattern.write ? 'write' : 'read'} returned ${result}`);
        requests++;
        if (stopping) inFlight--;
        else issue(slot);
      });
    }
    const elapsed = (performance.now() - started) / 1000;
    return { requests, bytes: requests * pattern.blockBytes, seconds: elapsed, iops: requests / elapsed, mbPerSecond: (requests * pattern.blockBytes) / elapsed / 1e6 };
  } finally {
    ring.close();
    munmap(area, areaBytes);
    iovecs.free();
    close(fd);
  }
}
