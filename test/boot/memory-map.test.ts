import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  E820_TYPE_ACPI,
  E820_TYPE_RAM,
  E820_TYPE_RESERVED,
  buildMemoryMap,
  isUsableRam,
  placeHighest,
  usableRanges,
} from '../../src/boot/memory-map.js';
import { throwsBootError } from './assert-boot-error.js';

const MiB = 0x100000;
const GiB = 0x40000000;

const entries = (map: ReturnType<typeof buildMemoryMap>): [number, number, number][] =>
  map.map((e) => [e.address, e.size, e.type]);

test('single 64 MiB region: low RAM, EBDA/BIOS hole, RAM from 1 MiB', () => {
  assert.equal(entries(buildMemoryMap([[0, 64 * MiB]])), [
    [0, 0x9fc00, E820_TYPE_RAM],
    [0x9fc00, 0x100000 - 0x9fc00, E820_TYPE_RESERVED],
    [0x100000, 63 * MiB, E820_TYPE_RAM],
  ]);
});

test('split around a 32-bit PCI hole: [0, 3 GiB) and [4 GiB, 5 GiB), without allocating', () => {
  const map = buildMemoryMap([[0, 0xc0000000], [0x100000000, 0x40000000]]);
  assert.equal(entries(map), [
    [0, 0x9fc00, E820_TYPE_RAM],
    [0x9fc00, 0x60400, E820_TYPE_RESERVED],
    [0x100000, 0xc0000000 - 0x100000, E820_TYPE_RAM],
    [0x100000000, GiB, E820_TYPE_RAM],
  ]);
});

test('adjacent regions merge into one RAM entry', () => {
  const map = buildMemoryMap([[0, 0x80000], [0x80000, 16 * MiB - 0x80000]]);
  assert.equal(entries(map), [
    [0, 0x9fc00, E820_TYPE_RAM],
    [0x9fc00, 0x60400, E820_TYPE_RESERVED],
    [0x100000, 15 * MiB, E820_TYPE_RAM],
  ]);
});

test('reserved ranges are laid over RAM and the BIOS hole', () => {
  const map = buildMemoryMap([[0, 64 * MiB]], [
    { address: 0xe0000, size: 0x10000, type: E820_TYPE_ACPI },
    { address: 32 * MiB, size: MiB },
    { address: 0xfec00000, size: 0x1000 },
  ]);
  assert.equal(entries(map), [
    [0, 0x9fc00, E820_TYPE_RAM],
    [0x9fc00, 0xe0000 - 0x9fc00, E820_TYPE_RESERVED],
    [0xe0000, 0x10000, E820_TYPE_ACPI],
    [0xf0000, 0x10000, E820_TYPE_RESERVED],
    [MiB, 31 * MiB, E820_TYPE_RAM],
    [32 * MiB, MiB, E820_TYPE_RESERVED],
    [33 * MiB, 31 * MiB, E820_TYPE_RAM],
    [0xfec00000, 0x1000, E820_TYPE_RESERVED],
  ]);
  const usable = usableRanges(map, [[0, 64 * MiB]]);
  assert.ok(isUsableRam(usable, 33 * MiB, 64 * MiB));
  assert.not.ok(isUsableRam(usable, 31 * MiB, 33 * MiB + 1));
});

test('refuses too little RAM for the fixed layout', () => {
  throwsBootError(() => buildMemoryMap([[0, 0x80000]]), 'memory-too-small');
  throwsBootError(() => buildMemoryMap([[MiB, 64 * MiB]]), 'memory-too-small');
  throwsBootError(() => buildMemoryMap([]), 'memory-too-small');
});

test('refuses unusable reserved ranges', () => {
  throwsBootError(() => buildMemoryMap([[0, 64 * MiB]], [{ address: 0x7000, size: 0x1000 }]), 'bad-option', /boot structures/);
  throwsBootError(() => buildMemoryMap([[0, 64 * MiB]], [{ address: 32 * MiB, size: 0 }]), 'bad-option');
  throwsBootError(() => buildMemoryMap([[0, 64 * MiB]], [{ address: -1, size: 10 }]), 'bad-option');
  throwsBootError(() => buildMemoryMap([[0, 64 * MiB]], [{ address: 32 * MiB, size: MiB, type: E820_TYPE_RAM }]), 'bad-option');
});

test('usable ranges are cut at region boundaries even where the map merges them', () => {
  const regions: [number, number][] = [[0, 16 * MiB], [16 * MiB, 16 * MiB]];
  const map = buildMemoryMap(regions);
  assert.is(map.length, 3);
  assert.equal(usableRanges(map, regions), [[0, 0x9fc00], [MiB, 16 * MiB], [16 * MiB, 32 * MiB]]);
});

test('placeHighest: top of RAM, page-aligned, within the limit, skipping holes', () => {
  const layout: [number, number][] = [[0, 64 * MiB]];
  const usable = usableRanges(buildMemoryMap(layout, [{ address: 60 * MiB, size: 4 * MiB }]), layout);
  assert.is(placeHighest(usable, 0x1800, MiB, 64 * MiB), 60 * MiB - 0x2000);
  assert.is(placeHighest(usable, MiB, MiB, 48 * MiB), 47 * MiB);
  assert.is(placeHighest(usable, 60 * MiB, MiB, 64 * MiB), undefined);
  // Falls back to a lower region when the top one is too small.
  const split: [number, number][] = [[0, 64 * MiB], [0x100000000, MiB]];
  assert.is(placeHighest(usableRanges(buildMemoryMap(split), split), 2 * MiB, MiB, 0x200000000), 62 * MiB);
});

test.run();
