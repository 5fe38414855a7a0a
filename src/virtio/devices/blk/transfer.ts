/**
 * Reads and writes of one virtio-blk instance: a request's data goes straight
 * between the image and the guest's buffers, as iovecs of the host addresses of
 * guest RAM written into the request's slot (no copy), pieces adjacent in host
 * memory merged into one iovec.
 *
 * With O_DIRECT (`options.direct`) a transfer the image's alignment rules
 * forbid takes another way: guest buffers that are misaligned go through a
 * bounce buffer (at most MAX_BOUNCE_BYTES, within the disk's bounce budget,
 * BlkSharedState), and a file range O_DIRECT cannot address, or a bounce beyond
 * those limits, through the page cache (`options.bufferedFd`).
 *
 * A transfer the kernel completes in part (a short read or write) is continued
 * from where it stopped, on the remaining iovecs, until the request is whole;
 * no progress at all is an error.
 */
import { IOVEC_SIZE, setIovec } from '../../../sys/iovec.js';
import { HostBuffer } from '../../../sys/host-buffer.js';
import type { DescriptorChain } from '../../descriptor-chain.js';
import { GuestMemoryError, type GuestMemory } from '../../../vmm/guest-memory.js';
import type { BlkActive } from './active.js';
import { BLK_BOUNCE_BUDGET_BYTES, type BlkSharedState } from './disk-shared.js';
import type { FlushOrder } from './flush-order.js';
import type { BlkOptions } from './options.js';
import { forEachDataPiece, type BlkRequest } from './request.js';
import type { Slot } from './slot-arena.js';
import * as S from './spec.js';

export type TransferRequest = Extract<BlkRequest, { op: 'read' | 'write' }>;

/** The most bytes one merged iovec covers (the kernel caps a transfer at 2 GiB anyway). */
const MAX_IOVEC_BYTES = 1 << 30;

/** The largest bounce buffer for one O_DIRECT request with misaligned guest buffers (4 MiB). */
export const MAX_BOUNCE_BYTES = 4 << 20;
/** HostBuffer rounds a bounce buffer up to whole pages: what it costs the budget. */
const HOST_PAGE = 4096;

export class Transfers {
  private readonly directMemoryAlign: number;
  private readonly directOffsetAlign: number;
  private readonly bounceBudget: number;

  constructor(
    private readonly options: BlkOptions,
    /** Shared with the disk's other data-plane threads: the bounce bytes they hold. */
    private readonly shared: BlkSharedState,
    private readonly flushOrder: FlushOrder,
  ) {
    this.directMemoryAlign = options.directMemoryAlign ?? 4096;
    this.directOffsetAlign = options.directOffsetAlign ?? 4096;
    this.bounceBudget = options.bounceBudgetBytes ?? BLK_BOUNCE_BUDGET_BYTES;
  }

  /** Builds the slot's iovecs straight from the chain's host addresses (a bounce buffer only where O_DIRECT needs one), and issues the transfer. */
  start(active: BlkActive, slot: Slot, chain: DescriptorChain, request: TransferRequest): void {
    const { op, offset, length } = request;
    slot.offset = offset;
    slot.length = length;
    slot.used = op === 'read' ? length + 1 : 1;
    slot.fd = this.options.fd;
    const words = slot.iovecWords;
    const offsetAlign = this.directOffsetAlign;
    let aligned = true;
    let count = 0;
    let skip = request.skip;
    let left = length;
    // The current iovec, extended while the next piece follows it in host memory (a guest's page
    // buffers often do): fewer iovecs for the kernel to walk, and pieces too small for O_DIRECT
    // alone may together make an aligned one.
    let base = -1;
    let runLength = 0;
    // forEachDataPiece's walk, inlined: this runs for every read and write, without a callback.
    for (let i = request.first; left > 0; i++) {
      const segmentLength = chain.lengthAt(i);
      if (segmentLength <= skip) {
        skip -= segmentLength;
        continue;
      }
      const n = Math.min(segmentLength - skip, left);
      const host = chain.hostAt(i);
      if (host < 0) throw new GuestMemoryError('bad-layout', 'guest memory has no host mapping');
      if (host + skip === base + runLength && runLength + n <= MAX_IOVEC_BYTES) {
        runLength += n;
      } else {
        if (runLength > 0) aligned = this.putIovec(words, count++, base, runLength) && aligned;
        base = host + skip;
        runLength = n;
      }
      left -= n;
      skip = 0;
    }
    if (runLength > 0) aligned = this.putIovec(words, count++, base, runLength) && aligned;
    slot.iovStart = 0;
    slot.iovCount = count;
    if (this.options.direct) {
      const bounceBytes = aligned ? 0 : Math.ceil(length / HOST_PAGE) * HOST_PAGE;
      if (
        (offset | length) % offsetAlign !== 0 ||
        (!aligned && (length > MAX_BOUNCE_BYTES || !this.shared.reserveBounce(bounceBytes, this.bounceBudget)))
      ) {
        // O_DIRECT cannot address this range of the file at all, or the guest's misaligned buffers
        // would need a bounce larger than a guest may make the host allocate (alone, or with the
        // bounces the disk already holds): the page cache can.
        slot.fd = this.options.bufferedFd ?? this.options.fd;
      } else if (!aligned) {
        slot.bounceBytes = bounceBytes;
        const bounce = new HostBuffer(length);
        const guestPieces: number[] = [];
        forEachDataPiece(chain, request.first, request.skip, length, (_host, guest, n) => guestPieces.push(guest, n));
        slot.bounce = bounce;
        slot.guestPieces = guestPieces;
        setIovec(words, 0, bounce.address, length);
        slot.iovCount = 1;
        if (op === 'write') copyGuest(active.memory, guestPieces, bounce.bytes, 'in');
      }
    }
    if (op === 'write') slot.generation = this.flushOrder.writeStarted();
    slot.pending = 1;
    this.issue(active, slot);
  }

