/*
 * kvm test guest: minimal virtio 1.2 drivers (modern devices only, split
 * virtqueues): the transports, interrupts and virtqueues, and
 * test=virtio-rng and test=virtio-console (virtio-blk.c and virtio-net.c
 * have the block and network tests).
 *
 * Transports: virtio-pci (configuration mechanism #1, bus 0, function 0 of
 * devices 0..31, vendor 0x1af4, device 0x1040 + type) and virtio-mmio
 * version 2 (announced by "virtio_mmio.device=<size>@<base>:<irq>" words on
 * the command line). Completion: MSI-X (PCI), INTx through the IOAPIC, or
 * polling the used ring. Rings live in .noinit, the rng and console
 * buffers in .bss, the block and network buffers in RAM above the image
 * (all identity mapped, so guest-virtual = guest-physical). See README.md
 * for the protocol.
 *
 * Single device, single CPU, no allocation; every failure prints
 * "<test>: FAILED <why>" and exits with debug-exit value 1.
 */
#include "virtio.h"

/* Device status (2.1) */
#define S_ACKNOWLEDGE 0x01
#define S_DRIVER 0x02
#define S_DRIVER_OK 0x04
#define S_FEATURES_OK 0x08
#define S_NEEDS_RESET 0x40
#define S_FAILED 0x80

#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

#define VIRTIO_VENDOR 0x1af4
#define VIRTIO_PCI_MODERN 0x1040

/* virtio-pci capability cfg_type (4.1.4) */
#define CAP_COMMON 1
#define CAP_NOTIFY 2
#define CAP_ISR 3
#define CAP_DEVICE 4
#define CAP_PCI_CFG 5

/* virtio-pci common configuration structure (4.1.4.3) */
#define CC_DFSELECT 0x00
#define CC_DF 0x04
#define CC_GFSELECT 0x08
#define CC_GF 0x0c
#define CC_MSIX 0x10
#define CC_NUMQ 0x12
#define CC_STATUS 0x14
#define CC_CFG_GEN 0x15
#define CC_Q_SELECT 0x16
#define CC_Q_SIZE 0x18
#define CC_Q_MSIX 0x1a
#define CC_Q_ENABLE 0x1c
#define CC_Q_NOFF 0x1e
#define CC_Q_DESC 0x20
#define CC_Q_DRIVER 0x28
#define CC_Q_DEVICE 0x30
#define CC_MIN_LEN 0x38 /* up to queue_device */

/* virtio-mmio registers (4.2.2) */
#define MM_MAGIC 0x000
#define MM_VERSION 0x004
#define MM_DEVICE_ID 0x008
#define MM_DF 0x010
#define MM_DFSEL 0x014
#define MM_GF 0x020
#define MM_GFSEL 0x024
#define MM_Q_SEL 0x030
#define MM_Q_NUM_MAX 0x034
#define MM_Q_NUM 0x038
#define MM_Q_READY 0x044
#define MM_Q_NOTIFY 0x050
#define MM_INT_STATUS 0x060
#define MM_INT_ACK 0x064
#define MM_STATUS 0x070
#define MM_CFG_GEN 0x0fc
#define MM_CONFIG 0x100
#define MM_Q_DESC 0x080
#define MM_Q_DRIVER 0x090
#define MM_Q_DEVICE 0x0a0
#define MM_MAGIC_VALUE 0x74726976 /* "virt" */

/* Local APIC and IOAPIC (xAPIC MMIO) */
#define LAPIC 0xfee00000ull
#define LAPIC_ID 0x20
#define LAPIC_VER 0x30
#define LAPIC_TPR 0x80
#define LAPIC_EOI 0xb0
#define LAPIC_SVR 0xf0
#define LAPIC_LVT_TIMER 0x320
#define LAPIC_TIMER_INIT 0x380
#define LAPIC_TIMER_COUNT 0x390
#define LAPIC_TIMER_DIV 0x3e0
#define LAPIC_TICKS_PER_MS 7813 /* KVM and QEMU: 1 GHz APIC bus, divide by 128 */
#define IOAPIC 0xfec00000ull

/* Interrupt vectors (irq_stubs covers 32..47). The watchdog timer has the
 * highest priority, so that an interrupt storm (e.g. INTx programmed with
 * the wrong polarity) cannot starve it. */
#define VEC_MSIX 0x21 /* MSI-X table entry e -> vector 0x21 + e */
#define MSIX_MAX 3    /* entries used: config + one per queue */
#define VEC_INTX 0x2d
#define VEC_TIMER 0x2e
#define VEC_SPURIOUS 0x2f

#define QSMALL 8 /* rng and console: largest queue size */

/* ------------------------------------------------------------- state */

const char *tname; /* "virtio-rng", "virtio-console", "virtio-blk", "virtio-net" */
u32 irq_mode;
static int is_pci;
static int dev_live; /* set once we reset the device: on failure, set FAILED */
static u32 nq;       /* queues in use */
static u32 timeout_ms;

static u32 pci_dev;                 /* device number on bus 0 */
static u64 common, notify_base, isr_addr; /* PCI structure addresses */
static u32 notify_mult, notify_len;
static u64 devcfg, devcfg_len; /* device-specific configuration */
static u64 mmio_base;
static u32 gsi; /* INTx: IOAPIC input */
static u32 apic_id;
static u32 qentry[NQ_MAX]; /* MSI-X table entry per queue */

static volatile u32 queue_irqs[NQ_MAX]; /* interrupts that may signal queue q */
static volatile u32 config_irqs, isr_zero_irqs, spurious_irqs, other_irqs, timer_fired;

/* Not zeroed by the entry code (that costs ~1 us per 8 bytes on a nested
 * host): vq_setup initialises what it uses. */
static struct vq_mem vqmem[NQ_MAX] __attribute__((section(".noinit")));
struct vq vqs[NQ_MAX] __attribute__((section(".noinit")));
static u32 config_seen;

