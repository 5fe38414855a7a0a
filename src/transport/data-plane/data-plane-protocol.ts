/** What a data-plane thread is started with (all plain data and fd numbers). */
import type { RegionDescriptor } from '../../vmm/guest-memory.js';
import type { InterruptFds } from '../virtio-interrupt.js';
import type { VirtioDeviceSpec } from '../../virtio/virtio-device.js';

export interface DataPlaneWorkerData {
  /** For logs: the device's name, with the thread's index when the device has several. */
  readonly name: string;
  /** The device this thread builds (its kind and options). */
  readonly device: VirtioDeviceSpec;
  /** The device's VirtioTransportState SharedArrayBuffer. */
  readonly state: SharedArrayBuffer;
  readonly regions: readonly RegionDescriptor[];
  /** This thread's index among the device's data-plane threads. */
  readonly thread: number;
  /** The queues this thread serves. */
  readonly queues: readonly number[];
  /** This thread's: written by the transport when the status changes (activation, reset) or to terminate. */
  readonly controlFd: number;
  /** One ioeventfd per queue of the device (this thread watches those of its queues). */
  readonly kickFds: readonly number[];
  /** Every thread watches the resample fd: any of them re-asserts the line while the ISR is set. */
  readonly interrupt: InterruptFds;
}
