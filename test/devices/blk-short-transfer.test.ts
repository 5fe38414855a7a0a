/**
 * A read or write the kernel completes only in part (preadv/pwritev and io_uring may return fewer
 * bytes than asked) is continued from where it stopped, over the rest of the guest's buffers,
 * until the request is whole. The device runs in-process on an engine that moves at most a few
 * hundred bytes per operation, so every request is resumed many times.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createDebug from 'debug';
import { VirtioBlk } from '../../src/virtio/devices/blk/device.js';
import { SyncEngine, UringEngine, type IoEngine } from '../../src/virtio/devices/blk/io-engine.js';
import * as S from '../../src/virtio/devices/blk/spec.js';
import { SplitQueue } from '../../src/virtio/queue.js';
import { featureBit, VIRTIO_F_VERSION_1 } from '../../src/virtio/virtio-constants.js';
import { memoryFromRegions } from '../../src/vmm/guest-ram.js';
import { HostBuffer } from '../../src/vmm/host-buffer.js';
import { setIovec } from '../../src/vmm/io-uring.js';
import { EPOLLIN, EPOLL_EVENT_SIZE, IOVEC_SIZE, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, O_RDWR, PROT_READ, PROT_WRITE, close, epollAdd, epollCreate, epollWait, mmap, munmap, open, view } from '../../src/vmm/libc.js';
import { MockSplitQueueDriver } from '../virtio/mock-driver.js';
import { pattern, SECTOR } from './blk-helpers.js';

const RAM = 4 * 2 ** 20;
const QUEUE_SIZE = 16;
/** The most bytes the engine moves per operation: not a multiple of anything the guest uses. */
const STEP = 700;

/** Another engine, except that each read or write covers at most `step` bytes of its iovecs. */
class ShortTransferEngine implements IoEngine {
  readonly kind: IoEngine['kind'];
  readonly eventFd: number | undefined;
  readonly capacity: number;
  /** Copies of the callers' iovecs, cut at `step` bytes (one array per operation in flight). */
  private readonly cuts: HostBuffer[] = [];
  operations = 0;

  constructor(
    private readonly inner: IoEngine,
    private readonly step: number,
  ) {
    this.kind = inner.kind;
    this.eventFd = inner.eventFd;
    this.capacity = inner.capacity;
  }

  get pending(): number {
    return this.inner.pending;
  }

  get ready(): number {
    return this.inner.ready;
  }

  private cut(iovecs: number, count: number): [number, number] {
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
    this.operations++;
    return [copy.address, n];
  }

  readv(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    const [address, n] = this.cut(iovecs, count);
    this.inner.readv(fd, address, n, offset, tag, sub);
  }

  writev(fd: number, iovecs: number, count: number, offset: number, tag: number, sub: number): void {
    const [address, n] = this.cut(iovecs, count);
    this.inner.writev(fd, address, n, offset, tag, sub);
  }

  fdatasync(fd: number, tag: number, sub: number): void {
    this.inner.fdatasync(fd, tag, sub);
  }

  fallocate(fd: number, mode: number, offset: number, length: number, tag: number, sub: number): void {
    this.inner.fallocate(fd, mode, offset, length, tag, sub);
  }

  submit(): void {
    this.inner.submit();
    // The kernel has read the iovec arrays once the operations are submitted (io_uring copies them
    // at issue; the synchronous engine has run them).
    for (const copy of this.cuts.splice(0)) copy.free();
  }

  wait(): void {
    this.submit();
  }

  reap(handler: Parameters<IoEngine['reap']>[0]): number {
    return this.inner.reap(handler);
  }

  acknowledge(): void {
    this.inner.acknowledge();
  }

  close(): void {
    this.inner.close();
  }
}

/** What the data-plane thread's epoll loop does for the fds a device watches: level-triggered callbacks. */
class Watcher {
  private readonly epfd = epollCreate();
  private readonly events = new Uint8Array(EPOLL_EVENT_SIZE);
  private onReadable: (() => void) | undefined;

  watch(fd: number, onReadable: () => void): void {
    epollAdd(this.epfd, fd, EPOLLIN, fd);
    this.onReadable = onReadable;
  }

  /** Waits up to `ms` for the watched fd, and calls its callback if it is readable. */
  turn(ms: number): void {
    if (this.onReadable && epollWait(this.epfd, this.events, ms) > 0) this.onReadable();
  }

  close(): void {
    close(this.epfd);
  }
}

