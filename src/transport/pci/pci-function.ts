/**
 * A PCI function as the vCPU threads see it: its configuration space and
 * what happens on accesses to its BARs. Like every bus device it is built in
 * each vCPU thread from plain data; its state is in shared memory.
 */
import type { DeviceContext } from '../../vmm/device.js';
import type { PciConfigSpace } from './pci-config.js';

export interface PciFunctionDescriptor {
  /** Device number on bus 0 (function 0). */
  readonly slot: number;
  readonly config: SharedArrayBuffer;
  /** Size of each memory BAR (0 = unused), by BAR index. */
  readonly barSizes: readonly number[];
  /** Module and export building the handler; absent for functions without BARs (the host bridge). */
  readonly module?: string;
  readonly factory?: string;
  readonly options?: unknown;
}

export interface PciFunctionHandler {
  /** Dynamic configuration fields; return false to read the stored bytes. */
  readConfig?(offset: number, data: Uint8Array): boolean;
  /** After a guest write changed configuration bytes. */
  configWritten?(offset: number, length: number): void;
  barRead(bar: number, offset: number, data: Uint8Array): void;
  barWrite(bar: number, offset: number, data: Uint8Array): void;
}

export type PciFunctionFactory = (
  descriptor: PciFunctionDescriptor,
  config: PciConfigSpace,
  context: DeviceContext,
) => PciFunctionHandler;
