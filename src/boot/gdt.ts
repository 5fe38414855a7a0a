/**
 * The boot GDT and the segment registers that match it. KVM takes segment
 * state directly (the hidden part), but the descriptors must agree with it:
 * the kernel reloads selectors from this table before installing its own.
 */

import type { GuestMemory } from '../vmm/guest-memory.js';
import type { DescriptorTable, SegmentState } from '../vmm/cpu-state.js';
import { GDT_ADDRESS, GDT_SIZE } from './layout.js';

/** Linux boot protocol selectors (arch/x86/include/asm/segment.h). */
export const BOOT_CS = 0x10;
export const BOOT_DS = 0x18;
export const BOOT_TSS = 0x20;

export const SEGMENT_TYPE_CODE_EXEC_READ_ACCESSED = 0xb;
export const SEGMENT_TYPE_DATA_READ_WRITE_ACCESSED = 0x3;
/** System descriptor type: busy 32-bit (or 64-bit) TSS, what TR holds after LTR. */
export const SEGMENT_TYPE_TSS_BUSY = 0xb;
/** The PVH spec's TR: base 0, limit 0x67 (a 104-byte TSS). */
export const TSS_LIMIT = 0x67;

const FLAT_LIMIT = 0xffffffff;

const flat = { base: 0, limit: FLAT_LIMIT, present: 1, dpl: 0, s: 1, g: 1, avl: 0 } as const;

export const CODE64_SEGMENT: SegmentState = { ...flat, selector: BOOT_CS, type: SEGMENT_TYPE_CODE_EXEC_READ_ACCESSED, db: 0, l: 1 };
export const CODE32_SEGMENT: SegmentState = { ...flat, selector: BOOT_CS, type: SEGMENT_TYPE_CODE_EXEC_READ_ACCESSED, db: 1, l: 0 };
export const DATA_SEGMENT: SegmentState = { ...flat, selector: BOOT_DS, type: SEGMENT_TYPE_DATA_READ_WRITE_ACCESSED, db: 1, l: 0 };
/** VMX entry checks need a usable TR even though nothing switches tasks. */
export const TSS_SEGMENT: SegmentState = {
  base: 0, limit: TSS_LIMIT, selector: BOOT_TSS, type: SEGMENT_TYPE_TSS_BUSY,
  present: 1, dpl: 0, db: 0, s: 0, l: 0, g: 0, avl: 0,
};

/** The 8-byte descriptor for a segment (limit in 4 KiB units when g=1). */
export function encodeDescriptor(seg: SegmentState): bigint {
  const limit = seg.g ? Math.floor(seg.limit / 0x1000) : seg.limit;
  const low = ((limit & 0xffff) | ((seg.base & 0xffff) << 16)) >>> 0;
  const high = (((seg.base >>> 16) & 0xff) |
    (seg.type << 8) | (seg.s << 12) | (seg.dpl << 13) | (seg.present << 15) |
    (((limit >>> 16) & 0xf) << 16) |
    (seg.avl << 20) | (seg.l << 21) | (seg.db << 22) | (seg.g << 23) |
    (((seg.base >>> 24) & 0xff) << 24)) >>> 0;
  return (BigInt(high) << 32n) | BigInt(low);
}

/**
 * null, null (0x08), code (0x10), data (0x18), TSS (0x20; its second slot is
 * the upper half of a long-mode system descriptor, zero here).
 */
export function writeBootGdt(memory: GuestMemory, code: SegmentState): DescriptorTable {
  memory.fill(GDT_ADDRESS, GDT_SIZE, 0);
  for (const seg of [code, DATA_SEGMENT, TSS_SEGMENT]) {
    memory.writeU64(GDT_ADDRESS + seg.selector, encodeDescriptor(seg));
  }
  return { base: GDT_ADDRESS, limit: GDT_SIZE - 1 };
}
