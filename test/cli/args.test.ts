import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ensureTestGuest } from '../helpers/test-guest.js';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { UsageError, checkMetricsPath, parseCommand } from '../../src/cli/args.js';
import { ConfigError, MAX_TIMEOUT_SECONDS, isValidConfig, kernelCommandLine, parseMemorySize, validateConfig } from '../../src/builder/config.js';
import { errorToExit } from '../../src/base/error-exit.js';
import { VmmError } from '../../src/base/vmm-error.js';

/** A real kernel file for the checks that get past the kernel's magic. */
const guest = ensureTestGuest();

test('short and long flags produce the same config', () => {
  const a = parseCommand(['run', '-k', 'bz', '-i', 'rd', '-p', 'quiet', '-m', '1G', '-c', '2', '--timeout', '5']);
  const b = parseCommand(['run', '--kernel', 'bz', '--initrd', 'rd', '--append', 'quiet', '--mem', '1024', '--cpus', '2', '--timeout', '5']);
  assert.equal(a, b);
  if (a.kind !== 'run') throw new Error('expected run');
  assert.is(a.config.memoryBytes, 2 ** 30);
  assert.is(a.config.cpus, 2);
  assert.is(a.config.timeoutSeconds, 5);
  assert.is(a.config.cmdline, 'quiet');
});

test('--params, --cmdline and --append concatenate', () => {
  const c = parseCommand(['run', '-k', 'k', '-p', 'a=1', '--cmdline', 'b=2', '--append', 'c=3']);
  assert.is(c.kind === 'run' && c.config.cmdline, 'a=1 b=2 c=3');
});

test('memory sizes: MiB by default, K/M/G suffixes', () => {
  assert.is(parseMemorySize('512'), 512 * 2 ** 20);
  assert.is(parseMemorySize('65536K'), 64 * 2 ** 20);
  assert.is(parseMemorySize('2G'), 2 * 2 ** 30);
  assert.is(parseMemorySize('3m'), 3 * 2 ** 20);
  assert.throws(() => parseMemorySize('lots'), (e: unknown) => e instanceof ConfigError);
  assert.throws(() => parseMemorySize('-1'), (e: unknown) => e instanceof ConfigError);
});

test('bad flags become one-line usage errors naming the flag', () => {
  const message = (argv: string[]): string => {
    try {
      parseCommand(argv);
    } catch (error) {
      assert.instance(error, UsageError);
      return (error as Error).message;
    }
    throw new Error('no error');
  };
  assert.match(message(['run', '-k', 'k', '--frobnicate']), /unknown option --frobnicate/);
  assert.match(message(['run']), /missing --kernel/);
  assert.match(message(['run', '-k', 'k', '-c', 'two']), /^-c "two"/);
  assert.match(message(['run', '-k', 'k', '--cpus', 'two']), /^--cpus "two"/);
  assert.match(message(['run', '-k', 'k', '-m', '12Q']), /^-m: memory size "12Q"/);
  assert.match(message(['run', '-k', 'k', '--mem', '12Q']), /^--mem: memory size "12Q"/);
  assert.match(message(['run', '-k', 'k', '--timeout', '0']), /--timeout/);
  assert.match(message(['run', '-k', 'k', '--console', 'vga']), /--console "vga"/);
  assert.match(message(['fly']), /unknown command "fly"/);
  assert.match(message(['run', '-k', 'k', '--metrics', '']), /--metrics needs a file path/);
  for (const m of [message(['run', '-k', 'k', '--frobnicate']), message(['run'])]) assert.not.match(m, /\n/);
});

test('an option that needs a value takes the next argument, even one that starts with "-"', () => {
  const config = (argv: string[]) => {
    const c = parseCommand(['run', '-k', 'k', ...argv]);
    if (c.kind !== 'run') throw new Error('expected run');
    return c.config;
  };
  assert.is(config(['--cpu-features', '-cx16,-xsave']).cpuFeatures, '-cx16,-xsave');
  assert.is(config(['--cpu-features=-cx16,-xsave']).cpuFeatures, '-cx16,-xsave');
  assert.is(config(['-p', '-quiet']).cmdline, '-quiet');
  assert.is(config(['-m512']).memoryBytes, 512 * 2 ** 20);
  assert.equal(config(['-n', 'tap0', '--net', 'tap1']).net, [{ tap: 'tap0' }, { tap: 'tap1' }]);
  assert.throws(() => parseCommand(['run', '-k', 'k', '-m', '-5']), /^-m: memory size "-5"/);
  assert.throws(() => parseCommand(['run', '-k', 'k', '--mem', '-5']), /^--mem: memory size "-5"/);
  assert.throws(() => parseCommand(['run', '-k', 'k', '-m']), /^-m needs a value/);
  assert.throws(() => parseCommand(['run', '-k', 'k', '--rng=yes']), /^--rng takes no value/);
  assert.throws(() => parseCommand(['run', '-k', 'k', '--', 'extra']), /unexpected argument "extra"/);
});

test('--timeout: at most what a Node timer can honour', () => {
  const c = parseCommand(['run', '-k', 'k', '--timeout', String(MAX_TIMEOUT_SECONDS)]);
  assert.is(c.kind === 'run' && c.config.timeoutSeconds, MAX_TIMEOUT_SECONDS);
  assert.ok(MAX_TIMEOUT_SECONDS * 1000 <= 2 ** 31 - 1);
  assert.throws(() => parseCommand(['run', '-k', 'k', '--timeout', String(MAX_TIMEOUT_SECONDS + 1)]), /longer than the longest supported/);
  assert.throws(
    () => validateConfig({ kernel: guest.elf, memoryBytes: 2 ** 28, cpus: 1, console: 'serial', timeoutSeconds: 3e6 }),
    /longer than the longest supported/,
  );
});

