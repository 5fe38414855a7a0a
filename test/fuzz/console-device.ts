/**
 * Fuzz target: a whole virtio-console device (VirtioConsole, in this thread) on random chains,
 * one direction a case. The data-plane loop is played here: a kick, then another call each time
 * the device asks to be resumed (its per-wake-up budget).
 *
 * - transmit (guest → host, queue 1), output to a file: the file holds exactly the readable
 *   bytes of the well-formed chains, in ring order (the audit's aliased chain, one buffer named
 *   by up to 64 descriptors, counts that buffer once per descriptor); every chain comes back
 *   once with length 0; no wake-up writes more than the budget; the guest's RAM is not written.
 * - receive (host → guest, queue 0), input from a pipe: the bytes the guest got, chain after
 *   chain, are the input's first bytes; each used length is at most the chain's writable bytes;
 *   either all the input arrived or every chain was used; writes only inside writable buffers.
 */
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createDebug from 'debug';
import fc from 'fast-check';
import { CONSOLE_RECEIVEQ, CONSOLE_TRANSMITQ, VirtioConsole } from '../../src/virtio/devices/console.js';
import { WAKEUP_BYTE_BUDGET } from '../../src/virtio/devices/drain.js';
import type { SplitQueue } from '../../src/virtio/queue.js';
import { featureBit, VIRTIO_F_VERSION_1 } from '../../src/virtio/virtio-constants.js';
import { close, pipe, setNonBlocking, writeFully } from '../../src/sys/fd.js';
import { ChainBed, expect, type ChainSpec, type PostedChain } from './chain-bed.js';
import { fillPattern, type FuzzTarget } from './fuzz-target.js';

const QUEUE_SIZE = 64;
/** Below a pipe's 64 KiB, so the whole input is written before the device runs. */
const MAX_INPUT = 60_000;

export interface ConsoleDeviceCase {
  readonly direction: 'transmit' | 'receive';
  readonly chains: ChainSpec[];
  /** Transmit: one buffer of this many bytes named by `descriptors` descriptors. */
  readonly alias: { readonly bytes: Uint8Array; readonly descriptors: number } | undefined;
  /** Receive: what the host types. */
  readonly input: Uint8Array;
}

/** Bytes of a length that is often large (fast-check favours small ones), filled from a seed. */
function bytesArb(small: number, large: number): fc.Arbitrary<Uint8Array> {
  return fc
    .tuple(fc.oneof(fc.integer({ min: 0, max: small }), fc.integer({ min: small, max: large })), fc.integer())
    .map(([length, seed]) => {
      const bytes = new Uint8Array(length);
      fillPattern(bytes, seed);
      return bytes;
    });
}

const chainArb = (direction: 'transmit' | 'receive'): fc.Arbitrary<ChainSpec> =>
  fc.record({
    readable: direction === 'transmit' ? bytesArb(16, 6000) : fc.oneof({ arbitrary: fc.constant(new Uint8Array(0)), weight: 6 }, { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 8 }), weight: 1 }),
    cuts: fc.oneof({ arbitrary: fc.constant([] as number[]), weight: 3 }, { arbitrary: fc.array(fc.integer({ min: 0, max: 700 }), { minLength: 1, maxLength: 3 }), weight: 1 }),
    writable: direction === 'receive' ? fc.array(fc.integer({ min: 0, max: 9000 }), { maxLength: 3 }) : fc.oneof({ arbitrary: fc.constant([] as number[]), weight: 8 }, { arbitrary: fc.array(fc.integer({ min: 0, max: 16 }), { minLength: 1, maxLength: 2 }), weight: 1 }),
    indirect: fc.boolean(),
    writableFirst: fc.oneof({ arbitrary: fc.constant(false), weight: 12 }, { arbitrary: fc.constant(true), weight: 1 }),
  });

export const consoleDeviceCaseArb: fc.Arbitrary<ConsoleDeviceCase> = fc.constantFrom('transmit' as const, 'receive' as const).chain((direction) =>
  fc.record({
    direction: fc.constant(direction),
    chains: fc.array(chainArb(direction), { maxLength: 8 }),
    alias:
      direction === 'transmit'
        ? fc.option(
            fc.record({ bytes: bytesArb(16, 64 * 1024).filter((b) => b.length > 0), descriptors: fc.integer({ min: 1, max: 64 }) }),
            { nil: undefined },
          )
        : fc.constant(undefined),
    input: direction === 'receive' ? bytesArb(16, MAX_INPUT) : fc.constant(new Uint8Array(0)),
  }),
);

const log = createDebug('kvm:fuzz:console');
let bed: ChainBed | undefined;
let dir: string | undefined;

/** A writable buffer before a readable one makes a chain malformed (2.7.4.2): used length 0, nothing done. */
function malformed(spec: ChainSpec): boolean {
  return spec.writableFirst && spec.readable.length > 0 && spec.writable.length > 0;
}

