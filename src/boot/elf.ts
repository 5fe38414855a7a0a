/**
 * Just enough ELF to boot a kernel: the file header, PT_LOAD segments and the
 * Xen PVH entry note. Every offset and size comes from the file, so each one
 * is checked before use.
 */

import { BootError, hex } from './boot-error.js';
import { ByteReader } from './byte-reader.js';

export const EI_CLASS = 4;
export const EI_DATA = 5;
export const EI_VERSION = 6;
export const ELFCLASS32 = 1;
export const ELFCLASS64 = 2;
export const ELFDATA2LSB = 1;
export const EV_CURRENT = 1;
export const ET_EXEC = 2;
export const EM_386 = 3;
export const EM_X86_64 = 62;
export const PT_LOAD = 1;
export const PT_NOTE = 4;
/** e_phnum value meaning "the real count is in section header 0"; no kernel does that. */
export const PN_XNUM = 0xffff;
/** xen/include/public/elfnote.h: 32-bit physical entry point for PVH. */
export const XEN_ELFNOTE_PHYS32_ENTRY = 18;
export const XEN_ELFNOTE_NAME = 'Xen';

const ELF_MAGIC = [0x7f, 0x45, 0x4c, 0x46] as const;

export type ElfClass = 32 | 64;

export interface ElfSegment {
  readonly fileOffset: number;
  readonly fileSize: number;
  readonly memorySize: number;
  readonly physicalAddress: number;
  /** May be a kernel virtual address such as 0xffffffff81000000, hence bigint. */
  readonly virtualAddress: bigint;
}

export interface ElfKernel {
  readonly elfClass: ElfClass;
  readonly entry: bigint;
  /** PT_LOAD segments with a non-zero memory size, sorted by physical address. */
  readonly segments: readonly ElfSegment[];
  /** XEN_ELFNOTE_PHYS32_ENTRY value when the kernel supports PVH. */
  readonly pvhEntry?: number;
}

/** Header and program header field offsets per class (ELF32 / ELF64). */
const FIELDS = {
  32: {
    entry: 24, phoff: 28, phentsize: 42, phnum: 44, phdrSize: 32,
    pType: 0, pOffset: 4, pVaddr: 8, pPaddr: 12, pFilesz: 16, pMemsz: 20, pAlign: 28,
  },
  64: {
    entry: 24, phoff: 32, phentsize: 54, phnum: 56, phdrSize: 56,
    pType: 0, pOffset: 8, pVaddr: 16, pPaddr: 24, pFilesz: 32, pMemsz: 40, pAlign: 48,
  },
} as const;

const MAX_SAFE = BigInt(Number.MAX_SAFE_INTEGER);

export function isElf(image: Uint8Array): boolean {
  return image.length >= ELF_MAGIC.length && ELF_MAGIC.every((b, i) => image[i] === b);
}

function bad(message: string): BootError {
  return new BootError('bad-elf', `malformed ELF kernel: ${message}`);
}

