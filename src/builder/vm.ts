/**
 * The library API: build a VM from a VmConfig, start it, await its exit.
 * The CLI is a thin layer over this; so can any JavaScript program be.
 */
import createDebug from 'debug';
import { readFileSync } from 'node:fs';
import { isLinuxKernel, loadKernel } from '../boot/index.js';
import { buildFirmwareTables } from '../boot/acpi/index.js';
import type { BootProtocol } from '../vmm/cpu-state.js';
import { errorToExit } from '../base/error-exit.js';
import { kernelCommandLine, validateConfig, type ValidConfig, type VmConfig } from './config.js';
import { addLegacyDevices } from '../legacy/index.js';
import { addVirtioDevices, type VirtioDevices } from './virtio-devices.js';
import { openDisks } from '../disk/disk-image.js';
import { EXIT_TIMEOUT, type VmExit } from '../base/exit-status.js';
import { PCI_HOLE_START } from '../vmm/guest-ram.js';
import { MAX_KVM_IOAPIC_ID } from '../vmm/kvm.js';
import { hostQuirkLinuxParams, hostQuirksActive } from '../vmm/host-quirks.js';
import { Machine, type MachineTimings } from '../vmm/machine.js';

const log = createDebug('kvm:vm');

export class VirtualMachine {
  private timeout: NodeJS.Timeout | undefined;
  private started = false;

  private constructor(
    private readonly machine: Machine,
    private readonly consoleInput: (bytes: Uint8Array) => void,
    private readonly entry: Parameters<Machine['start']>[0],
    readonly protocol: BootProtocol,
    readonly cmdline: string,
    private readonly timeoutSeconds: number | undefined,
    private readonly counters: Pick<VirtioDevices, 'counters' | 'threadCounters'>,
  ) {}

  /**
   * Creates the VM and loads the kernel, validating the config first unless validateConfig
   * already returned it. Throws a VmmError (ConfigError, BootError, KvmError, …): errorToExit
   * gives its status and message.
   */
  static async create(config: VmConfig | ValidConfig): Promise<VirtualMachine> {
    const valid = validateConfig(config);
    const kernel = readFileSync(valid.kernel);
    const initrd = valid.initrd !== undefined ? readFileSync(valid.initrd) : undefined;
    // Disks are opened and locked before KVM is touched: a bad disk is a one-line error.
    const disks = openDisks(valid.disks);
    const hostQuirks = hostQuirksActive(valid.hostQuirks);
    let machine: Machine;
    try {
      machine = Machine.create({
        memoryBytes: valid.memoryBytes,
        cpus: valid.cpus,
        cpuFeatures: valid.cpuFeatureEdits,
        hostQuirks,
      });
    } catch (error) {
      disks.forEach((disk) => disk.close());
      throw error;
    }
    try {
      const highMemoryBytes = Math.max(0, valid.memoryBytes - PCI_HOLE_START);
      const outputFd = valid.serialOutputFd;
      const uart = addLegacyDevices(machine, {
        serialOutputFd: outputFd,
        memoryBytes: valid.memoryBytes,
        highMemoryBytes,
      });
      const virtio = addVirtioDevices(machine, {
        transport: valid.transport,
        rng: valid.rng,
        console: valid.console === 'virtio' ? { outputFd } : undefined,
        net: valid.net,
        disks,
      });
      const quirkParams = hostQuirks && isLinuxKernel(kernel) ? hostQuirkLinuxParams(valid.cmdline) : [];
      if (quirkParams.length) log('host quirks: Linux gets %s', quirkParams.join(' '));
      const cmdline = [kernelCommandLine(valid), ...quirkParams, ...virtio.cmdline].join(' ');
      const firmware = buildFirmwareTables(machine.memory, {
        cpus: valid.cpus,
        pciInterrupts: virtio.attached.flatMap((a) => (a.placement.kind === 'pci' ? [{ slot: a.placement.slot, gsi: a.placement.irq }] : [])),
        virtioMmio: virtio.attached.flatMap((a) =>
          a.placement.kind === 'mmio' ? [{ base: a.placement.base, size: a.placement.size, gsi: a.placement.irq }] : [],
        ),
        cpuSignature: machine.cpuSignature(),
      });
      // So a guest reading the IOAPIC's id register finds what the MADT and MP table say.
      if (firmware.ioapicId <= MAX_KVM_IOAPIC_ID) machine.vm.setIoapicId(firmware.ioapicId);
      const boot = loadKernel({
        kernel,
        ...(initrd ? { initrd } : {}),
        cmdline,
        memory: machine.memory,
        acpiRsdp: firmware.rsdpAddress,
      });
      log('kernel %s loaded by %s, entry 0x%s', valid.kernel, boot.protocol, boot.cpu.rip.toString(16));
      const consoleInput = virtio.consoleInput ?? ((bytes: Uint8Array) => uart.receive(bytes));
      return new VirtualMachine(machine, consoleInput, boot.cpu, boot.protocol, cmdline, valid.timeoutSeconds, virtio);
    } catch (error) {
      await machine.close();
      disks.forEach((disk) => disk.close());
      throw error;
    }
  }

