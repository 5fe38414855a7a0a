import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as L from '../../src/boot/layout.js';
import { HVM_MEMMAP_ENTRY_SIZE, HVM_MODLIST_ENTRY_SIZE, HVM_START_INFO_SIZE } from '../../src/boot/pvh.js';

const areas: [string, number, number][] = [
  ['gdt', L.GDT_ADDRESS, L.GDT_ADDRESS + L.GDT_SIZE],
  ['start info', L.PVH_START_INFO_ADDRESS, L.PVH_START_INFO_ADDRESS + HVM_START_INFO_SIZE],
  ['modlist', L.PVH_MODLIST_ADDRESS, L.PVH_MODLIST_ADDRESS + L.PVH_MODLIST_MAX_ENTRIES * HVM_MODLIST_ENTRY_SIZE],
  ['memmap', L.PVH_MEMMAP_ADDRESS, L.PVH_MEMMAP_ADDRESS + L.PVH_MEMMAP_MAX_ENTRIES * HVM_MEMMAP_ENTRY_SIZE],
  ['zero page', L.ZERO_PAGE_ADDRESS, L.ZERO_PAGE_ADDRESS + L.ZERO_PAGE_SIZE],
  ['stack', L.BOOT_STACK_BOTTOM, L.BOOT_STACK_TOP],
  ['page tables', L.PML4_ADDRESS, L.PAGE_TABLES_END],
  ['cmdline', L.CMDLINE_ADDRESS, L.CMDLINE_ADDRESS + L.CMDLINE_MAX_SIZE],
];

test('boot structures do not overlap and stay in conventional RAM', () => {
  for (const [name, start, end] of areas) {
    assert.ok(start >= L.GDT_ADDRESS && end <= L.BOOT_STRUCTURES_END, name);
    assert.ok(end <= L.EBDA_START, `${name} below the EBDA`);
  }
  for (let i = 0; i < areas.length; i++) {
    for (let j = i + 1; j < areas.length; j++) {
      const [a, as, ae] = areas[i]!;
      const [b, bs, be] = areas[j]!;
      assert.ok(ae <= bs || be <= as, `${a} overlaps ${b}`);
    }
  }
});

test('page tables are page-aligned and consecutive; stack is 16-byte aligned', () => {
  for (const a of [L.PML4_ADDRESS, L.PDPT_ADDRESS, L.PD_ADDRESS, L.ZERO_PAGE_ADDRESS]) assert.is(a % L.PAGE_SIZE, 0);
  assert.is(L.PDPT_ADDRESS, L.PML4_ADDRESS + L.PAGE_SIZE);
  assert.is(L.PD_ADDRESS, L.PDPT_ADDRESS + L.PAGE_SIZE);
  assert.is(L.BOOT_STACK_TOP % 16, 0);
  assert.ok(L.KERNEL_LOAD_ADDRESS >= L.HIGH_MEMORY_START);
});

test.run();
