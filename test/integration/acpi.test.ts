/**
 * The firmware tables and power events as a guest sees them: the test guest
 * walks the ACPI tables and the MP table our VMM writes (test=acpi), then
 * powers off through PM1a_CNT, resets through the FADT's reset register and
 * panics through pvpanic — each through the real CLI.
 */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureTestGuest } from '../helpers/test-guest.js';
import { assertKvmUsable, runKvm, type KvmRun } from '../helpers/run-kvm.js';
import { requiresKvm } from '../helpers/kvm-host.js';

/** Every test here boots a VM (skipped where the host has no /dev/kvm). */
const test = requiresKvm(uvuTest);

const guest = ensureTestGuest();

function expectStatus(run: KvmRun, status: number): void {
  assert.is(run.status, status, `status ${run.status}, expected ${status}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`);
}

/** test=acpi passed (status 1 = debug-exit 0) and every table it printed had a good checksum. */
function expectConsistentTables(run: KvmRun, cpus: number): void {
  expectStatus(run, 1);
  const out = run.stdout;
  assert.not.match(out, 'FAILED');
  assert.not.match(out, 'BAD');
  assert.match(out, /^acpi: rsdp at 0xe0000, (pvh start info rsdp_paddr|boot_params acpi_rsdp_addr) 0xe0000$/m);
  assert.match(out, /^acpi: rsdp revision 2 oem KVMTS  checksum ok extended 36 bytes checksum ok /m);
  const tables = [...out.matchAll(/^acpi: table (\S{4}) at 0x[0-9a-f]+ len (\d+) checksum (\S+)$/gm)].map((m) => m[1]);
  for (const signature of ['XSDT', 'FACP', 'APIC', 'RSDT', 'DSDT']) assert.ok(tables.includes(signature), `no ${signature} in ${tables.join(' ')}`);
  assert.match(out, /^acpi: table FACP at 0x[0-9a-f]+ len 276 checksum ok$/m);
  assert.match(out, new RegExp(`^acpi: madt cpus ${cpus} ioapic id ${cpus} at 0xfec00000$`, 'm'));
  assert.match(out, /^acpi: fadt pm1a_cnt 0x604 reset 0x608=0x1 sci 9$/m);
  assert.match(out, /^acpi: facs at 0xe0040 len 64 /m);
  assert.match(out, new RegExp(`^acpi: cpuid apic id 0 logical cpus ${cpus} htt [01] leaf 0xb cores ${cpus}$`, 'm'));
  assert.match(out, new RegExp(`^acpi: dsdt s5 slp_typ 5 cpus ${cpus} `, 'm'));
  assert.match(out, /^mptable: floating pointer at 0xf0000 rev 4 checksum ok config table 0xf0010 feature1 0$/m);
  assert.match(out, /^mptable: config table len \d+ rev 4 checksum ok /m);
  assert.match(out, new RegExp(`^mptable: cpus ${cpus} ioapic id ${cpus} at 0xfec00000 `, 'm'));
  assert.match(out, /\nacpi: ok\n/);
}

test.before(async () => {
  await assertKvmUsable();
});

test('test=acpi, one vCPU: RSDP, XSDT, FADT, MADT, DSDT, FACS and the MP table agree', async () => {
  const run = await runKvm(['run', '-k', guest.elf, '-c', '1', '-p', 'test=acpi']);
  expectConsistentTables(run, 1);
  assert.match(run.stdout, 'acpi: madt cpus 1 ');
  assert.match(run.stdout, 'mptable: cpus 1 ');
  // The in-kernel IOAPIC's id register says what the tables say (the guest fails on a mismatch).
  assert.match(run.stdout, 'acpi: ioapic registers id 1 ');
});

test('test=acpi, two vCPUs: two processors in the MADT, the DSDT and the MP table', async () => {
  const run = await runKvm(['run', '-k', guest.elf, '-c', '2', '-p', 'test=acpi']);
  expectConsistentTables(run, 2);
  assert.match(run.stdout, 'acpi: madt cpus 2 ');
  assert.match(run.stdout, 'mptable: cpus 2 ');
  assert.match(run.stdout, 'acpi: ioapic registers id 2 ');
});

test('test=acpi with a virtio-rng over PCI: the DSDT grows a _PRT entry, the tables stay consistent', async () => {
  const run = await runKvm(['run', '-k', guest.elf, '-c', '2', '--rng', '--transport', 'pci', '-p', 'test=acpi']);
  expectConsistentTables(run, 2);
  assert.match(run.stdout, /virtio-mmio 0 \(cmdline 0\)/);
});

test('test=acpi with a virtio-rng over MMIO: one LNRO0005 device per virtio_mmio.device= word', async () => {
  const run = await runKvm(['run', '-k', guest.elf, '--rng', '--transport', 'mmio', '-p', 'test=acpi']);
  expectConsistentTables(run, 1);
  assert.match(run.stdout, /virtio_mmio\.device=/);
  assert.match(run.stdout, /virtio-mmio 1 \(cmdline 1\)/);
});

test('test=acpi through the Linux 64-bit entry: boot_params.acpi_rsdp_addr points at the RSDP', async () => {
  const run = await runKvm(['run', '-k', guest.elf64, '-c', '2', '-p', 'test=acpi']);
  assert.match(run.stdout, 'kvm-test-guest: boot=linux64');
  assert.match(run.stdout, /^acpi: rsdp at 0xe0000, boot_params acpi_rsdp_addr 0xe0000$/m);
  expectConsistentTables(run, 2);
});

test('S5 from the DSDT written to PM1a_CNT powers the VM off with status 0', async () => {
  for (const cpus of ['1', '2']) {
    const run = await runKvm(['run', '-k', guest.elf, '-c', cpus, '-p', 'test=acpi-poweroff']);
    expectStatus(run, 0);
    assert.match(run.stdout, /^acpi: s5 slp_typ 5$/m);
    assert.match(run.stdout, /^acpi: pm1a_cnt 0x604 reads 0x1, writing 0x3401$/m);
    assert.not.match(run.stdout, 'still running');
    assert.not.match(run.stdout, 'FAILED');
  }
});

test('RESET_VALUE written to the FADT reset register resets the VM: status 32', async () => {
  const run = await runKvm(['run', '-k', guest.bzImage, '-p', 'test=acpi-reset']);
  expectStatus(run, 32);
  assert.match(run.stdout, /^acpi: writing 0x1 to port 0x608$/m);
  assert.match(run.stderr, /ACPI reset register/);
  assert.not.match(run.stdout, 'FAILED');
});

test('pvpanic: the capabilities read back, PANICKED ends the run with status 34', async () => {
  const run = await runKvm(['run', '-k', guest.elf, '-p', 'test=pvpanic']);
  expectStatus(run, 34);
  assert.match(run.stdout, /^pvpanic: caps 0x3$/m);
  assert.match(run.stderr, /pvpanic/);
  assert.not.match(run.stdout, 'FAILED');
});

test.run();
