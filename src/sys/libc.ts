/**
 * The libc calls the VMM needs, bound once through koffi. Every module that
 * touches the host kernel goes through here, so a failing call always becomes
 * a HostCallError naming the call and errno.
 */
import koffi from 'koffi';
import { EXIT_HOST_ERROR } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';
import { EAGAIN, EINTR, describeErrno, errnoName } from './errno.js';

/** A libc call failed; `kind` is the errno's name (EACCES, ENOENT, …), also in `code`. Status 4. */
export class HostCallError extends VmmError {
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(code, `${call} failed: ${code} (${describeErrno(errno)})`, { status: EXIT_HOST_ERROR });
  }
}

const lib = koffi.load('libc.so.6');

// ioctl and friends are variadic in C; x86-64 passes these integer/pointer
// arguments identically either way, and the fixed prototypes are cheaper per call.
const ioctlValue = lib.func('int ioctl(int fd, unsigned long request, uint64_t arg)') as (
  fd: number,
  request: number,
  arg: number | bigint,
) => number;
const ioctlPointer = lib.func('int ioctl(int fd, unsigned long request, void *arg)') as (
  fd: number,
  request: number,
  arg: Uint8Array | null,
) => number;
const cOpen = lib.func('int open(const char *path, int flags, int mode)') as (p: string, f: number, m: number) => number;
const cClose = lib.func('int close(int fd)') as (fd: number) => number;
const cMmap = lib.func('uint64_t mmap(uint64_t addr, size_t length, int prot, int flags, int fd, int64_t offset)') as (
  addr: number,
  length: number,
  prot: number,
  flags: number,
  fd: number,
  offset: number,
) => number | bigint;
const cMunmap = lib.func('int munmap(uint64_t addr, size_t length)') as (addr: number, length: number) => number;
const cMadvise = lib.func('int madvise(uint64_t addr, size_t length, int advice)') as (
  addr: number,
  length: number,
  advice: number,
) => number;
const cEventfd = lib.func('int eventfd(unsigned int initval, int flags)') as (init: number, flags: number) => number;
const cRead = lib.func('int64_t read(int fd, void *buf, size_t count)') as (fd: number, buf: Uint8Array, n: number) => number;
const cWrite = lib.func('int64_t write(int fd, const void *buf, size_t count)') as (
  fd: number,
  buf: Uint8Array,
  n: number,
) => number;
const cEpollCreate1 = lib.func('int epoll_create1(int flags)') as (flags: number) => number;
const cEpollCtl = lib.func('int epoll_ctl(int epfd, int op, int fd, void *event)') as (
  epfd: number,
  op: number,
  fd: number,
  event: Uint8Array | null,
) => number;
const cEpollWait = lib.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as (
  epfd: number,
  events: Uint8Array,
  max: number,
  timeout: number,
) => number;
const cPipe2 = lib.func('int pipe2(int *fds, int flags)') as (fds: Int32Array, flags: number) => number;
const cFcntl = lib.func('int fcntl(int fd, int cmd, int arg)') as (fd: number, cmd: number, arg: number) => number;
const cPoll = lib.func('int poll(void *fds, uint64_t nfds, int timeout)') as (fds: Uint8Array, n: number, timeout: number) => number;
const cGettid = lib.func('int gettid(void)') as () => number;
const cGetpid = lib.func('int getpid(void)') as () => number;
const cTgkill = lib.func('int tgkill(int tgid, int tid, int sig)') as (tgid: number, tid: number, sig: number) => number;
const cSigrtmin = lib.func('int __libc_current_sigrtmin(void)') as () => number;
const cPthreadSigmask = lib.func('int pthread_sigmask(int how, const void *set, void *oldset)') as (
  how: number,
  set: Uint8Array | null,
  old: Uint8Array | null,
) => number;
const cSigtimedwait = lib.func('int sigtimedwait(const void *set, void *info, const void *timeout)') as (
  set: Uint8Array,
  info: Uint8Array | null,
  timeout: Uint8Array,
) => number;

export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_CLOEXEC = 0o2000000;
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
const MAP_FAILED = 2 ** 64 - 1;
export const MADV_MERGEABLE = 12;
export const MADV_HUGEPAGE = 14;
export const MADV_DONTFORK = 10;
export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;
export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
/** struct epoll_event is packed on x86-64: u32 events, u64 data. */
export const EPOLL_EVENT_SIZE = 12;
export const O_NONBLOCK = 0o4000;
export const SIG_BLOCK = 0;
export const SIG_SETMASK = 2;
/** Kernel sigset_t as passed to KVM_SET_SIGNAL_MASK: 64 signals. */
export const KERNEL_SIGSET_BYTES = 8;
/** glibc sigset_t. */
const SIGSET_BYTES = 128;

