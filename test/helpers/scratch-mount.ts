/**
 * A small memory-backed filesystem mounted on a fresh directory, for disk
 * errors that only a particular filesystem produces: a tmpfs remounted
 * read-only (EROFS), or a ramfs (which refuses O_DIRECT with EINVAL, where
 * tmpfs accepts it since Linux 6.6). Needs CAP_SYS_ADMIN; without it
 * `scratchMount` throws why, so the test fails instead of passing unchecked.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export interface ScratchMount {
  readonly dir: string;
  /** Writes a file of `bytes` bytes (ones) into the mount and returns its path. */
  file(name: string, bytes?: number): string;
  /** `mount -o remount,ro`: from now on every write (and open for writing) is EROFS. */
  remountReadOnly(): void;
  /** Unmounts (lazily if something still holds it) and removes the directory; idempotent. */
  done(): void;
}

export function scratchMount(type: 'tmpfs' | 'ramfs'): ScratchMount {
  const dir = mkdtempSync(path.join(os.tmpdir(), `kvm-${type}-`));
  const options = type === 'tmpfs' ? ['-o', 'size=4m,mode=0755'] : ['-o', 'mode=0755'];
  const mounted = spawnSync('mount', ['-t', type, ...options, `kvm-test-${type}`, dir], { encoding: 'utf8' });
  if (mounted.status !== 0) {
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot mount a ${type} (the tests need root): ${(mounted.stderr || mounted.error?.message || '').trim()}`);
  }
  let unmounted = false;
  return {
    dir,
    file(name, bytes = 4096) {
      const at = path.join(dir, name);
      writeFileSync(at, new Uint8Array(bytes).fill(1));
      chmodSync(at, 0o644);
      return at;
    },
    remountReadOnly() {
      const run = spawnSync('mount', ['-o', 'remount,ro', dir], { encoding: 'utf8' });
      if (run.status !== 0) throw new Error(`mount -o remount,ro ${dir}: ${run.stderr.trim()}`);
    },
    done() {
      if (unmounted) return;
      unmounted = true;
      if (spawnSync('umount', [dir]).status !== 0) spawnSync('umount', ['-l', dir]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
