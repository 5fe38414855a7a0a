/**
 * A read or write the kernel completes only in part (preadv/pwritev and io_uring may return fewer
 * bytes than asked) is continued from where it stopped, over the rest of the guest's buffers,
 * until the request is whole. The device runs in-process on an engine that moves at most a few
 * hundred bytes per operation, so every request is resumed many times.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import * as S from '../../../../src/virtio/devices/blk/spec.js';
import { pattern, SECTOR } from './helpers.js';
import { EngineDouble, InProcessBlk } from './in-process.js';

const QUEUE_SIZE = 16;
/** The most bytes the engine moves per operation: not a multiple of anything the guest uses. */
const STEP = 700;

for (const kind of ['sync', 'io-uring'] as const) {
  test(`${kind}: reads and writes moved a few hundred bytes at a time come out whole, over scattered buffers`, () => {
    const engine = EngineDouble.create(kind, QUEUE_SIZE);
    engine.step = STEP;
    const d = new InProcessBlk(engine, 256, QUEUE_SIZE);
    try {
      const before = engine.operations;
      const read = d.request(S.VIRTIO_BLK_T_IN, 3, [4096, 512, 1536, 2048]);
      assert.is(read.status, S.VIRTIO_BLK_S_OK);
      assert.equal(read.data, pattern(3 * SECTOR, 8192));
      assert.ok(engine.operations - before >= Math.ceil(8192 / STEP), `resumed ${engine.operations - before} times`);

      const out = new Uint8Array(12 * SECTOR).map((_, i) => (i * 31 + 7) & 0xff);
      assert.is(d.request(S.VIRTIO_BLK_T_OUT, 100, [1024, 3072, 512, 1536], out).status, S.VIRTIO_BLK_S_OK);
      const image = readFileSync(d.file);
      assert.equal(new Uint8Array(image.subarray(100 * SECTOR, 112 * SECTOR)), out);
      assert.equal(new Uint8Array(image.subarray(99 * SECTOR, 100 * SECTOR)), pattern(99 * SECTOR, SECTOR), 'the sector before is untouched');
      assert.equal(new Uint8Array(image.subarray(112 * SECTOR, 113 * SECTOR)), pattern(112 * SECTOR, SECTOR), 'the sector after is untouched');

      // A request resumed more times than one pass of the device's loop has rounds: still whole.
      const long = d.request(S.VIRTIO_BLK_T_IN, 0, [32768]);
      assert.is(long.status, S.VIRTIO_BLK_S_OK);
      assert.equal(long.data, pattern(0, 32768));
      assert.equal(d.failures, []);
    } finally {
      d.close();
    }
  });
}

test.run();
