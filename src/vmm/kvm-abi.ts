/**
 * KVM's userspace ABI for x86-64 (linux/kvm.h, asm/kvm.h): ioctl numbers,
 * exit reasons and struct layouts, by their names in the kernel headers.
 */

const IOC_NONE = 0;
const IOC_WRITE = 1;
const IOC_READ = 2;
const KVMIO = 0xae;

function ioc(direction: number, nr: number, size: number): number {
  // Computed in floating point: direction << 30 overflows a signed 32-bit shift.
  return direction * 2 ** 30 + size * 2 ** 16 + KVMIO * 2 ** 8 + nr;
}
const io = (nr: number): number => ioc(IOC_NONE, nr, 0);
const ior = (nr: number, size: number): number => ioc(IOC_READ, nr, size);
const iow = (nr: number, size: number): number => ioc(IOC_WRITE, nr, size);
const iowr = (nr: number, size: number): number => ioc(IOC_READ | IOC_WRITE, nr, size);

export const KVM_API_VERSION = 12;

// Struct sizes used to encode ioctl numbers.
export const SIZEOF_KVM_USERSPACE_MEMORY_REGION = 32;
export const SIZEOF_KVM_REGS = 144;
export const SIZEOF_KVM_SREGS = 312;
export const SIZEOF_KVM_CPUID2 = 8;
export const SIZEOF_KVM_CPUID_ENTRY2 = 40;
export const SIZEOF_KVM_PIT_CONFIG = 64;
/** struct kvm_irqchip: chip_id, pad, then a 512-byte union (struct kvm_ioapic_state for the IOAPIC). */
export const SIZEOF_KVM_IRQCHIP = 520;
export const KVM_IRQCHIP_IOAPIC = 2;
/** Offset of kvm_irqchip.chip.ioapic.id. */
export const KVM_IRQCHIP_IOAPIC_ID = 20;
export const SIZEOF_KVM_IRQ_LEVEL = 8;
export const SIZEOF_KVM_IRQFD = 32;
export const SIZEOF_KVM_IOEVENTFD = 64;
export const SIZEOF_KVM_IRQ_ROUTING = 8;
export const SIZEOF_KVM_IRQ_ROUTING_ENTRY = 48;
export const SIZEOF_KVM_TRANSLATION = 24;
export const SIZEOF_KVM_VCPU_EVENTS = 64;
export const SIZEOF_KVM_MP_STATE = 4;
export const SIZEOF_KVM_MSRS = 8;
export const SIZEOF_KVM_MSR_ENTRY = 16;
export const SIZEOF_KVM_SIGNAL_MASK = 4;
export const SIZEOF_KVM_MSI = 32;
export const SIZEOF_KVM_ENABLE_CAP = 104;

// System ioctls.
export const KVM_GET_API_VERSION = io(0x00);
export const KVM_CREATE_VM = io(0x01);
export const KVM_CHECK_EXTENSION = io(0x03);
export const KVM_GET_VCPU_MMAP_SIZE = io(0x04);
export const KVM_GET_SUPPORTED_CPUID = iowr(0x05, SIZEOF_KVM_CPUID2);

// VM ioctls.
export const KVM_CREATE_VCPU = io(0x41);
export const KVM_SET_USER_MEMORY_REGION = iow(0x46, SIZEOF_KVM_USERSPACE_MEMORY_REGION);
export const KVM_SET_TSS_ADDR = io(0x47);
export const KVM_SET_IDENTITY_MAP_ADDR = iow(0x48, 8);
export const KVM_CREATE_IRQCHIP = io(0x60);
export const KVM_IRQ_LINE = iow(0x61, SIZEOF_KVM_IRQ_LEVEL);
export const KVM_SET_GSI_ROUTING = iow(0x6a, SIZEOF_KVM_IRQ_ROUTING);
export const KVM_IRQFD = iow(0x76, SIZEOF_KVM_IRQFD);
export const KVM_CREATE_PIT2 = iow(0x77, SIZEOF_KVM_PIT_CONFIG);
export const KVM_GET_IRQCHIP = iowr(0x62, SIZEOF_KVM_IRQCHIP);
// The kernel declares KVM_SET_IRQCHIP with _IOR although it reads the struct.
export const KVM_SET_IRQCHIP = ior(0x63, SIZEOF_KVM_IRQCHIP);
export const KVM_IOEVENTFD = iow(0x79, SIZEOF_KVM_IOEVENTFD);
export const KVM_SIGNAL_MSI = iow(0xa5, SIZEOF_KVM_MSI);
export const KVM_ENABLE_CAP = iow(0xa3, SIZEOF_KVM_ENABLE_CAP);

