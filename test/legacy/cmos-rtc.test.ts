import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  CMOS_EXT_MEM2_LOW,
  CMOS_MEM_ABOVE_4G_LOW,
  RTC_CENTURY,
  RTC_DAY_OF_MONTH,
  RTC_HOURS,
  RTC_MINUTES,
  RTC_MONTH,
  RTC_REG_B,
  RTC_REG_B_BINARY,
  RTC_REG_B_24H,
  RTC_SECONDS,
  RTC_YEAR,
  cmosWithClock,
  createCmosState,
} from '../../src/legacy/cmos-rtc.js';

const clock = () => new Date(Date.UTC(2026, 10, 24, 21, 5, 9));

function reader(memory = 256 * 2 ** 20, high = 0) {
  const dev = cmosWithClock(createCmosState(memory, high), clock);
  const data = new Uint8Array(1);
  return {
    read(index: number): number {
      dev.write(0, Uint8Array.of(index | 0x80)); // bit 7 (NMI mask) is not part of the index
      dev.read(1, data);
      return data[0]!;
    },
    write(index: number, value: number): void {
      dev.write(0, Uint8Array.of(index));
      dev.write(1, Uint8Array.of(value));
    },
  };
}

test('time registers are BCD in 24-hour mode by default', () => {
  const cmos = reader();
  assert.is(cmos.read(RTC_SECONDS), 0x09);
  assert.is(cmos.read(RTC_MINUTES), 0x05);
  assert.is(cmos.read(RTC_HOURS), 0x21);
  assert.is(cmos.read(RTC_DAY_OF_MONTH), 0x24);
  assert.is(cmos.read(RTC_MONTH), 0x11);
  assert.is(cmos.read(RTC_YEAR), 0x26);
  assert.is(cmos.read(RTC_CENTURY), 0x20);
});

test('status B selects binary and 12-hour formats', () => {
  const cmos = reader();
  cmos.write(RTC_REG_B, RTC_REG_B_BINARY | RTC_REG_B_24H);
  assert.is(cmos.read(RTC_HOURS), 21);
  assert.is(cmos.read(RTC_YEAR), 26);
  cmos.write(RTC_REG_B, RTC_REG_B_BINARY);
  assert.is(cmos.read(RTC_HOURS), 9 | 0x80);
});

test('NVRAM keeps written bytes and reports memory sizes', () => {
  const cmos = reader(5 * 2 ** 30, 2 * 2 ** 30);
  cmos.write(0x40, 0x77);
  assert.is(cmos.read(0x40), 0x77);
  const ext = cmos.read(CMOS_EXT_MEM2_LOW) | (cmos.read(CMOS_EXT_MEM2_LOW + 1) << 8);
  assert.is(ext, 0xffff); // saturates like firmware does
  const above4g =
    cmos.read(CMOS_MEM_ABOVE_4G_LOW) | (cmos.read(CMOS_MEM_ABOVE_4G_LOW + 1) << 8) | (cmos.read(CMOS_MEM_ABOVE_4G_LOW + 2) << 16);
  assert.is(above4g * 0x10000, 2 * 2 ** 30);
});

test.run();
