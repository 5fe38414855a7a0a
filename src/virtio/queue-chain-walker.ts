/**
 * Reads one descriptor chain out of guest memory, treating every field as
 * hostile. Each descriptor is read exactly once; the walk is bounded by a
 * budget (the queue size in the descriptor table, the entry count in an
 * indirect table), so a loop always ends in an error instead of spinning.
 */
import type { GuestMemory } from '../vmm/guest-memory.js';
import { DescriptorChain } from './descriptor-chain.js';
import { QueueError, type QueueErrorKind } from './queue-error.js';
import { DESC_ADDR, DESC_FLAGS, DESC_LEN } from './queue-layout.js';
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
  const chain = new DescriptorChain();
  walkChainInto(source, head, chain);
  return chain;
}

/** Largest high word of a descriptor address that keeps it a safe integer (< 2^53). */
const MAX_SAFE_HIGH = 0x1f_ffff;
const TWO_32 = 0x1_0000_0000;

/**
 * Refills `chain` with the chain starting at `head` (< queue size), allocating nothing on the
 * way for a well-formed chain; a malformed one comes back with `error` set and no segments.
 * Throws only fatal QueueErrors.
 */
export function walkChainInto({ memory, descTable, queueSize, indirect }: ChainSource, head: number, chain: DescriptorChain): void {
  chain.reset(head);
  let table = descTable;
  /** Byte offset of the current table in `table`. */
  let tableStart = 0;
  let entries = queueSize;
  let budget = queueSize;
  let inIndirect = false;
  let index = head;
  // The guest range of the region the last buffer was in (none yet), and its host address.
  let regionStart = 0;
  let regionEnd = 0;
  let regionHost = -1;
  for (;;) {
    if (budget === 0) {
      const where = inIndirect ? ' in its indirect table' : '';
      chain.markMalformed(chainError(head, 'chain-too-long', `more than ${entries} descriptors${where} (a loop)`));
      return;
    }
    budget--;
    const at = tableStart + index * VIRTQ_DESC_SIZE;
    const low = table.getUint32(at + DESC_ADDR, true);
    const high = table.getUint32(at + DESC_ADDR + 4, true);
    const length = table.getUint32(at + DESC_LEN, true);
    // flags and next are adjacent 16-bit fields: one read for both.
    const flagsAndNext = table.getUint32(at + DESC_FLAGS, true);
    const flags = flagsAndNext & 0xffff;
    const next = flagsAndNext >>> 16;
    // A guest-supplied address beyond 2^53 is never RAM; -1 stands for it below.
    const address = high <= MAX_SAFE_HIGH ? high * TWO_32 + low : -1;

    if (flags & VIRTQ_DESC_F_INDIRECT) {
      // 2.7.5.3: zero or more direct descriptors may precede one indirect descriptor, which ends
      // the chain; its WRITE flag is ignored.
      let problem: QueueError | undefined;
      if (!indirect) {
        problem = chainError(head, 'indirect-not-negotiated', 'INDIRECT without VIRTIO_F_RING_INDIRECT_DESC negotiated');
      } else if (inIndirect) {
        problem = chainError(head, 'nested-indirect', 'INDIRECT descriptor inside an indirect table');
      } else if (flags & VIRTQ_DESC_F_NEXT) {
        problem = chainError(head, 'indirect-with-next', 'both INDIRECT and NEXT set');
      } else if (length === 0 || length % VIRTQ_DESC_SIZE !== 0 || length / VIRTQ_DESC_SIZE > MAX_INDIRECT_ENTRIES) {
        const rule = `a multiple of ${VIRTQ_DESC_SIZE} for 1..${MAX_INDIRECT_ENTRIES} entries`;
        problem = chainError(head, 'bad-indirect-length', `indirect table length ${length} is not ${rule}`);
      }
      const region = problem || address < 0 ? -1 : memory.regionIndex(address, length);
      if (!problem && region < 0) {
        problem = chainError(head, 'indirect-out-of-range', `indirect table ${describeRange(high, low, length)} is not RAM`);
      }
      if (problem) {
        chain.markMalformed(problem);
        return;
      }
      table = memory.regionView(region);
      tableStart = address - memory.regionBase(region);
      entries = length / VIRTQ_DESC_SIZE;
      budget = entries;
      inIndirect = true;
      index = 0;
      continue;
    }

    let host = -1;
    // A zero-length buffer is never accessed, so only its address has to be sane.
    if (length > 0) {
      // Buffers of one chain are mostly in one region: check the last one found before searching.
      if (address < regionStart || address + length > regionEnd) {
        const region = address < 0 ? -1 : memory.regionIndex(address, length);
        if (region < 0) {
          chain.markMalformed(chainError(head, 'buffer-out-of-range', `buffer ${describeRange(high, low, length)} is not RAM`));
          return;
        }
        regionStart = memory.regionBase(region);
        regionEnd = regionStart + memory.regionView(region).byteLength;
        regionHost = memory.regionHost(region);
      }
      if (regionHost >= 0) host = regionHost + (address - regionStart);
    } else if (address < 0) {
      chain.markMalformed(chainError(head, 'buffer-out-of-range', `buffer ${describeRange(high, low, length)} is not RAM`));
      return;
    }
    if (!chain.append(address, length, (flags & VIRTQ_DESC_F_WRITE) !== 0, host)) return;
    if (!(flags & VIRTQ_DESC_F_NEXT)) return;
    if (next >= entries) {
      const which = inIndirect ? 'indirect table' : 'descriptor table';
      chain.markMalformed(chainError(head, 'bad-next', `next index ${next} is beyond the ${entries}-entry ${which}`));
      return;
    }
    index = next;
  }
}

function chainError(head: number, kind: QueueErrorKind, detail: string): QueueError {
  return new QueueError(kind, `chain ${head}: ${detail}`);
}

function describeRange(high: number, low: number, length: number): string {
  const address = (BigInt(high) << 32n) | BigInt(low);
  return `0x${address.toString(16)}+0x${length.toString(16)}`;
}
