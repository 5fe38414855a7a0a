/**
 * Disk-image files beyond read and write: fdatasync, fallocate (punching holes, zeroing ranges),
 * open-file-description locks, and the direct I/O alignment statx reports. Each returns 0 or
 * -errno rather than throwing, so a guest's request can fail without failing the VMM.
 */
import { libc, orErrno, retryInterrupted } from './ffi.js';

const cFdatasync = libc.func('int fdatasync(int fd)') as (fd: number) => number;
const cFallocate = libc.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as (
  fd: number,
  mode: number,
  offset: number,
  length: number,
) => number;
const cFcntlPointer = libc.func('int fcntl(int fd, int cmd, void *arg)') as (fd: number, cmd: number, arg: Uint8Array) => number;
const cStatx = libc.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)') as (
  dirfd: number,
  path: string,
  flags: number,
  mask: number,
  buf: Uint8Array,
) => number;

export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;

/** 0 or -errno. */
export function fdatasync(fd: number): number {
  const r = orErrno(retryInterrupted(() => cFdatasync(fd)));
  return r < 0 ? r : 0;
}

/** fallocate(2): 0 or -errno. */
export function fallocate(fd: number, mode: number, offset: number, length: number): number {
  const r = orErrno(retryInterrupted(() => cFallocate(fd, mode, offset, length)));
  return r < 0 ? r : 0;
}

const F_OFD_SETLK = 37;
export const F_RDLCK = 0;
export const F_WRLCK = 1;
/** struct flock on x86-64: l_type s16, l_whence s16, l_start s64 at 8, l_len s64 at 16, l_pid s32 at 24. */
const FLOCK_SIZE = 32;

/**
 * Takes an open-file-description lock over the whole file without waiting: it belongs to this
 * fd (not the process), conflicts with other descriptions even in this process, and goes with
 * the last close. Returns 0, or -errno (EAGAIN or EACCES when someone else holds a conflicting lock).
 */
export function lockWholeFile(fd: number, type: typeof F_RDLCK | typeof F_WRLCK): number {
  const flock = new Uint8Array(FLOCK_SIZE);
  new DataView(flock.buffer).setInt16(0, type, true); // whence SEEK_SET, start 0, len 0 = to the end
  const r = orErrno(cFcntlPointer(fd, F_OFD_SETLK, flock));
  return r < 0 ? r : 0;
}

const AT_EMPTY_PATH = 0x1000;
const STATX_DIOALIGN = 0x2000;
const STATX_BUFFER_BYTES = 0x100;
const STATX_MASK = 0;
const STATX_DIO_MEM_ALIGN = 0x98;
const STATX_DIO_OFFSET_ALIGN = 0x9c;

/** Direct I/O alignment of an open file (statx STATX_DIOALIGN), or undefined where the kernel or filesystem does not tell. */
export function directIoAlignment(fd: number): { memory: number; offset: number } | undefined {
  const buf = new Uint8Array(STATX_BUFFER_BYTES);
  if (cStatx(fd, '', AT_EMPTY_PATH, STATX_DIOALIGN, buf) < 0) return undefined;
  const v = new DataView(buf.buffer);
  if (!(v.getUint32(STATX_MASK, true) & STATX_DIOALIGN)) return undefined;
  const memory = v.getUint32(STATX_DIO_MEM_ALIGN, true);
  const offset = v.getUint32(STATX_DIO_OFFSET_ALIGN, true);
  return memory > 0 && offset > 0 ? { memory, offset } : undefined;
}
