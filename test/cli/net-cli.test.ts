/**
 * -n/--net from the command line: parsing, and the real CLI run inside a
 * namespace this test creates (a guest boots with a virtio-net device on a
 * TAP there; a busy TAP, a bad MAC, no such TAP, an interface that is not
 * a TAP and no /dev/net/tun end the run with their documented one-line errors).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { parseCommand, UsageError } from '../../src/cli/args.js';
import { openTap } from '../../src/net/tap.js';
import { close } from '../../src/sys/fd.js';
import { NetNamespace } from '../helpers/netns.js';
import { CLI } from '../helpers/run-kvm.js';
import { ensureTestGuest } from '../helpers/test-guest.js';
import { requiresKvm } from '../helpers/kvm-host.js';

/** The tests that boot a VM (skipped where the host has no /dev/kvm). */
const kvmTest = requiresKvm(test);

test('-n and --net, repeatable, bare or with keys', () => {
  const command = parseCommand(['run', '-k', 'vmlinux', '-n', 'tap0', '--net', 'tap=tap1,mac=52:54:00:00:00:01']);
  assert.is(command.kind, 'run');
  if (command.kind !== 'run') return;
  assert.equal(command.config.net, [{ tap: 'tap0' }, { tap: 'tap1', mac: '52:54:00:00:00:01' }]);
  const none = parseCommand(['run', '-k', 'vmlinux']);
  assert.is(none.kind === 'run' && none.config.net, undefined);
});

test('a malformed --net is a usage error naming the problem', () => {
  assert.throws(() => parseCommand(['run', '-k', 'x', '--net', 'tap=t,mac=01:02:03:04:05:06']), (e: Error) => e instanceof UsageError && /multicast/.test(e.message));
  assert.throws(() => parseCommand(['run', '-k', 'x', '--net', 'tap=t,vhost=on']), (e: Error) => e instanceof UsageError && /unknown key "vhost"/.test(e.message));
});

/** Runs kvm inside the namespace; `via` is a command put before it that execs it (e.g. setpriv). */
function kvmInNamespace(ns: NetNamespace, args: string[], via: readonly string[] = []): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', [...ns.execPrefix, ...via, process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** Runs body with a namespace of its own, deleted afterwards; fails (never skips) when none can be made. */
async function withNamespace(purpose: string, body: (ns: NetNamespace) => Promise<void> | void): Promise<void> {
  const ns = NetNamespace.create();
  if (typeof ns === 'string') throw new Error(`${purpose} needs a network namespace: ${ns}`);
  try {
    await body(ns);
  } finally {
    ns.destroy();
  }
}

/** A run refused before the guest starts: no console output, the one documented line and status. */
function expectRefused(run: { status: number | null; stdout: string; stderr: string }, status: number, message: string): void {
  assert.is(run.stderr, `kvm: ${message}\n`);
  assert.is(run.status, status, run.stderr);
  assert.is(run.stdout, '', 'the guest never started');
}

/**
 * Root without CAP_NET_ADMIN: dropped from the bounding set (and the inheritable set), so
 * the VMM exec'd after it cannot have it, while uid 0 still opens the root-only /dev/net/tun.
 */
const WITHOUT_NET_ADMIN = ['setpriv', '--inh-caps=-all', '--bounding-set=-net_admin'];
/** Its bit in the capability sets (linux/capability.h). */
const CAP_NET_ADMIN = 12;

/** The effective capabilities of a process started through `via` in the namespace (CapEff of /proc/self/status). */
function effectiveCapabilities(ns: NetNamespace, via: readonly string[]): bigint {
  const status = ns.exec(...via, 'cat', '/proc/self/status');
  const hex = /^CapEff:\s*([0-9a-f]+)$/m.exec(status)?.[1];
  if (!hex) throw new Error(`no CapEff line in /proc/self/status:\n${status}`);
  return BigInt(`0x${hex}`);
}

/**
 * A private mount namespace where an empty tmpfs hides /dev/net, so /dev/net/tun does not
 * exist for the VMM: the host's own /dev/net is never touched (propagation private).
 */
const WITHOUT_DEV_NET_TUN = ['unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount -t tmpfs -o size=4k kvm-no-tun /dev/net && exec "$0" "$@"'];

