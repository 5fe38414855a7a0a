/**
 * The loop every request-driven device runs when its queue is kicked:
 * suppress further kicks, serve every available chain, then re-enable and
 * re-check (virtio 1.2 §2.7.10) so a buffer added in between is not missed,
 * and interrupt the driver once per batch if it wants one.
 */
import type { DescriptorChain } from '../descriptor-chain.js';
import type { SplitQueue } from '../queue.js';
import type { VirtioInterrupt } from '../virtio-device.js';

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
      queue.addUsed(chain.head, chain.error ? 0 : serve(chain));
      served++;
    }
  } while (queue.enableNotifications());
  if (served > 0 && queue.needsNotification()) interrupt.signalUsed(queueIndex);
}
