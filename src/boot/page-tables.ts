/**
 * Identity map of the first 4 GiB with 2 MiB pages, as the 64-bit Linux entry
 * needs (kernel, zero page and command line all identity-mapped). The kernel
 * replaces these tables early, so no finer permissions are worth having.
 */

import type { GuestMemory } from '../vmm/guest-memory.js';
import { PAGE_SIZE, PDPT_ADDRESS, PD_ADDRESS, PD_COUNT, PML4_ADDRESS } from './layout.js';

export const PAGE_PRESENT = 0x1;
export const PAGE_RW = 0x2;
/** In a page directory entry: maps a 2 MiB page instead of pointing to a page table. */
export const PAGE_PS = 0x80;
export const LARGE_PAGE_SIZE = 0x20_0000;
const ENTRIES_PER_TABLE = 512;

/** Writes PML4, PDPT and page directories; returns the CR3 value. */
export function writeIdentityPageTables(memory: GuestMemory): number {
  memory.fill(PML4_ADDRESS, PAGE_SIZE, 0);
  memory.fill(PDPT_ADDRESS, PAGE_SIZE, 0);
  memory.writeU64(PML4_ADDRESS, PDPT_ADDRESS | PAGE_PRESENT | PAGE_RW);
  for (let pd = 0; pd < PD_COUNT; pd++) {
    const table = PD_ADDRESS + pd * PAGE_SIZE;
    memory.writeU64(PDPT_ADDRESS + pd * 8, table | PAGE_PRESENT | PAGE_RW);
    for (let i = 0; i < ENTRIES_PER_TABLE; i++) {
      const physical = (pd * ENTRIES_PER_TABLE + i) * LARGE_PAGE_SIZE;
      memory.writeU64(table + i * 8, BigInt(physical) | BigInt(PAGE_PRESENT | PAGE_RW | PAGE_PS));
    }
  }
  return PML4_ADDRESS;
}
