/** x86 boot protocols (PVH, Linux bzImage, Linux ELF vmlinux); pure, no KVM. */

export { BootError, type BootErrorKind } from './boot-error.js';
export type { BootOptions, BootResult, GuestRange } from './boot-options.js';
export type { BootProtocol, CpuEntryState, DescriptorTable, SegmentState } from '../vmm/cpu-state.js';
export { isLinuxKernel, loadKernel } from './load-kernel.js';
export {
  E820_TYPE_ACPI,
  E820_TYPE_NVS,
  E820_TYPE_PMEM,
  E820_TYPE_RAM,
  E820_TYPE_RESERVED,
  E820_TYPE_UNUSABLE,
  type MemoryMapEntry,
  type RegionDescriptor,
  type ReservedRange,
  buildMemoryMap,
} from './memory-map.js';
