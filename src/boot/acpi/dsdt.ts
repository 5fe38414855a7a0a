/**
 * The DSDT: the devices Linux cannot find by probing. \_S5 for soft-off, the
 * PCI host bridge with its windows and INTx routing, COM1, pvpanic, each
 * virtio-mmio device (Linux's virtio_mmio binds to ACPI HID LNRO0005) and one
 * ACPI0007 processor device per vCPU (UID = the MADT's processor UID).
 */

import {
  device,
  eisaId,
  integer,
  method,
  name,
  packageOf,
  returnValue,
  scope,
  string,
  concat,
  type Aml,
} from './aml.js';
import {
  EXT_IRQ_CONSUMER,
  EXT_IRQ_EDGE,
  busNumberWindow,
  extendedInterrupt,
  ioFixedRange,
  ioWindow,
  irq,
  memory32Fixed,
  memoryWindow,
  resourceTemplate,
} from './aml-resources.js';
import { PCI_INTERRUPT_PINS, type ResolvedDescription } from './firmware-description.js';
import {
  COM1_IRQ,
  COM1_PORT,
  COM1_PORT_COUNT,
  PCI_CONFIG_PORT,
  PCI_CONFIG_PORT_COUNT,
  PCI_MMIO_WINDOW_END,
  PCI_MMIO_WINDOW_START,
  PVPANIC_PORT,
  SLP_TYP_S5,
} from './platform.js';
import { systemDescriptionTable } from './sdt.js';

export const DSDT_SIGNATURE = 'DSDT';
/** Revision 2: integers are 64 bits wide. */
export const DSDT_REVISION = 2;

/** _STA: present, enabled, shown in the UI, functioning. */
export const STA_PRESENT_ENABLED_FUNCTIONING = 0x0f;
/** _PRT "Source" 0: the entry's last field is a GSI, not an index into a link device. */
const PRT_NO_LINK_DEVICE = 0;
/** _PRT address: device number in the high word, 0xFFFF = any function. */
const PRT_ANY_FUNCTION = 0xffff;

/** _CRS of the host bridge: bus 0, the config ports, and the windows devices decode in. */
function pciHostBridgeResources(): Aml {
  return resourceTemplate(
    busNumberWindow(0, 0),
    ioFixedRange(PCI_CONFIG_PORT, PCI_CONFIG_PORT_COUNT),
    ioWindow(0x0000, PCI_CONFIG_PORT - 1),
    ioWindow(0x0d00, 0xffff),
    memoryWindow(PCI_MMIO_WINDOW_START, PCI_MMIO_WINDOW_END - 1),
  );
}

function pciRoutingTable(d: ResolvedDescription): Aml {
  return packageOf(
    d.pciInterrupts.map((p) =>
      packageOf([
        integer(((p.slot << 16) | PRT_ANY_FUNCTION) >>> 0),
        integer(PCI_INTERRUPT_PINS.indexOf(p.pin)),
        integer(PRT_NO_LINK_DEVICE),
        integer(p.gsi),
      ]),
    ),
  );
}

const hex2 = (n: number): string => n.toString(16).toUpperCase().padStart(2, '0');
const hex3 = (n: number): string => n.toString(16).toUpperCase().padStart(3, '0');

export function buildDsdtAml(d: ResolvedDescription): Aml {
  const s5 = name('\\_S5', packageOf([integer(SLP_TYP_S5), integer(SLP_TYP_S5), integer(0), integer(0)]));
  const pci0 = device(
    'PCI0',
    name('_HID', eisaId('PNP0A03')),
    name('_UID', integer(0)),
    name('_SEG', integer(0)),
    name('_BBN', integer(0)),
    name('_CRS', pciHostBridgeResources()),
    name('_PRT', pciRoutingTable(d)),
  );
  const com1 = device(
    'COM1',
    name('_HID', eisaId('PNP0501')),
    name('_UID', integer(1)),
    name('_CRS', resourceTemplate(ioFixedRange(COM1_PORT, COM1_PORT_COUNT), irq([COM1_IRQ]))),
  );
  const pvpanic = device(
    'PEVT',
    name('_HID', string('QEMU0001')),
    name('_CRS', resourceTemplate(ioFixedRange(PVPANIC_PORT, 1))),
    method('_STA', {}, returnValue(integer(STA_PRESENT_ENABLED_FUNCTIONING))),
  );
  const virtio = d.virtioMmio.map((v, i) =>
    device(
      `VR${hex2(i)}`,
      name('_HID', string('LNRO0005')),
      name('_UID', integer(i)),
      // DMA is cache-coherent (what arm64 kernels insist on knowing; x86 assumes it).
      name('_CCA', integer(1)),
      name('_CRS', resourceTemplate(memory32Fixed(v.base, v.size), extendedInterrupt(EXT_IRQ_CONSUMER | EXT_IRQ_EDGE, [v.gsi]))),
    ),
  );
  const cpus = Array.from({ length: d.cpus }, (_, cpu) =>
    device(`C${hex3(cpu)}`, name('_HID', string('ACPI0007')), name('_UID', integer(cpu))),
  );
  return concat(s5, scope('\\_SB', pci0, com1, pvpanic, ...virtio, ...cpus));
}

export function buildDsdt(d: ResolvedDescription): Uint8Array {
  return systemDescriptionTable(DSDT_SIGNATURE, DSDT_REVISION, buildDsdtAml(d));
}
