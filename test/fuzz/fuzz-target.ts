/**
 * What a fuzz target is, and what the uvu tests (test/fuzz/*.test.ts) and the campaign runner
 * (scripts/fuzz.mjs) share: one fast-check property per target, regression cases saved as JSON
 * under test/fuzz/regressions/<target>/, and the codec that lets values holding bytes and bigints
 * round-trip through those files.
 */
import fc from 'fast-check';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export interface FuzzTarget<T> {
  /** Directory name of its regression cases and the campaign's --target value. */
  readonly name: string;
  /** One line: what is fuzzed and what must hold. */
  readonly description: string;
  readonly arbitrary: fc.Arbitrary<T>;
  /** Throws (anything) when `value` breaks the property; returns normally otherwise. */
  check(value: T): void;
  /** Runs `npm test` spends on the fixed seed, and on one random seed, per test file. */
  readonly testRuns: { readonly fixed: number; readonly random: number };
  /** Frees what check() set up lazily (files, mappings); the next check sets it up again. */
  dispose?(): void;
}

/** Type-erased, for lists of targets. */
export type AnyFuzzTarget = FuzzTarget<any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export function property<T>(target: FuzzTarget<T>): fc.IProperty<[T]> {
  return fc.property(target.arbitrary, (value) => {
    target.check(value);
  });
}

/** The repository root (this file runs as dist/test/fuzz/fuzz-target.js). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const REGRESSIONS_DIR = path.join(REPO_ROOT, 'test', 'fuzz', 'regressions');

/** A saved counterexample: replayed by the target's test from then on. */
export interface RegressionCase {
  readonly target: string;
  /** The run that found it: fc.check(property, { seed, path }) reproduces it while the arbitrary is unchanged. */
  readonly seed: number;
  readonly path: string | null;
  readonly found: string;
  readonly error: string;
  /** The shrunk counterexample, encoded by toJson. */
  readonly value: unknown;
}

/** JSON for values with Uint8Array, bigint, undefined or -0 inside; fromJson reverses it. */
export function toJson(value: unknown): unknown {
  if (typeof value === 'bigint') return { $bigint: value.toString() };
  if (value === undefined) return { $undefined: true };
  if (typeof value === 'number' && !Number.isFinite(value)) return { $number: String(value) };
  if (value instanceof Uint8Array) return { $bytes: Buffer.from(value.buffer, value.byteOffset, value.byteLength).toString('base64') };
  if (Array.isArray(value)) return value.map(toJson);
  if (value !== null && typeof value === 'object') {
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJson(v)]));
  }
  return value;
}

export function fromJson(json: unknown): unknown {
  if (Array.isArray(json)) return json.map(fromJson);
  if (json !== null && typeof json === 'object') {
    const o = json as Record<string, unknown>;
    if (typeof o.$bigint === 'string') return BigInt(o.$bigint);
    if (o.$undefined === true) return undefined;
    if (typeof o.$number === 'string') return Number(o.$number);
    if (typeof o.$bytes === 'string') return new Uint8Array(Buffer.from(o.$bytes, 'base64'));
    return Object.fromEntries(Object.entries(o).map(([k, v]) => [k, fromJson(v)]));
  }
  return json;
}

export interface SavedCase {
  /** Path relative to the regressions directory, e.g. "blk-device/2025-01-01T00-00-00-000Z.json". */
  readonly file: string;
  readonly regression: RegressionCase;
}

/** Every saved case of a target, oldest first. */
export function loadRegressions(target: string, dir = REGRESSIONS_DIR): SavedCase[] {
  let names: string[];
  try {
    names = readdirSync(path.join(dir, target)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    return [];
  }
  return names.map((name) => ({
    file: `${target}/${name}`,
    regression: JSON.parse(readFileSync(path.join(dir, target, name), 'utf8')) as RegressionCase,
  }));
}

/** Writes a counterexample as <dir>/<target>/<timestamp>.json; returns the file's path. */
export function saveRegression(regression: RegressionCase, dir = REGRESSIONS_DIR): string {
  const targetDir = path.join(dir, regression.target);
  mkdirSync(targetDir, { recursive: true });
  const stamp = regression.found.replace(/[:.]/g, '-');
  let file = path.join(targetDir, `${stamp}.json`);
  for (let n = 2; existsQuietly(file); n++) file = path.join(targetDir, `${stamp}-${n}.json`);
  writeFileSync(file, `${JSON.stringify(regression, null, 2)}\n`);
  return file;
}

function existsQuietly(file: string): boolean {
  try {
    readFileSync(file);
    return true;
  } catch {
    return false;
  }
}

/** The first line of whatever a property threw. */
export function describeError(error: unknown): string {
  if (error instanceof Error) return `${error.name}: ${error.message}`.split('\n')[0]!;
  return String(error).split('\n')[0]!;
}

/** Deterministic bytes for buffers the fuzzers fill (cheaper than generating them). */
export function fillPattern(bytes: Uint8Array, seed: number): void {
  let x = (seed * 2654435761) >>> 0 || 1;
  for (let i = 0; i < bytes.length; i++) {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    bytes[i] = x & 0xff;
  }
}
