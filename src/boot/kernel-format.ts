/**
 * Which boot protocol a kernel file speaks, from its first bytes: the loader and config
 * validation (before KVM is opened, so without loading the loaders) share this check.
 */
import { BootError } from './boot-error.js';
import { isElf } from './elf.js';
import { looksLikeBzImage } from './setup-header.js';

/** Enough of a kernel file to tell an ELF (magic at 0) from a bzImage ("HdrS" at 0x202). */
export const KERNEL_HEADER_BYTES = 0x400;

/** Throws the BootError for bytes (a whole kernel, or its first KERNEL_HEADER_BYTES) that are neither an ELF nor a bzImage. */
export function checkKernelFormat(head: Uint8Array): void {
  if (!isElf(head) && !looksLikeBzImage(head)) {
    throw new BootError('not-a-kernel', 'kernel is neither an ELF nor a bzImage (no ELF magic, no "HdrS" setup header)');
  }
}
