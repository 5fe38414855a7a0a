/**
 * eventfd(2): the counters behind every kick, interrupt (irqfd), doorbell (ioeventfd) and
 * control channel, and the 8-byte reads and writes that signal and drain them.
 */
import { readFd, writeFd } from './fd.js';
import { check, libc } from './ffi.js';

const cEventfd = libc.func('int eventfd(unsigned int initval, int flags)') as (init: number, flags: number) => number;

export const EFD_CLOEXEC = 0o2000000;
export const EFD_NONBLOCK = 0o4000;

export function eventfd(flags = EFD_CLOEXEC): number {
  return check('eventfd', cEventfd(0, flags));
}

/** The eventfd every kick, interrupt and control channel uses: close-on-exec, never blocking a reader. */
export function nonBlockingEventfd(): number {
  return eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
}

const eventfdValue = new Uint8Array(8);
const eventfdOne = new Uint8Array(new BigUint64Array([1n]).buffer);

/** Adds 1 to an eventfd's counter (a kick or an interrupt); returns false on failure. */
export function signalEventfd(fd: number): boolean {
  return writeFd(fd, eventfdOne) === 8;
}

/** Reads and clears an eventfd's counter (non-blocking fds return 0 when empty). */
export function drainEventfd(fd: number): number {
  return readFd(fd, eventfdValue) === 8 ? Number(new DataView(eventfdValue.buffer).getBigUint64(0, true)) : 0;
}
