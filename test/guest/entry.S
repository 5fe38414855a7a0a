/*
 * kvm test guest: entry points (GNU as, AT&T syntax).
 *
 * The image is linked at 0x100000 (see guest.ld.S) and has three entries:
 *
 *   startup_32   (image + 0x000)  Linux 32-bit boot protocol (code32_start):
 *                protected mode, paging off, ESI = struct boot_params.
 *   startup_64   (image + 0x200)  Linux 64-bit boot protocol (ELF e_entry and
 *                bzImage load address + 0x200): long mode, identity paging,
 *                CS = 0x10, DS/ES/SS = 0x18, RSI = struct boot_params.
 *   pvh_start32                   Xen PVH / x86 HVM direct boot ABI (named by
 *                the XEN_ELFNOTE_PHYS32_ENTRY note in pvh-note.S): protected
 *                mode, paging off, EBX = struct hvm_start_info.
 *
 * The 64-bit code is position independent (RIP-relative only); startup_32
 * finds its own load address, so the bzImage can be relocated. pvh_start32
 * runs at its link address (a PVH loader loads the ELF at its p_paddr).
 *
 * Every entry installs its own identity map of the first 4 GiB
 * (MAP_FIRST_4G; startup_64 replaces the loader's tables) and ends up in
 * guest_main(boot_type, info_pointer, mapped_limit = 4 GiB).
 */

#define BOOT_PVH	1
#define BOOT_LINUX64	2
#define BOOT_LINUX32	3

#define BP_SCRATCH	0x1e4	/* boot_params.scratch: 4 bytes for a call */

#define MSR_EFER	0xc0000080
#define EFER_LME	0x100
#define CR4_PAE		0x20
#define CR0_PE_PG	0x80000001

#define SEL_CODE64	0x10
#define SEL_DATA	0x18

#define MAP_LIMIT_4G	0x100000000

/*
 * Identity-maps the first 4 GiB into pml4/pdpt/pd (PML4 and PDPT already
 * zeroed): four 1 GiB pages if CPUID.80000001h:EDX.Page1GB (bit 26) is in
 * EDX, else 2048 x 2 MiB pages. The last GiB (0xC0000000-0xFFFFFFFF: PCI
 * BARs, virtio-mmio, IOAPIC, LAPIC) is mapped uncacheable (PCD | PWT).
 * B is the addressing suffix for the tables ((%ebp) in 32-bit code with
 * EBP = load delta, (%rip) in 64-bit code), DI the pointer register. Uses
 * EAX, ECX, DI; the same instructions assemble in either mode.
 */
.macro	MAP_FIRST_4G B, DI
	lea	(pdpt + 3)\B, %eax
	movl	%eax, pml4\B
	btl	$26, %edx
	jnc	91f
	movl	$0x00000083, pdpt\B
	movl	$0x40000083, (pdpt + 8)\B
	movl	$0x80000083, (pdpt + 16)\B
	movl	$0xc000009b, (pdpt + 24)\B
	jmp	93f
91:	lea	(pd + 3)\B, %eax
	movl	%eax, pdpt\B
	addl	$4096, %eax
	movl	%eax, (pdpt + 8)\B
	addl	$4096, %eax
	movl	%eax, (pdpt + 16)\B
	addl	$4096, %eax
	movl	%eax, (pdpt + 24)\B
	lea	pd\B, \DI
	movl	$0x83, %eax		/* present | writable | 2 MiB page */
	movl	$2048, %ecx
92:	cmpl	$512, %ecx
	jne	94f
	orl	$0x18, %eax		/* from 3 GiB on: PCD | PWT */
94:	movl	%eax, (\DI)
	movl	$0, 4(\DI)
	addl	$0x200000, %eax
	lea	8(\DI), \DI
	loop	92b
93:
.endm

	.section .head.text, "ax"

/* ---------------------------------------------------------------- 0x000 */
	.code32
	.globl	startup_32
	.type	startup_32, @function
startup_32:
	cli
	cld
	/* No stack yet: borrow boot_params.scratch for one call (as Linux does)
	 * to learn where we run. EBP = runtime - link address. */
	leal	(BP_SCRATCH + 4)(%esi), %esp
	call	1f
1:	popl	%ebp
	subl	$1b, %ebp
	movl	$BOOT_LINUX32, %ebx
	jmp	common32

/* ---------------------------------------------------------------- 0x200 */
	.org	0x200
	.code64
	.globl	startup_64
	.type	startup_64, @function
startup_64:
	/* Keep the loader's GDT; RSI = boot_params (preserved throughout). */
	cli
	cld
	leaq	stack_top(%rip), %rsp
	leaq	__bss_start(%rip), %rdi
	leaq	__bss_end(%rip), %rcx
	subq	%rdi, %rcx
	shrq	$3, %rcx
	xorl	%eax, %eax
	rep stosq			/* zero .bss */
	/* Replace the loader's page tables (which may map less) by ours. */
	leaq	pml4(%rip), %rdi
	movl	$(2 * 4096 / 8), %ecx
	rep stosq			/* zero PML4 and PDPT (EAX is 0) */
	movl	$0x80000001, %eax
	cpuid
	MAP_FIRST_4G (%rip), %rdi
	leaq	pml4(%rip), %rax
	movq	%rax, %cr3
	movl	$BOOT_LINUX64, %edi
	movabsq	$MAP_LIMIT_4G, %rdx
	call	guest_main
	jmp	halt_forever

