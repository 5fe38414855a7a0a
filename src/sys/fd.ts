/**
 * File descriptors: open(2) and its flags, close, raw read/write (bytes or -errno), pipes,
 * O_NONBLOCK, ftruncate, poll on one fd, and writeFully for output that must not be dropped on a full non-blocking fd.
 */
import { EAGAIN } from './errno.js';
import { check, libc, orErrno, retryInterrupted } from './ffi.js';

const cOpen = libc.func('int open(const char *path, int flags, int mode)') as (p: string, f: number, m: number) => number;
const cClose = libc.func('int close(int fd)') as (fd: number) => number;
const cRead = libc.func('int64_t read(int fd, void *buf, size_t count)') as (fd: number, buf: Uint8Array, n: number) => number;
const cWrite = libc.func('int64_t write(int fd, const void *buf, size_t count)') as (
  fd: number,
  buf: Uint8Array,
  n: number,
) => number;
const cPipe2 = libc.func('int pipe2(int *fds, int flags)') as (fds: Int32Array, flags: number) => number;
const cFcntl = libc.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number;
const cPoll = libc.func('int poll(void *fds, uint64_t nfds, int timeout)') as (fds: Uint8Array, n: number, timeout: number) => number;
const cFtruncate = libc.func('int ftruncate(int fd, int64_t length)') as (fd: number, length: number) => number;

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_NONBLOCK = 0o4000;
export const O_DIRECT = 0o40000;
export const O_CLOEXEC = 0o2000000;

/** Opens path (always close-on-exec); throws HostCallError naming the path. */
export function open(path: string, flags: number, mode = 0): number {
  return check(`open ${path}`, cOpen(path, flags | O_CLOEXEC, mode));
}

export function close(fd: number): void {
  cClose(fd);
}

/** read(2) into all of `buffer`: bytes read, or -errno. */
export function readFd(fd: number, buffer: Uint8Array): number {
  return orErrno(cRead(fd, buffer, buffer.length));
}

/** write(2) of all of `buffer`: bytes written, or -errno. */
export function writeFd(fd: number, buffer: Uint8Array): number {
  return orErrno(cWrite(fd, buffer, buffer.length));
}

const F_GETFL = 3;
const F_SETFL = 4;

export function setNonBlocking(fd: number): void {
  const flags = check('fcntl F_GETFL', cFcntl(fd, F_GETFL, 0));
  check('fcntl F_SETFL', cFcntl(fd, F_SETFL, flags | O_NONBLOCK));
}

/** A pipe: [read end, write end]. */
export function pipe(flags = O_CLOEXEC): [number, number] {
  const fds = new Int32Array(2);
  check('pipe2', cPipe2(fds, flags));
  return [fds[0]!, fds[1]!];
}

export const POLLIN = 0x001;
export const POLLOUT = 0x004;
export const POLLERR = 0x008;
export const POLLHUP = 0x010;
const pollfd = new Uint8Array(8);

/** ftruncate(2): sets the file's size; throws HostCallError. */
export function ftruncate(fd: number, length: number): void {
  check('ftruncate', cFtruncate(fd, length));
}

/**
 * poll(2) on one fd for `events`, waiting at most `timeoutMs` (-1: forever; EINTR restarts the
 * whole wait, so a signal storm can only lengthen it). The revents (POLLERR and POLLHUP
 * included), 0 on timeout, or -errno.
 */
export function pollFd(fd: number, events: number, timeoutMs: number): number {
  const v = new DataView(pollfd.buffer);
  v.setInt32(0, fd, true);
  v.setInt16(4, events, true);
  v.setInt16(6, 0, true);
  const r = orErrno(retryInterrupted(() => cPoll(pollfd, 1, timeoutMs)));
  return r <= 0 ? r : v.getInt16(6, true);
}

/**
 * Writes all of `data` to fd, waiting while the fd is full. Console output
 * must not be dropped when the reader is slow: stdout may be a non-blocking
 * pipe (Node makes its own stdio pipes non-blocking). Returns false when the
 * fd is gone (EPIPE, EBADF): the guest goes on without a console.
 */
export function writeFully(fd: number, data: Uint8Array): boolean {
  let done = 0;
  while (done < data.length) {
    const chunk = done === 0 ? data : data.subarray(done);
    const r = orErrno(retryInterrupted(() => cWrite(fd, chunk, chunk.length)));
    if (r > 0) {
      done += r;
      continue;
    }
    if (r === -EAGAIN) {
      const v = new DataView(pollfd.buffer);
      v.setInt32(0, fd, true);
      v.setInt16(4, POLLOUT, true);
      v.setInt16(6, 0, true);
      retryInterrupted(() => cPoll(pollfd, 1, -1));
      continue;
    }
    return false;
  }
  return true;
}
