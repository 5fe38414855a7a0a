/** virtio-pci modern against the spec (virtio 1.2 §4.1), without KVM: capabilities, common config, ISR, MSI-X. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { testDeviceContext } from '../../helpers/device-context.js';
import { IoeventfdTable } from '../../helpers/ioeventfd-table.js';
import * as C from '../../../src/transport/pci/pci-constants.js';
import * as L from '../../../src/transport/pci/virtio-pci-layout.js';
import { buildVirtioPciConfig } from '../../../src/transport/pci/virtio-pci-attach.js';
import { RECLAIM_INTERVAL, VirtioPciFunction, createNotifyRegistration, type IoeventfdRegistrar, type VirtioPciOptions } from '../../../src/transport/pci/virtio-pci.js';
import { VirtioTransportState, MSIX_VECTOR_CTRL_MASKBIT } from '../../../src/transport/virtio-transport-state.js';
import { transportFeatures } from '../../../src/transport/transport-features.js';
import { createIrqRoutingState, msiRouteOf, routingTablesInstalled } from '../../../src/vmm/irq-routing.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, drainEventfd, eventfd } from '../../../src/sys/eventfd.js';
import { dataValue, setDataValue } from '../../../src/vmm/bus.js';
import * as V from '../../../src/virtio/virtio-constants.js';

const BAR = 0xc000_0000;
const device = { deviceType: V.VIRTIO_ID_CONSOLE, queueMaxSizes: [64, 32], configSpace: Uint8Array.of(80, 0, 25, 0, 1, 0, 0, 0) };

function setup(barAddress = BAR, ioeventfd?: IoeventfdRegistrar) {
  const msixVectors = 3;
  const { config, msixCap, pciCfgCap } = buildVirtioPciConfig(device, { barAddress, irq: 10, msixVectors });
  const state = VirtioTransportState.create({ deviceFeatures: transportFeatures(0n), queueMaxSizes: device.queueMaxSizes, configSpace: device.configSpace, msixVectors });
  for (let v = 0; v < msixVectors; v++) state.setMsixEntryWord(v, 3, MSIX_VECTOR_CTRL_MASKBIT);
  const fd = (): number => eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
  const options: VirtioPciOptions = {
    state: state.shared,
    controlFds: [fd()],
    kickFds: [fd(), fd()],
    lineFd: fd(),
    vectorFds: [fd(), fd(), fd()],
    vectorGsis: [24, 25, 26],
    routing: createIrqRoutingState(),
    msixCap,
    pciCfgCap,
    notifyRegistration: createNotifyRegistration(barAddress, 2),
  };
  const context = testDeviceContext();
  const fn = new VirtioPciFunction(config, options, context, ioeventfd);
  const bar = {
    read(offset: number, size: number): number {
      const data = new Uint8Array(size);
      fn.barRead(0, offset, data);
      return dataValue(data);
    },
    write(offset: number, value: number, size: number): void {
      const data = new Uint8Array(size);
      setDataValue(data, value);
      fn.barWrite(0, offset, data);
    },
  };
  const cfgWrite = (offset: number, value: number, size: number): void => {
    const data = new Uint8Array(size);
    setDataValue(data, value);
    if (config.write(offset, data) || offset >= 0x40) fn.configWritten(offset, size);
  };
  return { config, state, options, fn, bar, cfgWrite, msixCap, pciCfgCap };
}

test('identity: vendor 0x1af4, device 0x1040 + type, revision 1, BAR 0, INTA', () => {
  const { config } = setup();
  assert.is(config.u16(C.PCI_VENDOR_ID), 0x1af4);
  assert.is(config.u16(C.PCI_DEVICE_ID), 0x1040 + V.VIRTIO_ID_CONSOLE);
  assert.is(config.u8(C.PCI_REVISION_ID), 1);
  assert.ok(config.u16(C.PCI_SUBSYSTEM_ID) >= 0x40);
  assert.is(config.u32(C.PCI_BASE_ADDRESS_0), BAR);
  assert.is(config.u8(C.PCI_INTERRUPT_PIN), 1);
  assert.is(config.u8(C.PCI_INTERRUPT_LINE), 10);
});

test('all four virtio capabilities, the PCI cfg capability and MSI-X, well formed', () => {
  const { config } = setup();
  const found = new Map<number, { offset: number; length: number; at: number }>();
  let msix = -1;
  for (let at = config.u8(C.PCI_CAPABILITY_LIST); at !== 0; at = config.u8(at + 1)) {
    if (config.u8(at) === C.PCI_CAP_ID_MSIX) msix = at;
    else if (config.u8(at) === C.PCI_CAP_ID_VNDR) {
      assert.ok(config.u8(at + 2) >= 16, 'cap_len');
      assert.is(config.u8(at + 4), 0, 'bar');
      found.set(config.u8(at + 3), { offset: config.u32(at + 8), length: config.u32(at + 12), at });
    }
  }
  assert.equal(found.get(C.VIRTIO_PCI_CAP_COMMON_CFG)!.offset, L.VIRTIO_PCI_COMMON_OFFSET);
  assert.ok(found.get(C.VIRTIO_PCI_CAP_COMMON_CFG)!.length >= 0x38);
  const notify = found.get(C.VIRTIO_PCI_CAP_NOTIFY_CFG)!;
  assert.is(config.u32(notify.at + 16), L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER);
  assert.is(notify.length, 2 * L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER);
  assert.is(found.get(C.VIRTIO_PCI_CAP_ISR_CFG)!.offset, L.VIRTIO_PCI_ISR_OFFSET);
  assert.is(found.get(C.VIRTIO_PCI_CAP_DEVICE_CFG)!.length, 8);
  assert.ok(found.has(C.VIRTIO_PCI_CAP_PCI_CFG));
  assert.ok(msix > 0);
  assert.is(config.u16(msix + 2) & 0x7ff, 2); // 3 vectors
  assert.is(config.u32(msix + 4), L.VIRTIO_PCI_MSIX_TABLE_OFFSET);
  assert.is(config.u32(msix + 8), L.VIRTIO_PCI_MSIX_PBA_OFFSET);
});

test('common config: feature windows, queue fields, notify offsets, vectors', () => {
  const { bar, state } = setup();
  bar.write(L.COMMON_DEVICE_FEATURE_SELECT, 1, 4);
  assert.is(bar.read(L.COMMON_DEVICE_FEATURE, 4), 1); // VERSION_1
  assert.is(bar.read(L.COMMON_NUM_QUEUES, 2), 2);
  bar.write(L.COMMON_QUEUE_SELECT, 1, 2);
  assert.is(bar.read(L.COMMON_QUEUE_SIZE, 2), 32);
  assert.is(bar.read(L.COMMON_QUEUE_NOTIFY_OFF, 2), 1);
  bar.write(L.COMMON_QUEUE_SIZE, 16, 2);
  bar.write(L.COMMON_QUEUE_DESC, 0x5000, 4);
  bar.write(L.COMMON_QUEUE_DESC + 4, 0x2, 4);
  bar.write(L.COMMON_QUEUE_MSIX_VECTOR, 2, 2);
  assert.is(bar.read(L.COMMON_QUEUE_MSIX_VECTOR, 2), 2);
  bar.write(L.COMMON_QUEUE_MSIX_VECTOR, 7, 2); // no such vector: reads back NO_VECTOR
  assert.is(bar.read(L.COMMON_QUEUE_MSIX_VECTOR, 2), V.VIRTIO_MSI_NO_VECTOR);
  bar.write(L.COMMON_QUEUE_MSIX_VECTOR, 2, 2);
  bar.write(L.COMMON_QUEUE_ENABLE, 1, 2);
  assert.is(bar.read(L.COMMON_QUEUE_ENABLE, 2), 1);
  assert.is(bar.read(L.COMMON_QUEUE_DESC + 4, 4), 2);
  assert.equal(state.queue(1), { maxSize: 32, size: 16, ready: true, desc: 0x2_0000_5000, driver: 0, device: 0, vector: 2 });
  bar.write(L.COMMON_QUEUE_SIZE, 8, 2); // frozen once enabled
  assert.is(state.queue(1).size, 16);
});

test('ISR reads clear it; device config reads come from the shared bytes, writes are ignored', () => {
  const { bar, state } = setup();
  state.raiseIsr(V.VIRTIO_ISR_QUEUE);
  assert.is(bar.read(L.VIRTIO_PCI_ISR_OFFSET, 1), 1);
  assert.is(bar.read(L.VIRTIO_PCI_ISR_OFFSET, 1), 0);
  assert.is(bar.read(L.VIRTIO_PCI_DEVICE_OFFSET, 2), 80);
  assert.is(bar.read(L.VIRTIO_PCI_DEVICE_OFFSET + 2, 2), 25);
  const generation = state.configGeneration;
  bar.write(L.VIRTIO_PCI_DEVICE_OFFSET, 0xffff, 2);
  bar.write(L.VIRTIO_PCI_DEVICE_OFFSET + 4, 0xffffffff, 4);
  assert.equal(Array.from(state.config), [80, 0, 25, 0, 1, 0, 0, 0]);
  assert.is(state.configGeneration, generation);
});

test('notify writes that reach userspace kick the queue eventfd', () => {
  const { bar, options } = setup();
  bar.write(L.VIRTIO_PCI_NOTIFY_OFFSET + L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER, 1, 2);
  assert.is(drainEventfd(options.kickFds[1]!), 1);
  assert.is(drainEventfd(options.kickFds[0]!), 0);
});

test('MSI-X: masked vectors go pending and fire on unmask; function mask too', () => {
  const { bar, state, options, cfgWrite, msixCap, fn } = setup();
  cfgWrite(msixCap + C.PCI_MSIX_FLAGS, C.PCI_MSIX_FLAGS_ENABLE, 2);
  assert.ok(state.msixEnabled);
  const entry = L.VIRTIO_PCI_MSIX_TABLE_OFFSET + 1 * C.PCI_MSIX_ENTRY_SIZE;
  bar.write(entry, 0xfee00000, 4);
  bar.write(entry + 8, 0x41, 4);
  assert.is(bar.read(entry + 8, 4), 0x41);
  // Vector 1 is masked after reset: a signal becomes pending (PBA bit 1), no eventfd write.
  (fn as unknown as { interrupt: { sendVector(v: number): void } }).interrupt.sendVector(1);
  assert.is(drainEventfd(options.vectorFds[1]!), 0);
  assert.is(bar.read(L.VIRTIO_PCI_MSIX_PBA_OFFSET, 4), 0b10);
  bar.write(entry + C.PCI_MSIX_ENTRY_VECTOR_CTRL, 0, 4); // unmask
  assert.is(drainEventfd(options.vectorFds[1]!), 1);
  assert.is(bar.read(L.VIRTIO_PCI_MSIX_PBA_OFFSET, 4), 0);
  cfgWrite(msixCap + C.PCI_MSIX_FLAGS, C.PCI_MSIX_FLAGS_ENABLE | C.PCI_MSIX_FLAGS_MASKALL, 2);
  (fn as unknown as { interrupt: { sendVector(v: number): void } }).interrupt.sendVector(1);
  assert.is(drainEventfd(options.vectorFds[1]!), 0);
  cfgWrite(msixCap + C.PCI_MSIX_FLAGS, C.PCI_MSIX_FLAGS_ENABLE, 2);
  assert.is(drainEventfd(options.vectorFds[1]!), 1);
});

test('the PCI configuration access capability reaches BAR 0', () => {
  const { fn, pciCfgCap, cfgWrite } = setup();
  cfgWrite(pciCfgCap + L.VIRTIO_PCI_CAP_BAR, 0, 1);
  cfgWrite(pciCfgCap + L.VIRTIO_PCI_CAP_OFFSET, L.COMMON_NUM_QUEUES, 4);
  cfgWrite(pciCfgCap + L.VIRTIO_PCI_CAP_LENGTH_FIELD, 2, 4);
  const data = new Uint8Array(2);
  assert.ok(fn.readConfig(pciCfgCap + L.VIRTIO_PCI_CFG_CAP_DATA, data));
  assert.is(dataValue(data), 2);
  // A write through it lands in the common configuration (queue_select).
  cfgWrite(pciCfgCap + L.VIRTIO_PCI_CAP_OFFSET, L.COMMON_QUEUE_SELECT, 4);
  cfgWrite(pciCfgCap + L.VIRTIO_PCI_CFG_CAP_DATA, 1, 2);
  assert.ok(fn.readConfig(pciCfgCap + L.VIRTIO_PCI_CFG_CAP_DATA, data));
  assert.is(dataValue(data), 1);
});

test('a BAR moved onto another function keeps the VMM running: its queues are notified through exits, win their ioeventfds back, then follow it away', () => {
  const table = new IoeventfdTable();
  const other = BAR + L.VIRTIO_PCI_BAR_SIZE;
  const notifyAt = (base: number, q: number): number => base + L.VIRTIO_PCI_NOTIFY_OFFSET + q * L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER;
  const a = setup(BAR, table.registrar);
  const b = setup(other, table.registrar);
  for (const [base, fn] of [[BAR, a], [other, b]] as const) {
    fn.options.kickFds.forEach((fd, q) => table.registrar({ address: notifyAt(base, q), length: 2, eventFd: fd }, true));
  }
  // A guest writes 0xffff into the low half of A's BAR 0, which lands it on B's (as in the audit).
  a.config.write(C.PCI_BASE_ADDRESS_0, Uint8Array.of(0, 0x80)); // BAR + 0x8000 = B's BAR
  a.fn.configWritten(C.PCI_BASE_ADDRESS_0, 2);
  assert.is(table.byAddress.get(notifyAt(other, 0)), b.options.kickFds[0], "B keeps its ioeventfds");
  assert.is(table.byAddress.get(notifyAt(BAR, 0)), undefined, "A's old ones are gone");
  // A's notify still works: the write reaches userspace and is forwarded.
  drainEventfd(a.options.kickFds[1]!);
  a.bar.write(L.VIRTIO_PCI_NOTIFY_OFFSET + 4, 1, 2);
  assert.is(drainEventfd(a.options.kickFds[1]!), 1);
  // B moves away: within RECLAIM_INTERVAL notify exits A finds the address free and takes it.
  b.config.write(C.PCI_BASE_ADDRESS_0, Uint8Array.of(0, 0, 0x04, 0xc0));
  b.fn.configWritten(C.PCI_BASE_ADDRESS_0, 4);
  for (let i = 0; i < RECLAIM_INTERVAL; i++) a.bar.write(L.VIRTIO_PCI_NOTIFY_OFFSET + 4, 1, 2);
  assert.is(drainEventfd(a.options.kickFds[1]!), RECLAIM_INTERVAL, 'every notify arrived');
  assert.is(table.byAddress.get(notifyAt(other, 1)), a.options.kickFds[1], "A's queue 1 has its ioeventfd again");
  assert.is(table.byAddress.get(notifyAt(other, 0)), undefined, 'queue 0 had no exit yet');
  // Moving A away again registers its ioeventfds at the new place, without touching B's.
  const away = BAR + 4 * L.VIRTIO_PCI_BAR_SIZE;
  a.config.write(C.PCI_BASE_ADDRESS_0, Uint8Array.of(0, 0, 0x02, 0xc0));
  a.fn.configWritten(C.PCI_BASE_ADDRESS_0, 4);
  assert.is(table.byAddress.get(notifyAt(away, 0)), a.options.kickFds[0]);
  assert.is(table.byAddress.get(notifyAt(away, 1)), a.options.kickFds[1]);
  assert.is(table.byAddress.get(notifyAt(other, 1)), undefined, 'A gave the reclaimed address back');
  const bNow = BAR + 8 * L.VIRTIO_PCI_BAR_SIZE;
  assert.is(table.byAddress.get(notifyAt(bNow, 1)), b.options.kickFds[1], "B's ioeventfds followed B");
});

test('MSI-X table writes: a masked entry installs no route, the unmask installs one, rewriting it unchanged installs none', () => {
  const { bar, options } = setup();
  const entry = (v: number, word: number): number => L.VIRTIO_PCI_MSIX_TABLE_OFFSET + v * C.PCI_MSIX_ENTRY_SIZE + word * 4;
  const before = routingTablesInstalled(options.routing);
  for (let i = 0; i < 1000; i++) {
    bar.write(entry(0, 0), 0xfee0_0000 + (i & 0xff0), 4);
    bar.write(entry(0, 1), 0, 4);
    bar.write(entry(0, 2), 0x41 + (i & 1), 4);
  }
  assert.is(routingTablesInstalled(options.routing) - before, 0, 'masked: nothing installed');
  bar.write(entry(0, 3), 0, 4); // unmask
  assert.is(routingTablesInstalled(options.routing) - before, 1);
  for (let i = 0; i < 1000; i++) bar.write(entry(0, 2), bar.read(entry(0, 2), 4), 4);
  assert.is(routingTablesInstalled(options.routing) - before, 1, 'unchanged: nothing installed');
  bar.write(entry(0, 2), 0x51, 4);
  assert.is(routingTablesInstalled(options.routing) - before, 2, 'a new message on a live vector is installed');
});

test('MSI-X: an unmasked entry rewritten behind the function mask is routed to its new message when the mask clears', () => {
  const { bar, options, cfgWrite, msixCap } = setup();
  const entry = (v: number, word: number): number => L.VIRTIO_PCI_MSIX_TABLE_OFFSET + v * C.PCI_MSIX_ENTRY_SIZE + word * 4;
  cfgWrite(msixCap + C.PCI_MSIX_FLAGS, C.PCI_MSIX_FLAGS_ENABLE, 2);
  bar.write(entry(1, 0), 0xfee0_0000, 4);
  bar.write(entry(1, 2), 0x41, 4);
  bar.write(entry(1, 3), 0, 4); // unmask the entry
  assert.equal(msiRouteOf(options.routing, options.vectorGsis[1]!), { addressLo: 0xfee0_0000, addressHi: 0, data: 0x41 });
  // The driver masks the whole function, moves the vector to another CPU, unmasks the function.
  cfgWrite(msixCap + C.PCI_MSIX_FLAGS, C.PCI_MSIX_FLAGS_ENABLE | C.PCI_MSIX_FLAGS_MASKALL, 2);
  bar.write(entry(1, 0), 0xfee0_1000, 4);
  bar.write(entry(1, 2), 0x42, 4);
  cfgWrite(msixCap + C.PCI_MSIX_FLAGS, C.PCI_MSIX_FLAGS_ENABLE, 2);
  assert.equal(msiRouteOf(options.routing, options.vectorGsis[1]!), { addressLo: 0xfee0_1000, addressHi: 0, data: 0x42 });
});

test.run();
