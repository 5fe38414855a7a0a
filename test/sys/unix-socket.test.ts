import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { HostCallError } from '../../src/sys/ffi.js';
import { POLLIN, close, ftruncate, pipe, pollFd, readFd, writeFd } from '../../src/sys/fd.js';
import { mapShared, memfdCreate, munmap, view } from '../../src/sys/memory.js';
import {
  AF_UNIX,
  MAX_MESSAGE_BYTES,
  MAX_PASSED_FDS,
  SOCK_STREAM,
  type ReceivedMessage,
  closeAll,
  connectUnix,
  receiveMessage,
  sendMessage,
} from '../../src/sys/unix-socket.js';
import { socketPair } from '../helpers/host-bindings.js';

function received(r: ReceivedMessage | number): ReceivedMessage {
  if (typeof r === 'number') throw new Error(`recvmsg failed: ${r}`);
  return r;
}

test('a descriptor sent with SCM_RIGHTS over a socketpair is usable on the other side', () => {
  const [a, b] = socketPair(AF_UNIX, SOCK_STREAM);
  const [readEnd, writeEnd] = pipe();
  assert.is(sendMessage(a, Uint8Array.of(1, 2, 3), [writeEnd]), 3);
  close(writeEnd); // only the passed copy remains
  const into = new Uint8Array(16);
  const message = received(receiveMessage(b, into));
  assert.is(message.bytes, 3);
  assert.equal([...into.subarray(0, 3)], [1, 2, 3]);
  assert.is(message.fds.length, 1);
  assert.not.ok(message.controlTruncated);
  assert.is(writeFd(message.fds[0]!, Uint8Array.of(42)), 1);
  const got = new Uint8Array(1);
  assert.is(readFd(readEnd, got), 1);
  assert.is(got[0], 42);
  closeAll(message.fds);
  close(readEnd);
  close(a);
  close(b);
});

test('several descriptors arrive in order; data alone carries none', () => {
  const [a, b] = socketPair(AF_UNIX, SOCK_STREAM);
  const pipes = [pipe(), pipe(), pipe()];
  sendMessage(a, Uint8Array.of(9), pipes.map(([, w]) => w));
  sendMessage(a, Uint8Array.of(8));
  const into = new Uint8Array(1);
  const first = received(receiveMessage(b, into));
  assert.is(first.fds.length, 3);
  first.fds.forEach((fd, i) => writeFd(fd, Uint8Array.of(i + 10)));
  pipes.forEach(([r], i) => {
    const got = new Uint8Array(1);
    readFd(r, got);
    assert.is(got[0], i + 10);
  });
  const second = received(receiveMessage(b, into));
  assert.is(second.bytes, 1);
  assert.is(second.fds.length, 0);
  closeAll(first.fds);
  for (const [r, w] of pipes) (close(r), close(w));
  close(a);
  close(b);
});

test('a closed peer reads as 0 bytes; sending to it is -EPIPE, not SIGPIPE', () => {
  const [a, b] = socketPair(AF_UNIX, SOCK_STREAM);
  close(b);
  assert.is(received(receiveMessage(a, new Uint8Array(4))).bytes, 0);
  assert.is(sendMessage(a, Uint8Array.of(1)), -os.constants.errno.EPIPE);
  close(a);
});

test('messages and descriptor counts are bounded', () => {
  const [a, b] = socketPair(AF_UNIX, SOCK_STREAM);
  assert.throws(() => sendMessage(a, new Uint8Array(MAX_MESSAGE_BYTES + 1)), RangeError);
  assert.throws(() => sendMessage(a, Uint8Array.of(1), new Array<number>(MAX_PASSED_FDS + 1).fill(0)), RangeError);
  assert.throws(() => receiveMessage(b, new Uint8Array(MAX_MESSAGE_BYTES + 1)), RangeError);
  close(a);
  close(b);
});

test('pollFd reports readable data and times out on none', () => {
  const [a, b] = socketPair(AF_UNIX, SOCK_STREAM);
  assert.is(pollFd(b, POLLIN, 10), 0);
  sendMessage(a, Uint8Array.of(1));
  assert.ok(pollFd(b, POLLIN, 10) & POLLIN);
  close(a);
  close(b);
});

test('connectUnix reaches a listening socket and names the path when nothing listens', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-unix-'));
  const socketPath = path.join(dir, 'sock');
  try {
    const server = createServer();
    const accepted = new Promise<Buffer>((resolve) => server.on('connection', (c) => c.once('data', resolve)));
    await new Promise<void>((resolve) => server.listen(socketPath, resolve));
    const fd = connectUnix(socketPath);
    sendMessage(fd, new TextEncoder().encode('hi'));
    assert.is((await accepted).toString(), 'hi');
    close(fd);
    server.close();
    const error = (() => {
      try {
        connectUnix(path.join(dir, 'none'));
      } catch (e) {
        return e;
      }
      return undefined;
    })();
    assert.instance(error, HostCallError);
    assert.match((error as Error).message, /connect .*none failed: ENOENT/);
    assert.throws(() => connectUnix('x'.repeat(200)), RangeError);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('memfd memory written through one mapping is seen through a second mapping of the same fd', () => {
  const fd = memfdCreate('kvm-test');
  ftruncate(fd, 8192);
  const first = mapShared(fd, 8192);
  const second = mapShared(fd, 4096, 4096);
  new Uint8Array(view(first, 8192)).set([7, 7, 7], 4096);
  assert.equal([...new Uint8Array(view(second, 4096)).subarray(0, 3)], [7, 7, 7]);
  new Uint8Array(view(second, 4096))[10] = 99;
  assert.is(new Uint8Array(view(first, 8192))[4106], 99);
  munmap(first, 8192);
  munmap(second, 4096);
  close(fd);
});

test.run();
