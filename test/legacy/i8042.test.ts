import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { testDeviceContext } from '../helpers/device-context.js';
import { I8042_COMMAND_PORT, I8042_DATA_PORT, createI8042State, i8042Device } from '../../src/legacy/i8042.js';
import type { VmExit } from '../../src/base/exit-status.js';
import type { BusDevice } from '../../src/vmm/bus.js';

const COMMAND = I8042_COMMAND_PORT - I8042_DATA_PORT;

function controller() {
  const exits: VmExit[] = [];
  const context = testDeviceContext(exits);
  const dev = i8042Device.create({ state: createI8042State() }, context) as BusDevice;
  const byte = new Uint8Array(1);
  return {
    exits,
    command: (c: number) => dev.write(COMMAND, Uint8Array.of(c)),
    data: (d: number) => dev.write(0, Uint8Array.of(d)),
    status: () => (dev.read(COMMAND, byte), byte[0]!),
    read: () => (dev.read(0, byte), byte[0]!),
  };
}

test('command 0xfe pulses the reset line: the VM ends with status 32', () => {
  const c = controller();
  c.command(0xfe);
  assert.is(c.exits.length, 1);
  assert.is(c.exits[0]!.status, 32);
});

test('writing the output port with the reset bit low resets too', () => {
  const c = controller();
  c.command(0xd1);
  c.data(0x01);
  assert.is(c.exits.length, 0);
  c.command(0xd1);
  c.data(0x00);
  assert.is(c.exits[0]?.status, 32);
});

test('self-test passes and the command byte round-trips through the output buffer', () => {
  const c = controller();
  c.command(0xaa);
  assert.is(c.status() & 1, 1);
  assert.is(c.read(), 0x55);
  assert.is(c.status() & 1, 0);
  c.command(0x60);
  c.data(0x47);
  c.command(0x20);
  assert.is(c.read(), 0x47);
});

test.run();
