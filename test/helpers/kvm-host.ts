/**
 * Whether this host can boot VMs at all, and how tests that need it are registered.
 *
 * A test that boots a VM needs /dev/kvm. On a host with no KVM device at all (a container, a
 * CI runner without virtualization, a machine whose kvm module refused to bind) such tests are
 * registered as skipped: uvu counts them as skipped, the runner's closing line shows the count,
 * and each suite names on stderr how many it skipped and why. They never count as passed.
 * KVM_TESTS=require makes that host fail them instead, for machines that must have KVM. A
 * /dev/kvm that exists but cannot be used (permissions, a broken module) always fails them:
 * see assertKvmUsable in run-kvm.ts.
 */
import { existsSync } from 'node:fs';
import { test as uvuTest, type Test } from 'uvu';

/** The device kvm opens unless KVM_DEVICE names another (src/vmm/kvm.ts reads the same variable). */
export const KVM_DEVICE_PATH = process.env.KVM_DEVICE ?? '/dev/kvm';

/** Why no VM can run on this host, or undefined when the KVM device exists (or KVM_TESTS=require). */
export function kvmAbsentReason(): string | undefined {
  if (process.env.KVM_TESTS === 'require' || existsSync(KVM_DEVICE_PATH)) return undefined;
  return `${KVM_DEVICE_PATH} does not exist on this host`;
}

type AnyTest = Test<Record<string, unknown>>;

/**
 * `suite` as it is where KVM exists; where it does not, a stand-in whose tests are registered
 * with skip and whose hooks do nothing (they would prepare guests no test will boot).
 */
let absenceReported = false;

/**
 * `suite` as it is where KVM exists; where it does not, a stand-in whose tests are registered
 * with skip and whose hooks do nothing (they would only prepare guests that no test boots).
 * Mixed files keep uvu's `test` for their host-only tests and call `run` on that one alone.
 */
export function requiresKvm<T extends AnyTest>(suite: T = uvuTest as T): T {
  const reason = kvmAbsentReason();
  if (reason === undefined) return suite;
  const skip = (name: string) => {
    if (!absenceReported) process.stderr.write(`kvm-tests: every test that boots a VM is skipped: ${reason}\n`);
    absenceReported = true;
    suite.skip(name);
  };
  const noHook = Object.assign(() => {}, { each: () => {} });
  const stand = Object.assign(skip, { skip, only: skip, before: noHook, after: noHook, run: () => suite.run() });
  return stand as unknown as T;
}
