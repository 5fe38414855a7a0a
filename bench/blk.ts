/**
 * bench/blk: virtio-blk throughput against the host's own, same file, same
 * access pattern, same run. The device runs in its real data-plane thread
 * behind the real virtio-mmio transport, driven by a host-side driver that
 * behaves like Linux's virtio_blk (bench/blk/driver.ts): no guest CPU is in
 * the loop, so the numbers are the data plane's, not the nested KVM's.
 *
 * For each mode (direct: O_DIRECT on both sides; buffered: through the page
 * cache on both sides) and each pattern, the host baseline (fio with the
 * io_uring engine, or an in-process io_uring loop when fio is missing) runs
 * first and the device right after it.
 *
 * Usage: node dist/bench/blk.js [--seconds S] [--size 1G] [--dir PATH]
 *          [--mode direct,buffered] [--patterns NAMES] [--engine auto|sync] [--quick]
 * See bench/blk/README.md.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, statSync, writeSync } from 'node:fs';
import { randomFillSync } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { openDiskImage } from '../src/disk/disk-image.js';
import { VirtioBlk } from '../src/virtio/devices/blk/device.js';
import type { BlkEngineKind, BlkOptions } from '../src/virtio/devices/blk/options.js';
import * as V from '../src/virtio/virtio-constants.js';
import { VirtioMmioHarness } from '../test/helpers/virtio-harness.js';
import { BenchQueue, type Pattern, type PatternResult } from './blk/driver.js';
import { fioAvailable, runFio, runUringLoop, type BaselineTool } from './blk/host-baseline.js';

const PATTERNS: readonly Pattern[] = [
  { name: 'seq-read-1m-qd1', write: false, random: false, blockBytes: 2 ** 20, depth: 1 },
  { name: 'seq-write-1m-qd1', write: true, random: false, blockBytes: 2 ** 20, depth: 1 },
  { name: 'rand-read-4k-qd1', write: false, random: true, blockBytes: 4096, depth: 1 },
  { name: 'rand-read-4k-qd32', write: false, random: true, blockBytes: 4096, depth: 32 },
];
/** Goals from the issue: device ≥ 90% of the host sequentially, ≥ 80% at 4 KiB random QD32. */
const GOALS: Record<string, number> = {
  'seq-read-1m-qd1': 0.9,
  'seq-write-1m-qd1': 0.9,
  'rand-read-4k-qd32': 0.8,
};

type Mode = 'direct' | 'buffered';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

function parseSize(text: string): number {
  const m = /^(\d+)([KMG]?)$/i.exec(text);
  if (!m) throw new Error(`--size "${text}" is not a size like 512M or 1G`);
  return Number(m[1]) * { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[m[2]!.toUpperCase() as '' | 'K' | 'M' | 'G'];
}

function ensureImage(file: string, sizeBytes: number): void {
  if (existsSync(file) && statSync(file).size === sizeBytes) return;
  console.log(`bench/blk: writing a ${sizeBytes / 2 ** 20} MiB image of random data at ${file}`);
  const fd = openSync(file, 'w');
  const chunk = Buffer.alloc(2 ** 20);
  for (let at = 0; at < sizeBytes; at += chunk.length) writeSync(fd, randomFillSync(chunk), 0, Math.min(chunk.length, sizeBytes - at));
  fsyncSync(fd);
  closeSync(fd);
}

function setup(): void {
  const script = path.join(repoRoot, 'bench', 'blk', 'setup.sh');
  if (existsSync(script)) spawnSync('bash', [script], { stdio: 'inherit' });
}

async function deviceRun(file: string, mode: Mode, engine: BlkEngineKind, patterns: readonly Pattern[], seconds: number, baseline: (p: Pattern) => PatternResult): Promise<Array<{ pattern: Pattern; host: PatternResult; kvm: PatternResult }>> {
  const image = openDiskImage({ path: file, readOnly: false, direct: mode === 'direct' });
  const options: BlkOptions = {
    name: 'vda',
    fd: image.fd,
    ...(image.bufferedFd !== undefined ? { bufferedFd: image.bufferedFd } : {}),
    sizeBytes: image.sizeBytes,
    readOnly: false,
    direct: image.direct,
    blockDevice: image.blockDevice,
    serial: image.serial,
    queues: 1,
    ...(image.directMemoryAlign !== undefined ? { directMemoryAlign: image.directMemoryAlign, directOffsetAlign: image.directOffsetAlign! } : {}),
    engine,
  };
  const h = new VirtioMmioHarness(
    { name: 'virtio-blk:bench', device: new VirtioBlk(options), module: { module: new URL('../src/virtio/devices/blk/device.js', import.meta.url).href, factory: 'createVirtioBlk', options } },
    256 * 2 ** 20,
  );
  const results: Array<{ pattern: Pattern; host: PatternResult; kvm: PatternResult }> = [];
  try {
    await h.ready();
    h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1) | V.featureBit(V.VIRTIO_F_RING_EVENT_IDX) | V.featureBit(V.VIRTIO_F_RING_INDIRECT_DESC));
    const ring = h.setupQueue(0, 256);
    h.driverOk();
    // The device's lock is an OFD lock: fio (another process) still opens the file, and only reads or overwrites it.
    for (const pattern of patterns) {
      const host = baseline(pattern);
      const kvm = new BenchQueue(h, 0, ring, pattern, image.sizeBytes).run(seconds);
      if (pattern.write) spawnSync('sync');
      results.push({ pattern, host, kvm });
      printRow(mode, pattern, host, kvm);
    }
  } finally {
    await h.close();
    image.close();
  }
  return results;
}