export function errno(): number {
  return koffi.errno();
}

function check(call: string, result: number): number {
  if (result < 0) {
    const e = koffi.errno();
    throw new HostCallError(call, e, errnoName(e));
  }
  return result;
}

export function open(path: string, flags: number, mode = 0): number {
  return check(`open ${path}`, cOpen(path, flags | O_CLOEXEC, mode));
}

export function close(fd: number): void {
  cClose(fd);
}

/** Retries a call interrupted by a signal (a profiler's SIGPROF, a kick meant for KVM_RUN). */
function retryInterrupted(call: () => number): number {
  for (;;) {
    const r = call();
    if (r >= 0 || koffi.errno() !== EINTR) return r;
  }
}

/** ioctl with an integer argument; returns the non-negative result or throws. */
export function ioctl(fd: number, request: number, name: string, arg: number | bigint = 0): number {
  return check(name, retryInterrupted(() => ioctlValue(fd, request, arg)));
}

/** ioctl with a buffer argument the kernel reads and/or writes in place. */
export function ioctlBuffer(fd: number, request: number, name: string, arg: Uint8Array | null): number {
  return check(name, retryInterrupted(() => ioctlPointer(fd, request, arg)));
}

/** Raw ioctl for hot paths: returns -errno instead of throwing. */
export function ioctlRaw(fd: number, request: number, arg: number): number {
  const r = ioctlValue(fd, request, arg);
  return r < 0 ? -koffi.errno() : r;
}

export function mmap(length: number, prot: number, flags: number, fd = -1, offset = 0): number {
  const address = Number(cMmap(0, length, prot, flags, fd, offset));
  if (address === MAP_FAILED || address === -1) {
    const e = koffi.errno();
    throw new HostCallError('mmap', e, errnoName(e));
  }
  return address;
}

export function munmap(address: number, length: number): void {
  check('munmap', cMunmap(address, length));
}

/** Advice is best effort: a kernel without KSM still runs the VM. */
export function madvise(address: number, length: number, advice: number): boolean {
  return cMadvise(address, length, advice) === 0;
}

/** An ArrayBuffer over host memory at address (no copy). */
export function view(address: number, length: number): ArrayBuffer {
  return koffi.view(address, length) as ArrayBuffer;
}

export function eventfd(flags = EFD_CLOEXEC): number {
  return check('eventfd', cEventfd(0, flags));
}

/** The eventfd every kick, interrupt and control channel uses: close-on-exec, never blocking a reader. */
export function nonBlockingEventfd(): number {
  return eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
}

export function readFd(fd: number, buffer: Uint8Array): number {
  const r = cRead(fd, buffer, buffer.length);
  return r < 0 ? -koffi.errno() : r;
}

export function writeFd(fd: number, buffer: Uint8Array): number {
  const r = cWrite(fd, buffer, buffer.length);
  return r < 0 ? -koffi.errno() : r;
}

export function epollCreate(): number {
  return check('epoll_create1', cEpollCreate1(EPOLL_CLOEXEC));
}

/** Watches fd for events; `token` comes back in the event's data field. */
export function epollAdd(epfd: number, fd: number, events: number, token: number): void {
  const event = new Uint8Array(EPOLL_EVENT_SIZE);
  const v = new DataView(event.buffer);
  v.setUint32(0, events, true);
  v.setUint32(4, token, true);
  check('epoll_ctl ADD', cEpollCtl(epfd, EPOLL_CTL_ADD, fd, event));
}

export function epollRemove(epfd: number, fd: number): void {
  check('epoll_ctl DEL', cEpollCtl(epfd, EPOLL_CTL_DEL, fd, new Uint8Array(EPOLL_EVENT_SIZE)));
}

/** Blocks (timeout -1) until events; fills `events` (EPOLL_EVENT_SIZE each) and returns their count, or -errno. */
export function epollWait(epfd: number, events: Uint8Array, timeoutMs: number): number {
  const r = cEpollWait(epfd, events, Math.floor(events.length / EPOLL_EVENT_SIZE), timeoutMs);
  return r < 0 ? -koffi.errno() : r;
}

const FIONREAD = 0x541b;
const fionreadBuffer = new Uint8Array(4);

