/**
 * virtio-blk test driver over the host-side harness: a temporary image
 * opened the way the VMM opens it (src/disk), the device in its real
 * data-plane thread, and requests built like a guest driver builds them.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VirtioMmioHarness } from '../../../helpers/virtio-harness.js';
import { openDiskImage, type DiskImage } from '../../../../src/disk/disk-image.js';
import { blkOptionsFor } from '../../../../src/builder/blk-options.js';
import type { DiskSpec } from '../../../../src/disk/disk-spec.js';
import { virtioBlk } from '../../../../src/virtio/devices/blk/device.js';
import { configureVirtioDevice } from '../../../../src/virtio/virtio-device.js';
import type { BlkEngineKind, BlkOptions } from '../../../../src/virtio/devices/blk/options.js';
import * as S from '../../../../src/virtio/devices/blk/spec.js';
import * as V from '../../../../src/virtio/virtio-constants.js';
import type { DriverBuffer, MockSplitQueueDriver } from '../../mock-driver.js';

export const SECTOR = 512;
/** Where the harness lays out its rings (test/helpers/virtio-harness.ts). */
const RING_AREA = 0x1000;
const RING_STRIDE = 0x40000;

export interface BlkHarnessOptions {
  /** Image contents (default: `sectors` sectors of a pattern). */
  readonly contents?: Uint8Array;
  readonly sectors?: number;
  /** Use this existing file or device instead of a fresh image. */
  readonly path?: string;
  readonly readOnly?: boolean;
  readonly direct?: boolean;
  readonly serial?: string;
  readonly queues?: number;
  readonly queueSize?: number;
  readonly engine?: BlkEngineKind;
  /** Features the driver accepts (default: everything offered). */
  readonly accept?: bigint;
  readonly memoryBytes?: number;
  /** The device's counters (DeviceCounters.allocate with one lane per data-plane thread). */
  readonly counters?: SharedArrayBuffer;
}

export interface RequestLayout {
  /** Put the chain in an indirect table. */
  readonly indirect?: boolean;
  /** Split the data into buffers of this many bytes (default one buffer). */
  readonly split?: number;
  /** Data buffers start this many bytes past a 64-byte boundary. */
  readonly misalign?: number;
  /** With split: buffer i starts i × stride bytes after the first (default split: back to back). */
  readonly stride?: number;
}

export interface PostedRequest {
  readonly head: number;
  readonly statusAddress: number;
  /** Guest address of the first data buffer. */
  readonly dataAddress: number;
  readonly dataLength: number;
  /** The data buffers in chain order: [guest address, length]. */
  readonly pieces: ReadonlyArray<readonly [number, number]>;
}

/** The byte the pattern image holds at `offset`: never 0, and different per sector. */
export function patternByte(offset: number): number {
  return ((offset * 7 + Math.floor(offset / SECTOR) * 13) % 251) + 1;
}

export function pattern(offset: number, length: number): Uint8Array {
  const bytes = new Uint8Array(length);
  for (let i = 0; i < length; i++) bytes[i] = patternByte(offset + i);
  return bytes;
}

export class BlkTestDevice {
  readonly h: VirtioMmioHarness;
  readonly image: DiskImage;
  readonly path: string;
  readonly offered: bigint;
  readonly queues: MockSplitQueueDriver[];
  private readonly dir: string | undefined;

  private constructor(h: VirtioMmioHarness, image: DiskImage, file: string, dir: string | undefined, offered: bigint, queues: MockSplitQueueDriver[]) {
    this.h = h;
    this.image = image;
    this.path = file;
    this.dir = dir;
    this.offered = offered;
    this.queues = queues;
  }

  static async create(options: BlkHarnessOptions = {}): Promise<BlkTestDevice> {
    let dir: string | undefined;
    let file = options.path;
    if (file === undefined) {
      dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-blk-'));
      file = path.join(dir, 'disk.img');
      writeFileSync(file, options.contents ?? pattern(0, (options.sectors ?? 64) * SECTOR));
    }
    const spec: DiskSpec = { path: file, readOnly: options.readOnly ?? false, direct: options.direct ?? false, ...(options.serial ? { serial: options.serial } : {}) };
    const image = openDiskImage(spec);
    const blk = blkOptions(image, options);
    const h = new VirtioMmioHarness(
      { name: 'virtio-blk:test', device: configureVirtioDevice(virtioBlk, blk) },
      options.memoryBytes,
    );
    await h.ready();
    const offered = h.negotiate(options.accept ?? ~0n);
    const queues = Array.from({ length: blk.queues }, (_, q) => h.setupQueue(q, options.queueSize ?? 64));
    h.driverOk();
    return new BlkTestDevice(h, image, file, dir, offered, queues);
  }

