/**
 * A small AML encoder (ACPI 6.5 §20.2, "AML Grammar Definition"): just the
 * terms a static DSDT needs. Every function returns the encoded bytes, so a
 * tree of objects is built bottom-up with plain function calls:
 *
 *   scope('\\_SB', device('COM1', name('_HID', eisaId('PNP0501'))))
 */

import { FirmwareError } from './firmware-error.js';

export const ZERO_OP = 0x00;
export const ONE_OP = 0x01;
export const NAME_OP = 0x08;
export const BYTE_PREFIX = 0x0a;
export const WORD_PREFIX = 0x0b;
export const DWORD_PREFIX = 0x0c;
export const STRING_PREFIX = 0x0d;
export const QWORD_PREFIX = 0x0e;
export const SCOPE_OP = 0x10;
export const BUFFER_OP = 0x11;
export const PACKAGE_OP = 0x12;
export const VAR_PACKAGE_OP = 0x13;
export const METHOD_OP = 0x14;
export const DUAL_NAME_PREFIX = 0x2e;
export const MULTI_NAME_PREFIX = 0x2f;
export const EXT_OP_PREFIX = 0x5b;
export const DEVICE_OP = 0x82; // after EXT_OP_PREFIX
export const ROOT_CHAR = 0x5c; // '\'
export const PARENT_PREFIX_CHAR = 0x5e; // '^'
export const RETURN_OP = 0xa4;

/** Largest PkgLength: 4 bits in the lead byte plus three whole bytes. */
export const MAX_PKG_LENGTH = 0x0fff_ffff;
const MAX_U64 = (1n << 64n) - 1n;

/** The bytes of an encoded AML term. */
export type Aml = Uint8Array;

