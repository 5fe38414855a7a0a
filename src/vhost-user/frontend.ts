/**
 * The vhost-user front-end: one connection to a back-end process, one method per request.
 *
 * Calls are synchronous and each is bounded by `timeoutMs` (send and reply together): the
 * socket is non-blocking and every wait is a poll(2) with the time left. A back-end is another
 * process and is not trusted: a reply must answer the very request (its number, the REPLY flag,
 * version 1), carry exactly the payload size that request expects (checked from the header,
 * before any payload is read, so a huge size is never read), and carry no descriptors (any that
 * arrive are closed). After a failed exchange the stream may be mid-message, so the connection
 * is unusable: every later call fails at once naming the first error.
 *
 * When VHOST_USER_PROTOCOL_F_REPLY_ACK is negotiated, every request that has no reply of its
 * own asks for one (NEED_REPLY) and a non-zero status fails the call.
 */
import { EAGAIN, ECONNRESET, EPIPE, errnoName } from '../sys/errno.js';
import { POLLIN, POLLOUT, close, pollFd, setNonBlocking } from '../sys/fd.js';
import { HostCallError } from '../sys/ffi.js';
import { closeAll, connectUnix, receiveMessage, sendMessage } from '../sys/unix-socket.js';
import { VhostUserError, type VhostUserErrorKind } from './error.js';
import {
  CONFIG_FLAG_WRITABLE,
  CONFIG_HEADER_SIZE,
  F_PROTOCOL_FEATURES,
  FLAG_NEED_REPLY,
  FLAG_REPLY,
  HEADER_SIZE,
  MAX_CONFIG_SIZE,
  MAX_MEM_REGIONS,
  MAX_QUEUES,
  ProtocolFeature,
  Request,
  type RequestCode,
  U64_SIZE,
  VERSION,
  VERSION_MASK,
  VRING_NOFD_MASK,
  VRING_STATE_SIZE,
  type MemoryRegion,
  type VringAddress,
  bit,
  decodeConfig,
  decodeHeader,
  decodeU64,
  decodeVringState,
  encodeConfig,
  encodeMemoryTable,
  encodeMessage,
  encodeU64,
  encodeVringAddress,
  encodeVringState,
  requestName,
} from './protocol.js';

export interface VhostUserFrontendOptions {
  /** Longest one request (send and reply) may take, in milliseconds. Default 5000. */
  readonly timeoutMs?: number;
}

/** A guest RAM region and the memfd (or other shareable fd) the back-end maps it from. */
export interface SharedMemoryRegion extends MemoryRegion {
  readonly fd: number;
}

export const DEFAULT_TIMEOUT_MS = 5000;
const MAX_VRING_SIZE = 32768;

export class VhostUserFrontend {
  readonly timeoutMs: number;
  private fd: number;
  private broken: VhostUserError | undefined;
  private offeredFeatures: bigint | undefined;
  private ackedFeatures: bigint | undefined;
  private offeredProtocolFeatures: bigint | undefined;
  /** The regions of the last SET_MEM_TABLE, at front-end addresses: rings must lie inside them. */
  private regions: readonly MemoryRegion[] = [];
  /** Queue sizes by index, from SET_VRING_NUM: how far each ring extends. */
  private readonly sizes = new Map<number, number>();
  private ackedProtocolFeatures = 0n;

  /** Connects to a back-end listening on `path`. */
  static connect(path: string, options: VhostUserFrontendOptions = {}): VhostUserFrontend {
    let fd: number;
    try {
      fd = connectUnix(path);
    } catch (error) {
      const reason = error instanceof HostCallError ? error.code : error instanceof Error ? error.message : String(error);
      throw new VhostUserError('connection', `cannot connect to ${path}: ${reason}`, { cause: error });
    }
    return new VhostUserFrontend(fd, options);
  }

  /** Takes over `fd`, a connected AF_UNIX stream socket (made non-blocking; closed by close()). */
  constructor(fd: number, options: VhostUserFrontendOptions = {}) {
    const timeoutMs = options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    if (!Number.isInteger(timeoutMs) || timeoutMs <= 0) throw new VhostUserError('invalid', `timeout must be a positive number of ms, not ${timeoutMs}`);
    this.timeoutMs = timeoutMs;
    this.fd = fd;
    setNonBlocking(fd);
  }

  /** The protocol features both sides agreed on (0 before SET_PROTOCOL_FEATURES). */
  get protocolFeatures(): bigint {
    return this.ackedProtocolFeatures;
  }

