/**
 * The bzImage setup header (Documentation/arch/x86/boot.rst). It sits at file
 * offset 0x1f1 and is copied to the same offset in struct boot_params, so the
 * HDR_* offsets below are valid in both.
 */

import { BootError, hex } from './boot-error.js';
import { ByteReader } from './byte-reader.js';

export const HDR_SETUP_SECTS = 0x1f1;
/** Size of the protected-mode kernel in 16-byte paragraphs (rounded up), 32 bits since 2.04. */
export const HDR_SYSSIZE = 0x1f4;
export const HDR_VID_MODE = 0x1fa;
export const HDR_BOOT_FLAG = 0x1fe;
/** Two-byte short jump; its displacement byte (0x201) gives the header's end. */
export const HDR_JUMP = 0x200;
export const HDR_HEADER = 0x202;
export const HDR_VERSION = 0x206;
export const HDR_TYPE_OF_LOADER = 0x210;
export const HDR_LOADFLAGS = 0x211;
export const HDR_CODE32_START = 0x214;
export const HDR_RAMDISK_IMAGE = 0x218;
export const HDR_RAMDISK_SIZE = 0x21c;
export const HDR_HEAP_END_PTR = 0x224;
export const HDR_CMD_LINE_PTR = 0x228;
export const HDR_INITRD_ADDR_MAX = 0x22c;
export const HDR_KERNEL_ALIGNMENT = 0x230;
export const HDR_RELOCATABLE_KERNEL = 0x234;
export const HDR_XLOADFLAGS = 0x236;
export const HDR_CMDLINE_SIZE = 0x238;
export const HDR_SETUP_DATA = 0x250;
export const HDR_PREF_ADDRESS = 0x258;
export const HDR_INIT_SIZE = 0x260;
/** End of init_size, the last field we read. */
const HDR_FIELDS_END = 0x264;
/** boot_params puts edd_mbr_sig_buffer here, so a longer header would clobber it. */
export const SETUP_HEADER_END_MAX = 0x290;

export const BOOT_FLAG_MAGIC = 0xaa55;
/** "HdrS" little-endian. */
export const HDRS_MAGIC = 0x53726448;

export const LOADED_HIGH = 0x01;
export const CAN_USE_HEAP = 0x80;
export const XLF_KERNEL_64 = 0x01;
export const XLF_CAN_BE_LOADED_ABOVE_4G = 0x02;

/** cmdline_size appears in 2.06; older layouts are not worth supporting. */
export const BOOT_PROTOCOL_MIN_VERSION = 0x0206;
/**
 * xloadflags (and so XLF_KERNEL_64) appear in 2.12, so every image we accept
 * also has initrd_addr_max (2.03), pref_address and init_size (2.10).
 */
export const BOOT_PROTOCOL_XLOADFLAGS = 0x020c;

/** setup_sects == 0 means 4, for compatibility with ancient images. */
export const DEFAULT_SETUP_SECTS = 4;
export const SECTOR_SIZE = 512;
/** syssize counts 16-byte paragraphs, rounded up: the file may end up to 15 bytes short of it. */
export const SYSSIZE_UNIT = 16;
/** startup_64 sits 0x200 into the protected-mode kernel. */
export const LINUX_64BIT_ENTRY_OFFSET = 0x200;

export interface SetupHeader {
  readonly version: number;
  readonly loadflags: number;
  readonly xloadflags: number;
  /** Highest address the initrd may occupy (inclusive). */
  readonly initrdAddrMax: number;
  readonly kernelAlignment: number;
  readonly relocatable: boolean;
  /** Longest command line, not counting the NUL. */
  readonly cmdlineSize: number;
  readonly prefAddress: number;
  readonly initSize: number;
  /** File offset of the protected-mode kernel: (setup_sects + 1) * 512. */
  readonly kernelOffset: number;
  /** The header bytes [0x1f1, end), to copy into boot_params. */
  readonly bytes: Uint8Array;
}

/** Boot flag and "HdrS" present: worth parsing as a bzImage. */
export function looksLikeBzImage(image: Uint8Array): boolean {
  const r = new ByteReader(image, 'not-a-kernel', 'kernel');
  return r.has(HDR_HEADER, 4) && r.u16(HDR_BOOT_FLAG) === BOOT_FLAG_MAGIC && r.u32(HDR_HEADER) === HDRS_MAGIC;
}

