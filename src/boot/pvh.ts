/**
 * PVH start of day: struct hvm_start_info and its tables
 * (xen/include/public/arch-x86/hvm/start_info.h). The kernel finds it through
 * %ebx. All fields are little-endian; a zero address means "not present".
 */

import type { GuestMemory } from '../vmm/guest-memory.js';
import { BootError } from './boot-error.js';
import {
  PVH_MEMMAP_ADDRESS,
  PVH_MEMMAP_MAX_ENTRIES,
  PVH_MODLIST_ADDRESS,
  PVH_MODLIST_MAX_ENTRIES,
  PVH_START_INFO_ADDRESS,
} from './layout.js';
import type { MemoryMapEntry } from './memory-map.js';

/** "xEn3" with the 0x80 bit of the "E" set. */
export const XEN_HVM_START_MAGIC_VALUE = 0x336ec578;
/** Version 1 adds memmap_paddr/memmap_entries. */
export const HVM_START_INFO_VERSION = 1;

export const START_INFO_MAGIC = 0;
export const START_INFO_VERSION = 4;
export const START_INFO_FLAGS = 8;
export const START_INFO_NR_MODULES = 12;
export const START_INFO_MODLIST_PADDR = 16;
export const START_INFO_CMDLINE_PADDR = 24;
export const START_INFO_RSDP_PADDR = 32;
export const START_INFO_MEMMAP_PADDR = 40;
export const START_INFO_MEMMAP_ENTRIES = 48;
export const HVM_START_INFO_SIZE = 56;

/** struct hvm_modlist_entry: u64 paddr, u64 size, u64 cmdline_paddr, u64 reserved. */
export const HVM_MODLIST_ENTRY_SIZE = 32;
/** struct hvm_memmap_table_entry: u64 addr, u64 size, u32 type (E820 numbering), u32 reserved. */
export const HVM_MEMMAP_ENTRY_SIZE = 24;

export interface PvhModule {
  readonly address: number;
  readonly size: number;
}

export interface StartInfoParams {
  readonly cmdlineAddress: number;
  /** Module 0 is the initrd, as Linux expects. */
  readonly modules: readonly PvhModule[];
  readonly memoryMap: readonly MemoryMapEntry[];
  readonly acpiRsdp?: number;
}

/** Writes start info, module list and memory map; returns the start info address. */
export function writeStartInfo(memory: GuestMemory, params: StartInfoParams): number {
  if (params.memoryMap.length > PVH_MEMMAP_MAX_ENTRIES) {
    throw new BootError(
      'memory-map-too-large',
      `memory map has ${params.memoryMap.length} entries; the PVH memmap holds at most ${PVH_MEMMAP_MAX_ENTRIES}`,
    );
  }
  if (params.modules.length > PVH_MODLIST_MAX_ENTRIES) {
    throw new BootError('bad-option', `${params.modules.length} PVH modules given; at most ${PVH_MODLIST_MAX_ENTRIES} fit`);
  }
  const base = PVH_START_INFO_ADDRESS;
  memory.fill(base, HVM_START_INFO_SIZE, 0);
  memory.writeU32(base + START_INFO_MAGIC, XEN_HVM_START_MAGIC_VALUE);
  memory.writeU32(base + START_INFO_VERSION, HVM_START_INFO_VERSION);
  memory.writeU32(base + START_INFO_NR_MODULES, params.modules.length);
  memory.writeU64(base + START_INFO_MODLIST_PADDR, params.modules.length > 0 ? PVH_MODLIST_ADDRESS : 0);
  memory.writeU64(base + START_INFO_CMDLINE_PADDR, params.cmdlineAddress);
  memory.writeU64(base + START_INFO_RSDP_PADDR, params.acpiRsdp ?? 0);
  memory.writeU64(base + START_INFO_MEMMAP_PADDR, PVH_MEMMAP_ADDRESS);
  memory.writeU32(base + START_INFO_MEMMAP_ENTRIES, params.memoryMap.length);

  params.modules.forEach((m, i) => {
    const at = PVH_MODLIST_ADDRESS + i * HVM_MODLIST_ENTRY_SIZE;
    memory.fill(at, HVM_MODLIST_ENTRY_SIZE, 0);
    memory.writeU64(at, m.address);
    memory.writeU64(at + 8, m.size);
  });
  params.memoryMap.forEach((e, i) => {
    const at = PVH_MEMMAP_ADDRESS + i * HVM_MEMMAP_ENTRY_SIZE;
    memory.writeU64(at, e.address);
    memory.writeU64(at + 8, e.size);
    memory.writeU32(at + 16, e.type);
    memory.writeU32(at + 20, 0);
  });
  return base;
}
