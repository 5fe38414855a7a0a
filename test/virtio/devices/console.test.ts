/** virtio-console through the host-side driver harness: output straight from guest buffers, input only into posted buffers. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readSync, writeSync } from 'node:fs';
import { VirtioMmioHarness } from '../../helpers/virtio-harness.js';
import { CONSOLE_RECEIVEQ, CONSOLE_TRANSMITQ, virtioConsole, type ConsoleOptions } from '../../../src/virtio/devices/console.js';
import { configureVirtioDevice } from '../../../src/virtio/virtio-device.js';
import { O_CLOEXEC, close, pipe, setNonBlocking } from '../../../src/sys/fd.js';
import { bytesReadable } from '../../../src/sys/ioctl.js';
import * as V from '../../../src/virtio/virtio-constants.js';

async function harness() {
  const [inputRead, inputWrite] = pipe(O_CLOEXEC);
  setNonBlocking(inputRead);
  const [outputRead, outputWrite] = pipe(O_CLOEXEC);
  const options: ConsoleOptions = { inputFd: inputRead, outputFd: outputWrite };
  const h = new VirtioMmioHarness({
    name: 'virtio-console',
    device: configureVirtioDevice(virtioConsole, options),
  });
  await h.ready();
  h.negotiate(V.featureBit(V.VIRTIO_F_VERSION_1) | V.featureBit(V.VIRTIO_F_RING_EVENT_IDX));
  const rx = h.setupQueue(CONSOLE_RECEIVEQ, 16);
  const tx = h.setupQueue(CONSOLE_TRANSMITQ, 16);
  h.driverOk();
  const readOutput = async (length: number): Promise<string> => {
    const deadline = Date.now() + 2000;
    while (bytesReadable(outputRead) < length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    const buffer = Buffer.alloc(length);
    const n = bytesReadable(outputRead) > 0 ? readSync(outputRead, buffer) : 0;
    return buffer.subarray(0, n).toString();
  };
  const close_ = async (): Promise<void> => {
    await h.close();
    for (const fd of [inputRead, inputWrite, outputRead, outputWrite]) close(fd);
  };
  return { h, rx, tx, inputWrite, readOutput, close: close_ };
}

function put(h: VirtioMmioHarness, text: string): number {
  const bytes = new TextEncoder().encode(text);
  const address = h.allocate(bytes.length);
  h.memory.write(address, bytes);
  return address;
}

test('transmit: bytes of a multi-buffer chain reach the output in order', async () => {
  const c = await harness();
  try {
    const head = c.tx.addChain([
      { address: put(c.h, 'hello '), length: 6, writable: false },
      { address: put(c.h, 'over virtio-console\n'), length: 20, writable: false },
    ]);
    c.h.kick(CONSOLE_TRANSMITQ);
    assert.is(await c.readOutput(26), 'hello over virtio-console\n');
    assert.equal(await c.h.waitForUsed(CONSOLE_TRANSMITQ, 1), [{ id: head, len: 0 }]);
  } finally {
    await c.close();
  }
});

test('receive: input waits in the host until the guest posts a buffer, then lands in it', async () => {
  const c = await harness();
  try {
    writeSync(c.inputWrite, 'abc');
    await new Promise((r) => setTimeout(r, 50));
    assert.is(c.rx.usedIndex, 0, 'nothing delivered without a receive buffer');
    const address = c.h.allocate(64);
    const head = c.rx.addChain([{ address, length: 64, writable: true }]);
    c.h.kick(CONSOLE_RECEIVEQ);
    assert.equal(await c.h.waitForUsed(CONSOLE_RECEIVEQ, 1), [{ id: head, len: 3 }]);
    assert.is(Buffer.from(c.h.memory.slice(address, 3)).toString(), 'abc');
    // With a buffer already posted, new input is delivered as it arrives.
    const address2 = c.h.allocate(8);
    const head2 = c.rx.addChain([{ address: address2, length: 8, writable: true }]);
    c.h.kick(CONSOLE_RECEIVEQ);
    writeSync(c.inputWrite, 'xyz');
    assert.equal(await c.h.waitForUsed(CONSOLE_RECEIVEQ, 1), [{ id: head2, len: 3 }]);
    assert.is(Buffer.from(c.h.memory.slice(address2, 3)).toString(), 'xyz');
  } finally {
    await c.close();
  }
});

test('input longer than the posted buffers waits for more buffers and loses nothing', async () => {
  const c = await harness();
  try {
    const addresses = [c.h.allocate(4), c.h.allocate(4)];
    addresses.forEach((address) => c.rx.addChain([{ address, length: 4, writable: true }]));
    c.h.kick(CONSOLE_RECEIVEQ);
    writeSync(c.inputWrite, '0123456789');
    const first = await c.h.waitForUsed(CONSOLE_RECEIVEQ, 2);
    assert.equal(first.map((u) => u.len), [4, 4]);
    const third = c.h.allocate(16);
    c.rx.addChain([{ address: third, length: 16, writable: true }]);
    c.h.kick(CONSOLE_RECEIVEQ);
    const rest = await c.h.waitForUsed(CONSOLE_RECEIVEQ, 1);
    assert.is(rest[0]!.len, 2);
    const all = [...addresses.map((a) => c.h.memory.slice(a, 4)), c.h.memory.slice(third, 2)].map((b) => Buffer.from(b).toString()).join('');
    assert.is(all, '0123456789');
  } finally {
    await c.close();
  }
});

test.run();
