/**
 * Puts a virtio device on PCI bus 0 as a modern virtio-pci function: its
 * configuration space with the virtio and MSI-X capabilities, BAR 0, an
 * ioeventfd per queue on the notification area, an irqfd per MSI-X vector
 * (routed when the driver programs the table) and a level-triggered INTx
 * irqfd with resampling, then its data-plane thread.
 */
import { assignIrqfd, setIoeventfd } from '../../vmm/kvm.js';
import { nonBlockingEventfd } from '../../sys/eventfd.js';
import type { Machine } from '../../vmm/machine.js';
import { startDataPlane } from '../data-plane/data-plane.js';
import { VIRTIO_ID_CONSOLE } from '../../virtio/virtio-constants.js';
import type { ConfiguredVirtioDevice, VirtioDeviceDescription } from '../../virtio/virtio-device.js';
import { transportFeatures } from '../transport-features.js';
import type { AttachedVirtioDevice } from '../virtio-mmio-attach.js';
import { MSIX_VECTOR_CTRL_MASKBIT, VirtioTransportState } from '../virtio-transport-state.js';
import type { PciBus } from './pci-bus.js';
import { PciConfigSpace } from './pci-config.js';
import * as C from './pci-constants.js';
import { pciFunction } from './pci-function.js';
import { createNotifyRegistration, virtioPciFunction, type VirtioPciOptions } from './virtio-pci.js';
import * as L from './virtio-pci-layout.js';

/** Subsystem ID for non-transitional devices (§4.1.2.1: 0x40 or higher). */
const VIRTIO_PCI_SUBSYSTEM_ID = 0x40;
const VIRTIO_PCI_MODERN_REVISION = 1;

function virtioCap(cfgType: number, offset: number, length: number, extra: number[] = []): Uint8Array {
  // After cap_vndr/cap_next (written by addCapability): cap_len, cfg_type, bar, id, padding[2], offset, length.
  const body = new Uint8Array(L.VIRTIO_PCI_CAP_LENGTH - 2 + extra.length);
  const v = new DataView(body.buffer);
  v.setUint8(0, L.VIRTIO_PCI_CAP_LENGTH + extra.length);
  v.setUint8(1, cfgType);
  v.setUint8(2, L.VIRTIO_PCI_BAR);
  v.setUint32(6, offset, true);
  v.setUint32(10, length, true);
  extra.forEach((b, i) => v.setUint8(14 + i, b));
  return body;
}

export function attachVirtioPci(
  machine: Machine,
  bus: PciBus,
  name: string,
  { description: device, spec }: ConfiguredVirtioDevice,
  wiring: { irq: number },
): AttachedVirtioDevice {
  const queues = device.queueMaxSizes.length;
  const msixVectors = L.virtioPciMsixVectors(queues);
  const queueGroups = device.dataPlaneQueues;
  const state = VirtioTransportState.create({
    deviceFeatures: transportFeatures(device.features),
    queueMaxSizes: device.queueMaxSizes,
    configSpace: device.configSpace,
    dataPlaneThreads: queueGroups.length,
    msixVectors,
  });
  for (let v = 0; v < msixVectors; v++) state.setMsixEntryWord(v, 3, MSIX_VECTOR_CTRL_MASKBIT); // masked at reset

  const slot = bus.allocateSlot();
  const barAddress = bus.allocateBar(L.VIRTIO_PCI_BAR_SIZE);
  const { config, msixCap, pciCfgCap } = buildVirtioPciConfig(device, { barAddress, irq: wiring.irq, msixVectors });

  const vmFd = machine.vm.fd;
  const controlFds = queueGroups.map(() => nonBlockingEventfd());
  const kickFds = device.queueMaxSizes.map(nonBlockingEventfd);
  kickFds.forEach((eventFd, q) =>
    setIoeventfd(vmFd, { address: barAddress + L.VIRTIO_PCI_NOTIFY_OFFSET + q * L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER, length: 2, eventFd }),
  );
  const lineFd = nonBlockingEventfd();
  const resampleFd = nonBlockingEventfd();
  assignIrqfd(vmFd, lineFd, wiring.irq, resampleFd);
  const vectorGsis = bus.allocateMsiGsis(msixVectors);
  const vectorFds = vectorGsis.map((gsi) => {
    const fd = nonBlockingEventfd();
    assignIrqfd(vmFd, fd, gsi);
    return fd;
  });
  const notifyRegistration = createNotifyRegistration(barAddress, kickFds.length);

  const options: VirtioPciOptions = {
    state: state.shared,
    controlFds,
    kickFds,
    lineFd,
    vectorFds,
    vectorGsis,
    routing: bus.routing,
    msixCap,
    pciCfgCap,
    notifyRegistration,
  };
  bus.addFunction(pciFunction(virtioPciFunction, { slot, config: config.shared, barSizes: [L.VIRTIO_PCI_BAR_SIZE] }, options));
  const dataPlane = startDataPlane(machine, {
    name,
    device: spec,
    state: state.shared,
    queueGroups,
    controlFds,
    kickFds,
    interrupt: { lineFd, resampleFd, vectorFds },
  });
  return { state, dataPlane, placement: { kind: 'pci', slot, irq: wiring.irq } };
}