static u8 rng_buf[QSMALL][64];
#define RX_BUFS 4
#define RX_LEN 16
static u8 rx_buf[RX_BUFS][RX_LEN];
static u8 tx_buf[64];

/* ----------------------------------------------------------- output */

void say(const char *s)
{
	puts("virtio: ");
	puts(s);
}

static void put_type(u32 t)
{
	puts(t == 1 ? "net" : t == 2 ? "block" : t == 3 ? "console" : t == 4 ? "rng" : "device");
	puts(" (type ");
	put_dec(t);
	putc(')');
}

static u8 status_read(void);
static void status_write(u8 s);

void fail_start(void)
{
	puts(tname);
	puts(": FAILED ");
}

__attribute__((noreturn)) void fail_end(void)
{
	putc('\n');
	if (dev_live)
		status_write((u8)(status_read() | S_FAILED));
	debug_exit(1);
}

__attribute__((noreturn)) void fail(const char *why)
{
	fail_start();
	puts(why);
	fail_end();
}

__attribute__((noreturn)) void fail_x(const char *why, u64 v)
{
	fail_start();
	puts(why);
	put_hex(v);
	fail_end();
}

/* -------------------------------------------------- PCI config space */

static void cfg_addr(u32 off)
{
	outl(0xcf8, 0x80000000u | pci_dev << 11 | (off & 0xfc));
}

static u32 cfg_rd32(u32 off)
{
	cfg_addr(off);
	return inl(0xcfc);
}

static u16 cfg_rd16(u32 off)
{
	cfg_addr(off);
	return inw((u16)(0xcfc + (off & 2)));
}

static u8 cfg_rd8(u32 off)
{
	cfg_addr(off);
	return inb((u16)(0xcfc + (off & 3)));
}

static void cfg_wr32(u32 off, u32 v)
{
	cfg_addr(off);
	outl(0xcfc, v);
}

static void cfg_wr16(u32 off, u16 v)
{
	cfg_addr(off);
	outw((u16)(0xcfc + (off & 2)), v);
}

/* ------------------------------------------------- device registers */

static u8 status_read(void)
{
	return is_pci ? mmio_rd8(common + CC_STATUS) : (u8)mmio_rd32(mmio_base + MM_STATUS);
}

static void status_write(u8 s)
{
	if (is_pci)
		mmio_wr8(common + CC_STATUS, s);
	else
		mmio_wr32(mmio_base + MM_STATUS, s);
}

static u32 features_read(u32 sel)
{
	if (is_pci) {
		mmio_wr32(common + CC_DFSELECT, sel);
		return mmio_rd32(common + CC_DF);
	}
	mmio_wr32(mmio_base + MM_DFSEL, sel);
	return mmio_rd32(mmio_base + MM_DF);
}

static void features_write(u32 sel, u32 v)
{
	if (is_pci) {
		mmio_wr32(common + CC_GFSELECT, sel);
		mmio_wr32(common + CC_GF, v);
	} else {
		mmio_wr32(mmio_base + MM_GFSEL, sel);
		mmio_wr32(mmio_base + MM_GF, v);
	}
}

void check_status(const char *when)
{
	u8 s = status_read();

	if (s & (S_NEEDS_RESET | S_FAILED)) {
		fail_start();
		puts("device status ");
		put_hex(s);
		puts(s & S_NEEDS_RESET ? " (DEVICE_NEEDS_RESET) " : " (FAILED) ");
		puts(when);
		fail_end();
	}
}

/* ---------------------------------------------------- PCI transport */

static u64 bar_addr[6], bar_size[6];

/* Reads BAR i (memory decoding must be off), sizes it (write all-ones,
 * read the mask, restore) and checks that it is assigned below 4 GiB. */
static void bar_probe(u32 i)
{
	u32 reg = 0x10 + 4 * i, lo, hi = 0, mlo, mhi = 0xffffffffu;
	int is64;

	lo = cfg_rd32(reg);
	if (lo & 1)
		fail_x("I/O BARs are not supported: bar ", i);
	is64 = (lo & 6) == 4;
	if (is64 && i == 5)
		fail("64-bit bar 5");
	cfg_wr32(reg, 0xffffffffu);
	mlo = cfg_rd32(reg);
	cfg_wr32(reg, lo);
	if (is64) {
		hi = cfg_rd32(reg + 4);
		cfg_wr32(reg + 4, 0xffffffffu);
		mhi = cfg_rd32(reg + 4);
		cfg_wr32(reg + 4, hi);
	}
	bar_addr[i] = (u64)hi << 32 | (lo & ~0xfu);
	bar_size[i] = ~((u64)mhi << 32 | (mlo & ~0xfu)) + 1;
	puts("virtio: bar");
	put_dec(i);
	puts(is64 ? " mem64 " : " mem32 ");
	put_hex(bar_addr[i]);
	puts(" size ");
	put_hex(bar_size[i]);
	puts(lo & 8 ? " prefetchable\n" : "\n");
	if (!(mlo & ~0xfu))
		fail_x("BAR not implemented (sizing reads 0): bar ", i);
	if (!bar_addr[i])
		fail_x("BAR not assigned (address 0): bar ", i);
	if (bar_addr[i] >= 0x100000000ull || bar_size[i] > 0x100000000ull - bar_addr[i])
		fail_x("BAR not below 4 GiB (we map only 4 GiB): bar ", i);
}

static int pci_find(u32 type)
{
	u32 dev, found = 32;

	for (dev = 0; dev < 32; dev++) {
		u32 id;
		pci_dev = dev;
		id = cfg_rd32(0);
		if ((id & 0xffff) != VIRTIO_VENDOR)
			continue;
		id >>= 16;
		say("found ");
		if (id >= VIRTIO_PCI_MODERN && id <= VIRTIO_PCI_MODERN + 0x3f) {
			put_type(id - VIRTIO_PCI_MODERN);
		} else {
			puts("non-modern device 1af4:");
			put_hex(id);
		}
		puts(" at pci 00:");
		put_hex2((u8)dev);
		puts(".0\n");
		if (id == VIRTIO_PCI_MODERN + type && found == 32)
			found = dev;
	}
	pci_dev = found;
	return found < 32;
}

