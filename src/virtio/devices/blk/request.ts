/**
 * Turns one descriptor chain into a virtio-blk request, trusting nothing:
 * the 16-byte header is read from the device-readable part (any layout), the
 * status is the last device-writable byte, data lengths are whole sectors,
 * and every range is checked against the capacity in exact integer
 * arithmetic. A request that cannot be served is answered on the spot with
 * IOERR or UNSUPP; one without a writable status byte cannot be answered at all.
 */
import type { ChainSegment, DescriptorChain } from '../../descriptor-chain.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import * as S from './spec.js';

export interface BlkLimits {
  readonly capacitySectors: number;
  readonly readOnly: boolean;
  /** VIRTIO_BLK_F_DISCARD / VIRTIO_BLK_F_WRITE_ZEROES negotiated. */
  readonly discard: boolean;
  readonly writeZeroes: boolean;
  readonly maxDwzSegments: number;
  readonly maxDwzSectors: number;
  /** Most data pieces one request may have (one iovec each). */
  readonly maxPieces: number;
}

/** One discard or write-zeroes range, in bytes. */
export interface DwzRange {
  readonly offset: number;
  readonly length: number;
  readonly unmap: boolean;
}

export type BlkRequest =
  | {
      readonly op: 'read' | 'write';
      readonly statusAddress: number;
      /** File offset and length in bytes. */
      readonly offset: number;
      readonly length: number;
      /** Where the data is in the chain: `length` bytes from byte `skip` of segment `first` on. */
      readonly first: number;
      readonly skip: number;
      /** Non-empty data segments (one iovec each). */
      readonly pieceCount: number;
    }
  | { readonly op: 'flush'; readonly statusAddress: number }
  | { readonly op: 'get-id'; readonly statusAddress: number; readonly pieces: number[] }
  | { readonly op: 'discard' | 'write-zeroes'; readonly statusAddress: number; readonly ranges: DwzRange[] }
  /** Answered without I/O: a bad request (IOERR, UNSUPP) or one with nothing to do (OK). */
  | { readonly op: 'answer'; readonly statusAddress: number; readonly status: number; readonly reason: string }
  | { readonly op: 'unanswerable'; readonly reason: string };

const TWO_32 = 0x1_0000_0000;
/** Sector numbers at or above this are beyond 2^53 bytes: no capacity reaches them. */
const MAX_SAFE_SECTOR_HIGH = 2 ** (53 - 32 - S.VIRTIO_BLK_SECTOR_SHIFT);