export interface VirtioPciConfigLayout {
  readonly config: PciConfigSpace;
  readonly msixCap: number;
  readonly pciCfgCap: number;
}

/** The configuration space of a modern virtio-pci function (pure: no KVM, unit-tested). */
export function buildVirtioPciConfig(
  device: Pick<VirtioDeviceDescription, 'deviceType' | 'queueMaxSizes' | 'configSpace'>,
  placement: { barAddress: number; irq: number; msixVectors: number },
): VirtioPciConfigLayout {
  const queues = device.queueMaxSizes.length;
  const { barAddress, msixVectors } = placement;
  const config = PciConfigSpace.create();
  config.set16(C.PCI_VENDOR_ID, C.PCI_VENDOR_ID_REDHAT_QUMRANET);
  config.set16(C.PCI_DEVICE_ID, C.VIRTIO_PCI_MODERN_DEVICE_ID_BASE + device.deviceType);
  config.set8(C.PCI_REVISION_ID, VIRTIO_PCI_MODERN_REVISION);
  config.set16(C.PCI_CLASS_DEVICE, device.deviceType === VIRTIO_ID_CONSOLE ? C.PCI_CLASS_COMMUNICATION_OTHER : C.PCI_CLASS_OTHERS);
  config.set16(C.PCI_SUBSYSTEM_VENDOR_ID, C.PCI_VENDOR_ID_REDHAT_QUMRANET);
  config.set16(C.PCI_SUBSYSTEM_ID, VIRTIO_PCI_SUBSYSTEM_ID);
  config.setMemoryBar(L.VIRTIO_PCI_BAR, barAddress, L.VIRTIO_PCI_BAR_SIZE);
  config.set8(C.PCI_INTERRUPT_LINE, placement.irq);
  config.set8(C.PCI_INTERRUPT_PIN, C.PCI_INTERRUPT_PIN_INTA);

  const msix = new Uint8Array(10);
  const mv = new DataView(msix.buffer);
  mv.setUint16(0, msixVectors - 1, true); // table size - 1
  mv.setUint32(2, L.VIRTIO_PCI_MSIX_TABLE_OFFSET | L.VIRTIO_PCI_BAR, true);
  mv.setUint32(6, L.VIRTIO_PCI_MSIX_PBA_OFFSET | L.VIRTIO_PCI_BAR, true);
  const msixCap = config.addCapability(C.PCI_CAP_ID_MSIX, msix);
  config.setWritable(msixCap + C.PCI_MSIX_FLAGS, 2, C.PCI_MSIX_FLAGS_ENABLE | C.PCI_MSIX_FLAGS_MASKALL);
  config.addCapability(C.PCI_CAP_ID_VNDR, virtioCap(C.VIRTIO_PCI_CAP_COMMON_CFG, L.VIRTIO_PCI_COMMON_OFFSET, L.VIRTIO_PCI_COMMON_SIZE));
  const multiplier = [0, 1, 2, 3].map((i) => (L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER >>> (8 * i)) & 0xff);
  config.addCapability(
    C.PCI_CAP_ID_VNDR,
    virtioCap(C.VIRTIO_PCI_CAP_NOTIFY_CFG, L.VIRTIO_PCI_NOTIFY_OFFSET, queues * L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER, multiplier),
  );
  config.addCapability(C.PCI_CAP_ID_VNDR, virtioCap(C.VIRTIO_PCI_CAP_ISR_CFG, L.VIRTIO_PCI_ISR_OFFSET, L.VIRTIO_PCI_ISR_SIZE));
  if (device.configSpace.length > 0) {
    config.addCapability(C.PCI_CAP_ID_VNDR, virtioCap(C.VIRTIO_PCI_CAP_DEVICE_CFG, L.VIRTIO_PCI_DEVICE_OFFSET, device.configSpace.length));
  }
  const pciCfgCap = config.addCapability(C.PCI_CAP_ID_VNDR, virtioCap(C.VIRTIO_PCI_CAP_PCI_CFG, 0, 0, [0, 0, 0, 0]));
  config.setWritable(pciCfgCap + L.VIRTIO_PCI_CAP_BAR, 1, 0xff);
  config.setWritable(pciCfgCap + L.VIRTIO_PCI_CAP_OFFSET, 4, 0xffffffff);
  config.setWritable(pciCfgCap + L.VIRTIO_PCI_CAP_LENGTH_FIELD, 4, 0xffffffff);
  config.setWritable(pciCfgCap + L.VIRTIO_PCI_CFG_CAP_DATA, 4, 0xffffffff);

  return { config, msixCap, pciCfgCap };
}
