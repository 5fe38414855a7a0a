/**
 * What one disk's data-plane threads share besides the image fd: a few
 * Int32 words in a SharedArrayBuffer that crosses to every thread in the
 * disk's options (made once per disk on the main thread, blkOptionsFor).
 *
 * - A failed FLUSH, sticky for the rest of the driver's session: after a
 *   writeback error Linux marks the pages clean and reports the error once
 *   per open file description, which all the threads share, so the next
 *   fdatasync would succeed though the data never reached the disk (QEMU's
 *   raw backend keeps failing flushes the same way). The word holds the reset
 *   epoch of the session it belongs to, so a device reset clears it and a
 *   thread's own deactivation does not.
 * - The bytes of O_DIRECT bounce buffers the threads hold, against a
 *   per-disk budget: a guest must not make the host allocate more than that
 *   however many misaligned requests it keeps in flight.
 */

/** (reset epoch + 1) of the session in which a flush failed; 0: none. */
const FLUSH_FAILED = 0;
/** Bounce-buffer bytes held by all of the disk's threads. */
const BOUNCE_BYTES = 1;
const WORDS = 2;

/** Bounce buffers one disk may hold at once, all threads together: four of the largest. */
export const BLK_BOUNCE_BUDGET_BYTES = 16 << 20;

export class BlkSharedState {
  readonly shared: SharedArrayBuffer;
  private readonly words: Int32Array;

  /** Without a buffer (one thread, tests), a private one. */
  constructor(shared?: SharedArrayBuffer) {
    this.shared = shared ?? BlkSharedState.allocate();
    if (this.shared.byteLength < WORDS * 4) throw new RangeError(`disk shared state needs ${WORDS * 4} bytes`);
    this.words = new Int32Array(this.shared, 0, WORDS);
  }

  static allocate(): SharedArrayBuffer {
    return new SharedArrayBuffer(WORDS * 4);
  }

  /** A flush failed in the session of reset epoch `epoch`. */
  markFlushFailed(epoch: number): void {
    Atomics.store(this.words, FLUSH_FAILED, (epoch + 1) | 0);
  }

  /** A flush failed earlier in this session: every later one must fail too. */
  flushFailed(epoch: number): boolean {
    const word = Atomics.load(this.words, FLUSH_FAILED);
    return word !== 0 && word === ((epoch + 1) | 0);
  }

  /** Takes `bytes` of the budget; false (nothing taken) when that would exceed it. */
  reserveBounce(bytes: number, budget: number): boolean {
    const before = Atomics.add(this.words, BOUNCE_BYTES, bytes);
    if (before + bytes <= budget) return true;
    Atomics.sub(this.words, BOUNCE_BYTES, bytes);
    return false;
  }

  releaseBounce(bytes: number): void {
    Atomics.sub(this.words, BOUNCE_BYTES, bytes);
  }

  get bounceBytes(): number {
    return Atomics.load(this.words, BOUNCE_BYTES);
  }
}
