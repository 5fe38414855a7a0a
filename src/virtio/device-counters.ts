/**
 * A device's counters, in a SharedArrayBuffer so the thread that built the
 * device's options (the VMM's main thread, a test, a benchmark) reads what the
 * data-plane thread counts. One writer per counter; readers may see a count
 * one behind.
 */
export class DeviceCounters<Name extends string> {
  readonly shared: SharedArrayBuffer;
  private readonly values: Float64Array;
  private readonly index: ReadonlyMap<Name, number>;

  constructor(
    readonly names: readonly Name[],
    shared?: SharedArrayBuffer,
  ) {
    this.shared = shared ?? new SharedArrayBuffer(names.length * Float64Array.BYTES_PER_ELEMENT);
    this.values = new Float64Array(this.shared);
    this.index = new Map(names.map((name, i) => [name, i]));
  }

  add(counter: Name, amount = 1): void {
    this.values[this.index.get(counter)!]! += amount;
  }

  set(counter: Name, value: number): void {
    this.values[this.index.get(counter)!] = value;
  }

  get(counter: Name): number {
    return this.values[this.index.get(counter)!]!;
  }

  snapshot(): Record<Name, number> {
    return Object.fromEntries(this.names.map((name, i) => [name, this.values[i]!])) as Record<Name, number>;
  }
}
