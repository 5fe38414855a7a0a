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

/**
 * Lines a guest can cause, rate-limited: a guest looping reset → bad queue → DRIVER_OK must not
 * flood the host's stderr. The first `burst` lines of each interval are written; the rest are
 * counted and the count is written with the first line of a later interval (or at `flush`).
 */
export class RateLimitedLog {
  private windowStart: number;
  private written = 0;
  private suppressed = 0;

  constructor(
    private readonly write: (text: string) => void,
    /** Names the source in the summary line, e.g. `kvm: virtio-rng`. */
    private readonly prefix: string,
    private readonly burst = GUEST_LOG_BURST,
    private readonly intervalMs = GUEST_LOG_INTERVAL_MS,
    private readonly now: () => number = () => performance.now(),
  ) {
    this.windowStart = now();
  }

  line(text: string): void {
    const now = this.now();
    if (now - this.windowStart >= this.intervalMs) {
      this.flush();
      this.windowStart = now;
      this.written = 0;
    }
    if (this.written < this.burst) {
      this.written++;
      this.write(text);
    } else {
      this.suppressed++;
    }
  }

  /** Writes the count of lines suppressed so far, if any. */
  flush(): void {
    if (this.suppressed === 0) return;
    const n = this.suppressed;
    this.suppressed = 0;
    this.write(`${this.prefix}: ${n} more such message${n === 1 ? '' : 's'} suppressed\n`);
  }
}

/** Guest-caused lines written per interval and source, at most. */
export const GUEST_LOG_BURST = 5;
export const GUEST_LOG_INTERVAL_MS = 10_000;
