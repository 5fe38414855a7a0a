/**
 * The driver side of a split virtqueue over GuestMemory, for tests and
 * harnesses: lays out the rings, builds descriptor chains (direct or
 * indirect), publishes avail.idx and reads back what the device used. It
 * can also write anything raw, so tests can build hostile rings by hand.
 */
import type { GuestMemory } from '../../src/vmm/guest-memory.js';
import type { QueueLayout } from '../../src/virtio/queue.js';
import {
  AVAIL_ENTRY_SIZE,
  AVAIL_FLAGS,
  AVAIL_IDX,
  AVAIL_RING,
  DESC_ADDR,
  DESC_FLAGS,
  DESC_LEN,
  DESC_NEXT,
  EVENT_WORD_SIZE,
  INDEX_MASK,
  USED_ELEM_ID,
  USED_ELEM_LEN,
  USED_FLAGS,
  USED_IDX,
  USED_RING,
  availEventOffset,
  descTableBytes,
  usedEventOffset,
} from '../../src/virtio/queue-layout.js';
import { vringNeedEvent } from '../../src/virtio/queue-event-idx.js';
import {
  VIRTQ_DESC_ALIGN,
  VIRTQ_DESC_F_INDIRECT,
  VIRTQ_DESC_F_NEXT,
  VIRTQ_DESC_F_WRITE,
  VIRTQ_DESC_SIZE,
  VIRTQ_USED_ALIGN,
  VIRTQ_USED_ELEM_SIZE,
  VIRTQ_USED_F_NO_NOTIFY,
} from '../../src/virtio/virtio-constants.js';

/** One buffer of a chain, as the driver sees it. */
export interface DriverBuffer {
  readonly address: number;
  readonly length: number;
  readonly writable: boolean;
}

/** A descriptor exactly as stored in guest memory. */
export interface RawDescriptor {
  readonly address: bigint | number;
  readonly length: number;
  readonly flags: number;
  readonly next: number;
}

export interface UsedElement {
  readonly id: number;
  readonly len: number;
}

export interface AddChainOptions {
  /** Put the buffers in an indirect table referred to by one ring descriptor. */
  readonly indirect?: boolean;
  /** Where the indirect table goes; by default it is taken from the scratch area. */
  readonly tableAddress?: number;
  /** Write the descriptors and the ring entry but leave avail.idx alone (publish later). */
  readonly publish?: boolean;
}

export interface MockDriverOptions {
  /** Start of free RAM for indirect tables; by default just after the used ring. */
  readonly scratchBase?: number;
}

function alignUp(value: number, align: number): number {
  return Math.ceil(value / align) * align;
}

export class MockSplitQueueDriver {
  /** The driver's copy of avail.idx: where the next head goes. */
  private availShadow = 0;
  /** Used ring entries already taken by takeUsed. */
  private lastSeenUsed = 0;
  private nextFreeDescriptor = 0;
  private scratchNext: number;

  constructor(
    readonly memory: GuestMemory,
    readonly layout: QueueLayout,
    options: MockDriverOptions = {},
  ) {
    const usedRingEnd = layout.usedRing + availEventOffset(layout.size) + EVENT_WORD_SIZE;
    this.scratchNext = options.scratchBase ?? alignUp(usedRingEnd, VIRTQ_DESC_ALIGN);
  }

  /**
   * Descriptor table at `base` (16-aligned), the avail ring right after it, the used ring at
   * the next 4-byte boundary; both event words are always reserved, as Linux does.
   */
  static packedLayout(base: number, size: number): QueueLayout {
    const descTable = alignUp(base, VIRTQ_DESC_ALIGN);
    const availRing = descTable + descTableBytes(size);
    const usedRing = alignUp(availRing + usedEventOffset(size) + EVENT_WORD_SIZE, VIRTQ_USED_ALIGN);
    return { size, descTable, availRing, usedRing };
  }

  static create(memory: GuestMemory, base: number, size: number, options?: MockDriverOptions): MockSplitQueueDriver {
    return new MockSplitQueueDriver(memory, MockSplitQueueDriver.packedLayout(base, size), options);
  }

  get size(): number {
    return this.layout.size;
  }

  // Descriptors.

  /** Writes one raw descriptor at `index` of the descriptor table (or of the table at `tableAddress`). */
  writeDescriptor(index: number, descriptor: RawDescriptor, tableAddress = this.layout.descTable): void {
    const at = tableAddress + index * VIRTQ_DESC_SIZE;
    this.memory.writeU64(at + DESC_ADDR, BigInt(descriptor.address));
    this.memory.writeU32(at + DESC_LEN, descriptor.length);
    this.memory.writeU16(at + DESC_FLAGS, descriptor.flags);
    this.memory.writeU16(at + DESC_NEXT, descriptor.next);
  }

  /** Writes a whole table of raw descriptors (e.g. an indirect table) at `address`. */
  writeDescriptorTable(address: number, descriptors: readonly RawDescriptor[]): void {
    descriptors.forEach((descriptor, i) => this.writeDescriptor(i, descriptor, address));
  }

  readDescriptor(index: number, tableAddress = this.layout.descTable): RawDescriptor {
    const at = tableAddress + index * VIRTQ_DESC_SIZE;
    return {
      address: this.memory.readU64(at + DESC_ADDR),
      length: this.memory.readU32(at + DESC_LEN),
      flags: this.memory.readU16(at + DESC_FLAGS),
      next: this.memory.readU16(at + DESC_NEXT),
    };
  }

