/**
 * A descriptor chain popped from a virtqueue, already validated and
 * flattened (indirect tables expanded): the device works on these segments
 * and never re-reads the descriptors, which the guest may change meanwhile.
 *
 * Segments live in typed arrays, not objects, and a chain can be refilled in
 * place (SplitQueue.popInto), so a device's hot path pops without allocating:
 * it reads `addressAt`/`lengthAt`/`hostAt` by index. `segments` builds the
 * object form on demand for code off the hot path.
 */
import type { GuestMemory } from '../vmm/guest-memory.js';
import { QueueError } from './queue-error.js';

export interface ChainSegment {
  /** Guest physical address (checked: the whole segment is RAM, unless it is empty). */
  readonly address: number;
  readonly length: number;
  /** Device-writable (VIRTQ_DESC_F_WRITE); otherwise device-readable. */
  readonly writable: boolean;
}

/** Drivers must not make a chain longer than this in total (2.7.5.1). */
export const MAX_CHAIN_BYTES = 0xffff_ffff;

const INITIAL_CAPACITY = 16;

export class DescriptorChain {
  private headIndex = 0;
  private failure: QueueError | undefined;
  private count = 0;
  private firstWritable = 0;
  private readable = 0;
  private writable = 0;
  private sawWritable = false;
  private addresses = new Float64Array(INITIAL_CAPACITY);
  private lengths = new Float64Array(INITIAL_CAPACITY);
  private hosts = new Float64Array(INITIAL_CAPACITY);
  private segmentCache: readonly ChainSegment[] | undefined;

  /** Head descriptor index: what addUsed gives back to the driver. */
  get head(): number {
    return this.headIndex;
  }

  /** Why the chain is malformed; the device completes it with used length 0. */
  get error(): QueueError | undefined {
    return this.failure;
  }

  /** Total bytes of the device-readable segments. */
  get readableLength(): number {
    return this.readable;
  }

  /** Total bytes of the device-writable segments. */
  get writableLength(): number {
    return this.writable;
  }

  /** Number of segments (empty ones included); 0 when the chain is malformed. */
  get segmentCount(): number {
    return this.count;
  }

  /** Number of device-readable segments: they come first, the writable ones after. */
  get readableCount(): number {
    return this.firstWritable;
  }

  /** Guest address of segment i. */
  addressAt(i: number): number {
    return this.addresses[i]!;
  }

  lengthAt(i: number): number {
    return this.lengths[i]!;
  }

  /** Host address of segment i, or -1 when it is empty or guest memory has no host mapping. */
  hostAt(i: number): number {
    return this.hosts[i]!;
  }

  /** Empties the chain for a walk from `head`. */
  reset(head: number): void {
    this.headIndex = head;
    this.failure = undefined;
    this.count = 0;
    this.firstWritable = 0;
    this.readable = 0;
    this.writable = 0;
    this.sawWritable = false;
    this.segmentCache = undefined;
  }

  /**
   * Appends a checked segment; returns false (and marks the chain malformed) when it breaks a
   * framing rule: a readable segment after a writable one, or more than 2^32 - 1 bytes in all.
   */
  append(address: number, length: number, writable: boolean, host: number): boolean {
    if (writable) this.sawWritable = true;
    else if (this.sawWritable) {
      // 2.7.4.2: the driver places device-writable elements after device-readable ones.
      this.markMalformed(new QueueError('readable-after-writable', `chain ${this.headIndex}: a readable buffer follows a writable one`));
      return false;
    }
    if (this.readable + this.writable + length > MAX_CHAIN_BYTES) {
      this.markMalformed(new QueueError('length-overflow', `chain ${this.headIndex}: buffers add up to more than 2^32 - 1 bytes`));
      return false;
    }
    if (this.count === this.addresses.length) this.grow();
    const i = this.count++;
    this.addresses[i] = address;
    this.lengths[i] = length;
    this.hosts[i] = length > 0 ? host : -1;
    if (writable) this.writable += length;
    else {
      this.readable += length;
      this.firstWritable = this.count;
    }
    return true;
  }

  /** Drops every segment: the device completes the chain with used length 0. */
  markMalformed(error: QueueError): void {
    const head = this.headIndex;
    this.reset(head);
    this.failure = error;
  }

