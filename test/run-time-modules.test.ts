/**
 * Every module the VMM loads by path at run time resolves, even on a host without /dev/kvm
 * (where the tests that would load them by booting a VM are skipped): worker entry points
 * (vCPU, data plane), the bus device kinds and PCI function kinds a vCPU thread loads by module
 * URL and export name, and the virtio device kinds a data-plane thread loads the same way. A
 * path or export left behind by a move fails here. Each target must also have its source in src/, so a stale file in dist/
 * cannot hide a broken path.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { VIRTIO_DEVICE_KINDS } from '../src/builder/virtio-devices.js';
import { loadVirtioDeviceKind } from '../src/virtio/virtio-device.js';
import { addLegacyDevices } from '../src/legacy/index.js';
import { createBusDevice, loadBusDeviceKind, type DeviceSpec } from '../src/vmm/device.js';
import { virtioMmioDevice } from '../src/transport/virtio-mmio.js';
import { pciConfigPortsDevice, pciMmioWindowDevice } from '../src/transport/pci/pci-root.js';
import { PciBus } from '../src/transport/pci/pci-bus.js';
import { loadPciFunctionKind, pciFunction } from '../src/transport/pci/pci-function.js';
import { createNotifyRegistration, virtioPciFunction } from '../src/transport/pci/virtio-pci.js';
import { buildVirtioPciConfig } from '../src/transport/pci/virtio-pci-attach.js';
import * as PCI from '../src/transport/pci/pci-constants.js';
import * as L from '../src/transport/pci/virtio-pci-layout.js';
import { VirtioTransportState } from '../src/transport/virtio-transport-state.js';
import { transportFeatures } from '../src/transport/transport-features.js';
import { dataValue, setDataValue } from '../src/vmm/bus.js';
import { VIRTIO_ID_RNG } from '../src/virtio/virtio-constants.js';
import type { Machine } from '../src/vmm/machine.js';
import { testDeviceContext } from './helpers/device-context.js';

const root = fileURLToPath(new URL('../../', import.meta.url));
const distSrc = path.join(root, 'dist', 'src');

function jsFiles(dir: string): string[] {
  return readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const full = path.join(dir, e.name);
    return e.isDirectory() ? jsFiles(full) : e.name.endsWith('.js') ? [full] : [];
  });
}

/** The compiled module exists, and so does the TypeScript it was built from. */
function assertBuilt(url: string, what: string): void {
  const file = fileURLToPath(url);
  assert.ok(existsSync(file), `${what}: ${path.relative(root, file)} does not exist`);
  if (file.startsWith(distSrc + path.sep) && file.endsWith('.js')) {
    const source = path.join(root, 'src', path.relative(distSrc, file)).replace(/\.js$/, '.ts');
    assert.ok(existsSync(source), `${what}: ${path.relative(root, file)} is stale (no ${path.relative(root, source)})`);
  }
}

