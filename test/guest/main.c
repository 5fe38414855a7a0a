/*
 * kvm test guest: the common C part (freestanding, no libc, no SSE).
 *
 * guest_main() is called by every entry in entry.S in 64-bit mode with
 *   boot   = BOOT_PVH (info -> struct hvm_start_info) or
 *            BOOT_LINUX64 / BOOT_LINUX32 (info -> struct boot_params),
 *   limit  = end of the identity mapping we may dereference.
 *
 * The kernel command line selects a test: "test=NAME [key=value ...]".
 * Output: polled 8250 UART at 0x3f8. Exit: isa-debug-exit at 0xf4.
 * Keep this file position independent: no static tables of pointers.
 */

#include "guest.h"

#define BOOT_PVH 1
#define BOOT_LINUX64 2
#define BOOT_LINUX32 3

#define COM1 0x3f8
#define COM1_LSR (COM1 + 5)
#define LSR_DR 0x01
#define LSR_THRE 0x20
#define DEBUG_EXIT_PORT 0xf4

#define HVM_START_MAGIC 0x336ec578u

#define CMDLINE_MAX 4096

void guest_main(u32 boot, u64 info, u64 limit);
struct exc_frame;
void exception_handler(struct exc_frame *f);
extern char int3_entry[], ud_entry[];

/* gcc may emit calls to these even in freestanding code. */
void *memset(void *d, int c, unsigned long n);
void *memcpy(void *d, const void *s, unsigned long n);
void *memset(void *d, int c, unsigned long n)
{
	u8 *p = d;
	while (n--)
		*p++ = (u8)c;
	return d;
}
void *memcpy(void *d, const void *s, unsigned long n)
{
	u8 *p = d;
	const u8 *q = s;
	while (n--)
		*p++ = *q++;
	return d;
}

/* ---------------------------------------------------------------- I/O */

void putc(char c)
{
	while (!(inb(COM1_LSR) & LSR_THRE))
		;
	outb(COM1, (u8)c);
}

void puts(const char *s)
{
	while (*s)
		putc(*s++);
}

void put_hex(u64 v) /* 0x-prefixed, no leading zeros */
{
	char buf[16];
	int n = 0;
	puts("0x");
	do {
		buf[n++] = "0123456789abcdef"[v & 15];
		v >>= 4;
	} while (v);
	while (n)
		putc(buf[--n]);
}

void put_hex2(u8 v) /* exactly two hex digits */
{
	putc("0123456789abcdef"[v >> 4]);
	putc("0123456789abcdef"[v & 15]);
}

