import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { EXIT_HOST_ERROR } from '../../src/base/exit-status.js';
import { errorToExit } from '../../src/base/error-exit.js';
import { eventfd } from '../../src/sys/eventfd.js';
import { close, ftruncate, pipe, readFd, writeFd } from '../../src/sys/fd.js';
import { bytesReadable } from '../../src/sys/ioctl.js';
import { mapShared, memfdCreate, munmap, view } from '../../src/sys/memory.js';
import { VhostUserError } from '../../src/vhost-user/error.js';
import { VhostUserFrontend } from '../../src/vhost-user/frontend.js';
import {
  F_PROTOCOL_FEATURES,
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  HEADER_SIZE,
  ProtocolFeature,
  Request,
  VERSION,
  VRING_NOFD_MASK,
  bit,
  decodeMemoryTable,
  decodeU64,
  decodeVringAddress,
  decodeVringState,
  encodeConfig,
  encodeVringState,
} from '../../src/vhost-user/protocol.js';
import { FakeBackend } from './fake-backend.js';

const TIMEOUT_MS = 200;
const VIRTIO_F_VERSION_1 = 32;

function setup(): { backend: FakeBackend; frontend: VhostUserFrontend } {
  const backend = new FakeBackend();
  return { backend, frontend: new VhostUserFrontend(backend.frontendFd, { timeoutMs: TIMEOUT_MS }) };
}

function caught(call: () => unknown): VhostUserError {
  try {
    call();
  } catch (error) {
    if (error instanceof VhostUserError) return error;
    throw error;
  }
  throw new Error('expected a VhostUserError');
}

function assertOneLine(error: VhostUserError, pattern: RegExp, kind: string): void {
  assert.is(error.kind, kind);
  assert.match(error.message, pattern);
  assert.not.match(error.message, /\n/);
  assert.is(error.status, EXIT_HOST_ERROR);
  assert.is(errorToExit(error).message, error.message);
}

