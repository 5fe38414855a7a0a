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
  | { readonly kind: 'skip'; readonly length: 1 }
  /**
   * Run the instruction again: the bytes the emulator failed on are no longer in memory. Another
   * vCPU was rewriting that code (Linux's text_poke_bp puts an int3 over an instruction, then the
   * new one), and the new instruction is what a real CPU would now execute.
   */
  | { readonly kind: 'retry'; readonly length: 0 };

/** Consecutive retries at one RIP before its failure counts as real (the code cannot change for ever). */
export const MAX_RETRIES_AT_ONE_RIP = 16;

/**
 * What to do about an emulation failure, or undefined: a real crash. `current` are the bytes at
 * RIP now; `seenByKvm` those the emulator failed on, when KVM reports them.
 */
export function quirkForInstruction(current: Uint8Array | undefined, seenByKvm?: Uint8Array): QuirkAction | undefined {
  if (!current || current.length === 0) return undefined;
  if (seenByKvm && seenByKvm.length > 0 && !startsWith(current, seenByKvm.subarray(0, Math.min(seenByKvm.length, current.length)))) {
    return { kind: 'retry', length: 0 };
  }
  if (current[0] === OPCODE_INT3) return { kind: 'inject-breakpoint', length: 1 };
  if (current[0] === OPCODE_FWAIT) return { kind: 'skip', length: 1 };
  return undefined;
}

function startsWith(bytes: Uint8Array, prefix: Uint8Array): boolean {
  return prefix.every((b, i) => bytes[i] === b);
}

/** The vCPU operations a quirk needs (implemented by Vcpu). */
export interface QuirkTarget {
  advanceRip(bytes: number): void;
  injectException(vector: number): void;
}

/** One vCPU's recovery from emulation failures; counts retries so a real failure still ends the run. */
export class EmulationFailureRecovery {
  private retryRip: bigint | undefined;
  private retries = 0;

  constructor(private readonly target: QuirkTarget) {}

  /** Applies the quirk; true when the guest can go on. */
  recover(rip: bigint, current: Uint8Array | undefined, seenByKvm?: Uint8Array): boolean {
    let action = quirkForInstruction(current, seenByKvm);
    if (action?.kind === 'retry') {
      this.retries = this.retryRip === rip ? this.retries + 1 : 1;
      this.retryRip = rip;
      if (this.retries > MAX_RETRIES_AT_ONE_RIP) action = quirkForInstruction(current);
    } else {
      this.retryRip = undefined;
    }
    if (!action) return false;
    if (action.length > 0) this.target.advanceRip(action.length);
    if (action.kind === 'inject-breakpoint') this.target.injectException(BP_VECTOR);
    return true;
  }
}
