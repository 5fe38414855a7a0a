/*
 * mini-vmm: the smallest VMM that boots a PVH ELF guest on /dev/kvm.
 *
 * It is the C baseline of bench/exit-cost: it creates the VM exactly as the
 * TypeScript VMM does (TSS at 0xfffbd000, identity map at 0xfffbc000,
 * in-kernel irqchip and PIT), enters the guest at its PVH entry point in
 * 32-bit protected mode and services port I/O exits with as little work as
 * possible:
 *
 *   0x3fd read  -> 0x60 (8250 LSR: THR empty, transmitter idle)
 *   0x3f8 write -> stdout
 *   0xf4  write -> exit((value << 1) | 1)   (QEMU isa-debug-exit semantics)
 *   other ports: reads return 0xff, writes are ignored
 *   HLT -> exit 0, SHUTDOWN or anything else -> exit 36
 *
 * Usage: mini-vmm <elf> <cmdline>
 */
#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#define MEM_SIZE (128UL << 20)
#define GDT_ADDR 0x500UL
#define START_INFO_ADDR 0x6000UL
#define MEMMAP_ADDR 0x7000UL
#define CMDLINE_ADDR 0x20000UL
#define CMDLINE_MAX 0x1000UL
#define TSS_ADDR 0xfffbd000UL
#define IDENTITY_MAP_ADDR 0xfffbc000UL
#define XEN_ELFNOTE_PHYS32_ENTRY 18
#define HVM_START_MAGIC 0x336ec578u
#define EXIT_FAILURE_VMM 36

struct hvm_start_info {
	uint32_t magic, version, flags, nr_modules;
	uint64_t modlist_paddr, cmdline_paddr, rsdp_paddr, memmap_paddr;
	uint32_t memmap_entries, reserved;
};

struct hvm_memmap_entry {
	uint64_t addr, size;
	uint32_t type, reserved;
};

static void die(const char *what)
{
	fprintf(stderr, "mini-vmm: %s: %s\n", what, strerror(errno));
	exit(EXIT_FAILURE_VMM);
}

static void fail(const char *what)
{
	fprintf(stderr, "mini-vmm: %s\n", what);
	exit(EXIT_FAILURE_VMM);
}

static int xioctl(int fd, unsigned long req, void *arg, const char *name)
{
	int r = ioctl(fd, req, arg);
	if (r < 0)
		die(name);
	return r;
}

/* Loads the PT_LOAD segments at their physical addresses and returns the PVH entry. */
static uint32_t load_pvh_elf(const char *path, uint8_t *mem)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		die(path);
	struct stat st;
	if (fstat(fd, &st) < 0)
		die("fstat");
	uint8_t *f = mmap(NULL, st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (f == MAP_FAILED)
		die("mmap kernel");
	close(fd);

	const Elf64_Ehdr *eh = (const Elf64_Ehdr *)f;
	if ((size_t)st.st_size < sizeof(*eh) || memcmp(eh->e_ident, ELFMAG, SELFMAG) != 0 ||
	    eh->e_ident[EI_CLASS] != ELFCLASS64 || eh->e_machine != EM_X86_64)
		fail("not an x86-64 ELF64 file");
	if (eh->e_phoff + (uint64_t)eh->e_phnum * sizeof(Elf64_Phdr) > (uint64_t)st.st_size)
		fail("truncated program headers");

	uint64_t entry = 0;
	int have_entry = 0;
	const Elf64_Phdr *ph = (const Elf64_Phdr *)(f + eh->e_phoff);
	for (int i = 0; i < eh->e_phnum; i++) {
		const Elf64_Phdr *p = &ph[i];
		if (p->p_offset + p->p_filesz > (uint64_t)st.st_size)
			fail("segment beyond end of file");
		if (p->p_type == PT_LOAD) {
			if (p->p_filesz > p->p_memsz || p->p_paddr + p->p_memsz > MEM_SIZE)
				fail("PT_LOAD segment does not fit in guest memory");
			memcpy(mem + p->p_paddr, f + p->p_offset, p->p_filesz);
			memset(mem + p->p_paddr + p->p_filesz, 0, p->p_memsz - p->p_filesz);
		} else if (p->p_type == PT_NOTE) {
			uint64_t off = 0;
			while (off + sizeof(Elf64_Nhdr) <= p->p_filesz) {
				const Elf64_Nhdr *n = (const Elf64_Nhdr *)(f + p->p_offset + off);
				const uint8_t *name = (const uint8_t *)(n + 1);
				const uint8_t *desc = name + ((n->n_namesz + 3) & ~3u);
				if (n->n_type == XEN_ELFNOTE_PHYS32_ENTRY && n->n_namesz == 4 &&
				    memcmp(name, "Xen", 4) == 0) {
					if (n->n_descsz >= 8)
						memcpy(&entry, desc, 8);
					else if (n->n_descsz >= 4) {
						uint32_t e32;
						memcpy(&e32, desc, 4);
						entry = e32;
					}
					have_entry = n->n_descsz >= 4;
				}
				off += sizeof(*n) + ((n->n_namesz + 3) & ~3u) + ((n->n_descsz + 3) & ~3u);
			}
		}
	}
	munmap(f, st.st_size);
	if (!have_entry)
		fail("no PVH note (XEN_ELFNOTE_PHYS32_ENTRY) in the ELF file");
	return (uint32_t)entry;
}