/* ---------------------------------------------------------------------- */
	.code32
	.globl	pvh_start32
	.type	pvh_start32, @function
pvh_start32:
	cli
	cld
	movl	%ebx, %esi		/* ESI = hvm_start_info */
	xorl	%ebp, %ebp		/* loaded at the link address */
	movl	$BOOT_PVH, %ebx
	/* fall through */

/*
 * 32-bit protected mode, paging off -> 64-bit long mode.
 * In: EBP = load delta, ESI = boot info pointer, EBX = boot type.
 * Builds identity page tables for the first 4 GiB (MAP_FIRST_4G), loads
 * our GDT and enters 64-bit mode. Touches nothing outside the image's
 * .bss/.pgtable/.stack.
 */
common32:
	leal	stack_top(%ebp), %esp

	/* zero .bss */
	xorl	%eax, %eax
	leal	__bss_start(%ebp), %edi
	leal	__bss_end(%ebp), %ecx
	subl	%edi, %ecx
	shrl	$2, %ecx
	rep stosl

	/* zero PML4 and PDPT (the PD is written whole when it is used) */
	leal	pml4(%ebp), %edi
	movl	$(2 * 4096 / 4), %ecx
	rep stosl

	pushl	%ebx
	movl	$0x80000001, %eax
	cpuid
	popl	%ebx
	MAP_FIRST_4G (%ebp), %edi

	/* GDT: build the 6-byte pseudo-descriptor on the stack */
	leal	gdt(%ebp), %eax
	pushl	%eax
	pushw	$(gdt_end - gdt - 1)
	lgdt	(%esp)
	addl	$6, %esp

	movl	%cr4, %eax
	orl	$CR4_PAE, %eax
	movl	%eax, %cr4
	leal	pml4(%ebp), %eax
	movl	%eax, %cr3
	movl	$MSR_EFER, %ecx
	rdmsr
	orl	$EFER_LME, %eax
	wrmsr
	movl	%cr0, %eax
	orl	$CR0_PE_PG, %eax
	movl	%eax, %cr0		/* now in compatibility mode */

	pushl	$SEL_CODE64
	leal	long64(%ebp), %eax
	pushl	%eax
	lret

	.code64
long64:
	movl	$SEL_DATA, %eax
	movl	%eax, %ds
	movl	%eax, %es
	movl	%eax, %ss
	movl	%eax, %fs
	movl	%eax, %gs
	leaq	stack_top(%rip), %rsp
	movl	%ebx, %edi		/* boot type */
	movl	%esi, %esi		/* info pointer, zero-extended */
	movabsq	$MAP_LIMIT_4G, %rdx	/* we mapped the first 4 GiB */
	call	guest_main
	/* fall through */

	.globl	halt_forever
halt_forever:
	cli
	hlt
	jmp	halt_forever

/* ---------------------------------------------------------------------- */
	.text
	.code64

/* Exception entries (#BP = 3, #UD = 6): push the vector and the
 * caller-saved registers (plus RBP), call exception_handler(frame), iretq.
 * The CPU pushed 5 qwords onto a 16-byte aligned stack; the vector and 10
 * registers make it 16-byte aligned again for the call. The C handler may
 * change frame->rip (e.g. to skip a ud2). */
	.globl	int3_entry
	.type	int3_entry, @function
int3_entry:
	pushq	$3
	jmp	exception_common

	.globl	ud_entry
	.type	ud_entry, @function
ud_entry:
	pushq	$6
	jmp	exception_common

/* Interrupt entries for vectors 32..47 (virtio.c): 8 bytes apart from
 * irq_stubs; they share exception_common (exception_handler passes vectors
 * >= 32 on to irq_handler). */
	.balign	8
	.globl	irq_stubs
irq_stubs:
	vec = 32
	.rept	16
	.balign	8
	pushq	$vec
	jmp	exception_common
	vec = vec + 1
	.endr

exception_common:
	pushq	%rax
	pushq	%rcx
	pushq	%rdx
	pushq	%rsi
	pushq	%rdi
	pushq	%r8
	pushq	%r9
	pushq	%r10
	pushq	%r11
	pushq	%rbp
	cld
	movq	%rsp, %rdi
	call	exception_handler
	popq	%rbp
	popq	%r11
	popq	%r10
	popq	%r9
	popq	%r8
	popq	%rdi
	popq	%rsi
	popq	%rdx
	popq	%rcx
	popq	%rax
	addq	$8, %rsp		/* vector */
	iretq

/* ---------------------------------------------------------------------- */
	.section .rodata
	.balign	16
gdt:
	.quad	0
	.quad	0x00cf9b000000ffff	/* 0x08: flat 32-bit code */
	.quad	0x00af9b000000ffff	/* 0x10: flat 64-bit code */
	.quad	0x00cf93000000ffff	/* 0x18: flat data */
gdt_end:

	.section .pgtable, "aw", @nobits
	.balign	4096
pml4:	.skip	4096
pdpt:	.skip	4096
pd:	.skip	4 * 4096		/* used only without 1 GiB pages */

	.section .stack, "aw", @nobits
	.balign	16
	.globl	stack_bottom
stack_bottom:
	.skip	16384
	.globl	stack_top
stack_top:

	.section .note.GNU-stack, "", @progbits
