/**
 * Every bad command line the CLI can be given: exactly one stderr line `kvm: …`, the documented
 * status, no stack trace, within seconds. KVM_DEVICE points at nothing, so a case that got past
 * validation would end with status 4 and "cannot open": these need no /dev/kvm, and prove that
 * validation runs before it is opened.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runKvm } from '../helpers/run-kvm.js';

const NO_KVM = { KVM_DEVICE: '/nonexistent/kvm' };
let dir = '';
let kernel = '';

/** A file of `bytes` zero bytes in the scratch folder. */
function file(name: string, bytes = 4096, mode = 0o644): string {
  const at = path.join(dir, name);
  writeFileSync(at, new Uint8Array(bytes));
  chmodSync(at, mode);
  return at;
}

test.before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-bad-input-'));
  // Validation reads only a kernel's magic: an ELF header's first bytes pass it, and each case
  // below fails on something else.
  kernel = file('kernel');
  writeFileSync(kernel, Uint8Array.of(0x7f, 0x45, 0x4c, 0x46, 2, 1, 1));
  symlinkSync(path.join(dir, 'loop-b'), path.join(dir, 'loop-a'));
  symlinkSync(path.join(dir, 'loop-a'), path.join(dir, 'loop-b'));
  mkdirSync(path.join(dir, 'folder'));
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

type Case = readonly [args: readonly string[], status: number, message: RegExp];

