/**
 * Fuzz target: a whole virtio-blk device (VirtioBlk, in this thread) on a checking I/O engine.
 * The guest posts a batch of random request chains (reads, writes, flushes, GET_ID, unknown
 * types, odd lengths, sectors past the end, malformed chains); the engine holds every operation
 * and completes them in an order and at times the case chooses, as io_uring may. It checks:
 *
 * - guest memory changes only inside writable buffers of the posted (popped) chains, or the used ring;
 * - every chain comes back once, its used length never above its writable length (0 if malformed);
 * - an fdatasync is submitted only after every write of the requests before that FLUSH completed,
 *   and no write of those is submitted after it (5.2.6.1 with the device's stricter rule).
 *
 * DISCARD / WRITE_ZEROES are not negotiated here (they are answered UNSUPP): their fallocate
 * calls cannot be tied to a request from the engine's side. The parser target covers them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createDebug from 'debug';
import fc from 'fast-check';
import { VirtioBlk } from '../../src/virtio/devices/blk/device.js';
import { reapInOrder, type Completion, type IoEngine } from '../../src/virtio/devices/blk/io-engine.js';
import type { CompletionHandler } from '../../src/sys/io-uring.js';
import { featureBit, VIRTIO_F_VERSION_1 } from '../../src/virtio/virtio-constants.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, drainEventfd, eventfd, signalEventfd } from '../../src/sys/eventfd.js';
import { O_RDWR, close, open } from '../../src/sys/fd.js';
import { fallocate, fdatasync } from '../../src/sys/files.js';
import { preadv, pwritev } from '../../src/sys/iovec.js';
import { view } from '../../src/sys/memory.js';
import { blkReadableArb, blkWritableArb } from './blk-request.js';
import { ChainBed, chainSpecArb, expect, type ChainSpec, type PostedChain } from './chain-bed.js';
import type { FuzzTarget } from './fuzz-target.js';
import { RecordingInterrupt } from '../helpers/recording-interrupt.js';

const SECTORS = 64;
const SECTOR = 512;
const QUEUE_SIZE = 64;

export interface BlkDeviceCase {
  readonly chains: ChainSpec[];
  /** Completion schedule: each entry completes the in-flight operation at (entry mod count), then the device reaps. */
  readonly schedule: number[];
}

export const blkDeviceCaseArb: fc.Arbitrary<BlkDeviceCase> = fc
  .record({
    chains: fc.array(chainSpecArb(blkReadableArb(fc.constant(SECTORS)), blkWritableArb), { minLength: 1, maxLength: 10 }),
    schedule: fc.array(fc.nat({ max: 64 }), { maxLength: 40 }),
    // An unanswerable chain stops the device (NEEDS_RESET): most batches have none, so the rest gets served.
    hostile: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 }),
  })
  .map(({ chains, schedule, hostile }) => ({
    chains: hostile ? chains : chains.map((ch) => ({ ...ch, writableFirst: false, writable: ch.writable.at(-1) ? ch.writable : [...ch.writable, 1] })),
    schedule,
  }));

interface Op {
  readonly kind: 'readv' | 'writev' | 'fdatasync' | 'fallocate';
  readonly fd: number;
  readonly iovecs: number;
  readonly count: number;
  readonly offset: number;
  readonly mode: number;
  readonly length: number;
  readonly tag: number;
  readonly sub: number;
  /** Index of the posted request a writev's buffers belong to. */
  readonly request: number;
}

/** What the engine learns per request. */
interface Track {
  submittedOps: number;
  completedOps: number;
  completedBytes: number;
  /** Completed bytes when a later FLUSH was issued (undefined: no flush after it yet). */
  sealedBytes: number | undefined;
}

class CheckingEngine implements IoEngine {
  readonly kind = 'io-uring' as const;
  readonly eventFd = eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
  readonly capacity = 256;
  readonly violations: string[] = [];
  readonly tracks: Track[];
  fdatasyncs = 0;
  private readonly queued: Op[] = [];
  readonly inFlight: Op[] = [];
  private readonly done: Completion[] = [];