  get vcpuCount(): number {
    return this.machine.vcpuCount;
  }

  get timings(): MachineTimings {
    return this.machine.timings;
  }

  /** Starts the vCPUs. Resolves `exited` when the guest or the host ends the run. */
  start(): void {
    if (this.started) return;
    this.started = true;
    this.machine.start(this.entry);
    if (this.timeoutSeconds !== undefined) {
      this.timeout = setTimeout(
        () => this.machine.finish({ status: EXIT_TIMEOUT, reason: `timeout after ${this.timeoutSeconds} s` }),
        this.timeoutSeconds * 1000,
      );
    }
  }

  /**
   * Every virtio device's counters by device name ("virtio-rng", "virtio-net:tap0", …):
   * what its data-plane thread has counted so far; still readable after the run ends.
   */
  deviceCounters(): Record<string, Readonly<Record<string, number>>> {
    return Object.fromEntries([...this.counters.counters].map(([name, snapshot]) => [name, snapshot()]));
  }

  /**
   * For each device served by several data-plane threads (a virtio-blk disk with several queues):
   * the same counters per thread, in thread order (thread i serves queues i, i + threads, …).
   */
  dataPlaneThreadCounters(): Record<string, Array<Readonly<Record<string, number>>>> {
    return Object.fromEntries([...this.counters.threadCounters].map(([name, snapshot]) => [name, snapshot()]));
  }

  /** Bytes typed at the console: to virtio-console when it is the console, else to the serial port. */
  sendConsoleInput(bytes: Uint8Array): void {
    this.consoleInput(bytes);
  }

  /** Ends the run from the host side (e.g. Ctrl-A x, a signal). */
  stop(exit: VmExit): void {
    this.machine.finish(exit);
  }

  /** Waits for the run to end, then releases the VM and its threads. */
  async wait(): Promise<VmExit> {
    const exit = await this.machine.exited;
    if (this.timeout) clearTimeout(this.timeout);
    await this.machine.close();
    return exit;
  }
}

/** Runs a VM to completion; failures to build it come back as an exit status too (errorToExit). */
export async function runVm(config: VmConfig | ValidConfig): Promise<VmExit> {
  let vm: VirtualMachine;
  try {
    vm = await VirtualMachine.create(config);
  } catch (error) {
    const { status, message } = errorToExit(error);
    return { status, reason: message };
  }
  vm.start();
  return vm.wait();
}

/** The documented status for an error raised while building a VM (errorToExit(error).status). */
export function statusForError(error: unknown): number {
  return errorToExit(error).status;
}

/** The one-line message for an error raised while building a VM (errorToExit(error).message). */
export function messageForError(error: unknown): string {
  return errorToExit(error).message;
}
