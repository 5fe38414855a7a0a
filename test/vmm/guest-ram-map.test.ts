// Guest RAM's host mapping: lazily reserved, advised for transparent huge pages and KSM, as the
// kernel records it for the mapping (VmFlags in /proc/self/smaps: hg = MADV_HUGEPAGE, mg = MADV_MERGEABLE).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { mapGuestRam } from '../../src/vmm/guest-ram.js';
import { munmap } from '../../src/sys/memory.js';

function vmFlags(address: number): string[] {
  const smaps = readFileSync('/proc/self/smaps', 'utf8').split('\n');
  for (let i = 0; i < smaps.length; i++) {
    const range = /^([0-9a-f]+)-([0-9a-f]+) /.exec(smaps[i]!);
    if (!range || parseInt(range[1]!, 16) > address || parseInt(range[2]!, 16) <= address) continue;
    for (let j = i + 1; j < smaps.length && !/^[0-9a-f]+-/.test(smaps[j]!); j++) {
      if (smaps[j]!.startsWith('VmFlags:')) return smaps[j]!.slice('VmFlags:'.length).trim().split(/\s+/);
    }
  }
  throw new Error(`no mapping at 0x${address.toString(16)}`);
}

test('guest RAM is advised for huge pages and KSM, and reserved lazily', () => {
  const size = 64 * 2 ** 20;
  const address = mapGuestRam(size);
  try {
    const flags = vmFlags(address);
    assert.ok(flags.includes('hg'), `MADV_HUGEPAGE: ${flags.join(' ')}`);
    assert.ok(flags.includes('mg'), `MADV_MERGEABLE: ${flags.join(' ')}`);
    assert.ok(flags.includes('nr'), `MAP_NORESERVE: ${flags.join(' ')}`);
  } finally {
    munmap(address, size);
  }
});

test.run();
