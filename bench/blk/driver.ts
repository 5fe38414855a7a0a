/**
 * A virtio-blk driver for benchmarks, over the host-side harness (real MMIO
 * transport, real data-plane thread, no guest CPU): it behaves like Linux's
 * virtio_blk on the ring. Every request is one indirect descriptor (header,
 * data segments as DataSegments describes, status), heads are recycled through a free list, avail.idx is
 * published once per batch and the device is kicked only when avail_event
 * asks for it (EVENT_IDX); the driver waits for the interrupt with used_event
 * set to the next entry it waits for, as a halting KVM vCPU does (halt-poll.ts:
 * an adaptive poll window, then a sleep in epoll_wait on the interrupt eventfd).
 */
import { memoryFence } from '../../src/virtio/memory-fence.js';
import { VIRTQ_DESC_F_INDIRECT, VIRTQ_DESC_F_NEXT, VIRTQ_DESC_F_WRITE, VIRTQ_DESC_SIZE } from '../../src/virtio/virtio-constants.js';
import * as S from '../../src/virtio/devices/blk/spec.js';
import { BLK_SIZE_MAX } from '../../src/virtio/devices/blk/options.js';
import type { VirtioMmioHarness } from '../../test/helpers/virtio-harness.js';
import type { MockSplitQueueDriver } from '../../test/virtio/mock-driver.js';
import { HaltPoller, interruptLine, type DriverWait, type InterruptLine } from '../halt-poll.js';

export interface Pattern {
  readonly name: string;
  readonly write: boolean;
  readonly random: boolean;
  readonly blockBytes: number;
  readonly depth: number;
}

export interface PatternResult {
  readonly requests: number;
  readonly bytes: number;
  readonly seconds: number;
  readonly iops: number;
  readonly mbPerSecond: number;
}

const PAGE = 4096;
/** A transparent huge page (x86-64 PMD): guest RAM and the baseline's buffers are advised for them. */
export const HUGE_PAGE = 2 * 1024 * 1024;

/**
 * How a request's data reaches the ring. Linux's virtio_blk maps a request's pages to one
 * descriptor per physically contiguous run (blk_rq_map_sg), up to the device's size_max:
 * - 'pages': the buffer's pages are scattered (a guest's fragmented memory): one 4 KiB
 *   descriptor per page, 256 for a 1 MiB request;
 * - 'huge': the buffer lies in one guest huge page (as fio's does in the host baseline):
 *   contiguous, one descriptor up to size_max (1 MiB here).
 */
export type DataSegments = 'pages' | 'huge';

export function parseDataSegments(text: string | undefined): DataSegments {
  const segments = text ?? 'huge';
  if (segments !== 'pages' && segments !== 'huge') throw new Error(`--segments "${segments}" is not pages or huge`);
  return segments;
}

export interface DriverSettings {
  readonly wait: DriverWait;
  readonly segments: DataSegments;
}

/** One queue's worth of requests in flight, each with fixed buffers and its own indirect table. */
export class BenchQueue {
  private readonly headers: number[] = [];
  private readonly statuses: number[] = [];
  private readonly lastUsed: { value: number } = { value: 0 };
  private published = 0;
  private readonly vcpu: HaltPoller;
  private readonly line: InterruptLine;

