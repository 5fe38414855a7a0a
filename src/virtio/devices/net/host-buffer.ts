/** iovec arrays in host memory (a HostBuffer), for readv/writev on the TAP. */
import { IOVEC_SIZE } from '../../../vmm/libc.js';
import { HostBuffer } from '../../../vmm/host-buffer.js';

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
    const at = index * 4;
    const w = this.words;
    w[at] = base % TWO_32;
    w[at + 1] = Math.floor(base / TWO_32);
    w[at + 2] = length;
    w[at + 3] = 0;
  }

  /** Moves entries [from, from + count) to [to, …) (overlap allowed). */
  move(to: number, from: number, count: number): void {
    this.words.copyWithin(to * 4, from * 4, (from + count) * 4);
  }

  /** Copies entries [from, from + count) of `source` to [to, …) of this array. */
  copyFrom(source: IovecArray, from: number, to: number, count: number): void {
    // A word loop: most windows are one or two entries, too few for a subarray view to pay.
    const target = this.words;
    const words = source.words;
    for (let i = from * 4, j = to * 4, end = (from + count) * 4; i < end; i++, j++) target[j] = words[i]!;
  }

  free(): void {
    this.buffer.free();
  }
}
