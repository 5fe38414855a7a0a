/**
 * Opening TAPs (src/net/tap.ts) inside a namespace this test creates: create
 * when allowed, attach to one made beforehand for an unprivileged user, and
 * each refusal as its one-line NetError with the documented status.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { NetError } from '../../src/net/net-error.js';
import { openTap } from '../../src/net/tap.js';
import { TUN_F_CSUM, TUN_F_TSO4 } from '../../src/sys/tun-abi.js';
import { close } from '../../src/sys/fd.js';
import { NetNamespace } from '../helpers/netns.js';

const NOBODY = 65534;
const child = path.join(path.dirname(fileURLToPath(import.meta.url)), 'tap-open-child.js');
let suiteNamespace: NetNamespace | undefined;
/** Holds tunCopy; removed after the suite whether or not the copy could be made. */
let tunCopyDir: string | undefined;
let tunCopy: string | undefined;
/** Why there is no tunCopy, for the tests that need one to fail with. */
let tunCopyProblem = 'the before hook did not run';

test.before(() => {
  const created = NetNamespace.create();
  // Never pass by skipping: without namespaces (root, iproute2) the TAP tests fail with the reason.
  if (typeof created === 'string') throw new Error(`TAP tests need a network namespace: ${created}`);
  suiteNamespace = created;
  // An unprivileged user's view of /dev/net/tun (0666 on most hosts, 0600 on some).
  tunCopyDir = mkdtempSync(path.join(tmpdir(), 'kvm-tun-'));
  chmodSync(tunCopyDir, 0o755);
  const copy = path.join(tunCopyDir, 'tun');
  const made = spawnSync('mknod', ['-m', '666', copy, 'c', '10', '200'], { encoding: 'utf8' });
  if (made.status === 0) tunCopy = copy;
  else tunCopyProblem = `mknod -m 666 ${copy} c 10 200 failed: ${made.error?.message ?? made.stderr.trim()}`;
});

test.after(() => {
  suiteNamespace?.destroy();
  if (tunCopyDir) rmSync(tunCopyDir, { recursive: true, force: true });
});

/** The suite's namespace; the before hook made it or the suite failed there. */
function namespace(): NetNamespace {
  if (!suiteNamespace) throw new Error('no network namespace: the before hook failed');
  return suiteNamespace;
}

function expectNetError(fn: () => unknown, kind: NetError['kind'], status: number): NetError {
  try {
    fn();
  } catch (error) {
    assert.instance(error, NetError);
    const e = error as NetError;
    assert.is(e.kind, kind, e.message);
    assert.is(e.status, status);
    assert.not.match(e.message, /\n/);
    return e;
  }
  throw new assert.Assertion({ message: `expected NetError ${kind}`, operator: 'throws', expects: kind, actual: 'no error' });
}

interface ChildResult {
  /** Who the child ran as: its uid and effective capabilities (hex, from /proc/self/status). */
  uid: number;
  capEff: string;
  ok: boolean;
  kind?: string;
  status?: number;
  message?: string;
  created?: boolean;
  offloads?: number;
}

/**
 * openTap in a child process running as nobody inside the namespace. Throws, naming
 * what could not be set up, rather than letting a test pass without checking anything.
 */
