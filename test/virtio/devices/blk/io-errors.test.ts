/**
 * The kernel failing a request's I/O (EIO from a read or write, fdatasync reporting a lost
 * writeback, fallocate refusing for a reason other than "not supported") answers that request
 * with VIRTIO_BLK_S_IOERR — never OK, never a crash — and the requests around it are served
 * normally. Also: at queue depth 32 the io_uring engine really has the requests in flight together.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as S from '../../../../src/virtio/devices/blk/spec.js';
import { featureBit } from '../../../../src/virtio/virtio-constants.js';
import { pattern, SECTOR } from './helpers.js';
import { EngineDouble, InProcessBlk, type Operation } from './in-process.js';
import { BlkSharedState } from '../../../../src/virtio/devices/blk/disk-shared.js';

const QUEUE_SIZE = 64;
const EIO = 5;
const ENOSPC = 28;
const EOPNOTSUPP = 95;

/** Fails the next operation of kind `op` with `errno`, once. */
function failOnce(engine: EngineDouble, op: Operation, errno: number): void {
  let armed = true;
  engine.failWith = (o) => {
    if (!armed || o !== op) return undefined;
    armed = false;
    return errno;
  };
}

for (const kind of ['sync', 'io-uring'] as const) {
  test(`${kind}: a read or write the kernel fails is IOERR; the next one is served`, () => {
    const engine = EngineDouble.create(kind, QUEUE_SIZE);
    const d = new InProcessBlk(engine, 128, QUEUE_SIZE);
    try {
      failOnce(engine, 'readv', EIO);
      assert.is(d.request(S.VIRTIO_BLK_T_IN, 4, [4096]).status, S.VIRTIO_BLK_S_IOERR);
      const read = d.request(S.VIRTIO_BLK_T_IN, 4, [4096]);
      assert.is(read.status, S.VIRTIO_BLK_S_OK);
      assert.equal(read.data, pattern(4 * SECTOR, 4096));

      const out = new Uint8Array(4096).fill(0x5c);
      failOnce(engine, 'writev', ENOSPC);
      assert.is(d.request(S.VIRTIO_BLK_T_OUT, 20, [4096], out).status, S.VIRTIO_BLK_S_IOERR);
      assert.equal(new Uint8Array(readFileSync(d.file).subarray(20 * SECTOR, 28 * SECTOR)), pattern(20 * SECTOR, 4096), 'the failed write changed nothing here');
      assert.is(d.request(S.VIRTIO_BLK_T_OUT, 20, [4096], out).status, S.VIRTIO_BLK_S_OK);
      assert.equal(new Uint8Array(readFileSync(d.file).subarray(20 * SECTOR, 28 * SECTOR)), out);
      assert.equal(d.failures, [], 'an I/O error is the request\'s, not the device\'s');
    } finally {
      d.close();
    }
  });

  test(`${kind}: a flush whose fdatasync fails is IOERR, and so is every later flush until the device is reset`, () => {
    const engine = EngineDouble.create(kind, QUEUE_SIZE);
    const d = new InProcessBlk(engine, 128, QUEUE_SIZE);
    try {
      assert.is(d.request(S.VIRTIO_BLK_T_OUT, 8, [512], new Uint8Array(512).fill(1)).status, S.VIRTIO_BLK_S_OK);
      failOnce(engine, 'fdatasync', EIO);
      assert.is(d.request(S.VIRTIO_BLK_T_FLUSH, 0).status, S.VIRTIO_BLK_S_IOERR);
      // The kernel reported the lost writeback once and would now answer fdatasync with success.
      assert.is(d.request(S.VIRTIO_BLK_T_FLUSH, 0).status, S.VIRTIO_BLK_S_IOERR, 'the second flush');
      assert.is(d.request(S.VIRTIO_BLK_T_OUT, 8, [512], new Uint8Array(512).fill(2)).status, S.VIRTIO_BLK_S_OK, 'writes go on');
      assert.is(d.request(S.VIRTIO_BLK_T_FLUSH, 0).status, S.VIRTIO_BLK_S_IOERR, 'a flush after a new write');
      d.resetAndReactivate(1);
      assert.is(d.request(S.VIRTIO_BLK_T_FLUSH, 0).status, S.VIRTIO_BLK_S_OK, 'a new driver session starts clean');
    } finally {
      d.close();
    }
  });

  test(`${kind}: a failed flush fails the flushes of the disk's other data-plane threads too`, () => {
    // Two instances over the same shared disk state, as two threads of one disk are.
    const shared = BlkSharedState.allocate();
    const engines = [EngineDouble.create(kind, QUEUE_SIZE), EngineDouble.create(kind, QUEUE_SIZE)] as const;
    const [a, b] = engines.map((engine) => new InProcessBlk(engine, 128, QUEUE_SIZE, 0n, { shared }));
    try {
      failOnce(engines[0], 'fdatasync', EIO);
      assert.is(a!.request(S.VIRTIO_BLK_T_FLUSH, 0).status, S.VIRTIO_BLK_S_IOERR);
      assert.is(b!.request(S.VIRTIO_BLK_T_FLUSH, 0).status, S.VIRTIO_BLK_S_IOERR, 'the other thread\'s flush');
    } finally {
      a!.close();
      b!.close();
    }
  });

  test(`${kind}: write-zeroes is IOERR when fallocate fails with EIO; EOPNOTSUPP falls back to writing zeroes`, () => {
    const engine = EngineDouble.create(kind, QUEUE_SIZE);
    const d = new InProcessBlk(engine, 128, QUEUE_SIZE, featureBit(S.VIRTIO_BLK_F_WRITE_ZEROES));
    const segment = (sector: number, sectors: number): Uint8Array => {
      const bytes = new Uint8Array(S.BLK_DWZ_SEGMENT_SIZE);
      const v = new DataView(bytes.buffer);
      v.setBigUint64(0, BigInt(sector), true);
      v.setUint32(8, sectors, true);
      return bytes;
    };
    try {
      failOnce(engine, 'fallocate', EIO);
      assert.is(d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, [S.BLK_DWZ_SEGMENT_SIZE], segment(16, 8)).status, S.VIRTIO_BLK_S_IOERR);
      // Every fallocate mode refused as unsupported: the device writes the zeroes itself.
      engine.failWith = (op) => (op === 'fallocate' ? EOPNOTSUPP : undefined);
      assert.is(d.request(S.VIRTIO_BLK_T_WRITE_ZEROES, 0, [S.BLK_DWZ_SEGMENT_SIZE], segment(32, 8)).status, S.VIRTIO_BLK_S_OK);
      const image = readFileSync(d.file);
      assert.ok(image.subarray(32 * SECTOR, 40 * SECTOR).every((b) => b === 0), 'zeroed by writing');
      assert.equal(new Uint8Array(image.subarray(40 * SECTOR, 41 * SECTOR)), pattern(40 * SECTOR, SECTOR), 'and no further');
    } finally {
      d.close();
    }
  });
}

test('io-uring: 32 reads posted together are in flight together, and each gets its own sectors', () => {
  // Three descriptors a request: room for all 32 at once.
  const engine = EngineDouble.create('io-uring', 128);
  const d = new InProcessBlk(engine, 2048, 128);
  try {
    const posted = Array.from({ length: 32 }, (_, i) => d.post(S.VIRTIO_BLK_T_IN, i * 61, [4096]));
    d.run(32);
    posted.forEach((p, i) => {
      const answer = d.answer(p);
      assert.is(answer.status, S.VIRTIO_BLK_S_OK);
      assert.equal(answer.data, pattern(i * 61 * SECTOR, 4096), `request ${i}`);
    });
    // The device hands them to the kernel in groups as it parses them, never one at a time.
    assert.ok(engine.mostInFlight >= 8, `at most ${engine.mostInFlight} operations were in flight at once`);
  } finally {
    d.close();
  }
});

test.run();