  /** `count` descriptor indexes, handed out in table order and wrapping (no free list). */
  allocateDescriptors(count: number): number[] {
    if (count < 1 || count > this.size) {
      throw new RangeError(`cannot allocate ${count} descriptors from a queue of ${this.size}`);
    }
    return Array.from({ length: count }, () => {
      const index = this.nextFreeDescriptor;
      this.nextFreeDescriptor = (index + 1) % this.size;
      return index;
    });
  }

  /** `bytes` of free RAM from the scratch area, 16-aligned. */
  allocateScratch(bytes: number): number {
    const address = alignUp(this.scratchNext, VIRTQ_DESC_ALIGN);
    if (!this.memory.contains(address, bytes)) {
      throw new RangeError(`no room for 0x${bytes.toString(16)} scratch bytes at 0x${address.toString(16)}`);
    }
    this.scratchNext = address + bytes;
    return address;
  }

  /** Builds a chain over `buffers`, makes it available and returns its head index. */
  addChain(buffers: readonly DriverBuffer[], options: AddChainOptions = {}): number {
    if (buffers.length === 0) throw new RangeError('a chain needs at least one buffer');
    const links = (indexes: readonly number[]): RawDescriptor[] =>
      buffers.map((buffer, i) => ({
        address: buffer.address,
        length: buffer.length,
        flags: (buffer.writable ? VIRTQ_DESC_F_WRITE : 0) | (i + 1 < buffers.length ? VIRTQ_DESC_F_NEXT : 0),
        next: i + 1 < buffers.length ? indexes[i + 1]! : 0,
      }));
    let head: number;
    if (options.indirect) {
      const tableBytes = buffers.length * VIRTQ_DESC_SIZE;
      const table = options.tableAddress ?? this.allocateScratch(tableBytes);
      this.writeDescriptorTable(table, links(buffers.map((_, i) => i)));
      head = this.allocateDescriptors(1)[0]!;
      this.writeDescriptor(head, { address: table, length: tableBytes, flags: VIRTQ_DESC_F_INDIRECT, next: 0 });
    } else {
      const indexes = this.allocateDescriptors(buffers.length);
      links(indexes).forEach((descriptor, i) => this.writeDescriptor(indexes[i]!, descriptor));
      head = indexes[0]!;
    }
    this.offer(head, options.publish ?? true);
    return head;
  }

  // Available ring.

  /** Puts `head` in the next avail ring slot and (by default) publishes avail.idx. */
  offer(head: number, publish = true): void {
    this.writeAvailEntry(this.availShadow & (this.size - 1), head);
    this.availShadow = (this.availShadow + 1) & INDEX_MASK;
    if (publish) this.publishAvailIndex(this.availShadow);
  }

  /** Writes a raw avail ring entry. */
  writeAvailEntry(slot: number, head: number): void {
    this.memory.writeU16(this.layout.availRing + AVAIL_RING + slot * AVAIL_ENTRY_SIZE, head);
  }

  /** Writes avail.idx (any value, taken modulo 2^16) and makes it the driver's position. */
  publishAvailIndex(value: number): void {
    this.availShadow = value & INDEX_MASK;
    this.memory.writeU16(this.layout.availRing + AVAIL_IDX, this.availShadow);
  }

  /** avail.idx as stored in guest memory. */
  get availIndex(): number {
    return this.memory.readU16(this.layout.availRing + AVAIL_IDX);
  }

  setAvailFlags(flags: number): void {
    this.memory.writeU16(this.layout.availRing + AVAIL_FLAGS, flags);
  }

  setUsedEvent(value: number): void {
    this.memory.writeU16(this.layout.availRing + usedEventOffset(this.size), value & INDEX_MASK);
  }

  // Used ring.

  /** used.idx as stored in guest memory. */
  get usedIndex(): number {
    return this.memory.readU16(this.layout.usedRing + USED_IDX);
  }

  get usedFlags(): number {
    return this.memory.readU16(this.layout.usedRing + USED_FLAGS);
  }

  get availEvent(): number {
    return this.memory.readU16(this.layout.usedRing + availEventOffset(this.size));
  }

  /** The used element at free-running ring position `position`. */
  usedElement(position: number): UsedElement {
    const at = this.layout.usedRing + USED_RING + (position & (this.size - 1)) * VIRTQ_USED_ELEM_SIZE;
    return { id: this.memory.readU32(at + USED_ELEM_ID), len: this.memory.readU32(at + USED_ELEM_LEN) };
  }

  /** Used elements published since the last call, in order. */
  takeUsed(): UsedElement[] {
    const used: UsedElement[] = [];
    const end = this.usedIndex;
    while (this.lastSeenUsed !== end) {
      used.push(this.usedElement(this.lastSeenUsed));
      this.lastSeenUsed = (this.lastSeenUsed + 1) & INDEX_MASK;
    }
    return used;
  }

  /** Starts both rings at `index`, as if that many chains had already gone round. */
  resetIndexes(index: number): void {
    this.publishAvailIndex(index);
    this.memory.writeU16(this.layout.usedRing + USED_IDX, index & INDEX_MASK);
    this.lastSeenUsed = index & INDEX_MASK;
  }

  /** Whether the driver must kick after moving avail.idx from `oldIndex` to `newIndex` (2.7.10). */
  deviceWantsKick(oldIndex: number, newIndex: number, eventIdx: boolean): boolean {
    if (!eventIdx) return (this.usedFlags & VIRTQ_USED_F_NO_NOTIFY) === 0;
    return vringNeedEvent(this.availEvent, newIndex & INDEX_MASK, oldIndex & INDEX_MASK);
  }
}
