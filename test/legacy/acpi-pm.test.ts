import { test } from 'uvu';
import * as assert from 'uvu/assert';
import createDebug from 'debug';
import * as P from '../../src/legacy/acpi-pm.js';
import { Pvpanic } from '../../src/legacy/pvpanic.js';
import type { VmExit } from '../../src/base/exit-status.js';
import { dataValue, setDataValue } from '../../src/vmm/bus.js';

function pm() {
  const exits: VmExit[] = [];
  const dev = new P.AcpiPm(P.createAcpiPmState(), (e) => exits.push(e));
  const write = (port: number, value: number, size: number): void => {
    const data = new Uint8Array(size);
    setDataValue(data, value);
    dev.write(port - P.ACPI_PM_BASE, data);
  };
  const read = (port: number, size: number): number => {
    const data = new Uint8Array(size);
    dev.read(port - P.ACPI_PM_BASE, data);
    return dataValue(data);
  };
  return { exits, write, read };
}

test('SCI_EN always reads set: ACPI mode needs no SMI handshake', () => {
  const p = pm();
  assert.is(p.read(P.PM1A_CNT_BLK, 2) & P.PM1_CNT_SCI_EN, 1);
});

test('SLP_TYP 5 with SLP_EN powers off with status 0; other sleep types do not', () => {
  const p = pm();
  p.write(P.PM1A_CNT_BLK, (1 << P.PM1_CNT_SLP_TYP_SHIFT) | P.PM1_CNT_SLP_EN, 2); // S1: ignored
  p.write(P.PM1A_CNT_BLK, P.SLP_TYP_S5 << P.PM1_CNT_SLP_TYP_SHIFT, 2); // no SLP_EN yet
  assert.equal(p.exits, []);
  p.write(P.PM1A_CNT_BLK, (P.SLP_TYP_S5 << P.PM1_CNT_SLP_TYP_SHIFT) | P.PM1_CNT_SLP_EN, 2);
  assert.equal(p.exits.map((e) => e.status), [0]);
  assert.is(p.read(P.PM1A_CNT_BLK, 2) & P.PM1_CNT_SLP_EN, 0, 'SLP_EN is write-only');
});

test('the reset register resets with status 32 only for the FADT reset value', () => {
  const p = pm();
  p.write(P.ACPI_RESET_PORT, 0x02, 1);
  assert.equal(p.exits, []);
  p.write(P.ACPI_RESET_PORT, P.ACPI_RESET_VALUE, 1);
  assert.equal(p.exits.map((e) => e.status), [32]);
});

test('PM1 status is write-1-to-clear; enable is read/write', () => {
  const p = pm();
  p.write(P.PM1A_EVT_BLK + 2, 0x0120, 2);
  assert.is(p.read(P.PM1A_EVT_BLK + 2, 2), 0x0120);
  assert.is(p.read(P.PM1A_EVT_BLK, 4) >>> 16, 0x0120);
});

test('pvpanic: reads its capabilities; PANICKED ends with 34; CRASH_LOADED does not', () => {
  const exits: VmExit[] = [];
  const dev = new Pvpanic({ requestExit: (e) => exits.push(e), log: createDebug('test') });
  const data = new Uint8Array(1);
  dev.read(0, data);
  assert.is(data[0], 3);
  dev.write(0, Uint8Array.of(2));
  assert.equal(exits, []);
  dev.write(0, Uint8Array.of(1));
  assert.equal(exits.map((e) => e.status), [34]);
});

test.run();
