/**
 * The pointers to everything else: RSDP (ACPI 6.5 §5.2.5, revision 2 with
 * both checksums), XSDT (64-bit entries) and an RSDT (32-bit entries) for
 * ACPI 1.0 readers; and the FACS (§5.2.10), which has no SDT header.
 */

import { ByteWriter, fixChecksum } from './byte-writer.js';
import { OEM_ID, systemDescriptionTable } from './sdt.js';

export const RSDP_SIGNATURE = 'RSD PTR ';
export const RSDP_REVISION = 2;
export const RSDP_SIZE = 36;
/** The ACPI 1.0 part the first checksum covers. */
export const RSDP_V1_SIZE = 20;
export const RSDP_CHECKSUM = 8;
export const RSDP_EXTENDED_CHECKSUM = 32;
/** Linux and other OSes scan for the RSDP on 16-byte boundaries. */
export const RSDP_ALIGNMENT = 16;

export const FACS_SIGNATURE = 'FACS';
export const FACS_SIZE = 64;
export const FACS_VERSION = 2;
export const FACS_ALIGNMENT = 64;

export function buildRsdp(rsdt: number, xsdt: number): Uint8Array {
  const rsdp = new ByteWriter()
    .ascii(RSDP_SIGNATURE, 8)
    .u8(0)
    .ascii(OEM_ID, 6)
    .u8(RSDP_REVISION)
    .u32(rsdt)
    .u32(RSDP_SIZE)
    .u64(xsdt)
    .u8(0)
    .zeros(3)
    .toBytes();
  fixChecksum(rsdp, RSDP_CHECKSUM, 0, RSDP_V1_SIZE);
  fixChecksum(rsdp, RSDP_EXTENDED_CHECKSUM);
  return rsdp;
}

export function buildXsdt(entries: readonly number[]): Uint8Array {
  const w = new ByteWriter();
  for (const e of entries) w.u64(e);
  return systemDescriptionTable('XSDT', 1, w.toBytes());
}

export function buildRsdt(entries: readonly number[]): Uint8Array {
  const w = new ByteWriter();
  for (const e of entries) w.u32(e);
  return systemDescriptionTable('RSDT', 1, w.toBytes());
}

/** Global lock and waking vectors all zero: no S3/S4 resume, no firmware sharing the lock. */
export function buildFacs(): Uint8Array {
  return new ByteWriter().ascii(FACS_SIGNATURE, 4).u32(FACS_SIZE).zeros(24).u8(FACS_VERSION).zeros(FACS_SIZE - 33).toBytes();
}
