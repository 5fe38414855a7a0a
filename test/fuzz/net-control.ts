/**
 * Fuzz target: the virtio-net control queue (serveControlCommand, 5.1.6.5) on random commands:
 * any class and command, data of any length, the ack buffer missing, split or malformed chains.
 * It must not throw; a chain with no writable byte (or a malformed one) is returned with used
 * length 0 and nothing written; otherwise exactly the first writable byte changes, to OK only for
 * a well-formed VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET whose handler accepted the 64-bit value read
 * from the command, and to ERR for everything else.
 */
import fc from 'fast-check';
import { serveControlCommand } from '../../src/virtio/devices/net/control.js';
import { ChainBed, chainSpecArb, expect, type ChainSpec } from './chain-bed.js';
import type { FuzzTarget } from './fuzz-target.js';

export interface NetControlCase {
  readonly chain: ChainSpec;
  /** What the offloads handler answers. */
  readonly accept: boolean;
}

const commandArb: fc.Arbitrary<Uint8Array> = fc
  .record({
    cls: fc.oneof({ arbitrary: fc.constant(5), weight: 4 }, { arbitrary: fc.nat({ max: 0xff }), weight: 1 }),
    cmd: fc.oneof({ arbitrary: fc.constant(0), weight: 4 }, { arbitrary: fc.nat({ max: 0xff }), weight: 1 }),
    data: fc.oneof({ arbitrary: fc.uint8Array({ minLength: 8, maxLength: 8 }), weight: 4 }, { arbitrary: fc.uint8Array({ maxLength: 20 }), weight: 1 }),
    length: fc.oneof({ arbitrary: fc.constant(-1), weight: 8 }, { arbitrary: fc.nat({ max: 12 }), weight: 1 }),
  })
  .map(({ cls, cmd, data, length }) => {
    const bytes = Uint8Array.of(cls, cmd, ...data);
    return length < 0 ? bytes : bytes.subarray(0, length);
  });

export const netControlCaseArb: fc.Arbitrary<NetControlCase> = fc.record({
  chain: chainSpecArb(commandArb, fc.oneof({ arbitrary: fc.constant([1] as number[]), weight: 6 }, { arbitrary: fc.array(fc.nat({ max: 4 }), { maxLength: 3 }), weight: 2 })),
  accept: fc.boolean(),
});

let bed: ChainBed | undefined;

export function checkNetControlCase(c: NetControlCase): void {
  bed ??= new ChainBed(16);
  bed.reset();
  const posted = bed.post(c.chain, 0xee);
  if (!posted) return;
  const chain = bed.pop()!;
  bed.snapshot();
  const calls: bigint[] = [];
  const result = serveControlCommand(chain, bed.memory, {
    setGuestOffloads: (offloads) => {
      calls.push(offloads);
      return c.accept;
    },
  });
  const firstWritable = posted.buffers.find((b) => b.writable && b.length > 0);
  if (chain.error || !firstWritable) {
    expect(result.used === 0 && !result.ok, () => `a chain without an ack byte (or malformed) answered ${JSON.stringify(result)}`);
    expect(bed.changesOutside([]).length === 0, () => 'memory changed for a chain that cannot be answered');
    expect(calls.length === 0, () => 'the handler ran for a chain that cannot be answered');
    return;
  }
  expect(result.used === 1, () => `used length ${result.used}`);
  const ack = firstWritable.address;
  const changed = bed.changesOutside([[ack, 1]]);
  expect(changed.length === 0, () => `the command wrote guest byte 0x${changed[0]?.toString(16)}, not the ack`);
  const command = c.chain.readable;
  const wellFormed = command.length === 10 && command[0] === 5 && command[1] === 0;
  expect(calls.length === (wellFormed ? 1 : 0), () => `handler called ${calls.length} times for ${Buffer.from(command).toString('hex')}`);
  if (wellFormed) {
    const value = new DataView(command.buffer, command.byteOffset + 2, 8).getBigUint64(0, true);
    expect(calls[0] === value, () => `handler got 0x${calls[0]?.toString(16)}, the command says 0x${value.toString(16)}`);
  }
  const ok = wellFormed && c.accept;
  expect(result.ok === ok && bed.memory.readU8(ack) === (ok ? 0 : 1), () => `ack ${bed!.memory.readU8(ack)} / ok ${result.ok}, expected ${ok ? 'OK' : 'ERR'}`);
}

export const netControlTarget: FuzzTarget<NetControlCase> = {
  name: 'net-control',
  description: 'virtio-net control queue commands: ack byte only, OK only for a well-formed GUEST_OFFLOADS_SET',
  arbitrary: netControlCaseArb,
  check: checkNetControlCase,
  testRuns: { fixed: 800, random: 200 },
  dispose() {
    bed?.close();
    bed = undefined;
  },
};