kvmTest('the CLI boots a guest with a virtio-net device on a TAP, and reports a busy TAP and a bad MAC', async () => {
  const ns = NetNamespace.create();
  if (typeof ns === 'string') throw new Error(`the CLI network test needs a network namespace: ${ns}`);
  try {
    const guest = ensureTestGuest();
    const ok = kvmInNamespace(ns, ['run', '-k', guest.elf, '--transport', 'mmio', '--net', 'tap=kvmcli0,mac=52:54:00:aa:bb:cc', '-p', 'test=hello']);
    assert.is(ok.status, 1, ok.stderr);
    assert.match(ok.stdout, 'virtio_mmio.device=4K@0xd0000000:5');
    const held = ns.enter(() => openTap('kvmcli1'));
    try {
      const busy = kvmInNamespace(ns, ['run', '-k', guest.elf, '--net', 'kvmcli1', '-p', 'test=hello']);
      assert.is(busy.status, 4);
      assert.is(busy.stderr.trim(), 'kvm: TAP kvmcli1 is busy: another process (or another --net) has it open');
    } finally {
      close(held.fd);
    }
    const badMac = kvmInNamespace(ns, ['run', '-k', guest.elf, '--net', 'tap=kvmcli2,mac=00:00:00:00:00:00']);
    assert.is(badMac.status, 2);
    assert.match(badMac.stderr, /^kvm: .*all zeroes\n$/);
  } finally {
    ns.destroy();
  }
});

kvmTest('the CLI reports a TAP that does not exist and may not be created (status 2)', async () => {
  await withNamespace('the CLI no-such-TAP test', (ns) => {
    const capabilities = effectiveCapabilities(ns, WITHOUT_NET_ADMIN);
    assert.is(capabilities & (1n << BigInt(CAP_NET_ADMIN)), 0n, 'the VMM runs without CAP_NET_ADMIN');
    const guest = ensureTestGuest();
    const run = kvmInNamespace(ns, ['run', '-k', guest.elf, '--net', 'kvmnone0', '-p', 'test=hello'], WITHOUT_NET_ADMIN);
    expectRefused(run, 2, 'TAP kvmnone0 does not exist, and creating it needs CAP_NET_ADMIN');
  });
});

kvmTest('the CLI refuses an interface that is not a TAP, a TUN or loopback (status 2)', async () => {
  await withNamespace('the CLI not-a-TAP test', (ns) => {
    const guest = ensureTestGuest();
    ns.ip('tuntap', 'add', 'dev', 'kvmclitun0', 'mode', 'tun');
    for (const name of ['kvmclitun0', 'lo']) {
      const run = kvmInNamespace(ns, ['run', '-k', guest.elf, '--net', name, '-p', 'test=hello']);
      expectRefused(run, 2, `${name} is not a single-queue TAP device`);
    }
  });
});

kvmTest('the CLI reports a host without /dev/net/tun (status 4)', async () => {
  await withNamespace('the CLI no-/dev/net/tun test', (ns) => {
    const guest = ensureTestGuest();
    const run = kvmInNamespace(ns, ['run', '-k', guest.elf, '--net', 'kvmcli5', '-p', 'test=hello'], WITHOUT_DEV_NET_TUN);
    expectRefused(run, 4, 'TAP kvmcli5: /dev/net/tun does not exist (no TUN/TAP support in this kernel?)');
    assert.ok(existsSync('/dev/net/tun'), "the host's /dev/net/tun is still there");
  });
});

kvmTest('inside KVM the test guest ARPs and pings the namespace through virtio-net over PCI (MSI-X) and MMIO, with and without mergeable receive buffers', async () => {
  const ns = NetNamespace.create();
  if (typeof ns === 'string') throw new Error(`the guest network test needs a network namespace: ${ns}`);
  try {
    const guest = ensureTestGuest();
    ns.ip('tuntap', 'add', 'dev', 'kvmg0', 'mode', 'tap');
    ns.ip('addr', 'add', '10.0.2.1/24', 'dev', 'kvmg0');
    ns.ip('link', 'set', 'kvmg0', 'up');
    for (const [transport, irq, mrg] of [['pci', 'msix', 0], ['mmio', 'intx', 0], ['pci', 'msix', 1]] as const) {
      const run = kvmInNamespace(ns, [
        'run', '-k', guest.elf, '--transport', transport, '--net', 'kvmg0', '--timeout', '50',
        '-p', `test=virtio-net transport=${transport} irq=${irq} mrg=${mrg} ip=10.0.2.15 peer=10.0.2.1`,
      ]);
      assert.is(run.status, 1, `${transport} mrg=${mrg}: ${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /virtio-net: arp reply from 10\.0\.2\.1 is [0-9a-f:]{17}/);
      assert.match(run.stdout, 'virtio-net: ping reply from 10.0.2.1 seq 1');
      assert.is(run.stderr, '', `${transport} mrg=${mrg}: nothing on stderr`);
    }
    // A guest that ends without resetting the device leaves receive buffers posted: the TAP is
    // still watched (and read) when the VM ends, so it must stay open until the thread has ended.
    const live = kvmInNamespace(ns, [
      'run', '-k', guest.elf, '--net', 'kvmg0', '--timeout', '50',
      '-p', 'test=virtio-net transport=pci irq=msix mrg=0 ip=10.0.2.15 peer=10.0.2.1 then=exit-live',
    ]);
    assert.is(live.status, 1, `${live.stdout}${live.stderr}`);
    assert.match(live.stdout, 'virtio: exit with the device live');
    assert.is(live.stderr, '', 'the data-plane thread ended cleanly');
  } finally {
    ns.destroy();
  }
});

test.run();
