/** Builds small synthetic ELF kernels for the boot tests. */

export interface TestSegment {
  readonly paddr: number;
  /** Defaults to paddr. */
  readonly vaddr?: bigint;
  readonly data: Uint8Array;
  /** Defaults to data.length; larger means bss. */
  readonly memsz?: number;
}

export interface TestNote {
  readonly name: string;
  readonly type: number;
  readonly desc: Uint8Array;
}

export interface TestElf {
  readonly elfClass: 32 | 64;
  readonly machine?: number;
  readonly entry: bigint | number;
  readonly segments: readonly TestSegment[];
  readonly notes?: readonly TestNote[];
  /** p_align of the PT_NOTE segment (note padding follows it: 4 or 8). */
  readonly noteAlign?: 4 | 8;
}

export const EM_386 = 3;
export const EM_X86_64 = 62;

/** A PHYS32_ENTRY note as Linux emits it (8-byte value on x86-64) or as 4 bytes. */
export function pvhNote(entry: number, size: 4 | 8 = 4): TestNote {
  const desc = new Uint8Array(size);
  const view = new DataView(desc.buffer);
  if (size === 4) view.setUint32(0, entry, true);
  else view.setBigUint64(0, BigInt(entry), true);
  return { name: 'Xen', type: 18, desc };
}

function noteBytes(notes: readonly TestNote[], align: number): Uint8Array {
  const pad = (n: number): number => Math.ceil(n / align) * align;
  const parts: number[] = [];
  for (const n of notes) {
    const name = new TextEncoder().encode(`${n.name}\0`);
    const header = new DataView(new ArrayBuffer(12));
    header.setUint32(0, name.length, true);
    header.setUint32(4, n.desc.length, true);
    header.setUint32(8, n.type, true);
    parts.push(...new Uint8Array(header.buffer));
    const nameBuf = new Uint8Array(pad(name.length));
    nameBuf.set(name);
    parts.push(...nameBuf);
    const descBuf = new Uint8Array(pad(n.desc.length));
    descBuf.set(n.desc);
    parts.push(...descBuf);
  }
  return Uint8Array.from(parts);
}

export interface BuiltElf {
  readonly bytes: Uint8Array;
  /** File offset of the program header table, for corrupting tests. */
  readonly phoff: number;
  readonly phentsize: number;
  /** File offsets of each segment's data (in input order). */
  readonly dataOffsets: readonly number[];
}

export function buildElf(spec: TestElf): BuiltElf {
  const is64 = spec.elfClass === 64;
  const ehsize = is64 ? 64 : 52;
  const phentsize = is64 ? 56 : 32;
  const notes = spec.notes ?? [];
  const phnum = spec.segments.length + (notes.length > 0 ? 1 : 0);
  const phoff = ehsize;
  let cursor = phoff + phnum * phentsize;
  const noteAlign = spec.noteAlign ?? 4;
  const note = noteBytes(notes, noteAlign);
  const noteOffset = Math.ceil(cursor / 8) * 8;
  cursor = noteOffset + note.length;
  const dataOffsets = spec.segments.map((s) => {
    const at = Math.ceil(cursor / 16) * 16;
    cursor = at + s.data.length;
    return at;
  });
  const bytes = new Uint8Array(cursor);
  const v = new DataView(bytes.buffer);
  bytes.set([0x7f, 0x45, 0x4c, 0x46, is64 ? 2 : 1, 1, 1]);
  v.setUint16(16, 2, true); // ET_EXEC
  v.setUint16(18, spec.machine ?? (is64 ? EM_X86_64 : EM_386), true);
  v.setUint32(20, 1, true);
  const word = (off: number, value: bigint | number): void => {
    if (is64) v.setBigUint64(off, BigInt(value), true);
    else v.setUint32(off, Number(value), true);
  };
  word(24, spec.entry);
  word(is64 ? 32 : 28, phoff);
  v.setUint16(is64 ? 52 : 40, ehsize, true);
  v.setUint16(is64 ? 54 : 42, phentsize, true);
  v.setUint16(is64 ? 56 : 44, phnum, true);

  const phdr = (i: number, type: number, offset: number, vaddr: bigint | number, paddr: number, filesz: number, memsz: number, align: number): void => {
    const at = phoff + i * phentsize;
    v.setUint32(at, type, true);
    if (is64) {
      v.setUint32(at + 4, 7, true);
      v.setBigUint64(at + 8, BigInt(offset), true);
      v.setBigUint64(at + 16, BigInt(vaddr), true);
      v.setBigUint64(at + 24, BigInt(paddr), true);
      v.setBigUint64(at + 32, BigInt(filesz), true);
      v.setBigUint64(at + 40, BigInt(memsz), true);
      v.setBigUint64(at + 48, BigInt(align), true);
    } else {
      v.setUint32(at + 4, offset, true);
      v.setUint32(at + 8, Number(vaddr), true);
      v.setUint32(at + 12, paddr, true);
      v.setUint32(at + 16, filesz, true);
      v.setUint32(at + 20, memsz, true);
      v.setUint32(at + 24, 7, true);
      v.setUint32(at + 28, align, true);
    }
  };
  spec.segments.forEach((s, i) => {
    bytes.set(s.data, dataOffsets[i]!);
    phdr(i, 1, dataOffsets[i]!, s.vaddr ?? s.paddr, s.paddr, s.data.length, s.memsz ?? s.data.length, 0x1000);
  });
  if (notes.length > 0) {
    bytes.set(note, noteOffset);
    phdr(spec.segments.length, 4, noteOffset, 0, 0, note.length, note.length, noteAlign);
  }
  return { bytes, phoff, phentsize, dataOffsets };
}
