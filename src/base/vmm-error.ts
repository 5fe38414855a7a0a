/**
 * The base of every error the VMM raises on purpose. Each module has one
 * subclass (BootError, DiskError, KvmError, …) with its own `kind`s; the
 * subclass decides the documented exit status when it builds the error, so
 * nothing downstream has to know the classes (see error-exit.ts).
 */
import { EXIT_HOST_ERROR } from './exit-status.js';

export class VmmError<Kind extends string = string> extends Error {
  /** The documented exit status for this error if it ends the run (README "Exit status"). */
  readonly status: number;

  constructor(
    /** What went wrong, in the module's own terms ('missing', 'bad-mac', …). */
    readonly kind: Kind,
    message: string,
    options: { readonly status?: number; readonly cause?: unknown } = {},
  ) {
    super(message, options.cause !== undefined ? { cause: options.cause } : undefined);
    this.name = new.target.name;
    this.status = options.status ?? EXIT_HOST_ERROR;
  }
}
