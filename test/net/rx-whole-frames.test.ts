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
import createDebug from 'debug';
import { memoryFromRegions } from '../../src/vmm/guest-ram.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, close, mmap, munmap, setNonBlocking, socketPair, writeFd } from '../../src/vmm/libc.js';
import { SplitQueue } from '../../src/virtio/queue.js';
import { ReceiveBuffers, Receiver } from '../../src/virtio/devices/net/rx.js';
import { NetStats } from '../../src/virtio/devices/net/stats.js';
import { NET_GOOD_PACKET_BUFFER, VIRTIO_NET_HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE } from '../../src/virtio/devices/net/spec.js';
import { MockSplitQueueDriver } from '../virtio/mock-driver.js';

const RAM = 8 * 2 ** 20;
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const QUEUE_SIZE = 256;
/** Small receive buffers, so most frames take several. */
const BUFFER = 512;
const BUFFER_AREA = 0x100000;
/** Frame sizes (virtio-net header not included): one buffer, several, and past the read window. */
const FRAMES = [60, 1000, 1514, 200, 3000, 1514, 9000, 64, 1400, 5000, 1514, 1514];

function frameBytes(i: number, size: number): Uint8Array {
  const bytes = new Uint8Array(VIRTIO_NET_HDR_SIZE + size);
  for (let j = VIRTIO_NET_HDR_SIZE; j < bytes.length; j++) bytes[j] = (i * 37 + j * 11) & 0xff;
  return bytes;
}

