/**
 * A KVM virtual machine and its vCPU threads, seen from the main thread:
 * VM and RAM creation, device registration, starting one worker per vCPU,
 * and ending the run exactly once with a VmExit.
 */
import createDebug from 'debug';
import { Worker } from 'node:worker_threads';
import type { CpuEntryState } from './cpu-state.js';
import { CpuidTable, vcpuCpuid, type CpuFeatureEdits } from './cpuid.js';
import type { DeviceSpec } from './device.js';
import { EXIT_HOST_ERROR, EXIT_POWER_OFF, type VmExit } from '../base/exit-status.js';
import type { GuestMemory, RegionDescriptor } from './guest-memory.js';
import { allocateGuestRam } from './guest-ram.js';
import { HOST_QUIRK_CPU_EDITS } from './host-quirks.js';
import { RUN } from './kvm-abi.js';
import { Kvm, KvmError, type VmFd } from './kvm.js';
import { close } from '../sys/fd.js';
import { MAP_SHARED, PROT_READ, PROT_WRITE, mmap, view } from '../sys/memory.js';
import { tgkill } from '../sys/signals.js';
import { getpid } from '../sys/threads.js';
import { CONTROL_STOP, type VcpuMessage, type VcpuStart } from './vcpu-protocol.js';
import { takeVcpuThreads, type VcpuThread } from './vcpu-threads.js';

const log = createDebug('kvm:machine');
/** How often a vCPU sleeping in KVM_RUN is checked for a final halt. */
const HALT_PROBE_MS = 500;

export interface MachineOptions {
  readonly memoryBytes: number;
  readonly cpus: number;
  readonly cpuFeatures?: CpuFeatureEdits;
  /** Host-quirk layer for nested PVM hosts (decided by the caller from --host-quirks). */
  readonly hostQuirks?: boolean;
}

interface VcpuHandle {
  readonly index: number;
  readonly fd: number;
  readonly runAddress: number;
  readonly runPage: Uint8Array;
  worker?: Worker;
  tid?: number;
  kickSignal?: number;
  stopped: boolean;
  parked: boolean;
}

export interface MachineTimings {
  /** performance.timeOrigin-based ms at which start() was called. */
  started?: number;
  /** ...and at which the first vCPU exit happened (the guest ran its first I/O). */
  firstExit?: number;
}

export class Machine {
  readonly memory: GuestMemory;
  readonly regions: readonly RegionDescriptor[];
  readonly timings: MachineTimings = {};
  private readonly devices: DeviceSpec[] = [];
  private readonly closeHooks: Array<() => Promise<void> | void> = [];
  private readonly vcpus: VcpuHandle[];
  private exitResolve!: (exit: VmExit) => void;
  private result: VmExit | undefined;
  private allStopped: Promise<void> = Promise.resolve();
  readonly exited: Promise<VmExit>;
  private readonly cpuidBase: CpuidTable;
  private haltProbe: NodeJS.Timeout | undefined;
  private threads: readonly VcpuThread[] = [];

