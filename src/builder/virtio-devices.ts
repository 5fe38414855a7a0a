/**
 * Which virtio devices a VM gets and where: configures each device (its kind
 * and options), attaches it through the chosen transport and returns what
 * the rest of the VM needs (kernel parameters, the console input path).
 */
import { writeSync } from 'node:fs';
import { attachVirtioMmio, type AttachedVirtioDevice } from '../transport/virtio-mmio-attach.js';
import type { TransportKind } from './config.js';
import { virtioConsole, type ConsoleOptions } from '../virtio/devices/console.js';
import { RNG_COUNTERS, virtioRng, type RngOptions } from '../virtio/devices/rng.js';
import { DeviceCounters } from '../virtio/device-counters.js';
import { virtioNet } from '../virtio/devices/net/device.js';
import type { NetOptions } from '../virtio/devices/net/options.js';
import { NET_COUNTERS } from '../virtio/devices/net/stats.js';
import { defaultMac, parseMac, type NetSpec } from '../net/net-spec.js';
import { openTap } from '../net/tap.js';
import { configureVirtioDevice, type ConfiguredVirtioDevice } from '../virtio/virtio-device.js';
import { virtioBlk } from '../virtio/devices/blk/device.js';
import { BLK_COUNTERS, blkDataPlaneQueues } from '../virtio/devices/blk/options.js';
import { blkOptionsFor } from './blk-options.js';
import type { DiskImage } from '../disk/disk-image.js';
import { diskName } from '../disk/disk-spec.js';
import { O_CLOEXEC, close, pipe, setNonBlocking } from '../sys/fd.js';
import type { Machine } from '../vmm/machine.js';
import { attachVirtioPci } from '../transport/pci/virtio-pci-attach.js';
import { PciBus } from '../transport/pci/pci-bus.js';
import { TransportError } from '../transport/transport-error.js';
import { DEVICE_IRQS, MAX_MMIO_DEVICES, VIRTIO_MMIO_BASE, VIRTIO_MMIO_STRIDE } from './device-placement.js';

export interface VirtioDeviceOptions {
  readonly transport: TransportKind;
  readonly rng: boolean;
  readonly console?: { readonly outputFd: number };
  /** virtio-net devices: each TAP is opened here (NetError when it cannot be). */
  readonly net?: readonly NetSpec[];
  /**
   * virtio-blk devices over images already opened (and locked) from validated specs, so each
   * knows its queue count; each is closed after its data plane ends.
   */
  readonly disks?: readonly DiskImage[];
}

export interface VirtioDevices {
  readonly cmdline: string[];
  readonly attached: AttachedVirtioDevice[];
  /** Where console input goes when virtio-console is the console. */
  readonly consoleInput?: (bytes: Uint8Array) => void;
  /** Each device's counters by device name, as its data-plane thread counts them. */
  readonly counters: ReadonlyMap<string, () => Readonly<Record<string, number>>>;
  /** For devices with several data-plane threads: each thread's share of those counters. */
  readonly threadCounters: ReadonlyMap<string, () => Array<Readonly<Record<string, number>>>>;
}

/** Every virtio device kind a VM may get (their data-plane threads load them by module and export). */
export const VIRTIO_DEVICE_KINDS = [virtioConsole, virtioRng, virtioNet, virtioBlk] as const;