  hasProtocolFeature(feature: number): boolean {
    return (this.ackedProtocolFeatures & bit(feature)) !== 0n;
  }

  /** VHOST_USER_GET_FEATURES: the virtio (and vhost-user) feature bits the back-end offers. */
  getFeatures(): bigint {
    const features = decodeU64(this.exchange(Request.GET_FEATURES, undefined, [], U64_SIZE));
    this.offeredFeatures = features;
    return features;
  }

  /** VHOST_USER_SET_FEATURES: a subset of what GET_FEATURES offered. */
  setFeatures(features: bigint): void {
    const offered = this.need(this.offeredFeatures, Request.SET_FEATURES, 'GET_FEATURES');
    const extra = features & ~offered;
    if (features < 0n || extra !== 0n) this.invalid(Request.SET_FEATURES, `features 0x${features.toString(16)} beyond those offered (0x${offered.toString(16)})`);
    this.exchange(Request.SET_FEATURES, encodeU64(features));
    this.ackedFeatures = features;
  }

  /** VHOST_USER_GET_PROTOCOL_FEATURES; only when the back-end offers VHOST_USER_F_PROTOCOL_FEATURES. */
  getProtocolFeatures(): bigint {
    const offered = this.need(this.offeredFeatures, Request.GET_PROTOCOL_FEATURES, 'GET_FEATURES');
    if ((offered & bit(F_PROTOCOL_FEATURES)) === 0n) this.unsupported(Request.GET_PROTOCOL_FEATURES, 'the back-end does not offer VHOST_USER_F_PROTOCOL_FEATURES');
    const features = decodeU64(this.exchange(Request.GET_PROTOCOL_FEATURES, undefined, [], U64_SIZE));
    this.offeredProtocolFeatures = features;
    return features;
  }

  /** VHOST_USER_SET_PROTOCOL_FEATURES: a subset of what was offered; REPLY_ACK applies from the next request. */
  setProtocolFeatures(features: bigint): void {
    const offered = this.need(this.offeredProtocolFeatures, Request.SET_PROTOCOL_FEATURES, 'GET_PROTOCOL_FEATURES');
    if (features < 0n || (features & ~offered) !== 0n) {
      this.invalid(Request.SET_PROTOCOL_FEATURES, `protocol features 0x${features.toString(16)} beyond those offered (0x${offered.toString(16)})`);
    }
    this.exchange(Request.SET_PROTOCOL_FEATURES, encodeU64(features));
    this.ackedProtocolFeatures = features;
  }

  /** VHOST_USER_SET_OWNER: this connection owns the back-end's device. */
  setOwner(): void {
    this.exchange(Request.SET_OWNER);
  }

  /** VHOST_USER_RESET_OWNER (deprecated in the spec; reset() prefers RESET_DEVICE). */
  resetOwner(): void {
    this.exchange(Request.RESET_OWNER);
  }

  /** The device reset: VHOST_USER_RESET_DEVICE when negotiated, else VHOST_USER_RESET_OWNER. Features must be set again after it. */
  reset(): void {
    this.exchange(this.hasProtocolFeature(ProtocolFeature.RESET_DEVICE) ? Request.RESET_DEVICE : Request.RESET_OWNER);
    this.ackedFeatures = undefined;
  }

  /** VHOST_USER_SET_MEM_TABLE: the guest RAM regions, each with the descriptor the back-end maps it from. */
  setMemTable(regions: readonly SharedMemoryRegion[]): void {
    const request = Request.SET_MEM_TABLE;
    if (regions.length === 0 || regions.length > MAX_MEM_REGIONS) this.invalid(request, `${regions.length} memory regions (1 to ${MAX_MEM_REGIONS})`);
    for (const r of regions) {
      if (!Number.isInteger(r.fd) || r.fd < 0) this.invalid(request, `region at guest 0x${r.guestPhysicalAddress.toString(16)} has no descriptor`);
      if (r.size <= 0n || r.guestPhysicalAddress < 0n || r.userAddress < 0n || r.mmapOffset < 0n || r.guestPhysicalAddress + r.size > 2n ** 64n) {
        this.invalid(request, `region at guest 0x${r.guestPhysicalAddress.toString(16)} of 0x${r.size.toString(16)} bytes is not a valid range`);
      }
    }
    this.exchange(request, encodeMemoryTable(regions), regions.map((r) => r.fd));
    this.regions = regions.map(({ guestPhysicalAddress, size, userAddress, mmapOffset }) => ({ guestPhysicalAddress, size, userAddress, mmapOffset }));
  }

