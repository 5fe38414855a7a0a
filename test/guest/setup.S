/*
 * kvm test guest: the real-mode "setup" part of test-guest.bzImage.
 *
 * This file IS the bzImage header generator: assembled with
 *   -DSYSSIZE=<protected-mode size / 16> -DINIT_SIZE=<bytes>
 * and linked at 0, it becomes the first (SETUP_SECTS + 1) * 512 bytes of the
 * bzImage; the protected-mode image (test-guest-elf64.elf as a flat binary)
 * follows it. The setup header follows Documentation/arch/x86/boot.rst,
 * protocol 2.15.
 *
 * A VMM that implements the 64-bit boot protocol only reads the header and
 * never runs this code. A BIOS boot loader (QEMU's linuxboot option ROM,
 * qboot) jumps to setup + 0x200 in real mode; the code below then acts as a
 * minimal 64-bit boot loader: it builds a fresh boot_params (setup header +
 * BIOS E820 map), identity-maps the first 1 GiB, enters long mode with
 * CS = 0x10 / DS = 0x18 and jumps to code32_start + 0x200 with RSI =
 * boot_params - i.e. it enters the guest exactly like our VMM does.
 *
 * Real-mode memory used, relative to the setup load address B (QEMU: 0x10000):
 *   B + 0x0000 .. SETUP_SIZE   this code
 *   B + 0x1000 .. 0x2000       the new boot_params
 *   B + 0x2000 .. 0x6000       page tables (PML4, PDPT, PD; 4 KiB aligned)
 *   B + 0x7000 .. 0x8000       stack
 */

#define SETUP_SECTS	2
#define SETUP_SIZE	((SETUP_SECTS + 1) * 512)

#define BP_OFF		0x1000
#define PT_OFF		0x2000
#define STACK_OFF	0x8000

#ifndef SYSSIZE
#error "SYSSIZE must be defined"
#endif
#ifndef INIT_SIZE
#error "INIT_SIZE must be defined"
#endif

	.code16
	.section .text, "ax"
	.globl	_start
_start:
	/* Booted directly from a disk by a BIOS: nothing to do. */
	cli
1:	hlt
	jmp	1b

	.org	0x1f1
hdr:
	.byte	SETUP_SECTS		/* 0x1f1 setup_sects */
	.word	0			/* 0x1f2 root_flags */
	.long	SYSSIZE			/* 0x1f4 syssize (16-byte units) */
	.word	0			/* 0x1f8 ram_size */
	.word	0xffff			/* 0x1fa vid_mode: normal */
	.word	0			/* 0x1fc root_dev */
	.word	0xaa55			/* 0x1fe boot_flag */
	/* 0x200: real-mode entry (setup segment + 0x20 : 0) */
	.byte	0xeb, start_of_setup - 1f
1:	.ascii	"HdrS"			/* 0x202 header */
	.word	0x020f			/* 0x206 version 2.15 */
	.long	0			/* 0x208 realmode_swtch */
	.word	0x1000			/* 0x20c start_sys_seg (obsolete) */
	.word	kernel_version - 0x200	/* 0x20e kernel_version */
	.byte	0			/* 0x210 type_of_loader */
	.byte	0x01			/* 0x211 loadflags: LOADED_HIGH */
	.word	0x8000			/* 0x212 setup_move_size */
	.long	0x100000		/* 0x214 code32_start */
	.long	0			/* 0x218 ramdisk_image */
	.long	0			/* 0x21c ramdisk_size */
	.long	0			/* 0x220 bootsect_kludge */
	.word	0			/* 0x224 heap_end_ptr */
	.byte	0			/* 0x226 ext_loader_ver */
	.byte	0			/* 0x227 ext_loader_type */
	.long	0			/* 0x228 cmd_line_ptr */
	.long	0x7fffffff		/* 0x22c initrd_addr_max */
	.long	0x200000		/* 0x230 kernel_alignment */
	.byte	1			/* 0x234 relocatable_kernel */
	.byte	12			/* 0x235 min_alignment (log2): 4 KiB */
	.word	0x0003			/* 0x236 xloadflags: KERNEL_64 | CAN_BE_LOADED_ABOVE_4G */
	.long	2047			/* 0x238 cmdline_size */
	.long	0			/* 0x23c hardware_subarch */
	.quad	0			/* 0x240 hardware_subarch_data */
	.long	0			/* 0x248 payload_offset */
	.long	0			/* 0x24c payload_length */
	.quad	0			/* 0x250 setup_data */
	.quad	0x100000		/* 0x258 pref_address */
	.long	INIT_SIZE		/* 0x260 init_size */
	.long	0			/* 0x264 handover_offset */
	.long	0			/* 0x268 kernel_info_offset */