function openAsNobody(name: string): ChildResult {
  const inside = namespace();
  if (!tunCopy) throw new Error(`cannot open a TAP as an unprivileged user: no world-usable /dev/net/tun (${tunCopyProblem})`);
  const command = [...inside.execPrefix, 'setpriv', `--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', process.execPath, child, tunCopy, name];
  const r = spawnSync('ip', command, { encoding: 'utf8' });
  if (r.error || r.status !== 0) {
    throw new Error(`cannot run openTap as nobody (ip ${command.join(' ')}): ${r.error?.message ?? `status ${r.status}: ${r.stderr.trim()}`}`);
  }
  const result = JSON.parse(r.stdout.trim()) as ChildResult;
  // A refusal proves nothing if the child kept root's identity or any capability.
  assert.is(result.uid, NOBODY, 'the child runs as nobody');
  assert.match(result.capEff, /^0+$/, 'the child has no effective capability');
  return result;
}

test('creates a missing TAP when allowed; it goes away with the fd', () => {
  const ns = namespace();
  const tap = ns.enter(() => openTap('kvmnew0'));
  try {
    assert.is(tap.name, 'kvmnew0');
    assert.ok(tap.created);
    assert.is(tap.offloads & (TUN_F_CSUM | TUN_F_TSO4), TUN_F_CSUM | TUN_F_TSO4);
    assert.match(ns.ip('link', 'show', 'dev', 'kvmnew0'), /kvmnew0/);
  } finally {
    close(tap.fd);
  }
  assert.throws(() => ns.ip('link', 'show', 'dev', 'kvmnew0'));
});

test('attaches to an existing persistent TAP (and leaves it there)', () => {
  const ns = namespace();
  ns.ip('tuntap', 'add', 'dev', 'kvmpersist0', 'mode', 'tap');
  const tap = ns.enter(() => openTap('kvmpersist0'));
  assert.not.ok(tap.created);
  close(tap.fd);
  assert.match(ns.ip('link', 'show', 'dev', 'kvmpersist0'), /kvmpersist0/);
  ns.ip('tuntap', 'del', 'dev', 'kvmpersist0', 'mode', 'tap');
});

test('a TAP open elsewhere is busy (status 4)', () => {
  const ns = namespace();
  const first = ns.enter(() => openTap('kvmbusy0'));
  try {
    const e = expectNetError(() => ns.enter(() => openTap('kvmbusy0')), 'busy', 4);
    assert.match(e.message, /kvmbusy0/);
  } finally {
    close(first.fd);
  }
});

test('an interface that is not a TAP (loopback, a TUN) is refused (status 2)', () => {
  const ns = namespace();
  expectNetError(() => ns.enter(() => openTap('lo')), 'not-a-tap', 2);
  ns.ip('tuntap', 'add', 'dev', 'kvmtun0', 'mode', 'tun');
  try {
    expectNetError(() => ns.enter(() => openTap('kvmtun0')), 'not-a-tap', 2);
  } finally {
    ns.ip('tuntap', 'del', 'dev', 'kvmtun0', 'mode', 'tun');
  }
});

test('bad names and a missing /dev/net/tun are refused before anything is created', () => {
  expectNetError(() => openTap('a-name-far-too-long'), 'bad-option', 2);
  expectNetError(() => openTap('a/b'), 'bad-option', 2);
  expectNetError(() => openTap('tap0', { tunDevice: '/nonexistent/tun' }), 'no-tun', 4);
});

test('an unprivileged user attaches to a TAP root made for it', () => {
  const ns = namespace();
  ns.ip('tuntap', 'add', 'dev', 'kvmuser0', 'mode', 'tap', 'user', String(NOBODY));
  try {
    const result = openAsNobody('kvmuser0');
    assert.ok(result.ok, result.message);
    assert.is(result.created, false);
    assert.ok(result.offloads! & TUN_F_TSO4, 'offloads can be set without privileges');
  } finally {
    ns.ip('tuntap', 'del', 'dev', 'kvmuser0', 'mode', 'tap');
  }
});

test("without CAP_NET_ADMIN: someone else's TAP is refused (status 4), a missing one cannot be made (status 2)", () => {
  const ns = namespace();
  // Owned by root: a TAP without an owner or group is open to anyone who can open /dev/net/tun.
  ns.ip('tuntap', 'add', 'dev', 'kvmroot0', 'mode', 'tap', 'user', '0');
  try {
    const taken = openAsNobody('kvmroot0');
    assert.equal([taken.ok, taken.kind, taken.status], [false, 'permission', 4]);
    assert.match(taken.message!, /CAP_NET_ADMIN/);
  } finally {
    ns.ip('tuntap', 'del', 'dev', 'kvmroot0', 'mode', 'tap');
  }
  const missing = openAsNobody('kvmnone0');
  assert.equal([missing.ok, missing.kind, missing.status], [false, 'missing', 2]);
  assert.match(missing.message!, /does not exist/);
});

test.run();
