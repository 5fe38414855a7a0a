/**
 * The main thread's handle on a device's data-plane threads (one, or one per
 * group of queues when the device splits them): start them with their fds and
 * shared state, and ask them to finish when the VM ends.
 */
import { Worker } from 'node:worker_threads';
import { signalEventfd } from '../../sys/eventfd.js';
import type { Machine } from '../../vmm/machine.js';
import type { RegionDescriptor } from '../../vmm/guest-memory.js';
import type { InterruptFds } from '../virtio-interrupt.js';
import { VirtioTransportState } from '../virtio-transport-state.js';
import type { DataPlaneWorkerData } from './data-plane-protocol.js';
import type { VirtioDeviceSpec } from '../../virtio/virtio-device.js';

export interface DataPlaneSpec {
  readonly name: string;
  readonly device: VirtioDeviceSpec;
  readonly state: SharedArrayBuffer;
  readonly regions: readonly RegionDescriptor[];
  /** The queues of each thread (VirtioDeviceDescription.dataPlaneQueues). */
  readonly queueGroups: ReadonlyArray<readonly number[]>;
  /** One control eventfd per thread, the same the transport signals. */
  readonly controlFds: readonly number[];
  readonly kickFds: readonly number[];
  readonly interrupt: InterruptFds;
}

/** How long a thread told to end may take before it counts as stuck in JavaScript. */
const STUCK_THREAD_MS = 2000;

class DataPlaneThread {
  private readonly worker: Worker;
  private readonly state: VirtioTransportState;
  readonly exited: Promise<void>;

  constructor(readonly data: DataPlaneWorkerData) {
    this.worker = new Worker(new URL('./data-plane-worker.js', import.meta.url), { workerData: data });
    this.state = new VirtioTransportState(data.state);
    this.exited = new Promise((resolve) =>
      this.worker.on('exit', () => {
        // A thread that died without detaching must not make every later reset wait for it.
        this.state.setDataPlaneAttached(data.thread, false);
        resolve();
      }),
    );
    this.worker.on('error', (error) => process.stderr.write(`kvm: ${data.name} data plane failed: ${error.message}\n`));
  }

  /** Ends the thread: it is asleep in epoll_wait, so it is told through its control eventfd. */
  async stop(): Promise<void> {
    signalEventfd(this.data.controlFd);
    const timer = setTimeout(() => {
      // Only for a thread stuck in JavaScript (running, and deaf to the end). Not one still loading:
      // terminating a worker inside koffi's native load aborts the process, and it ends by itself
      // once loaded. Not one that saw the end: it is waiting for I/O in flight, which must finish
      // before the image is closed. Nor can terminate() end a thread blocked in a system call (or
      // process.exit, which joins it): that always ends by the eventfd.
      const { thread } = this.data;
      if (this.state.dataPlaneAttached(thread) && !this.state.dataPlaneEnding(thread)) void this.worker.terminate();
    }, STUCK_THREAD_MS);
    await this.exited;
    clearTimeout(timer);
  }
}

export class DataPlane {
  private readonly threads: DataPlaneThread[];
  /** Resolves when every thread has ended (no I/O of the device is in flight any more). */
  readonly exited: Promise<void>;

  constructor(readonly spec: DataPlaneSpec) {
    const { queueGroups, controlFds, interrupt } = spec;
    if (queueGroups.length !== controlFds.length || queueGroups.length === 0) {
      throw new RangeError(`${spec.name}: ${queueGroups.length} queue groups for ${controlFds.length} control eventfds`);
    }
    const several = queueGroups.length > 1;
    this.threads = queueGroups.map(
      (queues, thread) =>
        new DataPlaneThread({
          name: several ? `${spec.name}/${thread}` : spec.name,
          device: spec.device,
          state: spec.state,
          regions: spec.regions,
          thread,
          queues,
          controlFd: controlFds[thread]!,
          kickFds: spec.kickFds,
          interrupt,
        }),
    );
    this.exited = Promise.all(this.threads.map((t) => t.exited)).then(() => undefined);
  }

  get threadCount(): number {
    return this.threads.length;
  }

  async stop(): Promise<void> {
    new VirtioTransportState(this.spec.state).terminate();
    await Promise.all(this.threads.map((t) => t.stop()));
  }
}

/** Starts a device's data-plane threads over the machine's RAM; they end when the machine closes. */
export function startDataPlane(machine: Machine, spec: Omit<DataPlaneSpec, 'regions'>): DataPlane {
  const dataPlane = new DataPlane({ ...spec, regions: machine.regions });
  machine.onClose(() => dataPlane.stop());
  return dataPlane;
}
