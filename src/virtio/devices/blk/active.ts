/**
 * What one virtio-blk instance has only while the driver has it active, from
 * activate() to reset(): the activation's guest memory, queues, interrupt and
 * host; the I/O engine built for it and the operations in flight on it; the
 * request limits the negotiated features set; the session's reset epoch; which
 * queues need serving and which have used entries to announce. One object, so
 * nothing of it can be reached before activation or after a reset: the device
 * holds `active: BlkActive | undefined` and hands it to the modules of the data
 * path (poll-loop.ts, transfer.ts, zero-ranges.ts).
 *
 * `live` turns false when the device is reset: a loop that was running when it
 * happened (a fatal request makes the host reset the device synchronously) sees
 * it and stops.
 */
import type { SplitQueue } from '../../queue.js';
import type { ActivationContext, DataPlaneHost, VirtioInterrupt } from '../../virtio-device.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import type { IoEngine } from './io-engine.js';
import { BLK_MAX_DWZ_SEGMENTS } from './options.js';
import type { BlkLimits } from './request.js';
import type { Slot, SlotArena } from './slot-arena.js';
import * as S from './spec.js';

export class BlkActive {
  readonly memory: GuestMemory;
  /** One entry per queue; undefined for queues the driver did not enable or this instance does not serve. */
  readonly queues: ReadonlyArray<SplitQueue | undefined>;
  readonly interrupt: VirtioInterrupt;
  readonly host: DataPlaneHost;
  /** The reset epoch of the driver's session (ActivationContext.resetEpoch). */
  readonly resetEpoch: number;
  /** False once the device was reset. */
  live = true;
  /** Engine operations submitted or queued and not completed. */
  opsInFlight = 0;
  /** Queues kicked, or left with chains when capacity ran out. */
  readonly needsService: boolean[];
  /** Queues with used entries not yet announced. */
  readonly touched: boolean[];

  constructor(
    /** The disk's name, for the log. */
    readonly name: string,
    context: ActivationContext,
    readonly engine: IoEngine,
    readonly limits: BlkLimits,
    readonly slots: SlotArena,
    queueCount: number,
  ) {
    this.memory = context.memory;
    this.queues = context.queues;
    this.interrupt = context.interrupt;
    this.host = context.host;
    this.resetEpoch = context.resetEpoch ?? 0;
    this.needsService = Array.from({ length: queueCount }, () => false);
    this.touched = Array.from({ length: queueCount }, () => false);
  }

  /** A free slot, and room in the engine for one request's largest fan-out (a discard's segments). */
  hasCapacity(): boolean {
    return this.slots.hasFree && this.opsInFlight + BLK_MAX_DWZ_SEGMENTS <= this.engine.capacity;
  }

  /** Writes a request's status byte and puts its head in the used ring (announced by the poll loop's notify). */
  answer(q: number, head: number, statusAddress: number, status: number, used: number): void {
    const queue = this.queues[q]!;
    queue.assertCurrent();
    this.memory.writeU8(statusAddress, status);
    queue.addUsed(head, used);
    this.touched[q] = true;
  }

  /** Marks a request failed (IOERR) and says why in the log. */
  fail(slot: Slot, why: string): void {
    slot.status = S.VIRTIO_BLK_S_IOERR;
    this.host.log('%s: %s at byte %d failed: %s', this.name, slot.op, slot.offset, why);
  }
}