function printHeader(tool: BaselineTool): void {
  console.log(`\nhost baseline: ${tool}; kvm: virtio-blk data plane via the driver harness (no guest CPU)`);
  console.log(
    ['mode'.padEnd(9), 'pattern'.padEnd(18), 'host MB/s'.padStart(10), 'host IOPS'.padStart(10), 'kvm MB/s'.padStart(10), 'kvm IOPS'.padStart(10), 'kvm/host'.padStart(9), 'goal'.padStart(6)].join(' '),
  );
}

function printRow(mode: Mode, pattern: Pattern, host: PatternResult, kvm: PatternResult): void {
  const ratio = kvm.iops / host.iops;
  const goal = GOALS[pattern.name];
  const verdict = goal === undefined ? '' : ratio >= goal ? `≥${Math.round(goal * 100)}% ok` : `<${Math.round(goal * 100)}% MISS`;
  console.log(
    [
      mode.padEnd(9),
      pattern.name.padEnd(18),
      host.mbPerSecond.toFixed(0).padStart(10),
      host.iops.toFixed(0).padStart(10),
      kvm.mbPerSecond.toFixed(0).padStart(10),
      kvm.iops.toFixed(0).padStart(10),
      `${(ratio * 100).toFixed(0)}%`.padStart(9),
      verdict.padStart(6),
    ].join(' '),
  );
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      seconds: { type: 'string' },
      size: { type: 'string' },
      dir: { type: 'string' },
      mode: { type: 'string' },
      patterns: { type: 'string' },
      engine: { type: 'string' },
      quick: { type: 'boolean' },
      'no-setup': { type: 'boolean' },
    },
  });
  const seconds = Number(values.seconds ?? (values.quick ? 2 : 5));
  const sizeBytes = parseSize(values.size ?? '1G');
  const dir = values.dir ?? '/var/tmp/kvm-blk-bench';
  const modes = (values.mode ?? 'direct,buffered').split(',') as Mode[];
  const names = values.patterns?.split(',');
  const patterns = names ? PATTERNS.filter((p) => names.includes(p.name)) : PATTERNS;
  const engine = (values.engine ?? 'auto') as BlkEngineKind;
  if (!values['no-setup']) setup();
  mkdirSync(dir, { recursive: true });
  const file = path.join(dir, 'bench.img');
  ensureImage(file, sizeBytes);
  const tool: BaselineTool = fioAvailable() ? 'fio' : 'io_uring loop';
  printHeader(tool);
  let missed = 0;
  for (const mode of modes) {
    if (mode === 'buffered') spawnSync('cat', [file], { stdio: ['ignore', 'ignore', 'ignore'] }); // both sides read a warm cache
    const baseline = (p: Pattern): PatternResult => {
      const result = tool === 'fio' ? runFio(file, sizeBytes, p, mode === 'direct', seconds) : runUringLoop(file, sizeBytes, p, mode === 'direct', seconds);
      if (p.write) spawnSync('sync');
      return result;
    };
    const rows = await deviceRun(file, mode, engine, patterns, seconds, baseline);
    spawnSync('sync');
    for (const { pattern, host, kvm } of rows) {
      const goal = GOALS[pattern.name];
      if (goal !== undefined && kvm.iops / host.iops < goal) missed++;
    }
  }
  console.log(`\nbench/blk: ${missed === 0 ? 'every goal met' : `${missed} goal(s) missed`}`);
}

main().catch((error: unknown) => {
  console.error(`bench/blk: ${error instanceof Error ? error.message : String(error)}`);
  process.exit(1);
});
