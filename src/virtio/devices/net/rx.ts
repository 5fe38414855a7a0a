/**
 * The receive queue of one queue pair: frames go from the TAP straight into
 * the guest's receive buffers, and only while buffers are posted (the TAP fd
 * is watched only then; otherwise the kernel queues, and past its limit
 * drops, frames in the host).
 *
 * Popped buffers wait in a pool (flat typed arrays, no per-chain objects)
 * whose iovecs are kept contiguous. A read covers a window of the first
 * pooled chains: without MRG_RXBUF one chain (a frame must fit one chain);
 * with it as many chains as the frames seen lately needed (one for small
 * frames, seventeen 4 KiB buffers for a 64 KiB GSO frame). The frame fills
 * them in order, its header in the first, with num_buffers = chains used; the
 * used ring shows all of a frame's chains at once (used.idx moves past them
 * together), as Linux's driver needs.
 *
 * Reads go in batches: consecutive windows, each its own READV with
 * RWF_NOWAIT on an io_uring, all handed to the kernel by one io_uring_enter
 * that runs them before it returns (an empty TAP answers EAGAIN at once).
 * The batch doubles while every read finds a frame and shrinks to what was
 * found otherwise, so an idle TAP costs one read. Without io_uring each
 * window is one readv(2).
 *
 * An extra host "overflow" iovec after each window ensures the kernel never
 * truncates a frame:
 *   - without MRG_RXBUF, a frame that spills into it is too large for the
 *     guest's buffer: it is dropped and counted, and the buffer is kept;
 *   - with MRG_RXBUF, its rest is copied into the next free buffers (pooled
 *     ones the batch left unused, then newly popped ones) or, when fewer
 *     buffers are posted than it needs, waits (TAP unwatched) until the
 *     driver posts more. Nothing is ever returned to the guest truncated.
 *     Frames read after it wait behind it, so the guest sees them in order —
 *     unless it must wait for buffers those frames hold (a small ring): then
 *     they go first.
 */
import type createDebug from 'debug';
import { DescriptorChain } from '../../descriptor-chain.js';
import { POP_BUFFER, POP_NONE, type SplitQueue } from '../../queue.js';
import type { DataPlaneHost, VirtioInterrupt } from '../../virtio-device.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import { IoUring, RWF_NOWAIT } from '../../../sys/io-uring.js';
import { IOV_MAX, readv } from '../../../sys/libc.js';
import { HostBuffer } from '../../../sys/host-buffer.js';
import { EAGAIN } from '../../../sys/errno.js';
import { IovecArray } from './host-buffer.js';
import { NET_GOOD_PACKET_BUFFER, NET_MAX_FRAME, VIRTIO_NET_HDR_FLAGS, VIRTIO_NET_HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE } from './spec.js';
import type { NetStats } from './stats.js';

/** Frames per wake-up before the epoll loop gets a turn. */
const RX_BUDGET = 256;
/** Without EVENT_IDX: frames after which the driver hears of them even mid-burst, so it refills while the device goes on. */
const RX_SIGNAL_BATCH = 64;
/** Largest readv window: IOV_MAX entries including the overflow one. */
const READ_WINDOW = IOV_MAX - 1;
/** Segments a receive chain may have (Linux uses 1 with MRG_RXBUF, up to MAX_SKB_FRAGS + 2 without). */
const RX_MAX_SEGMENTS = 64;
/** Most reads per io_uring_enter. */
const RX_BATCH = 32;
/** iovecs the pool may hold; compaction keeps room for one more chain. */
const POOL_IOVECS = 2048;
const IOV_CAPACITY = 2 * POOL_IOVECS + RX_MAX_SEGMENTS;
/** The iovecs of one batch's reads: their windows, one overflow entry each. */
const SUBMIT_IOVECS = 2048;
/** Frames over which the read window follows the largest frame seen (then shrinks to that period's largest). */
const WINDOW_PERIOD = 64;
/** The overflow of a frame that has none. */
const NO_BYTES = new Uint8Array(0);
/** A stream (no file offset) for io_uring's READV. */
const NO_OFFSET = -1;

