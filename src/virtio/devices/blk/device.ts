/**
 * virtio-blk (virtio 1.2 §5.2) over a raw image or block device.
 *
 * Data path: each queue is served by its own data-plane thread (up to
 * BLK_MAX_DATA_PLANE_THREADS per disk, then threads take several queues);
 * each thread has its own instance of this class, with its own engine, slots
 * and flush ordering (a FLUSH covers the writes completed before it, and
 * those on other queues were completed by their own threads). A popped
 * chain becomes a request (request.ts); its data goes straight between the
 * image and the guest's buffers (iovecs of host addresses of
 * guest RAM, no copy) through the I/O engine: io_uring, with as many
 * operations in flight as the queues hold, or synchronous calls where the
 * host has no io_uring. Completions arrive on an eventfd watched by the same
 * epoll loop as the kicks; each batch of completions ends with at most one
 * interrupt per queue, as EVENT_IDX or NO_INTERRUPT asks. After a burst the
 * thread watches the avail rings until `pollMicroseconds` pass without work
 * (at most POLL_MAX_US in all), notifications still off, so a driver that
 * answers completions with new requests at once needs no kick (each kick and
 * wake-up costs tens of µs on a nested host); while requests are in flight it
 * keeps watching for their completions up to POLL_MAX_US, so a 1 MiB O_DIRECT
 * request at queue depth 1 is answered without a wake-up of its own.
 * Requests are handed to the kernel every SUBMIT_BATCH, not all at the end, and what those submits
 * completed (page-cache hits) is announced right away, so the driver refills
 * while the rest are served instead of after the whole queue depth.
 *
 * In flight, a request owns a slot: its tag in the engine, its iovec array,
 * its progress (a short transfer is continued where it stopped) and, for
 * writes, its FlushOrder generation: a FLUSH starts only after every write
 * submitted before it has completed, then runs fdatasync.
 *
 * A reset waits for every operation in flight before returning, so no
 * buffer of the old driver is touched once the driver sees status 0.
 */
import { setIovec } from '../../../sys/io-uring.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE, IOVEC_SIZE, IOV_MAX, schedYield } from '../../../sys/libc.js';
import { DescriptorChain } from '../../descriptor-chain.js';
import { VIRTIO_ID_BLOCK, featureBit } from '../../virtio-constants.js';
import { defineVirtioDevice, type ActivationContext, type DataPlaneShare, type VirtioDevice } from '../../virtio-device.js';
import { describeBlk, describeVirtioBlk } from './config-space.js';
import { FlushOrder } from './flush-order.js';
import { createIoEngine, type IoEngine } from './io-engine.js';
import { HostBuffer } from '../../../sys/host-buffer.js';
import { EINVAL, EOPNOTSUPP } from '../../../sys/errno.js';
import {
  BLK_COUNTERS,
  BLK_DEFAULT_POLL_US,
  BLK_DEFAULT_QUEUE_SIZE,
  BLK_MAX_DWZ_SECTORS,
  BLK_MAX_DWZ_SEGMENTS,
  blkDataPlaneQueues,
  type BlkCounter,
  type BlkOptions,
} from './options.js';
import { DeviceCounters } from '../../device-counters.js';
import { BLK_BOUNCE_BUDGET_BYTES, BlkSharedState } from './disk-shared.js';
import { forEachDataPiece, parseBlkRequest, type BlkLimits, type BlkRequest, type DwzRange } from './request.js';
import { GuestMemoryError } from '../../../vmm/guest-memory.js';
import * as S from './spec.js';

type TransferRequest = Extract<BlkRequest, { op: 'read' | 'write' }>;

const PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
const ZERO_RANGE = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
/** Not an fallocate mode: write zeroes from a zero buffer (filesystems with neither mode). */
const BY_WRITING = -1;
const ZERO_CHUNK = 1 << 20;
/** Rounds of serve/submit/reap per wake-up before the guest hears of what is done. */
const MAX_ROUNDS = 16;
const ENGINE_MAX_ENTRIES = 4096;
/** Longest a poll window lasts while there is work, before the epoll loop gets a turn. */
const POLL_MAX_US = 1000;
/** Idle spins of the poll loop per clock reading. */
const POLL_CLOCK_EVERY = 8;
/** Operations queued before they are submitted while a queue is being drained. */
const SUBMIT_BATCH = 8;

