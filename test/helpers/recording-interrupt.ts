/**
 * The interrupt a device gets in activate(), for beds that run a device in the test's own
 * thread: instead of discarding signals, it records each one, so a test can assert when the
 * device interrupted the driver (per queue) and when it did not.
 */
import type { VirtioInterrupt } from '../../src/virtio/virtio-device.js';

/** One signal: a used-buffer notification for a queue, or a configuration change. */
export type RecordedSignal = { readonly kind: 'used'; readonly queue: number } | { readonly kind: 'config' };

export class RecordingInterrupt implements VirtioInterrupt {
  /** Every signal since construction (or clear), in order. */
  readonly signals: RecordedSignal[] = [];
  private taken = 0;

  /** `onSignal` sees each signal as it is raised (e.g. to note the used index at that moment). */
  constructor(private readonly onSignal?: (signal: RecordedSignal) => void) {}

  signalUsed(queueIndex: number): void {
    this.record({ kind: 'used', queue: queueIndex });
  }

  signalConfigChange(): void {
    this.record({ kind: 'config' });
  }

  private record(signal: RecordedSignal): void {
    this.signals.push(signal);
    this.onSignal?.(signal);
  }

  /** Used-buffer notifications for `queueIndex` (every queue when omitted). */
  used(queueIndex?: number): number {
    return this.signals.filter((s) => s.kind === 'used' && (queueIndex === undefined || s.queue === queueIndex)).length;
  }

  get configChanges(): number {
    return this.signals.filter((s) => s.kind === 'config').length;
  }

  /** The signals since the previous take (or clear): what one step of a test caused. */
  take(): RecordedSignal[] {
    const since = this.signals.slice(this.taken);
    this.taken = this.signals.length;
    return since;
  }

  /** Used-buffer notifications for `queueIndex` since the previous take; a shorthand for counting take(). */
  takeUsed(queueIndex: number): number {
    return this.take().filter((s) => s.kind === 'used' && s.queue === queueIndex).length;
  }

  clear(): void {
    this.signals.length = 0;
    this.taken = 0;
  }
}
