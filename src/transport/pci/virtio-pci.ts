/**
 * virtio-pci modern (virtio 1.2 §4.1) in the vCPU threads: the common
 * configuration structure, ISR, device configuration, notification area and
 * MSI-X table/PBA in BAR 0, plus the dynamic parts of configuration space
 * (MSI-X enable/mask, the PCI configuration access capability, BAR moves).
 */
import { dataValue, setDataValue } from '../../vmm/bus.js';
import type { DeviceContext } from '../../vmm/device.js';
import { IrqRouting } from '../../vmm/irq-routing.js';
import { KvmError, setIoeventfd, type IoeventfdOptions } from '../../vmm/kvm.js';
import { signalEventfd } from '../../sys/eventfd.js';
import { HostCallError } from '../../sys/ffi.js';
import { VIRTIO_CONFIG_S_DRIVER_OK, VIRTIO_CONFIG_S_FEATURES_OK, VIRTIO_MSI_NO_VECTOR, VIRTQ_MAX_SIZE } from '../../virtio/virtio-constants.js';
import { TransportInterrupt } from '../virtio-interrupt.js';
import { writeStatus, type StatusTransition } from '../virtio-status.js';
import { MSIX_VECTOR_CTRL_MASKBIT, VirtioTransportState, type QueueAddressField } from '../virtio-transport-state.js';
import type { PciConfigSpace } from './pci-config.js';
import { PCI_BASE_ADDRESS_0, PCI_MSIX_ENTRY_SIZE, PCI_MSIX_ENTRY_VECTOR_CTRL, PCI_MSIX_FLAGS, PCI_MSIX_FLAGS_ENABLE, PCI_MSIX_FLAGS_MASKALL } from './pci-constants.js';
import { definePciFunction, type PciFunctionHandler } from './pci-function.js';
import * as L from './virtio-pci-layout.js';

export interface VirtioPciOptions {
  readonly state: SharedArrayBuffer;
  /** One per data-plane thread. */
  readonly controlFds: readonly number[];
  readonly kickFds: readonly number[];
  readonly lineFd: number;
  readonly vectorFds: readonly number[];
  readonly vectorGsis: readonly number[];
  readonly routing: SharedArrayBuffer;
  /** Configuration-space offsets of our capabilities. */
  readonly msixCap: number;
  readonly pciCfgCap: number;
  /** Where the notify ioeventfds are registered (createNotifyRegistration). */
  readonly notifyRegistration: SharedArrayBuffer;
}

/**
 * notifyRegistration (Int32 words): the BAR 0 address the notify ioeventfds were last moved
 * to, then per queue 1 while its ioeventfd is registered there.
 */
export const NOTIFY_BASE = 0;
export const NOTIFY_REGISTERED = 1;
/** A queue's word: no ioeventfd (another function holds the address), registered, or being retried. */
const NOTIFY_UNREGISTERED = 0;
const NOTIFY_REGISTERED_HERE = 1;
const NOTIFY_RECLAIMING = 2;
/** Notify exits of an unregistered queue between two attempts to register it again. */
export const RECLAIM_INTERVAL = 64;

export function createNotifyRegistration(barAddress: number, queues: number): SharedArrayBuffer {
  const shared = new SharedArrayBuffer((NOTIFY_REGISTERED + queues) * 4);
  const cells = new Int32Array(shared);
  cells[NOTIFY_BASE] = barAddress | 0;
  cells.fill(1, NOTIFY_REGISTERED);
  return shared;
}

/** Registers (assign) or removes an ioeventfd, as setIoeventfd does. */
export type IoeventfdRegistrar = (options: IoeventfdOptions, assign: boolean) => void;

/** Registers an ioeventfd; false when another one already holds the address (EEXIST). */
function tryIoeventfd(register: () => void): boolean {
  try {
    register();
    return true;
  } catch (error) {
    if (error instanceof KvmError && error.cause instanceof HostCallError && error.cause.code === 'EEXIST') return false;
    throw error;
  }
}

const QUEUE_ADDRESS_FIELDS: ReadonlyArray<[number, QueueAddressField]> = [
  [L.COMMON_QUEUE_DESC, 'desc'],
  [L.COMMON_QUEUE_DRIVER, 'driver'],
  [L.COMMON_QUEUE_DEVICE, 'device'],
];

