/**
 * Logging from threads that sit in blocking calls (KVM_RUN, epoll_wait): a worker's
 * process.stderr is flushed by its own event loop, which such a thread rarely reaches, so
 * its messages would appear only when it ends. These write to fd 2 at once instead.
 */
import createDebug from 'debug';
import { writeSync } from 'node:fs';
import { formatWithOptions } from 'node:util';

/** Writes a line to stderr now (one write(2), so lines from different threads do not mix). */
export function writeStderrNow(text: string): void {
  try {
    writeSync(2, text);
  } catch {
    // stderr closed: nothing to tell anyone.
  }
}

/** Makes every `debug` logger of this thread write synchronously. */
export function logSynchronously(): void {
  createDebug.log = (...args: unknown[]) => writeStderrNow(`${formatWithOptions({ colors: false }, ...args)}\n`);
}
