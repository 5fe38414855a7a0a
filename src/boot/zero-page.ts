/**
 * struct boot_params, the "zero page" of the Linux boot protocol
 * (Documentation/arch/x86/zero-page.rst). The setup header part uses the
 * HDR_* offsets from setup-header.ts.
 */

import type { GuestMemory } from '../vmm/guest-memory.js';
import { BootError } from './boot-error.js';
import { ZERO_PAGE_SIZE } from './layout.js';
import type { MemoryMapEntry } from './memory-map.js';
import {
  BOOT_FLAG_MAGIC,
  CAN_USE_HEAP,
  HDRS_MAGIC,
  HDR_BOOT_FLAG,
  HDR_CMDLINE_SIZE,
  HDR_CMD_LINE_PTR,
  HDR_CODE32_START,
  HDR_HEADER,
  HDR_HEAP_END_PTR,
  HDR_LOADFLAGS,
  HDR_RAMDISK_IMAGE,
  HDR_RAMDISK_SIZE,
  HDR_SETUP_DATA,
  HDR_SETUP_SECTS,
  HDR_TYPE_OF_LOADER,
  HDR_VID_MODE,
  LOADED_HIGH,
} from './setup-header.js';

export const BP_ACPI_RSDP_ADDR = 0x070;
export const BP_EXT_RAMDISK_IMAGE = 0x0c0;
export const BP_EXT_RAMDISK_SIZE = 0x0c4;
export const BP_EXT_CMD_LINE_PTR = 0x0c8;
export const BP_E820_ENTRIES = 0x1e8;
export const BP_E820_TABLE = 0x2d0;
export const E820_MAX_ENTRIES_ZEROPAGE = 128;
/** struct boot_e820_entry: u64 addr, u64 size, u32 type, packed. */
export const E820_ENTRY_SIZE = 20;

/** boot.rst: 0xff is "undefined" for loaders without an assigned ID. */
export const LOADER_TYPE_UNDEFINED = 0xff;
/** vga=normal; the kernel reads vid_mode before it parses the command line. */
export const VID_MODE_NORMAL = 0xffff;
/** boot.rst's sample layout (heap ends at 0xe000 in the real-mode segment); only real-mode setup, which 64-bit entry skips, uses it. */
export const HEAP_END_PTR = 0xe000 - 0x200;

export interface ZeroPageParams {
  /** Setup header bytes from the bzImage (starting at 0x1f1); omitted for an ELF vmlinux. */
  readonly setupHeader?: Uint8Array;
  /** Where the protected-mode kernel was loaded (bzImage), for code32_start. */
  readonly code32Start?: number;
  readonly cmdlineAddress: number;
  /** cmdline_size to advertise when there is no setup header to copy. */
  readonly cmdlineSize: number;
  readonly initrd?: { readonly address: number; readonly size: number };
  readonly memoryMap: readonly MemoryMapEntry[];
  readonly acpiRsdp?: number;
}

const low32 = (value: number): number => value >>> 0;
const high32 = (value: number): number => Math.floor(value / 0x1_0000_0000) >>> 0;

export function writeZeroPage(memory: GuestMemory, address: number, params: ZeroPageParams): void {
  if (params.memoryMap.length > E820_MAX_ENTRIES_ZEROPAGE) {
    throw new BootError(
      'memory-map-too-large',
      `memory map has ${params.memoryMap.length} entries; the zero page holds at most ${E820_MAX_ENTRIES_ZEROPAGE}`,
    );
  }
  memory.fill(address, ZERO_PAGE_SIZE, 0);
  if (params.setupHeader) {
    memory.write(address + HDR_SETUP_SECTS, params.setupHeader);
    // The loader owns the setup_data list and passes none; never trust the file's pointer.
    if (params.setupHeader.length >= HDR_SETUP_DATA + 8 - HDR_SETUP_SECTS) memory.writeU64(address + HDR_SETUP_DATA, 0);
  } else {
    // An ELF vmlinux has no header to copy; give the kernel the fields it checks.
    memory.writeU16(address + HDR_BOOT_FLAG, BOOT_FLAG_MAGIC);
    memory.writeU32(address + HDR_HEADER, HDRS_MAGIC);
    memory.writeU8(address + HDR_LOADFLAGS, LOADED_HIGH);
    memory.writeU32(address + HDR_CMDLINE_SIZE, params.cmdlineSize);
  }
  memory.writeU16(address + HDR_VID_MODE, VID_MODE_NORMAL);
  memory.writeU8(address + HDR_TYPE_OF_LOADER, LOADER_TYPE_UNDEFINED);
  memory.writeU8(address + HDR_LOADFLAGS, memory.readU8(address + HDR_LOADFLAGS) | CAN_USE_HEAP);
  memory.writeU16(address + HDR_HEAP_END_PTR, HEAP_END_PTR);
  if (params.code32Start !== undefined) memory.writeU32(address + HDR_CODE32_START, params.code32Start);

  memory.writeU32(address + HDR_CMD_LINE_PTR, low32(params.cmdlineAddress));
  memory.writeU32(address + BP_EXT_CMD_LINE_PTR, high32(params.cmdlineAddress));
  if (params.initrd) {
    memory.writeU32(address + HDR_RAMDISK_IMAGE, low32(params.initrd.address));
    memory.writeU32(address + BP_EXT_RAMDISK_IMAGE, high32(params.initrd.address));
    memory.writeU32(address + HDR_RAMDISK_SIZE, low32(params.initrd.size));
    memory.writeU32(address + BP_EXT_RAMDISK_SIZE, high32(params.initrd.size));
  }
  if (params.acpiRsdp !== undefined) memory.writeU64(address + BP_ACPI_RSDP_ADDR, params.acpiRsdp);

  memory.writeU8(address + BP_E820_ENTRIES, params.memoryMap.length);
  params.memoryMap.forEach((entry, i) => {
    const at = address + BP_E820_TABLE + i * E820_ENTRY_SIZE;
    memory.writeU64(at, entry.address);
    memory.writeU64(at + 8, entry.size);
    memory.writeU32(at + 16, entry.type);
  });
}
