/**
 * The test guest's own virtio drivers inside KVM: PCI enumeration and
 * capabilities, virtio-rng and virtio-console over virtio-pci (MSI-X and
 * INTx) and virtio-mmio (its interrupt line), through the real CLI.
 */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTestGuest } from '../helpers/test-guest.js';
import { assertKvmUsable, readMetrics, runKvm, type KvmRun } from '../helpers/run-kvm.js';
import { requiresKvm } from '../helpers/kvm-host.js';

/** Every test here boots a VM (skipped where the host has no /dev/kvm). */
const test = requiresKvm(uvuTest);

const guest = ensureTestGuest();

function expectSuccess(run: KvmRun, done: string): void {
  assert.is(run.status, 1, `status ${run.status}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
  assert.match(run.stdout, done);
  assert.not.match(run.stdout, 'FAILED');
}

test.before(async () => {
  await assertKvmUsable();
});

test('PCI: both devices are enumerated with all virtio capabilities, MSI-X and a sized BAR', async () => {
  const run = await runKvm(['run', '-k', guest.elf, '--rng', '--console', 'virtio', '-p', 'test=virtio-console transport=pci irq=msix'], {
    input: 'q',
  });
  expectSuccess(run, 'virtio-console: done');
  assert.match(run.stdout, 'virtio: found console (type 3) at pci 00:01.0');
  assert.match(run.stdout, 'virtio: found rng (type 4) at pci 00:02.0');
  for (const cap of ['common bar0+0x0', 'notify bar0+0x3000', 'isr bar0+0x1000', 'device bar0+0x2000 len 0xc', 'pci-cfg']) {
    assert.match(run.stdout, `virtio: cap ${cap}`);
  }
  assert.match(run.stdout, 'virtio: msix table bar0+0x4000 len 0x30 entries 3');
  assert.match(run.stdout, /virtio: bar0 mem32 0xc0000000 size 0x8000/);
  assert.match(run.stdout, /virtio: device features 0x1[0-9a-f]{8}/);
});

for (const [transport, irq] of [['pci', 'msix'], ['pci', 'intx'], ['mmio', 'intx'], ['mmio', 'poll']] as const) {
  test(`virtio-rng over ${transport} with ${irq}: entropy arrives, twice`, async () => {
    const run = await runKvm(['run', '-k', guest.elf, '--rng', '--transport', transport, '-p', `test=virtio-rng transport=${transport} irq=${irq}`]);
    expectSuccess(run, 'virtio-rng: ok');
    const samples = [...run.stdout.matchAll(/virtio-rng: got 64 bytes: ([0-9a-f]{32})/g)].map((m) => m[1]);
    assert.is(samples.length, 2);
    assert.is.not(samples[0], samples[1]);
    assert.is.not(samples[0], '0'.repeat(32));
  });
}

test('--metrics: the host-side counters agree with what the guest received', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-metrics-'));
  try {
    const file = path.join(dir, 'metrics.json');
    const run = await runKvm(['run', '-k', guest.elf, '--rng', '--metrics', file, '-p', 'test=virtio-rng']);
    expectSuccess(run, 'virtio-rng: ok');
    const metrics = readMetrics(file);
    assert.equal(metrics, { status: 1, reason: 'guest wrote 0x0 to debug-exit', devices: { 'virtio-rng': { requests: 2, bytes: 128 } }, dataPlaneThreads: {} });
    const unwritable = await runKvm(['run', '-k', guest.elf, '--metrics', path.join(dir, 'missing', 'metrics.json')]);
    assert.is(unwritable.status, 2);
    assert.is(unwritable.stderr, `kvm: --metrics: cannot write ${path.join(dir, 'missing', 'metrics.json')}: ENOENT\n`);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

for (const [transport, irq] of [['pci', 'msix'], ['pci', 'intx'], ['mmio', 'intx']] as const) {
  test(`virtio-console over ${transport} with ${irq}: output on stdout, stdin echoed back`, async () => {
    const run = await runKvm(['run', '-k', guest.elf, '--console', 'virtio', '--transport', transport, '-p', `test=virtio-console transport=${transport} irq=${irq}`], {
      input: 'echo me\nq',
    });
    expectSuccess(run, 'virtio-console: done');
    assert.match(run.stdout, 'hello over virtio-console\n');
    assert.match(run.stdout, 'echo me\n');
    assert.match(run.stdout, 'console=hvc0');
  });
}

test('virtio-mmio devices are announced on the kernel command line', async () => {
  const run = await runKvm(['run', '-k', guest.elf, '--rng', '--console', 'virtio', '--transport', 'mmio', '-p', 'test=hello']);
  assert.is(run.status, 1);
  assert.match(run.stdout, 'virtio_mmio.device=4K@0xd0000000:5 virtio_mmio.device=4K@0xd0001000:6');
});

test('a bad --transport is a usage error', async () => {
  const run = await runKvm(['run', '-k', guest.elf, '--rng', '--transport', 'usb']);
  assert.is(run.status, 2);
  assert.match(run.stderr, /--transport "usb"/);
});

test.run();
