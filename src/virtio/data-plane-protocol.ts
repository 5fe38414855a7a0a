/** What a data-plane thread is started with (all plain data and fd numbers). */
import type { RegionDescriptor } from '../vmm/guest-memory.js';
import type { InterruptFds } from '../transport/virtio-interrupt.js';
import type { VirtioDeviceModule } from './virtio-device.js';

export interface DataPlaneWorkerData {
  readonly name: string;
  readonly device: VirtioDeviceModule;
  /** The device's VirtioTransportState SharedArrayBuffer. */
  readonly state: SharedArrayBuffer;
  readonly regions: readonly RegionDescriptor[];
  /** Written by the transport when the status changes (activation, reset) or to terminate. */
  readonly controlFd: number;
  /** One ioeventfd per queue. */
  readonly kickFds: readonly number[];
  readonly interrupt: InterruptFds;
}
