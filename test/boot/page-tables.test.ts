import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { SegmentState } from '../../src/vmm/cpu-state.js';
import { loadKernel } from '../../src/boot/load-kernel.js';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { buildBzImage } from './bzimage-writer.js';
import { buildElf, pvhNote } from './elf-writer.js';

const MiB = 0x100000;

/** Walks 4-level paging (2 MiB or 4 KiB leaves) like the MMU; undefined when not present. */
function translate(memory: GuestMemory, cr3: number, va: number): number | undefined {
  const bits = BigInt(va);
  let table = BigInt(cr3) & ~0xfffn;
  for (const shift of [39n, 30n, 21n, 12n]) {
    const index = (bits >> shift) & 0x1ffn;
    const entry = memory.readU64(Number(table + index * 8n));
    if ((entry & 1n) === 0n) return undefined;
    const frame = entry & 0x000ffffffffff000n;
    if (shift === 21n && (entry & 0x80n) !== 0n) return Number((frame & ~0x1fffffn) | (bits & 0x1fffffn));
    if (shift === 12n) return Number(frame | (bits & 0xfffn));
    table = frame;
  }
  return undefined;
}

test('identity map: 0x12345678 and the whole first 4 GiB map to themselves', () => {
  const memory = GuestMemory.fromLayout([[0, 32 * MiB]]);
  const { cpu } = loadKernel({ kernel: buildBzImage(), memory, cmdline: '' });
  assert.is(translate(memory, cpu.cr3, 0x12345678), 0x12345678);
  for (const va of [0, 0x7000, 0x100200, 0x1fffff, 0x200000, 0x3fffffff, 0x40000000, 0xc0001234, 0xfffff000, 0xffffffff]) {
    assert.is(translate(memory, cpu.cr3, va), va, `0x${va.toString(16)}`);
  }
  assert.is(translate(memory, cpu.cr3, 0x100000000), undefined, 'nothing above 4 GiB');
  // Entries are present + writable.
  assert.is(memory.readU64(0x9000) & 3n, 3n);
});

/** Decodes a GDT descriptor into the fields KVM's segment carries. */
function decode(memory: GuestMemory, base: number, selector: number) {
  const d = memory.readU64(base + selector);
  const lo = Number(d & 0xffffffffn);
  const hi = Number(d >> 32n);
  const g = (hi >>> 23) & 1;
  const rawLimit = (lo & 0xffff) | (hi & 0xf0000);
  return {
    base: ((lo >>> 16) | ((hi & 0xff) << 16) | (hi & 0xff000000)) >>> 0,
    limit: g ? rawLimit * 0x1000 + 0xfff : rawLimit,
    type: (hi >>> 8) & 0xf,
    s: (hi >>> 12) & 1,
    dpl: (hi >>> 13) & 3,
    present: (hi >>> 15) & 1,
    avl: (hi >>> 20) & 1,
    l: (hi >>> 21) & 1,
    db: (hi >>> 22) & 1,
    g,
  };
}

function assertMatches(memory: GuestMemory, gdtBase: number, seg: SegmentState, name: string): void {
  const { selector, ...expected } = seg;
  assert.equal(decode(memory, gdtBase, selector), expected, name);
}

test('GDT descriptors agree with the segment state (64-bit and PVH)', () => {
  const memory = GuestMemory.fromLayout([[0, 32 * MiB]]);
  const linux = loadKernel({ kernel: buildBzImage(), memory, cmdline: '' }).cpu;
  for (const [seg, name] of [[linux.cs, 'cs'], [linux.data, 'data'], [linux.tr, 'tr']] as const) {
    assertMatches(memory, linux.gdt.base, seg, name);
  }
  assert.is(memory.readU64(linux.gdt.base), 0n, 'null descriptor');

  const pvhMemory = GuestMemory.fromLayout([[0, 32 * MiB]]);
  const kernel = buildElf({ elfClass: 32, entry: 0x200000, segments: [{ paddr: 0x200000, data: new Uint8Array(16) }], notes: [pvhNote(0x200000)] }).bytes;
  const pvh = loadKernel({ kernel, memory: pvhMemory, cmdline: '' }).cpu;
  for (const [seg, name] of [[pvh.cs, 'cs'], [pvh.data, 'data'], [pvh.tr, 'tr']] as const) {
    assertMatches(pvhMemory, pvh.gdt.base, seg, name);
  }
});

test('split memory: e820 includes RAM above 4 GiB; initrd stays below 4 GiB', () => {
  const memory = GuestMemory.fromLayout([[0, 32 * MiB], [0x100000000, 2 * MiB]]);
  const initrd = new Uint8Array(0x1000).fill(1);
  const result = loadKernel({ kernel: buildBzImage(), memory, cmdline: '', initrd });
  assert.is(memory.readU8(0x7000 + 0x1e8), 4);
  const last = 0x7000 + 0x2d0 + 3 * 20;
  assert.is(memory.readU64(last), 0x100000000n);
  assert.is(memory.readU64(last + 8), BigInt(2 * MiB));
  assert.is(memory.readU32(last + 16), 1);
  assert.is(result.initrdRange![1], 32 * MiB);
});

test.run();
