/**
 * A command on a real pseudo-terminal, driven as a person at a keyboard would: script(1)
 * (util-linux) gives the command a pty whose input is what we type and whose screen output
 * we read. Tests wait for what a person waits for (a prompt, an answer), never for a time.
 */
import { spawn, type ChildProcess } from 'node:child_process';

/** Shell-quotes one word for `script -c`. */
function quote(word: string): string {
  return /^[\w@%+=:,./-]+$/.test(word) ? word : `'${word.replace(/'/g, `'\\''`)}'`;
}

export class PtySession {
  private screen = '';
  private readonly exited: Promise<number | null>;
  private waiters: Array<() => void> = [];

  private constructor(private readonly child: ChildProcess) {
    child.stdout!.on('data', (d: Buffer) => {
      this.screen += d.toString('latin1');
      for (const wake of this.waiters) wake();
    });
    child.stderr!.on('data', (d: Buffer) => (this.screen += d.toString('latin1')));
    child.stdin!.on('error', () => {});
    this.exited = new Promise((resolve) => child.on('close', (status) => resolve(status)));
  }

  /** Starts `argv` on a new pty; script -e passes on its exit status. */
  static start(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): PtySession {
    const child = spawn('script', ['-qfec', argv.map(quote).join(' '), '/dev/null'], {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: { ...env, TERM: 'xterm' },
    });
    return new PtySession(child);
  }

  /** Everything the terminal showed so far (with the pty's \r\n line ends). */
  get output(): string {
    return this.screen;
  }

  /** Waits until the screen, from `from` on, matches `pattern`; fails after `limitMs`. */
  async waitFor(pattern: RegExp, limitMs: number, from = 0): Promise<RegExpExecArray> {
    const deadline = Date.now() + limitMs;
    for (;;) {
      const match = pattern.exec(this.screen.slice(from));
      if (match) return match;
      const left = deadline - Date.now();
      if (left <= 0 || this.child.exitCode !== null) {
        throw new Error(`waited ${limitMs} ms for ${pattern}; the terminal showed:\n${this.screen.slice(-3000)}`);
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 1000));
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
      this.waiters = [];
    }
  }

  /** Types `text` (use \r for Enter, \x01 for Ctrl-A). */
  type(text: string): void {
    this.child.stdin!.write(text);
  }

  /** The command's exit status; kills it (status null) after `limitMs`. */
  async exit(limitMs: number): Promise<number | null> {
    const timer = setTimeout(() => this.child.kill('SIGKILL'), limitMs);
    try {
      return await this.exited;
    } finally {
      clearTimeout(timer);
    }
  }
}