/** The most bytes one merged iovec covers (the kernel caps a transfer at 2 GiB anyway). */
const MAX_IOVEC_BYTES = 1 << 30;

/** The largest bounce buffer for one O_DIRECT request with misaligned guest buffers (4 MiB). */
export const MAX_BOUNCE_BYTES = 4 << 20;
/** HostBuffer rounds a bounce buffer up to whole pages: what it costs the budget. */
const HOST_PAGE = 4096;

type SlotOp = 'read' | 'write' | 'flush' | 'discard' | 'write-zeroes';

interface RangeState extends DwzRange {
  /** fallocate modes to try in turn while the file answers EOPNOTSUPP. */
  readonly modes: readonly number[];
  modeIndex: number;
  /** Bytes zeroed so far by writing (BY_WRITING only). */
  zeroed: number;
}

/** One request in flight. */
class Slot {
  op: SlotOp = 'read';
  queue = 0;
  head = 0;
  statusAddress = 0;
  status: number = S.VIRTIO_BLK_S_OK;
  /** Used length on success. */
  used = 1;
  /** Operations not finished for good. */
  pending = 0;
  /** FlushOrder generation of a write-like request, or -1. */
  generation = -1;
  fd = -1;
  offset = 0;
  length = 0;
  /** Bytes transferred so far (a short transfer continues from here). */
  done = 0;
  /** A read or write transfers iovecs [iovStart, iovCount) of this slot's array (advanced after a short transfer). */
  iovStart = 0;
  iovCount = 0;
  /** With a bounce buffer: the guest ranges the data really belongs to. */
  guestPieces: number[] = [];
  bounce: HostBuffer | undefined;
  /** Bytes of the disk's bounce budget the bounce buffer holds. */
  bounceBytes = 0;
  ranges: RangeState[] = [];

  constructor(
    readonly index: number,
    /** Host address of this slot's iovec array (IOV_MAX entries). */
    readonly iovecs: number,
    /** The same array as words. */
    readonly iovecWords: Uint32Array,
  ) {}
}

export class VirtioBlk implements VirtioDevice {
  readonly deviceType = VIRTIO_ID_BLOCK;
  readonly queueMaxSizes: readonly number[];
  readonly dataPlaneQueues: ReadonlyArray<readonly number[]>;
  readonly features: bigint;
  readonly configSpace: Uint8Array;
  private readonly capacitySectors: number;
  private readonly serialBytes: Uint8Array;
  private readonly directMemoryAlign: number;
  private readonly directOffsetAlign: number;
  private readonly pollMicroseconds: number;
  private readonly bounceBudget: number;
  /** Shared with the disk's other data-plane threads. */
  private readonly shared: BlkSharedState;
  /** The reset epoch of the driver's session (ActivationContext.resetEpoch). */
  private resetEpoch = 0;
  /** The queues this instance serves (its data-plane thread's share). */
  private readonly served: readonly number[];

  private context: ActivationContext | undefined;
  private engine: IoEngine | undefined;
  private limits: BlkLimits | undefined;
  private slots: Slot[] = [];
  private freeSlots: number[] = [];
  private arena: HostBuffer | undefined;
  private zeroBuffer: HostBuffer | undefined;
  private readonly flushOrder = new FlushOrder();
  /** Refilled by every pop: a request is parsed and started before the next one is popped. */
  private readonly chain = new DescriptorChain();
  /** Engine operations submitted or queued and not completed. */
  private opsInFlight = 0;
  private draining = false;
  /** Queues kicked, or left with chains when capacity ran out. */
  private needsService: boolean[] = [];
  /** Queues with used entries not yet announced. */
  private touched: boolean[] = [];

  readonly counters: DeviceCounters<BlkCounter>;

