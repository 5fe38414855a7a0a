/**
 * Bounds-checked little-endian reads from a kernel file, so a truncated or
 * hostile image ends in a BootError rather than a RangeError from DataView.
 */

import { BootError, type BootErrorKind, hex } from './boot-error.js';

export class ByteReader {
  private readonly view: DataView;

  constructor(
    readonly bytes: Uint8Array,
    private readonly kind: BootErrorKind,
    private readonly what: string,
  ) {
    this.view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  }

  get length(): number {
    return this.bytes.length;
  }

  /** True when [offset, offset + length) lies inside the file. */
  has(offset: number, length: number): boolean {
    return Number.isSafeInteger(offset) && Number.isSafeInteger(length) && offset >= 0 && length >= 0 &&
      offset + length <= this.bytes.length;
  }

  check(offset: number, length: number, field: string): void {
    if (!this.has(offset, length)) {
      throw new BootError(
        this.kind,
        `${this.what}: ${field} at ${hex(offset)}+${hex(length)} lies beyond the end of the file (${hex(this.bytes.length)} bytes)`,
      );
    }
  }

  u8(offset: number, field = 'byte'): number {
    this.check(offset, 1, field);
    return this.view.getUint8(offset);
  }
  u16(offset: number, field = 'field'): number {
    this.check(offset, 2, field);
    return this.view.getUint16(offset, true);
  }
  u32(offset: number, field = 'field'): number {
    this.check(offset, 4, field);
    return this.view.getUint32(offset, true);
  }
  u64(offset: number, field = 'field'): bigint {
    this.check(offset, 8, field);
    return this.view.getBigUint64(offset, true);
  }

  /** A view (no copy) of [offset, offset + length), checked. */
  slice(offset: number, length: number, field: string): Uint8Array {
    this.check(offset, length, field);
    return this.bytes.subarray(offset, offset + length);
  }
}
