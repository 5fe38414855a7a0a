import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { BootError } from '../../src/boot/boot-error.js';
import { isLinuxKernel, loadKernel } from '../../src/boot/load-kernel.js';
import { buildBzImage } from './bzimage-writer.js';
import { E820_TYPE_RAM, E820_TYPE_RESERVED } from '../../src/boot/memory-map.js';
import { GuestMemory } from '../../src/vmm/guest-memory.js';
import { throwsBootError } from './assert-boot-error.js';
import { type TestElf, buildElf, pvhNote } from './elf-writer.js';

const MiB = 0x100000;
const SI = 0x6000;
const KERNEL_VIRT = 0xffffffff81000000n;

const text = Uint8Array.from({ length: 0x1800 }, (_, i) => (i * 13 + 1) & 0xff);
const data = Uint8Array.from({ length: 0x400 }, (_, i) => (255 - i) & 0xff);

/** A vmlinux-like image: text at 16 MiB, data + bss after it. */
function kernelSpec(overrides: Partial<TestElf> = {}): TestElf {
  return {
    elfClass: 64,
    entry: 0x1000000,
    segments: [
      { paddr: 0x1000000, vaddr: KERNEL_VIRT, data: text },
      { paddr: 0x1200000, vaddr: KERNEL_VIRT + 0x200000n, data, memsz: 0x3000 },
    ],
    ...overrides,
  };
}

function boot(kernel: Uint8Array, extra: { initrd?: Uint8Array; acpiRsdp?: number; layout?: [number, number][]; dirty?: boolean } = {}) {
  const memory = GuestMemory.fromLayout(extra.layout ?? [[0, 64 * MiB]]);
  // Garbage where bss will be, to see it zeroed.
  if (extra.dirty) memory.fill(0x1200000, 0x3000, 0xaa);
  const result = loadKernel({
    kernel,
    memory,
    cmdline: 'console=hvc0',
    ...(extra.initrd && { initrd: extra.initrd }),
    ...(extra.acpiRsdp !== undefined && { acpiRsdp: extra.acpiRsdp }),
  });
  return { memory, result };
}

test('ELF64 vmlinux without PVH note: segments copied at p_paddr, bss zeroed, 64-bit entry', () => {
  const { memory, result } = boot(buildElf(kernelSpec()).bytes, { dirty: true });
  assert.is(result.protocol, 'linux-elf64');
  assert.equal(memory.slice(0x1000000, text.length), text);
  assert.equal(memory.slice(0x1200000, data.length), data);
  assert.ok(memory.slice(0x1200000 + data.length, 0x3000 - data.length).every((b) => b === 0), 'bss zeroed');
  assert.equal(result.kernelRange, [0x1000000, 0x1203000]);
  assert.is(result.cpu.rip, 0x1000000);
  assert.is(result.cpu.rsi, 0x7000);
  assert.is(result.cpu.cr0, 0x80000011);
  assert.is(result.cpu.cs.l, 1);
  // Zero page: synthesized header fields, command line, e820.
  assert.is(memory.readU16(0x7000 + 0x1fe), 0xaa55);
  assert.is(memory.readU32(0x7000 + 0x202), 0x53726448);
  assert.is(memory.readU8(0x7000 + 0x210), 0xff);
  assert.is(memory.readU32(0x7000 + 0x228), 0x20000);
  assert.is(memory.readCString(0x20000, 100), 'console=hvc0');
  assert.is(memory.readU8(0x7000 + 0x1e8), 3);
});

test('Linux is told apart by its banner (ELF) or its setup header (bzImage)', () => {
  assert.not.ok(isLinuxKernel(buildElf(kernelSpec()).bytes), 'an ELF without the banner (a test guest)');
  const banner = new TextEncoder().encode('Linux version 6.1.0 (gcc) #1 SMP');
  const withBanner = Uint8Array.from(text);
  withBanner.set(banner, 0x100);
  assert.ok(isLinuxKernel(buildElf(kernelSpec({ segments: [{ paddr: 0x1000000, vaddr: KERNEL_VIRT, data: withBanner }] })).bytes));
  assert.ok(isLinuxKernel(buildBzImage()));
  assert.not.ok(isLinuxKernel(new Uint8Array(4096)));
});

