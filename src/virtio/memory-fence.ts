/**
 * A full memory barrier for guest RAM.
 *
 * Guest RAM is a plain (non-shared) ArrayBuffer over mmap'd memory, so
 * Atomics cannot operate on it. A sequentially consistent read-modify-write
 * on any memory still orders every access around it: on x86-64 V8 compiles
 * Atomics.add to a `lock`-prefixed instruction, which is a full fence for all
 * memory. That matters only for store→load order, the one reordering x86's
 * TSO model allows (a later load may otherwise complete before an earlier
 * store is visible). V8's JIT also keeps plain typed-array accesses on their
 * side of an Atomics operation, so the compiler does not reorder them either.
 */

const fenceCell = new Int32Array(new SharedArrayBuffer(Int32Array.BYTES_PER_ELEMENT));

/** Every memory access before this call is globally visible before any access after it. */
export function memoryFence(): void {
  Atomics.add(fenceCell, 0, 1);
}