export function parseBlkRequest(memory: GuestMemory, chain: DescriptorChain, limits: BlkLimits): BlkRequest {
  if (chain.error) return { op: 'unanswerable', reason: chain.error.message };
  const statusAddress = lastWritableByte(chain);
  if (statusAddress === undefined) return { op: 'unanswerable', reason: `chain ${chain.head}: no device-writable status byte` };
  const answer = (status: number, reason: string): BlkRequest => ({ op: 'answer', statusAddress, status, reason });

  if (chain.readableLength < S.BLK_REQ_HEADER_SIZE) {
    return answer(S.VIRTIO_BLK_S_IOERR, `header needs ${S.BLK_REQ_HEADER_SIZE} readable bytes, chain has ${chain.readableLength}`);
  }
  let type: number;
  let sectorLow: number;
  let sectorHigh: number;
  const headerAddress = chain.addressAt(0);
  const region = chain.lengthAt(0) >= S.BLK_REQ_HEADER_SIZE ? memory.regionIndex(headerAddress, S.BLK_REQ_HEADER_SIZE) : -1;
  if (region >= 0) {
    // The usual layout: the whole header in the first buffer, read in place.
    const v = memory.regionView(region);
    const at = headerAddress - memory.regionBase(region);
    type = v.getUint32(at + S.BLK_REQ_TYPE, true);
    sectorLow = v.getUint32(at + S.BLK_REQ_SECTOR, true);
    sectorHigh = v.getUint32(at + S.BLK_REQ_SECTOR + 4, true);
  } else {
    const h = new DataView(chain.readReadable(memory, 0, S.BLK_REQ_HEADER_SIZE).buffer);
    type = h.getUint32(S.BLK_REQ_TYPE, true);
    sectorLow = h.getUint32(S.BLK_REQ_SECTOR, true);
    sectorHigh = h.getUint32(S.BLK_REQ_SECTOR + 4, true);
  }
  const dataOut = chain.readableLength - S.BLK_REQ_HEADER_SIZE;
  const dataIn = chain.writableLength - 1;

  switch (type) {
    case S.VIRTIO_BLK_T_IN:
    case S.VIRTIO_BLK_T_OUT: {
      const write = type === S.VIRTIO_BLK_T_OUT;
      if (write && limits.readOnly) return answer(S.VIRTIO_BLK_S_IOERR, 'write to a read-only disk');
      const length = write ? dataOut : dataIn;
      if (length % S.VIRTIO_BLK_SECTOR_SIZE !== 0) return answer(S.VIRTIO_BLK_S_IOERR, `data length ${length} is not whole sectors`);
      const bad = checkRange(sectorHigh, sectorLow, length / S.VIRTIO_BLK_SECTOR_SIZE, limits.capacitySectors);
      if (bad) return answer(S.VIRTIO_BLK_S_IOERR, bad);
      if (length === 0) return answer(S.VIRTIO_BLK_S_OK, 'empty transfer');
      const span = write ? findSpan(chain, 0, S.BLK_REQ_HEADER_SIZE, length) : findSpan(chain, chain.readableCount, 0, length);
      if (span.pieceCount > limits.maxPieces) {
        return answer(S.VIRTIO_BLK_S_IOERR, `${span.pieceCount} data segments, more than ${limits.maxPieces}`);
      }
      const offset = (sectorHigh * TWO_32 + sectorLow) * S.VIRTIO_BLK_SECTOR_SIZE;
      return { op: write ? 'write' : 'read', statusAddress, offset, length, first: span.first, skip: span.skip, pieceCount: span.pieceCount };
    }
    case S.VIRTIO_BLK_T_FLUSH:
      return { op: 'flush', statusAddress };
    case S.VIRTIO_BLK_T_GET_ID:
      return { op: 'get-id', statusAddress, pieces: piecesOf(chain.writableSegments, 0, Math.min(dataIn, S.VIRTIO_BLK_ID_BYTES)) };
    case S.VIRTIO_BLK_T_DISCARD:
    case S.VIRTIO_BLK_T_WRITE_ZEROES: {
      const discard = type === S.VIRTIO_BLK_T_DISCARD;
      if (!(discard ? limits.discard : limits.writeZeroes)) return answer(S.VIRTIO_BLK_S_UNSUPP, `${discard ? 'DISCARD' : 'WRITE_ZEROES'} not negotiated`);
      if (limits.readOnly) return answer(S.VIRTIO_BLK_S_IOERR, 'discard or write-zeroes on a read-only disk');
      if (dataOut === 0 || dataOut % S.BLK_DWZ_SEGMENT_SIZE !== 0) {
        return answer(S.VIRTIO_BLK_S_IOERR, `${dataOut} bytes is not a whole number of discard/write-zeroes segments`);
      }
      const count = dataOut / S.BLK_DWZ_SEGMENT_SIZE;
      if (count > limits.maxDwzSegments) return answer(S.VIRTIO_BLK_S_UNSUPP, `${count} segments, more than ${limits.maxDwzSegments}`);
      const bytes = chain.readReadable(memory, S.BLK_REQ_HEADER_SIZE, dataOut);
      const v = new DataView(bytes.buffer);
      const ranges: DwzRange[] = [];
      for (let i = 0; i < count; i++) {
        const at = i * S.BLK_DWZ_SEGMENT_SIZE;
        const low = v.getUint32(at + S.BLK_DWZ_SECTOR, true);
        const high = v.getUint32(at + S.BLK_DWZ_SECTOR + 4, true);
        const sectors = v.getUint32(at + S.BLK_DWZ_NUM_SECTORS, true);
        const flags = v.getUint32(at + S.BLK_DWZ_FLAGS, true);
        // 5.2.6.2: unknown flags, and UNMAP on a discard, are UNSUPP.
        if (flags & ~S.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP) return answer(S.VIRTIO_BLK_S_UNSUPP, `unknown segment flags 0x${flags.toString(16)}`);
        if (discard && flags) return answer(S.VIRTIO_BLK_S_UNSUPP, 'UNMAP set on a discard');
        if (sectors > limits.maxDwzSectors) return answer(S.VIRTIO_BLK_S_IOERR, `${sectors} sectors in one segment, more than ${limits.maxDwzSectors}`);
        const bad = checkRange(high, low, sectors, limits.capacitySectors);
        if (bad) return answer(S.VIRTIO_BLK_S_IOERR, bad);
        if (sectors === 0) continue;
        const offset = (high * TWO_32 + low) * S.VIRTIO_BLK_SECTOR_SIZE;
        ranges.push({ offset, length: sectors * S.VIRTIO_BLK_SECTOR_SIZE, unmap: flags !== 0 });
      }
      if (ranges.length === 0) return answer(S.VIRTIO_BLK_S_OK, 'empty ranges');
      return { op: discard ? 'discard' : 'write-zeroes', statusAddress, ranges };
    }
    default:
      return answer(S.VIRTIO_BLK_S_UNSUPP, `request type ${type}`);
  }
}

