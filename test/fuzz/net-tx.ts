/**
 * Fuzz target: virtio-net transmit (Transmitter, 5.1.6.2) on random frames popped from a real
 * queue and written to /dev/null as the TAP. Each frame's virtio_net_hdr has random flags,
 * gso_type (with and without ECN), gso_size and checksum offsets; frames have any length around
 * the limits; some chains carry writable buffers or are malformed. A model written here from the
 * spec says which frames go out and which are dropped for what reason (malformed, size, header:
 * an offload not negotiated, a checksum outside the frame, GSO without gso_size); the device's
 * counters must agree, every chain must come back once with used length 0, and guest memory must
 * not change outside the used ring.
 */
import { closeSync, openSync } from 'node:fs';
import createDebug from 'debug';
import fc from 'fast-check';
import * as S from '../../src/virtio/devices/net/spec.js';
import { NetStats } from '../../src/virtio/devices/net/stats.js';
import { TransmitBuffers, Transmitter } from '../../src/virtio/devices/net/tx.js';
import { ChainBed, chainSpecArb, expect, type ChainSpec } from './chain-bed.js';
import type { FuzzTarget } from './fuzz-target.js';
import { RecordingInterrupt } from '../helpers/recording-interrupt.js';

/** Transmit offload feature bits (5.1.3): CSUM 0, HOST_TSO4 11, HOST_TSO6 12, HOST_ECN 13, HOST_UFO 14, HOST_USO 56. */
const TX_FEATURE_BITS = [0, 11, 12, 13, 14, 56] as const;

export interface NetTxCase {
  readonly features: boolean[];
  readonly chains: ChainSpec[];
}

const headerArb = fc.record({
  flags: fc.oneof({ arbitrary: fc.constantFrom(0, 1, 2, 3), weight: 6 }, { arbitrary: fc.nat({ max: 0xff }), weight: 1 }),
  gsoType: fc.oneof({ arbitrary: fc.constantFrom(0, 0, 1, 3, 4, 5, 0x81, 0x84, 0x85), weight: 8 }, { arbitrary: fc.nat({ max: 0xff }), weight: 1 }),
  hdrLen: fc.nat({ max: 0xffff }),
  gsoSize: fc.oneof(fc.constantFrom(0, 1448, 1), fc.nat({ max: 0xffff })),
  csumStart: fc.oneof(fc.integer({ min: 0, max: 80 }), fc.nat({ max: 0xffff })),
  csumOffset: fc.oneof(fc.constantFrom(6, 16, 0), fc.nat({ max: 0xffff })),
  frameLength: fc.oneof(
    { arbitrary: fc.integer({ min: 0, max: 120 }), weight: 4 },
    { arbitrary: fc.constantFrom(13, 14, 15, 1514, S.NET_MAX_FRAME, S.NET_MAX_FRAME + 1), weight: 2 },
    { arbitrary: fc.nat({ max: 70000 }), weight: 1 },
  ),
  headerBytes: fc.oneof({ arbitrary: fc.constant(12), weight: 12 }, { arbitrary: fc.nat({ max: 11 }), weight: 1 }),
});

const readableArb: fc.Arbitrary<Uint8Array> = headerArb.map((h) => {
  const bytes = new Uint8Array(h.headerBytes === 12 ? 12 + h.frameLength : h.headerBytes);
  const header = new Uint8Array(12);
  const v = new DataView(header.buffer);
  v.setUint8(0, h.flags);
  v.setUint8(1, h.gsoType);
  v.setUint16(2, h.hdrLen, true);
  v.setUint16(4, h.gsoSize, true);
  v.setUint16(6, h.csumStart, true);
  v.setUint16(8, h.csumOffset, true);
  bytes.set(header.subarray(0, Math.min(12, bytes.length)));
  for (let i = 12; i < bytes.length; i++) bytes[i] = (i * 7) & 0xff;
  return bytes;
});

export const netTxCaseArb: fc.Arbitrary<NetTxCase> = fc.record({
  features: fc.array(fc.boolean(), { minLength: TX_FEATURE_BITS.length, maxLength: TX_FEATURE_BITS.length }),
  chains: fc.array(
    chainSpecArb(readableArb, fc.oneof({ arbitrary: fc.constant([] as number[]), weight: 12 }, { arbitrary: fc.array(fc.nat({ max: 64 }), { minLength: 1, maxLength: 2 }), weight: 1 })),
    { minLength: 1, maxLength: 8 },
  ),
});

type Verdict = 'sent' | 'txDroppedMalformed' | 'txDroppedSize' | 'txDroppedHeader';

