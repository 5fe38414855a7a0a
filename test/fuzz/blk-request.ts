/**
 * Fuzz target: the virtio-blk request parser (parseBlkRequest, 5.2.6) on random chains popped
 * from a real queue: any request type, sector and segment layout, the header split across
 * buffers, data lengths that are not whole sectors, discard/write-zeroes segment lists, chains
 * without a writable byte or malformed. It must not throw, and what it returns must stay inside
 * the chain: the status byte is the last writable byte, data of a read lies in the writable part
 * before it and data of a write in the readable part after the 16-byte header, every range is
 * inside the disk, and the request kind follows the header's type.
 */
import fc from 'fast-check';
import { forEachDataPiece, parseBlkRequest, piecesOf, type BlkLimits } from '../../src/virtio/devices/blk/request.js';
import * as S from '../../src/virtio/devices/blk/spec.js';
import { ChainBed, chainSpecArb, expect, type ChainSpec } from './chain-bed.js';
import type { FuzzTarget } from './fuzz-target.js';

export interface BlkRequestCase {
  readonly limits: BlkLimits;
  readonly chain: ChainSpec;
}

const SECTOR = 512;

/** struct virtio_blk_outhdr then the data-out bytes (data or discard/write-zeroes segments). */
export const blkReadableArb = (capacity: fc.Arbitrary<number> = fc.constant(64)): fc.Arbitrary<Uint8Array> =>
  fc
    .record({
      type: fc.oneof({ arbitrary: fc.constantFrom(0, 1, 4, 8, 11, 13), weight: 8 }, { arbitrary: fc.constantFrom(10, 14, 2, 0xffffffff), weight: 1 }, { arbitrary: fc.nat({ max: 0xffffffff }), weight: 1 }),
      reserved: fc.nat({ max: 0xffffffff }),
      sector: fc.oneof(
        { arbitrary: capacity.chain((c) => fc.oneof(fc.integer({ min: 0, max: c + 2 }), fc.integer({ min: Math.max(0, c - 6), max: c + 2 }))).map(BigInt), weight: 6 },
        { arbitrary: fc.constantFrom(2n ** 64n - 1n, 2n ** 55n, 2n ** 44n, 2n ** 32n), weight: 1 },
        { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), weight: 1 },
      ),
      dataSectors: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 4 }), weight: 3 }, { arbitrary: fc.constant(-1), weight: 1 }),
      oddBytes: fc.oneof({ arbitrary: fc.constant(0), weight: 12 }, { arbitrary: fc.integer({ min: 1, max: 600 }), weight: 1 }),
      segments: fc.array(
        fc.record({
          sector: fc.oneof({ arbitrary: capacity.chain((c) => fc.integer({ min: 0, max: c + 2 })).map(BigInt), weight: 4 }, { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), weight: 1 }),
          count: fc.oneof(fc.integer({ min: 0, max: 8 }), fc.nat({ max: 0xffffffff })),
          flags: fc.oneof({ arbitrary: fc.constantFrom(0, 1), weight: 8 }, { arbitrary: fc.nat({ max: 0xffffffff }), weight: 1 }),
        }),
        { maxLength: 4 },
      ),
      truncateHeader: fc.oneof({ arbitrary: fc.constant(16), weight: 12 }, { arbitrary: fc.integer({ min: 0, max: 15 }), weight: 1 }),
    })
    .map((h) => {
      const dwz = h.type === 11 || h.type === 13;
      const dataLength = dwz ? h.segments.length * 16 + (h.oddBytes % 16) : Math.max(0, h.dataSectors) * SECTOR + h.oddBytes;
      const bytes = new Uint8Array(16 + (h.type === 1 ? dataLength : dwz ? dataLength : 0));
      const v = new DataView(bytes.buffer);
      v.setUint32(0, h.type, true);
      v.setUint32(4, h.reserved, true);
      v.setBigUint64(8, h.sector, true);
      if (dwz) {
        h.segments.forEach((s, i) => {
          v.setBigUint64(16 + 16 * i, s.sector, true);
          v.setUint32(16 + 16 * i + 8, s.count, true);
          v.setUint32(16 + 16 * i + 12, s.flags, true);
        });
      } else {
        for (let i = 16; i < bytes.length; i++) bytes[i] = i & 0xff;
      }
      return bytes.subarray(0, h.truncateHeader < 16 ? h.truncateHeader : bytes.length);
    });

