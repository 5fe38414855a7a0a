/**
 * What the request-parser fuzz targets share: guest RAM (mmap'd, so chains carry host addresses
 * as in production), a driver that lays out random request chains, and a SplitQueue to pop them
 * through, so a parser sees exactly what a device would. Buffers are spaced with guard bytes, and
 * `changesOutside` tells which guest bytes changed outside a set of ranges.
 */
import fc from 'fast-check';
import { DescriptorChain } from '../../src/virtio/descriptor-chain.js';
import { SplitQueue } from '../../src/virtio/queue.js';
import type { GuestMemory } from '../../src/vmm/guest-memory.js';
import { memoryFromRegions } from '../../src/vmm/guest-ram.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap } from '../../src/sys/memory.js';
import { MockSplitQueueDriver, type DriverBuffer } from '../virtio/mock-driver.js';

export const BED_RAM = 2 * 0x100000;
const RING_AREA = 0x1000;
const BUFFER_AREA = 0x40000;
/** Guard bytes between buffers: a write past a buffer's end lands in one. */
const GUARD = 16;

/** One request chain: readable bytes cut into buffers, then writable buffers; maybe broken. */
export interface ChainSpec {
  /** The device-readable bytes, in order (headers and data). */
  readonly readable: Uint8Array;
  /** Lengths the readable bytes are cut into (cycled; the rest goes in a last buffer). */
  readonly cuts: number[];
  readonly writable: number[];
  readonly indirect: boolean;
  /** Put a writable buffer first (2.7.4.2 forbids it: the chain is malformed). */
  readonly writableFirst: boolean;
}

export interface PostedChain {
  readonly head: number;
  readonly buffers: DriverBuffer[];
}

export const cutsArb: fc.Arbitrary<number[]> = fc.oneof(
  { arbitrary: fc.constant([] as number[]), weight: 4 },
  { arbitrary: fc.array(fc.oneof(fc.integer({ min: 0, max: 20 }), fc.constantFrom(512, 1024)), { minLength: 1, maxLength: 4 }), weight: 3 },
);

export function chainSpecArb(readable: fc.Arbitrary<Uint8Array>, writable: fc.Arbitrary<number[]>): fc.Arbitrary<ChainSpec> {
  return fc.record({
    readable,
    cuts: cutsArb,
    writable,
    indirect: fc.boolean(),
    writableFirst: fc.oneof({ arbitrary: fc.constant(false), weight: 15 }, { arbitrary: fc.constant(true), weight: 1 }),
  });
}

export class ChainBed {
  readonly memory: GuestMemory;
  readonly bytes: Uint8Array;
  readonly host: number;
  driver!: MockSplitQueueDriver;
  queue!: SplitQueue;
  private next = BUFFER_AREA;
  /** Descriptors handed out since the reset: the mock driver wraps around, so never more than the queue size. */
  private descriptors = 0;
  private before: Uint8Array | undefined;

  constructor(readonly queueSize = 64) {
    this.host = mmap(BED_RAM, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    this.memory = memoryFromRegions([{ guestBase: 0, size: BED_RAM, hostAddress: this.host }]);
    this.bytes = this.memory.slice(0, BED_RAM);
    this.reset();
  }

  /** Empty RAM, fresh rings. */
  reset(): void {
    this.bytes.fill(0);
    this.next = BUFFER_AREA;
    this.descriptors = 0;
    this.driver = MockSplitQueueDriver.create(this.memory, RING_AREA, this.queueSize);
    this.queue = new SplitQueue(this.memory, this.driver.layout, { eventIdx: false, indirect: true });
  }

  /** Guest RAM for `length` bytes, GUARD bytes after the previous buffer; undefined when full. */
  allocate(length: number): number | undefined {
    const at = this.next;
    if (at + length + GUARD > BED_RAM) return undefined;
    this.next = at + length + GUARD;
    return at;
  }

  /** Lays out and offers a chain; undefined when RAM or the ring has no room for it. */
  post(spec: ChainSpec, fill = 0xee): PostedChain | undefined {
    const buffers: DriverBuffer[] = [];
    let at = 0;
    for (let i = 0; at < spec.readable.length && i < 64; i++) {
      const cut = spec.cuts.length > 0 ? spec.cuts[i % spec.cuts.length]! : spec.readable.length;
      const length = Math.min(cut, spec.readable.length - at);
      const address = this.allocate(length);
      if (address === undefined) return undefined;
      this.bytes.set(spec.readable.subarray(at, at + length), address);
      buffers.push({ address, length, writable: false });
      at += length;
    }
    if (at < spec.readable.length) {
      const address = this.allocate(spec.readable.length - at);
      if (address === undefined) return undefined;
      this.bytes.set(spec.readable.subarray(at), address);
      buffers.push({ address, length: spec.readable.length - at, writable: false });
    }
    for (const length of spec.writable) {
      const address = this.allocate(length);
      if (address === undefined) return undefined;
      this.bytes.fill(fill, address, address + length);
      buffers.push({ address, length, writable: true });
    }
    if (spec.writableFirst) {
      const w = buffers.findIndex((b) => b.writable);
      if (w > 0) buffers.unshift(...buffers.splice(w, 1));
    }
    if (buffers.length === 0) buffers.push({ address: this.allocate(0)!, length: 0, writable: false });
    const needed = spec.indirect ? 1 : buffers.length;
    if (this.descriptors + needed > this.queueSize) return undefined;
    this.descriptors += needed;
    const head = this.driver.addChain(buffers, { indirect: spec.indirect });
    return { head, buffers };
  }

  /** Offers buffers laid out by the caller (e.g. many descriptors over one buffer); undefined when the ring is full. */
  postBuffers(buffers: DriverBuffer[], indirect: boolean): PostedChain | undefined {
    const needed = indirect ? 1 : buffers.length;
    if (this.descriptors + needed > this.queueSize) return undefined;
    this.descriptors += needed;
    return { head: this.driver.addChain(buffers, { indirect }), buffers };
  }

  /** Pops the next chain (into a fresh DescriptorChain). */
  pop(): DescriptorChain | undefined {
    return this.queue.pop();
  }

  /** Remembers guest RAM as it is now, for changesOutside. */
  snapshot(): void {
    this.before = this.bytes.slice();
  }

  /** Guest addresses that changed since the snapshot and lie outside every [address, length) range given. */
  changesOutside(ranges: ReadonlyArray<readonly [number, number]>): number[] {
    const old = this.before!;
    const now = this.bytes;
    const changed: number[] = [];
    // Compare in 4 KiB blocks first: nearly all are equal.
    for (let block = 0; block < now.length; block += 4096) {
      const end = Math.min(block + 4096, now.length);
      if (Buffer.from(now.buffer, now.byteOffset + block, end - block).equals(Buffer.from(old.buffer, old.byteOffset + block, end - block))) continue;
      for (let a = block; a < end; a++) {
        if (now[a] !== old[a] && !ranges.some(([start, length]) => a >= start && a < start + length)) changed.push(a);
      }
    }
    return changed;
  }

  /** The used ring's bytes, which the device writes. */
  get usedRingRange(): [number, number] {
    return [this.driver.layout.usedRing, 4 + 8 * this.queueSize + 2];
  }

  close(): void {
    munmap(this.host, BED_RAM);
  }
}

export class Violation extends Error {
  override name = 'Violation';
}

export function expect(condition: boolean, message: () => string): asserts condition {
  if (!condition) throw new Violation(message());
}
