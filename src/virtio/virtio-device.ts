/**
 * What a virtio device is, independent of its transport. A device object is
 * built from the same plain options on the main thread, to describe itself
 * (type, queues, features, config space) to the transport, and again in each
 * of its data-plane threads (one unless the device splits its queues among
 * several), where it is activated with the queues that thread serves. Its
 * constructor therefore only computes: any host resource (a file,
 * a TAP) is opened by the main thread and passed in the options as an fd.
 */
import type createDebug from 'debug';
import type { GuestMemory } from '../vmm/guest-memory.js';
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

export interface VirtioDevice {
  readonly deviceType: number;
  readonly queueMaxSizes: readonly number[];
  /** Device-specific feature bits offered; the virtio core adds VERSION_1, INDIRECT_DESC and EVENT_IDX. */
  readonly features: bigint;
  /** The device configuration space as the driver first reads it. */
  readonly configSpace: Uint8Array;
  /** [offset, length] ranges of the configuration space the driver may write. */
  readonly writableConfig: ReadonlyArray<readonly [number, number]>;
  /**
   * How the queues are split among data-plane threads: one list of queue indexes per thread.
   * Without it one thread serves every queue.
   */
  readonly dataPlaneQueues?: ReadonlyArray<readonly number[]>;
  activate(context: ActivationContext): void;
  /** The driver notified this queue (its kick eventfd fired). */
  queueNotified(queueIndex: number): void;
  /** The driver wrote the configuration space; `config` is the live shared copy. */
  configWritten?(config: Uint8Array, offset: number, length: number): void;
  /** Back to the state before activation; called on the data-plane thread. */
  reset(): void;
}

/** Names the ES module and export that build a device from options. */
export interface VirtioDeviceModule {
  readonly module: string;
  readonly factory: string;
  readonly options: unknown;
}

/** Which of a device's data-plane threads an instance runs in, and the queues that thread serves. */
export interface DataPlaneShare {
  /** 0 … threads − 1: also the lane of the device's counters this instance writes. */
  readonly thread: number;
  readonly queues: readonly number[];
}

export type VirtioDeviceFactory = (options: unknown, share: DataPlaneShare) => VirtioDevice;

/** The queue split of `device`'s data-plane threads (one thread for all queues unless it says otherwise). */
export function dataPlaneQueueGroups(device: Pick<VirtioDevice, 'queueMaxSizes' | 'dataPlaneQueues'>): ReadonlyArray<readonly number[]> {
  return device.dataPlaneQueues ?? [device.queueMaxSizes.map((_, q) => q)];
}
