// Builds (once per process) and locates the freestanding test guest in
// test/guest/ (see test/guest/README.md for its command-line protocol).
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface TestGuestImages {
  /** ELF64 with the Xen PVH note: a PVH loader enters pvh_start32 (boot=pvh). */
  elf: string;
  /** The same guest without the PVH note: enter at e_entry with the Linux 64-bit boot protocol (boot=linux64). */
  elf64: string;
  /** Linux bzImage: load the protected-mode part at 0x100000, enter at +0x200 in 64-bit mode (boot=linux64). */
  bzImage: string;
}

let cached: TestGuestImages | undefined;

/** The repository root: the nearest directory above this file that holds a package.json. */
export function repoRoot(): string {
  let dir = path.dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(path.join(dir, 'package.json'))) return dir;
    const parent = path.dirname(dir);
    if (parent === dir) throw new Error(`no package.json above ${fileURLToPath(import.meta.url)}`);
    dir = parent;
  }
}

/**
 * Runs `bash test/guest/build.sh` (a no-op when the images are up to date) the
 * first time it is called in this process and returns absolute image paths.
 * Throws with the build's stderr if the build fails.
 */
export function ensureTestGuest(): TestGuestImages {
  if (cached) return cached;
  const root = repoRoot();
  const script = path.join(root, 'test', 'guest', 'build.sh');
  const run = spawnSync('bash', [script], {
    cwd: root,
    encoding: 'utf8',
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  if (run.error) throw new Error(`test guest build could not run: ${run.error.message}`);
  if (run.status !== 0) {
    const how = run.status === null ? `signal ${run.signal}` : `exit status ${run.status}`;
    throw new Error(`test guest build failed (${how}):\n${run.stderr}${run.stdout}`);
  }
  const out = path.join(root, 'build', 'guest');
  const images: TestGuestImages = {
    elf: path.join(out, 'test-guest.elf'),
    elf64: path.join(out, 'test-guest-elf64.elf'),
    bzImage: path.join(out, 'test-guest.bzImage'),
  };
  for (const file of Object.values(images)) {
    if (!existsSync(file)) throw new Error(`test guest build did not produce ${file}`);
  }
  cached = images;
  return images;
}

/** Process exit status of a VMM whose guest wrote `value` to the debug-exit port 0xf4. */
export function debugExitStatus(value: number): number {
  return ((value << 1) | 1) & 0xff;
}
