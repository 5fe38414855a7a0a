/**
 * When a FLUSH may start. virtio only promises durability for writes that
 * completed before the flush was sent (5.2.6.1), but a guest that races a
 * write with a flush is better served by the stricter rule, and it costs
 * nothing on the hot path: a flush waits for every write (and discard,
 * write-zeroes) submitted before it, while reads and later writes go on.
 *
 * Writes are counted per generation; each flush closes the current one and
 * starts only once no write of its generation or an earlier one is left.
 */
export class FlushOrder {
  private generation = 0;
  /** Writes in flight per generation; a generation leaves the map at zero (keys stay ascending). */
  private readonly outstanding = new Map<number, number>();
  /** Flushes waiting, oldest first: their generation and the caller's tag. */
  private readonly waiting: Array<{ readonly generation: number; readonly tag: number }> = [];

  /** A write is submitted: returns its generation, for writeFinished. */
  writeStarted(): number {
    const g = this.generation;
    this.outstanding.set(g, (this.outstanding.get(g) ?? 0) + 1);
    return g;
  }

  /** A write completed: returns the tags of the flushes that may start now, oldest first. */
  writeFinished(generation: number): number[] {
    const left = (this.outstanding.get(generation) ?? 1) - 1;
    if (left > 0) this.outstanding.set(generation, left);
    else this.outstanding.delete(generation);
    const released: number[] = [];
    while (this.waiting.length > 0 && this.clearThrough(this.waiting[0]!.generation)) {
      released.push(this.waiting.shift()!.tag);
    }
    return released;
  }

  /** A flush arrived: true when it may start at once; otherwise its tag comes back from writeFinished. */
  flushArrived(tag: number): boolean {
    const g = this.generation++;
    if (this.waiting.length === 0 && this.clearThrough(g)) return true;
    this.waiting.push({ generation: g, tag });
    return false;
  }

  get writesInFlight(): number {
    let n = 0;
    for (const count of this.outstanding.values()) n += count;
    return n;
  }

  get flushesWaiting(): number {
    return this.waiting.length;
  }

  /** Forgets everything (device reset, after in-flight I/O drained). */
  clear(): void {
    this.outstanding.clear();
    this.waiting.length = 0;
  }

  /** No write of generation ≤ g is outstanding. */
  private clearThrough(g: number): boolean {
    for (const key of this.outstanding.keys()) return key > g; // the first key is the oldest
    return true;
  }
}
