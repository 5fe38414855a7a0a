/** Every firmware table a VM gets: ACPI (RSDP at 0xE0000) and the MP table (at 0xF0000). */

import type { GuestMemory } from '../../vmm/guest-memory.js';
import type { GuestRange } from '../memory-map.js';
import { buildMpTable } from '../mptable.js';
import { buildAcpiTables, requireRam, type AcpiTableAddresses } from './acpi-tables.js';
import { resolveDescription, type FirmwareDescription } from './firmware-description.js';
import { ACPI_AREA_END, ACPI_AREA_START, MP_AREA_END, MP_AREA_START } from './platform.js';

export interface FirmwareTables {
  /** For BootOptions.acpiRsdp (zero page acpi_rsdp_addr, PVH rsdp_paddr). */
  readonly rsdpAddress: number;
  readonly acpi: AcpiTableAddresses;
  readonly mpFloatingPointer: number;
  /** What was written, [start, end) each: the ACPI tables, then the MP table. */
  readonly ranges: GuestRange[];
  /** The IOAPIC id both tables give (the VMM sets the in-kernel IOAPIC's id register to it). */
  readonly ioapicId: number;
}

export function buildFirmwareTables(memory: GuestMemory, description: FirmwareDescription): FirmwareTables {
  // Check everything up front, so a refused description writes nothing at all.
  const resolved = resolveDescription(description);
  requireRam(memory, ACPI_AREA_START, ACPI_AREA_END, 'ACPI table');
  requireRam(memory, MP_AREA_START, MP_AREA_END, 'MP table');
  const acpi = buildAcpiTables(memory, resolved);
  const mp = buildMpTable(memory, resolved);
  return {
    rsdpAddress: acpi.rsdpAddress,
    acpi: acpi.tables,
    mpFloatingPointer: mp.floatingPointer,
    ranges: [acpi.range, mp.range],
    ioapicId: resolved.ioapicId,
  };
}