static void put_cap(u32 bar, u32 off, u32 len)
{
	puts(" bar");
	put_dec(bar);
	puts("+");
	put_hex(off);
	puts(" len ");
	put_hex(len);
}

/* Walks the capabilities, sizes the BARs, enables memory decoding and bus
 * mastering and (irq=msix) MSI-X. */
static void pci_setup(void)
{
	u32 ptr, n, t, i, used_bars = 0, msix = 0, mbir = 0, moff = 0, mn = 0;
	u32 have = 0, cbar[5], coff[5], clen[5];
	u16 cmd;

	if (!(cfg_rd16(0x06) & 0x10))
		fail("no PCI capability list (status bit 4 clear)");
	ptr = cfg_rd8(0x34) & 0xfc;
	for (n = 0; ptr && n < 48; n++) {
		u32 hdr = cfg_rd32(ptr);
		u32 id = hdr & 0xff;
		if (id == 0x09) {
			u32 bar = cfg_rd32(ptr + 4) & 0xff;
			u32 off = cfg_rd32(ptr + 8);
			u32 len = cfg_rd32(ptr + 12);
			t = hdr >> 24;
			say("cap ");
			puts(t == CAP_COMMON ? "common" : t == CAP_NOTIFY ? "notify" : t == CAP_ISR ? "isr" :
			     t == CAP_DEVICE ? "device" : t == CAP_PCI_CFG ? "pci-cfg" : "other");
			put_cap(bar, off, len);
			if (t == CAP_NOTIFY) {
				puts(" multiplier ");
				put_dec(cfg_rd32(ptr + 16));
			}
			putc('\n');
			/* the first usable structure of each type wins */
			if (t >= CAP_COMMON && t <= CAP_DEVICE && bar <= 5 && !(have & 1u << t)) {
				have |= 1u << t;
				cbar[t] = bar;
				coff[t] = off;
				clen[t] = len;
				used_bars |= 1u << bar;
				if (t == CAP_NOTIFY)
					notify_mult = cfg_rd32(ptr + 16);
			}
		} else if (id == 0x11 && !msix) {
			msix = ptr;
		}
		ptr = (hdr >> 8) & 0xfc;
	}
	if (!(have & 1u << CAP_COMMON))
		fail("no common configuration capability");
	if (!(have & 1u << CAP_NOTIFY))
		fail("no notification capability");
	if (irq_mode == IRQ_INTX && !(have & 1u << CAP_ISR))
		fail("no ISR capability (needed for irq=intx)");
	if (clen[CAP_COMMON] < CC_MIN_LEN)
		fail_x("common configuration too short: ", clen[CAP_COMMON]);
	if (msix && irq_mode != IRQ_MSIX) /* MSI-X off: INTx or nothing */
		cfg_wr16(msix + 2, cfg_rd16(msix + 2) & ~0x8000u);
	if (irq_mode == IRQ_MSIX) {
		u32 tbl;
		if (!msix)
			fail("no MSI-X capability (irq=msix)");
		mn = (cfg_rd16(msix + 2) & 0x7ff) + 1u;
		tbl = cfg_rd32(msix + 4);
		mbir = tbl & 7;
		moff = tbl & ~7u;
		say("msix table");
		put_cap(mbir, moff, mn * 16);
		puts(" entries ");
		put_dec(mn);
		putc('\n');
		if (mbir > 5)
			fail_x("MSI-X table in a reserved BIR: ", mbir);
		used_bars |= 1u << mbir;
	}

	/* BARs: sizing needs decoding off */
	cmd = cfg_rd16(0x04);
	cfg_wr16(0x04, cmd & ~7u);
	for (i = 0; i < 6; i++)
		if (used_bars & 1u << i)
			bar_probe(i);
	for (t = CAP_COMMON; t <= CAP_DEVICE; t++)
		if ((have & 1u << t) && (coff[t] > bar_size[cbar[t]] ||
					 clen[t] > bar_size[cbar[t]] - coff[t]))
			fail_x("capability outside its BAR, cfg_type ", t);
	/* memory space + bus master; INTx disabled unless irq=intx */
	cmd = (u16)((cmd & ~0x401u) | 0x6 | (irq_mode == IRQ_INTX ? 0 : 0x400));
	cfg_wr16(0x04, cmd);

	common = bar_addr[cbar[CAP_COMMON]] + coff[CAP_COMMON];
	notify_base = bar_addr[cbar[CAP_NOTIFY]] + coff[CAP_NOTIFY];
	notify_len = clen[CAP_NOTIFY];
	if (have & 1u << CAP_ISR)
		isr_addr = bar_addr[cbar[CAP_ISR]] + coff[CAP_ISR];
	if (have & 1u << CAP_DEVICE) {
		devcfg = bar_addr[cbar[CAP_DEVICE]] + coff[CAP_DEVICE];
		devcfg_len = clen[CAP_DEVICE];
	}

	if (irq_mode == IRQ_MSIX) {
		u64 tbl = bar_addr[mbir] + moff;
		/* every queue a test may set up later (dev_init's count), not only nq */
		u32 e, use = mn < 1 + NQ_MAX ? mn : 1 + NQ_MAX;
		u16 ctrl = cfg_rd16(msix + 2);

		if (moff > bar_size[mbir] || mn * 16 > bar_size[mbir] - moff)
			fail("MSI-X table outside its BAR");
		/* enable with the function masked, program, then unmask */
		cfg_wr16(msix + 2, ctrl | 0xc000);
		for (e = 0; e < use; e++) {
			mmio_wr32(tbl + 16 * e, 0xfee00000u | apic_id << 12);
			mmio_wr32(tbl + 16 * e + 4, 0);
			mmio_wr32(tbl + 16 * e + 8, VEC_MSIX + e);
			mmio_wr32(tbl + 16 * e + 12, 0); /* vector control: unmasked */
		}
		cfg_wr16(msix + 2, (u16)((ctrl | 0x8000) & ~0x4000));
		say("msix enabled: config entry 0 vector ");
		put_hex(VEC_MSIX);
		for (e = 0; e < NQ_MAX; e++)
			qentry[e] = e + 1 < use ? e + 1 : use - 1;
		for (e = 0; e < nq; e++) {
			puts(", queue ");
			put_dec(e);
			puts(" entry ");
			put_dec(qentry[e]);
			puts(" vector ");
			put_hex(VEC_MSIX + qentry[e]);
		}
		putc('\n');
	}
}

