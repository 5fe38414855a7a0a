/**
 * Where the parts of a split virtqueue sit in guest memory (virtio 1.2 §2.7),
 * their field offsets, and the validation of a driver-supplied layout.
 */
import type { GuestMemory } from '../vmm/guest-memory.js';
import { QueueError } from './queue-error.js';
import {
  VIRTQ_AVAIL_ALIGN,
  VIRTQ_DESC_ALIGN,
  VIRTQ_DESC_SIZE,
  VIRTQ_MAX_SIZE,
  VIRTQ_USED_ALIGN,
  VIRTQ_USED_ELEM_SIZE,
} from './virtio-constants.js';

export interface QueueLayout {
  /** Queue size: number of descriptors and of ring entries. */
  readonly size: number;
  /** Guest physical address of the descriptor table (Descriptor Area). */
  readonly descTable: number;
  /** Guest physical address of the available ring (Driver Area). */
  readonly availRing: number;
  /** Guest physical address of the used ring (Device Area). */
  readonly usedRing: number;
}

export interface QueueOptions {
  /** VIRTIO_F_RING_EVENT_IDX was negotiated. */
  readonly eventIdx: boolean;
  /** VIRTIO_F_RING_INDIRECT_DESC was negotiated. */
  readonly indirect: boolean;
}

// struct virtq_desc (2.7.5).
export const DESC_ADDR = 0;
export const DESC_LEN = 8;
export const DESC_FLAGS = 12;
export const DESC_NEXT = 14;

// struct virtq_avail (2.7.6).
export const AVAIL_FLAGS = 0;
export const AVAIL_IDX = 2;
export const AVAIL_RING = 4;
export const AVAIL_ENTRY_SIZE = 2;

// struct virtq_used and virtq_used_elem (2.7.8).
export const USED_FLAGS = 0;
export const USED_IDX = 2;
export const USED_RING = 4;
export const USED_ELEM_ID = 0;
export const USED_ELEM_LEN = 4;

/** Size of the used_event / avail_event word that follows each ring with EVENT_IDX. */
export const EVENT_WORD_SIZE = 2;

/** Ring indexes are free-running 16-bit counters. */
export const INDEX_MASK = 0xffff;

export function descTableBytes(size: number): number {
  return size * VIRTQ_DESC_SIZE;
}

/** Offset of used_event in the available ring. */
export function usedEventOffset(size: number): number {
  return AVAIL_RING + size * AVAIL_ENTRY_SIZE;
}

/** Offset of avail_event in the used ring. */
export function availEventOffset(size: number): number {
  return USED_RING + size * VIRTQ_USED_ELEM_SIZE;
}

export function availRingBytes(size: number, eventIdx: boolean): number {
  return usedEventOffset(size) + (eventIdx ? EVENT_WORD_SIZE : 0);
}

export function usedRingBytes(size: number, eventIdx: boolean): number {
  return availEventOffset(size) + (eventIdx ? EVENT_WORD_SIZE : 0);
}

export function isValidQueueSize(size: number): boolean {
  return Number.isInteger(size) && size >= 1 && size <= VIRTQ_MAX_SIZE && (size & (size - 1)) === 0;
}

interface RingPart {
  readonly name: string;
  readonly address: number;
  readonly bytes: number;
  readonly align: number;
}

/** Throws QueueError 'bad-layout' unless the three parts are aligned, in RAM and disjoint. */
export function validateQueueLayout(memory: GuestMemory, layout: QueueLayout, options: QueueOptions): void {
  const { size } = layout;
  if (!isValidQueueSize(size)) {
    throw new QueueError('bad-layout', `queue size ${size} is not a power of 2 in 1..${VIRTQ_MAX_SIZE}`);
  }
  const parts: RingPart[] = [
    { name: 'descriptor table', address: layout.descTable, bytes: descTableBytes(size), align: VIRTQ_DESC_ALIGN },
    {
      name: 'available ring',
      address: layout.availRing,
      bytes: availRingBytes(size, options.eventIdx),
      align: VIRTQ_AVAIL_ALIGN,
    },
    { name: 'used ring', address: layout.usedRing, bytes: usedRingBytes(size, options.eventIdx), align: VIRTQ_USED_ALIGN },
  ];
  for (const part of parts) {
    const where = `${part.name} at 0x${part.address.toString(16)}`;
    if (!Number.isSafeInteger(part.address) || part.address < 0) {
      throw new QueueError('bad-layout', `${where} is not a valid guest address`);
    }
    if (part.address % part.align !== 0) {
      throw new QueueError('bad-layout', `${where} is not ${part.align}-byte aligned`);
    }
    if (!memory.contains(part.address, part.bytes)) {
      throw new QueueError('bad-layout', `${where} (0x${part.bytes.toString(16)} bytes) is not inside guest RAM`);
    }
  }
  for (let i = 0; i < parts.length; i++) {
    for (let j = i + 1; j < parts.length; j++) {
      const a = parts[i]!;
      const b = parts[j]!;
      if (a.address < b.address + b.bytes && b.address < a.address + a.bytes) {
        throw new QueueError('bad-layout', `${a.name} overlaps ${b.name}`);
      }
    }
  }
}
