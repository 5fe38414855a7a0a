/**
 * Fuzz target: a whole virtio-rng device (VirtioRng, in this thread) on random request chains,
 * among them the audit's hostile one: many descriptors that all point at one buffer, asking for
 * far more entropy than the buffer holds. The data-plane loop is played here: the device is
 * kicked, and called again for as long as it asks to be resumed (its per-wake-up budget).
 * It checks:
 *
 * - guest memory changes only inside writable buffers of the posted chains, or the used ring;
 * - every chain comes back once; a malformed one (writable before readable) with length 0; any
 *   other with min(its writable bytes, RNG_MAX_BYTES_PER_REQUEST);
 * - the counters agree with the used ring (requests served, bytes given);
 * - one wake-up never serves more than the budget allows beyond one request, and the device
 *   asks for a resume whenever it leaves chains behind.
 */
import createDebug from 'debug';
import fc from 'fast-check';
import { VirtioRng, RNG_MAX_BYTES_PER_REQUEST } from '../../src/virtio/devices/rng.js';
import { WAKEUP_BYTE_BUDGET } from '../../src/virtio/devices/drain.js';
import { DeviceCounters } from '../../src/virtio/device-counters.js';
import { featureBit, VIRTIO_F_VERSION_1 } from '../../src/virtio/virtio-constants.js';
import { ChainBed, expect, type ChainSpec, type PostedChain } from './chain-bed.js';
import type { FuzzTarget } from './fuzz-target.js';

const QUEUE_SIZE = 64;

/** One buffer that every writable descriptor of a chain points at. */
interface AliasChain {
  readonly length: number;
  readonly descriptors: number;
  readonly indirect: boolean;
}

export interface RngDeviceCase {
  readonly chains: ChainSpec[];
  readonly alias: AliasChain | undefined;
}

const writableArb = fc.array(
  fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 64 }), weight: 3 },
    { arbitrary: fc.integer({ min: 1, max: 80 * 1024 }), weight: 2 },
  ),
  { minLength: 0, maxLength: 3 },
);

export const rngDeviceCaseArb: fc.Arbitrary<RngDeviceCase> = fc.record({
  chains: fc.array(
    fc.record({
      // virtio-rng buffers are device-writable; a readable one is ignored or, before the writable ones, fine.
      readable: fc.oneof({ arbitrary: fc.constant(new Uint8Array(0)), weight: 4 }, { arbitrary: fc.uint8Array({ minLength: 1, maxLength: 32 }), weight: 1 }),
      cuts: fc.constant([] as number[]),
      writable: writableArb,
      indirect: fc.boolean(),
      writableFirst: fc.oneof({ arbitrary: fc.constant(false), weight: 10 }, { arbitrary: fc.constant(true), weight: 1 }),
    }),
    { minLength: 0, maxLength: 8 },
  ),
  alias: fc.option(
    fc.record({ length: fc.integer({ min: 1, max: 64 * 1024 }), descriptors: fc.integer({ min: 1, max: 64 }), indirect: fc.constant(true) }),
    { nil: undefined },
  ),
});

const log = createDebug('kvm:fuzz:rng');
let bed: ChainBed | undefined;

/** A chain is malformed when a writable buffer comes before a readable one (2.7.4.2). */
function malformed(spec: ChainSpec): boolean {
  return spec.writableFirst && spec.readable.length > 0 && spec.writable.length > 0;
}

