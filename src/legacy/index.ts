/**
 * The legacy PC devices a stock kernel expects, registered on a machine's
 * port-I/O bus. Returns the UART's register file so the main thread can feed
 * it console input.
 */
import type { Machine } from '../vmm/machine.js';
import { CMOS_INDEX_PORT, CMOS_PORT_COUNT, createCmosState } from './cmos-rtc.js';
import { DEBUG_EXIT_PORT, DEBUG_EXIT_PORT_COUNT } from './debug-exit.js';
import { I8042_COMMAND_PORT, I8042_DATA_PORT, createI8042State } from './i8042.js';
import { POST_PORT } from './post-port.js';
import { COM1_IRQ, COM1_PORT, UART_PORT_COUNT, UartRegisters, createUartState, type UartOptions } from './uart-8250.js';
import { setIrqLine } from '../vmm/kvm.js';
import { ACPI_PM_BASE, ACPI_PM_PORT_COUNT, createAcpiPmState } from './acpi-pm.js';
import { PVPANIC_PORT } from './pvpanic.js';

export interface LegacyDeviceOptions {
  /** Where the UART's output goes (1 = stdout). */
  readonly serialOutputFd: number;
  readonly memoryBytes: number;
  readonly highMemoryBytes: number;
}

const moduleUrl = (name: string): string => new URL(`./${name}.js`, import.meta.url).href;

export function addLegacyDevices(machine: Machine, options: LegacyDeviceOptions): UartRegisters {
  const uartState = createUartState();
  const uartOptions: UartOptions = { irq: COM1_IRQ, outputFd: options.serialOutputFd };
  machine.addDevice({
    name: 'uart-8250 ttyS0',
    bus: 'pio',
    base: COM1_PORT,
    length: UART_PORT_COUNT,
    module: moduleUrl('uart-8250'),
    factory: 'createUart8250',
    shared: uartState,
    options: uartOptions,
  });
  machine.addDevice({
    name: 'i8042',
    bus: 'pio',
    base: I8042_DATA_PORT,
    length: I8042_COMMAND_PORT - I8042_DATA_PORT + 1,
    module: moduleUrl('i8042'),
    factory: 'createI8042',
    shared: createI8042State(),
  });
  machine.addDevice({
    name: 'cmos-rtc',
    bus: 'pio',
    base: CMOS_INDEX_PORT,
    length: CMOS_PORT_COUNT,
    module: moduleUrl('cmos-rtc'),
    factory: 'createCmosRtc',
    shared: createCmosState(options.memoryBytes, options.highMemoryBytes),
  });
  machine.addDevice({
    name: 'debug-exit',
    bus: 'pio',
    base: DEBUG_EXIT_PORT,
    length: DEBUG_EXIT_PORT_COUNT,
    module: moduleUrl('debug-exit'),
    factory: 'createDebugExit',
  });
  machine.addDevice({
    name: 'post',
    bus: 'pio',
    base: POST_PORT,
    length: 1,
    module: moduleUrl('post-port'),
    factory: 'createPostPort',
  });
  machine.addDevice({
    name: 'acpi-pm',
    bus: 'pio',
    base: ACPI_PM_BASE,
    length: ACPI_PM_PORT_COUNT,
    module: moduleUrl('acpi-pm'),
    factory: 'createAcpiPm',
    shared: createAcpiPmState(),
  });
  machine.addDevice({
    name: 'pvpanic',
    bus: 'pio',
    base: PVPANIC_PORT,
    length: 1,
    module: moduleUrl('pvpanic'),
    factory: 'createPvpanic',
  });
  const vmFd = machine.vm.fd;
  return new UartRegisters(uartState, (level) => setIrqLine(vmFd, COM1_IRQ, level), () => {});
}
