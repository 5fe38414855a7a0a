/**
 * The common System Description Table header (ACPI 6.5 §5.2.6) and the ids
 * every table carries. Tables are built as whole byte arrays and then
 * copied into guest memory, so the checksum is computed once, at the end.
 */

import { ByteWriter, fixChecksum } from './byte-writer.js';

export const SDT_HEADER_SIZE = 36;
export const SDT_SIGNATURE = 0;
export const SDT_LENGTH = 4;
export const SDT_REVISION = 8;
export const SDT_CHECKSUM = 9;
export const SDT_OEM_ID = 10;
export const SDT_OEM_TABLE_ID = 16;
export const SDT_OEM_REVISION = 24;
export const SDT_CREATOR_ID = 28;
export const SDT_CREATOR_REVISION = 32;

/** OEM ids (6 and 8 characters, space-padded), also used by the MP table. */
export const OEM_ID = 'KVMTS ';
export const OEM_TABLE_ID = 'KVMTSVM ';
export const OEM_REVISION = 1;
/** Creator: this VMM's table generator rather than an ASL compiler. */
export const CREATOR_ID = 'KVMT';
export const CREATOR_REVISION = 1;

/** A complete table: header (length and checksum filled in) followed by `body`. */
export function systemDescriptionTable(signature: string, revision: number, body: Uint8Array): Uint8Array {
  const w = new ByteWriter()
    .ascii(signature, 4)
    .u32(SDT_HEADER_SIZE + body.length)
    .u8(revision)
    .u8(0) // checksum, below
    .ascii(OEM_ID, 6)
    .ascii(OEM_TABLE_ID, 8)
    .u32(OEM_REVISION)
    .ascii(CREATOR_ID, 4)
    .u32(CREATOR_REVISION)
    .bytes(body);
  const table = w.toBytes();
  fixChecksum(table, SDT_CHECKSUM);
  return table;
}
