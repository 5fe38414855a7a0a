/**
 * libc calls only tests and benchmarks need (network namespaces, sockets, page-cache
 * state), bound here so src/sys carries only what the VMM itself calls. They are declared
 * on src/sys/ffi.ts's libc handle and fail through its `check`, as the VMM's own bindings do.
 */
import { check, libc } from '../../src/sys/ffi.js';
import { SOCK_CLOEXEC } from '../../src/sys/sockets.js';

const cSetns = libc.func('int setns(int fd, int nstype)') as (fd: number, nstype: number) => number;

export const CLONE_NEWNET = 0x40000000;

/** Moves the calling thread (only) into the namespace `fd` refers to; throws on failure. */
export function setns(fd: number, nstype: number): void {
  check('setns', cSetns(fd, nstype));
}

const SYS_CACHESTAT = 451;
const cSyscallCachestat = libc.func('long syscall(long number, long fd, void *range, void *stat, long flags)') as (
  n: number,
  fd: number,
  range: Uint8Array,
  stat: Uint8Array,
  flags: number,
) => number;

export interface PageCacheState {
  readonly cached: number;
  readonly dirty: number;
  readonly writeback: number;
}

/** cachestat(2) (Linux 6.5+): page-cache pages of a file range, how many dirty or under writeback; undefined if unsupported. */
export function pageCacheState(fd: number, offset: number, length: number): PageCacheState | undefined {
  const range = new Uint8Array(16);
  const rv = new DataView(range.buffer);
  rv.setBigUint64(0, BigInt(offset), true);
  rv.setBigUint64(8, BigInt(length), true);
  const stat = new Uint8Array(40);
  if (cSyscallCachestat(SYS_CACHESTAT, fd, range, stat, 0) < 0) return undefined;
  const sv = new DataView(stat.buffer);
  return { cached: Number(sv.getBigUint64(0, true)), dirty: Number(sv.getBigUint64(8, true)), writeback: Number(sv.getBigUint64(16, true)) };
}

const cBind = libc.func('int bind(int fd, const void *address, unsigned int length)') as (fd: number, address: Uint8Array, length: number) => number;
const cSetsockopt = libc.func('int setsockopt(int fd, int level, int name, const void *value, unsigned int length)') as (
  fd: number,
  level: number,
  name: number,
  value: Uint8Array,
  length: number,
) => number;
const cSocketpair = libc.func('int socketpair(int domain, int type, int protocol, int *fds)') as (domain: number, type: number, protocol: number, fds: Int32Array) => number;

/** socketpair(2): two connected sockets (close-on-exec). */
export function socketPair(domain: number, type: number, protocol = 0): [number, number] {
  const fds = new Int32Array(2);
  check('socketpair', cSocketpair(domain, type | SOCK_CLOEXEC, protocol, fds));
  return [fds[0]!, fds[1]!];
}

/** bind(2) to a raw sockaddr. */
export function bind(fd: number, address: Uint8Array): void {
  check('bind', cBind(fd, address, address.length));
}


/** setsockopt(2) with an int value. */
export function setSocketOption(fd: number, level: number, name: number, value: number): void {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setInt32(0, value, true);
  check('setsockopt', cSetsockopt(fd, level, name, bytes, 4));
}

const cShutdown = libc.func('int shutdown(int fd, int how)') as (fd: number, how: number) => number;

export const SHUT_WR = 1;

/** shutdown(2): SHUT_WR ends this side's writes (the peer reads EOF) while it can still read. */
export function shutdown(fd: number, how: number): void {
  check('shutdown', cShutdown(fd, how));
}
