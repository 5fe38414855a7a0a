/*
 * Xen PVH ELF note: XEN_ELFNOTE_PHYS32_ENTRY (type 18), name "Xen",
 * 4-byte descriptor = 32-bit physical address of pvh_start32.
 * Linked only into build/guest/test-guest.elf (guest.ld.S with -DPVH puts
 * the .note.Xen section into a PT_NOTE segment).
 */
#define XEN_ELFNOTE_PHYS32_ENTRY 18

	.section .note.Xen, "a", @note
	.balign	4
	.long	2f - 1f			/* namesz */
	.long	4f - 3f			/* descsz */
	.long	XEN_ELFNOTE_PHYS32_ENTRY
1:	.asciz	"Xen"
2:	.balign	4
3:	.long	pvh_start32
4:	.balign	4

	.section .note.GNU-stack, "", @progbits
