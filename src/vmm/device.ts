/**
 * How devices on the PIO/MMIO buses are described and built. A device is
 * described once on the main thread (a DeviceSpec: plain data plus a
 * SharedArrayBuffer for its registers) and instantiated in every vCPU worker
 * from that spec, so an exit is served on the vCPU's own thread with no
 * cross-thread hop; state shared between vCPUs lives in the SharedArrayBuffer.
 */
import type createDebug from 'debug';
import type { BusDevice } from './bus.js';
import type { VmExit } from '../base/exit-status.js';
import type { GuestMemory } from './guest-memory.js';

export interface DeviceSpec {
  readonly name: string;
  readonly bus: 'pio' | 'mmio';
  readonly base: number;
  readonly length: number;
  /** URL of the ES module exporting the factory, and the export's name. */
  readonly module: string;
  readonly factory: string;
  /** Register state shared by every vCPU thread (and the main thread). */
  readonly shared?: SharedArrayBuffer;
  /** Structured-cloneable device options. */
  readonly options?: unknown;
}

export interface DeviceContext {
  readonly vmFd: number;
  readonly vcpuIndex: number;
  readonly memory: GuestMemory;
  /** Drives a legacy interrupt line of the in-kernel PIC/IOAPIC. */
  setIrq(irq: number, level: boolean): void;
  /** Ends the VM with this status once the current exit is served. */
  requestExit(exit: VmExit): void;
  readonly log: createDebug.Debugger;
}

/** May be async: a device can load more modules (the PCI root loads its functions). */
export type DeviceFactory = (spec: DeviceSpec, context: DeviceContext) => BusDevice | Promise<BusDevice>;
