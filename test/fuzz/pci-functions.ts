/**
 * Fuzz target: two virtio-pci functions side by side, as a hostile guest drives them through
 * configuration space (BAR moves onto each other, sizing probes, MSI-X enable and function
 * mask, the PCI configuration access capability) and BAR 0 (common configuration, ISR, notify,
 * device configuration, the MSI-X table and PBA), with KVM's ioeventfd table played by
 * IoeventfdTable (EEXIST and ENOENT as KVM answers) and no VM. It checks:
 *
 * - no access throws: a guest never gets an exception onto a vCPU thread;
 * - the ioeventfd table is exactly what the functions believe is registered: every queue marked
 *   registered has its kick eventfd at its notify address under its function's current BAR 0,
 *   and nothing else is in the table;
 * - every MSI-X vector whose own mask bit is clear is routed to the message in its entry.
 */
import fc from 'fast-check';
import { buildVirtioPciConfig } from '../../src/transport/pci/virtio-pci-attach.js';
import { NOTIFY_BASE, NOTIFY_REGISTERED, VirtioPciFunction, createNotifyRegistration, type VirtioPciOptions } from '../../src/transport/pci/virtio-pci.js';
import * as C from '../../src/transport/pci/pci-constants.js';
import * as L from '../../src/transport/pci/virtio-pci-layout.js';
import { MSIX_VECTOR_CTRL_MASKBIT, VirtioTransportState } from '../../src/transport/virtio-transport-state.js';
import { transportFeatures } from '../../src/transport/transport-features.js';
import { createIrqRoutingState, msiRouteOf } from '../../src/vmm/irq-routing.js';
import { setDataValue } from '../../src/vmm/bus.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, eventfd } from '../../src/sys/eventfd.js';
import { close } from '../../src/sys/fd.js';
import * as V from '../../src/virtio/virtio-constants.js';
import { testDeviceContext } from '../helpers/device-context.js';
import { IoeventfdTable } from '../helpers/ioeventfd-table.js';
import { expect } from './chain-bed.js';
import type { FuzzTarget } from './fuzz-target.js';

const BARS = [0xc000_0000, 0xc000_0000 + L.VIRTIO_PCI_BAR_SIZE] as const;
const MSIX_VECTORS = 3;
const DEVICE = { deviceType: V.VIRTIO_ID_NET, queueMaxSizes: [64, 64, 16], configSpace: new Uint8Array(12) };

export type PciOp =
  | { readonly kind: 'config-write'; readonly fn: number; readonly offset: number; readonly size: number; readonly value: number }
  | { readonly kind: 'bar0'; readonly fn: number; readonly value: number }
  | { readonly kind: 'config-read'; readonly fn: number; readonly offset: number; readonly size: number }
  | { readonly kind: 'bar-write'; readonly fn: number; readonly offset: number; readonly size: number; readonly value: number }
  | { readonly kind: 'bar-read'; readonly fn: number; readonly offset: number; readonly size: number }
  | { readonly kind: 'msix-control'; readonly fn: number; readonly enable: boolean; readonly maskAll: boolean }
  | { readonly kind: 'msix-entry'; readonly fn: number; readonly vector: number; readonly word: number; readonly value: number };

const fnArb = fc.integer({ min: 0, max: 1 });
const sizeArb = fc.constantFrom(1, 2, 4);
const u32Arb = fc.oneof(fc.integer({ min: 0, max: 0xffff_ffff }), fc.constantFrom(0, 1, 0xffff, 0xffff_ffff, MSIX_VECTOR_CTRL_MASKBIT, 0xfee0_0000));
/** Offsets in BAR 0, most of them where the registers are. */
const barOffsetArb = fc.oneof(
  fc.integer({ min: 0, max: L.VIRTIO_PCI_COMMON_SIZE + 8 }),
  fc.integer({ min: L.VIRTIO_PCI_NOTIFY_OFFSET, max: L.VIRTIO_PCI_NOTIFY_OFFSET + 16 }),
  fc.integer({ min: L.VIRTIO_PCI_MSIX_TABLE_OFFSET, max: L.VIRTIO_PCI_MSIX_TABLE_OFFSET + MSIX_VECTORS * C.PCI_MSIX_ENTRY_SIZE + 8 }),
  fc.integer({ min: 0, max: L.VIRTIO_PCI_BAR_SIZE - 1 }),
);

