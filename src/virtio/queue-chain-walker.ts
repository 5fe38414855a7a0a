/**
 * Reads one descriptor chain out of guest memory, treating every field as
 * hostile. Each descriptor is read exactly once; the walk is bounded by a
 * budget (the queue size in the descriptor table, the entry count in an
 * indirect table), so a loop always ends in an error instead of spinning.
 */
import { GuestMemory } from '../vmm/guest-memory.js';
import { DescriptorChain, type ChainSegment } from './descriptor-chain.js';
import { QueueError, type QueueErrorKind } from './queue-error.js';
import { DESC_ADDR, DESC_FLAGS, DESC_LEN, DESC_NEXT } from './queue-layout.js';
import {
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_SIZE,
  VIRTQ_MAX_SIZE,
} from './virtio-constants.js';

/** Largest indirect table accepted (entries). The spec sets none; this matches the largest queue. */
export const MAX_INDIRECT_ENTRIES = VIRTQ_MAX_SIZE;

export interface ChainSource {
  readonly memory: GuestMemory;
  /** The queue's descriptor table (already checked to be RAM). */
  readonly descTable: DataView;
  readonly queueSize: number;
  /** VIRTIO_F_RING_INDIRECT_DESC was negotiated. */
  readonly indirect: boolean;
}

/** The chain starting at `head` (< queue size); a malformed chain comes back with `error` set. */
export function walkChain(source: ChainSource, head: number): DescriptorChain {
  try {
    return DescriptorChain.fromSegments(head, collectSegments(source, head));
  } catch (error) {
    if (error instanceof QueueError && !error.fatal) return DescriptorChain.malformed(head, error);
    throw error;
  }
}

function chainError(head: number, kind: QueueErrorKind, detail: string): QueueError {
  return new QueueError(kind, `chain ${head}: ${detail}`);
}

function collectSegments({ memory, descTable, queueSize, indirect }: ChainSource, head: number): ChainSegment[] {
  const segments: ChainSegment[] = [];
  let table = descTable;
  let entries = queueSize;
  let budget = queueSize;
  let inIndirect = false;
  let index = head;
  for (;;) {
    if (budget === 0) {
      const where = inIndirect ? ' in its indirect table' : '';
      throw chainError(head, 'chain-too-long', `more than ${entries} descriptors${where} (a loop)`);
    }
    budget--;
    const at = index * VIRTQ_DESC_SIZE;
    const rawAddress = table.getBigUint64(at + DESC_ADDR, true);
    const length = table.getUint32(at + DESC_LEN, true);
    const flags = table.getUint16(at + DESC_FLAGS, true);
    const next = table.getUint16(at + DESC_NEXT, true);

    if (flags & VIRTQ_DESC_F_INDIRECT) {
      // 2.7.5.3: zero or more direct descriptors may precede one indirect descriptor, which ends
      // the chain; its WRITE flag is ignored.
      if (!indirect) {
        throw chainError(head, 'indirect-not-negotiated', 'INDIRECT without VIRTIO_F_RING_INDIRECT_DESC negotiated');
      }
      if (inIndirect) throw chainError(head, 'nested-indirect', 'INDIRECT descriptor inside an indirect table');
      if (flags & VIRTQ_DESC_F_NEXT) throw chainError(head, 'indirect-with-next', 'both INDIRECT and NEXT set');
      if (length === 0 || length % VIRTQ_DESC_SIZE !== 0 || length / VIRTQ_DESC_SIZE > MAX_INDIRECT_ENTRIES) {
        const rule = `a multiple of ${VIRTQ_DESC_SIZE} for 1..${MAX_INDIRECT_ENTRIES} entries`;
        throw chainError(head, 'bad-indirect-length', `indirect table length ${length} is not ${rule}`);
      }
      const address = toGuestAddress(rawAddress);
      if (address === undefined || !memory.contains(address, length)) {
        throw chainError(head, 'indirect-out-of-range', `indirect table ${describeRange(rawAddress, length)} is not RAM`);
      }
      const bytes = memory.slice(address, length);
      table = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
      entries = length / VIRTQ_DESC_SIZE;
      budget = entries;
      inIndirect = true;
      index = 0;
      continue;
    }

    const address = toGuestAddress(rawAddress);
    // A zero-length buffer is never accessed, so only its address has to be sane.
    if (address === undefined || (length > 0 && !memory.contains(address, length))) {
      throw chainError(head, 'buffer-out-of-range', `buffer ${describeRange(rawAddress, length)} is not RAM`);
    }
    segments.push({ address, length, writable: (flags & VIRTQ_DESC_F_WRITE) !== 0 });
    if (!(flags & VIRTQ_DESC_F_NEXT)) return segments;
    if (next >= entries) {
      const which = inIndirect ? 'indirect table' : 'descriptor table';
      throw chainError(head, 'bad-next', `next index ${next} is beyond the ${entries}-entry ${which}`);
    }
    index = next;
  }
}

function describeRange(address: bigint, length: number): string {
  return `0x${address.toString(16)}+0x${length.toString(16)}`;
}

function toGuestAddress(value: bigint): number | undefined {
  try {
    return GuestMemory.toAddress(value);
  } catch {
    return undefined;
  }
}