  constructor(
    private readonly options: BlkOptions,
    /** This instance's thread and queues; without it, every queue and counter lane 0. */
    share?: DataPlaneShare,
    /** Where the I/O runs: by default io_uring or the synchronous engine as options.engine says. */
    private readonly createEngine: (entries: number, log: (format: string, ...args: unknown[]) => void) => IoEngine = (entries, log) =>
      createIoEngine(options.engine ?? 'auto', entries, log),
  ) {
    this.counters = new DeviceCounters(BLK_COUNTERS, options.counters, share?.thread ?? 0);
    const queueSize = options.queueSize ?? BLK_DEFAULT_QUEUE_SIZE;
    if (!Number.isInteger(options.queues) || options.queues < 1 || options.queues > 0xffff) {
      throw new RangeError(`virtio-blk ${options.name}: ${options.queues} queues`);
    }
    this.queueMaxSizes = Array.from({ length: options.queues }, () => queueSize);
    this.dataPlaneQueues = blkDataPlaneQueues(options.queues);
    // Checked here, on the thread that builds the device, not where a thread would fail to start.
    if (options.counters && DeviceCounters.lanesIn(options.counters, BLK_COUNTERS) < this.dataPlaneQueues.length) {
      throw new RangeError(`virtio-blk ${options.name}: counters need ${this.dataPlaneQueues.length} lanes (one per data-plane thread)`);
    }
    this.served = share?.queues ?? this.queueMaxSizes.map((_, q) => q);
    if (this.served.some((q) => !Number.isInteger(q) || q < 0 || q >= options.queues)) {
      throw new RangeError(`virtio-blk ${options.name}: queues ${this.served.join(',')} of ${options.queues}`);
    }
    const description = describeBlk(options);
    this.features = description.features;
    this.configSpace = description.config;
    this.capacitySectors = description.capacitySectors;
    this.serialBytes = new Uint8Array(S.VIRTIO_BLK_ID_BYTES);
    this.serialBytes.set(new TextEncoder().encode(options.serial).subarray(0, S.VIRTIO_BLK_ID_BYTES));
    this.directMemoryAlign = options.directMemoryAlign ?? 4096;
    this.directOffsetAlign = options.directOffsetAlign ?? 4096;
    this.pollMicroseconds = options.pollMicroseconds ?? BLK_DEFAULT_POLL_US;
    this.bounceBudget = options.bounceBudgetBytes ?? BLK_BOUNCE_BUDGET_BYTES;
    this.shared = new BlkSharedState(options.shared);
  }

  private get active(): boolean {
    return this.context !== undefined && !this.draining;
  }

  activate(context: ActivationContext): void {
    const has = (bit: number): boolean => (context.features & featureBit(bit)) !== 0n;
    this.limits = {
      capacitySectors: this.capacitySectors,
      readOnly: this.options.readOnly,
      discard: has(S.VIRTIO_BLK_F_DISCARD),
      writeZeroes: has(S.VIRTIO_BLK_F_WRITE_ZEROES),
      maxDwzSegments: BLK_MAX_DWZ_SEGMENTS,
      maxDwzSectors: BLK_MAX_DWZ_SECTORS,
      maxPieces: IOV_MAX,
    };
    this.allocateSlots();
    // At least room for one request's largest fan-out (hasCapacity), however small the queues.
    const entries = Math.min(Math.max(this.slots.length, 2 * BLK_MAX_DWZ_SEGMENTS), ENGINE_MAX_ENTRIES);
    const engine = this.createEngine(entries, context.host.log);
    this.engine = engine;
    this.context = context;
    this.resetEpoch = context.resetEpoch ?? 0;
    this.needsService = this.queueMaxSizes.map(() => false);
    this.touched = this.queueMaxSizes.map(() => false);
    if (engine.eventFd !== undefined) context.host.watch(engine.eventFd, () => this.completionsReady());
    context.host.log('%s: %d sectors, %s engine%s', this.options.name, this.capacitySectors, engine.kind, this.options.readOnly ? ', read-only' : '');
  }

