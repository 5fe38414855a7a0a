/*
 * kvm test guest: the firmware tables a VMM leaves behind and the power
 * events behind them (freestanding, no libc). See README.md, "test=acpi".
 *
 *   test=acpi            RSDP (scan + boot info) -> XSDT / RSDT -> FADT, MADT,
 *                        DSDT, FACS; the MP table; cross-checks with CPUID,
 *                        the LAPIC and the IOAPIC registers
 *   test=acpi-poweroff   \_S5 from the DSDT, SLP_TYP | SLP_EN to PM1a_CNT
 *   test=acpi-reset      RESET_VALUE to the FADT's RESET_REG
 *   test=pvpanic         port 0x505: read the capabilities, write PANICKED
 *
 * Every table is read with plain loads where it lies (identity mapped).
 * Loops are short: the RSDP and the MP floating pointer are searched on
 * 16-byte boundaries and the search stops at the first signature.
 * Position independent like the rest: no static tables of pointers.
 */

#include "guest.h"

#define SIG4(a, b, c, d) ((u32)(a) | (u32)(b) << 8 | (u32)(c) << 16 | (u32)(d) << 24)
#define SIG8(s) ((u64)SIG4((s)[0], (s)[1], (s)[2], (s)[3]) | \
		 (u64)SIG4((s)[4], (s)[5], (s)[6], (s)[7]) << 32)

#define BIOS_AREA_START 0xe0000 /* the RSDP search area (with the EBDA, which we have none of) */
#define MP_AREA_START 0xf0000
#define BIOS_AREA_END 0x100000

#define SDT_HEADER 36
#define MAX_TABLE_LEN 0x10000 /* sanity bound for every table we walk */
#define MAX_ROOT_ENTRIES 32

/* FADT (ACPI 6.5 §5.2.9) offsets */
#define FADT_FIRMWARE_CTRL 36
#define FADT_DSDT 40
#define FADT_SCI_INT 46
#define FADT_PM1A_CNT_BLK 64
#define FADT_PM1_EVT_LEN 88
#define FADT_PM1_CNT_LEN 89
#define FADT_FLAGS 112
#define FADT_RESET_REG 116 /* GAS: space, bit width, bit offset, access size, u64 address */
#define FADT_RESET_VALUE 128
#define FADT_X_FIRMWARE_CTRL 132
#define FADT_X_DSDT 140
#define FADT_X_PM1A_CNT_BLK 172
#define FADT_F_RESET_REG_SUP (1u << 10)
#define FADT_F_HW_REDUCED_ACPI (1u << 20)
#define GAS_SYSTEM_IO 1

#define PM1_CNT_SLP_TYP_SHIFT 10
#define PM1_CNT_SLP_TYP_MASK (7u << PM1_CNT_SLP_TYP_SHIFT)
#define PM1_CNT_SLP_EN (1u << 13)

#define AML_NAME_OP 0x08
#define AML_BYTE_PREFIX 0x0a
#define AML_STRING_PREFIX 0x0d
#define AML_PACKAGE_OP 0x12
#define AML_ROOT_CHAR 0x5c

#define PVPANIC_PORT 0x505
#define PVPANIC_PANICKED 1

#define IA32_APIC_BASE 0x1b

static inline u8 rd8(u64 a) { return *(const volatile u8 *)a; }
static inline u16 rd16(u64 a) { return *(const volatile u16 *)a; }
static inline u32 rd32(u64 a) { return *(const volatile u32 *)a; }
static inline u64 rd64(u64 a) { return *(const volatile u64 *)a; }

/* ------------------------------------------------------------ reporting */

static const char *tname; /* the test's name: the prefix of FAILED lines */
static u32 problems;

static void fail_start(void)
{
	puts(tname);
	puts(": FAILED ");
	problems++;
}

static void fail_str(const char *what)
{
	fail_start();
	puts(what);
	putc('\n');
}

static void fail_hex(const char *what, u64 v)
{
	fail_start();
	puts(what);
	put_hex(v);
	putc('\n');
}

/* Two values that should agree: "FAILED <what> 0x<a> != 0x<b>". */
static void fail_mismatch(const char *what, u64 a, u64 b)
{
	fail_start();
	puts(what);
	putc(' ');
	put_hex(a);
	puts(" != ");
	put_hex(b);
	putc('\n');
}

static void put_chars(u64 a, u32 n)
{
	u32 i;
	for (i = 0; i < n; i++) {
		u8 c = rd8(a + i);
		putc(c >= 0x20 && c < 0x7f ? (char)c : '?');
	}
}

