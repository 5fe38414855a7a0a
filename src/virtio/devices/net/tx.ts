/**
 * The transmit queue of one queue pair: each chain is one frame, its
 * virtio-net header first, written to the TAP with one writev straight from
 * the guest's buffers (the TAP takes the same 12-byte header). A kick serves
 * every chain posted, with kicks suppressed meanwhile, and ends with at most
 * one interrupt. A frame that breaks the rules is dropped and counted; its
 * buffer is returned like any other, so the guest can reuse it.
 */
import type createDebug from 'debug';
import type { DescriptorChain } from '../../descriptor-chain.js';
import type { SplitQueue } from '../../queue.js';
import type { VirtioInterrupt } from '../../virtio-device.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import { IOV_MAX, writev } from '../../../vmm/libc.js';
import { featureBit } from '../../virtio-constants.js';
import { IovecArray } from './host-buffer.js';
import * as S from './spec.js';
import type { NetStats } from './stats.js';

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

/** Host memory reused across activations (one set per device thread). */
export class TransmitBuffers {
  readonly iovecs = new IovecArray(IOV_MAX);
}

export class Transmitter {
  private readonly header = new Uint8Array(S.VIRTIO_NET_HDR_SIZE);
  private readonly headerView = new DataView(this.header.buffer);
  private readonly allowed: {
    readonly csum: boolean;
    readonly tso4: boolean;
    readonly tso6: boolean;
    readonly ecn: boolean;
    readonly ufo: boolean;
    readonly uso: boolean;
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
  }

  /** Sends every frame the driver has posted. */
  transmit(): void {
    const { queue, interrupt, queueIndex, stats } = this.context;
    let frames = 0;
    let bytes = 0;
    let used = 0;
    do {
      queue.disableNotifications();
      for (let chain = queue.pop(); chain; chain = queue.pop()) {
        const sent = this.send(chain);
        if (sent >= 0) {
          frames++;
          bytes += sent;
        }
        queue.addUsed(chain.head, 0);
        used++;
      }
    } while (queue.enableNotifications());
    if (frames > 0) {
      stats.add('txFrames', frames);
      stats.add('txBytes', bytes);
    }
    if (used > 0 && queue.needsNotification()) interrupt.signalUsed(queueIndex);
  }

  /** Writes one frame to the TAP; returns its length without the header, or -1 when it was dropped. */
  private send(chain: DescriptorChain): number {
    const { memory, tapFd, stats, log } = this.context;
    const verdict = this.check(chain);
    if (verdict !== 'ok') {
      log('transmit chain %d dropped: %s', chain.head, chain.error?.message ?? verdict);
      stats.add(verdict === 'malformed' ? 'txDroppedMalformed' : verdict === 'size' ? 'txDroppedSize' : 'txDroppedHeader');
      return -1;
    }
    const { iovecs } = this.buffers;
    let count = 0;
    for (const segment of chain.segments) {
      if (segment.length === 0) continue;
      iovecs.set(count++, memory.hostAddress(segment.address, segment.length), segment.length);
    }
    const n = writev(tapFd, iovecs.addressOf(0), count);
    if (n < 0) {
      log('the TAP refused a %d-byte frame (errno %d)', chain.readableLength, -n);
      stats.add('txErrors');
      return -1;
    }
    return chain.readableLength - S.VIRTIO_NET_HDR_SIZE;
  }

  /** Whether a chain is a frame the device may send: well-formed, sized, asking only for negotiated offloads. */
  private check(chain: DescriptorChain): Verdict {
    if (chain.error || chain.writableLength > 0 || chain.segments.length > IOV_MAX) return 'malformed';
    const length = chain.readableLength;
    if (length < S.VIRTIO_NET_HDR_SIZE + S.ETH_HLEN || length > S.VIRTIO_NET_HDR_SIZE + S.NET_MAX_FRAME) return 'size';
    this.readHeader(chain);
    const h = this.headerView;
    const flags = h.getUint8(S.VIRTIO_NET_HDR_FLAGS);
    const gsoType = h.getUint8(S.VIRTIO_NET_HDR_GSO_TYPE);
    const frameLength = length - S.VIRTIO_NET_HDR_SIZE;
    const a = this.allowed;
    if (flags & S.VIRTIO_NET_HDR_F_NEEDS_CSUM) {
      if (!a.csum) return 'header';
      const start = h.getUint16(S.VIRTIO_NET_HDR_CSUM_START, true);
      const offset = h.getUint16(S.VIRTIO_NET_HDR_CSUM_OFFSET, true);
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
    if (!negotiated || h.getUint16(S.VIRTIO_NET_HDR_GSO_SIZE, true) === 0) return 'header';
    return 'ok';
  }

  /** Copies the header (it may change under us; the kernel re-checks what it reads, this is for the rules above). */
  private readHeader(chain: DescriptorChain): void {
    const { memory } = this.context;
    const first = chain.segments[0]!;
    if (first.length >= S.VIRTIO_NET_HDR_SIZE) this.header.set(memory.slice(first.address, S.VIRTIO_NET_HDR_SIZE));
    else this.header.set(chain.readReadable(memory, 0, S.VIRTIO_NET_HDR_SIZE));
  }
}
