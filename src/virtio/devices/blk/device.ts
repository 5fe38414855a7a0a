/**
 * virtio-blk (virtio 1.2 §5.2) over a raw image or block device: the device
 * (features, configuration, activation, reset) and its request dispatch.
 *
 * Each queue is served by its own data-plane thread (up to
 * BLK_MAX_DATA_PLANE_THREADS per disk, then threads take several queues); each
 * thread has its own instance of this class, with its own engine, slots and
 * flush ordering (a FLUSH covers the writes completed before it, and those on
 * other queues were completed by their own threads). An instance's jobs:
 *   - poll-loop.ts: a kick or a batch of completions → serve, submit, reap,
 *     interrupt, then poll the rings a while;
 *   - here: a popped chain becomes a request (request.ts) that is answered at
 *     once (errors, GET_ID, a read-only FLUSH, a FLUSH of a session whose
 *     writeback failed) or takes a slot (slot-arena.ts) and goes to its job:
 *     transfer.ts (reads and writes), zero-ranges.ts (discard, write-zeroes),
 *     or FlushOrder then fdatasync (a FLUSH starts only after every write
 *     submitted before it has completed). Each engine completion comes back
 *     here; a request whose operations are all over is answered;
 *   - active.ts: everything that exists only between activate and reset.
 * The I/O runs on an IoEngine: io_uring, with as many operations in flight as
 * the queues hold, or synchronous calls where the host has no io_uring; its
 * completions arrive on an eventfd watched by the same epoll loop as the kicks.
 *
 * A reset waits for every operation in flight before returning, so no
 * buffer of the old driver is touched once the driver sees status 0.
 */
import type { CompletionHandler } from '../../../sys/io-uring.js';
import { IOV_MAX } from '../../../sys/iovec.js';
import type { DescriptorChain } from '../../descriptor-chain.js';
import { featureBit } from '../../virtio-constants.js';
import { defineVirtioDevice, type ActivationContext, type DataPlaneShare, type VirtioDevice } from '../../virtio-device.js';
import { BlkActive } from './active.js';
import { describeBlk, describeVirtioBlk } from './config-space.js';
import { FlushOrder } from './flush-order.js';
import { createIoEngine, type IoEngine } from './io-engine.js';
import {
  BLK_COUNTERS,
  BLK_DEFAULT_POLL_US,
  BLK_MAX_DWZ_SEGMENTS,
  BLK_MAX_DWZ_SECTORS,
  type BlkCounter,
  type BlkOptions,
} from './options.js';
import { DeviceCounters } from '../../device-counters.js';
import { BlkSharedState } from './disk-shared.js';
import { PollLoop } from './poll-loop.js';
import { parseBlkRequest } from './request.js';
import { SlotArena, type Slot, type SlotOp } from './slot-arena.js';
import { Transfers } from './transfer.js';
import { ZeroRanges } from './zero-ranges.js';
import * as S from './spec.js';

export { MAX_BOUNCE_BYTES } from './transfer.js';

const ENGINE_MAX_ENTRIES = 4096;

/** What reset's drain hands completions of the old session to: they are only counted. */
const ignoreCompletion: CompletionHandler = () => {};

export class VirtioBlk implements VirtioDevice {
  /** Each queue's size, from the description the transport was built from. */
  private readonly queueMaxSizes: readonly number[];
  private readonly capacitySectors: number;
  private readonly serialBytes: Uint8Array;
  /** Shared with the disk's other data-plane threads. */
  private readonly shared: BlkSharedState;
  /** The queues this instance serves (its data-plane thread's share). */
  private readonly served: readonly number[];

  /** Present from activate() to reset(). */
  private active: BlkActive | undefined;
  /** Allocated at the first activation, kept across resets. */
  private slots: SlotArena | undefined;
  private readonly flushOrder = new FlushOrder();
  private readonly transfers: Transfers;
  private readonly zeroRanges: ZeroRanges;
  private readonly loop: PollLoop;

  readonly counters: DeviceCounters<BlkCounter>;

