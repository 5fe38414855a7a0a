/** virtio-blk through the host-side driver harness: every request type, against a real image file. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, statSync, truncateSync } from 'node:fs';
import { BlkTestDevice, SECTOR, S, V, pattern } from './helpers.js';
import { BLK_MAX_DWZ_SECTORS, BLK_MAX_DWZ_SEGMENTS, BLK_SIZE_MAX } from '../../../../src/virtio/devices/blk/options.js';
import { MAX_BOUNCE_BYTES } from '../../../../src/virtio/devices/blk/device.js';

const bytesOf = (a: Uint8Array): number[] => Array.from(a);
const fileBytes = (d: BlkTestDevice, offset: number, length: number): number[] => bytesOf(readFileSync(d.path).subarray(offset, offset + length));
const zeros = (n: number): number[] => new Array<number>(n).fill(0);
const has = (features: bigint, bit: number): boolean => (features & V.featureBit(bit)) !== 0n;

function dwzSegments(segments: ReadonlyArray<{ sector: number | bigint; count: number; flags?: number }>): Uint8Array {
  const bytes = new Uint8Array(segments.length * S.BLK_DWZ_SEGMENT_SIZE);
  const v = new DataView(bytes.buffer);
  segments.forEach(({ sector, count, flags }, i) => {
    v.setBigUint64(i * 16 + S.BLK_DWZ_SECTOR, BigInt(sector), true);
    v.setUint32(i * 16 + S.BLK_DWZ_NUM_SECTORS, count, true);
    v.setUint32(i * 16 + S.BLK_DWZ_FLAGS, flags ?? 0, true);
  });
  return bytes;
}

test('offers SIZE_MAX, SEG_MAX, BLK_SIZE, FLUSH, MQ, DISCARD, WRITE_ZEROES and describes them in config space', async () => {
  const d = await BlkTestDevice.create({ sectors: 100, queues: 2 });
  try {
    for (const bit of [S.VIRTIO_BLK_F_SIZE_MAX, S.VIRTIO_BLK_F_SEG_MAX, S.VIRTIO_BLK_F_BLK_SIZE, S.VIRTIO_BLK_F_FLUSH, S.VIRTIO_BLK_F_MQ, S.VIRTIO_BLK_F_DISCARD, S.VIRTIO_BLK_F_WRITE_ZEROES]) {
      assert.ok(has(d.offered, bit), `feature ${bit} offered`);
    }
    assert.not.ok(has(d.offered, S.VIRTIO_BLK_F_RO));
    assert.ok(has(d.offered, V.VIRTIO_F_RING_EVENT_IDX) && has(d.offered, V.VIRTIO_F_RING_INDIRECT_DESC));
    assert.is(d.config(S.BLK_CFG_CAPACITY, 8), 100n);
    assert.is(d.config(S.BLK_CFG_SIZE_MAX, 4), BLK_SIZE_MAX);
    assert.is(d.config(S.BLK_CFG_SEG_MAX, 4), 254);
    assert.is(d.config(S.BLK_CFG_BLK_SIZE, 4), 512);
    assert.is(d.config(S.BLK_CFG_NUM_QUEUES, 2), 2);
    assert.is(d.config(S.BLK_CFG_MAX_DISCARD_SECTORS, 4), BLK_MAX_DWZ_SECTORS);
    assert.is(d.config(S.BLK_CFG_MAX_DISCARD_SEG, 4), BLK_MAX_DWZ_SEGMENTS);
    assert.is(d.config(S.BLK_CFG_DISCARD_SECTOR_ALIGNMENT, 4), 8);
    assert.is(d.config(S.BLK_CFG_MAX_WRITE_ZEROES_SECTORS, 4), BLK_MAX_DWZ_SECTORS);
    assert.is(d.config(S.BLK_CFG_MAX_WRITE_ZEROES_SEG, 4), BLK_MAX_DWZ_SEGMENTS);
    assert.is(d.config(S.BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1), 1);
    assert.is(d.config(S.BLK_CFG_WRITEBACK, 1), 0);
  } finally {
    await d.close();
  }
});

test('IN reads sectors straight into the guest buffer; OUT writes them to the file', async () => {
  const d = await BlkTestDevice.create({ sectors: 64 });
  try {
    const read = await d.request(S.VIRTIO_BLK_T_IN, 3, { inLength: 4 * SECTOR });
    assert.is(read.status, S.VIRTIO_BLK_S_OK);
    assert.is(read.len, 4 * SECTOR + 1, 'used length: data and status');
    assert.equal(bytesOf(read.data), bytesOf(pattern(3 * SECTOR, 4 * SECTOR)));
    const bytes = new Uint8Array(2 * SECTOR).map((_, i) => (i * 31) & 0xff);
    const write = await d.request(S.VIRTIO_BLK_T_OUT, 10, { out: bytes });
    assert.is(write.status, S.VIRTIO_BLK_S_OK);
    assert.is(write.len, 1, 'used length: the status byte');
    assert.equal(fileBytes(d, 10 * SECTOR, 2 * SECTOR), bytesOf(bytes));
    assert.equal(fileBytes(d, 9 * SECTOR, SECTOR), bytesOf(pattern(9 * SECTOR, SECTOR)), 'the sector before is untouched');
    assert.equal(fileBytes(d, 12 * SECTOR, SECTOR), bytesOf(pattern(12 * SECTOR, SECTOR)), 'the sector after is untouched');
  } finally {
    await d.close();
  }
});

test('data scattered over many buffers, odd addresses and an indirect table lands in order', async () => {
  const d = await BlkTestDevice.create({ sectors: 256 });
  try {
    const length = 64 * SECTOR;
    const read = await d.request(S.VIRTIO_BLK_T_IN, 17, { inLength: length }, { split: 1000, misalign: 3, indirect: true });
    assert.is(read.status, S.VIRTIO_BLK_S_OK);
    assert.equal(bytesOf(read.data), bytesOf(pattern(17 * SECTOR, length)));
    const out = new Uint8Array(8 * SECTOR).map((_, i) => (i * 7 + 1) & 0xff);
    const write = await d.request(S.VIRTIO_BLK_T_OUT, 100, { out }, { split: 100, misalign: 1 });
    assert.is(write.status, S.VIRTIO_BLK_S_OK);
    assert.equal(fileBytes(d, 100 * SECTOR, out.length), bytesOf(out));
  } finally {
    await d.close();
  }
});

test('any layout: header and data in one buffer, data and status in one buffer', async () => {
  const d = await BlkTestDevice.create({ sectors: 32 });
  try {
    const { h } = d;
    // OUT: header followed by the data in a single readable buffer, status alone.
    const out = h.allocate(16 + SECTOR);
    h.memory.writeU32(out, S.VIRTIO_BLK_T_OUT);
    h.memory.writeU64(out + 8, 5n);
    h.memory.fill(out + 16, SECTOR, 0xab);
    const status1 = h.allocate(1);
    const head1 = d.queues[0]!.addChain([{ address: out, length: 16 + SECTOR, writable: false }, { address: status1, length: 1, writable: true }]);
    assert.equal(await d.run(0, 1), [{ id: head1, len: 1 }]);
    // IN: data and status in one writable buffer (after the write: requests in flight together are unordered).
    const header = h.allocate(16);
    h.memory.writeU32(header, S.VIRTIO_BLK_T_IN);
    h.memory.writeU64(header + 8, 5n);
    const inBuffer = h.allocate(SECTOR + 1);
    const head2 = d.queues[0]!.addChain([{ address: header, length: 16, writable: false }, { address: inBuffer, length: SECTOR + 1, writable: true }]);
    assert.equal(await d.run(0, 1), [{ id: head2, len: SECTOR + 1 }]);
    assert.is(h.memory.readU8(status1), S.VIRTIO_BLK_S_OK);
    assert.is(h.memory.readU8(inBuffer + SECTOR), S.VIRTIO_BLK_S_OK);
    assert.equal(bytesOf(h.memory.slice(inBuffer, SECTOR)), new Array(SECTOR).fill(0xab));
  } finally {
    await d.close();
  }
});

test('FLUSH completes OK after the writes before it', async () => {
  const d = await BlkTestDevice.create({ sectors: 32 });
  try {
    const writes = [0, 1, 2, 3].map((i) => d.post(0, S.VIRTIO_BLK_T_OUT, i * 2, { out: new Uint8Array(SECTOR).fill(i + 1) }));
    const flush = d.post(0, S.VIRTIO_BLK_T_FLUSH, 0);
    const used = await d.run(0, 5);
    assert.is(used.length, 5);
    const order = used.map((u) => u.id);
    assert.is(order.indexOf(flush.head), 4, 'the flush is used after every write submitted before it');
    assert.is(d.status(flush), S.VIRTIO_BLK_S_OK);
    assert.is(used.find((u) => u.id === flush.head)!.len, 1);
    writes.forEach((w) => assert.is(d.status(w), S.VIRTIO_BLK_S_OK));
    [0, 1, 2, 3].forEach((i) => assert.equal(fileBytes(d, i * 2 * SECTOR, SECTOR), new Array(SECTOR).fill(i + 1)));
  } finally {
    await d.close();
  }
});

test('GET_ID returns the serial: a default from the path, or the one given; 20 bytes has no NUL', async () => {
  const d = await BlkTestDevice.create({ sectors: 8 });
  try {
    const id = await d.request(S.VIRTIO_BLK_T_GET_ID, 0, { inLength: S.VIRTIO_BLK_ID_BYTES });
    assert.is(id.status, S.VIRTIO_BLK_S_OK);
    const text = Buffer.from(id.data).toString('latin1').replace(/\0+$/, '');
    assert.match(text, /^disk\.img-[0-9a-f]{8}$/);
    assert.is(id.len, S.VIRTIO_BLK_ID_BYTES + 1);
  } finally {
    await d.close();
  }
  const full = await BlkTestDevice.create({ sectors: 8, serial: 'ABCDEFGHIJKLMNOPQRST' });
  try {
    const id = await full.request(S.VIRTIO_BLK_T_GET_ID, 0, { inLength: S.VIRTIO_BLK_ID_BYTES });
    assert.is(Buffer.from(id.data).toString('latin1'), 'ABCDEFGHIJKLMNOPQRST');
    const short = await full.request(S.VIRTIO_BLK_T_GET_ID, 0, { inLength: 4 });
    assert.is(Buffer.from(short.data).toString('latin1'), 'ABCD', 'a short buffer gets what fits');
    assert.is(short.len, 5);
  } finally {
    await full.close();
  }
});

test('DISCARD punches a hole: the range reads back as zeroes, frees its blocks, keeps the size', async () => {
  const d = await BlkTestDevice.create({ sectors: 256 });
  try {
    const before = statSync(d.path);
    const result = await d.request(S.VIRTIO_BLK_T_DISCARD, 0, { out: dwzSegments([{ sector: 64, count: 64 }, { sector: 160, count: 16 }]) });
    assert.is(result.status, S.VIRTIO_BLK_S_OK);
    const after = statSync(d.path);
    assert.is(after.size, before.size);
    assert.ok(after.blocks <= before.blocks - 80, `blocks ${before.blocks} → ${after.blocks}`);
    assert.equal(fileBytes(d, 64 * SECTOR, 64 * SECTOR), zeros(64 * SECTOR));
    assert.equal(fileBytes(d, 160 * SECTOR, 16 * SECTOR), zeros(16 * SECTOR));
    assert.equal(fileBytes(d, 63 * SECTOR, SECTOR), bytesOf(pattern(63 * SECTOR, SECTOR)));
    assert.equal(fileBytes(d, 128 * SECTOR, SECTOR), bytesOf(pattern(128 * SECTOR, SECTOR)));
  } finally {
    await d.close();
  }
});

test('WRITE_ZEROES zeroes the range; with UNMAP it also frees the blocks', async () => {
  const d = await BlkTestDevice.create({ sectors: 256 });
  try {
    const before = statSync(d.path).blocks;
    const plain = await d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: dwzSegments([{ sector: 8, count: 8 }]) });
    assert.is(plain.status, S.VIRTIO_BLK_S_OK);
    assert.equal(fileBytes(d, 8 * SECTOR, 8 * SECTOR), zeros(8 * SECTOR));
    assert.equal(fileBytes(d, 16 * SECTOR, SECTOR), bytesOf(pattern(16 * SECTOR, SECTOR)));
    const unmap = await d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, {
      out: dwzSegments([{ sector: 64, count: 128, flags: S.VIRTIO_BLK_WRITE_ZEROES_FLAG_UNMAP }]),
    });
    assert.is(unmap.status, S.VIRTIO_BLK_S_OK);
    assert.equal(fileBytes(d, 64 * SECTOR, 128 * SECTOR), zeros(128 * SECTOR));
    assert.ok(statSync(d.path).blocks <= before - 128, 'UNMAP deallocated the range');
    // Unaligned to the 4 KiB filesystem block: still exact zeroes, neighbours intact.
    const odd = await d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: dwzSegments([{ sector: 201, count: 3, flags: 1 }]) });
    assert.is(odd.status, S.VIRTIO_BLK_S_OK);
    assert.equal(fileBytes(d, 201 * SECTOR, 3 * SECTOR), zeros(3 * SECTOR));
    assert.equal(fileBytes(d, 200 * SECTOR, SECTOR), bytesOf(pattern(200 * SECTOR, SECTOR)));
    assert.equal(fileBytes(d, 204 * SECTOR, SECTOR), bytesOf(pattern(204 * SECTOR, SECTOR)));
  } finally {
    await d.close();
  }
});

test('DISCARD and WRITE_ZEROES refuse bad segments: UNSUPP for flags and counts, IOERR for ranges and lengths', async () => {
  const d = await BlkTestDevice.create({ sectors: 64 });
  try {
    const cases: Array<[number, Uint8Array, number, string]> = [
      [S.VIRTIO_BLK_T_DISCARD, dwzSegments([{ sector: 0, count: 8, flags: 1 }]), S.VIRTIO_BLK_S_UNSUPP, 'UNMAP on a discard'],
      [S.VIRTIO_BLK_T_WRITE_ZEROES, dwzSegments([{ sector: 0, count: 8, flags: 2 }]), S.VIRTIO_BLK_S_UNSUPP, 'unknown flag'],
      [S.VIRTIO_BLK_T_DISCARD, dwzSegments(Array.from({ length: BLK_MAX_DWZ_SEGMENTS + 1 }, (_, i) => ({ sector: i, count: 1 }))), S.VIRTIO_BLK_S_UNSUPP, 'too many segments'],
      [S.VIRTIO_BLK_T_DISCARD, dwzSegments([{ sector: 60, count: 8 }]), S.VIRTIO_BLK_S_IOERR, 'beyond the end'],
      [S.VIRTIO_BLK_T_WRITE_ZEROES, dwzSegments([{ sector: 0xffff_ffff_ffff_fff0n, count: 32 }]), S.VIRTIO_BLK_S_IOERR, 'sector overflow'],
      [S.VIRTIO_BLK_T_WRITE_ZEROES, dwzSegments([{ sector: 0, count: BLK_MAX_DWZ_SECTORS + 1 }]), S.VIRTIO_BLK_S_IOERR, 'more than max sectors'],
      [S.VIRTIO_BLK_T_DISCARD, new Uint8Array(15), S.VIRTIO_BLK_S_IOERR, 'not whole segments'],
    ];
    for (const [type, out, status, what] of cases) {
      const result = await d.request(type, 0, { out });
      assert.is(result.status, status, what);
      assert.is(result.len, 1, what);
    }
    assert.equal(fileBytes(d, 0, 64 * SECTOR), bytesOf(pattern(0, 64 * SECTOR)), 'nothing was changed');
  } finally {
    await d.close();
  }
});

test('unknown request types are UNSUPP; the device goes on', async () => {
  const d = await BlkTestDevice.create({ sectors: 8 });
  try {
    for (const type of [2, 3, S.VIRTIO_BLK_T_GET_LIFETIME, S.VIRTIO_BLK_T_SECURE_ERASE, 0x80000000, 99]) {
      const result = await d.request(type, 0, { inLength: SECTOR });
      assert.is(result.status, S.VIRTIO_BLK_S_UNSUPP, `type ${type}`);
      assert.is(result.len, 1);
    }
    const read = await d.request(S.VIRTIO_BLK_T_IN, 0, { inLength: SECTOR });
    assert.is(read.status, S.VIRTIO_BLK_S_OK);
  } finally {
    await d.close();
  }
});

test('boundary sectors: the last sector is served, anything reaching past it is IOERR and touches nothing', async () => {
  const d = await BlkTestDevice.create({ sectors: 64 });
  try {
    const last = await d.request(S.VIRTIO_BLK_T_IN, 63, { inLength: SECTOR });
    assert.is(last.status, S.VIRTIO_BLK_S_OK);
    assert.equal(bytesOf(last.data), bytesOf(pattern(63 * SECTOR, SECTOR)));
    const bad: Array<[number, number | bigint, number, string]> = [
      [S.VIRTIO_BLK_T_IN, 64, SECTOR, 'read at capacity'],
      [S.VIRTIO_BLK_T_IN, 63, 2 * SECTOR, 'read straddling the end'],
      [S.VIRTIO_BLK_T_OUT, 64, SECTOR, 'write at capacity'],
      [S.VIRTIO_BLK_T_OUT, 62, 3 * SECTOR, 'write straddling the end'],
      [S.VIRTIO_BLK_T_IN, 0xffff_ffff_ffff_ffffn, SECTOR, 'sector 2^64 - 1'],
      [S.VIRTIO_BLK_T_OUT, 2n ** 44n, SECTOR, 'sector beyond 2^53 bytes'],
      [S.VIRTIO_BLK_T_IN, 0, 100, 'length not whole sectors'],
      [S.VIRTIO_BLK_T_OUT, 0, SECTOR + 1, 'write length not whole sectors'],
    ];
    for (const [type, sector, length, what] of bad) {
      const data = type === S.VIRTIO_BLK_T_OUT ? { out: new Uint8Array(length).fill(0x55) } : { inLength: length };
      const result = await d.request(type, sector, data);
      assert.is(result.status, S.VIRTIO_BLK_S_IOERR, what);
      assert.is(result.len, 1, what);
      if (type === S.VIRTIO_BLK_T_IN) assert.ok(result.data.every((b) => b === 0xee), `${what}: buffer untouched`);
    }
    assert.is(statSync(d.path).size, 64 * SECTOR, 'the file did not grow');
    assert.equal(fileBytes(d, 0, 64 * SECTOR), bytesOf(pattern(0, 64 * SECTOR)), 'no write landed');
  } finally {
    await d.close();
  }
});

test('a partial last sector of the file is not part of the disk', async () => {
  const d = await BlkTestDevice.create({ contents: pattern(0, 10 * SECTOR + 100) });
  try {
    assert.is(d.config(S.BLK_CFG_CAPACITY, 8), 10n);
    assert.is((await d.request(S.VIRTIO_BLK_T_IN, 10, { inLength: SECTOR })).status, S.VIRTIO_BLK_S_IOERR);
  } finally {
    await d.close();
  }
});

test('read-only: RO offered, no DISCARD/WRITE_ZEROES; writes are IOERR and change nothing; reads and FLUSH work', async () => {
  const d = await BlkTestDevice.create({ sectors: 16, readOnly: true });
  try {
    assert.ok(has(d.offered, S.VIRTIO_BLK_F_RO));
    assert.not.ok(has(d.offered, S.VIRTIO_BLK_F_DISCARD));
    assert.not.ok(has(d.offered, S.VIRTIO_BLK_F_WRITE_ZEROES));
    const write = await d.request(S.VIRTIO_BLK_T_OUT, 0, { out: new Uint8Array(SECTOR).fill(1) });
    assert.is(write.status, S.VIRTIO_BLK_S_IOERR);
    const discard = await d.request(S.VIRTIO_BLK_T_DISCARD, 0, { out: dwzSegments([{ sector: 0, count: 8 }]) });
    assert.is(discard.status, S.VIRTIO_BLK_S_UNSUPP, 'DISCARD was not negotiated');
    assert.equal(fileBytes(d, 0, 16 * SECTOR), bytesOf(pattern(0, 16 * SECTOR)));
    assert.is((await d.request(S.VIRTIO_BLK_T_IN, 1, { inLength: SECTOR })).status, S.VIRTIO_BLK_S_OK);
    assert.is((await d.request(S.VIRTIO_BLK_T_FLUSH, 0)).status, S.VIRTIO_BLK_S_OK);
  } finally {
    await d.close();
  }
});

test('a header shorter than 16 bytes is IOERR; the device goes on', async () => {
  const d = await BlkTestDevice.create({ sectors: 8 });
  try {
    const header = d.h.allocate(8);
    d.h.memory.writeU32(header, S.VIRTIO_BLK_T_IN);
    const status = d.h.allocate(1);
    const head = d.queues[0]!.addChain([{ address: header, length: 8, writable: false }, { address: status, length: 1, writable: true }]);
    assert.equal(await d.run(0, 1), [{ id: head, len: 1 }]);
    assert.is(d.h.memory.readU8(status), S.VIRTIO_BLK_S_IOERR);
    assert.is((await d.request(S.VIRTIO_BLK_T_IN, 0, { inLength: SECTOR })).status, S.VIRTIO_BLK_S_OK);
  } finally {
    await d.close();
  }
});

test('a request without a writable status byte, with a data buffer or its header outside RAM, sets NEEDS_RESET; a reset recovers', async () => {
  for (const variant of ['no-status', 'outside-ram', 'header-outside-ram'] as const) {
    const d = await BlkTestDevice.create({ sectors: 8 });
    try {
      const header = d.h.allocate(16);
      d.h.memory.writeU32(header, S.VIRTIO_BLK_T_IN);
      if (variant === 'no-status') {
        d.queues[0]!.addChain([{ address: header, length: 16, writable: false }, { address: d.h.allocate(SECTOR), length: SECTOR, writable: false }]);
      } else if (variant === 'header-outside-ram') {
        // Just past the end of RAM: the walk refuses the chain before anything is read.
        d.queues[0]!.addChain([
          { address: d.h.memory.end - 8, length: 16, writable: false },
          { address: d.h.allocate(SECTOR), length: SECTOR, writable: true },
          { address: d.h.allocate(1), length: 1, writable: true },
        ]);
      } else {
        d.queues[0]!.addChain([
          { address: header, length: 16, writable: false },
          { address: 0x7fff_0000_0000, length: SECTOR, writable: true },
          { address: d.h.allocate(1), length: 1, writable: true },
        ]);
      }
      d.h.kick(0);
      assert.is(d.h.waitForInterrupt() & V.VIRTIO_ISR_CONFIG, V.VIRTIO_ISR_CONFIG, variant);
      assert.ok(d.h.status & V.VIRTIO_CONFIG_S_NEEDS_RESET, variant);
      d.reinitialize();
      const read = await d.request(S.VIRTIO_BLK_T_IN, 2, { inLength: SECTOR });
      assert.is(read.status, S.VIRTIO_BLK_S_OK, `${variant}: works after reset`);
      assert.equal(bytesOf(read.data), bytesOf(pattern(2 * SECTOR, SECTOR)));
    } finally {
      await d.close();
    }
  }
});

test('32 requests in flight on one queue all complete with the right data', async () => {
  const d = await BlkTestDevice.create({ sectors: 4096, queueSize: 128 });
  try {
    const posted = Array.from({ length: 32 }, (_, i) => ({ sector: (i * 97) % 4000, req: d.post(0, S.VIRTIO_BLK_T_IN, (i * 97) % 4000, { inLength: 8 * SECTOR }, { indirect: true }) }));
    const used = await d.run(0, 32);
    assert.is(used.length, 32);
    assert.equal(new Set(used.map((u) => u.id)).size, 32);
    for (const { sector, req } of posted) {
      assert.is(d.status(req), S.VIRTIO_BLK_S_OK);
      assert.equal(bytesOf(d.data(req)), bytesOf(pattern(sector * SECTOR, 8 * SECTOR)));
    }
  } finally {
    await d.close();
  }
});

test('multi-queue: each queue serves its own requests and completes them on that queue', async () => {
  const d = await BlkTestDevice.create({ sectors: 1024, queues: 4 });
  try {
    const posted = [0, 1, 2, 3].map((q) => ({
      write: d.post(q, S.VIRTIO_BLK_T_OUT, 100 + q * 10, { out: new Uint8Array(2 * SECTOR).fill(0x10 + q) }),
      read: d.post(q, S.VIRTIO_BLK_T_IN, q * 200, { inLength: 4 * SECTOR }),
    }));
    [0, 1, 2, 3].forEach((q) => d.h.kick(q));
    for (const q of [0, 1, 2, 3]) {
      const used = await d.h.waitForUsed(q, 2);
      assert.equal(new Set(used.map((u) => u.id)), new Set([posted[q]!.write.head, posted[q]!.read.head]), `queue ${q}`);
      assert.is(d.status(posted[q]!.write), S.VIRTIO_BLK_S_OK);
      assert.equal(bytesOf(d.data(posted[q]!.read)), bytesOf(pattern(q * 200 * SECTOR, 4 * SECTOR)));
      assert.equal(fileBytes(d, (100 + q * 10) * SECTOR, 2 * SECTOR), new Array(2 * SECTOR).fill(0x10 + q));
    }
  } finally {
    await d.close();
  }
});

test('EVENT_IDX: one interrupt when used.idx passes used_event, none before', async () => {
  const d = await BlkTestDevice.create({ sectors: 256 });
  try {
    const q = d.queues[0]!;
    q.setUsedEvent(7); // interrupt once the 8th request is used
    for (let i = 0; i < 8; i++) d.post(0, S.VIRTIO_BLK_T_IN, i * 8, { inLength: 8 * SECTOR });
    d.h.kick(0);
    assert.is(d.h.waitForInterrupt(5000) & V.VIRTIO_ISR_QUEUE, V.VIRTIO_ISR_QUEUE);
    assert.is(q.usedIndex, 8, 'the interrupt came with all 8 used');
    q.setUsedEvent(100);
    d.post(0, S.VIRTIO_BLK_T_IN, 0, { inLength: SECTOR });
    d.h.kick(0);
    assert.is((await d.h.waitForUsed(0, 9, 5000)).length, 9);
    assert.is(d.h.waitForInterrupt(100), 0, 'no interrupt before used_event is reached');
  } finally {
    await d.close();
  }
});

test('the synchronous engine serves the same requests', async () => {
  const d = await BlkTestDevice.create({ sectors: 64, engine: 'sync' });
  try {
    const read = await d.request(S.VIRTIO_BLK_T_IN, 5, { inLength: 3 * SECTOR }, { split: 700 });
    assert.equal(bytesOf(read.data), bytesOf(pattern(5 * SECTOR, 3 * SECTOR)));
    const out = new Uint8Array(SECTOR).fill(9);
    assert.is((await d.request(S.VIRTIO_BLK_T_OUT, 1, { out })).status, S.VIRTIO_BLK_S_OK);
    assert.is((await d.request(S.VIRTIO_BLK_T_FLUSH, 0)).status, S.VIRTIO_BLK_S_OK);
    assert.is((await d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, { out: dwzSegments([{ sector: 8, count: 8 }]) })).status, S.VIRTIO_BLK_S_OK);
    assert.equal(fileBytes(d, SECTOR, SECTOR), bytesOf(out));
    assert.equal(fileBytes(d, 8 * SECTOR, 8 * SECTOR), zeros(8 * SECTOR));
  } finally {
    await d.close();
  }
});

test('direct: O_DIRECT transfers, with a bounce buffer for guest buffers O_DIRECT cannot take', async () => {
  const d = await BlkTestDevice.create({ sectors: 256, direct: true });
  try {
    assert.ok(d.image.directOffsetAlign! >= SECTOR);
    assert.is(d.config(S.BLK_CFG_BLK_SIZE, 4), Math.max(SECTOR, d.image.directOffsetAlign!));
    const aligned = await d.request(S.VIRTIO_BLK_T_IN, 8, { inLength: 16 * SECTOR }, { split: 4096 });
    assert.equal(bytesOf(aligned.data), bytesOf(pattern(8 * SECTOR, 16 * SECTOR)));
    const odd = await d.request(S.VIRTIO_BLK_T_IN, 40, { inLength: 8 * SECTOR }, { misalign: 1, split: 1000 });
    assert.is(odd.status, S.VIRTIO_BLK_S_OK);
    assert.equal(bytesOf(odd.data), bytesOf(pattern(40 * SECTOR, 8 * SECTOR)));
    const out = new Uint8Array(8 * SECTOR).map((_, i) => (i * 13) & 0xff);
    assert.is((await d.request(S.VIRTIO_BLK_T_OUT, 100, { out }, { misalign: 5, split: 300 })).status, S.VIRTIO_BLK_S_OK);
    assert.is((await d.request(S.VIRTIO_BLK_T_OUT, 120, { out })).status, S.VIRTIO_BLK_S_OK);
    assert.equal(fileBytes(d, 100 * SECTOR, out.length), bytesOf(out));
    assert.equal(fileBytes(d, 120 * SECTOR, out.length), bytesOf(out));
  } finally {
    await d.close();
  }
});

test('data buffers scattered in guest memory, or adjacent ones merged into one transfer, carry the right bytes (page cache and O_DIRECT)', async () => {
  for (const direct of [false, true]) {
    const d = await BlkTestDevice.create({ sectors: 512, direct });
    try {
      // Page buffers with a page between each: one iovec per buffer, in chain order.
      const scattered = await d.request(S.VIRTIO_BLK_T_IN, 16, { inLength: 32 * SECTOR }, { split: 4096, stride: 8192 });
      assert.is(scattered.status, S.VIRTIO_BLK_S_OK);
      assert.equal(bytesOf(scattered.data), bytesOf(pattern(16 * SECTOR, 32 * SECTOR)));
      // Adjacent 512-byte buffers: merged into one aligned transfer (no bounce needed with O_DIRECT).
      const adjacent = await d.request(S.VIRTIO_BLK_T_IN, 64, { inLength: 16 * SECTOR }, { split: SECTOR });
      assert.is(adjacent.status, S.VIRTIO_BLK_S_OK);
      assert.equal(bytesOf(adjacent.data), bytesOf(pattern(64 * SECTOR, 16 * SECTOR)));
      const out = new Uint8Array(24 * SECTOR).map((_, i) => (i * 29 + (i >> 9)) & 0xff);
      assert.is((await d.request(S.VIRTIO_BLK_T_OUT, 200, { out }, { split: 4096, stride: 12288 })).status, S.VIRTIO_BLK_S_OK);
      assert.is((await d.request(S.VIRTIO_BLK_T_OUT, 300, { out }, { split: SECTOR })).status, S.VIRTIO_BLK_S_OK);
      assert.equal(fileBytes(d, 200 * SECTOR, out.length), bytesOf(out));
      assert.equal(fileBytes(d, 300 * SECTOR, out.length), bytesOf(out));
    } finally {
      await d.close();
    }
  }
});

test('direct: misaligned guest buffers above the bounce limit (served through the page cache) read and write correctly', async () => {
  const sectors = MAX_BOUNCE_BYTES / SECTOR + 64;
  const d = await BlkTestDevice.create({ sectors: sectors + 16, direct: true, queueSize: 256 });
  try {
    const out = new Uint8Array(sectors * SECTOR).map((_, i) => (i * 7 + (i >> 12)) & 0xff);
    assert.is((await d.request(S.VIRTIO_BLK_T_OUT, 8, { out }, { misalign: 3, split: 131072 })).status, S.VIRTIO_BLK_S_OK);
    assert.equal(fileBytes(d, 8 * SECTOR, out.length), bytesOf(out));
    const back = await d.request(S.VIRTIO_BLK_T_IN, 8, { inLength: out.length }, { misalign: 3, split: 131072 });
    assert.is(back.status, S.VIRTIO_BLK_S_OK);
    assert.equal(bytesOf(back.data), bytesOf(out));
  } finally {
    await d.close();
  }
});

test('a file that shrank under the device: reads past its new end are IOERR, not stale data', async () => {
  const d = await BlkTestDevice.create({ sectors: 64 });
  try {
    truncateSync(d.path, 20 * SECTOR);
    const straddle = await d.request(S.VIRTIO_BLK_T_IN, 18, { inLength: 4 * SECTOR });
    assert.is(straddle.status, S.VIRTIO_BLK_S_IOERR);
    assert.is((await d.request(S.VIRTIO_BLK_T_IN, 10, { inLength: SECTOR })).status, S.VIRTIO_BLK_S_OK);
  } finally {
    await d.close();
  }
});

test('a reset with requests in flight waits for them; the device then serves the new driver', async () => {
  const d = await BlkTestDevice.create({ sectors: 8192, queueSize: 128 });
  try {
    for (let i = 0; i < 64; i++) d.post(0, i % 2 ? S.VIRTIO_BLK_T_OUT : S.VIRTIO_BLK_T_IN, i * 64, i % 2 ? { out: new Uint8Array(64 * SECTOR) } : { inLength: 64 * SECTOR });
    d.h.kick(0);
    d.reinitialize();
    const read = await d.request(S.VIRTIO_BLK_T_IN, 1, { inLength: SECTOR });
    assert.is(read.status, S.VIRTIO_BLK_S_OK);
  } finally {
    await d.close();
  }
});

test.run();