static u8 checksum(u64 a, u32 len)
{
	u8 s = 0;
	u32 i;
	for (i = 0; i < len; i++)
		s = (u8)(s + rd8(a + i));
	return s;
}

static void cpuid(u32 leaf, u32 sub, u32 *a, u32 *b, u32 *c, u32 *d)
{
	__asm__ volatile("cpuid" : "=a"(*a), "=b"(*b), "=c"(*c), "=d"(*d) : "a"(leaf), "c"(sub));
}

/* ---------------------------------------------------------------- ACPI */

static struct {
	u64 rsdp, xsdt, rsdt, fadt, madt, dsdt, facs;
	u32 fadt_len, madt_len, dsdt_len;
	/* FADT */
	u16 pm1a_cnt, sci;
	u8 reset_space, reset_width, reset_value, reset_sup, reset_ok;
	u64 reset_addr;
	/* MADT */
	u32 lapic_addr, cpus, ioapics;
	u8 ioapic_id;
	u32 ioapic_addr;
	u64 apic_ids[4]; /* bitmap of the enabled local APICs' ids */
} acpi;

/* Checks an SDT at a: mapped, sane length, the expected signature (if
 * sig != 0), checksum. Prints "acpi: table SIG at 0x.. len n checksum ok|BAD".
 * Returns its length, or 0 if it cannot be used. */
static u32 check_sdt(u64 a, u32 sig)
{
	u32 len;

	if (!mapped(a, SDT_HEADER)) {
		fail_hex("a table pointer outside the identity map: ", a);
		return 0;
	}
	len = rd32(a + 4);
	puts("acpi: table ");
	put_chars(a, 4);
	puts(" at ");
	put_hex(a);
	puts(" len ");
	put_dec(len);
	if (len < SDT_HEADER || len > MAX_TABLE_LEN || !mapped(a, len)) {
		puts(" (bad length)\n");
		fail_hex("bad table length at ", a);
		return 0;
	}
	if (checksum(a, len)) {
		puts(" checksum BAD\n");
		fail_hex("checksum of the table at ", a);
	} else {
		puts(" checksum ok\n");
	}
	if (sig && rd32(a) != sig) {
		fail_start();
		puts("the table at ");
		put_hex(a);
		puts(" is not ");
		put_chars((u64)&sig, 4);
		putc('\n');
		return 0;
	}
	return len;
}

/* Scans [start, end) on 16-byte boundaries; returns the first address whose
 * first 8 bytes, masked, equal sig, or 0. */
static u64 scan16(u64 start, u64 end, u64 sig, u64 mask)
{
	u64 a;
	for (a = start; a < end; a += 16)
		if ((rd64(a) & mask) == sig)
			return a;
	return 0;
}

static int find_rsdp(void)
{
	const char *field = 0;
	u64 given = boot_rsdp(&field), a;
	u8 rev;
	int v1_bad, ext_bad = 0;

	a = scan16(BIOS_AREA_START, BIOS_AREA_END, SIG8("RSD PTR "), ~0ull);
	puts("acpi: rsdp at ");
	if (a)
		put_hex(a);
	else
		puts("(none in 0xe0000-0xfffff)");
	puts(", ");
	puts(field);
	putc(' ');
	put_hex(given);
	putc('\n');
	if (given && a && given != a)
		fail_mismatch("boot info and scan disagree:", given, a);
	if (!a) {
		if (!given || !mapped(given, 36)) {
			fail_str("no RSDP");
			return 0;
		}
		a = given;
	}
	acpi.rsdp = a;
	rev = rd8(a + 15);
	puts("acpi: rsdp revision ");
	put_dec(rev);
	puts(" oem ");
	put_chars(a + 9, 6);
	puts(" checksum ");
	puts(checksum(a, 20) ? "BAD" : "ok");
	v1_bad = checksum(a, 20) != 0;
	acpi.rsdt = rd32(a + 16);
	if (rev >= 2) {
		u32 len = rd32(a + 20);
		u8 ext = len >= 36 && len <= 4096 && mapped(a, len) ? checksum(a, len) : 1;
		puts(" extended ");
		put_dec(len);
		puts(" bytes checksum ");
		puts(ext ? "BAD" : "ok");
		ext_bad = ext != 0;
		acpi.xsdt = rd64(a + 24);
	}
	puts(" rsdt ");
	put_hex(acpi.rsdt);
	puts(" xsdt ");
	put_hex(acpi.xsdt);
	putc('\n');
	if (v1_bad)
		fail_hex("RSDP checksum (first 20 bytes) at ", a);
	if (ext_bad)
		fail_hex("RSDP extended checksum or length at ", a);
	return 1;
}