/* --------------------------------------------------- MMIO transport */

/* Linux's memparse/simple_strtoull(base 0): 0x hex, 0 octal, else
 * decimal; with suffixes (K, M, G) if 'mem'. Advances *i. */
static u64 parse_num(const char *w, u32 len, u32 *i, int mem)
{
	u32 k = *i, base = 10, start;
	u64 n = 0;

	if (k < len && w[k] == '0') {
		base = 8;
		if (k + 1 < len && (w[k + 1] == 'x' || w[k + 1] == 'X')) {
			base = 16;
			k += 2;
		}
	}
	start = k;
	for (; k < len; k++) {
		char c = w[k];
		u32 d;
		if (c >= '0' && c <= '9')
			d = (u32)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (u32)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (u32)(c - 'A' + 10);
		else
			break;
		if (d >= base)
			break;
		n = n * base + d;
	}
	if (k == start && base != 8)
		fail("bad number in virtio_mmio.device=");
	if (mem && k < len) {
		char c = (char)(w[k] | 0x20);
		u32 sh = c == 'k' ? 10 : c == 'm' ? 20 : c == 'g' ? 30 : 0;
		if (sh) {
			n <<= sh;
			k++;
		}
	}
	*i = k;
	return n;
}

static int mmio_find(u32 type)
{
	static const char key[] = "virtio_mmio.device=";
	u32 pos = 0, len, k, found = 0;
	const char *w;

	while ((w = next_word(&pos, &len))) {
		u64 size, base, irq;
		u32 magic, ver, id;

		for (k = 0; key[k] && k < len && w[k] == key[k]; k++)
			;
		if (key[k])
			continue;
		size = parse_num(w, len, &k, 1);
		if (k >= len || w[k++] != '@')
			fail("virtio_mmio.device= without @");
		base = parse_num(w, len, &k, 0);
		if (k >= len || w[k++] != ':')
			fail("virtio_mmio.device= without :irq");
		irq = parse_num(w, len, &k, 0);
		if (k < len && w[k] != ':')
			fail("virtio_mmio.device= has trailing characters");
		if (base >= 0x100000000ull || size < 0x100 || size > 0x100000000ull - base)
			fail_x("virtio_mmio.device= outside the first 4 GiB or smaller than 0x100: ", base);
		magic = mmio_rd32(base + MM_MAGIC);
		ver = mmio_rd32(base + MM_VERSION);
		id = mmio_rd32(base + MM_DEVICE_ID);
		if (magic != MM_MAGIC_VALUE)
			fail_x("virtio-mmio bad magic value: ", magic);
		if (ver != 2)
			fail_x("virtio-mmio version is not 2 (legacy devices are not supported): ", ver);
		if (!id)
			continue; /* a transport with no device behind it */
		say("found ");
		put_type(id);
		puts(" at mmio ");
		put_hex(base);
		puts(" irq ");
		put_dec(irq);
		puts(" size ");
		put_hex(size);
		putc('\n');
		if (id == type && !found) {
			found = 1;
			mmio_base = base;
			devcfg = base + MM_CONFIG;
			devcfg_len = size - MM_CONFIG;
			gsi = (u32)irq;
		}
	}
	return found;
}

/* ----------------------------------------------- interrupt controllers */

void irq_handler(u32 vector)
{
	if (vector == VEC_SPURIOUS) { /* no EOI for the spurious vector */
		spurious_irqs++;
		return;
	}
	if (vector == VEC_TIMER) {
		timer_fired = 1;
	} else if (vector == VEC_INTX) {
		u32 isr;
		if (is_pci) {
			isr = mmio_rd8(isr_addr); /* reading acknowledges */
		} else {
			isr = mmio_rd32(mmio_base + MM_INT_STATUS);
			mmio_wr32(mmio_base + MM_INT_ACK, isr);
		}
		if (isr & 1) {
			queue_irqs[0]++;
			queue_irqs[1]++;
		}
		if (isr & 2)
			config_irqs++;
		if (!(isr & 3))
			isr_zero_irqs++;
	} else if (vector >= VEC_MSIX && vector < VEC_MSIX + MSIX_MAX) {
		u32 e = vector - VEC_MSIX, q;
		if (e == 0)
			config_irqs++;
		for (q = 0; q < nq; q++)
			if (qentry[q] == e)
				queue_irqs[q]++;
	} else {
		other_irqs++;
	}
	mmio_wr32(LAPIC + LAPIC_EOI, 0);
}

static void ioapic_write(u32 reg, u32 v)
{
	mmio_wr32(IOAPIC, reg);
	mmio_wr32(IOAPIC + 0x10, v);
}

static u32 ioapic_read(u32 reg)
{
	mmio_wr32(IOAPIC, reg);
	return mmio_rd32(IOAPIC + 0x10);
}

/* IDT gates for vectors 32..47, PIC masked, LAPIC software-enabled, the
 * LAPIC timer (one-shot, VEC_TIMER) prepared as a watchdog. */
