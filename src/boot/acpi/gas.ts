/** Generic Address Structure (ACPI 6.5 §5.2.3.2): 12 bytes naming a register. */

export const GAS_SIZE = 12;
export const GAS_SPACE_SYSTEM_MEMORY = 0;
export const GAS_SPACE_SYSTEM_IO = 1;
export const GAS_ACCESS_UNDEFINED = 0;
export const GAS_ACCESS_BYTE = 1;
export const GAS_ACCESS_WORD = 2;
export const GAS_ACCESS_DWORD = 3;
export const GAS_ACCESS_QWORD = 4;

export interface GenericAddress {
  readonly space: number;
  readonly bitWidth: number;
  readonly bitOffset?: number;
  readonly accessSize: number;
  readonly address: number;
}

/** An I/O port register of `bytes` bytes, accessed `accessSize` at a time. */
export function ioRegister(port: number, bytes: number, accessSize: number): GenericAddress {
  return { space: GAS_SPACE_SYSTEM_IO, bitWidth: bytes * 8, accessSize, address: port };
}

export function writeGas(view: DataView, offset: number, gas: GenericAddress): void {
  view.setUint8(offset, gas.space);
  view.setUint8(offset + 1, gas.bitWidth);
  view.setUint8(offset + 2, gas.bitOffset ?? 0);
  view.setUint8(offset + 3, gas.accessSize);
  view.setBigUint64(offset + 4, BigInt(gas.address), true);
}