export interface ReceiverContext {
  readonly memory: GuestMemory;
  readonly queue: SplitQueue;
  readonly queueIndex: number;
  readonly interrupt: VirtioInterrupt;
  readonly host: DataPlaneHost;
  readonly tapFd: number;
  readonly stats: NetStats;
  readonly log: createDebug.Debugger;
  /** VIRTIO_NET_F_MRG_RXBUF was negotiated. */
  readonly mergeable: boolean;
  /** VIRTIO_NET_F_GUEST_CSUM was negotiated (else the header's flags must be 0). */
  readonly guestCsum: boolean;
}

/**
 * A frame longer than its read window: its first `readCapacity` bytes are in the chains of its
 * read, the rest in overflow buffer `overflow` until copied into further chains.
 */
interface SpilledFrame {
  readonly length: number;
  readonly readCapacity: number;
  /** Index of its overflow buffer (-1: a whole frame queued behind a spilled one). */
  readonly overflow: number;
  filled: number;
  waited: boolean;
  /** Chains holding the frame, in order, and the bytes in each. */
  readonly heads: number[];
  readonly lengths: number[];
  /** Where the header is: [guest address, length, …] of the first chain's pieces. */
  readonly header: number[];
}

type BatchOutcome = 'frames' | 'empty' | 'failed';

/** Host memory and the io_uring, reused across activations (one set per device thread). */
export class ReceiveBuffers {
  readonly iovecs = new IovecArray(IOV_CAPACITY);
  readonly submitted = new IovecArray(SUBMIT_IOVECS);
  /** One per read of a batch: catches whatever does not fit the guest's buffers. */
  readonly overflows = Array.from({ length: RX_BATCH }, () => new HostBuffer(VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME));
  /** undefined until first needed; null when the host has no io_uring. */
  private uring: IoUring | null | undefined;

  ring(log: createDebug.Debugger): IoUring | null {
    if (this.uring === undefined) this.uring = IoUring.createOrNull(RX_BATCH, (reason) => log('io_uring unavailable (%s): one readv per frame', reason));
    return this.uring;
  }
}

export class Receiver {
  /** Pooled chains are entries [poolHead, poolEnd) of these arrays. */
  private readonly poolHeads = new Uint16Array(IOV_CAPACITY);
  private readonly poolCaps = new Float64Array(IOV_CAPACITY);
  /** Their iovecs: entries [poolIov[p], poolIov[p] + poolIovCount[p]) of buffers.iovecs, contiguous in pool order. */
  private readonly poolIov = new Int32Array(IOV_CAPACITY);
  private readonly poolIovCount = new Int32Array(IOV_CAPACITY);
  /** Guest address of the header when the first segment holds all of it, else -1. */
  private readonly poolHeader = new Float64Array(IOV_CAPACITY);
  /** Guest address of each iovec (the iovecs hold host addresses), for copies into a chain. */
  private readonly iovGuest = new Float64Array(IOV_CAPACITY);
  private readonly iovLength = new Float64Array(IOV_CAPACITY);
  private poolHead = 0;
  private poolEnd = 0;
  private poolCapacity = 0;
  private iovStart = 0;
  private iovEnd = 0;
  /** Per read of the current batch: its chains [groupStart, groupEnd), capacity and result. */
  private readonly groupStart = new Int32Array(RX_BATCH);
  private readonly groupEnd = new Int32Array(RX_BATCH);
  private readonly groupCap = new Float64Array(RX_BATCH);
  private readonly groupResult = new Float64Array(RX_BATCH);
  /** Pool entries a batch consumed (1) or left free (0). */
  private readonly consumed = new Uint8Array(IOV_CAPACITY);
  private batchSize = 1;
  private readonly ring: IoUring | null;
  private readonly chain = new DescriptorChain();
  /** A single-descriptor buffer popWritableBuffer found: head, guest address, host address, length. */
  private readonly popped = new Float64Array(4);
  private readonly spills: SpilledFrame[] = [];
  private watching = false;
  private failed = false;
  private stopped = false;
  /** Counted locally and added to the shared counters once per wake-up. */
  private deliveredFrames = 0;
  private deliveredBytes = 0;
  /** With MRG_RXBUF: the largest frame (header included) the TAP may hand over now. */
  private largest: number;
  /** With MRG_RXBUF: the buffer bytes a read covers (the largest frame lately), and this period's largest. */
  private window = NET_GOOD_PACKET_BUFFER;
  private periodLargest = 0;
  private periodFrames = 0;
  private readonly onReadable = (): void => this.receive();
  private readonly onCompletion = (tag: number, _sub: number, result: number): void => {
    this.groupResult[tag] = result;
  };

