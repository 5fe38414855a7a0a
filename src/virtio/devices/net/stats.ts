/** virtio-net's counters (shared with the thread that built the options; see DeviceCounters). */
import { DeviceCounters } from '../../device-counters.js';

export const NET_COUNTERS = [
  /** Frames delivered to the guest, and their bytes (without the virtio-net header). */
  'rxFrames',
  'rxBytes',
  /** Frames larger than the guest's receive buffer without MRG_RXBUF: dropped, the buffer kept. */
  'rxDroppedOversize',
  /** Frames larger than the largest the device carries (cannot happen with a sane TAP): dropped. */
  'rxDroppedTruncated',
  /** Receive chains that were malformed, had readable parts or were shorter than the header: returned empty. */
  'rxBadChains',
  /** Frames that needed more buffers than were posted and waited for them in the host. */
  'rxWaitedForBuffers',
  /** Whole frames handed over ahead of such a waiting frame because it needed their buffers too (a small ring). */
  'rxReordered',
  /** Times the TAP was left unread because the guest had no receive buffer. */
  'rxNoBuffers',
  /** Reads the TAP failed (other than EAGAIN). */
  'rxErrors',
  /** Frames written to the TAP, and their bytes (without the header). */
  'txFrames',
  'txBytes',
  /** Malformed transmit chains (bad descriptors, device-writable parts, too many segments): dropped. */
  'txDroppedMalformed',
  /** Transmit chains shorter than header + Ethernet header, or longer than NET_MAX_FRAME: dropped. */
  'txDroppedSize',
  /** Headers asking for an offload that was not negotiated, or with offsets outside the frame: dropped. */
  'txDroppedHeader',
  /** Frames the TAP refused (EIO while down, EINVAL for a header the kernel rejects, …). */
  'txErrors',
  /** Control-queue commands served, and those answered VIRTIO_NET_ERR (or malformed). */
  'ctrlCommands',
  'ctrlErrors',
  /** The TUN_F_* offloads currently enabled on the TAP. */
  'tapOffloads',
] as const;

export type NetCounter = (typeof NET_COUNTERS)[number];

export class NetStats extends DeviceCounters<NetCounter> {
  constructor(shared?: SharedArrayBuffer) {
    super(NET_COUNTERS, shared);
  }
}