export function checkRngDeviceCase(c: RngDeviceCase): void {
  bed ??= new ChainBed(QUEUE_SIZE);
  bed.reset();
  const b = bed;
  const posted: Array<{ chain: PostedChain; limit: number }> = [];
  if (c.alias) {
    // Indirect: one ring descriptor whatever its length, counted by the bed like its own chains.
    const address = b.allocate(c.alias.length)!;
    const buffers = Array.from({ length: c.alias.descriptors }, () => ({ address, length: c.alias!.length, writable: true }));
    const chain = b.postBuffers(buffers, c.alias.indirect)!;
    posted.push({ chain: { head: chain.head, buffers: [buffers[0]!] }, limit: Math.min(c.alias.length * c.alias.descriptors, RNG_MAX_BYTES_PER_REQUEST) });
  }
  for (const spec of c.chains) {
    const chain = b.post(spec);
    if (!chain) break;
    const writable = spec.writable.reduce((sum, n) => sum + n, 0);
    posted.push({ chain, limit: malformed(spec) ? 0 : Math.min(writable, RNG_MAX_BYTES_PER_REQUEST) });
  }
  const counters = new DeviceCounters(['requests', 'bytes'], DeviceCounters.allocate(['requests', 'bytes'], 1));
  const device = new VirtioRng({ counters: counters.shared });
  let resumes = 0;
  const failures: string[] = [];
  device.activate({
    memory: b.memory,
    queues: [b.queue],
    features: featureBit(VIRTIO_F_VERSION_1),
    interrupt: { signalUsed: () => {}, signalConfigChange: () => {} },
    host: {
      watch: () => {},
      unwatch: () => {},
      resume: () => resumes++,
      failDevice: (reason) => failures.push(reason),
      log,
    },
  });
  b.snapshot();
  const used: Array<{ id: number; len: number }> = [];
  let wakeups = 0;
  let resumeAsked = true;
  try {
    // The data-plane loop: a kick, then another call each time the device asks to be resumed.
    while (resumeAsked && wakeups < 1000) {
      const before = resumes;
      device.queueNotified(0);
      wakeups++;
      resumeAsked = resumes > before;
      const batch = b.driver.takeUsed();
      const batchBytes = batch.reduce((sum, u) => sum + u.len, 0);
      expect(
        batchBytes < WAKEUP_BYTE_BUDGET + RNG_MAX_BYTES_PER_REQUEST && batch.length <= QUEUE_SIZE,
        () => `one wake-up served ${batch.length} chains, ${batchBytes} bytes (budget ${WAKEUP_BYTE_BUDGET})`,
      );
      used.push(...batch);
    }
    expect(!resumeAsked, () => 'the device asked to be resumed 1000 times');
  } finally {
    device.reset();
  }
  expect(failures.length === 0, () => `the device failed: ${failures[0]}`);

  expect(used.length === posted.length, () => `${used.length} used elements for ${posted.length} chains`);
  const limits = new Map(posted.map((p) => [p.chain.head, p.limit] as const));
  let bytes = 0;
  for (const u of used) {
    expect(limits.has(u.id), () => `used id ${u.id} was not posted`);
    expect(u.len === limits.get(u.id), () => `chain ${u.id}: used length ${u.len}, expected ${limits.get(u.id)}`);
    limits.delete(u.id);
    bytes += u.len;
  }
  const snapshot = counters.snapshot();
  expect(snapshot.bytes === bytes, () => `counted ${snapshot.bytes} bytes, the used ring says ${bytes}`);
  const served = posted.filter((_, i) => !(i >= (c.alias ? 1 : 0) && malformed(c.chains[i - (c.alias ? 1 : 0)]!))).length;
  expect(snapshot.requests === served, () => `counted ${snapshot.requests} requests, ${served} were served`);

  const allowed: Array<readonly [number, number]> = [b.usedRingRange];
  for (const p of posted) if (p.limit > 0) for (const x of p.chain.buffers) if (x.writable) allowed.push([x.address, x.length]);
  const changed = b.changesOutside(allowed);
  expect(changed.length === 0, () => `the device wrote guest byte 0x${changed[0]!.toString(16)}, outside every writable buffer`);
}

export const rngDeviceTarget: FuzzTarget<RngDeviceCase> = {
  name: 'rng-device',
  description: 'whole virtio-rng on random and aliased chains: writes only in writable buffers, used = min(writable, cap), counters agree',
  arbitrary: rngDeviceCaseArb,
  check: checkRngDeviceCase,
  testRuns: { fixed: 100, random: 40 },
  dispose() {
    bed?.close();
    bed = undefined;
  },
};