export function checkConsoleDeviceCase(c: ConsoleDeviceCase): void {
  bed ??= new ChainBed(QUEUE_SIZE);
  dir ??= mkdtempSync(path.join(os.tmpdir(), 'kvm-fuzz-console-'));
  bed.reset();
  const b = bed;
  const transmit = c.direction === 'transmit';
  const posted: Array<{ chain: PostedChain; spec: ChainSpec | undefined }> = [];
  let expectedOutput: Uint8Array[] = [];
  if (c.alias) {
    const address = b.allocate(c.alias.bytes.length)!;
    b.bytes.set(c.alias.bytes, address);
    const buffers = Array.from({ length: c.alias.descriptors }, () => ({ address, length: c.alias!.bytes.length, writable: false }));
    const chain = b.postBuffers(buffers, true)!;
    posted.push({ chain: { head: chain.head, buffers: [buffers[0]!] }, spec: undefined });
    expectedOutput = buffers.map(() => c.alias!.bytes);
  }
  for (const spec of c.chains) {
    const chain = b.post(spec);
    if (!chain) break;
    posted.push({ chain, spec });
    if (transmit && !malformed(spec)) expectedOutput.push(spec.readable);
  }

  const outputPath = path.join(dir, 'output');
  const outputFd = openSync(outputPath, 'w');
  const [inputFd, inputWrite] = pipe();
  setNonBlocking(inputFd);
  if (c.input.length > 0) writeFully(inputWrite, c.input);
  const device = new VirtioConsole({ inputFd, outputFd });
  const queues: SplitQueue[] = [];
  queues[transmit ? CONSOLE_TRANSMITQ : CONSOLE_RECEIVEQ] = b.queue;
  let resumes = 0;
  const failures: string[] = [];
  device.activate({
    memory: b.memory,
    queues,
    features: featureBit(VIRTIO_F_VERSION_1),
    interrupt: { signalUsed: () => {}, signalConfigChange: () => {} },
    host: { watch: () => {}, unwatch: () => {}, resume: () => resumes++, failDevice: (reason) => failures.push(reason), log },
  });
  b.snapshot();
  const used: Array<{ id: number; len: number }> = [];
  let resumeAsked = true;
  let wakeups = 0;
  try {
    while (resumeAsked && wakeups < 1000) {
      const before = resumes;
      const writtenBefore = transmit ? readFileSync(outputPath).length : 0;
      device.queueNotified(transmit ? CONSOLE_TRANSMITQ : CONSOLE_RECEIVEQ);
      wakeups++;
      resumeAsked = resumes > before;
      if (transmit) {
        const wrote = readFileSync(outputPath).length - writtenBefore;
        expect(wrote <= WAKEUP_BYTE_BUDGET, () => `one wake-up wrote ${wrote} bytes (budget ${WAKEUP_BYTE_BUDGET})`);
      }
      used.push(...b.driver.takeUsed());
    }
    expect(!resumeAsked, () => 'the device asked to be resumed 1000 times');
  } finally {
    device.reset();
    closeSync(outputFd);
    close(inputFd);
    close(inputWrite);
  }
  expect(failures.length === 0, () => `the device failed: ${failures[0]}`);
  const byHead = new Map(posted.map((p) => [p.chain.head, p] as const));
  const seen = new Set<number>();
  for (const u of used) {
    expect(byHead.has(u.id) && !seen.has(u.id), () => `used id ${u.id} was not posted or came back twice`);
    seen.add(u.id);
  }

  if (transmit) {
    expect(used.length === posted.length, () => `${used.length} used elements for ${posted.length} chains`);
    expect(used.every((u) => u.len === 0), () => 'a transmit chain came back with a used length');
    const output = readFileSync(outputPath);
    const expected = Buffer.concat(expectedOutput);
    expect(output.equals(expected), () => `the console got ${output.length} bytes, the guest sent ${expected.length} (or other bytes)`);
    const changed = b.changesOutside([b.usedRingRange]);
    expect(changed.length === 0, () => `transmit wrote guest byte 0x${changed[0]!.toString(16)}`);
    return;
  }

  // Receive: the guest's bytes, chain after chain, are the input's beginning.
  const got: Uint8Array[] = [];
  for (const u of used) {
    const { chain, spec } = byHead.get(u.id)!;
    const capacity = spec && !malformed(spec) ? spec.writable.reduce((s, n) => s + n, 0) : 0;
    expect(u.len <= capacity, () => `chain ${u.id}: used length ${u.len} > writable ${capacity}`);
    let left = u.len;
    for (const x of chain.buffers) {
      if (!x.writable || left === 0) continue;
      const n = Math.min(left, x.length);
      got.push(b.memory.slice(x.address, n));
      left -= n;
    }
  }
  const delivered = Buffer.concat(got);
  expect(delivered.equals(Buffer.from(c.input.subarray(0, delivered.length))), () => `the guest got ${delivered.length} bytes that are not the input's first ones`);
  expect(
    delivered.length === c.input.length || used.length === posted.length,
    () => `${delivered.length} of ${c.input.length} input bytes delivered with ${posted.length - used.length} chains unused`,
  );
  const allowed: Array<readonly [number, number]> = [b.usedRingRange];
  for (const p of posted) if (p.spec && !malformed(p.spec)) for (const x of p.chain.buffers) if (x.writable) allowed.push([x.address, x.length]);
  const changed = b.changesOutside(allowed);
  expect(changed.length === 0, () => `receive wrote guest byte 0x${changed[0]!.toString(16)}, outside every writable buffer`);
}

export const consoleDeviceTarget: FuzzTarget<ConsoleDeviceCase> = {
  name: 'console-device',
  description: 'whole virtio-console: output is exactly the readable bytes in order, input arrives in order inside writable buffers',
  arbitrary: consoleDeviceCaseArb,
  check: checkConsoleDeviceCase,
  testRuns: { fixed: 100, random: 40 },
  dispose() {
    bed?.close();
    bed = undefined;
    if (dir) rmSync(dir, { recursive: true, force: true });
    dir = undefined;
  },
};