  constructor(
    private readonly guestOf: (host: number) => number,
    private readonly requestAt: (guest: number) => number,
    /** Post-order index of the k-th request that issues an fdatasync. */
    private readonly flushRequests: readonly number[],
    requests: number,
  ) {
    this.tracks = Array.from({ length: requests }, () => ({ submittedOps: 0, completedOps: 0, completedBytes: 0, sealedBytes: undefined }));
  }

  get pending(): number {
    return this.queued.length;
  }

  get ready(): number {
    return this.done.length;
  }

  private push(kind: Op['kind'], fd: number, iovecs: number, count: number, offset: number, mode: number, length: number, tag: number, sub: number): void {
    let request = -1;
    if (kind === 'readv' || kind === 'writev') {
      const words = new Uint32Array(view(iovecs, count * 16));
      for (let i = 0; i < count; i++) {
        const guest = this.guestOf(words[4 * i]! + words[4 * i + 1]! * 2 ** 32);
        const r = this.requestAt(guest);
        if (r < 0) this.violations.push(`${kind} iovec ${i} at guest 0x${guest.toString(16)} is in no posted buffer`);
        else if (request >= 0 && r !== request) this.violations.push(`one ${kind} spans requests ${request} and ${r}`);
        request = r;
      }
    }
    if (kind === 'writev' && request >= 0) {
      const t = this.tracks[request]!;
      if (t.sealedBytes !== undefined) this.violations.push(`a write of request ${request} was submitted after a later FLUSH`);
      t.submittedOps++;
    }
    if (kind === 'fdatasync') {
      const flush = this.flushRequests[this.fdatasyncs++];
      if (flush === undefined) this.violations.push(`fdatasync #${this.fdatasyncs} with only ${this.flushRequests.length} FLUSH requests`);
      else {
        for (let i = 0; i < flush; i++) {
          const t = this.tracks[i]!;
          if (t.completedOps !== t.submittedOps) this.violations.push(`FLUSH (request ${flush}) submitted while ${t.submittedOps - t.completedOps} write(s) of request ${i} were in flight`);
          t.sealedBytes ??= t.completedBytes;
        }
      }
    }
    if (kind === 'fallocate') this.violations.push('fallocate without DISCARD / WRITE_ZEROES negotiated');
    this.queued.push({ kind, fd, iovecs, count, offset, mode, length, tag, sub, request });
  }

  readv(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    this.push('readv', fd, iovecs, count, offset, 0, 0, tag, sub);
  }
  writev(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    this.push('writev', fd, iovecs, count, offset, 0, 0, tag, sub);
  }
  fdatasync(fd: number, tag: number, sub: number): void {
    this.push('fdatasync', fd, 0, 0, 0, 0, 0, tag, sub);
  }
  fallocate(fd: number, mode: number, offset: number, length: number, tag: number, sub: number): void {
    this.push('fallocate', fd, 0, 0, offset, mode, length, tag, sub);
  }

  submit(): void {
    this.inFlight.push(...this.queued.splice(0));
  }

  /** Runs the in-flight operation `choice` (mod count) and signals the eventfd; false when none. */
  complete(choice: number): boolean {
    if (this.inFlight.length === 0) return false;
    const [op] = this.inFlight.splice(choice % this.inFlight.length, 1);
    let result: number;
    switch (op!.kind) {
      case 'readv':
        result = preadv(op!.fd, op!.iovecs, op!.count, op!.offset);
        break;
      case 'writev':
        result = pwritev(op!.fd, op!.iovecs, op!.count, op!.offset);
        break;
      case 'fdatasync':
        result = fdatasync(op!.fd);
        break;
      case 'fallocate':
        result = fallocate(op!.fd, op!.mode, op!.offset, op!.length);
        break;
    }
    if (op!.kind === 'writev' && op!.request >= 0) {
      const t = this.tracks[op!.request]!;
      t.completedOps++;
      if (result > 0) t.completedBytes += result;
    }
    this.done.push([op!.tag, op!.sub, result]);
    signalEventfd(this.eventFd);
    return true;
  }

