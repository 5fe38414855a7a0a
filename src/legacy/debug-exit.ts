/**
 * QEMU's isa-debug-exit at port 0xf4: a guest write of v ends the VM with
 * status (v << 1) | 1, so CI guests written for QEMU work unchanged.
 */
import { dataValue } from '../vmm/bus.js';
import { defineBusDevice } from '../vmm/device.js';
import { debugExitStatus } from '../base/exit-status.js';

export const DEBUG_EXIT_PORT = 0xf4;
export const DEBUG_EXIT_PORT_COUNT = 4;

export const debugExitDevice = defineBusDevice({
  module: import.meta.url,
  exportName: 'debugExitDevice',
  create: (_options, context) => ({
    read(_offset, data) {
      data.fill(0xff);
    },
    write(_offset, data) {
      const value = dataValue(data);
      context.requestExit({
        status: debugExitStatus(value),
        reason: `guest wrote 0x${value.toString(16)} to debug-exit`,
      });
    },
  }),
});
