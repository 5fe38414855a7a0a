/**
 * Fuzz target: the split virtqueue (SplitQueue, the chain walker, DescriptorChain) against a
 * reference model written here from the virtio 1.2 spec (2.7.5–2.7.8), with its own byte offsets.
 *
 * The guest writes anything: descriptor tables with loops, `next` out of range, indirect tables of
 * bad lengths, nested, or out of RAM, addresses in a hole between two RAM regions or above 2^53,
 * huge lengths, avail ring heads ≥ size and avail.idx jumps. For every pop the model decides
 * whether the chain is accepted (its buffers, in order, readable/writable) or rejected (and why,
 * as a QueueErrorKind), and whether the ring is broken (a fatal error). The queue must agree,
 * throw nothing but QueueError, and write nothing but the used ring.
 */
import fc from 'fast-check';
import { DescriptorChain } from '../../src/virtio/descriptor-chain.js';
import { POP_BUFFER, POP_CHAIN, POP_NONE, QueueError, SplitQueue, type QueueErrorKind } from '../../src/virtio/queue.js';
import type { GuestMemory } from '../../src/vmm/guest-memory.js';
import { memoryFromRegions } from '../../src/vmm/guest-ram.js';
import { MAP_ANONYMOUS, MAP_NORESERVE, MAP_PRIVATE, PROT_READ, PROT_WRITE, mmap, munmap } from '../../src/sys/memory.js';
import type { FuzzTarget } from './fuzz-target.js';

// ---------------------------------------------------------------------------------------------
// Guest memory: two RAM regions with a hole between them, mmap'd so the receive fast path
// (popWritableBuffer, which needs host addresses) is exercised too.

const REGION_SIZE = 0x10000;
/** RAM is [0, 0x10000) and [0x20000, 0x30000); [0x10000, 0x20000) is a hole. */
const REGION_BASES = [0, 0x20000] as const;
const DESC_TABLE = 0x1000;
const AVAIL_RING = 0x2000;
const USED_RING = 0x3000;
/** Where the fuzzer writes its indirect tables (0x200 bytes apart). */
const INDIRECT_BASE = 0x4000;
const INDIRECT_STRIDE = 0x200;
const TWO_53 = 2n ** 53n;

interface Ram {
  readonly memory: GuestMemory;
  readonly regions: ReadonlyArray<{ readonly base: number; readonly bytes: Uint8Array }>;
  readonly host: number;
}

let ram: Ram | undefined;

function getRam(): Ram {
  if (!ram) {
    const host = mmap(2 * REGION_SIZE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE);
    const memory = memoryFromRegions(REGION_BASES.map((guestBase, i) => ({ guestBase, size: REGION_SIZE, hostAddress: host + i * REGION_SIZE })));
    const regions = memory.regionList.map((r) => ({ base: r.guestBase, bytes: r.bytes }));
    ram = { memory, regions, host };
  }
  return ram;
}

// ---------------------------------------------------------------------------------------------
// The reference model: guest memory as the spec describes it, read with literal offsets.

/** Little-endian read of `n` bytes at guest address `at`, or undefined when not all RAM. */
function peek(r: Ram, at: bigint, n: number): bigint | undefined {
  const region = r.regions.find((g) => at >= BigInt(g.base) && at + BigInt(n) <= BigInt(g.base + g.bytes.length));
  if (!region) return undefined;
  const offset = Number(at) - region.base;
  let value = 0n;
  for (let i = n - 1; i >= 0; i--) value = (value << 8n) | BigInt(region.bytes[offset + i]!);
  return value;
}

function isRam(r: Ram, at: bigint, length: number): boolean {
  return r.regions.some((g) => at >= BigInt(g.base) && at + BigInt(length) <= BigInt(g.base + g.bytes.length));
}

interface ModelDescriptor {
  readonly addr: bigint;
  readonly len: number;
  readonly flags: number;
  readonly next: number;
}

/** struct virtq_desc: le64 addr, le32 len, le16 flags, le16 next (16 bytes). */
function readDescriptor(r: Ram, table: bigint, index: number): ModelDescriptor {
  const at = table + BigInt(index * 16);
  return {
    addr: peek(r, at, 8)!,
    len: Number(peek(r, at + 8n, 4)!),
    flags: Number(peek(r, at + 12n, 2)!),
    next: Number(peek(r, at + 14n, 2)!),
  };
}