export class VirtioPciFunction implements PciFunctionHandler {
  private readonly state: VirtioTransportState;
  private readonly interrupt: TransportInterrupt;
  private readonly routing: IrqRouting;
  private readonly transition: StatusTransition;
  /** Notify exits this thread forwarded for queues without an ioeventfd. */
  private notifyExits = 0;

  constructor(
    private readonly config: PciConfigSpace,
    private readonly options: VirtioPciOptions,
    private readonly context: DeviceContext,
    /** KVM_IOEVENTFD on the VM; tests pass a stand-in that behaves as KVM does. */
    private readonly ioeventfd: IoeventfdRegistrar = (o, assign) => setIoeventfd(context.vmFd, o, assign),
  ) {
    this.state = new VirtioTransportState(options.state);
    this.interrupt = new TransportInterrupt(this.state, { lineFd: options.lineFd, vectorFds: options.vectorFds });
    this.routing = new IrqRouting(context.vmFd, options.routing);
    this.transition = { controlFds: options.controlFds, log: context.log };
  }

  barRead(_bar: number, offset: number, data: Uint8Array): void {
    if (offset < L.VIRTIO_PCI_COMMON_OFFSET + L.VIRTIO_PCI_COMMON_SIZE) setDataValue(data, this.readCommon(offset, data.length));
    else if (offset >= L.VIRTIO_PCI_ISR_OFFSET && offset < L.VIRTIO_PCI_ISR_OFFSET + L.VIRTIO_PCI_ISR_SIZE) {
      // Reading the ISR acknowledges it (§4.1.4.5).
      setDataValue(data, offset === L.VIRTIO_PCI_ISR_OFFSET ? this.state.takeIsr() : 0);
    } else if (offset >= L.VIRTIO_PCI_DEVICE_OFFSET && offset < L.VIRTIO_PCI_DEVICE_OFFSET + L.VIRTIO_PCI_DEVICE_SIZE) {
      const at = offset - L.VIRTIO_PCI_DEVICE_OFFSET;
      const cfg = this.state.config;
      for (let i = 0; i < data.length; i++) data[i] = at + i < cfg.length ? cfg[at + i]! : 0;
    } else if (offset >= L.VIRTIO_PCI_MSIX_TABLE_OFFSET && offset < L.VIRTIO_PCI_MSIX_TABLE_OFFSET + this.state.msixVectorCount * PCI_MSIX_ENTRY_SIZE) {
      const at = offset - L.VIRTIO_PCI_MSIX_TABLE_OFFSET;
      setDataValue(data, data.length === 4 ? this.state.msixEntryWord(at >> 4, (at & 0xf) >> 2) : 0);
    } else if (offset >= L.VIRTIO_PCI_MSIX_PBA_OFFSET && offset < L.VIRTIO_PCI_MSIX_PBA_OFFSET + 8) {
      let bits = 0;
      const first = (offset - L.VIRTIO_PCI_MSIX_PBA_OFFSET) * 8;
      for (let i = 0; i < data.length * 8 && first + i < this.state.msixVectorCount; i++) {
        if (this.state.msixPending(first + i)) bits |= 1 << i;
      }
      setDataValue(data, bits >>> 0);
    } else data.fill(0);
  }

  /**
   * Writes to the device configuration (VIRTIO_PCI_DEVICE_OFFSET) are ignored, like those to the
   * ISR: no device offers a field the driver may write (§2.5).
   */
  barWrite(_bar: number, offset: number, data: Uint8Array): void {
    const value = dataValue(data);
    if (offset < L.VIRTIO_PCI_COMMON_OFFSET + L.VIRTIO_PCI_COMMON_SIZE) this.writeCommon(offset, data.length, value);
    else if (offset >= L.VIRTIO_PCI_NOTIFY_OFFSET && offset < L.VIRTIO_PCI_NOTIFY_OFFSET + L.VIRTIO_PCI_NOTIFY_SIZE) {
      // Normally caught by the queue's ioeventfd in the kernel; forwarded when it was not.
      const q = (offset - L.VIRTIO_PCI_NOTIFY_OFFSET) / L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER;
      if (Number.isInteger(q) && q < this.options.kickFds.length) {
        signalEventfd(this.options.kickFds[q]!);
        this.reclaimNotifyEventfd(q);
      }
    } else if (offset >= L.VIRTIO_PCI_MSIX_TABLE_OFFSET && offset < L.VIRTIO_PCI_MSIX_TABLE_OFFSET + this.state.msixVectorCount * PCI_MSIX_ENTRY_SIZE) {
      if (data.length === 4) this.writeMsixEntry(offset - L.VIRTIO_PCI_MSIX_TABLE_OFFSET, value);
    }
  }