  /** A driver reset and a fresh start on zeroed rings, as a driver reloading would do. */
  reinitialize(queueSize = 16): void {
    this.h.reset();
    this.h.memory.fill(RING_AREA, this.queues.length * RING_STRIDE, 0);
    this.h.negotiate(~0n);
    this.queues.forEach((_, q) => (this.queues[q] = this.h.setupQueue(q, queueSize)));
    this.h.driverOk();
  }

  /** Reads the device's configuration space as the driver sees it. */
  config(offset: number, bytes: 1 | 2 | 4 | 8): number | bigint {
    const raw = this.h.state.config.slice(offset, offset + bytes);
    const v = new DataView(raw.buffer);
    return bytes === 8 ? v.getBigUint64(0, true) : bytes === 4 ? v.getUint32(0, true) : bytes === 2 ? v.getUint16(0, true) : v.getUint8(0);
  }

  /** Builds header + data + status like Linux's driver and makes it available (no kick). */
  post(
    q: number,
    type: number,
    sector: number | bigint,
    data: { readonly out?: Uint8Array; readonly inLength?: number } = {},
    layout: RequestLayout = {},
  ): PostedRequest {
    const { h } = this;
    const header = h.allocate(S.BLK_REQ_HEADER_SIZE);
    h.memory.writeU32(header + S.BLK_REQ_TYPE, type);
    h.memory.writeU32(header + 4, 0);
    h.memory.writeU64(header + S.BLK_REQ_SECTOR, BigInt(sector));
    const buffers: DriverBuffer[] = [{ address: header, length: S.BLK_REQ_HEADER_SIZE, writable: false }];
    const dataLength = data.out?.length ?? data.inLength ?? 0;
    let dataAddress = 0;
    const pieces: Array<[number, number]> = [];
    if (dataLength > 0) {
      const split = layout.split ?? dataLength;
      const stride = Math.max(layout.stride ?? split, split);
      const span = Math.ceil(dataLength / split) * stride;
      dataAddress = h.allocate(span + 64 + (layout.misalign ?? 0)) + (layout.misalign ?? 0);
      for (let at = 0, i = 0; at < dataLength; at += split, i++) {
        const address = dataAddress + i * stride;
        const length = Math.min(split, dataLength - at);
        if (data.out) h.memory.write(address, data.out.subarray(at, at + length));
        else h.memory.fill(address, length, 0xee);
        pieces.push([address, length]);
        buffers.push({ address, length, writable: data.out === undefined });
      }
    }
    const statusAddress = h.allocate(1);
    h.memory.writeU8(statusAddress, 0xff);
    buffers.push({ address: statusAddress, length: 1, writable: true });
    const head = this.queues[q]!.addChain(buffers, { indirect: layout.indirect ?? false });
    return { head, statusAddress, dataAddress, dataLength, pieces };
  }

  status(request: PostedRequest): number {
    return this.h.memory.readU8(request.statusAddress);
  }

  data(request: PostedRequest): Uint8Array {
    const out = new Uint8Array(request.dataLength);
    let at = 0;
    for (const [address, length] of request.pieces) {
      out.set(this.h.memory.slice(address, length), at);
      at += length;
    }
    return out;
  }

  /** Kicks queue q and waits for `count` used entries. */
  async run(q: number, count: number, timeoutMs = 5000): Promise<Array<{ id: number; len: number }>> {
    this.h.kick(q);
    return this.h.waitForUsed(q, count, timeoutMs);
  }

  /** Posts one request, kicks, waits, and returns its status, used length and data. */
  async request(
    type: number,
    sector: number | bigint,
    data: { readonly out?: Uint8Array; readonly inLength?: number } = {},
    layout: RequestLayout = {},
    q = 0,
  ): Promise<{ status: number; len: number; data: Uint8Array }> {
    const posted = this.post(q, type, sector, data, layout);
    const used = await this.run(q, 1);
    if (used.length !== 1 || used[0]!.id !== posted.head) throw new Error(`expected head ${posted.head} used, got ${JSON.stringify(used)}`);
    return { status: this.status(posted), len: used[0]!.len, data: this.data(posted) };
  }

  async close(): Promise<void> {
    await this.h.close();
    this.image.close();
    if (this.dir) rmSync(this.dir, { recursive: true, force: true });
  }
}

export function blkOptions(image: DiskImage, options: Pick<BlkHarnessOptions, 'queues' | 'queueSize' | 'engine' | 'counters'> = {}): BlkOptions {
  // What the VMM passes (blkOptionsFor), with the test's own queue count, queue size, engine and counters.
  return {
    ...blkOptionsFor(image, 'vda', 1),
    queues: options.queues ?? 1,
    ...(options.queueSize !== undefined ? { queueSize: options.queueSize } : {}),
    ...(options.engine !== undefined ? { engine: options.engine } : {}),
    ...(options.counters !== undefined ? { counters: options.counters } : {}),
  };
}

export const ALL_FEATURES = ~0n;
export { S, V };