interface ModelBuffer {
  readonly address: number;
  readonly length: number;
  readonly writable: boolean;
}

type ModelChain = { readonly ok: true; readonly buffers: ModelBuffer[] } | { readonly ok: false; readonly kind: QueueErrorKind };

const F_NEXT = 1;
const F_WRITE = 2;
const F_INDIRECT = 4;
/** The largest split queue (2.7): also the most entries an indirect table may hold here. */
const MAX_QUEUE = 32768;

/**
 * 2.7.5: follow `next` while NEXT is set; a chain longer than the table it lives in loops.
 * 2.7.5.3: an INDIRECT descriptor (only with the feature, never with NEXT, never inside an
 * indirect table) ends the ring chain and is replaced by its table of len/16 descriptors.
 * 2.7.4.2: readable buffers come before writable ones. 2.7.5.1: at most 2^32 - 1 bytes in all.
 * A buffer must be RAM (one region); an empty one only needs an address below 2^53.
 */
function modelChain(r: Ram, size: number, indirect: boolean, head: number): ModelChain {
  const buffers: ModelBuffer[] = [];
  let table = BigInt(DESC_TABLE);
  let entries = size;
  let left = size;
  let nested = false;
  let index = head;
  let total = 0;
  let sawWritable = false;
  for (;;) {
    if (left === 0) return { ok: false, kind: 'chain-too-long' };
    left--;
    const d = readDescriptor(r, table, index);
    if (d.flags & F_INDIRECT) {
      if (!indirect) return { ok: false, kind: 'indirect-not-negotiated' };
      if (nested) return { ok: false, kind: 'nested-indirect' };
      if (d.flags & F_NEXT) return { ok: false, kind: 'indirect-with-next' };
      if (d.len === 0 || d.len % 16 !== 0 || d.len / 16 > MAX_QUEUE) return { ok: false, kind: 'bad-indirect-length' };
      if (!isRam(r, d.addr, d.len)) return { ok: false, kind: 'indirect-out-of-range' };
      table = d.addr;
      entries = d.len / 16;
      left = entries;
      nested = true;
      index = 0;
      continue;
    }
    if (d.len > 0 ? !isRam(r, d.addr, d.len) : d.addr >= TWO_53) return { ok: false, kind: 'buffer-out-of-range' };
    const writable = (d.flags & F_WRITE) !== 0;
    if (!writable && sawWritable) return { ok: false, kind: 'readable-after-writable' };
    sawWritable ||= writable;
    total += d.len;
    if (total > 0xffff_ffff) return { ok: false, kind: 'length-overflow' };
    buffers.push({ address: Number(d.addr), length: d.len, writable });
    if (!(d.flags & F_NEXT)) return { ok: true, buffers };
    if (d.next >= entries) return { ok: false, kind: 'bad-next' };
    index = d.next;
  }
}

/**
 * The device's side of the rings (2.7.6, 2.7.8). The queue reads avail.idx once per batch: it
 * counts the entries published then, and reads avail.idx again only when they are used up
 * (documented in SplitQueue). More than `size` entries ahead is a broken ring, as is a head ≥ size.
 */
class ModelRings {
  nextAvail: number;
  nextUsed: number;
  private known = 0;

  constructor(
    private readonly r: Ram,
    private readonly size: number,
    start: number,
  ) {
    this.nextAvail = start;
    this.nextUsed = start;
  }

  /** undefined: nothing posted; a number: the head taken; a string: the fatal error. */
  take(): number | undefined | { fatal: QueueErrorKind } {
    if (this.known === 0) {
      const idx = Number(peek(this.r, BigInt(AVAIL_RING + 2), 2)!);
      const pending = (idx - this.nextAvail) & 0xffff;
      if (pending > this.size) return { fatal: 'avail-overrun' };
      this.known = pending;
      if (pending === 0) return undefined;
    }
    const head = Number(peek(this.r, BigInt(AVAIL_RING + 4 + 2 * (this.nextAvail % this.size)), 2)!);
    if (head >= this.size) return { fatal: 'bad-head' };
    this.nextAvail = (this.nextAvail + 1) & 0xffff;
    this.known--;
    return head;
  }
}

// ---------------------------------------------------------------------------------------------
// What the guest writes.

export interface RawDescriptor {
  readonly addr: bigint;
  readonly len: number;
  readonly flags: number;
  readonly next: number;
}

