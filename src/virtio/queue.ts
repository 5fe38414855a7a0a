/**
 * The device side of a split virtqueue (virtio 1.2 §2.7). Everything read
 * from guest memory may be hostile: the layout is validated once, the avail
 * index is checked against the ring size, every head, `next` and buffer is
 * range-checked, and every walk is bounded. A broken ring (fatal QueueError)
 * sends the device to DEVICE_NEEDS_RESET; a broken chain is handed to the
 * device marked with its error so it can be completed and skipped.
 */
import type { GuestMemory } from '../vmm/guest-memory.js';
import { DescriptorChain } from './descriptor-chain.js';
import { memoryFence } from './memory-fence.js';
import { walkChainInto, type ChainSource } from './queue-chain-walker.js';
import { QueueError } from './queue-error.js';
import { vringNeedEvent } from './queue-event-idx.js';
import {
  AVAIL_ENTRY_SIZE,
  DESC_ADDR,
  DESC_FLAGS,
  DESC_LEN,
  AVAIL_FLAGS,
  AVAIL_IDX,
  AVAIL_RING,
  INDEX_MASK,
  USED_ELEM_ID,
  USED_ELEM_LEN,
  USED_FLAGS,
  USED_IDX,
  USED_RING,
  availEventOffset,
  availRingBytes,
  descTableBytes,
  usedEventOffset,
  usedRingBytes,
  validateQueueLayout,
  type QueueLayout,
  type QueueOptions,
} from './queue-layout.js';
import { VIRTQ_AVAIL_F_NO_INTERRUPT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_SIZE, VIRTQ_USED_ELEM_SIZE, VIRTQ_USED_F_NO_NOTIFY } from './virtio-constants.js';

export { QueueError, type QueueErrorKind } from './queue-error.js';
export type { QueueLayout, QueueOptions } from './queue-layout.js';

/** The device's own position in the rings, e.g. to carry a running queue across a snapshot. */
export interface QueueIndexes {
  /** Free-running index of the next avail ring entry to pop. */
  readonly nextAvail: number;
  /** Free-running index of the next used ring entry to fill (what used.idx holds). */
  readonly nextUsed: number;
}

const MAX_USED_LENGTH = 0xffff_ffff;
/** Largest high word of a descriptor address that keeps it a safe integer (< 2^53). */
const MAX_SAFE_HIGH = 0x1f_ffff;
const TWO_32 = 0x1_0000_0000;

/** popWritableBuffer's answers. */
export const POP_NONE = 0;
/** A single device-writable descriptor: its buffer is in the caller's `buffer` array. */
export const POP_BUFFER = 1;
/** Any other chain (or a malformed one): walked into the caller's DescriptorChain as popInto does. */
export const POP_CHAIN = 2;
export type PopResult = typeof POP_NONE | typeof POP_BUFFER | typeof POP_CHAIN;

/**
 * Where a queue learns that the driver reset the device under it: a shared word that changes at
 * every reset, and its value when the queue was built.
 */
export interface QueueSession {
  readonly words: Int32Array;
  readonly index: number;
  readonly epoch: number;
}

export class SplitQueue {
  readonly layout: QueueLayout;
  readonly options: QueueOptions;
  private readonly chainSource: ChainSource;
  private readonly availRing: DataView;
  private readonly usedRing: DataView;
  private nextAvail = 0;
  /**
   * Entries past nextAvail the driver had published when avail.idx was last read: popInto reads
   * avail.idx again only when these run out (the line the driver keeps writing is read once per
   * batch, not per chain). A driver never moves avail.idx back (2.7.6); one that does gets the
   * entries it published and then retracted (each still fully checked) and its overrun reported
   * at most `size` pops later.
   */
  private knownAvailable = 0;
  private nextUsed = 0;
  /** used.idx at the previous needsNotification call, and how many entries were added since. */
  private usedAtLastCheck = 0;
  private addedSinceCheck = 0;

  constructor(
    memory: GuestMemory,
    layout: QueueLayout,
    options: QueueOptions,
    private readonly session?: QueueSession,
  ) {
    validateQueueLayout(memory, layout, options);
    this.layout = { ...layout };
    this.options = { ...options };
    const { size } = layout;
    const { eventIdx } = options;
    // The rings were checked to be RAM once; the views keep the hot path free of region lookups.
    this.availRing = dataView(memory.slice(layout.availRing, availRingBytes(size, eventIdx)));
    this.usedRing = dataView(memory.slice(layout.usedRing, usedRingBytes(size, eventIdx)));
    this.chainSource = {
      memory,
      descTable: dataView(memory.slice(layout.descTable, descTableBytes(size))),
      queueSize: size,
      indirect: options.indirect,
    };
  }

  get size(): number {
    return this.layout.size;
  }

