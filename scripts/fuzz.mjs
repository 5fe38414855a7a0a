#!/usr/bin/env node
// A fuzzing campaign: cycles through the targets of test/fuzz (built into dist/test/fuzz), each
// slice on a fresh random seed, until the time is up; prints per-target iteration counts and
// failures, and saves every shrunk counterexample as test/fuzz/regressions/<target>/<time>.json,
// which the target's test replays from then on.
//
//   npm run fuzz -- [--minutes N] [--target NAME] [--seed S]
//
// --seed S runs the targets once each on that seed (reproducing a failure `npm test` printed),
// with the same budget as a slice; without it seeds are random.
import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const USAGE = 'usage: npm run fuzz -- [--minutes N] [--target NAME] [--seed S]';
/** Longest a target runs on one seed before the next target's turn. */
const SLICE_MS = 10_000;

function fail(message) {
  console.error(`kvm-fuzz: ${message}`);
  process.exit(2);
}

function parseArgs(argv) {
  const options = { minutes: 1, target: undefined, seed: undefined };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i];
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = () => {
      const v = inline ?? argv[++i];
      if (v === undefined || v === '') fail(`${flag} needs a value (${USAGE})`);
      return v;
    };
    switch (flag) {
      case '--minutes': {
        const v = value();
        const n = Number(v);
        if (!/^\d+(\.\d+)?$/.test(v) || !(n > 0) || n > 7 * 24 * 60) fail(`--minutes must be a positive number of minutes, got '${v}'`);
        options.minutes = n;
        break;
      }
      case '--target':
        options.target = value();
        break;
      case '--seed': {
        const v = value();
        const n = Number(v);
        if (!/^-?\d+$/.test(v) || !Number.isSafeInteger(n) || n < -0x80000000 || n > 0xffffffff) fail(`--seed must be a 32-bit integer, got '${v}'`);
        options.seed = n | 0;
        break;
      }
      case '--help':
      case '-h':
        console.log(USAGE);
        process.exit(0);
        break;
      default:
        fail(`unknown argument '${arg}' (${USAGE})`);
    }
  }
  return options;
}

const options = parseArgs(process.argv.slice(2));
const dist = (p) => pathToFileURL(path.join(root, 'dist', 'test', 'fuzz', p)).href;
let FUZZ_TARGETS, fc, lib;
try {
  ({ FUZZ_TARGETS } = await import(dist('targets.js')));
  lib = await import(dist('fuzz-target.js'));
  fc = (await import('fast-check')).default;
} catch (error) {
  fail(`cannot load the fuzz targets (run npm run build first): ${error.message.split('\n')[0]}`);
}
const targets = options.target === undefined ? FUZZ_TARGETS : FUZZ_TARGETS.filter((t) => t.name === options.target);
if (targets.length === 0) fail(`no fuzz target '${options.target}' (targets: ${FUZZ_TARGETS.map((t) => t.name).join(', ')})`);

const stats = new Map(targets.map((t) => [t.name, { runs: 0, slices: 0, failures: 0, saved: [], errors: new Set() }]));
const deadline = Date.now() + options.minutes * 60_000;
const once = options.seed !== undefined;
console.log(once ? `kvm-fuzz: seed ${options.seed} on ${targets.map((t) => t.name).join(', ')}` : `kvm-fuzz: ${options.minutes} min on ${targets.map((t) => t.name).join(', ')}`);

let turn = 0;
while (once ? turn < targets.length : Date.now() < deadline) {
  const target = targets[turn++ % targets.length];
  const s = stats.get(target.name);
  const seed = once ? options.seed : (Math.random() * 0x1_0000_0000) | 0;
  const slice = once ? SLICE_MS : Math.max(100, Math.min(SLICE_MS, deadline - Date.now()));
  const details = fc.check(lib.property(target), {
    seed,
    numRuns: once ? target.testRuns.fixed + target.testRuns.random : 1e9,
    interruptAfterTimeLimit: slice,
    markInterruptAsFailure: false,
  });
  s.slices++;
  s.runs += details.numRuns;
  if (!details.failed) continue;
  s.failures++;
  const error = lib.describeError(details.errorInstance);
  // One saved case per distinct error message a campaign meets (the same bug shrinks to the same message).
  const key = error.replace(/\d+/g, 'N');
  console.log(`  ${target.name}: FAILED on seed ${seed} path ${details.counterexamplePath}: ${error}`);
  if (s.errors.has(key)) continue;
  s.errors.add(key);
  const file = lib.saveRegression({
    target: target.name,
    seed: details.seed,
    path: details.counterexamplePath,
    found: new Date().toISOString(),
    error,
    value: lib.toJson(details.counterexample[0]),
  });
  s.saved.push(path.relative(root, file));
  console.log(`    saved ${path.relative(root, file)}`);
}
for (const t of targets) t.dispose?.();

let failures = 0;
console.log('target                 runs   slices  failures');
for (const [name, s] of stats) {
  failures += s.failures;
  console.log(`${name.padEnd(20)} ${String(s.runs).padStart(7)} ${String(s.slices).padStart(8)} ${String(s.failures).padStart(9)}`);
  for (const file of s.saved) console.log(`  new regression case: ${file}`);
}
console.log(`kvm-fuzz: ${failures === 0 ? 'no failures' : `${failures} failing slice(s)`}`);
process.exit(failures === 0 ? 0 : 1);
