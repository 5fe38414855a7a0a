/**
 * A virtio-net Receiver run in the test's own thread: guest RAM mmap'd, one receive queue with
 * posted buffers, a datagram socket pair standing in for the TAP (one frame per read, like a TAP).
 * After every publish of used.idx it checks that whole frames were published, then takes the
 * newly used buffers like a guest and, if asked, posts them again.
 */
import * as assert from 'uvu/assert';
import createDebug from 'debug';
import { memoryFromRegions } from '../../../../src/vmm/guest-ram.js';
import type { GuestMemory } from '../../../../src/vmm/guest-memory.js';
import { close, setNonBlocking, writeFd } from '../../../../src/sys/fd.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap } from '../../../../src/sys/memory.js';
import { socketPair } from '../../../helpers/host-bindings.js';
import { RecordingInterrupt } from '../../../helpers/recording-interrupt.js';
import { SplitQueue } from '../../../../src/virtio/queue.js';
import { ReceiveBuffers, Receiver } from '../../../../src/virtio/devices/net/rx.js';
import { NetStats } from '../../../../src/virtio/devices/net/stats.js';
import { VIRTIO_NET_HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE } from '../../../../src/virtio/devices/net/spec.js';
import { MockSplitQueueDriver } from '../../mock-driver.js';

const RAM = 8 * 2 ** 20;
const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const BUFFER_AREA = 0x100000;
/** Apart enough for the largest buffer used here. */
const BUFFER_STRIDE = 4096;

export function frameBytes(i: number, size: number): Uint8Array {
  const bytes = new Uint8Array(VIRTIO_NET_HDR_SIZE + size);
  for (let j = VIRTIO_NET_HDR_SIZE; j < bytes.length; j++) bytes[j] = (i * 37 + j * 11) & 0xff;
  return bytes;
}

export function numBuffers(header: Uint8Array): number {
  return header[VIRTIO_NET_HDR_NUM_BUFFERS]! | (header[VIRTIO_NET_HDR_NUM_BUFFERS + 1]! << 8);
}

/**
 * A Receiver with `queueSize` posted buffers of `bufferLength` bytes and a socket pair as its TAP.
 * After every publish of used.idx it checks that whole frames were published, then takes the
 * newly used buffers like a guest (their bytes, in order) and, if `repost`, posts them again.
 */
export class RxBed {
  readonly memory: GuestMemory;
  readonly stats = new NetStats();
  /** Every interrupt the receiver raised. */
  readonly interrupt = new RecordingInterrupt();
  readonly receiver: Receiver;
  readonly violations: string[] = [];
  /** Each used buffer's bytes, in used-ring order. */
  readonly taken: Uint8Array[] = [];
  publishes = 0;
  /** Where in `taken` the first frame not yet checked starts. */
  private frameStart = 0;
  private readonly hostAddress: number;
  private readonly tap: number;
  private readonly peer: number;
  private readonly driver: MockSplitQueueDriver;
  private readonly addressOf = new Map<number, number>();

  /** Whether the Receiver is watching its TAP fd (it stops when the guest has no buffers, or for good on an error). */
  watching = false;

  /** `readFrom`: another fd to read frames from instead of the socket pair (e.g. one that fails). */
  constructor(queueSize: number, bufferLength: number, repost: boolean, readFrom?: number) {
    this.hostAddress = mmap(RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    const memory = memoryFromRegions([{ guestBase: 0, size: RAM, hostAddress: this.hostAddress }]);
    this.memory = memory;
    [this.tap, this.peer] = socketPair(AF_UNIX, SOCK_DGRAM);
    setNonBlocking(this.tap);
    const driver = MockSplitQueueDriver.create(memory, 0x1000, queueSize);
    this.driver = driver;
    for (let i = 0; i < queueSize; i++) {
      const address = BUFFER_AREA + i * BUFFER_STRIDE;
      this.addressOf.set(driver.addChain([{ address, length: bufferLength, writable: true }]), address);
    }
    const real = new SplitQueue(memory, driver.layout, { eventIdx: true, indirect: false });
    const afterPublish = (): void => this.afterPublish(repost);
    const queue = new Proxy(real, {
      get(target, property, receiver) {
        const value = Reflect.get(target, property, receiver) as unknown;
        if (typeof value !== 'function') return value;
        const method = value as (...a: unknown[]) => unknown;
        if (property !== 'publishUsed' && property !== 'addUsed') return method.bind(target);
        return (...args: unknown[]) => {
          const result = method.apply(target, args);
          afterPublish();
          return result;
        };
      },
    });
    const log = createDebug('kvm:test:rx');
    const host = {
      watch: () => (this.watching = true),
      unwatch: () => (this.watching = false),
      resume: () => {},
      failDevice: (reason: string) => this.violations.push(`device failed: ${reason}`),
      log,
    };
    this.receiver = new Receiver(
      { memory, queue, queueIndex: 0, interrupt: this.interrupt, host, tapFd: readFrom ?? this.tap, stats: this.stats, log, mergeable: true, guestCsum: true },
      new ReceiveBuffers(),
      true,
    );
  }

  /** Sends frame i of `size` bytes (plus the virtio-net header) as the TAP would hand it over. */
  send(i: number, size: number): void {
    assert.is(writeFd(this.peer, frameBytes(i, size)), VIRTIO_NET_HDR_SIZE + size);
  }

  private afterPublish(repost: boolean): void {
    this.publishes++;
    const used = this.driver.takeUsed();
    // The published entries must end on a frame boundary (num_buffers of each frame's first).
    for (const u of used) this.taken.push(this.memory.slice(this.addressOf.get(u.id)!, u.len).slice());
    let at = this.frameStart;
    while (at < this.taken.length) {
      const count = numBuffers(this.taken[at]!);
      if (count < 1 || at + count > this.taken.length) {
        this.violations.push(`used.idx published ${this.taken.length - at} of a frame's ${count} buffers`);
        break;
      }
      at += count;
    }
    this.frameStart = at;
    if (repost) for (const u of used) this.driver.offer(u.id);
  }

  /** The frames the guest got, each its buffers joined, in used-ring order. */
  frames(): Uint8Array[] {
    const frames: Uint8Array[] = [];
    for (let k = 0; k < this.taken.length; ) {
      const parts = this.taken.slice(k, k + numBuffers(this.taken[k]!));
      const frame = new Uint8Array(parts.reduce((sum, p) => sum + p.length, 0));
      let at = 0;
      for (const p of parts) {
        frame.set(p, at);
        at += p.length;
      }
      frames.push(frame);
      k += parts.length;
    }
    return frames;
  }

  close(): void {
    this.receiver.stop();
    close(this.tap);
    close(this.peer);
    munmap(this.hostAddress, RAM);
  }
}
