/**
 * The vhost-user message protocol (QEMU docs/interop/vhost-user.rst), front-end side: request
 * numbers by name, header flags, feature bits, and the codec for every payload the front-end
 * sends or reads. Pure data: no I/O here. All integers are little-endian.
 *
 * A message is a 12-byte header (request u32, flags u32, size u32) and `size` payload bytes;
 * descriptors travel beside it as SCM_RIGHTS.
 */

/** Every front-end → back-end request, by its spec name. */
export const Request = {
  GET_FEATURES: 1,
  SET_FEATURES: 2,
  SET_OWNER: 3,
  RESET_OWNER: 4,
  SET_MEM_TABLE: 5,
  SET_LOG_BASE: 6,
  SET_LOG_FD: 7,
  SET_VRING_NUM: 8,
  SET_VRING_ADDR: 9,
  SET_VRING_BASE: 10,
  GET_VRING_BASE: 11,
  SET_VRING_KICK: 12,
  SET_VRING_CALL: 13,
  SET_VRING_ERR: 14,
  GET_PROTOCOL_FEATURES: 15,
  SET_PROTOCOL_FEATURES: 16,
  GET_QUEUE_NUM: 17,
  SET_VRING_ENABLE: 18,
  SEND_RARP: 19,
  NET_SET_MTU: 20,
  SET_BACKEND_REQ_FD: 21,
  IOTLB_MSG: 22,
  SET_VRING_ENDIAN: 23,
  GET_CONFIG: 24,
  SET_CONFIG: 25,
  CREATE_CRYPTO_SESSION: 26,
  CLOSE_CRYPTO_SESSION: 27,
  POSTCOPY_ADVISE: 28,
  POSTCOPY_LISTEN: 29,
  POSTCOPY_END: 30,
  GET_INFLIGHT_FD: 31,
  SET_INFLIGHT_FD: 32,
  GPU_SET_SOCKET: 33,
  RESET_DEVICE: 34,
  VRING_KICK: 35,
  GET_MAX_MEM_SLOTS: 36,
  ADD_MEM_REG: 37,
  REM_MEM_REG: 38,
  SET_STATUS: 39,
  GET_STATUS: 40,
  GET_SHARED_OBJECT: 41,
  SET_DEVICE_STATE_FD: 42,
  CHECK_DEVICE_STATE: 43,
} as const;

export type RequestName = keyof typeof Request;
export type RequestCode = (typeof Request)[RequestName];

const requestNames = new Map<number, RequestName>(Object.entries(Request).map(([name, code]) => [code, name as RequestName]));

/** `VHOST_USER_GET_FEATURES`, or `request 99` for a number the spec does not name. */
export function requestName(code: number): string {
  const name = requestNames.get(code);
  return name ? `VHOST_USER_${name}` : `request ${code}`;
}

export const HEADER_SIZE = 12;
/** The version in flags bits 0–1; the only one there is. */
export const VERSION = 0x1;
export const VERSION_MASK = 0x3;
export const FLAG_REPLY = 0x4;
export const FLAG_NEED_REPLY = 0x8;

/** Features bit 30: the back-end speaks GET/SET_PROTOCOL_FEATURES. */
export const F_PROTOCOL_FEATURES = 30;

/** Protocol feature bits (VHOST_USER_PROTOCOL_F_*). */
export const ProtocolFeature = {
  MQ: 0,
  LOG_SHMFD: 1,
  RARP: 2,
  REPLY_ACK: 3,
  NET_MTU: 4,
  BACKEND_REQ: 5,
  CROSS_ENDIAN: 6,
  CRYPTO_SESSION: 7,
  PAGEFAULT: 8,
  CONFIG: 9,
  BACKEND_SEND_FD: 10,
  HOST_NOTIFIER: 11,
  INFLIGHT_SHMFD: 12,
  RESET_DEVICE: 13,
  INBAND_NOTIFICATIONS: 14,
  CONFIGURE_MEM_SLOTS: 15,
  STATUS: 16,
  XEN_MMAP: 17,
  SHARED_OBJECT: 18,
  DEVICE_STATE: 19,
} as const;

/** `1n << bit`. */
export function bit(n: number): bigint {
  return 1n << BigInt(n);
}

/** Regions one SET_MEM_TABLE carries (VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_MEM_REGIONS = 8;
/** Largest device configuration space GET/SET_CONFIG moves (VHOST_USER_MAX_CONFIG_SIZE). */
export const MAX_CONFIG_SIZE = 256;
/** Most payload bytes of any message this front-end sends or accepts. */
export const MAX_PAYLOAD = Math.max(8 + MAX_MEM_REGIONS * 32, 12 + MAX_CONFIG_SIZE);
/** SET_VRING_KICK/CALL/ERR payload: the queue index in bits 0–7, bit 8 = no descriptor (polling). */
export const VRING_INDEX_MASK = 0xff;
export const VRING_NOFD_MASK = 0x100;
/** Most virtqueues one device has here (index fits VRING_INDEX_MASK). */
export const MAX_QUEUES = 256;

export const U64_SIZE = 8;
export const VRING_STATE_SIZE = 8;
export const VRING_ADDR_SIZE = 40;
export const MEM_TABLE_SIZE = 8 + MAX_MEM_REGIONS * 32;
export const CONFIG_HEADER_SIZE = 12;

export interface Header {
  readonly request: number;
  readonly flags: number;
  readonly size: number;
}

/** One message: header and payload, ready for sendmsg. */
export function encodeMessage(request: RequestCode, flags: number, payload: Uint8Array = new Uint8Array(0)): Uint8Array {
  const bytes = new Uint8Array(HEADER_SIZE + payload.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, request, true);
  v.setUint32(4, flags | VERSION, true);
  v.setUint32(8, payload.length, true);
  bytes.set(payload, HEADER_SIZE);
  return bytes;
}