test('a full setup: features, protocol features with REPLY_ACK, owner, memfd mem table, every vring message, stop', () => {
  const { backend, frontend } = setup();
  const offered = bit(VIRTIO_F_VERSION_1) | bit(F_PROTOCOL_FEATURES) | 0x5n;
  const protocol = bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG);

  backend.replyU64(Request.GET_FEATURES, offered);
  assert.is(frontend.getFeatures(), offered);
  let r = backend.next();
  assert.equal([r.request, r.flags, r.size], [Request.GET_FEATURES, VERSION, 0]);

  backend.replyU64(Request.GET_PROTOCOL_FEATURES, protocol | bit(ProtocolFeature.STATUS));
  assert.is(frontend.getProtocolFeatures(), protocol | bit(ProtocolFeature.STATUS));
  assert.is(backend.next().request, Request.GET_PROTOCOL_FEATURES);

  frontend.setProtocolFeatures(protocol); // no ack asked for: REPLY_ACK applies from the next request
  r = backend.next();
  assert.equal([r.request, r.flags, decodeU64(r.payload)], [Request.SET_PROTOCOL_FEATURES, VERSION, protocol]);
  assert.ok(frontend.hasProtocolFeature(ProtocolFeature.REPLY_ACK));

  const ack = (request: number): void => backend.replyU64(request, 0n);
  ack(Request.SET_FEATURES);
  frontend.setFeatures(bit(VIRTIO_F_VERSION_1) | bit(F_PROTOCOL_FEATURES));
  r = backend.next();
  assert.equal([r.request, r.flags], [Request.SET_FEATURES, VERSION | FLAG_NEED_REPLY]);
  assert.is(decodeU64(r.payload), bit(VIRTIO_F_VERSION_1) | bit(F_PROTOCOL_FEATURES));

  ack(Request.SET_OWNER);
  frontend.setOwner();
  r = backend.next();
  assert.equal([r.request, r.flags, r.size], [Request.SET_OWNER, VERSION | FLAG_NEED_REPLY, 0]);

  backend.replyU64(Request.GET_QUEUE_NUM, 2n);
  assert.is(frontend.getQueueNum(), 2);
  backend.next();

  backend.reply(Request.GET_CONFIG, encodeConfig({ offset: 0, flags: 0, data: Uint8Array.of(1, 2, 3, 4) }));
  assert.equal([...frontend.getConfig(0, 4)], [1, 2, 3, 4]);
  backend.next();

  // Guest RAM in a memfd: the back-end maps the descriptor it receives and sees the front-end's bytes.
  const RAM = 2 * 1024 * 1024;
  const memfd = memfdCreate('guest-ram');
  ftruncate(memfd, RAM);
  const ram = mapShared(memfd, RAM);
  new TextEncoder().encodeInto('hello from the guest', new Uint8Array(view(ram, RAM), 0x1000));
  ack(Request.SET_MEM_TABLE);
  frontend.setMemTable([{ guestPhysicalAddress: 0n, size: BigInt(RAM), userAddress: BigInt(ram), mmapOffset: 0n, fd: memfd }]);
  r = backend.next();
  assert.is(r.request, Request.SET_MEM_TABLE);
  assert.is(r.size, 8 + 8 * 32);
  assert.is(r.fds.length, 1);
  const [region] = decodeMemoryTable(r.payload);
  assert.equal(region, { guestPhysicalAddress: 0n, size: BigInt(RAM), userAddress: BigInt(ram), mmapOffset: 0n });
  const backendView = mapShared(r.fds[0]!, RAM, Number(region!.mmapOffset));
  assert.is(new TextDecoder().decode(new Uint8Array(view(backendView, RAM), 0x1000, 20)), 'hello from the guest');
  munmap(backendView, RAM);
  close(r.fds[0]!);

  ack(Request.SET_VRING_NUM);
  frontend.setVringNum(1, 256);
  assert.equal(decodeVringState(backend.next().payload), { index: 1, num: 256 });

  const rings = { index: 1, flags: 0, descriptor: BigInt(ram) + 0x10000n, used: BigInt(ram) + 0x12000n, available: BigInt(ram) + 0x11000n, log: 0n };
  ack(Request.SET_VRING_ADDR);
  frontend.setVringAddr(rings);
  r = backend.next();
  assert.is(r.size, 40);
  assert.equal(decodeVringAddress(r.payload), rings);

  ack(Request.SET_VRING_BASE);
  frontend.setVringBase(1, 7);
  assert.equal(decodeVringState(backend.next().payload), { index: 1, num: 7 });

  const kick = eventfd();
  const call = eventfd();
  ack(Request.SET_VRING_KICK);
  frontend.setVringKick(1, kick);
  r = backend.next();
  assert.equal([r.request, decodeU64(r.payload), r.fds.length], [Request.SET_VRING_KICK, 1n, 1]);
  // The passed kick eventfd is the same counter: a write on the back-end's copy is read on ours.
  writeFd(r.fds[0]!, new Uint8Array(new BigUint64Array([3n]).buffer));
  const counter = new Uint8Array(8);
  assert.is(readFd(kick, counter), 8);
  assert.is(new BigUint64Array(counter.buffer)[0], 3n);
  close(r.fds[0]!);

  ack(Request.SET_VRING_CALL);
  frontend.setVringCall(1, call);
  r = backend.next();
  assert.equal([r.request, decodeU64(r.payload), r.fds.length], [Request.SET_VRING_CALL, 1n, 1]);
  close(r.fds[0]!);

  ack(Request.SET_VRING_CALL);
  frontend.setVringCall(0, undefined);
  r = backend.next();
  assert.equal([decodeU64(r.payload), r.fds.length], [BigInt(VRING_NOFD_MASK), 0]);

  ack(Request.SET_VRING_ENABLE);
  frontend.setVringEnable(1, true);
  assert.equal(decodeVringState(backend.next().payload), { index: 1, num: 1 });

  backend.reply(Request.GET_VRING_BASE, encodeVringState({ index: 1, num: 42 }));
  assert.is(frontend.getVringBase(1), 42);
  r = backend.next();
  assert.equal([r.request, r.flags], [Request.GET_VRING_BASE, VERSION]); // has its own reply: no NEED_REPLY

  ack(Request.RESET_OWNER);
  frontend.reset(); // RESET_DEVICE not negotiated
  assert.is(backend.next().request, Request.RESET_OWNER);
  assert.ok(backend.idle());

  frontend.close();
  backend.close();
  munmap(ram, RAM);
  for (const fd of [memfd, kick, call]) close(fd);
});

test('without REPLY_ACK nothing waits for an answer; reset uses RESET_DEVICE when negotiated', () => {
  const { backend, frontend } = setup();
  backend.replyU64(Request.GET_FEATURES, bit(F_PROTOCOL_FEATURES));
  frontend.getFeatures();
  backend.replyU64(Request.GET_PROTOCOL_FEATURES, bit(ProtocolFeature.RESET_DEVICE));
  frontend.getProtocolFeatures();
  frontend.setProtocolFeatures(bit(ProtocolFeature.RESET_DEVICE));
  frontend.setOwner();
  frontend.reset();
  assert.equal(
    [backend.next(), backend.next(), backend.next(), backend.next(), backend.next()].map((m) => [m.request, m.flags]),
    [
      [Request.GET_FEATURES, VERSION],
      [Request.GET_PROTOCOL_FEATURES, VERSION],
      [Request.SET_PROTOCOL_FEATURES, VERSION],
      [Request.SET_OWNER, VERSION],
      [Request.RESET_DEVICE, VERSION],
    ],
  );
  frontend.close();
  backend.close();
});

