/**
 * The request slots of one virtio-blk instance: what a request owns while it is
 * in flight. A slot's index is its tag in the I/O engine; each slot has its own
 * iovec array (IOV_MAX entries) in one host arena allocated once per instance, at
 * its first activation (the instance the main thread builds to describe the
 * device never allocates one), and kept across resets. One slot per descriptor
 * head of every queue the instance serves, so a request never waits for a slot
 * while its queue has room for it.
 *
 * This module owns the slots' storage and their free list; what a slot's fields
 * mean while it is busy is decided by the jobs that fill them: device.ts
 * (dispatch, flush), transfer.ts (reads and writes), zero-ranges.ts (discard,
 * write-zeroes).
 */
import { IOVEC_SIZE, IOV_MAX } from '../../../sys/iovec.js';
import { HostBuffer } from '../../../sys/host-buffer.js';
import type { DwzRange } from './request.js';
import * as S from './spec.js';

export type SlotOp = 'read' | 'write' | 'flush' | 'discard' | 'write-zeroes';

/** One range of a discard or write-zeroes request, as zero-ranges.ts works through it. */
export interface RangeState extends DwzRange {
  /** fallocate modes to try in turn while the file answers EOPNOTSUPP. */
  readonly modes: readonly number[];
  modeIndex: number;
  /** Bytes zeroed so far by writing (BY_WRITING only). */
  zeroed: number;
}

/** One request in flight. */
export class Slot {
  op: SlotOp = 'read';
  queue = 0;
  head = 0;
  statusAddress = 0;
  status: number = S.VIRTIO_BLK_S_OK;
  /** Used length on success. */
  used = 1;
  /** Operations not finished for good. */
  pending = 0;
  /** FlushOrder generation of a write-like request, or -1. */
  generation = -1;
  fd = -1;
  offset = 0;
  length = 0;
  /** Bytes transferred so far (a short transfer continues from here). */
  done = 0;
  /** A read or write transfers iovecs [iovStart, iovCount) of this slot's array (advanced after a short transfer). */
  iovStart = 0;
  iovCount = 0;
  /** With a bounce buffer: the guest ranges the data really belongs to. */
  guestPieces: number[] = [];
  bounce: HostBuffer | undefined;
  /** Bytes of the disk's bounce budget the bounce buffer holds. */
  bounceBytes = 0;
  ranges: RangeState[] = [];

  constructor(
    readonly index: number,
    /** Host address of this slot's iovec array (IOV_MAX entries). */
    readonly iovecs: number,
    /** The same array as words. */
    readonly iovecWords: Uint32Array,
  ) {}
}

export class SlotArena {
  /** Every slot, by index (= engine tag). */
  readonly slots: readonly Slot[];
  private free: number[];

  constructor(count: number) {
    const slotBytes = IOV_MAX * IOVEC_SIZE;
    const arena = new HostBuffer(count * slotBytes);
    this.slots = Array.from({ length: count }, (_, i) => {
      const words = new Uint32Array(arena.bytes.buffer, arena.bytes.byteOffset + i * slotBytes, slotBytes / 4);
      return new Slot(i, arena.address + i * slotBytes, words);
    });
    this.free = this.allFree();
  }

  get hasFree(): boolean {
    return this.free.length > 0;
  }

  /** A free slot for a new request (callers check hasFree first), its per-request fields reset. */
  take(q: number, head: number, statusAddress: number, op: SlotOp): Slot {
    const slot = this.slots[this.free.pop()!]!;
    slot.op = op;
    slot.queue = q;
    slot.head = head;
    slot.statusAddress = statusAddress;
    slot.status = S.VIRTIO_BLK_S_OK;
    slot.used = 1;
    slot.generation = -1;
    slot.done = 0;
    return slot;
  }

  release(slot: Slot): void {
    this.free.push(slot.index);
  }

  /** Every slot free again (a reset, once nothing is in flight). */
  releaseAll(): void {
    this.free = this.allFree();
  }

  private allFree(): number[] {
    return this.slots.map((_, i) => this.slots.length - 1 - i);
  }
}
