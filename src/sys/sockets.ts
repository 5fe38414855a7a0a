/**
 * Sockets and network interfaces: socket(2), always close-on-exec, connect(2) to a raw sockaddr,
 * and an interface's index by name (if_nametoindex), looked up in the calling thread's network
 * namespace.
 */
import { check, libc, retryInterrupted } from './ffi.js';

const cSocket = libc.func('int socket(int domain, int type, int protocol)') as (domain: number, type: number, protocol: number) => number;
const cConnect = libc.func('int connect(int fd, const void *address, unsigned int length)') as (
  fd: number,
  address: Uint8Array,
  length: number,
) => number;
const cIfNameToIndex = libc.func('unsigned int if_nametoindex(const char *name)') as (name: string) => number;

export const SOCK_CLOEXEC = 0o2000000;

export function socket(domain: number, type: number, protocol: number): number {
  return check('socket', cSocket(domain, type | SOCK_CLOEXEC, protocol));
}

/** connect(2) to the first `length` bytes of a raw sockaddr (all of it by default), retried on EINTR; `call` names it in errors. */
export function connect(fd: number, address: Uint8Array, length = address.length, call = 'connect'): void {
  check(call, retryInterrupted(() => cConnect(fd, address, length)));
}

/** The index of a network interface in the calling thread's network namespace, or 0 when there is none. */
export function interfaceIndex(name: string): number {
  return cIfNameToIndex(name);
}
