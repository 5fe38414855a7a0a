/**
 * Interrupt delivery for a virtio device, used by its data-plane thread and
 * by the vCPU threads (MSI-X unmask). With MSI-X enabled each queue signals
 * its vector's irqfd, or marks it pending while masked; otherwise the ISR
 * bit is set and the INTx/MMIO line's irqfd fires.
 */
import { signalEventfd } from '../sys/eventfd.js';
import type { VirtioInterrupt } from '../virtio/virtio-device.js';
import { VIRTIO_ISR_CONFIG, VIRTIO_ISR_QUEUE, VIRTIO_MSI_NO_VECTOR } from '../virtio/virtio-constants.js';
import type { VirtioTransportState } from './virtio-transport-state.js';

export interface InterruptFds {
  /** irqfd of the legacy line (MMIO interrupt or PCI INTx). */
  readonly lineFd: number;
  /** Level-triggered lines only: KVM signals it at the guest's EOI. */
  readonly resampleFd?: number;
  /** irqfd per MSI-X vector. */
  readonly vectorFds: readonly number[];
}

export class TransportInterrupt implements VirtioInterrupt {
  constructor(
    private readonly state: VirtioTransportState,
    private readonly fds: InterruptFds,
  ) {}

  signalUsed(queueIndex: number): void {
    if (this.state.msixEnabled) this.sendVector(this.state.queue(queueIndex).vector);
    else this.raiseLine(VIRTIO_ISR_QUEUE);
  }

  signalConfigChange(): void {
    this.state.bumpConfigGeneration();
    if (this.state.msixEnabled) this.sendVector(this.state.configVector);
    else this.raiseLine(VIRTIO_ISR_CONFIG);
  }

  private raiseLine(bits: number): void {
    this.state.raiseIsr(bits);
    signalEventfd(this.fds.lineFd);
  }

  /** At the guest's EOI of a level-triggered line: assert it again while work is pending. */
  resample(): void {
    if (this.state.isr !== 0 && !this.state.msixEnabled) signalEventfd(this.fds.lineFd);
  }

  sendVector(vector: number): void {
    if (vector === VIRTIO_MSI_NO_VECTOR || vector >= this.fds.vectorFds.length) return;
    if (this.state.msixMasked(vector)) {
      this.state.setMsixPending(vector, true);
      // Re-check: an unmask between the two reads must not strand the message.
      if (this.state.msixMasked(vector) || !this.state.setMsixPending(vector, false)) return;
    }
    signalEventfd(this.fds.vectorFds[vector]!);
  }

  /** After the driver unmasks a vector: deliver what became pending while masked. */
  deliverPending(vector: number): void {
    if (vector < this.fds.vectorFds.length && !this.state.msixMasked(vector) && this.state.setMsixPending(vector, false)) {
      signalEventfd(this.fds.vectorFds[vector]!);
    }
  }
}