test('requests the negotiation does not allow, or with bad arguments, fail before anything is sent', () => {
  const { backend, frontend } = setup();
  assertOneLine(caught(() => frontend.setFeatures(1n)), /SET_FEATURES: VHOST_USER_GET_FEATURES must come first/, 'invalid');
  backend.replyU64(Request.GET_FEATURES, 0x3n);
  frontend.getFeatures();
  backend.next();
  assertOneLine(caught(() => frontend.setFeatures(0x4n)), /beyond those offered/, 'invalid');
  assertOneLine(caught(() => frontend.getProtocolFeatures()), /does not offer VHOST_USER_F_PROTOCOL_FEATURES/, 'unsupported');
  assertOneLine(caught(() => frontend.getConfig(0, 4)), /PROTOCOL_F_CONFIG is not negotiated/, 'unsupported');
  assertOneLine(caught(() => frontend.setVringEnable(0, true)), /F_PROTOCOL_FEATURES is not negotiated/, 'unsupported');
  assertOneLine(caught(() => frontend.setVringNum(0, 100)), /queue size 100 is not a power of two/, 'invalid');
  assertOneLine(caught(() => frontend.setVringNum(256, 64)), /queue index 256/, 'invalid');
  assertOneLine(caught(() => frontend.setMemTable([])), /0 memory regions/, 'invalid');
  assertOneLine(caught(() => frontend.setVringKick(0, -1)), /descriptor -1 is not valid/, 'invalid');
  const ring = { index: 0, flags: 0, descriptor: 0x1000n, available: 0x2000n, used: 0x3000n, log: 0n };
  assertOneLine(caught(() => frontend.setVringAddr(ring)), /SET_VRING_NUM must come first for queue 0/, 'invalid');
  frontend.setVringNum(0, 64);
  backend.next();
  assertOneLine(caught(() => frontend.setVringAddr(ring)), /descriptor table at 0x1000 \(1024 bytes\) is in no region of the memory table/, 'invalid');
  const memfd = memfdCreate('ram');
  frontend.setMemTable([{ guestPhysicalAddress: 0n, size: 0x3100n, userAddress: 0n, mmapOffset: 0n, fd: memfd }]);
  backend.next().fds.forEach(close);
  close(memfd);
  // The used ring (6 + 8 * 64 bytes from 0x3000) runs past the region's end at 0x3100.
  assertOneLine(caught(() => frontend.setVringAddr(ring)), /used ring at 0x3000 \(518 bytes\) is in no region/, 'invalid');
  frontend.setVringAddr({ ...ring, used: 0x2800n });
  backend.next();
  assert.ok(backend.idle());
  // Refusals of bad arguments leave the connection usable.
  frontend.setOwner();
  assert.is(backend.next().request, Request.SET_OWNER);
  frontend.close();
  backend.close();
});

