/**
 * A descriptor chain popped from a virtqueue, already validated and
 * flattened (indirect tables expanded): the device works on these segments
 * and never re-reads the descriptors, which the guest may change meanwhile.
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

export class DescriptorChain {
  /** Total bytes of the device-readable segments. */
  readonly readableLength: number;
  /** Total bytes of the device-writable segments. */
  readonly writableLength: number;
  /** Index of the first writable segment (segments.length when there is none). */
  private readonly firstWritable: number;

  private constructor(
    /** Head descriptor index: what addUsed gives back to the driver. */
    readonly head: number,
    /** Readable segments first, then writable ones; empty when the chain is malformed. */
    readonly segments: readonly ChainSegment[],
    /** Why the chain is malformed; the device completes it with used length 0. */
    readonly error?: QueueError,
  ) {
    let readable = 0;
    let writable = 0;
    let firstWritable = segments.length;
    segments.forEach((segment, i) => {
      if (segment.writable) {
        writable += segment.length;
        if (firstWritable === segments.length) firstWritable = i;
      } else {
        readable += segment.length;
      }
    });
    this.readableLength = readable;
    this.writableLength = writable;
    this.firstWritable = firstWritable;
  }

  /** A chain over checked segments, or a malformed one when they break a framing rule. */
  static fromSegments(head: number, segments: readonly ChainSegment[]): DescriptorChain {
    let sawWritable = false;
    let total = 0;
    for (const segment of segments) {
      // 2.7.4.2: the driver places device-writable elements after device-readable ones.
      if (segment.writable) sawWritable = true;
      else if (sawWritable) {
        const error = new QueueError('readable-after-writable', `chain ${head}: a readable buffer follows a writable one`);
        return DescriptorChain.malformed(head, error);
      }
      total += segment.length;
      if (total > MAX_CHAIN_BYTES) {
        const error = new QueueError('length-overflow', `chain ${head}: buffers add up to more than 2^32 - 1 bytes`);
        return DescriptorChain.malformed(head, error);
      }
    }
    return new DescriptorChain(head, segments);
  }

  static malformed(head: number, error: QueueError): DescriptorChain {
    return new DescriptorChain(head, [], error);
  }

  get readableSegments(): readonly ChainSegment[] {
    return this.segments.slice(0, this.firstWritable);
  }

  get writableSegments(): readonly ChainSegment[] {
    return this.segments.slice(this.firstWritable);
  }

  /** Live views (no copy) of the readable segments, in order; empty segments are left out. */
  readableViews(memory: GuestMemory): Uint8Array[] {
    return views(memory, this.readableSegments);
  }

  /** Live views (no copy) of the writable segments, in order; empty segments are left out. */
  writableViews(memory: GuestMemory): Uint8Array[] {
    return views(memory, this.writableSegments);
  }

  /** Copies `length` bytes from byte `offset` of the readable part; throws QueueError 'short-chain' when it is shorter. */
  readReadable(memory: GuestMemory, offset: number, length: number): Uint8Array {
    checkCount('offset', offset);
    checkCount('length', length);
    if (offset + length > this.readableLength) {
      throw new QueueError(
        'short-chain',
        `chain ${this.head}: reading ${length} bytes at ${offset} but the readable part has ${this.readableLength}`,
      );
    }
    const target = new Uint8Array(length);
    let filled = 0;
    forEachPiece(this.readableSegments, offset, length, (address, pieceLength) => {
      target.set(memory.slice(address, pieceLength), filled);
      filled += pieceLength;
    });
    return target;
  }

  /** Copies `source` to byte `offset` of the writable part, stopping at its end; returns the bytes written. */
  writeWritable(memory: GuestMemory, offset: number, source: Uint8Array): number {
    checkCount('offset', offset);
    let written = 0;
    forEachPiece(this.writableSegments, offset, source.length, (address, pieceLength) => {
      memory.write(address, source.subarray(written, written + pieceLength));
      written += pieceLength;
    });
    return written;
  }
}

function views(memory: GuestMemory, segments: readonly ChainSegment[]): Uint8Array[] {
  const result: Uint8Array[] = [];
  // An empty segment's address need not be RAM, so it gets no view.
  for (const segment of segments) {
    if (segment.length > 0) result.push(memory.slice(segment.address, segment.length));
  }
  return result;
}

/** Calls visit for each contiguous guest piece of [offset, offset + length) across segments, in order. */
function forEachPiece(
  segments: readonly ChainSegment[],
  offset: number,
  length: number,
  visit: (address: number, length: number) => void,
): void {
  let skip = offset;
  let remaining = length;
  for (const segment of segments) {
    if (remaining === 0) return;
    if (skip >= segment.length) {
      skip -= segment.length;
      continue;
    }
    const pieceLength = Math.min(segment.length - skip, remaining);
    visit(segment.address + skip, pieceLength);
    remaining -= pieceLength;
    skip = 0;
  }
}

function checkCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`${name} must be a non-negative integer, got ${value}`);
  }
}