export const pciOpArb: fc.Arbitrary<PciOp> = fc.oneof(
  { arbitrary: fc.record({ kind: fc.constant('config-write' as const), fn: fnArb, offset: fc.integer({ min: 0, max: 0xff }), size: sizeArb, value: u32Arb }), weight: 2 },
  {
    arbitrary: fc.record({
      kind: fc.constant('bar0' as const),
      fn: fnArb,
      // The other function's BAR, part of it, a sizing probe, anywhere.
      value: fc.oneof(fc.constantFrom(...BARS, BARS[1] + 0x1000, 0xffff_ffff, 0xffff_0000 | BARS[0], 0), fc.integer({ min: 0, max: 0xffff_ffff })),
    }),
    weight: 2,
  },
  { arbitrary: fc.record({ kind: fc.constant('config-read' as const), fn: fnArb, offset: fc.integer({ min: 0, max: 0xff }), size: sizeArb }), weight: 1 },
  { arbitrary: fc.record({ kind: fc.constant('bar-write' as const), fn: fnArb, offset: barOffsetArb, size: sizeArb, value: u32Arb }), weight: 3 },
  { arbitrary: fc.record({ kind: fc.constant('bar-read' as const), fn: fnArb, offset: barOffsetArb, size: sizeArb }), weight: 1 },
  // What drivers do most: MSI-X on, the function mask, whole entries (a random walk rarely gets there).
  { arbitrary: fc.record({ kind: fc.constant('msix-control' as const), fn: fnArb, enable: fc.boolean(), maskAll: fc.boolean() }), weight: 3 },
  {
    arbitrary: fc.integer({ min: 0, max: 3 }).chain((word) =>
      fc.record({
        kind: fc.constant('msix-entry' as const),
        fn: fnArb,
        vector: fc.integer({ min: 0, max: MSIX_VECTORS - 1 }),
        word: fc.constant(word),
        // The control word is a mask bit set or clear; the others any value.
        value: word === 3 ? fc.constantFrom(0, MSIX_VECTOR_CTRL_MASKBIT) : u32Arb,
      }),
    ),
    weight: 6,
  },
);

export const pciFunctionsCaseArb: fc.Arbitrary<PciOp[]> = fc.array(pciOpArb, { minLength: 1, maxLength: 60 });

interface Function {
  readonly fn: VirtioPciFunction;
  readonly config: ReturnType<typeof buildVirtioPciConfig>['config'];
  readonly options: VirtioPciOptions;
  readonly state: VirtioTransportState;
  readonly msixCap: number;
  readonly fds: number[];
}

function makeFunction(barAddress: number, table: IoeventfdTable): Function {
  const { config, msixCap, pciCfgCap } = buildVirtioPciConfig(DEVICE, { barAddress, irq: 10, msixVectors: MSIX_VECTORS });
  const state = VirtioTransportState.create({
    deviceFeatures: transportFeatures(0n),
    queueMaxSizes: DEVICE.queueMaxSizes,
    configSpace: DEVICE.configSpace,
    msixVectors: MSIX_VECTORS,
  });
  for (let v = 0; v < MSIX_VECTORS; v++) state.setMsixEntryWord(v, 3, MSIX_VECTOR_CTRL_MASKBIT);
  const fds: number[] = [];
  const fd = (): number => {
    const f = eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
    fds.push(f);
    return f;
  };
  const options: VirtioPciOptions = {
    state: state.shared,
    controlFds: [fd()],
    kickFds: DEVICE.queueMaxSizes.map(fd),
    lineFd: fd(),
    vectorFds: Array.from({ length: MSIX_VECTORS }, fd),
    vectorGsis: Array.from({ length: MSIX_VECTORS }, (_, i) => 24 + i),
    routing: createIrqRoutingState(),
    msixCap,
    pciCfgCap,
    notifyRegistration: createNotifyRegistration(barAddress, DEVICE.queueMaxSizes.length),
  };
  // As virtio-pci-attach does at start-up.
  options.kickFds.forEach((eventFd, q) => table.registrar({ address: notifyAddress(barAddress, q), length: 2, eventFd }, true));
  const fn = new VirtioPciFunction(config, options, testDeviceContext(), table.registrar);
  return { fn, config, options, state, msixCap, fds };
}

function notifyAddress(base: number, q: number): number {
  return base + L.VIRTIO_PCI_NOTIFY_OFFSET + q * L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER;
}