/* Writes hvm_start_info, its memory map and the command line; returns the start info address. */
static uint64_t write_start_info(uint8_t *mem, const char *cmdline)
{
	size_t len = strlen(cmdline);
	if (len >= CMDLINE_MAX)
		fail("command line too long");
	memcpy(mem + CMDLINE_ADDR, cmdline, len + 1);

	struct hvm_memmap_entry map[2] = {
		{ .addr = 0, .size = 0x9fc00, .type = 1 },
		{ .addr = 0x100000, .size = MEM_SIZE - 0x100000, .type = 1 },
	};
	memcpy(mem + MEMMAP_ADDR, map, sizeof(map));

	struct hvm_start_info si = {
		.magic = HVM_START_MAGIC,
		.version = 1,
		.cmdline_paddr = CMDLINE_ADDR,
		.memmap_paddr = MEMMAP_ADDR,
		.memmap_entries = 2,
	};
	memcpy(mem + START_INFO_ADDR, &si, sizeof(si));
	return START_INFO_ADDR;
}

static void set_cpuid(int kvm, int vcpu)
{
	int n = 128;
	for (;;) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + n * sizeof(struct kvm_cpuid_entry2));
		if (!c)
			fail("out of memory");
		c->nent = n;
		if (ioctl(kvm, KVM_GET_SUPPORTED_CPUID, c) == 0) {
			xioctl(vcpu, KVM_SET_CPUID2, c, "KVM_SET_CPUID2");
			free(c);
			return;
		}
		if (errno != E2BIG)
			die("KVM_GET_SUPPORTED_CPUID");
		free(c);
		n *= 2;
	}
}

static struct kvm_segment segment(uint16_t sel, uint8_t type, uint8_t s)
{
	struct kvm_segment seg = {
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = 1, .s = s, .l = 0, .g = 1,
	};
	return seg;
}

/* 32-bit protected mode, paging off, flat segments: the PVH entry state. */
static void set_entry_state(int vcpu, uint8_t *mem, uint32_t entry, uint64_t start_info)
{
	/* GDT: null, null, code 0x10, data 0x18, TSS 0x20 (base 0, limit 0x67). */
	uint64_t gdt[5] = {
		0,
		0,
		0x00cf9b000000ffffULL, /* code: base 0, limit 4 GiB, execute/read, accessed */
		0x00cf93000000ffffULL, /* data: base 0, limit 4 GiB, read/write, accessed */
		0x00008b0000000067ULL, /* TSS: base 0, limit 0x67, busy 32-bit TSS */
	};
	memcpy(mem + GDT_ADDR, gdt, sizeof(gdt));

	struct kvm_sregs sregs;
	xioctl(vcpu, KVM_GET_SREGS, &sregs, "KVM_GET_SREGS");
	sregs.cs = segment(0x10, 0xb, 1);
	sregs.ds = sregs.es = sregs.fs = sregs.gs = sregs.ss = segment(0x18, 0x3, 1);
	sregs.tr = (struct kvm_segment){
		.base = 0, .limit = 0x67, .selector = 0x20, .type = 11,
		.present = 1, .dpl = 0, .db = 0, .s = 0, .l = 0, .g = 0,
	};
	sregs.gdt.base = GDT_ADDR;
	sregs.gdt.limit = sizeof(gdt) - 1;
	sregs.idt.base = 0;
	sregs.idt.limit = 0;
	sregs.cr0 = 0x11; /* PE | ET */
	sregs.cr3 = 0;
	sregs.cr4 = 0;
	sregs.efer = 0;
	xioctl(vcpu, KVM_SET_SREGS, &sregs, "KVM_SET_SREGS");

	struct kvm_regs regs;
	memset(&regs, 0, sizeof(regs));
	regs.rip = entry;
	regs.rbx = start_info;
	regs.rflags = 2;
	xioctl(vcpu, KVM_SET_REGS, &regs, "KVM_SET_REGS");
}

