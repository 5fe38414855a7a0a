/**
 * The receive queue of one queue pair: frames go from the TAP straight into
 * the guest's receive buffers with one readv each, and only while buffers are
 * posted (the TAP fd is watched only then; otherwise the kernel queues, and
 * past its limit drops, frames in the host).
 *
 * Popped buffers wait in a pool whose iovecs are kept contiguous, so a read is
 * one readv over the first pooled chains: without MRG_RXBUF over one chain (a
 * frame must fit one chain); with it over as many chains as the frames seen
 * lately needed (one for small frames, seventeen 4 KiB buffers for a 64 KiB
 * GSO frame). The frame fills them in order, its header in the first, with
 * num_buffers = chains used. An extra host "overflow" iovec after the guest's
 * ensures the kernel never truncates a frame:
 *   - without MRG_RXBUF, a frame that spills into it is too large for the
 *     guest's buffer: it is dropped and counted, and the buffer is kept;
 *   - with MRG_RXBUF, its rest is copied into the next pooled buffers, or, when
 *     fewer buffers are posted than it needs, waits (TAP unwatched) until the
 *     driver posts more. Nothing is ever returned to the guest truncated.
 */
import type createDebug from 'debug';
import type { DescriptorChain } from '../../descriptor-chain.js';
import type { SplitQueue } from '../../queue.js';
import type { DataPlaneHost, VirtioInterrupt } from '../../virtio-device.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import { IOV_MAX, readv } from '../../../vmm/libc.js';
import { HostBuffer } from '../../../vmm/host-buffer.js';
import { IovecArray } from './host-buffer.js';
import { NET_GOOD_PACKET_BUFFER, NET_MAX_FRAME, VIRTIO_NET_HDR_FLAGS, VIRTIO_NET_HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE } from './spec.js';
import type { NetStats } from './stats.js';

const EAGAIN = 11;
/** Frames per wake-up before the epoll loop gets a turn. */
const RX_BUDGET = 256;
/** Frames after which the driver hears of them even mid-burst, so it refills while the device goes on. */
const RX_SIGNAL_BATCH = 64;
/** Largest readv window: IOV_MAX entries including the overflow one. */
const READ_WINDOW = IOV_MAX - 1;
/** Segments a receive chain may have (Linux uses 1 with MRG_RXBUF, up to MAX_SKB_FRAGS + 2 without). */
const RX_MAX_SEGMENTS = 64;
/** The pool's iovecs: a full window, one more chain, the overflow entry, and slack before compaction. */
const IOV_CAPACITY = 2 * (READ_WINDOW + RX_MAX_SEGMENTS + 1);
/** Frames over which the read window follows the largest frame seen (then shrinks to that period's largest). */
const WINDOW_PERIOD = 64;

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

/** A popped receive buffer waiting in the pool. */
interface PooledChain {
  readonly head: number;
  readonly chain: DescriptorChain;
  readonly capacity: number;
  readonly iovecs: number;
  /** Guest address of the header when the first segment holds all of it, else -1. */
  readonly headerAddress: number;
}

/**
 * A frame longer than its read window: its first `readCapacity` bytes are in the pool's first
 * chains, the rest in the overflow buffer until copied into the next pooled chains (counted in
 * `poolChains`) and then into chains popped for it (`extra`).
 */
interface SpilledFrame {
  readonly length: number;
  readonly readCapacity: number;
  poolChains: number;
  filled: number;
  waited: boolean;
  readonly extra: Array<{ readonly head: number; readonly length: number }>;
}

type ReadOutcome = 'frame' | 'empty' | 'failed';

/** Host memory reused across activations (one set per device thread). */
export class ReceiveBuffers {
  readonly iovecs = new IovecArray(IOV_CAPACITY);
  /** Catches whatever does not fit the guest's buffers. */
  readonly overflow = new HostBuffer(VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME);
}

export class Receiver {
  /** Pooled chains are pool[poolHead, poolEnd); the array is reused, never shrunk. */
  private readonly pool: PooledChain[] = [];
  private poolHead = 0;
  private poolEnd = 0;
  private poolCapacity = 0;
  /** Their iovecs, contiguous: iovecs[iovStart, iovEnd). */
  private iovStart = 0;
  private iovEnd = 0;
  private spilled: SpilledFrame | undefined;
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

