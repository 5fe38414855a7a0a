/**
 * `,direct` bounce buffers are bounded per disk: however many misaligned requests a guest keeps in
 * flight, the disk never holds more than its budget of them; the rest go through the page cache
 * and are served just the same.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../../../../src/virtio/devices/blk/spec.js';
import { BLK_BOUNCE_BUDGET_BYTES, BlkSharedState } from '../../../../src/virtio/devices/blk/disk-shared.js';
import { pattern } from './helpers.js';
import { EngineDouble, InProcessBlk } from './in-process.js';

const MiB = 1 << 20;
const QUEUE_SIZE = 256;
/** Four descriptors each (header, data in two buffers, status): 60 fit a ring of 256. */
const REQUESTS = 60;

test('misaligned O_DIRECT reads in flight together never hold more bounce buffers than the disk budget', () => {
  const engine = EngineDouble.create('io-uring', QUEUE_SIZE);
  const shared = BlkSharedState.allocate();
  const d = new InProcessBlk(engine, 2 * 2048, QUEUE_SIZE, 0n, { direct: true, directMemoryAlign: 4096, directOffsetAlign: 4096, shared });
  try {
    // 1 MiB each in a 512-byte buffer and the rest: O_DIRECT cannot take them as they are.
    const posted = Array.from({ length: REQUESTS }, () => d.post(S.VIRTIO_BLK_T_IN, 0, [512, MiB - 512]));
    engine.stalled = true;
    d.device.queueNotified(0);
    assert.is(engine.heldCount, REQUESTS, 'every request is in flight');
    assert.ok(engine.heldOutsideRam > 0, 'some requests bounce');
    assert.ok(engine.heldOutsideRam <= BLK_BOUNCE_BUDGET_BYTES, `${engine.heldOutsideRam / MiB} MiB of bounce buffers in flight`);
    assert.is(new BlkSharedState(shared).bounceBytes, engine.heldOutsideRam);
    engine.release();
    d.run(REQUESTS);
    posted.forEach((p, i) => {
      const answer = d.answer(p);
      assert.is(answer.status, S.VIRTIO_BLK_S_OK, `request ${i}`);
      assert.ok(Buffer.from(answer.data).equals(Buffer.from(pattern(0, MiB))), `request ${i}: data`);
    });
    assert.is(new BlkSharedState(shared).bounceBytes, 0, 'the budget is whole again');
  } finally {
    d.close();
  }
});

test('the budget is shared: what one thread holds, another cannot take', () => {
  const state = new BlkSharedState();
  assert.ok(state.reserveBounce(12 * MiB, 16 * MiB));
  assert.not.ok(state.reserveBounce(8 * MiB, 16 * MiB));
  assert.is(state.bounceBytes, 12 * MiB, 'a refused reservation takes nothing');
  assert.ok(new BlkSharedState(state.shared).reserveBounce(4 * MiB, 16 * MiB));
  state.releaseBounce(16 * MiB);
  assert.is(state.bounceBytes, 0);
});

test.run();
