/**
 * virtio-rng (virtio 1.2 §5.4): one request queue whose device-writable
 * buffers are filled with host entropy (Web Crypto's getRandomValues, backed
 * by the kernel's CSPRNG) directly in guest memory.
 */
import { webcrypto } from 'node:crypto';
import { VIRTIO_ID_RNG } from '../virtio-constants.js';
import { defineVirtioDevice, type ActivationContext, type VirtioDevice } from '../virtio-device.js';
import { DeviceCounters } from '../device-counters.js';
import { drainQueue } from './drain.js';
import type { DescriptorChain } from '../descriptor-chain.js';

export const RNG_QUEUE_SIZE = 256;
/** getRandomValues refuses more than this per call. */
const MAX_RANDOM_CHUNK = 65536;
/**
 * Entropy per request at most: the used length tells the driver how much it got (5.4.6), and a
 * chain whose descriptors all point at one buffer may ask for up to 2^32 - 1 bytes.
 */
export const RNG_MAX_BYTES_PER_REQUEST = 65536;

/** Requests served, and the entropy bytes they carried to the guest. */
export const RNG_COUNTERS = ['requests', 'bytes'] as const;
export type RngCounter = (typeof RNG_COUNTERS)[number];

export interface RngOptions {
  /** Shared counters (see DeviceCounters); the thread that built the options reads them. */
  readonly counters?: SharedArrayBuffer;
}

export class VirtioRng implements VirtioDevice {
  private context: ActivationContext | undefined;
  readonly counters: DeviceCounters<RngCounter>;

  constructor(options: RngOptions = {}) {
    this.counters = new DeviceCounters(RNG_COUNTERS, options.counters);
  }

  activate(context: ActivationContext): void {
    this.context = context;
  }

  queueNotified(queueIndex: number): void {
    const context = this.context;
    const queue = context?.queues[queueIndex];
    if (!context || !queue) return;
    const serve = (chain: DescriptorChain): number => {
      let written = 0;
      for (const view of chain.writableViews(context.memory)) {
        const length = Math.min(view.length, RNG_MAX_BYTES_PER_REQUEST - written);
        for (let at = 0; at < length; at += MAX_RANDOM_CHUNK) {
          webcrypto.getRandomValues(view.subarray(at, Math.min(at + MAX_RANDOM_CHUNK, length)));
        }
        written += length;
        if (written === RNG_MAX_BYTES_PER_REQUEST) break;
      }
      this.counters.add('requests');
      this.counters.add('bytes', written);
      return written;
    };
    drainQueue(queue, context.interrupt, queueIndex, serve, () => context.host.resume(queueIndex));
  }

  reset(): void {
    this.context = undefined;
  }
}

/** One request queue, no device features, no configuration space. */
export const virtioRng = defineVirtioDevice<RngOptions>({
  module: import.meta.url,
  exportName: 'virtioRng',
  describe: () => ({ deviceType: VIRTIO_ID_RNG, queueMaxSizes: [RNG_QUEUE_SIZE], features: 0n, configSpace: new Uint8Array(0) }),
  create: (options) => new VirtioRng(options),
});

