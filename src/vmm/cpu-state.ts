/**
 * The register state a boot protocol hands the first vCPU. src/boot computes it
 * (no KVM involved, so it is unit-tested); src/vmm applies it with
 * KVM_SET_REGS / KVM_SET_SREGS on top of the vCPU's reset state.
 */

/** A segment register as KVM describes it (struct kvm_segment). */
export interface SegmentState {
  readonly base: number;
  readonly limit: number;
  readonly selector: number;
  /** Descriptor type nibble (e.g. 0xb execute/read accessed code, 0x3 read/write accessed data). */
  readonly type: number;
  readonly present: 0 | 1;
  readonly dpl: number;
  /** Default operation size: 1 for 32-bit segments. */
  readonly db: 0 | 1;
  /** 1 for code/data segments, 0 for system segments (TSS, LDT). */
  readonly s: 0 | 1;
  /** 64-bit code segment. */
  readonly l: 0 | 1;
  /** Limit in 4 KiB units. */
  readonly g: 0 | 1;
  readonly avl: 0 | 1;
}

export interface DescriptorTable {
  readonly base: number;
  readonly limit: number;
}

export interface CpuEntryState {
  readonly rip: number;
  readonly rsp: number;
  readonly rflags: number;
  /** Linux 64-bit boot protocol: boot_params address. */
  readonly rsi: number;
  /** PVH: hvm_start_info address. */
  readonly rbx: number;
  readonly cr0: number;
  readonly cr3: number;
  readonly cr4: number;
  readonly efer: number;
  readonly cs: SegmentState;
  /** Used for ds, es, fs, gs and ss. */
  readonly data: SegmentState;
  readonly tr: SegmentState;
  readonly gdt: DescriptorTable;
  readonly idt: DescriptorTable;
}

/** How the kernel was entered, for logs and tests. */
export type BootProtocol = 'pvh' | 'linux-bzimage' | 'linux-elf64';
