/**
 * A vCPU thread: sets up its vCPU, builds the device buses from their specs
 * and loops on KVM_RUN, serving every exit on this thread. It reports to the
 * main thread only to start, to end the VM, and when it stops.
 */
import createDebug from 'debug';
import { parentPort, workerData } from 'node:worker_threads';
import { Bus } from './bus.js';
import { createBusDevice, type DeviceContext } from './device.js';
import { EXIT_GUEST_CRASH, EXIT_HOST_ERROR, type VmExit } from '../base/exit-status.js';
import { handleExit } from './exits.js';
import { memoryFromRegions } from './guest-ram.js';
import * as abi from './kvm-abi.js';
import { setIrqLine } from './kvm.js';
import { ioctlBuffer, ioctlRaw } from '../sys/ioctl.js';
import { KERNEL_SIGSET_BYTES, blockSignalInThread, kickSignal, consumePendingSignal } from '../sys/signals.js';
import { gettid } from '../sys/threads.js';
import { Vcpu } from './vcpu.js';
import { EmulationFailureRecovery } from './host-quirks.js';
import { CONTROL_STOP, type VcpuMessage, type VcpuStart, type VcpuWorkerData } from './vcpu-protocol.js';
import { logSynchronously } from '../sys/thread-log.js';
import { EAGAIN, EINTR, errnoName } from '../sys/errno.js';

async function main(): Promise<void> {
  logSynchronously();
  const data = workerData as VcpuWorkerData;
  const port = parentPort!;
  const log = createDebug(`kvm:vcpu:${data.index}`);
  // Where the guest is, at every halt probe (twice a second): for finding where a slow guest spends its time.
  const ripLog = createDebug(`kvm:rip:${data.index}`);
  const control = new Int32Array(data.control);
  const post = (message: VcpuMessage): void => port.postMessage(message);
  let requested: VmExit | undefined;

  const fail = (reason: string, status = EXIT_HOST_ERROR): void => post({ type: 'exit', index: data.index, exit: { status, reason } });
  // Set once the guest runs: from then on an exception here is the guest's doing or our bug, a
  // crash of this VM (36), not a host failure (4). Guest-caused errors devices expect are
  // contained where they happen and never reach this thread's catch.
  let guestRunning = false;

  try {
    // The kick signal stays blocked in this thread except inside KVM_RUN, where
    // it only interrupts the run (EINTR): no handler ever runs in JavaScript.
    const signal = kickSignal();
    const mask = blockSignalInThread(signal);
    post({ type: 'ready', index: data.index, tid: gettid(), kickSignal: signal });

    const start = await new Promise<VcpuStart>((resolve) => port.once('message', resolve));
    const vcpu = new Vcpu(data.index, start.vcpuFd, start.runAddress, start.runSize);
    const signalMask = new Uint8Array(4 + KERNEL_SIGSET_BYTES);
    new DataView(signalMask.buffer).setUint32(0, KERNEL_SIGSET_BYTES, true);
    signalMask.set(mask, 4);
    ioctlBuffer(vcpu.fd, abi.KVM_SET_SIGNAL_MASK, 'KVM_SET_SIGNAL_MASK', signalMask);
    const memory = memoryFromRegions(start.regions);
    vcpu.setCpuid(start.cpuid);
    vcpu.setupLapic();
    if (start.entry) vcpu.applyEntryState(start.entry);

    const pio = new Bus('pio', (address, write, size) =>
      log('unhandled port %s 0x%s (%d bytes)', write ? 'write' : 'read', address.toString(16), size),
    );
    const mmio = new Bus('mmio', (address, write, size) =>
      log('unhandled mmio %s 0x%s (%d bytes)', write ? 'write' : 'read', address.toString(16), size),
    );
    const context: DeviceContext = {
      vmFd: start.vmFd,
      vcpuIndex: data.index,
      memory,
      setIrq: (irq, level) => setIrqLine(start.vmFd, irq, level),
      requestExit: (exit) => {
        requested ??= exit;
      },
      log,
    };
    const devices = await Promise.all(start.devices.map((spec) => createBusDevice(spec, context)));
    for (const [i, spec] of start.devices.entries()) (spec.bus === 'pio' ? pio : mmio).insert(spec.base, spec.length, spec.name, devices[i]!);
    const recovery = new EmulationFailureRecovery(vcpu);
    const exitContext = {
      pio,
      mmio,
      instructionBytes: () => vcpu.instructionBytes(memory),
      ...(start.hostQuirks
        ? {
            recoverInternalError: (suberror: number, seenByKvm: Uint8Array | undefined) =>
              suberror === abi.KVM_INTERNAL_ERROR_EMULATION &&
              recovery.recover(vcpu.getRegs().rip, vcpu.instructionBytes(memory), seenByKvm),
          }
        : {}),
    };

    post({ type: 'running', index: data.index, at: performance.timeOrigin + performance.now() });
    guestRunning = true;
    let firstExit = true;
    let lastParked = false;
    const run = vcpu.run;
    const view = vcpu.runView;
    for (;;) {
      if (Atomics.load(control, CONTROL_STOP) !== 0) break;
      const result = ioctlRaw(vcpu.fd, abi.KVM_RUN, 0);
      if (result < 0) {
        if (result === -EINTR || result === -EAGAIN) {
          // A kick without a stop is the main thread's halt probe.
          if (consumePendingSignal(signal) && Atomics.load(control, CONTROL_STOP) === 0) {
            if (ripLog.enabled) ripLog('rip 0x%s', vcpu.getRegs().rip.toString(16));
            const parked = vcpu.isParked();
            if (parked !== lastParked) log('parked: %s', parked);
            if (parked !== lastParked) post({ type: 'parked', index: data.index, parked });
            lastParked = parked;
          }
          continue;
        }
        fail(`KVM_RUN failed on vCPU ${data.index}: ${errnoName(-result)}`);
        break;
      }
      if (firstExit) {
        firstExit = false;
        post({ type: 'first-exit', index: data.index, at: performance.timeOrigin + performance.now() });
      }
      if (lastParked) {
        lastParked = false;
        post({ type: 'parked', index: data.index, parked: false });
      }
      const action = handleExit(run, view, exitContext);
      if (action.kind === 'stop') {
        post({ type: 'exit', index: data.index, exit: { status: action.status, reason: action.reason } });
        break;
      }
      if (requested) {
        post({ type: 'exit', index: data.index, exit: requested });
        break;
      }
    }
  } catch (error) {
    log('vCPU thread failed: %O', error);
    const message = error instanceof Error ? error.message : String(error);
    if (guestRunning) fail(`vCPU ${data.index}: unexpected error while running the guest: ${message}`, EXIT_GUEST_CRASH);
    else fail(`vCPU ${data.index}: ${message}`);
  }
  post({ type: 'stopped', index: data.index });
}

void main();