  constructor(
    private readonly context: ReceiverContext,
    private readonly buffers: ReceiveBuffers,
    largeFrames: boolean,
  ) {
    this.largest = largeFrames ? VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME : NET_GOOD_PACKET_BUFFER;
    this.ring = buffers.ring(context.log);
  }

  /** Offloads changed: GSO frames may (or may no longer) come. */
  setLargeFrames(largeFrames: boolean): void {
    this.largest = largeFrames ? VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME : NET_GOOD_PACKET_BUFFER;
  }

  private get pooled(): number {
    return this.poolEnd - this.poolHead;
  }

  /** Moves frames from the TAP into posted buffers until either runs out (or the budget does). */
  receive(): void {
    if (this.stopped || this.failed) return;
    const { queue, interrupt, queueIndex, stats } = this.context;
    let frames = 0;
    let signalled = 0;
    while (frames < RX_BUDGET) {
      if (this.spills.length > 0) {
        if (this.finishSpills()) continue;
      } else {
        this.fillPool();
        if (this.pooled > 0) {
          this.watchTap();
          const before = this.deliveredFrames;
          const outcome = this.readBatch();
          frames += this.deliveredFrames - before;
          // With EVENT_IDX the driver says when it wants to hear (used_event): ask after every batch,
          // so it refills while the device goes on; without, every RX_SIGNAL_BATCH frames.
          if (frames > signalled && (queue.options.eventIdx || frames - signalled >= RX_SIGNAL_BATCH)) {
            signalled = frames;
            if (queue.needsNotification()) interrupt.signalUsed(queueIndex);
          }
          if (outcome === 'frames') continue;
          break;
        }
      }
      // Out of buffers: ask for a kick, and look once more in case buffers came meanwhile.
      if (queue.enableNotifications()) continue;
      this.unwatchTap();
      stats.add('rxNoBuffers');
      break;
    }
    if (this.deliveredFrames > 0) {
      stats.add('rxFrames', this.deliveredFrames);
      stats.add('rxBytes', this.deliveredBytes);
      this.deliveredFrames = 0;
      this.deliveredBytes = 0;
    }
    if (queue.needsNotification()) interrupt.signalUsed(queueIndex);
  }

  /**
   * Pops buffers until the pool holds a batch of windows and can take the largest frame the
   * TAP may send (so a frame rarely has to wait for buffers); without MRG_RXBUF one buffer per read.
   */
  private fillPool(): void {
    const { queue, mergeable } = this.context;
    const chain = this.chain;
    const wanted = mergeable ? Math.max(this.largest, this.batchSize * this.window) : 0;
    while (mergeable ? this.poolCapacity < wanted : this.pooled < this.batchSize) {
      if (this.iovEnd - this.iovStart > POOL_IOVECS || this.poolEnd - this.poolHead > POOL_IOVECS) return;
      const popped = queue.popWritableBuffer(this.popped, chain);
      if (popped === POP_NONE) return;
      if (popped === POP_BUFFER) this.addBufferToPool();
      else if (this.usable(chain)) this.addToPool(chain);
    }
  }

