/**
 * Work-arounds for nested PVM hosts (module kvm_pvm), whose KVM runs guests by
 * instruction emulation and fails on a few instructions Linux executes at
 * every boot: a guest-kernel `int3` (Linux 6.1's int3 self-test, static
 * keys) and `fwait` return KVM_EXIT_INTERNAL_ERROR, and vmcall/vmmcall
 * livelock, as does `lock cmpxchg16b`. On such a host the VMM finishes those
 * instructions itself and hides the CPUID features that lead to them. On any
 * other host the layer is off and costs nothing: no CPUID change, no hook.
 */
import { existsSync } from 'node:fs';
import type { CpuFeatureEdits } from './cpuid.js';

export type HostQuirksMode = 'auto' | 'on' | 'off';

/** Where the PVM module shows itself. */
export const KVM_PVM_SYSFS = '/sys/module/kvm_pvm';

export function hostQuirksActive(mode: HostQuirksMode, probe: () => boolean = () => existsSync(KVM_PVM_SYSFS)): boolean {
  if (mode === 'on') return true;
  if (mode === 'off') return false;
  return probe();
}

/**
 * CPUID features hidden while the quirks are active: the KVM paravirt
 * features whose use ends in a hypercall (which livelocks here), and CX16
 * (the emulator fails on `lock cmpxchg16b`).
 */
export const HOST_QUIRK_CPU_EDITS: CpuFeatureEdits = {
  remove: ['kvm_pv_unhalt', 'kvm_pv_send_ipi', 'kvm_pv_sched_yield', 'cx16'],
  add: [],
};

/**
 * Kernel parameters a Linux guest needs on such a host, each found by booting Linux 6.1 here
 * without it: `noxsave` (the emulator fails on xrstor), `clearcpuid=` (instructions it does
 * not emulate, which the kernel's alternatives would patch in), `noreplace-smp` (SMP
 * alternatives patching), `tsc=reliable` (the clocksource watchdog judges the emulated TSC
 * unstable and boot stalls), `nokaslr`.
 */
export const HOST_QUIRK_LINUX_PARAMS = [
  'nokaslr',
  'noxsave',
  'noreplace-smp',
  'tsc=reliable',
  'clearcpuid=popcnt,smap,erms,fsrm,pni,ssse3,sse4_1,sse4_2,pclmulqdq,aes,sha_ni,movbe',
] as const;

/** The quirk parameters the user's command line does not already set (by name). */
export function hostQuirkLinuxParams(userCmdline: string): string[] {
  const given = new Set(userCmdline.split(/\s+/).filter(Boolean).map((word) => word.split('=')[0]));
  return HOST_QUIRK_LINUX_PARAMS.filter((param) => !given.has(param.split('=')[0]!));
}

export const OPCODE_INT3 = 0xcc;
export const OPCODE_FWAIT = 0x9b;
export const BP_VECTOR = 3;

export type QuirkAction =
  /** Skip the int3 and deliver the #BP it would have raised (its handler sees RIP after the int3). */
  | { readonly kind: 'inject-breakpoint'; readonly length: 1 }
  /** Skip the instruction: fwait only waits for pending x87 exceptions, and there are none to wait for here. */
  | { readonly kind: 'skip'; readonly length: 1 };

/** What to do about an emulation failure at these instruction bytes, or undefined: a real crash. */
export function quirkForInstruction(bytes: Uint8Array | undefined): QuirkAction | undefined {
  if (!bytes || bytes.length === 0) return undefined;
  if (bytes[0] === OPCODE_INT3) return { kind: 'inject-breakpoint', length: 1 };
  if (bytes[0] === OPCODE_FWAIT) return { kind: 'skip', length: 1 };
  return undefined;
}

/** The vCPU operations a quirk needs (implemented by Vcpu). */
export interface QuirkTarget {
  advanceRip(bytes: number): void;
  injectException(vector: number): void;
}

/** Applies the quirk for `bytes`; true when the guest can go on. */
export function recoverFromEmulationFailure(target: QuirkTarget, bytes: Uint8Array | undefined): boolean {
  const action = quirkForInstruction(bytes);
  if (!action) return false;
  target.advanceRip(action.length);
  if (action.kind === 'inject-breakpoint') target.injectException(BP_VECTOR);
  return true;
}