  constructor(
    private readonly options: BlkOptions,
    /** This instance's thread and queues; without it, every queue and counter lane 0. */
    share?: DataPlaneShare,
    /** Where the I/O runs: by default io_uring or the synchronous engine as options.engine says. */
    private readonly createEngine: (entries: number, log: (format: string, ...args: unknown[]) => void) => IoEngine = (entries, log) =>
      createIoEngine(options.engine ?? 'auto', entries, log),
  ) {
    this.counters = new DeviceCounters(BLK_COUNTERS, options.counters, share?.thread ?? 0);
    // The same checks the main thread made when it described the device (queues, counter lanes).
    this.queueMaxSizes = describeVirtioBlk(options).queueMaxSizes;
    this.served = share?.queues ?? this.queueMaxSizes.map((_, q) => q);
    if (this.served.some((q) => !Number.isInteger(q) || q < 0 || q >= options.queues)) {
      throw new RangeError(`virtio-blk ${options.name}: queues ${this.served.join(',')} of ${options.queues}`);
    }
    this.capacitySectors = describeBlk(options).capacitySectors;
    this.serialBytes = new Uint8Array(S.VIRTIO_BLK_ID_BYTES);
    this.serialBytes.set(new TextEncoder().encode(options.serial).subarray(0, S.VIRTIO_BLK_ID_BYTES));
    this.shared = new BlkSharedState(options.shared);
    this.transfers = new Transfers(options, this.shared, this.flushOrder);
    this.zeroRanges = new ZeroRanges(options, this.flushOrder);
    this.loop = new PollLoop(this, this.served, options.pollMicroseconds ?? BLK_DEFAULT_POLL_US);
  }

  activate(context: ActivationContext): void {
    const has = (bit: number): boolean => (context.features & featureBit(bit)) !== 0n;
    const limits = {
      capacitySectors: this.capacitySectors,
      readOnly: this.options.readOnly,
      discard: has(S.VIRTIO_BLK_F_DISCARD),
      writeZeroes: has(S.VIRTIO_BLK_F_WRITE_ZEROES),
      maxDwzSegments: BLK_MAX_DWZ_SEGMENTS,
      maxDwzSectors: BLK_MAX_DWZ_SECTORS,
      maxPieces: IOV_MAX,
    };
    // Slots and their iovec arrays, once per instance (one slot per descriptor head of every queue it serves).
    const slots = (this.slots ??= new SlotArena(this.served.reduce((sum, q) => sum + this.queueMaxSizes[q]!, 0)));
    // At least room for one request's largest fan-out (hasCapacity), however small the queues.
    const entries = Math.min(Math.max(slots.slots.length, 2 * BLK_MAX_DWZ_SEGMENTS), ENGINE_MAX_ENTRIES);
    const engine = this.createEngine(entries, context.host.log);
    this.active = new BlkActive(this.options.name, context, engine, limits, slots, this.queueMaxSizes.length);
    if (engine.eventFd !== undefined) context.host.watch(engine.eventFd, () => this.completionsReady());
    context.host.log('%s: %d sectors, %s engine%s', this.options.name, this.capacitySectors, engine.kind, this.options.readOnly ? ', read-only' : '');
  }

  queueNotified(queueIndex: number): void {
    const active = this.active;
    if (!active || !active.queues[queueIndex]) return;
    active.needsService[queueIndex] = true;
    this.loop.run(active);
  }

  private completionsReady(): void {
    const active = this.active;
    if (!active) return;
    active.engine.acknowledge();
    this.loop.run(active);
  }

  /** Request dispatch: the poll loop hands over each popped chain (BlkRequestHandler). */
  startRequest(active: BlkActive, q: number, chain: DescriptorChain): void {
    const request = parseBlkRequest(active.memory, chain, active.limits);
    switch (request.op) {
      case 'unanswerable':
        // Nowhere to put a status: the driver cannot learn this request's fate, so the device needs a
        // reset (this thread stops serving; other queues' threads go on until the driver resets).
        active.host.failDevice(`${this.options.name}: malformed request (${request.reason})`);
        return;
      case 'answer':
        if (request.status !== S.VIRTIO_BLK_S_OK) active.host.log('%s: request refused: %s', this.options.name, request.reason);
        active.answer(q, chain.head, request.statusAddress, request.status, 1);
        this.countStatus(request.status);
        return;
      case 'get-id': {
        let written = 0;
        for (let i = 0; i < request.pieces.length; i += 2) {
          const length = request.pieces[i + 1]!;
          active.memory.write(request.pieces[i]!, this.serialBytes.subarray(written, written + length));
          written += length;
        }
        active.answer(q, chain.head, request.statusAddress, S.VIRTIO_BLK_S_OK, written + 1);
        this.counters.add('getIds');
        return;
      }
      case 'flush': {
        if (this.options.readOnly) {
          active.answer(q, chain.head, request.statusAddress, S.VIRTIO_BLK_S_OK, 1);
          this.counters.add('flushes');
          return;
        }
        if (this.shared.flushFailed(active.resetEpoch)) {
          // Pages whose writeback failed are clean again: no later fdatasync can vouch for them.
          active.answer(q, chain.head, request.statusAddress, S.VIRTIO_BLK_S_IOERR, 1);
          this.countStatus(S.VIRTIO_BLK_S_IOERR);
          return;
        }
        const slot = active.slots.take(q, chain.head, request.statusAddress, 'flush');
        slot.pending = 1;
        if (this.flushOrder.flushArrived(slot.index)) this.issueFlush(active, slot);
        return;
      }
      case 'read':
      case 'write':
        this.transfers.start(active, active.slots.take(q, chain.head, request.statusAddress, request.op), chain, request);
        return;
      case 'discard':
      case 'write-zeroes':
        this.zeroRanges.start(active, active.slots.take(q, chain.head, request.statusAddress, request.op), request);
        return;
    }
  }

