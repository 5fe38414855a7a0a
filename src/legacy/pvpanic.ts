/**
 * pvpanic (QEMU's ISA device at port 0x505, ACPI HID QEMU0001): the guest
 * reads the events it may report and writes PVPANIC_PANICKED when it
 * panics, which ends the run with status 34.
 */
import type { BusDevice } from '../vmm/bus.js';
import { defineBusDevice, type DeviceContext } from '../vmm/device.js';
import { EXIT_GUEST_PANIC } from '../base/exit-status.js';

export const PVPANIC_PORT = 0x505;
export const PVPANIC_PANICKED = 1 << 0;
export const PVPANIC_CRASH_LOADED = 1 << 1;

export class Pvpanic implements BusDevice {
  constructor(private readonly context: Pick<DeviceContext, 'requestExit' | 'log'>) {}

  read(_offset: number, data: Uint8Array): void {
    data.fill(0);
    data[0] = PVPANIC_PANICKED | PVPANIC_CRASH_LOADED;
  }

  write(_offset: number, data: Uint8Array): void {
    const events = data[0]!;
    if (events & PVPANIC_PANICKED) this.context.requestExit({ status: EXIT_GUEST_PANIC, reason: 'guest panicked (pvpanic)' });
    // A kdump kernel taking over is not an end: the guest goes on.
    else if (events & PVPANIC_CRASH_LOADED) this.context.log('guest reports a crash kernel loaded (pvpanic)');
  }
}

export const pvpanicDevice = defineBusDevice({
  module: import.meta.url,
  exportName: 'pvpanicDevice',
  create: (_options, context) => new Pvpanic(context),
});