/** Writable lengths: mostly data-in sectors + a status byte, sometimes anything. */
export const blkWritableArb: fc.Arbitrary<number[]> = fc.oneof(
  { arbitrary: fc.tuple(fc.array(fc.oneof({ arbitrary: fc.constantFrom(SECTOR, 2 * SECTOR, 256, 0), weight: 8 }, { arbitrary: fc.integer({ min: 0, max: 600 }), weight: 1 }), { maxLength: 3 }), fc.constantFrom(1, 1, 1, 0, 2)).map(([data, status]) => [...data, status]), weight: 6 },
  { arbitrary: fc.array(fc.integer({ min: 0, max: 1100 }), { maxLength: 4 }), weight: 1 },
);

const limitsArb: fc.Arbitrary<BlkLimits> = fc.record({
  capacitySectors: fc.oneof({ arbitrary: fc.constantFrom(0, 1, 64, 66, 64, 4096), weight: 3 }, { arbitrary: fc.nat({ max: 2 ** 40 }), weight: 1 }),
  readOnly: fc.oneof({ arbitrary: fc.constant(false), weight: 4 }, { arbitrary: fc.constant(true), weight: 1 }),
  discard: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
  writeZeroes: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
  maxDwzSegments: fc.constantFrom(1, 2, 8),
  maxDwzSectors: fc.constantFrom(1, 8, 0xffffffff),
  maxPieces: fc.constantFrom(1, 2, 16, 1024),
});

export const blkRequestCaseArb: fc.Arbitrary<BlkRequestCase> = limitsArb.chain((limits) =>
  fc.record({
    limits: fc.constant(limits),
    chain: chainSpecArb(blkReadableArb(fc.constant(Math.min(limits.capacitySectors, 4096))), blkWritableArb),
  }),
);

let bed: ChainBed | undefined;

