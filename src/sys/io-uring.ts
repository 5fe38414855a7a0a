/**
 * A minimal io_uring (io_uring_setup(2), io_uring_enter(2)) over koffi: the
 * submission and completion rings and the SQE array are mmap'd and read and
 * written in place through typed arrays, so queuing an operation costs no
 * call into C and one io_uring_enter submits a whole batch.
 *
 * Ordering: the kernel reads the SQ tail with acquire semantics and only
 * inside io_uring_enter (no SQPOLL here), which is itself a full barrier;
 * completions are read after the CQ tail (load→load, kept by x86) and the
 * head is published after them (load→store, kept by x86). No fence is needed
 * on this architecture beyond what the syscall gives.
 *
 * user_data carries two 32-bit numbers, a tag and a sub-index, so the hot
 * path never builds a BigInt.
 */
import { EXIT_HOST_ERROR } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';
import { close } from './fd.js';
import { libc, orErrno, retryInterrupted } from './ffi.js';
import { setU64Words } from './iovec.js';
import { MAP_POPULATE, MAP_SHARED, PROT_READ, PROT_WRITE, mmap, munmap, view } from './memory.js';
import { EAGAIN, EBUSY, EINTR, EINVAL, ENOSYS, EPERM, errnoName } from './errno.js';

// The io_uring system calls, raw: glibc has no wrappers.
const SYS_IO_URING_SETUP = 425;
const SYS_IO_URING_ENTER = 426;
const SYS_IO_URING_REGISTER = 427;
const cSyscallPointer = libc.func('long syscall(long number, long a1, void *a2)') as (
  n: number,
  a1: number,
  a2: Uint8Array,
) => number;
const cSyscallRegister = libc.func('long syscall(long number, long fd, long opcode, void *arg, long count)') as (
  n: number,
  fd: number,
  opcode: number,
  arg: Uint8Array | null,
  count: number,
) => number;
const cSyscallEnter = libc.func('long syscall(long number, long fd, long submit, long complete, long flags, long sig, long size)') as (
  n: number,
  fd: number,
  toSubmit: number,
  minComplete: number,
  flags: number,
  sig: number,
  size: number,
) => number;

/** io_uring_setup(2): fills `params` (struct io_uring_params) and returns the ring fd, or -errno. */
function ioUringSetup(entries: number, params: Uint8Array): number {
  return orErrno(cSyscallPointer(SYS_IO_URING_SETUP, entries, params));
}

/** io_uring_enter(2) without a signal mask: returns the SQEs consumed, or -errno (EINTR retried). */
function ioUringEnter(fd: number, toSubmit: number, minComplete: number, flags: number): number {
  return orErrno(retryInterrupted(() => cSyscallEnter(SYS_IO_URING_ENTER, fd, toSubmit, minComplete, flags, 0, 0)));
}

/** io_uring_register(2); returns the result or -errno. */
function ioUringRegister(fd: number, opcode: number, arg: Uint8Array | null, count: number): number {
  return orErrno(cSyscallRegister(SYS_IO_URING_REGISTER, fd, opcode, arg, count));
}

export type IoUringErrorKind = 'unsupported' | 'setup' | 'register' | 'submit';

/** io_uring is missing or failed: a host error, status 4. */
export class IoUringError extends VmmError<IoUringErrorKind> {
  constructor(
    kind: IoUringErrorKind,
    readonly errno: number,
    message: string,
  ) {
    super(kind, message, { status: EXIT_HOST_ERROR });
  }
}

// Opcodes (enum io_uring_op).
export const IORING_OP_NOP = 0;
export const IORING_OP_READV = 1;
export const IORING_OP_WRITEV = 2;
export const IORING_OP_FSYNC = 3;
export const IORING_OP_FALLOCATE = 17;
// sqe->flags.
export const IOSQE_IO_DRAIN = 1 << 1;
// sqe->rw_flags (RWF_*): fail with EAGAIN instead of waiting (or arming a poll) when data is not ready.
export const RWF_NOWAIT = 0x8;
// sqe->fsync_flags.
export const IORING_FSYNC_DATASYNC = 1 << 0;
const IORING_ENTER_GETEVENTS = 1 << 0;
const IORING_SETUP_COOP_TASKRUN = 1 << 8;
const IORING_FEAT_SINGLE_MMAP = 1 << 0;
const IORING_FEAT_NODROP = 1 << 1;
const IORING_REGISTER_EVENTFD = 4;
const IORING_OFF_SQ_RING = 0;
const IORING_OFF_SQES = 0x1000_0000;

