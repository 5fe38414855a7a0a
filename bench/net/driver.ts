/**
 * virtio-net drivers for benchmarks, over the host-side harness (real MMIO
 * transport, real data-plane thread, no guest CPU), behaving on the rings
 * like Linux's virtio_net: fixed buffers recycled through the rings, avail.idx
 * published once per batch, a kick only when avail_event asks for one
 * (EVENT_IDX), and a wait for the interrupt with used_event set to the next
 * entry awaited, as a halting KVM vCPU waits (halt-poll.ts: an adaptive poll
 * window, then a sleep in epoll_wait on the interrupt eventfd).
 */
import { memoryFence } from '../../src/virtio/memory-fence.js';
import { VIRTIO_NET_HDR_NUM_BUFFERS } from '../../src/virtio/devices/net/spec.js';
import type { VirtioMmioHarness } from '../../test/helpers/virtio-harness.js';
import type { MockSplitQueueDriver } from '../../test/virtio/mock-driver.js';
import { HaltPoller, interruptLine, type DriverWait, type InterruptLine } from '../halt-poll.js';

const INDEX_MASK = 0xffff;
/** Part of the receive ring the driver lets fill before it is interrupted to take and repost buffers. */
const RX_BATCH_SHARE = 1 / 4;

class RingDriver {
  protected lastUsed: number;
  protected published: number;
  /** The rings as a driver sees them: plain views, no per-access lookups. */
  private readonly avail: DataView;
  private readonly used: DataView;
  private readonly size: number;
  private readonly vcpu: HaltPoller;
  /** More used entries than this are what the current wait is for. */
  private awaitedAhead = 0;
  private readonly awaitedArrived = (): boolean => ((this.usedIndex - this.lastUsed) & INDEX_MASK) > this.awaitedAhead;
  private readonly line: InterruptLine;

  constructor(
    protected readonly h: VirtioMmioHarness,
    protected readonly queue: number,
    protected readonly ring: MockSplitQueueDriver,
    wait: DriverWait,
  ) {
    this.size = ring.size;
    this.vcpu = new HaltPoller(wait);
    this.line = interruptLine(h);
    const view = (address: number, length: number): DataView => {
      const bytes = h.memory.slice(address, length);
      return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    };
    this.avail = view(ring.layout.availRing, 6 + 2 * this.size);
    this.used = view(ring.layout.usedRing, 6 + 8 * this.size);
    this.lastUsed = this.usedIndex;
    this.published = this.avail.getUint16(2, true);
  }

  protected get usedIndex(): number {
    return this.used.getUint16(2, true);
  }

  /** The used element at free-running position `position`: its id and length. */
  protected usedId(position: number): number {
    return this.used.getUint32(4 + 8 * (position & (this.size - 1)), true);
  }

  protected usedLength(position: number): number {
    return this.used.getUint32(8 + 8 * (position & (this.size - 1)), true);
  }

  /** Puts `head` in the avail ring `offset` entries after the published index (not yet published). */
  protected offer(offset: number, head: number): void {
    this.avail.setUint16(4 + 2 * ((this.published + offset) & (this.size - 1)), head, true);
  }

  protected publish(count: number): void {
    const old = this.published;
    this.published = (old + count) & INDEX_MASK;
    this.avail.setUint16(2, this.published, true);
    memoryFence(); // avail.idx visible before avail_event is read (virtio 2.7.13.3)
    const availEvent = this.used.getUint16(4 + 8 * this.size, true);
    // vring_need_event: kick when the new index passed avail_event.
    if (((this.published - availEvent - 1) & INDEX_MASK) < ((this.published - old) & INDEX_MASK)) this.h.kick(this.queue);
  }

  /** Whether the device used more than `ahead` more entries, waiting for interrupts until it does (false after timeoutMs). */
  protected waitForUsed(timeoutMs: number, ahead = 0): boolean {
    this.awaitedAhead = ahead;
    if (this.awaitedArrived()) return true;
    // Ask for an interrupt `ahead` entries on (Linux's transmit path waits for 3/4 of what is in flight),
    // then halt: the halt looks again first, as entries may have landed meanwhile. An interrupt left
    // over from entries already taken ends a sleep at once; the halt then looks again.
    this.avail.setUint16(4 + 2 * this.size, (this.lastUsed + ahead) & INDEX_MASK, true);
    memoryFence();
    return this.vcpu.halt(this.awaitedArrived, this.line, timeoutMs);
  }
}

/**
 * Buffers for a driver's ring slots, allocated once and handed to the driver of every round: a
 * round that touched guest RAM for the first time would charge the device with page faults
 * (zeroing huge pages inside its reads) that the raw loop, reusing its buffers, never pays.
 */
export function benchBuffers(h: VirtioMmioHarness, count: number, bytes: number): number[] {
  return Array.from({ length: count }, () => h.allocate(bytes));
}

