/**
 * Discard and write-zeroes of one virtio-blk instance: each range of the
 * request is one engine operation (its index is the operation's `sub`), all in
 * flight at once. A range tries fallocate modes in turn while the file answers
 * EOPNOTSUPP (or EINVAL): a discard only punches a hole, and a file that cannot
 * is left as it is (discard is a hint); write-zeroes prefers the mode the
 * driver's UNMAP flag asks for, then the other, and at last writes zeroes from a
 * shared zero buffer, ZERO_CHUNK at a time, through the page cache.
 */
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE, FALLOC_FL_ZERO_RANGE } from '../../../sys/files.js';
import { IOVEC_SIZE, setIovec } from '../../../sys/iovec.js';
import { HostBuffer } from '../../../sys/host-buffer.js';
import { EINVAL, EOPNOTSUPP } from '../../../sys/errno.js';
import type { BlkActive } from './active.js';
import type { FlushOrder } from './flush-order.js';
import type { BlkOptions } from './options.js';
import type { BlkRequest } from './request.js';
import type { Slot } from './slot-arena.js';

export type ZeroRangesRequest = Extract<BlkRequest, { op: 'discard' | 'write-zeroes' }>;

const PUNCH_HOLE = FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE;
const ZERO_RANGE = FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE;
/** Not an fallocate mode: write zeroes from a zero buffer (filesystems with neither mode). */
const BY_WRITING = -1;
const ZERO_CHUNK = 1 << 20;

export class ZeroRanges {
  /** Allocated the first time a file needs zeroes written. */
  private zeroBuffer: HostBuffer | undefined;

  constructor(
    private readonly options: BlkOptions,
    private readonly flushOrder: FlushOrder,
  ) {}

  /** Issues every range of the request on its slot. */
  start(active: BlkActive, slot: Slot, request: ZeroRangesRequest): void {
    const discard = request.op === 'discard';
    slot.ranges = request.ranges.map((range) => ({
      ...range,
      modes: discard ? [PUNCH_HOLE] : range.unmap ? [PUNCH_HOLE, ZERO_RANGE, BY_WRITING] : [ZERO_RANGE, PUNCH_HOLE, BY_WRITING],
      modeIndex: 0,
      zeroed: 0,
    }));
    slot.pending = slot.ranges.length;
    slot.generation = this.flushOrder.writeStarted();
    slot.ranges.forEach((_, i) => this.issue(active, slot, i));
  }

  /**
   * Range `sub` of the slot's request completed with `result`: true when more was issued for it
   * (the next chunk of zeroes, or the next mode), false when the range is over (done or failed).
   */
  completed(active: BlkActive, slot: Slot, sub: number, result: number): boolean {
    const range = slot.ranges[sub]!;
    const mode = range.modes[range.modeIndex]!;
    if (mode === BY_WRITING && result > 0) {
      range.zeroed += result;
      if (range.zeroed < range.length) {
        this.issue(active, slot, sub);
        return true;
      }
    } else if (result < 0 || mode === BY_WRITING) {
      const unsupported = result === -EOPNOTSUPP || result === -EINVAL;
      if (unsupported && range.modeIndex + 1 < range.modes.length) {
        range.modeIndex++;
        this.issue(active, slot, sub);
        return true;
      }
      // Discard is a hint: a file that cannot punch holes just keeps the data.
      if (!(unsupported && slot.op === 'discard')) active.fail(slot, result < 0 ? `fallocate: errno ${-result}` : 'zero write made no progress');
    }
    return false;
  }

  private issue(active: BlkActive, slot: Slot, i: number): void {
    const range = slot.ranges[i]!;
    const mode = range.modes[range.modeIndex]!;
    if (mode === BY_WRITING) {
      this.zeroBuffer ??= new HostBuffer(ZERO_CHUNK);
      const chunk = Math.min(ZERO_CHUNK, range.length - range.zeroed);
      setIovec(slot.iovecWords, i, this.zeroBuffer.address, chunk);
      const fd = this.options.bufferedFd ?? this.options.fd;
      active.engine.writev(fd, slot.iovecs + i * IOVEC_SIZE, 1, range.offset + range.zeroed, slot.index, i);
    } else {
      active.engine.fallocate(this.options.fd, mode, range.offset, range.length, slot.index, i);
    }
    active.opsInFlight++;
  }
}
