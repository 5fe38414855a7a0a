/**
 * epoll(7): the event loops of the data-plane threads (and the tests' harnesses) wait here on
 * eventfds and other fds, each registered with a 32-bit token that comes back with its events.
 */
import { check, libc, orErrno } from './ffi.js';

const cEpollCreate1 = libc.func('int epoll_create1(int flags)') as (flags: number) => number;
const cEpollCtl = libc.func('int epoll_ctl(int epfd, int op, int fd, void *event)') as (
  epfd: number,
  op: number,
  fd: number,
  event: Uint8Array | null,
) => number;
const cEpollWait = libc.func('int epoll_wait(int epfd, void *events, int maxevents, int timeout)') as (
  epfd: number,
  events: Uint8Array,
  max: number,
  timeout: number,
) => number;

export const EPOLL_CLOEXEC = 0o2000000;
export const EPOLL_CTL_ADD = 1;
export const EPOLL_CTL_DEL = 2;
export const EPOLLIN = 0x001;
export const EPOLLOUT = 0x004;
export const EPOLLERR = 0x008;
export const EPOLLHUP = 0x010;
/** struct epoll_event is packed on x86-64: u32 events, u64 data. */
export const EPOLL_EVENT_SIZE = 12;

export function epollCreate(): number {
  return check('epoll_create1', cEpollCreate1(EPOLL_CLOEXEC));
}

/** Watches fd for events; `token` comes back in the event's data field. */
export function epollAdd(epfd: number, fd: number, events: number, token: number): void {
  const event = new Uint8Array(EPOLL_EVENT_SIZE);
  const v = new DataView(event.buffer);
  v.setUint32(0, events, true);
  v.setUint32(4, token, true);
  check('epoll_ctl ADD', cEpollCtl(epfd, EPOLL_CTL_ADD, fd, event));
}

export function epollRemove(epfd: number, fd: number): void {
  check('epoll_ctl DEL', cEpollCtl(epfd, EPOLL_CTL_DEL, fd, new Uint8Array(EPOLL_EVENT_SIZE)));
}

/** Blocks (timeout -1) until events; fills `events` (EPOLL_EVENT_SIZE each) and returns their count, or -errno. */
export function epollWait(epfd: number, events: Uint8Array, timeoutMs: number): number {
  return orErrno(cEpollWait(epfd, events, Math.floor(events.length / EPOLL_EVENT_SIZE), timeoutMs));
}