/* Entry i of the XSDT (wide = 1) or RSDT. */
static u64 root_entry(u64 t, int wide, u32 i)
{
	return wide ? rd64(t + SDT_HEADER + 8 * i) : rd32(t + SDT_HEADER + 4 * i);
}

static void parse_fadt(u64 f, u32 len)
{
	u32 flags = len >= FADT_FLAGS + 4 ? rd32(f + FADT_FLAGS) : 0;
	u64 dsdt = rd32(f + FADT_DSDT), facs = rd32(f + FADT_FIRMWARE_CTRL), pm1a_cnt;

	if (len < 116) {
		fail_hex("FADT too short: ", len);
		return;
	}
	acpi.fadt = f;
	acpi.fadt_len = len;
	acpi.sci = rd16(f + FADT_SCI_INT);
	pm1a_cnt = rd32(f + FADT_PM1A_CNT_BLK);
	if (len >= FADT_X_PM1A_CNT_BLK + 12 && rd64(f + FADT_X_PM1A_CNT_BLK + 4)) {
		u64 x = rd64(f + FADT_X_PM1A_CNT_BLK + 4);
		if (rd8(f + FADT_X_PM1A_CNT_BLK) != GAS_SYSTEM_IO)
			fail_hex("X_PM1a_CNT_BLK is not in system I/O space: space ", rd8(f + FADT_X_PM1A_CNT_BLK));
		if (pm1a_cnt && pm1a_cnt != x)
			fail_mismatch("PM1a_CNT_BLK and X_PM1a_CNT_BLK", pm1a_cnt, x);
		pm1a_cnt = x;
	}
	if (!pm1a_cnt || pm1a_cnt > 0xffff)
		fail_hex("no usable PM1a_CNT_BLK: ", pm1a_cnt);
	acpi.pm1a_cnt = (u16)pm1a_cnt;
	if (rd8(f + FADT_PM1_CNT_LEN) < 2)
		fail_hex("PM1_CNT_LEN below 2: ", rd8(f + FADT_PM1_CNT_LEN));
	if (rd8(f + FADT_PM1_EVT_LEN) < 4)
		fail_hex("PM1_EVT_LEN below 4: ", rd8(f + FADT_PM1_EVT_LEN));
	if (flags & FADT_F_HW_REDUCED_ACPI)
		fail_str("HW_REDUCED_ACPI is set (no PM1 registers)");

	if (len >= FADT_RESET_VALUE + 1) {
		acpi.reset_space = rd8(f + FADT_RESET_REG);
		acpi.reset_width = rd8(f + FADT_RESET_REG + 1);
		acpi.reset_addr = rd64(f + FADT_RESET_REG + 4);
		acpi.reset_value = rd8(f + FADT_RESET_VALUE);
		acpi.reset_sup = !!(flags & FADT_F_RESET_REG_SUP);
		acpi.reset_ok = acpi.reset_sup && acpi.reset_space == GAS_SYSTEM_IO &&
				acpi.reset_width == 8 && acpi.reset_addr && acpi.reset_addr <= 0xffff;
	}

	puts("acpi: fadt pm1a_cnt ");
	put_hex(acpi.pm1a_cnt);
	puts(" reset ");
	put_hex(acpi.reset_addr);
	putc('=');
	put_hex(acpi.reset_value);
	puts(" sci ");
	put_dec(acpi.sci);
	putc('\n');

	if (len >= FADT_X_DSDT + 8 && rd64(f + FADT_X_DSDT)) {
		u64 x = rd64(f + FADT_X_DSDT);
		if (dsdt && dsdt != x)
			fail_mismatch("DSDT and X_DSDT", dsdt, x);
		dsdt = x;
	}
	if (len >= FADT_X_FIRMWARE_CTRL + 8 && rd64(f + FADT_X_FIRMWARE_CTRL)) {
		u64 x = rd64(f + FADT_X_FIRMWARE_CTRL);
		if (facs && facs != x)
			fail_mismatch("FIRMWARE_CTRL and X_FIRMWARE_CTRL", facs, x);
		facs = x;
	}
	acpi.dsdt = dsdt;
	acpi.facs = facs;
}