  private countDone(op: SlotOp, length: number): void {
    const c = this.counters;
    if (op === 'read') {
      c.add('reads');
      c.add('readBytes', length);
    } else if (op === 'write') {
      c.add('writes');
      c.add('writeBytes', length);
    } else c.add(op === 'flush' ? 'flushes' : op === 'discard' ? 'discards' : 'writeZeroes');
  }

  private countStatus(status: number): void {
    if (status === S.VIRTIO_BLK_S_IOERR) this.counters.add('ioErrors');
    else if (status === S.VIRTIO_BLK_S_UNSUPP) this.counters.add('unsupported');
  }

  private issueFlush(active: BlkActive, slot: Slot): void {
    active.engine.fdatasync(this.options.fd, slot.index, 0);
    active.opsInFlight++;
  }

  /** Where each engine completion goes (BlkRequestHandler): its job decides whether the request goes on; then it is answered. */
  readonly onCompletion = (tag: number, sub: number, result: number): void => {
    const active = this.active;
    // A reset drains the old session's operations after dropping its state: they are only counted.
    if (!active) return;
    active.opsInFlight--;
    const slot = active.slots.slots[tag];
    if (!slot) return;
    switch (slot.op) {
      case 'read':
      case 'write':
        if (this.transfers.completed(active, slot, result)) return;
        break;
      case 'flush':
        if (result < 0) {
          this.shared.markFlushFailed(active.resetEpoch);
          active.fail(slot, `fdatasync: errno ${-result}`);
        } else if (this.shared.flushFailed(active.resetEpoch)) {
          // Another flush (maybe another thread's) consumed the error while this one ran.
          active.fail(slot, 'an earlier flush of this session failed');
        }
        break;
      case 'discard':
      case 'write-zeroes':
        if (this.zeroRanges.completed(active, slot, sub, result)) return;
        break;
    }
    if (--slot.pending === 0) this.complete(active, slot);
  };

  private complete(active: BlkActive, slot: Slot): void {
    this.transfers.finish(active, slot);
    active.answer(slot.queue, slot.head, slot.statusAddress, slot.status, slot.status === S.VIRTIO_BLK_S_OK ? slot.used : 1);
    if (slot.status === S.VIRTIO_BLK_S_OK) this.countDone(slot.op, slot.length);
    else this.countStatus(slot.status);
    const generation = slot.generation;
    slot.generation = -1;
    slot.ranges = [];
    active.slots.release(slot);
    if (generation >= 0) {
      for (const tag of this.flushOrder.writeFinished(generation)) this.issueFlush(active, active.slots.slots[tag]!);
    }
  }

  reset(): void {
    const active = this.active;
    // Dropped first: completions reaped while draining find no active state and are ignored.
    this.active = undefined;
    if (active) {
      active.live = false;
      const engine = active.engine;
      // Nothing may land in the old driver's buffers after the reset completes: wait for it all.
      try {
        engine.submit();
        while (active.opsInFlight > 0) {
          engine.wait();
          active.opsInFlight -= engine.reap(ignoreCompletion);
        }
      } finally {
        if (engine.eventFd !== undefined) active.host.unwatch(engine.eventFd);
        engine.close();
      }
    }
    const slots = this.slots;
    if (slots) {
      for (const slot of slots.slots) this.transfers.freeBounce(slot);
      slots.releaseAll();
    }
    this.flushOrder.clear();
  }
}

export const virtioBlk = defineVirtioDevice<BlkOptions>({
  module: import.meta.url,
  exportName: 'virtioBlk',
  describe: describeVirtioBlk,
  create: (options, share) => new VirtioBlk(options, share),
});
