/**
 * AF_UNIX stream sockets that carry file descriptors: connect to a path, and sendmsg/recvmsg
 * with SCM_RIGHTS ancillary data (what vhost-user needs and Node's `net` cannot do). Both calls
 * are bounded: at most MAX_MESSAGE_BYTES of data and MAX_PASSED_FDS descriptors per call. The
 * msghdr, iovec, control buffer and data travel in one mmap'd scratch page set per thread, so
 * every address handed to the kernel is stable. Received descriptors are close-on-exec
 * (MSG_CMSG_CLOEXEC); a truncated control buffer is reported, never silently dropped.
 */
import { libc, orErrno, retryInterrupted } from './ffi.js';
import { close } from './fd.js';
import { HostBuffer } from './host-buffer.js';
import { setU64Words } from './iovec.js';
import { connect, socket } from './sockets.js';

const cSendmsg = libc.func('int64_t sendmsg(int fd, uint64_t msg, int flags)') as (fd: number, msg: number, flags: number) => number;
const cRecvmsg = libc.func('int64_t recvmsg(int fd, uint64_t msg, int flags)') as (fd: number, msg: number, flags: number) => number;

export const AF_UNIX = 1;
export const SOCK_STREAM = 1;
const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_CTRUNC = 0x8;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;

/** Most data bytes one sendMessage/receiveMessage moves. */
export const MAX_MESSAGE_BYTES = 8192;
/** Most descriptors one message carries (vhost-user's limit, VHOST_MEMORY_BASELINE_NREGIONS). */
export const MAX_PASSED_FDS = 8;

/** sockaddr_un.sun_path holds 108 bytes, the terminating NUL included. */
const SUN_PATH_BYTES = 108;

// Scratch layout: struct msghdr (56 bytes), one iovec, the control buffer, then the data.
const MSGHDR_AT = 0;
const IOVEC_AT = 64;
const CONTROL_AT = 128;
const CMSG_HEADER = 16; // cmsg_len u64, cmsg_level i32, cmsg_type i32
const CONTROL_BYTES = CMSG_HEADER + MAX_PASSED_FDS * 4;
const DATA_AT = 256;

let scratch: HostBuffer | undefined;

function scratchBuffer(): HostBuffer {
  scratch ??= new HostBuffer(DATA_AT + MAX_MESSAGE_BYTES);
  return scratch;
}

function prepare(buffer: HostBuffer, dataLength: number, controlLength: number): DataView {
  const v = new DataView(buffer.bytes.buffer, buffer.bytes.byteOffset, DATA_AT);
  new Uint8Array(buffer.bytes.buffer, buffer.bytes.byteOffset, DATA_AT).fill(0);
  const words = buffer.words;
  // msghdr: name 0 / namelen 8 / iov 16 / iovlen 24 / control 32 / controllen 40 / flags 48
  setU64Words(words, (MSGHDR_AT + 16) / 4, buffer.address + IOVEC_AT);
  setU64Words(words, (MSGHDR_AT + 24) / 4, 1);
  if (controlLength > 0) {
    setU64Words(words, (MSGHDR_AT + 32) / 4, buffer.address + CONTROL_AT);
    setU64Words(words, (MSGHDR_AT + 40) / 4, controlLength);
  }
  setU64Words(words, IOVEC_AT / 4, buffer.address + DATA_AT);
  setU64Words(words, (IOVEC_AT + 8) / 4, dataLength);
  return v;
}

/**
 * sendmsg(2) of `data` with `fds` as SCM_RIGHTS (none: no control data), never raising SIGPIPE.
 * Bytes sent (a stream socket may take fewer than all; the descriptors go with the first byte)
 * or -errno. Throws RangeError beyond MAX_MESSAGE_BYTES or MAX_PASSED_FDS.
 */