test('mergeable receive: used.idx only ever moves past whole frames, and every frame arrives intact', () => {
  const hostAddress = mmap(RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  const memory = memoryFromRegions([{ guestBase: 0, size: RAM, hostAddress }]);
  const [tap, peer] = socketPair(AF_UNIX, SOCK_DGRAM);
  setNonBlocking(tap);
  const driver = MockSplitQueueDriver.create(memory, 0x1000, QUEUE_SIZE);
  const buffers = new ReceiveBuffers();
  const addressOf = new Map<number, number>();
  for (let i = 0; i < QUEUE_SIZE; i++) {
    const address = BUFFER_AREA + i * BUFFER;
    addressOf.set(driver.addChain([{ address, length: BUFFER, writable: true }]), address);
  }

  // Every publish of used.idx is checked: the entries it covers must end on a frame boundary.
  let checked = driver.usedIndex;
  let publishes = 0;
  const violations: string[] = [];
  const checkPublished = (): void => {
    publishes++;
    const end = driver.usedIndex;
    let at = checked;
    while (at !== end) {
      const first = driver.usedElement(at);
      const count = memory.readU16(addressOf.get(first.id)! + VIRTIO_NET_HDR_NUM_BUFFERS);
      const available = (end - at) & 0xffff;
      if (count < 1 || count > available) {
        violations.push(`used.idx ${end} published ${available} of a frame's ${count} buffers`);
        return;
      }
      at = (at + count) & 0xffff;
    }
    checked = at;
  };
  const real = new SplitQueue(memory, driver.layout, { eventIdx: true, indirect: false });
  const queue = new Proxy(real, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if ((property === 'publishUsed' || property === 'addUsed') && typeof value === 'function') {
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          checkPublished();
          return result;
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const host = { watch: () => {}, unwatch: () => {}, failDevice: (reason: string) => violations.push(`device failed: ${reason}`), log: createDebug('kvm:test:rx') };
  const receiver = new Receiver(
    { memory, queue, queueIndex: 0, interrupt: { signalUsed: () => {}, signalConfigChange: () => {} }, host, tapFd: tap, stats: new NetStats(), log: host.log, mergeable: true, guestCsum: true },
    buffers,
    true,
  );
  try {
    FRAMES.forEach((size, i) => assert.is(writeFd(peer, frameBytes(i, size)), VIRTIO_NET_HDR_SIZE + size));
    receiver.receive();
    assert.equal(violations, []);
    assert.ok(publishes > 0);

    // Reassemble what the driver sees, frame by frame.
    const used = driver.takeUsed();
    const received: Uint8Array[] = [];
    for (let k = 0; k < used.length; ) {
      const count = memory.readU16(addressOf.get(used[k]!.id)! + VIRTIO_NET_HDR_NUM_BUFFERS);
      const parts = used.slice(k, k + count);
      const total = parts.reduce((sum, u) => sum + u.len, 0);
      const frame = new Uint8Array(total);
      let at = 0;
      for (const u of parts) {
        frame.set(memory.slice(addressOf.get(u.id)!, u.len), at);
        at += u.len;
      }
      received.push(frame);
      k += count;
    }
    assert.is(received.length, FRAMES.length, 'every frame delivered');
    received.forEach((frame, i) => {
      const sent = frameBytes(i, FRAMES[i]!);
      assert.is(frame.length, sent.length, `frame ${i} length`);
      assert.equal(frame.subarray(VIRTIO_NET_HDR_SIZE), sent.subarray(VIRTIO_NET_HDR_SIZE), `frame ${i} bytes`);
      assert.is(frame[VIRTIO_NET_HDR_NUM_BUFFERS]! | (frame[VIRTIO_NET_HDR_NUM_BUFFERS + 1]! << 8), Math.ceil(sent.length / BUFFER), `frame ${i} num_buffers`);
    });
  } finally {
    receiver.stop();
    close(tap);
    close(peer);
    munmap(hostAddress, RAM);
  }
});

test('a small ring: a frame waiting for buffers held by whole frames behind it lets them go first, and everything arrives', () => {
  // 64 buffers of one Ethernet frame each. 31 small frames grow the read batch to 32; then a
  // 64000-byte frame (42 buffers) and 31 small frames arrive in one batch: in order, the big one
  // would wait for buffers that only the frames queued behind it hold.
  const size = 64;
  const hostAddress = mmap(RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  const memory = memoryFromRegions([{ guestBase: 0, size: RAM, hostAddress }]);
  const [tap, peer] = socketPair(AF_UNIX, SOCK_DGRAM);
  setNonBlocking(tap);
  const driver = MockSplitQueueDriver.create(memory, 0x1000, size);
  const addressOf = new Map<number, number>();
  for (let i = 0; i < size; i++) {
    const address = BUFFER_AREA + i * 4096;
    addressOf.set(driver.addChain([{ address, length: NET_GOOD_PACKET_BUFFER, writable: true }]), address);
  }
  const stats = new NetStats();
  // An eager guest on another vCPU: every buffer is taken as soon as it is published and posted again.
  /** What the guest took from each used buffer, in used-ring order (copied before it is posted again). */
  const taken: Uint8Array[] = [];
  const recycle = (): void => {
    for (const u of driver.takeUsed()) {
      taken.push(memory.slice(addressOf.get(u.id)!, u.len).slice());
      driver.offer(u.id);
    }
  };
  const real = new SplitQueue(memory, driver.layout, { eventIdx: true, indirect: false });
  const queue = new Proxy(real, {
    get(target, property, receiver) {
      const value = Reflect.get(target, property, receiver) as unknown;
      if ((property === 'publishUsed' || property === 'addUsed') && typeof value === 'function') {
        return (...args: unknown[]) => {
          const result = (value as (...a: unknown[]) => unknown).apply(target, args);
          recycle();
          return result;
        };
      }
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
  const log = createDebug('kvm:test:rx');
  const host = { watch: () => {}, unwatch: () => {}, failDevice: (reason: string) => assert.unreachable(reason), log };
  const receiver = new Receiver(
    { memory, queue, queueIndex: 0, interrupt: { signalUsed: () => {}, signalConfigChange: () => {} }, host, tapFd: tap, stats, log, mergeable: true, guestCsum: true },
    new ReceiveBuffers(),
    true,
  );
  const sizes = [...Array<number>(31).fill(60), 64000, ...Array<number>(31).fill(60)];
  try {
    sizes.forEach((bytes, i) => assert.is(writeFd(peer, frameBytes(i, bytes)), VIRTIO_NET_HDR_SIZE + bytes));
    // Each call is what a kick from the guest would start.
    for (let kick = 0; kick < 5; kick++) receiver.receive();
    const received: Uint8Array[] = [];
    for (let k = 0; k < taken.length; ) {
      const first = taken[k]!;
      const count = first[VIRTIO_NET_HDR_NUM_BUFFERS]! | (first[VIRTIO_NET_HDR_NUM_BUFFERS + 1]! << 8);
      const parts = taken.slice(k, k + count);
      assert.is(parts.length, count, 'a frame published whole');
      const frame = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
      let at = 0;
      for (const p of parts) {
        frame.set(p, at);
        at += p.length;
      }
      received.push(frame);
      k += count;
    }
    assert.is(received.length, sizes.length, 'every frame delivered');
    // Each sent frame arrives exactly once, intact (the big one after the small ones behind it).
    const key = (frame: Uint8Array): string => Buffer.from(frame.subarray(VIRTIO_NET_HDR_SIZE)).toString('base64');
    const sent = new Map(sizes.map((bytes, i) => [key(frameBytes(i, bytes)), i]));
    const seen = new Set(received.map((frame) => sent.get(key(frame))));
    assert.is(seen.size, sizes.length);
    assert.not.ok(seen.has(undefined), 'no frame that was not sent');
    assert.ok(stats.get('rxReordered') > 0, 'the small frames went ahead of the big one');
  } finally {
    receiver.stop();
    close(tap);
    close(peer);
    munmap(hostAddress, RAM);
  }
});

test.run();
