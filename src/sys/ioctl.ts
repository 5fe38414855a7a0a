/**
 * ioctl(2), the call KVM, TUN/TAP and block devices are driven by: with an integer or a buffer
 * argument, throwing or (ioctlRaw, on the KVM_RUN path) returning -errno; and FIONREAD.
 *
 * ioctl is variadic in C; x86-64 passes these integer/pointer arguments identically either way,
 * and the fixed prototypes are cheaper per call.
 */
import { check, libc, orErrno, retryInterrupted } from './ffi.js';

const ioctlValue = libc.func('int ioctl(int fd, unsigned long request, uint64_t arg)') as (
  fd: number,
  request: number,
  arg: number | bigint,
) => number;
const ioctlPointer = libc.func('int ioctl(int fd, unsigned long request, void *arg)') as (
  fd: number,
  request: number,
  arg: Uint8Array | null,
) => number;

/** ioctl with an integer argument; returns the non-negative result or throws. */
export function ioctl(fd: number, request: number, name: string, arg: number | bigint = 0): number {
  return check(name, retryInterrupted(() => ioctlValue(fd, request, arg)));
}

/** ioctl with a buffer argument the kernel reads and/or writes in place. */
export function ioctlBuffer(fd: number, request: number, name: string, arg: Uint8Array | null): number {
  return check(name, retryInterrupted(() => ioctlPointer(fd, request, arg)));
}

/** Raw ioctl for hot paths: returns -errno instead of throwing. */
export function ioctlRaw(fd: number, request: number, arg: number): number {
  return orErrno(ioctlValue(fd, request, arg));
}

const FIONREAD = 0x541b;
const fionreadBuffer = new Uint8Array(4);

/** Bytes waiting to be read on a pipe, socket or tty, or -errno. */
export function bytesReadable(fd: number): number {
  const r = orErrno(ioctlPointer(fd, FIONREAD, fionreadBuffer));
  return r < 0 ? r : new DataView(fionreadBuffer.buffer).getInt32(0, true);
}