  private readCommon(offset: number, size: number): number {
    const s = this.state;
    const q = s.selectedQueueExists ? s.queue(s.queueSelect) : undefined;
    const field = (at: number, width: number): boolean => offset === at && size === width;
    if (field(L.COMMON_DEVICE_FEATURE_SELECT, 4)) return s.deviceFeatureSelect;
    if (field(L.COMMON_DEVICE_FEATURE, 4)) return s.deviceFeatureWindow();
    if (field(L.COMMON_DRIVER_FEATURE_SELECT, 4)) return s.driverFeatureSelect;
    if (field(L.COMMON_DRIVER_FEATURE, 4)) return s.driverFeatureWindow();
    if (field(L.COMMON_CONFIG_MSIX_VECTOR, 2)) return s.configVector;
    if (field(L.COMMON_NUM_QUEUES, 2)) return s.queueCount;
    if (field(L.COMMON_DEVICE_STATUS, 1)) return s.status;
    if (field(L.COMMON_CONFIG_GENERATION, 1)) return s.configGeneration & 0xff;
    if (field(L.COMMON_QUEUE_SELECT, 2)) return s.queueSelect;
    if (field(L.COMMON_QUEUE_SIZE, 2)) return q ? q.size : 0;
    if (field(L.COMMON_QUEUE_MSIX_VECTOR, 2)) return q ? q.vector : VIRTIO_MSI_NO_VECTOR;
    if (field(L.COMMON_QUEUE_ENABLE, 2)) return q?.ready ? 1 : 0;
    if (field(L.COMMON_QUEUE_NOTIFY_OFF, 2)) return q ? s.queueSelect : 0;
    if (field(L.COMMON_QUEUE_NOTIFY_DATA, 2)) return q ? s.queueSelect : 0;
    for (const [at, name] of QUEUE_ADDRESS_FIELDS) {
      if (q && size === 4 && (offset === at || offset === at + 4)) {
        const value = q[name];
        return offset === at ? value % 2 ** 32 : Math.floor(value / 2 ** 32);
      }
    }
    return 0;
  }

  private writeCommon(offset: number, size: number, value: number): void {
    const s = this.state;
    const q = s.selectedQueueExists ? s.queueSelect : -1;
    const queueWritable = q >= 0 && !s.queue(q).ready;
    const field = (at: number, width: number): boolean => offset === at && size === width;
    if (field(L.COMMON_DEVICE_FEATURE_SELECT, 4)) s.deviceFeatureSelect = value;
    else if (field(L.COMMON_DRIVER_FEATURE_SELECT, 4)) s.driverFeatureSelect = value;
    else if (field(L.COMMON_DRIVER_FEATURE, 4)) {
      if (!(s.status & VIRTIO_CONFIG_S_FEATURES_OK)) s.setDriverFeatureWindow(value);
    } else if (field(L.COMMON_CONFIG_MSIX_VECTOR, 2)) s.configVector = this.acceptVector(value);
    else if (field(L.COMMON_DEVICE_STATUS, 1)) writeStatus(s, value, this.transition);
    else if (field(L.COMMON_QUEUE_SELECT, 2)) s.queueSelect = value;
    else if (field(L.COMMON_QUEUE_SIZE, 2)) {
      if (queueWritable && value >= 1 && value <= Math.min(s.queue(q).maxSize, VIRTQ_MAX_SIZE)) s.setQueueSize(q, value);
    } else if (field(L.COMMON_QUEUE_MSIX_VECTOR, 2)) {
      if (q >= 0) s.setQueueVector(q, this.acceptVector(value));
    } else if (field(L.COMMON_QUEUE_ENABLE, 2)) {
      // Only 1 may be written (§4.1.4.3.2); a queue is disabled by a device reset.
      if (q >= 0 && value === 1 && !(s.status & VIRTIO_CONFIG_S_DRIVER_OK)) s.setQueueReady(q, true);
    } else {
      for (const [at, name] of QUEUE_ADDRESS_FIELDS) {
        if (queueWritable && size === 4 && (offset === at || offset === at + 4)) {
          s.setQueueAddressPart(q, name, offset === at + 4, value);
        }
      }
    }
  }

