/** A growable little-endian byte buffer for building tables, plus the ACPI/MPS checksum. */

export class ByteWriter {
  private buffer = new Uint8Array(256);
  private view = new DataView(this.buffer.buffer);
  private used = 0;

  get length(): number {
    return this.used;
  }

  /** Claims `count` bytes. Growing replaces buffer and view: call it before reading either. */
  private reserve(count: number): number {
    const at = this.used;
    if (at + count > this.buffer.length) {
      const grown = new Uint8Array(Math.max(this.buffer.length * 2, at + count));
      grown.set(this.buffer.subarray(0, at));
      this.buffer = grown;
      this.view = new DataView(grown.buffer);
    }
    this.used += count;
    return at;
  }

  u8(value: number): this {
    const at = this.reserve(1);
    this.view.setUint8(at, value);
    return this;
  }
  u16(value: number): this {
    const at = this.reserve(2);
    this.view.setUint16(at, value, true);
    return this;
  }
  u32(value: number): this {
    const at = this.reserve(4);
    this.view.setUint32(at, value, true);
    return this;
  }
  u64(value: number | bigint): this {
    const at = this.reserve(8);
    this.view.setBigUint64(at, BigInt(value), true);
    return this;
  }
  bytes(source: Uint8Array): this {
    const at = this.reserve(source.length);
    this.buffer.set(source, at);
    return this;
  }
  zeros(count: number): this {
    const at = this.reserve(count);
    this.buffer.fill(0, at, this.used);
    return this;
  }
  /** ASCII text in exactly `size` bytes, padded with `pad` (spaces for OEM ids, NULs elsewhere). */
  ascii(text: string, size: number, pad = ' '): this {
    const padded = text.padEnd(size, pad);
    for (let i = 0; i < size; i++) this.u8(padded.charCodeAt(i) & 0x7f);
    return this;
  }
  /** Zero bytes up to the next multiple of `alignment`. */
  align(alignment: number): this {
    return this.zeros((alignment - (this.used % alignment)) % alignment);
  }

  /** The bytes written so far (a copy). */
  toBytes(): Uint8Array {
    return this.buffer.slice(0, this.used);
  }
}

/** The byte that makes `bytes` sum to 0 mod 256, given that the checksum byte itself is currently 0. */
export function checksumByte(bytes: Uint8Array): number {
  let sum = 0;
  for (const b of bytes) sum = (sum + b) & 0xff;
  return (0x100 - sum) & 0xff;
}

/** Sets bytes[at] so that bytes[start, end) sums to 0 mod 256. */
export function fixChecksum(bytes: Uint8Array, at: number, start = 0, end = bytes.length): void {
  bytes[at] = 0;
  bytes[at] = checksumByte(bytes.subarray(start, end));
}
