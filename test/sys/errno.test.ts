/** src/sys/errno.ts names every errno value the code compares with: they must be the host's. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import os from 'node:os';
import * as E from '../../src/sys/errno.js';

test('each named errno is the value Node reports for that name on this host', () => {
  const host = os.constants.errno as Record<string, number>;
  const named = Object.entries(E).filter(([name]) => /^E[0-9A-Z]+$/.test(name));
  assert.ok(named.length >= 15);
  for (const [name, value] of named) assert.is(value, host[name], name);
});

test('errnoName and describeErrno', () => {
  assert.is(E.errnoName(E.EBADF), 'EBADF');
  assert.is(E.errnoName(4095), 'errno 4095');
  assert.is(E.describeErrno(E.EBADF), 'bad file descriptor');
  assert.is(E.describeErrno(E.EOPNOTSUPP), 'EOPNOTSUPP');
});

test.run();
