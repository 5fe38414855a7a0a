/**
 * Fuzz target: the boot-file parsers and loaders (ELF with its PVH note, the bzImage setup header,
 * initrd and command line placement) through loadKernel, the one entry point the CLI uses.
 *
 * Images are built by the boot tests' writers from random specs (plausible and hostile field
 * values), then have bytes overwritten and may be truncated; some are random bytes behind an ELF
 * or bzImage signature. The load must end in a BootError or in a result that stays inside guest
 * RAM: kernel above 1 MiB and below 4 GiB, every segment RAM and holding its file bytes, the
 * initrd page-aligned in RAM, apart from the kernel and holding its bytes, the entry point inside
 * the kernel. Any other exception (RangeError, GuestMemoryError, TypeError) is a bug.
 */
import fc from 'fast-check';
import { BootError } from '../../src/boot/boot-error.js';
import { isElf, parseElf } from '../../src/boot/elf.js';
import { loadKernel } from '../../src/boot/load-kernel.js';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { buildBzImage, patternPayload, type TestBzImage } from '../boot/bzimage-writer.js';
import { buildElf, type TestElf, type TestNote } from '../boot/elf-writer.js';
import { fillPattern, type FuzzTarget } from './fuzz-target.js';

const MiB = 0x100000;
const FOUR_GIB = 2 ** 32;

/** Guest RAM layouts, built once and reused (a load overwrites what it needs). */
const LAYOUTS: ReadonlyArray<ReadonlyArray<readonly [number, number]>> = [
  [[0, 32 * MiB]],
  [[0, 2 * MiB]],
  [[0, 8 * MiB], [16 * MiB, 8 * MiB]],
];
const memories: Array<GuestMemory | undefined> = [];

function memoryFor(layout: number): GuestMemory {
  return (memories[layout] ??= GuestMemory.fromLayout(LAYOUTS[layout]!));
}

interface Patch {
  /** Offset into the image (modulo its length). */
  readonly at: number;
  readonly width: 1 | 2 | 4 | 8;
  readonly value: bigint;
}

interface SegmentSpec {
  readonly paddr: number;
  readonly vaddr: bigint | null;
  readonly size: number;
  readonly bss: number;
}

interface NoteSpec {
  readonly name: string;
  readonly type: number;
  readonly desc: Uint8Array | null;
  readonly entry: number;
}

export type BootImageSpec =
  | { readonly kind: 'elf'; readonly elfClass: 32 | 64; readonly machine: number; readonly entry: bigint | null; readonly segments: SegmentSpec[]; readonly notes: NoteSpec[]; readonly noteAlign: 4 | 8 }
  | { readonly kind: 'bzimage'; readonly header: TestBzImage; readonly payloadSize: number }
  | { readonly kind: 'random'; readonly prefix: 'elf' | 'bzimage' | 'none'; readonly bytes: Uint8Array };

export interface BootCase {
  readonly image: BootImageSpec;
  readonly patches: Patch[];
  /** Keep only this many bytes (null: all). */
  readonly truncate: number | null;
  readonly layout: number;
  readonly initrdSize: number;
  readonly cmdline: string;
}

const addressArb = fc.oneof(
  { arbitrary: fc.constantFrom(MiB, 2 * MiB, 0x7ff000, 16 * MiB, 0x1fff000, 0, 0x9f000, 0xfffff000, 0x1_0000_0000), weight: 4 },
  { arbitrary: fc.integer({ min: 0, max: 40 * MiB }), weight: 2 },
  { arbitrary: fc.nat(), weight: 1 },
);

const segmentArb: fc.Arbitrary<SegmentSpec> = fc.record({
  paddr: fc.oneof({ arbitrary: fc.integer({ min: 1, max: 24 }).map((n) => n * MiB), weight: 3 }, { arbitrary: addressArb, weight: 1 }),
  vaddr: fc.option(fc.constantFrom(0xffffffff81000000n, 0xffffffff80000000n, 0n), { freq: 3 }),
  size: fc.oneof(fc.integer({ min: 0, max: 0x2000 }), fc.constantFrom(0, 1, 0x1000)),
  bss: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.integer({ min: 0, max: 0x4000 }), weight: 4 }, { arbitrary: fc.constant(64 * MiB), weight: 1 }),
});

