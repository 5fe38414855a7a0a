#!/usr/bin/env node
// npm run bench -- NAME [args]: runs dist/bench/NAME.js (all benchmarks when no name is given).
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const benchDir = path.join(root, 'dist', 'bench');
const available = readdirSync(benchDir).filter((f) => f.endsWith('.js')).map((f) => f.slice(0, -3));
const [name, ...args] = process.argv.slice(2);
const names = name ? [name] : available;
let status = 0;
for (const n of names) {
  const file = path.join(benchDir, `${n}.js`);
  if (!existsSync(file)) {
    console.error(`bench: no benchmark "${n}" (have: ${available.join(', ')})`);
    process.exit(2);
  }
  const run = spawnSync(process.execPath, [file, ...args], { cwd: root, stdio: 'inherit' });
  status ||= run.status ?? 1;
}
process.exit(status);