static void parse_madt(u64 m, u32 len)
{
	u64 p = m + 44, end = m + len;
	u32 overrides = 0, nmis = 0;

	acpi.madt = m;
	acpi.madt_len = len;
	acpi.lapic_addr = len >= 44 ? rd32(m + 36) : 0;
	while (p + 2 <= end) {
		u8 type = rd8(p), elen = rd8(p + 1);
		if (elen < 2 || p + elen > end) {
			fail_hex("MADT entry with a bad length at ", p);
			break;
		}
		if (type == 0 && elen >= 8) { /* Processor Local APIC */
			if (rd32(p + 4) & 1) {
				u8 id = rd8(p + 3);
				if (acpi.apic_ids[id >> 6] & (1ull << (id & 63)))
					fail_hex("MADT lists APIC id twice: ", id);
				acpi.apic_ids[id >> 6] |= 1ull << (id & 63);
				acpi.cpus++;
			}
		} else if (type == 1 && elen >= 12) { /* I/O APIC */
			if (!acpi.ioapics) {
				acpi.ioapic_id = rd8(p + 2);
				acpi.ioapic_addr = rd32(p + 4);
			}
			acpi.ioapics++;
		} else if (type == 2) {
			overrides++;
		} else if (type == 4) {
			nmis++;
		}
		p += elen;
	}
	if (p != end)
		fail_hex("MADT entries do not end at the table's end: ", p);
	puts("acpi: madt cpus ");
	put_dec(acpi.cpus);
	puts(" ioapic id ");
	put_dec(acpi.ioapic_id);
	puts(" at ");
	put_hex(acpi.ioapic_addr);
	putc('\n');
	puts("acpi: madt lapic at ");
	put_hex(acpi.lapic_addr);
	puts(" flags ");
	put_hex(len >= 44 ? rd32(m + 40) : 0);
	puts(", ");
	put_dec(acpi.ioapics);
	puts(" ioapic, ");
	put_dec(overrides);
	puts(" override, ");
	put_dec(nmis);
	puts(" nmi\n");
	if (!acpi.cpus)
		fail_str("no enabled local APIC in the MADT");
	if (acpi.ioapics != 1)
		fail_hex("number of I/O APICs in the MADT: ", acpi.ioapics);
	if (acpi.ioapics && (acpi.apic_ids[acpi.ioapic_id >> 6] & (1ull << (acpi.ioapic_id & 63))))
		fail_hex("the I/O APIC id is also a local APIC id: ", acpi.ioapic_id);
}

/* Counts the strings s (8 characters, after a StringPrefix) in the AML. */
static void count_hids(u64 a, u32 len, u32 *cpus, u32 *virtio, u32 *pvpanic)
{
	u64 p, end = a + len;
	for (p = a + SDT_HEADER; p + 10 <= end; p++) {
		u64 s;
		if (rd8(p) != AML_STRING_PREFIX || rd8(p + 9) != 0)
			continue;
		s = rd64(p + 1);
		if (s == SIG8("ACPI0007"))
			(*cpus)++;
		else if (s == SIG8("LNRO0005"))
			(*virtio)++;
		else if (s == SIG8("QEMU0001"))
			(*pvpanic)++;
	}
}

/* \_S5's SLP_TYPa: NameOp ['\'] "_S5_" PackageOp PkgLength NumElements
 * element0; element0 = BytePrefix n, ZeroOp, OneOp or a raw 2..7. -1 if
 * there is none. */
static int find_s5(u64 a, u32 len)
{
	u64 p, end = a + len, q;
	u8 op, lead;

	for (p = a + SDT_HEADER + 1; p + 4 <= end; p++) {
		if (rd32(p) != SIG4('_', 'S', '5', '_'))
			continue;
		if (!(rd8(p - 1) == AML_NAME_OP ||
		      (rd8(p - 1) == AML_ROOT_CHAR && p >= a + SDT_HEADER + 2 && rd8(p - 2) == AML_NAME_OP)))
			continue;
		q = p + 4;
		if (q + 1 > end || rd8(q) != AML_PACKAGE_OP) {
			fail_hex("\\_S5 is not a package at ", p);
			return -1;
		}
		lead = rd8(q + 1);
		q += 2 + (lead >> 6); /* PackageOp, PkgLength (1-4 bytes) */
		if (q + 3 > end || rd8(q) < 1) {
			fail_hex("\\_S5 package is empty or truncated at ", p);
			return -1;
		}
		op = rd8(q + 1); /* after NumElements */
		if (op == AML_BYTE_PREFIX)
			op = rd8(q + 2);
		else if (op > 7) {
			fail_hex("\\_S5's first element is not a small integer: opcode ", op);
			return -1;
		}
		if (op > 7) {
			fail_hex("\\_S5 SLP_TYP does not fit in 3 bits: ", op);
			return -1;
		}
		return op;
	}
	fail_str("no \\_S5 in the DSDT");
	return -1;
}

