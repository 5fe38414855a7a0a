/**
 * The one way into guest physical memory. Every access is checked as a whole
 * range against the RAM regions; guest-supplied addresses may be hostile.
 * Production regions are views over mmap'd RAM (same bytes in every thread);
 * tests build the same class over plain ArrayBuffers.
 */
import { EXIT_HOST_ERROR } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';

export type GuestMemoryErrorKind = 'out-of-range' | 'bad-layout';

/** An access outside guest RAM. Callers turn guest-caused ones into guest errors; one that escapes is the VMM's: status 4. */
export class GuestMemoryError extends VmmError<GuestMemoryErrorKind> {
  constructor(kind: GuestMemoryErrorKind, message: string) {
    super(kind, message, { status: EXIT_HOST_ERROR });
  }
}

/** A contiguous piece of guest RAM. */
export interface MemoryRegion {
  /** Guest physical address of the first byte. */
  readonly guestBase: number;
  /** The bytes themselves (a view over host memory). */
  readonly bytes: Uint8Array;
  /** Host virtual address of bytes[0] when the region is mmap'd, for syscalls that take iovecs. */
  readonly hostAddress?: number;
}

/** What crosses a thread boundary to rebuild the same memory in a worker. */
export interface RegionDescriptor {
  readonly guestBase: number;
  readonly size: number;
  readonly hostAddress: number;
}

export class GuestMemory {
  private readonly regions: readonly MemoryRegion[];
  private readonly views: readonly DataView[];

  constructor(regions: readonly MemoryRegion[]) {
    const sorted = [...regions].sort((a, b) => a.guestBase - b.guestBase);
    for (let i = 1; i < sorted.length; i++) {
      const prev = sorted[i - 1]!;
      if (prev.guestBase + prev.bytes.length > sorted[i]!.guestBase) {
        throw new GuestMemoryError('bad-layout', `memory regions overlap at 0x${sorted[i]!.guestBase.toString(16)}`);
      }
    }
    this.regions = sorted;
    this.views = sorted.map((r) => new DataView(r.bytes.buffer, r.bytes.byteOffset, r.bytes.byteLength));
  }

  /** Guest memory over fresh zeroed ArrayBuffers, for tests and tools: one region per [base, size]. */
  static fromLayout(layout: ReadonlyArray<readonly [number, number]>): GuestMemory {
    return new GuestMemory(layout.map(([guestBase, size]) => ({ guestBase, bytes: new Uint8Array(size) })));
  }

  get regionList(): readonly MemoryRegion[] {
    return this.regions;
  }

  /** Total bytes of RAM. */
  get size(): number {
    return this.regions.reduce((sum, r) => sum + r.bytes.length, 0);
  }

  /** Highest guest physical address + 1 that is RAM. */
  get end(): number {
    const last = this.regions[this.regions.length - 1];
    return last ? last.guestBase + last.bytes.length : 0;
  }

  /** Region index holding [address, address + length), or -1. */
  private find(address: number, length: number): number {
    if (!Number.isSafeInteger(address) || !Number.isSafeInteger(length) || address < 0 || length < 0) return -1;
    for (let i = 0; i < this.regions.length; i++) {
      const r = this.regions[i]!;
      if (address >= r.guestBase && address + length <= r.guestBase + r.bytes.length) return i;
    }
    return -1;
  }

  private locate(address: number, length: number): number {
    const i = this.find(address, length);
    if (i < 0) {
      throw new GuestMemoryError(
        'out-of-range',
        `guest range 0x${address.toString(16)}+0x${length.toString(16)} is not RAM`,
      );
    }
    return i;
  }

  /**
   * The region holding all of [address, address + length), or -1: with regionBase, regionHost and
   * regionView, a hot path checks a guest range once and then indexes the region itself.
   */
  regionIndex(address: number, length: number): number {
    return this.find(address, length);
  }

  /** Guest physical address of region i's first byte. */
  regionBase(i: number): number {
    return this.regions[i]!.guestBase;
  }

  /** Host virtual address of region i's first byte, or -1 when it has no host mapping (tests). */
  regionHost(i: number): number {
    return this.regions[i]!.hostAddress ?? -1;
  }

  /** A DataView over all of region i (index it at guest address − regionBase(i)). */
  regionView(i: number): DataView {
    return this.views[i]!;
  }

  /** True when the whole range is RAM (within one region). */
  contains(address: number, length: number): boolean {
    return this.find(address, length) >= 0;
  }

  /** Converts a guest-supplied 64-bit address, refusing anything that is not a safe integer. */
  static toAddress(value: bigint): number {
    if (value < 0n || value > BigInt(Number.MAX_SAFE_INTEGER)) {
      throw new GuestMemoryError('out-of-range', `guest address 0x${value.toString(16)} is out of range`);
    }
    return Number(value);
  }

  /** A live view (no copy) of guest bytes: writes through it land in the guest. */
  slice(address: number, length: number): Uint8Array {
    const i = this.locate(address, length);
    const r = this.regions[i]!;
    const offset = address - r.guestBase;
    return r.bytes.subarray(offset, offset + length);
  }

  /** Host virtual address of a guest range, for iovec-based syscalls (mmap'd memory only). */
  hostAddress(address: number, length: number): number {
    const r = this.regions[this.locate(address, length)]!;
    if (r.hostAddress === undefined) {
      throw new GuestMemoryError('bad-layout', 'guest memory has no host mapping');
    }
    return r.hostAddress + (address - r.guestBase);
  }

  read(address: number, target: Uint8Array): void {
    target.set(this.slice(address, target.length));
  }

  write(address: number, source: Uint8Array): void {
    this.slice(address, source.length).set(source);
  }

  fill(address: number, length: number, value = 0): void {
    this.slice(address, length).fill(value);
  }

  // The accessors locate the region once and index its DataView: no allocation per access.
  private offsetIn(i: number, address: number): number {
    return address - this.regions[i]!.guestBase;
  }

  readU8(address: number): number {
    const i = this.locate(address, 1);
    return this.views[i]!.getUint8(this.offsetIn(i, address));
  }
  readU16(address: number): number {
    const i = this.locate(address, 2);
    return this.views[i]!.getUint16(this.offsetIn(i, address), true);
  }
  readU32(address: number): number {
    const i = this.locate(address, 4);
    return this.views[i]!.getUint32(this.offsetIn(i, address), true);
  }
  readU64(address: number): bigint {
    const i = this.locate(address, 8);
    return this.views[i]!.getBigUint64(this.offsetIn(i, address), true);
  }
  writeU8(address: number, value: number): void {
    const i = this.locate(address, 1);
    this.views[i]!.setUint8(this.offsetIn(i, address), value);
  }
  writeU16(address: number, value: number): void {
    const i = this.locate(address, 2);
    this.views[i]!.setUint16(this.offsetIn(i, address), value, true);
  }
  writeU32(address: number, value: number): void {
    const i = this.locate(address, 4);
    this.views[i]!.setUint32(this.offsetIn(i, address), value, true);
  }
  writeU64(address: number, value: bigint | number): void {
    const i = this.locate(address, 8);
    this.views[i]!.setBigUint64(this.offsetIn(i, address), BigInt(value), true);
  }

  /** Reads a NUL-terminated string of at most maxLength bytes. */
  readCString(address: number, maxLength: number): string {
    let end = address;
    const limit = address + maxLength;
    while (end < limit && this.contains(end, 1) && this.readU8(end) !== 0) end++;
    return Buffer.from(this.slice(address, end - address)).toString('latin1');
  }
}
