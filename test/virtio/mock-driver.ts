/**
 * The driver side of a split virtqueue over GuestMemory, for tests and
 * harnesses: lays out the rings, builds descriptor chains (direct or
 * indirect), publishes avail.idx and reads back what the device used. It
 * can also write anything raw, so tests can build hostile rings by hand.
 */
import type { GuestMemory } from '../../src/vmm/guest-memory.js';
import type { QueueLayout } from '../../src/virtio/queue.js';

// The split virtqueue as virtio 1.2 §2.7 ("Split Virtqueues") defines it, written out here from
// the spec rather than imported from src/virtio, so that every test driving a device through this
// mock is an independent check of the device's own layout constants.

// §2.7 (alignment table): descriptor table 16, available ring 2, used ring 4.
const DESC_ALIGN = 16;
const USED_ALIGN = 4;

// §2.7.5 struct virtq_desc, 16 bytes: le64 addr @0, le32 len @8, le16 flags @12, le16 next @14.
const DESC_SIZE = 16;
const DESC_ADDR = 0;
const DESC_LEN = 8;
const DESC_FLAGS = 12;
const DESC_NEXT = 14;
/** VIRTQ_DESC_F_NEXT: the buffer continues via the next field. */
const DESC_F_NEXT = 1;
/** VIRTQ_DESC_F_WRITE: the buffer is device write-only. */
const DESC_F_WRITE = 2;
/** VIRTQ_DESC_F_INDIRECT: the buffer holds a table of descriptors. */
const DESC_F_INDIRECT = 4;

// §2.7.6 struct virtq_avail: le16 flags @0, le16 idx @2, le16 ring[size] @4 + 2i,
// le16 used_event @4 + 2·size (only with VIRTIO_F_EVENT_IDX).
const AVAIL_FLAGS = 0;
const AVAIL_IDX = 2;
const availRingEntry = (slot: number): number => 4 + 2 * slot;
const usedEventAt = (size: number): number => 4 + 2 * size;
/** VIRTQ_AVAIL_F_NO_INTERRUPT (§2.7.6): the driver asks for no used-buffer notification. */
export const SPEC_VIRTQ_AVAIL_F_NO_INTERRUPT = 1;

// §2.7.8 struct virtq_used: le16 flags @0, le16 idx @2, struct virtq_used_elem ring[size] @4 + 8i
// ({ le32 id @0, le32 len @4 }), le16 avail_event @4 + 8·size (only with VIRTIO_F_EVENT_IDX).
const USED_FLAGS = 0;
const USED_IDX = 2;
const usedRingEntry = (slot: number): number => 4 + 8 * slot;
const USED_ELEM_ID = 0;
const USED_ELEM_LEN = 4;
const availEventAt = (size: number): number => 4 + 8 * size;
/** VIRTQ_USED_F_NO_NOTIFY (§2.7.8): the device asks for no available-buffer notification. */
export const SPEC_VIRTQ_USED_F_NO_NOTIFY = 1;

/** The event words (used_event, avail_event) are le16. */
const EVENT_WORD_SIZE = 2;
/** Ring indexes are free-running 16-bit counters (§2.7.6, §2.7.8). */
const INDEX_MASK = 0xffff;

/**
 * The spec's vring_need_event (§2.7.7 used_event, §2.7.10 avail_event): whether moving an index from `old`
 * to `next` passes `event`, i.e. event is in [old, next) modulo 2^16.
 */
export function specNeedEvent(event: number, next: number, old: number): boolean {
  return ((next - event - 1) & INDEX_MASK) < ((next - old) & INDEX_MASK);
}

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
    const usedRingEnd = layout.usedRing + availEventAt(layout.size) + EVENT_WORD_SIZE;
    this.scratchNext = options.scratchBase ?? alignUp(usedRingEnd, DESC_ALIGN);
  }

  /**
   * Descriptor table at `base` (16-aligned), the avail ring right after it, the used ring at
   * the next 4-byte boundary; both event words are always reserved, as Linux does.
   */
  static packedLayout(base: number, size: number): QueueLayout {
    const descTable = alignUp(base, DESC_ALIGN);
    const availRing = descTable + size * DESC_SIZE;
    const usedRing = alignUp(availRing + usedEventAt(size) + EVENT_WORD_SIZE, USED_ALIGN);
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
    const at = tableAddress + index * DESC_SIZE;
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
    const at = tableAddress + index * DESC_SIZE;
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
    const address = alignUp(this.scratchNext, DESC_ALIGN);
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
        flags: (buffer.writable ? DESC_F_WRITE : 0) | (i + 1 < buffers.length ? DESC_F_NEXT : 0),
        next: i + 1 < buffers.length ? indexes[i + 1]! : 0,
      }));
    let head: number;
    if (options.indirect) {
      const tableBytes = buffers.length * DESC_SIZE;
      const table = options.tableAddress ?? this.allocateScratch(tableBytes);
      this.writeDescriptorTable(table, links(buffers.map((_, i) => i)));
      head = this.allocateDescriptors(1)[0]!;
      this.writeDescriptor(head, { address: table, length: tableBytes, flags: DESC_F_INDIRECT, next: 0 });
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
    this.memory.writeU16(this.layout.availRing + availRingEntry(slot), head);
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

  /** Sets or clears VIRTQ_AVAIL_F_NO_INTERRUPT, leaving any other avail flag bit as it is. */
  setNoInterrupt(on: boolean): void {
    const flags = this.memory.readU16(this.layout.availRing + AVAIL_FLAGS);
    this.setAvailFlags(on ? flags | SPEC_VIRTQ_AVAIL_F_NO_INTERRUPT : flags & ~SPEC_VIRTQ_AVAIL_F_NO_INTERRUPT);
  }

  setUsedEvent(value: number): void {
    this.memory.writeU16(this.layout.availRing + usedEventAt(this.size), value & INDEX_MASK);
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
    return this.memory.readU16(this.layout.usedRing + availEventAt(this.size));
  }

  /** The used element at free-running ring position `position`. */
  usedElement(position: number): UsedElement {
    const at = this.layout.usedRing + usedRingEntry(position & (this.size - 1));
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
    if (!eventIdx) return (this.usedFlags & SPEC_VIRTQ_USED_F_NO_NOTIFY) === 0;
    return specNeedEvent(this.availEvent, newIndex & INDEX_MASK, oldIndex & INDEX_MASK);
  }
}