const noteArb: fc.Arbitrary<NoteSpec> = fc.record({
  name: fc.oneof({ arbitrary: fc.constant('Xen'), weight: 4 }, { arbitrary: fc.constantFrom('Linux', 'Xe', 'Xen\0', ''), weight: 1 }, { arbitrary: fc.string({ maxLength: 9 }), weight: 1 }),
  type: fc.oneof({ arbitrary: fc.constant(18), weight: 4 }, { arbitrary: fc.nat({ max: 40 }), weight: 1 }),
  desc: fc.oneof({ arbitrary: fc.constant(null), weight: 5 }, { arbitrary: fc.uint8Array({ maxLength: 12 }), weight: 1 }),
  /** Below 0x10000: that far into the first segment (a plausible entry); else an address. */
  entry: fc.oneof({ arbitrary: fc.nat({ max: 0xffff }), weight: 3 }, { arbitrary: addressArb, weight: 1 }),
});

const elfArb = fc.record({
  kind: fc.constant('elf' as const),
  elfClass: fc.constantFrom(32 as const, 64 as const),
  machine: fc.oneof({ arbitrary: fc.constant(-1), weight: 15 }, { arbitrary: fc.nat({ max: 0xffff }), weight: 1 }),
  entry: fc.oneof(
    { arbitrary: fc.constant(null), weight: 4 },
    { arbitrary: fc.oneof(addressArb.map(BigInt), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), fc.constant(0xffffffff81000000n)), weight: 1 },
  ),
  segments: fc.oneof({ arbitrary: fc.array(segmentArb, { minLength: 1, maxLength: 4 }), weight: 8 }, { arbitrary: fc.constant([] as SegmentSpec[]), weight: 1 }),
  notes: fc.array(noteArb, { maxLength: 3 }),
  noteAlign: fc.constantFrom(4 as const, 8 as const),
});

/** A field a writer normally leaves at its default: usually undefined, sometimes one of `values`. */
function seldom<T>(values: fc.Arbitrary<T>): fc.Arbitrary<T | undefined> {
  return fc.oneof({ arbitrary: fc.constant(undefined), weight: 5 }, { arbitrary: values, weight: 1 });
}

const u32Arb = fc.oneof(fc.constantFrom(0, 1, 0xffffffff, 0x7fffffff, 0x1000, 0x200000, 16 * MiB), fc.nat({ max: 0xffffffff }));

const bzArb = fc.record({
  kind: fc.constant('bzimage' as const),
  header: fc.record(
    {
      version: seldom(fc.oneof(fc.constantFrom(0x020f, 0x020c, 0x020b, 0x0206, 0x0205, 0xffff), fc.nat({ max: 0xffff }))),
      loadflags: seldom(fc.oneof(fc.constantFrom(0x01, 0x81, 0x00), fc.nat({ max: 0xff }))),
      xloadflags: seldom(fc.oneof(fc.constantFrom(0x03, 0x01, 0x02, 0x00), fc.nat({ max: 0xffff }))),
      setupSects: seldom(fc.oneof(fc.integer({ min: 0, max: 8 }), fc.nat({ max: 0xff }))),
      relocatable: seldom(fc.boolean()),
      kernelAlignment: seldom(fc.oneof(fc.constantFrom(0x200000, 0x1000, 0, 3, 0x80000000), u32Arb)),
      cmdlineSize: seldom(fc.oneof(fc.constantFrom(2047, 0, 10, 0xffffffff), u32Arb)),
      initrdAddrMax: seldom(u32Arb),
      prefAddress: seldom(fc.oneof(addressArb, fc.constantFrom(2 ** 53, 2 ** 60))),
      initSize: seldom(fc.oneof(fc.constantFrom(0x200000, 0, 0x10000000), u32Arb)),
      headerEnd: seldom(fc.oneof(fc.constantFrom(0x26c, 0x264, 0x263, 0x290, 0x291, 0x202), fc.integer({ min: 0x202, max: 0x301 }))),
    },
  ),
  payloadSize: fc.oneof(fc.constantFrom(0x3000, 0x200, 0x201, 0), fc.nat({ max: 0x4000 })),
});