  wait(): void {
    this.submit();
    this.complete(0);
  }

  reap(handler: CompletionHandler): number {
    return reapInOrder(this.done, handler);
  }

  acknowledge(): void {
    drainEventfd(this.eventFd);
  }

  close(): void {
    close(this.eventFd);
  }
}

interface Disk {
  readonly dir: string;
  readonly fd: number;
}

let bed: ChainBed | undefined;
let disk: Disk | undefined;
const log = createDebug('kvm:fuzz:blk-device');

function getDisk(): Disk {
  if (!disk) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-fuzz-blk-'));
    writeFileSync(path.join(dir, 'disk.img'), new Uint8Array(SECTORS * SECTOR));
    disk = { dir, fd: open(path.join(dir, 'disk.img'), O_RDWR) };
  }
  return disk;
}

/** A writable buffer moved in front of readable ones (2.7.4.2): the queue hands it over malformed. */
function isMalformed(spec: ChainSpec): boolean {
  return spec.writableFirst && spec.writable.length > 0 && spec.readable.length > 0;
}

/** A FLUSH the device can answer: it issues one fdatasync for it. */
function flushIssuing(spec: ChainSpec): boolean {
  if (isMalformed(spec) || spec.readable.length < 16 || !spec.writable.some((n) => n > 0)) return false;
  return new DataView(spec.readable.buffer, spec.readable.byteOffset, 16).getUint32(0, true) === 4;
}

