/**
 * -n/--net from the command line: parsing, and the real CLI run inside a
 * namespace this test creates (a guest boots with a virtio-net device on a
 * TAP there; a busy TAP and a bad MAC end the run with their documented
 * one-line errors).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { parseCommand, UsageError } from '../../src/cli/args.js';
import { openTap } from '../../src/net/tap.js';
import { close } from '../../src/vmm/libc.js';
import { NetNamespace } from '../helpers/netns.js';
import { CLI } from '../helpers/run-kvm.js';
import { ensureTestGuest } from '../helpers/test-guest.js';

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

function kvmInNamespace(ns: NetNamespace, args: string[]): { status: number | null; stdout: string; stderr: string } {
  const r = spawnSync('ip', [...ns.execPrefix, process.execPath, CLI, ...args], { encoding: 'utf8', timeout: 60_000 });
  return { status: r.status, stdout: r.stdout, stderr: r.stderr };
}

test('the CLI boots a guest with a virtio-net device on a TAP, and reports a busy TAP and a bad MAC', async () => {
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

test('inside KVM the test guest ARPs and pings the namespace through virtio-net over PCI (MSI-X) and MMIO', async () => {
  const ns = NetNamespace.create();
  if (typeof ns === 'string') throw new Error(`the guest network test needs a network namespace: ${ns}`);
  try {
    const guest = ensureTestGuest();
    ns.ip('tuntap', 'add', 'dev', 'kvmg0', 'mode', 'tap');
    ns.ip('addr', 'add', '10.0.2.1/24', 'dev', 'kvmg0');
    ns.ip('link', 'set', 'kvmg0', 'up');
    for (const [transport, irq] of [['pci', 'msix'], ['mmio', 'intx']]) {
      const run = kvmInNamespace(ns, [
        'run', '-k', guest.elf, '--transport', transport!, '--net', 'kvmg0', '--timeout', '50',
        '-p', `test=virtio-net transport=${transport} irq=${irq} ip=10.0.2.15 peer=10.0.2.1`,
      ]);
      assert.is(run.status, 1, `${transport}: ${run.stdout}${run.stderr}`);
      assert.match(run.stdout, /virtio-net: arp reply from 10\.0\.2\.1 is [0-9a-f:]{17}/);
      assert.match(run.stdout, 'virtio-net: ping reply from 10.0.2.1 seq 1');
    }
  } finally {
    ns.destroy();
  }
});

test.run();
