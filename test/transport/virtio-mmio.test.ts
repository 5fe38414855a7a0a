/** virtio-mmio v2 registers against the spec (virtio 1.2 §4.2.2), over the shared transport state. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import createDebug from 'debug';
import * as M from '../../src/transport/virtio-mmio.js';
import { VirtioTransportState } from '../../src/transport/virtio-transport-state.js';
import { transportFeatures } from '../../src/transport/transport-features.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, drainEventfd, eventfd } from '../../src/sys/eventfd.js';
import * as V from '../../src/virtio/virtio-constants.js';
import { dataValue } from '../../src/vmm/bus.js';

function setup(configSpace = Uint8Array.of(1, 2, 3, 4, 5, 6, 7, 8)) {
  const state = VirtioTransportState.create({
    deviceFeatures: transportFeatures(1n << 5n),
    queueMaxSizes: [128, 64],
    configSpace,
    msixVectors: 0,
  });
  const controlFd = eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
  const kickFds = [eventfd(EFD_CLOEXEC | EFD_NONBLOCK), eventfd(EFD_CLOEXEC | EFD_NONBLOCK)];
  const regs = new M.VirtioMmioRegisters(state, { deviceType: V.VIRTIO_ID_RNG, controlFds: [controlFd], kickFds }, { controlFds: [controlFd], log: createDebug('test') });
  const read = (offset: number, size = 4): number => {
    const data = new Uint8Array(size);
    regs.read(offset, data);
    return dataValue(data);
  };
  const write = (offset: number, value: number, size = 4): void => {
    const data = new Uint8Array(size);
    for (let i = 0; i < size; i++) data[i] = (value >>> (8 * i)) & 0xff;
    regs.write(offset, data);
  };
  return { state, regs, read, write, controlFd, kickFds };
}

test('identification registers', () => {
  const { read } = setup();
  assert.is(read(M.VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
  assert.is(read(M.VIRTIO_MMIO_VERSION), 2);
  assert.is(read(M.VIRTIO_MMIO_DEVICE_ID), V.VIRTIO_ID_RNG);
  assert.is(read(M.VIRTIO_MMIO_SHM_LEN_LOW), 0xffffffff);
});

test('feature select windows: low word, high word with VERSION_1, nothing beyond', () => {
  const { read, write } = setup();
  write(M.VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
  const low = read(M.VIRTIO_MMIO_DEVICE_FEATURES);
  assert.ok(low & (1 << 5));
  assert.ok(low & (1 << V.VIRTIO_F_RING_INDIRECT_DESC));
  assert.ok(low & (1 << V.VIRTIO_F_RING_EVENT_IDX));
  write(M.VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
  assert.is(read(M.VIRTIO_MMIO_DEVICE_FEATURES), 1); // VERSION_1 is bit 32; ACCESS_PLATFORM (33) never offered
  write(M.VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
  assert.is(read(M.VIRTIO_MMIO_DEVICE_FEATURES), 0);
});

test('driver features: only offered bits stick; FEATURES_OK needs VERSION_1', () => {
  const { state, read, write } = setup();
  write(M.VIRTIO_MMIO_STATUS, V.VIRTIO_CONFIG_S_ACKNOWLEDGE | V.VIRTIO_CONFIG_S_DRIVER);
  write(M.VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  write(M.VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
  write(M.VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  write(M.VIRTIO_MMIO_DRIVER_FEATURES, 0);
  write(M.VIRTIO_MMIO_STATUS, 0x3 | V.VIRTIO_CONFIG_S_FEATURES_OK);
  assert.is(read(M.VIRTIO_MMIO_STATUS) & V.VIRTIO_CONFIG_S_FEATURES_OK, 0, 'refused without VERSION_1');
  write(M.VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff); // high word: only VERSION_1 is offered
  write(M.VIRTIO_MMIO_STATUS, 0x3 | V.VIRTIO_CONFIG_S_FEATURES_OK);
  assert.is(read(M.VIRTIO_MMIO_STATUS), 0x3 | V.VIRTIO_CONFIG_S_FEATURES_OK);
  assert.is(state.driverFeatures, transportFeatures(1n << 5n));
  // Once FEATURES_OK is set the features are frozen.
  write(M.VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
  write(M.VIRTIO_MMIO_DRIVER_FEATURES, 0);
  assert.is(state.driverFeatures, transportFeatures(1n << 5n));
});

test('queue registers: size bounds, addresses, ready; layout frozen while ready', () => {
  const { state, read, write } = setup();
  write(M.VIRTIO_MMIO_QUEUE_SEL, 1);
  assert.is(read(M.VIRTIO_MMIO_QUEUE_NUM_MAX), 64);
  write(M.VIRTIO_MMIO_QUEUE_NUM, 128); // above max: ignored
  assert.is(state.queue(1).size, 64);
  write(M.VIRTIO_MMIO_QUEUE_NUM, 16);
  write(M.VIRTIO_MMIO_QUEUE_DESC_LOW, 0x1000);
  write(M.VIRTIO_MMIO_QUEUE_DESC_HIGH, 0x1);
  write(M.VIRTIO_MMIO_QUEUE_AVAIL_LOW, 0x2000);
  write(M.VIRTIO_MMIO_QUEUE_USED_LOW, 0x3000);
  write(M.VIRTIO_MMIO_QUEUE_READY, 1);
  assert.is(read(M.VIRTIO_MMIO_QUEUE_READY), 1);
  write(M.VIRTIO_MMIO_QUEUE_NUM, 8);
  write(M.VIRTIO_MMIO_QUEUE_DESC_LOW, 0x9000);
  assert.equal(state.queue(1), { maxSize: 64, size: 16, ready: true, desc: 0x1_0000_1000, driver: 0x2000, device: 0x3000, vector: 0xffff });
  write(M.VIRTIO_MMIO_QUEUE_SEL, 7); // no such queue
  assert.is(read(M.VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
  assert.is(read(M.VIRTIO_MMIO_QUEUE_READY), 0);
});

test('reset (status 0) clears everything the driver set', () => {
  const { state, read, write } = setup();
  write(M.VIRTIO_MMIO_STATUS, 0x3);
  write(M.VIRTIO_MMIO_QUEUE_SEL, 0);
  write(M.VIRTIO_MMIO_QUEUE_NUM, 32);
  write(M.VIRTIO_MMIO_QUEUE_DESC_LOW, 0x4000);
  write(M.VIRTIO_MMIO_QUEUE_READY, 1);
  state.raiseIsr(V.VIRTIO_ISR_QUEUE);
  write(M.VIRTIO_MMIO_STATUS, 0);
  assert.is(read(M.VIRTIO_MMIO_STATUS), 0);
  assert.is(read(M.VIRTIO_MMIO_INTERRUPT_STATUS), 0);
  assert.equal(state.queue(0), { maxSize: 128, size: 128, ready: false, desc: 0, driver: 0, device: 0, vector: 0xffff });
  assert.is(state.driverFeatures, 0n);
});

test('DRIVER_OK without FEATURES_OK is ignored; with it the data plane is told', () => {
  const { read, write, controlFd } = setup();
  write(M.VIRTIO_MMIO_STATUS, 0x3 | V.VIRTIO_CONFIG_S_DRIVER_OK);
  assert.is(read(M.VIRTIO_MMIO_STATUS) & V.VIRTIO_CONFIG_S_DRIVER_OK, 0);
  drainEventfd(controlFd);
  write(M.VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
  write(M.VIRTIO_MMIO_DRIVER_FEATURES, 1);
  write(M.VIRTIO_MMIO_STATUS, 0x3 | V.VIRTIO_CONFIG_S_FEATURES_OK);
  write(M.VIRTIO_MMIO_STATUS, 0x3 | V.VIRTIO_CONFIG_S_FEATURES_OK | V.VIRTIO_CONFIG_S_DRIVER_OK);
  assert.is(read(M.VIRTIO_MMIO_STATUS), 0xf);
  assert.is(drainEventfd(controlFd), 1);
});

test('interrupt status and acknowledge', () => {
  const { state, read, write } = setup();
  state.raiseIsr(V.VIRTIO_ISR_QUEUE | V.VIRTIO_ISR_CONFIG);
  assert.is(read(M.VIRTIO_MMIO_INTERRUPT_STATUS), 3);
  write(M.VIRTIO_MMIO_INTERRUPT_ACK, V.VIRTIO_ISR_QUEUE);
  assert.is(read(M.VIRTIO_MMIO_INTERRUPT_STATUS), V.VIRTIO_ISR_CONFIG);
});

test('QueueNotify reaching userspace kicks the queue eventfd', () => {
  const { write, kickFds } = setup();
  write(M.VIRTIO_MMIO_QUEUE_NOTIFY, 1);
  write(M.VIRTIO_MMIO_QUEUE_NOTIFY, 9); // no such queue
  assert.is(drainEventfd(kickFds[0]!), 0);
  assert.is(drainEventfd(kickFds[1]!), 1);
});

test('config space: byte access; driver writes are ignored (every field offered is read-only)', () => {
  const { state, read, write } = setup();
  assert.is(read(M.VIRTIO_MMIO_CONFIG + 2, 1), 3);
  assert.is(read(M.VIRTIO_MMIO_CONFIG, 4), 0x04030201);
  assert.is(read(M.VIRTIO_MMIO_CONFIG + 8, 1), 0); // beyond the config space
  const generation = read(M.VIRTIO_MMIO_CONFIG_GENERATION);
  write(M.VIRTIO_MMIO_CONFIG, 0xff, 1);
  write(M.VIRTIO_MMIO_CONFIG + 4, 0xabcd, 2);
  write(M.VIRTIO_MMIO_CONFIG + 4, 0xabcdef01, 4);
  assert.equal(Array.from(state.config), [1, 2, 3, 4, 5, 6, 7, 8]);
  assert.is(read(M.VIRTIO_MMIO_CONFIG_GENERATION), generation);
});

test('registers ignore accesses that are not 32 bits wide', () => {
  const { read, write, state } = setup();
  assert.is(read(M.VIRTIO_MMIO_MAGIC_VALUE, 2), 0);
  write(M.VIRTIO_MMIO_STATUS, 1, 1);
  assert.is(state.status, 0);
});

test.run();
