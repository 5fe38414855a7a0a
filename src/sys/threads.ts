/**
 * The calling thread and process: their kernel ids (a vCPU thread reports its tid so the main
 * thread can signal it), and sched_yield for polling loops.
 */
import { libc } from './ffi.js';

const cGettid = libc.func('int gettid(void)') as () => number;
const cGetpid = libc.func('int getpid(void)') as () => number;
const cSchedYield = libc.func('int sched_yield(void)') as () => number;

export function gettid(): number {
  return cGettid();
}

export function getpid(): number {
  return cGetpid();
}

/** sched_yield(2): lets another runnable thread have this CPU (a polling loop's courtesy on a busy host). */
export function schedYield(): void {
  cSchedYield();
}
