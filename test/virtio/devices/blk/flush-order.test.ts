/** FlushOrder: a FLUSH waits for every write submitted before it, and only for those. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { FlushOrder } from '../../../../src/virtio/devices/blk/flush-order.js';

test('a flush with no write in flight may start at once', () => {
  const order = new FlushOrder();
  assert.ok(order.flushArrived(1));
  const g = order.writeStarted();
  assert.equal(order.writeFinished(g), []);
  assert.ok(order.flushArrived(2));
});

test('a flush waits for the writes before it, whatever order they finish in', () => {
  const order = new FlushOrder();
  const a = order.writeStarted();
  const b = order.writeStarted();
  assert.not.ok(order.flushArrived(7));
  assert.is(order.flushesWaiting, 1);
  assert.equal(order.writeFinished(b), []);
  assert.equal(order.writeFinished(a), [7]);
  assert.is(order.flushesWaiting, 0);
});

test('writes after a flush do not hold it back', () => {
  const order = new FlushOrder();
  const before = order.writeStarted();
  assert.not.ok(order.flushArrived(1));
  const after = order.writeStarted();
  assert.equal(order.writeFinished(before), [1], 'released although a later write is still in flight');
  assert.is(order.writesInFlight, 1);
  assert.ok(!order.flushArrived(2), 'the next flush waits for that later write');
  assert.equal(order.writeFinished(after), [2]);
});

test('flushes are released oldest first, each once its own writes are done', () => {
  const order = new FlushOrder();
  const w1 = order.writeStarted();
  assert.not.ok(order.flushArrived(10));
  const w2 = order.writeStarted();
  assert.not.ok(order.flushArrived(11));
  assert.not.ok(order.flushArrived(12), 'a flush behind a waiting flush waits too');
  assert.equal(order.writeFinished(w2), [], 'flush 10 still waits for w1');
  assert.equal(order.writeFinished(w1), [10, 11, 12]);
});

test('clear forgets everything', () => {
  const order = new FlushOrder();
  order.writeStarted();
  order.flushArrived(3);
  order.clear();
  assert.is(order.writesInFlight, 0);
  assert.is(order.flushesWaiting, 0);
  assert.ok(order.flushArrived(4));
});

test.run();