// vCPU ioctls.
export const KVM_RUN = io(0x80);
export const KVM_GET_REGS = ior(0x81, SIZEOF_KVM_REGS);
export const KVM_SET_REGS = iow(0x82, SIZEOF_KVM_REGS);
export const KVM_GET_SREGS = ior(0x83, SIZEOF_KVM_SREGS);
export const KVM_SET_SREGS = iow(0x84, SIZEOF_KVM_SREGS);
export const KVM_TRANSLATE = iowr(0x85, SIZEOF_KVM_TRANSLATION);
export const KVM_SET_MSRS = iow(0x89, SIZEOF_KVM_MSRS);
export const KVM_SET_SIGNAL_MASK = iow(0x8b, SIZEOF_KVM_SIGNAL_MASK);
export const KVM_SET_CPUID2 = iow(0x90, SIZEOF_KVM_CPUID2);
export const KVM_GET_MP_STATE = ior(0x98, SIZEOF_KVM_MP_STATE);
export const KVM_GET_VCPU_EVENTS = ior(0x9f, SIZEOF_KVM_VCPU_EVENTS);
export const KVM_SET_VCPU_EVENTS = iow(0xa0, SIZEOF_KVM_VCPU_EVENTS);

// Capabilities (KVM_CHECK_EXTENSION).
export const KVM_CAP_IRQCHIP = 0;
export const KVM_CAP_USER_MEMORY = 3;
export const KVM_CAP_SET_TSS_ADDR = 4;
export const KVM_CAP_EXT_CPUID = 7;
export const KVM_CAP_NR_VCPUS = 9;
export const KVM_CAP_NR_MEMSLOTS = 10;
export const KVM_CAP_PIT2 = 33;
export const KVM_CAP_IOEVENTFD = 36;
export const KVM_CAP_IRQFD = 32;
export const KVM_CAP_MAX_VCPUS = 66;
export const KVM_CAP_IMMEDIATE_EXIT = 136;

// Exit reasons (kvm_run.exit_reason).
export const KVM_EXIT_UNKNOWN = 0;
export const KVM_EXIT_EXCEPTION = 1;
export const KVM_EXIT_IO = 2;
export const KVM_EXIT_HYPERCALL = 3;
export const KVM_EXIT_DEBUG = 4;
export const KVM_EXIT_HLT = 5;
export const KVM_EXIT_MMIO = 6;
export const KVM_EXIT_IRQ_WINDOW_OPEN = 7;
export const KVM_EXIT_SHUTDOWN = 8;
export const KVM_EXIT_FAIL_ENTRY = 9;
export const KVM_EXIT_INTR = 10;
export const KVM_EXIT_NMI = 16;
export const KVM_EXIT_INTERNAL_ERROR = 17;
export const KVM_EXIT_SYSTEM_EVENT = 24;

export const EXIT_REASON_NAMES: Readonly<Record<number, string>> = {
  [KVM_EXIT_UNKNOWN]: 'KVM_EXIT_UNKNOWN',
  [KVM_EXIT_EXCEPTION]: 'KVM_EXIT_EXCEPTION',
  [KVM_EXIT_IO]: 'KVM_EXIT_IO',
  [KVM_EXIT_HYPERCALL]: 'KVM_EXIT_HYPERCALL',
  [KVM_EXIT_DEBUG]: 'KVM_EXIT_DEBUG',
  [KVM_EXIT_HLT]: 'KVM_EXIT_HLT',
  [KVM_EXIT_MMIO]: 'KVM_EXIT_MMIO',
  [KVM_EXIT_IRQ_WINDOW_OPEN]: 'KVM_EXIT_IRQ_WINDOW_OPEN',
  [KVM_EXIT_SHUTDOWN]: 'KVM_EXIT_SHUTDOWN',
  [KVM_EXIT_FAIL_ENTRY]: 'KVM_EXIT_FAIL_ENTRY',
  [KVM_EXIT_INTR]: 'KVM_EXIT_INTR',
  [KVM_EXIT_NMI]: 'KVM_EXIT_NMI',
  [KVM_EXIT_INTERNAL_ERROR]: 'KVM_EXIT_INTERNAL_ERROR',
  [KVM_EXIT_SYSTEM_EVENT]: 'KVM_EXIT_SYSTEM_EVENT',
};

