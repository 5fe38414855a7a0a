/**
 * The README's first command, as a person uses it: the minimal kernel and the default root
 * image on a real terminal, busybox init's login shell on the serial console, a command typed
 * and its answer read, then `poweroff -f` (status 0) — and Ctrl-A x, which quits from the
 * shell at any time (status 0, the terminal restored).
 */
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CLI, assertKvmUsable } from '../helpers/run-kvm.js';
import { minimalKernel, rootfsImage } from '../helpers/guest-images.js';
import { requiresKvm } from '../helpers/kvm-host.js';
import { PtySession } from '../helpers/pty-session.js';

/** Every test here boots a VM (skipped where the host has no /dev/kvm). */
const test = requiresKvm(uvuTest);

/**
 * busybox sh's prompt from the image's /etc/profile (PS1='\u@\h:\w\$ '). Not anchored at the
 * end: ash follows it with a cursor-position query (ESC [6n), and kernel messages may follow.
 */
const PROMPT = /root@kvm-guest:\/# /;
/** Boot to the prompt: about 40 s where the guest kernel is emulated (README, Boot times). */
const BOOT_LIMIT_MS = 180_000;

const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-shell-'));
let guest: { vmlinux: string; rootfs: string };

test.before(async () => {
  await assertKvmUsable();
  guest = { vmlinux: minimalKernel().vmlinux, rootfs: rootfsImage() };
});

test.after(() => rmSync(dir, { recursive: true, force: true }));

/** The README's first command (with our CLI by path), on a copy of the image. */
function readmeCommand(name: string): PtySession {
  const image = path.join(dir, `${name}.ext4`);
  copyFileSync(guest.rootfs, image);
  return PtySession.start([process.execPath, CLI, 'run', '-k', guest.vmlinux, '-d', image, '--rng', '-p', 'root=/dev/vda rw']);
}

test('the README command ends at a shell: echo $((6*7)) answers 42, poweroff -f is status 0', async () => {
  const session = readmeCommand('echo');
  try {
    await session.waitFor(PROMPT, BOOT_LIMIT_MS);
    const typedAt = session.output.length;
    session.type('echo $((6*7))\r');
    // The answer on a line of its own (the pty ends lines with \r\r\n), then the prompt again.
    await session.waitFor(/\n42\r*\n[^]*root@kvm-guest:\/# /, 30_000, typedAt);
    session.type('poweroff -f\r');
    assert.is(await session.exit(60_000), 0, session.output.slice(-2000));
  } finally {
    await session.exit(1);
  }
});

test('Ctrl-A x at the shell quits with status 0', async () => {
  const session = readmeCommand('quit');
  try {
    await session.waitFor(PROMPT, BOOT_LIMIT_MS);
    session.type('\x01x');
    assert.is(await session.exit(30_000), 0, session.output.slice(-2000));
  } finally {
    await session.exit(1);
  }
});

test.run();