  /** Slots and their iovec arrays, once per instance (one slot per descriptor head of every queue it serves). */
  private allocateSlots(): void {
    if (this.arena) return;
    const count = this.served.reduce((sum, q) => sum + this.queueMaxSizes[q]!, 0);
    const slotBytes = IOV_MAX * IOVEC_SIZE;
    const arena = new HostBuffer(count * slotBytes);
    this.arena = arena;
    this.slots = Array.from({ length: count }, (_, i) => {
      const words = new Uint32Array(arena.bytes.buffer, arena.bytes.byteOffset + i * slotBytes, slotBytes / 4);
      return new Slot(i, arena.address + i * slotBytes, words);
    });
    this.freeSlots = this.slots.map((_, i) => count - 1 - i);
  }

  queueNotified(queueIndex: number): void {
    if (!this.active || !this.context!.queues[queueIndex]) return;
    this.needsService[queueIndex] = true;
    this.run();
  }

  private completionsReady(): void {
    if (!this.active) return;
    this.engine!.acknowledge();
    this.run();
  }

  /** Serves kicked queues, submits, reaps, until nothing moves; interrupts once per queue; then polls a while. */
  private run(): void {
    this.runOnce();
    if (this.pollMicroseconds > 0 && this.active) {
      this.poll();
      this.runOnce();
    }
  }

  private runOnce(): void {
    for (let round = 0; round < MAX_ROUNDS && this.active; round++) {
      for (let i = 0; i < this.served.length && this.active; i++) {
        const q = this.served[i]!;
        if (this.needsService[q] && this.hasCapacity()) {
          this.needsService[q] = false;
          this.serve(q);
        }
      }
      if (!this.active) return;
      const engine = this.engine!;
      engine.submit();
      if (engine.reap(this.onCompletion) === 0 && engine.pending === 0) break;
    }
    if (this.active) this.finishQueued();
    this.notify();
  }

  /**
   * Out of rounds, operations queued by the last reap (the rest of a short transfer) must not
   * wait for the next kick: io_uring gets them now and its eventfd brings their completions;
   * the synchronous engine, which has no eventfd, runs them to the end here.
   */
  private finishQueued(): void {
    const engine = this.engine!;
    if (engine.eventFd !== undefined) {
      engine.submit();
      return;
    }
    while (this.active && (engine.pending > 0 || engine.ready > 0)) {
      engine.submit();
      engine.reap(this.onCompletion);
    }
  }

  private hasCapacity(): boolean {
    return this.freeSlots.length > 0 && this.opsInFlight + BLK_MAX_DWZ_SEGMENTS <= this.engine!.capacity;
  }

  private serve(q: number, keepNotificationsOff = false): void {
    const queue = this.context!.queues[q]!;
    for (;;) {
      queue.disableNotifications();
      for (;;) {
        if (!this.hasCapacity()) {
          // Kicks stay off; completions bring this queue back.
          this.needsService[q] = true;
          return;
        }
        const chain = this.chain;
        if (!queue.popInto(chain)) break;
        this.start(q, chain);
        if (!this.active) return;
        // Hand the kernel a few at a time: the disk starts on the first while the rest are parsed,
        // and completions stop arriving in lockstep batches of the whole queue depth. Those
        // already done (page-cache hits complete inside the submit) are announced at once, so the
        // driver refills while this thread goes on with the rest.
        if (this.engine!.pending >= SUBMIT_BATCH) this.submitAndAnswer();
      }
      if (keepNotificationsOff) return;
      if (!queue.enableNotifications()) return;
    }
  }

