/**
 * ELF kernels: PVH when the Xen PHYS32_ENTRY note is present (any class),
 * otherwise a 64-bit vmlinux entered through the Linux 64-bit boot protocol.
 * Everything is checked before the first byte is written to the guest.
 */

import { BootError, hex } from './boot-error.js';
import type { BootResult, GuestRange, LoadContext } from './boot-options.js';
import type { ElfKernel, ElfSegment } from './elf.js';
import { linux64EntryState, pvhEntryState } from './entry-state.js';
import { CODE32_SEGMENT, CODE64_SEGMENT, writeBootGdt } from './gdt.js';
import { CMDLINE_MAX_SIZE, FOUR_GIB, HIGH_MEMORY_START, ZERO_PAGE_ADDRESS } from './layout.js';
import { isUsableRam } from './memory-map.js';
import { writeIdentityPageTables } from './page-tables.js';
import { planInitrd, writeCommandLine } from './placement.js';
import { writeStartInfo } from './pvh.js';
import { writeZeroPage } from './zero-page.js';

export function loadElfKernel(ctx: LoadContext, image: Uint8Array, elf: ElfKernel): BootResult {
  const pvh = elf.pvhEntry !== undefined;
  if (!pvh && elf.elfClass !== 64) {
    throw new BootError('not-64-bit', '32-bit ELF kernel has no PVH entry note (XEN_ELFNOTE_PHYS32_ENTRY)');
  }
  if (elf.segments.length === 0) throw new BootError('bad-elf', 'malformed ELF kernel: no loadable segments');
  for (const seg of elf.segments) checkSegment(ctx, seg);
  const kernelRange: GuestRange = [
    elf.segments[0]!.physicalAddress,
    Math.max(...elf.segments.map((s) => s.physicalAddress + s.memorySize)),
  ];
  const entry = elf.pvhEntry ?? physicalEntry(elf);
  if (entry === undefined || !elf.segments.some((s) => contains(s, entry))) {
    const what = pvh ? 'PVH entry point' : 'entry point';
    throw new BootError('bad-elf', `malformed ELF kernel: ${what} ${hex(entry ?? elf.entry)} is not inside a loaded segment`);
  }
  // Both entry modes reach only the first 4 GiB (32-bit, or the identity map).
  const initrdRange = planInitrd(ctx.usable, ctx.initrd, kernelRange[1], FOUR_GIB);

  for (const seg of elf.segments) {
    ctx.memory.write(seg.physicalAddress, image.subarray(seg.fileOffset, seg.fileOffset + seg.fileSize));
    ctx.memory.fill(seg.physicalAddress + seg.fileSize, seg.memorySize - seg.fileSize, 0);
  }
  if (initrdRange && ctx.initrd) ctx.memory.write(initrdRange[0], ctx.initrd);
  const cmdlineAddress = writeCommandLine(ctx.memory, ctx.cmdline);
  const initrd = initrdRange && { address: initrdRange[0], size: initrdRange[1] - initrdRange[0] };

  if (pvh) {
    const startInfo = writeStartInfo(ctx.memory, {
      cmdlineAddress,
      modules: initrd ? [initrd] : [],
      memoryMap: ctx.memoryMap,
      ...(ctx.acpiRsdp !== undefined && { acpiRsdp: ctx.acpiRsdp }),
    });
    const gdt = writeBootGdt(ctx.memory, CODE32_SEGMENT);
    return result('pvh', pvhEntryState(entry, startInfo, gdt), kernelRange, initrdRange, ctx);
  }
  writeZeroPage(ctx.memory, ZERO_PAGE_ADDRESS, {
    cmdlineAddress,
    cmdlineSize: CMDLINE_MAX_SIZE - 1,
    memoryMap: ctx.memoryMap,
    ...(initrd && { initrd }),
    ...(ctx.acpiRsdp !== undefined && { acpiRsdp: ctx.acpiRsdp }),
  });
  const pml4 = writeIdentityPageTables(ctx.memory);
  const gdt = writeBootGdt(ctx.memory, CODE64_SEGMENT);
  return result('linux-elf64', linux64EntryState(entry, ZERO_PAGE_ADDRESS, pml4, gdt), kernelRange, initrdRange, ctx);
}

function result(
  protocol: BootResult['protocol'],
  cpu: BootResult['cpu'],
  kernelRange: GuestRange,
  initrdRange: GuestRange | undefined,
  ctx: LoadContext,
): BootResult {
  return { protocol, cpu, kernelRange, ...(initrdRange && { initrdRange }), memoryMap: ctx.memoryMap };
}

function checkSegment(ctx: LoadContext, seg: ElfSegment): void {
  const start = seg.physicalAddress;
  const end = start + seg.memorySize;
  const where = `ELF segment ${hex(start)}-${hex(end)}`;
  if (start < HIGH_MEMORY_START) {
    throw new BootError('segment-overlap', `${where} overlaps the boot structures and BIOS area below 1 MiB`);
  }
  if (end > FOUR_GIB) {
    throw new BootError('segment-outside-ram', `${where} ends above 4 GiB, beyond what the boot entry can reach`);
  }
  if (!isUsableRam(ctx.usable, start, end)) {
    throw new BootError('segment-outside-ram', `${where} is not inside guest RAM`);
  }
}

function contains(seg: ElfSegment, address: number): boolean {
  return address >= seg.physicalAddress && address < seg.physicalAddress + seg.memorySize;
}

/**
 * Linux links vmlinux with ENTRY(phys_startup_64), so e_entry is normally
 * already physical; otherwise treat it as virtual and translate through the
 * segment that holds it.
 */
function physicalEntry(elf: ElfKernel): number | undefined {
  if (elf.entry <= BigInt(Number.MAX_SAFE_INTEGER)) {
    const physical = Number(elf.entry);
    if (elf.segments.some((s) => contains(s, physical))) return physical;
  }
  for (const s of elf.segments) {
    if (elf.entry >= s.virtualAddress && elf.entry < s.virtualAddress + BigInt(s.memorySize)) {
      return s.physicalAddress + Number(elf.entry - s.virtualAddress);
    }
  }
  return undefined;
}