static void lapic_init(void)
{
	u32 lo, hi, i;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(0x1b)); /* IA32_APIC_BASE */
	if (hi || (lo & 0xfffff000u) != 0xfee00000u || (lo & 0xc00) != 0x800)
		fail_x("LAPIC not enabled in xAPIC mode at 0xfee00000: IA32_APIC_BASE ",
		       (u64)hi << 32 | lo);
	for (i = 0; i < 16; i++)
		set_gate((int)(32 + i), irq_stubs + 8 * i);
	load_idt();
	outb(0x21, 0xff); /* mask both 8259s */
	outb(0xa1, 0xff);
	apic_id = mmio_rd32(LAPIC + LAPIC_ID) >> 24;
	mmio_wr32(LAPIC + LAPIC_TPR, 0);
	mmio_wr32(LAPIC + LAPIC_SVR, 0x100 | VEC_SPURIOUS);
	mmio_wr32(LAPIC + LAPIC_TIMER_DIV, 0xa); /* divide by 128 */
	mmio_wr32(LAPIC + LAPIC_LVT_TIMER, VEC_TIMER); /* one-shot, unmasked */
	say("lapic id ");
	put_dec(apic_id);
	puts(" version ");
	put_hex(mmio_rd32(LAPIC + LAPIC_VER));
	putc('\n');
}

static int key_is(const char *key, const char *a, const char *b, int dflt_a)
{
	u32 len;
	const char *v = param(key, &len);

	if (!v)
		return dflt_a;
	if (value_is(v, len, a))
		return 1;
	if (value_is(v, len, b))
		return 0;
	fail_start();
	puts("bad ");
	puts(key);
	puts("= (want ");
	puts(a);
	puts(" or ");
	puts(b);
	putc(')');
	fail_end();
}

u64 key_num(const char *key, u64 dflt, u64 lo, u64 hi, int sizes)
{
	u32 len, k = 0, base = 10;
	u64 n = 0;
	const char *v = param(key, &len);

	if (!v)
		return dflt;
	if (len > 2 && v[0] == '0' && (v[1] | 0x20) == 'x') {
		base = 16;
		k = 2;
	}
	if (k == len)
		goto bad;
	for (; k < len; k++) {
		char c = (char)(v[k] | 0x20);
		u32 d;
		if (v[k] >= '0' && v[k] <= '9')
			d = (u32)(v[k] - '0');
		else if (base == 16 && c >= 'a' && c <= 'f')
			d = (u32)(c - 'a' + 10);
		else
			break;
		if (n >> 56)
			goto bad;
		n = n * base + d;
	}
	if (sizes && k + 1 == len) {
		char c = (char)(v[k] | 0x20);
		u32 sh = c == 'k' ? 10 : c == 'm' ? 20 : c == 'g' ? 30 : 0;
		if (sh && !(n >> (63 - sh))) {
			n <<= sh;
			k++;
		}
	}
	if (k == len && n >= lo && n <= hi)
		return n;
bad:
	fail_start();
	puts("bad ");
	puts(key);
	puts("= (want ");
	put_dec(lo);
	puts("..");
	put_dec(hi);
	putc(')');
	fail_end();
}

/* Routes GSI 'gsi' to VEC_INTX on our APIC. */
static void intx_init(void)
{
	int level = key_is("trigger", "level", "edge", is_pci);
	int high = key_is("polarity", "high", "low", 1);
	u32 ver = ioapic_read(1), max = (ver >> 16) & 0xff;

	say("intx gsi ");
	put_dec(gsi);
	puts(" vector ");
	put_hex(VEC_INTX);
	puts(level ? " level" : " edge");
	puts(high ? "/high" : "/low");
	puts(" (ioapic version ");
	put_hex(ver & 0xff);
	puts(", ");
	put_dec(max + 1);
	puts(" pins)\n");
	if (gsi > max)
		fail_x("GSI beyond the IOAPIC's pins: ", gsi);
	ioapic_write(0x11 + 2 * gsi, apic_id << 24);
	ioapic_write(0x10 + 2 * gsi, VEC_INTX | (level ? 0x8000u : 0) | (high ? 0 : 0x2000u));
}

static void timer_arm(void)
{
	timer_fired = 0;
	mmio_wr32(LAPIC + LAPIC_TIMER_INIT, timeout_ms * LAPIC_TICKS_PER_MS);
}

static void timer_stop(void)
{
	mmio_wr32(LAPIC + LAPIC_TIMER_INIT, 0);
}

/* ------------------------------------------------------- virtqueues */