static u32 cmdline_virtio_mmio(void)
{
	static const char key[] = "virtio_mmio.device=";
	u32 pos = 0, len, n = 0, k;
	const char *w;

	while ((w = next_word(&pos, &len))) {
		for (k = 0; key[k] && k < len && w[k] == key[k]; k++)
			;
		if (!key[k])
			n++;
	}
	return n;
}

/* test=acpi and test=acpi-reset need a byte-wide system I/O RESET_REG. */
static void check_reset_reg(void)
{
	if (acpi.reset_ok)
		return;
	fail_start();
	puts("no usable reset register (RESET_REG_SUP ");
	put_dec(acpi.reset_sup);
	puts(", space ");
	put_dec(acpi.reset_space);
	puts(", bit width ");
	put_dec(acpi.reset_width);
	puts(", address ");
	put_hex(acpi.reset_addr);
	puts(")\n");
}

/* RSDP -> XSDT (or RSDT) -> FADT, MADT -> DSDT, FACS. 0 if the FADT is
 * missing (the caller cannot go on); problems counts everything else. */
static int walk_acpi(int full)
{
	u64 root, e;
	u32 len, n, i, wide;

	if (!find_rsdp())
		return 0;
	wide = acpi.xsdt != 0;
	root = wide ? acpi.xsdt : acpi.rsdt;
	len = check_sdt(root, wide ? SIG4('X', 'S', 'D', 'T') : SIG4('R', 'S', 'D', 'T'));
	if (!len)
		return 0;
	n = (len - SDT_HEADER) / (wide ? 8 : 4);
	if ((len - SDT_HEADER) % (wide ? 8 : 4))
		fail_hex("root table length is not a whole number of entries: ", len);
	if (n > MAX_ROOT_ENTRIES)
		n = MAX_ROOT_ENTRIES;
	for (i = 0; i < n; i++) {
		u32 tlen;
		e = root_entry(root, wide, i);
		tlen = check_sdt(e, 0);
		if (!tlen)
			continue;
		if (rd32(e) == SIG4('F', 'A', 'C', 'P')) {
			if (acpi.fadt)
				fail_hex("a second FADT at ", e);
			else
				parse_fadt(e, tlen);
		} else if (full && rd32(e) == SIG4('A', 'P', 'I', 'C')) {
			if (acpi.madt)
				fail_hex("a second MADT at ", e);
			else
				parse_madt(e, tlen);
		}
	}
	/* An RSDT next to the XSDT must list the same tables. */
	if (wide && full && acpi.rsdt) {
		u32 rlen = check_sdt(acpi.rsdt, SIG4('R', 'S', 'D', 'T'));
		if (rlen && (rlen - SDT_HEADER) / 4 != n) {
			fail_mismatch("RSDT and XSDT entry counts", (rlen - SDT_HEADER) / 4, n);
		} else if (rlen) {
			for (i = 0; i < n; i++)
				if (root_entry(acpi.rsdt, 0, i) != root_entry(root, 1, i))
					fail_mismatch("RSDT and XSDT entry", root_entry(acpi.rsdt, 0, i),
						      root_entry(root, 1, i));
		}
	}
	if (!acpi.fadt) {
		fail_str("no FADT (FACP)");
		return 0;
	}
	if (full && !acpi.madt)
		fail_str("no MADT (APIC)");
	if (full)
		check_reset_reg();
	if (!acpi.dsdt) {
		fail_str("the FADT has no DSDT");
	} else {
		acpi.dsdt_len = check_sdt(acpi.dsdt, SIG4('D', 'S', 'D', 'T'));
	}
	if (full && acpi.facs) {
		u64 f = acpi.facs;
		if (!mapped(f, 64) || rd32(f) != SIG4('F', 'A', 'C', 'S') || rd32(f + 4) < 64 || (f & 63)) {
			fail_hex("no FACS (64 bytes, 64-byte aligned) at ", f);
		} else {
			puts("acpi: facs at ");
			put_hex(f);
			puts(" len ");
			put_dec(rd32(f + 4));
			puts(" version ");
			put_dec(rd8(f + 32));
			putc('\n');
		}
	}
	return 1;
}