  /** addToPool for the single-descriptor buffer in `popped` (no DescriptorChain was built). */
  private addBufferToPool(): void {
    const popped = this.popped;
    const head = popped[0]!;
    const length = popped[3]!;
    if (length < VIRTIO_NET_HDR_SIZE) {
      this.returnUnusable(head, 'shorter than the 12-byte header');
      return;
    }
    if (this.iovEnd + 1 > IOV_CAPACITY || this.poolEnd === IOV_CAPACITY) this.compact();
    const p = this.poolEnd++;
    const at = this.iovEnd++;
    this.poolHeads[p] = head;
    this.poolCaps[p] = length;
    this.poolIov[p] = at;
    this.poolIovCount[p] = 1;
    this.poolHeader[p] = popped[1]!;
    this.buffers.iovecs.set(at, popped[2]!, length);
    this.iovGuest[at] = popped[1]!;
    this.iovLength[at] = length;
    this.poolCapacity += length;
  }

  /** A chain that cannot be a receive buffer goes straight back, empty. */
  private usable(chain: DescriptorChain): boolean {
    if (!chain.error && chain.readableLength === 0 && chain.writableLength >= VIRTIO_NET_HDR_SIZE && chain.segmentCount <= RX_MAX_SEGMENTS) {
      return true;
    }
    this.returnUnusable(chain.head, chain.error?.message ?? 'not a write-only buffer of 12 bytes or more in at most 64 pieces');
    return false;
  }

  /** Gives a buffer that cannot take a frame back to the driver, empty, and counts it. */
  private returnUnusable(head: number, why: string): void {
    const { queue, stats, log } = this.context;
    log('receive buffer %d unusable: %s', head, why);
    stats.add('rxBadChains');
    queue.addUsed(head, 0);
  }

  private addToPool(chain: DescriptorChain): void {
    if (this.iovEnd + chain.segmentCount > IOV_CAPACITY || this.poolEnd === IOV_CAPACITY) this.compact();
    const iovecs = this.buffers.iovecs;
    const p = this.poolEnd++;
    this.poolHeads[p] = chain.head;
    this.poolCaps[p] = chain.writableLength;
    this.poolIov[p] = this.iovEnd;
    this.poolHeader[p] = chain.lengthAt(0) >= VIRTIO_NET_HDR_SIZE ? chain.addressAt(0) : -1;
    let count = 0;
    for (let i = 0; i < chain.segmentCount; i++) {
      const length = chain.lengthAt(i);
      if (length === 0) continue;
      const at = this.iovEnd + count++;
      iovecs.set(at, chain.hostAt(i), length);
      this.iovGuest[at] = chain.addressAt(i);
      this.iovLength[at] = length;
    }
    this.poolIovCount[p] = count;
    this.iovEnd += count;
    this.poolCapacity += chain.writableLength;
  }

  /** Moves the pooled chains and their iovecs to the front. */
  private compact(): void {
    this.shiftPool(0, 0);
  }

  /** Moves pool entries [poolHead, poolEnd) to start at entry `to`, their iovecs at `iovTo` (both ≤ current). */
  private shiftPool(to: number, iovTo: number): void {
    const count = this.poolEnd - this.poolHead;
    const iovCount = this.iovEnd - this.iovStart;
    const iovDelta = this.iovStart - iovTo;
    this.buffers.iovecs.move(iovTo, this.iovStart, iovCount);
    this.iovGuest.copyWithin(iovTo, this.iovStart, this.iovEnd);
    this.iovLength.copyWithin(iovTo, this.iovStart, this.iovEnd);
    for (const a of [this.poolHeads, this.poolCaps, this.poolIovCount, this.poolHeader] as const) a.copyWithin(to, this.poolHead, this.poolEnd);
    this.poolIov.copyWithin(to, this.poolHead, this.poolEnd);
    for (let p = to; p < to + count; p++) this.poolIov[p]! -= iovDelta;
    this.poolHead = to;
    this.poolEnd = to + count;
    this.iovStart = iovTo;
    this.iovEnd = iovTo + iovCount;
  }