for (const kind of ['sync', 'io-uring'] as const) test(`${kind}: reads and writes moved a few hundred bytes at a time come out whole, over scattered buffers`, () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-blk-short-'));
  const file = path.join(dir, 'disk.img');
  const sectors = 256;
  writeFileSync(file, pattern(0, sectors * SECTOR));
  const fd = open(file, O_RDWR);
  const hostAddress = mmap(RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  const memory = memoryFromRegions([{ guestBase: 0, size: RAM, hostAddress }]);
  const engine = new ShortTransferEngine(kind === 'sync' ? new SyncEngine() : UringEngine.create(QUEUE_SIZE), STEP);
  const device = new VirtioBlk(
    { name: 'vda', fd, sizeBytes: sectors * SECTOR, readOnly: false, direct: false, blockDevice: false, serial: 'short', queues: 1, queueSize: QUEUE_SIZE, engine: kind, pollMicroseconds: 0 },
    () => engine,
  );
  const driver = MockSplitQueueDriver.create(memory, 0x1000, QUEUE_SIZE);
  const queue = new SplitQueue(memory, driver.layout, { eventIdx: false, indirect: false });
  const failures: string[] = [];
  const watcher = new Watcher();
  const host = {
    watch: (fd: number, onReadable: () => void) => watcher.watch(fd, onReadable),
    unwatch: () => {},
    failDevice: (reason: string) => failures.push(reason),
    log: createDebug('kvm:test:short'),
  };
  device.activate({ memory, queues: [queue], features: featureBit(VIRTIO_F_VERSION_1), interrupt: { signalUsed: () => {}, signalConfigChange: () => {} }, host });

  let next = 0x100000;
  const allocate = (bytes: number): number => {
    const at = next;
    next += Math.ceil((bytes + 1) / 4096) * 4096 + 4096; // a gap after each: no two buffers adjacent
    return at;
  };
  /** One request: header, data in buffers of `pieces` bytes each (scattered), status. */
  const request = (type: number, sector: number, pieces: number[], out?: Uint8Array): { status: number; data: Uint8Array } => {
    const header = allocate(S.BLK_REQ_HEADER_SIZE);
    memory.writeU32(header + S.BLK_REQ_TYPE, type);
    memory.writeU64(header + S.BLK_REQ_SECTOR, BigInt(sector));
    const buffers = [{ address: header, length: S.BLK_REQ_HEADER_SIZE, writable: false }];
    let at = 0;
    const placed: Array<[number, number]> = [];
    for (const length of pieces) {
      const address = allocate(length);
      if (out) memory.write(address, out.subarray(at, at + length));
      else memory.fill(address, length, 0xee);
      buffers.push({ address, length, writable: out === undefined });
      placed.push([address, length]);
      at += length;
    }
    const status = allocate(1);
    memory.writeU8(status, 0xff);
    buffers.push({ address: status, length: 1, writable: true });
    driver.addChain(buffers);
    device.queueNotified(0);
    // The synchronous engine finishes within the notification; io_uring's completions come
    // through its eventfd (called here as the epoll loop would), each answered by a resubmit.
    let used = driver.takeUsed();
    for (let turns = 0; used.length === 0 && turns < 1000; turns++) {
      watcher.turn(2);
      used = driver.takeUsed();
    }
    assert.is(used.length, 1, 'the request completed');
    const data = new Uint8Array(at);
    let filled = 0;
    for (const [address, length] of placed) {
      data.set(memory.slice(address, length), filled);
      filled += length;
    }
    return { status: memory.readU8(status), data };
  };

  try {
    const before = engine.operations;
    const read = request(S.VIRTIO_BLK_T_IN, 3, [4096, 512, 1536, 2048]);
    assert.is(read.status, S.VIRTIO_BLK_S_OK);
    assert.equal(read.data, pattern(3 * SECTOR, 8192));
    assert.ok(engine.operations - before >= Math.ceil(8192 / STEP), `resumed ${engine.operations - before} times`);

    const out = new Uint8Array(12 * SECTOR).map((_, i) => (i * 31 + 7) & 0xff);
    const write = request(S.VIRTIO_BLK_T_OUT, 100, [1024, 3072, 512, 1536], out);
    assert.is(write.status, S.VIRTIO_BLK_S_OK);
    const image = readFileSync(file);
    assert.equal(new Uint8Array(image.subarray(100 * SECTOR, 112 * SECTOR)), out);
    assert.equal(new Uint8Array(image.subarray(99 * SECTOR, 100 * SECTOR)), pattern(99 * SECTOR, SECTOR), 'the sector before is untouched');
    assert.equal(new Uint8Array(image.subarray(112 * SECTOR, 113 * SECTOR)), pattern(112 * SECTOR, SECTOR), 'the sector after is untouched');

    // A request resumed more times than one pass of the device's loop has rounds: still whole.
    const long = request(S.VIRTIO_BLK_T_IN, 0, [32768]);
    assert.is(long.status, S.VIRTIO_BLK_S_OK);
    assert.equal(long.data, pattern(0, 32768));
    assert.equal(failures, []);
  } finally {
    device.reset(); // closes the engine
    watcher.close();
    munmap(hostAddress, RAM);
    close(fd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
