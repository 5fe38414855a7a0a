/**
 * Bounded work per wake-up for virtio-rng and virtio-console, in process over ArrayBuffer guest
 * memory: a chain whose descriptors all name one buffer asks for up to 2^32 - 1 bytes, and a full
 * queue for 256 such chains. Each wake-up serves a bounded share and asks its loop to resume.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { closeSync, mkdtempSync, openSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import createDebug from 'debug';
import { GuestMemory } from '../../../src/vmm/guest-memory.js';
import { SplitQueue } from '../../../src/virtio/queue.js';
import { RNG_MAX_BYTES_PER_REQUEST, VirtioRng } from '../../../src/virtio/devices/rng.js';
import { CONSOLE_TRANSMITQ, VirtioConsole } from '../../../src/virtio/devices/console.js';
import { WAKEUP_BYTE_BUDGET } from '../../../src/virtio/devices/drain.js';
import type { VirtioDevice } from '../../../src/virtio/virtio-device.js';
import { MockSplitQueueDriver } from '../mock-driver.js';
import { RecordingInterrupt } from '../../helpers/recording-interrupt.js';

const MiB = 1 << 20;
const RING = 0x1000;
const RING_STRIDE = 0x10000;
const BUFFER = 0x100000;

/** Activates `device` with `queues` rings of 256; returns the drivers and the resume calls made. */
function activate(device: VirtioDevice, queues: number, memory = GuestMemory.fromLayout([[0, 32 * MiB]])) {
  const drivers = Array.from({ length: queues }, (_, q) => MockSplitQueueDriver.create(memory, RING + q * RING_STRIDE, 256));
  const resumed: number[] = [];
  const interrupt = new RecordingInterrupt();
  device.activate({
    memory,
    queues: drivers.map((d) => new SplitQueue(memory, d.layout, { eventIdx: false, indirect: false })),
    features: 0n,
    interrupt,
    host: { watch: () => {}, unwatch: () => {}, resume: (q) => resumed.push(q), failDevice: (r) => assert.unreachable(r), log: createDebug('kvm:test') },
  });
  return { memory, drivers, resumed, interrupt };
}

/** 255 descriptors naming the same `length` bytes at BUFFER. */
const sameBuffer = (length: number, writable: boolean) => Array.from({ length: 255 }, () => ({ address: BUFFER, length, writable }));

test('virtio-rng: a chain naming one 16 MiB buffer 255 times gets RNG_MAX_BYTES_PER_REQUEST bytes', () => {
  const rng = new VirtioRng();
  const { memory, drivers } = activate(rng, 1);
  const head = drivers[0]!.addChain(sameBuffer(16 * MiB, true));
  const started = performance.now();
  rng.queueNotified(0);
  assert.ok(performance.now() - started < 500, 'served at once');
  assert.equal(drivers[0]!.takeUsed(), [{ id: head, len: RNG_MAX_BYTES_PER_REQUEST }]);
  assert.ok(memory.slice(BUFFER + RNG_MAX_BYTES_PER_REQUEST, 16 * MiB - RNG_MAX_BYTES_PER_REQUEST).every((b) => b === 0), 'nothing beyond');
});

test('virtio-rng: one wake-up serves about WAKEUP_BYTE_BUDGET bytes of a full queue, then asks to resume', () => {
  const rng = new VirtioRng();
  const { drivers, resumed, interrupt } = activate(rng, 1);
  const chains = 200;
  for (let i = 0; i < chains; i++) drivers[0]!.addChain([{ address: BUFFER + i * 65536, length: 65536, writable: true }]);
  rng.queueNotified(0);
  const first = drivers[0]!.takeUsed().length;
  assert.is(first, WAKEUP_BYTE_BUDGET / 65536);
  assert.equal(resumed, [0]);
  assert.is(interrupt.takeUsed(0), 1, 'the share served before resuming is signalled at once');
  // The loop calls back as asked until the queue is empty.
  let total = first;
  for (let wakeups = 1; resumed.length === wakeups && wakeups < chains; wakeups++) {
    rng.queueNotified(0);
    total += drivers[0]!.takeUsed().length;
  }
  assert.is(total, chains);
});

test('virtio-console: a chain naming one 16 MiB buffer 255 times is written WAKEUP_BYTE_BUDGET per wake-up, and a reset drops the rest', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-console-budget-'));
  const output = path.join(dir, 'out');
  const outputFd = openSync(output, 'w');
  const inputFd = openSync('/dev/null', 'r');
  try {
    const console_ = new VirtioConsole({ inputFd, outputFd });
    const { drivers, resumed } = activate(console_, 2);
    drivers[CONSOLE_TRANSMITQ]!.addChain(sameBuffer(16 * MiB, false));
    const started = performance.now();
    console_.queueNotified(CONSOLE_TRANSMITQ);
    assert.ok(performance.now() - started < 500, 'the wake-up ends at once');
    assert.is(statSync(output).size, WAKEUP_BYTE_BUDGET, 'bytes written in one wake-up');
    assert.equal(resumed, [CONSOLE_TRANSMITQ]);
    assert.equal(drivers[CONSOLE_TRANSMITQ]!.takeUsed(), [], 'the chain is not done');
    console_.queueNotified(CONSOLE_TRANSMITQ);
    assert.is(statSync(output).size, 2 * WAKEUP_BYTE_BUDGET, 'the next wake-up goes on where it stopped');
    console_.reset();
    console_.queueNotified(CONSOLE_TRANSMITQ);
    assert.is(statSync(output).size, 2 * WAKEUP_BYTE_BUDGET, 'nothing written after the reset');
  } finally {
    closeSync(outputFd);
    closeSync(inputFd);
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
