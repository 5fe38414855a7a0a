/** Command line and initrd placement, shared by the bzImage and ELF loaders. */

import type { GuestMemory } from '../vmm/guest-memory.js';
import { BootError, hex } from './boot-error.js';
import { CMDLINE_ADDRESS, CMDLINE_MAX_SIZE, PAGE_SIZE, alignUp } from './layout.js';
import { type GuestRange, placeHighest } from './memory-map.js';

/** UTF-8 bytes of the command line, checked against the buffer at CMDLINE_ADDRESS. */
export function encodeCommandLine(cmdline: string): Uint8Array {
  const bytes = new TextEncoder().encode(cmdline);
  if (bytes.includes(0)) throw new BootError('bad-option', 'kernel command line contains a NUL character');
  if (bytes.length + 1 > CMDLINE_MAX_SIZE) {
    throw new BootError('cmdline-too-long', `kernel command line is ${bytes.length} bytes; at most ${CMDLINE_MAX_SIZE - 1} fit`);
  }
  return bytes;
}

/** Writes the NUL-terminated command line; returns its address. */
export function writeCommandLine(memory: GuestMemory, cmdline: Uint8Array): number {
  memory.write(CMDLINE_ADDRESS, cmdline);
  memory.writeU8(CMDLINE_ADDRESS + cmdline.length, 0);
  return CMDLINE_ADDRESS;
}

/**
 * Picks the initrd's place: page-aligned, as high as possible in RAM below
 * `limit` (exclusive) and not below `kernelEnd`. Pure, so loaders can fail
 * before writing anything.
 */
export function planInitrd(
  usable: readonly GuestRange[],
  initrd: Uint8Array | undefined,
  kernelEnd: number,
  limit: number,
): GuestRange | undefined {
  if (!initrd) return undefined;
  const lowest = alignUp(kernelEnd, PAGE_SIZE);
  const start = placeHighest(usable, initrd.length, lowest, limit);
  if (start === undefined) {
    throw new BootError(
      'initrd-too-large',
      `initrd of ${initrd.length} bytes does not fit in guest RAM between the kernel end ${hex(lowest)} and ${hex(limit)}`,
    );
  }
  return [start, start + initrd.length];
}
