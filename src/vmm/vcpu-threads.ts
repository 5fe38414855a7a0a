/**
 * Spawning vCPU threads. A worker needs tens of milliseconds to boot Node and
 * load koffi, so a program may spawn them before it has even loaded the VMM
 * (the CLI does so right after parsing flags); Machine.create takes them.
 * This module imports nothing heavy on purpose.
 */
import { Worker } from 'node:worker_threads';
import type { VcpuWorkerData } from './vcpu-protocol.js';

export interface VcpuThreads {
  readonly workers: readonly Worker[];
  /** Int32Array control words shared with every thread (CONTROL_*). */
  readonly control: SharedArrayBuffer;
}

const CONTROL_WORDS = 4;
let prewarmed: VcpuThreads | undefined;

export function spawnVcpuThreads(count: number): VcpuThreads {
  const control = new SharedArrayBuffer(CONTROL_WORDS * 4);
  const url = new URL('./vcpu-worker.js', import.meta.url);
  const workers = Array.from({ length: count }, (_, index) => {
    const data: VcpuWorkerData = { index, control };
    return new Worker(url, { workerData: data });
  });
  return { workers, control };
}

/** Starts `count` vCPU threads now, for the next Machine.create with that many vCPUs. */
export function prewarmVcpuThreads(count: number): void {
  releasePrewarmed();
  prewarmed = spawnVcpuThreads(count);
  // An idle prewarmed thread must not keep the process alive.
  for (const worker of prewarmed.workers) worker.unref();
}

/** The prewarmed threads if there are exactly `count`, else fresh ones. */
export function takeVcpuThreads(count: number): VcpuThreads {
  if (prewarmed && prewarmed.workers.length === count) {
    const threads = prewarmed;
    prewarmed = undefined;
    for (const worker of threads.workers) worker.ref();
    return threads;
  }
  releasePrewarmed();
  return spawnVcpuThreads(count);
}

function releasePrewarmed(): void {
  for (const worker of prewarmed?.workers ?? []) void worker.terminate();
  prewarmed = undefined;
}