/** What the device must do with one frame, from the chain spec alone. */
function modelVerdict(spec: ChainSpec, has: (bit: number) => boolean): Verdict {
  const readableBuffers = spec.readable.length > 0 || spec.writable.length === 0;
  const malformedOrder = spec.writableFirst && spec.writable.length > 0 && readableBuffers;
  if (malformedOrder || spec.writable.some((n) => n > 0)) return 'txDroppedMalformed';
  const length = spec.readable.length;
  if (length < 12 + 14 || length > 12 + S.NET_MAX_FRAME) return 'txDroppedSize';
  const v = new DataView(spec.readable.buffer, spec.readable.byteOffset, 12);
  const flags = v.getUint8(0);
  const gsoType = v.getUint8(1);
  const frame = length - 12;
  // 5.1.6.2: NEEDS_CSUM only with VIRTIO_NET_F_CSUM; the checksum goes at csum_start + csum_offset, inside the frame.
  if (flags & 1 && (!has(0) || v.getUint16(6, true) + v.getUint16(8, true) + 2 > frame)) return 'txDroppedHeader';
  if (gsoType === 0) return 'sent';
  // GSO: ECN needs HOST_ECN; TCPv4 HOST_TSO4, TCPv6 HOST_TSO6, UDP HOST_UFO, UDP_L4 HOST_USO; and a gso_size.
  if (gsoType & 0x80 && !has(13)) return 'txDroppedHeader';
  const needed = { 1: 11, 4: 12, 3: 14, 5: 56 }[gsoType & 0x7f];
  if (needed === undefined || !has(needed) || v.getUint16(4, true) === 0) return 'txDroppedHeader';
  return 'sent';
}

let bed: ChainBed | undefined;
let buffers: TransmitBuffers | undefined;
let tapFd = -1;
const log = createDebug('kvm:fuzz:net-tx');

export function checkNetTxCase(c: NetTxCase): void {
  bed ??= new ChainBed(64);
  buffers ??= new TransmitBuffers();
  if (tapFd < 0) tapFd = openSync('/dev/null', 'w');
  bed.reset();
  const features = TX_FEATURE_BITS.reduce((f, bit, i) => (c.features[i] ? f | (1n << BigInt(bit)) : f), 0n);
  const has = (bit: number): boolean => (features & (1n << BigInt(bit))) !== 0n;
  const expected = { sent: 0, bytes: 0, txDroppedMalformed: 0, txDroppedSize: 0, txDroppedHeader: 0 };
  const heads: number[] = [];
  for (const spec of c.chains) {
    const posted = bed.post(spec);
    if (!posted) break;
    heads.push(posted.head);
    const verdict = modelVerdict(spec, has);
    if (verdict === 'sent') {
      expected.sent++;
      expected.bytes += spec.readable.length - 12;
    } else expected[verdict]++;
  }
  const stats = new NetStats();
  const interrupt = new RecordingInterrupt();
  const transmitter = new Transmitter(
    { memory: bed.memory, queue: bed.queue, queueIndex: 1, interrupt, tapFd, stats, log, features },
    buffers,
  );
  bed.snapshot();
  transmitter.transmit();
  const got = {
    sent: stats.get('txFrames'),
    bytes: stats.get('txBytes'),
    txDroppedMalformed: stats.get('txDroppedMalformed'),
    txDroppedSize: stats.get('txDroppedSize'),
    txDroppedHeader: stats.get('txDroppedHeader'),
  };
  expect(stats.get('txErrors') === 0, () => `/dev/null refused ${stats.get('txErrors')} frames`);
  expect(JSON.stringify(got) === JSON.stringify(expected), () => `counters ${JSON.stringify(got)}, model ${JSON.stringify(expected)}`);
  // Used order need not be avail order (2.7.8): dropped frames come back before the batch that is sent.
  const used = bed.driver.takeUsed().sort((a, b) => a.id - b.id);
  expect(
    JSON.stringify(used) === JSON.stringify([...heads].sort((a, b) => a - b).map((id) => ({ id, len: 0 }))),
    () => `used ring ${JSON.stringify(used)}, expected every head once with length 0: ${JSON.stringify(heads)}`,
  );
  const signals = interrupt.take();
  expect(
    heads.length === 0 ? signals.length === 0 : JSON.stringify(signals) === JSON.stringify([{ kind: 'used', queue: 1 }]),
    () => `${JSON.stringify(signals)}: for one kick, one used-buffer interrupt on the transmit queue (none if nothing was posted)`,
  );
  const changed = bed.changesOutside([bed.usedRingRange]);
  expect(changed.length === 0, () => `transmit wrote guest memory at 0x${changed[0]?.toString(16)}`);
}

export const netTxTarget: FuzzTarget<NetTxCase> = {
  name: 'net-tx',
  description: 'virtio-net transmit: drop/send verdicts per virtio_net_hdr vs a model, used lengths 0, no guest writes',
  arbitrary: netTxCaseArb,
  check: checkNetTxCase,
  testRuns: { fixed: 500, random: 120 },
  dispose() {
    bed?.close();
    bed = undefined;
    if (tapFd >= 0) closeSync(tapFd);
    tapFd = -1;
  },
};
