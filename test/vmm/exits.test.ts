import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Bus, dataValue, setDataValue } from '../../src/vmm/bus.js';
import { emulationFailureBytes, handleExit, type ExitContext } from '../../src/vmm/exits.js';
import * as abi from '../../src/vmm/kvm-abi.js';

const RUN_SIZE = 4096;
const DATA_OFFSET = 4096 - 64;

function setup(): { run: Uint8Array; view: DataView; ctx: ExitContext; pioWrites: Array<[number, number]>; mmioWrites: Array<[number, number, number]> } {
  const run = new Uint8Array(RUN_SIZE);
  const view = new DataView(run.buffer);
  const pioWrites: Array<[number, number]> = [];
  const mmioWrites: Array<[number, number, number]> = [];
  const pio = new Bus('pio');
  pio.insert(0x3f8, 8, 'uart', {
    read: (offset, data) => setDataValue(data, 0x40 + offset),
    write: (offset, data) => pioWrites.push([offset, dataValue(data)]),
  });
  const mmio = new Bus('mmio');
  mmio.insert(0xd000_0000, 0x1000, 'dev', {
    read: (offset, data) => setDataValue(data, 0xabcd0000 + offset),
    write: (offset, data) => mmioWrites.push([offset, data.length, dataValue(data)]),
  });
  return { run, view, pioWrites, mmioWrites, ctx: { pio, mmio, instructionBytes: () => Uint8Array.of(0x0f, 0x0b) } };
}

function io(view: DataView, direction: number, port: number, size: number, count: number): void {
  view.setUint32(abi.RUN.exit_reason, abi.KVM_EXIT_IO, true);
  view.setUint8(abi.RUN.io_direction, direction);
  view.setUint8(abi.RUN.io_size, size);
  view.setUint16(abi.RUN.io_port, port, true);
  view.setUint32(abi.RUN.io_count, count, true);
  view.setBigUint64(abi.RUN.io_data_offset, BigInt(DATA_OFFSET), true);
}

test('port writes with count > 1 (rep outsb) reach the device item by item', () => {
  const { run, view, ctx, pioWrites } = setup();
  io(view, abi.KVM_EXIT_IO_OUT, 0x3f8, 1, 3);
  run.set([0x61, 0x62, 0x63], DATA_OFFSET);
  assert.equal(handleExit(run, view, ctx), { kind: 'continue' });
  assert.equal(pioWrites, [[0, 0x61], [0, 0x62], [0, 0x63]]);
});

test('port reads fill each item; unclaimed ports read all-ones', () => {
  const { run, view, ctx } = setup();
  io(view, abi.KVM_EXIT_IO_IN, 0x3fd, 1, 2);
  handleExit(run, view, ctx);
  assert.equal(Array.from(run.subarray(DATA_OFFSET, DATA_OFFSET + 2)), [0x45, 0x45]);
  io(view, abi.KVM_EXIT_IO_IN, 0x1234, 2, 1);
  handleExit(run, view, ctx);
  assert.equal(Array.from(run.subarray(DATA_OFFSET, DATA_OFFSET + 2)), [0xff, 0xff]);
});

test('port data outside the run page stops the VM instead of reading past it', () => {
  const { run, view, ctx } = setup();
  io(view, abi.KVM_EXIT_IO_OUT, 0x3f8, 4, 100);
  const action = handleExit(run, view, ctx);
  assert.is(action.kind, 'stop');
});

test('MMIO reads and writes use the access length', () => {
  const { run, view, ctx, mmioWrites } = setup();
  view.setUint32(abi.RUN.exit_reason, abi.KVM_EXIT_MMIO, true);
  view.setBigUint64(abi.RUN.mmio_phys_addr, 0xd000_0010n, true);
  view.setUint32(abi.RUN.mmio_len, 4, true);
  view.setUint8(abi.RUN.mmio_is_write, 0);
  handleExit(run, view, ctx);
  assert.is(view.getUint32(abi.RUN.mmio_data, true), 0xabcd0010);
  view.setUint8(abi.RUN.mmio_is_write, 1);
  view.setUint16(abi.RUN.mmio_data, 0xbeef, true);
  view.setUint32(abi.RUN.mmio_len, 2, true);
  handleExit(run, view, ctx);
  assert.equal(mmioWrites, [[0x10, 2, 0xbeef]]);
});

