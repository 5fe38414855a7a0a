import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  UART_FCR,
  UART_IER,
  UART_IER_RDI,
  UART_IER_THRI,
  UART_IIR,
  UART_IIR_NO_INT,
  UART_IIR_RDI,
  UART_IIR_THRI,
  UART_LCR,
  UART_LCR_DLAB,
  UART_LSR,
  UART_MCR,
  UART_MCR_LOOP,
  UART_RX,
  UART_SCR,
  UART_TX,
  UartRegisters,
  createUartState,
} from '../../src/legacy/uart-8250.js';

function uart() {
  const irqs: boolean[] = [];
  const out: number[] = [];
  const regs = new UartRegisters(createUartState(), (level) => irqs.push(level), (b) => out.push(b));
  return { regs, irqs, out };
}

test('LSR reads 0x60 when idle and transmitted bytes reach the output', () => {
  const { regs, out } = uart();
  assert.is(regs.read(UART_LSR), 0x60);
  regs.write(UART_TX, 0x41);
  regs.write(UART_TX, 0x0a);
  assert.equal(out, [0x41, 0x0a]);
  assert.is(regs.read(UART_IIR) & 0x0f, UART_IIR_NO_INT);
});

test('enabling THRI raises IRQ 4 (THRE) and reading IIR clears it', () => {
  const { regs, irqs } = uart();
  regs.write(UART_IER, UART_IER_THRI);
  assert.equal(irqs, [true]);
  assert.is(regs.read(UART_IIR) & 0x0f, UART_IIR_THRI);
  assert.equal(irqs, [true, false]);
  assert.is(regs.read(UART_IIR) & 0x0f, UART_IIR_NO_INT);
  // Each transmit makes THR empty again: a new interrupt edge.
  regs.write(UART_TX, 0x42);
  assert.equal(irqs, [true, false, true]);
});

test('received bytes set DR, raise RDI and are read in order', () => {
  const { regs, irqs } = uart();
  regs.write(UART_IER, UART_IER_RDI);
  regs.receive(Uint8Array.of(1, 2));
  assert.equal(irqs, [true]);
  assert.is(regs.read(UART_LSR) & 1, 1);
  assert.is(regs.read(UART_IIR) & 0x0f, UART_IIR_RDI);
  assert.is(regs.read(UART_RX), 1);
  assert.is(regs.read(UART_RX), 2);
  assert.is(regs.read(UART_LSR) & 1, 0);
  assert.equal(irqs, [true, false]);
});

test('DLAB switches offsets 0 and 1 to the divisor latch', () => {
  const { regs, out } = uart();
  regs.write(UART_LCR, UART_LCR_DLAB | 0x03);
  regs.write(UART_TX, 0x01);
  regs.write(UART_IER, 0x00);
  assert.is(regs.read(UART_RX), 0x01);
  assert.equal(out, []);
  regs.write(UART_LCR, 0x03);
  assert.is(regs.read(UART_IER), 0);
});

test('loopback mode feeds transmitted bytes back to the receiver', () => {
  const { regs, out } = uart();
  regs.write(UART_MCR, UART_MCR_LOOP);
  regs.write(UART_TX, 0x5a);
  assert.equal(out, []);
  assert.is(regs.read(UART_RX), 0x5a);
});

test('FIFO enable shows in IIR bits 7:6 (16550A); scratch register holds a byte', () => {
  const { regs } = uart();
  regs.write(UART_FCR, 0x01);
  assert.is(regs.read(UART_IIR) & 0xc0, 0xc0);
  regs.write(UART_SCR, 0xa5);
  assert.is(regs.read(UART_SCR), 0xa5);
});

test.run();