/** Bytes waiting to be read on a pipe, socket or tty, or -errno. */
export function bytesReadable(fd: number): number {
  const r = ioctlPointer(fd, FIONREAD, fionreadBuffer);
  return r < 0 ? -koffi.errno() : new DataView(fionreadBuffer.buffer).getInt32(0, true);
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

const eventfdValue = new Uint8Array(8);
const eventfdOne = new Uint8Array(new BigUint64Array([1n]).buffer);

/** Adds 1 to an eventfd's counter (a kick or an interrupt); returns false on failure. */
export function signalEventfd(fd: number): boolean {
  return cWrite(fd, eventfdOne, 8) === 8;
}

/** Reads and clears an eventfd's counter (non-blocking fds return 0 when empty). */
export function drainEventfd(fd: number): number {
  const r = cRead(fd, eventfdValue, 8);
  return r === 8 ? Number(new DataView(eventfdValue.buffer).getBigUint64(0, true)) : 0;
}

const POLLOUT = 0x004;
const pollfd = new Uint8Array(8);

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
    const r = retryInterrupted(() => cWrite(fd, chunk, chunk.length));
    if (r > 0) {
      done += r;
      continue;
    }
    if (r < 0 && koffi.errno() === EAGAIN) {
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

export function gettid(): number {
  return cGettid();
}

export function getpid(): number {
  return cGetpid();
}

export function tgkill(tgid: number, tid: number, signal: number): boolean {
  return cTgkill(tgid, tid, signal) === 0;
}

/** The real-time signal used to kick a vCPU out of KVM_RUN. */
export function kickSignal(): number {
  return cSigrtmin() + 6;
}

function sigset(signal: number): Uint8Array {
  const set = new Uint8Array(SIGSET_BYTES);
  set[(signal - 1) >> 3]! |= 1 << ((signal - 1) & 7);
  return set;
}

/**
 * Blocks signal in the calling thread and returns the kernel sigset (64 bits)
 * that was in force before, for KVM_SET_SIGNAL_MASK.
 */
export function blockSignalInThread(signal: number): Uint8Array {
  const old = new Uint8Array(SIGSET_BYTES);
  check('pthread_sigmask', -Math.abs(cPthreadSigmask(SIG_BLOCK, sigset(signal), old)));
  return old.slice(0, KERNEL_SIGSET_BYTES);
}

/** Consumes a pending (blocked) signal without waiting; true if one was pending. */
export function consumePendingSignal(signal: number): boolean {
  const zeroTimeout = new Uint8Array(16);
  return cSigtimedwait(sigset(signal), null, zeroTimeout) === signal;
}

// Block I/O: io_uring (raw syscalls, glibc has no wrappers), vectored I/O, space management,
// image locking. Host addresses are passed as integers: x86-64 passes them like pointers.

const SYS_IO_URING_SETUP = 425;
const SYS_IO_URING_ENTER = 426;
const SYS_IO_URING_REGISTER = 427;
const cSyscallPointer = lib.func('long syscall(long number, long a1, void *a2)') as (
  n: number,
  a1: number,
  a2: Uint8Array,
) => number;
const cSyscallRegister = lib.func('long syscall(long number, long fd, long opcode, void *arg, long count)') as (
  n: number,
  fd: number,
  opcode: number,
  arg: Uint8Array | null,
  count: number,
) => number;
const cSyscallEnter = lib.func('long syscall(long number, long fd, long submit, long complete, long flags, long sig, long size)') as (
  n: number,
  fd: number,
  toSubmit: number,
  minComplete: number,
  flags: number,
  sig: number,
  size: number,
) => number;
const cPreadv = lib.func('int64_t preadv(int fd, uint64_t iov, int iovcnt, int64_t offset)') as (
  fd: number,
  iov: number,
  count: number,
  offset: number,
) => number;
const cPwritev = lib.func('int64_t pwritev(int fd, uint64_t iov, int iovcnt, int64_t offset)') as (
  fd: number,
  iov: number,
  count: number,
  offset: number,
) => number;
const cFdatasync = lib.func('int fdatasync(int fd)') as (fd: number) => number;
const cFallocate = lib.func('int fallocate(int fd, int mode, int64_t offset, int64_t len)') as (
  fd: number,
  mode: number,
  offset: number,
  length: number,
) => number;
const cFcntlPointer = lib.func('int fcntl(int fd, int cmd, void *arg)') as (fd: number, cmd: number, arg: Uint8Array) => number;
const cStatx = lib.func('int statx(int dirfd, const char *path, int flags, unsigned int mask, void *buf)') as (
  dirfd: number,
  path: string,
  flags: number,
  mask: number,
  buf: Uint8Array,
) => number;

export const O_WRONLY = 1;
export const O_DIRECT = 0o40000;
export const MAP_POPULATE = 0x8000;
export const FALLOC_FL_KEEP_SIZE = 0x01;
export const FALLOC_FL_PUNCH_HOLE = 0x02;
export const FALLOC_FL_ZERO_RANGE = 0x10;
/** struct iovec: u64 base, u64 length. */
export const IOVEC_SIZE = 16;
/** Most iovecs one preadv/pwritev (or io_uring READV/WRITEV) takes. */
export const IOV_MAX = 1024;

/** io_uring_setup(2): fills `params` (struct io_uring_params) and returns the ring fd, or -errno. */
export function ioUringSetup(entries: number, params: Uint8Array): number {
  const r = cSyscallPointer(SYS_IO_URING_SETUP, entries, params);
  return r < 0 ? -koffi.errno() : r;
}

/** io_uring_enter(2) without a signal mask: returns the SQEs consumed, or -errno (EINTR retried). */
export function ioUringEnter(fd: number, toSubmit: number, minComplete: number, flags: number): number {
  const r = retryInterrupted(() => cSyscallEnter(SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags, 0, 0));
  return r < 0 ? -koffi.errno() : r;
}

/** io_uring_register(2); returns the result or -errno. */
export function ioUringRegister(fd: number, opcode: number, arg: Uint8Array | null, count: number): number {
  const r = cSyscallRegister(SYS_IO_URING_REGISTER, fd, opcode, arg, count);
  return r < 0 ? -koffi.errno() : r;
}

/** preadv(2) into the iovec array at host address `iov`; bytes read or -errno. */
export function preadv(fd: number, iov: number, count: number, offset: number): number {
  const r = retryInterrupted(() => cPreadv(fd, iov, count, offset));
  return r < 0 ? -koffi.errno() : r;
}

/** pwritev(2) from the iovec array at host address `iov`; bytes written or -errno. */
export function pwritev(fd: number, iov: number, count: number, offset: number): number {
  const r = retryInterrupted(() => cPwritev(fd, iov, count, offset));
  return r < 0 ? -koffi.errno() : r;
}

/** 0 or -errno. */
export function fdatasync(fd: number): number {
  return retryInterrupted(() => cFdatasync(fd)) < 0 ? -koffi.errno() : 0;
}

/** fallocate(2): 0 or -errno. */
export function fallocate(fd: number, mode: number, offset: number, length: number): number {
  return retryInterrupted(() => cFallocate(fd, mode, offset, length)) < 0 ? -koffi.errno() : 0;
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
  return cFcntlPointer(fd, F_OFD_SETLK, flock) < 0 ? -koffi.errno() : 0;
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

// Network: vectored I/O on a TAP fd (iovec arrays at host addresses, like preadv above).

const cReadv = lib.func('int64_t readv(int fd, uint64_t iov, int iovcnt)') as (fd: number, iov: number, count: number) => number;
const cWritev = lib.func('int64_t writev(int fd, uint64_t iov, int iovcnt)') as (fd: number, iov: number, count: number) => number;

/** readv(2) into the iovec array at host address `iov`; bytes read or -errno (EINTR retried). */
export function readv(fd: number, iov: number, count: number): number {
  const r = retryInterrupted(() => cReadv(fd, iov, count));
  return r < 0 ? -koffi.errno() : r;
}

/** writev(2) from the iovec array at host address `iov`; bytes written or -errno (EINTR retried). */
export function writev(fd: number, iov: number, count: number): number {
  const r = retryInterrupted(() => cWritev(fd, iov, count));
  return r < 0 ? -koffi.errno() : r;
}

const cIfNameToIndex = lib.func('unsigned int if_nametoindex(const char *name)') as (name: string) => number;

/** The index of a network interface in the calling thread's network namespace, or 0 when there is none. */
export function interfaceIndex(name: string): number {
  return cIfNameToIndex(name);
}

const cSocket = lib.func('int socket(int domain, int type, int protocol)') as (domain: number, type: number, protocol: number) => number;

export const SOCK_CLOEXEC = 0o2000000;

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', cSocket(domain, type | SOCK_CLOEXEC, protocol));
}

const cSchedYield = lib.func('int sched_yield(void)') as () => number;

/** sched_yield(2): lets another runnable thread have this CPU (a polling loop's courtesy on a busy host). */
export function schedYield(): void {
  cSchedYield();
}
