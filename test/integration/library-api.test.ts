/** The typed library API in-process: create, start, await, with the console in a file. */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VirtualMachine, runVm } from '../../src/index.js';
import { ensureTestGuest } from '../helpers/test-guest.js';
import { assertKvmUsable } from '../helpers/run-kvm.js';
import { requiresKvm } from '../helpers/kvm-host.js';

/** Tests that boot a VM (skipped where the host has no /dev/kvm); runVm's config check is uvuTest. */
const test = requiresKvm(uvuTest);

const guest = ensureTestGuest();
const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-api-'));

test.before(async () => {
  await assertKvmUsable();
});

test('VirtualMachine.create / start / wait returns the guest status and reports timings', async () => {
  const consolePath = path.join(dir, 'console.txt');
  const fd = openSync(consolePath, 'w');
  const vm = await VirtualMachine.create({
    kernel: guest.elf,
    cmdline: 'test=exit code=3',
    memoryBytes: 64 * 2 ** 20,
    cpus: 1,
    console: 'serial',
    serialOutputFd: fd,
  });
  assert.is(vm.protocol, 'pvh');
  vm.start();
  const exit = await vm.wait();
  closeSync(fd);
  assert.is(exit.status, 7);
  assert.match(exit.reason, /debug-exit/);
  assert.match(readFileSync(consolePath, 'latin1'), 'cmdline=console=ttyS0 reboot=k panic=-1 test=exit code=3');
  const { started, firstExit } = vm.timings;
  assert.ok(started !== undefined && firstExit !== undefined && firstExit >= started);
});

test('serial input can be sent through the API', async () => {
  const consolePath = path.join(dir, 'echo.txt');
  const fd = openSync(consolePath, 'w');
  const vm = await VirtualMachine.create({ kernel: guest.elf, cmdline: 'test=echo', memoryBytes: 32 * 2 ** 20, cpus: 1, console: 'serial', serialOutputFd: fd });
  vm.start();
  vm.sendConsoleInput(new TextEncoder().encode('hi!q'));
  const exit = await vm.wait();
  closeSync(fd);
  assert.is(exit.status, 1);
  assert.match(readFileSync(consolePath, 'latin1'), 'hi!');
});

test('stop() ends a running guest with the given exit', async () => {
  const vm = await VirtualMachine.create({ kernel: guest.elf, cmdline: 'test=echo', memoryBytes: 32 * 2 ** 20, cpus: 2, console: 'serial', serialOutputFd: openSync('/dev/null', 'w') });
  vm.start();
  setTimeout(() => vm.stop({ status: 0, reason: 'stopped by test' }), 300);
  assert.equal(await vm.wait(), { status: 0, reason: 'stopped by test' });
});

uvuTest('runVm turns configuration errors into a status', async () => {
  const exit = await runVm({ kernel: '/nonexistent', memoryBytes: 2 ** 24, cpus: 1, console: 'serial' });
  assert.is(exit.status, 2);
  assert.match(exit.reason, /no such file/);
});

test.run();