static void vq_setup(u32 q, u32 want)
{
	struct vq *vq = &vqs[q];
	struct vq_mem *m = &vqmem[q];
	u32 max, size = want;

	vq->m = m;
	vq->q = (u16)q;
	vq->next_avail = vq->last_used = 0;
	vq->irq_seen = queue_irqs[q];
	vq->suppressed = 0;
	if (is_pci) {
		mmio_wr16(common + CC_Q_SELECT, (u16)q);
		max = mmio_rd16(common + CC_Q_SIZE);
	} else {
		mmio_wr32(mmio_base + MM_Q_SEL, q);
		if (mmio_rd32(mmio_base + MM_Q_READY))
			fail_x("QueueReady already set for queue ", q);
		max = mmio_rd32(mmio_base + MM_Q_NUM_MAX);
	}
	if (!max)
		fail_x("queue not available (maximum size 0): queue ", q);
	while (size > max)
		size >>= 1;
	vq->size = (u16)size;
	/* descriptor d is free[size - 1 - d]: the first taken is 0 */
	for (vq->nfree = 0; vq->nfree < size; vq->nfree++) {
		vq->free[vq->nfree] = (u16)(size - 1 - vq->nfree);
		vq->chain[vq->nfree] = 0;
	}
	/* the ring memory is not zeroed: initialise what is read before it is
	 * written (the device writes used elements before it moves used.idx) */
	m->avail.flags = irq_mode == IRQ_POLL ? VIRTQ_AVAIL_F_NO_INTERRUPT : 0;
	m->avail.idx = 0;
	m->used.flags = 0;
	m->used.idx = 0;
	if (is_pci) {
		u32 noff;
		mmio_wr16(common + CC_Q_SIZE, (u16)size);
		mmio_wr32(common + CC_Q_DESC, (u32)(u64)m->desc);
		mmio_wr32(common + CC_Q_DESC + 4, (u32)((u64)m->desc >> 32));
		mmio_wr32(common + CC_Q_DRIVER, (u32)(u64)&m->avail);
		mmio_wr32(common + CC_Q_DRIVER + 4, (u32)((u64)&m->avail >> 32));
		mmio_wr32(common + CC_Q_DEVICE, (u32)(u64)&m->used);
		mmio_wr32(common + CC_Q_DEVICE + 4, (u32)((u64)&m->used >> 32));
		if (irq_mode == IRQ_MSIX) {
			u16 v;
			mmio_wr16(common + CC_Q_MSIX, (u16)qentry[q]);
			v = mmio_rd16(common + CC_Q_MSIX);
			if (v != qentry[q])
				fail_x("queue_msix_vector not accepted, reads back ", v);
		}
		noff = mmio_rd16(common + CC_Q_NOFF);
		if ((u64)noff * notify_mult + 2 > notify_len)
			fail_x("queue_notify_off outside the notification structure: ", noff);
		vq->notify = notify_base + noff * notify_mult;
		mmio_wr16(common + CC_Q_ENABLE, 1);
	} else {
		mmio_wr32(mmio_base + MM_Q_NUM, size);
		mmio_wr32(mmio_base + MM_Q_DESC, (u32)(u64)m->desc);
		mmio_wr32(mmio_base + MM_Q_DESC + 4, (u32)((u64)m->desc >> 32));
		mmio_wr32(mmio_base + MM_Q_DRIVER, (u32)(u64)&m->avail);
		mmio_wr32(mmio_base + MM_Q_DRIVER + 4, (u32)((u64)&m->avail >> 32));
		mmio_wr32(mmio_base + MM_Q_DEVICE, (u32)(u64)&m->used);
		mmio_wr32(mmio_base + MM_Q_DEVICE + 4, (u32)((u64)&m->used >> 32));
		mmio_wr32(mmio_base + MM_Q_READY, 1);
		vq->notify = mmio_base + MM_Q_NOTIFY;
	}
	say("queue ");
	put_dec(q);
	puts(" size ");
	put_dec(size);
	puts(" (max ");
	put_dec(max);
	puts(") desc ");
	put_hex((u64)m->desc);
	puts(" notify ");
	put_hex(vq->notify);
	if (is_pci && irq_mode == IRQ_MSIX) {
		puts(" msix entry ");
		put_dec(qentry[q]);
	}
	putc('\n');
}

/* Makes the chain s[0..n) available (no notification); returns its head. */
u32 vq_add(struct vq *vq, const struct vseg *s, u32 n)
{
	volatile struct vq_mem *m = vq->m;
	u32 head, d, next, i;

	if (n > vq->nfree)
		fail_x("no free descriptors for a chain of ", n);
	head = d = vq->free[--vq->nfree];
	for (i = 0;; i++) {
		m->desc[d].addr = (u64)s[i].addr;
		m->desc[d].len = s[i].len;
		if (i + 1 == n) {
			m->desc[d].flags = s[i].flags;
			m->desc[d].next = 0;
			break;
		}
		next = vq->free[--vq->nfree];
		m->desc[d].flags = s[i].flags | VIRTQ_DESC_F_NEXT;
		m->desc[d].next = (u16)next;
		d = next;
	}
	vq->chain[head] = (u8)n;
	m->avail.ring[vq->next_avail & (vq->size - 1)] = (u16)head;
	barrier(); /* ring entry before idx (x86 keeps stores in order) */
	m->avail.idx = ++vq->next_avail;
	return head;
}

u32 vq_add1(struct vq *vq, const void *buf, u32 len, u16 flags)
{
	struct vseg sg;

	sg.addr = buf;
	sg.len = len;
	sg.flags = flags;
	return vq_add(vq, &sg, 1);
}

void vq_kick(struct vq *vq)
{
	mfence(); /* avail.idx store before the used.flags load */
	if (vq->m->used.flags & VIRTQ_USED_F_NO_NOTIFY) {
		vq->suppressed++;
		return;
	}
	if (is_pci)
		mmio_wr16(vq->notify, vq->q);
	else
		mmio_wr32(vq->notify, vq->q);
}

/* Takes the next used element: returns its head descriptor id (and *len),
 * or -1 if there is none; the chain's descriptors are free again. */
int vq_get(struct vq *vq, u32 *len)
{
	volatile struct vq_mem *m = vq->m;
	u16 idx = m->used.idx;
	u32 id, n, d;

	if (idx == vq->last_used)
		return -1;
	if ((u16)(idx - vq->last_used) > vq->size)
		fail_x("used.idx ran ahead of what we made available: ", idx);
	barrier(); /* used.idx before the element (x86 keeps loads in order) */
	id = m->used.ring[vq->last_used & (vq->size - 1)].id;
	*len = m->used.ring[vq->last_used & (vq->size - 1)].len;
	vq->last_used++;
	if (id >= vq->size || !vq->chain[id])
		fail_x("used element names a descriptor that is not in flight: id ", id);
	n = vq->chain[id];
	vq->chain[id] = 0;
	for (d = id; n--; d = m->desc[d].next & (vq->size - 1u))
		vq->free[vq->nfree++] = (u16)d;
	return (int)id;
}

/* Waits until the used ring has an element we have not consumed: irq=poll
 * polls used.idx (with a port 0x80 read, an exit to the VMM, between
 * polls); the interrupt modes "sti; hlt" until the handler saw an
 * interrupt for this queue and used.idx moved, with the LAPIC timer as a
 * watchdog. The caller then takes every used element (vq_get). */