  constructor(
    private readonly h: VirtioMmioHarness,
    private readonly q: number,
    private readonly ring: MockSplitQueueDriver,
    private readonly pattern: Pattern,
    private readonly capacityBytes: number,
    settings: DriverSettings,
  ) {
    this.vcpu = new HaltPoller(settings.wait);
    this.line = interruptLine(h);
    const { depth, blockBytes, write } = pattern;
    const huge = settings.segments === 'huge';
    const segmentBytes = huge ? BLK_SIZE_MAX : PAGE;
    const alignment = huge ? HUGE_PAGE : PAGE;
    const pieces = Math.ceil(blockBytes / segmentBytes);
    // The slots' buffers side by side in one area, as fio's are: huge pages are not spent on
    // padding, and small buffers do not all start at the same cache set.
    const stride = Math.ceil(blockBytes / PAGE) * PAGE;
    const area = Math.ceil(h.allocate(depth * stride + alignment) / alignment) * alignment;
    // Touched now, so no measured request faults a page in (fio's buffers are touched before its clock starts).
    h.memory.fill(area, depth * stride, write ? 0x5a : 0);
    for (let slot = 0; slot < depth; slot++) {
      const header = h.allocate(S.BLK_REQ_HEADER_SIZE);
      const data = area + slot * stride;
      const status = h.allocate(1);
      const table = h.allocate((pieces + 2) * VIRTQ_DESC_SIZE);
      const descriptors = [
        { address: header, length: S.BLK_REQ_HEADER_SIZE, flags: VIRTQ_DESC_F_NEXT, next: 1 },
        ...Array.from({ length: pieces }, (_, p) => ({
          address: data + p * segmentBytes,
          length: Math.min(segmentBytes, blockBytes - p * segmentBytes),
          flags: VIRTQ_DESC_F_NEXT | (write ? 0 : VIRTQ_DESC_F_WRITE),
          next: p + 2,
        })),
        { address: status, length: 1, flags: VIRTQ_DESC_F_WRITE, next: 0 },
      ];
      ring.writeDescriptorTable(table, descriptors);
      ring.writeDescriptor(slot, { address: table, length: descriptors.length * VIRTQ_DESC_SIZE, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
      h.memory.writeU32(header + S.BLK_REQ_TYPE, write ? S.VIRTIO_BLK_T_OUT : S.VIRTIO_BLK_T_IN);
      this.headers.push(header);
      this.statuses.push(status);
    }
    this.lastUsed.value = ring.usedIndex;
    this.published = ring.availIndex;
  }

  private nextOffset = 0;

  private offset(): number {
    const { blockBytes, random } = this.pattern;
    const blocks = Math.floor(this.capacityBytes / blockBytes);
    if (random) return Math.floor(Math.random() * blocks) * blockBytes;
    const offset = this.nextOffset;
    this.nextOffset = (offset + blockBytes) % (blocks * blockBytes);
    return offset;
  }

  private offer(slot: number): void {
    this.h.memory.writeU64(this.headers[slot]! + S.BLK_REQ_SECTOR, BigInt(this.offset() / S.VIRTIO_BLK_SECTOR_SIZE));
    this.h.memory.writeU8(this.statuses[slot]!, 0xff);
    this.ring.offer(slot, false);
  }

  private publish(count: number): void {
    const old = this.published;
    this.published = (old + count) & 0xffff;
    this.ring.publishAvailIndex(this.published);
    memoryFence(); // avail.idx visible before avail_event is read (virtio 2.7.13.3)
    if (this.ring.deviceWantsKick(old, this.published, true)) this.h.kick(this.q);
  }

  /** Runs the pattern for `seconds`, keeping `depth` requests in flight. */
  run(seconds: number): PatternResult {
    const { depth, blockBytes } = this.pattern;
    this.nextOffset = 0; // every round reads the file from the start, as fio's does
    const started = performance.now();
    const deadline = started + seconds * 1000;
    let requests = 0;
    let inFlight = 0;
    for (let slot = 0; slot < depth; slot++) this.offer(slot);
    inFlight = depth;
    this.publish(depth);
    let stopping = false;
    while (inFlight > 0) {
      const used = this.waitForUsed();
      if (!stopping && performance.now() >= deadline) stopping = true;
      let reposted = 0;
      for (const { id } of used) {
        const status = this.h.memory.readU8(this.statuses[id]!);
        if (status !== S.VIRTIO_BLK_S_OK) throw new Error(`request on slot ${id} failed with status ${status}`);
        requests++;
        if (stopping) inFlight--;
        else {
          this.offer(id);
          reposted++;
        }
      }
      if (reposted > 0) this.publish(reposted);
    }
    const elapsed = (performance.now() - started) / 1000;
    return {
      requests,
      bytes: requests * blockBytes,
      seconds: elapsed,
      iops: requests / elapsed,
      mbPerSecond: (requests * blockBytes) / elapsed / 1e6,
    };
  }

  /** Used entries since the last call, sleeping for an interrupt when there are none yet. */
  private waitForUsed(): Array<{ id: number; len: number }> {
    for (;;) {
      const used = this.take();
      if (used.length > 0) return used;
      // Ask for an interrupt at the next entry, then look again: it may have landed meanwhile.
      this.ring.setUsedEvent(this.lastUsed.value);
      memoryFence();
      const arrived = this.vcpu.halt(() => this.ring.usedIndex !== this.lastUsed.value, this.line, 10_000);
      if (!arrived) throw new Error('no completion from the device in 10 s');
    }
  }

  private take(): Array<{ id: number; len: number }> {
    const end = this.ring.usedIndex;
    const used: Array<{ id: number; len: number }> = [];
    while (this.lastUsed.value !== end) {
      used.push(this.ring.usedElement(this.lastUsed.value));
      this.lastUsed.value = (this.lastUsed.value + 1) & 0xffff;
    }
    return used;
  }
}