  /**
   * After answering, watch the avail rings before sleeping: a driver that answers completions
   * with new requests then finds notifications still off and needs no kick, and the device no
   * wake-up (QEMU's iothreads poll the same way). Completions are answered as they arrive
   * meanwhile. Polling stops after `pollMicroseconds` without progress (I/O in flight counts as
   * progress to come), or after POLL_MAX_US in all so the epoll loop (resets, other fds) gets
   * its turn.
   */
  private poll(): void {
    const queues = this.context!.queues;
    const start = performance.now();
    let idleDeadline = start + this.pollMicroseconds / 1000;
    const hardDeadline = start + POLL_MAX_US / 1000;
    for (let spins = 0; this.active; spins++) {
      let polled = false;
      for (let q = 0; q < queues.length && this.active; q++) {
        const queue = queues[q];
        if (queue && this.hasCapacity() && queue.pendingCount > 0) {
          polled = true;
          this.serve(q, true);
        }
      }
      // Completions of I/O in flight are posted while this thread spins (io_uring's task work runs
      // when the kernel interrupts it), so they are answered here too instead of after the window.
      if (this.active && this.engine!.ready > 0) polled = true;
      if (polled && this.active) {
        this.submitAndAnswer();
        const now = performance.now();
        if (now >= hardDeadline) break;
        idleDeadline = now + this.pollMicroseconds / 1000;
      } else if (spins % POLL_CLOCK_EVERY === 0) {
        // Reading the clock costs more than a look at the rings: only every few spins. The driver
        // may be waiting for this very CPU (a loaded host): give it the chance to run.
        // While requests are in flight their completions are progress to come: wait for them here
        // (up to POLL_MAX_US in all) rather than pay a wake-up for each.
        if (performance.now() >= (this.opsInFlight > 0 ? hardDeadline : idleDeadline)) break;
        schedYield();
      }
    }
    // Back to sleep: the caller's next pass turns notifications on again and re-checks.
    queues.forEach((queue, q) => (this.needsService[q] = queue !== undefined));
  }

  private submitAndAnswer(): void {
    const engine = this.engine!;
    engine.submit();
    engine.reap(this.onCompletion);
    // Also requests answered without I/O (errors, GET_ID, a read-only flush): their queues are touched too.
    this.notify();
  }

  private notify(): void {
    const context = this.context;
    if (!context) return;
    for (let q = 0; q < this.touched.length; q++) {
      if (!this.touched[q]) continue;
      this.touched[q] = false;
      if (context.queues[q]!.needsNotification()) context.interrupt.signalUsed(q);
    }
  }

  private start(q: number, chain: DescriptorChain): void {
    const context = this.context!;
    const request = parseBlkRequest(context.memory, chain, this.limits!);
    switch (request.op) {
      case 'unanswerable':
        // Nowhere to put a status: the driver cannot learn this request's fate, so the device needs a
        // reset (this thread stops serving; other queues' threads go on until the driver resets).
        context.host.failDevice(`${this.options.name}: malformed request (${request.reason})`);
        return;
      case 'answer':
        if (request.status !== S.VIRTIO_BLK_S_OK) context.host.log('%s: request refused: %s', this.options.name, request.reason);
        this.answer(q, chain.head, request.statusAddress, request.status, 1);
        this.countStatus(request.status);
        return;
      case 'get-id': {
        let written = 0;
        for (let i = 0; i < request.pieces.length; i += 2) {
          const length = request.pieces[i + 1]!;
          context.memory.write(request.pieces[i]!, this.serialBytes.subarray(written, written + length));
          written += length;
        }
        this.answer(q, chain.head, request.statusAddress, S.VIRTIO_BLK_S_OK, written + 1);
        this.counters.add('getIds');
        return;
      }
      case 'flush': {
        if (this.options.readOnly) {
          this.answer(q, chain.head, request.statusAddress, S.VIRTIO_BLK_S_OK, 1);
          this.counters.add('flushes');
          return;
        }
        if (this.shared.flushFailed(this.resetEpoch)) {
          // Pages whose writeback failed are clean again: no later fdatasync can vouch for them.
          this.answer(q, chain.head, request.statusAddress, S.VIRTIO_BLK_S_IOERR, 1);
          this.countStatus(S.VIRTIO_BLK_S_IOERR);
          return;
        }
        const slot = this.takeSlot(q, chain.head, request.statusAddress, 'flush');
        slot.pending = 1;
        if (this.flushOrder.flushArrived(slot.index)) this.issueFlush(slot);
        return;
      }
      case 'read':
      case 'write':
        this.startTransfer(q, chain, request);
        return;
      case 'discard':
      case 'write-zeroes': {
        const slot = this.takeSlot(q, chain.head, request.statusAddress, request.op);
        const discard = request.op === 'discard';
        slot.ranges = request.ranges.map((range) => ({
          ...range,
          modes: discard ? [PUNCH_HOLE] : range.unmap ? [PUNCH_HOLE, ZERO_RANGE, BY_WRITING] : [ZERO_RANGE, PUNCH_HOLE, BY_WRITING],
          modeIndex: 0,
          zeroed: 0,
        }));
        slot.pending = slot.ranges.length;
        slot.generation = this.flushOrder.writeStarted();
        slot.ranges.forEach((_, i) => this.issueRange(slot, i));
        return;
      }
    }
  }

