/** parseBlkRequest over hand-made chains: header, status, lengths and ranges, all hostile. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DescriptorChain, type ChainSegment } from '../../../../src/virtio/descriptor-chain.js';
import { QueueError } from '../../../../src/virtio/queue-error.js';
import { GuestMemory } from '../../../../src/vmm/guest-memory.js';
import { forEachDataPiece, parseBlkRequest, piecesOf, type BlkLimits } from '../../../../src/virtio/devices/blk/request.js';
import * as S from '../../../../src/virtio/devices/blk/spec.js';

const limits: BlkLimits = {
  capacitySectors: 100,
  readOnly: false,
  discard: true,
  writeZeroes: true,
  maxDwzSegments: 4,
  maxDwzSectors: 1000,
  maxPieces: 8,
};

function setup(type: number, sector: bigint, extraReadable: Uint8Array | undefined, writable: number[]) {
  const memory = GuestMemory.fromLayout([[0, 0x10000]]);
  memory.writeU32(0x100, type);
  memory.writeU64(0x108, sector);
  const segments: ChainSegment[] = [{ address: 0x100, length: 16, writable: false }];
  if (extraReadable) {
    memory.write(0x200, extraReadable);
    segments.push({ address: 0x200, length: extraReadable.length, writable: false });
  }
  let at = 0x4000;
  for (const length of writable) {
    segments.push({ address: at, length, writable: true });
    at += length + 0x10;
  }
  return { memory, chain: DescriptorChain.fromSegments(3, segments) };
}

test('IN: data is every writable byte but the last, which is the status', () => {
  const { memory, chain } = setup(S.VIRTIO_BLK_T_IN, 10n, undefined, [512, 512, 1]);
  const r = parseBlkRequest(memory, chain, limits);
  assert.equal(r, { op: 'read', statusAddress: 0x4000 + 512 + 0x10 + 512 + 0x10, offset: 10 * 512, length: 1024, first: 1, skip: 0, pieceCount: 2 });
});

test('OUT: data is the readable bytes after the header', () => {
  const { memory, chain } = setup(S.VIRTIO_BLK_T_OUT, 99n, new Uint8Array(512), [1]);
  const r = parseBlkRequest(memory, chain, limits);
  assert.equal(r, { op: 'write', statusAddress: 0x4000, offset: 99 * 512, length: 512, first: 1, skip: 0, pieceCount: 1 });
});

test('OUT with header and data in one buffer: the data starts 16 bytes into it and spans the pieces after it', () => {
  const memory = GuestMemory.fromLayout([[0, 0x10000]]);
  memory.writeU32(0x100, S.VIRTIO_BLK_T_OUT);
  const chain = DescriptorChain.fromSegments(1, [
    { address: 0x100, length: 16 + 512, writable: false },
    { address: 0x800, length: 0, writable: false },
    { address: 0x900, length: 512, writable: false },
    { address: 0x4000, length: 1, writable: true },
  ]);
  const r = parseBlkRequest(memory, chain, limits);
  assert.equal(r, { op: 'write', statusAddress: 0x4000, offset: 0, length: 1024, first: 0, skip: 16, pieceCount: 2 });
  const pieces: number[] = [];
  if (r.op === 'write') forEachDataPiece(chain, r.first, r.skip, r.length, (host, guest, length) => pieces.push(host, guest, length));
  assert.equal(pieces, [-1, 0x110, 512, -1, 0x900, 512], 'the empty segment is skipped; no host mapping in this memory');
});

test('ranges at and past the capacity, and sectors beyond 2^53 bytes, are IOERR', () => {
  const cases: Array<[number, bigint, number]> = [
    [S.VIRTIO_BLK_T_IN, 100n, 512],
    [S.VIRTIO_BLK_T_IN, 99n, 1024],
    [S.VIRTIO_BLK_T_IN, 0xffff_ffff_ffff_ffffn, 512],
    [S.VIRTIO_BLK_T_IN, 1n << 63n, 512],
    [S.VIRTIO_BLK_T_IN, 2n ** 44n, 512],
  ];
  for (const [type, sector, length] of cases) {
    const { memory, chain } = setup(type, sector, undefined, [length, 1]);
    const r = parseBlkRequest(memory, chain, limits);
    assert.is(r.op, 'answer', `sector ${sector}`);
    if (r.op === 'answer') assert.is(r.status, S.VIRTIO_BLK_S_IOERR);
  }
  const { memory, chain } = setup(S.VIRTIO_BLK_T_IN, 99n, undefined, [512, 1]);
  assert.is(parseBlkRequest(memory, chain, limits).op, 'read', 'the last sector is fine');
});

test('a zero-length transfer inside the disk is OK without I/O; at the end it is still inside', () => {
  const { memory, chain } = setup(S.VIRTIO_BLK_T_IN, 100n, undefined, [1]);
  const r = parseBlkRequest(memory, chain, limits);
  assert.equal(r.op === 'answer' && r.status, S.VIRTIO_BLK_S_OK);
});

test('more data pieces than iovecs allow is IOERR', () => {
  const { memory, chain } = setup(S.VIRTIO_BLK_T_IN, 0n, undefined, [...new Array(9).fill(512), 1]);
  const r = parseBlkRequest(memory, chain, limits);
  assert.equal(r.op === 'answer' && r.status, S.VIRTIO_BLK_S_IOERR);
});

test('no writable byte, or a malformed chain: unanswerable', () => {
  const { memory, chain } = setup(S.VIRTIO_BLK_T_IN, 0n, new Uint8Array(512), []);
  assert.is(parseBlkRequest(memory, chain, limits).op, 'unanswerable');
  const zeroLength = setup(S.VIRTIO_BLK_T_IN, 0n, undefined, [0]);
  assert.is(parseBlkRequest(zeroLength.memory, zeroLength.chain, limits).op, 'unanswerable', 'a zero-length writable buffer holds no status');
  const broken = DescriptorChain.malformed(1, new QueueError('buffer-out-of-range', 'not RAM'));
  assert.is(parseBlkRequest(memory, broken, limits).op, 'unanswerable');
});

test('writes, discards and write-zeroes on a read-only disk are IOERR; unnegotiated DISCARD is UNSUPP', () => {
  const ro = { ...limits, readOnly: true };
  const w = setup(S.VIRTIO_BLK_T_OUT, 0n, new Uint8Array(512), [1]);
  assert.equal(parseBlkRequest(w.memory, w.chain, ro), { op: 'answer', statusAddress: 0x4000, status: S.VIRTIO_BLK_S_IOERR, reason: 'write to a read-only disk' });
  const segment = new Uint8Array(16);
  new DataView(segment.buffer).setUint32(8, 8, true);
  const z = setup(S.VIRTIO_BLK_T_WRITE_ZEROES, 0n, segment, [1]);
  const rz = parseBlkRequest(z.memory, z.chain, ro);
  assert.equal(rz.op === 'answer' && rz.status, S.VIRTIO_BLK_S_IOERR);
  const rd = parseBlkRequest(z.memory, z.chain, { ...limits, writeZeroes: false });
  assert.equal(rd.op === 'answer' && rd.status, S.VIRTIO_BLK_S_UNSUPP);
});

test('discard segments become byte ranges; empty ones are skipped', () => {
  const bytes = new Uint8Array(48);
  const v = new DataView(bytes.buffer);
  v.setBigUint64(0, 8n, true);
  v.setUint32(8, 16, true);
  v.setBigUint64(16, 50n, true);
  v.setUint32(24, 0, true);
  v.setBigUint64(32, 90n, true);
  v.setUint32(40, 10, true);
  const { memory, chain } = setup(S.VIRTIO_BLK_T_DISCARD, 0n, bytes, [1]);
  const r = parseBlkRequest(memory, chain, limits);
  assert.equal(r, {
    op: 'discard',
    statusAddress: 0x4000,
    ranges: [
      { offset: 8 * 512, length: 16 * 512, unmap: false },
      { offset: 90 * 512, length: 10 * 512, unmap: false },
    ],
  });
});

test('piecesOf skips and clips across segments, leaving out empty ones', () => {
  const segments: ChainSegment[] = [
    { address: 100, length: 10, writable: false },
    { address: 500, length: 0, writable: false },
    { address: 200, length: 10, writable: false },
    { address: 300, length: 10, writable: false },
  ];
  assert.equal(piecesOf(segments, 5, 12), [105, 5, 200, 7]);
  assert.equal(piecesOf(segments, 10, 20), [200, 10, 300, 10]);
  assert.equal(piecesOf(segments, 0, 0), []);
});

test.run();