/** Sends one fixed frame (virtio-net header included) from every slot of the ring, over and over. */
export class TxBenchDriver extends RingDriver {
  /** `buffers`: one per ring slot, at least `frame.length` bytes each (benchBuffers). */
  constructor(h: VirtioMmioHarness, queue: number, ring: MockSplitQueueDriver, frame: Uint8Array, buffers: readonly number[], wait: DriverWait) {
    super(h, queue, ring, wait);
    for (let slot = 0; slot < ring.size; slot++) {
      const address = buffers[slot]!;
      h.memory.write(address, frame);
      ring.writeDescriptor(slot, { address, length: frame.length, flags: 0, next: 0 });
    }
  }

  /** Transmits `count` frames; returns the seconds it took (until the last one was used). */
  run(count: number): number {
    const size = this.ring.size;
    let posted = 0;
    let completed = 0;
    let inFlight = 0;
    let nextSlot = 0;
    const started = performance.now();
    while (completed < count) {
      let batch = 0;
      while (inFlight < size && posted < count) {
        this.offer(batch, nextSlot);
        nextSlot = (nextSlot + 1) % size;
        posted++;
        inFlight++;
        batch++;
      }
      if (batch > 0) this.publish(batch);
      if (!this.waitForUsed(5000, Math.floor((inFlight * 3) / 4))) throw new Error(`transmit stalled after ${completed} of ${count} frames`);
      const end = this.usedIndex;
      const done = (end - this.lastUsed) & INDEX_MASK;
      this.lastUsed = end;
      completed += done;
      inFlight -= done;
    }
    return (performance.now() - started) / 1000;
  }
}

/** Posts `bufferSize`-byte receive buffers in every slot and reposts each as soon as it is used. */
export class RxBenchDriver extends RingDriver {
  /** num_buffers of the header at the start of each slot's buffer. */
  private readonly numBuffers: DataView[] = [];
  private posted = false;

  /** `buffers`: one per ring slot, `bufferSize` bytes each (benchBuffers). */
  constructor(h: VirtioMmioHarness, queue: number, ring: MockSplitQueueDriver, bufferSize: number, buffers: readonly number[], wait: DriverWait) {
    super(h, queue, ring, wait);
    for (let slot = 0; slot < ring.size; slot++) {
      const address = buffers[slot]!;
      const header = h.memory.slice(address + VIRTIO_NET_HDR_NUM_BUFFERS, 2);
      this.numBuffers.push(new DataView(header.buffer, header.byteOffset, 2));
      ring.writeDescriptor(slot, { address, length: bufferSize, flags: 2 /* VIRTQ_DESC_F_WRITE */, next: 0 });
    }
  }

  /**
   * Receives until `count` frames have arrived (or none comes for `idleMs`); returns the frames
   * and the seconds from posting the buffers to the last frame.
   */
  run(count: number, idleMs = 500): { frames: number; bytes: number; seconds: number } {
    const started = performance.now();
    if (!this.posted) {
      for (let slot = 0; slot < this.ring.size; slot++) this.offer(slot, slot);
      this.publish(this.ring.size);
      this.posted = true;
    } else {
      this.h.kick(this.queue);
    }
    let frames = 0;
    let bytes = 0;
    let lastFrameAt = started;
    let buffersLeftInFrame = 0;
    let fewestBuffersPerFrame = Infinity;
    let buffersInFrame = 0;
    const batch = Math.max(1, Math.floor(this.ring.size * RX_BATCH_SHARE));
    while (frames < count) {
      // Take used buffers in batches (an interrupt per batch, not per frame), but never wait for
      // more buffers than the frames still to come can fill.
      const perFrame = Number.isFinite(fewestBuffersPerFrame) ? fewestBuffersPerFrame : 1;
      const ahead = Math.max(0, Math.min(batch, (count - frames) * perFrame) - 1);
      if (!this.waitForUsed(idleMs, ahead)) break;
      const end = this.usedIndex;
      let reposted = 0;
      while (this.lastUsed !== end) {
        const id = this.usedId(this.lastUsed);
        const len = this.usedLength(this.lastUsed);
        this.lastUsed = (this.lastUsed + 1) & INDEX_MASK;
        if (buffersLeftInFrame === 0) {
          buffersLeftInFrame = this.numBuffers[id]!.getUint16(0, true);
          buffersInFrame = buffersLeftInFrame;
          frames++;
        }
        buffersLeftInFrame--;
        if (buffersLeftInFrame === 0) fewestBuffersPerFrame = Math.min(fewestBuffersPerFrame, buffersInFrame);
        bytes += len;
        this.offer(reposted, id);
        reposted++;
      }
      lastFrameAt = performance.now();
      if (reposted > 0) this.publish(reposted);
    }
    return { frames, bytes, seconds: (lastFrameAt - started) / 1000 };
  }
}