  /** VHOST_USER_SET_VRING_NUM: the queue's size (a power of two up to 32768). */
  setVringNum(index: number, size: number): void {
    this.checkQueue(Request.SET_VRING_NUM, index);
    if (!Number.isInteger(size) || size < 1 || size > MAX_VRING_SIZE || (size & (size - 1)) !== 0) {
      this.invalid(Request.SET_VRING_NUM, `queue size ${size} is not a power of two up to ${MAX_VRING_SIZE}`);
    }
    this.exchange(Request.SET_VRING_NUM, encodeVringState({ index, num: size }));
    this.sizes.set(index, size);
  }

  /**
   * VHOST_USER_SET_VRING_ADDR: the rings at front-end virtual addresses. After SET_MEM_TABLE and
   * SET_VRING_NUM, each ring must lie wholly inside one region (the back-end could not translate it otherwise).
   */
  setVringAddr(address: VringAddress): void {
    const request = Request.SET_VRING_ADDR;
    this.checkQueue(request, address.index);
    if (address.log < 0n || address.log >= 2n ** 64n) this.invalid(request, `log address 0x${address.log.toString(16)} out of range`);
    const size = this.sizes.get(address.index);
    if (size === undefined) this.invalid(request, `VHOST_USER_SET_VRING_NUM must come first for queue ${address.index}`);
    const rings: [string, bigint, number][] = [
      ['descriptor table', address.descriptor, 16 * size],
      ['available ring', address.available, 6 + 2 * size],
      ['used ring', address.used, 6 + 8 * size],
    ];
    for (const [what, start, length] of rings) {
      const end = start + BigInt(length);
      const inside = this.regions.some((r) => start >= r.userAddress && end <= r.userAddress + r.size);
      if (!inside) this.invalid(request, `${what} at 0x${start.toString(16)} (${length} bytes) is in no region of the memory table`);
    }
    this.exchange(request, encodeVringAddress(address));
  }

  /** VHOST_USER_SET_VRING_BASE: the next available-ring index the back-end reads. */
  setVringBase(index: number, base: number): void {
    this.checkQueue(Request.SET_VRING_BASE, index);
    if (!Number.isInteger(base) || base < 0 || base > 0xffff) this.invalid(Request.SET_VRING_BASE, `ring base ${base} is not a 16-bit index`);
    this.exchange(Request.SET_VRING_BASE, encodeVringState({ index, num: base }));
  }

  /** VHOST_USER_GET_VRING_BASE: stops the queue and gives the next available-ring index it would have read. */
  getVringBase(index: number): number {
    const request = Request.GET_VRING_BASE;
    this.checkQueue(request, index);
    const state = decodeVringState(this.exchange(request, encodeVringState({ index, num: 0 }), [], VRING_STATE_SIZE));
    if (state.index !== index) this.fail('protocol', request, `reply is for queue ${state.index}, not ${index}`);
    if (state.num > 0xffff) this.fail('protocol', request, `ring base ${state.num} is not a 16-bit index`);
    return state.num;
  }

  /** VHOST_USER_SET_VRING_KICK: the eventfd the guest's notifications arrive on (none: the back-end polls). */
  setVringKick(index: number, fd: number | undefined): void {
    this.sendVringFd(Request.SET_VRING_KICK, index, fd);
  }

  /** VHOST_USER_SET_VRING_CALL: the eventfd (an irqfd) the back-end signals to interrupt the guest. */
  setVringCall(index: number, fd: number | undefined): void {
    this.sendVringFd(Request.SET_VRING_CALL, index, fd);
  }

  /** VHOST_USER_SET_VRING_ERR: the eventfd the back-end signals on a queue error. */
  setVringErr(index: number, fd: number | undefined): void {
    this.sendVringFd(Request.SET_VRING_ERR, index, fd);
  }

  /** VHOST_USER_SET_VRING_ENABLE; needs VHOST_USER_F_PROTOCOL_FEATURES negotiated (rings then start disabled). */
  setVringEnable(index: number, enabled: boolean): void {
    const request = Request.SET_VRING_ENABLE;
    this.checkQueue(request, index);
    if (this.ackedFeatures === undefined || (this.ackedFeatures & bit(F_PROTOCOL_FEATURES)) === 0n) {
      this.unsupported(request, 'VHOST_USER_F_PROTOCOL_FEATURES is not negotiated');
    }
    this.exchange(request, encodeVringState({ index, num: enabled ? 1 : 0 }));
  }

