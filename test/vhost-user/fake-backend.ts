/**
 * The other end of a socketpair, playing a vhost-user back-end in the test's own thread: replies
 * are queued on the socket before the front-end's call (which then finds them), and the requests
 * the call sent are read back afterwards, descriptors included.
 */
import { close, setNonBlocking } from '../../src/sys/fd.js';
import { AF_UNIX, SOCK_STREAM, receiveMessage, sendMessage } from '../../src/sys/unix-socket.js';
import { FLAG_REPLY, HEADER_SIZE, VERSION, decodeHeader, encodeU64, type Header } from '../../src/vhost-user/protocol.js';
import { SHUT_WR, shutdown, socketPair } from '../helpers/host-bindings.js';

export interface ReceivedRequest extends Header {
  readonly payload: Uint8Array;
  readonly fds: readonly number[];
}

export class FakeBackend {
  readonly frontendFd: number;
  readonly fd: number;
  private closed = false;

  constructor() {
    [this.frontendFd, this.fd] = socketPair(AF_UNIX, SOCK_STREAM);
    setNonBlocking(this.fd);
  }

  /** Queues raw bytes (and descriptors) for the front-end to read. */
  raw(bytes: Uint8Array, fds: readonly number[] = []): void {
    const r = sendMessage(this.fd, bytes, fds);
    if (r !== bytes.length) throw new Error(`fake back-end: sent ${r} of ${bytes.length}`);
  }

  /** Queues a reply to `request`: the header says `size` (default: the payload's length). */
  reply(request: number, payload: Uint8Array = new Uint8Array(0), options: { flags?: number; size?: number; fds?: readonly number[] } = {}): void {
    const bytes = new Uint8Array(HEADER_SIZE + payload.length);
    const v = new DataView(bytes.buffer);
    v.setUint32(0, request, true);
    v.setUint32(4, options.flags ?? VERSION | FLAG_REPLY, true);
    v.setUint32(8, options.size ?? payload.length, true);
    bytes.set(payload, HEADER_SIZE);
    this.raw(bytes, options.fds);
  }

  replyU64(request: number, value: bigint): void {
    this.reply(request, encodeU64(value));
  }

  /** Reads the next request the front-end sent (it must be there already). */
  next(): ReceivedRequest {
    const fds: number[] = [];
    const header = decodeHeader(this.read(HEADER_SIZE, fds));
    const payload = header.size === 0 ? new Uint8Array(0) : this.read(header.size, fds);
    return { ...header, payload, fds };
  }

  /** Nothing more is waiting from the front-end. */
  idle(): boolean {
    const r = receiveMessage(this.fd, new Uint8Array(1));
    return r === -11;
  }

  private read(length: number, fds: number[]): Uint8Array {
    const bytes = new Uint8Array(length);
    let got = 0;
    while (got < length) {
      const r = receiveMessage(this.fd, bytes.subarray(got));
      if (typeof r === 'number' || r.bytes === 0) throw new Error(`fake back-end: read failed (${typeof r === 'number' ? r : 'EOF'})`);
      fds.push(...r.fds);
      got += r.bytes;
    }
    return bytes;
  }

  /** The front-end reads EOF after what is queued, but can still send. */
  endWrites(): void {
    shutdown(this.fd, SHUT_WR);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    close(this.fd);
  }
}
