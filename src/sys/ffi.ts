/**
 * The koffi handle on libc, and how a failed call is reported. Every binding module in src/sys
 * declares its functions on `libc` once, at module top level, and reads errno only through
 * here: `check` throws a HostCallError naming the call and errno, `orErrno` gives hot paths the
 * result or -errno (compared with the names in errno.ts), and `retryInterrupted` repeats a call
 * a signal interrupted.
 */
import koffi from 'koffi';
import { EXIT_HOST_ERROR } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';
import { EINTR, describeErrno, errnoName } from './errno.js';

/** A libc call failed; `kind` is the errno's name (EACCES, ENOENT, …), also in `code`. Status 4. */
export class HostCallError extends VmmError {
  constructor(
    readonly call: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(code, `${call} failed: ${code} (${describeErrno(errno)})`, { status: EXIT_HOST_ERROR });
  }
}

/** libc.so.6, loaded once per thread that imports this module. */
export const libc = koffi.load('libc.so.6');

/** The HostCallError for `call`, which has just failed (errno is read now). */
export function hostCallError(call: string): HostCallError {
  const e = koffi.errno();
  return new HostCallError(call, e, errnoName(e));
}

/** `result` when it is not negative; otherwise throws the HostCallError for `call`. */
export function check(call: string, result: number): number {
  if (result < 0) throw hostCallError(call);
  return result;
}

/** `result` when it is not negative, -errno otherwise: for raw bindings on hot paths, which do not throw. */
export function orErrno(result: number): number {
  return result < 0 ? -koffi.errno() : result;
}

/** Retries a call interrupted by a signal (a profiler's SIGPROF, a kick meant for KVM_RUN). */
export function retryInterrupted(call: () => number): number {
  for (;;) {
    const r = call();
    if (r >= 0 || koffi.errno() !== EINTR) return r;
  }
}