  /** VHOST_USER_GET_QUEUE_NUM (VHOST_USER_PROTOCOL_F_MQ): how many queues the back-end supports. */
  getQueueNum(): number {
    const request = Request.GET_QUEUE_NUM;
    this.requireProtocol(request, ProtocolFeature.MQ, 'MQ');
    const count = decodeU64(this.exchange(request, undefined, [], U64_SIZE));
    if (count < 1n || count > BigInt(MAX_QUEUES)) this.fail('protocol', request, `back-end claims ${count} queues (1 to ${MAX_QUEUES})`);
    return Number(count);
  }

  /** VHOST_USER_GET_CONFIG (VHOST_USER_PROTOCOL_F_CONFIG): `size` bytes of the device configuration space from `offset`. */
  getConfig(offset: number, size: number): Uint8Array {
    const request = Request.GET_CONFIG;
    this.requireProtocol(request, ProtocolFeature.CONFIG, 'CONFIG');
    this.checkConfigRange(request, offset, size);
    const reply = this.exchange(request, encodeConfig({ offset, flags: 0, data: new Uint8Array(size) }), [], CONFIG_HEADER_SIZE + size);
    const config = decodeConfig(reply);
    if (config.offset !== offset || config.data.length !== size) {
      this.fail('protocol', request, `reply is for ${config.data.length} bytes at ${config.offset}, not ${size} at ${offset}`);
    }
    return config.data;
  }

  /** VHOST_USER_SET_CONFIG (VHOST_USER_PROTOCOL_F_CONFIG): writes `data` into the configuration space at `offset`. */
  setConfig(offset: number, data: Uint8Array, flags = CONFIG_FLAG_WRITABLE): void {
    const request = Request.SET_CONFIG;
    this.requireProtocol(request, ProtocolFeature.CONFIG, 'CONFIG');
    this.checkConfigRange(request, offset, data.length);
    this.exchange(request, encodeConfig({ offset, flags, data }));
  }

  /** Closes the connection (the back-end sees EOF); later calls fail. */
  close(): void {
    if (this.fd < 0) return;
    close(this.fd);
    this.fd = -1;
    this.broken ??= new VhostUserError('connection', 'connection closed');
  }

  private sendVringFd(request: RequestCode, index: number, fd: number | undefined): void {
    this.checkQueue(request, index);
    if (fd !== undefined && (!Number.isInteger(fd) || fd < 0)) this.invalid(request, `descriptor ${fd} is not valid`);
    const value = BigInt(index) | (fd === undefined ? BigInt(VRING_NOFD_MASK) : 0n);
    this.exchange(request, encodeU64(value), fd === undefined ? [] : [fd]);
  }

  /**
   * Sends one request and reads its reply: `replySize` payload bytes for a request that has one,
   * or the REPLY_ACK status when negotiated. Returns the reply payload (empty when none).
   */
  private exchange(request: RequestCode, payload?: Uint8Array, fds: readonly number[] = [], replySize?: number): Uint8Array {
    if (this.broken) throw new VhostUserError('connection', `${requestName(request)}: connection unusable (${this.broken.message.replace(/^vhost-user: /, '')})`);
    const ack = replySize === undefined && request !== Request.SET_PROTOCOL_FEATURES && this.hasProtocolFeature(ProtocolFeature.REPLY_ACK);
    const deadline = Date.now() + this.timeoutMs;
    try {
      this.sendAll(request, encodeMessage(request, ack ? FLAG_NEED_REPLY : 0, payload), fds, deadline);
      if (replySize !== undefined) return this.receiveReply(request, replySize, deadline);
      if (ack) {
        const status = decodeU64(this.receiveReply(request, U64_SIZE, deadline));
        if (status !== 0n) throw new VhostUserError('nack', `${requestName(request)}: back-end refused it (status ${status})`);
      }
      return new Uint8Array(0);
    } catch (error) {
      // A refusal leaves the stream in step; anything else may have left it mid-message.
      if (!(error instanceof VhostUserError && error.kind === 'nack')) this.broken ??= error instanceof VhostUserError ? error : new VhostUserError('connection', String(error));
      throw error;
    }
  }