hdr_end:
	.org	0x26c			/* (fails to assemble if the header grew) */

start_of_setup:
	cli
	cld
	movw	%cs, %ax
	subw	$0x20, %ax		/* segment of the setup / old zero page */
	movw	%ax, %ds
	movw	%ax, %es
	movw	%ax, %ss
	movw	$STACK_OFF, %sp
	movzwl	%ax, %ebp
	shll	$4, %ebp		/* EBP = B, linear address of the setup */

	/* a fresh boot_params: zeroed, with our (loader-patched) setup header */
	movw	$BP_OFF, %di
	movw	$2048, %cx
	xorw	%ax, %ax
	rep stosw
	movw	$hdr, %si
	movw	$(BP_OFF + 0x1f1), %di
	movw	$(hdr_end - hdr), %cx
	rep movsb

	/* E820 memory map from the BIOS into boot_params.e820_table */
	movw	$(BP_OFF + 0x2d0), %di
	xorl	%ebx, %ebx
	xorw	%si, %si
e820_next:
	movl	$0xe820, %eax
	movl	$0x534d4150, %edx	/* "SMAP" */
	movl	$20, %ecx
	int	$0x15
	jc	e820_done
	cmpl	$0x534d4150, %eax
	jne	e820_done
	incw	%si
	addw	$20, %di
	cmpw	$128, %si
	jae	e820_done
	testl	%ebx, %ebx
	jnz	e820_next
e820_done:
	movw	%si, %ax
	movb	%al, (BP_OFF + 0x1e8)	/* e820_entries */

	/* protected mode */
	cli
	leal	gdt(%ebp), %eax
	movl	%eax, gdt_desc + 2
	leal	pm32(%ebp), %eax
	movl	%eax, pm32_ptr
	lgdtl	gdt_desc
	movl	%cr0, %eax
	orl	$1, %eax
	movl	%eax, %cr0
	ljmpl	*pm32_ptr

	.code32
pm32:
	movl	$0x18, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %fs
	movl	%eax, %gs
	movl	%eax, %ss
	leal	STACK_OFF(%ebp), %esp

	/* identity map the first 1 GiB with 2 MiB pages */
	leal	(PT_OFF + 4095)(%ebp), %edi
	andl	$~4095, %edi
	movl	%edi, %edx		/* EDX = PML4 */
	xorl	%eax, %eax
	movl	$(3 * 1024), %ecx
	rep stosl
	leal	(0x1000 + 3)(%edx), %eax
	movl	%eax, (%edx)		/* PML4[0] -> PDPT */
	leal	(0x2000 + 3)(%edx), %eax
	movl	%eax, 0x1000(%edx)	/* PDPT[0] -> PD */
	leal	0x2000(%edx), %edi
	movl	$0x83, %eax
	movl	$512, %ecx
1:	movl	%eax, (%edi)
	addl	$0x200000, %eax
	addl	$8, %edi
	loop	1b

	movl	%cr4, %eax
	orl	$0x20, %eax		/* PAE */
	movl	%eax, %cr4
	movl	%edx, %cr3
	movl	$0xc0000080, %ecx	/* EFER */
	rdmsr
	orl	$0x100, %eax		/* LME */
	wrmsr
	movl	%cr0, %eax
	orl	$0x80000000, %eax	/* PG */
	movl	%eax, %cr0
	pushl	$0x10
	leal	lm64(%ebp), %eax
	pushl	%eax
	lret

	.code64
lm64:
	movl	%ebp, %esi
	addl	$BP_OFF, %esi		/* RSI = boot_params */
	movl	0x214(%rsi), %eax	/* code32_start: where the image was loaded */
	addl	$0x200, %eax		/* 64-bit entry */
	jmp	*%rax

	.balign	8
gdt:
	.quad	0
	.quad	0x00cf9b000000ffff	/* 0x08: flat 32-bit code */
	.quad	0x00af9b000000ffff	/* 0x10: flat 64-bit code */
	.quad	0x00cf93000000ffff	/* 0x18: flat data */
gdt_end:
gdt_desc:
	.word	gdt_end - gdt - 1
	.long	0			/* patched: linear address of gdt */
pm32_ptr:
	.long	0			/* patched: linear address of pm32 */
	.word	0x08

kernel_version:
	.asciz	"kvm-test-guest"

	.org	SETUP_SIZE		/* (fails to assemble if the code grew) */

	.section .note.GNU-stack, "", @progbits
