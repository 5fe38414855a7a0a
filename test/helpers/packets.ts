/**
 * Just enough of Ethernet, ARP, IPv4, ICMP and TCP to talk to a host's
 * network stack through a TAP from the "guest" side: builders with correct
 * checksums (or the partial one VIRTIO_NET_HDR_F_NEEDS_CSUM expects), a
 * parser for what comes back, and the virtio-net header.
 */
import * as S from '../../src/virtio/devices/net/spec.js';

export const ETHERTYPE_IPV4 = 0x0800;
export const ETHERTYPE_ARP = 0x0806;
export const IPPROTO_ICMP = 1;
export const IPPROTO_TCP = 6;
export const IPPROTO_UDP = 17;
export const TCP_FIN = 0x01;
export const TCP_SYN = 0x02;
export const TCP_RST = 0x04;
export const TCP_PSH = 0x08;
export const TCP_ACK = 0x10;
const IPV4_HEADER = 20;
const TCP_HEADER = 20;
export const BROADCAST_MAC = Uint8Array.of(0xff, 0xff, 0xff, 0xff, 0xff, 0xff);

export function ipBytes(address: string): Uint8Array {
  return Uint8Array.from(address.split('.').map(Number));
}

export function ipString(bytes: Uint8Array): string {
  return Array.from(bytes).join('.');
}

/** Ones' complement sum of 16-bit big-endian words, folded (not inverted). */
export function onesSum(bytes: Uint8Array, initial = 0): number {
  let sum = initial;
  for (let i = 0; i + 1 < bytes.length; i += 2) sum += (bytes[i]! << 8) | bytes[i + 1]!;
  if (bytes.length % 2) sum += bytes[bytes.length - 1]! << 8;
  while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
  return sum;
}

