/**
 * A tiny mutex in shared memory, for device registers that several vCPU
 * threads (and the main thread's input path) touch. Critical sections are a
 * few register updates, so it spins briefly before sleeping.
 */
const UNLOCKED = 0;
const LOCKED = 1;
const CONTENDED = 2;

export class SharedLock {
  constructor(
    private readonly cells: Int32Array,
    private readonly index: number,
  ) {}

  acquire(): void {
    for (let spin = 0; spin < 100; spin++) {
      if (Atomics.compareExchange(this.cells, this.index, UNLOCKED, LOCKED) === UNLOCKED) return;
    }
    while (Atomics.exchange(this.cells, this.index, CONTENDED) !== UNLOCKED) {
      Atomics.wait(this.cells, this.index, CONTENDED, 10);
    }
  }

  release(): void {
    if (Atomics.exchange(this.cells, this.index, UNLOCKED) === CONTENDED) Atomics.notify(this.cells, this.index, 1);
  }

  with<T>(fn: () => T): T {
    this.acquire();
    try {
      return fn();
    } finally {
      this.release();
    }
  }
}
