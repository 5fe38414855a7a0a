/**
 * bzImage through the Linux 64-bit boot protocol: the protected-mode kernel
 * is loaded at 1 MiB (or pref_address when not relocatable) and entered at
 * startup_64, 0x200 past its start, with a zero page built from the image's
 * own setup header.
 */

import { BootError, hex } from './boot-error.js';
import type { BootResult, GuestRange, LoadContext } from './boot-options.js';
import { linux64EntryState } from './entry-state.js';
import { CODE64_SEGMENT, writeBootGdt } from './gdt.js';
import { FOUR_GIB, HIGH_MEMORY_START, KERNEL_LOAD_ADDRESS, ZERO_PAGE_ADDRESS, alignUp } from './layout.js';
import { isUsableRam } from './memory-map.js';
import { writeIdentityPageTables } from './page-tables.js';
import { planInitrd, writeCommandLine } from './placement.js';
import { LINUX_64BIT_ENTRY_OFFSET, type SetupHeader, parseSetupHeader } from './setup-header.js';
import { writeZeroPage } from './zero-page.js';

export function loadBzImage(ctx: LoadContext, image: Uint8Array): BootResult {
  const hdr = parseSetupHeader(image);
  if (ctx.cmdline.length > hdr.cmdlineSize) {
    throw new BootError('cmdline-too-long', `kernel command line is ${ctx.cmdline.length} bytes; this kernel accepts at most ${hdr.cmdlineSize}`);
  }
  const payload = image.subarray(hdr.kernelOffset);
  const kernelRange = footprint(hdr, payload.length);
  const [load, end] = kernelRange;
  if (!hdr.relocatable && load < HIGH_MEMORY_START) {
    throw new BootError('bad-header', `non-relocatable bzImage wants to load at ${hex(load)}, below 1 MiB`);
  }
  if (end > FOUR_GIB || !isUsableRam(ctx.usable, load, end)) {
    throw new BootError(
      'too-large',
      `kernel needs guest RAM ${hex(load)}-${hex(end)} (image ${hex(payload.length)} bytes, init_size ${hex(hdr.initSize)}) below 4 GiB`,
    );
  }
  // initrd_addr_max is the highest byte the initrd may occupy, hence + 1.
  const initrdRange = planInitrd(ctx.usable, ctx.initrd, end, Math.min(hdr.initrdAddrMax + 1, FOUR_GIB));

  ctx.memory.write(load, payload);
  if (initrdRange && ctx.initrd) ctx.memory.write(initrdRange[0], ctx.initrd);
  const cmdlineAddress = writeCommandLine(ctx.memory, ctx.cmdline);
  writeZeroPage(ctx.memory, ZERO_PAGE_ADDRESS, {
    setupHeader: hdr.bytes,
    code32Start: load,
    cmdlineAddress,
    cmdlineSize: hdr.cmdlineSize,
    memoryMap: ctx.memoryMap,
    ...(initrdRange && { initrd: { address: initrdRange[0], size: initrdRange[1] - initrdRange[0] } }),
    ...(ctx.acpiRsdp !== undefined && { acpiRsdp: ctx.acpiRsdp }),
  });
  const pml4 = writeIdentityPageTables(ctx.memory);
  const gdt = writeBootGdt(ctx.memory, CODE64_SEGMENT);
  return {
    protocol: 'linux-bzimage',
    cpu: linux64EntryState(load + LINUX_64BIT_ENTRY_OFFSET, ZERO_PAGE_ADDRESS, pml4, gdt),
    kernelRange,
    ...(initrdRange && { initrdRange }),
    memoryMap: ctx.memoryMap,
  };
}

/**
 * [load, end) the kernel may touch before it reads the memory map. A
 * relocatable kernel loaded low decompresses at max(aligned load, pref_address)
 * (compressed/head_64.S), needing init_size bytes there, so that is reserved too.
 */
function footprint(hdr: SetupHeader, imageSize: number): GuestRange {
  const load = hdr.relocatable ? KERNEL_LOAD_ADDRESS : hdr.prefAddress;
  const runtimeStart = hdr.relocatable ? Math.max(alignUp(load, hdr.kernelAlignment), hdr.prefAddress) : load;
  return [load, Math.max(load + imageSize, load + hdr.initSize, runtimeStart + hdr.initSize)];
}
