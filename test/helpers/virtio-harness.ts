/**
 * A host-side virtio driver: it plays the guest's driver against the real
 * transport registers and the real data-plane thread, with no KVM. Guest RAM
 * is anonymous mmap'd memory the data-plane thread maps too; kicks are
 * written to the queue eventfds (what KVM's ioeventfd would do) and
 * interrupts are read from the line's eventfd (what KVM's irqfd would inject).
 * Used by the device tests and by bench/.
 */
import createDebug from 'debug';
import { mapGuestRam, memoryFromRegions } from '../../src/vmm/guest-ram.js';
import type { GuestMemory, RegionDescriptor } from '../../src/vmm/guest-memory.js';
import { EPOLLIN, EPOLL_EVENT_SIZE, epollAdd, epollCreate, epollWait } from '../../src/sys/epoll.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, drainEventfd, eventfd, signalEventfd } from '../../src/sys/eventfd.js';
import { close } from '../../src/sys/fd.js';
import { munmap } from '../../src/sys/memory.js';
import { DataPlane } from '../../src/transport/data-plane/data-plane.js';
import type { ConfiguredVirtioDevice } from '../../src/virtio/virtio-device.js';
import * as V from '../../src/virtio/virtio-constants.js';
import * as M from '../../src/transport/virtio-mmio.js';
import { VirtioTransportState } from '../../src/transport/virtio-transport-state.js';
import { transportFeatures } from '../../src/transport/transport-features.js';
import { MockSplitQueueDriver } from '../virtio/mock-driver.js';

export interface HarnessDevice {
  readonly name: string;
  readonly device: ConfiguredVirtioDevice;
}

/** Rings live in the first MiB; buffers are handed out above it. */
const RING_AREA = 0x1000;
const RING_STRIDE = 0x40000;
const BUFFER_AREA = 0x100000;

export class VirtioMmioHarness {
  readonly memory: GuestMemory;
  readonly state: VirtioTransportState;
  private readonly registers: M.VirtioMmioRegisters;
  readonly dataPlane: DataPlane;
  private readonly kickFds: number[];
  private readonly lineFd: number;
  /** What KVM signals at the guest's EOI of a level-triggered line (signalResample plays it). */
  private readonly resampleFd: number;
  private readonly controlFds: number[];
  private readonly epfd: number;
  private readonly region: RegionDescriptor;
  private nextBuffer = BUFFER_AREA;
  readonly queues: MockSplitQueueDriver[] = [];

  constructor(subject: HarnessDevice, memoryBytes = 64 * 2 ** 20) {
    // The same mapping the VMM gives guest RAM (huge pages where the host allows).
    const hostAddress = mapGuestRam(memoryBytes);
    this.region = { guestBase: 0, size: memoryBytes, hostAddress };
    this.memory = memoryFromRegions([this.region]);
    const device = subject.device.description;
    const queueGroups = device.dataPlaneQueues;
    this.state = VirtioTransportState.create({
      deviceFeatures: transportFeatures(device.features),
      queueMaxSizes: device.queueMaxSizes,
      configSpace: device.configSpace,
      msixVectors: 0,
      dataPlaneThreads: queueGroups.length,
    });
    const fd = (): number => eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
    this.controlFds = queueGroups.map(fd);
    this.kickFds = device.queueMaxSizes.map(fd);
    this.lineFd = fd();
    this.resampleFd = fd();
    this.registers = new M.VirtioMmioRegisters(
      this.state,
      { deviceType: device.deviceType, controlFds: this.controlFds, kickFds: this.kickFds },
      { controlFds: this.controlFds, log: createDebug(`kvm:harness:${subject.name}`) },
    );
    this.dataPlane = new DataPlane({
      name: subject.name,
      device: subject.device.spec,
      state: this.state.shared,
      regions: [this.region],
      queueGroups,
      controlFds: this.controlFds,
      kickFds: this.kickFds,
      interrupt: { lineFd: this.lineFd, resampleFd: this.resampleFd, vectorFds: [] },
    });
    this.epfd = epollCreate();
    epollAdd(this.epfd, this.lineFd, EPOLLIN, 0);
  }