export function decodeHeader(bytes: Uint8Array): Header {
  const v = view(bytes);
  return { request: v.getUint32(0, true), flags: v.getUint32(4, true), size: v.getUint32(8, true) };
}

export function encodeU64(value: bigint): Uint8Array {
  const bytes = new Uint8Array(U64_SIZE);
  new DataView(bytes.buffer).setBigUint64(0, BigInt.asUintN(64, value), true);
  return bytes;
}

export function decodeU64(bytes: Uint8Array): bigint {
  return view(bytes).getBigUint64(0, true);
}

/** struct vhost_vring_state: a queue index and a number (size, base, enable). */
export interface VringState {
  readonly index: number;
  readonly num: number;
}

export function encodeVringState(state: VringState): Uint8Array {
  const bytes = new Uint8Array(VRING_STATE_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, state.index, true);
  v.setUint32(4, state.num, true);
  return bytes;
}

export function decodeVringState(bytes: Uint8Array): VringState {
  const v = view(bytes);
  return { index: v.getUint32(0, true), num: v.getUint32(4, true) };
}

/** VHOST_VRING_F_LOG: the used ring is logged at `log` (dirty logging). */
export const VRING_F_LOG = 0x1;

/** struct vhost_vring_addr: the rings at front-end (user) virtual addresses the back-end translates. */
export interface VringAddress {
  readonly index: number;
  readonly flags: number;
  readonly descriptor: bigint;
  readonly used: bigint;
  readonly available: bigint;
  readonly log: bigint;
}

export function encodeVringAddress(a: VringAddress): Uint8Array {
  const bytes = new Uint8Array(VRING_ADDR_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, a.index, true);
  v.setUint32(4, a.flags, true);
  v.setBigUint64(8, a.descriptor, true);
  v.setBigUint64(16, a.used, true);
  v.setBigUint64(24, a.available, true);
  v.setBigUint64(32, a.log, true);
  return bytes;
}

export function decodeVringAddress(bytes: Uint8Array): VringAddress {
  const v = view(bytes);
  return {
    index: v.getUint32(0, true),
    flags: v.getUint32(4, true),
    descriptor: v.getBigUint64(8, true),
    used: v.getBigUint64(16, true),
    available: v.getBigUint64(24, true),
    log: v.getBigUint64(32, true),
  };
}

/** One guest RAM region: where the guest sees it, its size, where the front-end maps it, and its offset in the fd. */
export interface MemoryRegion {
  readonly guestPhysicalAddress: bigint;
  readonly size: bigint;
  readonly userAddress: bigint;
  readonly mmapOffset: bigint;
}

/** VhostUserMemory: nregions u32, padding u32, then MAX_MEM_REGIONS region slots (unused ones zero). */
export function encodeMemoryTable(regions: readonly MemoryRegion[]): Uint8Array {
  const bytes = new Uint8Array(MEM_TABLE_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, regions.length, true);
  regions.forEach((r, i) => {
    const at = 8 + i * 32;
    v.setBigUint64(at, r.guestPhysicalAddress, true);
    v.setBigUint64(at + 8, r.size, true);
    v.setBigUint64(at + 16, r.userAddress, true);
    v.setBigUint64(at + 24, r.mmapOffset, true);
  });
  return bytes;
}

/** Decodes a memory table (a back-end's view; the tests' fake back-end uses it). Throws RangeError on a bad count. */
export function decodeMemoryTable(bytes: Uint8Array): MemoryRegion[] {
  const v = view(bytes);
  const count = v.getUint32(0, true);
  if (count > MAX_MEM_REGIONS || bytes.length < 8 + count * 32) throw new RangeError(`memory table of ${count} regions`);
  return Array.from({ length: count }, (_, i) => {
    const at = 8 + i * 32;
    return {
      guestPhysicalAddress: v.getBigUint64(at, true),
      size: v.getBigUint64(at + 8, true),
      userAddress: v.getBigUint64(at + 16, true),
      mmapOffset: v.getBigUint64(at + 24, true),
    };
  });
}

/** VHOST_USER_CONFIG_FLAG_*: writable (0) or a live migration's restore (1). */
export const CONFIG_FLAG_WRITABLE = 0x0;
export const CONFIG_FLAG_MIGRATION = 0x1;

/** VhostUserConfig: offset u32, size u32, flags u32, then `size` bytes of configuration space. */
export interface ConfigSpace {
  readonly offset: number;
  readonly flags: number;
  readonly data: Uint8Array;
}

export function encodeConfig(c: ConfigSpace): Uint8Array {
  const bytes = new Uint8Array(CONFIG_HEADER_SIZE + c.data.length);
  const v = new DataView(bytes.buffer);
  v.setUint32(0, c.offset, true);
  v.setUint32(4, c.data.length, true);
  v.setUint32(8, c.flags, true);
  bytes.set(c.data, CONFIG_HEADER_SIZE);
  return bytes;
}

export function decodeConfig(bytes: Uint8Array): ConfigSpace {
  const v = view(bytes);
  const size = v.getUint32(4, true);
  if (size > bytes.length - CONFIG_HEADER_SIZE) throw new RangeError(`config payload claims ${size} bytes, carries ${bytes.length - CONFIG_HEADER_SIZE}`);
  return { offset: v.getUint32(0, true), flags: v.getUint32(8, true), data: bytes.slice(CONFIG_HEADER_SIZE, CONFIG_HEADER_SIZE + size) };
}

function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}
