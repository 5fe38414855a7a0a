/**
 * When virtio-blk interrupts the driver (virtio 1.2 §2.7.7): run in process on both I/O engines,
 * with a RecordingInterrupt, the driver's ring saying whether it wants used-buffer notifications
 * (VIRTQ_AVAIL_F_NO_INTERRUPT without EVENT_IDX, used_event with it).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../../../../src/virtio/devices/blk/spec.js';
import { featureBit, VIRTIO_F_RING_EVENT_IDX } from '../../../../src/virtio/virtio-constants.js';
import { EngineDouble, InProcessBlk, type EngineKind } from './in-process.js';
import { SECTOR } from './helpers.js';

const QUEUE_SIZE = 16;

/** Posts `count` one-sector reads in one kick and waits until they are all used, each answered OK. */
function reads(d: InProcessBlk, count: number): void {
  const posted = Array.from({ length: count }, (_, i) => d.post(S.VIRTIO_BLK_T_IN, i, [SECTOR]));
  d.run(count);
  for (const p of posted) assert.is(d.answer(p).status, S.VIRTIO_BLK_S_OK);
}

function withBlk(kind: EngineKind, features: bigint, body: (d: InProcessBlk) => void): void {
  const d = new InProcessBlk(EngineDouble.create(kind, QUEUE_SIZE), 64, QUEUE_SIZE, features);
  try {
    body(d);
    assert.is(d.interrupt.configChanges, 0, 'no configuration change');
    assert.equal(d.failures, []);
  } finally {
    d.close();
  }
}

for (const kind of ['sync', 'io-uring'] as const) {
  test(`${kind}: without EVENT_IDX, no interrupt while the driver sets NO_INTERRUPT; one again once it clears it`, () => {
    withBlk(kind, 0n, (d) => {
      reads(d, 1);
      assert.equal(d.interrupt.take(), [{ kind: 'used', queue: 0 }], 'a completed request interrupts');
      d.driver.setNoInterrupt(true);
      reads(d, 4);
      reads(d, 1);
      assert.equal(d.interrupt.take(), [], 'NO_INTERRUPT: five requests completed, none signalled');
      d.driver.setNoInterrupt(false);
      reads(d, 1);
      assert.equal(d.interrupt.take(), [{ kind: 'used', queue: 0 }], 'cleared: the next completion interrupts');
    });
  });

  test(`${kind}: with EVENT_IDX, no interrupt until used.idx crosses used_event, then exactly one`, () => {
    withBlk(kind, featureBit(VIRTIO_F_RING_EVENT_IDX), (d) => {
      d.driver.setUsedEvent(1000); // far ahead
      for (let i = 0; i < 3; i++) reads(d, 2);
      assert.is(d.driver.usedIndex, 6);
      assert.equal(d.interrupt.take(), [], 'used_event far ahead: six requests completed, none signalled');
      d.driver.setUsedEvent(7); // "interrupt me once used entry 7 is written"
      reads(d, 1); // entry 6
      assert.equal(d.interrupt.take(), [], 'used_event not reached yet');
      reads(d, 2); // entries 7 and 8: crosses it
      assert.equal(d.interrupt.take(), [{ kind: 'used', queue: 0 }], 'crossing used_event interrupts once');
      reads(d, 2); // entries 9 and 10: used_event is behind
      assert.equal(d.interrupt.take(), [], 'used_event passed: no more');
      // NO_INTERRUPT means nothing with EVENT_IDX (§2.7.7): used_event alone decides.
      d.driver.setNoInterrupt(true);
      d.driver.setUsedEvent(d.driver.usedIndex);
      reads(d, 1);
      assert.equal(d.interrupt.take(), [{ kind: 'used', queue: 0 }], 'the flag is ignored under EVENT_IDX');
    });
  });
}

test.run();