/* The CPU's own view: CPUID's APIC id and topology, the LAPIC and IOAPIC
 * registers, compared with the MADT. */
static void check_cpu(void)
{
	u32 a, b, c, d, max, sub, cores = 0, lo, hi;
	u8 id;

	cpuid(0, 0, &max, &b, &c, &d);
	cpuid(1, 0, &a, &b, &c, &d);
	id = (u8)(b >> 24);
	puts("acpi: cpuid apic id ");
	put_dec(id);
	puts(" logical cpus ");
	put_dec((b >> 16) & 0xff);
	puts(" htt ");
	put_dec((d >> 28) & 1);
	if (max >= 0xb) {
		for (sub = 0; sub < 4; sub++) {
			cpuid(0xb, sub, &a, &b, &c, &d);
			if (((c >> 8) & 0xff) == 0)
				break;
			if (((c >> 8) & 0xff) == 2)
				cores = b & 0xffff;
		}
		puts(" leaf 0xb cores ");
		put_dec(cores);
	}
	putc('\n');
	if (!(acpi.apic_ids[id >> 6] & (1ull << (id & 63))))
		fail_hex("our APIC id is not an enabled MADT processor: ", id);
	if (cores && cores != acpi.cpus)
		fail_mismatch("CPUID leaf 0xb cores and MADT cpus", cores, acpi.cpus);

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(IA32_APIC_BASE));
	if ((lo & 0xc00) == 0x800 && !hi) { /* xAPIC mode */
		u64 base = lo & 0xfffff000u;
		u32 ver = mmio_rd32(base + 0x30);
		puts("acpi: lapic at ");
		put_hex(base);
		puts(" id ");
		put_dec(mmio_rd32(base + 0x20) >> 24);
		puts(" version ");
		put_hex(ver);
		putc('\n');
		if (base != acpi.lapic_addr)
			fail_mismatch("IA32_APIC_BASE and the MADT's local APIC address", base, acpi.lapic_addr);
		if ((mmio_rd32(base + 0x20) >> 24) != id)
			fail_mismatch("LAPIC id register and CPUID", mmio_rd32(base + 0x20) >> 24, id);
	} else {
		puts("acpi: lapic not in xAPIC mode\n");
	}

	if (acpi.ioapic_addr) {
		u64 io = acpi.ioapic_addr;
		u32 rid, ver;
		mmio_wr32(io, 0);
		rid = (mmio_rd32(io + 0x10) >> 24) & 0xf;
		mmio_wr32(io, 1);
		ver = mmio_rd32(io + 0x10);
		puts("acpi: ioapic registers id ");
		put_dec(rid);
		puts(" version ");
		put_hex(ver & 0xff);
		puts(" pins ");
		put_dec(((ver >> 16) & 0xff) + 1);
		putc('\n');
		if ((ver & 0xff) == 0xff)
			fail_hex("nothing answers at the MADT's I/O APIC address ", io);
		/* KVM's id register keeps 4 bits. */
		else if (rid != (acpi.ioapic_id & 0xf))
			fail_mismatch("I/O APIC id register and MADT", rid, acpi.ioapic_id);
	}
}

/* ------------------------------------------------------------ MP table */

