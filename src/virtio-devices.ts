/**
 * Which virtio devices a VM gets and where: builds each device, attaches it
 * through the chosen transport and returns what the rest of the VM needs
 * (kernel parameters, the console input path).
 */
import { writeSync } from 'node:fs';
import { attachVirtioMmio, type AttachedVirtioDevice } from './transport/virtio-mmio-attach.js';
import type { TransportKind } from './config.js';
import { VirtioConsole, type ConsoleOptions } from './virtio/devices/console.js';
import { VirtioRng } from './virtio/devices/rng.js';
import type { VirtioDevice, VirtioDeviceModule } from './virtio/virtio-device.js';
import { O_CLOEXEC, pipe, setNonBlocking } from './vmm/libc.js';
import type { Machine } from './vmm/machine.js';
import { attachVirtioPci } from './transport/pci/virtio-pci-attach.js';
import { PciBus } from './transport/pci/pci-bus.js';

/** virtio-mmio windows start here, above the PCI BAR window, inside the 32-bit hole. */
export const VIRTIO_MMIO_BASE = 0xd000_0000;
export const VIRTIO_MMIO_STRIDE = 0x1000;
/**
 * Interrupt lines for devices: the free ISA lines (not 0-4, 8 RTC, 9 ACPI SCI, 12 PS/2 mouse,
 * 13 FPU), then the IOAPIC-only GSIs 16-23 (for kernels that use the IOAPIC from ACPI or the MP table).
 */
export const DEVICE_IRQS = [5, 6, 7, 10, 11, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23] as const;

export interface VirtioDeviceOptions {
  readonly transport: TransportKind;
  readonly rng: boolean;
  readonly console?: { readonly outputFd: number };
}

export interface VirtioDevices {
  readonly cmdline: string[];
  readonly attached: AttachedVirtioDevice[];
  /** Where console input goes when virtio-console is the console. */
  readonly consoleInput?: (bytes: Uint8Array) => void;
}

const deviceModule = (file: string, factory: string, options: unknown): VirtioDeviceModule => ({
  module: new URL(`./virtio/devices/${file}.js`, import.meta.url).href,
  factory,
  options,
});

export function addVirtioDevices(machine: Machine, options: VirtioDeviceOptions): VirtioDevices {
  const devices: Array<{ name: string; device: VirtioDevice; module: VirtioDeviceModule }> = [];
  let consoleInput: ((bytes: Uint8Array) => void) | undefined;

  if (options.console) {
    const [readFd, writeFd] = pipe(O_CLOEXEC);
    setNonBlocking(readFd);
    const consoleOptions: ConsoleOptions = { inputFd: readFd, outputFd: options.console.outputFd };
    devices.push({ name: 'virtio-console', device: new VirtioConsole(consoleOptions), module: deviceModule('console', 'createVirtioConsole', consoleOptions) });
    consoleInput = (bytes) => {
      try {
        writeSync(writeFd, bytes);
      } catch {
        // The guest is not reading: input is dropped rather than blocking the VMM.
      }
    };
  }
  if (options.rng) {
    devices.push({ name: 'virtio-rng', device: new VirtioRng(), module: deviceModule('rng', 'createVirtioRng', {}) });
  }

  const cmdline: string[] = [];
  const attached: AttachedVirtioDevice[] = [];
  if (options.transport === 'mmio') {
    devices.forEach(({ name, device, module }, i) => {
      const irq = DEVICE_IRQS[i];
      if (irq === undefined) throw new Error(`too many virtio-mmio devices (at most ${DEVICE_IRQS.length})`);
      const a = attachVirtioMmio(machine, name, device, module, { base: VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_STRIDE, irq });
      attached.push(a);
      if (a.cmdline) cmdline.push(a.cmdline);
    });
  } else if (devices.length > 0) {
    const bus = new PciBus(machine);
    devices.forEach(({ name, device, module }, i) => {
      attached.push(attachVirtioPci(machine, bus, name, device, module, { irq: DEVICE_IRQS[i % DEVICE_IRQS.length]! }));
    });
    bus.register();
  }
  return { cmdline, attached, ...(consoleInput ? { consoleInput } : {}) };
}
