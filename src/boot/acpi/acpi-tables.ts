/**
 * Lays the ACPI tables out from the start of the firmware area and writes
 * them into guest memory:
 *
 *   ACPI_AREA_START  RSDP (36 bytes; Linux also scans 0xE0000-0xFFFFF for it)
 *   +0x40            FACS (64 bytes, 64-byte aligned)
 *   then, each 16-byte aligned: FADT, MADT, DSDT, XSDT, RSDT
 */

import type { GuestMemory } from '../../vmm/guest-memory.js';
import type { GuestRange } from '../memory-map.js';
import { hex } from '../boot-error.js';
import { alignUp } from '../layout.js';
import { FirmwareError } from './firmware-error.js';
import { resolveDescription, type FirmwareDescription } from './firmware-description.js';
import { ACPI_AREA_END, ACPI_AREA_START } from './platform.js';
import { buildFadt, FADT_SIZE } from './fadt.js';
import { buildMadt } from './madt.js';
import { buildDsdt } from './dsdt.js';
import { FACS_ALIGNMENT, RSDP_ALIGNMENT, RSDP_SIZE, buildFacs, buildRsdp, buildRsdt, buildXsdt } from './root-tables.js';

/** Alignment of the tables after the FACS (any works; 16 keeps dumps readable). */
export const TABLE_ALIGNMENT = 16;

export interface AcpiTableAddresses {
  readonly rsdp: number;
  readonly facs: number;
  readonly fadt: number;
  readonly madt: number;
  readonly dsdt: number;
  readonly xsdt: number;
  readonly rsdt: number;
}

export interface AcpiTables {
  /** For the zero page's acpi_rsdp_addr / PVH's rsdp_paddr. */
  readonly rsdpAddress: number;
  readonly tables: AcpiTableAddresses;
  /** Everything written, [start, end). */
  readonly range: GuestRange;
}

/** Fails with 'not-ram' unless [start, end) is guest RAM. */
export function requireRam(memory: GuestMemory, start: number, end: number, what: string): void {
  if (!memory.contains(start, end - start)) {
    throw new FirmwareError('not-ram', `the ${what} area ${hex(start)}-${hex(end)} is not guest RAM`);
  }
}

export function buildAcpiTables(memory: GuestMemory, description: FirmwareDescription): AcpiTables {
  const d = resolveDescription(description);
  requireRam(memory, ACPI_AREA_START, ACPI_AREA_END, 'ACPI table');
  const madt = buildMadt(d);
  const dsdt = buildDsdt(d);

  const rsdpAt = alignUp(ACPI_AREA_START, RSDP_ALIGNMENT);
  const facsAt = alignUp(rsdpAt + RSDP_SIZE, FACS_ALIGNMENT);
  const facs = buildFacs();
  const fadtAt = alignUp(facsAt + facs.length, TABLE_ALIGNMENT);
  const madtAt = alignUp(fadtAt + FADT_SIZE, TABLE_ALIGNMENT);
  const dsdtAt = alignUp(madtAt + madt.length, TABLE_ALIGNMENT);
  const entries = [fadtAt, madtAt];
  const xsdt = buildXsdt(entries);
  const xsdtAt = alignUp(dsdtAt + dsdt.length, TABLE_ALIGNMENT);
  const rsdt = buildRsdt(entries);
  const rsdtAt = alignUp(xsdtAt + xsdt.length, TABLE_ALIGNMENT);
  const end = rsdtAt + rsdt.length;
  if (end > ACPI_AREA_END) {
    throw new FirmwareError('area-overflow', `the ACPI tables need ${hex(end - ACPI_AREA_START)} bytes; the area at ${hex(ACPI_AREA_START)} holds ${hex(ACPI_AREA_END - ACPI_AREA_START)}`);
  }

  // One contiguous image, padding zeroed, so stale bytes never sit between tables.
  const image = new Uint8Array(end - ACPI_AREA_START);
  const place = (at: number, bytes: Uint8Array): void => image.set(bytes, at - ACPI_AREA_START);
  place(rsdpAt, buildRsdp(rsdtAt, xsdtAt));
  place(facsAt, facs);
  place(fadtAt, buildFadt({ facs: facsAt, dsdt: dsdtAt }));
  place(madtAt, madt);
  place(dsdtAt, dsdt);
  place(xsdtAt, xsdt);
  place(rsdtAt, rsdt);
  memory.write(ACPI_AREA_START, image);
  return {
    rsdpAddress: rsdpAt,
    tables: { rsdp: rsdpAt, facs: facsAt, fadt: fadtAt, madt: madtAt, dsdt: dsdtAt, xsdt: xsdtAt, rsdt: rsdtAt },
    range: [ACPI_AREA_START, end],
  };
}