  private grow(): void {
    const capacity = this.addresses.length * 2;
    const grown = (old: Float64Array<ArrayBuffer>): Float64Array<ArrayBuffer> => {
      const next = new Float64Array(capacity);
      next.set(old);
      return next;
    };
    this.addresses = grown(this.addresses);
    this.lengths = grown(this.lengths);
    this.hosts = grown(this.hosts);
  }

  /** A chain over checked segments, or a malformed one when they break a framing rule. */
  static fromSegments(head: number, segments: readonly ChainSegment[]): DescriptorChain {
    const chain = new DescriptorChain();
    chain.reset(head);
    for (const s of segments) if (!chain.append(s.address, s.length, s.writable, -1)) break;
    return chain;
  }

  static malformed(head: number, error: QueueError): DescriptorChain {
    const chain = new DescriptorChain();
    chain.reset(head);
    chain.markMalformed(error);
    return chain;
  }

  /** Readable segments first, then writable ones; empty when the chain is malformed. */
  get segments(): readonly ChainSegment[] {
    if (!this.segmentCache) {
      const segments: ChainSegment[] = [];
      for (let i = 0; i < this.count; i++) {
        segments.push({ address: this.addresses[i]!, length: this.lengths[i]!, writable: i >= this.firstWritable });
      }
      this.segmentCache = segments;
    }
    return this.segmentCache;
  }

  get readableSegments(): readonly ChainSegment[] {
    return this.segments.slice(0, this.firstWritable);
  }

  get writableSegments(): readonly ChainSegment[] {
    return this.segments.slice(this.firstWritable);
  }

  /** Live views (no copy) of the readable segments, in order; empty segments are left out. */
  readableViews(memory: GuestMemory): Uint8Array[] {
    return this.views(memory, 0, this.firstWritable);
  }

  /** Live views (no copy) of the writable segments, in order; empty segments are left out. */
  writableViews(memory: GuestMemory): Uint8Array[] {
    return this.views(memory, this.firstWritable, this.count);
  }

  /** Copies `length` bytes from byte `offset` of the readable part; throws QueueError 'short-chain' when it is shorter. */
  readReadable(memory: GuestMemory, offset: number, length: number): Uint8Array {
    checkCount('offset', offset);
    checkCount('length', length);
    if (offset + length > this.readable) {
      throw new QueueError(
        'short-chain',
        `chain ${this.headIndex}: reading ${length} bytes at ${offset} but the readable part has ${this.readable}`,
      );
    }
    const target = new Uint8Array(length);
    let filled = 0;
    this.forEachPiece(0, this.firstWritable, offset, length, (address, pieceLength) => {
      target.set(memory.slice(address, pieceLength), filled);
      filled += pieceLength;
    });
    return target;
  }

  /** Copies `source` to byte `offset` of the writable part, stopping at its end; returns the bytes written. */
  writeWritable(memory: GuestMemory, offset: number, source: Uint8Array): number {
    checkCount('offset', offset);
    let written = 0;
    this.forEachPiece(this.firstWritable, this.count, offset, source.length, (address, pieceLength) => {
      memory.write(address, source.subarray(written, written + pieceLength));
      written += pieceLength;
    });
    return written;
  }

  private views(memory: GuestMemory, from: number, to: number): Uint8Array[] {
    const result: Uint8Array[] = [];
    // An empty segment's address need not be RAM, so it gets no view.
    for (let i = from; i < to; i++) {
      if (this.lengths[i]! > 0) result.push(memory.slice(this.addresses[i]!, this.lengths[i]!));
    }
    return result;
  }

  /** Calls visit for each contiguous guest piece of [offset, offset + length) across segments [from, to), in order. */
  private forEachPiece(from: number, to: number, offset: number, length: number, visit: (address: number, length: number) => void): void {
    let skip = offset;
    let remaining = length;
    for (let i = from; i < to && remaining > 0; i++) {
      const segmentLength = this.lengths[i]!;
      if (skip >= segmentLength) {
        skip -= segmentLength;
        continue;
      }
      const pieceLength = Math.min(segmentLength - skip, remaining);
      visit(this.addresses[i]! + skip, pieceLength);
      remaining -= pieceLength;
      skip = 0;
    }
  }
}

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}