export function parseSetupHeader(image: Uint8Array): SetupHeader {
  if (!looksLikeBzImage(image)) {
    throw new BootError('not-a-kernel', 'kernel is neither an ELF nor a bzImage (no boot flag 0xaa55 / "HdrS" header)');
  }
  const r = new ByteReader(image, 'bad-header', 'bzImage');
  const version = r.u16(HDR_VERSION, 'version');
  const versionText = `${version >> 8}.${(version & 0xff).toString().padStart(2, '0')}`;
  if (version < BOOT_PROTOCOL_MIN_VERSION) {
    throw new BootError('unsupported-version', `bzImage boot protocol ${versionText} is too old (need 2.06 or later)`);
  }
  const loadflags = r.u8(HDR_LOADFLAGS, 'loadflags');
  if ((loadflags & LOADED_HIGH) === 0) {
    throw new BootError('not-bzimage', 'kernel is a zImage (LOADED_HIGH clear); only bzImage kernels are supported');
  }
  if (version < BOOT_PROTOCOL_XLOADFLAGS) {
    throw new BootError('not-64-bit', `bzImage boot protocol ${versionText} predates the 64-bit entry point (need 2.12)`);
  }
  const headerEnd = HDR_HEADER + r.u8(HDR_JUMP + 1, 'jump');
  if (headerEnd < HDR_FIELDS_END || headerEnd > SETUP_HEADER_END_MAX) {
    throw new BootError('bad-header', `bzImage setup header ends at ${hex(headerEnd)}, outside ${hex(HDR_FIELDS_END)}-${hex(SETUP_HEADER_END_MAX)}`);
  }
  const bytes = r.slice(HDR_SETUP_SECTS, headerEnd - HDR_SETUP_SECTS, 'setup header');
  const xloadflags = r.u16(HDR_XLOADFLAGS);
  if ((xloadflags & XLF_KERNEL_64) === 0) {
    throw new BootError('not-64-bit', 'bzImage has no 64-bit entry point (XLF_KERNEL_64 clear)');
  }
  const relocatable = r.u8(HDR_RELOCATABLE_KERNEL) !== 0;
  const kernelAlignment = r.u32(HDR_KERNEL_ALIGNMENT);
  if (relocatable && (kernelAlignment === 0 || (kernelAlignment & (kernelAlignment - 1)) !== 0)) {
    throw new BootError('bad-header', `bzImage kernel_alignment ${hex(kernelAlignment)} is not a power of two`);
  }
  const pref = r.u64(HDR_PREF_ADDRESS);
  if (pref > BigInt(Number.MAX_SAFE_INTEGER)) {
    throw new BootError('bad-header', `bzImage pref_address ${hex(pref)} is out of range`);
  }
  const setupSects = r.u8(HDR_SETUP_SECTS) || DEFAULT_SETUP_SECTS;
  const kernelOffset = (setupSects + 1) * SECTOR_SIZE;
  if (kernelOffset + LINUX_64BIT_ENTRY_OFFSET >= image.length) {
    throw new BootError('bad-header', `bzImage is truncated: the kernel should start at ${hex(kernelOffset)} but the file is ${hex(image.length)} bytes`);
  }
  // A truncated download or copy keeps a valid header; only syssize tells that the kernel is cut short.
  const syssize = r.u32(HDR_SYSSIZE, 'syssize');
  const kernelBytes = image.length - kernelOffset;
  if (syssize === 0) throw new BootError('bad-header', 'bzImage syssize is 0: the size of its protected-mode kernel is unknown');
  if (kernelBytes <= (syssize - 1) * SYSSIZE_UNIT) {
    throw new BootError(
      'bad-header',
      `bzImage is truncated: syssize says the kernel is ${hex(syssize * SYSSIZE_UNIT)} bytes but the file holds ${hex(kernelBytes)} after the setup code`,
    );
  }
  return {
    version,
    loadflags,
    xloadflags,
    initrdAddrMax: r.u32(HDR_INITRD_ADDR_MAX),
    kernelAlignment,
    relocatable,
    cmdlineSize: r.u32(HDR_CMDLINE_SIZE),
    prefAddress: Number(pref),
    initSize: r.u32(HDR_INIT_SIZE),
    kernelOffset,
    bytes,
  };
}
