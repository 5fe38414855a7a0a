/**
 * vCPU state at kernel entry for the two protocols. Control register bits are
 * spelled out by name so the values can be checked against the SDM.
 */

import type { CpuEntryState, DescriptorTable } from '../vmm/cpu-state.js';
import { CODE32_SEGMENT, CODE64_SEGMENT, DATA_SEGMENT, TSS_SEGMENT } from './gdt.js';
import { BOOT_STACK_TOP } from './layout.js';

export const X86_CR0_PE = 0x1;
/** Extension type: hard-wired to 1 on anything since the 486; set so KVM's value matches hardware. */
export const X86_CR0_ET = 0x10;
export const X86_CR0_PG = 0x8000_0000;
export const X86_CR4_PAE = 0x20;
export const EFER_LME = 0x100;
export const EFER_LMA = 0x400;
/** Bit 1 of RFLAGS is reserved and always reads as 1; IF stays clear. */
export const RFLAGS_RESERVED = 0x2;

/** An empty IDT: any exception before the kernel installs its own is fatal anyway. */
const NO_IDT: DescriptorTable = { base: 0, limit: 0 };

/** Linux 64-bit boot protocol: long mode, identity paging, %rsi = boot_params. */
export function linux64EntryState(entry: number, zeroPage: number, pml4: number, gdt: DescriptorTable): CpuEntryState {
  return {
    rip: entry,
    rsp: BOOT_STACK_TOP,
    rflags: RFLAGS_RESERVED,
    rsi: zeroPage,
    rbx: 0,
    cr0: (X86_CR0_PE | X86_CR0_ET | X86_CR0_PG) >>> 0, // >>> 0: bit 31 would make it negative
    cr3: pml4,
    cr4: X86_CR4_PAE,
    efer: EFER_LME | EFER_LMA,
    cs: CODE64_SEGMENT,
    data: DATA_SEGMENT,
    tr: TSS_SEGMENT,
    gdt,
    idt: NO_IDT,
  };
}

/** PVH: 32-bit protected mode, paging off, CR4 clear, %ebx = hvm_start_info. */
export function pvhEntryState(entry: number, startInfo: number, gdt: DescriptorTable): CpuEntryState {
  return {
    rip: entry,
    rsp: BOOT_STACK_TOP,
    rflags: RFLAGS_RESERVED,
    rsi: 0,
    rbx: startInfo,
    cr0: X86_CR0_PE | X86_CR0_ET,
    cr3: 0,
    cr4: 0,
    efer: 0,
    cs: CODE32_SEGMENT,
    data: DATA_SEGMENT,
    tr: TSS_SEGMENT,
    gdt,
    idt: NO_IDT,
  };
}
