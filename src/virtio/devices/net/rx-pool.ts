/**
 * The pool of one receive queue: receive buffers the device popped and has
 * not used yet, in the order it popped them, kept in flat typed arrays (no
 * object per chain). Pooled chains are entries [head, end); their iovecs (host
 * addresses, in ReceiveBuffers.iovecs) are entries [iovStart, iovEnd), contiguous
 * in pool order, so a read's window of consecutive chains is one run of
 * iovecs. Each iovec's guest address and length are kept beside it, for copies
 * into a chain (spilled frames, split headers).
 *
 * A batch of reads consumes chains, not always a prefix (a read that found no
 * frame leaves its window unused): consumed entries are marked, then dropped,
 * and the rest kept in order. Entries and iovecs move to the front when the
 * arrays run out at the end; compaction keeps room for one more chain.
 *
 * The receive loop (rx.ts) and the spill queue (rx-spill.ts) read the arrays
 * directly: they are hot.
 */
import type { DescriptorChain } from '../../descriptor-chain.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import type { IovecArray } from './host-buffer.js';
import { VIRTIO_NET_HDR_SIZE } from './spec.js';

/** Segments a receive chain may have (Linux uses 1 with MRG_RXBUF, up to MAX_SKB_FRAGS + 2 without). */
export const RX_MAX_SEGMENTS = 64;
/** iovecs the pool may hold; compaction keeps room for one more chain. */
const POOL_IOVECS = 2048;
export const IOV_CAPACITY = 2 * POOL_IOVECS + RX_MAX_SEGMENTS;

export class RxPool {
  /** Each pooled chain's head, writable bytes, first iovec and iovec count. */
  readonly heads = new Uint16Array(IOV_CAPACITY);
  readonly caps = new Float64Array(IOV_CAPACITY);
  readonly iov = new Int32Array(IOV_CAPACITY);
  readonly iovCount = new Int32Array(IOV_CAPACITY);
  /** Guest address of the header when the first segment holds all of it, else -1. */
  readonly header = new Float64Array(IOV_CAPACITY);
  /** Guest address of each iovec (the iovecs hold host addresses), for copies into a chain. */
  readonly iovGuest = new Float64Array(IOV_CAPACITY);
  readonly iovLength = new Float64Array(IOV_CAPACITY);
  /** Entries a batch consumed (1) or left free (0). */
  readonly consumed = new Uint8Array(IOV_CAPACITY);
  head = 0;
  end = 0;
  /** Writable bytes of the pooled chains. */
  capacity = 0;
  iovStart = 0;
  iovEnd = 0;

  constructor(
    /** The pool's iovecs (host memory the kernel reads). */
    private readonly iovecs: IovecArray,
  ) {}

  /** Chains pooled. */
  get count(): number {
    return this.end - this.head;
  }

  /** No room for another chain until a batch consumes some. */
  get full(): boolean {
    return this.iovEnd - this.iovStart > POOL_IOVECS || this.end - this.head > POOL_IOVECS;
  }

  /** Pools a single-descriptor buffer (popWritableBuffer found it: no DescriptorChain was built). */
  addBuffer(head: number, guest: number, host: number, length: number): void {
    if (this.iovEnd + 1 > IOV_CAPACITY || this.end === IOV_CAPACITY) this.compact();
    const p = this.end++;
    const at = this.iovEnd++;
    this.heads[p] = head;
    this.caps[p] = length;
    this.iov[p] = at;
    this.iovCount[p] = 1;
    this.header[p] = guest;
    this.iovecs.set(at, host, length);
    this.iovGuest[at] = guest;
    this.iovLength[at] = length;
    this.capacity += length;
  }

  addChain(chain: DescriptorChain): void {
    if (this.iovEnd + chain.segmentCount > IOV_CAPACITY || this.end === IOV_CAPACITY) this.compact();
    const iovecs = this.iovecs;
    const p = this.end++;
    this.heads[p] = chain.head;
    this.caps[p] = chain.writableLength;
    this.iov[p] = this.iovEnd;
    this.header[p] = chain.lengthAt(0) >= VIRTIO_NET_HDR_SIZE ? chain.addressAt(0) : -1;
    let count = 0;
    for (let i = 0; i < chain.segmentCount; i++) {
      const length = chain.lengthAt(i);
      if (length === 0) continue;
      const at = this.iovEnd + count++;
      iovecs.set(at, chain.hostAt(i), length);
      this.iovGuest[at] = chain.addressAt(i);
      this.iovLength[at] = length;
    }
    this.iovCount[p] = count;
    this.iovEnd += count;
    this.capacity += chain.writableLength;
  }

