import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  BP_VECTOR,
  HOST_QUIRK_CPU_EDITS,
  HOST_QUIRK_LINUX_PARAMS,
  hostQuirkLinuxParams,
  hostQuirksActive,
  quirkForInstruction,
  EmulationFailureRecovery,
  MAX_RETRIES_AT_ONE_RIP,
} from '../../src/vmm/host-quirks.js';
import { parseCpuFeatures } from '../../src/vmm/cpuid.js';

test('auto follows the kvm_pvm probe; on and off are forced', () => {
  assert.ok(hostQuirksActive('auto', () => true));
  assert.not.ok(hostQuirksActive('auto', () => false));
  assert.ok(hostQuirksActive('on', () => false));
  assert.not.ok(hostQuirksActive('off', () => true));
});

test('Linux quirk parameters: all of them, less each one the user set by name', () => {
  assert.equal(hostQuirkLinuxParams(''), [...HOST_QUIRK_LINUX_PARAMS]);
  const left = hostQuirkLinuxParams('root=/dev/vda tsc=unstable clearcpuid=avx  nokaslr');
  assert.equal(left, ['noxsave', 'noreplace-smp']);
});

test('int3 becomes a #BP after RIP moves past it; fwait is skipped; anything else is a crash', () => {
  assert.equal(quirkForInstruction(Uint8Array.of(0xcc, 0x90)), { kind: 'inject-breakpoint', length: 1 });
  assert.equal(quirkForInstruction(Uint8Array.of(0x9b, 0xd9)), { kind: 'skip', length: 1 });
  assert.is(quirkForInstruction(Uint8Array.of(0x0f, 0x01, 0xc1)), undefined); // vmcall
  assert.is(quirkForInstruction(Uint8Array.of(0xf0, 0x48, 0x0f, 0xc7, 0x0e)), undefined); // lock cmpxchg16b
  assert.is(quirkForInstruction(undefined), undefined);
  assert.is(quirkForInstruction(new Uint8Array(0)), undefined);
});

test('recovery applies the action to the vCPU in order', () => {
  const calls: string[] = [];
  const recovery = new EmulationFailureRecovery({
    advanceRip: (n: number) => calls.push(`rip+${n}`),
    injectException: (v: number) => calls.push(`inject ${v}`),
  });
  assert.ok(recovery.recover(0x1000n, Uint8Array.of(0xcc)));
  assert.ok(recovery.recover(0x1001n, Uint8Array.of(0x9b), Uint8Array.of(0x9b)));
  assert.not.ok(recovery.recover(0x1002n, Uint8Array.of(0x0f, 0x0b)));
  assert.equal(calls, ['rip+1', `inject ${BP_VECTOR}`, 'rip+1']);
});

test('code rewritten under the emulator (text_poke_bp) is run again; a real failure still ends the run', () => {
  // What Debian's kernel did with 2 vCPUs: the emulator failed on the int3 another vCPU had put
  // over a jump, and by the time the VMM looked, the jump was back.
  const seen = Uint8Array.of(0xcc, 0x38, 0xba, 0x00, 0x09, 0x3d, 0x00, 0x85, 0xdb, 0x0f, 0x85, 0x88, 0x00, 0x00, 0x00);
  const now = Uint8Array.of(0xeb, 0x38, 0xba, 0x00, 0x09, 0x3d, 0x00, 0x85, 0xdb, 0x0f, 0x85, 0x88, 0x00, 0x00, 0x00);
  assert.equal(quirkForInstruction(now, seen), { kind: 'retry', length: 0 });
  assert.equal(quirkForInstruction(seen, seen), { kind: 'inject-breakpoint', length: 1 }, 'still the int3: a #BP');
  const calls: string[] = [];
  const recovery = new EmulationFailureRecovery({
    advanceRip: (n: number) => calls.push(`rip+${n}`),
    injectException: (v: number) => calls.push(`inject ${v}`),
  });
  assert.ok(recovery.recover(0x2000n, now, seen));
  assert.equal(calls, [], 'a retry leaves the vCPU as it is');
  const ud2 = Uint8Array.of(0x0f, 0x0b);
  for (let i = 0; i < MAX_RETRIES_AT_ONE_RIP; i++) assert.ok(recovery.recover(0x3000n, ud2, now));
  assert.not.ok(recovery.recover(0x3000n, ud2, now), 'retries at one RIP are bounded');
});

test('the hidden CPUID features are real feature names', () => {
  const edits = parseCpuFeatures(HOST_QUIRK_CPU_EDITS.remove.map((n) => `-${n}`).join(','));
  assert.equal(edits.remove, ['kvm_pv_unhalt', 'kvm_pv_send_ipi', 'kvm_pv_sched_yield', 'cx16']);
});

test.run();
