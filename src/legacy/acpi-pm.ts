/**
 * The ACPI fixed hardware the FADT points at (not hardware-reduced): the PM1a
 * event block (status/enable) at 0x600, the PM1a control block at 0x604 and
 * the reset register at 0x608. Writing SLP_TYP = 5 (the DSDT's \_S5) with
 * SLP_EN powers the VM off (status 0); writing the reset value resets it (32).
 * ACPI is always enabled (no SMI command port): SCI_EN always reads as set.
 */
import type { BusDevice } from '../vmm/bus.js';
import { dataValue, setDataValue } from '../vmm/bus.js';
import { defineBusDevice, type DeviceContext } from '../vmm/device.js';
import { EXIT_GUEST_RESET, EXIT_POWER_OFF } from '../base/exit-status.js';

export const ACPI_PM_BASE = 0x600;
export const PM1A_EVT_BLK = 0x600;
export const PM1A_EVT_LEN = 4;
export const PM1A_CNT_BLK = 0x604;
export const PM1A_CNT_LEN = 2;
export const ACPI_RESET_PORT = 0x608;
export const ACPI_RESET_VALUE = 0x01;
export const ACPI_PM_PORT_COUNT = ACPI_RESET_PORT - ACPI_PM_BASE + 1;
/** The SLP_TYP value the DSDT's \_S5 object gives for soft-off. */
export const SLP_TYP_S5 = 5;
export const ACPI_SCI_IRQ = 9;

export const PM1_CNT_SCI_EN = 1 << 0;
export const PM1_CNT_SLP_TYP_SHIFT = 10;
export const PM1_CNT_SLP_TYP_MASK = 0x7 << PM1_CNT_SLP_TYP_SHIFT;
export const PM1_CNT_SLP_EN = 1 << 13;

// Shared words: PM1 status, PM1 enable, PM1 control.
const STS = 0;
const EN = 1;
const CNT = 2;

export function createAcpiPmState(): SharedArrayBuffer {
  return new SharedArrayBuffer(3 * 4);
}

export class AcpiPm implements BusDevice {
  private readonly words: Int32Array;

  constructor(
    shared: SharedArrayBuffer,
    private readonly requestExit: DeviceContext['requestExit'],
  ) {
    this.words = new Int32Array(shared);
  }

  read(offset: number, data: Uint8Array): void {
    const port = ACPI_PM_BASE + offset;
    let value = 0;
    if (port === PM1A_EVT_BLK) value = Atomics.load(this.words, STS) | (Atomics.load(this.words, EN) << 16);
    else if (port === PM1A_EVT_BLK + 2) value = Atomics.load(this.words, EN);
    else if (port === PM1A_CNT_BLK) value = Atomics.load(this.words, CNT) | PM1_CNT_SCI_EN;
    setDataValue(data, value & (2 ** (8 * data.length) - 1));
  }

  write(offset: number, data: Uint8Array): void {
    const port = ACPI_PM_BASE + offset;
    const value = dataValue(data);
    if (port === PM1A_EVT_BLK) {
      Atomics.and(this.words, STS, ~(value & 0xffff)); // write-1-to-clear
      if (data.length === 4) Atomics.store(this.words, EN, value >>> 16);
    } else if (port === PM1A_EVT_BLK + 2) {
      Atomics.store(this.words, EN, value & 0xffff);
    } else if (port === PM1A_CNT_BLK) {
      Atomics.store(this.words, CNT, value & ~PM1_CNT_SLP_EN & 0xffff);
      const slpTyp = (value & PM1_CNT_SLP_TYP_MASK) >> PM1_CNT_SLP_TYP_SHIFT;
      if (value & PM1_CNT_SLP_EN && slpTyp === SLP_TYP_S5) {
        this.requestExit({ status: EXIT_POWER_OFF, reason: 'guest powered off through ACPI (S5)' });
      }
    } else if (port === ACPI_RESET_PORT && (value & 0xff) === ACPI_RESET_VALUE) {
      this.requestExit({ status: EXIT_GUEST_RESET, reason: 'guest reset through the ACPI reset register' });
    }
  }
}

export const acpiPmDevice = defineBusDevice<{ readonly state: SharedArrayBuffer }>({
  module: import.meta.url,
  exportName: 'acpiPmDevice',
  create: ({ state }, context) => new AcpiPm(state, (exit) => context.requestExit(exit)),
});
