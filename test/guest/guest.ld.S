/*
 * Linker script for the kvm test guest (run through the C preprocessor by
 * build.sh). Physical = virtual; the image starts at LOAD_ADDR (1 MiB).
 *
 *   -DPVH   : also emit the Xen PVH note (.note.Xen) in a PT_NOTE segment.
 *
 * Layout (offsets from LOAD_ADDR):
 *   0x000  startup_32   Linux 32-bit boot protocol entry (code32_start)
 *   0x200  startup_64   Linux 64-bit boot protocol entry (ELF e_entry, bzImage +0x200)
 *   ...    pvh_start32, common code, C code, rodata, data, [PVH note]
 *   then the NOLOAD areas: .bss (zeroed by the entry code), .noinit (never
 *   zeroed), page tables, stack (never zeroed). _end marks the end of everything the guest uses.
 */
#ifndef LOAD_ADDR
#define LOAD_ADDR 0x100000
#endif

OUTPUT_FORMAT("elf64-x86-64")
OUTPUT_ARCH(i386:x86-64)
ENTRY(startup_64)

PHDRS
{
	image PT_LOAD FLAGS(7);
#ifdef PVH
	note PT_NOTE FLAGS(4);
#endif
}

SECTIONS
{
	. = LOAD_ADDR;
	_start = .;

	.text : {
		KEEP(*(.head.text))
		*(.text .text.*)
	} :image

	.rodata : {
		*(.rodata .rodata.*)
	} :image

	.data : {
		*(.data .data.*)
	} :image

#ifdef PVH
	.note.Xen : ALIGN(4) {
		KEEP(*(.note.Xen))
	} :image :note
#endif

	/* Everything after this is NOLOAD: not part of the file image. */
	_image_end = .;

	.bss (NOLOAD) : ALIGN(64) {
		__bss_start = .;
		*(.bss .bss.*)
		*(COMMON)
		. = ALIGN(8);
		__bss_end = .;
	} :image

	/* Not zeroed: the virtqueues, initialised by the code that uses them
	 * (zeroing costs ~1 us per 8 bytes on a nested host). */
	.noinit (NOLOAD) : ALIGN(64) {
		*(.noinit .noinit.*)
	} :image

	/* Page tables built by the 32-bit entry paths (not zeroed by the
	 * 64-bit entry, which keeps the loader's page tables). */
	.pgtable (NOLOAD) : ALIGN(4096) {
		*(.pgtable)
	} :image

	.stack (NOLOAD) : ALIGN(16) {
		*(.stack)
	} :image

	_end = .;

	/DISCARD/ : {
		*(.eh_frame*)
		*(.comment)
		*(.note.GNU-stack)
		*(.note.gnu.property)
		*(.note.gnu.build-id)
		*(.dynamic .dynsym .dynstr .interp .hash .gnu.hash)
	}
}
