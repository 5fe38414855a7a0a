/**
 * What a vhost-user back-end is told about guest RAM (VHOST_USER_SET_MEM_TABLE): each region's
 * guest address, size, the front-end's own address for it (ring addresses are given in that
 * space) and where it lies in the memfd passed along.
 */
import type { SharedMemoryRegion } from '../vhost-user/frontend.js';
import type { SharedGuestRam } from '../vmm/guest-ram.js';

export function vhostMemoryTable(ram: SharedGuestRam): SharedMemoryRegion[] {
  return ram.regions.map((r) => ({
    guestPhysicalAddress: BigInt(r.guestBase),
    size: BigInt(r.size),
    userAddress: BigInt(r.hostAddress),
    mmapOffset: BigInt(r.fdOffset),
    fd: ram.fd,
  }));
}