  /** A vector the device cannot use reads back as NO_VECTOR, which tells the driver so. */
  private acceptVector(value: number): number {
    return value < this.state.msixVectorCount ? value : VIRTIO_MSI_NO_VECTOR;
  }

  private writeMsixEntry(at: number, value: number): void {
    const vector = at >> 4;
    const word = (at & 0xf) >> 2;
    const wasMasked = this.state.msixMasked(vector);
    const entryWasMasked = this.entryMasked(vector);
    this.state.setMsixEntryWord(vector, word, value);
    // A vector whose own mask bit is set has no use for its route (its interrupts wait in the
    // PBA): the message is routed when that bit clears, so a driver writing the entry costs one
    // table. The function mask does not count here: an entry rewritten behind it is live again
    // the moment it clears, so its route must be current.
    if (word * 4 !== PCI_MSIX_ENTRY_VECTOR_CTRL) {
      if (!entryWasMasked) this.routeVector(vector);
    } else if (entryWasMasked && !(value & MSIX_VECTOR_CTRL_MASKBIT)) {
      this.routeVector(vector);
      if (wasMasked && !this.state.msixMasked(vector)) this.interrupt.deliverPending(vector);
    }
  }

  private entryMasked(vector: number): boolean {
    return (this.state.msixEntryWord(vector, PCI_MSIX_ENTRY_VECTOR_CTRL / 4) & MSIX_VECTOR_CTRL_MASKBIT) !== 0;
  }

  /** Installs the vector's message as its GSI's route (nothing when it did not change). */
  private routeVector(vector: number): void {
    this.routing.setMsiRoute(this.options.vectorGsis[vector]!, this.state.msixMessage(vector));
  }

  readConfig(offset: number, data: Uint8Array): boolean {
    const dataAt = this.options.pciCfgCap + L.VIRTIO_PCI_CFG_CAP_DATA;
    if (offset >= dataAt && offset + data.length <= dataAt + 4) {
      const window = this.pciCfgWindow();
      if (window) {
        const bytes = new Uint8Array(window.length);
        this.barRead(0, window.offset, bytes);
        data.set(bytes.subarray(offset - dataAt, offset - dataAt + data.length));
      } else data.fill(0);
      return true;
    }
    return false;
  }

  configWritten(offset: number, length: number): void {
    const control = this.options.msixCap + PCI_MSIX_FLAGS;
    if (offset <= control + 1 && offset + length > control) {
      const flags = this.config.u16(control);
      const wasMasked = this.state.msixFunctionMask;
      this.state.msixEnabled = (flags & PCI_MSIX_FLAGS_ENABLE) !== 0;
      this.state.msixFunctionMask = (flags & PCI_MSIX_FLAGS_MASKALL) !== 0;
      if (wasMasked && !this.state.msixFunctionMask) {
        for (let v = 0; v < this.state.msixVectorCount; v++) this.interrupt.deliverPending(v);
      }
    }
    const dataAt = this.options.pciCfgCap + L.VIRTIO_PCI_CFG_CAP_DATA;
    if (offset >= dataAt && offset < dataAt + 4) {
      const window = this.pciCfgWindow();
      if (window) this.barWrite(0, window.offset, this.config.bytes.slice(dataAt, dataAt + window.length));
    }
    if (offset < PCI_BASE_ADDRESS_0 + 4 && offset + length > PCI_BASE_ADDRESS_0) this.moveNotifyEventfds();
  }

