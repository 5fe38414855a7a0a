/**
 * The VM's GSI routing table. KVM_SET_GSI_ROUTING replaces the whole table, so
 * the MSI routes (written by whichever vCPU thread serves an MSI-X table
 * write) live in one SharedArrayBuffer with a lock, and every change installs
 * the default PIC/IOAPIC routes plus all MSI routes again.
 */
import * as abi from './kvm-abi.js';
import { KvmError } from './kvm.js';
import { HostCallError } from '../sys/ffi.js';
import { ioctlBuffer } from '../sys/ioctl.js';
import { SharedLock } from './shared-lock.js';
import { FIRST_MSI_GSI, IOAPIC_PINS, MAX_MSI_ROUTES } from './gsi-layout.js';

export { FIRST_MSI_GSI, IOAPIC_PINS, MAX_MSI_ROUTES };

const KVM_IRQ_ROUTING_IRQCHIP = 1;
const KVM_IRQ_ROUTING_MSI = 2;
const KVM_IRQCHIP_PIC_MASTER = 0;
const KVM_IRQCHIP_PIC_SLAVE = 1;
const KVM_IRQCHIP_IOAPIC = 2;

// Shared layout (Int32 words): lock, tables installed, then per MSI route: used, address_lo,
// address_hi, data.
const LOCK = 0;
const INSTALLS = 1;
const ROUTE_WORDS = 4;
const HEADER_WORDS = 2;

export function createIrqRoutingState(): SharedArrayBuffer {
  return new SharedArrayBuffer((HEADER_WORDS + MAX_MSI_ROUTES * ROUTE_WORDS) * 4);
}

/** How many routing tables were built for KVM_SET_GSI_ROUTING: host work a guest can cause. */
export function routingTablesInstalled(shared: SharedArrayBuffer): number {
  return Atomics.load(new Int32Array(shared), INSTALLS);
}

/** The message an MSI GSI is routed to in the shared table, or undefined when it has no route. */
export function msiRouteOf(shared: SharedArrayBuffer, gsi: number): { addressLo: number; addressHi: number; data: number } | undefined {
  const words = new Int32Array(shared);
  const index = gsi - FIRST_MSI_GSI;
  if (index < 0 || index >= MAX_MSI_ROUTES) return undefined;
  const b = HEADER_WORDS + index * ROUTE_WORDS;
  if (!Atomics.load(words, b)) return undefined;
  return { addressLo: words[b + 1]! >>> 0, addressHi: words[b + 2]! >>> 0, data: words[b + 3]! >>> 0 };
}

export class IrqRouting {
  private readonly words: Int32Array;
  private readonly lock: SharedLock;

  constructor(
    private readonly vmFd: number,
    shared: SharedArrayBuffer,
  ) {
    this.words = new Int32Array(shared);
    this.lock = new SharedLock(this.words, LOCK);
  }

  private base(gsi: number): number {
    const index = gsi - FIRST_MSI_GSI;
    if (index < 0 || index >= MAX_MSI_ROUTES) throw new KvmError('ioctl', `GSI ${gsi} is not an MSI route`);
    return HEADER_WORDS + index * ROUTE_WORDS;
  }

  /**
   * Routes an MSI GSI to a message (address, data), or removes it with `message` undefined.
   * KVM can only replace the whole table, so a route that does not change installs nothing.
   */
  setMsiRoute(gsi: number, message: { addressLo: number; addressHi: number; data: number } | undefined): void {
    this.lock.with(() => {
      const b = this.base(gsi);
      const w = this.words;
      const unchanged = message
        ? w[b] === 1 && w[b + 1] === (message.addressLo | 0) && w[b + 2] === (message.addressHi | 0) && w[b + 3] === (message.data | 0)
        : w[b] === 0;
      if (unchanged) return;
      if (message) {
        this.words[b + 1] = message.addressLo | 0;
        this.words[b + 2] = message.addressHi | 0;
        this.words[b + 3] = message.data | 0;
      }
      this.words[b] = message ? 1 : 0;
      this.install();
    });
  }

  /** Without a VM (the host-side driver harness, vmFd < 0) routes are recorded but not installed. */
  private install(): void {
    Atomics.add(this.words, INSTALLS, 1);
    if (this.vmFd < 0) return;
    const entries: Array<(v: DataView, o: number) => void> = [];
    for (let gsi = 0; gsi < IOAPIC_PINS; gsi++) {
      if (gsi < 16 && gsi !== 2) {
        entries.push((v, o) => irqchip(v, o, gsi, gsi < 8 ? KVM_IRQCHIP_PIC_MASTER : KVM_IRQCHIP_PIC_SLAVE, gsi % 8));
      }
      entries.push((v, o) => irqchip(v, o, gsi, KVM_IRQCHIP_IOAPIC, gsi));
    }
    for (let i = 0; i < MAX_MSI_ROUTES; i++) {
      const b = HEADER_WORDS + i * ROUTE_WORDS;
      if (!this.words[b]) continue;
      const [lo, hi, data] = [this.words[b + 1]!, this.words[b + 2]!, this.words[b + 3]!];
      entries.push((v, o) => {
        v.setUint32(o, FIRST_MSI_GSI + i, true);
        v.setUint32(o + 4, KVM_IRQ_ROUTING_MSI, true);
        v.setUint32(o + 16, lo >>> 0, true);
        v.setUint32(o + 20, hi >>> 0, true);
        v.setUint32(o + 24, data >>> 0, true);
      });
    }
    const buffer = new Uint8Array(abi.SIZEOF_KVM_IRQ_ROUTING + entries.length * abi.SIZEOF_KVM_IRQ_ROUTING_ENTRY);
    const view = new DataView(buffer.buffer);
    view.setUint32(0, entries.length, true);
    entries.forEach((write, i) => write(view, abi.SIZEOF_KVM_IRQ_ROUTING + i * abi.SIZEOF_KVM_IRQ_ROUTING_ENTRY));
    try {
      ioctlBuffer(this.vmFd, abi.KVM_SET_GSI_ROUTING, 'KVM_SET_GSI_ROUTING', buffer);
    } catch (error) {
      if (error instanceof HostCallError) throw new KvmError('ioctl', error.message, { cause: error });
      throw error;
    }
  }
}

function irqchip(v: DataView, o: number, gsi: number, chip: number, pin: number): void {
  v.setUint32(o, gsi, true);
  v.setUint32(o + 4, KVM_IRQ_ROUTING_IRQCHIP, true);
  v.setUint32(o + 16, chip, true);
  v.setUint32(o + 20, pin, true);
}