test('ELF64 with a virtual e_entry is translated through its segment', () => {
  const { result } = boot(buildElf(kernelSpec({ entry: KERNEL_VIRT + 0x40n })).bytes);
  assert.is(result.cpu.rip, 0x1000040);
});

test('ELF64 entry outside every segment is refused', () => {
  throwsBootError(() => boot(buildElf(kernelSpec({ entry: 0x2000000 })).bytes), 'bad-elf', /entry point/);
});

test('ELF64 initrd goes above the kernel and into the zero page', () => {
  const initrd = new Uint8Array(0x5000).fill(7);
  const { memory, result } = boot(buildElf(kernelSpec()).bytes, { initrd });
  const [start] = result.initrdRange!;
  assert.ok(start >= 0x1203000);
  assert.is(memory.readU32(0x7000 + 0x218), start);
  assert.is(memory.readU32(0x7000 + 0x21c), 0x5000);
  assert.is(start, 64 * MiB - 0x5000);
});

function readStartInfo(memory: GuestMemory) {
  return {
    magic: memory.readU32(SI + 0),
    version: memory.readU32(SI + 4),
    flags: memory.readU32(SI + 8),
    nrModules: memory.readU32(SI + 12),
    modlistPaddr: memory.readU64(SI + 16),
    cmdlinePaddr: memory.readU64(SI + 24),
    rsdpPaddr: memory.readU64(SI + 32),
    memmapPaddr: memory.readU64(SI + 40),
    memmapEntries: memory.readU32(SI + 48),
  };
}

test('ELF64 with the PVH note boots PVH: start info, modlist, memmap, 32-bit state', () => {
  const spec = kernelSpec({ notes: [{ name: 'GNU', type: 3, desc: new Uint8Array(20) }, pvhNote(0x1000100, 8)] });
  const initrd = new Uint8Array(0x3000).fill(9);
  const { memory, result } = boot(buildElf(spec).bytes, { initrd, acpiRsdp: 0xf0000, dirty: true });
  assert.is(result.protocol, 'pvh');
  assert.ok(memory.slice(0x1200000 + data.length, 0x3000 - data.length).every((b) => b === 0), 'bss zeroed');

  const si = readStartInfo(memory);
  assert.equal(si, {
    magic: 0x336ec578,
    version: 1,
    flags: 0,
    nrModules: 1,
    modlistPaddr: 0x6040n,
    cmdlinePaddr: 0x20000n,
    rsdpPaddr: 0xf0000n,
    memmapPaddr: 0x6080n,
    memmapEntries: 3,
  });
  assert.is(memory.readCString(0x20000, 100), 'console=hvc0');
  const [start, end] = result.initrdRange!;
  assert.is(memory.readU64(0x6040), BigInt(start), 'module paddr');
  assert.is(memory.readU64(0x6048), BigInt(end - start), 'module size');
  assert.is(memory.readU64(0x6050), 0n, 'module cmdline');
  assert.is(memory.readU64(0x6058), 0n, 'reserved');
  assert.equal(memory.slice(start, initrd.length), initrd);
  const memmap = [0, 1, 2].map((i) => {
    const at = 0x6080 + i * 24;
    return [Number(memory.readU64(at)), Number(memory.readU64(at + 8)), memory.readU32(at + 16), memory.readU32(at + 20)];
  });
  assert.equal(memmap, [
    [0, 0x9fc00, E820_TYPE_RAM, 0],
    [0x9fc00, 0x60400, E820_TYPE_RESERVED, 0],
    [0x100000, 63 * MiB, E820_TYPE_RAM, 0],
  ]);

  const cpu = result.cpu;
  assert.is(cpu.rip, 0x1000100);
  assert.is(cpu.rbx, SI);
  assert.is(cpu.cr0, 0x11, 'PE (+ET), paging off');
  assert.is(cpu.cr0 & 0x80000000, 0);
  assert.is(cpu.cr4, 0);
  assert.is(cpu.efer, 0);
  assert.is(cpu.rflags, 0x2);
  assert.equal(
    [cpu.cs.base, cpu.cs.limit, cpu.cs.type, cpu.cs.db, cpu.cs.g, cpu.cs.l, cpu.cs.s, cpu.cs.selector],
    [0, 0xffffffff, 0xb, 1, 1, 0, 1, 0x10],
  );
  assert.equal([cpu.data.base, cpu.data.limit, cpu.data.type, cpu.data.db], [0, 0xffffffff, 0x3, 1]);
  assert.equal([cpu.tr.base, cpu.tr.limit, cpu.tr.type, cpu.tr.s, cpu.tr.present], [0, 0x67, 0xb, 0, 1]);
});

