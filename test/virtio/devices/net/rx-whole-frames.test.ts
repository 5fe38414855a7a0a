/**
 * With mergeable receive buffers a frame spans several chains, and the driver learns how many
 * from num_buffers in the first one. Linux's virtio_net takes all of them as soon as it sees the
 * first: if used.idx showed only part of a frame, it would drop it as "buffers missing". So every
 * time the device publishes used.idx, the entries up to it must be whole frames — checked here at
 * each publish, for frames that fit a read window and frames that spill past it.
 *
 * The Receiver runs in-process; a datagram socket pair stands in for the TAP (one frame per read,
 * like a TAP), so the frames are exactly what the test sent.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NET_GOOD_PACKET_BUFFER, VIRTIO_NET_HDR_SIZE } from '../../../../src/virtio/devices/net/spec.js';
import { RxBed, frameBytes, numBuffers } from './rx-bed.js';

test('mergeable receive: used.idx only ever moves past whole frames, and every frame arrives intact and in order', () => {
  // One buffer, several, and past the read window (into the overflow), into 512-byte buffers.
  const sizes = [60, 1000, 1514, 200, 3000, 1514, 9000, 64, 1400, 5000, 1514, 1514];
  const bed = new RxBed(256, 512, false);
  try {
    sizes.forEach((size, i) => bed.send(i, size));
    bed.receiver.receive();
    assert.equal(bed.violations, []);
    assert.ok(bed.publishes > 0);
    const frames = bed.frames();
    assert.is(frames.length, sizes.length, 'every frame delivered');
    frames.forEach((frame, i) => {
      const sent = frameBytes(i, sizes[i]!);
      assert.is(frame.length, sent.length, `frame ${i} length`);
      assert.equal(frame.subarray(VIRTIO_NET_HDR_SIZE), sent.subarray(VIRTIO_NET_HDR_SIZE), `frame ${i} bytes`);
      assert.is(numBuffers(frame), Math.ceil(sent.length / 512), `frame ${i} num_buffers`);
    });
  } finally {
    bed.close();
  }
});

test('a small ring: a frame waiting for buffers held by whole frames behind it lets them go first, and everything arrives', () => {
  // 64 buffers of one Ethernet frame each. 31 small frames grow the read batch to 32; then a
  // 64000-byte frame (42 buffers) and 31 small frames arrive in one batch: in order, the big one
  // would wait for buffers that only the frames queued behind it hold. The guest is eager: it
  // takes and posts again every buffer as soon as it is published.
  const sizes = [...Array<number>(31).fill(60), 64000, ...Array<number>(31).fill(60)];
  const bed = new RxBed(64, NET_GOOD_PACKET_BUFFER, true);
  try {
    sizes.forEach((size, i) => bed.send(i, size));
    // Each call is what a kick from the guest would start.
    for (let kick = 0; kick < 5; kick++) bed.receiver.receive();
    assert.equal(bed.violations, []);
    const frames = bed.frames();
    assert.is(frames.length, sizes.length, 'every frame delivered');
    // Each sent frame arrives exactly once, intact (the big one after the small ones behind it).
    const key = (frame: Uint8Array): string => Buffer.from(frame.subarray(VIRTIO_NET_HDR_SIZE)).toString('base64');
    const sent = new Map(sizes.map((size, i) => [key(frameBytes(i, size)), i]));
    const seen = new Set(frames.map((frame) => sent.get(key(frame))));
    assert.is(seen.size, sizes.length);
    assert.not.ok(seen.has(undefined), 'no frame that was not sent');
    assert.ok(bed.stats.get('rxReordered') > 0, 'the small frames went ahead of the big one');
  } finally {
    bed.close();
  }
});

test.run();