  /**
   * Drops the pool entries marked consumed in [from, poolEnd), keeping the others in order from
   * entry `to` and iovec `iovTo` on (both at or before where they are).
   */
  private keepUnconsumed(from: number, to: number, iovTo: number): void {
    const iovecs = this.buffers.iovecs;
    let w = to;
    let iw = iovTo;
    for (let p = from; p < this.poolEnd; p++) {
      if (this.consumed[p]) {
        this.consumed[p] = 0;
        continue;
      }
      const at = this.poolIov[p]!;
      const n = this.poolIovCount[p]!;
      if (iw !== at) {
        iovecs.move(iw, at, n);
        this.iovGuest.copyWithin(iw, at, at + n);
        this.iovLength.copyWithin(iw, at, at + n);
      }
      this.poolHeads[w] = this.poolHeads[p]!;
      this.poolCaps[w] = this.poolCaps[p]!;
      this.poolIovCount[w] = n;
      this.poolHeader[w] = this.poolHeader[p]!;
      this.poolIov[w] = iw;
      w++;
      iw += n;
    }
    this.poolEnd = w;
    this.iovEnd = iw;
  }

  /** One batch of reads from the TAP into consecutive windows of the pool, then their frames handed over. */
  private readBatch(): BatchOutcome {
    const { mergeable, tapFd } = this.context;
    const { iovecs, submitted, overflows } = this.buffers;
    const target = this.ring ? this.batchSize : 1;
    // One read goes by readv(2): cheaper than an io_uring round for a single operation.
    const ring = target > 1 ? this.ring : null;
    let groups = 0;
    let used = 0;
    let p = this.poolHead;
    while (groups < target && p < this.poolEnd) {
      const start = p;
      let capacity = this.poolCaps[p]!;
      let count = this.poolIovCount[p]!;
      p++;
      if (mergeable) {
        // As many chains as the largest recent frame needs, within one readv.
        while (p < this.poolEnd && capacity < this.window && count + this.poolIovCount[p]! <= READ_WINDOW) {
          capacity += this.poolCaps[p]!;
          count += this.poolIovCount[p]!;
          p++;
        }
      }
      // The pool ran out short of a whole window: a frame read into it would spill and be copied
      // once buffers come. Unless nothing else is read, wait for them instead.
      if (mergeable && groups > 0 && capacity < this.window && p === this.poolEnd) break;
      if (used + count + 1 > SUBMIT_IOVECS) break;
      const joined = submitted.copyJoined(iovecs, this.poolIov[start]!, used, count);
      const overflow = overflows[groups]!;
      submitted.set(used + joined, overflow.address, overflow.length);
      this.groupStart[groups] = start;
      this.groupEnd[groups] = p;
      this.groupCap[groups] = capacity;
      if (ring) ring.readv(tapFd, submitted.addressOf(used), joined + 1, NO_OFFSET, groups, 0, 0, RWF_NOWAIT);
      else this.groupResult[groups] = readv(tapFd, submitted.addressOf(used), joined + 1);
      used += joined + 1;
      groups++;
    }
    // RWF_NOWAIT: every read completes inside this call, with a frame or EAGAIN.
    if (ring) ring.submitAndReapAll(groups, this.onCompletion);
    return this.takeBatch(groups);
  }

