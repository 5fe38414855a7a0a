/** What loadKernel takes and gives back, and the state the format loaders share. */

import type { GuestMemory } from '../vmm/guest-memory.js';
import type { BootProtocol, CpuEntryState } from '../vmm/cpu-state.js';
import type { GuestRange, MemoryMapEntry, ReservedRange } from './memory-map.js';

export type { GuestRange } from './memory-map.js';

export interface BootOptions {
  /** Kernel file contents: a bzImage, or an ELF (vmlinux or any PVH-capable ELF). */
  readonly kernel: Uint8Array;
  readonly initrd?: Uint8Array;
  readonly cmdline: string;
  /** Guest RAM; regions may be split around a 32-bit PCI hole. */
  readonly memory: GuestMemory;
  /** Extra non-RAM ranges for the memory map (e.g. ACPI tables). */
  readonly reservedRanges?: readonly ReservedRange[];
  /** Guest physical address of the ACPI RSDP, when the VMM built tables. */
  readonly acpiRsdp?: number;
}

export interface BootResult {
  readonly protocol: BootProtocol;
  readonly cpu: CpuEntryState;
  /** Everything the kernel occupies at entry (for a bzImage, up to the end of its init_size). */
  readonly kernelRange: GuestRange;
  readonly initrdRange?: GuestRange;
  /** The memory map given to the guest (e820 / PVH memmap). */
  readonly memoryMap: readonly MemoryMapEntry[];
}

/** Validated inputs handed to a format loader. */
export interface LoadContext {
  readonly memory: GuestMemory;
  readonly memoryMap: readonly MemoryMapEntry[];
  /** RAM the loaders may fill (see usableRanges). */
  readonly usable: readonly GuestRange[];
  /** Command line bytes without the NUL. */
  readonly cmdline: Uint8Array;
  /** Absent when no initrd was given or it is empty. */
  readonly initrd?: Uint8Array;
  readonly acpiRsdp?: number;
}
