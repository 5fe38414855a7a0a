/*
 * kvm test guest: what main.c and the virtio files share (freestanding, no libc).
 * Every symbol is hidden so that all references stay RIP-relative.
 */
#ifndef GUEST_H
#define GUEST_H

#pragma GCC visibility push(hidden)

typedef unsigned char u8;
typedef unsigned short u16;
typedef unsigned int u32;
typedef unsigned long long u64;

#define POST_PORT 0x80

/* ------------------------------------------------------------ port I/O */

static inline void outb(u16 port, u8 v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(u16 port, u16 v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(u16 port, u32 v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline u8 inb(u16 port)
{
	u8 v;
	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline u16 inw(u16 port)
{
	u16 v;
	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline u32 inl(u16 port)
{
	u32 v;
	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* ---------------------------------------------------------------- MMIO
 * Plain MOVs only (no read-modify-write instructions), so that a VMM's
 * MMIO exits see simple loads and stores of exactly the given width. */

static inline u8 mmio_rd8(u64 a)
{
	u8 v;
	__asm__ volatile("movb (%1), %0" : "=q"(v) : "r"(a) : "memory");
	return v;
}

static inline u16 mmio_rd16(u64 a)
{
	u16 v;
	__asm__ volatile("movw (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline u32 mmio_rd32(u64 a)
{
	u32 v;
	__asm__ volatile("movl (%1), %0" : "=r"(v) : "r"(a) : "memory");
	return v;
}

static inline void mmio_wr8(u64 a, u8 v)
{
	__asm__ volatile("movb %0, (%1)" : : "q"(v), "r"(a) : "memory");
}

static inline void mmio_wr16(u64 a, u16 v)
{
	__asm__ volatile("movw %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

static inline void mmio_wr32(u64 a, u32 v)
{
	__asm__ volatile("movl %0, (%1)" : : "r"(v), "r"(a) : "memory");
}

/* Orders the compiler's memory accesses (enough between stores on x86). */
static inline void barrier(void)
{
	__asm__ volatile("" : : : "memory");
}

/* A full barrier: stores before it are visible before loads after it. */
static inline void mfence(void)
{
	__asm__ volatile("mfence" : : : "memory");
}

/* --------------------------------------------------------- in main.c */

void putc(char c);
void puts(const char *s);
void put_hex(u64 v);  /* 0x-prefixed, no leading zeros */
void put_hex2(u8 v);  /* exactly two hex digits */
void put_dec(u64 v);
void debug_exit(u8 value) __attribute__((noreturn));

/* The command line: key=value lookup (first match) and word iteration. */
const char *param(const char *key, u32 *len);
int value_is(const char *v, u32 len, const char *s);
u64 param_u64(const char *key, u64 dflt);
const char *next_word(u32 *pos, u32 *len); /* NULL after the last word */

/* Is [base, base + len) inside one RAM (type 1) entry of the memory map? */
int ram_contains(u64 base, u64 len);

/* Is [addr, addr + len) non-null and inside the identity map we may read? */
int mapped(u64 addr, u64 len);

/* The RSDP address the boot protocol passed (PVH start info rsdp_paddr or
 * boot_params acpi_rsdp_addr; 0 if none) and the field's name. */
u64 boot_rsdp(const char **field);

/* The IDT (vectors 0..47): a 64-bit interrupt gate to handler. */
void set_gate(int vec, const char *handler);
void load_idt(void);

/* ------------------------------------------------------- in virtio.c */

void test_virtio(u32 type);        /* 1 = net, 2 = block, 3 = console, 4 = rng */
void irq_handler(u32 vector);      /* vectors 32..47, from exception_handler */

/* --------------------------------------------------------- in acpi.c */

#define ACPI_TEST_TABLES 0   /* test=acpi */
#define ACPI_TEST_POWEROFF 1 /* test=acpi-poweroff */
#define ACPI_TEST_RESET 2    /* test=acpi-reset */
#define ACPI_TEST_PVPANIC 3  /* test=pvpanic */
void test_acpi(u32 which) __attribute__((noreturn));

/* ------------------------------------------------------- in entry.S */

/* 16 entry stubs, 8 bytes apart, for vectors 32..47: each pushes its
 * vector and calls exception_handler() like the exception entries. */
extern char irq_stubs[];
extern void halt_forever(void) __attribute__((noreturn));

#endif
