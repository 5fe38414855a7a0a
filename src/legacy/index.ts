/**
 * The legacy PC devices a stock kernel expects, registered on a machine's
 * port-I/O bus from one table. Returns the UART's register file so the main
 * thread can feed it console input.
 */
import type { Machine } from '../vmm/machine.js';
import { deviceSpec, type DeviceSpec } from '../vmm/device.js';
import { CMOS_INDEX_PORT, CMOS_PORT_COUNT, cmosRtcDevice, createCmosState } from './cmos-rtc.js';
import { DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT, debugExitDevice } from './debug-exit.js';
import { I8042_COMMAND_PORT, I8042_DATA_PORT, createI8042State, i8042Device } from './i8042.js';
import { POST_PORT, postPortDevice } from './post-port.js';
import { COM1_IRQ, COM1_PORT, UART_PORT_COUNT, UartRegisters, createUartState, uart8250Device } from './uart-8250.js';
import { setIrqLine } from '../vmm/kvm.js';
import { ACPI_PM_BASE, ACPI_PM_PORT_COUNT, acpiPmDevice, createAcpiPmState } from './acpi-pm.js';
import { PVPANIC_PORT, pvpanicDevice } from './pvpanic.js';

export interface LegacyDeviceOptions {
  /** Where the UART's output goes (1 = stdout). */
  readonly serialOutputFd: number;
  readonly memoryBytes: number;
  readonly highMemoryBytes: number;
}

/** Every legacy device on the port-I/O bus, each typed against its kind by deviceSpec. */
export function legacyDeviceSpecs(options: LegacyDeviceOptions, uartState: SharedArrayBuffer): DeviceSpec[] {
  const pio = (name: string, base: number, length: number) => ({ name, bus: 'pio', base, length }) as const;
  return [
    deviceSpec(uart8250Device, pio('uart-8250 ttyS0', COM1_PORT, UART_PORT_COUNT), { state: uartState, irq: COM1_IRQ, outputFd: options.serialOutputFd }),
    deviceSpec(i8042Device, pio('i8042', I8042_DATA_PORT, I8042_COMMAND_PORT - I8042_DATA_PORT + 1), { state: createI8042State() }),
    deviceSpec(cmosRtcDevice, pio('cmos-rtc', CMOS_INDEX_PORT, CMOS_PORT_COUNT), { state: createCmosState(options.memoryBytes, options.highMemoryBytes) }),
    deviceSpec(debugExitDevice, pio('debug-exit', DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT), undefined),
    deviceSpec(postPortDevice, pio('post', POST_PORT, 1), undefined),
    deviceSpec(acpiPmDevice, pio('acpi-pm', ACPI_PM_BASE, ACPI_PM_PORT_COUNT), { state: createAcpiPmState() }),
    deviceSpec(pvpanicDevice, pio('pvpanic', PVPANIC_PORT, 1), undefined),
  ];
}

export function addLegacyDevices(machine: Machine, options: LegacyDeviceOptions): UartRegisters {
  const uartState = createUartState();
  for (const spec of legacyDeviceSpecs(options, uartState)) machine.addDevice(spec);
  const vmFd = machine.vm.fd;
  return new UartRegisters(uartState, (level) => setIrqLine(vmFd, COM1_IRQ, level), () => {});
}
