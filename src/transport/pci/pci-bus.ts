/**
 * The main thread's view of PCI bus 0: it hands out device numbers, BAR
 * addresses in the 32-bit MMIO window and MSI GSIs (there is no firmware to
 * do it), and finally registers the host bridge's two bus devices.
 */
import { FIRST_MSI_GSI, MAX_MSI_ROUTES, createIrqRoutingState } from '../../vmm/irq-routing.js';
import type { Machine } from '../../vmm/machine.js';
import { PciConfigSpace } from './pci-config.js';
import {
  PCI_CLASS_BRIDGE_HOST,
  PCI_CLASS_DEVICE,
  PCI_CONFIG_ADDRESS_PORT,
  PCI_CONFIG_PORT_COUNT,
  PCI_DEVICE_ID,
  PCI_DEVICE_ID_INTEL_82441,
  PCI_HEADER_TYPE,
  PCI_HEADER_TYPE_NORMAL,
  PCI_MAX_SLOTS,
  PCI_MMIO_WINDOW_SIZE,
  PCI_MMIO_WINDOW_START,
  PCI_VENDOR_ID,
  PCI_VENDOR_ID_INTEL,
} from './pci-constants.js';
import type { PciFunctionDescriptor } from './pci-function.js';
import { pciConfigPortsDevice, pciMmioWindowDevice, type PciRootOptions } from './pci-root.js';
import { deviceSpec } from '../../vmm/device.js';
import { TransportError } from '../transport-error.js';

export class PciBus {
  private readonly functions: PciFunctionDescriptor[] = [];
  private nextSlot = 1;
  private nextBarAddress = PCI_MMIO_WINDOW_START;
  private nextGsi = FIRST_MSI_GSI;
  /** The VM's MSI routing table (shared with every vCPU thread). */
  readonly routing = createIrqRoutingState();

  constructor(private readonly machine: Machine) {
    const bridge = PciConfigSpace.create();
    bridge.set16(PCI_VENDOR_ID, PCI_VENDOR_ID_INTEL);
    bridge.set16(PCI_DEVICE_ID, PCI_DEVICE_ID_INTEL_82441);
    bridge.set16(PCI_CLASS_DEVICE, PCI_CLASS_BRIDGE_HOST);
    bridge.set8(PCI_HEADER_TYPE, PCI_HEADER_TYPE_NORMAL);
    this.functions.push({ slot: 0, config: bridge.shared, barSizes: [] });
  }

  allocateSlot(): number {
    if (this.nextSlot >= PCI_MAX_SLOTS) throw new TransportError('pci-bus-full', `PCI bus 0 is full (${PCI_MAX_SLOTS - 1} devices)`);
    return this.nextSlot++;
  }

  /** A naturally aligned range for a BAR of `size` bytes (a power of two). */
  allocateBar(size: number): number {
    const address = Math.ceil(this.nextBarAddress / size) * size;
    if (address + size > PCI_MMIO_WINDOW_START + PCI_MMIO_WINDOW_SIZE) throw new TransportError('pci-window-full', 'PCI MMIO window is full');
    this.nextBarAddress = address + size;
    return address;
  }

  allocateMsiGsis(count: number): number[] {
    if (this.nextGsi + count > FIRST_MSI_GSI + MAX_MSI_ROUTES) {
      throw new TransportError('out-of-msi-routes', `out of MSI routes (the VM has ${MAX_MSI_ROUTES})`);
    }
    const gsis = Array.from({ length: count }, (_, i) => this.nextGsi + i);
    this.nextGsi += count;
    return gsis;
  }

  addFunction(descriptor: PciFunctionDescriptor): void {
    this.functions.push(descriptor);
  }

  /** Registers configuration mechanism #1 and the MMIO window, after every function was added. */
  register(): void {
    const options: PciRootOptions = {
      functions: this.functions,
      addressLatch: new SharedArrayBuffer(4),
      windowBase: PCI_MMIO_WINDOW_START,
    };
    // The same options object in both specs: each vCPU thread loads the functions once.
    this.machine.addDevice(
      deviceSpec(pciConfigPortsDevice, { name: 'pci config (0xcf8)', bus: 'pio', base: PCI_CONFIG_ADDRESS_PORT, length: PCI_CONFIG_PORT_COUNT }, options),
    );
    this.machine.addDevice(
      deviceSpec(pciMmioWindowDevice, { name: 'pci mmio window', bus: 'mmio', base: PCI_MMIO_WINDOW_START, length: PCI_MMIO_WINDOW_SIZE }, options),
    );
  }
}
