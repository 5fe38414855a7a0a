/** `kvm run -d`: every unusable disk is one line on stderr and the documented status, before the guest runs. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTestGuest } from '../helpers/test-guest.js';
import { CLI, assertKvmUsable, runKvm } from '../helpers/run-kvm.js';
import { scratchMount } from '../helpers/scratch-mount.js';
import { requiresKvm } from '../helpers/kvm-host.js';

/** The tests that boot a VM (skipped where the host has no /dev/kvm). */
const kvmTest = requiresKvm(test);

const guest = ensureTestGuest();
let dir = '';

test.before(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-disk-cli-'));
  chmodSync(dir, 0o755);
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function file(name: string, bytes = 1 << 20, mode = 0o644): string {
  const at = path.join(dir, name);
  writeFileSync(at, new Uint8Array(bytes));
  chmodSync(at, mode);
  return at;
}

async function expectRefused(args: string[], status: number, message: string | RegExp): Promise<void> {
  const run = await runKvm(['run', '-k', guest.elf, ...args, '-p', 'test=hello']);
  assert.is(run.status, status, `${args.join(' ')}: ${run.stderr}`);
  assert.match(run.stderr, message);
  assert.is(run.stderr.trim().split('\n').length, 1, `one line: ${run.stderr}`);
  assert.not.match(run.stdout, 'hello from the test guest', 'the guest never ran');
}

test('missing path, directory, empty file, bad options, the same disk twice: status 2', async () => {
  await expectRefused(['-d', path.join(dir, 'missing.img')], 2, /^kvm: disk .*missing\.img: no such file$/m);
  mkdirSync(path.join(dir, 'folder'));
  await expectRefused(['-d', path.join(dir, 'folder')], 2, /: a directory$/m);
  await expectRefused(['-d', file('empty.img', 0)], 2, /: file is empty$/m);
  await expectRefused(['--disk', `${file('x.img')},writeback`], 2, /unknown option "writeback"/);
  const twice = file('twice.img');
  await expectRefused(['-d', twice, '-d', twice], 2, /is named twice/);
});

test('a read-only file without ,ro: status 2 and a hint', async () => {
  await expectRefused(['-d', file('ro.img', 1 << 20, 0o444)], 2, /the file is read-only; add ,ro/);
});

kvmTest('a read-only file with ,ro: the VM runs', async () => {
  const ro = file('ro-ok.img', 1 << 20, 0o444);
  const run = await runKvm(['run', '-k', guest.elf, '-d', `${ro},ro`, '-p', 'test=hello']);
  assert.is(run.status, 1, run.stderr);
});

test('an image on a read-only filesystem without ,ro: status 2 and a hint', async () => {
  const mount = scratchMount('tmpfs');
  try {
    const image = mount.file('rofs.img', 1 << 20);
    mount.remountReadOnly();
    await expectRefused(['-d', image], 2, /^kvm: disk .*rofs\.img: on a read-only filesystem; add ,ro to attach it read-only$/m);
  } finally {
    mount.done();
  }
});

test('direct on a filesystem that refuses O_DIRECT (ramfs): status 4', async () => {
  const mount = scratchMount('ramfs');
  try {
    const image = mount.file('nodirect.img', 1 << 20);
    await expectRefused(['-d', `${image},direct`], 4, /^kvm: disk .*nodirect\.img: the filesystem does not support O_DIRECT \(drop ,direct\)$/m);
  } finally {
    mount.done();
  }
});

test('no permission to read the image: status 2', () => {
  const secret = file('secret.img', 1 << 20, 0o600);
  const run = spawnSync(process.execPath, [CLI, 'run', '-k', guest.elf, '-d', secret, '-p', 'test=hello'], { uid: 65534, gid: 65534, encoding: 'utf8' });
  assert.is(run.status, 2, run.stderr);
  assert.match(run.stderr, /^kvm: disk .*secret\.img: permission denied$/m);
});

kvmTest('an image another running VMM has open read-write: status 4, and usable again once it exits', async () => {
  await assertKvmUsable();
  const shared = file('shared.img');
  const first = spawn(process.execPath, [CLI, 'run', '-k', guest.elf, '-d', shared, '-p', 'test=echo'], { stdio: ['pipe', 'pipe', 'pipe'] });
  const exited = new Promise<number | null>((resolve) => first.on('exit', (code) => resolve(code)));
  await new Promise<void>((resolve, reject) => {
    let out = '';
    first.stdout.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('echo: ready')) resolve();
    });
    void exited.then((code) => reject(new Error(`first VMM exited ${code} before it was ready: ${out}`)));
  });
  try {
    await expectRefused(['-d', shared], 4, /^kvm: disk .*shared\.img: in use by another VMM \(locked\)$/m);
    await expectRefused(['-d', `${shared},ro`], 4, /in use by another VMM/);
  } finally {
    first.stdin.end('q');
  }
  assert.is(await exited, 1);
  const again = await runKvm(['run', '-k', guest.elf, '-d', shared, '-p', 'test=hello']);
  assert.is(again.status, 1, again.stderr);
});

test.run();
