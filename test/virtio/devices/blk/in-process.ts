/**
 * virtio-blk run in the test's own thread, on an I/O engine the test wraps: the kernel's answers
 * (short transfers, errors) become whatever a case needs, and what the device asked of the engine
 * can be counted. Guest RAM is mmap'd (iovecs need host addresses); the test plays the driver on
 * one queue and calls the engine's eventfd callback when it is readable, as the epoll loop would.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createDebug from 'debug';
import { VirtioBlk } from '../../../../src/virtio/devices/blk/device.js';
import { SyncEngine, UringEngine, type IoEngine } from '../../../../src/virtio/devices/blk/io-engine.js';
import type { BlkOptions } from '../../../../src/virtio/devices/blk/options.js';
import * as S from '../../../../src/virtio/devices/blk/spec.js';
import { SplitQueue } from '../../../../src/virtio/queue.js';
import { featureBit, VIRTIO_F_RING_EVENT_IDX, VIRTIO_F_VERSION_1 } from '../../../../src/virtio/virtio-constants.js';
import type { GuestMemory } from '../../../../src/vmm/guest-memory.js';
import { memoryFromRegions } from '../../../../src/vmm/guest-ram.js';
import { HostBuffer } from '../../../../src/sys/host-buffer.js';
import { EPOLLIN, EPOLL_EVENT_SIZE, epollAdd, epollCreate, epollRemove, epollWait } from '../../../../src/sys/epoll.js';
import { O_RDWR, close, open } from '../../../../src/sys/fd.js';
import { IOVEC_SIZE, setIovec } from '../../../../src/sys/iovec.js';
import {
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  mmap,
  munmap,
  view,
} from '../../../../src/sys/memory.js';
import { MockSplitQueueDriver } from '../../mock-driver.js';
import { RecordingInterrupt } from '../../../helpers/recording-interrupt.js';
import { pattern, SECTOR } from './helpers.js';

export type EngineKind = 'sync' | 'io-uring';
export type Operation = 'readv' | 'writev' | 'fdatasync' | 'fallocate';

/** NORESERVE: only the pages a test touches cost anything. */
const RAM = 64 * 2 ** 20;
const RING_AREA = 0x1000;
const BUFFER_AREA = 0x100000;

/**
 * Another engine with the kernel's answers bent: each read or write moves at most `step` bytes,
 * and `failWith(op)` may answer an operation with -errno instead of running it. Counts operations
 * and the most that were in flight at once.
 */
export class EngineDouble implements IoEngine {
  readonly kind: IoEngine['kind'];
  readonly eventFd: number | undefined;
  readonly capacity: number;
  step = Infinity;
  failWith: (op: Operation) => number | undefined = () => undefined;
  operations = 0;
  inFlight = 0;
  mostInFlight = 0;
  /** While set, reads and writes are held here, not given to the kernel, until release(). */
  stalled = false;
  /** Held operations, and the bytes of each that point outside guest RAM (a bounce buffer). */
  private readonly held: Array<{ readonly run: () => void; readonly outside: number }> = [];
  /** Where guest RAM is in host memory; iovecs elsewhere are the device's own buffers. */
  guestRam: { readonly host: number; readonly size: number } | undefined;
  /** Copies of the callers' iovecs, cut at `step` bytes, freed once submitted. */
  private readonly cuts: HostBuffer[] = [];
  /** Answers made up here: [tag, sub, result], delivered by the next reap. */
  private readonly madeUp: Array<readonly [number, number, number]> = [];

  constructor(private readonly inner: IoEngine) {
    this.kind = inner.kind;
    this.eventFd = inner.eventFd;
    this.capacity = inner.capacity;
  }

  static create(kind: EngineKind, entries: number): EngineDouble {
    return new EngineDouble(kind === 'sync' ? new SyncEngine() : UringEngine.create(entries));
  }

  get pending(): number {
    return this.inner.pending;
  }

  get ready(): number {
    return this.inner.ready + this.madeUp.length;
  }

  /** True when the operation was answered here (an injected error). */
  private intercept(op: Operation, tag: number, sub: number): boolean {
    this.operations++;
    this.inFlight++;
    this.mostInFlight = Math.max(this.mostInFlight, this.inFlight);
    const errno = this.failWith(op);
    if (errno === undefined) return false;
    this.madeUp.push([tag, sub, -errno]);
    return true;
  }

  private cut(iovecs: number, count: number): [number, number] {
    if (!Number.isFinite(this.step)) return [iovecs, count];
    const source = new Uint32Array(view(iovecs, count * IOVEC_SIZE));
    const copy = new HostBuffer(count * IOVEC_SIZE);
    this.cuts.push(copy);
    let left = this.step;
    let n = 0;
    for (let i = 0; i < count && left > 0; i++, n++) {
      const length = Math.min(source[4 * i + 2]!, left);
      setIovec(copy.words, i, source[4 * i]! + source[4 * i + 1]! * 2 ** 32, length);
      left -= length;
    }
    return [copy.address, n];
  }