export function sendMessage(fd: number, data: Uint8Array, fds: readonly number[] = []): number {
  if (data.length === 0 || data.length > MAX_MESSAGE_BYTES) throw new RangeError(`sendMessage: ${data.length} bytes (1 to ${MAX_MESSAGE_BYTES})`);
  if (fds.length > MAX_PASSED_FDS) throw new RangeError(`sendMessage: ${fds.length} descriptors (at most ${MAX_PASSED_FDS})`);
  const buffer = scratchBuffer();
  const controlLength = fds.length === 0 ? 0 : CMSG_HEADER + align8(fds.length * 4);
  const v = prepare(buffer, data.length, controlLength);
  if (fds.length > 0) {
    v.setBigUint64(CONTROL_AT, BigInt(CMSG_HEADER + fds.length * 4), true);
    v.setInt32(CONTROL_AT + 8, SOL_SOCKET, true);
    v.setInt32(CONTROL_AT + 12, SCM_RIGHTS, true);
    fds.forEach((passed, i) => v.setInt32(CONTROL_AT + CMSG_HEADER + i * 4, passed, true));
  }
  buffer.bytes.set(data, DATA_AT);
  return orErrno(retryInterrupted(() => cSendmsg(fd, buffer.address + MSGHDR_AT, MSG_NOSIGNAL)));
}

export interface ReceivedMessage {
  /** Data bytes received into the caller's buffer; 0 means the peer closed the connection. */
  readonly bytes: number;
  /** Descriptors received (close-on-exec); the caller owns them. */
  readonly fds: readonly number[];
  /** The peer sent more descriptors or control data than fit: some were dropped by the kernel. */
  readonly controlTruncated: boolean;
}

/**
 * recvmsg(2) of at most `into.length` bytes (≤ MAX_MESSAGE_BYTES) and at most MAX_PASSED_FDS
 * descriptors. The received message, or -errno.
 */
export function receiveMessage(fd: number, into: Uint8Array): ReceivedMessage | number {
  if (into.length === 0 || into.length > MAX_MESSAGE_BYTES) throw new RangeError(`receiveMessage: ${into.length} bytes (1 to ${MAX_MESSAGE_BYTES})`);
  const buffer = scratchBuffer();
  const v = prepare(buffer, into.length, CONTROL_BYTES);
  const r = orErrno(retryInterrupted(() => cRecvmsg(fd, buffer.address + MSGHDR_AT, MSG_CMSG_CLOEXEC)));
  if (r < 0) return r;
  into.set(buffer.bytes.subarray(DATA_AT, DATA_AT + r));
  const flags = v.getInt32(MSGHDR_AT + 48, true);
  const controlLength = Number(v.getBigUint64(MSGHDR_AT + 40, true));
  const fds: number[] = [];
  let at = 0;
  // Walk every cmsghdr the kernel wrote; only SCM_RIGHTS carries descriptors.
  while (at + CMSG_HEADER <= controlLength) {
    const length = Number(v.getBigUint64(CONTROL_AT + at, true));
    if (length < CMSG_HEADER || at + length > controlLength) break;
    const level = v.getInt32(CONTROL_AT + at + 8, true);
    const type = v.getInt32(CONTROL_AT + at + 12, true);
    if (level === SOL_SOCKET && type === SCM_RIGHTS) {
      for (let i = CMSG_HEADER; i + 4 <= length; i += 4) fds.push(v.getInt32(CONTROL_AT + at + i, true));
    }
    at += align8(length);
  }
  return { bytes: r, fds, controlTruncated: (flags & MSG_CTRUNC) !== 0 };
}

/** Closes every descriptor of a message that should have carried none. */
export function closeAll(fds: readonly number[]): void {
  for (const passed of fds) close(passed);
}

/** A close-on-exec AF_UNIX stream socket connected to `path`; throws HostCallError naming the path. */
export function connectUnix(path: string): number {
  const encoded = new TextEncoder().encode(path);
  if (encoded.length === 0 || encoded.length >= SUN_PATH_BYTES) {
    throw new RangeError(`socket path must be 1 to ${SUN_PATH_BYTES - 1} bytes: ${path}`);
  }
  const address = new Uint8Array(2 + SUN_PATH_BYTES);
  new DataView(address.buffer).setUint16(0, AF_UNIX, true);
  address.set(encoded, 2);
  const fd = socket(AF_UNIX, SOCK_STREAM, 0);
  try {
    connect(fd, address, 2 + encoded.length + 1, `connect ${path}`);
  } catch (error) {
    close(fd);
    throw error;
  }
  return fd;
}

function align8(n: number): number {
  return (n + 7) & ~7;
}