export function parseElf(image: Uint8Array): ElfKernel {
  if (!isElf(image)) throw bad('no ELF magic');
  const r = new ByteReader(image, 'bad-elf', 'malformed ELF kernel');
  const cls = r.u8(EI_CLASS, 'e_ident');
  if (cls !== ELFCLASS32 && cls !== ELFCLASS64) throw bad(`unknown class ${cls}`);
  const elfClass: ElfClass = cls === ELFCLASS64 ? 64 : 32;
  const f = FIELDS[elfClass];
  if (r.u8(EI_DATA) !== ELFDATA2LSB) throw bad('not little-endian');
  if (r.u8(EI_VERSION) !== EV_CURRENT) throw bad(`unknown version ${r.u8(EI_VERSION)}`);
  const word = (offset: number, field: string): bigint =>
    elfClass === 64 ? r.u64(offset, field) : BigInt(r.u32(offset, field));

  const type = r.u16(16, 'e_type');
  if (type !== ET_EXEC) throw bad(`e_type ${type} is not ET_EXEC`);
  const machine = r.u16(18, 'e_machine');
  if (machine !== EM_386 && machine !== EM_X86_64) throw bad(`e_machine ${machine} is not x86`);
  const entry = word(f.entry, 'e_entry');
  const phoff = word(f.phoff, 'e_phoff');
  const phentsize = r.u16(f.phentsize, 'e_phentsize');
  const phnum = r.u16(f.phnum, 'e_phnum');
  if (phentsize !== f.phdrSize) throw bad(`e_phentsize ${phentsize} should be ${f.phdrSize}`);
  if (phnum === 0 || phnum === PN_XNUM) throw bad(`unusable program header count ${phnum}`);
  if (phoff + BigInt(phnum * phentsize) > BigInt(image.length)) {
    throw bad(`program headers at ${hex(phoff)} (${phnum} x ${phentsize} bytes) extend beyond the end of the file`);
  }
  const tableStart = Number(phoff);

  const segments: ElfSegment[] = [];
  let pvhEntry: number | undefined;
  for (let i = 0; i < phnum; i++) {
    const ph = tableStart + i * phentsize;
    const pType = r.u32(ph + f.pType, 'p_type');
    if (pType !== PT_LOAD && pType !== PT_NOTE) continue;
    const offset = word(ph + f.pOffset, 'p_offset');
    const fileSize = word(ph + f.pFilesz, 'p_filesz');
    if (offset + fileSize > BigInt(image.length)) {
      throw bad(`segment ${i} file range ${hex(offset)}+${hex(fileSize)} extends beyond the end of the file (${hex(image.length)} bytes)`);
    }
    if (pType === PT_NOTE) {
      const found = findPvhEntry(r, Number(offset), Number(fileSize), word(ph + f.pAlign, 'p_align'));
      pvhEntry ??= found;
      continue;
    }
    const memorySize = word(ph + f.pMemsz, 'p_memsz');
    const paddr = word(ph + f.pPaddr, 'p_paddr');
    if (fileSize > memorySize) throw bad(`segment ${i} has p_filesz ${hex(fileSize)} larger than p_memsz ${hex(memorySize)}`);
    if (memorySize === 0n) continue;
    if (paddr + memorySize > MAX_SAFE) {
      throw new BootError('segment-outside-ram', `ELF segment ${i} at ${hex(paddr)}+${hex(memorySize)} is outside guest RAM`);
    }
    segments.push({
      fileOffset: Number(offset),
      fileSize: Number(fileSize),
      memorySize: Number(memorySize),
      physicalAddress: Number(paddr),
      virtualAddress: word(ph + f.pVaddr, 'p_vaddr'),
    });
  }
  segments.sort((a, b) => a.physicalAddress - b.physicalAddress);
  for (let i = 1; i < segments.length; i++) {
    const prev = segments[i - 1]!;
    const cur = segments[i]!;
    if (prev.physicalAddress + prev.memorySize > cur.physicalAddress) {
      throw new BootError(
        'segment-overlap',
        `ELF segments at ${hex(prev.physicalAddress)}+${hex(prev.memorySize)} and ${hex(cur.physicalAddress)}+${hex(cur.memorySize)} overlap`,
      );
    }
  }
  return pvhEntry === undefined ? { elfClass, entry, segments } : { elfClass, entry, segments, pvhEntry };
}

/** Walks one PT_NOTE segment for the "Xen" PHYS32_ENTRY note. */
function findPvhEntry(r: ByteReader, start: number, size: number, pAlign: bigint): number | undefined {
  // Notes are padded to 4 bytes, or 8 in segments aligned that way (gABI).
  const align = pAlign === 8n ? 8 : 4;
  const pad = (n: number): number => Math.ceil(n / align) * align;
  const end = start + size;
  let pos = start;
  while (pos + 12 <= end) {
    const nameSize = r.u32(pos, 'note namesz');
    const descSize = r.u32(pos + 4, 'note descsz');
    const type = r.u32(pos + 8, 'note type');
    const nameAt = pos + 12;
    const descAt = nameAt + pad(nameSize);
    if (descAt + descSize > end) throw bad(`note at file offset ${hex(pos)} extends beyond its PT_NOTE segment`);
    const name = r.bytes.subarray(nameAt, nameAt + nameSize);
    if (type === XEN_ELFNOTE_PHYS32_ENTRY && isXenName(name)) {
      if (descSize !== 4 && descSize !== 8) throw bad(`Xen PHYS32_ENTRY note has a ${descSize}-byte value`);
      const value = descSize === 4 ? BigInt(r.u32(descAt)) : r.u64(descAt);
      if (value > 0xffffffffn) throw bad(`PVH entry point ${hex(value)} is above 4 GiB`);
      return Number(value);
    }
    pos = descAt + pad(descSize);
  }
  return undefined;
}

/** "Xen" with its NUL (namesz 4), tolerating a writer that left the NUL out. */
function isXenName(name: Uint8Array): boolean {
  const text = XEN_ELFNOTE_NAME;
  if (name.length !== text.length && !(name.length === text.length + 1 && name[text.length] === 0)) return false;
  for (let i = 0; i < text.length; i++) if (name[i] !== text.charCodeAt(i)) return false;
  return true;
}