  /** Chains the driver made available that were not popped yet; throws a fatal 'avail-overrun' on a bogus avail.idx. */
  get pendingCount(): number {
    const availIndex = this.availRing.getUint16(AVAIL_IDX, true);
    const pending = (availIndex - this.nextAvail) & INDEX_MASK;
    if (pending > this.size) {
      this.knownAvailable = 0;
      throw new QueueError(
        'avail-overrun',
        `avail.idx ${availIndex} is ${pending} entries ahead of ${this.nextAvail} in a queue of ${this.size}`,
      );
    }
    this.knownAvailable = pending;
    return pending;
  }

  get nextAvailIndex(): number {
    return this.nextAvail;
  }

  get nextUsedIndex(): number {
    return this.nextUsed;
  }

  get indexes(): QueueIndexes {
    return { nextAvail: this.nextAvail, nextUsed: this.nextUsed };
  }

  /** Resumes at saved indexes (16-bit each); notification tracking restarts from nextUsed. */
  restoreIndexes({ nextAvail, nextUsed }: QueueIndexes): void {
    for (const [name, value] of [['nextAvail', nextAvail], ['nextUsed', nextUsed]] as const) {
      if (!Number.isInteger(value) || value < 0 || value > INDEX_MASK) {
        throw new QueueError('bad-state', `${name} ${value} is not a 16-bit index`);
      }
    }
    this.nextAvail = nextAvail;
    this.knownAvailable = 0;
    this.nextUsed = nextUsed;
    this.usedAtLastCheck = nextUsed;
    this.addedSinceCheck = 0;
  }

  /**
   * The next available chain, or undefined when the driver has posted nothing new.
   * Throws a fatal QueueError on an avail.idx overrun or a head ≥ size; a malformed chain
   * with a valid head comes back with `error` set and no segments.
   */
  pop(): DescriptorChain | undefined {
    const chain = new DescriptorChain();
    return this.popInto(chain) ? chain : undefined;
  }

  /**
   * pop() into a chain the caller owns and reuses (no allocation for a well-formed chain):
   * false when the driver has posted nothing new. Same checks and errors as pop().
   */
  popInto(chain: DescriptorChain): boolean {
    const head = this.takeAvailHead();
    if (head < 0) return false;
    walkChainInto(this.chainSource, head, chain);
    return true;
  }

  /** The head of the next available chain (moving past it), or -1 when the driver posted nothing new. */
  private takeAvailHead(): number {
    if (this.knownAvailable === 0 && this.pendingCount === 0) return -1;
    // The ring entry is read after avail.idx: x86 never reorders a load before an earlier load,
    // so this is the spec's read barrier at no cost.
    const slot = this.nextAvail & (this.size - 1);
    const head = this.availRing.getUint16(AVAIL_RING + slot * AVAIL_ENTRY_SIZE, true);
    if (head >= this.size) {
      const entry = this.nextAvail;
      throw new QueueError('bad-head', `avail ring entry ${entry} names head ${head} in a queue of ${this.size}`);
    }
    this.nextAvail = (this.nextAvail + 1) & INDEX_MASK;
    this.knownAvailable--;
    return head;
  }

  /**
   * popInto with a fast path for the commonest receive buffer, one device-writable descriptor
   * (Linux's mergeable buffers): then `buffer` gets [head, guest address, host address, length]
   * and no DescriptorChain is built. Anything else (several descriptors, indirect, a zero length,
   * a buffer that is not RAM) is walked into `chain` with every check of popInto. Same errors.
   */
  popWritableBuffer(buffer: Float64Array, chain: DescriptorChain): PopResult {
    const head = this.takeAvailHead();
    if (head < 0) return POP_NONE;
    const source = this.chainSource;
    const table = source.descTable;
    const at = head * VIRTQ_DESC_SIZE;
    // Each field is read once; the general walk below reads them again only for chains it must
    // judge itself, and judges them from scratch.
    const flags = table.getUint16(at + DESC_FLAGS, true);
    const length = table.getUint32(at + DESC_LEN, true);
    const high = table.getUint32(at + DESC_ADDR + 4, true);
    if (flags === VIRTQ_DESC_F_WRITE && length > 0 && high <= MAX_SAFE_HIGH) {
      const address = high * TWO_32 + table.getUint32(at + DESC_ADDR, true);
      const memory = source.memory;
      const region = memory.regionIndex(address, length);
      const hostBase = region < 0 ? -1 : memory.regionHost(region);
      if (hostBase >= 0) {
        buffer[0] = head;
        buffer[1] = address;
        buffer[2] = hostBase + (address - memory.regionBase(region));
        buffer[3] = length;
        return POP_BUFFER;
      }
    }
    walkChainInto(source, head, chain);
    return POP_CHAIN;
  }