void vq_wait(struct vq *vq, const char *what)
{
	volatile struct vq_mem *m = vq->m;
	u32 i;

	if (irq_mode == IRQ_POLL) {
		u32 polls = timeout_ms * 100;
		for (i = 0; i < polls; i++) {
			if (m->used.idx != vq->last_used)
				return;
			(void)inb(POST_PORT);
		}
	} else {
		timer_arm();
		for (i = 0; i < 1000000; i++) {
			u32 n = queue_irqs[vq->q];
			if (config_irqs != config_seen) {
				config_seen = config_irqs;
				check_status("after a configuration change interrupt");
			}
			if (n != vq->irq_seen && m->used.idx != vq->last_used) {
				vq->irq_seen = n;
				timer_stop();
				return;
			}
			if (timer_fired) {
				/* a late interrupt from an earlier wait's timer? */
				if (mmio_rd32(LAPIC + LAPIC_TIMER_COUNT)) {
					timer_fired = 0;
					continue;
				}
				break;
			}
			__asm__ volatile("sti; hlt; cli" : : : "memory");
		}
		timer_stop();
	}
	fail_start();
	puts("timeout waiting for ");
	puts(what);
	puts(" (used.idx ");
	put_dec(m->used.idx);
	puts(", consumed ");
	put_dec(vq->last_used);
	puts(", made available ");
	put_dec(vq->next_avail);
	if (irq_mode != IRQ_POLL) {
		puts(", queue interrupts ");
		put_dec(queue_irqs[vq->q] - vq->irq_seen);
		puts(", with ISR 0 ");
		put_dec(isr_zero_irqs);
		puts(", spurious ");
		put_dec(spurious_irqs);
		puts(", other ");
		put_dec(other_irqs);
	}
	puts(", notifications suppressed ");
	put_dec(vq->suppressed);
	puts(", status ");
	put_hex(status_read());
	putc(')');
	fail_end();
}

/* ------------------------------------------------------------ device */

u32 dev_init(u32 queues, u32 qdefault, u32 qmax, u32 want)
{
	u32 lo, hi, q, i, qsize = (u32)key_num("qsize", qdefault, 1, qmax, 0);
	u8 s;

	if (qsize & (qsize - 1)) {
		fail_start();
		puts("bad qsize= (want a power of two up to ");
		put_dec(qmax);
		putc(')');
		fail_end();
	}
	nq = queues;
	status_write(0); /* reset */
	for (i = 0; i < 1000 && status_read(); i++)
		(void)inb(POST_PORT);
	s = status_read();
	if (s)
		fail_x("device reset did not complete, status still reads ", s);
	dev_live = 1;
	status_write(S_ACKNOWLEDGE);
	status_write(S_ACKNOWLEDGE | S_DRIVER);
	lo = features_read(0);
	hi = features_read(1);
	say("device features ");
	put_hex((u64)hi << 32 | lo);
	putc('\n');
	if (!(hi & 1))
		fail("device does not offer VIRTIO_F_VERSION_1");
	lo &= want;
	features_write(0, lo);
	features_write(1, 1); /* VIRTIO_F_VERSION_1 */
	status_write(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK);
	s = status_read();
	say("driver features ");
	put_hex(1ull << 32 | lo);
	if (!(s & S_FEATURES_OK)) {
		putc('\n');
		fail_x("device did not keep FEATURES_OK, status ", s);
	}
	puts(", FEATURES_OK\n");
	if (is_pci) {
		u32 n = mmio_rd16(common + CC_NUMQ);
		if (n < queues)
			fail_x("too few queues, num_queues ", n);
		if (irq_mode == IRQ_MSIX) {
			u16 v;
			mmio_wr16(common + CC_MSIX, 0);
			v = mmio_rd16(common + CC_MSIX);
			if (v != 0)
				fail_x("config_msix_vector not accepted, reads back ", v);
		}
	}
	for (q = 0; q < queues; q++)
		vq_setup(q, qsize);
	status_write(S_ACKNOWLEDGE | S_DRIVER | S_FEATURES_OK | S_DRIVER_OK);
	check_status("after DRIVER_OK");
	say("DRIVER_OK\n");
	return lo;
}

u32 dev_cfg_rd(u32 off, u32 width)
{
	u64 a = devcfg + off;

	if (!devcfg)
		fail("no device-specific configuration (PCI: no device capability)");
	if ((u64)off + width > devcfg_len)
		fail_x("device-specific configuration too short for offset ", off);
	return width == 1 ? mmio_rd8(a) : width == 2 ? mmio_rd16(a) : mmio_rd32(a);
}

u32 dev_cfg_gen(void)
{
	return is_pci ? mmio_rd8(common + CC_CFG_GEN) : mmio_rd32(mmio_base + MM_CFG_GEN);
}

extern char _end[]; /* guest.ld.S: the end of the image (.bss, page tables, stack) */

u8 *data_area(u64 len)
{
	u64 base = ((u64)_end + 0xffff) & ~0xffffull;

	say("data area ");
	put_hex(base);
	puts(" size ");
	put_hex(len);
	putc('\n');
	if (len > 0x40000000ull - base || !ram_contains(base, len))
		fail("the data area is not RAM below 1 GiB in the memory map");
	return (u8 *)base;
}

static void dev_reset_end(void)
{
	u32 len;
	const char *then = param("then", &len);

	if (then && value_is(then, len, "exit-live")) {
		/* end the run with the device still live, as a guest that powers off without resetting it */
		puts("virtio: exit with the device live\n");
		debug_exit(0);
	}
	status_write(0);
	dev_live = 0;
	if (then && value_is(then, len, "spin")) {
		/* stay alive, e.g. for the host to kill the VMM after what it just saw */
		puts("virtio: spinning\n");
		for (;;)
			__asm__ volatile("pause");
	}
	debug_exit(0);
}

/* -------------------------------------------------------------- tests */