/** A front-end that negotiated nothing, waiting for GET_FEATURES' reply after `queue` ran. */
function malformed(queue: (backend: FakeBackend) => void, end?: 'close' | 'end-writes'): { error: VhostUserError; backend: FakeBackend; frontend: VhostUserFrontend } {
  const { backend, frontend } = setup();
  queue(backend);
  if (end === 'close') backend.close();
  if (end === 'end-writes') backend.endWrites();
  const started = Date.now();
  const error = caught(() => frontend.getFeatures());
  assert.ok(Date.now() - started < TIMEOUT_MS + 500, 'the call is bounded by its timeout');
  // The connection is poisoned: the next call fails at once, naming the first error.
  const again = caught(() => frontend.setOwner());
  assert.is(again.kind, 'connection');
  assert.match(again.message, /SET_OWNER: connection unusable \(VHOST_USER_GET_FEATURES: /);
  return { error, backend, frontend };
}

function finish(backend: FakeBackend, frontend: VhostUserFrontend): void {
  frontend.close();
  backend.close();
}

test('a reply to another request is refused', () => {
  const { error, backend, frontend } = malformed((b) => b.replyU64(Request.GET_PROTOCOL_FEATURES, 1n));
  assertOneLine(error, /^vhost-user: VHOST_USER_GET_FEATURES: reply is for VHOST_USER_GET_PROTOCOL_FEATURES$/, 'protocol');
  finish(backend, frontend);
});

test('a reply without the REPLY flag, or of another version, is refused', () => {
  let m = malformed((b) => b.reply(Request.GET_FEATURES, new Uint8Array(8), { flags: VERSION }));
  assertOneLine(m.error, /GET_FEATURES: reply lacks the REPLY flag \(flags 0x1\)/, 'protocol');
  finish(m.backend, m.frontend);
  m = malformed((b) => b.reply(Request.GET_FEATURES, new Uint8Array(8), { flags: 0x2 | FLAG_REPLY }));
  assertOneLine(m.error, /reply has protocol version 2, not 1/, 'protocol');
  finish(m.backend, m.frontend);
});

test('an oversized reply is refused from its header, without reading its payload', () => {
  const { error, backend, frontend } = malformed((b) => b.reply(Request.GET_FEATURES, new Uint8Array(64), { size: 0x7fff_ffff }));
  assertOneLine(error, /GET_FEATURES: reply carries 2147483647 payload bytes, expected 8/, 'protocol');
  assert.is(bytesReadable(backend.frontendFd), 64, 'only the header was read');
  finish(backend, frontend);
});

test('a short size in the header is refused too', () => {
  const { error, backend, frontend } = malformed((b) => b.reply(Request.GET_FEATURES, new Uint8Array(4)));
  assertOneLine(error, /reply carries 4 payload bytes, expected 8/, 'protocol');
  finish(backend, frontend);
});

test('a truncated payload, then the back-end closing, names how far it got', () => {
  const { error, backend, frontend } = malformed((b) => b.reply(Request.GET_FEATURES, new Uint8Array(4), { size: 8 }), 'end-writes');
  assertOneLine(error, /GET_FEATURES: back-end closed the connection after 4 of 8 bytes of the reply payload/, 'connection');
  finish(backend, frontend);
});

test('a truncated payload times out, bounded', () => {
  const { error, backend, frontend } = malformed((b) => b.reply(Request.GET_FEATURES, new Uint8Array(4), { size: 8 }));
  assertOneLine(error, /GET_FEATURES: no answer within 200 ms waiting for a reply payload \(4 of 8 bytes\)/, 'timeout');
  finish(backend, frontend);
});

test('a truncated header, then the back-end closing, is one line naming how far it got', () => {
  const { error, backend, frontend } = malformed((b) => b.raw(Uint8Array.of(Request.GET_FEATURES, 0, 0, 0, 5)), 'end-writes');
  assertOneLine(error, /GET_FEATURES: back-end closed the connection after 5 of 12 bytes of the reply header/, 'connection');
  finish(backend, frontend);
});

test('no reply at all times out', () => {
  const { error, backend, frontend } = malformed(() => {});
  assertOneLine(error, /no answer within 200 ms waiting for a reply header \(0 of 12 bytes\)/, 'timeout');
  finish(backend, frontend);
});

test('descriptors on a reply are refused and closed', () => {
  const [readEnd, writeEnd] = pipe();
  const { error, backend, frontend } = malformed((b) => b.reply(Request.GET_FEATURES, new Uint8Array(8), { fds: [writeEnd] }));
  assertOneLine(error, /GET_FEATURES: reply header carried 1 unexpected descriptor\(s\)/, 'protocol');
  close(writeEnd);
  // Every write end is closed (ours and the one the front-end received): the read end sees EOF.
  assert.is(readFd(readEnd, new Uint8Array(1)), 0);
  close(readEnd);
  finish(backend, frontend);
});

test('a closed back-end fails the send, without SIGPIPE', () => {
  const { error, backend, frontend } = malformed(() => {}, 'close');
  assertOneLine(error, /^vhost-user: VHOST_USER_GET_FEATURES: back-end closed the connection$/, 'connection');
  finish(backend, frontend);
});

test('a negative acknowledgement fails the call but keeps the connection', () => {
  const { backend, frontend } = setup();
  backend.replyU64(Request.GET_FEATURES, bit(F_PROTOCOL_FEATURES));
  frontend.getFeatures();
  backend.replyU64(Request.GET_PROTOCOL_FEATURES, bit(ProtocolFeature.REPLY_ACK));
  frontend.getProtocolFeatures();
  frontend.setProtocolFeatures(bit(ProtocolFeature.REPLY_ACK));
  backend.replyU64(Request.SET_OWNER, 1n);
  assertOneLine(caught(() => frontend.setOwner()), /^vhost-user: VHOST_USER_SET_OWNER: back-end refused it \(status 1\)$/, 'nack');
  backend.replyU64(Request.SET_OWNER, 0n);
  frontend.setOwner();
  finish(backend, frontend);
});

test('a GET_VRING_BASE reply for another queue is refused', () => {
  const { backend, frontend } = setup();
  backend.reply(Request.GET_VRING_BASE, encodeVringState({ index: 3, num: 1 }));
  assertOneLine(caught(() => frontend.getVringBase(0)), /GET_VRING_BASE: reply is for queue 3, not 0/, 'protocol');
  finish(backend, frontend);
});

test('connecting to a missing socket is one line naming the path', () => {
  assertOneLine(caught(() => VhostUserFrontend.connect('/nonexistent/vhost.sock')), /^vhost-user: cannot connect to \/nonexistent\/vhost.sock: ENOENT$/, 'connection');
});

test('HEADER_SIZE matches the spec', () => {
  assert.is(HEADER_SIZE, 12);
});

test.run();
