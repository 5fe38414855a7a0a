/**
 * The uvu side of a fuzz target, as `npm test` runs it: the property on a fixed seed, then on one
 * random seed (a small budget, printed so a failure can be replayed), then every saved regression
 * case. Cases in `knownFailures` (a bug found and reported, not fixed yet) are replayed too but
 * must still fail; one that passes is printed so it can leave the list.
 */
import fc from 'fast-check';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { describeError, fromJson, loadRegressions, property, toJson, type FuzzTarget } from './fuzz-target.js';

/** The seed every `npm test` run starts from. */
export const FIXED_SEED = 0x6b766d; // "kvm"

export interface SuiteOptions {
  /** Regression files (relative to test/fuzz/regressions, e.g. "blk-device/x.json") of bugs reported but not fixed yet. */
  readonly knownFailures?: readonly string[];
}

export function fuzzSuite<T>(target: FuzzTarget<T>, options: SuiteOptions = {}): void {
  const known = new Set(options.knownFailures ?? []);
  const runFor = (seed: number, numRuns: number): void => {
    const details = fc.check(property(target), { seed, numRuns });
    if (details.failed) {
      const value = JSON.stringify(toJson(details.counterexample?.[0]));
      assert.unreachable(
        `${target.name}: seed ${details.seed} path ${details.counterexamplePath}: ${describeError(details.errorInstance)}\n` +
          `counterexample: ${value?.slice(0, 2000)}\n` +
          `(npm run fuzz -- --target ${target.name} --seed ${details.seed} saves it as a regression case)`,
      );
    }
  };

  test(`${target.name}: fixed seed, ${target.testRuns.fixed} runs`, () => {
    runFor(FIXED_SEED, target.testRuns.fixed);
  });

  test(`${target.name}: random seed, ${target.testRuns.random} runs`, () => {
    const seed = (Math.random() * 0x7fffffff) | 0;
    runFor(seed, target.testRuns.random);
  });

  const cases = loadRegressions(target.name);
  for (const name of known) {
    if (!cases.some((c) => c.file === name)) {
      test(`${target.name}: known failure ${name} exists`, () => assert.unreachable(`${name} is listed as a known failure but no such file`));
    }
  }
  for (const { file, regression } of cases) {
    test(`${target.name}: regression ${file}${known.has(file) ? ' (known failure)' : ''}`, () => {
      const value = fromJson(regression.value) as T;
      let failure: unknown;
      try {
        target.check(value);
      } catch (error) {
        failure = error;
      }
      if (!known.has(file)) {
        if (failure !== undefined) throw failure;
      } else if (failure === undefined) {
        console.log(`  ${file} no longer fails: take it off the known failures of ${target.name}`);
      }
    });
  }

  test.after(() => target.dispose?.());
  test.run();
}