  /** Resolves once every data-plane thread is up (a reset would otherwise not wait for it). */
  async ready(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (!this.state.allDataPlanesAttached) {
      if (Date.now() > deadline) throw new Error('data-plane thread did not start');
      await new Promise((r) => setTimeout(r, 2));
    }
  }

  read32(offset: number): number {
    const data = new Uint8Array(4);
    this.registers.read(offset, data);
    return new DataView(data.buffer).getUint32(0, true);
  }

  write32(offset: number, value: number): void {
    const data = new Uint8Array(4);
    new DataView(data.buffer).setUint32(0, value >>> 0, true);
    this.registers.write(offset, data);
  }

  get status(): number {
    return this.read32(M.VIRTIO_MMIO_STATUS);
  }

  /** virtio 1.2 §3.1.1 up to FEATURES_OK; returns the features the device offered. */
  negotiate(wanted: bigint): bigint {
    this.write32(M.VIRTIO_MMIO_STATUS, 0);
    this.write32(M.VIRTIO_MMIO_STATUS, V.VIRTIO_CONFIG_S_ACKNOWLEDGE);
    this.write32(M.VIRTIO_MMIO_STATUS, V.VIRTIO_CONFIG_S_ACKNOWLEDGE | V.VIRTIO_CONFIG_S_DRIVER);
    let offered = 0n;
    for (const sel of [0, 1]) {
      this.write32(M.VIRTIO_MMIO_DEVICE_FEATURES_SEL, sel);
      offered |= BigInt(this.read32(M.VIRTIO_MMIO_DEVICE_FEATURES)) << BigInt(32 * sel);
    }
    const accepted = offered & wanted;
    for (const sel of [0, 1]) {
      this.write32(M.VIRTIO_MMIO_DRIVER_FEATURES_SEL, sel);
      this.write32(M.VIRTIO_MMIO_DRIVER_FEATURES, Number((accepted >> BigInt(32 * sel)) & 0xffffffffn));
    }
    const status = V.VIRTIO_CONFIG_S_ACKNOWLEDGE | V.VIRTIO_CONFIG_S_DRIVER | V.VIRTIO_CONFIG_S_FEATURES_OK;
    this.write32(M.VIRTIO_MMIO_STATUS, status);
    if (!(this.status & V.VIRTIO_CONFIG_S_FEATURES_OK)) throw new Error('device refused FEATURES_OK');
    this.queues.length = 0;
    return offered;
  }

  /** Lays out queue `index` with `size` entries and enables it. */
  setupQueue(index: number, size: number): MockSplitQueueDriver {
    // Fresh rings start zeroed, as a driver's freshly allocated ones do: what a previous session
    // left there (a bogus avail.idx) must not be seen by a device that activates before the
    // first buffer is posted.
    this.memory.fill(RING_AREA + index * RING_STRIDE, RING_STRIDE, 0);
    const driver = MockSplitQueueDriver.create(this.memory, RING_AREA + index * RING_STRIDE, size, {
      scratchBase: RING_AREA + index * RING_STRIDE + RING_STRIDE / 2,
    });
    this.write32(M.VIRTIO_MMIO_QUEUE_SEL, index);
    this.write32(M.VIRTIO_MMIO_QUEUE_NUM, size);
    const { descTable, availRing, usedRing } = driver.layout;
    this.write32(M.VIRTIO_MMIO_QUEUE_DESC_LOW, descTable);
    this.write32(M.VIRTIO_MMIO_QUEUE_DESC_HIGH, 0);
    this.write32(M.VIRTIO_MMIO_QUEUE_AVAIL_LOW, availRing);
    this.write32(M.VIRTIO_MMIO_QUEUE_AVAIL_HIGH, 0);
    this.write32(M.VIRTIO_MMIO_QUEUE_USED_LOW, usedRing);
    this.write32(M.VIRTIO_MMIO_QUEUE_USED_HIGH, 0);
    this.write32(M.VIRTIO_MMIO_QUEUE_READY, 1);
    this.queues[index] = driver;
    return driver;
  }

