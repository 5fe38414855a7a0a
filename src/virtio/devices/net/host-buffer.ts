/** iovec arrays in host memory (a HostBuffer), for readv/writev on the TAP. */
import { IOVEC_SIZE } from '../../../vmm/libc.js';
import { HostBuffer } from '../../../vmm/host-buffer.js';

const TWO_32 = 0x1_0000_0000;

/** An array of struct iovec in host memory. */
export class IovecArray {
  private readonly buffer: HostBuffer;
  private readonly words: Uint32Array;
  private saved0 = 0;
  private saved1 = 0;
  private saved2 = 0;
  private saved3 = 0;

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

  /** Saves entry `index` so it can be put back after a temporary overwrite (one entry at a time). */
  save(index: number): void {
    const w = this.words;
    const at = index * 4;
    this.saved0 = w[at]!;
    this.saved1 = w[at + 1]!;
    this.saved2 = w[at + 2]!;
    this.saved3 = w[at + 3]!;
  }

  restore(index: number): void {
    const w = this.words;
    const at = index * 4;
    w[at] = this.saved0;
    w[at + 1] = this.saved1;
    w[at + 2] = this.saved2;
    w[at + 3] = this.saved3;
  }

  free(): void {
    this.buffer.free();
  }
}