const randomArb = fc.record({
  kind: fc.constant('random' as const),
  prefix: fc.constantFrom('elf' as const, 'bzimage' as const, 'none' as const),
  bytes: fc.uint8Array({ maxLength: 2048 }),
});

const patchArb: fc.Arbitrary<Patch> = fc.record({
  at: fc.oneof(fc.nat({ max: 0x80 }), fc.integer({ min: 0x1f0, max: 0x270 }), fc.nat()),
  width: fc.constantFrom(1 as const, 2 as const, 4 as const, 8 as const),
  value: fc.oneof(fc.bigInt({ min: 0n, max: 0xffn }), fc.constantFrom(0n, 0xffffffffn, 0xffffffffffffffffn, 0x7fffffffn, 0x100000n), fc.bigInt({ min: 0n, max: 2n ** 64n - 1n })),
});

export const bootCaseArb: fc.Arbitrary<BootCase> = fc.record({
  image: fc.oneof({ arbitrary: elfArb, weight: 3 }, { arbitrary: bzArb, weight: 3 }, { arbitrary: randomArb, weight: 1 }),
  patches: fc.oneof({ arbitrary: fc.constant([] as Patch[]), weight: 1 }, { arbitrary: fc.array(patchArb, { minLength: 1, maxLength: 4 }), weight: 1 }),
  truncate: fc.oneof({ arbitrary: fc.constant(null), weight: 6 }, { arbitrary: fc.nat({ max: 0x4000 }), weight: 1 }),
  layout: fc.nat({ max: LAYOUTS.length - 1 }),
  initrdSize: fc.oneof(fc.constant(0), fc.integer({ min: 1, max: 0x3000 }), fc.constantFrom(MiB, 6 * MiB, 31 * MiB)),
  cmdline: fc.oneof(fc.constant('console=ttyS0'), fc.string({ maxLength: 40 })),
});

function buildImage(spec: BootImageSpec): Uint8Array {
  switch (spec.kind) {
    case 'elf': {
      const notes: TestNote[] = spec.notes.map((n) => {
        let desc = n.desc;
        if (!desc) {
          desc = new Uint8Array(spec.elfClass === 64 ? 8 : 4);
          const entry = n.entry < 0x10000 ? (spec.segments[0]?.paddr ?? 0) + n.entry : n.entry;
          new DataView(desc.buffer).setUint32(0, entry >>> 0, true);
        }
        return { name: n.name, type: n.type, desc };
      });
      const elf: TestElf = {
        elfClass: spec.elfClass,
        ...(spec.machine >= 0 && { machine: spec.machine }),
        entry: spec.entry ?? BigInt(spec.segments[0]?.paddr ?? 0),
        segments: spec.segments.map((s, i) => {
          const data = new Uint8Array(s.size);
          fillPattern(data, i + 1);
          return { paddr: spec.elfClass === 32 ? s.paddr >>> 0 : s.paddr, ...(s.vaddr !== null && spec.elfClass === 64 && { vaddr: s.vaddr }), data, memsz: s.size + s.bss };
        }),
        notes,
        noteAlign: spec.noteAlign,
      };
      return buildElf(elf).bytes;
    }
    case 'bzimage':
      return buildBzImage({ ...spec.header, payload: patternPayload(spec.payloadSize) });
    case 'random': {
      const bytes = new Uint8Array(Math.max(spec.bytes.length, spec.prefix === 'bzimage' ? 0x300 : 0));
      bytes.set(spec.bytes);
      if (spec.prefix === 'elf') bytes.set([0x7f, 0x45, 0x4c, 0x46].slice(0, bytes.length));
      if (spec.prefix === 'bzimage') {
        const v = new DataView(bytes.buffer);
        v.setUint16(0x1fe, 0xaa55, true);
        v.setUint32(0x202, 0x53726448, true);
      }
      return bytes;
    }
  }
}

/** The image a case describes: built, patched, truncated. */
export function bootImage(c: BootCase): Uint8Array {
  let image = buildImage(c.image);
  if (image.length > 0) {
    const v = new DataView(image.buffer, image.byteOffset, image.byteLength);
    for (const p of c.patches) {
      const at = p.at % image.length;
      if (at + p.width > image.length) continue;
      if (p.width === 1) v.setUint8(at, Number(p.value & 0xffn));
      else if (p.width === 2) v.setUint16(at, Number(p.value & 0xffffn), true);
      else if (p.width === 4) v.setUint32(at, Number(p.value & 0xffffffffn), true);
      else v.setBigUint64(at, p.value, true);
    }
  }
  if (c.truncate !== null && c.truncate < image.length) image = image.subarray(0, c.truncate);
  return image;
}