  /**
   * A queue that lost its notify address to an overlapping BAR has its notifications arrive
   * here; once the other function has moved away the address is free again, so every
   * RECLAIM_INTERVAL-th such exit tries to register the ioeventfd at the current base.
   */
  private reclaimNotifyEventfd(q: number): void {
    const cells = new Int32Array(this.options.notifyRegistration);
    if (Atomics.load(cells, NOTIFY_REGISTERED + q) !== NOTIFY_UNREGISTERED) return;
    if (++this.notifyExits % RECLAIM_INTERVAL !== 1) return;
    // One thread tries; a move of the BAR meanwhile finds the queue marked taken and skips it.
    if (Atomics.compareExchange(cells, NOTIFY_REGISTERED + q, NOTIFY_UNREGISTERED, NOTIFY_RECLAIMING) !== NOTIFY_UNREGISTERED) return;
    const base = Atomics.load(cells, NOTIFY_BASE) >>> 0;
    const address = base + L.VIRTIO_PCI_NOTIFY_OFFSET + q * L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER;
    const registered = tryIoeventfd(() => this.ioeventfd({ address, length: 2, eventFd: this.options.kickFds[q]! }, true));
    Atomics.store(cells, NOTIFY_REGISTERED + q, registered ? NOTIFY_REGISTERED_HERE : NOTIFY_UNREGISTERED);
    if (registered) this.context.log('queue %d: notify ioeventfd registered again at 0x%s', q, address.toString(16));
  }

  /** The BAR access the PCI configuration access capability currently describes. */
  private pciCfgWindow(): { offset: number; length: number } | undefined {
    const cap = this.options.pciCfgCap;
    const length = this.config.u32(cap + L.VIRTIO_PCI_CAP_LENGTH_FIELD);
    if (this.config.u8(cap + L.VIRTIO_PCI_CAP_BAR) !== L.VIRTIO_PCI_BAR || ![1, 2, 4].includes(length)) return undefined;
    return { offset: this.config.u32(cap + L.VIRTIO_PCI_CAP_OFFSET), length };
  }

  /**
   * After the guest moved BAR 0, the notify ioeventfds follow it (one thread does the move).
   * A guest may program BARs that overlap (Linux does while sizing them): where another
   * function's ioeventfd already holds a queue's notify address, that queue is left without
   * one and its notifications arrive as exits (barWrite forwards them), so the VMM runs on.
   */
  private moveNotifyEventfds(): void {
    const cells = new Int32Array(this.options.notifyRegistration);
    const current = Atomics.load(cells, NOTIFY_BASE) >>> 0;
    const next = (this.config.u32(PCI_BASE_ADDRESS_0) & ~0xf) >>> 0;
    if (next === current || next === 0 || (next | 0) === ~(L.VIRTIO_PCI_BAR_SIZE - 1)) return; // unchanged, or a sizing probe
    if (Atomics.compareExchange(cells, NOTIFY_BASE, current | 0, next | 0) !== (current | 0)) return;
    let taken = 0;
    this.options.kickFds.forEach((eventFd, q) => {
      const at = (base: number): number => base + L.VIRTIO_PCI_NOTIFY_OFFSET + q * L.VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER;
      if (Atomics.load(cells, NOTIFY_REGISTERED + q) === NOTIFY_REGISTERED_HERE) this.ioeventfd({ address: at(current), length: 2, eventFd }, false);
      const registered = tryIoeventfd(() => this.ioeventfd({ address: at(next), length: 2, eventFd }, true));
      Atomics.store(cells, NOTIFY_REGISTERED + q, registered ? NOTIFY_REGISTERED_HERE : NOTIFY_UNREGISTERED);
      if (!registered) taken++;
    });
    this.context.log('BAR 0 moved to 0x%s: notify ioeventfds follow', next.toString(16));
    if (taken > 0) {
      this.context.log('BAR 0 at 0x%s overlaps another function: %d queue(s) notified through exits', next.toString(16), taken);
    }
  }
}

/** A virtio device's modern virtio-pci function (attachVirtioPci places it on the bus). */
export const virtioPciFunction = definePciFunction<VirtioPciOptions>({
  module: import.meta.url,
  exportName: 'virtioPciFunction',
  create: (options, config, context) => new VirtioPciFunction(config, options, context),
});
