/**
 * Resource data types for ResourceTemplate() (ACPI 6.5 §6.4): the small and
 * large descriptors a DSDT's _CRS needs. resourceTemplate() wraps them in a
 * Buffer with the End Tag, as ASL's ResourceTemplate does.
 */

import { FirmwareError } from './firmware-error.js';
import { buffer, concat, type Aml } from './aml.js';
import { ByteWriter } from './byte-writer.js';

// Small item tags (bits 6-3) with their lengths (bits 2-0) folded in.
export const SMALL_IRQ_NO_FLAGS = 0x22; // IRQ, length 2: edge, active-high, exclusive
export const SMALL_IRQ = 0x23; // IRQ, length 3: with an information byte
export const SMALL_IO_PORT = 0x47; // I/O port, length 7
export const SMALL_END_TAG = 0x79; // End Tag, length 1
// Large item types (bit 7 set), followed by a 16-bit length.
export const LARGE_MEMORY32_FIXED = 0x86;
export const LARGE_DWORD_ADDRESS_SPACE = 0x87;
export const LARGE_WORD_ADDRESS_SPACE = 0x88;
export const LARGE_EXTENDED_INTERRUPT = 0x89;
export const LARGE_QWORD_ADDRESS_SPACE = 0x8a;

/** IO port descriptor information: decodes 16 address bits (rather than 10). */
export const IO_DECODE_16 = 1 << 0;
/** Small IRQ information byte. */
export const IRQ_EDGE = 1 << 0;
export const IRQ_ACTIVE_LOW = 1 << 3;
export const IRQ_SHARED = 1 << 4;
/** Extended interrupt flags. */
export const EXT_IRQ_CONSUMER = 1 << 0;
export const EXT_IRQ_EDGE = 1 << 1;
export const EXT_IRQ_ACTIVE_LOW = 1 << 2;
export const EXT_IRQ_SHARED = 1 << 3;
/** Memory32Fixed information: read-write. */
export const MEMORY_READ_WRITE = 1 << 0;

/** Address space resource types. */
export const ADDRESS_SPACE_MEMORY = 0;
export const ADDRESS_SPACE_IO = 1;
export const ADDRESS_SPACE_BUS_NUMBER = 2;
/** Address space general flags (_DEC clear: positive decode; bit 0 clear: producer). */
export const ADDRESS_CONSUMER = 1 << 0;
export const ADDRESS_MIN_FIXED = 1 << 2;
export const ADDRESS_MAX_FIXED = 1 << 3;
/** Memory type-specific flags: _RW and _MEM (bits 2-1). */
export const MEMORY_TYPE_READ_WRITE = 1 << 0;
export const MEMORY_TYPE_NON_CACHEABLE = 0 << 1;
export const MEMORY_TYPE_CACHEABLE = 1 << 1;
/** I/O type-specific flags: _RNG = entire range (ISA and non-ISA). */
export const IO_TYPE_ENTIRE_RANGE = 3;

function check(what: string, value: number | bigint, max: bigint): bigint {
  if ((typeof value === 'number' && !Number.isSafeInteger(value)) || BigInt(value) < 0n || BigInt(value) > max) {
    throw new FirmwareError('bad-aml', `${what} ${value} is out of range (0-0x${max.toString(16)})`);
  }
  return BigInt(value);
}

/** IO(Decode16, min, max, alignment, length). */
export function ioPort(min: number, max: number, alignment: number, length: number): Aml {
  check('IO minimum', min, 0xffffn);
  check('IO maximum', max, 0xffffn);
  check('IO alignment', alignment, 0xffn);
  check('IO length', length, 0xffn);
  return new ByteWriter().u8(SMALL_IO_PORT).u8(IO_DECODE_16).u16(min).u16(max).u8(alignment).u8(length).toBytes();
}

/** A fixed I/O range at `base` (min = max), byte-aligned. */
export function ioFixedRange(base: number, length: number): Aml {
  return ioPort(base, base, 1, length);
}

/**
 * IRQ descriptor for ISA lines 0-15: IRQNoFlags (edge, active-high, exclusive)
 * when no flags are given, else the 3-byte form with its information byte.
 */
export function irq(lines: readonly number[], flags?: number): Aml {
  let mask = 0;
  for (const line of lines) mask |= 1 << Number(check('IRQ', line, 15n));
  const w = new ByteWriter();
  if (flags === undefined) return w.u8(SMALL_IRQ_NO_FLAGS).u16(mask).toBytes();
  return w.u8(SMALL_IRQ).u16(mask).u8(Number(check('IRQ flags', flags, 0x3fn))).toBytes();
}