export function checksum(bytes: Uint8Array, initial = 0): number {
  return ~onesSum(bytes, initial) & 0xffff;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

export function ethernet(dst: Uint8Array, src: Uint8Array, type: number, payload: Uint8Array): Uint8Array {
  const header = new Uint8Array(S.ETH_HLEN);
  header.set(dst, 0);
  header.set(src, 6);
  new DataView(header.buffer).setUint16(12, type);
  return concat(header, payload);
}

export function arp(op: 1 | 2, senderMac: Uint8Array, senderIp: string, targetMac: Uint8Array, targetIp: string): Uint8Array {
  const p = new Uint8Array(28);
  const v = new DataView(p.buffer);
  v.setUint16(0, 1); // Ethernet
  v.setUint16(2, ETHERTYPE_IPV4);
  p[4] = 6;
  p[5] = 4;
  v.setUint16(6, op);
  p.set(senderMac, 8);
  p.set(ipBytes(senderIp), 14);
  p.set(targetMac, 18);
  p.set(ipBytes(targetIp), 24);
  return p;
}

export function ipv4(src: string, dst: string, protocol: number, payload: Uint8Array, id = 1): Uint8Array {
  const h = new Uint8Array(IPV4_HEADER);
  const v = new DataView(h.buffer);
  h[0] = 0x45;
  v.setUint16(2, IPV4_HEADER + payload.length);
  v.setUint16(4, id);
  v.setUint16(6, 0x4000); // don't fragment
  h[8] = 64;
  h[9] = protocol;
  h.set(ipBytes(src), 12);
  h.set(ipBytes(dst), 16);
  v.setUint16(10, checksum(h));
  return concat(h, payload);
}

export function icmpEcho(type: 0 | 8, id: number, sequence: number, data: Uint8Array): Uint8Array {
  const p = new Uint8Array(8 + data.length);
  const v = new DataView(p.buffer);
  p[0] = type;
  v.setUint16(4, id);
  v.setUint16(6, sequence);
  p.set(data, 8);
  v.setUint16(2, checksum(p));
  return p;
}

function pseudoHeaderSum(src: string, dst: string, protocol: number, length: number): number {
  const p = new Uint8Array(12);
  p.set(ipBytes(src), 0);
  p.set(ipBytes(dst), 4);
  p[9] = protocol;
  new DataView(p.buffer).setUint16(10, length);
  return onesSum(p);
}

export interface TcpSegment {
  readonly src: string;
  readonly dst: string;
  readonly srcPort: number;
  readonly dstPort: number;
  readonly seq: number;
  readonly ack: number;
  readonly flags: number;
  readonly window?: number;
  readonly mss?: number;
  readonly payload?: Uint8Array;
  /** Leave the checksum to the device (NEEDS_CSUM): the field holds the pseudo-header sum, as Linux does. */
  readonly partialChecksum?: boolean;
}

export function tcp(s: TcpSegment): Uint8Array {
  const options = s.mss !== undefined ? Uint8Array.of(2, 4, s.mss >> 8, s.mss & 0xff) : new Uint8Array(0);
  const payload = s.payload ?? new Uint8Array(0);
  const h = new Uint8Array(TCP_HEADER + options.length);
  const v = new DataView(h.buffer);
  v.setUint16(0, s.srcPort);
  v.setUint16(2, s.dstPort);
  v.setUint32(4, s.seq >>> 0);
  v.setUint32(8, s.ack >>> 0);
  h[12] = (h.length / 4) << 4;
  h[13] = s.flags;
  v.setUint16(14, s.window ?? 65535);
  h.set(options, TCP_HEADER);
  const segment = concat(h, payload);
  const pseudo = pseudoHeaderSum(s.src, s.dst, IPPROTO_TCP, segment.length);
  new DataView(segment.buffer).setUint16(16, s.partialChecksum ? pseudo : checksum(segment, pseudo));
  return segment;
}

export interface ParsedFrame {
  readonly dst: Uint8Array;
  readonly src: Uint8Array;
  readonly type: number;
  readonly arp?: { op: number; senderMac: Uint8Array; senderIp: string; targetIp: string };
  readonly ip?: { src: string; dst: string; protocol: number; totalLength: number; headerChecksumOk: boolean; payload: Uint8Array };
  readonly icmp?: { type: number; id: number; sequence: number; checksumOk: boolean; data: Uint8Array };
  readonly tcp?: { srcPort: number; dstPort: number; seq: number; ack: number; flags: number; window: number; mss?: number; payload: Uint8Array };
}

export function parseFrame(frame: Uint8Array): ParsedFrame {
  const v = new DataView(frame.buffer, frame.byteOffset, frame.byteLength);
  const base = { dst: frame.slice(0, 6), src: frame.slice(6, 12), type: v.getUint16(12) };
  const body = frame.subarray(S.ETH_HLEN);
  if (base.type === ETHERTYPE_ARP && body.length >= 28) {
    const a = new DataView(body.buffer, body.byteOffset, 28);
    return {
      ...base,
      arp: { op: a.getUint16(6), senderMac: body.slice(8, 14), senderIp: ipString(body.subarray(14, 18)), targetIp: ipString(body.subarray(24, 28)) },
    };
  }
  if (base.type !== ETHERTYPE_IPV4 || body.length < IPV4_HEADER) return base;
  const ihl = (body[0]! & 0x0f) * 4;
  const bv = new DataView(body.buffer, body.byteOffset, body.byteLength);
  const totalLength = bv.getUint16(2);
  const payload = body.subarray(ihl, Math.min(totalLength, body.length));
  const ip = {
    src: ipString(body.subarray(12, 16)),
    dst: ipString(body.subarray(16, 20)),
    protocol: body[9]!,
    totalLength,
    headerChecksumOk: checksum(body.subarray(0, ihl)) === 0,
    payload,
  };
  const pv = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  if (ip.protocol === IPPROTO_ICMP && payload.length >= 8) {
    return {
      ...base,
      ip,
      icmp: { type: payload[0]!, id: pv.getUint16(4), sequence: pv.getUint16(6), checksumOk: checksum(payload) === 0, data: payload.subarray(8) },
    };
  }
  if (ip.protocol === IPPROTO_TCP && payload.length >= TCP_HEADER) {
    const offset = (payload[12]! >> 4) * 4;
    let mss: number | undefined;
    for (let i = TCP_HEADER; i < offset; ) {
      const kind = payload[i]!;
      if (kind === 0) break;
      if (kind === 1) {
        i++;
        continue;
      }
      if (kind === 2) mss = pv.getUint16(i + 2);
      i += Math.max(2, payload[i + 1]!);
    }
    return {
      ...base,
      ip,
      tcp: {
        srcPort: pv.getUint16(0),
        dstPort: pv.getUint16(2),
        seq: pv.getUint32(4),
        ack: pv.getUint32(8),
        flags: payload[13]!,
        window: pv.getUint16(14),
        ...(mss !== undefined ? { mss } : {}),
        payload: payload.subarray(offset),
      },
    };
  }
  return { ...base, ip };
}

export interface VnetHeader {
  readonly flags: number;
  readonly gsoType: number;
  readonly hdrLen: number;
  readonly gsoSize: number;
  readonly csumStart: number;
  readonly csumOffset: number;
  readonly numBuffers: number;
}

export function vnetHeader(h: Partial<VnetHeader> = {}): Uint8Array {
  const bytes = new Uint8Array(S.VIRTIO_NET_HDR_SIZE);
  const v = new DataView(bytes.buffer);
  v.setUint8(S.VIRTIO_NET_HDR_FLAGS, h.flags ?? 0);
  v.setUint8(S.VIRTIO_NET_HDR_GSO_TYPE, h.gsoType ?? S.VIRTIO_NET_HDR_GSO_NONE);
  v.setUint16(S.VIRTIO_NET_HDR_HDR_LEN, h.hdrLen ?? 0, true);
  v.setUint16(S.VIRTIO_NET_HDR_GSO_SIZE, h.gsoSize ?? 0, true);
  v.setUint16(S.VIRTIO_NET_HDR_CSUM_START, h.csumStart ?? 0, true);
  v.setUint16(S.VIRTIO_NET_HDR_CSUM_OFFSET, h.csumOffset ?? 0, true);
  v.setUint16(S.VIRTIO_NET_HDR_NUM_BUFFERS, h.numBuffers ?? 0, true);
  return bytes;
}

export function parseVnetHeader(bytes: Uint8Array): VnetHeader {
  const v = new DataView(bytes.buffer, bytes.byteOffset, S.VIRTIO_NET_HDR_SIZE);
  return {
    flags: v.getUint8(S.VIRTIO_NET_HDR_FLAGS),
    gsoType: v.getUint8(S.VIRTIO_NET_HDR_GSO_TYPE),
    hdrLen: v.getUint16(S.VIRTIO_NET_HDR_HDR_LEN, true),
    gsoSize: v.getUint16(S.VIRTIO_NET_HDR_GSO_SIZE, true),
    csumStart: v.getUint16(S.VIRTIO_NET_HDR_CSUM_START, true),
    csumOffset: v.getUint16(S.VIRTIO_NET_HDR_CSUM_OFFSET, true),
    numBuffers: v.getUint16(S.VIRTIO_NET_HDR_NUM_BUFFERS, true),
  };
}