  /** Hands over the frames a batch read, keeps the buffers it left unused, then finishes spilled frames. */
  private takeBatch(groups: number): BatchOutcome {
    const { mergeable, stats, log } = this.context;
    const overflowLength = VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME;
    let frames = 0;
    let failed = false;
    for (let g = 0; g < groups; g++) {
      const n = this.groupResult[g]!;
      const start = this.groupStart[g]!;
      const capacity = this.groupCap[g]!;
      if (n === -EAGAIN || n === 0) continue;
      if (n < 0) {
        // The TAP is gone (EBADFD after its interface was deleted) or broken: reading again would spin.
        if (!failed) log('reading the TAP failed (errno %d); receive stops until the device is reset', -n);
        stats.add('rxErrors');
        failed = true;
        continue;
      }
      frames++;
      if (mergeable) this.noteFrame(n);
      if (n <= capacity) {
        // Frames keep their order: one read after a spilled frame waits behind it.
        if (this.spills.length > 0) this.queueBehindSpill(n, start);
        else this.deliverFromPool(n, start);
      } else if (n > capacity + overflowLength) {
        stats.add('rxDroppedTruncated');
      } else if (!mergeable) {
        stats.add('rxDroppedOversize');
      } else {
        this.spill(n, g, start, this.groupEnd[g]!, capacity);
      }
    }
    this.dropConsumed(groups > 0 ? this.groupEnd[groups - 1]! : this.poolHead);
    if (this.poolHead === this.poolEnd) {
      this.poolHead = 0;
      this.poolEnd = 0;
      this.iovStart = 0;
      this.iovEnd = 0;
    }
    if (this.ring) this.batchSize = frames === groups ? Math.min(RX_BATCH, this.batchSize * 2) : Math.max(1, frames);
    if (failed) {
      this.failed = true;
      this.unwatchTap();
      // Frames read before the failure still go to the guest (as buffers allow).
      if (this.spills.length > 0) this.finishSpills();
      return 'failed';
    }
    if (this.spills.length > 0) this.finishSpills();
    return frames > 0 ? 'frames' : 'empty';
  }

  /**
   * Takes the chains a batch consumed out of the pool: a consumed prefix by moving the head;
   * buffers the batch left unused among consumed ones (a read that found no frame before one
   * that did, or the unfilled end of a window) stay pooled, in order, ahead of those it did not reach.
   */
  private dropConsumed(batchEnd: number): void {
    while (this.poolHead < this.poolEnd && this.consumed[this.poolHead]) {
      this.consumed[this.poolHead] = 0;
      this.iovStart += this.poolIovCount[this.poolHead]!;
      this.poolHead++;
    }
    for (let p = this.poolHead; p < batchEnd; p++) {
      if (this.consumed[p]) {
        this.keepUnconsumed(this.poolHead, this.poolHead, this.iovStart);
        return;
      }
    }
  }

  /** Sizes the read window by the largest frame of the last period (so small frames read into one buffer). */
  private noteFrame(n: number): void {
    if (n > this.periodLargest) this.periodLargest = n;
    if (n > this.window) this.window = n;
    if (++this.periodFrames === WINDOW_PERIOD) {
      this.window = Math.max(this.periodLargest, VIRTIO_NET_HDR_SIZE + 1);
      this.periodLargest = 0;
      this.periodFrames = 0;
    }
  }

  /** Returns a frame of n bytes (header included) held by the pool's chains from `start` on; marks them consumed. */
  private deliverFromPool(n: number, start: number): void {
    const { queue } = this.context;
    // Used elements first (the driver sees none of them before publishUsed), then the header
    // once the number of buffers is known, then all of them at once: a driver reading
    // num_buffers expects every one there.
    let chains = 0;
    for (let left = n; left > 0; chains++) {
      const p = start + chains;
      const capacity = this.poolCaps[p]!;
      const length = capacity < left ? capacity : left;
      queue.fillUsed(this.poolHeads[p]!, length);
      left -= length;
      this.poolCapacity -= capacity;
      this.consumed[p] = 1;
    }
    const header = this.poolHeader[start]!;
    if (header >= 0) this.writeHeader(header, chains);
    else this.writeSplitHeader(this.piecesOf(start), chains);
    queue.publishUsed();
    this.delivered(n);
  }

