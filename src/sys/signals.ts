/**
 * The signal that kicks a vCPU thread out of KVM_RUN: which one it is, blocking it in the vCPU
 * thread (KVM unblocks it only inside KVM_RUN), sending it to one thread (tgkill), and consuming
 * one left pending.
 */
import { errnoName } from './errno.js';
import { HostCallError, libc } from './ffi.js';

const cTgkill = libc.func('int tgkill(int tgid, int tid, int sig)') as (tgid: number, tid: number, sig: number) => number;
const cSigrtmin = libc.func('int __libc_current_sigrtmin(void)') as () => number;
const cPthreadSigmask = libc.func('int pthread_sigmask(int how, const void *set, void *oldset)') as (
  how: number,
  set: Uint8Array | null,
  old: Uint8Array | null,
) => number;
const cSigtimedwait = libc.func('int sigtimedwait(const void *set, void *info, const void *timeout)') as (
  set: Uint8Array,
  info: Uint8Array | null,
  timeout: Uint8Array,
) => number;

export const SIG_BLOCK = 0;
export const SIG_SETMASK = 2;
/** Kernel sigset_t as passed to KVM_SET_SIGNAL_MASK: 64 signals. */
export const KERNEL_SIGSET_BYTES = 8;
/** glibc sigset_t. */
const SIGSET_BYTES = 128;

/** The real-time signal used to kick a vCPU out of KVM_RUN. */
export function kickSignal(): number {
  return cSigrtmin() + 6;
}

/** Sends `signal` to thread `tid` of process `tgid`; false if it could not be sent. */
export function tgkill(tgid: number, tid: number, signal: number): boolean {
  return cTgkill(tgid, tid, signal) === 0;
}

function sigset(signal: number): Uint8Array {
  const set = new Uint8Array(SIGSET_BYTES);
  set[(signal - 1) >> 3]! |= 1 << ((signal - 1) & 7);
  return set;
}

/**
 * Blocks signal in the calling thread and returns the kernel sigset (64 bits)
 * that was in force before, for KVM_SET_SIGNAL_MASK.
 */
export function blockSignalInThread(signal: number): Uint8Array {
  const old = new Uint8Array(SIGSET_BYTES);
  // pthread_sigmask returns the error number rather than setting errno.
  const error = cPthreadSigmask(SIG_BLOCK, sigset(signal), old);
  if (error !== 0) throw new HostCallError('pthread_sigmask', error, errnoName(error));
  return old.slice(0, KERNEL_SIGSET_BYTES);
}

/** Consumes a pending (blocked) signal without waiting; true if one was pending. */
export function consumePendingSignal(signal: number): boolean {
  const zeroTimeout = new Uint8Array(16);
  return cSigtimedwait(sigset(signal), null, zeroTimeout) === signal;
}
