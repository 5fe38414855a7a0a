/**
 * How devices on the PIO/MMIO buses are described and built. Each device
 * module exports one BusDeviceKind; a device is described once on the main
 * thread (a DeviceSpec: its placement, its kind's module URL and export name,
 * and options: plain data plus SharedArrayBuffers for its registers) and
 * instantiated in every vCPU worker from that spec, so an exit is served on
 * the vCPU's own thread with no cross-thread hop; state shared between vCPUs
 * lives in the SharedArrayBuffers.
 */
import type createDebug from 'debug';
import type { BusDevice } from './bus.js';
import type { VmExit } from '../base/exit-status.js';
import type { GuestMemory } from './guest-memory.js';
import { kindRef, loadKind, type Kind, type KindRef } from './module-kind.js';

/** Where a bus device kind is exported: the module's URL and the export's name (plain data). */
export type BusDeviceKindRef = KindRef;

/**
 * The one typed handle of a bus device module (defineBusDevice): where it is exported and how a
 * vCPU thread builds the device from its options.
 */
export interface BusDeviceKind<Options> extends Kind<'bus device'> {
  /** May be async: a device can load more modules (the PCI root loads its functions). */
  create(options: Options, context: DeviceContext): BusDevice | Promise<BusDevice>;
}

/**
 * Declares a bus device module's kind, once, as `export const <exportName> = defineBusDevice({
 * module: import.meta.url, exportName: '<exportName>', create })` (test/run-time-modules.test.ts
 * checks that importing `module` gives this very object under `exportName`).
 */
export function defineBusDevice<Options = void>(definition: Omit<BusDeviceKind<Options>, 'family'>): BusDeviceKind<Options> {
  return { family: 'bus device', module: definition.module, exportName: definition.exportName, create: (options, context) => definition.create(options, context) };
}

/** Where a device sits on the PIO or MMIO bus. */
export interface DevicePlacement {
  readonly name: string;
  readonly bus: 'pio' | 'mmio';
  readonly base: number;
  readonly length: number;
}

/** What every vCPU thread is told to build: plain data, crossing to it by structured clone. */
export interface DeviceSpec extends DevicePlacement {
  readonly kind: BusDeviceKindRef;
  /** The options `kind` was given by deviceSpec (register state shared by every thread among them). */
  readonly options: unknown;
}

/** The only way to a DeviceSpec: `options` are checked against `kind` here, at compile time. */
export function deviceSpec<Options>(kind: BusDeviceKind<Options>, placement: DevicePlacement, options: Options): DeviceSpec {
  return { ...placement, kind: kindRef(kind), options };
}

/** The kind `ref` names, from its module (its export must be the kind defined with that module and name). */
export function loadBusDeviceKind(ref: BusDeviceKindRef): Promise<BusDeviceKind<unknown>> {
  return loadKind<BusDeviceKind<unknown>>(ref, 'bus device', ['create']);
}

/**
 * Builds the device a spec names, in a vCPU thread: the one place where options that arrived
 * through structured clone as `unknown` are taken as the kind's own (deviceSpec typed them
 * against this same kind on the main thread).
 */
export async function createBusDevice(spec: DeviceSpec, context: DeviceContext): Promise<BusDevice> {
  const kind = await loadBusDeviceKind(spec.kind);
  return kind.create(spec.options, context);
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
