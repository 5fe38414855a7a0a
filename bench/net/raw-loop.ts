/**
 * The raw TAP loops of bench/net, in a thread of their own like the device's data plane.
 *
 * Where a loop runs matters as much as what it does: the frames a receive round drains were
 * queued by the benchmark's main thread, and a reader on that same thread found them (and the
 * pages the kernel recycles between rounds) in its own CPU's caches. Measured here: the same
 * read(2) loop drained 64 KiB GSO frames at a median 89 Gbps on the main thread and 68 Gbps on
 * a second thread. The device's data plane is always a second thread, so the baseline is too.
 */
import { Worker, isMainThread, parentPort, workerData } from 'node:worker_threads';
import { readFd, writeFd } from '../../src/sys/fd.js';

export interface Rate {
  readonly frames: number;
  readonly seconds: number;
}

type Job =
  | { readonly kind: 'transmit'; readonly fd: number; readonly frame: Uint8Array; readonly count: number; readonly slots: number }
  | { readonly kind: 'receive'; readonly fd: number; readonly count: number; readonly bufferSize: number; readonly buffers: number };

/**
 * Writes `count` copies of `frame` from `slots` distinct buffers, or reads up to `count` frames
 * into `buffers` buffers in turn (the device's memory footprint, so neither side has the
 * advantage of one cache-hot buffer).
 */
function run(job: Job): Rate {
  if (job.kind === 'transmit') {
    const buffers = Array.from({ length: job.slots }, () => job.frame.slice());
    const started = performance.now();
    let sent = 0;
    for (let i = 0; i < job.count; i++) if (writeFd(job.fd, buffers[i % job.slots]!) === job.frame.length) sent++;
    return { frames: sent, seconds: (performance.now() - started) / 1000 };
  }
  const buffers = Array.from({ length: job.buffers }, () => new Uint8Array(job.bufferSize));
  const started = performance.now();
  let frames = 0;
  while (frames < job.count && readFd(job.fd, buffers[frames % buffers.length]!) > 0) frames++;
  return { frames, seconds: (performance.now() - started) / 1000 };
}

/** Marks the bench's own worker (any other worker importing this module installs nothing). */
const RAW_LOOP_WORKER = 'bench/net raw loop';

/** The main thread's handle: one worker for the whole benchmark, one job at a time. */
export class RawLoopThread {
  private readonly worker = new Worker(new URL(import.meta.url), { workerData: RAW_LOOP_WORKER });

  /** Runs one job; rejects if the worker fails, exits or sends something unreadable instead of answering. */
  async run(job: Job): Promise<Rate> {
    const worker = this.worker;
    const answer = new Promise<Rate>((resolve, reject) => {
      const settle = (): void => {
        worker.off('message', onMessage);
        worker.off('error', onError);
        worker.off('messageerror', onError);
        worker.off('exit', onExit);
      };
      const onMessage = (rate: Rate): void => {
        settle();
        resolve(rate);
      };
      const onError = (error: Error): void => {
        settle();
        reject(error);
      };
      const onExit = (code: number): void => {
        settle();
        reject(new Error(`the raw loop thread exited (code ${code})`));
      };
      worker.on('message', onMessage);
      worker.on('error', onError);
      worker.on('messageerror', onError);
      worker.on('exit', onExit);
    });
    worker.postMessage(job);
    return answer;
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

if (!isMainThread && workerData === RAW_LOOP_WORKER) parentPort!.on('message', (job: Job) => parentPort!.postMessage(run(job)));
