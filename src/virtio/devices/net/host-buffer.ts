/** iovec arrays in host memory (a HostBuffer), for readv/writev on the TAP. */
import { IOVEC_SIZE, setIovec } from '../../../sys/iovec.js';
import { HostBuffer } from '../../../sys/host-buffer.js';

const TWO_32 = 0x1_0000_0000;

/** An array of struct iovec in host memory. */
export class IovecArray {
  private readonly buffer: HostBuffer;
  private readonly words: Uint32Array;

  constructor(readonly capacity: number) {
    this.buffer = new HostBuffer(capacity * IOVEC_SIZE);
    this.words = new Uint32Array(this.buffer.bytes.buffer, this.buffer.bytes.byteOffset, (capacity * IOVEC_SIZE) / 4);
  }

  /** Host address of entry `index` (what readv/writev take). */
  addressOf(index: number): number {
    return this.buffer.address + index * IOVEC_SIZE;
  }

  set(index: number, base: number, length: number): void {
    setIovec(this.words, index, base, length);
  }

  /** Moves entries [from, from + count) to [to, …) (overlap allowed). */
  move(to: number, from: number, count: number): void {
    this.words.copyWithin(to * 4, from * 4, (from + count) * 4);
  }

  /**
   * Copies entries [from, from + count) of `source` to [to, …) of this array, joining an entry that
   * starts where the one before it ends (a guest's receive buffers are often adjacent pages);
   * returns how many entries it wrote.
   */
  copyJoined(source: IovecArray, from: number, to: number, count: number): number {
    // A word loop: most windows are one or two entries, too few for a subarray view to pay.
    const target = this.words;
    const words = source.words;
    let j = to * 4 - 4;
    let endLow = -1;
    let endHigh = -1;
    for (let i = from * 4, end = (from + count) * 4; i < end; i += 4) {
      const low = words[i]!;
      const high = words[i + 1]!;
      const length = words[i + 2]!;
      if (low === endLow && high === endHigh && target[j + 2]! + length < TWO_32) {
        target[j + 2]! += length;
      } else {
        j += 4;
        target[j] = low;
        target[j + 1] = high;
        target[j + 2] = length;
        target[j + 3] = 0;
      }
      const sum = low + length;
      const carry = sum >= TWO_32 ? 1 : 0;
      endLow = sum - carry * TWO_32;
      endHigh = high + carry;
    }
    return j / 4 + 1 - to;
  }

  free(): void {
    this.buffer.free();
  }
}
