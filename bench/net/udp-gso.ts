/**
 * A UDP socket inside the benchmark's namespace that sends 64 KiB datagrams
 * with UDP_SEGMENT to the guest's address: the host stack hands each to the
 * TAP as one GSO frame (SKB_GSO_UDP_L4) when the TAP takes USO, which is how
 * the receive side meets 64 KiB GSO frames without a TCP peer to answer.
 * (Frames written into an AF_PACKET socket are marked untrusted and would be
 * segmented by the stack before they reach the TAP.)
 */
import { close, writeFd } from '../../src/sys/fd.js';
import { connect, socket } from '../../src/sys/sockets.js';
import { setSocketOption } from '../../test/helpers/host-bindings.js';
import type { NetNamespace } from '../../test/helpers/netns.js';
import { ipBytes } from '../../test/helpers/packets.js';

const AF_INET = 2;
const SOCK_DGRAM = 2;
const SOL_UDP = 17;
const UDP_SEGMENT = 103;
const SOL_SOCKET = 1;
const SO_SNDBUF = 7;
const SIZEOF_SOCKADDR_IN = 16;
/**
 * UDP payload per datagram: 44 segments of 1472 bytes. The whole frame (64,810 bytes) stays
 * under the TAP's gso_max_size (64 KiB): a larger one would be segmented by the stack.
 */
export const UDP_GSO_PAYLOAD = 44 * 1472;

export class UdpGsoSender {
  readonly fd: number;
  private readonly datagram = new Uint8Array(UDP_GSO_PAYLOAD);

  constructor(ns: NetNamespace, destination: string, port: number, segmentSize: number) {
    this.fd = ns.enter(() => socket(AF_INET, SOCK_DGRAM, 0));
    try {
      setSocketOption(this.fd, SOL_UDP, UDP_SEGMENT, segmentSize);
      setSocketOption(this.fd, SOL_SOCKET, SO_SNDBUF, 64 * 2 ** 20);
      const address = new Uint8Array(SIZEOF_SOCKADDR_IN);
      const v = new DataView(address.buffer);
      v.setUint16(0, AF_INET, true);
      v.setUint16(2, port);
      address.set(ipBytes(destination), 4);
      connect(this.fd, address);
    } catch (error) {
      close(this.fd);
      throw error;
    }
  }

  /** Queues `count` datagrams of UDP_GSO_PAYLOAD bytes; returns how many the kernel took. */
  fill(count: number): number {
    let sent = 0;
    for (let i = 0; i < count; i++) if (writeFd(this.fd, this.datagram) === this.datagram.length) sent++;
    return sent;
  }

  close(): void {
    close(this.fd);
  }
}