  private countDone(op: SlotOp, length: number): void {
    const c = this.counters;
    if (op === 'read') {
      c.add('reads');
      c.add('readBytes', length);
    } else if (op === 'write') {
      c.add('writes');
      c.add('writeBytes', length);
    } else c.add(op === 'flush' ? 'flushes' : op === 'discard' ? 'discards' : 'writeZeroes');
  }

  private countStatus(status: number): void {
    if (status === S.VIRTIO_BLK_S_IOERR) this.counters.add('ioErrors');
    else if (status === S.VIRTIO_BLK_S_UNSUPP) this.counters.add('unsupported');
  }

  private answer(q: number, head: number, statusAddress: number, status: number, used: number): void {
    const context = this.context!;
    const queue = context.queues[q]!;
    queue.assertCurrent();
    context.memory.writeU8(statusAddress, status);
    queue.addUsed(head, used);
    this.touched[q] = true;
  }

  private takeSlot(q: number, head: number, statusAddress: number, op: SlotOp): Slot {
    const slot = this.slots[this.freeSlots.pop()!]!;
    slot.op = op;
    slot.queue = q;
    slot.head = head;
    slot.statusAddress = statusAddress;
    slot.status = S.VIRTIO_BLK_S_OK;
    slot.used = 1;
    slot.generation = -1;
    slot.done = 0;
    return slot;
  }

  /** Builds the slot's iovecs straight from the chain's host addresses (a bounce buffer only where O_DIRECT needs one). */
  private startTransfer(q: number, chain: DescriptorChain, request: TransferRequest): void {
    const { op, offset, length } = request;
    const slot = this.takeSlot(q, chain.head, request.statusAddress, op);
    slot.offset = offset;
    slot.length = length;
    slot.used = op === 'read' ? length + 1 : 1;
    slot.fd = this.options.fd;
    const words = slot.iovecWords;
    const offsetAlign = this.directOffsetAlign;
    let aligned = true;
    let count = 0;
    let skip = request.skip;
    let left = length;
    // The current iovec, extended while the next piece follows it in host memory (a guest's page
    // buffers often do): fewer iovecs for the kernel to walk, and pieces too small for O_DIRECT
    // alone may together make an aligned one.
    let base = -1;
    let runLength = 0;
    // forEachDataPiece's walk, inlined: this runs for every read and write, without a callback.
    for (let i = request.first; left > 0; i++) {
      const segmentLength = chain.lengthAt(i);
      if (segmentLength <= skip) {
        skip -= segmentLength;
        continue;
      }
      const n = Math.min(segmentLength - skip, left);
      const host = chain.hostAt(i);
      if (host < 0) throw new GuestMemoryError('bad-layout', 'guest memory has no host mapping');
      if (host + skip === base + runLength && runLength + n <= MAX_IOVEC_BYTES) {
        runLength += n;
      } else {
        if (runLength > 0) aligned = this.putIovec(words, count++, base, runLength) && aligned;
        base = host + skip;
        runLength = n;
      }
      left -= n;
      skip = 0;
    }
    if (runLength > 0) aligned = this.putIovec(words, count++, base, runLength) && aligned;
    slot.iovStart = 0;
    slot.iovCount = count;
    if (this.options.direct) {
      const bounceBytes = aligned ? 0 : Math.ceil(length / HOST_PAGE) * HOST_PAGE;
      if (
        (offset | length) % offsetAlign !== 0 ||
        (!aligned && (length > MAX_BOUNCE_BYTES || !this.shared.reserveBounce(bounceBytes, this.bounceBudget)))
      ) {
        // O_DIRECT cannot address this range of the file at all, or the guest's misaligned buffers
        // would need a bounce larger than a guest may make the host allocate (alone, or with the
        // bounces the disk already holds): the page cache can.
        slot.fd = this.options.bufferedFd ?? this.options.fd;
      } else if (!aligned) {
        slot.bounceBytes = bounceBytes;
        const bounce = new HostBuffer(length);
        const guestPieces: number[] = [];
        forEachDataPiece(chain, request.first, request.skip, length, (_host, guest, n) => guestPieces.push(guest, n));
        slot.bounce = bounce;
        slot.guestPieces = guestPieces;
        setIovec(words, 0, bounce.address, length);
        slot.iovCount = 1;
        if (op === 'write') this.copyGuest(guestPieces, bounce.bytes, 'in');
      }
    }
    if (op === 'write') slot.generation = this.flushOrder.writeStarted();
    slot.pending = 1;
    this.issueTransfer(slot);
  }

