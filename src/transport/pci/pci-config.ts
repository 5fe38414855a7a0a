/**
 * A type 0 configuration space in shared memory: the bytes, and a per-byte
 * write mask. BAR sizing works through the mask (writing all-ones reads back
 * the size mask with the type bits), the command register keeps only the
 * bits we implement, and everything else is read-only.
 */
import { TransportError } from '../transport-error.js';
import {
  PCI_BASE_ADDRESS_0,
  PCI_CAPABILITY_LIST,
  PCI_COMMAND,
  PCI_COMMAND_INTX_DISABLE,
  PCI_COMMAND_MASTER,
  PCI_COMMAND_MEMORY,
  PCI_CONFIG_SPACE_SIZE,
  PCI_INTERRUPT_LINE,
  PCI_STATUS,
  PCI_STATUS_CAP_LIST,
} from './pci-constants.js';

export class PciConfigSpace {
  readonly bytes: Uint8Array;
  readonly mask: Uint8Array;
  private readonly view: DataView;

  constructor(readonly shared: SharedArrayBuffer) {
    this.bytes = new Uint8Array(shared, 0, PCI_CONFIG_SPACE_SIZE);
    this.mask = new Uint8Array(shared, PCI_CONFIG_SPACE_SIZE, PCI_CONFIG_SPACE_SIZE);
    this.view = new DataView(shared, 0, PCI_CONFIG_SPACE_SIZE);
  }

  static create(): PciConfigSpace {
    const space = new PciConfigSpace(new SharedArrayBuffer(2 * PCI_CONFIG_SPACE_SIZE));
    space.setWritable(PCI_COMMAND, 2, PCI_COMMAND_MEMORY | PCI_COMMAND_MASTER | PCI_COMMAND_INTX_DISABLE);
    space.setWritable(PCI_INTERRUPT_LINE, 1, 0xff);
    return space;
  }

  u8(offset: number): number {
    return this.view.getUint8(offset);
  }
  u16(offset: number): number {
    return this.view.getUint16(offset, true);
  }
  u32(offset: number): number {
    return this.view.getUint32(offset, true);
  }
  set8(offset: number, value: number): void {
    this.view.setUint8(offset, value);
  }
  set16(offset: number, value: number): void {
    this.view.setUint16(offset, value, true);
  }
  set32(offset: number, value: number): void {
    this.view.setUint32(offset, value >>> 0, true);
  }

  /** Marks `bits` of the `length`-byte little-endian field at offset as guest-writable. */
  setWritable(offset: number, length: number, bits: number): void {
    for (let i = 0; i < length; i++) this.mask[offset + i] = (bits >>> (8 * i)) & 0xff;
  }

  /** A 32-bit memory BAR of `size` bytes (a power of two) at `address`. */
  setMemoryBar(index: number, address: number, size: number): void {
    const offset = PCI_BASE_ADDRESS_0 + 4 * index;
    this.set32(offset, address);
    this.setWritable(offset, 4, ~(size - 1) & ~0xf);
  }

  /** The address a memory BAR decodes now, or undefined when memory decoding is off. */
  memoryBarAddress(index: number): number | undefined {
    if (!(this.u16(PCI_COMMAND) & PCI_COMMAND_MEMORY)) return undefined;
    return (this.u32(PCI_BASE_ADDRESS_0 + 4 * index) & ~0xf) >>> 0;
  }

  /** Appends a capability: id, next pointer, then `body`; returns its offset. */
  addCapability(id: number, body: Uint8Array): number {
    let offset = 0x40;
    let previous = -1;
    for (let at = this.u8(PCI_CAPABILITY_LIST); at !== 0; at = this.u8(at + 1)) {
      previous = at;
      offset = at + this.capabilityLength(at);
    }
    offset = (offset + 3) & ~3;
    if (offset + 2 + body.length > PCI_CONFIG_SPACE_SIZE) throw new TransportError('capability-list-full', 'PCI capability list is full');
    this.set8(offset, id);
    this.set8(offset + 1, 0);
    this.bytes.set(body, offset + 2);
    this.capLengths.set(offset, 2 + body.length);
    if (previous < 0) this.set8(PCI_CAPABILITY_LIST, offset);
    else this.set8(previous + 1, offset);
    this.set16(PCI_STATUS, this.u16(PCI_STATUS) | PCI_STATUS_CAP_LIST);
    return offset;
  }
  private readonly capLengths = new Map<number, number>();
  private capabilityLength(offset: number): number {
    return this.capLengths.get(offset) ?? 16;
  }

  read(offset: number, data: Uint8Array): void {
    for (let i = 0; i < data.length; i++) data[i] = offset + i < PCI_CONFIG_SPACE_SIZE ? this.bytes[offset + i]! : 0xff;
  }

  /** Applies a guest write through the mask; returns true when any byte changed. */
  write(offset: number, data: Uint8Array): boolean {
    let changed = false;
    for (let i = 0; i < data.length && offset + i < PCI_CONFIG_SPACE_SIZE; i++) {
      const m = this.mask[offset + i]!;
      const old = this.bytes[offset + i]!;
      const next = (old & ~m) | (data[i]! & m);
      if (next !== old) {
        this.bytes[offset + i] = next;
        changed = true;
      }
    }
    return changed;
  }
}
