/**
 * Host memory the TAP reads into or the kernel reads iovecs from: anonymous
 * mmap, so its address is known and stable for readv/writev.
 */
import { IOVEC_SIZE, MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap, view } from '../../../vmm/libc.js';

const PAGE = 4096;
const TWO_32 = 0x1_0000_0000;

export class HostBuffer {
  readonly address: number;
  readonly length: number;
  readonly bytes: Uint8Array;
  private freed = false;

  constructor(length: number) {
    this.length = Math.max(PAGE, Math.ceil(length / PAGE) * PAGE);
    this.address = mmap(this.length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    this.bytes = new Uint8Array(view(this.address, this.length));
  }

  free(): void {
    if (this.freed) return;
    this.freed = true;
    munmap(this.address, this.length);
  }
}

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
