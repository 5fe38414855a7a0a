import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { CpuidError, CpuidTable, parseCpuFeatures, vcpuCpuid } from '../../src/vmm/cpuid.js';
import { SIZEOF_KVM_CPUID2, SIZEOF_KVM_CPUID_ENTRY2 } from '../../src/vmm/kvm-abi.js';

/** A kvm_cpuid_entry2 list like KVM_GET_SUPPORTED_CPUID returns. */
function table(entries: Array<[leaf: number, index: number, flags: number, regs: [number, number, number, number]]>): CpuidTable {
  const bytes = new Uint8Array(entries.length * SIZEOF_KVM_CPUID_ENTRY2);
  const v = new DataView(bytes.buffer);
  entries.forEach(([leaf, index, flags, regs], i) => {
    const o = i * SIZEOF_KVM_CPUID_ENTRY2;
    v.setUint32(o, leaf, true);
    v.setUint32(o + 4, index, true);
    v.setUint32(o + 8, flags, true);
    regs.forEach((r, j) => v.setUint32(o + 12 + 4 * j, r >>> 0, true));
  });
  return new CpuidTable(bytes);
}

const CX16 = 1 << 13;
const XSAVE = 1 << 26;
const base = () =>
  table([
    [0x1, 0, 0, [0x000a0f11, 0x00000800, CX16 | XSAVE | (1 << 31), 0x178bfbff]],
    [0x4, 0, 1, [0x00000121, 0, 0, 0]],
    [0xb, 0, 1, [0, 0, 0, 0]],
    [0xb, 1, 1, [0, 0, 0, 0]],
    [0x40000001, 0, 0, [(1 << 7) | (1 << 11) | (1 << 13) | (1 << 3), 0, 0, 0]],
    [0x80000008, 0, 0, [0x3030, 0, 0x0000f0ff, 0]],
  ]);

test('feature names parse as in /proc/cpuinfo; unknown names are refused', () => {
  assert.equal(parseCpuFeatures('-cx16, -xsave,+x2apic,avx'), { remove: ['cx16', 'xsave'], add: ['x2apic', 'avx'] });
  assert.throws(() => parseCpuFeatures('-hyperdrive'), (e: unknown) => e instanceof CpuidError && e.kind === 'unknown-feature');
  assert.throws(() => parseCpuFeatures('-cx 16'), (e: unknown) => e instanceof CpuidError && e.kind === 'bad-syntax');
});

test('removing features clears their bits, including KVM paravirt ones', () => {
  const t = base();
  t.applyFeatureEdits(parseCpuFeatures('-cx16,-kvm_pv_unhalt,-kvm_pv_send_ipi,-kvm_pv_sched_yield'));
  assert.not.ok(t.hasFeature('cx16'));
  assert.ok(t.hasFeature('xsave'));
  assert.is(t.get(0x40000001, 0, 'eax'), 1 << 3);
});

test('adding a feature the host lacks is refused', () => {
  const t = base();
  t.applyFeatureEdits(parseCpuFeatures('+cx16'));
  assert.throws(() => t.applyFeatureEdits(parseCpuFeatures('+avx512f')), (e: unknown) => e instanceof CpuidError && e.kind === 'unsupported-feature');
});

test('each vCPU gets its APIC id and a consistent topology', () => {
  const t = vcpuCpuid(base(), 3, 4);
  assert.is(t.get(0x1, 0, 'ebx') >>> 24, 3);
  assert.is((t.get(0x1, 0, 'ebx') >>> 16) & 0xff, 4);
  assert.ok(t.get(0x1, 0, 'edx') & (1 << 28)); // HTT: more than one logical CPU
  assert.is(t.get(0x4, 0, 'eax') >>> 26, 3); // cores per package - 1
  assert.is(t.get(0xb, 1, 'ebx'), 4);
  assert.is(t.get(0xb, 1, 'eax'), 2); // APIC id bits for 4 cores
  assert.is(t.get(0xb, 0, 'edx'), 3);
  assert.is(t.get(0x80000008, 0, 'ecx') & 0xff, 3);
  const single = vcpuCpuid(base(), 0, 1);
  assert.not.ok(single.get(0x1, 0, 'edx') & (1 << 28));
  // The base table is not modified.
  assert.is(base().get(0x1, 0, 'ebx') >>> 24, 0);
});

test('the KVM_SET_CPUID2 buffer carries the count and the entries', () => {
  const buffer = base().toKvmCpuid2();
  assert.is(new DataView(buffer.buffer).getUint32(0, true), 6);
  assert.is(buffer.length, SIZEOF_KVM_CPUID2 + 6 * SIZEOF_KVM_CPUID_ENTRY2);
});

test.run();
