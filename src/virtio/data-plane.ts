/**
 * The main thread's handle on a device's data-plane thread: start it with
 * its fds and shared state, and ask it to finish when the VM ends.
 */
import { Worker } from 'node:worker_threads';
import { signalEventfd } from '../vmm/libc.js';
import type { Machine } from '../vmm/machine.js';
import { VirtioTransportState } from '../transport/virtio-transport-state.js';
import type { DataPlaneWorkerData } from './data-plane-protocol.js';

export class DataPlaneThread {
  private readonly worker: Worker;
  readonly exited: Promise<void>;

  constructor(readonly data: DataPlaneWorkerData) {
    this.worker = new Worker(new URL('./data-plane-worker.js', import.meta.url), { workerData: data });
    this.exited = new Promise((resolve) => this.worker.on('exit', () => resolve()));
    this.worker.on('error', (error) => process.stderr.write(`kvm: ${data.name} data plane failed: ${error.message}\n`));
  }

  /** Ends the thread: it is asleep in epoll_wait, so it is told through its control eventfd. */
  async stop(): Promise<void> {
    new VirtioTransportState(this.data.state).terminate();
    signalEventfd(this.data.controlFd);
    const timer = setTimeout(() => void this.worker.terminate(), 2000);
    await this.exited;
    clearTimeout(timer);
  }
}

/** Starts a device's data-plane thread over the machine's RAM; it ends when the machine closes. */
export function startDataPlane(machine: Machine, data: Omit<DataPlaneWorkerData, 'regions'>): DataPlaneThread {
  const thread = new DataPlaneThread({ ...data, regions: machine.regions });
  machine.onClose(() => thread.stop());
  return thread;
}