  /** False once the driver has reset the device (the rings may be another session's by now). */
  get current(): boolean {
    const s = this.session;
    // A plain read: this runs per used element, and the word only has to be seen eventually
    // (a call boundary away); Atomics.load is not inlined here and costs a builtin call. What
    // matters is the read after a system call that outlived a reset, and a call is never
    // optimised across.
    return s === undefined || s.words[s.index] === s.epoch;
  }

  /**
   * Throws a fatal QueueError when the driver reset the device since this queue was built: a
   * request that outlived a reset (stuck in a system call past the reset's timeout) must not
   * write its status or a used element into memory that is no longer its driver's.
   */
  assertCurrent(): void {
    if (!this.current) throw new QueueError('revoked', 'the driver reset the device while a request was in flight');
  }

  /** Returns a chain to the driver with the number of bytes written into its writable buffers. */
  addUsed(head: number, writtenLength: number): void {
    this.fillUsed(head, writtenLength);
    this.publishUsed();
  }

  /**
   * Writes a used element without publishing it: the driver sees it only at publishUsed(). For
   * several chains that must appear together — a frame spread over mergeable receive buffers:
   * Linux's virtio_net drops a frame whose num_buffers entries are not all in the used ring yet.
   */
  fillUsed(head: number, writtenLength: number): void {
    this.assertCurrent();
    if (!Number.isInteger(head) || head < 0 || head >= this.size) {
      throw new QueueError('bad-used', `used head ${head} is not a descriptor of a queue of ${this.size}`);
    }
    if (!Number.isInteger(writtenLength) || writtenLength < 0 || writtenLength > MAX_USED_LENGTH) {
      throw new QueueError('bad-used', `used length ${writtenLength} is not a 32-bit length`);
    }
    const element = USED_RING + (this.nextUsed & (this.size - 1)) * VIRTQ_USED_ELEM_SIZE;
    this.usedRing.setUint32(element + USED_ELEM_ID, head, true);
    this.usedRing.setUint32(element + USED_ELEM_LEN, writtenLength, true);
    this.nextUsed = (this.nextUsed + 1) & INDEX_MASK;
    this.addedSinceCheck++;
  }

  /** Makes every filled used element visible to the driver (used.idx). */
  publishUsed(): void {
    // Publishing the index after the elements needs only store order, which x86 (TSO) keeps and
    // V8 does not change for typed-array stores: the spec's write barrier costs nothing here.
    this.usedRing.setUint16(USED_IDX, this.nextUsed, true);
  }

  /**
   * Whether the driver wants a used-buffer notification for the entries added since the
   * previous call: VIRTQ_AVAIL_F_NO_INTERRUPT, or with EVENT_IDX whether used.idx passed
   * used_event in that window (2.7.7.2). False when nothing was added.
   */
  needsNotification(): boolean {
    // used.idx must be visible before the driver's suppression fields are read, or the driver
    // could re-enable interrupts unseen and wait forever (store→load: needs a full fence).
    memoryFence();
    const oldUsed = this.usedAtLastCheck;
    const added = this.addedSinceCheck;
    this.usedAtLastCheck = this.nextUsed;
    this.addedSinceCheck = 0;
    if (added === 0) return false;
    if (!this.options.eventIdx) {
      return (this.availRing.getUint16(AVAIL_FLAGS, true) & VIRTQ_AVAIL_F_NO_INTERRUPT) === 0;
    }
    // A window of 2^16 entries or more covers every used_event: 16-bit arithmetic cannot tell.
    if (added > INDEX_MASK) return true;
    const usedEvent = this.availRing.getUint16(usedEventOffset(this.size), true);
    return vringNeedEvent(usedEvent, this.nextUsed, oldUsed);
  }

  /**
   * Asks the driver not to kick: VIRTQ_USED_F_NO_NOTIFY, or with EVENT_IDX nothing at all
   * (avail_event stays behind, so the driver's index does not pass it again).
   */
  disableNotifications(): void {
    if (!this.options.eventIdx) this.usedRing.setUint16(USED_FLAGS, VIRTQ_USED_F_NO_NOTIFY, true);
  }

  /**
   * Asks the driver to kick for the next buffer (clears VIRTQ_USED_F_NO_NOTIFY, or with
   * EVENT_IDX sets avail_event to the next avail index), then re-checks: true when buffers
   * are pending, which the caller must drain because no kick will announce them.
   */
  enableNotifications(): boolean {
    if (this.options.eventIdx) {
      this.usedRing.setUint16(availEventOffset(this.size), this.nextAvail, true);
    } else {
      this.usedRing.setUint16(USED_FLAGS, 0, true);
    }
    // The driver publishes avail.idx, then reads our flags/avail_event; we publish those, then
    // read avail.idx. Without a full fence both sides could miss each other's store.
    memoryFence();
    return this.pendingCount > 0;
  }
}

function dataView(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