static void walk_mptable(void)
{
	u64 f, t, p, end;
	u32 len, count, i, cpus = 0, bsps = 0, ioapics = 0, plen, ext, a, b, c, d;
	u8 ioapic_id = 0, ioapic_ver = 0, cpu_ver = 0;
	u32 ioapic_addr = 0, sig_eax = 0, sig_edx = 0;
	u64 ids[4] = { 0, 0, 0, 0 };

	f = scan16(MP_AREA_START, BIOS_AREA_END, SIG4('_', 'M', 'P', '_'), 0xffffffffull);
	if (!f) {
		fail_str("no MP floating pointer (_MP_) in 0xf0000-0xfffff");
		return;
	}
	plen = rd8(f + 8) * 16u;
	t = rd32(f + 4);
	puts("mptable: floating pointer at ");
	put_hex(f);
	puts(" rev ");
	put_dec(rd8(f + 9));
	puts(" checksum ");
	puts(plen && !checksum(f, plen) ? "ok" : "BAD");
	puts(" config table ");
	put_hex(t);
	puts(" feature1 ");
	put_dec(rd8(f + 11));
	putc('\n');
	if (!plen || checksum(f, plen))
		fail_hex("MP floating pointer checksum or length at ", f);
	if (rd8(f + 11))
		fail_str("MP feature byte 1 names a default configuration");
	if (!t || !mapped(t, 44) || rd32(t) != SIG4('P', 'C', 'M', 'P')) {
		fail_hex("no PCMP configuration table at ", t);
		return;
	}
	len = rd16(t + 4);
	count = rd16(t + 34);
	ext = rd16(t + 40);
	puts("mptable: config table len ");
	put_dec(len);
	puts(" rev ");
	put_dec(rd8(t + 6));
	puts(" checksum ");
	puts(len >= 44 && !checksum(t, len) ? "ok" : "BAD");
	puts(" entries ");
	put_dec(count);
	puts(" oem ");
	put_chars(t + 8, 8);
	puts(" lapic ");
	put_hex(rd32(t + 36));
	if (ext) {
		puts(" extended ");
		put_dec(ext);
		puts(" checksum ");
		puts((u8)(checksum(t + len, ext) + rd8(t + 42)) ? "BAD" : "ok");
	}
	putc('\n');
	if (len < 44 || checksum(t, len))
		fail_hex("PCMP checksum at ", t);
	if (ext && (u8)(checksum(t + len, ext) + rd8(t + 42)))
		fail_hex("PCMP extended table checksum at ", t);
	if (rd32(t + 36) != acpi.lapic_addr)
		fail_mismatch("MP and MADT local APIC addresses", rd32(t + 36), acpi.lapic_addr);

	p = t + 44;
	end = t + len;
	for (i = 0; i < count && p < end; i++) {
		u8 type = rd8(p);
		u32 elen = type == 0 ? 20 : 8;
		if (type > 4 || p + elen > end) {
			fail_hex("bad MP entry type or length at ", p);
			return;
		}
		if (type == 0 && (rd8(p + 3) & 1)) {
			u8 id = rd8(p + 1);
			cpus++;
			if (rd8(p + 3) & 2)
				bsps++;
			ids[id >> 6] |= 1ull << (id & 63);
			cpu_ver = rd8(p + 2);
			sig_eax = rd32(p + 4);
			sig_edx = rd32(p + 8);
		} else if (type == 2) {
			if (!ioapics) {
				ioapic_id = rd8(p + 1);
				ioapic_ver = rd8(p + 2);
				ioapic_addr = rd32(p + 4);
			}
			ioapics++;
		}
		p += elen;
	}
	if (i != count || p != end)
		fail_str("MP entries and the table length disagree");
	puts("mptable: cpus ");
	put_dec(cpus);
	puts(" ioapic id ");
	put_dec(ioapic_id);
	puts(" at ");
	put_hex(ioapic_addr);
	puts(" version ");
	put_hex(ioapic_ver);
	puts(" lapic version ");
	put_hex(cpu_ver);
	puts(" signature ");
	put_hex(sig_eax);
	putc('\n');
	if (bsps != 1)
		fail_hex("MP boot processors: ", bsps);
	if (cpus != acpi.cpus)
		fail_mismatch("MP and MADT cpus", cpus, acpi.cpus);
	for (i = 0; i < 4; i++)
		if (ids[i] != acpi.apic_ids[i])
			fail_mismatch("MP and MADT APIC id bitmaps", ids[i], acpi.apic_ids[i]);
	if (ioapics != 1 || ioapic_id != acpi.ioapic_id || ioapic_addr != acpi.ioapic_addr)
		fail_str("MP and MADT I/O APICs differ");
	/* HTT (EDX bit 28) is left out: this project's nested hosts set it in
	 * what the guest sees even when the VMM's CPUID table (and the MP
	 * table, built from it) clears it for one vCPU. QEMU's guests see the
	 * same there. */
	cpuid(1, 0, &a, &b, &c, &d);
	if (sig_eax != a || ((sig_edx ^ d) & ~(1u << 28))) {
		fail_start();
		puts("MP processor signature ");
		put_hex(sig_eax);
		puts(" features ");
		put_hex(sig_edx);
		puts(" but CPUID 1 says ");
		put_hex(a);
		putc(' ');
		put_hex(d);
		putc('\n');
	}
}

/* --------------------------------------------------------------- tests */