void put_dec(u64 v)
{
	char buf[20];
	int n = 0;
	do {
		buf[n++] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	while (n)
		putc(buf[--n]);
}

static void put_dec2(u8 v) /* exactly two decimal digits */
{
	putc((char)('0' + (v / 10) % 10));
	putc((char)('0' + v % 10));
}

void debug_exit(u8 value)
{
	outb(DEBUG_EXIT_PORT, value);
	halt_forever();
}

/* --------------------------------------------------------- boot info */

static u32 boot_type;
static u64 boot_info; /* hvm_start_info or boot_params */
static u64 map_limit;
static const char *cmdline; /* NUL-terminated, or NULL */
static u32 cmdline_len;

static inline u64 rd64(u64 a) { return *(volatile u64 *)a; }
static inline u32 rd32(u64 a) { return *(volatile u32 *)a; }
static inline u8 rd8(u64 a) { return *(volatile u8 *)a; }

int mapped(u64 addr, u64 len)
{
	return addr != 0 && addr < map_limit && len <= map_limit - addr;
}

u64 boot_rsdp(const char **field)
{
	if (boot_type == BOOT_PVH) {
		*field = "pvh start info rsdp_paddr";
		if (mapped(boot_info, 40) && rd32(boot_info) == HVM_START_MAGIC)
			return rd64(boot_info + 32);
		return 0;
	}
	*field = "boot_params acpi_rsdp_addr";
	return mapped(boot_info, 4096) ? rd64(boot_info + 0x070) : 0;
}

static void find_cmdline(u64 info)
{
	u64 p = 0;

	if (boot_type == BOOT_PVH) {
		if (mapped(info, 56) && rd32(info) == HVM_START_MAGIC)
			p = rd64(info + 24);
	} else if (mapped(info, 4096)) {
		p = rd32(info + 0x228) | ((u64)rd32(info + 0x0c8) << 32);
	}
	cmdline = 0;
	cmdline_len = 0;
	if (!mapped(p, 1))
		return;
	cmdline = (const char *)p;
	while (cmdline_len < CMDLINE_MAX && mapped(p + cmdline_len, 1) &&
	       cmdline[cmdline_len])
		cmdline_len++;
}

static int is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

/* Finds the first word "key=value"; returns the value (not NUL-terminated)
 * and its length in *len, or NULL. */
const char *param(const char *key, u32 *len)
{
	u32 pos = 0, wlen, k;
	const char *w;

	while ((w = next_word(&pos, &wlen))) {
		for (k = 0; key[k] && k < wlen && w[k] == key[k]; k++)
			;
		if (!key[k] && k < wlen && w[k] == '=') {
			*len = wlen - (k + 1);
			return w + k + 1;
		}
	}
	return 0;
}

int value_is(const char *v, u32 len, const char *s)
{
	u32 k;
	for (k = 0; k < len; k++)
		if (s[k] != v[k])
			return 0;
	return s[len] == 0;
}

/* Iterates over the command line's words: call with *pos = 0 first;
 * returns the next word (not NUL-terminated) and its length, or NULL. */
const char *next_word(u32 *pos, u32 *len)
{
	u32 i = *pos, start;

	while (i < cmdline_len && is_space(cmdline[i]))
		i++;
	start = i;
	while (i < cmdline_len && !is_space(cmdline[i]))
		i++;
	*pos = i;
	*len = i - start;
	return i > start ? cmdline + start : 0;
}

u64 param_u64(const char *key, u64 dflt)
{
	u32 len, k;
	u64 n = 0;
	const char *v = param(key, &len);

	if (!v || !len)
		return dflt;
	for (k = 0; k < len; k++) {
		if (v[k] < '0' || v[k] > '9')
			return dflt;
		n = n * 10 + (u64)(v[k] - '0');
	}
	return n;
}

/* ------------------------------------------------------------ tests */

static void test_pio_loop(void)
{
	u64 n = param_u64("count", 0);

	if (n) {
		__asm__ volatile("1:\n\t"
				 "outb %%al, $0x80\n\t"
				 "dec %%rcx\n\t"
				 "jnz 1b"
				 : "+c"(n)
				 : "a"(0)
				 : "memory");
	}
	debug_exit(0);
}

static void test_echo(void)
{
	puts("echo: ready\n");
	for (;;) {
		u8 c;
		while (!(inb(COM1_LSR) & LSR_DR))
			;
		c = inb(COM1);
		if (c == 'q')
			break;
		putc((char)c);
	}
	puts("echo: done\n");
	debug_exit(0);
}

static void test_reset(void)
{
	int i;

	outb(0x64, 0xfe);
	/* give the VMM a few more exits to act on the reset request */
	for (i = 0; i < 16; i++)
		(void)inb(POST_PORT);
	puts("reset: failed\n");
	debug_exit(3);
}

struct __attribute__((packed)) idt_ptr {
	u16 limit;
	u64 base;
};

struct idt_gate {
	u16 off0;
	u16 sel;
	u8 ist;
	u8 type;
	u16 off1;
	u32 off2;
	u32 zero;
};

/* What entry.S's exception_common leaves on the stack. */
struct exc_frame {
	u64 rbp, r11, r10, r9, r8, rdi, rsi, rdx, rcx, rax;
	u64 vector;
	u64 rip, cs, rflags, rsp, ss; /* pushed by the CPU */
};

/* Exceptions 0..31 and the interrupt vectors 32..47 used by virtio.c. */
static struct idt_gate idt[48] __attribute__((aligned(16)));

static void test_triple_fault(void)
{
	struct idt_ptr p = { 0, 0 };

	/* An empty IDT: #UD -> #GP -> #DF -> shutdown. (ud2 rather than int3:
	 * the nested host's instruction emulator fails on int3.) */
	__asm__ volatile("lidt %0" : : "m"(p));
	__asm__ volatile("ud2");
	puts("triple-fault: still running\n");
	debug_exit(4);
}

void exception_handler(struct exc_frame *f)
{
	if (f->vector >= 32) {
		irq_handler((u32)f->vector);
	} else if (f->vector == 3) {
		puts("int3: handled\n");
	} else if (f->vector == 6) {
		puts("ud2: handled\n");
		f->rip += 2; /* skip the ud2 */
	}
}

void set_gate(int vec, const char *handler)
{
	u64 h = (u64)handler;
	u16 cs;

	__asm__ volatile("mov %%cs, %0" : "=r"(cs));
	idt[vec].off0 = (u16)h;
	idt[vec].sel = cs;
	idt[vec].ist = 0;
	idt[vec].type = 0x8e; /* present, DPL 0, 64-bit interrupt gate */
	idt[vec].off1 = (u16)(h >> 16);
	idt[vec].off2 = (u32)(h >> 32);
	idt[vec].zero = 0;
}

void load_idt(void)
{
	struct idt_ptr p;

	p.limit = sizeof(idt) - 1;
	p.base = (u64)idt;
	__asm__ volatile("lidt %0" : : "m"(p));
}

static void test_int3(void)
{
	set_gate(3, int3_entry);
	load_idt();
	__asm__ volatile("int3" ::: "memory");
	puts("int3: resumed\n");
	debug_exit(0);
}

static void test_ud2(void)
{
	set_gate(6, ud_entry);
	load_idt();
	__asm__ volatile("ud2" ::: "memory");
	puts("ud2: resumed\n");
	debug_exit(0);
}

static void test_string_pio(void)
{
	static const char msg[] = "string pio works\n";
	const char *s = msg;
	u64 n = sizeof(msg) - 1;
	u8 buf[8];
	u8 *d = buf;
	int i;

	__asm__ volatile("rep outsb" : "+S"(s), "+c"(n) : "d"((u16)COM1) : "memory");
	n = sizeof(buf);
	__asm__ volatile("rep insb" : "+D"(d), "+c"(n) : "d"((u16)POST_PORT) : "memory");
	puts("insb: ");
	for (i = 0; i < 8; i++)
		put_hex2(buf[i]);
	putc('\n');
	debug_exit(0);
}

/* The memory map (PVH memmap or boot_params e820 table): returns the number
 * of entries and, if i is below it, entry i. */
static u32 memmap_entry(u32 i, u64 *base, u64 *size, u32 *type)
{
	u64 info = boot_info, e, map = 0;
	u32 n = 0;

	if (boot_type == BOOT_PVH) {
		if (mapped(info, 56) && rd32(info) == HVM_START_MAGIC && rd32(info + 4) >= 1) {
			map = rd64(info + 40);
			n = rd32(info + 48);
		}
		if (!mapped(map, (u64)n * 24))
			n = 0;
		e = map + (u64)i * 24;
	} else {
		n = mapped(info, 4096) ? rd8(info + 0x1e8) : 0;
		if (n > 128)
			n = 128;
		e = info + 0x2d0 + (u64)i * 20;
	}
	if (i < n) {
		*base = rd64(e);
		*size = rd64(e + 8);
		*type = rd32(e + 16);
	}
	return n;
}

int ram_contains(u64 base, u64 len)
{
	u64 b = 0, sz = 0;
	u32 i, t = 0;

	for (i = 0; i < memmap_entry(i, &b, &sz, &t); i++)
		if (t == 1 && base >= b && base - b <= sz && len <= sz - (base - b))
			return 1;
	return 0;
}

static void test_memmap(void)
{
	u64 total = 0, base = 0, size = 0;
	u32 i, n, type = 0;

	for (i = 0; i < (n = memmap_entry(i, &base, &size, &type)); i++) {
		puts("mem: base=");
		put_hex(base);
		puts(" size=");
		put_hex(size);
		puts(" type=");
		put_dec(type);
		putc('\n');
		if (type == 1)
			total += size;
	}
	if (n == 0)
		puts("mem: no memory map\n");
	puts("mem: total-ram-kib=");
	put_dec(total / 1024);
	putc('\n');
	debug_exit(0);
}

static u8 cmos_read(u8 reg)
{
	outb(0x70, reg);
	return inb(0x71);
}

static void test_cmos(void)
{
	u8 sec, min, hour, day, mon, year, cent, b;
	int i;
	int binary;

	/* wait (briefly) while an update is in progress */
	for (i = 0; i < 1000 && (cmos_read(0x0a) & 0x80); i++)
		;
	sec = cmos_read(0x00);
	min = cmos_read(0x02);
	hour = cmos_read(0x04);
	day = cmos_read(0x07);
	mon = cmos_read(0x08);
	year = cmos_read(0x09);
	cent = cmos_read(0x32);
	b = cmos_read(0x0b);
	binary = b & 0x04;

	puts("cmos: ");
	if (binary ? (cent >= 19 && cent <= 21) : (cent >= 0x19 && cent <= 0x21)) {
		if (binary)
			put_dec2(cent);
		else
			put_hex2(cent);
	} else {
		puts("20");
	}
#define FIELD(v) do { if (binary) put_dec2(v); else put_hex2(v); } while (0)
	FIELD(year);
	putc('-');
	FIELD(mon);
	putc('-');
	FIELD(day);
	putc(' ');
	FIELD((u8)(hour & 0x7f)); /* bit 7 is the PM flag in 12-hour mode */
	putc(':');
	FIELD(min);
	putc(':');
	FIELD(sec);
#undef FIELD
	puts(" statusb=");
	put_hex(b);
	putc('\n');
	debug_exit(0);
}

/* ------------------------------------------------------------- main */

void guest_main(u32 boot, u64 info, u64 limit)
{
	const char *t;
	u32 tlen = 0;

	boot_type = boot;
	boot_info = info;
	map_limit = limit;
	find_cmdline(info);
	t = param("test", &tlen);

	/* The benchmark loop runs before any other output. */
	if (t && value_is(t, tlen, "pio-loop"))
		test_pio_loop();

	puts("kvm-test-guest: boot=");
	puts(boot == BOOT_PVH ? "pvh" : boot == BOOT_LINUX64 ? "linux64" : "linux32");
	puts("\nkvm-test-guest: cmdline=");
	if (cmdline) {
		u32 i;
		for (i = 0; i < cmdline_len; i++)
			putc(cmdline[i]);
	}
	putc('\n');

	if (!t) {
		/* fall through to "unknown test" */
	} else if (value_is(t, tlen, "hello")) {
		puts("hello from the test guest\n");
		debug_exit(0);
	} else if (value_is(t, tlen, "exit")) {
		debug_exit((u8)param_u64("code", 0));
	} else if (value_is(t, tlen, "echo")) {
		test_echo();
	} else if (value_is(t, tlen, "reset")) {
		test_reset();
	} else if (value_is(t, tlen, "triple-fault")) {
		test_triple_fault();
	} else if (value_is(t, tlen, "string-pio")) {
		test_string_pio();
	} else if (value_is(t, tlen, "memmap")) {
		test_memmap();
	} else if (value_is(t, tlen, "cmos")) {
		test_cmos();
	} else if (value_is(t, tlen, "int3")) {
		test_int3();
	} else if (value_is(t, tlen, "ud2")) {
		test_ud2();
	} else if (value_is(t, tlen, "virtio-rng")) {
		test_virtio(4);
	} else if (value_is(t, tlen, "virtio-console")) {
		test_virtio(3);
	} else if (value_is(t, tlen, "virtio-blk")) {
		test_virtio(2);
	} else if (value_is(t, tlen, "virtio-net")) {
		test_virtio(1);
	} else if (value_is(t, tlen, "acpi")) {
		test_acpi(ACPI_TEST_TABLES);
	} else if (value_is(t, tlen, "acpi-poweroff")) {
		test_acpi(ACPI_TEST_POWEROFF);
	} else if (value_is(t, tlen, "acpi-reset")) {
		test_acpi(ACPI_TEST_RESET);
	} else if (value_is(t, tlen, "pvpanic")) {
		test_acpi(ACPI_TEST_PVPANIC);
	} else if (value_is(t, tlen, "halt")) {
		/* Interrupts off and halted for good: the VMM ends the run with 0. */
		puts("halt: halting\n");
		halt_forever();
	}
	puts("kvm-test-guest: unknown test\n");
	debug_exit(2);
}
