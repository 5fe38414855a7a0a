/**
 * Address-range dispatch for port I/O and MMIO exits. Devices see offsets
 * from their own base only; overlapping ranges are refused at insert time.
 */
import { EXIT_HOST_ERROR } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';

export interface BusDevice {
  /** Fill data (1, 2, 4 or 8 bytes, little-endian) with the value read at offset. */
  read(offset: number, data: Uint8Array): void;
  write(offset: number, data: Uint8Array): void;
}

export type BusErrorKind = 'overlap' | 'bad-range';

/** Two devices claim one range, or a bad registration: the VMM's own layout, status 4. */
export class BusError extends VmmError<BusErrorKind> {
  constructor(kind: BusErrorKind, message: string) {
    super(kind, message, { status: EXIT_HOST_ERROR });
  }
}

interface BusRange {
  readonly base: number;
  readonly end: number; // exclusive
  readonly name: string;
  readonly device: BusDevice;
}

export interface BusMatch {
  readonly device: BusDevice;
  readonly offset: number;
  readonly name: string;
}

export class Bus {
  private ranges: BusRange[] = [];
  private readonly unhandledSeen = new Set<number>();

  constructor(
    readonly label: 'pio' | 'mmio',
    private readonly onUnhandled: (address: number, write: boolean, size: number) => void = () => {},
  ) {}

  insert(base: number, length: number, name: string, device: BusDevice): void {
    if (!Number.isSafeInteger(base) || !Number.isSafeInteger(length) || base < 0 || length <= 0) {
      throw new BusError('bad-range', `${this.label} range for ${name} is invalid`);
    }
    const end = base + length;
    const clash = this.ranges.find((r) => base < r.end && r.base < end);
    if (clash) {
      throw new BusError(
        'overlap',
        `${this.label} range 0x${base.toString(16)}-0x${(end - 1).toString(16)} of ${name} overlaps ${clash.name}`,
      );
    }
    this.ranges.push({ base, end, name, device });
    this.ranges.sort((a, b) => a.base - b.base);
  }

  find(address: number): BusMatch | undefined {
    let lo = 0;
    let hi = this.ranges.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = this.ranges[mid]!;
      if (address < r.base) hi = mid - 1;
      else if (address >= r.end) lo = mid + 1;
      else return { device: r.device, offset: address - r.base, name: r.name };
    }
    return undefined;
  }

  /** Reads into data; an unclaimed address reads as all-ones, like an open bus. */
  read(address: number, data: Uint8Array): void {
    const match = this.find(address);
    if (match) {
      match.device.read(match.offset, data);
      return;
    }
    data.fill(0xff);
    this.reportUnhandled(address, false, data.length);
  }

  write(address: number, data: Uint8Array): void {
    const match = this.find(address);
    if (match) {
      match.device.write(match.offset, data);
      return;
    }
    this.reportUnhandled(address, true, data.length);
  }

  /** Reported once per address so a polling guest cannot flood the log. */
  private reportUnhandled(address: number, write: boolean, size: number): void {
    if (this.unhandledSeen.has(address)) return;
    this.unhandledSeen.add(address);
    this.onUnhandled(address, write, size);
  }
}

/** Little-endian value of a 1–8 byte access (numbers are exact up to 6 bytes, enough for PIO/MMIO registers). */
export function dataValue(data: Uint8Array): number {
  let value = 0;
  for (let i = data.length - 1; i >= 0; i--) value = value * 256 + data[i]!;
  return value;
}

export function setDataValue(data: Uint8Array, value: number): void {
  let v = value;
  for (let i = 0; i < data.length; i++) {
    data[i] = v & 0xff;
    v = Math.floor(v / 256);
  }
}