  /** Writes iovec `index` of a slot's array; false when O_DIRECT could not take it as it is (alignment). */
  private putIovec(words: Uint32Array, index: number, base: number, length: number): boolean {
    setIovec(words, index, base, length);
    return base % this.directMemoryAlign === 0 && length % this.directOffsetAlign === 0;
  }

  /** Copies between guest ranges and a bounce buffer: 'in' fills the buffer, 'out' empties it into the guest. */
  private copyGuest(pieces: number[], buffer: Uint8Array, direction: 'in' | 'out'): void {
    const memory = this.context!.memory;
    let at = 0;
    for (let i = 0; i < pieces.length; i += 2) {
      const guest = memory.slice(pieces[i]!, pieces[i + 1]!);
      if (direction === 'in') buffer.set(guest, at);
      else guest.set(buffer.subarray(at, at + guest.length));
      at += guest.length;
    }
  }

  /** (Re)submits a read or write from byte `done` on. */
  private issueTransfer(slot: Slot): void {
    const offset = slot.offset + slot.done;
    const iovecs = slot.iovecs + slot.iovStart * IOVEC_SIZE;
    const count = slot.iovCount - slot.iovStart;
    if (slot.op === 'read') this.engine!.readv(slot.fd, iovecs, count, offset, slot.index, 0);
    else this.engine!.writev(slot.fd, iovecs, count, offset, slot.index, 0);
    this.opsInFlight++;
  }

  /** Drops the first `bytes` of the slot's remaining iovecs (after a short transfer). */
  private advanceIovecs(slot: Slot, bytes: number): void {
    const words = slot.iovecWords;
    let i = slot.iovStart;
    while (bytes > 0 && i < slot.iovCount) {
      const at = (i * IOVEC_SIZE) / 4;
      const length = words[at + 2]! + words[at + 3]! * 0x1_0000_0000;
      if (bytes >= length) {
        bytes -= length;
        i++;
        continue;
      }
      const base = words[at]! + words[at + 1]! * 0x1_0000_0000;
      setIovec(words, i, base + bytes, length - bytes);
      bytes = 0;
    }
    slot.iovStart = i;
  }

  private issueFlush(slot: Slot): void {
    this.engine!.fdatasync(this.options.fd, slot.index, 0);
    this.opsInFlight++;
  }

  private issueRange(slot: Slot, i: number): void {
    const range = slot.ranges[i]!;
    const mode = range.modes[range.modeIndex]!;
    if (mode === BY_WRITING) {
      this.zeroBuffer ??= new HostBuffer(ZERO_CHUNK);
      const chunk = Math.min(ZERO_CHUNK, range.length - range.zeroed);
      setIovec(slot.iovecWords, i, this.zeroBuffer.address, chunk);
      const fd = this.options.bufferedFd ?? this.options.fd;
      this.engine!.writev(fd, slot.iovecs + i * IOVEC_SIZE, 1, range.offset + range.zeroed, slot.index, i);
    } else {
      this.engine!.fallocate(this.options.fd, mode, range.offset, range.length, slot.index, i);
    }
    this.opsInFlight++;
  }

