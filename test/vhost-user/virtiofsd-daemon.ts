/**
 * QEMU's C virtiofsd (Debian's qemu-system-common) as the vhost-user tests run it: on a source
 * directory, listening on a socket, its log kept for failure messages, reaped at the end. It
 * needs root for its sandbox (namespaces, pivot_root).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';

export const VIRTIOFSD = process.env.VIRTIOFSD ?? '/usr/lib/qemu/virtiofsd';

/** Why virtiofsd cannot run here, or undefined when it can. */
export function virtiofsdAbsentReason(): string | undefined {
  if (!existsSync(VIRTIOFSD)) return `${VIRTIOFSD} is not installed (Debian: qemu-system-common; or set VIRTIOFSD)`;
  if (process.getuid?.() !== 0) return 'virtiofsd needs root for its sandbox';
  return undefined;
}

/** Whether `child` has exited, waiting up to `ms` for it. */
export function exited(child: ChildProcess, ms: number): Promise<boolean> {
  if (child.exitCode !== null || child.signalCode !== null) return Promise.resolve(true);
  return new Promise((resolve) => {
    const timer = setTimeout(() => resolve(false), ms);
    child.once('exit', () => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}

export class Virtiofsd {
  private stderr = '';

  private constructor(readonly child: ChildProcess) {
    child.stderr!.on('data', (d: Buffer) => (this.stderr += d.toString()));
  }

  /** Starts the daemon sharing `source` and waits (up to 5 s) for its socket; throws with its log if it does not come up. */
  static async start(source: string, socketPath: string): Promise<Virtiofsd> {
    const daemon = new Virtiofsd(
      spawn(VIRTIOFSD, [`--socket-path=${socketPath}`, '-o', `source=${source}`, '-o', 'cache=none'], { stdio: ['ignore', 'ignore', 'pipe'] }),
    );
    const deadline = Date.now() + 5000;
    while (!existsSync(socketPath) && daemon.child.exitCode === null) {
      if (Date.now() > deadline) {
        await daemon.kill();
        throw new Error(`timed out after 5000 ms waiting for the virtiofsd socket: ${daemon.log}`);
      }
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
    if (daemon.child.exitCode !== null) throw new Error(`virtiofsd exited early: ${daemon.log}`);
    return daemon;
  }

  /** What the daemon wrote to stderr so far. */
  get log(): string {
    return this.stderr;
  }

  /** Ends it if it still runs, and reaps it. */
  async kill(): Promise<void> {
    if (this.child.exitCode === null && this.child.signalCode === null) {
      this.child.kill('SIGKILL');
      await exited(this.child, 5000);
    }
  }
}
