/**
 * The minimal kernel's patch for nested PVM hosts (guest-configs/patches/0001-…), checked on
 * any machine, with no /dev/kvm: under QEMU's TCG emulator a static /init makes its system
 * calls the way such a host delivers them, by jumping to entry_SYSCALL_64 at CPL 3 (the fetch
 * faults with error code 0x15, RIP = CR2 = the entry; test/linux/syscall-by-fault.c). The
 * patched kernel runs each call: the init writes, sees getpid() == 1 and reboots through the
 * fault. The same program aimed 4 bytes past the entry is killed by the same fault (error 15),
 * so only that exact signature is served. Under kvm on a PVM host the userspace tier
 * (linux-userspace.test.ts) covers the real thing.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { repoRoot } from '../helpers/run-kvm.js';
import { minimalKernel } from '../helpers/guest-images.js';

const QEMU = 'qemu-system-x86_64';
const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-syscall-patch-'));
let kernel: { vmlinux: string; bzImage: string };
let entry = 0n;

test.before(() => {
  kernel = minimalKernel();
  const symbols = execFileSync('nm', [kernel.vmlinux], { encoding: 'utf8', maxBuffer: 64 * 2 ** 20 });
  const match = /^([0-9a-f]+) T entry_SYSCALL_64$/m.exec(symbols);
  if (!match) throw new Error(`no entry_SYSCALL_64 in ${kernel.vmlinux}`);
  entry = BigInt(`0x${match[1]}`);
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

/** A root image whose /init is syscall-by-fault.c built to jump to `target`; the console log of its boot. */
function bootWithInitJumpingTo(name: string, target: bigint): string {
  const tree = path.join(dir, `${name}-tree`);
  mkdirSync(tree);
  execFileSync('gcc', ['-static', '-nostdlib', '-O2', '-fno-stack-protector', '-fno-builtin', `-DENTRY=0x${target.toString(16)}`,
    '-o', path.join(tree, 'init'), path.join(repoRoot(), 'test', 'linux', 'syscall-by-fault.c')]);
  const image = path.join(dir, `${name}.ext4`);
  writeFileSync(image, '');
  truncateSync(image, 16 * 2 ** 20);
  execFileSync('mkfs.ext4', ['-q', '-F', '-d', tree, image]);
  const run = spawnSync(QEMU, ['-accel', 'tcg', '-cpu', 'max', '-m', '128', '-nographic', '-no-reboot', '-kernel', kernel.bzImage,
    '-drive', `file=${image},if=none,id=d0,format=raw`, '-device', 'virtio-blk-pci,drive=d0',
    '-append', 'console=ttyS0 root=/dev/vda init=/init panic=-1'], { encoding: 'utf8', timeout: 120_000, stdio: ['ignore', 'pipe', 'pipe'] });
  if (run.error) throw new Error(`${QEMU}: ${run.error.message} (setup.sh installs qemu-system-x86)`);
  return `${run.stdout}${run.stderr}`.replace(/\r/g, '');
}

test('system calls made through the fault a nested PVM host leaves run on the patched kernel (QEMU TCG)', () => {
  const log = bootWithInitJumpingTo('entry', entry);
  assert.match(log, 'syscall-by-fault: write ok\n', log.slice(-3000));
  assert.match(log, 'syscall-by-fault: getpid ok, rebooting\n', log.slice(-3000));
  assert.match(log, 'reboot: Restarting system', log.slice(-3000));
  assert.not.match(log, /FAIL|Kernel panic/, log.slice(-3000));
});

test('the same jump 4 bytes past the entry is an ordinary fault (error 15): init is killed', () => {
  const log = bootWithInitJumpingTo('past-entry', entry + 4n);
  assert.match(log, new RegExp(`init\\[1\\]: segfault at ${(entry + 4n).toString(16)} ip ${(entry + 4n).toString(16)} .* error 15`), log.slice(-3000));
  assert.match(log, 'Attempted to kill init! exitcode=0x0000000b', log.slice(-3000));
  assert.not.match(log, 'syscall-by-fault: write ok');
});

test.run();
