import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { O_CLOEXEC, close, pipe, setNonBlocking, writeFully } from '../../src/sys/fd.js';

test('console writes wait for a slow reader on a non-blocking pipe instead of dropping bytes', async () => {
  const [readEnd, writeEnd] = pipe(O_CLOEXEC);
  setNonBlocking(writeEnd);
  // The reader starts late: the 64 KiB pipe fills and write(2) returns EAGAIN meanwhile.
  const reader = spawn('sh', ['-c', 'sleep 0.3; wc -c'], { stdio: [readEnd, 'pipe', 'inherit'] });
  close(readEnd);
  let counted = '';
  reader.stdout!.on('data', (d: Buffer) => (counted += d.toString()));
  const data = new Uint8Array(300_000).fill(0x41);
  assert.ok(writeFully(writeEnd, data));
  close(writeEnd);
  await new Promise((resolve) => reader.on('close', resolve));
  assert.is(counted.trim(), '300000');
});

test('a closed reader makes writes fail instead of blocking', () => {
  const [readEnd, writeEnd] = pipe(O_CLOEXEC);
  close(readEnd);
  assert.not.ok(writeFully(writeEnd, Uint8Array.of(1, 2, 3)));
  close(writeEnd);
});

test.run();
