/**
 * virtio-mmio version 2 (virtio 1.2 §4.2.2): the register file, served in
 * vCPU threads over the shared transport state. QueueNotify writes normally
 * never get here (an ioeventfd per queue catches them in the kernel); if one
 * does, the kick is forwarded to the same eventfd.
 */
import type { BusDevice } from '../vmm/bus.js';
import { dataValue, setDataValue } from '../vmm/bus.js';
import { defineBusDevice } from '../vmm/device.js';
import { signalEventfd } from '../sys/eventfd.js';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTQ_MAX_SIZE } from '../virtio/virtio-constants.js';
import { VirtioTransportState } from './virtio-transport-state.js';
import { writeStatus, type StatusTransition } from './virtio-status.js';

export const VIRTIO_MMIO_MAGIC_VALUE = 0x000;
export const VIRTIO_MMIO_VERSION = 0x004;
export const VIRTIO_MMIO_DEVICE_ID = 0x008;
export const VIRTIO_MMIO_VENDOR_ID = 0x00c;
export const VIRTIO_MMIO_DEVICE_FEATURES = 0x010;
export const VIRTIO_MMIO_DEVICE_FEATURES_SEL = 0x014;
export const VIRTIO_MMIO_DRIVER_FEATURES = 0x020;
export const VIRTIO_MMIO_DRIVER_FEATURES_SEL = 0x024;
export const VIRTIO_MMIO_QUEUE_SEL = 0x030;
export const VIRTIO_MMIO_QUEUE_NUM_MAX = 0x034;
export const VIRTIO_MMIO_QUEUE_NUM = 0x038;
export const VIRTIO_MMIO_QUEUE_READY = 0x044;
export const VIRTIO_MMIO_QUEUE_NOTIFY = 0x050;
export const VIRTIO_MMIO_INTERRUPT_STATUS = 0x060;
export const VIRTIO_MMIO_INTERRUPT_ACK = 0x064;
export const VIRTIO_MMIO_STATUS = 0x070;
export const VIRTIO_MMIO_QUEUE_DESC_LOW = 0x080;
export const VIRTIO_MMIO_QUEUE_DESC_HIGH = 0x084;
export const VIRTIO_MMIO_QUEUE_AVAIL_LOW = 0x090;
export const VIRTIO_MMIO_QUEUE_AVAIL_HIGH = 0x094;
export const VIRTIO_MMIO_QUEUE_USED_LOW = 0x0a0;
export const VIRTIO_MMIO_QUEUE_USED_HIGH = 0x0a4;
export const VIRTIO_MMIO_SHM_SEL = 0x0ac;
export const VIRTIO_MMIO_SHM_LEN_LOW = 0x0b0;
export const VIRTIO_MMIO_SHM_LEN_HIGH = 0x0b4;
export const VIRTIO_MMIO_SHM_BASE_LOW = 0x0b8;
export const VIRTIO_MMIO_SHM_BASE_HIGH = 0x0bc;
export const VIRTIO_MMIO_CONFIG_GENERATION = 0x0fc;
export const VIRTIO_MMIO_CONFIG = 0x100;

/** "virt" in little-endian. */
export const VIRTIO_MMIO_MAGIC = 0x74726976;
export const VIRTIO_MMIO_VERSION_2 = 2;
/** The register window of one device. */
export const VIRTIO_MMIO_SIZE = 0x1000;
/** Vendor ID reported to drivers (any value is allowed; this is QEMU's "QEMU" for familiarity). */
export const VIRTIO_MMIO_VENDOR = 0x554d4551;

export interface VirtioMmioOptions {
  readonly deviceType: number;
  /** One per data-plane thread. */
  readonly controlFds: readonly number[];
  readonly kickFds: readonly number[];
}

/** The register logic, independent of the bus (unit-tested directly). */
export class VirtioMmioRegisters implements BusDevice {
  constructor(
    private readonly state: VirtioTransportState,
    private readonly options: VirtioMmioOptions,
    private readonly transition: StatusTransition,
  ) {}

  read(offset: number, data: Uint8Array): void {
    if (offset >= VIRTIO_MMIO_CONFIG) {
      const at = offset - VIRTIO_MMIO_CONFIG;
      const config = this.state.config;
      for (let i = 0; i < data.length; i++) data[i] = at + i < config.length ? config[at + i]! : 0;
      return;
    }
    // Registers are 32-bit; other widths are undefined by the spec and read as 0.
    setDataValue(data, data.length === 4 ? this.register(offset) : 0);
  }

