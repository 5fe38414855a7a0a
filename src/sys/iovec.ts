/**
 * Vectored I/O over iovec arrays in host memory (HostBuffer), passed by address: preadv/pwritev
 * on a disk image, readv/writev on a TAP fd. Each returns bytes moved or -errno, EINTR retried.
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
