/**
 * The host side of the serial console: stdin in raw mode (restored on every
 * exit path), Ctrl-A x to quit, everything else forwarded to the guest.
 */
const CTRL_A = 0x01;
const QUIT_KEY = 0x78; // 'x'

export interface ConsoleHandlers {
  input(bytes: Uint8Array): void;
  quit(): void;
}

export class TerminalConsole {
  private escape = false;
  private rawMode = false;
  private readonly onData = (chunk: Buffer): void => this.handle(chunk);

  constructor(
    private readonly stdin: NodeJS.ReadStream,
    private readonly handlers: ConsoleHandlers,
  ) {}

  attach(): void {
    if (this.stdin.isTTY) {
      this.stdin.setRawMode(true);
      this.rawMode = true;
    }
    this.stdin.on('data', this.onData);
    this.stdin.on('error', () => this.detach());
    this.stdin.resume();
  }

  /** Escape processing only on a terminal: piped input is passed through byte for byte. */
  private handle(chunk: Buffer): void {
    if (!this.rawMode) {
      this.handlers.input(chunk);
      return;
    }
    const out: number[] = [];
    for (const byte of chunk) {
      if (this.escape) {
        this.escape = false;
        if (byte === QUIT_KEY) {
          if (out.length) this.handlers.input(Uint8Array.from(out));
          this.handlers.quit();
          return;
        }
        if (byte === CTRL_A) out.push(CTRL_A);
        continue;
      }
      if (byte === CTRL_A) this.escape = true;
      else out.push(byte);
    }
    if (out.length) this.handlers.input(Uint8Array.from(out));
  }

  detach(): void {
    this.stdin.off('data', this.onData);
    this.stdin.pause();
    this.restore();
  }

  /** Safe to call from any exit path, more than once. */
  restore(): void {
    if (this.rawMode) {
      this.rawMode = false;
      try {
        this.stdin.setRawMode(false);
      } catch {
        // The terminal may already be gone.
      }
    }
  }
}
