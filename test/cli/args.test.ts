import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { UsageError, parseCommand } from '../../src/cli/args.js';
import { ConfigError, kernelCommandLine, parseMemorySize, validateConfig } from '../../src/config.js';

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
  assert.match(message(['run', '-k', 'k', '-c', 'two']), /--cpus "two"/);
  assert.match(message(['run', '-k', 'k', '-m', '12Q']), /--mem/);
  assert.match(message(['run', '-k', 'k', '--timeout', '0']), /--timeout/);
  assert.match(message(['run', '-k', 'k', '--console', 'vga']), /--console "vga"/);
  assert.match(message(['fly']), /unknown command "fly"/);
  assert.match(message(['run', '-k', 'k', '--metrics', '']), /--metrics needs a file path/);
  for (const m of [message(['run', '-k', 'k', '--frobnicate']), message(['run'])]) assert.not.match(m, /\n/);
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
  assert.throws(() => validateConfig({ ...base, kernel: '/etc/hostname', memoryBytes: 0 }), /greater than 0/);
  assert.throws(() => validateConfig({ ...base, kernel: '/etc/hostname', memoryBytes: 2 ** 50 }), /larger than this host/);
  assert.throws(() => validateConfig({ ...base, kernel: '/etc/hostname', initrd: '/nope' }), /initrd \/nope/);
  assert.throws(() => validateConfig({ ...base, kernel: '/etc/hostname', cpuFeatures: '-warp' }), /unknown cpu feature "warp"/);
});

test('default kernel parameters yield to the user', () => {
  const config = { kernel: 'k', memoryBytes: 1, cpus: 1, console: 'serial' as const };
  assert.is(kernelCommandLine(config), 'console=ttyS0 reboot=k panic=-1');
  assert.is(kernelCommandLine({ ...config, cmdline: 'console=hvc0 panic=5 quiet' }), 'reboot=k console=hvc0 panic=5 quiet');
});

test.run();
