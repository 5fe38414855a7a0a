/**
 * vCPU ioctls: registers, special registers, CPUID, LAPIC and the run page.
 * A Vcpu object lives in the worker thread that calls KVM_RUN on it.
 */
import type { CpuEntryState, SegmentState } from './cpu-state.js';
import type { GuestMemory } from './guest-memory.js';
import * as abi from './kvm-abi.js';
import { KvmError } from './kvm.js';
import { HostCallError } from '../sys/ffi.js';
import { ioctlBuffer } from '../sys/ioctl.js';
import { view } from '../sys/memory.js';

const KVM_GET_LAPIC = 0x8400ae8e;
const KVM_SET_LAPIC = 0x4400ae8f;
const SIZEOF_KVM_LAPIC_STATE = 1024;
const APIC_LVT_LINT0 = 0x350;
const APIC_LVT_LINT1 = 0x360;
const APIC_DELIVERY_MODE_MASK = 0x700;
const APIC_MODE_EXTINT = 0x700;
const APIC_MODE_NMI = 0x400;
const RFLAGS_IF = 0x200n;

function vcpuCall<T>(fn: () => T): T {
  try {
    return fn();
  } catch (error) {
    if (error instanceof HostCallError) throw new KvmError('ioctl', error.message, { cause: error });
    throw error;
  }
}

export class Vcpu {
  readonly run: Uint8Array;
  readonly runView: DataView;

  constructor(
    readonly index: number,
    readonly fd: number,
    runAddress: number,
    runSize: number,
  ) {
    const buffer = view(runAddress, runSize);
    this.run = new Uint8Array(buffer);
    this.runView = new DataView(buffer);
  }

  private ioctl(request: number, name: string, buffer: Uint8Array): void {
    vcpuCall(() => ioctlBuffer(this.fd, request, name, buffer));
  }

  setCpuid(kvmCpuid2: Uint8Array): void {
    this.ioctl(abi.KVM_SET_CPUID2, 'KVM_SET_CPUID2', kvmCpuid2);
  }

  getRegs(): Record<abi.RegisterName, bigint> {
    const buffer = new Uint8Array(abi.SIZEOF_KVM_REGS);
    this.ioctl(abi.KVM_GET_REGS, 'KVM_GET_REGS', buffer);
    const v = new DataView(buffer.buffer);
    const regs = {} as Record<abi.RegisterName, bigint>;
    abi.REGS_ORDER.forEach((name, i) => (regs[name] = v.getBigUint64(i * 8, true)));
    return regs;
  }

  setRegs(regs: Record<abi.RegisterName, bigint>): void {
    const buffer = new Uint8Array(abi.SIZEOF_KVM_REGS);
    const v = new DataView(buffer.buffer);
    abi.REGS_ORDER.forEach((name, i) => v.setBigUint64(i * 8, regs[name], true));
    this.ioctl(abi.KVM_SET_REGS, 'KVM_SET_REGS', buffer);
  }

  getSregs(): Uint8Array {
    const buffer = new Uint8Array(abi.SIZEOF_KVM_SREGS);
    this.ioctl(abi.KVM_GET_SREGS, 'KVM_GET_SREGS', buffer);
    return buffer;
  }

  setSregs(buffer: Uint8Array): void {
    this.ioctl(abi.KVM_SET_SREGS, 'KVM_SET_SREGS', buffer);
  }

  /** Routes the 8259's output to LINT0 (ExtINT) and NMI to LINT1, as a PC's firmware does. */
  setupLapic(): void {
    const buffer = new Uint8Array(SIZEOF_KVM_LAPIC_STATE);
    this.ioctl(KVM_GET_LAPIC, 'KVM_GET_LAPIC', buffer);
    const v = new DataView(buffer.buffer);
    const lint0 = v.getUint32(APIC_LVT_LINT0, true);
    v.setUint32(APIC_LVT_LINT0, (lint0 & ~APIC_DELIVERY_MODE_MASK) | APIC_MODE_EXTINT, true);
    const lint1 = v.getUint32(APIC_LVT_LINT1, true);
    v.setUint32(APIC_LVT_LINT1, (lint1 & ~APIC_DELIVERY_MODE_MASK) | APIC_MODE_NMI, true);
    this.ioctl(KVM_SET_LAPIC, 'KVM_SET_LAPIC', buffer);
  }

