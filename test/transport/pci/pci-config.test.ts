/** PCI configuration space and configuration mechanism #1, with no KVM. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { testDeviceContext } from '../../helpers/device-context.js';
import { PciConfigSpace } from '../../../src/transport/pci/pci-config.js';
import * as C from '../../../src/transport/pci/pci-constants.js';
import { createPciConfigPorts, createPciMmioWindow, type PciRootOptions } from '../../../src/transport/pci/pci-root.js';
import { dataValue, setDataValue } from '../../../src/vmm/bus.js';

const context = testDeviceContext();

test('BAR sizing: all-ones reads back the size mask; the address is restorable', () => {
  const config = PciConfigSpace.create();
  config.setMemoryBar(0, 0xc000_8000, 0x8000);
  config.write(C.PCI_BASE_ADDRESS_0, Uint8Array.of(0xff, 0xff, 0xff, 0xff));
  assert.is(config.u32(C.PCI_BASE_ADDRESS_0), 0xffff8000);
  config.write(C.PCI_BASE_ADDRESS_0, Uint8Array.of(0x00, 0x80, 0x00, 0xc0));
  assert.is(config.u32(C.PCI_BASE_ADDRESS_0), 0xc000_8000);
  config.write(C.PCI_COMMAND, Uint8Array.of(C.PCI_COMMAND_MEMORY, 0));
  assert.is(config.memoryBarAddress(0), 0xc000_8000, 'addresses above 2 GiB stay positive');
});

test('the command register keeps only implemented bits; read-only fields stay', () => {
  const config = PciConfigSpace.create();
  config.set16(C.PCI_VENDOR_ID, 0x1af4);
  config.write(C.PCI_COMMAND, Uint8Array.of(0xff, 0xff));
  assert.is(config.u16(C.PCI_COMMAND), C.PCI_COMMAND_MEMORY | C.PCI_COMMAND_MASTER | C.PCI_COMMAND_INTX_DISABLE);
  config.write(C.PCI_VENDOR_ID, Uint8Array.of(0, 0));
  assert.is(config.u16(C.PCI_VENDOR_ID), 0x1af4);
  assert.is(config.memoryBarAddress(0), 0); // decoding on, BAR 0 unset
  config.write(C.PCI_COMMAND, Uint8Array.of(0, 0));
  assert.is(config.memoryBarAddress(0), undefined);
});

test('capabilities chain from 0x34 and set the status bit', () => {
  const config = PciConfigSpace.create();
  const a = config.addCapability(C.PCI_CAP_ID_MSIX, new Uint8Array(10));
  const b = config.addCapability(C.PCI_CAP_ID_VNDR, new Uint8Array(14));
  assert.is(config.u8(C.PCI_CAPABILITY_LIST), a);
  assert.is(config.u8(a), C.PCI_CAP_ID_MSIX);
  assert.is(config.u8(a + 1), b);
  assert.is(config.u8(b + 1), 0);
  assert.ok(b >= a + 12 && b % 4 === 0);
  assert.ok(config.u16(C.PCI_STATUS) & C.PCI_STATUS_CAP_LIST);
});

async function root() {
  const bridge = PciConfigSpace.create();
  bridge.set16(C.PCI_VENDOR_ID, C.PCI_VENDOR_ID_INTEL);
  bridge.set16(C.PCI_DEVICE_ID, C.PCI_DEVICE_ID_INTEL_82441);
  const options: PciRootOptions = {
    functions: [{ slot: 0, config: bridge.shared, barSizes: [] }],
    addressLatch: new SharedArrayBuffer(4),
    windowBase: C.PCI_MMIO_WINDOW_START,
  };
  return {
    ports: await createPciConfigPorts(options, context),
    window: await createPciMmioWindow(options, context),
  };
}

test('mechanism #1: the latch selects bus/device/register; absent devices read all-ones', async () => {
  const { ports } = await root();
  const access = (slot: number, register: number): number => {
    const latch = new Uint8Array(4);
    setDataValue(latch, (C.PCI_CONFIG_ADDRESS_ENABLE | (slot << 11) | register) >>> 0);
    ports.write(0, latch);
    const data = new Uint8Array(4);
    ports.read(4, data);
    return dataValue(data);
  };
  assert.is(access(0, 0), (C.PCI_DEVICE_ID_INTEL_82441 << 16) | C.PCI_VENDOR_ID_INTEL);
  assert.is(access(5, 0), 0xffffffff);
  const latch = new Uint8Array(4);
  ports.read(0, latch);
  assert.is(dataValue(latch), (C.PCI_CONFIG_ADDRESS_ENABLE | (5 << 11)) >>> 0);
  // Sub-dword reads at 0xCFE pick the upper half.
  access(0, 0);
  const half = new Uint8Array(2);
  ports.read(6, half);
  assert.is(dataValue(half), C.PCI_DEVICE_ID_INTEL_82441);
});

test('without the enable bit nothing is selected', async () => {
  const { ports } = await root();
  const latch = new Uint8Array(4);
  setDataValue(latch, 0);
  ports.write(0, latch);
  const data = new Uint8Array(4);
  ports.read(4, data);
  assert.is(dataValue(data), 0xffffffff);
});

test.run();
