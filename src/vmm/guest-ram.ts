/**
 * Guest RAM: anonymous mmap'd memory registered with KVM, split around the
 * 32-bit PCI hole so that RAM never overlaps device MMIO below 4 GiB.
 */
import { GuestMemory, type RegionDescriptor } from './guest-memory.js';
import type { VmFd } from './kvm.js';
import {
  MADV_HUGEPAGE,
  MADV_MERGEABLE,
  MAP_ANONYMOUS,
  MAP_NORESERVE,
  MAP_PRIVATE,
  PROT_READ,
  PROT_WRITE,
  madvise,
  mapShared,
  memfdCreate,
  mmap,
  munmap,
  view,
} from '../sys/memory.js';
import { close, ftruncate } from '../sys/fd.js';

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

/**
 * Host memory for a stretch of guest RAM: anonymous, reserved lazily, backed by transparent huge
 * pages where the host allows (fewer TLB misses for the guest; and a guest buffer spans few
 * physical segments, so an O_DIRECT transfer of 1 MiB reaches the disk as one request instead of
 * being split at the device's segment limit), and offered to KSM.
 */
export function mapGuestRam(size: number): number {
  const hostAddress = mmap(size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
  // Advice only: a host without THP or KSM simply ignores it.
  madvise(hostAddress, size, MADV_HUGEPAGE);
  madvise(hostAddress, size, MADV_MERGEABLE);
  return hostAddress;
}

/** A region of shared guest RAM: where it lies in the memfd that backs all of it. */
export interface SharedRegionDescriptor extends RegionDescriptor {
  readonly fdOffset: number;
}

/** Guest RAM another process (a vhost-user back-end) can map: one memfd, each region at its offset. */
export interface SharedGuestRam {
  readonly fd: number;
  readonly regions: readonly SharedRegionDescriptor[];
}

/**
 * Guest RAM for a VM with a vhost-user device: a memfd mapped MAP_SHARED, laid out as ramLayout
 * says, so the back-end maps the same pages from the fd and offsets SET_MEM_TABLE hands it.
 * Transparent huge pages for it follow the host's shmem_enabled (often `never`), not `enabled`:
 * VMs without such a device keep anonymous RAM (mapGuestRam).
 */
export function mapSharedGuestRam(bytes: number, name = 'kvm-guest-ram'): SharedGuestRam {
  const fd = memfdCreate(name);
  const mapped: SharedRegionDescriptor[] = [];
  try {
    ftruncate(fd, bytes);
    let fdOffset = 0;
    for (const [guestBase, size] of ramLayout(bytes)) {
      const hostAddress = mapShared(fd, size, fdOffset);
      madvise(hostAddress, size, MADV_HUGEPAGE);
      mapped.push({ guestBase, size, hostAddress, fdOffset });
      fdOffset += size;
    }
    return { fd, regions: mapped };
  } catch (error) {
    for (const r of mapped) munmap(r.hostAddress, r.size);
    close(fd);
    throw error;
  }
}

export function allocateGuestRam(vm: VmFd, bytes: number): GuestRam {
  const regions: RegionDescriptor[] = ramLayout(bytes).map(([guestBase, size], slot) => {
    const hostAddress = mapGuestRam(size);
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
