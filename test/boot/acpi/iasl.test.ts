/**
 * The independent check: ACPICA's own disassembler (iasl -d) reads every
 * table without a complaint, recompiling its output gives back our bytes,
 * and ACPICA's interpreter (acpiexec) loads the DSDT and evaluates what Linux
 * will evaluate. Needs acpica-tools; fails (never skips) without it.
 */

import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { GuestMemory } from '../../../src/vmm/guest-memory.js';
import { buildFirmwareTables } from '../../../src/boot/acpi/index.js';
import { describe, readAcpiTables, type AcpiTableSet } from '../../helpers/acpi-tables.js';
import { compileCounts, problems, runTool } from '../../helpers/acpi-iasl.js';

let dir = '';
let tables: AcpiTableSet;
/** File name → the table's bytes, as an OS would find them in guest memory. */
let files: Map<string, Uint8Array>;

test.before(() => {
  const memory = GuestMemory.fromLayout([[0, 0x200000]]);
  const { rsdpAddress } = buildFirmwareTables(memory, describe(2));
  tables = readAcpiTables(memory, rsdpAddress);
  dir = mkdtempSync(path.join(tmpdir(), 'kvm-acpi-'));
  files = new Map([
    ['facp.dat', tables.fadt.bytes],
    ['apic.dat', tables.madt.bytes],
    ['dsdt.dat', tables.dsdt.bytes],
    ['facs.dat', tables.facs.bytes],
    ['xsdt.dat', tables.xsdt.bytes],
    ['rsdt.dat', tables.rsdt.bytes],
  ]);
  for (const [name, bytes] of files) writeFileSync(path.join(dir, name), bytes);
});

test.after(() => {
  if (dir) rmSync(dir, { recursive: true, force: true });
});

const base = (file: string): string => file.replace(/\.dat$/, '');

test('iasl -d disassembles every table without an error or warning', () => {
  for (const file of files.keys()) {
    const run = runTool('iasl', ['-d', file], dir);
    assert.is(run.status, 0, `iasl -d ${file}:\n${run.output}`);
    assert.equal(problems(run.output), [], `iasl -d ${file} output`);
    const dsl = readFileSync(path.join(dir, `${base(file)}.dsl`), 'utf8');
    assert.equal(problems(dsl), [], `${file} disassembly`);
  }
});

test('the disassembled DSDT names \\_S5, the PCI host bridge and its _PRT, COM1, pvpanic, virtio-mmio, processors', () => {
  const dsl = readFileSync(path.join(dir, 'dsdt.dsl'), 'utf8');
  for (const text of ['_S5_', 'PNP0A03', '_PRT', 'PNP0501', 'QEMU0001', 'LNRO0005', 'ACPI0007']) {
    assert.ok(dsl.includes(text), `DSDT disassembly mentions ${text}`);
  }
  assert.match(dsl, /DefinitionBlock \("", "DSDT", 2, "KVMTS ", "KVMTSVM ", 0x00000001\)/);
  assert.match(dsl, /WordBusNumber \(ResourceProducer, MinFixed, MaxFixed, PosDecode/);
  assert.match(dsl, /Interrupt \(ResourceConsumer, Edge, ActiveHigh, Exclusive/);
});

test('recompiling iasl\'s disassembly gives back the same bytes (only the compiler id and checksum differ)', () => {
  for (const [file, ours] of files) {
    const out = `re-${base(file)}`;
    // -oa: no AML optimizations, so the DSDT compiles term by term as written.
    const run = runTool('iasl', ['-oa', '-p', out, `${base(file)}.dsl`], dir);
    assert.is(run.status, 0, `iasl ${base(file)}.dsl:\n${run.output}`);
    assert.equal(compileCounts(run.output), { errors: 0, warnings: 0 }, `iasl ${base(file)}.dsl:\n${run.output}`);
    const theirs = new Uint8Array(readFileSync(path.join(dir, `${out}.aml`)));
    assert.is(theirs.length, ours.length, `${file} length`);
    if (file === 'facs.dat') {
      assert.equal(theirs, ours); // no header, no checksum
      continue;
    }
    // Header: signature, length, revision | checksum | OEM ids and revision | creator id and revision.
    assert.equal(theirs.subarray(0, 9), ours.subarray(0, 9), `${file} header`);
    assert.equal(theirs.subarray(10, 28), ours.subarray(10, 28), `${file} OEM fields`);
    assert.equal(theirs.subarray(36), ours.subarray(36), `${file} body`);
  }
});

test('iasl compiles the RSDP\'s fields into the same 36 bytes, checksums included', () => {
  // iasl -d reads only tables with an SDT header, so the RSDP goes the other way round.
  const r = tables.rsdp;
  const hex = (n: number, digits: number): string => n.toString(16).toUpperCase().padStart(digits, '0');
  const source = [
    '[0008]                          Signature : "RSD PTR "',
    '[0001]                           Checksum : 00',
    `[0006]                             Oem ID : "${r.oemId}"`,
    `[0001]                           Revision : ${hex(r.revision, 2)}`,
    `[0004]                       RSDT Address : ${hex(r.rsdt, 8)}`,
    `[0004]                             Length : ${hex(r.length, 8)}`,
    `[0008]                       XSDT Address : ${hex(r.xsdt, 16)}`,
    '[0001]                  Extended Checksum : 00',
    '[0003]                           Reserved : 000000',
    '',
  ].join('\n');
  writeFileSync(path.join(dir, 'rsdp.asl'), source);
  const run = runTool('iasl', ['-p', 're-rsdp', 'rsdp.asl'], dir);
  assert.equal(compileCounts(run.output), { errors: 0, warnings: 0 }, run.output);
  assert.equal(new Uint8Array(readFileSync(path.join(dir, 're-rsdp.aml'))), r.bytes);
});

test('acpiexec (the ACPICA interpreter Linux uses) loads the DSDT and evaluates its objects', () => {
  const objects = ['\\_S5', '\\_SB.PCI0._PRT', '\\_SB.PCI0._CRS', '\\_SB.COM1._CRS', '\\_SB.PEVT._STA', '\\_SB.PEVT._CRS', '\\_SB.VR00._CRS', '\\_SB.C001._UID'];
  const run = runTool('acpiexec', ['-b', objects.map((o) => `evaluate ${o}`).join('; '), 'dsdt.dat'], dir);
  assert.is(run.status, 0, run.output);
  assert.equal(problems(run.output), [], 'acpiexec output');
  for (const o of objects) assert.ok(run.output.includes(`Evaluation of ${o} returned object`), `${o} evaluates:\n${run.output}`);
  assert.match(run.output, /Evaluation of \\_SB\.PEVT\._STA returned object[^\n]*\n\s*\[Integer\] = 000000000000000F/);
  assert.match(run.output, /Evaluation of \\_S5 returned object[^\n]*\n\s*\[Package\] Contains 4 Elements:\n\s*\[Integer\] = 0000000000000005\n\s*\[Integer\] = 0000000000000005/);
});

test.run();