export interface QueueStep {
  /** Heads the driver writes into the avail ring from its current position. */
  readonly heads: number[];
  /** How far avail.idx moves (normally heads.length; anything for a hostile driver). */
  readonly idxMove: number | null;
  readonly pops: number;
  readonly popMode: 'pop' | 'popInto' | 'popWritableBuffer';
  /** Used length = this fraction of the chain's writable length. */
  readonly usedShare: number;
}

export interface QueueCase {
  readonly size: number;
  readonly indirect: boolean;
  readonly eventIdx: boolean;
  /** Free-running index both rings start at (restoreIndexes). */
  readonly start: number;
  readonly descriptors: RawDescriptor[];
  /** Up to 32 descriptors each, at INDIRECT_BASE + i * INDIRECT_STRIDE. */
  readonly tables: RawDescriptor[][];
  readonly steps: QueueStep[];
}

const MAX_SIZE = 16;
const TABLES = 3;

const addressArb: fc.Arbitrary<bigint> = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 0x30000 }).map(BigInt), weight: 4 },
  { arbitrary: fc.nat({ max: TABLES - 1 }).map((i) => BigInt(INDIRECT_BASE + i * INDIRECT_STRIDE)), weight: 3 },
  {
    arbitrary: fc.constantFrom(0n, 0xfff0n, 0xffffn, 0x10000n, 0x1fff0n, 0x20000n, 0x2fff0n, 0x30000n, TWO_53 - 1n, TWO_53, 2n ** 64n - 1n, 2n ** 32n),
    weight: 2,
  },
  { arbitrary: fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }), weight: 1 },
);

const lengthArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.integer({ min: 0, max: 80 }), weight: 4 },
  { arbitrary: fc.constantFrom(16, 32, 48, 64, 0x200, 0x1000, 0x10000, 0x8_0000, 0x7fff_ffff, 0x8000_0000, 0xffff_fff0, 0xffff_ffff), weight: 2 },
  { arbitrary: fc.nat({ max: 0xffff_ffff }), weight: 1 },
);

const flagsArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.constantFrom(0, F_NEXT, F_WRITE, F_NEXT | F_WRITE, F_INDIRECT, F_INDIRECT | F_NEXT, F_INDIRECT | F_WRITE), weight: 8 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
);

const nextArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.nat({ max: MAX_SIZE + 1 }), weight: 8 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
);

const descriptorArb: fc.Arbitrary<RawDescriptor> = fc.record({ addr: addressArb, len: lengthArb, flags: flagsArb, next: nextArb });