static uint32_t read_io_value(const uint8_t *data, unsigned size)
{
	uint32_t v = 0;
	memcpy(&v, data, size > 4 ? 4 : size);
	return v;
}

static void handle_io(struct kvm_run *run)
{
	uint8_t *data = (uint8_t *)run + run->io.data_offset;
	unsigned size = run->io.size, count = run->io.count;
	uint16_t port = run->io.port;

	if (run->io.direction == KVM_EXIT_IO_OUT) {
		if (port == 0x3f8) {
			for (unsigned i = 0; i < count; i++)
				putchar(data[i * size]);
		} else if (port == 0xf4) {
			uint32_t v = read_io_value(data + (count - 1) * size, size);
			fflush(stdout);
			exit((int)(((v << 1) | 1) & 0xff));
		}
		return;
	}
	/* IN: byte reads of the LSR say "transmitter empty", everything else floats high. */
	memset(data, port == 0x3fd ? 0x60 : 0xff, (size_t)size * count);
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s <elf> <cmdline>\n", argv[0]);
		return 2;
	}

	int kvm = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (kvm < 0)
		die("/dev/kvm");
	if (ioctl(kvm, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
		fail("unexpected KVM API version");

	int vm = ioctl(kvm, KVM_CREATE_VM, 0);
	if (vm < 0)
		die("KVM_CREATE_VM");
	if (ioctl(vm, KVM_SET_TSS_ADDR, TSS_ADDR) < 0)
		die("KVM_SET_TSS_ADDR");
	uint64_t idmap = IDENTITY_MAP_ADDR;
	xioctl(vm, KVM_SET_IDENTITY_MAP_ADDR, &idmap, "KVM_SET_IDENTITY_MAP_ADDR");
	if (ioctl(vm, KVM_CREATE_IRQCHIP, 0) < 0)
		die("KVM_CREATE_IRQCHIP");
	struct kvm_pit_config pit = { .flags = 0 };
	xioctl(vm, KVM_CREATE_PIT2, &pit, "KVM_CREATE_PIT2");

	uint8_t *mem = mmap(NULL, MEM_SIZE, PROT_READ | PROT_WRITE,
			    MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (mem == MAP_FAILED)
		die("mmap guest memory");
	struct kvm_userspace_memory_region region = {
		.slot = 0, .flags = 0, .guest_phys_addr = 0,
		.memory_size = MEM_SIZE, .userspace_addr = (uint64_t)(uintptr_t)mem,
	};
	xioctl(vm, KVM_SET_USER_MEMORY_REGION, &region, "KVM_SET_USER_MEMORY_REGION");

	uint32_t entry = load_pvh_elf(argv[1], mem);
	uint64_t start_info = write_start_info(mem, argv[2]);

	int vcpu = ioctl(vm, KVM_CREATE_VCPU, 0);
	if (vcpu < 0)
		die("KVM_CREATE_VCPU");
	int run_size = ioctl(kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (run_size < (int)sizeof(struct kvm_run))
		die("KVM_GET_VCPU_MMAP_SIZE");
	struct kvm_run *run = mmap(NULL, run_size, PROT_READ | PROT_WRITE, MAP_SHARED, vcpu, 0);
	if (run == MAP_FAILED)
		die("mmap kvm_run");
	set_cpuid(kvm, vcpu);
	set_entry_state(vcpu, mem, entry, start_info);

	for (;;) {
		if (ioctl(vcpu, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN)
				continue;
			die("KVM_RUN");
		}
		switch (run->exit_reason) {
		case KVM_EXIT_IO:
			handle_io(run);
			break;
		case KVM_EXIT_HLT:
			fflush(stdout);
			return 0;
		case KVM_EXIT_SHUTDOWN:
			fflush(stdout);
			fprintf(stderr, "mini-vmm: guest shut down (triple fault?)\n");
			return EXIT_FAILURE_VMM;
		case KVM_EXIT_FAIL_ENTRY:
			fprintf(stderr, "mini-vmm: KVM_EXIT_FAIL_ENTRY, reason 0x%llx\n",
				(unsigned long long)run->fail_entry.hardware_entry_failure_reason);
			return EXIT_FAILURE_VMM;
		case KVM_EXIT_INTERNAL_ERROR:
			fprintf(stderr, "mini-vmm: KVM_EXIT_INTERNAL_ERROR, suberror %u\n",
				run->internal.suberror);
			return EXIT_FAILURE_VMM;
		default:
			fflush(stdout);
			fprintf(stderr, "mini-vmm: unhandled exit reason %u\n", run->exit_reason);
			return EXIT_FAILURE_VMM;
		}
	}
}