  /** A whole frame held by the pool's chains from `start` on, handed over by finishSpills after the spilled frames before it. */
  private queueBehindSpill(n: number, start: number): void {
    const frame: SpilledFrame = { length: n, readCapacity: n, overflow: -1, filled: n, waited: false, heads: [], lengths: [], header: this.piecesOf(start) };
    for (let left = n, p = start; left > 0; p++) {
      const length = Math.min(this.poolCaps[p]!, left);
      frame.heads.push(this.poolHeads[p]!);
      frame.lengths.push(length);
      left -= length;
      this.poolCapacity -= this.poolCaps[p]!;
      this.consumed[p] = 1;
    }
    this.spills.push(frame);
  }

  /** A frame whose rest is in overflow buffer `overflow`: its read's chains [start, end) are taken; the rest waits for finishSpills. */
  private spill(n: number, overflow: number, start: number, end: number, capacity: number): void {
    const frame: SpilledFrame = { length: n, readCapacity: capacity, overflow, filled: capacity, waited: false, heads: [], lengths: [], header: this.piecesOf(start) };
    for (let p = start; p < end; p++) {
      frame.heads.push(this.poolHeads[p]!);
      frame.lengths.push(this.poolCaps[p]!);
      this.poolCapacity -= this.poolCaps[p]!;
      this.consumed[p] = 1;
    }
    this.spills.push(frame);
  }

  /** [guest address, length, …] of pooled chain p's pieces. */
  private piecesOf(p: number): number[] {
    const pieces: number[] = [];
    const at = this.poolIov[p]!;
    for (let i = at; i < at + this.poolIovCount[p]!; i++) pieces.push(this.iovGuest[i]!, this.iovLength[i]!);
    return pieces;
  }

  /**
   * Copies the rest of each spilled frame, in order, from its overflow buffer into the pool's
   * first buffers, then into newly popped ones; true once all are delivered, false while one
   * waits for buffers.
   */
  private finishSpills(): boolean {
    const { memory, queue, stats } = this.context;
    while (this.spills.length > 0) {
      const frame = this.spills[0]!;
      // A frame queued whole behind a spilled one has nothing in an overflow buffer.
      const overflow = frame.filled < frame.length ? this.buffers.overflows[frame.overflow]!.bytes : NO_BYTES;
      while (frame.filled < frame.length) {
        const from = frame.filled - frame.readCapacity;
        if (this.pooled > 0) {
          const p = this.poolHead;
          const length = Math.min(this.poolCaps[p]!, frame.length - frame.filled);
          this.copyIntoPooled(p, overflow.subarray(from, from + length));
          frame.heads.push(this.poolHeads[p]!);
          frame.lengths.push(length);
          frame.filled += length;
          this.poolCapacity -= this.poolCaps[p]!;
          this.iovStart += this.poolIovCount[p]!;
          this.poolHead++;
          continue;
        }
        const chain = this.chain;
        if (!queue.popInto(chain)) {
          if (!frame.waited) stats.add('rxWaitedForBuffers');
          frame.waited = true;
          // Whole frames queued behind this one hold buffers; on a small ring the guest may have
          // nothing else to post. Order gives way to progress: they go now, so their buffers return.
          this.releaseWholeFrames();
          return false;
        }
        if (!this.usable(chain)) continue;
        const length = Math.min(chain.writableLength, frame.length - frame.filled);
        chain.writeWritable(memory, 0, overflow.subarray(from, from + length));
        frame.heads.push(chain.head);
        frame.lengths.push(length);
        frame.filled += length;
      }
      this.spills.shift();
      this.handOver(frame);
    }
    return true;
  }

