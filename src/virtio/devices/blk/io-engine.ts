/**
 * Where a virtio-blk device's I/O runs. The io_uring engine keeps many
 * requests in flight from the one data-plane thread and wakes it through an
 * eventfd on the same epoll loop as the kicks. The synchronous engine runs
 * each operation with preadv/pwritev/fdatasync/fallocate at submit time, one
 * at a time: the fallback where io_uring is disabled (io_uring_disabled,
 * seccomp in containers) and a reference for tests.
 */
import { IoUring, IoUringError, type CompletionHandler } from '../../../sys/io-uring.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, drainEventfd, eventfd } from '../../../sys/eventfd.js';
import { close } from '../../../sys/fd.js';
import { fallocate, fdatasync } from '../../../sys/files.js';
import { preadv, pwritev } from '../../../sys/iovec.js';

export interface IoEngine {
  readonly kind: 'io-uring' | 'sync';
  /** Readable when completions are waiting; undefined when they are ready right after submit. */
  readonly eventFd: number | undefined;
  /** Most operations that may be in flight at once (the completion ring's size). */
  readonly capacity: number;
  /** Operations queued since the last submit. */
  readonly pending: number;
  /** Completions waiting to be reaped. */
  readonly ready: number;
  readv(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void;
  writev(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void;
  fdatasync(fd: number, tag: number, sub: number): void;
  fallocate(fd: number, mode: number, offset: number, length: number, tag: number, sub: number): void;
  /** Hands the queued operations to the kernel (or runs them). */
  submit(): void;
  /** Blocks until at least one completion is ready (used only to drain at reset). */
  wait(): void;
  reap(handler: CompletionHandler): number;
  /** Clears the wake-up eventfd before reaping. */
  acknowledge(): void;
  close(): void;
}

export class UringEngine implements IoEngine {
  readonly kind = 'io-uring';
  readonly eventFd: number;
  readonly capacity: number;

  private constructor(private readonly ring: IoUring) {
    this.eventFd = eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
    try {
      ring.registerEventfd(this.eventFd);
    } catch (error) {
      close(this.eventFd);
      ring.close();
      throw error;
    }
    this.capacity = ring.cqEntries;
  }

  /** A ring for `entries` operations in flight; throws IoUringError when the host has no io_uring. */
  static create(entries: number): UringEngine {
    return new UringEngine(IoUring.create(entries));
  }

  get pending(): number {
    return this.ring.pending;
  }

  get ready(): number {
    return this.ring.ready;
  }

  private room(): void {
    // A full submission ring is handed to the kernel first, which frees all of it.
    if (this.ring.sqSpace === 0) this.ring.submit();
  }

  readv(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    this.room();
    this.ring.readv(fd, iovecs, count, offset, tag, sub);
  }

  writev(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    this.room();
    this.ring.writev(fd, iovecs, count, offset, tag, sub);
  }

  fdatasync(fd: number, tag: number, sub: number): void {
    this.room();
    this.ring.fsync(fd, true, tag, sub);
  }

  fallocate(fd: number, mode: number, offset: number, length: number, tag: number, sub: number): void {
    this.room();
    this.ring.fallocate(fd, mode, offset, length, tag, sub);
  }

  submit(): void {
    this.ring.submit();
  }

  wait(): void {
    this.ring.submit(1);
  }

  reap(handler: CompletionHandler): number {
    return this.ring.reap(handler);
  }

  acknowledge(): void {
    drainEventfd(this.eventFd);
  }

  close(): void {
    this.ring.close();
    close(this.eventFd);
  }
}

/** A completion an engine that runs operations itself keeps until reap: tag, sub, result. */
export type Completion = readonly [tag: number, sub: number, result: number];

/** Hands `done` to the handler in completion order, emptying it; returns how many. */
export function reapInOrder(done: Completion[], handler: CompletionHandler): number {
  let count = 0;
  while (done.length > 0) {
    const [tag, sub, result] = done.shift()!;
    count++;
    handler(tag, sub, result);
  }
  return count;
}

type SyncOperation =
  | { readonly kind: 'readv' | 'writev'; readonly fd: number; readonly iovecs: number; readonly count: number; readonly offset: number; readonly tag: number; readonly sub: number }
  | { readonly kind: 'fdatasync'; readonly fd: number; readonly tag: number; readonly sub: number }
  | { readonly kind: 'fallocate'; readonly fd: number; readonly mode: number; readonly offset: number; readonly length: number; readonly tag: number; readonly sub: number };

export class SyncEngine implements IoEngine {
  readonly kind = 'sync';
  readonly eventFd = undefined;
  readonly capacity = 1 << 20;
  private readonly queued: SyncOperation[] = [];
  private readonly done: Completion[] = [];

  get pending(): number {
    return this.queued.length;
  }

  get ready(): number {
    return this.done.length;
  }

  readv(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    this.queued.push({ kind: 'readv', fd, iovecs, count, offset, tag, sub });
  }

  writev(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    this.queued.push({ kind: 'writev', fd, iovecs, count, offset, tag, sub });
  }

  fdatasync(fd: number, tag: number, sub: number): void {
    this.queued.push({ kind: 'fdatasync', fd, tag, sub });
  }

  fallocate(fd: number, mode: number, offset: number, length: number, tag: number, sub: number): void {
    this.queued.push({ kind: 'fallocate', fd, mode, offset, length, tag, sub });
  }

  submit(): void {
    for (const op of this.queued.splice(0)) {
      let result: number;
      switch (op.kind) {
        case 'readv':
        case 'writev':
          result = (op.kind === 'readv' ? preadv : pwritev)(op.fd, op.iovecs, op.count, op.offset);
          break;
        case 'fdatasync':
          result = fdatasync(op.fd);
          break;
        case 'fallocate':
          result = fallocate(op.fd, op.mode, op.offset, op.length);
          break;
      }
      this.done.push([op.tag, op.sub, result]);
    }
  }

  wait(): void {
    this.submit();
  }

  reap(handler: CompletionHandler): number {
    return reapInOrder(this.done, handler);
  }

  acknowledge(): void {}

  close(): void {
    this.queued.length = 0;
    this.done.length = 0;
  }
}

/** io_uring where the host has it (or when asked for), else the synchronous engine. */
export function createIoEngine(kind: 'auto' | 'io-uring' | 'sync', entries: number, log: (format: string, ...args: unknown[]) => void): IoEngine {
  if (kind === 'sync') return new SyncEngine();
  try {
    return UringEngine.create(entries);
  } catch (error) {
    if (kind === 'io-uring' || !(error instanceof IoUringError)) throw error;
    log('io_uring unavailable (%s): serving one request at a time', error.message);
    return new SyncEngine();
  }
}