export function checkBlkDeviceCase(c: BlkDeviceCase): void {
  bed ??= new ChainBed(QUEUE_SIZE);
  const { fd } = getDisk();
  bed.reset();
  const posted: PostedChain[] = [];
  const specs: ChainSpec[] = [];
  for (const spec of c.chains) {
    const p = bed.post(spec);
    if (!p) break;
    posted.push(p);
    specs.push(spec);
  }
  const flushRequests = specs.flatMap((s, i) => (flushIssuing(s) ? [i] : []));
  const b = bed;
  const requestAt = (guest: number): number => posted.findIndex((p) => p.buffers.some((x) => x.length > 0 && guest >= x.address && guest < x.address + x.length));
  const engine = new CheckingEngine((host) => host - b.host, requestAt, flushRequests, posted.length);
  const device = new VirtioBlk(
    { name: 'vfuzz', fd, sizeBytes: SECTORS * SECTOR, readOnly: false, direct: false, blockDevice: false, serial: 'fuzz-serial', queues: 1, queueSize: QUEUE_SIZE, engine: 'io-uring', pollMicroseconds: 0 },
    undefined,
    () => engine,
  );
  let onCompletions: (() => void) | undefined;
  const failures: string[] = [];
  // used.idx at each interrupt: the last one must cover every used element.
  const usedAtSignal: number[] = [];
  const interrupt = new RecordingInterrupt(() => usedAtSignal.push(b.driver.usedIndex));
  device.activate({
    memory: bed.memory,
    queues: [bed.queue],
    features: featureBit(VIRTIO_F_VERSION_1),
    interrupt,
    host: {
      watch: (watched, onReadable) => {
        if (watched === engine.eventFd) onCompletions = onReadable;
      },
      unwatch: () => {},
      // virtio-blk does not defer work to a later wake-up.
      resume: () => {},
      failDevice: (reason) => failures.push(reason),
      log,
    },
  });
  bed.snapshot();
  try {
    device.queueNotified(0);
    let step = 0;
    for (let turns = 0; turns < 10_000 && engine.inFlight.length + engine.ready > 0; turns++) {
      const choice = c.schedule.length > 0 ? c.schedule[step++ % c.schedule.length]! : 0;
      // Sometimes several completions pile up before the thread wakes; with nothing left to run it always wakes.
      if (!engine.complete(choice) || choice % 3 !== 0) onCompletions?.();
    }
    expect(engine.inFlight.length + engine.ready === 0, () => 'operations still in flight after 10000 turns');
  } finally {
    device.reset();
  }
  // A chain the device cannot answer (malformed, no status byte) is a fatal guest error: the
  // device asks for a reset and serves nothing more, so later chains may stay unused.
  const unanswerable = specs.some((s) => isMalformed(s) || !s.writable.some((n) => n > 0));
  expect(failures.length === 0 || unanswerable, () => `the device failed on answerable chains: ${failures[0]}`);
  const failed = failures.length > 0;
  expect(engine.violations.length === 0, () => engine.violations[0]!);
  expect(failed ? engine.fdatasyncs <= flushRequests.length : engine.fdatasyncs === flushRequests.length, () => `${engine.fdatasyncs} fdatasync calls for ${flushRequests.length} FLUSH requests`);

  // Every chain back once (unless the device failed), never with more than it can hold.
  const used = bed.driver.takeUsed();
  expect(failed ? used.length <= posted.length : used.length === posted.length, () => `${used.length} used elements for ${posted.length} chains`);
  const limits = new Map(
    posted.map((p, i) => {
      return [p.head, isMalformed(specs[i]!) ? 0 : p.buffers.filter((x) => x.writable).reduce((s, x) => s + x.length, 0)] as const;
    }),
  );
  // Interrupts (the ring asks for every one: no EVENT_IDX, no NO_INTERRUPT): only for queue 0, and
  // none lost: the last came after the last used element was published.
  expect(interrupt.signals.every((s) => s.kind === 'used' && s.queue === 0), () => `unexpected interrupts ${JSON.stringify(interrupt.signals)}`);
  expect(failed || used.length === 0 || usedAtSignal.at(-1) === bed.driver.usedIndex, () => `used.idx ${bed!.driver.usedIndex}, but the last interrupt came at ${usedAtSignal.at(-1)}`);
  const seen = new Set<number>();
  for (const u of used) {
    expect(limits.has(u.id) && !seen.has(u.id), () => `used id ${u.id} was not posted or came back twice`);
    seen.add(u.id);
    expect(u.len <= limits.get(u.id)!, () => `chain ${u.id}: used length ${u.len} > writable length ${limits.get(u.id)}`);
  }

  // Guest memory: only writable buffers of chains the device could parse, and the used ring.
  const allowed: Array<readonly [number, number]> = [bed.usedRingRange];
  posted.forEach((p, i) => {
    if (limits.get(p.head)! > 0 || !specs[i]!.writableFirst) for (const x of p.buffers) if (x.writable) allowed.push([x.address, x.length]);
  });
  const changed = bed.changesOutside(allowed);
  expect(changed.length === 0, () => `the device wrote guest byte 0x${changed[0]!.toString(16)}, outside every writable buffer`);

  // Writes before a FLUSH were complete when it was issued (status OK means all their bytes).
  posted.forEach((p, i) => {
    const t = engine.tracks[i]!;
    if (t.sealedBytes === undefined || t.submittedOps === 0) return;
    const status = bed!.memory.readU8(p.buffers.filter((x) => x.writable && x.length > 0).at(-1)!.address + p.buffers.filter((x) => x.writable && x.length > 0).at(-1)!.length - 1);
    if (status === 0) {
      const length = specs[i]!.readable.length - 16;
      expect(t.sealedBytes === length, () => `request ${i} wrote ${t.sealedBytes} of ${length} bytes before a later FLUSH was issued`);
    }
  });
}

export const blkDeviceTarget: FuzzTarget<BlkDeviceCase> = {
  name: 'blk-device',
  description: 'whole virtio-blk on a checking engine: writes only in writable buffers, used ≤ writable, FLUSH after earlier writes',
  arbitrary: blkDeviceCaseArb,
  check: checkBlkDeviceCase,
  testRuns: { fixed: 400, random: 100 },
  dispose() {
    bed?.close();
    bed = undefined;
    if (disk) {
      close(disk.fd);
      rmSync(disk.dir, { recursive: true, force: true });
    }
    disk = undefined;
  },
};
