/**
 * The transmit queue of one queue pair: each chain is one frame, its
 * virtio-net header first, written to the TAP straight from the guest's
 * buffers (the TAP takes the same 12-byte header). A kick serves every chain
 * posted, with kicks suppressed meanwhile, and ends with at most one
 * interrupt. A frame that breaks the rules is dropped and counted; its
 * buffer is returned like any other, so the guest can reuse it.
 *
 * Frames go out in batches: up to TX_BATCH writes are queued on an io_uring
 * and handed to the kernel with one io_uring_enter, which runs them in order
 * before it returns (RWF_NOWAIT: none waits), instead of one writev call per
 * frame. Without io_uring each frame is one writev.
 */
import type createDebug from 'debug';
import { DescriptorChain } from '../../descriptor-chain.js';
import type { SplitQueue } from '../../queue.js';
import type { VirtioInterrupt } from '../../virtio-device.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import { IoUring, RWF_NOWAIT } from '../../../sys/io-uring.js';
import { IOV_MAX, writev } from '../../../sys/iovec.js';
import { featureBit } from '../../virtio-constants.js';
import { IovecArray } from './host-buffer.js';
import * as S from './spec.js';
import type { NetStats } from './stats.js';

/** Frames per io_uring_enter. */
const TX_BATCH = 64;
/** iovecs of a batch: room for a batch of two-piece frames, and always for one frame of IOV_MAX pieces. */
const TX_IOVECS = Math.max(4 * TX_BATCH, IOV_MAX);
/** A stream (no file offset) for io_uring's WRITEV. */
const NO_OFFSET = -1;

export interface TransmitterContext {
  readonly memory: GuestMemory;
  readonly queue: SplitQueue;
  readonly queueIndex: number;
  readonly interrupt: VirtioInterrupt;
  readonly tapFd: number;
  readonly stats: NetStats;
  readonly log: createDebug.Debugger;
  /** The negotiated features (checked against each header's offload requests). */
  readonly features: bigint;
}

type Verdict = 'ok' | 'malformed' | 'size' | 'header';

/** Host memory and the io_uring, reused across activations (one set per device thread). */
export class TransmitBuffers {
  readonly iovecs = new IovecArray(TX_IOVECS);
  /** undefined until first needed; null when the host has no io_uring. */
  private uring: IoUring | null | undefined;

  ring(log: createDebug.Debugger): IoUring | null {
    if (this.uring === undefined) this.uring = IoUring.createOrNull(TX_BATCH, (reason) => log('io_uring unavailable (%s): one writev per frame', reason));
    return this.uring;
  }
}

export class Transmitter {
  private readonly header = new Uint8Array(S.VIRTIO_NET_HDR_SIZE);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly chain = new DescriptorChain();
  private readonly ring: IoUring | null;
  /** The batch being built: per frame its head, iovecs and length (header excluded). */
  private readonly batchHeads = new Uint16Array(TX_BATCH);
  private readonly batchLengths = new Float64Array(TX_BATCH);
  private readonly batchResults = new Float64Array(TX_BATCH);
  private batchCount = 0;
  private batchIovecs = 0;
  /** Counted per transmit() call and added to the shared counters once. */
  private sentFrames = 0;
  private sentBytes = 0;
  private readonly allowed: {
    readonly csum: boolean;
    readonly tso4: boolean;
    readonly tso6: boolean;
    readonly ecn: boolean;
    readonly ufo: boolean;
    readonly uso: boolean;
  };
  private readonly onCompletion = (tag: number, _sub: number, result: number): void => {
    this.batchResults[tag] = result;
  };

  constructor(
    private readonly context: TransmitterContext,
    private readonly buffers: TransmitBuffers,
  ) {
    const has = (feature: number): boolean => (context.features & featureBit(feature)) !== 0n;
    this.allowed = {
      csum: has(S.VIRTIO_NET_F_CSUM),
      tso4: has(S.VIRTIO_NET_F_HOST_TSO4),
      tso6: has(S.VIRTIO_NET_F_HOST_TSO6),
      ecn: has(S.VIRTIO_NET_F_HOST_ECN),
      ufo: has(S.VIRTIO_NET_F_HOST_UFO),
      uso: has(S.VIRTIO_NET_F_HOST_USO),
    };
    this.ring = buffers.ring(context.log);
  }

  /** Sends every frame the driver has posted. */
  transmit(): void {
    const { queue, interrupt, queueIndex, stats } = this.context;
    const chain = this.chain;
    let used = 0;
    this.sentFrames = 0;
    this.sentBytes = 0;
    try {
      do {
        queue.disableNotifications();
        while (queue.popInto(chain)) {
          used++;
          if (!this.accept(chain)) {
            queue.addUsed(chain.head, 0);
            continue;
          }
          if (this.batchIovecs + chain.segmentCount > TX_IOVECS) this.flush();
          this.add(chain);
          if (this.batchCount === TX_BATCH) this.flush();
        }
        this.flush();
      } while (queue.enableNotifications());
    } finally {
      // A malformed ring throws out of popInto: the frames already queued in the ring go out
      // now, or the ring (kept across resets) would send them after the next activation.
      this.flush();
    }
    if (this.sentFrames > 0) {
      stats.add('txFrames', this.sentFrames);
      stats.add('txBytes', this.sentBytes);
    }
    if (used > 0 && queue.needsNotification()) interrupt.signalUsed(queueIndex);
  }