  /** Puts the boot vCPU in the state its boot protocol promises the kernel. */
  applyEntryState(state: CpuEntryState): void {
    const sregs = this.getSregs();
    const v = new DataView(sregs.buffer);
    const segment = (offset: number, s: SegmentState): void => {
      v.setBigUint64(offset + abi.SEGMENT.base, BigInt(s.base), true);
      v.setUint32(offset + abi.SEGMENT.limit, s.limit >>> 0, true);
      v.setUint16(offset + abi.SEGMENT.selector, s.selector, true);
      v.setUint8(offset + abi.SEGMENT.type, s.type);
      v.setUint8(offset + abi.SEGMENT.present, s.present);
      v.setUint8(offset + abi.SEGMENT.dpl, s.dpl);
      v.setUint8(offset + abi.SEGMENT.db, s.db);
      v.setUint8(offset + abi.SEGMENT.s, s.s);
      v.setUint8(offset + abi.SEGMENT.l, s.l);
      v.setUint8(offset + abi.SEGMENT.g, s.g);
      v.setUint8(offset + abi.SEGMENT.avl, s.avl);
    };
    segment(abi.SREGS.cs, state.cs);
    for (const seg of [abi.SREGS.ds, abi.SREGS.es, abi.SREGS.fs, abi.SREGS.gs, abi.SREGS.ss]) segment(seg, state.data);
    segment(abi.SREGS.tr, state.tr);
    v.setBigUint64(abi.SREGS.gdt, BigInt(state.gdt.base), true);
    v.setUint16(abi.SREGS.gdt + 8, state.gdt.limit, true);
    v.setBigUint64(abi.SREGS.idt, BigInt(state.idt.base), true);
    v.setUint16(abi.SREGS.idt + 8, state.idt.limit, true);
    v.setBigUint64(abi.SREGS.cr0, BigInt(state.cr0), true);
    v.setBigUint64(abi.SREGS.cr3, BigInt(state.cr3), true);
    v.setBigUint64(abi.SREGS.cr4, BigInt(state.cr4), true);
    v.setBigUint64(abi.SREGS.efer, BigInt(state.efer), true);
    this.setSregs(sregs);

    const regs = this.getRegs();
    for (const name of abi.REGS_ORDER) regs[name] = 0n;
    regs.rip = BigInt(state.rip);
    regs.rsp = BigInt(state.rsp);
    regs.rbp = BigInt(state.rsp);
    regs.rsi = BigInt(state.rsi);
    regs.rbx = BigInt(state.rbx);
    regs.rflags = BigInt(state.rflags);
    this.setRegs(regs);
  }

  /** Injects a hardware exception without an error code, as if raised by the instruction at RIP. */
  injectException(vector: number): void {
    const buffer = new Uint8Array(abi.SIZEOF_KVM_VCPU_EVENTS);
    this.ioctl(abi.KVM_GET_VCPU_EVENTS, 'KVM_GET_VCPU_EVENTS', buffer);
    const v = new DataView(buffer.buffer);
    v.setUint8(abi.VCPU_EVENTS.exception_injected, 1);
    v.setUint8(abi.VCPU_EVENTS.exception_nr, vector);
    v.setUint8(abi.VCPU_EVENTS.exception_has_error_code, 0);
    v.setUint8(abi.VCPU_EVENTS.exception_pending, 0);
    v.setUint32(abi.VCPU_EVENTS.exception_error_code, 0, true);
    v.setUint8(abi.VCPU_EVENTS.exception_has_payload, 0);
    // flags 0: only the exception/interrupt/NMI state is written back.
    v.setUint32(abi.VCPU_EVENTS.flags, 0, true);
    this.ioctl(abi.KVM_SET_VCPU_EVENTS, 'KVM_SET_VCPU_EVENTS', buffer);
  }

  /** Moves RIP forward past an instruction the host could not emulate. */
  advanceRip(bytes: number): void {
    const regs = this.getRegs();
    regs.rip += BigInt(bytes);
    this.setRegs(regs);
  }

  getMpState(): number {
    const buffer = new Uint8Array(abi.SIZEOF_KVM_MP_STATE);
    this.ioctl(abi.KVM_GET_MP_STATE, 'KVM_GET_MP_STATE', buffer);
    return new DataView(buffer.buffer).getUint32(0, true);
  }

  /**
   * True when this vCPU can never run again by itself: halted with
   * interrupts off, or never started (waiting for INIT/SIPI).
   */
  isParked(): boolean {
    const state = this.getMpState();
    if (state === abi.KVM_MP_STATE_UNINITIALIZED || state === abi.KVM_MP_STATE_INIT_RECEIVED) return true;
    return state === abi.KVM_MP_STATE_HALTED && (this.getRegs().rflags & RFLAGS_IF) === 0n;
  }

  /** Guest physical address of a linear address, or undefined when unmapped. */
  translate(linear: bigint): number | undefined {
    const buffer = new Uint8Array(abi.SIZEOF_KVM_TRANSLATION);
    const v = new DataView(buffer.buffer);
    v.setBigUint64(0, linear, true);
    try {
      this.ioctl(abi.KVM_TRANSLATE, 'KVM_TRANSLATE', buffer);
    } catch {
      return undefined;
    }
    return v.getUint8(16) ? Number(v.getBigUint64(8, true)) : undefined;
  }

  /** Up to 15 bytes at CS:RIP, for crash reports. */
  instructionBytes(memory: GuestMemory): Uint8Array | undefined {
    try {
      const rip = this.getRegs().rip;
      const csBase = new DataView(this.getSregs().buffer).getBigUint64(abi.SREGS.cs + abi.SEGMENT.base, true);
      const physical = this.translate((csBase + rip) & 0xffffffffffffffffn);
      if (physical === undefined) return undefined;
      for (let length = 15; length > 0; length--) {
        if (memory.contains(physical, length)) return memory.slice(physical, length).slice();
      }
    } catch {
      // Best effort only: the report still names the exit.
    }
    return undefined;
  }
}
