/**
 * Guest RAM: anonymous mmap'd memory registered with KVM, split around the
 * 32-bit PCI hole so that RAM never overlaps device MMIO below 4 GiB.
 */
import { GuestMemory, type RegionDescriptor } from './guest-memory.js';
import type { VmFd } from './kvm.js';
import {
  MADV_MERGEABLE,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  madvise,
  mmap,
  view,
} from './libc.js';

/** Start of the 32-bit PCI hole (MMIO BARs, IOAPIC, LAPIC, KVM's TSS pages): 3 GiB up to 4 GiB. */
export const PCI_HOLE_START = 0xc000_0000;
export const PCI_HOLE_END = 0x1_0000_0000;

/** Where RAM goes for a guest of this size: [guestBase, size] pairs. */
export function ramLayout(bytes: number): Array<readonly [number, number]> {
  const low = Math.min(bytes, PCI_HOLE_START);
  const layout: Array<readonly [number, number]> = [[0, low]];
  if (bytes > low) layout.push([PCI_HOLE_END, bytes - low]);
  return layout;
}

export interface GuestRam {
  readonly memory: GuestMemory;
  readonly regions: readonly RegionDescriptor[];
}

export function allocateGuestRam(vm: VmFd, bytes: number): GuestRam {
  const regions: RegionDescriptor[] = ramLayout(bytes).map(([guestBase, size], slot) => {
    const hostAddress = mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    madvise(hostAddress, size, MADV_MERGEABLE);
    vm.setUserMemoryRegion(slot, guestBase, size, hostAddress);
    return { guestBase, size, hostAddress };
  });
  return { memory: memoryFromRegions(regions), regions };
}

/** Rebuilds the same guest memory in any thread from its descriptors (no copy). */
export function memoryFromRegions(regions: readonly RegionDescriptor[]): GuestMemory {
  return new GuestMemory(
    regions.map((r) => ({
      guestBase: r.guestBase,
      bytes: new Uint8Array(view(r.hostAddress, r.size)),
      hostAddress: r.hostAddress,
    })),
  );
}