export const KVM_EXIT_IO_IN = 0;
export const KVM_EXIT_IO_OUT = 1;

export const KVM_INTERNAL_ERROR_EMULATION = 1;
export const KVM_INTERNAL_ERROR_SIMUL_EX = 2;
export const KVM_INTERNAL_ERROR_DELIVERY_EV = 3;
export const KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON = 4;
export const INTERNAL_ERROR_NAMES: Readonly<Record<number, string>> = {
  [KVM_INTERNAL_ERROR_EMULATION]: 'emulation failure',
  [KVM_INTERNAL_ERROR_SIMUL_EX]: 'simultaneous exceptions',
  [KVM_INTERNAL_ERROR_DELIVERY_EV]: 'event delivery failure',
  [KVM_INTERNAL_ERROR_UNEXPECTED_EXIT_REASON]: 'unexpected exit reason',
};

export const KVM_SYSTEM_EVENT_SHUTDOWN = 1;
export const KVM_SYSTEM_EVENT_RESET = 2;
export const KVM_SYSTEM_EVENT_CRASH = 3;

export const KVM_MP_STATE_RUNNABLE = 0;
export const KVM_MP_STATE_UNINITIALIZED = 1;
export const KVM_MP_STATE_INIT_RECEIVED = 2;
export const KVM_MP_STATE_HALTED = 3;

/** Offsets inside struct kvm_run (the vCPU's shared page). */
export const RUN = {
  request_interrupt_window: 0,
  immediate_exit: 1,
  exit_reason: 8,
  if_flag: 13,
  // The exit-specific union starts at 32.
  io_direction: 32,
  io_size: 33,
  io_port: 34,
  io_count: 36,
  io_data_offset: 40,
  mmio_phys_addr: 32,
  mmio_data: 40,
  mmio_len: 48,
  mmio_is_write: 52,
  fail_entry_hardware_reason: 32,
  fail_entry_cpu: 40,
  internal_suberror: 32,
  internal_ndata: 36,
  internal_data: 40,
  system_event_type: 32,
  system_event_ndata: 36,
  system_event_data: 40,
} as const;

/** struct kvm_regs: 18 u64 in this order. */
export const REGS_ORDER = [
  'rax', 'rbx', 'rcx', 'rdx', 'rsi', 'rdi', 'rsp', 'rbp',
  'r8', 'r9', 'r10', 'r11', 'r12', 'r13', 'r14', 'r15',
  'rip', 'rflags',
] as const;
export type RegisterName = (typeof REGS_ORDER)[number];

/** struct kvm_sregs offsets. Segments are 24 bytes, descriptor tables 16. */
export const SREGS = {
  cs: 0,
  ds: 24,
  es: 48,
  fs: 72,
  gs: 96,
  ss: 120,
  tr: 144,
  ldt: 168,
  gdt: 192,
  idt: 208,
  cr0: 224,
  cr2: 232,
  cr3: 240,
  cr4: 248,
  cr8: 256,
  efer: 264,
  apic_base: 272,
  interrupt_bitmap: 280,
} as const;

/** struct kvm_segment field offsets. */
export const SEGMENT = {
  base: 0,
  limit: 8,
  selector: 12,
  type: 14,
  present: 15,
  dpl: 16,
  db: 17,
  s: 18,
  l: 19,
  g: 20,
  avl: 21,
} as const;

/** struct kvm_cpuid_entry2 field offsets. */
export const CPUID_ENTRY = {
  function: 0,
  index: 4,
  flags: 8,
  eax: 12,
  ebx: 16,
  ecx: 20,
  edx: 24,
} as const;
export const KVM_CPUID_FLAG_SIGNIFCANT_INDEX = 1;

/** struct kvm_vcpu_events offsets used by exception injection. */
export const VCPU_EVENTS = {
  exception_injected: 0,
  exception_nr: 1,
  exception_has_error_code: 2,
  exception_pending: 3,
  exception_error_code: 4,
  flags: 20,
  exception_has_payload: 55,
} as const;