// struct io_uring_params (120 bytes): sq_entries, cq_entries, flags, sq_thread_cpu, sq_thread_idle,
// features, wq_fd, resv[3], then struct io_sqring_offsets at 40 and io_cqring_offsets at 80.
const PARAMS_SIZE = 120;
const P_SQ_ENTRIES = 0;
const P_CQ_ENTRIES = 4;
const P_FLAGS = 8;
const P_FEATURES = 20;
const P_SQ_OFF = 40;
const P_CQ_OFF = 80;
// io_sqring_offsets: head, tail, ring_mask, ring_entries, flags, dropped, array.
const SQ_OFF_HEAD = 0;
const SQ_OFF_TAIL = 4;
const SQ_OFF_RING_MASK = 8;
const SQ_OFF_ARRAY = 24;
// io_cqring_offsets: head, tail, ring_mask, ring_entries, overflow, cqes.
const CQ_OFF_HEAD = 0;
const CQ_OFF_TAIL = 4;
const CQ_OFF_RING_MASK = 8;
const CQ_OFF_CQES = 20;

/** struct io_uring_sqe is 64 bytes: 16 words. */
const SQE_WORDS = 16;
const SQE_BYTES = 64;
/** struct io_uring_cqe is 16 bytes: user_data (2 words), res, flags. */
const CQE_WORDS = 4;
const CQE_BYTES = 16;


/** Called per completion: the SQE's tag and sub-index, and its result (bytes, 0, or -errno). */
export type CompletionHandler = (tag: number, sub: number, result: number) => void;

export class IoUring {
  readonly fd: number;
  readonly sqEntries: number;
  readonly cqEntries: number;
  private readonly ringAddress: number;
  private readonly ringBytes: number;
  private readonly sqesAddress: number;
  private readonly sqesBytes: number;
  private readonly ring: Uint32Array;
  private readonly ringSigned: Int32Array;
  private readonly sqes: Uint32Array;
  private readonly sqHead: number;
  private readonly sqTail: number;
  private readonly sqMask: number;
  private readonly cqHead: number;
  private readonly cqTail: number;
  private readonly cqMask: number;
  private readonly cqes: number;
  /** Our copy of the SQ tail; published to the ring at submit. */
  private tail = 0;
  /** SQEs queued but not yet consumed by the kernel. */
  private unsubmitted = 0;
  private closed = false;