/** Memory32Fixed(ReadWrite/ReadOnly, base, length). */
export function memory32Fixed(base: number, length: number, writable = true): Aml {
  check('Memory32Fixed base', base, 0xffff_ffffn);
  check('Memory32Fixed length', length, 0xffff_ffffn);
  return new ByteWriter().u8(LARGE_MEMORY32_FIXED).u16(9).u8(writable ? MEMORY_READ_WRITE : 0).u32(base).u32(length).toBytes();
}

/** Interrupt(...) {gsi, ...}: the extended interrupt descriptor, 32-bit interrupt numbers. */
export function extendedInterrupt(flags: number, interrupts: readonly number[]): Aml {
  if (interrupts.length < 1 || interrupts.length > 0xff) throw new FirmwareError('bad-aml', `extended interrupt with ${interrupts.length} interrupts (1-255)`);
  const w = new ByteWriter().u8(LARGE_EXTENDED_INTERRUPT).u16(2 + 4 * interrupts.length);
  w.u8(Number(check('interrupt flags', flags, 0x1fn))).u8(interrupts.length);
  for (const i of interrupts) w.u32(Number(check('interrupt', i, 0xffff_ffffn)));
  return w.toBytes();
}

export type AddressWidth = 16 | 32 | 64;

export interface AddressSpace {
  /** ADDRESS_SPACE_MEMORY, _IO or _BUS_NUMBER. */
  readonly type: number;
  /** General flags (ADDRESS_MIN_FIXED | ADDRESS_MAX_FIXED | ...). */
  readonly flags: number;
  readonly typeFlags: number;
  readonly min: number | bigint;
  readonly max: number | bigint;
  readonly granularity?: number | bigint;
  readonly translation?: number | bigint;
}

const ADDRESS_TAGS: Record<AddressWidth, number> = {
  16: LARGE_WORD_ADDRESS_SPACE,
  32: LARGE_DWORD_ADDRESS_SPACE,
  64: LARGE_QWORD_ADDRESS_SPACE,
};

/** Word/DWord/QWord Address Space descriptor; the length is max - min + 1 (fixed window). */
export function addressSpace(width: AddressWidth, space: AddressSpace): Aml {
  const limit = (1n << BigInt(width)) - 1n;
  const min = check('address minimum', space.min, limit);
  const max = check('address maximum', space.max, limit);
  if (max < min) throw new FirmwareError('bad-aml', `address range 0x${min.toString(16)}-0x${max.toString(16)} is empty`);
  const fields = [
    check('address granularity', space.granularity ?? 0, limit),
    min,
    max,
    check('address translation', space.translation ?? 0, limit),
    check('address length', max - min + 1n, limit),
  ];
  const size = width / 8;
  const w = new ByteWriter().u8(ADDRESS_TAGS[width]).u16(3 + 5 * size);
  w.u8(Number(check('address space type', space.type, 0xffn)));
  w.u8(Number(check('address flags', space.flags, 0x0fn)));
  w.u8(Number(check('address type flags', space.typeFlags, 0xffn)));
  for (const f of fields) {
    if (width === 16) w.u16(Number(f));
    else if (width === 32) w.u32(Number(f));
    else w.u64(f);
  }
  return w.toBytes();
}

/** WordBusNumber(ResourceProducer, MinFixed, MaxFixed, PosDecode, ...). */
export function busNumberWindow(min: number, max: number): Aml {
  return addressSpace(16, { type: ADDRESS_SPACE_BUS_NUMBER, flags: ADDRESS_MIN_FIXED | ADDRESS_MAX_FIXED, typeFlags: 0, min, max });
}

/** DWordIO(ResourceProducer, MinFixed, MaxFixed, PosDecode, EntireRange, ...). */
export function ioWindow(min: number, max: number): Aml {
  return addressSpace(32, { type: ADDRESS_SPACE_IO, flags: ADDRESS_MIN_FIXED | ADDRESS_MAX_FIXED, typeFlags: IO_TYPE_ENTIRE_RANGE, min, max });
}

/** DWordMemory / QWordMemory(ResourceProducer, PosDecode, MinFixed, MaxFixed, NonCacheable, ReadWrite, ...). */
export function memoryWindow(min: number | bigint, max: number | bigint): Aml {
  const width: AddressWidth = BigInt(max) <= 0xffff_ffffn ? 32 : 64;
  return addressSpace(width, {
    type: ADDRESS_SPACE_MEMORY,
    flags: ADDRESS_MIN_FIXED | ADDRESS_MAX_FIXED,
    typeFlags: MEMORY_TYPE_READ_WRITE | MEMORY_TYPE_NON_CACHEABLE,
    min,
    max,
  });
}

/** ResourceTemplate(){...}: a Buffer of the descriptors and an End Tag whose checksum 0 means "none". */
export function resourceTemplate(...descriptors: readonly Aml[]): Aml {
  return buffer(concat(...descriptors, Uint8Array.of(SMALL_END_TAG, 0)));
}
