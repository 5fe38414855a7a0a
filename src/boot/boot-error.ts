/**
 * The one error a kernel load can end in. Messages are a single line naming the
 * problem: the CLI prints them verbatim and exits with status 2.
 */
import { EXIT_INVALID_ARGUMENTS } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';

export type BootErrorKind =
  /** Neither an ELF nor a bzImage (no ELF magic, no boot flag / "HdrS"). */
  | 'not-a-kernel'
  /** bzImage boot protocol older than we support. */
  | 'unsupported-version'
  /** A zImage (not LOADED_HIGH): loads at 0x10000, which we do not do. */
  | 'not-bzimage'
  /** No 64-bit entry point (bzImage without XLF_KERNEL_64, 32-bit ELF without a PVH note). */
  | 'not-64-bit'
  /** A setup header field is inconsistent or points outside the file. */
  | 'bad-header'
  /** A malformed ELF header, program header or note. */
  | 'bad-elf'
  /** A kernel segment lies outside usable RAM (or above what the entry mode can reach). */
  | 'segment-outside-ram'
  /** Kernel segments overlap each other or the boot structures below 1 MiB. */
  | 'segment-overlap'
  /** The kernel does not fit in RAM at its load address. */
  | 'too-large'
  | 'initrd-too-large'
  | 'cmdline-too-long'
  /** Guest RAM does not cover what the fixed boot layout needs. */
  | 'memory-too-small'
  /** More memory map entries than the boot structures can carry. */
  | 'memory-map-too-large'
  /** A VMM-supplied option is unusable (reserved range, RSDP address, command line bytes). */
  | 'bad-option';

export class BootError extends VmmError<BootErrorKind> {
  constructor(kind: BootErrorKind, message: string) {
    super(kind, message, { status: EXIT_INVALID_ARGUMENTS });
  }
}

/** Hex for messages. */
export function hex(value: number | bigint): string {
  return `0x${value.toString(16)}`;
}