  private constructor(fd: number, params: DataView) {
    this.fd = fd;
    try {
      this.sqEntries = params.getUint32(P_SQ_ENTRIES, true);
      this.cqEntries = params.getUint32(P_CQ_ENTRIES, true);
      const features = params.getUint32(P_FEATURES, true);
      // Both are in every kernel since 5.5; without them the ring layout or overflow rules differ.
      if (!(features & IORING_FEAT_SINGLE_MMAP) || !(features & IORING_FEAT_NODROP)) {
        throw new IoUringError('unsupported', 0, 'io_uring lacks SINGLE_MMAP or NODROP (kernel older than 5.5)');
      }
      const sqOff = (field: number): number => params.getUint32(P_SQ_OFF + field, true);
      const cqOff = (field: number): number => params.getUint32(P_CQ_OFF + field, true);
      const sqArray = sqOff(SQ_OFF_ARRAY);
      this.ringBytes = Math.max(sqArray + this.sqEntries * 4, cqOff(CQ_OFF_CQES) + this.cqEntries * CQE_BYTES);
      this.ringAddress = mmap(this.ringBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
      this.sqesBytes = this.sqEntries * SQE_BYTES;
      try {
        this.sqesAddress = mmap(this.sqesBytes, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
      } catch (error) {
        munmap(this.ringAddress, this.ringBytes);
        throw error;
      }
      const ringBuffer = view(this.ringAddress, this.ringBytes);
      this.ring = new Uint32Array(ringBuffer);
      this.ringSigned = new Int32Array(ringBuffer);
      this.sqes = new Uint32Array(view(this.sqesAddress, this.sqesBytes));
      this.sqHead = sqOff(SQ_OFF_HEAD) / 4;
      this.sqTail = sqOff(SQ_OFF_TAIL) / 4;
      this.sqMask = this.ring[sqOff(SQ_OFF_RING_MASK) / 4]!;
      this.cqHead = cqOff(CQ_OFF_HEAD) / 4;
      this.cqTail = cqOff(CQ_OFF_TAIL) / 4;
      this.cqMask = this.ring[cqOff(CQ_OFF_RING_MASK) / 4]!;
      this.cqes = cqOff(CQ_OFF_CQES) / 4;
      // SQ slot i always names SQE i: SQEs are filled in ring order, so the indirection is fixed.
      for (let i = 0; i < this.sqEntries; i++) this.ring[sqArray / 4 + i] = i;
      this.tail = this.ring[this.sqTail]!;
    } catch (error) {
      close(fd);
      throw error;
    }
  }

  /** A ring with at least `entries` submission slots (rounded up to a power of two by the kernel). */
  static create(entries: number): IoUring {
    let params = new Uint8Array(PARAMS_SIZE);
    // COOP_TASKRUN: completions are posted when this thread next enters the kernel rather than
    // by interrupting it (an IPI, and an EINTR out of epoll_wait). Kernels before 5.19 refuse it.
    new DataView(params.buffer).setUint32(P_FLAGS, IORING_SETUP_COOP_TASKRUN, true);
    let fd = ioUringSetup(entries, params);
    if (fd === -EINVAL) {
      params = new Uint8Array(PARAMS_SIZE);
      fd = ioUringSetup(entries, params);
    }
    if (fd < 0) {
      const errno = -fd;
      const kind = errno === ENOSYS || errno === EPERM ? 'unsupported' : 'setup';
      throw new IoUringError(kind, errno, `io_uring_setup failed: ${errnoName(errno)}`);
    }
    return new IoUring(fd, new DataView(params.buffer));
  }

  /** A ring, or null (after telling `unavailable` why) when this host's io_uring cannot make one. */
  static createOrNull(entries: number, unavailable: (reason: string) => void): IoUring | null {
    try {
      return IoUring.create(entries);
    } catch (error) {
      if (!(error instanceof IoUringError)) throw error;
      unavailable(error.message);
      return null;
    }
  }

  /** Free submission slots (queued SQEs count until the kernel consumed them). */
  get sqSpace(): number {
    return this.sqEntries - ((this.tail - this.ring[this.sqHead]!) >>> 0);
  }

  /** SQEs queued since the last submit. */
  get pending(): number {
    return this.unsubmitted;
  }

  /** Routes completions' wake-ups to an eventfd (IORING_REGISTER_EVENTFD). */
  registerEventfd(eventFd: number): void {
    const arg = new Uint8Array(new Int32Array([eventFd]).buffer);
    const r = ioUringRegister(this.fd, IORING_REGISTER_EVENTFD, arg, 1);
    if (r < 0) throw new IoUringError('register', -r, `io_uring_register EVENTFD failed: ${errnoName(-r)}`);
  }

  /** The next free SQE, zeroed, with its common fields; the caller has checked sqSpace. */
  private prepare(opcode: number, fd: number, tag: number, sub: number, flags: number): number {
    if (this.sqSpace === 0) throw new IoUringError('submit', 0, 'submission queue full');
    const at = (this.tail & this.sqMask) * SQE_WORDS;
    // A loop, not fill(): TypedArray fill is a builtin call, and this runs once per operation.
    const sqes = this.sqes;
    for (let w = at; w < at + SQE_WORDS; w++) sqes[w] = 0;
    this.sqes[at] = opcode | (flags << 8);
    this.sqes[at + 1] = fd;
    this.sqes[at + 8] = tag;
    this.sqes[at + 9] = sub;
    this.tail = (this.tail + 1) >>> 0;
    this.unsubmitted++;
    return at;
  }

  private setU64(word: number, value: number): void {
    setU64Words(this.sqes, word, value);
  }

  /**
   * IORING_OP_READV: `count` iovecs at host address `iovecs`, from file offset `offset` (-1: a
   * stream's current position); `rwFlags` as preadv2's (RWF_NOWAIT).
   */
  readv(fd: number, iovecs: number, count: number, offset: number, tag: number, sub = 0, flags = 0, rwFlags = 0): void {
    this.rw(IORING_OP_READV, fd, iovecs, count, offset, tag, sub, flags, rwFlags);
  }

  /** IORING_OP_WRITEV. */
  writev(fd: number, iovecs: number, count: number, offset: number, tag: number, sub = 0, flags = 0, rwFlags = 0): void {
    this.rw(IORING_OP_WRITEV, fd, iovecs, count, offset, tag, sub, flags, rwFlags);
  }

  private rw(opcode: number, fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number, flags: number, rwFlags: number): void {
    const at = this.prepare(opcode, fd, tag, sub, flags);
    this.setU64(at + 2, offset);
    this.setU64(at + 4, iovecs);
    this.sqes[at + 6] = count;
    this.sqes[at + 7] = rwFlags;
  }

  /** IORING_OP_FSYNC over the whole file; `datasync` as fdatasync(2). */
  fsync(fd: number, datasync: boolean, tag: number, sub = 0, flags = 0): void {
    const at = this.prepare(IORING_OP_FSYNC, fd, tag, sub, flags);
    this.sqes[at + 7] = datasync ? IORING_FSYNC_DATASYNC : 0;
  }

  /** IORING_OP_FALLOCATE: mode in len, the range's length in addr (as liburing encodes it). */
  fallocate(fd: number, mode: number, offset: number, length: number, tag: number, sub = 0, flags = 0): void {
    const at = this.prepare(IORING_OP_FALLOCATE, fd, tag, sub, flags);
    this.setU64(at + 2, offset);
    this.setU64(at + 4, length);
    this.sqes[at + 6] = mode;
  }

  nop(tag: number, sub = 0, flags = 0): void {
    this.prepare(IORING_OP_NOP, -1, tag, sub, flags);
  }

  /**
   * Publishes the queued SQEs and enters the kernel once; with `waitFor` > 0 also waits
   * until that many completions are posted. Returns the SQEs the kernel consumed.
   * EAGAIN/EBUSY (out of resources for now) leave the SQEs queued for the next call.
   */
  submit(waitFor = 0): number {
    if (this.closed) throw new IoUringError('submit', 0, 'ring is closed');
    if (this.unsubmitted === 0 && waitFor === 0) return 0;
    this.ring[this.sqTail] = this.tail;
    for (;;) {
      const r = ioUringEnter(this.fd, this.unsubmitted, waitFor, waitFor > 0 ? IORING_ENTER_GETEVENTS : 0);
      if (r >= 0) {
        this.unsubmitted -= Math.min(r, this.unsubmitted);
        return r;
      }
      if (-r === EINTR) continue;
      if (-r === EAGAIN || -r === EBUSY) return 0;
      throw new IoUringError('submit', -r, `io_uring_enter failed: ${errnoName(-r)}`);
    }
  }

  /**
   * Submits what is queued, waiting for completions until `count` have been handed to `handler`:
   * for requests that complete inside the submitting call (RWF_NOWAIT reads and writes).
   */
  submitAndReapAll(count: number, handler: CompletionHandler): void {
    this.submit(count);
    let reaped = this.reap(handler);
    while (reaped < count) {
      this.submit(1);
      reaped += this.reap(handler);
    }
  }

  /** Calls `handler` for every posted completion, in order, and frees their slots; returns how many. */
  reap(handler: CompletionHandler): number {
    let head = this.ring[this.cqHead]!;
    const tail = this.ring[this.cqTail]!;
    let count = 0;
    while (head !== tail) {
      const at = this.cqes + (head & this.cqMask) * CQE_WORDS;
      const tag = this.ring[at]!;
      const sub = this.ring[at + 1]!;
      const result = this.ringSigned[at + 2]!;
      head = (head + 1) >>> 0;
      // Free the slot before the handler runs: it may queue more work that completes at once.
      this.ring[this.cqHead] = head;
      count++;
      handler(tag, sub, result);
    }
    return count;
  }

  /** Completions posted and not reaped yet. */
  get ready(): number {
    return (this.ring[this.cqTail]! - this.ring[this.cqHead]!) >>> 0;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    munmap(this.sqesAddress, this.sqesBytes);
    munmap(this.ringAddress, this.ringBytes);
    close(this.fd);
  }
}