  private sendAll(request: RequestCode, message: Uint8Array, fds: readonly number[], deadline: number): void {
    let sent = 0;
    while (sent < message.length) {
      this.wait(request, POLLOUT, deadline, `sending (${sent} of ${message.length} bytes sent)`);
      const r = sendMessage(this.fd, message.subarray(sent), sent === 0 ? fds : []);
      if (r === -EAGAIN) continue; // poll again
      if (r <= 0) this.fail('connection', request, r === -EPIPE || r === -ECONNRESET ? 'back-end closed the connection' : `sendmsg failed: ${errnoName(-r)}`);
      sent += r;
    }
  }

  private receiveReply(request: RequestCode, size: number, deadline: number): Uint8Array {
    const header = decodeHeader(this.receiveExactly(request, HEADER_SIZE, deadline, 'reply header'));
    if (header.request !== request) this.fail('protocol', request, `reply is for ${requestName(header.request)}`);
    if ((header.flags & VERSION_MASK) !== VERSION) this.fail('protocol', request, `reply has protocol version ${header.flags & VERSION_MASK}, not ${VERSION}`);
    if ((header.flags & FLAG_REPLY) === 0) this.fail('protocol', request, `reply lacks the REPLY flag (flags 0x${header.flags.toString(16)})`);
    if (header.size !== size) this.fail('protocol', request, `reply carries ${header.size} payload bytes, expected ${size}`);
    return size === 0 ? new Uint8Array(0) : this.receiveExactly(request, size, deadline, 'reply payload');
  }

  /** Reads exactly `length` bytes (never more), refusing descriptors. */
  private receiveExactly(request: RequestCode, length: number, deadline: number, what: string): Uint8Array {
    const bytes = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      this.wait(request, POLLIN, deadline, `a ${what} (${got} of ${length} bytes)`);
      const r = receiveMessage(this.fd, bytes.subarray(got));
      if (typeof r === 'number') {
        if (r === -EAGAIN) continue;
        this.fail('connection', request, r === -ECONNRESET ? 'back-end reset the connection' : `recvmsg failed: ${errnoName(-r)}`);
      }
      if (r.fds.length > 0 || r.controlTruncated) {
        closeAll(r.fds);
        this.fail('protocol', request, `${what} carried ${r.controlTruncated ? 'too many' : r.fds.length} unexpected descriptor(s)`);
      }
      if (r.bytes === 0) this.fail('connection', request, `back-end closed the connection after ${got} of ${length} bytes of the ${what}`);
      got += r.bytes;
    }
    return bytes;
  }

  private wait(request: RequestCode, events: number, deadline: number, what: string): void {
    const left = deadline - Date.now();
    const revents = left > 0 ? pollFd(this.fd, events, left) : 0;
    if (revents < 0) this.fail('connection', request, `poll failed: ${errnoName(-revents)}`);
    if (revents === 0) this.fail('timeout', request, `no answer within ${this.timeoutMs} ms waiting for ${what}`);
    // POLLHUP/POLLERR fall through: the next recvmsg/sendmsg reports the closed peer.
  }

  private checkQueue(request: RequestCode, index: number): void {
    if (!Number.isInteger(index) || index < 0 || index >= MAX_QUEUES) this.invalid(request, `queue index ${index} (0 to ${MAX_QUEUES - 1})`);
  }

  private checkConfigRange(request: RequestCode, offset: number, size: number): void {
    if (!Number.isInteger(offset) || !Number.isInteger(size) || offset < 0 || size < 1 || offset + size > MAX_CONFIG_SIZE) {
      this.invalid(request, `config range of ${size} bytes at ${offset} is outside the ${MAX_CONFIG_SIZE}-byte space`);
    }
  }

  private requireProtocol(request: RequestCode, feature: number, name: string): void {
    if (!this.hasProtocolFeature(feature)) this.unsupported(request, `VHOST_USER_PROTOCOL_F_${name} is not negotiated`);
  }

  private need<T>(value: T | undefined, request: RequestCode, first: string): T {
    if (value === undefined) this.fail('invalid', request, `VHOST_USER_${first} must come first`);
    return value;
  }

  private invalid(request: RequestCode, message: string): never {
    this.fail('invalid', request, message);
  }

  private unsupported(request: RequestCode, message: string): never {
    this.fail('unsupported', request, message);
  }

  private fail(kind: VhostUserErrorKind, request: RequestCode, message: string): never {
    throw new VhostUserError(kind, `${requestName(request)}: ${message}`);
  }
}
