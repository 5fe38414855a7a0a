/**
 * FADT (signature "FACP", ACPI 6.5 §5.2.9), revision 6.3, for a PC with ACPI
 * fixed hardware — not hardware-reduced, so Linux uses the PM1a registers
 * for S5 and the SCI, and the reset register for reboot.
 */

import { systemDescriptionTable, SDT_HEADER_SIZE } from './sdt.js';
import { GAS_ACCESS_BYTE, GAS_ACCESS_WORD, ioRegister, writeGas } from './gas.js';
import {
  PM1A_CNT_BLK,
  PM1A_EVT_BLK,
  PM1_CNT_LEN,
  PM1_EVT_LEN,
  RESET_REG_PORT,
  RESET_VALUE,
  RTC_CENTURY_INDEX,
  SCI_IRQ,
} from './platform.js';

export const FADT_SIGNATURE = 'FACP';
export const FADT_REVISION = 6;
export const FADT_MINOR_REVISION = 3;
export const FADT_SIZE = 276;

// Field offsets from the start of the table.
export const FADT_FIRMWARE_CTRL = 36;
export const FADT_DSDT = 40;
export const FADT_PREFERRED_PM_PROFILE = 45;
export const FADT_SCI_INT = 46;
export const FADT_SMI_CMD = 48;
export const FADT_PM1A_EVT_BLK = 56;
export const FADT_PM1A_CNT_BLK = 64;
export const FADT_PM_TMR_BLK = 76;
export const FADT_PM1_EVT_LEN = 88;
export const FADT_PM1_CNT_LEN = 89;
export const FADT_PM_TMR_LEN = 91;
export const FADT_P_LVL2_LAT = 96;
export const FADT_P_LVL3_LAT = 98;
export const FADT_CENTURY = 108;
export const FADT_IAPC_BOOT_ARCH = 109;
export const FADT_FLAGS = 112;
export const FADT_RESET_REG = 116;
export const FADT_RESET_VALUE = 128;
export const FADT_MINOR_VERSION = 131;
export const FADT_X_FIRMWARE_CTRL = 132;
export const FADT_X_DSDT = 140;
export const FADT_X_PM1A_EVT_BLK = 148;
export const FADT_X_PM1A_CNT_BLK = 172;

// Fixed feature flags (Table 5.10).
export const FADT_F_WBINVD = 1 << 0;
export const FADT_F_PROC_C1 = 1 << 2;
/** Set: no fixed-hardware power button (none, or a control-method one). */
export const FADT_F_PWR_BUTTON = 1 << 4;
/** Set: no fixed-hardware sleep button. */
export const FADT_F_SLP_BUTTON = 1 << 5;
/** Set: RTC wake status is not in the fixed registers (our PM1 block has no RTC_STS). */
export const FADT_F_FIX_RTC = 1 << 6;
export const FADT_F_RESET_REG_SUP = 1 << 10;
export const FADT_F_HW_REDUCED_ACPI = 1 << 20;

// IA-PC boot architecture flags (Table 5.11).
export const IAPC_LEGACY_DEVICES = 1 << 0;
export const IAPC_8042 = 1 << 1;
export const IAPC_VGA_NOT_PRESENT = 1 << 2;
export const IAPC_MSI_NOT_SUPPORTED = 1 << 3;
export const IAPC_PCIE_ASPM_CONTROLS = 1 << 4;
export const IAPC_CMOS_RTC_NOT_PRESENT = 1 << 5;

export const FADT_FLAGS_VALUE = FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_PWR_BUTTON | FADT_F_SLP_BUTTON | FADT_F_FIX_RTC | FADT_F_RESET_REG_SUP;
/** ISA devices (UART, i8042, RTC) present, an 8042, no VGA; MSI and the CMOS RTC usable (their bits clear). */
export const IAPC_BOOT_ARCH_VALUE = IAPC_LEGACY_DEVICES | IAPC_8042 | IAPC_VGA_NOT_PRESENT;
/** Latencies above 100 / 1000 µs mean "C2 / C3 not supported". */
export const P_LVL2_LAT_NONE = 0x0fff;
export const P_LVL3_LAT_NONE = 0x0fff;

export interface FadtAddresses {
  readonly facs: number;
  readonly dsdt: number;
}

export function buildFadt({ facs, dsdt }: FadtAddresses): Uint8Array {
  const body = new Uint8Array(FADT_SIZE - SDT_HEADER_SIZE);
  const v = new DataView(body.buffer);
  const at = (offset: number): number => offset - SDT_HEADER_SIZE;
  // Both the 32-bit and 64-bit pointers, equal, so neither ACPICA nor an old OS complains.
  v.setUint32(at(FADT_FIRMWARE_CTRL), facs, true);
  v.setUint32(at(FADT_DSDT), dsdt, true);
  v.setUint16(at(FADT_SCI_INT), SCI_IRQ, true);
  // SMI_CMD = 0: ACPI mode is always on, there is no SMM handshake.
  v.setUint32(at(FADT_SMI_CMD), 0, true);
  v.setUint32(at(FADT_PM1A_EVT_BLK), PM1A_EVT_BLK, true);
  v.setUint32(at(FADT_PM1A_CNT_BLK), PM1A_CNT_BLK, true);
  v.setUint8(at(FADT_PM1_EVT_LEN), PM1_EVT_LEN);
  v.setUint8(at(FADT_PM1_CNT_LEN), PM1_CNT_LEN);
  // No PM timer (optional since ACPI 5.0A): guests use kvm-clock / TSC.
  v.setUint8(at(FADT_PM_TMR_LEN), 0);
  v.setUint16(at(FADT_P_LVL2_LAT), P_LVL2_LAT_NONE, true);
  v.setUint16(at(FADT_P_LVL3_LAT), P_LVL3_LAT_NONE, true);
  v.setUint8(at(FADT_CENTURY), RTC_CENTURY_INDEX);
  v.setUint16(at(FADT_IAPC_BOOT_ARCH), IAPC_BOOT_ARCH_VALUE, true);
  v.setUint32(at(FADT_FLAGS), FADT_FLAGS_VALUE, true);
  writeGas(v, at(FADT_RESET_REG), ioRegister(RESET_REG_PORT, 1, GAS_ACCESS_BYTE));
  v.setUint8(at(FADT_RESET_VALUE), RESET_VALUE);
  v.setUint8(at(FADT_MINOR_VERSION), FADT_MINOR_REVISION);
  v.setBigUint64(at(FADT_X_FIRMWARE_CTRL), BigInt(facs), true);
  v.setBigUint64(at(FADT_X_DSDT), BigInt(dsdt), true);
  // PM1 status/enable and control are 16-bit registers.
  writeGas(v, at(FADT_X_PM1A_EVT_BLK), ioRegister(PM1A_EVT_BLK, PM1_EVT_LEN, GAS_ACCESS_WORD));
  writeGas(v, at(FADT_X_PM1A_CNT_BLK), ioRegister(PM1A_CNT_BLK, PM1_CNT_LEN, GAS_ACCESS_WORD));
  return systemDescriptionTable(FADT_SIGNATURE, FADT_REVISION, body);
}
