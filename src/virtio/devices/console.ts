/**
 * virtio-console (virtio 1.2 §5.3), single port: queue 0 receives host input
 * for the guest, queue 1 carries guest output to the host. Output is written
 * straight from guest buffers; input is read straight into them, and only
 * while the guest has posted receive buffers (the input fd is unwatched
 * otherwise, so nothing is read that could not be delivered).
 */
import type { DescriptorChain } from '../descriptor-chain.js';
import { readFd, writeFully } from '../../sys/fd.js';
import { bytesReadable } from '../../sys/ioctl.js';
import { VIRTIO_ID_CONSOLE } from '../virtio-constants.js';
import { defineVirtioDevice, type ActivationContext, type VirtioDevice } from '../virtio-device.js';
import { WAKEUP_BYTE_BUDGET } from './drain.js';

export const CONSOLE_RECEIVEQ = 0;
export const CONSOLE_TRANSMITQ = 1;
export const CONSOLE_QUEUE_SIZE = 256;
/** struct virtio_console_config: cols u16, rows u16, max_nr_ports u32, emerg_wr u32. */
export const CONSOLE_CONFIG_SIZE = 12;

export interface ConsoleOptions {
  /** Non-blocking fd the host's input arrives on (a pipe fed by the main thread). */
  readonly inputFd: number;
  readonly outputFd: number;
}

export class VirtioConsole implements VirtioDevice {
  private context: ActivationContext | undefined;
  private watchingInput = false;
  private inputEnded = false;
  private inReadableCallback = false;
  /** The output chain being written, when a wake-up's budget ran out in the middle of it. */
  private txChain: { readonly chain: DescriptorChain; readonly views: Uint8Array[]; view: number; offset: number } | undefined;

  constructor(private readonly options: ConsoleOptions) {}

  activate(context: ActivationContext): void {
    this.context = context;
    this.watchInput();
  }

  private watchInput(): void {
    if (this.watchingInput || this.inputEnded || !this.context?.queues[CONSOLE_RECEIVEQ]) return;
    this.watchingInput = true;
    this.context.host.watch(this.options.inputFd, () => {
      this.inReadableCallback = true;
      try {
        this.receive();
      } finally {
        this.inReadableCallback = false;
      }
    });
  }

  private unwatchInput(ended = false): void {
    if (ended) this.inputEnded = true;
    if (!this.watchingInput) return;
    this.watchingInput = false;
    this.context?.host.unwatch(this.options.inputFd);
  }

  queueNotified(queueIndex: number): void {
    if (queueIndex === CONSOLE_TRANSMITQ) this.transmit();
    // New receive buffers: start reading input again.
    else if (queueIndex === CONSOLE_RECEIVEQ) {
      this.watchInput();
      this.receive();
    }
  }

  /**
   * Writes output chains, at most WAKEUP_BYTE_BUDGET bytes per wake-up: one chain may name one
   * buffer thousands of times (up to 2^32 - 1 bytes), so a long one is finished over several
   * wake-ups and a reset in between drops the rest.
   */
  private transmit(): void {
    const context = this.context;
    const queue = context?.queues[CONSOLE_TRANSMITQ];
    if (!context || !queue) return;
    let budget = WAKEUP_BYTE_BUDGET;
    let served = 0;
    const announce = (): void => {
      if (served > 0 && queue.needsNotification()) context.interrupt.signalUsed(CONSOLE_TRANSMITQ);
    };
    do {
      queue.disableNotifications();
      for (;;) {
        if (!this.txChain) {
          const chain = queue.pop();
          if (!chain) break;
          this.txChain = { chain, views: chain.error ? [] : chain.readableViews(context.memory), view: 0, offset: 0 };
        }
        const tx = this.txChain;
        while (tx.view < tx.views.length && budget > 0) {
          const view = tx.views[tx.view]!;
          const piece = view.subarray(tx.offset, tx.offset + budget);
          // Waits while the console is full; a closed console does not stop the guest.
          writeFully(this.options.outputFd, piece);
          budget -= piece.length;
          tx.offset += piece.length;
          if (tx.offset === view.length) {
            tx.view++;
            tx.offset = 0;
          }
        }
        if (tx.view < tx.views.length) {
          // Out of budget mid-chain: the loop calls back after its other events (notifications stay off).
          context.host.resume(CONSOLE_TRANSMITQ);
          announce();
          return;
        }
        queue.addUsed(tx.chain.head, 0);
        this.txChain = undefined;
        served++;
        if ((budget <= 0 || served >= queue.size) && queue.pendingCount > 0) {
          context.host.resume(CONSOLE_TRANSMITQ);
          announce();
          return;
        }
      }
    } while (queue.enableNotifications());
    announce();
  }

  /** Moves waiting input into posted receive buffers. */
  private receive(): void {
    const context = this.context;
    const queue = context?.queues[CONSOLE_RECEIVEQ];
    if (!context || !queue) return;
    let delivered = 0;
    for (;;) {
      const waiting = bytesReadable(this.options.inputFd);
      if (waiting <= 0) {
        // Readable with nothing to read is end of input (or an error): stop watching for good.
        if (waiting < 0 || this.readableWithoutData()) this.unwatchInput(true);
        break;
      }
      const chain = queue.pop();
      if (!chain) {
        // No receive buffer: leave the input where it is until the driver posts more.
        if (queue.enableNotifications()) continue;
        this.unwatchInput();
        break;
      }
      queue.addUsed(chain.head, chain.error ? 0 : this.readInto(chain, context));
      delivered++;
    }
    if (delivered > 0 && queue.needsNotification()) context.interrupt.signalUsed(CONSOLE_RECEIVEQ);
  }

  private readableWithoutData(): boolean {
    return this.inReadableCallback;
  }

  private readInto(chain: DescriptorChain, context: ActivationContext): number {
    let total = 0;
    for (const view of chain.writableViews(context.memory)) {
      const n = readFd(this.options.inputFd, view);
      if (n <= 0) break;
      total += n;
      if (n < view.length) break;
    }
    return total;
  }

  reset(): void {
    this.unwatchInput();
    this.txChain = undefined;
    this.context = undefined;
  }
}

/** One port (no MULTIPORT, no SIZE): receiveq and transmitq, and a configuration space the driver ignores. */
export const virtioConsole = defineVirtioDevice<ConsoleOptions>({
  module: import.meta.url,
  exportName: 'virtioConsole',
  describe: () => {
    const configSpace = new Uint8Array(CONSOLE_CONFIG_SIZE);
    new DataView(configSpace.buffer).setUint32(4, 1, true); // max_nr_ports (meaningful with MULTIPORT only)
    return { deviceType: VIRTIO_ID_CONSOLE, queueMaxSizes: [CONSOLE_QUEUE_SIZE, CONSOLE_QUEUE_SIZE], features: 0n, configSpace };
  },
  create: (options) => new VirtioConsole(options),
});