async function expectOneLine([args, status, message]: Case): Promise<void> {
  const run = await runKvm(['run', ...args], { env: NO_KVM, limitMs: 10_000 });
  const what = `kvm run ${args.join(' ')}`.slice(0, 200);
  assert.is(run.status, status, `${what}: status ${run.status}: ${run.stderr}`);
  assert.match(run.stderr, /^kvm: [^\n]+\n$/, `${what}: not one "kvm: " line: ${JSON.stringify(run.stderr)}`);
  assert.match(run.stderr, message, `${what}: ${run.stderr}`);
  assert.not.match(run.stderr, /\n\s+at /, `${what}: stack trace`);
  assert.not.match(run.stderr, /Option '|ERR_|internal error/, `${what}: Node's own message`);
  assert.ok(run.ms < 5000, `${what}: took ${Math.round(run.ms)} ms`);
}

const many = (flag: string, values: readonly string[]): string[] => values.flatMap((v) => [flag, v]);
const taps = (count: number): string[] => Array.from({ length: count }, (_, i) => `tap${i}`);

test('bad flags: status 2, one line', async () => {
  const cases: Case[] = [
    [[], 2, /missing --kernel/],
    [['-k', kernel, '--frobnicate'], 2, /^kvm: unknown option --frobnicate/],
    [['-k', '/etc/hostname'], 2, /^kvm: kernel is neither an ELF nor a bzImage/],
    [['-k', kernel, '-5'], 2, /unknown option -5/],
    [['-k', kernel, 'stray'], 2, /unexpected argument "stray"/],
    [['-k', kernel, '-m'], 2, /^kvm: -m needs a value/],
    [['-k', kernel, '--cpu-features'], 2, /^kvm: --cpu-features needs a value/],
    [['-k'], 2, /^kvm: -k needs a value/],
    [['-k', kernel, '--rng=yes'], 2, /^kvm: --rng takes no value/],
    [['-k', kernel, '-m', '-5'], 2, /^kvm: -m: memory size "-5" is not a number/],
    [['-k', kernel, '--mem', '-5'], 2, /^kvm: --mem: memory size "-5"/],
    [['-k', kernel, '-m', 'abc'], 2, /^kvm: -m: memory size "abc"/],
    [['-k', kernel, '-m', '0'], 2, /memory size must be greater than 0/],
    [['-k', kernel, '-m', '1K'], 2, /below the minimum of 2 MiB/],
    [['-k', kernel, '-m', '4097K'], 2, /multiple of 4 KiB/],
    [['-k', kernel, '-m', '100T'], 2, /larger than this host/],
    [['-k', kernel, '-m', '99999999999999999999G'], 2, /too large/],
    [['-k', kernel, '-c', '0'], 2, /cpus must be at least 1/],
    [['-k', kernel, '-c', 'two'], 2, /^kvm: -c "two" is not a whole number/],
    [['-k', kernel, '-c', '-1'], 2, /^kvm: -c "-1" is not a whole number/],
    [['-k', kernel, '-c', '4096'], 2, /4096 vCPUs requested; at most 254/],
    [['-k', kernel, '--console', 'vga'], 2, /--console "vga" is not serial or virtio/],
    [['-k', kernel, '--transport', 'isa'], 2, /--transport "isa" is not pci or mmio/],
    [['-k', kernel, '--host-quirks', 'sometimes'], 2, /--host-quirks "sometimes" is not auto, on or off/],
    [['-k', kernel, '--timeout', '0'], 2, /--timeout "0" is not a positive number/],
    [['-k', kernel, '--timeout', '-5'], 2, /--timeout "-5" is not a positive number/],
    [['-k', kernel, '--timeout', '2147484'], 2, /--timeout 2147484 is longer than the longest supported, 2147483 s/],
    [['-k', kernel, '--cpu-features', '-cx16,-warp'], 2, /unknown cpu feature "warp"/],
    [['-k', kernel, '-n', 'tap0,mac=1'], 2, /^kvm: --net/],
    [['-k', kernel, '-n', 'tap=tap0,mac=01:00:00:00:00:01'], 2, /multicast/],
    [['-k', kernel, '-d', `${kernel},bogus`], 2, /unknown option "bogus"/],
    [['-k', kernel, '--metrics', ''], 2, /--metrics needs a file path/],
    [['-k', kernel, '-p'], 2, /^kvm: -p needs a value/],
    [['-k', kernel, '--console'], 2, /^kvm: --console needs a value/],
    [['-k', kernel, '-c', '1.5'], 2, /^kvm: -c "1.5" is not a whole number/],
    [['-k', kernel, '-m', '1.5G'], 2, /^kvm: -m: memory size "1.5G" is not a number/],
    [['-k', kernel, '--timeout', '1e400'], 2, /--timeout "1e400" is not a positive number/],
    [['-k', kernel, '-n', ''], 2, /^kvm: --net: interface name "" is empty/],
    [['-k', kernel, '-n', 'tap='], 2, /^kvm: --net: interface name "" is empty/],
    [['-k', kernel, '-n', 'tap=t0,speed=10'], 2, /unknown key "speed"/],
    [['-k', kernel, '-n', 'tap=toolonginterfacename0'], 2, /longer than 15 bytes/],
    [['-k', kernel, '-d', ',ro'], 2, /^kvm: -d: disk ",ro": no path/],
    [['-k', kernel, '-d', `${kernel},queues=0`], 2, /queues "0" is not a number from 1 to 64/],
    [['-k', kernel, '-d', `${kernel},queues=65`], 2, /queues "65" is not a number from 1 to 64/],
    [['-k', kernel, '-d', `${kernel},serial=${'a'.repeat(21)}`], 2, /must be 1 to 20 printable ASCII characters/],
  ];
  for (const c of cases) await expectOneLine(c);
  const unknown = await runKvm(['fly'], { env: NO_KVM });
  assert.is(unknown.status, 2);
  assert.is(unknown.stderr, 'kvm: unknown command "fly" (try: kvm run --help)\n');
});

test('bad files: status 2, one line, before /dev/kvm is opened', async () => {
  const empty = file('empty', 0);
  const small = file('small.img', 100);
  const cases: Case[] = [
    [['-k', path.join(dir, 'missing')], 2, /^kvm: kernel \S+missing: no such file$/m],
    [['-k', path.join(dir, 'folder')], 2, /kernel \S+folder: a directory, not a regular file/],
    [['-k', empty], 2, /kernel \S+empty: file is empty/],
    [['-k', path.join(dir, 'loop-a')], 2, /kernel \S+loop-a: too many levels of symbolic links \(ELOOP\)/],
    [['-k', kernel, '-i', path.join(dir, 'missing')], 2, /initrd \S+missing: no such file/],
    [['-k', kernel, '-i', empty], 2, /initrd \S+empty: file is empty/],
    [['-k', kernel, '-d', path.join(dir, 'missing.img')], 2, /disk \S+missing\.img: no such file/],
    [['-k', kernel, '-d', path.join(dir, 'folder')], 2, /disk \S+folder: a directory/],
    [['-k', kernel, '-d', path.join(dir, 'loop-a')], 2, /disk \S+loop-a: too many levels of symbolic links \(ELOOP\)/],
    [['-k', kernel, '-d', small], 2, /smaller than one 512-byte sector/],
    [['-k', kernel, '-d', file('readonly.img', 4096, 0o444)], 2, /read-only; add ,ro/],
    [['-k', kernel, '--metrics', dir], 2, /^kvm: --metrics \S+: a directory; name the file to write$/m],
    [['-k', kernel, '--metrics', path.join(dir, 'missing', 'm.json')], 2, /--metrics \S+: cannot write \S+missing: no such file/],
    [['-k', '/dev/null'], 2, /^kvm: kernel \/dev\/null: not a regular file/],
    [['-k', kernel, '-i', path.join(dir, 'folder')], 2, /initrd \S+folder: a directory, not a regular file/],
    [['-k', kernel, '-d', '/dev/null'], 2, /disk \/dev\/null: not a regular file or block device/],
  ];
  for (const c of cases) await expectOneLine(c);
});

test('duplicates and more devices than the transport holds: status 2, one line, before /dev/kvm is opened', async () => {
  const disk = file('disk.img');
  const disks = Array.from({ length: 16 }, (_, i) => file(`d${i}.img`));
  symlinkSync(disk, path.join(dir, 'disk-link.img'));
  const cases: Case[] = [
    [['-k', kernel, '-n', 'tap0', '-n', 'tap0'], 2, /^kvm: --net: TAP tap0 is named twice$/m],
    [['-k', kernel, '-n', 'tap0', '-n', 'tap=tap0,mac=52:54:00:12:34:56'], 2, /TAP tap0 is named twice/],
    [['-k', kernel, '-d', disk, '-d', disk], 2, /disk \S+ is named twice/],
    [['-k', kernel, '-d', disk, '-d', path.join(dir, 'disk-link.img')], 2, /disk \S+disk-link\.img is named twice/],
    [['-k', kernel, ...many('-n', taps(32))], 2, /32 virtio devices do not fit PCI bus 0 \(at most 31\)/],
    [['-k', kernel, '--transport', 'mmio', '--rng', '--console', 'virtio', ...many('-n', taps(14))], 2, /16 virtio devices do not fit --transport mmio \(at most 15/],
    [['-k', kernel, ...many('-d', disks.map((d) => `${d},queues=64`))], 2, /need 1040 MSI-X vectors .* more than the VM's 1000 MSI routes/],
  ];
  for (const c of cases) await expectOneLine(c);
});

test('values that start with "-" are taken as values: these get as far as opening KVM', async () => {
  // Each passes validation, so it ends at the missing KVM device: status 4, its own one line.
  const cases: Case[] = [
    [['-k', kernel, '--cpu-features', '-cx16,-xsave'], 4, /\/nonexistent\/kvm: cannot open/],
    [['-k', kernel, '--cpu-features=-cx16,-xsave'], 4, /\/nonexistent\/kvm: cannot open/],
    [['-k', kernel, '--timeout', '2147483'], 4, /\/nonexistent\/kvm: cannot open/],
    [['-k', kernel, '--transport', 'mmio', '--rng', '--console', 'virtio', ...many('-n', taps(13))], 4, /\/nonexistent\/kvm: cannot open/],
  ];
  for (const c of cases) await expectOneLine(c);
});

test.run();