test('ELF32 with the PVH note boots PVH; no initrd means no modules', () => {
  const spec: TestElf = {
    elfClass: 32,
    entry: 0x200000,
    segments: [{ paddr: 0x200000, data: text, memsz: 0x2000 }],
    notes: [pvhNote(0x200010)],
  };
  const { memory, result } = boot(buildElf(spec).bytes);
  assert.is(result.protocol, 'pvh');
  assert.is(result.cpu.rip, 0x200010);
  assert.equal(memory.slice(0x200000, text.length), text);
  const si = readStartInfo(memory);
  assert.is(si.magic, 0x336ec578);
  assert.is(si.nrModules, 0);
  assert.is(si.modlistPaddr, 0n);
  assert.is(si.rsdpPaddr, 0n);
  assert.is(result.initrdRange, undefined);
});

test('PVH note with 8-byte note alignment is found', () => {
  const spec = kernelSpec({ notes: [{ name: 'Linux', type: 1, desc: new Uint8Array(5) }, pvhNote(0x1000200, 8)], noteAlign: 8 });
  assert.is(boot(buildElf(spec).bytes).result.cpu.rip, 0x1000200);
});

test('a type-18 note not named "Xen" is not a PVH entry', () => {
  const spec = kernelSpec({ notes: [{ name: 'Xex', type: 18, desc: new Uint8Array(4) }] });
  assert.is(boot(buildElf(spec).bytes).result.protocol, 'linux-elf64');
});

test('ELF32 without the PVH note is not bootable', () => {
  const spec: TestElf = { elfClass: 32, entry: 0x200000, segments: [{ paddr: 0x200000, data: text }] };
  throwsBootError(() => boot(buildElf(spec).bytes), 'not-64-bit', /PVH/);
});

test('PVH entry outside the loaded segments is refused', () => {
  throwsBootError(() => boot(buildElf(kernelSpec({ notes: [pvhNote(0x3000000)] })).bytes), 'bad-elf', /PVH entry/);
});

test('program headers beyond the end of the file', () => {
  const built = buildElf(kernelSpec());
  const bytes = built.bytes.slice();
  new DataView(bytes.buffer).setBigUint64(32, BigInt(bytes.length - 10), true); // e_phoff
  throwsBootError(() => boot(bytes), 'bad-elf', /program headers/);
  new DataView(bytes.buffer).setBigUint64(32, 0xffffffffffffff00n, true);
  throwsBootError(() => boot(bytes), 'bad-elf');
  throwsBootError(() => boot(built.bytes.subarray(0, built.phoff + 20)), 'bad-elf');
});

test('segment file data beyond the end of the file', () => {
  const built = buildElf(kernelSpec());
  const bytes = built.bytes.slice();
  new DataView(bytes.buffer).setBigUint64(built.phoff + 32, 0x100000n, true); // p_filesz
  new DataView(bytes.buffer).setBigUint64(built.phoff + 40, 0x100000n, true); // p_memsz
  throwsBootError(() => boot(bytes), 'bad-elf', /beyond the end/);
});

test('p_filesz larger than p_memsz', () => {
  const built = buildElf(kernelSpec());
  const bytes = built.bytes.slice();
  new DataView(bytes.buffer).setBigUint64(built.phoff + 40, 0x10n, true);
  throwsBootError(() => boot(bytes), 'bad-elf', /p_filesz/);
});

