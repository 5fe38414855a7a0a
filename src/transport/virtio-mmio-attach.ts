/**
 * Puts a virtio device on the MMIO bus: shared transport state, one
 * ioeventfd per queue on QueueNotify (datamatch = queue index), an irqfd on
 * the device's interrupt line, its data-plane thread, and the kernel
 * command-line word that announces it.
 */
import { nonBlockingEventfd } from '../sys/eventfd.js';
import { assignIrqfd, setIoeventfd } from '../vmm/kvm.js';
import type { Machine } from '../vmm/machine.js';
import { startDataPlane, type DataPlane } from './data-plane/data-plane.js';
import type { ConfiguredVirtioDevice } from '../virtio/virtio-device.js';
import { VIRTIO_MMIO_QUEUE_NOTIFY, VIRTIO_MMIO_SIZE, virtioMmioDevice } from './virtio-mmio.js';
import { deviceSpec } from '../vmm/device.js';
import { VirtioTransportState } from './virtio-transport-state.js';
import { transportFeatures } from './transport-features.js';

export interface MmioSlot {
  readonly base: number;
  readonly irq: number;
}

export interface AttachedVirtioDevice {
  readonly state: VirtioTransportState;
  readonly dataPlane: DataPlane;
  /** Kernel parameter announcing the device (MMIO only). */
  readonly cmdline?: string;
  /** Where the firmware tables must describe it. */
  readonly placement: { readonly kind: 'mmio'; readonly base: number; readonly size: number; readonly irq: number } | { readonly kind: 'pci'; readonly slot: number; readonly irq: number };
}

export function attachVirtioMmio(
  machine: Machine,
  name: string,
  { description: device, spec }: ConfiguredVirtioDevice,
  slot: MmioSlot,
): AttachedVirtioDevice {
  const queueGroups = device.dataPlaneQueues;
  const state = VirtioTransportState.create({
    deviceFeatures: transportFeatures(device.features),
    queueMaxSizes: device.queueMaxSizes,
    configSpace: device.configSpace,
    dataPlaneThreads: queueGroups.length,
    msixVectors: 0,
  });
  const vmFd = machine.vm.fd;
  const controlFds = queueGroups.map(() => nonBlockingEventfd());
  const kickFds = device.queueMaxSizes.map(nonBlockingEventfd);
  kickFds.forEach((fd, q) =>
    setIoeventfd(vmFd, { address: slot.base + VIRTIO_MMIO_QUEUE_NOTIFY, length: 4, eventFd: fd, datamatch: q }),
  );
  const lineFd = nonBlockingEventfd();
  assignIrqfd(vmFd, lineFd, slot.irq);

  machine.addDevice(
    deviceSpec(
      virtioMmioDevice,
      { name: `virtio-mmio ${name}`, bus: 'mmio', base: slot.base, length: VIRTIO_MMIO_SIZE },
      { state: state.shared, deviceType: device.deviceType, controlFds, kickFds },
    ),
  );
  const dataPlane = startDataPlane(machine, {
    name,
    device: spec,
    state: state.shared,
    queueGroups,
    controlFds,
    kickFds,
    interrupt: { lineFd, vectorFds: [] },
  });
  return {
    state,
    dataPlane,
    cmdline: `virtio_mmio.device=${VIRTIO_MMIO_SIZE / 1024}K@0x${slot.base.toString(16)}:${slot.irq}`,
    placement: { kind: 'mmio', base: slot.base, size: VIRTIO_MMIO_SIZE, irq: slot.irq },
  };
}