  /** Whether a popped chain may be sent; a dropped one is counted here. */
  private accept(chain: DescriptorChain): boolean {
    const verdict = this.check(chain);
    if (verdict === 'ok') return true;
    const { stats, log } = this.context;
    log('transmit chain %d dropped: %s', chain.head, chain.error?.message ?? verdict);
    stats.add(verdict === 'malformed' ? 'txDroppedMalformed' : verdict === 'size' ? 'txDroppedSize' : 'txDroppedHeader');
    return false;
  }

  /** Puts a frame's iovecs in the batch. */
  private add(chain: DescriptorChain): void {
    const { iovecs } = this.buffers;
    const first = this.batchIovecs;
    for (let i = 0; i < chain.segmentCount; i++) {
      const length = chain.lengthAt(i);
      if (length > 0) iovecs.set(this.batchIovecs++, chain.hostAt(i), length);
    }
    const n = this.batchCount++;
    this.batchHeads[n] = chain.head;
    this.batchLengths[n] = chain.readableLength - S.VIRTIO_NET_HDR_SIZE;
    // RWF_NOWAIT: a TAP that cannot take the frame now says EAGAIN (dropped, counted), as write(2) on it would.
    if (this.ring) this.ring.writev(this.context.tapFd, iovecs.addressOf(first), this.batchIovecs - first, NO_OFFSET, n, 0, 0, RWF_NOWAIT);
    else this.batchResults[n] = writev(this.context.tapFd, iovecs.addressOf(first), this.batchIovecs - first);
  }

  /** Writes the batch to the TAP (one io_uring_enter) and returns its chains to the driver. */
  private flush(): void {
    const count = this.batchCount;
    if (count === 0) return;
    const ring = this.ring;
    // RWF_NOWAIT: every write completes inside this call.
    if (ring) ring.submitAndReapAll(count, this.onCompletion);
    const { queue, stats, log } = this.context;
    for (let n = 0; n < count; n++) {
      const result = this.batchResults[n]!;
      if (result < 0) {
        log('the TAP refused a %d-byte frame (errno %d)', this.batchLengths[n]!, -result);
        stats.add('txErrors');
      } else {
        this.sentFrames++;
        this.sentBytes += this.batchLengths[n]!;
      }
      queue.addUsed(this.batchHeads[n]!, 0);
    }
    this.batchCount = 0;
    this.batchIovecs = 0;
  }

  /** Whether a chain is a frame the device may send: well-formed, sized, asking only for negotiated offloads. */
  private check(chain: DescriptorChain): Verdict {
    if (chain.error || chain.writableLength > 0 || chain.segmentCount > IOV_MAX) return 'malformed';
    const length = chain.readableLength;
    if (length < S.VIRTIO_NET_HDR_SIZE + S.ETH_HLEN || length > S.VIRTIO_NET_HDR_SIZE + S.NET_MAX_FRAME) return 'size';
    const { memory } = this.context;
    // The header is read where it is when the first buffer holds it, else copied together.
    let h: DataView = this.headerView;
    let at = 0;
    const region = chain.lengthAt(0) >= S.VIRTIO_NET_HDR_SIZE ? memory.regionIndex(chain.addressAt(0), S.VIRTIO_NET_HDR_SIZE) : -1;
    if (region >= 0) {
      h = memory.regionView(region);
      at = chain.addressAt(0) - memory.regionBase(region);
    } else {
      this.header.set(chain.readReadable(memory, 0, S.VIRTIO_NET_HDR_SIZE));
    }
    // The guest may change the header meanwhile; the kernel re-checks what it reads, this is for the rules below.
    const flags = h.getUint8(at + S.VIRTIO_NET_HDR_FLAGS);
    const gsoType = h.getUint8(at + S.VIRTIO_NET_HDR_GSO_TYPE);
    const frameLength = length - S.VIRTIO_NET_HDR_SIZE;
    const a = this.allowed;
    if (flags & S.VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      if (!a.csum) return 'header';
      const start = h.getUint16(at + S.VIRTIO_NET_HDR_CSUM_START, true);
      const offset = h.getUint16(at + S.VIRTIO_NET_HDR_CSUM_OFFSET, true);
      if (start + offset + 2 > frameLength) return 'header';
    }
    if (gsoType === S.VIRTIO_NET_HDR_GSO_NONE) return 'ok';
    if (gsoType & S.VIRTIO_NET_HDR_GSO_ECN && !a.ecn) return 'header';
    const base = gsoType & ~S.VIRTIO_NET_HDR_GSO_ECN;
    const negotiated =
      (base === S.VIRTIO_NET_HDR_GSO_TCPV4 && a.tso4) ||
      (base === S.VIRTIO_NET_HDR_GSO_TCPV6 && a.tso6) ||
      (base === S.VIRTIO_NET_HDR_GSO_UDP && a.ufo) ||
      (base === S.VIRTIO_NET_HDR_GSO_UDP_L4 && a.uso);
    if (!negotiated || h.getUint16(at + S.VIRTIO_NET_HDR_GSO_SIZE, true) === 0) return 'header';
    return 'ok';
  }
}
