/**
 * The one error class of the virtqueue modules. A fatal error means the
 * queue cannot be used any more and the device must go to
 * DEVICE_NEEDS_RESET; any other kind describes one malformed descriptor
 * chain, which the device completes with used length 0 before carrying on.
 * A queue error never ends a run by itself; its status (for a caller that
 * lets one escape) is the guest's fault, 36, or the device's own bug, 4.
 */
import { EXIT_GUEST_CRASH, EXIT_HOST_ERROR } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';

export type QueueErrorKind =
  // Fatal.
  /** The queue size or a ring address is unusable (SplitQueue constructor). */
  | 'bad-layout'
  /** avail.idx is more than the queue size ahead of the device's next avail index. */
  | 'avail-overrun'
  /** The avail ring names a head descriptor index ≥ queue size. */
  | 'bad-head'
  /** addUsed was given a head or a length out of range: a device bug. */
  | 'bad-used'
  /** restoreIndexes was given an index that is not a 16-bit unsigned integer. */
  | 'bad-state'
  /** The driver reset the device while the queue was still in use (a reset not acknowledged in time). */
  | 'revoked'
  // Malformed chain (not fatal): the chain comes back with this error and no segments.
  /** More descriptors than the table holds: the chain loops. */
  | 'chain-too-long'
  /** A `next` index ≥ queue size (or ≥ the indirect table's entry count). */
  | 'bad-next'
  /** A buffer address above 2^53, or a buffer range not inside one RAM region. */
  | 'buffer-out-of-range'
  /** VIRTQ_DESC_F_INDIRECT while VIRTIO_F_RING_INDIRECT_DESC was not negotiated. */
  | 'indirect-not-negotiated'
  /** VIRTQ_DESC_F_INDIRECT inside an indirect table. */
  | 'nested-indirect'
  /** VIRTQ_DESC_F_INDIRECT together with VIRTQ_DESC_F_NEXT. */
  | 'indirect-with-next'
  /** An indirect table length of 0, not a multiple of 16, or above the entry limit. */
  | 'bad-indirect-length'
  /** An indirect table address above 2^53, or a table not inside one RAM region. */
  | 'indirect-out-of-range'
  /** A device-readable buffer after a device-writable one (2.7.4.2). */
  | 'readable-after-writable'
  /** The buffers add up to more than 2^32 − 1 bytes (2.7.5.1). */
  | 'length-overflow'
  // Device-side access (not fatal).
  /** readReadable asked for bytes beyond the end of the chain's readable part. */
  | 'short-chain';

const FATAL_KINDS: ReadonlySet<QueueErrorKind> = new Set<QueueErrorKind>([
  'bad-layout',
  'avail-overrun',
  'bad-head',
  'bad-used',
  'bad-state',
  'revoked',
]);

/** Raised by the device's own calls, not by what the guest wrote. */
const DEVICE_BUG_KINDS: ReadonlySet<QueueErrorKind> = new Set<QueueErrorKind>(['bad-used', 'bad-state']);

export class QueueError extends VmmError<QueueErrorKind> {
  /** True when the device must stop using the queue and ask for a reset. */
  readonly fatal: boolean;

  constructor(kind: QueueErrorKind, message: string) {
    super(kind, message, { status: DEVICE_BUG_KINDS.has(kind) ? EXIT_HOST_ERROR : EXIT_GUEST_CRASH });
    this.fatal = FATAL_KINDS.has(kind);
  }
}
