/**
 * Fuzz target: a vhost-user back-end's reply to GET_FEATURES or GET_VRING_BASE, built from
 * hostile pieces (any request number, flags and declared size, a payload of any length,
 * descriptors attached), after which the back-end stops writing. It checks:
 *
 * - the call returns only for a well-formed reply (the request's number, version 1 with REPLY,
 *   exactly the expected size, the payload all there, no descriptors), and then returns its value;
 * - otherwise it throws a one-line VhostUserError, never anything else, and never waits (the
 *   back-end's EOF ends every short read);
 * - the front-end never reads past the header plus the expected payload;
 * - no descriptor leaks: the process has as many open fds afterwards as before.
 */
import fc from 'fast-check';
import { readdirSync } from 'node:fs';
import { close, pipe } from '../../src/sys/fd.js';
import { bytesReadable } from '../../src/sys/ioctl.js';
import { VhostUserError } from '../../src/vhost-user/error.js';
import { VhostUserFrontend } from '../../src/vhost-user/frontend.js';
import { FLAG_REPLY, HEADER_SIZE, Request, VERSION } from '../../src/vhost-user/protocol.js';
import { FakeBackend } from '../vhost-user/fake-backend.js';
import type { FuzzTarget } from './fuzz-target.js';

export interface VhostUserReplyCase {
  readonly call: 'features' | 'vring-base';
  readonly request: number;
  readonly flags: number;
  /** The size the header declares; undefined: the payload's length. */
  readonly size: number | undefined;
  readonly payload: Uint8Array;
  readonly fds: number;
}

const EXPECTED_SIZE = 8;

const arbitrary: fc.Arbitrary<VhostUserReplyCase> = fc
  .record({
    call: fc.constantFrom('features' as const, 'vring-base' as const),
    request: fc.oneof({ arbitrary: fc.constant(-1), weight: 4 }, { arbitrary: fc.integer({ min: 0, max: 50 }), weight: 1 }, { arbitrary: fc.nat(), weight: 1 }),
    flags: fc.oneof({ arbitrary: fc.constant(VERSION | FLAG_REPLY), weight: 4 }, { arbitrary: fc.integer({ min: 0, max: 15 }), weight: 1 }, { arbitrary: fc.nat(), weight: 1 }),
    size: fc.oneof({ arbitrary: fc.constant(undefined), weight: 3 }, { arbitrary: fc.constant(EXPECTED_SIZE), weight: 3 }, { arbitrary: fc.nat(), weight: 1 }),
    payload: fc.oneof({ arbitrary: fc.uint8Array({ minLength: 8, maxLength: 8 }), weight: 4 }, { arbitrary: fc.uint8Array({ maxLength: 300 }), weight: 1 }),
    fds: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.integer({ min: 1, max: 3 }), weight: 1 }),
  })
  .map((c) => ({ ...c, request: c.request === -1 ? (c.call === 'features' ? Request.GET_FEATURES : Request.GET_VRING_BASE) : c.request }));

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

function check(c: VhostUserReplyCase): void {
  const before = openFds();
  const backend = new FakeBackend();
  const frontend = new VhostUserFrontend(backend.frontendFd, { timeoutMs: 2000 });
  const [readEnd, writeEnd] = pipe();
  const expectedRequest = c.call === 'features' ? Request.GET_FEATURES : Request.GET_VRING_BASE;
  const declared = c.size ?? c.payload.length;
  const bytes = new Uint8Array(HEADER_SIZE + c.payload.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, c.request >>> 0, true);
  v.setUint32(4, c.flags >>> 0, true);
  v.setUint32(8, declared >>> 0, true);
  bytes.set(c.payload, HEADER_SIZE);
  try {
    backend.raw(bytes, new Array<number>(c.fds).fill(writeEnd));
    backend.endWrites();
    const wellFormed =
      c.request === expectedRequest &&
      (c.flags & 3) === VERSION &&
      (c.flags & FLAG_REPLY) !== 0 &&
      declared === EXPECTED_SIZE &&
      c.payload.length >= EXPECTED_SIZE &&
      c.fds === 0;
    const pv = new DataView(c.payload.buffer, c.payload.byteOffset, c.payload.byteLength);
    const valueOk = !wellFormed || c.call === 'features' || (pv.getUint32(0, true) === 0 && pv.getUint32(4, true) <= 0xffff);
    const started = Date.now();
    let result: bigint | number | undefined;
    let error: unknown;
    try {
      result = c.call === 'features' ? frontend.getFeatures() : frontend.getVringBase(0);
    } catch (e) {
      error = e;
    }
    if (Date.now() - started > 1000) throw new Error(`the call took ${Date.now() - started} ms`);
    if (wellFormed && valueOk) {
      if (error !== undefined) throw new Error(`a well-formed reply failed: ${String(error)}`);
      const expected = c.call === 'features' ? pv.getBigUint64(0, true) : pv.getUint32(4, true);
      if (result !== expected) throw new Error(`returned ${String(result)}, sent ${String(expected)}`);
    } else {
      if (!(error instanceof VhostUserError)) throw new Error(`a malformed reply gave ${error === undefined ? `the value ${String(result)}` : String(error)}`);
      if (error.message.includes('\n')) throw new Error('a multi-line message');
    }
    const unread = bytesReadable(backend.frontendFd);
    const mostConsumed = HEADER_SIZE + EXPECTED_SIZE;
    if (unread < bytes.length - mostConsumed) throw new Error(`the front-end read ${bytes.length - unread} bytes, more than ${mostConsumed}`);
  } finally {
    frontend.close();
    backend.close();
    close(readEnd);
    close(writeEnd);
  }
  const after = openFds();
  if (after !== before) throw new Error(`${after - before} descriptors leaked`);
}

export const vhostUserReplyTarget: FuzzTarget<VhostUserReplyCase> = {
  name: 'vhost-user-reply',
  description: 'a hostile vhost-user reply: only a well-formed one returns; otherwise one-line VhostUserError, bounded reads, no fd leak',
  arbitrary,
  check,
  testRuns: { fixed: 400, random: 100 },
};