test("every literal new URL('…', import.meta.url) and import('…') in dist/src resolves", () => {
  const literal = [/new URL\(\s*(['"])([^'"]+)\1\s*,\s*import\.meta\.url\s*\)/g, /\bimport\(\s*(['"])(\.[^'"]+)\1\s*\)/g];
  let checked = 0;
  for (const file of jsFiles(distSrc)) {
    const text = readFileSync(file, 'utf8');
    for (const pattern of literal) {
      for (const match of text.matchAll(pattern)) {
        assertBuilt(new URL(match[2]!, pathToFileURL(file)).href, `${path.relative(root, file)}: '${match[2]}'`);
        checked += 1;
      }
    }
  }
  // vCPU worker, data-plane worker, the CLI's vm.js and package.json at least; device kinds and
  // PCI function kinds name their own module (import.meta.url) and are checked below.
  assert.ok(checked >= 4, `only ${checked} run-time module paths found`);
});

test('each virtio device kind is exported by its module under its name, as a data-plane thread loads it', async () => {
  assert.ok(VIRTIO_DEVICE_KINDS.length >= 4, `${VIRTIO_DEVICE_KINDS.length} virtio device kinds`);
  for (const kind of VIRTIO_DEVICE_KINDS) {
    const what = `virtio ${kind.exportName}`;
    assertBuilt(kind.module, what);
    const module = (await import(kind.module)) as Record<string, unknown>;
    assert.ok(module[kind.exportName] === kind, `${what}: not exported as ${kind.exportName} by ${path.relative(root, fileURLToPath(kind.module))}`);
    assert.ok((await loadVirtioDeviceKind({ module: kind.module, exportName: kind.exportName })) === kind, `${what}: not what a data-plane thread loads`);
  }
});

test('every virtio device kind declared under src/virtio/devices names its own module and export', async () => {
  let kinds = 0;
  for (const file of jsFiles(path.join(distSrc, 'virtio', 'devices'))) {
    const url = pathToFileURL(file).href;
    for (const [name, value] of Object.entries((await import(url)) as Record<string, unknown>)) {
      const kind = value as { module?: unknown; exportName?: unknown; describe?: unknown; create?: unknown };
      if (typeof value !== 'object' || value === null || typeof kind.describe !== 'function' || typeof kind.create !== 'function') continue;
      kinds += 1;
      assert.is(kind.module, url, `${path.relative(root, file)}: ${name} names another module`);
      assert.is(kind.exportName, name, `${path.relative(root, file)}: ${name} names another export`);
      assert.ok(VIRTIO_DEVICE_KINDS.some((k) => k === value), `${name} is missing from VIRTIO_DEVICE_KINDS`);
    }
  }
  assert.is(kinds, VIRTIO_DEVICE_KINDS.length);
});

async function assertRefused(load: (ref: { module: string; exportName: string }) => Promise<unknown>, ref: { module: string; exportName: string }): Promise<void> {
  try {
    await load(ref);
    assert.unreachable(`${ref.exportName} loaded`);
  } catch (error) {
    assert.instance(error, TypeError);
    assert.match((error as Error).message, ref.exportName);
  }
}

test('a data-plane thread refuses an export that is not the kind it was told of', async () => {
  const [first, second] = VIRTIO_DEVICE_KINDS;
  await assertRefused(loadVirtioDeviceKind, { module: first.module, exportName: 'noSuchKind' });
  await assertRefused(loadVirtioDeviceKind, { module: first.module, exportName: second.exportName });
});

test('each bus device kind a vCPU thread loads is exported by its module under its name', async () => {
  const specs: DeviceSpec[] = [];
  const machine = { addDevice: (spec: DeviceSpec) => void specs.push(spec), vm: { fd: -1 } } as unknown as Machine;
  addLegacyDevices(machine, { serialOutputFd: 1, memoryBytes: 64 << 20, highMemoryBytes: 0 });
  assert.ok(specs.length >= 7, `${specs.length} legacy devices`);
  const kinds = [...specs.map((spec) => ({ what: spec.name, ref: spec.kind })), ...[virtioMmioDevice, pciConfigPortsDevice, pciMmioWindowDevice].map((kind) => ({ what: kind.exportName, ref: kind }))];
  for (const { what, ref } of kinds) {
    assertBuilt(ref.module, what);
    const kind = await loadBusDeviceKind({ module: ref.module, exportName: ref.exportName });
    assert.is(kind.exportName, ref.exportName, what);
    assert.ok(((await import(ref.module)) as Record<string, unknown>)[ref.exportName] === kind, what);
  }
  await assertRefused(loadBusDeviceKind, { module: virtioMmioDevice.module, exportName: 'VIRTIO_MMIO_MAGIC' });
  await assertRefused(loadBusDeviceKind, { module: virtioPciFunction.module, exportName: virtioPciFunction.exportName });
});

test('every PCI function kind declared under src/transport/pci names its own module and export', async () => {
  const kinds: unknown[] = [];
  for (const file of jsFiles(path.join(distSrc, 'transport', 'pci'))) {
    const url = pathToFileURL(file).href;
    for (const [name, value] of Object.entries((await import(url)) as Record<string, unknown>)) {
      if (typeof value !== 'object' || value === null || (value as { family?: unknown }).family !== 'PCI function') continue;
      const kind = value as { module?: unknown; exportName?: unknown };
      assert.is(kind.module, url, `${path.relative(root, file)}: ${name} names another module`);
      assert.is(kind.exportName, name, `${path.relative(root, file)}: ${name} names another export`);
      assertBuilt(url, name);
      assert.ok((await loadPciFunctionKind({ module: url, exportName: name })) === value, `${name}: not what a vCPU thread loads`);
      kinds.push(value);
    }
  }
  assert.ok(kinds.includes(virtioPciFunction), 'virtioPciFunction was not found under src/transport/pci');
  await assertRefused(loadPciFunctionKind, { module: virtioPciFunction.module, exportName: 'VirtioPciFunction' });
  await assertRefused(loadPciFunctionKind, { module: pciConfigPortsDevice.module, exportName: pciConfigPortsDevice.exportName });
});

test('a vCPU thread builds the PCI root and its functions from what PciBus registered', async () => {
  const specs: DeviceSpec[] = [];
  const machine = { addDevice: (spec: DeviceSpec) => void specs.push(spec), vm: { fd: -1 } } as unknown as Machine;
  const bus = new PciBus(machine);
  const device = { deviceType: VIRTIO_ID_RNG, queueMaxSizes: [64], configSpace: new Uint8Array(0) };
  const slot = bus.allocateSlot();
  const barAddress = bus.allocateBar(L.VIRTIO_PCI_BAR_SIZE);
  const msixVectors = L.virtioPciMsixVectors(1);
  const { config, msixCap, pciCfgCap } = buildVirtioPciConfig(device, { barAddress, irq: 10, msixVectors });
  const state = VirtioTransportState.create({ deviceFeatures: transportFeatures(0n), queueMaxSizes: device.queueMaxSizes, configSpace: device.configSpace, msixVectors });
  bus.addFunction(
    pciFunction(
      virtioPciFunction,
      { slot, config: config.shared, barSizes: [L.VIRTIO_PCI_BAR_SIZE] },
      {
        state: state.shared,
        controlFds: [-1],
        kickFds: [-1],
        lineFd: -1,
        vectorFds: Array.from({ length: msixVectors }, () => -1),
        vectorGsis: bus.allocateMsiGsis(msixVectors),
        routing: bus.routing,
        msixCap,
        pciCfgCap,
        notifyRegistration: createNotifyRegistration(barAddress, 1),
      },
    ),
  );
  bus.register();
  // One clone for every spec, as a vCPU thread receives them: both root devices keep one options object.
  const [ports, window] = await Promise.all(structuredClone(specs).map((spec) => createBusDevice(spec, testDeviceContext())));
  assert.ok(ports && window, `${specs.length} PCI root devices`);
  const select = (fn: number, register: number): void => {
    const latch = new Uint8Array(4);
    setDataValue(latch, (PCI.PCI_CONFIG_ADDRESS_ENABLE | (fn << 11) | register) >>> 0);
    ports.write(0, latch);
  };
  const configRead = (fn: number, register: number): number => {
    select(fn, register);
    const data = new Uint8Array(4);
    ports.read(4, data);
    return dataValue(data);
  };
  const numQueues = (): number => {
    const data = new Uint8Array(2);
    window.read(barAddress - PCI.PCI_MMIO_WINDOW_START + L.VIRTIO_PCI_COMMON_OFFSET + L.COMMON_NUM_QUEUES, data);
    return dataValue(data);
  };
  assert.is(configRead(0, PCI.PCI_VENDOR_ID) & 0xffff, PCI.PCI_VENDOR_ID_INTEL, 'host bridge');
  assert.is(configRead(slot, PCI.PCI_VENDOR_ID) >>> 16, PCI.VIRTIO_PCI_MODERN_DEVICE_ID_BASE + VIRTIO_ID_RNG, 'virtio-pci function');
  assert.is(numQueues(), 0xffff, 'BAR 0 decoded before the guest enabled memory space');
  select(slot, PCI.PCI_COMMAND);
  ports.write(4, Uint8Array.of(PCI.PCI_COMMAND_MEMORY, 0));
  assert.is(numQueues(), 1, 'num_queues through the virtio-pci handler');
});

test.run();
