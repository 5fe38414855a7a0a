/**
 * A virtio-net test bed: a network namespace of its own with a TAP inside
 * (created from this process by opening /dev/net/tun while inside the
 * namespace, so it never exists anywhere else), the host side of the TAP
 * addressed 10.77.0.1/24 inside that namespace, and the device behind the
 * host-side driver harness playing the guest 10.77.0.2. Frames the "guest"
 * sends meet the namespace's real network stack.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { openTap, type OpenedTap } from '../../../../src/net/tap.js';
import { virtioNet } from '../../../../src/virtio/devices/net/device.js';
import { configureVirtioDevice, type VirtioDeviceDescription } from '../../../../src/virtio/virtio-device.js';
import type { NetOptions } from '../../../../src/virtio/devices/net/options.js';
import * as S from '../../../../src/virtio/devices/net/spec.js';
import { NetStats } from '../../../../src/virtio/devices/net/stats.js';
import * as V from '../../../../src/virtio/virtio-constants.js';
import { close } from '../../../../src/sys/fd.js';
import { NetNamespace } from '../../../helpers/netns.js';
import { VirtioMmioHarness } from '../../../helpers/virtio-harness.js';
import type { MockSplitQueueDriver } from '../../mock-driver.js';
import { parseVnetHeader, type VnetHeader } from '../../../helpers/packets.js';

export const HOST_IP = '10.77.0.1';
export const GUEST_IP = '10.77.0.2';
export const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);
export const TAP_NAME = 'kvmtap0';
export const RX = 0;
export const TX = 1;
export const CTRL = 2;

const bit = V.featureBit;

/** Everything a modern Linux guest would accept. */
export const ALL_FEATURES =
  bit(V.VIRTIO_F_VERSION_1) |
  bit(V.VIRTIO_F_RING_EVENT_IDX) |
  bit(V.VIRTIO_F_RING_INDIRECT_DESC) |
  bit(S.VIRTIO_NET_F_CSUM) |
  bit(S.VIRTIO_NET_F_GUEST_CSUM) |
  bit(S.VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |
  bit(S.VIRTIO_NET_F_MAC) |
  bit(S.VIRTIO_NET_F_GUEST_TSO4) |
  bit(S.VIRTIO_NET_F_GUEST_TSO6) |
  bit(S.VIRTIO_NET_F_GUEST_ECN) |
  bit(S.VIRTIO_NET_F_GUEST_UFO) |
  bit(S.VIRTIO_NET_F_HOST_TSO4) |
  bit(S.VIRTIO_NET_F_HOST_TSO6) |
  bit(S.VIRTIO_NET_F_HOST_ECN) |
  bit(S.VIRTIO_NET_F_HOST_UFO) |
  bit(S.VIRTIO_NET_F_GUEST_USO4) |
  bit(S.VIRTIO_NET_F_GUEST_USO6) |
  bit(S.VIRTIO_NET_F_HOST_USO) |
  bit(S.VIRTIO_NET_F_MRG_RXBUF) |
  bit(S.VIRTIO_NET_F_STATUS) |
  bit(S.VIRTIO_NET_F_CTRL_VQ);

/** A guest driver without any offload, mergeable buffers or control queue. */
export const PLAIN_FEATURES = bit(V.VIRTIO_F_VERSION_1) | bit(V.VIRTIO_F_RING_EVENT_IDX) | bit(S.VIRTIO_NET_F_MAC) | bit(S.VIRTIO_NET_F_STATUS);

export interface BedOptions {
  /** Features the "guest" accepts (of those offered). */
  readonly features?: bigint;
  readonly queueSize?: number;
  /** MTU of the host side of the TAP (default 1500). */
  readonly mtu?: number;
  /** Harness guest RAM (default 64 MiB). */
  readonly memoryBytes?: number;
}

export interface ReceivedFrame {
  readonly header: VnetHeader;
  /** The frame without the virtio-net header. */
  readonly frame: Uint8Array;
  /** Used length of each buffer the frame took. */
  readonly lengths: number[];
}

interface PostedBuffer {
  readonly address: number;
  readonly size: number;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export class NetBed {
  rx!: MockSplitQueueDriver;
  tx!: MockSplitQueueDriver;
  ctrl: MockSplitQueueDriver | undefined;
  negotiated = 0n;
  readonly hostMac: Uint8Array;
  private readonly posted = new Map<number, PostedBuffer>();
  private readonly pendingUsed: Array<{ id: number; len: number }> = [];
  private readonly children: ChildProcessWithoutNullStreams[] = [];

  private constructor(
    readonly ns: NetNamespace,
    readonly tap: OpenedTap,
    readonly h: VirtioMmioHarness,
    readonly device: VirtioDeviceDescription,
    readonly stats: NetStats,
    private readonly features: bigint,
    private readonly queueSize: number,
  ) {
    this.activate();
    const link = JSON.parse(ns.ip('-j', 'link', 'show', 'dev', tap.name)) as Array<{ address: string }>;
    this.hostMac = Uint8Array.from(link[0]!.address.split(':').map((x) => parseInt(x, 16)));
  }

  /** A bed, or the reason there can be none here (not root, no TUN). */
  static async create(options: BedOptions = {}): Promise<NetBed | string> {
    const ns = NetNamespace.create();
    if (typeof ns === 'string') return ns;
    let tap: OpenedTap | undefined;
    try {
      tap = ns.enter(() => openTap(TAP_NAME));
      ns.ip('addr', 'add', `${HOST_IP}/24`, 'dev', tap.name);
      ns.ip('link', 'set', 'dev', tap.name, 'mtu', String(options.mtu ?? 1500), 'up');
      const stats = new NetStats();
      const netOptions: NetOptions = {
        name: tap.name,
        tapFds: [tap.fd],
        mac: Array.from(GUEST_MAC),
        tapOffloads: tap.offloads,
        stats: stats.shared,
        ...(options.queueSize !== undefined ? { queueSize: options.queueSize } : {}),
      };
      const device = configureVirtioDevice(virtioNet, netOptions);
      const h = new VirtioMmioHarness({ name: `virtio-net:${tap.name}`, device }, options.memoryBytes);
      await h.ready();
      return new NetBed(ns, tap, h, device.description, stats, options.features ?? ALL_FEATURES, options.queueSize ?? 256);
    } catch (error) {
      if (tap) close(tap.fd);
      ns.destroy();
      throw error;
    }
  }

  /** Resets the device (if it was running) and brings it up again with fresh, empty rings. */
  activate(): void {
    const offered = this.h.negotiate(this.features);
    this.negotiated = offered & this.features;
    this.rx = this.h.setupQueue(RX, this.queueSize);
    this.tx = this.h.setupQueue(TX, this.queueSize);
    this.ctrl = this.negotiated & bit(S.VIRTIO_NET_F_CTRL_VQ) ? this.h.setupQueue(CTRL, 64) : undefined;
    // The rings sit where the previous driver's did: start them empty, as a driver zeroes its rings.
    for (const ring of [this.rx, this.tx, this.ctrl]) {
      ring?.resetIndexes(0);
      ring?.setAvailFlags(0);
      ring?.setUsedEvent(0);
    }
    this.h.driverOk();
    // Activation (and TUNSETOFFLOAD) happens on the data-plane thread: wait for it to be done.
    if (!this.h.state.waitForControl(this.h.state.controlSequence, 2000)) throw new Error('the device did not activate');
    this.posted.clear();
    this.pendingUsed.length = 0;
  }

  has(feature: number): boolean {
    return (this.negotiated & bit(feature)) !== 0n;
  }

  /** Posts `count` receive buffers of `size` bytes (split into `pieces` descriptors) and kicks. */
  postRx(count: number, size: number, pieces = 1): number[] {
    const heads: number[] = [];
    for (let i = 0; i < count; i++) {
      const address = this.h.allocate(size);
      const piece = Math.ceil(size / pieces);
      const buffers = Array.from({ length: pieces }, (_, p) => ({
        address: address + p * piece,
        length: Math.min(piece, size - p * piece),
        writable: true,
      }));
      const head = this.rx.addChain(buffers);
      this.posted.set(head, { address, size });
      heads.push(head);
    }
    this.h.kick(RX);
    return heads;
  }

  /** Sends one frame with a header (in one descriptor, or header and frame in two) and kicks. */
  send(frame: Uint8Array, header: Uint8Array, split = false): number {
    const address = this.h.allocate(header.length + frame.length);
    this.h.memory.write(address, header);
    this.h.memory.write(address + header.length, frame);
    const buffers = split
      ? [
          { address, length: header.length, writable: false },
          { address: address + header.length, length: frame.length, writable: false },
        ]
      : [{ address, length: header.length + frame.length, writable: false }];
    const head = this.tx.addChain(buffers);
    this.h.kick(TX);
    return head;
  }

  /**
   * The device's counters once `ready` holds (or at the timeout): its thread adds them after it
   * has published the used buffers, so a test that has seen a frame may read them too early.
   */
  async countersWhen(ready: (counters: ReturnType<NetStats['snapshot']>) => boolean, timeoutMs = 2000): Promise<ReturnType<NetStats['snapshot']>> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const counters = this.stats.snapshot();
      if (ready(counters) || Date.now() > deadline) return counters;
      await sleep(1);
    }
  }

  /** Waits until the device has used `count` transmit chains. */
  async transmitted(count: number, timeoutMs = 2000): Promise<Array<{ id: number; len: number }>> {
    return this.h.waitForUsed(TX, count, timeoutMs);
  }

  /** Frames received (reassembled from their buffers) until `until` says enough, or the timeout. */
  async receive(until: (frames: ReceivedFrame[]) => boolean, timeoutMs = 3000): Promise<ReceivedFrame[]> {
    const frames: ReceivedFrame[] = [];
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      this.pendingUsed.push(...this.rx.takeUsed());
      while (this.pendingUsed.length > 0) {
        const first = this.pendingUsed[0]!;
        const buffer = this.posted.get(first.id)!;
        if (first.len < S.VIRTIO_NET_HDR_SIZE) {
          // An unusable buffer handed back empty.
          this.pendingUsed.shift();
          this.posted.delete(first.id);
          continue;
        }
        const header = parseVnetHeader(this.h.memory.slice(buffer.address, S.VIRTIO_NET_HDR_SIZE));
        const count = Math.max(1, header.numBuffers);
        if (this.pendingUsed.length < count) break;
        const parts = this.pendingUsed.splice(0, count);
        const bytes = new Uint8Array(parts.reduce((n, p) => n + p.len, 0));
        let at = 0;
        for (const part of parts) {
          const b = this.posted.get(part.id)!;
          bytes.set(this.h.memory.slice(b.address, part.len), at);
          at += part.len;
          this.posted.delete(part.id);
        }
        frames.push({ header, frame: bytes.slice(S.VIRTIO_NET_HDR_SIZE), lengths: parts.map((p) => p.len) });
      }
      if (until(frames) || Date.now() > deadline) return frames;
      await sleep(1);
    }
  }

  /** Sends a control-queue command; resolves with its ack byte. */
  async control(commandClass: number, command: number, data: Uint8Array): Promise<number> {
    const ctrl = this.ctrl;
    if (!ctrl) throw new Error('no control queue negotiated');
    const out = this.h.allocate(2 + data.length);
    this.h.memory.write(out, Uint8Array.of(commandClass, command));
    this.h.memory.write(out + 2, data);
    const ack = this.h.allocate(1);
    this.h.memory.writeU8(ack, 0xff);
    ctrl.addChain([
      { address: out, length: 2 + data.length, writable: false },
      { address: ack, length: 1, writable: true },
    ]);
    this.h.kick(CTRL);
    const used = await this.h.waitForUsed(CTRL, 1);
    if (used.length !== 1) throw new Error('control command not answered');
    return this.h.memory.readU8(ack);
  }

  /**
   * A TCP server inside the namespace on HOST_IP:port. 'sink' reports the bytes it received
   * ("rx N" lines); 'source' sends `bytes` bytes (byte i = i % 251) to the first client.
   */
  async server(port: number, mode: 'sink' | 'source', bytes = 0): Promise<{ received: () => number; lines: string[] }> {
    const script = `
      const net = require('node:net');
      const server = net.createServer((socket) => {
        let total = 0;
        socket.on('data', (d) => { total += d.length; console.log('rx ' + total); });
        socket.on('error', () => {});
        if (${JSON.stringify(mode)} === 'source') {
          const data = Buffer.alloc(${bytes});
          for (let i = 0; i < data.length; i++) data[i] = i % 251;
          socket.write(data);
        }
      });
      server.listen(${port}, ${JSON.stringify(HOST_IP)}, () => console.log('listening'));
      setTimeout(() => process.exit(0), 20000).unref();
      process.stdin.on('end', () => process.exit(0));
      process.stdin.resume();`;
    const child = spawn('ip', [...this.ns.execPrefix, process.execPath, '-e', script]);
    this.children.push(child);
    const lines: string[] = [];
    let received = 0;
    createInterface({ input: child.stdout }).on('line', (line) => {
      lines.push(line);
      const m = /^rx (\d+)$/.exec(line);
      if (m) received = Number(m[1]);
    });
    const deadline = Date.now() + 5000;
    while (!lines.includes('listening')) {
      if (Date.now() > deadline || child.exitCode !== null) throw new Error(`server did not start: ${lines.join('\n')}`);
      await sleep(5);
    }
    return { received: () => received, lines };
  }

  async close(): Promise<void> {
    for (const child of this.children) {
      child.stdin.end();
      child.kill();
    }
    await this.h.close();
    close(this.tap.fd);
    this.ns.destroy();
  }
}