  constructor(
    private readonly context: ReceiverContext,
    private readonly buffers: ReceiveBuffers,
    largeFrames: boolean,
  ) {
    this.largest = largeFrames ? VIRTIO_NET_HDR_SIZE + NET_MAX_FRAME : NET_GOOD_PACKET_BUFFER;
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
    while (frames < RX_BUDGET) {
      if (this.spilled) {
        if (this.finishSpilledFrame()) continue;
      } else {
        this.fillPool();
        if (this.pooled > 0) {
          this.watchTap();
          const outcome = this.readFrame();
          if (outcome !== 'frame') break;
          frames++;
          if (frames % RX_SIGNAL_BATCH === 0 && queue.needsNotification()) interrupt.signalUsed(queueIndex);
          continue;
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
   * Pops buffers until the pool can take the largest frame the TAP may send (so a frame rarely
   * has to wait for buffers); one buffer without MRG_RXBUF.
   */
  private fillPool(): void {
    const { queue, mergeable } = this.context;
    while (mergeable ? this.poolCapacity < this.largest && this.iovEnd - this.iovStart < READ_WINDOW : this.pooled === 0) {
      const chain = queue.pop();
      if (!chain) return;
      if (this.usable(chain)) this.addToPool(chain);
    }
  }

  /** A chain that cannot be a receive buffer goes straight back, empty. */
  private usable(chain: DescriptorChain): boolean {
    if (!chain.error && chain.readableLength === 0 && chain.writableLength >= VIRTIO_NET_HDR_SIZE && chain.segments.length <= RX_MAX_SEGMENTS) {
      return true;
    }
    const { queue, stats, log } = this.context;
    log('receive buffer %d unusable: %s', chain.head, chain.error?.message ?? 'not a write-only buffer of 12 bytes or more in at most 64 pieces');
    stats.add('rxBadChains');
    queue.addUsed(chain.head, 0);
    return false;
  }

  private addToPool(chain: DescriptorChain): void {
    const { memory } = this.context;
    const segments = chain.segments;
    if (this.iovEnd + segments.length + 1 > IOV_CAPACITY) this.compact();
    const iovecs = this.buffers.iovecs;
    let count = 0;
    let headerAddress = -1;
    for (const segment of segments) {
      if (segment.length === 0) continue;
      if (count === 0 && segment.length >= VIRTIO_NET_HDR_SIZE) headerAddress = segment.address;
      iovecs.set(this.iovEnd + count, memory.hostAddress(segment.address, segment.length), segment.length);
      count++;
    }
    this.pool[this.poolEnd++] = { head: chain.head, chain, capacity: chain.writableLength, iovecs: count, headerAddress };
    this.iovEnd += count;
    this.poolCapacity += chain.writableLength;
  }

  /** Moves the pooled chains and their iovecs to the front. */
  private compact(): void {
    const count = this.iovEnd - this.iovStart;
    this.buffers.iovecs.move(0, this.iovStart, count);
    this.iovStart = 0;
    this.iovEnd = count;
    this.pool.copyWithin(0, this.poolHead, this.poolEnd);
    this.poolEnd -= this.poolHead;
    this.poolHead = 0;
  }

  /** One readv from the TAP into the first pooled chains (plus the overflow buffer). */
  private readFrame(): ReadOutcome {
    const { mergeable, tapFd, stats, log } = this.context;
    const { iovecs, overflow } = this.buffers;
    const first = this.pool[this.poolHead]!;
    let count = first.iovecs;
    let capacity = first.capacity;
    if (mergeable) {
      // As many chains as the largest recent frame needs, within one readv.
      for (let i = this.poolHead + 1; i < this.poolEnd && capacity < this.window; i++) {
        const next = this.pool[i]!;
        if (count + next.iovecs > READ_WINDOW) break;
        count += next.iovecs;
        capacity += next.capacity;
      }
    }
    // The overflow entry goes right after the window (over the next chain's first iovec, put back after).
    const overflowIndex = this.iovStart + count;
    iovecs.save(overflowIndex);
    iovecs.set(overflowIndex, overflow.address, overflow.length);
    const n = readv(tapFd, iovecs.addressOf(this.iovStart), count + 1);
    iovecs.restore(overflowIndex);

    if (n === -EAGAIN || n === 0) return 'empty';
    if (n < 0) {
      // The TAP is gone (EBADFD after its interface was deleted) or broken: reading again would spin.
      log('reading the TAP failed (errno %d); receive stops until the device is reset', -n);
      stats.add('rxErrors');
      this.failed = true;
      this.unwatchTap();
      return 'failed';
    }
    if (mergeable) this.noteFrame(n);
    if (n <= capacity) {
      this.deliver(n, this.chainsHolding(n), []);
    } else if (n > capacity + overflow.length) {
      stats.add('rxDroppedTruncated');
    } else if (!mergeable) {
      stats.add('rxDroppedOversize');
    } else {
      const chains = this.chainsHolding(capacity);
      this.spilled = { length: n, readCapacity: capacity, poolChains: chains, filled: capacity, waited: false, extra: [] };
      this.finishSpilledFrame();
    }
    return 'frame';
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

  /**
   * Copies the rest of a spilled frame from the overflow buffer into the next pooled buffers,
   * then into newly popped ones; true once it is delivered, false while it waits for buffers.
   */
  private finishSpilledFrame(): boolean {
    const frame = this.spilled!;
    const { memory, queue, stats } = this.context;
    const overflow = this.buffers.overflow.bytes;
    while (frame.filled < frame.length) {
      const start = frame.filled - frame.readCapacity;
      if (frame.extra.length === 0 && this.poolHead + frame.poolChains < this.poolEnd) {
        const pooled = this.pool[this.poolHead + frame.poolChains]!;
        const length = Math.min(pooled.capacity, frame.length - frame.filled);
        pooled.chain.writeWritable(memory, 0, overflow.subarray(start, start + length));
        frame.poolChains++;
        frame.filled += length;
        continue;
      }
      const chain = queue.pop();
      if (!chain) {
        if (!frame.waited) stats.add('rxWaitedForBuffers');
        frame.waited = true;
        return false;
      }
      if (!this.usable(chain)) continue;
      const length = Math.min(chain.writableLength, frame.length - frame.filled);
      chain.writeWritable(memory, 0, overflow.subarray(start, start + length));
      frame.extra.push({ head: chain.head, length });
      frame.filled += length;
    }
    this.spilled = undefined;
    this.deliver(frame.length, frame.poolChains, frame.extra);
    return true;
  }

  /** How many of the pool's first chains n bytes fill. */
  private chainsHolding(n: number): number {
    let left = n;
    let chains = 0;
    while (left > 0) {
      left -= Math.min(this.pool[this.poolHead + chains]!.capacity, left);
      chains++;
    }
    return chains;
  }

  /**
   * Returns a frame of n bytes (header included) to the driver: in the pool's first `poolChains`
   * chains (filled in order), then in `extra` chains popped for its rest.
   */
  private deliver(n: number, poolChains: number, extra: ReadonlyArray<{ readonly head: number; readonly length: number }>): void {
    const { memory, queue, guestCsum } = this.context;
    const buffers = poolChains + extra.length;
    const first = this.pool[this.poolHead]!;
    // The header is the driver's once used.idx moves: complete it first. The TAP leaves num_buffers alone.
    if (first.headerAddress >= 0) {
      memory.writeU16(first.headerAddress + VIRTIO_NET_HDR_NUM_BUFFERS, buffers);
      if (!guestCsum) memory.writeU8(first.headerAddress + VIRTIO_NET_HDR_FLAGS, 0);
    } else {
      first.chain.writeWritable(memory, VIRTIO_NET_HDR_NUM_BUFFERS, Uint8Array.of(buffers & 0xff, buffers >> 8));
      if (!guestCsum) first.chain.writeWritable(memory, VIRTIO_NET_HDR_FLAGS, Uint8Array.of(0));
    }
    let left = n;
    let iovecs = 0;
    for (let i = 0; i < poolChains; i++) {
      const pooled = this.pool[this.poolHead + i]!;
      const length = Math.min(pooled.capacity, left);
      queue.addUsed(pooled.head, length);
      left -= length;
      iovecs += pooled.iovecs;
      this.poolCapacity -= pooled.capacity;
    }
    for (const { head, length } of extra) queue.addUsed(head, length);
    this.poolHead += poolChains;
    this.iovStart += iovecs;
    if (this.poolHead === this.poolEnd) {
      this.poolHead = 0;
      this.poolEnd = 0;
      this.iovStart = 0;
      this.iovEnd = 0;
    }
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
    this.pool.length = 0;
    this.poolHead = 0;
    this.poolEnd = 0;
    this.poolCapacity = 0;
    this.iovStart = 0;
    this.iovEnd = 0;
    this.spilled = undefined;
  }
}