  private readonly onCompletion = (tag: number, sub: number, result: number): void => {
    this.opsInFlight--;
    if (this.draining) return;
    const slot = this.slots[tag];
    if (!slot) return;
    switch (slot.op) {
      case 'read':
      case 'write':
        if (result > 0) {
          slot.done += result;
          if (slot.done < slot.length) {
            this.advanceIovecs(slot, result);
            this.issueTransfer(slot); // a short transfer: the rest from where it stopped
            return;
          }
        } else if (result < 0 || slot.done < slot.length) {
          this.fail(slot, result < 0 ? `errno ${-result}` : 'end of file');
        }
        break;
      case 'flush':
        if (result < 0) {
          this.shared.markFlushFailed(this.resetEpoch);
          this.fail(slot, `fdatasync: errno ${-result}`);
        } else if (this.shared.flushFailed(this.resetEpoch)) {
          // Another flush (maybe another thread's) consumed the error while this one ran.
          this.fail(slot, 'an earlier flush of this session failed');
        }
        break;
      case 'discard':
      case 'write-zeroes': {
        const range = slot.ranges[sub]!;
        const mode = range.modes[range.modeIndex]!;
        if (mode === BY_WRITING && result > 0) {
          range.zeroed += result;
          if (range.zeroed < range.length) {
            this.issueRange(slot, sub);
            return;
          }
        } else if (result < 0 || mode === BY_WRITING) {
          const unsupported = result === -EOPNOTSUPP || result === -EINVAL;
          if (unsupported && range.modeIndex + 1 < range.modes.length) {
            range.modeIndex++;
            this.issueRange(slot, sub);
            return;
          }
          // Discard is a hint: a file that cannot punch holes just keeps the data.
          if (!(unsupported && slot.op === 'discard')) this.fail(slot, result < 0 ? `fallocate: errno ${-result}` : 'zero write made no progress');
        }
        break;
      }
    }
    if (--slot.pending === 0) this.complete(slot);
  };

  private fail(slot: Slot, why: string): void {
    slot.status = S.VIRTIO_BLK_S_IOERR;
    this.context!.host.log('%s: %s at byte %d failed: %s', this.options.name, slot.op, slot.offset, why);
  }

  private complete(slot: Slot): void {
    if (slot.bounce) {
      if (slot.op === 'read' && slot.status === S.VIRTIO_BLK_S_OK) this.copyGuest(slot.guestPieces, slot.bounce.bytes, 'out');
      this.freeBounce(slot);
    }
    this.answer(slot.queue, slot.head, slot.statusAddress, slot.status, slot.status === S.VIRTIO_BLK_S_OK ? slot.used : 1);
    if (slot.status === S.VIRTIO_BLK_S_OK) this.countDone(slot.op, slot.length);
    else this.countStatus(slot.status);
    const generation = slot.generation;
    slot.generation = -1;
    slot.ranges = [];
    this.freeSlots.push(slot.index);
    if (generation >= 0) {
      for (const tag of this.flushOrder.writeFinished(generation)) this.issueFlush(this.slots[tag]!);
    }
  }

  private freeBounce(slot: Slot): void {
    slot.bounce?.free();
    slot.bounce = undefined;
    this.shared.releaseBounce(slot.bounceBytes);
    slot.bounceBytes = 0;
  }

  reset(): void {
    const engine = this.engine;
    if (engine) {
      // Nothing may land in the old driver's buffers after the reset completes: wait for it all.
      this.draining = true;
      try {
        engine.submit();
        while (this.opsInFlight > 0) {
          engine.wait();
          engine.reap(this.onCompletion);
        }
      } finally {
        this.draining = false;
        if (engine.eventFd !== undefined) this.context?.host.unwatch(engine.eventFd);
        engine.close();
        this.engine = undefined;
      }
    }
    for (const slot of this.slots) this.freeBounce(slot);
    this.freeSlots = this.slots.map((_, i) => this.slots.length - 1 - i);
    this.opsInFlight = 0;
    this.flushOrder.clear();
    this.context = undefined;
  }
}

export const virtioBlk = defineVirtioDevice<BlkOptions>({
  module: import.meta.url,
  exportName: 'virtioBlk',
  describe: describeVirtioBlk,
  create: (options, share) => new VirtioBlk(options, share),
});
