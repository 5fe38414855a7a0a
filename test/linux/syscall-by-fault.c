/*
 * /init that makes its system calls the way a nested PVM host delivers them: instead of
 * SYSCALL it jumps to the kernel's entry_SYSCALL_64 (ENTRY, from System.map at build time)
 * with RCX = the return address, R11 = RFLAGS and RAX = the number, as SYSCALL would leave
 * them. The fetch of a kernel page at CPL 3 faults (#PF, error code 0x15, RIP = CR2 = the
 * entry) on any x86-64 machine, so this reproduces that host's defect anywhere: a kernel with
 * guest-configs/patches/0001-… runs each call, one without it kills init.
 *
 * It writes a line, checks getpid() == 1 and reboots (RESTART), all through the fault; a call
 * that fails prints a FAIL line through an ordinary SYSCALL and exits (the kernel panics).
 */
#ifndef ENTRY
#error "build with -DENTRY=0x<address of entry_SYSCALL_64>"
#endif

#define SYS_write 1
#define SYS_getpid 39
#define SYS_exit 60
#define SYS_reboot 169
#define LINUX_REBOOT_MAGIC1 0xfee1deadL
#define LINUX_REBOOT_MAGIC2 672274793L
#define LINUX_REBOOT_CMD_RESTART 0x01234567L

static long by_fault(long nr, long a1, long a2, long a3, long a4)
{
	long ret;
	register long r10 __asm__("r10") = a4;
	__asm__ volatile("lea 1f(%%rip), %%rcx\n\t"
			 "pushfq\n\t"
			 "pop %%r11\n\t"
			 "jmp *%[entry]\n"
			 "1:"
			 : "=a"(ret)
			 : "a"(nr), "D"(a1), "S"(a2), "d"(a3), "r"(r10), [entry] "r"((unsigned long)ENTRY)
			 : "rcx", "r11", "memory", "cc");
	return ret;
}

static long by_syscall(long nr, long a1, long a2, long a3)
{
	long ret;
	__asm__ volatile("syscall" : "=a"(ret) : "a"(nr), "D"(a1), "S"(a2), "d"(a3) : "rcx", "r11", "memory");
	return ret;
}

static unsigned long length(const char *s)
{
	unsigned long n = 0;
	while (s[n])
		n++;
	return n;
}

static void fail(const char *line)
{
	by_syscall(SYS_write, 1, (long)line, (long)length(line));
	by_syscall(SYS_exit, 1, 0, 0);
	for (;;)
		;
}

void _start(void)
{
	static const char hello[] = "syscall-by-fault: write ok\n";
	if (by_fault(SYS_write, 1, (long)hello, sizeof hello - 1, 0) != (long)(sizeof hello - 1))
		fail("syscall-by-fault: FAIL write\n");
	if (by_fault(SYS_getpid, 0, 0, 0, 0) != 1)
		fail("syscall-by-fault: FAIL getpid\n");
	static const char rebooting[] = "syscall-by-fault: getpid ok, rebooting\n";
	by_fault(SYS_write, 1, (long)rebooting, sizeof rebooting - 1, 0);
	by_fault(SYS_reboot, LINUX_REBOOT_MAGIC1, LINUX_REBOOT_MAGIC2, LINUX_REBOOT_CMD_RESTART, 0);
	fail("syscall-by-fault: FAIL reboot returned\n");
}