class Violation extends Error {
  override name = 'Violation';
}

function expect(condition: boolean, message: () => string): void {
  if (!condition) throw new Violation(message());
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return Buffer.from(a.buffer, a.byteOffset, a.byteLength).equals(Buffer.from(b.buffer, b.byteOffset, b.byteLength));
}

/** Initrds by size: the large ones are few fixed sizes, filled once. */
const initrds = new Map<number, Uint8Array>();

function initrdOf(size: number): Uint8Array {
  let initrd = initrds.get(size);
  if (!initrd) {
    initrd = new Uint8Array(size);
    fillPattern(initrd, size);
    if (initrds.size > 64) initrds.clear();
    initrds.set(size, initrd);
  }
  return initrd;
}

export function checkBootCase(c: BootCase): void {
  const kernel = bootImage(c);
  const memory = memoryFor(c.layout);
  const initrd = c.initrdSize > 0 ? initrdOf(c.initrdSize) : undefined;
  let result;
  try {
    result = loadKernel({ kernel, memory, cmdline: c.cmdline, ...(initrd && { initrd }) });
  } catch (error) {
    if (error instanceof BootError) {
      expect(!error.message.includes('\n'), () => `a BootError message has several lines: ${JSON.stringify(error.message)}`);
      return;
    }
    throw error;
  }
  const [start, end] = result.kernelRange;
  const range = `kernel ${start.toString(16)}-${end.toString(16)}`;
  expect(Number.isSafeInteger(start) && Number.isSafeInteger(end) && start < end, () => `${range} is not a range`);
  expect(start >= MiB && end <= FOUR_GIB, () => `${range} is not between 1 MiB and 4 GiB`);
  const rip = result.cpu.rip;
  expect(rip >= start && rip < end, () => `entry 0x${rip.toString(16)} is outside the ${range}`);
  if (isElf(kernel)) {
    for (const s of parseElf(kernel).segments) {
      expect(memory.contains(s.physicalAddress, s.memorySize), () => `ELF segment 0x${s.physicalAddress.toString(16)}+0x${s.memorySize.toString(16)} was loaded outside RAM`);
      expect(equalBytes(memory.slice(s.physicalAddress, s.fileSize), kernel.subarray(s.fileOffset, s.fileOffset + s.fileSize)), () => 'an ELF segment does not hold its file bytes');
    }
  } else {
    expect(result.protocol === 'linux-bzimage', () => `a bzImage booted as ${result.protocol}`);
    expect(memory.contains(start, end - start), () => `${range} is not RAM`);
  }
  if (initrd) {
    const placed = result.initrdRange;
    expect(placed !== undefined, () => 'the initrd was not placed');
    const [a, b] = placed!;
    expect(b - a === initrd.length && a % 0x1000 === 0, () => `initrd range ${a}-${b} is not a page-aligned ${initrd.length} bytes`);
    expect(memory.contains(a, initrd.length), () => `initrd 0x${a.toString(16)}-0x${b.toString(16)} is not RAM`);
    expect(b <= start || a >= end, () => `initrd 0x${a.toString(16)}-0x${b.toString(16)} overlaps the ${range}`);
    expect(b <= FOUR_GIB, () => 'initrd above 4 GiB');
    expect(equalBytes(memory.slice(a, initrd.length), initrd), () => 'the initrd bytes in RAM differ from the file');
  } else {
    expect(result.initrdRange === undefined, () => 'an initrd range without an initrd');
  }
}

export const bootImageTarget: FuzzTarget<BootCase> = {
  name: 'boot-image',
  description: 'ELF / PVH note / bzImage setup header / initrd placement through loadKernel: BootError or a load inside RAM',
  arbitrary: bootCaseArb,
  check: checkBootCase,
  testRuns: { fixed: 800, random: 200 },
  dispose() {
    memories.length = 0;
    initrds.clear();
  },
};
