/**
 * The poll loop of one virtio-blk instance: what a kick or a batch of
 * completions sets off. It serves the kicked queues (pops chains while there
 * is a free slot and room in the engine, and hands each to the device's
 * request dispatch), submits, reaps, and goes round again until nothing moves
 * (at most MAX_ROUNDS per wake-up); then each touched queue gets at most one
 * interrupt, as EVENT_IDX or NO_INTERRUPT asks.
 *
 * Requests are handed to the kernel every SUBMIT_BATCH, not all at the end, and
 * what those submits completed (page-cache hits) is announced right away, so
 * the driver refills while the rest are served instead of after the whole
 * queue depth.
 *
 * After a burst the thread watches the avail rings until `pollMicroseconds`
 * pass without work (at most POLL_MAX_US in all), notifications still off, so a
 * driver that answers completions with new requests at once needs no kick
 * (each kick and wake-up costs tens of µs on a nested host); while requests
 * are in flight it keeps watching for their completions up to POLL_MAX_US, so
 * a 1 MiB O_DIRECT request at queue depth 1 is answered without a wake-up of
 * its own.
 */
import type { CompletionHandler } from '../../../sys/io-uring.js';
import { schedYield } from '../../../sys/threads.js';
import { DescriptorChain } from '../../descriptor-chain.js';
import type { BlkActive } from './active.js';

/** Rounds of serve/submit/reap per wake-up before the guest hears of what is done. */
const MAX_ROUNDS = 16;
/** Longest a poll window lasts while there is work, before the epoll loop gets a turn. */
const POLL_MAX_US = 1000;
/** Idle spins of the poll loop per clock reading. */
const POLL_CLOCK_EVERY = 8;
/** Operations queued before they are submitted while a queue is being drained. */
const SUBMIT_BATCH = 8;

/** What the loop hands work to: the device's request dispatch. */
export interface BlkRequestHandler {
  /** Parses a popped chain and starts its request (or answers it at once). */
  startRequest(active: BlkActive, q: number, chain: DescriptorChain): void;
  /** What each engine completion goes to. */
  readonly onCompletion: CompletionHandler;
}

export class PollLoop {
  /** Refilled by every pop: a request is parsed and started before the next one is popped. */
  private readonly chain = new DescriptorChain();
  private readonly onCompletion: CompletionHandler;

  constructor(
    private readonly requests: BlkRequestHandler,
    /** The queues this instance serves (its data-plane thread's share). */
    private readonly served: readonly number[],
    private readonly pollMicroseconds: number,
  ) {
    this.onCompletion = requests.onCompletion;
  }

  /** Serves kicked queues, submits, reaps, until nothing moves; interrupts once per queue; then polls a while. */
  run(active: BlkActive): void {
    this.runOnce(active);
    if (this.pollMicroseconds > 0 && active.live) {
      this.poll(active);
      this.runOnce(active);
    }
  }

  private runOnce(active: BlkActive): void {
    const { needsService, engine } = active;
    for (let round = 0; round < MAX_ROUNDS && active.live; round++) {
      for (let i = 0; i < this.served.length && active.live; i++) {
        const q = this.served[i]!;
        if (needsService[q] && active.hasCapacity()) {
          needsService[q] = false;
          this.serve(active, q);
        }
      }
      if (!active.live) return;
      engine.submit();
      if (engine.reap(this.onCompletion) === 0 && engine.pending === 0) break;
    }
    if (active.live) this.finishQueued(active);
    this.notify(active);
  }

  /**
   * Out of rounds, operations queued by the last reap (the rest of a short transfer) must not
   * wait for the next kick: io_uring gets them now and its eventfd brings their completions;
   * the synchronous engine, which has no eventfd, runs them to the end here.
   */
  private finishQueued(active: BlkActive): void {
    const engine = active.engine;
    if (engine.eventFd !== undefined) {
      engine.submit();
      return;
    }
    while (active.live && (engine.pending > 0 || engine.ready > 0)) {
      engine.submit();
      engine.reap(this.onCompletion);
    }
  }

  private serve(active: BlkActive, q: number, keepNotificationsOff = false): void {
    const queue = active.queues[q]!;
    for (;;) {
      queue.disableNotifications();
      for (;;) {
        if (!active.hasCapacity()) {
          // Kicks stay off; completions bring this queue back.
          active.needsService[q] = true;
          return;
        }
        const chain = this.chain;
        if (!queue.popInto(chain)) break;
        this.requests.startRequest(active, q, chain);
        if (!active.live) return;
        // Hand the kernel a few at a time: the disk starts on the first while the rest are parsed,
        // and completions stop arriving in lockstep batches of the whole queue depth. Those
        // already done (page-cache hits complete inside the submit) are announced at once, so the
        // driver refills while this thread goes on with the rest.
        if (active.engine.pending >= SUBMIT_BATCH) this.submitAndAnswer(active);
      }
      if (keepNotificationsOff) return;
      if (!queue.enableNotifications()) return;
    }
  }

  /**
   * After answering, watch the avail rings before sleeping: a driver that answers completions
   * with new requests then finds notifications still off and needs no kick, and the device no
   * wake-up (QEMU's iothreads poll the same way). Completions are answered as they arrive
   * meanwhile. Polling stops after `pollMicroseconds` without progress (I/O in flight counts as
   * progress to come), or after POLL_MAX_US in all so the epoll loop (resets, other fds) gets
   * its turn.
   */
  private poll(active: BlkActive): void {
    const queues = active.queues;
    const start = performance.now();
    let idleDeadline = start + this.pollMicroseconds / 1000;
    const hardDeadline = start + POLL_MAX_US / 1000;
    for (let spins = 0; active.live; spins++) {
      let polled = false;
      for (let q = 0; q < queues.length && active.live; q++) {
        const queue = queues[q];
        if (queue && active.hasCapacity() && queue.pendingCount > 0) {
          polled = true;
          this.serve(active, q, true);
        }
      }
      // Completions of I/O in flight are posted while this thread spins (io_uring's task work runs
      // when the kernel interrupts it), so they are answered here too instead of after the window.
      if (active.live && active.engine.ready > 0) polled = true;
      if (polled && active.live) {
        this.submitAndAnswer(active);
        const now = performance.now();
        if (now >= hardDeadline) break;
        idleDeadline = now + this.pollMicroseconds / 1000;
      } else if (spins % POLL_CLOCK_EVERY === 0) {
        // Reading the clock costs more than a look at the rings: only every few spins. The driver
        // may be waiting for this very CPU (a loaded host): give it the chance to run.
        // While requests are in flight their completions are progress to come: wait for them here
        // (up to POLL_MAX_US in all) rather than pay a wake-up for each.
        if (performance.now() >= (active.opsInFlight > 0 ? hardDeadline : idleDeadline)) break;
        schedYield();
      }
    }
    // Back to sleep: the caller's next pass turns notifications on again and re-checks.
    queues.forEach((queue, q) => (active.needsService[q] = queue !== undefined));
  }

  private submitAndAnswer(active: BlkActive): void {
    const engine = active.engine;
    engine.submit();
    engine.reap(this.onCompletion);
    // Also requests answered without I/O (errors, GET_ID, a read-only flush): their queues are touched too.
    this.notify(active);
  }

  /** At most one interrupt per queue with newly used entries, if the driver wants one. */
  private notify(active: BlkActive): void {
    if (!active.live) return;
    const { touched, queues, interrupt } = active;
    for (let q = 0; q < touched.length; q++) {
      if (!touched[q]) continue;
      touched[q] = false;
      if (queues[q]!.needsNotification()) interrupt.signalUsed(q);
    }
  }
}
