/**
 * The CMOS RTC/NVRAM at ports 0x70 (index) and 0x71 (data). Time registers
 * are read from the host clock (UTC) at each access in the format status
 * register B asks for; the other bytes are NVRAM, with the memory-size bytes
 * firmware would have written.
 */
import type { BusDevice } from '../vmm/bus.js';
import { defineBusDevice } from '../vmm/device.js';
import { SharedLock } from '../vmm/shared-lock.js';

export const CMOS_INDEX_PORT = 0x70;
export const CMOS_PORT_COUNT = 2;

export const RTC_SECONDS = 0x00;
export const RTC_MINUTES = 0x02;
export const RTC_HOURS = 0x04;
export const RTC_DAY_OF_WEEK = 0x06;
export const RTC_DAY_OF_MONTH = 0x07;
export const RTC_MONTH = 0x08;
export const RTC_YEAR = 0x09;
export const RTC_REG_A = 0x0a;
export const RTC_REG_B = 0x0b;
export const RTC_REG_C = 0x0c;
export const RTC_REG_D = 0x0d;
export const RTC_CENTURY = 0x32;
export const CMOS_BASE_MEM_LOW = 0x15;
export const CMOS_EXT_MEM_LOW = 0x17;
export const CMOS_EXT_MEM2_LOW = 0x30;
export const CMOS_MEM_ABOVE_16M_LOW = 0x34;
export const CMOS_MEM_ABOVE_4G_LOW = 0x5b;
export const RTC_REG_B_24H = 0x02;
export const RTC_REG_B_BINARY = 0x04;
export const RTC_REG_D_VRT = 0x80;
/** Divider 32.768 kHz, rate 1024 Hz; update-in-progress never set. */
const RTC_REG_A_DEFAULT = 0x26;
const INDEX_MASK = 0x7f; // bit 7 of the index port is the NMI mask

// Shared layout: lock, index, then 128 NVRAM bytes.
const LOCK = 0;
const INDEX = 1;
const HEADER_CELLS = 2;
const NVRAM_SIZE = 128;

export function createCmosState(memoryBytes: number, highMemoryBytes: number): SharedArrayBuffer {
  const shared = new SharedArrayBuffer(HEADER_CELLS * 4 + NVRAM_SIZE);
  const nvram = new Uint8Array(shared, HEADER_CELLS * 4, NVRAM_SIZE);
  nvram[RTC_REG_A] = RTC_REG_A_DEFAULT;
  nvram[RTC_REG_B] = RTC_REG_B_24H;
  nvram[RTC_REG_D] = RTC_REG_D_VRT;
  const lowBytes = memoryBytes - highMemoryBytes;
  const put16 = (at: number, value: number): void => {
    const v = Math.min(0xffff, Math.max(0, Math.floor(value)));
    nvram[at] = v & 0xff;
    nvram[at + 1] = v >> 8;
  };
  put16(CMOS_BASE_MEM_LOW, 640); // KiB of base memory
  const extendedKiB = Math.max(0, lowBytes - 0x100000) / 1024;
  put16(CMOS_EXT_MEM_LOW, extendedKiB);
  put16(CMOS_EXT_MEM2_LOW, extendedKiB);
  put16(CMOS_MEM_ABOVE_16M_LOW, Math.max(0, lowBytes - 0x1000000) / 0x10000);
  const above4G = highMemoryBytes / 0x10000; // 64 KiB units, 24 bits
  nvram[CMOS_MEM_ABOVE_4G_LOW] = above4G & 0xff;
  nvram[CMOS_MEM_ABOVE_4G_LOW + 1] = (above4G >> 8) & 0xff;
  nvram[CMOS_MEM_ABOVE_4G_LOW + 2] = (above4G >> 16) & 0xff;
  return shared;
}

function toBcd(value: number): number {
  return ((Math.floor(value / 10) % 10) << 4) | value % 10;
}

class CmosRtc implements BusDevice {
  private readonly cells: Int32Array;
  private readonly nvram: Uint8Array;
  private readonly lock: SharedLock;

  constructor(
    shared: SharedArrayBuffer,
    private readonly now: () => Date,
  ) {
    this.cells = new Int32Array(shared, 0, HEADER_CELLS);
    this.nvram = new Uint8Array(shared, HEADER_CELLS * 4, NVRAM_SIZE);
    this.lock = new SharedLock(this.cells, LOCK);
  }

  private timeRegister(index: number): number | undefined {
    const t = this.now();
    const regB = this.nvram[RTC_REG_B]!;
    const encode = (v: number): number => (regB & RTC_REG_B_BINARY ? v : toBcd(v));
    switch (index) {
      case RTC_SECONDS:
        return encode(t.getUTCSeconds());
      case RTC_MINUTES:
        return encode(t.getUTCMinutes());
      case RTC_HOURS: {
        const h = t.getUTCHours();
        if (regB & RTC_REG_B_24H) return encode(h);
        const pm = h >= 12 ? 0x80 : 0;
        return encode(h % 12 === 0 ? 12 : h % 12) | pm;
      }
      case RTC_DAY_OF_WEEK:
        return encode(t.getUTCDay() + 1);
      case RTC_DAY_OF_MONTH:
        return encode(t.getUTCDate());
      case RTC_MONTH:
        return encode(t.getUTCMonth() + 1);
      case RTC_YEAR:
        return encode(t.getUTCFullYear() % 100);
      case RTC_CENTURY:
        return encode(Math.floor(t.getUTCFullYear() / 100));
      case RTC_REG_C:
        return 0; // no interrupt flags: the RTC raises no IRQ 8
      default:
        return undefined;
    }
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    this.lock.with(() => {
      if (offset === 0) {
        data[0] = this.cells[INDEX]!;
        return;
      }
      const index = this.cells[INDEX]!;
      data[0] = this.timeRegister(index) ?? this.nvram[index]!;
    });
  }

  write(offset: number, data: Uint8Array): void {
    const value = data[0]!;
    this.lock.with(() => {
      if (offset === 0) {
        this.cells[INDEX] = value & INDEX_MASK;
        return;
      }
      const index = this.cells[INDEX]!;
      // Setting the clock is accepted and ignored: the guest always sees host time.
      if (index === RTC_REG_C || index === RTC_REG_D) return;
      if (this.timeRegister(index) === undefined) this.nvram[index] = value;
    });
  }
}

export const cmosRtcDevice = defineBusDevice<{ readonly state: SharedArrayBuffer }>({
  module: import.meta.url,
  exportName: 'cmosRtcDevice',
  create: ({ state }) => new CmosRtc(state, () => new Date()),
});

/** For tests: a CMOS with a fixed clock. */
export function cmosWithClock(shared: SharedArrayBuffer, now: () => Date): BusDevice {
  return new CmosRtc(shared, now);
}