  readv(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    if (this.intercept('readv', tag, sub)) return;
    const [address, n] = this.cut(iovecs, count);
    if (this.hold(address, n, () => this.inner.readv(fd, address, n, offset, tag, sub))) return;
    this.inner.readv(fd, address, n, offset, tag, sub);
  }

  writev(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    if (this.intercept('writev', tag, sub)) return;
    const [address, n] = this.cut(iovecs, count);
    if (this.hold(address, n, () => this.inner.writev(fd, address, n, offset, tag, sub))) return;
    this.inner.writev(fd, address, n, offset, tag, sub);
  }

  private hold(iovecs: number, count: number, run: () => void): boolean {
    if (!this.stalled) return false;
    const words = new Uint32Array(view(iovecs, count * IOVEC_SIZE));
    let outside = 0;
    for (let i = 0; i < count; i++) {
      const base = words[4 * i]! + words[4 * i + 1]! * 2 ** 32;
      const inRam = this.guestRam !== undefined && base >= this.guestRam.host && base < this.guestRam.host + this.guestRam.size;
      if (!inRam) outside += words[4 * i + 2]!;
    }
    this.held.push({ run, outside });
    return true;
  }

  /** Bytes of the held operations' buffers outside guest RAM: the bounce buffers in flight. */
  get heldOutsideRam(): number {
    return this.held.reduce((sum, h) => sum + h.outside, 0);
  }

  get heldCount(): number {
    return this.held.length;
  }

  /** Gives the held operations to the kernel. */
  release(): void {
    this.stalled = false;
    for (const h of this.held.splice(0)) h.run();
    this.inner.submit();
  }

  fdatasync(fd: number, tag: number, sub: number): void {
    if (!this.intercept('fdatasync', tag, sub)) this.inner.fdatasync(fd, tag, sub);
  }

  fallocate(fd: number, mode: number, offset: number, length: number, tag: number, sub: number): void {
    if (!this.intercept('fallocate', tag, sub)) this.inner.fallocate(fd, mode, offset, length, tag, sub);
  }

  submit(): void {
    this.inner.submit();
    // io_uring has read the iovec arrays once they are submitted; the synchronous engine has run them.
    if (this.held.length === 0) for (const copy of this.cuts.splice(0)) copy.free();
  }

  wait(): void {
    if (this.madeUp.length === 0) this.inner.wait();
  }

  reap(handler: Parameters<IoEngine['reap']>[0]): number {
    const answer = (tag: number, sub: number, result: number): void => {
      this.inFlight--;
      handler(tag, sub, result);
    };
    let count = 0;
    for (const [tag, sub, result] of this.madeUp.splice(0)) {
      answer(tag, sub, result);
      count++;
    }
    return count + this.inner.reap(answer);
  }

  acknowledge(): void {
    this.inner.acknowledge();
  }

  close(): void {
    this.inner.close();
  }
}

/** What the data-plane thread's epoll loop does for the fd a device watches: a level-triggered callback. */
class Watcher {
  private readonly epfd = epollCreate();
  private readonly events = new Uint8Array(EPOLL_EVENT_SIZE);
  private onReadable: (() => void) | undefined;

  watch(fd: number, onReadable: () => void): void {
    epollAdd(this.epfd, fd, EPOLLIN, fd);
    this.watched = fd;
    this.onReadable = onReadable;
  }

  unwatch(): void {
    if (this.watched !== undefined) epollRemove(this.epfd, this.watched);
    this.watched = undefined;
    this.onReadable = undefined;
  }

  private watched: number | undefined;

  /** Waits up to `ms` for the watched fd and calls its callback if it became readable. */
  turn(ms: number): void {
    if (this.onReadable && epollWait(this.epfd, this.events, ms) > 0) this.onReadable();
  }

  close(): void {
    close(this.epfd);
  }
}

export interface Posted {
  readonly head: number;
  readonly statusAddress: number;
  /** The data buffers in chain order: [guest address, length]. */
  readonly pieces: ReadonlyArray<readonly [number, number]>;
}

export interface Answer {
  readonly status: number;
  readonly data: Uint8Array;
}

/** A disk image of `sectors` pattern sectors served by an in-process VirtioBlk on `engine`. */
export class InProcessBlk {
  readonly file: string;
  readonly memory: GuestMemory;
  driver: MockSplitQueueDriver;
  readonly failures: string[] = [];
  /** Every interrupt the device raised, in every session. */
  readonly interrupt = new RecordingInterrupt();
  readonly device: VirtioBlk;
  private readonly dir: string;
  private readonly fd: number;
  private readonly hostAddress: number;
  private readonly watcher = new Watcher();
  private next = BUFFER_AREA;

