/**
 * A PCI function as the vCPU threads see it: its configuration space and
 * what happens on accesses to its BARs. Like every bus device it is built in
 * each vCPU thread from plain data; its state is in shared memory. Each module
 * that implements a kind of function declares it once, as a typed handle
 * (definePciFunction), and the PCI root loads it back by the module URL and
 * export name the handle carries.
 */
import type { DeviceContext } from '../../vmm/device.js';
import { kindRef, loadKind, type Kind, type KindRef } from '../../vmm/module-kind.js';
import type { PciConfigSpace } from './pci-config.js';

export interface PciFunctionHandler {
  /** Dynamic configuration fields; return false to read the stored bytes. */
  readConfig?(offset: number, data: Uint8Array): boolean;
  /** After a guest write changed configuration bytes. */
  configWritten?(offset: number, length: number): void;
  barRead(bar: number, offset: number, data: Uint8Array): void;
  barWrite(bar: number, offset: number, data: Uint8Array): void;
}

/**
 * The one typed handle of a PCI function module (definePciFunction): where it is exported and
 * how a vCPU thread builds the function's handler from its options and configuration space.
 */
export interface PciFunctionKind<Options> extends Kind<'PCI function'> {
  create(options: Options, config: PciConfigSpace, context: DeviceContext): PciFunctionHandler;
}

/**
 * Declares a PCI function module's kind, once, as `export const <exportName> =
 * definePciFunction({ module: import.meta.url, exportName: '<exportName>', create })`
 * (test/run-time-modules.test.ts checks that importing `module` gives this very object under
 * `exportName`).
 */
export function definePciFunction<Options>(definition: Omit<PciFunctionKind<Options>, 'family'>): PciFunctionKind<Options> {
  return {
    family: 'PCI function',
    module: definition.module,
    exportName: definition.exportName,
    create: (options, config, context) => definition.create(options, config, context),
  };
}

/** Where a function sits on bus 0 and what its configuration space and BARs are. */
export interface PciFunctionPlacement {
  /** Device number on bus 0 (function 0). */
  readonly slot: number;
  readonly config: SharedArrayBuffer;
  /** Size of each memory BAR (0 = unused), by BAR index. */
  readonly barSizes: readonly number[];
}

/** What builds a function's handler in a vCPU thread: plain data, crossing to it by structured clone. */
export interface PciFunctionSpec {
  readonly kind: KindRef;
  /** The options `kind` was given by pciFunction (typed against it there). */
  readonly options: unknown;
}

export interface PciFunctionDescriptor extends PciFunctionPlacement {
  /** Absent for a function without BARs or dynamic configuration (the host bridge). */
  readonly handler?: PciFunctionSpec;
}

/** The way to a descriptor with a handler: `options` are checked against `kind` here, at compile time. */
export function pciFunction<Options>(kind: PciFunctionKind<Options>, placement: PciFunctionPlacement, options: Options): PciFunctionDescriptor {
  return { ...placement, handler: { kind: kindRef(kind), options } };
}

/** The kind `ref` names, from its module (its export must be the PCI function kind defined with that module and name). */
export function loadPciFunctionKind(ref: KindRef): Promise<PciFunctionKind<unknown>> {
  return loadKind<PciFunctionKind<unknown>>(ref, 'PCI function', ['create']);
}

/**
 * Builds a function's handler in a vCPU thread: the one place where options that arrived
 * through structured clone as `unknown` are taken as the kind's own (pciFunction typed them
 * against this same kind on the main thread).
 */
export async function createPciFunction(spec: PciFunctionSpec, config: PciConfigSpace, context: DeviceContext): Promise<PciFunctionHandler> {
  const kind = await loadPciFunctionKind(spec.kind);
  return kind.create(spec.options, config, context);
}
