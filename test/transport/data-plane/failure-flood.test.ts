/** Device failures a guest can repeat at will are rate-limited on the host's stderr. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { GUEST_LOG_BURST, RateLimitedLog } from '../../../src/sys/thread-log.js';

const child = fileURLToPath(new URL('./failure-flood-child.js', import.meta.url));

test('a guest looping reset → bad queue → DRIVER_OK 300 times gets a few stderr lines, then a count', () => {
  const run = spawnSync(process.execPath, [child, '300'], { encoding: 'utf8', timeout: 60_000 });
  assert.is(run.status, 0, run.stderr);
  assert.is(run.stdout.trim(), 'failed 300', 'every round failed the device');
  const lines = run.stderr.split('\n').filter(Boolean);
  const failures = lines.filter((l) => /device needs reset/.test(l));
  assert.ok(failures.length <= GUEST_LOG_BURST, `${failures.length} failure lines:\n${lines.slice(0, 8).join('\n')}`);
  assert.ok(failures.length >= 1, 'the first failure is still reported');
  assert.match(run.stderr, new RegExp(`kvm: virtio-rng: ${300 - failures.length} more such messages suppressed`));
});

test('RateLimitedLog: a burst per interval, then the count with the next interval\'s first line', () => {
  const out: string[] = [];
  let now = 0;
  const log = new RateLimitedLog((t) => out.push(t), 'kvm: x', 2, 1000, () => now);
  for (let i = 0; i < 5; i++) log.line(`line ${i}\n`);
  assert.equal(out, ['line 0\n', 'line 1\n']);
  now = 1500;
  log.line('line 5\n');
  assert.equal(out.slice(2), ['kvm: x: 3 more such messages suppressed\n', 'line 5\n']);
  log.line('line 6\n');
  log.line('line 7\n');
  log.flush();
  assert.equal(out.slice(4), ['line 6\n', 'kvm: x: 1 more such message suppressed\n']);
  log.flush();
  assert.is(out.length, 6, 'nothing more to say');
});

test.run();