  /** Takes the first pooled chain out (its bytes were copied in by the spill queue). */
  takeFirst(): void {
    const p = this.head;
    this.capacity -= this.caps[p]!;
    this.iovStart += this.iovCount[p]!;
    this.head++;
  }

  /**
   * Takes the chains a batch consumed out of the pool: a consumed prefix by moving the head;
   * buffers the batch left unused among consumed ones (a read that found no frame before one
   * that did, or the unfilled end of a window) stay pooled, in order, ahead of those it did not reach.
   * An empty pool starts again at the front.
   */
  dropConsumed(batchEnd: number): void {
    while (this.head < this.end && this.consumed[this.head]) {
      this.consumed[this.head] = 0;
      this.iovStart += this.iovCount[this.head]!;
      this.head++;
    }
    for (let p = this.head; p < batchEnd; p++) {
      if (this.consumed[p]) {
        this.keepUnconsumed(this.head, this.head, this.iovStart);
        break;
      }
    }
    if (this.head === this.end) {
      this.head = 0;
      this.end = 0;
      this.iovStart = 0;
      this.iovEnd = 0;
    }
  }

  /** [guest address, length, …] of pooled chain p's pieces. */
  piecesOf(p: number): number[] {
    const pieces: number[] = [];
    const at = this.iov[p]!;
    for (let i = at; i < at + this.iovCount[p]!; i++) pieces.push(this.iovGuest[i]!, this.iovLength[i]!);
    return pieces;
  }

  /** Copies bytes to the start of pooled chain p. */
  copyInto(memory: GuestMemory, p: number, bytes: Uint8Array): void {
    let done = 0;
    for (let i = this.iov[p]!; done < bytes.length; i++) {
      const length = Math.min(this.iovLength[i]!, bytes.length - done);
      memory.write(this.iovGuest[i]!, bytes.subarray(done, done + length));
      done += length;
    }
  }

  /** Forgets every pooled chain (they belong to a driver that reset the device). */
  clear(): void {
    this.head = 0;
    this.end = 0;
    this.capacity = 0;
    this.iovStart = 0;
    this.iovEnd = 0;
    this.consumed.fill(0);
  }

  /** Moves the pooled chains and their iovecs to the front. */
  private compact(): void {
    this.shift(0, 0);
  }

  /** Moves pool entries [head, end) to start at entry `to`, their iovecs at `iovTo` (both ≤ current). */
  private shift(to: number, iovTo: number): void {
    const count = this.end - this.head;
    const iovCount = this.iovEnd - this.iovStart;
    const iovDelta = this.iovStart - iovTo;
    this.iovecs.move(iovTo, this.iovStart, iovCount);
    this.iovGuest.copyWithin(iovTo, this.iovStart, this.iovEnd);
    this.iovLength.copyWithin(iovTo, this.iovStart, this.iovEnd);
    for (const a of [this.heads, this.caps, this.iovCount, this.header] as const) a.copyWithin(to, this.head, this.end);
    this.iov.copyWithin(to, this.head, this.end);
    for (let p = to; p < to + count; p++) this.iov[p]! -= iovDelta;
    this.head = to;
    this.end = to + count;
    this.iovStart = iovTo;
    this.iovEnd = iovTo + iovCount;
  }

  /**
   * Drops the pool entries marked consumed in [from, end), keeping the others in order from
   * entry `to` and iovec `iovTo` on (both at or before where they are).
   */
  private keepUnconsumed(from: number, to: number, iovTo: number): void {
    const iovecs = this.iovecs;
    let w = to;
    let iw = iovTo;
    for (let p = from; p < this.end; p++) {
      if (this.consumed[p]) {
        this.consumed[p] = 0;
        continue;
      }
      const at = this.iov[p]!;
      const n = this.iovCount[p]!;
      if (iw !== at) {
        iovecs.move(iw, at, n);
        this.iovGuest.copyWithin(iw, at, at + n);
        this.iovLength.copyWithin(iw, at, at + n);
      }
      this.heads[w] = this.heads[p]!;
      this.caps[w] = this.caps[p]!;
      this.iovCount[w] = n;
      this.header[w] = this.header[p]!;
      this.iov[w] = iw;
      w++;
      iw += n;
    }
    this.end = w;
    this.iovEnd = iw;
  }
}