static void run_rng(void)
{
	struct vq *vq = &vqs[0];
	u32 r, n = (u32)param_u64("requests", 2);

	for (r = 0; r < n; r++) {
		u32 d, len, i, nz = 0;
		u8 *b = rng_buf[r % QSMALL];

		for (i = 0; i < 64; i++)
			b[i] = 0;
		d = vq_add1(vq, b, 64, VIRTQ_DESC_F_WRITE);
		vq_kick(vq);
		vq_wait(vq, "the entropy buffer");
		if (vq_get(vq, &len) != (int)d)
			fail("used element is not the buffer we posted");
		check_status("after a request");
		if (!len || len > 64)
			fail_x("bad used length ", len);
		puts("virtio-rng: got ");
		put_dec(len);
		puts(" bytes: ");
		for (i = 0; i < len && i < 16; i++) {
			put_hex2(b[i]);
			nz |= b[i];
		}
		putc('\n');
		if (!nz)
			fail("the bytes are all zero");
	}
	puts("virtio-rng: ok\n");
}

/* Sends n (<= 64) bytes as one buffer on the transmit queue and waits for
 * it; returns the used length (bytes the device wrote: 0 for a spec device). */
static u32 console_send(const u8 *s, u32 n)
{
	struct vq *tx = &vqs[1];
	u32 d, i, len;

	for (i = 0; i < n; i++)
		tx_buf[i] = s[i];
	d = vq_add1(tx, tx_buf, n, 0);
	vq_kick(tx);
	vq_wait(tx, "the transmit buffer");
	if (vq_get(tx, &len) != (int)d)
		fail("used element is not the transmit buffer we posted");
	return len;
}

static void run_console(void)
{
	static const char hello[] = "hello over virtio-console\n";
	struct vq *rx = &vqs[0];
	u8 out[64];
	u32 i, n = 0, total = 0;
	int id, done = 0;

	puts("virtio-console: ready\n");
	i = console_send((const u8 *)hello, sizeof(hello) - 1);
	puts("virtio-console: sent ");
	put_dec(sizeof(hello) - 1);
	puts(" bytes (used.len ");
	put_dec(i);
	puts(")\n");
	for (i = 0; i < RX_BUFS; i++)
		vq_add1(rx, rx_buf[i], RX_LEN, VIRTQ_DESC_F_WRITE);
	vq_kick(rx);
	while (!done) {
		u32 len;
		vq_wait(rx, "input on the receive queue");
		while ((id = vq_get(rx, &len)) >= 0) {
			u8 *b = (u8 *)rx->m->desc[id].addr;
			if (len > RX_LEN)
				fail_x("receive used length larger than the buffer: ", len);
			total += len;
			for (i = 0; i < len && !done; i++) {
				if (b[i] == 'q') {
					done = 1;
				} else {
					out[n++] = b[i];
					if (n == sizeof(out)) {
						console_send(out, n);
						n = 0;
					}
				}
			}
			/* the descriptor is free again: post the buffer anew */
			vq_add1(rx, b, RX_LEN, VIRTQ_DESC_F_WRITE);
		}
		puts("virtio-console: received ");
		put_dec(total);
		puts(" bytes\n");
		if (n) {
			console_send(out, n);
			n = 0;
		}
		if (!done)
			vq_kick(rx);
	}
	check_status("at the end");
	puts("virtio-console: done\n");
}

void test_virtio(u32 type)
{
	u32 len;
	const char *v;
	int pci;

	tname = type == VIRTIO_ID_RNG ? "virtio-rng" : type == VIRTIO_ID_CONSOLE ? "virtio-console" :
		type == VIRTIO_ID_BLOCK ? "virtio-blk" : "virtio-net";
	timeout_ms = (u32)param_u64("timeout", 10000);
	if (!timeout_ms || timeout_ms > 500000)
		fail("bad timeout= (want 1..500000 ms)");

	v = param("irq", &len);
	if (!v || value_is(v, len, "poll"))
		irq_mode = IRQ_POLL;
	else if (value_is(v, len, "msix"))
		irq_mode = IRQ_MSIX;
	else if (value_is(v, len, "intx"))
		irq_mode = IRQ_INTX;
	else
		fail("bad irq= (want msix, intx or poll)");

	/* transport= defaults to mmio if the command line announces any */
	pci = key_is("transport", "pci", "mmio", !param("virtio_mmio.device", &len));
	if (!pci && irq_mode == IRQ_MSIX)
		fail("irq=msix needs transport=pci");
	if (irq_mode != IRQ_POLL)
		lapic_init();
	if (pci) {
		if (!pci_find(type)) {
			fail_start();
			puts("no virtio-pci ");
			put_type(type);
			puts(" on bus 0");
			fail_end();
		}
		is_pci = 1;
		nq = type == VIRTIO_ID_CONSOLE || type == VIRTIO_ID_NET ? 2 : 1;
		pci_setup();
		if (irq_mode == IRQ_INTX) {
			u32 pin = cfg_rd8(0x3d);
			gsi = (u32)param_u64("gsi", cfg_rd8(0x3c));
			say("intx pin ");
			put_dec(pin);
			puts(" line ");
			put_dec(cfg_rd8(0x3c));
			putc('\n');
			if (!pin)
				fail("no INTx pin (config 0x3d is 0)");
			if (gsi == 0xff)
				fail("interrupt line not assigned (0xff): give gsi=N");
		}
	} else {
		if (!mmio_find(type)) {
			fail_start();
			puts("no virtio-mmio ");
			put_type(type);
			puts(" in the virtio_mmio.device= words");
			fail_end();
		}
		gsi = (u32)param_u64("gsi", gsi);
	}
	if (irq_mode == IRQ_INTX)
		intx_init();
	if (type == VIRTIO_ID_RNG) {
		dev_init(1, QSMALL, QSMALL, 0);
		run_rng();
	} else if (type == VIRTIO_ID_CONSOLE) {
		dev_init(2, QSMALL, QSMALL, 0);
		run_console();
	} else if (type == VIRTIO_ID_BLOCK) {
		run_blk();
	} else {
		run_net();
	}
	dev_reset_end();
}