test('segments outside RAM, overlapping the boot area or each other', () => {
  const at = (paddr: number, memsz?: number) => buildElf({
    elfClass: 64, entry: paddr, segments: [{ paddr, data: text, ...(memsz !== undefined && { memsz }) }],
  }).bytes;
  throwsBootError(() => boot(at(0x8000000)), 'segment-outside-ram', /not inside guest RAM/);
  throwsBootError(() => boot(at(64 * MiB - 0x1000)), 'segment-outside-ram');
  throwsBootError(() => boot(at(0x9000)), 'segment-overlap', /below 1 MiB/);
  throwsBootError(() => boot(at(0x1000000, 2 ** 60)), 'segment-outside-ram');
  // RAM above 4 GiB exists, but neither entry mode reaches it.
  throwsBootError(() => boot(at(0x100000000), { layout: [[0, 32 * MiB], [0x100000000, MiB]] }), 'segment-outside-ram', /4 GiB/);
  // Two adjacent regions look like one RAM entry, but a segment cannot straddle them.
  throwsBootError(() => boot(at(16 * MiB - 0x1000), { layout: [[0, 16 * MiB], [16 * MiB, 16 * MiB]] }), 'segment-outside-ram');
  const overlapping = buildElf({
    elfClass: 64, entry: 0x1000000,
    segments: [{ paddr: 0x1000000, data: text }, { paddr: 0x1001000, data: text }],
  }).bytes;
  throwsBootError(() => boot(overlapping), 'segment-overlap', /overlap/);
});

test('malformed headers and notes', () => {
  const good = buildElf(kernelSpec({ notes: [pvhNote(0x1000000)] }));
  const corrupt = (offset: number, value: number): Uint8Array => {
    const b = good.bytes.slice();
    b[offset] = value;
    return b;
  };
  throwsBootError(() => boot(corrupt(4, 3)), 'bad-elf', /class/);
  throwsBootError(() => boot(corrupt(5, 2)), 'bad-elf', /little-endian/);
  throwsBootError(() => boot(corrupt(18, 40)), 'bad-elf', /e_machine/);
  throwsBootError(() => boot(corrupt(16, 3)), 'bad-elf', /ET_EXEC/);
  throwsBootError(() => boot(corrupt(54, 55)), 'bad-elf', /e_phentsize/);
  throwsBootError(() => boot(good.bytes.subarray(0, 8)), 'bad-elf');
  // Note descsz pointing past its segment.
  const notePh = good.phoff + 2 * good.phentsize;
  const noteOffset = Number(new DataView(good.bytes.buffer).getBigUint64(notePh + 8, true));
  const b = good.bytes.slice();
  new DataView(b.buffer).setUint32(noteOffset + 4, 0x1000, true);
  throwsBootError(() => boot(b), 'bad-elf', /note/);
  // A PHYS32_ENTRY note of the wrong size.
  throwsBootError(() => boot(buildElf(kernelSpec({ notes: [{ name: 'Xen', type: 18, desc: new Uint8Array(2) }] })).bytes), 'bad-elf');
});

test('every truncation and single-byte corruption of the headers ends in success or a BootError', () => {
  const good = buildElf(kernelSpec({ notes: [pvhNote(0x1000000)] })).bytes;
  const headerEnd = 64 + 3 * 56 + 64;
  const memory = GuestMemory.fromLayout([[0, 24 * MiB]]);
  const attempt = (bytes: Uint8Array): void => {
    try {
      loadKernel({ kernel: bytes, memory, cmdline: '' });
    } catch (error) {
      assert.instance(error, BootError, String(error));
    }
  };
  for (let length = 0; length < good.length; length += 7) attempt(good.subarray(0, length));
  for (let offset = 0; offset < headerEnd; offset++) {
    for (const value of [0x00, 0x7f, 0xff]) {
      const b = good.slice();
      b[offset] = value;
      attempt(b);
    }
  }
});

test.run();
