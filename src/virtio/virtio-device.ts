/**
 * What a virtio device is, independent of its transport. Each device module
 * declares one typed handle, its `VirtioDeviceKind` (defineVirtioDevice):
 * `describe(options)` gives, as plain data, what the device offers (type,
 * queues, features, config space), from which the main thread builds its
 * transport; `create(options, share)` builds the device in each of its
 * data-plane threads (one unless it splits its queues among several), which
 * load the kind by module URL and export name. A device's options are
 * therefore plain data: any host resource (a file, a TAP) is opened by the
 * main thread and passed in them as an fd.
 */
import type createDebug from 'debug';
import type { GuestMemory } from '../vmm/guest-memory.js';
import { kindRef, loadKind, type Kind, type KindRef } from '../vmm/module-kind.js';
import type { SplitQueue } from './queue.js';

export interface VirtioInterrupt {
  /** The device put buffers on this queue's used ring. */
  signalUsed(queueIndex: number): void;
  signalConfigChange(): void;
}

export interface DataPlaneHost {
  /** Calls onReadable on the data-plane thread whenever fd becomes readable (level-triggered). */
  watch(fd: number, onReadable: () => void): void;
  unwatch(fd: number): void;
  /** A fatal guest error: sets DEVICE_NEEDS_RESET and stops serving until the driver resets. */
  failDevice(reason: string): void;
  /**
   * Work is left on this queue after a wake-up's budget: call queueNotified for it again once the
   * loop has looked at its other events (a reset among them).
   */
  resume(queueIndex: number): void;
  readonly log: createDebug.Debugger;
}

export interface ActivationContext {
  readonly memory: GuestMemory;
  /** One entry per queue; undefined for queues the driver did not enable. */
  readonly queues: ReadonlyArray<SplitQueue | undefined>;
  /** The features the driver accepted. */
  readonly features: bigint;
  readonly interrupt: VirtioInterrupt;
  readonly host: DataPlaneHost;
  /**
   * The reset epoch of this session (0 when absent): state a device keeps across its threads
   * for one driver session only is tagged with it, so a device reset ends it.
   */
  readonly resetEpoch?: number;
}

/**
 * What a device offers its driver, computed from its options alone on the main thread, where the
 * transport is built from it: plain, structured-cloneable data (rust-vmm's VirtioConfig).
 */
export interface VirtioDeviceDescription {
  readonly deviceType: number;
  /** The largest size of each queue, one entry per queue. */
  readonly queueMaxSizes: readonly number[];
  /** Device-specific feature bits offered; the transport adds VERSION_1, INDIRECT_DESC and EVENT_IDX. */
  readonly features: bigint;
  /**
   * The device configuration space as the driver first reads it. Every field a device offers is
   * read-only to the driver, so the transports ignore config writes (virtio 1.2 §2.5); a device
   * that needs a writable field (virtio-blk's writeback with CONFIG_WCE) must add that path.
   */
  readonly configSpace: Uint8Array;
  /** How the queues are split among data-plane threads: one list of queue indexes per thread. */
  readonly dataPlaneQueues: ReadonlyArray<readonly number[]>;
}

/** A device's behaviour in its data-plane thread; what it offers is its kind's `describe`. */
export interface VirtioDevice {
  activate(context: ActivationContext): void;
  /** The driver notified this queue (its kick eventfd fired). */
  queueNotified(queueIndex: number): void;
  /** Back to the state before activation; called on the data-plane thread. */
  reset(): void;
}

/** Which of a device's data-plane threads an instance runs in, and the queues that thread serves. */
export interface DataPlaneShare {
  /** 0 … threads − 1: also the lane of the device's counters this instance writes. */
  readonly thread: number;
  readonly queues: readonly number[];
}

/** Where a device kind is exported: the module's URL and the export's name (plain data). */
export type VirtioDeviceKindRef = KindRef;

/**
 * The one typed handle of a virtio device module (see defineVirtioDevice): where it is exported,
 * what a device with these options offers, and how a data-plane thread builds one.
 */
export interface VirtioDeviceKind<Options> extends Kind<'virtio device'> {
  /** Pure and cheap: the main thread describes a device without building it. */
  describe(options: Options): VirtioDeviceDescription;
  create(options: Options, share: DataPlaneShare): VirtioDevice;
}

export interface VirtioDeviceDefinition<Options> {
  /** `import.meta.url` of the module that exports the kind under `exportName`. */
  readonly module: string;
  readonly exportName: string;
  /** Without `dataPlaneQueues`, one thread serves every queue. */
  describe(options: Options): Omit<VirtioDeviceDescription, 'dataPlaneQueues'> & Partial<Pick<VirtioDeviceDescription, 'dataPlaneQueues'>>;
  create(options: Options, share: DataPlaneShare): VirtioDevice;
}

/**
 * Declares a device module's kind, once, as `export const <exportName> = defineVirtioDevice({ module:
 * import.meta.url, exportName: '<exportName>', … })` (test/run-time-modules.test.ts checks that
 * importing `module` gives this very object under `exportName`).
 */
export function defineVirtioDevice<Options>(definition: VirtioDeviceDefinition<Options>): VirtioDeviceKind<Options> {
  return {
    family: 'virtio device',
    module: definition.module,
    exportName: definition.exportName,
    describe(options) {
      const { deviceType, queueMaxSizes, features, configSpace, dataPlaneQueues } = definition.describe(options);
      return { deviceType, queueMaxSizes, features, configSpace, dataPlaneQueues: dataPlaneQueues ?? [queueMaxSizes.map((_, q) => q)] };
    },
    create: (options, share) => definition.create(options, share),
  };
}

/** What a data-plane thread is told to build: plain data, crossing to it by structured clone. */
export interface VirtioDeviceSpec {
  readonly kind: VirtioDeviceKindRef;
  /** The options `kind` was configured with (configureVirtioDevice typed them). */
  readonly options: unknown;
}

/** A device ready to be put on a transport: what it offers, and what its data-plane threads build. */
export interface ConfiguredVirtioDevice {
  readonly description: VirtioDeviceDescription;
  readonly spec: VirtioDeviceSpec;
}

/** The only way to a VirtioDeviceSpec: `options` are checked against `kind` here, at compile time. */
export function configureVirtioDevice<Options>(kind: VirtioDeviceKind<Options>, options: Options): ConfiguredVirtioDevice {
  return { description: kind.describe(options), spec: { kind: kindRef(kind), options } };
}

/** The kind `ref` names, from its module (its export must be the kind defined with that module and name). */
export function loadVirtioDeviceKind(ref: VirtioDeviceKindRef): Promise<VirtioDeviceKind<unknown>> {
  return loadKind<VirtioDeviceKind<unknown>>(ref, 'virtio device', ['describe', 'create']);
}

/**
 * Builds the device a spec names, in a data-plane thread. The options arrive here as `unknown`
 * through structured clone; they were typed against this same kind by configureVirtioDevice on the
 * sending side (clone keeps plain data, fd numbers and SharedArrayBuffers as they were), so this
 * is the one place that takes them back as the kind's own.
 */
export async function createVirtioDevice(spec: VirtioDeviceSpec, share: DataPlaneShare): Promise<VirtioDevice> {
  const kind = await loadVirtioDeviceKind(spec.kind);
  return kind.create(spec.options, share);
}
