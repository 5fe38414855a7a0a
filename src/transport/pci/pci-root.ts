/**
 * The PCI host bridge as bus devices, in every vCPU thread: configuration
 * mechanism #1 on ports 0xCF8–0xCFF, and the 32-bit MMIO window in which the
 * functions' BARs live, dispatched by the BAR addresses currently programmed
 * in their (shared) configuration spaces, so a guest may move a BAR.
 */
import type { BusDevice } from '../../vmm/bus.js';
import { dataValue, setDataValue } from '../../vmm/bus.js';
import { defineBusDevice, type DeviceContext } from '../../vmm/device.js';
import { PciConfigSpace } from './pci-config.js';
import { PCI_CONFIG_ADDRESS_ENABLE } from './pci-constants.js';
import { createPciFunction, type PciFunctionDescriptor, type PciFunctionHandler } from './pci-function.js';

export interface PciRootOptions {
  readonly functions: readonly PciFunctionDescriptor[];
  /** Shared word holding the 0xCF8 address latch. */
  readonly addressLatch: SharedArrayBuffer;
  readonly windowBase: number;
}

interface LoadedFunction {
  readonly descriptor: PciFunctionDescriptor;
  readonly config: PciConfigSpace;
  readonly handler?: PciFunctionHandler;
}

async function loadFunctions(options: PciRootOptions, context: DeviceContext): Promise<Map<number, LoadedFunction>> {
  const map = new Map<number, LoadedFunction>();
  for (const descriptor of options.functions) {
    const config = new PciConfigSpace(descriptor.config);
    const handler = descriptor.handler && (await createPciFunction(descriptor.handler, config, context));
    map.set(descriptor.slot, { descriptor, config, ...(handler ? { handler } : {}) });
  }
  return map;
}

/** Decodes a 0xCF8 latch: bus 0, function 0 only (single-function devices). */
function decode(latch: number): { slot: number; register: number } | undefined {
  if (!(latch & PCI_CONFIG_ADDRESS_ENABLE)) return undefined;
  const bus = (latch >>> 16) & 0xff;
  const slot = (latch >>> 11) & 0x1f;
  const fn = (latch >>> 8) & 0x7;
  if (bus !== 0 || fn !== 0) return undefined;
  return { slot, register: latch & 0xfc };
}

class PciConfigPorts implements BusDevice {
  private readonly latch: Int32Array;

  constructor(
    options: PciRootOptions,
    private readonly functions: Map<number, LoadedFunction>,
  ) {
    this.latch = new Int32Array(options.addressLatch);
  }

  read(offset: number, data: Uint8Array): void {
    if (offset < 4) {
      setDataValue(data, offset === 0 && data.length === 4 ? Atomics.load(this.latch, 0) >>> 0 : 0xffffffff);
      return;
    }
    const target = decode(Atomics.load(this.latch, 0));
    const fn = target && this.functions.get(target.slot);
    if (!target || !fn) {
      data.fill(0xff); // no device: all-ones, so vendor ID reads 0xffff
      return;
    }
    const register = target.register + (offset - 4);
    if (!fn.handler?.readConfig?.(register, data)) fn.config.read(register, data);
  }

  write(offset: number, data: Uint8Array): void {
    if (offset < 4) {
      if (offset === 0 && data.length === 4) Atomics.store(this.latch, 0, dataValue(data) | 0);
      return;
    }
    const target = decode(Atomics.load(this.latch, 0));
    const fn = target && this.functions.get(target.slot);
    if (!target || !fn) return;
    const register = target.register + (offset - 4);
    if (fn.config.write(register, data) || register >= 0x40) fn.handler?.configWritten?.(register, data.length);
  }
}

class PciMmioWindow implements BusDevice {
  constructor(
    private readonly options: PciRootOptions,
    private readonly functions: Map<number, LoadedFunction>,
  ) {}

  private route(offset: number, length: number): { handler: PciFunctionHandler; bar: number; at: number } | undefined {
    const address = this.options.windowBase + offset;
    for (const fn of this.functions.values()) {
      if (!fn.handler) continue;
      const sizes = fn.descriptor.barSizes;
      for (let bar = 0; bar < sizes.length; bar++) {
        const size = sizes[bar]!;
        const base = size ? fn.config.memoryBarAddress(bar) : undefined;
        if (base !== undefined && address >= base && address + length <= base + size) {
          return { handler: fn.handler, bar, at: address - base };
        }
      }
    }
    return undefined;
  }

  read(offset: number, data: Uint8Array): void {
    const r = this.route(offset, data.length);
    if (r) r.handler.barRead(r.bar, r.at, data);
    else data.fill(0xff);
  }

  write(offset: number, data: Uint8Array): void {
    const r = this.route(offset, data.length);
    if (r) r.handler.barWrite(r.bar, r.at, data);
  }
}

// Both bus devices of one vCPU thread share the loaded functions.
const loaded = new WeakMap<PciRootOptions, Promise<Map<number, LoadedFunction>>>();
function functionsFor(options: PciRootOptions, context: DeviceContext): Promise<Map<number, LoadedFunction>> {
  let p = loaded.get(options);
  if (!p) {
    p = loadFunctions(options, context);
    loaded.set(options, p);
  }
  return p;
}

export async function createPciConfigPorts(options: PciRootOptions, context: DeviceContext): Promise<BusDevice> {
  return new PciConfigPorts(options, await functionsFor(options, context));
}

export async function createPciMmioWindow(options: PciRootOptions, context: DeviceContext): Promise<BusDevice> {
  return new PciMmioWindow(options, await functionsFor(options, context));
}

/** Configuration mechanism #1 (ports 0xCF8–0xCFF). */
export const pciConfigPortsDevice = defineBusDevice<PciRootOptions>({ module: import.meta.url, exportName: 'pciConfigPortsDevice', create: createPciConfigPorts });
/** The MMIO window the functions' BARs live in. */
export const pciMmioWindowDevice = defineBusDevice<PciRootOptions>({ module: import.meta.url, exportName: 'pciMmioWindowDevice', create: createPciMmioWindow });
