/**
 * The guest's physical memory map, shared by the e820 table in the zero page
 * and the PVH memmap (both use the E820 type numbers). Built from the RAM
 * regions alone so it can be tested without allocating guest memory.
 */

import type { GuestMemory } from '../vmm/guest-memory.js';
import { BootError, hex } from './boot-error.js';
import { BOOT_STRUCTURES_END, EBDA_START, GDT_ADDRESS, HIGH_MEMORY_START, PAGE_SIZE, alignDown } from './layout.js';

export const E820_TYPE_RAM = 1;
export const E820_TYPE_RESERVED = 2;
export const E820_TYPE_ACPI = 3;
export const E820_TYPE_NVS = 4;
export const E820_TYPE_UNUSABLE = 5;
export const E820_TYPE_PMEM = 7;

export interface MemoryMapEntry {
  readonly address: number;
  readonly size: number;
  readonly type: number;
}

/** An extra non-RAM range from the VMM (ACPI tables, MMIO windows...). */
export interface ReservedRange {
  readonly address: number;
  readonly size: number;
  /** An E820 type other than RAM; defaults to E820_TYPE_RESERVED. */
  readonly type?: number;
}

/** A RAM region as [guest base, size], the shape GuestMemory.fromLayout takes. */
export type RegionDescriptor = readonly [number, number];

/** A guest physical range [start, end). */
export type GuestRange = readonly [number, number];

interface Span {
  start: number;
  end: number;
  type: number;
}

/** Lays `span` over `spans`, cutting whatever it covers: later layers win. */
function paint(spans: Span[], span: Span): Span[] {
  const out: Span[] = [];
  for (const s of spans) {
    if (s.end <= span.start || s.start >= span.end) {
      out.push(s);
      continue;
    }
    if (s.start < span.start) out.push({ start: s.start, end: span.start, type: s.type });
    if (s.end > span.end) out.push({ start: span.end, end: s.end, type: s.type });
  }
  out.push(span);
  return out.sort((a, b) => a.start - b.start);
}

/** Joins touching spans of one type (spans sorted, non-overlapping). */
function merge(spans: readonly Span[]): Span[] {
  const merged: Span[] = [];
  for (const s of spans) {
    const last = merged[merged.length - 1];
    if (last && last.end === s.start && last.type === s.type) last.end = s.end;
    else merged.push({ ...s });
  }
  return merged;
}

function checkRange(what: string, address: number, size: number): void {
  if (!Number.isSafeInteger(address) || !Number.isSafeInteger(size) || address < 0 || size <= 0 ||
      !Number.isSafeInteger(address + size)) {
    throw new BootError('bad-option', `${what} ${hex(address)}+${hex(size)} is not a valid address range`);
  }
}

/**
 * RAM [0, EBDA), reserved [EBDA, 1 MiB), then every region's RAM from 1 MiB up
 * (including anything above a 32-bit PCI hole), with the caller's ranges laid
 * on top. Adjacent entries of one type are merged.
 */
export function buildMemoryMap(
  regions: readonly RegionDescriptor[],
  reserved: readonly ReservedRange[] = [],
): MemoryMapEntry[] {
  let spans: Span[] = [];
  for (const [base, size] of regions) {
    checkRange('memory region', base, size);
    spans = paint(spans, { start: base, end: base + size, type: E820_TYPE_RAM });
  }
  spans = merge(spans);
  if (!spans.some((s) => s.start === 0 && s.end >= HIGH_MEMORY_START)) {
    throw new BootError(
      'memory-too-small',
      `guest RAM must cover [0, ${hex(HIGH_MEMORY_START)}) for the boot structures and BIOS area`,
    );
  }
  spans = paint(spans, { start: EBDA_START, end: HIGH_MEMORY_START, type: E820_TYPE_RESERVED });
  for (const r of reserved) {
    checkRange('reserved range', r.address, r.size);
    const type = r.type ?? E820_TYPE_RESERVED;
    if (!Number.isInteger(type) || type === E820_TYPE_RAM || type < 1 || type > 0xffffffff) {
      throw new BootError('bad-option', `reserved range ${hex(r.address)} has unusable E820 type ${type}`);
    }
    if (r.address < BOOT_STRUCTURES_END && r.address + r.size > GDT_ADDRESS) {
      throw new BootError(
        'bad-option',
        `reserved range ${hex(r.address)}+${hex(r.size)} overlaps the boot structures at ` +
          `${hex(GDT_ADDRESS)}-${hex(BOOT_STRUCTURES_END)}`,
      );
    }
    spans = paint(spans, { start: r.address, end: r.address + r.size, type });
  }
  return merge(spans).map((s) => ({ address: s.start, size: s.end - s.start, type: s.type }));
}

/** The regions of guest memory as descriptors. */
export function regionDescriptors(memory: GuestMemory): RegionDescriptor[] {
  return memory.regionList.map((r) => [r.guestBase, r.bytes.length] as const);
}

/**
 * Where the loaders may put things: RAM entries of the map cut at region
 * boundaries, since one GuestMemory access cannot span two regions even when
 * the map shows them as one RAM entry.
 */
export function usableRanges(map: readonly MemoryMapEntry[], regions: readonly RegionDescriptor[]): GuestRange[] {
  const out: GuestRange[] = [];
  for (const e of map) {
    if (e.type !== E820_TYPE_RAM) continue;
    for (const [base, size] of regions) {
      const start = Math.max(e.address, base);
      const end = Math.min(e.address + e.size, base + size);
      if (start < end) out.push([start, end]);
    }
  }
  return out.sort((a, b) => a[0] - b[0]);
}

/** True when [start, end) lies inside one usable range. */
export function isUsableRam(usable: readonly GuestRange[], start: number, end: number): boolean {
  return usable.some(([s, e]) => start >= s && end <= e);
}

/**
 * The highest page-aligned address where `size` bytes fit in a usable range
 * within [lowest, limit), or undefined. Used for the initrd, which kernels
 * expect near the top of memory, clear of the kernel.
 */
export function placeHighest(
  usable: readonly GuestRange[],
  size: number,
  lowest: number,
  limit: number,
): number | undefined {
  for (const [s, e] of [...usable].sort((a, b) => b[0] - a[0])) {
    const start = alignDown(Math.min(e, limit) - size, PAGE_SIZE);
    if (start >= Math.max(s, lowest)) return start;
  }
  return undefined;
}
