/**
 * How a benchmark driver waits for its interrupt, modelled on a KVM vCPU that halts.
 *
 * A guest driver with nothing left to do halts its vCPU; KVM then polls for a pending interrupt
 * for up to a window before it puts the vCPU thread to sleep (halt polling), and adapts that
 * window: it starts at 0, grows (10 µs, then doubling) after a halt that slept but ended within
 * the host's limit, and shrinks (halving) after one that outlasted it. The limit and factors are
 * the kvm module's parameters (halt_poll_ns, 200 µs by default on x86). A completion that comes
 * within the window costs the guest no thread wake-up; the drivers here wait the same way, so
 * the benchmarks charge the device with the wake-ups a KVM guest pays, not more
 * (`--driver-wait sleep` keeps the plain sleep for comparison). KVM also stops polling when
 * another task wants the CPU; the poll here yields the CPU every 10 µs instead.
 */
import { readFileSync } from 'node:fs';
import { schedYield } from '../src/sys/threads.js';
import type { VirtioMmioHarness } from '../test/helpers/virtio-harness.js';

export type DriverWait = 'halt-poll' | 'sleep';

export function parseDriverWait(text: string | undefined): DriverWait {
  const wait = text ?? 'halt-poll';
  if (wait !== 'halt-poll' && wait !== 'sleep') throw new Error(`--driver-wait "${wait}" is not halt-poll or sleep`);
  return wait;
}

interface HaltPollParameters {
  readonly maxNs: number;
  readonly growStartNs: number;
  readonly grow: number;
  readonly shrink: number;
}

/** KVM's x86 defaults (virt/kvm/kvm_main.c, arch/x86/include/asm/kvm_host.h). */
const KVM_DEFAULTS: HaltPollParameters = { maxNs: 200_000, growStartNs: 10_000, grow: 2, shrink: 2 };

function kvmParameter(name: string, fallback: number): number {
  try {
    const value = Number(readFileSync(`/sys/module/kvm/parameters/${name}`, 'utf8').trim());
    return Number.isFinite(value) ? value : fallback;
  } catch {
    return fallback; // kvm not loaded: KVM's defaults
  }
}

/** The host's halt-polling parameters, or KVM's defaults where the kvm module is not loaded. */
export function hostHaltPollParameters(): HaltPollParameters {
  return {
    maxNs: kvmParameter('halt_poll_ns', KVM_DEFAULTS.maxNs),
    growStartNs: kvmParameter('halt_poll_ns_grow_start', KVM_DEFAULTS.growStartNs),
    grow: kvmParameter('halt_poll_ns_grow', KVM_DEFAULTS.grow),
    shrink: kvmParameter('halt_poll_ns_shrink', KVM_DEFAULTS.shrink),
  };
}

/** A guest's interrupt line, as the driver sees it. */
export interface InterruptLine {
  /** An interrupt is pending (raised and not yet acknowledged). */
  pending(): boolean;
  /** Sleeps until an interrupt comes (at most timeoutMs; at once when one is pending) and acknowledges it. */
  wait(timeoutMs: number): void;
  /** Acknowledges what is pending, without waiting. */
  acknowledge(): void;
}

/** How often a poll yields the CPU: 10 µs. */
const YIELD_EVERY_MS = 0.01;

/** Looks at the line this many times per clock reading while polling. */
const CHECKS_PER_CLOCK = 16;

/** One halting vCPU's adaptive poll window. */
export class HaltPoller {
  private windowNs = 0;
  /** The last halt ended on an interrupt seen by polling, not acknowledged yet. */
  private unacknowledged = false;

  constructor(
    private readonly wait: DriverWait,
    private readonly parameters: HaltPollParameters = hostHaltPollParameters(),
    /** Milliseconds, as performance.now(); tests give their own. */
    private readonly now: () => number = () => performance.now(),
  ) {}

  get windowMicroseconds(): number {
    return this.windowNs / 1000;
  }

  /**
   * Waits until `ready()`, as a guest that halts until its interrupt: polls `line.pending()` (what
   * KVM checks while it polls: not the rings, which the device keeps writing) for the current
   * window, then sleeps in `line.wait` until `ready()` holds or `timeoutMs` passes.
   *
   * An interrupt caught by polling is acknowledged at the start of the next halt, after the
   * driver's work, not before it. With MSI-X a KVM guest reads no device register for an
   * interrupt, and KVM consumes the irqfd in the signalling (device) thread; the guest still
   * enters its handler and ends it with an EOI (native speed on a host with APICv). The harness's
   * line needs a register read and write and an eventfd drain by the driver (`pending()` reads
   * its InterruptStatus), ~2.5 µs here that would otherwise sit between every completion and the
   * next request. Acknowledging before looking at `ready()` loses nothing: the device publishes
   * used entries before it raises the line, and a halt that finds nothing sleeps until the next
   * raise.
   */
  halt(ready: () => boolean, line: InterruptLine, timeoutMs: number): boolean {
    // Owed from the last halt, or raised for an entry the driver found without halting.
    if (this.unacknowledged || line.pending()) {
      this.unacknowledged = false;
      line.acknowledge();
    }
    if (ready()) return true;
    const started = this.now();
    if (this.wait === 'halt-poll' && this.windowNs > 0) {
      const until = started + this.windowNs / 1e6;
      while (this.poll(line, until)) {
        if (ready()) {
          this.unacknowledged = true;
          return true;
        }
        // An interrupt for something else: the guest takes it and halts again, polling the rest of the window.
        line.acknowledge();
        if (ready()) return true;
      }
    }
    const deadline = started + timeoutMs;
    let slept = false;
    while (!ready()) {
      const left = deadline - this.now();
      if (left <= 0) return false;
      line.wait(Math.ceil(left));
      slept = true;
    }
    if (slept && this.wait === 'halt-poll') this.adapt((this.now() - started) * 1e6);
    return true;
  }

  private poll(line: InterruptLine, until: number): boolean {
    let nextYield = this.now() + YIELD_EVERY_MS;
    for (let checks = 1; ; checks++) {
      if (line.pending()) return true;
      if (checks % CHECKS_PER_CLOCK === 0) {
        const now = this.now();
        if (now >= until) return false;
        // KVM stops polling when another task wants this CPU; a yield now and then lets such a task
        // run (a yield costs ~0.6 µs here: not at every clock reading).
        if (now >= nextYield) {
          schedYield();
          nextYield = now + YIELD_EVERY_MS;
        }
      }
    }
  }

  /**
   * After a halt that polled its whole window and slept, `blockedNs` in all: grow if it ended
   * within the limit (a longer window would have caught it), shrink if it outlasted the limit.
   */
  private adapt(blockedNs: number): void {
    const { maxNs, growStartNs, grow, shrink } = this.parameters;
    if (blockedNs < maxNs) {
      if (grow === 0) return; // KVM's halt_poll_ns_grow=0: the window stays as it is
      this.windowNs = Math.min(maxNs, Math.max(growStartNs, this.windowNs * grow));
    } else {
      const shrunk = shrink === 0 ? 0 : this.windowNs / shrink;
      this.windowNs = shrunk < growStartNs ? 0 : shrunk;
    }
  }
}

/** The harness's interrupt line: pending while InterruptStatus has bits set (MMIO sets them before it fires). */
export function interruptLine(h: VirtioMmioHarness): InterruptLine {
  return {
    pending: () => h.state.isr !== 0,
    wait: (timeoutMs) => void h.waitForInterrupt(timeoutMs),
    acknowledge: () => void h.takeInterrupts(),
  };
}