  private constructor(
    readonly kvm: Kvm,
    readonly vm: VmFd,
    ram: { memory: GuestMemory; regions: readonly RegionDescriptor[] },
    readonly options: MachineOptions,
    threads: readonly VcpuThread[],
    private readonly control: SharedArrayBuffer,
  ) {
    this.memory = ram.memory;
    this.regions = ram.regions;
    this.exited = new Promise((resolve) => (this.exitResolve = resolve));
    this.cpuidBase = new CpuidTable(kvm.supportedCpuid());
    if (options.hostQuirks) this.cpuidBase.applyFeatureEdits(HOST_QUIRK_CPU_EDITS);
    if (options.cpuFeatures) this.cpuidBase.applyFeatureEdits(options.cpuFeatures);
    const runSize = kvm.vcpuMmapSize;
    this.vcpus = Array.from({ length: options.cpus }, (_, index) => {
      const fd = vm.createVcpu(index);
      const runAddress = mmap(runSize, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
      return { index, fd, runAddress, runPage: new Uint8Array(view(runAddress, runSize)), stopped: false, parked: false };
    });
    this.attachThreads(threads);
  }

  static create(options: MachineOptions, kvm = Kvm.open()): Machine {
    // KVM's recommended limit (the host's online CPUs): more vCPUs than that only time-slice.
    const max = kvm.recommendedVcpus;
    if (options.cpus < 1 || options.cpus > max) {
      throw new KvmError('vcpu-limit', `${options.cpus} vCPUs requested; this host's KVM allows 1 to ${max}`);
    }
    // Threads first: their start-up (tens of ms) then overlaps VM creation and kernel loading.
    const { threads, control } = takeVcpuThreads(options.cpus);
    try {
      const vm = kvm.createVm();
      vm.setupPlatform();
      const ram = allocateGuestRam(vm, options.memoryBytes);
      log('VM fd %d with %d MiB in %d region(s), %d vCPU(s)', vm.fd, options.memoryBytes / 2 ** 20, ram.regions.length, options.cpus);
      return new Machine(kvm, vm, ram, options, threads, control);
    } catch (error) {
      for (const thread of threads) void thread.terminate();
      throw error;
    }
  }

  get vcpuCount(): number {
    return this.vcpus.length;
  }

  /** The CPUID table vCPU `index` will see. */
  cpuidFor(index: number): CpuidTable {
    return vcpuCpuid(this.cpuidBase, index, this.vcpus.length);
  }

  /** CPUID leaf 1 EAX/EDX (family/model/stepping and feature flags), for the MP table's processor entries. */
  cpuSignature(): { eax: number; edx: number } {
    const table = this.cpuidFor(0);
    return { eax: table.get(1, 0, 'eax'), edx: table.get(1, 0, 'edx') };
  }


  addDevice(spec: DeviceSpec): void {
    this.devices.push(spec);
  }

  /** Work to do when the VM is closed, after the vCPUs stopped (e.g. ending data-plane threads). */
  onClose(hook: () => Promise<void> | void): void {
    this.closeHooks.push(hook);
  }

  /** Wires the vCPU threads, which set up and then wait for start(). */
  private attachThreads(threads: readonly VcpuThread[]): void {
    this.threads = threads;
    this.allStopped = Promise.all(
      this.vcpus.map(
        (vcpu) =>
          new Promise<void>((resolve) => {
            const thread = threads[vcpu.index]!;
            vcpu.worker = thread.worker;
            thread.listen({
              message: (message) => this.onMessage(vcpu, message),
              error: (error) => {
                log('vCPU %d thread error: %O', vcpu.index, error);
                this.finish({ status: EXIT_HOST_ERROR, reason: `vCPU ${vcpu.index} thread failed: ${error.message}` });
              },
              exit: () => {
                vcpu.stopped = true;
                resolve();
              },
            });
          }),
      ),
    ).then(() => undefined);
  }

  /** Starts every vCPU; the boot vCPU (0) enters at `entry`. */
  start(entry: CpuEntryState): void {
    this.timings.started = performance.timeOrigin + performance.now();
    for (const vcpu of this.vcpus) {
      const start: VcpuStart = {
        vcpuFd: vcpu.fd,
        vmFd: this.vm.fd,
        runAddress: vcpu.runAddress,
        runSize: vcpu.runPage.length,
        regions: this.regions,
        devices: this.devices,
        cpuid: this.cpuidFor(vcpu.index).toKvmCpuid2(),
        ...(vcpu.index === 0 ? { entry } : {}),
        hostQuirks: this.options.hostQuirks ?? false,
      };
      vcpu.worker!.postMessage(start);
    }
    // With the in-kernel LAPIC a halted vCPU sleeps inside KVM_RUN; probing
    // now and then is how "every vCPU halted with interrupts off" is seen.
    this.haltProbe = setInterval(() => {
      for (const vcpu of this.vcpus) this.signalThread(vcpu);
    }, HALT_PROBE_MS);
    this.haltProbe.unref();
  }

  private onMessage(vcpu: VcpuHandle, message: VcpuMessage): void {
    switch (message.type) {
      case 'ready':
        vcpu.tid = message.tid;
        vcpu.kickSignal = message.kickSignal;
        log('vCPU %d thread ready (tid %d)', vcpu.index, message.tid);
        if (Atomics.load(new Int32Array(this.control), CONTROL_STOP) !== 0) this.kick(vcpu);
        break;
      case 'running':
        break;
      case 'first-exit':
        this.timings.firstExit ??= message.at;
        break;
      case 'exit':
        this.finish(message.exit);
        break;
      case 'parked':
        vcpu.parked = message.parked;
        if (this.vcpus.every((v) => v.parked)) this.finish({ status: EXIT_POWER_OFF, reason: 'guest halted with interrupts off' });
        break;
      case 'stopped':
        // A vCPU that stops on its own without an exit (all of them halted for good) ends nothing by itself.
        break;
    }
  }

  /** Ends the run (first caller wins) and asks every vCPU to stop. */
  finish(exit: VmExit): void {
    if (this.result) return;
    this.result = exit;
    clearInterval(this.haltProbe);
    log('exit: status %d, %s', exit.status, exit.reason);
    this.requestStop();
    this.exitResolve(exit);
  }

  private requestStop(): void {
    Atomics.store(new Int32Array(this.control), CONTROL_STOP, 1);
    for (const vcpu of this.vcpus) this.kick(vcpu);
  }

  /** Makes KVM_RUN return: immediate_exit covers a vCPU about to enter, the signal one inside. */
  private kick(vcpu: VcpuHandle): void {
    vcpu.runPage[RUN.immediate_exit] = 1;
    this.signalThread(vcpu);
  }

  /** The signal is blocked in the thread before it reports its tid, so it can only interrupt KVM_RUN. */
  private signalThread(vcpu: VcpuHandle): void {
    if (vcpu.tid !== undefined && vcpu.kickSignal !== undefined && !vcpu.stopped) tgkill(getpid(), vcpu.tid, vcpu.kickSignal);
  }

  /** Stops the vCPU threads and releases the VM. Safe to call more than once. */
  async close(): Promise<void> {
    this.requestStop();
    // A thread not yet started waits for a message, not in KVM_RUN: terminate ends it.
    if (this.timings.started === undefined) this.threads.forEach((t) => void t.terminate());
    const timer = setTimeout(() => this.threads.forEach((t) => void t.terminate()), 2000);
    await this.allStopped;
    clearTimeout(timer);
    await Promise.all(this.closeHooks.splice(0).map((hook) => hook()));
    for (const vcpu of this.vcpus) close(vcpu.fd);
    close(this.vm.fd);
    close(this.kvm.fd);
  }
}
