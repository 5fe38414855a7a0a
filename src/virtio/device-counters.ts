/**
 * A device's counters, in a SharedArrayBuffer so the thread that built the
 * device's options (the VMM's main thread, a test, a benchmark) reads what the
 * data-plane threads count. A device with several data-plane threads gets one
 * lane of counters per thread: each lane has a single writer (a Float64 add is
 * not atomic) and readers sum the lanes. Readers may see a count one behind.
 */
export class DeviceCounters<Name extends string> {
  readonly shared: SharedArrayBuffer;
  private readonly values: Float64Array;
  private readonly index: ReadonlyMap<Name, number>;
  private readonly lanes: number;
  /** Where this instance's lane starts in `values`. */
  private readonly base: number;

  /** Counters over `shared` (allocated with `allocate`), writing lane `lane`; without `shared`, private ones. */
  constructor(
    readonly names: readonly Name[],
    shared?: SharedArrayBuffer,
    lane = 0,
  ) {
    this.shared = shared ?? DeviceCounters.allocate(names, lane + 1);
    this.values = new Float64Array(this.shared);
    this.lanes = DeviceCounters.lanesIn(this.shared, names);
    if (!Number.isInteger(lane) || lane < 0 || lane >= this.lanes) {
      throw new RangeError(`counter lane ${lane} of ${this.lanes}`);
    }
    this.base = lane * names.length;
    this.index = new Map(names.map((name, i) => [name, i]));
  }

  /** How many lanes of `names` a buffer holds. */
  static lanesIn(shared: SharedArrayBuffer, names: readonly string[]): number {
    return Math.floor(shared.byteLength / (names.length * Float64Array.BYTES_PER_ELEMENT));
  }

  /** A zeroed buffer for `lanes` writers of `names`. */
  static allocate(names: readonly string[], lanes: number): SharedArrayBuffer {
    return new SharedArrayBuffer(Math.max(1, lanes) * names.length * Float64Array.BYTES_PER_ELEMENT);
  }

  add(counter: Name, amount = 1): void {
    this.values[this.base + this.index.get(counter)!]! += amount;
  }

  /** Sets this lane's value (a gauge kept by one thread). */
  set(counter: Name, value: number): void {
    this.values[this.base + this.index.get(counter)!] = value;
  }

  /** The sum over every lane. */
  get(counter: Name): number {
    return this.sum(this.index.get(counter)!);
  }

  snapshot(): Record<Name, number> {
    return Object.fromEntries(this.names.map((name, i) => [name, this.sum(i)])) as Record<Name, number>;
  }

  /** One lane's values (which thread counted what). */
  laneSnapshot(lane: number): Record<Name, number> {
    const base = lane * this.names.length;
    return Object.fromEntries(this.names.map((name, i) => [name, this.values[base + i]!])) as Record<Name, number>;
  }

  private sum(offset: number): number {
    let total = 0;
    for (let lane = 0; lane < this.lanes; lane++) total += this.values[lane * this.names.length + offset]!;
    return total;
  }
}