const headArb: fc.Arbitrary<number> = fc.oneof(
  { arbitrary: fc.nat({ max: MAX_SIZE - 1 }), weight: 12 },
  { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
);

const stepArb: fc.Arbitrary<QueueStep> = fc.record({
  heads: fc.oneof({ arbitrary: fc.array(headArb, { maxLength: 4 }), weight: 4 }, { arbitrary: fc.array(headArb, { maxLength: MAX_SIZE + 2 }), weight: 1 }),
  idxMove: fc.oneof(
    { arbitrary: fc.constant(null), weight: 12 },
    { arbitrary: fc.nat({ max: MAX_SIZE + 2 }), weight: 2 },
    { arbitrary: fc.integer({ min: 0, max: 0xffff }), weight: 1 },
  ),
  pops: fc.nat({ max: MAX_SIZE + 2 }),
  popMode: fc.constantFrom('pop' as const, 'popInto' as const, 'popWritableBuffer' as const),
  usedShare: fc.constantFrom(0, 0.5, 1),
});

/** A buffer of a well-formed chain: somewhere in RAM (mostly), small. */
const plannedBufferArb = fc.record({
  address: fc.oneof(
    { arbitrary: fc.integer({ min: 0x8000, max: 0xff00 }), weight: 4 },
    { arbitrary: fc.integer({ min: 0x20000, max: 0x2ff00 }), weight: 2 },
    { arbitrary: fc.constantFrom(0xffc0, 0x2ffc0, 0x1ffc0), weight: 1 },
  ),
  len: fc.oneof({ arbitrary: fc.integer({ min: 0, max: 64 }), weight: 4 }, { arbitrary: fc.constantFrom(0x100, 0x1000), weight: 1 }),
  writable: fc.boolean(),
});

interface PlannedChain {
  readonly buffers: Array<{ address: number; len: number; writable: boolean }>;
  /** Put the buffers in indirect table `table` (if < TABLES) behind one INDIRECT descriptor. */
  readonly table: number;
  readonly sorted: boolean;
}

const plannedChainArb: fc.Arbitrary<PlannedChain> = fc.record({
  buffers: fc.array(plannedBufferArb, { minLength: 1, maxLength: 5 }),
  table: fc.nat({ max: TABLES * 2 }),
  sorted: fc.oneof({ arbitrary: fc.constant(true), weight: 5 }, { arbitrary: fc.constant(false), weight: 1 }),
});

/** Chains laid out one after another as a driver would, then a few fields overwritten at random. */
const plannedRingArb = fc
  .tuple(
    fc.array(plannedChainArb, { minLength: 1, maxLength: 8 }),
    fc.array(fc.tuple(fc.nat({ max: MAX_SIZE + TABLES * 32 - 1 }), fc.constantFrom('addr', 'len', 'flags', 'next'), descriptorArb), { maxLength: 3 }),
  )
  .map(([chains, mutations]) => {
    const descriptors: RawDescriptor[] = Array.from({ length: MAX_SIZE }, () => ({ addr: 0n, len: 0, flags: 0, next: 0 }));
    const tables: RawDescriptor[][] = Array.from({ length: TABLES }, () => []);
    const link = (list: PlannedChain['buffers'], first: number): RawDescriptor[] =>
      list.map((b, i) => ({ addr: BigInt(b.address), len: b.len, flags: (b.writable ? F_WRITE : 0) | (i < list.length - 1 ? F_NEXT : 0), next: first + i + 1 }));
    let at = 0;
    for (const chain of chains) {
      const buffers = chain.sorted ? [...chain.buffers].sort((a, b) => Number(a.writable) - Number(b.writable)) : chain.buffers;
      if (chain.table < TABLES && tables[chain.table]!.length === 0) {
        if (at >= MAX_SIZE) break;
        tables[chain.table] = link(buffers, 0);
        descriptors[at++] = { addr: BigInt(INDIRECT_BASE + chain.table * INDIRECT_STRIDE), len: 16 * buffers.length, flags: F_INDIRECT, next: 0 };
      } else {
        if (at + buffers.length > MAX_SIZE) break;
        link(buffers, at).forEach((d) => (descriptors[at++] = d));
      }
    }
    for (const [index, field, source] of mutations) {
      const list = index < MAX_SIZE ? descriptors : tables[Math.floor((index - MAX_SIZE) / 32)]!;
      const i = index < MAX_SIZE ? index : (index - MAX_SIZE) % 32;
      if (i < list.length) list[i] = { ...list[i]!, [field]: source[field] };
    }
    return { descriptors, tables };
  });

const randomRingArb = fc.record({
  descriptors: fc.array(descriptorArb, { minLength: MAX_SIZE, maxLength: MAX_SIZE }),
  tables: fc.array(fc.array(descriptorArb, { maxLength: 32 }), { maxLength: TABLES }),
});

export const queueCaseArb: fc.Arbitrary<QueueCase> = fc
  .record({
    size: fc.constantFrom(1, 2, 4, 8, 16),
    indirect: fc.oneof({ arbitrary: fc.constant(true), weight: 3 }, { arbitrary: fc.constant(false), weight: 1 }),
    eventIdx: fc.boolean(),
    start: fc.oneof(fc.constant(0), fc.constantFrom(0xfffe, 0xffff, 0x7fff), fc.integer({ min: 0, max: 0xffff })),
    ring: fc.oneof({ arbitrary: plannedRingArb, weight: 2 }, { arbitrary: randomRingArb, weight: 1 }),
    steps: fc.array(stepArb, { minLength: 1, maxLength: 5 }),
  })
  .map(({ ring, ...rest }) => ({ ...rest, ...ring }));

// ---------------------------------------------------------------------------------------------
// The property.

function poke(bytes: Uint8Array, at: number, value: bigint | number, n: number): void {
  let v = BigInt(value);
  for (let i = 0; i < n; i++) {
    bytes[at + i] = Number(v & 0xffn);
    v >>= 8n;
  }
}

function writeDescriptor(bytes: Uint8Array, at: number, d: RawDescriptor): void {
  poke(bytes, at, d.addr, 8);
  poke(bytes, at + 8, d.len, 4);
  poke(bytes, at + 12, d.flags, 2);
  poke(bytes, at + 14, d.next, 2);
}

class Mismatch extends Error {
  override name = 'Mismatch';
}

function expect(condition: boolean, message: () => string): void {
  if (!condition) throw new Mismatch(message());
}

/** Bytes the queue may write: the used ring (flags, idx, ring, avail_event). */
function usedRingBytes(size: number): [number, number] {
  return [USED_RING, USED_RING + 4 + 8 * size + 2];
}

export function checkQueueCase(c: QueueCase): void {
  const r = getRam();
  const low = r.regions[0]!.bytes;
  for (const g of r.regions) g.bytes.fill(0);
  c.descriptors.slice(0, c.size).forEach((d, i) => writeDescriptor(low, DESC_TABLE + 16 * i, d));
  c.tables.forEach((t, k) => t.forEach((d, i) => writeDescriptor(low, INDIRECT_BASE + k * INDIRECT_STRIDE + 16 * i, d)));
  poke(low, AVAIL_RING + 2, c.start, 2);
  poke(low, USED_RING + 2, c.start, 2);

  const queue = new SplitQueue(r.memory, { size: c.size, descTable: DESC_TABLE, availRing: AVAIL_RING, usedRing: USED_RING }, { eventIdx: c.eventIdx, indirect: c.indirect });
  queue.restoreIndexes({ nextAvail: c.start, nextUsed: c.start });
  const model = new ModelRings(r, c.size, c.start);
  const chain = new DescriptorChain();
  const buffer = new Float64Array(4);
  let driverIdx = c.start;
  const [usedStart, usedEnd] = usedRingBytes(c.size);

  for (const step of c.steps) {
    step.heads.forEach((h, k) => poke(low, AVAIL_RING + 4 + 2 * ((driverIdx + k) % c.size), h, 2));
    driverIdx = (driverIdx + (step.idxMove ?? step.heads.length)) & 0xffff;
    poke(low, AVAIL_RING + 2, driverIdx, 2);
    const before = r.regions.map((g) => g.bytes.slice());

    for (let p = 0; p < step.pops; p++) {
      const expected = model.take();
      let got: DescriptorChain | undefined;
      let thrown: unknown;
      let fast: Float64Array | undefined;
      try {
        if (step.popMode === 'pop') got = queue.pop();
        else if (step.popMode === 'popInto') got = queue.popInto(chain) ? chain : undefined;
        else {
          const result = queue.popWritableBuffer(buffer, chain);
          if (result === POP_BUFFER) fast = buffer;
          else if (result === POP_CHAIN) got = chain;
          else expect(result === POP_NONE, () => `popWritableBuffer answered ${result}`);
        }
      } catch (error) {
        thrown = error;
      }
      if (thrown !== undefined && !(thrown instanceof QueueError)) throw thrown;
      const where = `pop ${p} of step ${c.steps.indexOf(step)}`;
      if (typeof expected === 'object') {
        const kind = thrown instanceof QueueError ? `${thrown.kind} (fatal ${thrown.fatal})` : 'no error';
        expect(thrown instanceof QueueError && thrown.kind === expected.fatal && thrown.fatal, () => `${where}: model says fatal ${expected.fatal}, queue: ${kind}`);
        checkOnlyUsedRingChanged(r, before, usedStart, usedEnd);
        return; // The device needs a reset now.
      }
      expect(thrown === undefined, () => `${where}: queue threw ${(thrown as QueueError).kind}: ${(thrown as Error).message}, model expected ${expected === undefined ? 'nothing' : `head ${expected}`}`);
      if (expected === undefined) {
        expect(got === undefined && fast === undefined, () => `${where}: model: nothing posted; queue popped a chain`);
        continue;
      }
      const m = modelChain(r, c.size, c.indirect, expected);
      let writable: number;
      if (fast) {
        expect(fast[0] === expected, () => `${where}: fast path head ${fast![0]}, model ${expected}`);
        const single = m.ok && m.buffers.length === 1 && m.buffers[0]!.writable && m.buffers[0]!.length > 0;
        expect(single, () => `${where}: fast path took chain ${expected}, model: ${JSON.stringify(m)}`);
        const b = (m as { buffers: ModelBuffer[] }).buffers[0]!;
        expect(fast[1] === b.address && fast[3] === b.length, () => `${where}: fast path buffer ${fast![1]}+${fast![3]}, model ${b.address}+${b.length}`);
        const region = r.regions.findIndex((g) => b.address >= g.base && b.address < g.base + g.bytes.length);
        expect(fast[2] === r.host + region * REGION_SIZE + (b.address - r.regions[region]!.base), () => `${where}: wrong host address`);
        writable = b.length;
      } else {
        expect(got !== undefined, () => `${where}: model: head ${expected}; queue popped nothing`);
        const g = got!;
        expect(g.head === expected, () => `${where}: head ${g.head}, model ${expected}`);
        if (!m.ok) {
          expect(g.error?.kind === m.kind, () => `${where}: chain ${expected}: model rejects it (${m.kind}), queue: ${g.error ? g.error.kind : `accepted ${JSON.stringify(g.segments)}`}`);
          expect(!g.error!.fatal && g.segmentCount === 0 && g.readableLength === 0 && g.writableLength === 0, () => `${where}: a malformed chain keeps segments or is fatal`);
        } else {
          expect(g.error === undefined, () => `${where}: chain ${expected}: model accepts ${JSON.stringify(m.buffers)}, queue rejects it: ${g.error!.kind}: ${g.error!.message}`);
          const segments = g.segments.map((s) => ({ address: s.address, length: s.length, writable: s.writable }));
          expect(JSON.stringify(segments) === JSON.stringify(m.buffers), () => `${where}: chain ${expected}: queue ${JSON.stringify(segments)}, model ${JSON.stringify(m.buffers)}`);
          const readable = m.buffers.filter((b) => !b.writable);
          const sum = (bs: ModelBuffer[]): number => bs.reduce((s, b) => s + b.length, 0);
          expect(g.readableCount === readable.length, () => `${where}: readableCount ${g.readableCount}, model ${readable.length}`);
          expect(g.readableLength === sum(readable) && g.writableLength === sum(m.buffers) - sum(readable), () => `${where}: lengths differ from the model`);
          for (let i = 0; i < g.segmentCount; i++) {
            const b = m.buffers[i]!;
            const region = r.regions.findIndex((x) => b.address >= x.base && b.address + b.length <= x.base + x.bytes.length);
            const host = b.length > 0 ? r.host + region * REGION_SIZE + (b.address - r.regions[region]!.base) : -1;
            expect(g.hostAt(i) === host, () => `${where}: segment ${i} host address ${g.hostAt(i)}, expected ${host}`);
          }
        }
        writable = g.writableLength;
      }
      // The device returns the chain: the used element lands where the spec puts it.
      const used = Math.floor(writable * step.usedShare);
      queue.addUsed(expected, used);
      const slot = USED_RING + 4 + 8 * (model.nextUsed % c.size);
      model.nextUsed = (model.nextUsed + 1) & 0xffff;
      const id = Number(peek(r, BigInt(slot), 4));
      const len = Number(peek(r, BigInt(slot + 4), 4));
      const idx = Number(peek(r, BigInt(USED_RING + 2), 2));
      expect(id === expected && len === used && idx === model.nextUsed, () => `${where}: used ring has {${id}, ${len}} idx ${idx}, expected {${expected}, ${used}} idx ${model.nextUsed}`);
    }
    checkOnlyUsedRingChanged(r, before, usedStart, usedEnd);
    // Between batches a device re-arms notifications and asks whether to interrupt: neither may throw
    // anything but the fatal errors the model predicts for the next pop.
    queue.needsNotification();
  }
}

function checkOnlyUsedRingChanged(r: Ram, before: Uint8Array[], usedStart: number, usedEnd: number): void {
  r.regions.forEach((g, i) => {
    const old = before[i]!;
    for (let j = 0; j < g.bytes.length; j++) {
      if (g.bytes[j] !== old[j]) {
        const address = g.base + j;
        expect(address >= usedStart && address < usedEnd, () => `the queue wrote guest byte 0x${address.toString(16)}, outside the used ring`);
      }
    }
  });
}

export const splitQueueTarget: FuzzTarget<QueueCase> = {
  name: 'split-queue',
  description: 'split virtqueue + chain walker vs a reference model of virtio 1.2 §2.7 on hostile rings',
  arbitrary: queueCaseArb,
  check: checkQueueCase,
  testRuns: { fixed: 1000, random: 200 },
  dispose() {
    if (ram) munmap(ram.host, 2 * REGION_SIZE);
    ram = undefined;
  },
};