export function checkBlkRequestCase(c: BlkRequestCase): void {
  bed ??= new ChainBed();
  bed.reset();
  const posted = bed.post(c.chain);
  if (!posted) return;
  const chain = bed.pop()!;
  bed.snapshot();
  const request = parseBlkRequest(bed.memory, chain, c.limits);
  expect(bed.changesOutside([]).length === 0, () => 'parsing changed guest memory');
  const json = (): string => JSON.stringify(request);
  if (chain.error) {
    expect(request.op === 'unanswerable', () => `a malformed chain (${chain.error!.kind}) parsed as ${json()}`);
    return;
  }
  const writable = chain.writableSegments.filter((s) => s.length > 0);
  if (writable.length === 0) {
    expect(request.op === 'unanswerable', () => `a chain without a writable byte parsed as ${json()}`);
    return;
  }
  expect(request.op !== 'unanswerable', () => `a chain with a writable byte is unanswerable: ${json()}`);
  const last = writable[writable.length - 1]!;
  expect(request.statusAddress === last.address + last.length - 1, () => `status at ${request.statusAddress}, not the last writable byte ${last.address + last.length - 1}`);

  const readable = chain.readableLength;
  const header = readable >= 16 ? chain.readReadable(bed.memory, 0, 16) : undefined;
  const type = header ? new DataView(header.buffer).getUint32(0, true) : undefined;
  const capacityBytes = c.limits.capacitySectors * SECTOR;
  const dataIn = chain.writableLength - 1;

  switch (request.op) {
    case 'answer':
      expect([S.VIRTIO_BLK_S_OK, S.VIRTIO_BLK_S_IOERR, S.VIRTIO_BLK_S_UNSUPP].includes(request.status), () => `answer status ${request.status}`);
      if (!header) expect(request.status === S.VIRTIO_BLK_S_IOERR, () => `a chain without a header answered ${request.status}`);
      return;
    case 'read':
    case 'write': {
      const write = request.op === 'write';
      expect(type === (write ? S.VIRTIO_BLK_T_OUT : S.VIRTIO_BLK_T_IN), () => `type ${type} parsed as ${request.op}`);
      expect(!(write && c.limits.readOnly), () => 'a write on a read-only disk');
      expect(request.length > 0 && request.length % SECTOR === 0, () => `data length ${request.length}`);
      expect(request.length === (write ? readable - 16 : dataIn), () => `data length ${request.length} is not the chain's data part`);
      expect(request.offset % SECTOR === 0 && request.offset + request.length <= capacityBytes, () => `${request.offset}+${request.length} is beyond the disk (${capacityBytes})`);
      expect(request.pieceCount <= c.limits.maxPieces, () => `${request.pieceCount} pieces > ${c.limits.maxPieces}`);
      // Each piece lies in a buffer of the right kind, past the header (write) or before the status byte (read).
      const pieces: Array<[number, number, number]> = [];
      forEachDataPiece(chain, request.first, request.skip, request.length, (host, guest, length) => pieces.push([host, guest, length]));
      expect(pieces.length === request.pieceCount, () => `${pieces.length} pieces walked, ${request.pieceCount} counted`);
      expect(pieces.reduce((s, p) => s + p[2], 0) === request.length, () => 'the pieces do not add up to the data length');
      const expected = write ? piecesOf(chain.readableSegments, 16, request.length) : piecesOf(chain.writableSegments, 0, request.length);
      expect(JSON.stringify(pieces.map(([, g, n]) => [g, n]).flat()) === JSON.stringify(expected), () => `data pieces ${JSON.stringify(pieces)} are not bytes ${write ? '16..' : '0..'} of the ${write ? 'readable' : 'writable'} part`);
      for (const [host, guest, length] of pieces) {
        expect(length > 0 && host === bed.host + guest, () => `piece ${guest}+${length} has host address ${host}`);
        if (!write) expect(guest + length - 1 < request.statusAddress || guest > request.statusAddress, () => 'read data overlaps the status byte');
      }
      return;
    }
    case 'flush':
      expect(type === S.VIRTIO_BLK_T_FLUSH, () => `type ${type} parsed as flush`);
      return;
    case 'get-id': {
      expect(type === S.VIRTIO_BLK_T_GET_ID, () => `type ${type} parsed as get-id`);
      let total = 0;
      for (let i = 0; i < request.pieces.length; i += 2) {
        const [address, length] = [request.pieces[i]!, request.pieces[i + 1]!];
        total += length;
        expect(chain.writableSegments.some((s) => address >= s.address && address + length <= s.address + s.length), () => `ID piece ${address}+${length} is not in a writable buffer`);
        expect(address + length - 1 < request.statusAddress || address > request.statusAddress, () => 'the ID overlaps the status byte');
      }
      expect(total === Math.min(20, dataIn), () => `ID of ${total} bytes for ${dataIn} writable data bytes`);
      return;
    }
    case 'discard':
    case 'write-zeroes': {
      const discard = request.op === 'discard';
      expect(type === (discard ? S.VIRTIO_BLK_T_DISCARD : S.VIRTIO_BLK_T_WRITE_ZEROES), () => `type ${type} parsed as ${request.op}`);
      expect(discard ? c.limits.discard : c.limits.writeZeroes, () => `${request.op} not negotiated`);
      expect(!c.limits.readOnly, () => `${request.op} on a read-only disk`);
      expect(request.ranges.length > 0 && request.ranges.length <= c.limits.maxDwzSegments, () => `${request.ranges.length} ranges`);
      for (const r of request.ranges) {
        expect(r.length > 0 && r.length % SECTOR === 0 && r.length / SECTOR <= c.limits.maxDwzSectors, () => `range length ${r.length}`);
        expect(r.offset % SECTOR === 0 && r.offset + r.length <= capacityBytes, () => `range ${r.offset}+${r.length} beyond the disk`);
        expect(!(discard && r.unmap), () => 'UNMAP on a discard');
      }
      return;
    }
  }
}

export const blkRequestTarget: FuzzTarget<BlkRequestCase> = {
  name: 'blk-request',
  description: 'virtio-blk request parser on random chains: no exception, status/data/ranges inside the chain and the disk',
  arbitrary: blkRequestCaseArb,
  check: checkBlkRequestCase,
  testRuns: { fixed: 1000, random: 200 },
  dispose() {
    bed?.close();
    bed = undefined;
  },
};