  /** Hands over the whole frames waiting behind the first spilled frame, out of order. */
  private releaseWholeFrames(): void {
    const { stats } = this.context;
    for (let i = 1; i < this.spills.length; ) {
      const frame = this.spills[i]!;
      if (frame.filled < frame.length) {
        i++;
        continue;
      }
      this.spills.splice(i, 1);
      this.handOver(frame);
      stats.add('rxReordered');
    }
  }

  /** Publishes a completed spilled or queued frame: its header, then all its chains at once. */
  private handOver(frame: SpilledFrame): void {
    const { queue } = this.context;
    // The read's own chains hold `readCapacity` bytes in all; the others what was copied. Used
    // elements first, as deliverFromPool does (nothing is visible before publishUsed).
    let left = frame.length;
    for (let i = 0; i < frame.heads.length; i++) {
      const length = Math.min(frame.lengths[i]!, left);
      queue.fillUsed(frame.heads[i]!, length);
      left -= length;
    }
    this.writeSplitHeader(frame.header, frame.heads.length);
    queue.publishUsed();
    this.delivered(frame.length);
  }

  /** Copies bytes to the start of pooled chain p. */
  private copyIntoPooled(p: number, bytes: Uint8Array): void {
    const { memory } = this.context;
    let done = 0;
    for (let i = this.poolIov[p]!; done < bytes.length; i++) {
      const length = Math.min(this.iovLength[i]!, bytes.length - done);
      memory.write(this.iovGuest[i]!, bytes.subarray(done, done + length));
      done += length;
    }
  }

  /** The header is the driver's once used.idx moves: complete it first. The TAP leaves num_buffers alone. */
  private writeHeader(address: number, buffers: number): void {
    const { memory, guestCsum } = this.context;
    memory.writeU16(address + VIRTIO_NET_HDR_NUM_BUFFERS, buffers);
    if (!guestCsum) memory.writeU8(address + VIRTIO_NET_HDR_FLAGS, 0);
  }

  /** writeHeader for a header anywhere in the pieces [guest address, length, …]. */
  private writeSplitHeader(pieces: readonly number[], buffers: number): void {
    if (pieces[1]! >= VIRTIO_NET_HDR_SIZE) {
      this.writeHeader(pieces[0]!, buffers);
      return;
    }
    const { memory, guestCsum } = this.context;
    const put = (offset: number, bytes: Uint8Array): void => {
      let skip = offset;
      let done = 0;
      for (let i = 0; i < pieces.length && done < bytes.length; i += 2) {
        const length = pieces[i + 1]!;
        if (skip >= length) {
          skip -= length;
          continue;
        }
        const n = Math.min(length - skip, bytes.length - done);
        memory.write(pieces[i]! + skip, bytes.subarray(done, done + n));
        done += n;
        skip = 0;
      }
    };
    put(VIRTIO_NET_HDR_NUM_BUFFERS, Uint8Array.of(buffers & 0xff, buffers >> 8));
    if (!guestCsum) put(VIRTIO_NET_HDR_FLAGS, Uint8Array.of(0));
  }

  private delivered(n: number): void {
    this.deliveredFrames++;
    this.deliveredBytes += n - VIRTIO_NET_HDR_SIZE;
  }

  private watchTap(): void {
    if (this.watching) return;
    this.watching = true;
    // While the TAP is watched, new buffers need no kick: the next readable event finds them.
    this.context.queue.disableNotifications();
    this.context.host.watch(this.context.tapFd, this.onReadable);
  }

  private unwatchTap(): void {
    if (!this.watching) return;
    this.watching = false;
    this.context.host.unwatch(this.context.tapFd);
  }

  /** Stops reading; buffers still pooled belong to the old driver and are forgotten. */
  stop(): void {
    this.stopped = true;
    this.unwatchTap();
    this.poolHead = 0;
    this.poolEnd = 0;
    this.poolCapacity = 0;
    this.iovStart = 0;
    this.iovEnd = 0;
    this.consumed.fill(0);
    this.spills.length = 0;
  }
}
