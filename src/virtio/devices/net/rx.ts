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
 *
 * This file is the receive loop (popping into the pool, the batched reads,
 * handing frames over, watching the TAP); its parts: rx-pool.ts (the pool),
 * rx-spill.ts (spilled frames and frame order), rx-header.ts (virtio_net_hdr).
 */
import type createDebug from 'debug';
import { DescriptorChain } from '../../descriptor-chain.js';
import { POP_BUFFER, POP_NONE, type SplitQueue } from '../../queue.js';
import type { DataPlaneHost, VirtioInterrupt } from '../../virtio-device.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import { IoUring, RWF_NOWAIT } from '../../../sys/io-uring.js';
import { IOV_MAX, readv } from '../../../sys/iovec.js';
import { HostBuffer } from '../../../sys/host-buffer.js';
import { EAGAIN } from '../../../sys/errno.js';
import { IovecArray } from './host-buffer.js';
import { writeHeader, writeSplitHeader } from './rx-header.js';
import { IOV_CAPACITY, RX_MAX_SEGMENTS, RxPool } from './rx-pool.js';
import { SpillQueue, type RxFrameSink } from './rx-spill.js';
import { NET_GOOD_PACKET_BUFFER, NET_MAX_FRAME, VIRTIO_NET_HDR_SIZE } from './spec.js';
import type { NetStats } from './stats.js';

/** Frames per wake-up before the epoll loop gets a turn. */
const RX_BUDGET = 256;
/** Without EVENT_IDX: frames after which the driver hears of them even mid-burst, so it refills while the device goes on. */
const RX_SIGNAL_BATCH = 64;
/** Largest readv window: IOV_MAX entries including the overflow one. */
const READ_WINDOW = IOV_MAX - 1;
/** Most reads per io_uring_enter. */
const RX_BATCH = 32;
/** The iovecs of one batch's reads: their windows, one overflow entry each. */
const SUBMIT_IOVECS = 2048;
/** Frames over which the read window follows the largest frame seen (then shrinks to that period's largest). */
const WINDOW_PERIOD = 64;
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

type BatchOutcome = 'frames' | 'empty' | 'failed';

/** Host memory and the io_uring, reused across activations (one set per device thread). */
export class ReceiveBuffers {
  /** The pool's iovecs. */
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

export class Receiver implements RxFrameSink {
  private readonly pool: RxPool;
  private readonly spills: SpillQueue;
  /** Per read of the current batch: its chains [groupStart, groupEnd), capacity and result. */
  private readonly groupStart = new Int32Array(RX_BATCH);
  private readonly groupEnd = new Int32Array(RX_BATCH);
  private readonly groupCap = new Float64Array(RX_BATCH);
  private readonly groupResult = new Float64Array(RX_BATCH);
  private batchSize = 1;
  private readonly ring: IoUring | null;
  private readonly chain = new DescriptorChain();
  /** A single-descriptor buffer popWritableBuffer found: head, guest address, host address, length. */
  private readonly popped = new Float64Array(4);
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
    this.pool = new RxPool(buffers.iovecs);
    this.spills = new SpillQueue(context, this.pool, buffers.overflows, this.chain, this);
  }

  /** Offloads changed: GSO frames may (or may no longer) come. */
  setLargeFrames(largeFrames: boolean): void {
    this.largest = largeFrames ? VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME : NET_GOOD_PACKET_BUFFER;
  }

