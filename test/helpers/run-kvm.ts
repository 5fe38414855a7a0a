/**
 * Runs the real `kvm` CLI (dist/src/cli/main.js) as a child process, the way
 * users and CI scripts do, and collects its output and exit status.
 */
import { spawn } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { kvmAbsentReason } from './kvm-host.js';

export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  while (!existsSync(path.join(dir, 'package.json'))) {
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error('package.json not found above ' + fileURLToPath(import.meta.url));
    dir = parent;
  }
  return dir;
}

export const CLI = path.join(repoRoot(), 'dist', 'src', 'cli', 'main.js');

export interface KvmRun {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

export interface RunOptions {
  readonly input?: string | Buffer;
  /** Kill the child after this long (a hung VMM is a failure, not a wait). */
  readonly limitMs?: number;
  readonly env?: NodeJS.ProcessEnv;
  /** A command that runs kvm, e.g. `ip netns exec NAME` (it must exec kvm, so kvm gets the signals). */
  readonly prefix?: readonly string[];
}

export function runKvm(args: readonly string[], options: RunOptions = {}): Promise<KvmRun> {
  const started = performance.now();
  return new Promise((resolve, reject) => {
    const [command, ...prefixArgs] = [...(options.prefix ?? []), process.execPath];
    const child = spawn(command!, [...prefixArgs, CLI, ...args], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...process.env, ...options.env },
    });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d: Buffer) => (stdout += d.toString('latin1')));
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString('latin1')));
    const limitMs = options.limitMs ?? 30_000;
    let limitReached = false;
    const limit = setTimeout(() => {
      limitReached = true;
      child.kill('SIGKILL');
    }, limitMs);
    child.on('error', reject);
    child.on('close', (status, signal) => {
      clearTimeout(limit);
      // Status null alone does not say whether the VMM hung or crashed: the failure message should.
      if (signal) stderr += `\n[run-kvm: ${limitReached ? `killed after the ${limitMs} ms limit: the VMM did not exit` : `ended by ${signal}`}]\n`;
      resolve({ status, stdout, stderr, ms: performance.now() - started });
    });
    child.stdin.on('error', () => {});
    if (options.input !== undefined) child.stdin.end(options.input);
    else child.stdin.end();
  });
}

/** What `kvm run --metrics PATH` wrote: the exit and every device's counters by device name. */
export interface KvmMetrics {
  readonly status: number;
  readonly reason: string;
  readonly devices: Record<string, Record<string, number>>;
  /** Devices with several data-plane threads: their counters per thread. */
  readonly dataPlaneThreads: Record<string, Array<Record<string, number>>>;
}

export function readMetrics(file: string): KvmMetrics {
  return JSON.parse(readFileSync(file, 'utf8')) as KvmMetrics;
}

/**
 * Ends a suite that cannot run, saying why on stderr: uvu reports a throwing before hook only
 * as failed tests, without its message.
 */
export function suiteCannotRun(reason: string): never {
  process.stderr.write(`${reason}\n`);
  throw new Error(reason);
}

/**
 * Fails with the reason when /dev/kvm exists but cannot be used. On a host without one at all,
 * the tests that need it are registered as skipped (kvm-host.ts), so there is nothing to check.
 */
export async function assertKvmUsable(): Promise<void> {
  if (kvmAbsentReason() !== undefined) return;
  const { Kvm } = await import('../../src/vmm/kvm.js');
  try {
    Kvm.open().fd;
  } catch (error) {
    suiteCannotRun(`KVM integration tests need a usable /dev/kvm: ${(error as Error).message}`);
  }
}
