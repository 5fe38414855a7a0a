/**
 * Spilled frames and the order of frames (MRG_RXBUF only). A frame longer than
 * its read window has its first bytes in the window's chains and the rest in
 * the read's overflow buffer; the rest is copied into the next free buffers
 * (pooled ones the batch left unused, then newly popped ones) before the frame
 * is handed over. Frames read after a spilled one wait behind it here, whole,
 * so the guest sees frames in the order they came: unless the spilled frame
 * must wait for buffers the ones behind it hold (a small ring), in which case
 * those go first.
 *
 * A frame is handed over as the receive loop does it: every chain's used
 * element, then the header (num_buffers), then all of them at once.
 */
import type { DescriptorChain } from '../../descriptor-chain.js';
import type { HostBuffer } from '../../../sys/host-buffer.js';
import { writeSplitHeader } from './rx-header.js';
import type { RxPool } from './rx-pool.js';
import type { ReceiverContext } from './rx.js';

/** The overflow of a frame that has none. */
const NO_BYTES = new Uint8Array(0);

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

/** What the spill queue needs from the receive loop. */
export interface RxFrameSink {
  /** Whether a popped chain can take a frame (if not, it went back to the driver, empty). */
  usable(chain: DescriptorChain): boolean;
  /** Counts a frame of n bytes (header included) handed to the guest. */
  delivered(n: number): void;
}

export class SpillQueue {
  private readonly frames: SpilledFrame[] = [];

  constructor(
    private readonly context: ReceiverContext,
    private readonly pool: RxPool,
    /** One per read of a batch: where a frame's rest is. */
    private readonly overflows: readonly HostBuffer[],
    /** The receive loop's chain, refilled by every pop. */
    private readonly chain: DescriptorChain,
    private readonly sink: RxFrameSink,
  ) {}

  /** Frames are waiting here: whatever is read next goes behind them. */
  get waiting(): boolean {
    return this.frames.length > 0;
  }

  /** A whole frame held by the pool's chains from `start` on, handed over by finish() after the spilled frames before it. */
  queueBehind(n: number, start: number): void {
    const pool = this.pool;
    const frame: SpilledFrame = { length: n, readCapacity: n, overflow: -1, filled: n, waited: false, heads: [], lengths: [], header: pool.piecesOf(start) };
    for (let left = n, p = start; left > 0; p++) {
      const length = Math.min(pool.caps[p]!, left);
      frame.heads.push(pool.heads[p]!);
      frame.lengths.push(length);
      left -= length;
      pool.capacity -= pool.caps[p]!;
      pool.consumed[p] = 1;
    }
    this.frames.push(frame);
  }

  /** A frame whose rest is in overflow buffer `overflow`: its read's chains [start, end) are taken; the rest waits for finish(). */
  spill(n: number, overflow: number, start: number, end: number, capacity: number): void {
    const pool = this.pool;
    const frame: SpilledFrame = { length: n, readCapacity: capacity, overflow, filled: capacity, waited: false, heads: [], lengths: [], header: pool.piecesOf(start) };
    for (let p = start; p < end; p++) {
      frame.heads.push(pool.heads[p]!);
      frame.lengths.push(pool.caps[p]!);
      pool.capacity -= pool.caps[p]!;
      pool.consumed[p] = 1;
    }
    this.frames.push(frame);
  }

  /**
   * Copies the rest of each spilled frame, in order, from its overflow buffer into the pool's
   * first buffers, then into newly popped ones; true once all are delivered, false while one
   * waits for buffers.
   */
  finish(): boolean {
    const { memory, queue, stats } = this.context;
    const pool = this.pool;
    while (this.frames.length > 0) {
      const frame = this.frames[0]!;
      // A frame queued whole behind a spilled one has nothing in an overflow buffer.
      const overflow = frame.filled < frame.length ? this.overflows[frame.overflow]!.bytes : NO_BYTES;
      while (frame.filled < frame.length) {
        const from = frame.filled - frame.readCapacity;
        if (pool.count > 0) {
          const p = pool.head;
          const length = Math.min(pool.caps[p]!, frame.length - frame.filled);
          pool.copyInto(memory, p, overflow.subarray(from, from + length));
          frame.heads.push(pool.heads[p]!);
          frame.lengths.push(length);
          frame.filled += length;
          pool.takeFirst();
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
        if (!this.sink.usable(chain)) continue;
        const length = Math.min(chain.writableLength, frame.length - frame.filled);
        chain.writeWritable(memory, 0, overflow.subarray(from, from + length));
        frame.heads.push(chain.head);
        frame.lengths.push(length);
        frame.filled += length;
      }
      this.frames.shift();
      this.handOver(frame);
    }
    return true;
  }

  /** Forgets every waiting frame (its buffers belong to a driver that reset the device). */
  clear(): void {
    this.frames.length = 0;
  }

  /** Hands over the whole frames waiting behind the first spilled frame, out of order. */
  private releaseWholeFrames(): void {
    const { stats } = this.context;
    for (let i = 1; i < this.frames.length; ) {
      const frame = this.frames[i]!;
      if (frame.filled < frame.length) {
        i++;
        continue;
      }
      this.frames.splice(i, 1);
      this.handOver(frame);
      stats.add('rxReordered');
    }
  }

  /** Publishes a completed spilled or queued frame: its header, then all its chains at once. */
  private handOver(frame: SpilledFrame): void {
    const { memory, queue, guestCsum } = this.context;
    // The read's own chains hold `readCapacity` bytes in all; the others what was copied. Used
    // elements first, as the receive loop does (nothing is visible before publishUsed).
    let left = frame.length;
    for (let i = 0; i < frame.heads.length; i++) {
      const length = Math.min(frame.lengths[i]!, left);
      queue.fillUsed(frame.heads[i]!, length);
      left -= length;
    }
    writeSplitHeader(memory, frame.header, frame.heads.length, guestCsum);
    queue.publishUsed();
    this.sink.delivered(frame.length);
  }
}