export function addVirtioDevices(machine: Machine, options: VirtioDeviceOptions): VirtioDevices {
  const devices: Array<{ name: string; device: ConfiguredVirtioDevice; attached?: (a: AttachedVirtioDevice) => void }> = [];
  let consoleInput: ((bytes: Uint8Array) => void) | undefined;
  const counters = new Map<string, () => Readonly<Record<string, number>>>();
  const threadCounters = new Map<string, () => Array<Readonly<Record<string, number>>>>();
  /** A device's shared counters, registered under its name; its options carry the buffer. */
  const countersFor = (name: string, names: readonly string[], lanes = 1): SharedArrayBuffer => {
    const deviceCounters = new DeviceCounters(names, DeviceCounters.allocate(names, lanes));
    counters.set(name, () => deviceCounters.snapshot());
    if (lanes > 1) threadCounters.set(name, () => Array.from({ length: lanes }, (_, lane) => deviceCounters.laneSnapshot(lane)));
    return deviceCounters.shared;
  };

  if (options.console) {
    const [readFd, writeFd] = pipe(O_CLOEXEC);
    setNonBlocking(readFd);
    const consoleOptions: ConsoleOptions = { inputFd: readFd, outputFd: options.console.outputFd };
    devices.push({ name: 'virtio-console', device: configureVirtioDevice(virtioConsole, consoleOptions) });
    consoleInput = (bytes) => {
      try {
        writeSync(writeFd, bytes);
      } catch {
        // The guest is not reading: input is dropped rather than blocking the VMM.
      }
    };
  }
  if (options.rng) {
    const rngOptions: RngOptions = { counters: countersFor('virtio-rng', RNG_COUNTERS) };
    devices.push({ name: 'virtio-rng', device: configureVirtioDevice(virtioRng, rngOptions) });
  }

  for (const spec of options.net ?? []) {
    const tap = openTap(spec.tap);
    // Read, written and watched by its data-plane thread until that thread ends.
    const attached = releaseAfterDataPlane(machine, () => close(tap.fd));
    const name = `virtio-net:${tap.name}`;
    const netOptions: NetOptions = {
      name: tap.name,
      tapFds: [tap.fd],
      mac: Array.from(spec.mac !== undefined ? parseMac(spec.mac) : defaultMac(spec.tap)),
      tapOffloads: tap.offloads,
      stats: countersFor(name, NET_COUNTERS),
    };
    devices.push({ name, device: configureVirtioDevice(virtioNet, netOptions), attached });
  }

  for (const [i, disk] of (options.disks ?? []).entries()) {
    const name = `virtio-blk:${diskName(i)}`;
    // validateConfig gives every disk its queues (one per vCPU unless queues=N): a disk without
    // one was opened from an unchecked spec, and silently giving it a single queue would hide that.
    if (disk.queues === undefined) throw new RangeError(`${name}: opened without a queue count (validate the config first)`);
    const blkOptions = blkOptionsFor(disk, diskName(i), disk.queues);
    const threads = blkDataPlaneQueues(blkOptions.queues).length;
    const blk = { ...blkOptions, counters: countersFor(name, BLK_COUNTERS, threads) };
    devices.push({
      name,
      device: configureVirtioDevice(virtioBlk, blk),
      // The image fd must outlive every I/O its data plane may still have in flight.
      attached: releaseAfterDataPlane(machine, () => disk.close()),
    });
  }

  const cmdline: string[] = [];
  const attached: AttachedVirtioDevice[] = [];
  if (options.transport === 'mmio') {
    devices.forEach(({ name, device, attached: onAttached }, i) => {
      const irq = DEVICE_IRQS[i];
      if (irq === undefined) throw new TransportError('mmio-full', `too many virtio-mmio devices (at most ${MAX_MMIO_DEVICES})`);
      const a = attachVirtioMmio(machine, name, device, { base: VIRTIO_MMIO_BASE + i * VIRTIO_MMIO_STRIDE, irq });
      onAttached?.(a);
      attached.push(a);
      if (a.cmdline) cmdline.push(a.cmdline);
    });
  } else if (devices.length > 0) {
    const bus = new PciBus(machine);
    devices.forEach(({ name, device, attached: onAttached }, i) => {
      const a = attachVirtioPci(machine, bus, name, device, { irq: DEVICE_IRQS[i % DEVICE_IRQS.length]! });
      onAttached?.(a);
      attached.push(a);
    });
    bus.register();
  }
  return { cmdline, attached, counters, threadCounters, ...(consoleInput ? { consoleInput } : {}) };
}

/**
 * Runs `release` (closing a host fd a device's data plane uses) when the VM closes, once that
 * device's data-plane threads have ended, or at once if the device was never attached (a VM
 * that failed to build). Returns the device's `attached` callback.
 */
function releaseAfterDataPlane(machine: Machine, release: () => void): (a: AttachedVirtioDevice) => void {
  let dataPlaneExited: Promise<void> = Promise.resolve();
  machine.onClose(async () => {
    await dataPlaneExited;
    release();
  });
  return (a) => {
    dataPlaneExited = a.dataPlane.exited;
  };
}
