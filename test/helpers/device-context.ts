/** A DeviceContext for unit tests: no VM (vmFd -1), exits recorded. */
import createDebug from 'debug';
import type { DeviceContext } from '../../src/vmm/device.js';
import type { VmExit } from '../../src/base/exit-status.js';
import { GuestMemory } from '../../src/vmm/guest-memory.js';

export function testDeviceContext(exits: VmExit[] = []): DeviceContext {
  return {
    vmFd: -1,
    vcpuIndex: 0,
    memory: GuestMemory.fromLayout([[0, 0x1000]]),
    setIrq: () => {},
    requestExit: (exit) => exits.push(exit),
    log: createDebug('kvm:test'),
  };
}
