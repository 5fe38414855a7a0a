/**
 * Where virtio devices go on each transport and how many fit, in plain
 * numbers: config validation counts a VM's devices against these limits
 * before KVM is touched, and src/builder/virtio-devices.ts places them the same way.
 */
import type { TransportKind } from './config.js';
import { TransportError } from '../transport/transport-error.js';
import { PCI_MAX_SLOTS, PCI_MMIO_WINDOW_SIZE } from '../transport/pci/pci-constants.js';
import { VIRTIO_PCI_BAR_SIZE, virtioPciMsixVectors } from '../transport/pci/virtio-pci-layout.js';
import { MAX_MSI_ROUTES } from '../vmm/gsi-layout.js';

/** virtio-mmio windows start here, above the PCI BAR window, inside the 32-bit hole. */
export const VIRTIO_MMIO_BASE = 0xd000_0000;
export const VIRTIO_MMIO_STRIDE = 0x1000;
/**
 * Interrupt lines for devices: the free ISA lines (not 0-4, 8 RTC, 9 ACPI SCI, 12 PS/2 mouse,
 * 13 FPU), then the IOAPIC-only GSIs 16-23 (for kernels that use the IOAPIC from ACPI or the MP table).
 * A virtio-mmio device needs a line of its own; PCI devices share them.
 */
export const DEVICE_IRQS = [5, 6, 7, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23] as const;
export const MAX_MMIO_DEVICES = DEVICE_IRQS.length;
/** Device numbers after the host bridge's, or BARs in the window, whichever runs out first. */
export const MAX_PCI_DEVICES = Math.min(PCI_MAX_SLOTS - 1, Math.floor(PCI_MMIO_WINDOW_SIZE / VIRTIO_PCI_BAR_SIZE));

/** Virtqueues of each device, as the devices build them (checked by test/virtio-placement.test.ts). */
export const CONSOLE_QUEUES = 2;
export const RNG_QUEUES = 1;
/** One receive/transmit pair and the control queue. */
export const NET_QUEUES = 3;

/** One virtio device as validation sees it. */
export interface PlannedDevice {
  /** As in messages and metrics: "virtio-net:tap0", "virtio-blk:vda". */
  readonly name: string;
  readonly queues: number;
}

/**
 * Throws TransportError (status 2) when the devices do not fit the transport: more than its
 * device slots, or on PCI more MSI-X vectors (one per queue plus one each) than the VM's MSI routes.
 */
export function checkDevicesFit(transport: TransportKind, devices: readonly PlannedDevice[]): void {
  const list = `${devices.length} virtio devices`;
  if (transport === 'mmio') {
    if (devices.length > MAX_MMIO_DEVICES) {
      throw new TransportError('mmio-full', `${list} do not fit --transport mmio (at most ${MAX_MMIO_DEVICES}, one interrupt line each)`);
    }
    return;
  }
  if (devices.length > MAX_PCI_DEVICES) {
    throw new TransportError('pci-bus-full', `${list} do not fit PCI bus 0 (at most ${MAX_PCI_DEVICES})`);
  }
  const vectors = devices.reduce((sum, device) => sum + virtioPciMsixVectors(device.queues), 0);
  if (vectors > MAX_MSI_ROUTES) {
    throw new TransportError(
      'out-of-msi-routes',
      `${list} need ${vectors} MSI-X vectors (one per queue and one per device), more than the VM's ${MAX_MSI_ROUTES} MSI routes; use fewer disk queues`,
    );
  }
}
