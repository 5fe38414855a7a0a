/** Asserts that fn throws a one-line BootError of the given kind. */

import * as assert from 'uvu/assert';
import { BootError, type BootErrorKind } from '../../src/boot/boot-error.js';

export function throwsBootError(fn: () => unknown, kind: BootErrorKind, pattern?: RegExp): BootError {
  try {
    fn();
  } catch (error) {
    if (!(error instanceof BootError)) throw error;
    assert.is(error.kind, kind, `expected ${kind}, got ${error.kind}: ${error.message}`);
    assert.not.match(error.message, /\n/);
    if (pattern) assert.match(error.message, pattern);
    return error;
  }
  assert.unreachable(`expected BootError ${kind}`);
  throw new Error('unreachable');
}
