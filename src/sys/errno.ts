/**
 * The errno values the VMM tests for, by their Linux names (x86-64; asm-generic/errno-base.h
 * and errno.h), named once here. A raw binding that fails returns -errno: compare with
 * `r === -EAGAIN`, never with a number. test/sys/errno.test.ts checks them against Node's table.
 */
import os from 'node:os';

export const EPERM = 1;
export const ENOENT = 2;
export const EINTR = 4;
export const EIO = 5;
export const ENXIO = 6;
export const EBADF = 9;
export const EAGAIN = 11;
export const ENOMEM = 12;
export const EACCES = 13;
export const EFAULT = 14;
export const EBUSY = 16;
export const EEXIST = 17;
export const ENODEV = 19;
export const EINVAL = 22;
export const ENOTTY = 25;
export const ENOSPC = 28;
export const E2BIG = 7;
export const EPIPE = 32;
export const ENOSYS = 38;
export const EOPNOTSUPP = 95;
export const ECONNRESET = 104;

const errnoNames = new Map<number, string>(
  Object.entries(os.constants.errno).map(([name, value]) => [value as number, name]),
);

/** The errno's name (EACCES, ENOENT, …), or `errno N` for one Node does not know. */
export function errnoName(errno: number): string {
  return errnoNames.get(errno) ?? `errno ${errno}`;
}

const messages: Readonly<Record<string, string>> = {
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ENOENT: 'no such file or directory',
  EINVAL: 'invalid argument',
  ENOMEM: 'out of memory',
  EEXIST: 'already exists',
  EBUSY: 'device or resource busy',
  EFAULT: 'bad address',
  ENXIO: 'no such device or address',
  ENODEV: 'no such device',
  ENOTTY: 'inappropriate ioctl for device',
  EINTR: 'interrupted',
  E2BIG: 'argument list too long',
  EAGAIN: 'try again',
  ENOSPC: 'no space left on device',
  EBADF: 'bad file descriptor',
};

/** A short English description of the errno (its name when there is none). */
export function describeErrno(errno: number): string {
  return messages[errnoName(errno)] ?? errnoName(errno);
}
