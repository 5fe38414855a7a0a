#!/usr/bin/env node
// Runs every compiled uvu suite under dist/test and closes with one plain
// "N passed, N failed" line that CI reads. Extra args narrow the file pattern.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const pattern = process.argv[2] ?? '\\.test\\.js$';
const uvu = path.join(root, 'node_modules', 'uvu', 'bin.js');
const run = spawnSync(process.execPath, [uvu, 'dist/test', pattern], {
  cwd: root,
  encoding: 'utf8',
  stdio: ['ignore', 'pipe', 'inherit'],
});
process.stdout.write(run.stdout ?? '');
const plain = (run.stdout ?? '').replace(/\x1b\[[0-9;]*m/g, '');
const total = Number(/Total:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const passed = Number(/Passed:\s+(\d+)/.exec(plain)?.[1] ?? 0);
const skipped = Number(/Skipped:\s+(\d+)/.exec(plain)?.[1] ?? 0);
// uvu counts skipped tests apart from Total.
const failed = Math.max(0, total - passed);
// uvu exits 0 when a suite's before hook throws, though none of its tests passed: count them.
const status = run.status === 0 && total > 0 && failed === 0 ? 0 : 1;
if (skipped > 0 && !process.env.KVM_TESTS && !existsSync(process.env.KVM_DEVICE ?? '/dev/kvm')) {
  console.log(`tests: this host has no /dev/kvm, so every test that boots a VM is among the ${skipped} skipped (KVM_TESTS=require fails them instead)`);
}
console.log(`tests: ${passed} passed, ${failed} failed, ${skipped} skipped`);
if (total === 0) console.error('no test ran');
process.exit(status);