/** A reason when [sector, sector + count) is not inside the disk. */
function checkRange(high: number, low: number, count: number, capacity: number): string | undefined {
  if (high >= MAX_SAFE_SECTOR_HIGH) return `sector 0x${(BigInt(high) * BigInt(TWO_32) + BigInt(low)).toString(16)} is beyond the disk`;
  const sector = high * TWO_32 + low;
  if (sector > capacity || count > capacity - sector) {
    return `sectors ${sector}+${count} are beyond the disk's ${capacity}`;
  }
  return undefined;
}

function lastWritableByte(chain: DescriptorChain): number | undefined {
  for (let i = chain.segmentCount - 1; i >= chain.readableCount; i--) {
    const length = chain.lengthAt(i);
    if (length > 0) return chain.addressAt(i) + length - 1;
  }
  return undefined;
}

interface Span {
  readonly first: number;
  readonly skip: number;
  readonly pieceCount: number;
}

/** Where bytes [skip, skip + length) of the segments from `from` on start, and how many non-empty pieces they cover. */
function findSpan(chain: DescriptorChain, from: number, skip: number, length: number): Span {
  let first = -1;
  let firstSkip = 0;
  let pieceCount = 0;
  let left = length;
  for (let i = from; i < chain.segmentCount && left > 0; i++) {
    const segmentLength = chain.lengthAt(i);
    if (skip >= segmentLength) {
      skip -= segmentLength;
      continue;
    }
    if (first < 0) {
      first = i;
      firstSkip = skip;
    }
    left -= Math.min(segmentLength - skip, left);
    skip = 0;
    pieceCount++;
  }
  return { first, skip: firstSkip, pieceCount };
}

/**
 * Calls visit(host, guest, length) for each piece of a read/write request's data, in order
 * (host is -1 when guest memory has no host mapping).
 */
export function forEachDataPiece(chain: DescriptorChain, first: number, skip: number, length: number, visit: (host: number, guest: number, length: number) => void): void {
  let left = length;
  for (let i = first; left > 0; i++) {
    const segmentLength = chain.lengthAt(i);
    if (segmentLength <= skip) {
      skip -= segmentLength;
      continue;
    }
    const n = Math.min(segmentLength - skip, left);
    const host = chain.hostAt(i);
    visit(host < 0 ? -1 : host + skip, chain.addressAt(i) + skip, n);
    left -= n;
    skip = 0;
  }
}

/** The guest ranges of bytes [skip, skip + length) of `segments`, flattened as [address, length, …]. */
export function piecesOf(segments: readonly ChainSegment[], skip: number, length: number): number[] {
  const pieces: number[] = [];
  let left = length;
  for (const s of segments) {
    if (left === 0) break;
    if (skip >= s.length) {
      skip -= s.length;
      continue;
    }
    const n = Math.min(s.length - skip, left);
    pieces.push(s.address + skip, n);
    left -= n;
    skip = 0;
  }
  return pieces;
}