  /**
   * A read or write completed with `result` (bytes, or -errno): true when the rest of a short
   * transfer was issued (the request goes on), false when the slot's transfer is over (failed
   * or whole).
   */
  completed(active: BlkActive, slot: Slot, result: number): boolean {
    if (result > 0) {
      slot.done += result;
      if (slot.done < slot.length) {
        this.advanceIovecs(slot, result);
        this.issue(active, slot); // a short transfer: the rest from where it stopped
        return true;
      }
    } else if (result < 0 || slot.done < slot.length) {
      active.fail(slot, result < 0 ? `errno ${-result}` : 'end of file');
    }
    return false;
  }

  /** Before a request is answered: a bounced read's data goes to the guest, and the bounce buffer is freed. */
  finish(active: BlkActive, slot: Slot): void {
    if (!slot.bounce) return;
    if (slot.op === 'read' && slot.status === S.VIRTIO_BLK_S_OK) copyGuest(active.memory, slot.guestPieces, slot.bounce.bytes, 'out');
    this.freeBounce(slot);
  }

  /** Frees the slot's bounce buffer, if any, and gives its bytes back to the disk's budget. */
  freeBounce(slot: Slot): void {
    slot.bounce?.free();
    slot.bounce = undefined;
    this.shared.releaseBounce(slot.bounceBytes);
    slot.bounceBytes = 0;
  }

  /** Writes iovec `index` of a slot's array; false when O_DIRECT could not take it as it is (alignment). */
  private putIovec(words: Uint32Array, index: number, base: number, length: number): boolean {
    setIovec(words, index, base, length);
    return base % this.directMemoryAlign === 0 && length % this.directOffsetAlign === 0;
  }

  /** (Re)submits a read or write from byte `done` on. */
  private issue(active: BlkActive, slot: Slot): void {
    const offset = slot.offset + slot.done;
    const iovecs = slot.iovecs + slot.iovStart * IOVEC_SIZE;
    const count = slot.iovCount - slot.iovStart;
    if (slot.op === 'read') active.engine.readv(slot.fd, iovecs, count, offset, slot.index, 0);
    else active.engine.writev(slot.fd, iovecs, count, offset, slot.index, 0);
    active.opsInFlight++;
  }

  /** Drops the first `bytes` of the slot's remaining iovecs (after a short transfer). */
  private advanceIovecs(slot: Slot, bytes: number): void {
    const words = slot.iovecWords;
    let i = slot.iovStart;
    while (bytes > 0 && i < slot.iovCount) {
      const at = (i * IOVEC_SIZE) / 4;
      const length = words[at + 2]! + words[at + 3]! * 0x1_0000_0000;
      if (bytes >= length) {
        bytes -= length;
        i++;
        continue;
      }
      const base = words[at]! + words[at + 1]! * 0x1_0000_0000;
      setIovec(words, i, base + bytes, length - bytes);
      bytes = 0;
    }
    slot.iovStart = i;
  }
}

/** Copies between guest ranges and a bounce buffer: 'in' fills the buffer, 'out' empties it into the guest. */
function copyGuest(memory: GuestMemory, pieces: number[], buffer: Uint8Array, direction: 'in' | 'out'): void {
  let at = 0;
  for (let i = 0; i < pieces.length; i += 2) {
    const guest = memory.slice(pieces[i]!, pieces[i + 1]!);
    if (direction === 'in') buffer.set(guest, at);
    else guest.set(buffer.subarray(at, at + guest.length));
    at += guest.length;
  }
}