static void test_tables(void)
{
	u32 cpus = 0, virtio = 0, pvpanic = 0, words;
	int s5;

	if (walk_acpi(1)) {
		check_cpu();
		if (acpi.dsdt_len) {
			s5 = find_s5(acpi.dsdt, acpi.dsdt_len);
			count_hids(acpi.dsdt, acpi.dsdt_len, &cpus, &virtio, &pvpanic);
			words = cmdline_virtio_mmio();
			puts("acpi: dsdt s5 slp_typ ");
			if (s5 < 0)
				puts("none");
			else
				put_dec((u64)s5);
			puts(" cpus ");
			put_dec(cpus);
			puts(" virtio-mmio ");
			put_dec(virtio);
			puts(" (cmdline ");
			put_dec(words);
			puts(") pvpanic ");
			put_dec(pvpanic);
			putc('\n');
			/* (Firmware that declares processors with the old Processor
			 * op, like SeaBIOS's, has no ACPI0007 devices.) */
			if (cpus && cpus != acpi.cpus)
				fail_mismatch("DSDT processor devices and MADT cpus", cpus, acpi.cpus);
			if (virtio != words)
				fail_mismatch("DSDT virtio-mmio devices and virtio_mmio.device= words", virtio, words);
		}
	}
	walk_mptable();
	if (problems) {
		puts("acpi: FAILED, ");
		put_dec(problems);
		puts(" problem(s)\n");
		debug_exit(1);
	}
	puts("acpi: ok\n");
	debug_exit(0);
}

/* Time for the VMM to act on a request that ends the run: 10000 port 0x80
 * reads, ~0.1 s of exits. Our VMM stops the vCPU at the exit itself; QEMU
 * only asks its main loop to shut down and lets the vCPU run on meanwhile. */
static void settle(void)
{
	int i;
	for (i = 0; i < 10000; i++)
		(void)inb(POST_PORT);
}

static void test_poweroff(void)
{
	int s5;
	u16 v, w;

	if (!walk_acpi(0) || !acpi.dsdt_len || problems)
		goto failed;
	s5 = find_s5(acpi.dsdt, acpi.dsdt_len);
	if (s5 < 0)
		goto failed;
	puts("acpi: s5 slp_typ ");
	put_dec((u64)s5);
	putc('\n');
	/* Like ACPICA: keep the other bits (SCI_EN), replace SLP_TYP, set SLP_EN. */
	v = inw(acpi.pm1a_cnt);
	w = (u16)((v & ~(PM1_CNT_SLP_TYP_MASK | PM1_CNT_SLP_EN)) |
		  ((u32)s5 << PM1_CNT_SLP_TYP_SHIFT) | PM1_CNT_SLP_EN);
	puts("acpi: pm1a_cnt ");
	put_hex(acpi.pm1a_cnt);
	puts(" reads ");
	put_hex(v);
	puts(", writing ");
	put_hex(w);
	putc('\n');
	outw(acpi.pm1a_cnt, w);
	settle();
	puts("acpi-poweroff: still running\n");
failed:
	debug_exit(1);
}

static void test_reset(void)
{
	if (!walk_acpi(0) || problems)
		debug_exit(1);
	check_reset_reg();
	if (problems)
		debug_exit(1);
	puts("acpi: writing ");
	put_hex(acpi.reset_value);
	puts(" to port ");
	put_hex(acpi.reset_addr);
	putc('\n');
	outb((u16)acpi.reset_addr, acpi.reset_value);
	settle();
	fail_str("still running after the reset write");
	debug_exit(1);
}

static void test_pvpanic(void)
{
	u8 caps = inb(PVPANIC_PORT);

	puts("pvpanic: caps ");
	put_hex(caps);
	putc('\n');
	if (!(caps & PVPANIC_PANICKED))
		fail_str("PVPANIC_PANICKED is not offered");
	outb(PVPANIC_PORT, PVPANIC_PANICKED);
	settle();
	fail_str("still running after PVPANIC_PANICKED");
	debug_exit(1);
}

void test_acpi(u32 which)
{
	switch (which) {
	case ACPI_TEST_TABLES:
		tname = "acpi";
		test_tables();
		break;
	case ACPI_TEST_POWEROFF:
		tname = "acpi-poweroff";
		test_poweroff();
		break;
	case ACPI_TEST_RESET:
		tname = "acpi-reset";
		test_reset();
		break;
	default:
		tname = "pvpanic";
		test_pvpanic();
		break;
	}
	debug_exit(1);
}
