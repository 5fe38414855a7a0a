/**
 * The i8042 keyboard controller, reduced to what a kernel needs: a
 * controller that passes its self-test, has no keyboard or mouse attached,
 * and resets the machine on command 0xFE (pulse reset line) or when the
 * output port's reset bit is written low.
 */
import type { BusDevice } from '../vmm/bus.js';
import { defineBusDevice, type DeviceContext } from '../vmm/device.js';
import { EXIT_GUEST_RESET } from '../base/exit-status.js';
import { SharedLock } from '../vmm/shared-lock.js';

export const I8042_DATA_PORT = 0x60;
export const I8042_COMMAND_PORT = 0x64;
/**
 * Port B (0x61) sits inside the i8042's range. KVM's in-kernel PIT normally
 * claims it (speaker gate and PIT channel 2 output, used by Linux's TSC
 * calibration) so it never reaches us; if it does, bit 5 toggles on every
 * read so a calibration loop polling it cannot hang.
 */
export const PORT_B_OFFSET = 0x61 - I8042_DATA_PORT;
const PORT_B_OUT2 = 0x20;

export const I8042_CMD_READ_CTR = 0x20;
export const I8042_CMD_WRITE_CTR = 0x60;
export const I8042_CMD_AUX_DISABLE = 0xa7;
export const I8042_CMD_AUX_ENABLE = 0xa8;
export const I8042_CMD_AUX_TEST = 0xa9;
export const I8042_CMD_CTL_TEST = 0xaa;
export const I8042_CMD_KBD_TEST = 0xab;
export const I8042_CMD_KBD_DISABLE = 0xad;
export const I8042_CMD_KBD_ENABLE = 0xae;
export const I8042_CMD_READ_OUTPUT = 0xd0;
export const I8042_CMD_WRITE_OUTPUT = 0xd1;
export const I8042_CMD_PULSE_RESET = 0xfe;
export const I8042_STR_OBF = 0x01;
export const I8042_STR_SYSFLAG = 0x04;
export const I8042_STR_CMDDAT = 0x08;
const OUTPUT_PORT_RESET_LINE = 0x01;
const SELF_TEST_PASSED = 0x55;
const INTERFACE_TEST_PASSED = 0x00;

// Shared cells.
const LOCK = 0;
const CTR = 1;
const PENDING_COMMAND = 2;
const OUTPUT = 3; // -1 when the output buffer is empty
const LAST_WAS_COMMAND = 4;
const PORT_B = 5;
const CELLS = 6;

export function createI8042State(): SharedArrayBuffer {
  const shared = new SharedArrayBuffer(CELLS * 4);
  const cells = new Int32Array(shared);
  cells[CTR] = 0x30; // keyboard and aux clocks disabled, no interrupts
  cells[OUTPUT] = -1;
  return shared;
}

class I8042 implements BusDevice {
  private readonly cells: Int32Array;
  private readonly lock: SharedLock;

  constructor(
    shared: SharedArrayBuffer,
    private readonly context: DeviceContext,
  ) {
    this.cells = new Int32Array(shared);
    this.lock = new SharedLock(this.cells, LOCK);
  }

  private reset(how: string): void {
    this.context.requestExit({ status: EXIT_GUEST_RESET, reason: `guest reset through the i8042 (${how})` });
  }

  read(offset: number, data: Uint8Array): void {
    data.fill(0);
    this.lock.with(() => {
      if (offset === I8042_COMMAND_PORT - I8042_DATA_PORT) {
        let status = I8042_STR_SYSFLAG;
        if (this.cells[OUTPUT]! >= 0) status |= I8042_STR_OBF;
        if (this.cells[LAST_WAS_COMMAND]) status |= I8042_STR_CMDDAT;
        data[0] = status;
      } else if (offset === 0) {
        data[0] = Math.max(0, this.cells[OUTPUT]!);
        this.cells[OUTPUT] = -1;
      } else if (offset === PORT_B_OFFSET) {
        this.cells[PORT_B] = this.cells[PORT_B]! ^ PORT_B_OUT2;
        data[0] = this.cells[PORT_B]!;
      } else {
        data.fill(0xff);
      }
    });
  }

  write(offset: number, data: Uint8Array): void {
    const value = data[0]!;
    this.lock.with(() => {
      if (offset === I8042_COMMAND_PORT - I8042_DATA_PORT) {
        this.cells[LAST_WAS_COMMAND] = 1;
        this.command(value);
      } else if (offset === 0) {
        this.cells[LAST_WAS_COMMAND] = 0;
        const pending = this.cells[PENDING_COMMAND]!;
        this.cells[PENDING_COMMAND] = 0;
        if (pending === I8042_CMD_WRITE_CTR) this.cells[CTR] = value;
        else if (pending === I8042_CMD_WRITE_OUTPUT && (value & OUTPUT_PORT_RESET_LINE) === 0) {
          this.reset('output port reset line');
        }
        // Bytes for an attached keyboard are dropped: none is attached.
      } else if (offset === PORT_B_OFFSET) {
        this.cells[PORT_B] = (this.cells[PORT_B]! & PORT_B_OUT2) | (value & ~PORT_B_OUT2 & 0xff);
      }
    });
  }

  private command(command: number): void {
    switch (command) {
      case I8042_CMD_READ_CTR:
        this.cells[OUTPUT] = this.cells[CTR]!;
        break;
      case I8042_CMD_WRITE_CTR:
      case I8042_CMD_WRITE_OUTPUT:
        this.cells[PENDING_COMMAND] = command;
        break;
      case I8042_CMD_CTL_TEST:
        this.cells[OUTPUT] = SELF_TEST_PASSED;
        break;
      case I8042_CMD_KBD_TEST:
      case I8042_CMD_AUX_TEST:
        this.cells[OUTPUT] = INTERFACE_TEST_PASSED;
        break;
      case I8042_CMD_READ_OUTPUT:
        this.cells[OUTPUT] = OUTPUT_PORT_RESET_LINE;
        break;
      case I8042_CMD_PULSE_RESET:
        this.reset('command 0xfe');
        break;
      default:
        break; // enable/disable commands change nothing without devices
    }
  }
}

export const i8042Device = defineBusDevice<{ readonly state: SharedArrayBuffer }>({
  module: import.meta.url,
  exportName: 'i8042Device',
  create: ({ state }, context) => new I8042(state, context),
});
