/**
 * Where the boot structures live in guest physical memory. Everything the VMM
 * writes besides the kernel and initrd sits in conventional memory below the
 * EBDA (0x9fc00), which the memory map reports as RAM; the kernel copies what it
 * needs out of it before reusing that memory.
 *
 *   0x00500  GDT                 (0x500-0x52f)
 *   0x06000  PVH hvm_start_info  (+ module list at 0x6040, memory map at 0x6080)
 *   0x07000  zero page           (struct boot_params, one page)
 *   0x08000  boot stack          (grows down from 0x8ff0)
 *   0x09000  PML4, 0xa000 PDPT, 0xb000-0xefff four page directories
 *   0x20000  kernel command line (up to 64 KiB)
 *   0x9fc00  EBDA / BIOS area: reserved up to 1 MiB (ACPI tables go at 0xe0000-0xfffff)
 *  0x100000  kernel (bzImage protected-mode part; ELF segments must be at or above this)
 */

export const PAGE_SIZE = 0x1000;

/** Just above the real-mode IVT (0x0-0x3ff) and BIOS data area (0x400-0x4ff), which guests may still read. */
export const GDT_ADDRESS = 0x500;
/** null, unused (0x08), __BOOT_CS (0x10), __BOOT_DS (0x18), TSS (0x20, two slots in long mode). */
export const GDT_ENTRY_COUNT = 6;
export const GDT_SIZE = GDT_ENTRY_COUNT * 8;

/** PVH: struct hvm_start_info, whose address goes in %ebx. */
export const PVH_START_INFO_ADDRESS = 0x6000;
/** PVH: struct hvm_modlist_entry array (just the initrd), after the 56-byte start info. */
export const PVH_MODLIST_ADDRESS = 0x6040;
export const PVH_MODLIST_MAX_ENTRIES = 2;
/** PVH: struct hvm_memmap_table_entry array (24 bytes each), up to the zero page. */
export const PVH_MEMMAP_ADDRESS = 0x6080;
export const PVH_MEMMAP_MAX_ENTRIES = 128;

/** Linux boot protocol: struct boot_params, whose address goes in %rsi. */
export const ZERO_PAGE_ADDRESS = 0x7000;
export const ZERO_PAGE_SIZE = 0x1000;

/** A small stack for entry code that wants one before setting up its own; 16-byte aligned. */
export const BOOT_STACK_BOTTOM = 0x8000;
export const BOOT_STACK_TOP = 0x8ff0;

/** Identity map of the first 4 GiB with 2 MiB pages: PML4 -> one PDPT -> four page directories. */
export const PML4_ADDRESS = 0x9000;
export const PDPT_ADDRESS = 0xa000;
export const PD_ADDRESS = 0xb000;
export const PD_COUNT = 4;
export const PAGE_TABLES_END = PD_ADDRESS + PD_COUNT * PAGE_SIZE;

/** Kernel command line, NUL-terminated; boot.rst wants it below 0xa0000. */
export const CMDLINE_ADDRESS = 0x20000;
export const CMDLINE_MAX_SIZE = 0x10000;

/** End of the span above that holds boot structures; it must be plain RAM. */
export const BOOT_STRUCTURES_END = CMDLINE_ADDRESS + CMDLINE_MAX_SIZE;

/** Start of the extended BIOS data area: conventional RAM ends here, as on a PC. */
export const EBDA_START = 0x9fc00;
/** 1 MiB: the end of the legacy BIOS area and where kernels start. */
export const HIGH_MEMORY_START = 0x100000;
/** bzImage load address for relocatable kernels (boot.rst's 0x100000, as QEMU and kvmtool use). */
export const KERNEL_LOAD_ADDRESS = 0x100000;

/** Limit of the identity map and of anything a 32-bit entry can address. */
export const FOUR_GIB = 0x1_0000_0000;

export function alignUp(value: number, alignment: number): number {
  return Math.ceil(value / alignment) * alignment;
}

export function alignDown(value: number, alignment: number): number {
  return Math.floor(value / alignment) * alignment;
}
