/** CPUID as KVM will present it, built from the real KVM_GET_SUPPORTED_CPUID. */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { Machine } from '../../src/vmm/machine.js';
import { assertKvmUsable } from '../helpers/run-kvm.js';
import { parseCpuFeatures } from '../../src/vmm/cpuid.js';
import { requiresKvm } from '../helpers/kvm-host.js';

/** Every test here boots a VM (skipped where the host has no /dev/kvm). */
const test = requiresKvm(uvuTest);

test.before(async () => {
  await assertKvmUsable();
});

test('host quirks hide CX16 and the hypercall paravirt features; --cpu-features edits apply on top', async () => {
  const plain = Machine.create({ memoryBytes: 2 ** 24, cpus: 1 });
  const quirky = Machine.create({ memoryBytes: 2 ** 24, cpus: 1, hostQuirks: true, cpuFeatures: parseCpuFeatures('-xsave') });
  try {
    const before = plain.cpuidFor(0);
    const after = quirky.cpuidFor(0);
    for (const name of ['cx16', 'kvm_pv_unhalt', 'kvm_pv_send_ipi', 'kvm_pv_sched_yield', 'xsave']) {
      assert.not.ok(after.hasFeature(name), `${name} still visible`);
    }
    assert.ok(before.hasFeature('cx16'), 'this host offers cx16, so hiding it is observable');
    assert.is(after.hasFeature('sse2'), before.hasFeature('sse2'));
  } finally {
    await plain.close();
    await quirky.close();
  }
});

test.run();
