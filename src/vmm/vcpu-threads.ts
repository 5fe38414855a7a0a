/**
 * Spawning vCPU threads. A worker needs tens of milliseconds to boot Node and
 * load koffi, so a program may spawn them before it has even loaded the VMM
 * (the CLI does so right after parsing flags); Machine.create takes them.
 * Events that arrive before the Machine listens are kept, not lost.
 * This module imports nothing heavy on purpose.
 */
import { Worker } from 'node:worker_threads';
import type { VcpuMessage, VcpuWorkerData } from './vcpu-protocol.js';

export interface VcpuThreadEvents {
  message(message: VcpuMessage): void;
  error(error: Error): void;
  exit(): void;
}

type Event = { kind: 'message'; message: VcpuMessage } | { kind: 'error'; error: Error } | { kind: 'exit' };

export class VcpuThread {
  private backlog: Event[] = [];
  private listener: VcpuThreadEvents | undefined;
  /**
   * Resolves once the thread has finished loading (its first message) or ended.
   * Terminating a worker while it is still loading koffi's native module aborts
   * the whole process, so nothing terminates a thread before this.
   */
  readonly settled: Promise<void>;

  constructor(readonly worker: Worker) {
    let settle!: () => void;
    this.settled = new Promise((resolve) => (settle = resolve));
    worker.on('message', (message: VcpuMessage) => {
      settle();
      this.deliver({ kind: 'message', message });
    });
    worker.on('error', (error: Error) => {
      settle();
      this.deliver({ kind: 'error', error });
    });
    worker.on('exit', () => {
      settle();
      this.deliver({ kind: 'exit' });
    });
  }

  /** Ends a thread that never started running a vCPU (tracked, so an exiting process can wait for it). */
  terminate(): Promise<void> {
    // A prewarmed thread is unref'd; waiting on it must keep the process alive.
    this.worker.ref();
    const done = this.settled.then(() => this.worker.terminate()).then(() => undefined);
    pendingTerminations.add(done);
    void done.finally(() => pendingTerminations.delete(done));
    return done;
  }

  private deliver(event: Event): void {
    if (!this.listener) {
      this.backlog.push(event);
      return;
    }
    if (event.kind === 'message') this.listener.message(event.message);
    else if (event.kind === 'error') this.listener.error(event.error);
    else this.listener.exit();
  }

  /** Starts delivering events, the early ones first. */
  listen(listener: VcpuThreadEvents): void {
    this.listener = listener;
    const early = this.backlog;
    this.backlog = [];
    for (const event of early) this.deliver(event);
  }
}

export interface VcpuThreads {
  readonly threads: readonly VcpuThread[];
  /** Int32Array control words shared with every thread (CONTROL_*). */
  readonly control: SharedArrayBuffer;
}

const CONTROL_WORDS = 4;
const pendingTerminations = new Set<Promise<void>>();
let prewarmed: VcpuThreads | undefined;

export function spawnVcpuThreads(count: number): VcpuThreads {
  const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
  const url = new URL('./vcpu-worker.js', import.meta.url);
  const threads = Array.from({ length: count }, (_, index) => {
    const data: VcpuWorkerData = { index, control };
    return new VcpuThread(new Worker(url, { workerData: data }));
  });
  return { threads, control };
}

/** Starts `count` vCPU threads now, for the next Machine.create with that many vCPUs. */
export function prewarmVcpuThreads(count: number): void {
  void releaseVcpuThreads();
  prewarmed = spawnVcpuThreads(count);
  // An idle prewarmed thread must not keep the process alive.
  for (const thread of prewarmed.threads) thread.worker.unref();
}

/** The prewarmed threads if there are exactly `count`, else fresh ones. */
export function takeVcpuThreads(count: number): VcpuThreads {
  if (prewarmed && prewarmed.threads.length === count) {
    const taken = prewarmed;
    prewarmed = undefined;
    for (const thread of taken.threads) thread.worker.ref();
    return taken;
  }
  void releaseVcpuThreads();
  return spawnVcpuThreads(count);
}

/**
 * Ends prewarmed threads nobody took and waits for every thread being
 * terminated: await it before process.exit when no VM ran.
 */
export async function releaseVcpuThreads(): Promise<void> {
  const threads = prewarmed?.threads ?? [];
  prewarmed = undefined;
  threads.forEach((thread) => void thread.terminate());
  await Promise.all([...pendingTerminations]);
}
