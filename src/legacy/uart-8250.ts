/**
 * A 16550A-compatible UART (COM1: port 0x3f8, IRQ 4). Registers live in a
 * SharedArrayBuffer so every vCPU thread serves its exits directly and the
 * main thread can feed keyboard input; transmitted bytes go straight to the
 * output fd. The THRE interrupt follows the 16550: pending after each
 * transmit and when ETBEI is turned on, cleared by reading IIR or writing THR.
 */
import type { BusDevice } from '../vmm/bus.js';
import { defineBusDevice, type DeviceContext } from '../vmm/device.js';
import { SharedLock } from '../vmm/shared-lock.js';
import { writeFully } from '../sys/fd.js';

export const COM1_PORT = 0x3f8;
export const COM1_IRQ = 4;
export const UART_PORT_COUNT = 8;

// Register offsets from the base port.
export const UART_RX = 0; // DLAB=0, read
export const UART_TX = 0; // DLAB=0, write
export const UART_DLL = 0; // DLAB=1
export const UART_IER = 1; // DLAB=0
export const UART_DLM = 1; // DLAB=1
export const UART_IIR = 2; // read
export const UART_FCR = 2; // write
export const UART_LCR = 3;
export const UART_MCR = 4;
export const UART_LSR = 5;
export const UART_MSR = 6;
export const UART_SCR = 7;

export const UART_IER_RDI = 0x01;
export const UART_IER_THRI = 0x02;
export const UART_IER_RLSI = 0x04;
export const UART_IER_MSI = 0x08;
export const UART_IIR_NO_INT = 0x01;
export const UART_IIR_MSI = 0x00;
export const UART_IIR_THRI = 0x02;
export const UART_IIR_RDI = 0x04;
export const UART_IIR_FIFO_ENABLED = 0xc0;
export const UART_FCR_ENABLE_FIFO = 0x01;
export const UART_FCR_CLEAR_RCVR = 0x02;
export const UART_LCR_DLAB = 0x80;
export const UART_MCR_LOOP = 0x10;
export const UART_LSR_DR = 0x01;
export const UART_LSR_OE = 0x02;
export const UART_LSR_THRE = 0x20;
export const UART_LSR_TEMT = 0x40;
export const UART_MSR_DCD = 0x80;
export const UART_MSR_DSR = 0x20;
export const UART_MSR_CTS = 0x10;

// Int32 cells of the shared state.
const LOCK = 0;
const IER = 1;
const LCR = 2;
const MCR = 3;
const SCR = 4;
const DLL = 5;
const DLM = 6;
const FCR = 7;
const THRE_PENDING = 8;
const RX_HEAD = 9;
const RX_TAIL = 10;
const OVERRUN = 11;
const IRQ_LEVEL = 12;
const CELLS = 16;
const RX_CAPACITY = 4096;

export interface UartOptions {
  /** The register file (createUartState), shared by every vCPU thread and the main thread. */
  readonly state: SharedArrayBuffer;
  readonly irq: number;
  /** Where transmitted bytes go (1 = stdout). */
  readonly outputFd: number;
}

/** Allocates the shared register file for one UART. */
export function createUartState(): SharedArrayBuffer {
  const shared = new SharedArrayBuffer(CELLS * 4 + RX_CAPACITY);
  const cells = new Int32Array(shared, 0, CELLS);
  cells[LCR] = 0x03; // 8N1, as firmware leaves it
  cells[DLL] = 0x0c; // 9600 baud
  return shared;
}

/** The register logic over shared state; used by vCPU threads and by the input side. */
export class UartRegisters {
  private readonly cells: Int32Array;
  private readonly rx: Uint8Array;
  private readonly lock: SharedLock;

  constructor(
    shared: SharedArrayBuffer,
    private readonly raiseIrq: (level: boolean) => void,
    private readonly transmit: (byte: number) => void,
  ) {
    this.cells = new Int32Array(shared, 0, CELLS);
    this.rx = new Uint8Array(shared, CELLS * 4, RX_CAPACITY);
    this.lock = new SharedLock(this.cells, LOCK);
  }

  private rxCount(): number {
    return (this.cells[RX_TAIL]! - this.cells[RX_HEAD]! + RX_CAPACITY) % RX_CAPACITY;
  }

  private pushRx(byte: number): void {
    if (this.rxCount() === RX_CAPACITY - 1) {
      this.cells[OVERRUN] = 1;
      return;
    }
    this.rx[this.cells[RX_TAIL]!] = byte;
    this.cells[RX_TAIL] = (this.cells[RX_TAIL]! + 1) % RX_CAPACITY;
  }

  private popRx(): number {
    if (this.rxCount() === 0) return 0;
    const byte = this.rx[this.cells[RX_HEAD]!]!;
    this.cells[RX_HEAD] = (this.cells[RX_HEAD]! + 1) % RX_CAPACITY;
    return byte;
  }

