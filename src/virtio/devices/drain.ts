/**
 * The loop every request-driven device runs when its queue is kicked:
 * suppress further kicks, serve every available chain, then re-enable and
 * re-check (virtio 1.2 §2.7.10) so a buffer added in between is not missed,
 * and interrupt the driver once per batch if it wants one.
 */
import type { DescriptorChain } from '../descriptor-chain.js';
import { QueueError, type SplitQueue } from '../queue.js';
import type { VirtioInterrupt } from '../virtio-device.js';

/** A malformed request (e.g. a chain too short for its header) completes with nothing written; the queue goes on. */
function serveGuarded(chain: DescriptorChain, serve: (chain: DescriptorChain) => number): number {
  try {
    return serve(chain);
  } catch (error) {
    if (error instanceof QueueError && !error.fatal) return 0;
    throw error;
  }
}

/** serve returns the number of bytes written to the chain's writable buffers. */
export function drainQueue(
  queue: SplitQueue,
  interrupt: VirtioInterrupt,
  queueIndex: number,
  serve: (chain: DescriptorChain) => number,
): void {
  let served = 0;
  do {
    queue.disableNotifications();
    for (let chain = queue.pop(); chain; chain = queue.pop()) {
      queue.addUsed(chain.head, chain.error ? 0 : serveGuarded(chain, serve));
      served++;
    }
  } while (queue.enableNotifications());
  if (served > 0 && queue.needsNotification()) interrupt.signalUsed(queueIndex);
}