  /** Moves frames from the TAP into posted buffers until either runs out (or the budget does). */
  receive(): void {
    if (this.stopped || this.failed) return;
    const { queue, interrupt, queueIndex, stats } = this.context;
    let frames = 0;
    let signalled = 0;
    while (frames < RX_BUDGET) {
      if (this.spills.waiting) {
        if (this.spills.finish()) continue;
      } else {
        this.fillPool();
        if (this.pool.count > 0) {
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
    const pool = this.pool;
    const wanted = mergeable ? Math.max(this.largest, this.batchSize * this.window) : 0;
    while (mergeable ? pool.capacity < wanted : pool.count < this.batchSize) {
      if (pool.full) return;
      const popped = queue.popWritableBuffer(this.popped, chain);
      if (popped === POP_NONE) return;
      if (popped === POP_BUFFER) this.addBufferToPool();
      else if (this.usable(chain)) pool.addChain(chain);
    }
  }

  /** Pools the single-descriptor buffer in `popped` (no DescriptorChain was built). */
  private addBufferToPool(): void {
    const popped = this.popped;
    const head = popped[0]!;
    const length = popped[3]!;
    if (length < VIRTIO_NET_HDR_SIZE) {
      this.returnUnusable(head, 'shorter than the 12-byte header');
      return;
    }
    this.pool.addBuffer(head, popped[1]!, popped[2]!, length);
  }

  /** Whether a popped chain can be a receive buffer; one that cannot goes straight back, empty. */
  usable(chain: DescriptorChain): boolean {
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

  /** One batch of reads from the TAP into consecutive windows of the pool, then their frames handed over. */
  private readBatch(): BatchOutcome {
    const { mergeable, tapFd } = this.context;
    const { iovecs, submitted, overflows } = this.buffers;
    const pool = this.pool;
    const { caps, iovCount } = pool;
    const poolEnd = pool.end;
    const target = this.ring ? this.batchSize : 1;
    // One read goes by readv(2): cheaper than an io_uring round for a single operation.
    const ring = target > 1 ? this.ring : null;
    let groups = 0;
    let used = 0;
    let p = pool.head;
    while (groups < target && p < poolEnd) {
      const start = p;
      let capacity = caps[p]!;
      let count = iovCount[p]!;
      p++;
      if (mergeable) {
        // As many chains as the largest recent frame needs, within one readv.
        while (p < poolEnd && capacity < this.window && count + iovCount[p]! <= READ_WINDOW) {
          capacity += caps[p]!;
          count += iovCount[p]!;
          p++;
        }
      }
      // The pool ran out short of a whole window: a frame read into it would spill and be copied
      // once buffers come. Unless nothing else is read, wait for them instead.
      if (mergeable && groups > 0 && capacity < this.window && p === poolEnd) break;
      if (used + count + 1 > SUBMIT_IOVECS) break;
      const joined = submitted.copyJoined(iovecs, pool.iov[start]!, used, count);
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
    const spills = this.spills;
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
        if (spills.waiting) spills.queueBehind(n, start);
        else this.deliverFromPool(n, start);
      } else if (n > capacity + overflowLength) {
        stats.add('rxDroppedTruncated');
      } else if (!mergeable) {
        stats.add('rxDroppedOversize');
      } else {
        spills.spill(n, g, start, this.groupEnd[g]!, capacity);
      }
    }
    this.pool.dropConsumed(groups > 0 ? this.groupEnd[groups - 1]! : this.pool.head);
    if (this.ring) this.batchSize = frames === groups ? Math.min(RX_BATCH, this.batchSize * 2) : Math.max(1, frames);
    if (failed) {
      this.failed = true;
      this.unwatchTap();
      // Frames read before the failure still go to the guest (as buffers allow).
      if (spills.waiting) spills.finish();
      return 'failed';
    }
    if (spills.waiting) spills.finish();
    return frames > 0 ? 'frames' : 'empty';
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
    const { queue, memory, guestCsum } = this.context;
    const pool = this.pool;
    const { caps, heads, consumed } = pool;
    // Used elements first (the driver sees none of them before publishUsed), then the header
    // once the number of buffers is known, then all of them at once: a driver reading
    // num_buffers expects every one there.
    let chains = 0;
    for (let left = n; left > 0; chains++) {
      const p = start + chains;
      const capacity = caps[p]!;
      const length = capacity < left ? capacity : left;
      queue.fillUsed(heads[p]!, length);
      left -= length;
      pool.capacity -= capacity;
      consumed[p] = 1;
    }
    const header = pool.header[start]!;
    if (header >= 0) writeHeader(memory, header, chains, guestCsum);
    else writeSplitHeader(memory, pool.piecesOf(start), chains, guestCsum);
    queue.publishUsed();
    this.delivered(n);
  }

  /** Counts a frame of n bytes (header included) handed to the guest; added to the stats once per wake-up. */
  delivered(n: number): void {
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
    this.pool.clear();
    this.spills.clear();
  }
}