  private iir(): number {
    const ier = this.cells[IER]!;
    const fifo = this.cells[FCR]! & UART_FCR_ENABLE_FIFO ? UART_IIR_FIFO_ENABLED : 0;
    if (ier & UART_IER_RDI && this.rxCount() > 0) return fifo | UART_IIR_RDI;
    if (ier & UART_IER_THRI && this.cells[THRE_PENDING]) return fifo | UART_IIR_THRI;
    return fifo | UART_IIR_NO_INT;
  }

  /** Drives the line only on change: the ISA IRQ is edge-triggered at the PIC/IOAPIC. */
  private updateIrq(): void {
    const level = (this.iir() & UART_IIR_NO_INT) === 0 ? 1 : 0;
    if (this.cells[IRQ_LEVEL] !== level) {
      this.cells[IRQ_LEVEL] = level;
      this.raiseIrq(level === 1);
    }
  }

  private lsr(): number {
    let lsr = UART_LSR_THRE | UART_LSR_TEMT; // transmit is instantaneous
    if (this.rxCount() > 0) lsr |= UART_LSR_DR;
    if (this.cells[OVERRUN]) lsr |= UART_LSR_OE;
    return lsr;
  }

  read(offset: number): number {
    return this.lock.with(() => {
      const dlab = (this.cells[LCR]! & UART_LCR_DLAB) !== 0;
      let value: number;
      switch (offset) {
        case UART_RX:
          value = dlab ? this.cells[DLL]! : this.popRx();
          break;
        case UART_IER:
          value = dlab ? this.cells[DLM]! : this.cells[IER]!;
          break;
        case UART_IIR:
          value = this.iir();
          if ((value & 0x0f) === UART_IIR_THRI) this.cells[THRE_PENDING] = 0;
          break;
        case UART_LCR:
          value = this.cells[LCR]!;
          break;
        case UART_MCR:
          value = this.cells[MCR]!;
          break;
        case UART_LSR:
          value = this.lsr();
          this.cells[OVERRUN] = 0;
          break;
        case UART_MSR:
          // Loopback reflects MCR outputs; otherwise a modem that is always ready.
          value =
            this.cells[MCR]! & UART_MCR_LOOP
              ? ((this.cells[MCR]! & 0x0c) << 4) | ((this.cells[MCR]! & 0x03) << 4)
              : UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
          break;
        default:
          value = this.cells[SCR]!;
      }
      this.updateIrq();
      return value;
    });
  }

  write(offset: number, value: number): void {
    let transmitted = -1;
    this.lock.with(() => {
      const dlab = (this.cells[LCR]! & UART_LCR_DLAB) !== 0;
      switch (offset) {
        case UART_TX:
          if (dlab) {
            this.cells[DLL] = value;
          } else if (this.cells[MCR]! & UART_MCR_LOOP) {
            this.pushRx(value);
            this.cells[THRE_PENDING] = 1;
          } else {
            transmitted = value;
            this.cells[THRE_PENDING] = 1;
          }
          break;
        case UART_IER:
          if (dlab) {
            this.cells[DLM] = value;
          } else {
            const enablingThri = value & UART_IER_THRI && !(this.cells[IER]! & UART_IER_THRI);
            this.cells[IER] = value & 0x0f;
            if (enablingThri) this.cells[THRE_PENDING] = 1;
          }
          break;
        case UART_FCR:
          this.cells[FCR] = value;
          if (value & UART_FCR_CLEAR_RCVR) this.cells[RX_HEAD] = this.cells[RX_TAIL]!;
          break;
        case UART_LCR:
          this.cells[LCR] = value;
          break;
        case UART_MCR:
          this.cells[MCR] = value & 0x1f;
          break;
        case UART_SCR:
          this.cells[SCR] = value;
          break;
        default:
          break; // LSR and MSR are read-only
      }
      this.updateIrq();
    });
    if (transmitted >= 0) this.transmit(transmitted);
  }

  /** Host input: queue bytes for the guest and raise the receive interrupt. */
  receive(bytes: Uint8Array): void {
    this.lock.with(() => {
      for (const byte of bytes) this.pushRx(byte);
      this.updateIrq();
    });
  }
}

class Uart8250 implements BusDevice {
  constructor(private readonly registers: UartRegisters) {}

  read(offset: number, data: Uint8Array): void {
    data[0] = this.registers.read(offset);
    data.fill(0, 1);
  }

  write(offset: number, data: Uint8Array): void {
    this.registers.write(offset, data[0]!);
  }
}

export const uart8250Device = defineBusDevice<UartOptions>({ module: import.meta.url, exportName: 'uart8250Device', create: createUart8250 });

function createUart8250(options: UartOptions, context: DeviceContext): Uart8250 {
  const byte = new Uint8Array(1);
  const registers = new UartRegisters(
    options.state,
    (level) => context.setIrq(options.irq, level),
    (value) => {
      byte[0] = value;
      // Waits while the console is full; a closed console (EPIPE) does not stop the guest.
      writeFully(options.outputFd, byte);
    },
  );
  return new Uart8250(registers);
}
