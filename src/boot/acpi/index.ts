/** Firmware tables (ACPI 6.3 and MPS 1.4) built from a FirmwareDescription; pure, no KVM. */

export { FirmwareError, type FirmwareErrorKind } from './firmware-error.js';
export {
  MAX_CPUS,
  MAX_VIRTIO_MMIO_DEVICES,
  type CpuSignature,
  type FirmwareDescription,
  type PciInterrupt,
  type PciInterruptPin,
  type VirtioMmioDevice,
} from './firmware-description.js';
export { buildFirmwareTables, type FirmwareTables } from './firmware-tables.js';
export { buildAcpiTables, type AcpiTableAddresses, type AcpiTables } from './acpi-tables.js';
export { buildMpTable, type MpTable } from '../mptable.js';
export * as platform from './platform.js';
