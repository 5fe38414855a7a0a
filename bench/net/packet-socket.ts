/**
 * An AF_PACKET socket bound to the TAP's interface inside the benchmark's
 * namespace: what it sends is transmitted *on* the TAP, i.e. queued for the
 * TAP's reader (the device, or the raw loop). It fills the TAP's queue
 * before a receive measurement, so no generator competes for the CPU while
 * the reader is timed. With `vnetHeader`, each write starts with a 10-byte
 * struct virtio_net_hdr, which is how a GSO frame is handed in.
 */
import { close, writeFd } from '../../src/sys/fd.js';
import { interfaceIndex, socket } from '../../src/sys/sockets.js';
import { bind, setSocketOption } from '../../test/helpers/host-bindings.js';
import type { NetNamespace } from '../../test/helpers/netns.js';

const AF_PACKET = 17;
const SOCK_RAW = 3;
const SOL_PACKET = 263;
const PACKET_VNET_HDR = 15;
const PACKET_QDISC_BYPASS = 20;
const ETH_P_ALL = 0x0003;
const SIZEOF_SOCKADDR_LL = 20;

export class PacketSocket {
  readonly fd: number;

  constructor(ns: NetNamespace, interfaceName: string, vnetHeader: boolean) {
    const { fd, index } = ns.enter(() => ({
      fd: socket(AF_PACKET, SOCK_RAW, htons(ETH_P_ALL)),
      index: interfaceIndex(interfaceName),
    }));
    this.fd = fd;
    try {
      if (vnetHeader) setSocketOption(fd, SOL_PACKET, PACKET_VNET_HDR, 1);
      setSocketOption(fd, SOL_PACKET, PACKET_QDISC_BYPASS, 1);
      const address = new Uint8Array(SIZEOF_SOCKADDR_LL);
      const v = new DataView(address.buffer);
      v.setUint16(0, AF_PACKET, true);
      v.setUint16(2, htons(ETH_P_ALL), true);
      v.setInt32(4, index, true);
      bind(fd, address);
    } catch (error) {
      close(fd);
      throw error;
    }
  }

  /** Queues `count` copies of `frame` for the TAP's reader; returns how many the kernel took. */
  fill(frame: Uint8Array, count: number): number {
    let sent = 0;
    for (let i = 0; i < count; i++) if (writeFd(this.fd, frame) === frame.length) sent++;
    return sent;
  }

  close(): void {
    close(this.fd);
  }
}

function htons(value: number): number {
  return ((value & 0xff) << 8) | (value >> 8);
}