test('--metrics: a directory or an unwritable place is refused before the run', () => {
  assert.throws(() => checkMetricsPath(os.tmpdir()), /a directory/);
  assert.throws(() => checkMetricsPath('/nonexistent/dir/m.json'), /cannot write/);
  assert.not.throws(() => checkMetricsPath(path.join(os.tmpdir(), 'kvm-metrics-test.json')));
});

test('help and version commands', () => {
  assert.equal(parseCommand([]), { kind: 'help', topic: 'main' });
  assert.equal(parseCommand(['run', '--help']), { kind: 'help', topic: 'run' });
  assert.equal(parseCommand(['--version']), { kind: 'version' });
});

test('validation names the bad file or value', () => {
  const base = { kernel: '/nonexistent/bzImage', memoryBytes: 2 ** 28, cpus: 1, console: 'serial' as const };
  assert.throws(() => validateConfig(base), /kernel \/nonexistent\/bzImage: no such file/);
  assert.throws(() => validateConfig({ ...base, kernel: '/tmp' }), /not a regular file/);
  assert.throws(() => validateConfig({ ...base, kernel: guest.elf, memoryBytes: 0 }), /greater than 0/);
  assert.throws(() => validateConfig({ ...base, kernel: guest.elf, memoryBytes: 2 ** 50 }), /larger than this host/);
  assert.throws(() => validateConfig({ ...base, kernel: guest.elf, initrd: '/nope' }), /initrd \/nope/);
  assert.throws(() => validateConfig({ ...base, kernel: guest.elf, cpuFeatures: '-warp' }), /unknown cpu feature "warp"/);
});

test('validation fills in every default, once', () => {
  const disk = path.join(mkdtempSync(path.join(os.tmpdir(), 'kvm-args-')), 'disk.img');
  writeFileSync(disk, new Uint8Array(4096));
  const valid = validateConfig({ kernel: guest.elf, memoryBytes: 2 ** 28, cpus: 3, console: 'serial', disks: [{ path: disk, readOnly: true, direct: false }] });
  rmSync(path.dirname(disk), { recursive: true });
  assert.is(valid.transport, 'pci');
  assert.is(valid.hostQuirks, 'auto');
  assert.is(valid.rng, false);
  assert.is(valid.serialOutputFd, 1);
  assert.is(valid.cmdline, '');
  assert.equal(valid.net, []);
  assert.is(valid.disks[0]!.queues, 3);
  assert.equal(valid.cpuFeatureEdits, { remove: [], add: [] });
  assert.ok(isValidConfig(valid));
  assert.ok(Object.isFrozen(valid));
  assert.is(validateConfig(valid), valid);
});

test('errorToExit: every error to a status and one line', () => {
  assert.equal(errorToExit(new ConfigError('bad-value', 'memory size must be greater than 0')), { status: 2, message: 'memory size must be greater than 0' });
  assert.equal(errorToExit(new UsageError('x')), { status: 2, message: 'x' });
  const loop = Object.assign(new Error("ELOOP: too many symbolic links encountered, stat 'a'"), { code: 'ELOOP', syscall: 'stat', path: 'a' });
  assert.equal(errorToExit(loop), { status: 2, message: 'a: too many levels of symbolic links (ELOOP)' });
  const odd = Object.assign(new Error("EXDEV: cross-device link not permitted, rename 'a'"), { code: 'EXDEV', syscall: 'rename', path: 'a' });
  assert.equal(errorToExit(odd), { status: 2, message: 'a: cross-device link not permitted (EXDEV)' });
  const host = Object.assign(new Error('EMFILE: too many open files, pipe'), { code: 'EMFILE', syscall: 'pipe' });
  assert.equal(errorToExit(host), { status: 4, message: 'pipe failed: too many open files (EMFILE)' });
  assert.equal(errorToExit(new Error('boom\n  at x')), { status: 4, message: 'internal error: boom' });
  assert.equal(errorToExit('text'), { status: 4, message: 'internal error: text' });
  const error = new VmmError('k', 'm', { status: 36, cause: loop });
  assert.is(error.cause, loop);
  assert.is(error.name, 'VmmError');
  assert.is(new ConfigError('bad-value', 'x').name, 'ConfigError');
});

test('the library gets the same status and message as the CLI, before KVM is opened', async () => {
  const { VirtualMachine, runVm } = await import('../../src/index.js');
  const base = { kernel: guest.elf, memoryBytes: 2 ** 24, cpus: 1, console: 'serial' as const };
  assert.equal(await runVm({ ...base, kernel: '/nonexistent' }), { status: 2, reason: 'kernel /nonexistent: no such file' });
  assert.equal(await runVm({ ...base, net: [{ tap: 'tap0' }, { tap: 'tap0' }] }), { status: 2, reason: '--net: TAP tap0 is named twice' });
  try {
    await VirtualMachine.create({ ...base, timeoutSeconds: 1e7 });
    assert.unreachable('created');
  } catch (error) {
    assert.equal(errorToExit(error).status, 2);
    assert.match(errorToExit(error).message, /longer than the longest supported/);
  }
});

test('default kernel parameters yield to the user', () => {
  const config = { kernel: 'k', memoryBytes: 1, cpus: 1, console: 'serial' as const };
  assert.is(kernelCommandLine(config), 'console=ttyS0 reboot=k panic=-1');
  assert.is(kernelCommandLine({ ...config, cmdline: 'console=hvc0 panic=5 quiet' }), 'reboot=k console=hvc0 panic=5 quiet');
});

test.run();