const statusOf = (reason: number, extra: (view: DataView) => void = () => {}): [number, string] => {
  const { run, view, ctx } = setup();
  view.setUint32(abi.RUN.exit_reason, reason, true);
  extra(view);
  const action = handleExit(run, view, ctx);
  if (action.kind !== 'stop') throw new Error('expected stop');
  return [action.status, action.reason];
};

test('every terminal exit maps to its documented status', () => {
  assert.is(statusOf(abi.KVM_EXIT_HLT)[0], 0);
  assert.is(statusOf(abi.KVM_EXIT_SHUTDOWN)[0], 36);
  assert.match(statusOf(abi.KVM_EXIT_SHUTDOWN)[1], /triple fault/);
  const event = (type: number) => (v: DataView) => v.setUint32(abi.RUN.system_event_type, type, true);
  assert.is(statusOf(abi.KVM_EXIT_SYSTEM_EVENT, event(abi.KVM_SYSTEM_EVENT_SHUTDOWN))[0], 0);
  assert.is(statusOf(abi.KVM_EXIT_SYSTEM_EVENT, event(abi.KVM_SYSTEM_EVENT_RESET))[0], 32);
  assert.is(statusOf(abi.KVM_EXIT_SYSTEM_EVENT, event(abi.KVM_SYSTEM_EVENT_CRASH))[0], 34);
  assert.is(statusOf(abi.KVM_EXIT_FAIL_ENTRY)[0], 36);
  assert.is(statusOf(abi.KVM_EXIT_DEBUG)[0], 36);
  assert.match(statusOf(abi.KVM_EXIT_DEBUG)[1], /unhandled exit KVM_EXIT_DEBUG.*0f 0b/);
});

test('internal errors name the suberror and print the instruction bytes', () => {
  const [status, reason] = statusOf(abi.KVM_EXIT_INTERNAL_ERROR, (v) => {
    v.setUint32(abi.RUN.internal_suberror, abi.KVM_INTERNAL_ERROR_EMULATION, true);
    v.setUint32(abi.RUN.internal_ndata, 1, true);
    v.setBigUint64(abi.RUN.internal_data, 0x1234n, true);
  });
  assert.is(status, 36);
  assert.match(reason, /emulation failure \(data 1234\); instruction bytes: 0f 0b/);
});

test('a recovered internal error continues', () => {
  const { run, view, ctx } = setup();
  view.setUint32(abi.RUN.exit_reason, abi.KVM_EXIT_INTERNAL_ERROR, true);
  const action = handleExit(run, view, { ...ctx, recoverInternalError: () => true });
  assert.equal(action, { kind: 'continue' });
});

test('ioctl numbers match the kernel headers', () => {
  assert.is(abi.KVM_RUN, 0xae80);
  assert.is(abi.KVM_GET_API_VERSION, 0xae00);
  assert.is(abi.KVM_SET_USER_MEMORY_REGION, 0x4020ae46);
  assert.is(abi.KVM_GET_SUPPORTED_CPUID, 0xc008ae05);
  assert.is(abi.KVM_SET_SREGS, 0x4138ae84);
  assert.is(abi.KVM_GET_REGS, 0x8090ae81);
  assert.is(abi.KVM_IRQ_LINE, 0x4008ae61);
  assert.is(abi.KVM_CREATE_PIT2, 0x4040ae77);
  assert.is(abi.KVM_IOEVENTFD, 0x4040ae79);
  assert.is(abi.KVM_IRQFD, 0x4020ae76);
  assert.is(abi.KVM_GET_IRQCHIP, 0xc208ae62);
  assert.is(abi.KVM_SET_IRQCHIP, 0x8208ae63);
});

test('the bytes an emulation failure reports are read from kvm_run.emulation_failure', () => {
  const { run, view } = setup();
  view.setUint32(abi.RUN.exit_reason, abi.KVM_EXIT_INTERNAL_ERROR, true);
  view.setUint32(abi.RUN.internal_suberror, abi.KVM_INTERNAL_ERROR_EMULATION, true);
  view.setUint32(abi.RUN.internal_ndata, 3, true);
  view.setBigUint64(abi.RUN.internal_data, 1n, true); // KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES
  view.setUint8(48, 3); // insn_size, at offsetof(struct kvm_run, emulation_failure.insn_size)
  run.set([0xcc, 0x38, 0xba], 49);
  assert.equal(emulationFailureBytes(run, view), Uint8Array.of(0xcc, 0x38, 0xba));
  view.setBigUint64(abi.RUN.internal_data, 0n, true);
  assert.is(emulationFailureBytes(run, view), undefined, 'no bytes without the flag');
});

test.run();
