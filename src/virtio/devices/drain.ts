/**
 * The loop every request-driven device runs when its queue is kicked:
 * suppress further kicks, serve every available chain, then re-enable and
 * re-check (virtio 1.2 §2.7.10) so a buffer added in between is not missed,
 * and interrupt the driver once per batch if it wants one.
 *
 * A wake-up does a bounded amount of work: once WAKEUP_BYTE_BUDGET bytes or a
 * queue's worth of chains are served, the device asks its data-plane loop to
 * call it again (DataPlaneHost.resume) and returns, so the loop sees a reset
 * or another queue's kick in between however much the guest asks for.
 */
import type { DescriptorChain } from '../descriptor-chain.js';
import { QueueError, type SplitQueue } from '../queue.js';
import type { VirtioInterrupt } from '../virtio-device.js';

/** Bytes moved between guest buffers and the host per wake-up before the epoll loop gets a turn. */
export const WAKEUP_BYTE_BUDGET = 1 << 20;

/** A malformed request (e.g. a chain too short for its header) completes with nothing written; the queue goes on. */
function serveGuarded(chain: DescriptorChain, serve: (chain: DescriptorChain) => number): number {
  try {
    return serve(chain);
  } catch (error) {
    if (error instanceof QueueError && !error.fatal) return 0;
    throw error;
  }
}

/**
 * serve returns the number of bytes written to the chain's writable buffers (what the budget
 * counts). `resume` asks the data-plane loop to call the device again for this queue.
 */
export function drainQueue(
  queue: SplitQueue,
  interrupt: VirtioInterrupt,
  queueIndex: number,
  serve: (chain: DescriptorChain) => number,
  resume: () => void,
): void {
  let served = 0;
  let bytes = 0;
  do {
    queue.disableNotifications();
    for (let chain = queue.pop(); chain; chain = queue.pop()) {
      const used = chain.error ? 0 : serveGuarded(chain, serve);
      queue.addUsed(chain.head, used);
      served++;
      bytes += used;
      if ((bytes >= WAKEUP_BYTE_BUDGET || served >= queue.size) && queue.pendingCount > 0) {
        // Notifications stay off: the loop comes back for the rest after its other events.
        resume();
        if (queue.needsNotification()) interrupt.signalUsed(queueIndex);
        return;
      }
    }
  } while (queue.enableNotifications());
  if (served > 0 && queue.needsNotification()) interrupt.signalUsed(queueIndex);
}