  driverOk(): void {
    this.write32(M.VIRTIO_MMIO_STATUS, this.status | V.VIRTIO_CONFIG_S_DRIVER_OK);
  }

  /** Device reset through the status register (waits for the data plane like a real driver would). */
  reset(): void {
    this.write32(M.VIRTIO_MMIO_STATUS, 0);
  }

  /** `bytes` of guest RAM for buffers, 64-byte aligned (never reused). */
  allocate(bytes: number): number {
    const address = Math.ceil(this.nextBuffer / 64) * 64;
    if (!this.memory.contains(address, Math.max(bytes, 1))) throw new RangeError('harness guest memory exhausted');
    this.nextBuffer = address + bytes;
    return address;
  }

  kick(queue: number): void {
    signalEventfd(this.kickFds[queue]!);
  }

  /** Waits until the device fires the line (without reading or acknowledging the ISR); false on timeout. */
  waitForLine(timeoutMs = 2000): boolean {
    const events = new Uint8Array(EPOLL_EVENT_SIZE);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (drainEventfd(this.lineFd) > 0) return true;
      const left = deadline - Date.now();
      if (left <= 0) return false;
      epollWait(this.epfd, events, left);
    }
  }

  /** The guest's EOI of a level-triggered line: the device asserts it again while the ISR is set. */
  signalResample(): void {
    signalEventfd(this.resampleFd);
  }

  /**
   * Waits for an interrupt (blocking this thread, up to timeoutMs), then reads
   * and acknowledges InterruptStatus like a driver's handler. Returns the status bits, 0 on timeout.
   */
  waitForInterrupt(timeoutMs = 2000): number {
    const events = new Uint8Array(EPOLL_EVENT_SIZE);
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (drainEventfd(this.lineFd) > 0 || this.state.isr !== 0) break;
      const left = deadline - Date.now();
      if (left <= 0) return 0;
      epollWait(this.epfd, events, left);
    }
    const isr = this.read32(M.VIRTIO_MMIO_INTERRUPT_STATUS);
    this.write32(M.VIRTIO_MMIO_INTERRUPT_ACK, isr);
    return isr;
  }

  /**
   * The interrupts raised since the previous take (or waitForInterrupt), without waiting:
   * how many times the line fired — an eventfd read returns every signal accumulated since
   * the last read, so none is lost however close together they came — and the
   * InterruptStatus bits, acknowledged like a driver's handler does.
   */
  takeInterrupts(): { count: number; isr: number } {
    const count = drainEventfd(this.lineFd);
    const isr = this.read32(M.VIRTIO_MMIO_INTERRUPT_STATUS);
    if (isr !== 0) this.write32(M.VIRTIO_MMIO_INTERRUPT_ACK, isr);
    return { count, isr };
  }

  /** Polls until the device has used `count` more chains on `queue` (or the timeout passes). */
  async waitForUsed(queue: number, count: number, timeoutMs = 2000): Promise<Array<{ id: number; len: number }>> {
    const driver = this.queues[queue]!;
    const used: Array<{ id: number; len: number }> = [];
    const deadline = Date.now() + timeoutMs;
    while (used.length < count) {
      used.push(...driver.takeUsed());
      if (used.length >= count) break;
      if (Date.now() > deadline) break;
      await new Promise((r) => setTimeout(r, 1));
    }
    return used;
  }

  async close(): Promise<void> {
    await this.dataPlane.stop();
    for (const fd of [...this.kickFds, this.lineFd, this.resampleFd, ...this.controlFds, this.epfd]) close(fd);
    munmap(this.region.hostAddress, this.region.size);
  }
}