  constructor(
    /** The engine of the current session (a reset closes it; the next activation gets a new one). */
    public engine: EngineDouble,
    sectors: number,
    queueSize: number,
    extraFeatures = 0n,
    /** Device options beyond the defaults here (e.g. direct, shared state). */
    extraOptions: Partial<BlkOptions> = {},
  ) {
    this.dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-blk-inproc-'));
    this.file = path.join(this.dir, 'disk.img');
    writeFileSync(this.file, pattern(0, sectors * SECTOR));
    this.fd = open(this.file, O_RDWR);
    this.hostAddress = mmap(RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    this.memory = memoryFromRegions([{ guestBase: 0, size: RAM, hostAddress: this.hostAddress }]);
    this.device = new VirtioBlk(
      {
        name: 'vda',
        fd: this.fd,
        sizeBytes: sectors * SECTOR,
        readOnly: false,
        direct: false,
        blockDevice: false,
        serial: 'inproc',
        queues: 1,
        queueSize,
        engine: engine.kind,
        pollMicroseconds: 0,
        ...extraOptions,
      },
      undefined,
      (entries) => {
        if (this.engineUsed) this.engine = EngineDouble.create(this.engine.kind, entries);
        this.engineUsed = true;
        this.engine.guestRam = { host: this.hostAddress, size: RAM };
        return this.engine;
      },
    );
    this.queueSize = queueSize;
    this.features = featureBit(VIRTIO_F_VERSION_1) | extraFeatures;
    this.driver = this.activate(0);
  }

  private readonly queueSize: number;
  private readonly features: bigint;
  private engineUsed = false;

  /** Activates the device on fresh rings for the session of reset epoch `resetEpoch`. */
  private activate(resetEpoch: number): MockSplitQueueDriver {
    this.memory.fill(RING_AREA, BUFFER_AREA - RING_AREA, 0);
    const driver = MockSplitQueueDriver.create(this.memory, RING_AREA, this.queueSize);
    const eventIdx = (this.features & featureBit(VIRTIO_F_RING_EVENT_IDX)) !== 0n;
    const queue = new SplitQueue(this.memory, driver.layout, { eventIdx, indirect: false });
    const watcher = this.watcher;
    const host = {
      watch: (fd: number, onReadable: () => void) => watcher.watch(fd, onReadable),
      unwatch: () => watcher.unwatch(),
      resume: () => {},
      failDevice: (reason: string) => this.failures.push(reason),
      log: createDebug('kvm:test:blk-inproc'),
    };
    this.device.activate({ memory: this.memory, queues: [queue], features: this.features, interrupt: this.interrupt, host, resetEpoch });
    return driver;
  }

  /** A driver reset and a new session (the transport bumps the reset epoch), on fresh rings. */
  resetAndReactivate(resetEpoch: number): void {
    this.device.reset();
    this.driver = this.activate(resetEpoch);
  }

  /** Guest memory for `bytes`, with an unused page after it so no two buffers are adjacent. */
  private allocate(bytes: number): number {
    const at = this.next;
    this.next += Math.ceil((bytes + 1) / 4096) * 4096 + 4096;
    return at;
  }

  /** Puts a request on the ring (not yet notified): header, data in buffers of `pieces` bytes, status. */
  post(type: number, sector: number, pieces: readonly number[] = [], out?: Uint8Array): Posted {
    const { memory } = this;
    const header = this.allocate(S.BLK_REQ_HEADER_SIZE);
    memory.writeU32(header + S.BLK_REQ_TYPE, type);
    memory.writeU32(header + 4, 0);
    memory.writeU64(header + S.BLK_REQ_SECTOR, BigInt(sector));
    const buffers = [{ address: header, length: S.BLK_REQ_HEADER_SIZE, writable: false }];
    const placed: Array<[number, number]> = [];
    let at = 0;
    for (const length of pieces) {
      const address = this.allocate(length);
      if (out) memory.write(address, out.subarray(at, at + length));
      else memory.fill(address, length, 0xee);
      buffers.push({ address, length, writable: out === undefined });
      placed.push([address, length]);
      at += length;
    }
    const statusAddress = this.allocate(1);
    memory.writeU8(statusAddress, 0xff);
    buffers.push({ address: statusAddress, length: 1, writable: true });
    const head = this.driver.addChain(buffers);
    return { head, statusAddress, pieces: placed };
  }

  /** Notifies the device and waits (turning the engine's eventfd like the epoll loop) until `count` requests are used. */
  run(count: number): void {
    this.device.queueNotified(0);
    let used = this.driver.takeUsed().length;
    for (let turns = 0; used < count && turns < 1000; turns++) {
      this.watcher.turn(2);
      used += this.driver.takeUsed().length;
    }
    if (used !== count) throw new Error(`${used} of ${count} requests completed`);
  }

  answer(posted: Posted): Answer {
    const length = posted.pieces.reduce((sum, [, n]) => sum + n, 0);
    const data = new Uint8Array(length);
    let at = 0;
    for (const [address, n] of posted.pieces) {
      data.set(this.memory.slice(address, n), at);
      at += n;
    }
    return { status: this.memory.readU8(posted.statusAddress), data };
  }

  /** One request, posted, notified and answered. */
  request(type: number, sector: number, pieces: readonly number[] = [], out?: Uint8Array): Answer {
    const posted = this.post(type, sector, pieces, out);
    this.run(1);
    return this.answer(posted);
  }

  close(): void {
    if (this.engine.heldCount > 0) this.engine.release(); // the reset below waits for them
    this.device.reset(); // waits for what is in flight, closes the engine
    this.watcher.close();
    munmap(this.hostAddress, RAM);
    close(this.fd);
    rmSync(this.dir, { recursive: true, force: true });
  }
}