function bytes(size: number, value: number): Uint8Array {
  const data = new Uint8Array(size);
  setDataValue(data, value);
  return data;
}

function apply(f: Function, op: PciOp): void {
  switch (op.kind) {
    case 'config-write':
    case 'bar0': {
      const offset = op.kind === 'bar0' ? C.PCI_BASE_ADDRESS_0 : op.offset;
      const size = op.kind === 'bar0' ? 4 : Math.min(op.size, 0x100 - offset);
      // As the PCI root does: write through the mask, then tell the function.
      if (f.config.write(offset, bytes(size, op.value)) || offset >= 0x40) f.fn.configWritten(offset, size);
      return;
    }
    case 'config-read': {
      const data = new Uint8Array(Math.min(op.size, 0x100 - op.offset));
      if (!f.fn.readConfig(op.offset, data)) f.config.read(op.offset, data);
      return;
    }
    case 'bar-write':
      f.fn.barWrite(0, op.offset, bytes(Math.min(op.size, L.VIRTIO_PCI_BAR_SIZE - op.offset), op.value));
      return;
    case 'bar-read':
      f.fn.barRead(0, op.offset, new Uint8Array(Math.min(op.size, L.VIRTIO_PCI_BAR_SIZE - op.offset)));
      return;
    case 'msix-control': {
      const at = f.msixCap + C.PCI_MSIX_FLAGS;
      const flags = (op.enable ? C.PCI_MSIX_FLAGS_ENABLE : 0) | (op.maskAll ? C.PCI_MSIX_FLAGS_MASKALL : 0);
      f.config.write(at, bytes(2, flags));
      f.fn.configWritten(at, 2);
      return;
    }
    case 'msix-entry':
      f.fn.barWrite(0, L.VIRTIO_PCI_MSIX_TABLE_OFFSET + op.vector * C.PCI_MSIX_ENTRY_SIZE + op.word * 4, bytes(4, op.value));
      return;
  }
}

export function checkPciFunctionsCase(ops: PciOp[]): void {
  const table = new IoeventfdTable();
  const functions = BARS.map((bar) => makeFunction(bar, table));
  try {
    ops.forEach((op, i) => {
      try {
        apply(functions[op.fn]!, op);
      } catch (error) {
        throw new Error(`op ${i} (${JSON.stringify(op)}) threw: ${error instanceof Error ? error.message : String(error)}`);
      }
    });
    // The ioeventfd table is exactly what the functions believe.
    const believed = new Map<number, number>();
    for (const f of functions) {
      const cells = new Int32Array(f.options.notifyRegistration);
      const base = Atomics.load(cells, NOTIFY_BASE) >>> 0;
      f.options.kickFds.forEach((fd, q) => {
        if (Atomics.load(cells, NOTIFY_REGISTERED + q) === 1) believed.set(notifyAddress(base, q), fd);
      });
    }
    const actual = [...table.byAddress.entries()].sort(([a], [b]) => a - b);
    const expected = [...believed.entries()].sort(([a], [b]) => a - b);
    expect(JSON.stringify(actual) === JSON.stringify(expected), () => `ioeventfds ${JSON.stringify(actual)}, the functions believe ${JSON.stringify(expected)}`);
    // Every vector whose own mask bit is clear is routed to its entry's message.
    for (const f of functions) {
      for (let v = 0; v < MSIX_VECTORS; v++) {
        if (f.state.msixEntryWord(v, 3) & MSIX_VECTOR_CTRL_MASKBIT) continue;
        const route = msiRouteOf(f.options.routing, f.options.vectorGsis[v]!);
        const message = f.state.msixMessage(v);
        const same = route !== undefined && route.addressLo === message.addressLo >>> 0 && route.addressHi === message.addressHi >>> 0 && route.data === message.data >>> 0;
        expect(same, () => `vector ${v}: routed to ${JSON.stringify(route)}, its entry says ${JSON.stringify(message)}`);
      }
    }
  } finally {
    for (const f of functions) f.fds.forEach(close);
  }
}

export const pciFunctionsTarget: FuzzTarget<PciOp[]> = {
  name: 'pci-functions',
  description: 'two virtio-pci functions under hostile config/BAR accesses: no exception, ioeventfds and MSI routes as the functions believe',
  arbitrary: pciFunctionsCaseArb,
  check: checkPciFunctionsCase,
  testRuns: { fixed: 300, random: 100 },
};
