/**
 * Entry point: detects the kernel format, places kernel, initrd, command line
 * and boot structures in guest memory, and returns the boot vCPU's state.
 */

import { BootError, hex } from './boot-error.js';
import type { BootOptions, BootResult, LoadContext } from './boot-options.js';
import { isElf, parseElf } from './elf.js';
import { loadElfKernel } from './elf-loader.js';
import { loadBzImage } from './bzimage-loader.js';
import { BOOT_STRUCTURES_END, GDT_ADDRESS } from './layout.js';
import { buildMemoryMap, isUsableRam, regionDescriptors, usableRanges } from './memory-map.js';
import { encodeCommandLine } from './placement.js';
import { checkKernelFormat } from './kernel-format.js';
import { looksLikeBzImage } from './setup-header.js';

/** An ACPI 1.0 RSDP is 20 bytes; at least that much must be RAM. */
export const ACPI_RSDP_MIN_SIZE = 20;

export function loadKernel(options: BootOptions): BootResult {
  const { memory, kernel, acpiRsdp } = options;
  const regions = regionDescriptors(memory);
  const memoryMap = buildMemoryMap(regions, options.reservedRanges);
  if (acpiRsdp !== undefined && (!Number.isSafeInteger(acpiRsdp) || acpiRsdp <= 0 || !memory.contains(acpiRsdp, ACPI_RSDP_MIN_SIZE))) {
    throw new BootError('bad-option', `ACPI RSDP address ${hex(acpiRsdp)} is not in guest RAM`);
  }
  const usable = usableRanges(memoryMap, regions);
  if (!isUsableRam(usable, GDT_ADDRESS, BOOT_STRUCTURES_END)) {
    throw new BootError('memory-too-small', `boot structures need [${hex(GDT_ADDRESS)}, ${hex(BOOT_STRUCTURES_END)}) in one guest RAM region`);
  }
  const ctx: LoadContext = {
    memory,
    memoryMap,
    usable,
    cmdline: encodeCommandLine(options.cmdline),
    ...(options.initrd && options.initrd.length > 0 && { initrd: options.initrd }),
    ...(acpiRsdp !== undefined && { acpiRsdp }),
  };
  if (isElf(kernel)) return loadElfKernel(ctx, kernel, parseElf(kernel));
  checkKernelFormat(kernel);
  return loadBzImage(ctx, kernel);
}


/** The banner every Linux image carries (linux_banner), compressed or not. */
const LINUX_BANNER = new TextEncoder().encode('Linux version ');

/** A Linux kernel: any bzImage, or an ELF vmlinux with Linux's banner (not a PVH test guest or other ELF). */
export function isLinuxKernel(kernel: Uint8Array): boolean {
  if (looksLikeBzImage(kernel)) return true;
  return isElf(kernel) && Buffer.from(kernel.buffer, kernel.byteOffset, kernel.byteLength).indexOf(LINUX_BANNER) >= 0;
}
