/**
 * Shared guest RAM for vhost-user back-ends: one memfd laid out as ramLayout says (split around
 * the PCI hole), and what a back-end that maps the fd at the offsets of the memory table sees.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mapSharedGuestRam, memoryFromRegions, PCI_HOLE_END, PCI_HOLE_START } from '../../src/vmm/guest-ram.js';
import { vhostMemoryTable } from '../../src/transport/vhost-user-memory.js';
import { mapShared, munmap, view } from '../../src/sys/memory.js';
import { close } from '../../src/sys/fd.js';

const MiB = 2 ** 20;

/** Maps `length` bytes of the memfd at `offset` as the back-end would, and reads them. */
function backendSees(fd: number, offset: number, length: number): Uint8Array {
  const address = mapShared(fd, length, offset);
  try {
    return new Uint8Array(view(address, length)).slice();
  } finally {
    munmap(address, length);
  }
}

test('below the PCI hole: one region at offset 0; the guest writes, the back-end reads the same bytes', () => {
  const ram = mapSharedGuestRam(16 * MiB);
  try {
    assert.equal(ram.regions.map((r) => [r.guestBase, r.size, r.fdOffset]), [[0, 16 * MiB, 0]]);
    const memory = memoryFromRegions(ram.regions);
    memory.write(5 * MiB + 3, Uint8Array.of(1, 2, 3, 4));
    assert.equal(Array.from(backendSees(ram.fd, 5 * MiB, 8)), [0, 0, 0, 1, 2, 3, 4, 0]);
    const [table] = vhostMemoryTable(ram);
    assert.equal(table, { guestPhysicalAddress: 0n, size: BigInt(16 * MiB), userAddress: BigInt(ram.regions[0]!.hostAddress), mmapOffset: 0n, fd: ram.fd });
  } finally {
    for (const r of ram.regions) munmap(r.hostAddress, r.size);
    close(ram.fd);
  }
});

test('across the PCI hole: RAM above 4 GiB is the second region, at offset 3 GiB of the memfd', () => {
  const bytes = PCI_HOLE_START + 8 * MiB;
  const ram = mapSharedGuestRam(bytes);
  try {
    assert.equal(ram.regions.map((r) => [r.guestBase, r.size, r.fdOffset]), [[0, PCI_HOLE_START, 0], [PCI_HOLE_END, 8 * MiB, PCI_HOLE_START]]);
    const memory = memoryFromRegions(ram.regions);
    memory.write(PCI_HOLE_END + MiB, Uint8Array.of(0xaa, 0xbb));
    assert.equal(Array.from(backendSees(ram.fd, PCI_HOLE_START + MiB, 2)), [0xaa, 0xbb]);
    const table = vhostMemoryTable(ram);
    assert.equal(table.map((t) => [t.guestPhysicalAddress, t.mmapOffset]), [[0n, 0n], [BigInt(PCI_HOLE_END), BigInt(PCI_HOLE_START)]]);
  } finally {
    for (const r of ram.regions) munmap(r.hostAddress, r.size);
    close(ram.fd);
  }
});

test.run();
