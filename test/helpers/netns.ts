/**
 * Network namespaces for tests and benchmarks: every address a test uses
 * lives inside a namespace it created, and the namespace is deleted when the
 * test ends (also when the process exits early). `enter` runs a function
 * with the calling thread inside the namespace, e.g. to open /dev/net/tun so
 * the TAP is created there; other threads are not moved.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { O_RDONLY, close, open } from '../../src/sys/fd.js';
import { CLONE_NEWNET, setns } from './host-bindings.js';

const live = new Set<string>();
let exitHook = false;
let counter = 0;

function run(command: string, args: readonly string[]): SpawnSyncReturns<string> {
  return spawnSync(command, args, { encoding: 'utf8' });
}

export class NetNamespace {
  private constructor(readonly name: string) {}

  /** A fresh namespace, or the reason none can be made here (not root, no `ip`). */
  static create(prefix = 'kvmt'): NetNamespace | string {
    const name = `${prefix}-${process.pid}-${counter++}`;
    const r = run('ip', ['netns', 'add', name]);
    if (r.error) return `ip: ${r.error.message}`;
    if (r.status !== 0) return `ip netns add: ${r.stderr.trim()}`;
    live.add(name);
    if (!exitHook) {
      exitHook = true;
      const cleanUp = (): void => {
        for (const ns of live) run('ip', ['netns', 'del', ns]);
        live.clear();
      };
      process.on('exit', cleanUp);
      for (const [signal, number] of [['SIGINT', 2], ['SIGTERM', 15]] as const) {
        process.once(signal, () => {
          cleanUp();
          process.exit(128 + number);
        });
      }
    }
    const ns = new NetNamespace(name);
    ns.ip('link', 'set', 'lo', 'up');
    // No IPv6 here: router solicitations and MLD reports would be noise on the TAP.
    ns.exec('sysctl', '-qw', 'net.ipv6.conf.all.disable_ipv6=1', 'net.ipv6.conf.default.disable_ipv6=1');
    return ns;
  }

  /** `ip -n NAME ARGS…`; throws with ip's message on failure. */
  ip(...args: string[]): string {
    return this.check(run('ip', ['-n', this.name, ...args]), `ip ${args.join(' ')}`);
  }

  /** Runs a command inside the namespace; throws on failure. */
  exec(...command: string[]): string {
    return this.check(run('ip', ['netns', 'exec', this.name, ...command]), command.join(' '));
  }

  /** `ip netns exec NAME` as an argument prefix, for spawning long-running helpers. */
  get execPrefix(): string[] {
    return ['netns', 'exec', this.name];
  }

  private check(r: SpawnSyncReturns<string>, what: string): string {
    if (r.error) throw r.error;
    if (r.status !== 0) throw new Error(`${what} (in ${this.name}): ${r.stderr.trim() || `status ${r.status}`}`);
    return r.stdout;
  }

  /** Runs fn with the calling thread in this namespace, then moves it back. */
  enter<T>(fn: () => T): T {
    const original = open('/proc/thread-self/ns/net', O_RDONLY);
    const target = open(`/run/netns/${this.name}`, O_RDONLY);
    try {
      setns(target, CLONE_NEWNET);
      try {
        return fn();
      } finally {
        setns(original, CLONE_NEWNET);
      }
    } finally {
      close(target);
      close(original);
    }
  }

  destroy(): void {
    if (!live.delete(this.name)) return;
    run('ip', ['netns', 'del', this.name]);
  }
}