export function concat(...parts: readonly Uint8Array[]): Aml {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * PkgLength (§20.2.4) for a total `length` that already counts the PkgLength
 * bytes themselves: one byte up to 63, else a lead byte (bits 7-6: count of
 * following bytes, bits 3-0: low nibble) and up to three more bytes.
 */
export function pkgLength(length: number): Aml {
  if (!Number.isSafeInteger(length) || length < 1 || length > MAX_PKG_LENGTH) {
    throw new FirmwareError('bad-aml', `PkgLength ${length} is out of range (1-${MAX_PKG_LENGTH})`);
  }
  if (length <= 0x3f) return Uint8Array.of(length);
  const follow = length <= 0xfff ? 1 : length <= 0xf_ffff ? 2 : 3;
  const out = new Uint8Array(1 + follow);
  out[0] = (follow << 6) | (length & 0xf);
  for (let i = 1; i <= follow; i++) out[i] = (length >>> (4 + 8 * (i - 1))) & 0xff;
  return out;
}

/** `content` prefixed with the PkgLength that covers itself and the content. */
export function withPkgLength(content: Uint8Array): Aml {
  // The PkgLength's own size depends on the total; try the shortest first.
  for (let size = 1; size <= 4; size++) {
    const total = content.length + size;
    const encoded = total <= MAX_PKG_LENGTH ? pkgLength(total) : undefined;
    if (encoded && encoded.length === size) return concat(encoded, content);
  }
  throw new FirmwareError('bad-aml', `${content.length} bytes do not fit in one package`);
}

/**
 * A NameSeg (§20.2.2): 1-4 characters, the first a capital letter or '_', the
 * rest capitals, digits or '_'; short names are padded with '_'.
 */
export function nameSeg(seg: string): Aml {
  if (!/^[A-Z_][A-Z0-9_]{0,3}$/.test(seg)) {
    throw new FirmwareError('bad-aml', `"${seg}" is not an AML NameSeg (1-4 of A-Z, 0-9, _; not starting with a digit)`);
  }
  return Uint8Array.from(seg.padEnd(4, '_'), (c) => c.charCodeAt(0));
}

/** A NameString: optional root '\' or parent '^' prefixes, then dot-separated NameSegs. */
export function nameString(path: string): Aml {
  const prefix = /^(\\|\^*)/.exec(path)![0];
  const rest = path.slice(prefix.length);
  const prefixBytes = Uint8Array.from(prefix, (c) => c.charCodeAt(0));
  if (rest === '') {
    if (prefix === '') throw new FirmwareError('bad-aml', 'empty AML name');
    return concat(prefixBytes, Uint8Array.of(ZERO_OP)); // NullName
  }
  const segs = rest.split('.').map(nameSeg);
  if (segs.length === 1) return concat(prefixBytes, segs[0]!);
  if (segs.length === 2) return concat(prefixBytes, Uint8Array.of(DUAL_NAME_PREFIX), ...segs);
  if (segs.length > 0xff) throw new FirmwareError('bad-aml', `AML name ${path} has too many segments`);
  return concat(prefixBytes, Uint8Array.of(MULTI_NAME_PREFIX, segs.length), ...segs);
}

/** The shortest integer encoding (§20.2.3): ZeroOp, OneOp, then Byte/Word/DWord/QWord constants. */
export function integer(value: number | bigint): Aml {
  if ((typeof value === 'number' && !Number.isSafeInteger(value)) || BigInt(value) < 0n || BigInt(value) > MAX_U64) {
    throw new FirmwareError('bad-aml', `${value} is not an unsigned 64-bit AML integer`);
  }
  const v = BigInt(value);
  if (v === 0n) return Uint8Array.of(ZERO_OP);
  if (v === 1n) return Uint8Array.of(ONE_OP);
  const [prefix, size] = v <= 0xffn ? [BYTE_PREFIX, 1] : v <= 0xffffn ? [WORD_PREFIX, 2] : v <= 0xffff_ffffn ? [DWORD_PREFIX, 4] : [QWORD_PREFIX, 8];
  const out = new Uint8Array(1 + size);
  out[0] = prefix;
  for (let i = 0; i < size; i++) out[1 + i] = Number((v >> BigInt(8 * i)) & 0xffn);
  return out;
}

/** A String constant: printable ASCII, NUL-terminated. */
export function string(text: string): Aml {
  if (!/^[\x01-\x7f]*$/.test(text)) throw new FirmwareError('bad-aml', `AML string "${text}" is not 7-bit ASCII without NUL`);
  return concat(Uint8Array.of(STRING_PREFIX), Uint8Array.from(text, (c) => c.charCodeAt(0)), Uint8Array.of(0));
}

/**
 * A compressed EISA id ("PNP0A03" → 0x030AD041), what ASL's EisaId() emits:
 * three letters in 5 bits each and four hex digits, stored big-endian.
 */
export function eisaIdValue(id: string): number {
  if (!/^[A-Z]{3}[0-9A-F]{4}$/.test(id)) throw new FirmwareError('bad-aml', `"${id}" is not an EISA id (AAA####, hex digits)`);
  const letter = (i: number): number => id.charCodeAt(i) - 0x40;
  const vendor = (letter(0) << 10) | (letter(1) << 5) | letter(2);
  const product = parseInt(id.slice(3), 16);
  const bytes = [vendor >> 8, vendor & 0xff, product >> 8, product & 0xff];
  return (bytes[0]! | (bytes[1]! << 8) | (bytes[2]! << 16) | (bytes[3]! << 24)) >>> 0;
}

export function eisaId(id: string): Aml {
  return integer(eisaIdValue(id));
}

/** Name(path, value). */
export function name(path: string, value: Aml): Aml {
  return concat(Uint8Array.of(NAME_OP), nameString(path), value);
}

export function scope(path: string, ...terms: readonly Aml[]): Aml {
  return concat(Uint8Array.of(SCOPE_OP), withPkgLength(concat(nameString(path), ...terms)));
}

export function device(path: string, ...terms: readonly Aml[]): Aml {
  return concat(Uint8Array.of(EXT_OP_PREFIX, DEVICE_OP), withPkgLength(concat(nameString(path), ...terms)));
}

export interface MethodOptions {
  /** 0-7. */
  readonly args?: number;
  readonly serialized?: boolean;
  /** 0-15, for serialized methods. */
  readonly syncLevel?: number;
}

export function method(path: string, options: MethodOptions, ...terms: readonly Aml[]): Aml {
  const args = options.args ?? 0;
  const syncLevel = options.syncLevel ?? 0;
  if (!Number.isInteger(args) || args < 0 || args > 7) throw new FirmwareError('bad-aml', `method ${path}: ${args} arguments (0-7)`);
  if (!Number.isInteger(syncLevel) || syncLevel < 0 || syncLevel > 15) {
    throw new FirmwareError('bad-aml', `method ${path}: sync level ${syncLevel} (0-15)`);
  }
  const flags = args | (options.serialized ? 1 << 3 : 0) | (syncLevel << 4);
  return concat(Uint8Array.of(METHOD_OP), withPkgLength(concat(nameString(path), Uint8Array.of(flags), ...terms)));
}

export function returnValue(value: Aml): Aml {
  return concat(Uint8Array.of(RETURN_OP), value);
}

/** Package(){...}; VarPackage when there are more than 255 elements. */
export function packageOf(elements: readonly Aml[]): Aml {
  if (elements.length <= 0xff) {
    return concat(Uint8Array.of(PACKAGE_OP), withPkgLength(concat(Uint8Array.of(elements.length), ...elements)));
  }
  return concat(Uint8Array.of(VAR_PACKAGE_OP), withPkgLength(concat(integer(elements.length), ...elements)));
}

/** Buffer(){bytes}: the size as an integer term, then the bytes. */
export function buffer(bytes: Uint8Array): Aml {
  return concat(Uint8Array.of(BUFFER_OP), withPkgLength(concat(integer(bytes.length), bytes)));
}
