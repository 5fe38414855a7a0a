/**
 * What the main thread and a vCPU thread say to each other: the worker's
 * start data, its messages, and the shared control words.
 */
import type { CpuEntryState } from './cpu-state.js';
import type { DeviceSpec } from './device.js';
import type { VmExit } from '../base/exit-status.js';
import type { RegionDescriptor } from './guest-memory.js';

export interface VcpuWorkerData {
  readonly index: number;
  /** Int32Array slots: see CONTROL_*. */
  readonly control: SharedArrayBuffer;
}

/**
 * Sent when the VM starts. Workers are spawned first thing when a VM is
 * created, so thread and module start-up overlap VM creation and kernel
 * loading; everything that depends on those arrives here.
 */
export interface VcpuStart {
  readonly vcpuFd: number;
  readonly vmFd: number;
  readonly runAddress: number;
  readonly runSize: number;
  readonly regions: readonly RegionDescriptor[];
  readonly devices: readonly DeviceSpec[];
  readonly cpuid: Uint8Array;
  readonly entry?: CpuEntryState;
  /** Finish int3/fwait for a nested PVM host (src/vmm/host-quirks.ts). */
  readonly hostQuirks: boolean;
}

export type VcpuMessage =
  | { readonly type: 'ready'; readonly index: number; readonly tid: number; readonly kickSignal: number }
  | { readonly type: 'running'; readonly index: number; readonly at: number }
  | { readonly type: 'first-exit'; readonly index: number; readonly at: number }
  | { readonly type: 'exit'; readonly index: number; readonly exit: VmExit }
  | { readonly type: 'parked'; readonly index: number; readonly parked: boolean }
  | { readonly type: 'stopped'; readonly index: number };

/** control[CONTROL_STOP] != 0 asks every vCPU to leave its loop. */
export const CONTROL_STOP = 0;