  private register(offset: number): number {
    const s = this.state;
    const queue = s.selectedQueueExists ? s.queue(s.queueSelect) : undefined;
    switch (offset) {
      case VIRTIO_MMIO_MAGIC_VALUE:
        return VIRTIO_MMIO_MAGIC;
      case VIRTIO_MMIO_VERSION:
        return VIRTIO_MMIO_VERSION_2;
      case VIRTIO_MMIO_DEVICE_ID:
        return this.options.deviceType;
      case VIRTIO_MMIO_VENDOR_ID:
        return VIRTIO_MMIO_VENDOR;
      case VIRTIO_MMIO_DEVICE_FEATURES:
        return s.deviceFeatureWindow();
      case VIRTIO_MMIO_QUEUE_NUM_MAX:
        return queue?.maxSize ?? 0;
      case VIRTIO_MMIO_QUEUE_READY:
        return queue?.ready ? 1 : 0;
      case VIRTIO_MMIO_INTERRUPT_STATUS:
        return s.isr;
      case VIRTIO_MMIO_STATUS:
        return s.status;
      case VIRTIO_MMIO_SHM_LEN_LOW:
      case VIRTIO_MMIO_SHM_LEN_HIGH:
        return 0xffffffff; // no shared memory regions: length -1
      case VIRTIO_MMIO_CONFIG_GENERATION:
        return s.configGeneration >>> 0;
      default:
        return 0;
    }
  }

  write(offset: number, data: Uint8Array): void {
    // No device offers a driver-writable config field: config writes are ignored (§2.5).
    if (offset >= VIRTIO_MMIO_CONFIG) return;
    if (data.length !== 4) return;
    const value = dataValue(data);
    const s = this.state;
    const q = s.selectedQueueExists ? s.queueSelect : -1;
    // Queue layout may only change while the queue is not ready.
    const queueWritable = q >= 0 && !s.queue(q).ready;
    switch (offset) {
      case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
        s.deviceFeatureSelect = value;
        break;
      case VIRTIO_MMIO_DRIVER_FEATURES:
        if (!(s.status & VIRTIO_CONFIG_S_FEATURES_OK)) s.setDriverFeatureWindow(value);
        break;
      case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
        s.driverFeatureSelect = value;
        break;
      case VIRTIO_MMIO_QUEUE_SEL:
        s.queueSelect = value;
        break;
      case VIRTIO_MMIO_QUEUE_NUM:
        if (queueWritable && value >= 1 && value <= Math.min(s.queue(q).maxSize, VIRTQ_MAX_SIZE)) s.setQueueSize(q, value);
        break;
      case VIRTIO_MMIO_QUEUE_READY:
        if (q >= 0 && !(s.status & VIRTIO_CONFIG_S_DRIVER_OK)) s.setQueueReady(q, value === 1);
        break;
      case VIRTIO_MMIO_QUEUE_NOTIFY:
        if (value < this.options.kickFds.length) signalEventfd(this.options.kickFds[value]!);
        break;
      case VIRTIO_MMIO_INTERRUPT_ACK:
        s.acknowledgeIsr(value);
        break;
      case VIRTIO_MMIO_STATUS:
        writeStatus(s, value, this.transition);
        break;
      case VIRTIO_MMIO_QUEUE_DESC_LOW:
      case VIRTIO_MMIO_QUEUE_DESC_HIGH:
        if (queueWritable) s.setQueueAddressPart(q, 'desc', offset === VIRTIO_MMIO_QUEUE_DESC_HIGH, value);
        break;
      case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
      case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
        if (queueWritable) s.setQueueAddressPart(q, 'driver', offset === VIRTIO_MMIO_QUEUE_AVAIL_HIGH, value);
        break;
      case VIRTIO_MMIO_QUEUE_USED_LOW:
      case VIRTIO_MMIO_QUEUE_USED_HIGH:
        if (queueWritable) s.setQueueAddressPart(q, 'device', offset === VIRTIO_MMIO_QUEUE_USED_HIGH, value);
        break;
      default:
        break; // read-only or reserved
    }
  }
}

/** The register file on the MMIO bus, over the device's shared transport state. */
export const virtioMmioDevice = defineBusDevice<VirtioMmioOptions & { readonly state: SharedArrayBuffer }>({
  module: import.meta.url,
  exportName: 'virtioMmioDevice',
  create: (options, context) =>
    new VirtioMmioRegisters(new VirtioTransportState(options.state), options, { controlFds: options.controlFds, log: context.log }),
});
