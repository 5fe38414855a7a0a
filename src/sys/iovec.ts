/**
 * Vectored I/O over iovec arrays in host memory (HostBuffer), passed by address: filling them in
 * (setIovec), and preadv/pwritev on a disk image, readv/writev on a TAP fd, each returning bytes
 * moved or -errno, EINTR retried. io_uring's READV/WRITEV take the same arrays.
 */
import { libc, orErrno, retryInterrupted } from './ffi.js';

// Host addresses are passed as integers: x86-64 passes them like pointers.
const cPreadv = libc.func('int64_t preadv(int fd, uint64_t iov, int iovcnt, int64_t offset)') as (
  fd: number,
  iov: number,
  count: number,
  offset: number,
) => number;
const cPwritev = libc.func('int64_t pwritev(int fd, uint64_t iov, int iovcnt, int64_t offset)') as (
  fd: number,
  iov: number,
  count: number,
  offset: number,
) => number;
const cReadv = libc.func('int64_t readv(int fd, uint64_t iov, int iovcnt)') as (fd: number, iov: number, count: number) => number;
const cWritev = libc.func('int64_t writev(int fd, uint64_t iov, int iovcnt)') as (fd: number, iov: number, count: number) => number;

/** struct iovec: u64 base, u64 length. */
export const IOVEC_SIZE = 16;
/** Most iovecs one preadv/pwritev (or io_uring READV/WRITEV) takes. */
export const IOV_MAX = 1024;

/** preadv(2) into the iovec array at host address `iov`; bytes read or -errno. */
export function preadv(fd: number, iov: number, count: number, offset: number): number {
  return orErrno(retryInterrupted(() => cPreadv(fd, iov, count, offset)));
}

/** pwritev(2) from the iovec array at host address `iov`; bytes written or -errno. */
export function pwritev(fd: number, iov: number, count: number, offset: number): number {
  return orErrno(retryInterrupted(() => cPwritev(fd, iov, count, offset)));
}

/** readv(2) into the iovec array at host address `iov`; bytes read or -errno. */
export function readv(fd: number, iov: number, count: number): number {
  return orErrno(retryInterrupted(() => cReadv(fd, iov, count)));
}

/** writev(2) from the iovec array at host address `iov`; bytes written or -errno. */
export function writev(fd: number, iov: number, count: number): number {
  return orErrno(retryInterrupted(() => cWritev(fd, iov, count)));
}

const INVERSE_TWO_32 = 1 / 0x1_0000_0000;

/** Writes iovec `index` of the array `iovecs` (a Uint32Array over native memory). */
export function setIovec(iovecs: Uint32Array, index: number, base: number, length: number): void {
  const at = (index * IOVEC_SIZE) / 4;
  setU64Words(iovecs, at, base);
  setU64Words(iovecs, at + 2, length);
}

/**
 * Stores an integer below 2^53 in magnitude (-1 too: all ones) as two little-endian words at
 * `words[at]`: ToUint32 is exact for such integers and compiles to a truncation, and the rest
 * divides exactly by a power of two (no % and no division: this runs per SQE and per iovec).
 */
export function setU64Words(words: Uint32Array, at: number, value: number): void {
  const low = value >>> 0;
  words[at] = low;
  words[at + 1] = (value - low) * INVERSE_TWO_32;
}
