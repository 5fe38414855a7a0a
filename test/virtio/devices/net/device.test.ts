/**
 * virtio-net through the host-side driver harness, against a real TAP in a
 * network namespace this test creates: the "guest" exchanges frames with the
 * namespace's own network stack (ARP, ICMP, TCP with segmentation offload).
 */
import { spawn } from 'node:child_process';
import { createInterface } from 'node:readline';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import * as S from '../../../../src/virtio/devices/net/spec.js';
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6 } from '../../../../src/sys/tun-abi.js';
import * as V from '../../../../src/virtio/virtio-constants.js';
import { ALL_FEATURES, GUEST_IP, GUEST_MAC, HOST_IP, NetBed, PLAIN_FEATURES, RX, TX, type BedOptions, type ReceivedFrame } from './net-bed.js';
import {
  BROADCAST_MAC,
  ETHERTYPE_ARP,
  ETHERTYPE_IPV4,
  IPPROTO_ICMP,
  IPPROTO_TCP,
  IPPROTO_UDP,
  TCP_ACK,
  TCP_PSH,
  TCP_SYN,
  arp,
  ethernet,
  icmpEcho,
  ipBytes,
  ipv4,
  onesSum,
  parseFrame,
  tcp,
  vnetHeader,
} from '../../../helpers/packets.js';

const bit = V.featureBit;

/** Runs body with a fresh bed; skips (once, with the reason) where namespaces or TUN are unavailable. */
async function withBed(options: BedOptions, body: (bed: NetBed) => Promise<void>): Promise<void> {
  const bed = await NetBed.create(options);
  // Never pass by skipping: without a namespace and a TAP the virtio-net tests fail with the reason.
  if (typeof bed === 'string') throw new Error(`virtio-net tests need a network namespace with a TAP: ${bed}`);
  try {
    await body(bed);
  } finally {
    await bed.close();
  }
}

const noHeader = vnetHeader();
const isIcmpReply = (f: ReceivedFrame): boolean => parseFrame(f.frame).icmp?.type === 0;

function ping(bed: NetBed, sequence: number, data: Uint8Array): void {
  bed.send(ethernet(bed.hostMac, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST_IP, HOST_IP, IPPROTO_ICMP, icmpEcho(8, 0x4b56, sequence, data))), noHeader);
}

/** Tells the host where the guest is, so replies need no ARP round first. */
function addNeighbour(bed: NetBed): void {
  bed.ns.ip('neigh', 'replace', GUEST_IP, 'lladdr', '52:54:00:12:34:56', 'dev', bed.tap.name, 'nud', 'permanent');
}

test('features and configuration space: MAC, link up, offloads the TAP accepts', async () => {
  await withBed({}, async (bed) => {
    const offered = bed.device.features;
    for (const feature of [
      S.VIRTIO_NET_F_MAC,
      S.VIRTIO_NET_F_STATUS,
      S.VIRTIO_NET_F_MRG_RXBUF,
      S.VIRTIO_NET_F_CSUM,
      S.VIRTIO_NET_F_GUEST_CSUM,
      S.VIRTIO_NET_F_HOST_TSO4,
      S.VIRTIO_NET_F_HOST_TSO6,
      S.VIRTIO_NET_F_GUEST_TSO4,
      S.VIRTIO_NET_F_GUEST_TSO6,
      S.VIRTIO_NET_F_CTRL_VQ,
      S.VIRTIO_NET_F_CTRL_GUEST_OFFLOADS,
    ]) {
      assert.ok(offered & bit(feature), `feature ${feature} offered`);
    }
    assert.not.ok(offered & bit(S.VIRTIO_NET_F_MQ), 'no multi-queue yet');
    // What the transport offers on the device's behalf (the driver sees these too).
    const transport = bed.h.state.deviceFeatures;
    for (const feature of [V.VIRTIO_F_VERSION_1, V.VIRTIO_F_RING_EVENT_IDX, V.VIRTIO_F_RING_INDIRECT_DESC]) {
      assert.ok(transport & bit(feature), `transport feature ${feature} offered`);
    }
    const config = bed.h.state.config;
    assert.equal(Array.from(config.subarray(0, 6)), Array.from(GUEST_MAC));
    assert.is(config[S.VIRTIO_NET_CONFIG_STATUS]! & S.VIRTIO_NET_S_LINK_UP, S.VIRTIO_NET_S_LINK_UP);
    assert.is(bed.device.queueMaxSizes.length, 3, 'receiveq0, transmitq0, controlq');
  });
});

test('ARP: a request from the guest gets the host kernel reply', async () => {
  await withBed({}, async (bed) => {
    bed.postRx(16, 4096);
    bed.send(ethernet(BROADCAST_MAC, GUEST_MAC, ETHERTYPE_ARP, arp(1, GUEST_MAC, GUEST_IP, new Uint8Array(6), HOST_IP)), noHeader);
    assert.equal(await bed.transmitted(1), [{ id: 0, len: 0 }]);
    const frames = await bed.receive((fs) => fs.some((f) => parseFrame(f.frame).arp?.op === 2));
    const reply = frames.map((f) => parseFrame(f.frame)).find((p) => p.arp?.op === 2);
    assert.ok(reply, `an ARP reply among ${frames.length} frame(s)`);
    assert.equal(Array.from(reply.dst), Array.from(GUEST_MAC));
    assert.equal(Array.from(reply.arp!.senderMac), Array.from(bed.hostMac));
    assert.is(reply.arp!.senderIp, HOST_IP);
    assert.is(reply.arp!.targetIp, GUEST_IP);
    const stats = await bed.countersWhen((c) => c.txFrames >= 1 && c.rxFrames >= 1);
    assert.is(stats.txFrames, 1);
    assert.ok(stats.rxFrames >= 1);
  });
});

test('ICMP: an echo request to the host is answered, checksums intact', async () => {
  await withBed({}, async (bed) => {
    addNeighbour(bed);
    bed.postRx(16, 4096);
    const data = Uint8Array.from({ length: 56 }, (_, i) => i);
    ping(bed, 1, data);
    const frames = await bed.receive((fs) => fs.some(isIcmpReply));
    const reply = frames.map((f) => parseFrame(f.frame)).find((p) => p.icmp?.type === 0);
    assert.ok(reply, 'an echo reply');
    assert.is(reply.ip!.src, HOST_IP);
    assert.is(reply.ip!.dst, GUEST_IP);
    assert.ok(reply.ip!.headerChecksumOk);
    assert.ok(reply.icmp!.checksumOk);
    assert.is(reply.icmp!.id, 0x4b56);
    assert.is(reply.icmp!.sequence, 1);
    assert.equal(Array.from(reply.icmp!.data), Array.from(data));
  });
});


const CLIENT_PORT = 40000;

interface Connection {
  readonly port: number;
  seq: number;
  ack: number;
  readonly serverIsn: number;
}

function segment(bed: NetBed, c: { port: number; seq: number; ack: number }, flags: number, extra: { mss?: number; payload?: Uint8Array; partialChecksum?: boolean } = {}): Uint8Array {
  return ethernet(
    bed.hostMac,
    GUEST_MAC,
    ETHERTYPE_IPV4,
    ipv4(GUEST_IP, HOST_IP, IPPROTO_TCP, tcp({ src: GUEST_IP, dst: HOST_IP, srcPort: CLIENT_PORT, dstPort: c.port, seq: c.seq, ack: c.ack, flags, ...extra })),
  );
}

/** A three-way handshake with the server on HOST_IP:port, played by hand. */
async function connect(bed: NetBed, port: number): Promise<Connection> {
  const isn = 0x1000;
  bed.send(segment(bed, { port, seq: isn, ack: 0 }, TCP_SYN, { mss: 1460 }), noHeader);
  const frames = await bed.receive((fs) => fs.some((f) => parseFrame(f.frame).tcp?.flags === (TCP_SYN | TCP_ACK)));
  const synAck = frames.map((f) => parseFrame(f.frame).tcp).find((t) => t?.flags === (TCP_SYN | TCP_ACK));
  assert.ok(synAck, 'SYN-ACK from the host');
  assert.is(synAck.ack, isn + 1);
  const c = { port, seq: isn + 1, ack: (synAck.seq + 1) >>> 0, serverIsn: synAck.seq };
  bed.send(segment(bed, c, TCP_ACK), noHeader);
  return c;
}

const pattern = (length: number, offset = 0): Uint8Array => Uint8Array.from({ length }, (_, i) => (i + offset) % 251);

test('TSO: a 43800-byte TCP segment from the guest (HOST_TSO4, partial checksum) reaches the host socket', async () => {
  await withBed({}, async (bed) => {
    addNeighbour(bed);
    bed.postRx(64, 4096);
    const server = await bed.server(5001, 'sink');
    const c = await connect(bed, 5001);
    const payload = pattern(43800);
    const headers = S.ETH_HLEN + 20 + 20;
    bed.send(
      segment(bed, c, TCP_ACK | TCP_PSH, { payload, partialChecksum: true }),
      vnetHeader({
        flags: S.VIRTIO_NET_HDR_F_NEEDS_CSUM,
        gsoType: S.VIRTIO_NET_HDR_GSO_TCPV4,
        hdrLen: headers,
        gsoSize: 1460,
        csumStart: S.ETH_HLEN + 20,
        csumOffset: 16,
      }),
    );
    const deadline = Date.now() + 3000;
    while (server.received() < payload.length && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
    assert.is(server.received(), payload.length, 'every byte reached the server socket');
    const stats = await bed.countersWhen((c) => c.txBytes >= payload.length);
    assert.is(stats.txDroppedHeader + stats.txErrors, 0);
    assert.ok(stats.txBytes >= payload.length);
  });
});

/** A UDP socket on the host side of the TAP that reports each datagram's length and first byte. */
async function udpSink(bed: NetBed, port: number): Promise<{ datagrams: Array<{ length: number; first: number }>; stop(): void }> {
  const script = `
    const socket = require('node:dgram').createSocket('udp4');
    socket.on('message', (m) => console.log('dgram ' + m.length + ' ' + m[0]));
    socket.bind(${port}, ${JSON.stringify(HOST_IP)}, () => console.log('listening'));
    setTimeout(() => process.exit(0), 20000).unref();`;
  const child = spawn('ip', [...bed.ns.execPrefix, process.execPath, '-e', script]);
  const datagrams: Array<{ length: number; first: number }> = [];
  let listening = false;
  createInterface({ input: child.stdout }).on('line', (line) => {
    if (line === 'listening') listening = true;
    const m = /^dgram (\d+) (\d+)$/.exec(line);
    if (m) datagrams.push({ length: Number(m[1]), first: Number(m[2]) });
  });
  const deadline = Date.now() + 5000;
  while (!listening) {
    if (Date.now() > deadline || child.exitCode !== null) throw new Error('the UDP sink did not start');
    await new Promise((r) => setTimeout(r, 5));
  }
  return { datagrams, stop: () => child.kill() };
}

test('USO: one 8-segment UDP frame from the guest (HOST_USO, partial checksum) reaches the host socket as 8 datagrams, in order', async () => {
  await withBed({}, async (bed) => {
    assert.ok(bed.negotiated & bit(S.VIRTIO_NET_F_HOST_USO), 'HOST_USO negotiated (the TAP takes USO)');
    addNeighbour(bed);
    const port = 5003;
    const sink = await udpSink(bed, port);
    try {
      const segmentSize = 1000;
      const segments = 8;
      const payload = new Uint8Array(segmentSize * segments).map((_, i) => Math.floor(i / segmentSize) + 1);
      // UDP header: length and checksum as Linux leaves them for UDP GSO: the whole super-datagram's
      // length, the checksum field holding the pseudo-header sum (NEEDS_CSUM).
      const udp = new Uint8Array(8 + payload.length);
      const v = new DataView(udp.buffer);
      v.setUint16(0, 40001);
      v.setUint16(2, port);
      v.setUint16(4, udp.length);
      udp.set(payload, 8);
      const pseudo = new Uint8Array(12);
      pseudo.set(ipBytes(GUEST_IP), 0);
      pseudo.set(ipBytes(HOST_IP), 4);
      pseudo[9] = IPPROTO_UDP;
      new DataView(pseudo.buffer).setUint16(10, udp.length);
      v.setUint16(6, onesSum(pseudo));
      bed.send(
        ethernet(bed.hostMac, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST_IP, HOST_IP, IPPROTO_UDP, udp)),
        vnetHeader({
          flags: S.VIRTIO_NET_HDR_F_NEEDS_CSUM,
          gsoType: S.VIRTIO_NET_HDR_GSO_UDP_L4,
          hdrLen: S.ETH_HLEN + 20 + 8,
          gsoSize: segmentSize,
          csumStart: S.ETH_HLEN + 20,
          csumOffset: 6,
        }),
      );
      const deadline = Date.now() + 3000;
      while (sink.datagrams.length < segments && Date.now() < deadline) await new Promise((r) => setTimeout(r, 5));
      // Segmented by the host. (A partial-checksum frame delivered locally is not verified: this
      // checks the segmentation, not the checksum.)
      assert.equal(
        sink.datagrams,
        Array.from({ length: segments }, (_, i) => ({ length: segmentSize, first: i + 1 })),
      );
      const stats = bed.stats.snapshot();
      assert.is(stats.txDroppedHeader + stats.txErrors, 0);
    } finally {
      sink.stop();
    }
  });
});

/** Receives `length` bytes the server sends, acknowledging as it goes; returns the frames seen. */
async function download(bed: NetBed, c: Connection, length: number, bufferSize: number): Promise<{ data: Uint8Array; frames: ReceivedFrame[] }> {
  const data = new Uint8Array(length);
  const seen: ReceivedFrame[] = [];
  let contiguous = 0;
  const deadline = Date.now() + 5000;
  while (contiguous < length && Date.now() < deadline) {
    const frames = await bed.receive((fs) => fs.length > 0, 200);
    let buffers = 0;
    for (const f of frames) {
      buffers += f.lengths.length;
      seen.push(f);
      const t = parseFrame(f.frame).tcp;
      if (!t || t.payload.length === 0) continue;
      const offset = (t.seq - c.serverIsn - 1) >>> 0;
      if (offset + t.payload.length <= length) data.set(t.payload, offset);
      if (offset <= contiguous) contiguous = Math.max(contiguous, offset + t.payload.length);
    }
    if (buffers > 0) bed.postRx(buffers, bufferSize);
    if (frames.length > 0) bed.send(segment(bed, { ...c, ack: (c.serverIsn + 1 + contiguous) >>> 0 }, TCP_ACK), noHeader);
  }
  return { data, frames: seen };
}

test('receive with mergeable buffers: host TCP data arrives as GSO frames over 1536-byte buffers', async () => {
  await withBed({}, async (bed) => {
    addNeighbour(bed);
    assert.is(bed.stats.get('tapOffloads') & (TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
    bed.postRx(128, 1536);
    await bed.server(5002, 'source', 60000);
    const c = await connect(bed, 5002);
    const { data, frames } = await download(bed, c, 60000, 1536);
    assert.equal(data, pattern(60000), 'the bytes arrive intact and in place');
    const gso = frames.filter((f) => f.header.gsoType === S.VIRTIO_NET_HDR_GSO_TCPV4);
    assert.ok(gso.length > 0, 'at least one GSO frame');
    assert.ok(gso.some((f) => f.lengths.length > 1 && f.header.numBuffers === f.lengths.length), 'a frame spread over several buffers, num_buffers saying how many');
    assert.ok(gso.every((f) => f.header.flags & S.VIRTIO_NET_HDR_F_NEEDS_CSUM), 'GSO frames come with a partial checksum');
    assert.ok(Math.max(...frames.map((f) => f.frame.length)) > 1514);
  });
});

test('without receive offloads the host segments and checksums for the guest (TUNSETOFFLOAD 0)', async () => {
  await withBed({ features: PLAIN_FEATURES }, async (bed) => {
    addNeighbour(bed);
    assert.is(bed.stats.get('tapOffloads'), 0);
    bed.postRx(128, 1536);
    await bed.server(5003, 'source', 30000);
    const c = await connect(bed, 5003);
    const { data, frames } = await download(bed, c, 30000, 1536);
    assert.equal(data, pattern(30000));
    assert.ok(frames.every((f) => f.frame.length <= 1514 && f.header.gsoType === 0 && f.header.flags === 0 && f.header.numBuffers === 1));
    for (const f of frames) {
      const p = parseFrame(f.frame);
      if (!p.tcp || !p.ip) continue;
      // A complete TCP checksum: the ones' complement sum over pseudo-header and segment is 0xffff.
      const pseudo = new Uint8Array(12);
      pseudo.set(f.frame.subarray(26, 34), 0);
      pseudo[9] = IPPROTO_TCP;
      new DataView(pseudo.buffer).setUint16(10, p.ip.payload.length);
      let sum = 0;
      for (const bytes of [pseudo, p.ip.payload]) {
        for (let i = 0; i < bytes.length; i += 2) sum += (bytes[i]! << 8) | (bytes[i + 1] ?? 0);
      }
      while (sum > 0xffff) sum = (sum & 0xffff) + (sum >>> 16);
      assert.is(sum, 0xffff, 'TCP checksum complete');
    }
  });
});

test('control queue: GUEST_OFFLOADS_SET switches TAP offloads; offloads not negotiated are refused', async () => {
  await withBed({}, async (bed) => {
    const set = (offloads: bigint): Promise<number> => {
      const data = new Uint8Array(8);
      new DataView(data.buffer).setBigUint64(0, offloads, true);
      return bed.control(S.VIRTIO_NET_CTRL_GUEST_OFFLOADS, S.VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET, data);
    };
    assert.is(await set(0n), S.VIRTIO_NET_OK);
    assert.is(bed.stats.get('tapOffloads'), 0);
    assert.is(await set(bit(S.VIRTIO_NET_F_GUEST_CSUM) | bit(S.VIRTIO_NET_F_GUEST_TSO4)), S.VIRTIO_NET_OK);
    assert.is(bed.stats.get('tapOffloads'), TUN_F_CSUM | TUN_F_TSO4);
    assert.is(await set(bit(S.VIRTIO_NET_F_MQ)), S.VIRTIO_NET_ERR, 'not an offload');
    assert.is(await set(bit(S.VIRTIO_NET_F_HOST_TSO4)), S.VIRTIO_NET_ERR, 'not a receive offload');
    assert.is(bed.stats.get('tapOffloads'), TUN_F_CSUM | TUN_F_TSO4, 'a refused command changes nothing');
    assert.is(await bed.control(S.VIRTIO_NET_CTRL_MAC, 1, new Uint8Array(6)), S.VIRTIO_NET_ERR, 'other classes are refused');
    assert.is(bed.stats.get('ctrlCommands'), 5);
    assert.is(bed.stats.get('ctrlErrors'), 3);
  });
});

test('receive only into posted buffers: frames wait in the host, none lost, none claimed', async () => {
  await withBed({}, async (bed) => {
    addNeighbour(bed);
    for (let i = 1; i <= 3; i++) ping(bed, i, pattern(32));
    await bed.transmitted(3);
    await new Promise((r) => setTimeout(r, 100));
    assert.is(bed.rx.usedIndex, 0, 'nothing used without buffers');
    assert.ok(bed.stats.get('rxNoBuffers') >= 1, 'the TAP was left unwatched');
    bed.postRx(8, 1536);
    const frames = await bed.receive((fs) => fs.filter(isIcmpReply).length === 3);
    assert.equal(frames.filter(isIcmpReply).map((f) => parseFrame(f.frame).icmp!.sequence), [1, 2, 3]);
  });
});

test('without MRG_RXBUF a frame larger than the buffer is dropped and counted, the buffer kept', async () => {
  await withBed({ features: PLAIN_FEATURES, mtu: 9000 }, async (bed) => {
    addNeighbour(bed);
    const [head] = bed.postRx(1, 1536);
    ping(bed, 1, pattern(4000));
    const deadline = Date.now() + 2000;
    while (bed.stats.get('rxDroppedOversize') === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    assert.is(bed.stats.get('rxDroppedOversize'), 1);
    assert.is(bed.rx.usedIndex, 0, 'no truncated frame handed over');
    ping(bed, 2, pattern(100));
    const frames = await bed.receive((fs) => fs.some(isIcmpReply));
    const reply = frames.find(isIcmpReply)!;
    assert.is(parseFrame(reply.frame).icmp!.sequence, 2);
    assert.is(bed.rx.usedElement(0).id, head, 'the same buffer took the next frame');
  });
});

test('with MRG_RXBUF a frame larger than the posted buffers waits for more, then arrives whole', async () => {
  await withBed({ mtu: 9000 }, async (bed) => {
    addNeighbour(bed);
    bed.postRx(2, 1536);
    const data = pattern(8000);
    ping(bed, 7, data);
    const deadline = Date.now() + 2000;
    while (bed.stats.get('rxWaitedForBuffers') === 0 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 2));
    assert.is(bed.stats.get('rxWaitedForBuffers'), 1);
    assert.is(bed.rx.usedIndex, 0, 'nothing handed over while the frame is incomplete');
    bed.postRx(8, 1536);
    const frames = await bed.receive((fs) => fs.some(isIcmpReply));
    const reply = frames.find(isIcmpReply)!;
    assert.is(reply.header.numBuffers, 6, '8054 bytes in 1536-byte buffers');
    assert.equal(reply.lengths, [1536, 1536, 1536, 1536, 1536, 374]);
    assert.equal(Array.from(parseFrame(reply.frame).icmp!.data), Array.from(data));
    assert.is(bed.stats.get('rxDroppedOversize') + bed.stats.get('rxDroppedTruncated'), 0);
  });
});

test('any descriptor layout: header and frame apart on transmit, the header split across receive pieces', async () => {
  await withBed({}, async (bed) => {
    addNeighbour(bed);
    bed.postRx(4, 2048, 3);
    const data = pattern(1200);
    bed.send(ethernet(bed.hostMac, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST_IP, HOST_IP, IPPROTO_ICMP, icmpEcho(8, 9, 9, data))), noHeader, true);
    const frames = await bed.receive((fs) => fs.some(isIcmpReply));
    const reply = frames.find(isIcmpReply)!;
    assert.is(reply.header.numBuffers, 1);
    assert.equal(Array.from(parseFrame(reply.frame).icmp!.data), Array.from(data));
  });
});

test('broken transmit chains are dropped and counted; the queue and the thread go on', async () => {
  await withBed({ features: PLAIN_FEATURES }, async (bed) => {
    addNeighbour(bed);
    bed.postRx(8, 1536);
    const frame = ethernet(bed.hostMac, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST_IP, HOST_IP, IPPROTO_ICMP, icmpEcho(8, 1, 1, pattern(8))));
    bed.send(new Uint8Array(4), noHeader); // shorter than an Ethernet header
    bed.send(new Uint8Array(S.NET_MAX_FRAME + 1), noHeader); // larger than any frame
    bed.send(frame, vnetHeader({ flags: S.VIRTIO_NET_HDR_F_NEEDS_CSUM, csumStart: 34, csumOffset: 2 })); // CSUM not negotiated
    bed.send(frame, vnetHeader({ gsoType: S.VIRTIO_NET_HDR_GSO_TCPV4, gsoSize: 1000 })); // HOST_TSO4 not negotiated
    const at = bed.h.allocate(64);
    bed.tx.addChain([{ address: at, length: 64, writable: true }]); // device-writable transmit buffer
    const loop = bed.tx.allocateDescriptors(2);
    bed.tx.writeDescriptor(loop[0]!, { address: at, length: 16, flags: V.VIRTQ_DESC_F_NEXT, next: loop[1]! });
    bed.tx.writeDescriptor(loop[1]!, { address: at, length: 16, flags: V.VIRTQ_DESC_F_NEXT, next: loop[0]! });
    bed.tx.offer(loop[0]!); // a descriptor loop
    bed.h.kick(1);
    ping(bed, 2, pattern(8));
    const used = await bed.transmitted(7);
    assert.is(used.length, 7, 'every chain returned');
    const stats = await bed.countersWhen((c) => c.txDroppedSize + c.txDroppedHeader + c.txDroppedMalformed + c.txFrames >= 7);
    assert.is(stats.txDroppedSize, 2);
    assert.is(stats.txDroppedHeader, 2);
    assert.is(stats.txDroppedMalformed, 2);
    assert.is(stats.txFrames, 1);
    const frames = await bed.receive((fs) => fs.some(isIcmpReply));
    assert.is(parseFrame(frames.find(isIcmpReply)!.frame).icmp!.sequence, 2, 'the good frame still got through');
  });
});

test('unusable receive buffers (device-readable, shorter than the header) are returned empty and counted', async () => {
  await withBed({}, async (bed) => {
    addNeighbour(bed);
    const a = bed.h.allocate(64);
    const readable = bed.rx.addChain([{ address: a, length: 64, writable: false }]);
    const short = bed.rx.addChain([{ address: a, length: 8, writable: true }]);
    bed.h.kick(RX);
    bed.postRx(4, 1536);
    ping(bed, 3, pattern(16));
    const frames = await bed.receive((fs) => fs.some(isIcmpReply));
    assert.ok(frames.some(isIcmpReply));
    assert.equal(bed.rx.usedElement(0), { id: readable, len: 0 });
    assert.equal(bed.rx.usedElement(1), { id: short, len: 0 });
    assert.is(bed.stats.get('rxBadChains'), 2);
  });
});

const TX_BATCH = 64;

/** Posts `count` echo requests (sequence numbers from `first`) on the transmit ring, then kicks once. */
function postPings(bed: NetBed, first: number, count: number): void {
  for (let sequence = first; sequence < first + count; sequence++) {
    const frame = ethernet(bed.hostMac, GUEST_MAC, ETHERTYPE_IPV4, ipv4(GUEST_IP, HOST_IP, IPPROTO_ICMP, icmpEcho(8, 5, sequence, pattern(32))));
    const address = bed.h.allocate(noHeader.length + frame.length);
    bed.h.memory.write(address, noHeader);
    bed.h.memory.write(address + noHeader.length, frame);
    bed.tx.addChain([{ address, length: noHeader.length + frame.length, writable: false }]);
  }
  bed.h.kick(TX);
}

/**
 * The interrupts raised since the previous call. The data-plane thread serves one queue at
 * a time, so once a control command is answered every transmit call before it has
 * returned, its interrupt included: no late signal can be missed. The command asks for no
 * interrupt of its own (NO_INTERRUPT, and with EVENT_IDX a used_event it does not reach).
 */
async function interruptsSinceLastCount(bed: NetBed): Promise<number> {
  const ctrl = bed.ctrl!;
  ctrl.setAvailFlags(V.VIRTQ_AVAIL_F_NO_INTERRUPT);
  ctrl.setUsedEvent(ctrl.usedIndex + 0x8000);
  // A class the device does not support: answered (ERR) without changing anything.
  await bed.control(S.VIRTIO_NET_CTRL_MAC, 1, new Uint8Array(6));
  const { count, isr } = bed.h.takeInterrupts();
  assert.is(isr, count > 0 ? V.VIRTIO_ISR_QUEUE : 0, 'used-buffer interrupts only');
  return count;
}

/** Sends one batch of TX_BATCH echo requests (one kick); returns the interrupts the device raised for it. */
async function interruptsForBatch(bed: NetBed, firstSequence: number): Promise<number> {
  postPings(bed, firstSequence, TX_BATCH);
  assert.is((await bed.transmitted(TX_BATCH)).length, TX_BATCH, 'every chain of the batch used');
  return interruptsSinceLastCount(bed);
}

/** Posts receive buffers and expects one echo reply for each of the `count` requests sent. */
async function expectReplies(bed: NetBed, count: number): Promise<void> {
  bed.postRx(count, 1536);
  const frames = await bed.receive((fs) => fs.filter(isIcmpReply).length === count);
  const sequences = frames.filter(isIcmpReply).map((f) => parseFrame(f.frame).icmp!.sequence);
  assert.equal(sequences.sort((a, b) => a - b), Array.from({ length: count }, (_, i) => i), 'one reply per request');
  assert.is(bed.stats.get('txFrames'), count);
}

// The batch tests post no receive buffer until the end: the replies wait in the host, so every
// interrupt counted is the transmit queue's (all queues share the one line).

test('transmit in batches: 64 frames posted before one kick all go out, one interrupt at most', async () => {
  await withBed({}, async (bed) => {
    assert.ok(bed.has(V.VIRTIO_F_RING_EVENT_IDX), 'EVENT_IDX negotiated');
    addNeighbour(bed);
    assert.is(await interruptsSinceLastCount(bed), 0, 'no interrupt before anything is sent');
    // used_event inside the batch: one interrupt for the whole batch, not one per frame.
    bed.tx.setUsedEvent(TX_BATCH / 2);
    assert.is(await interruptsForBatch(bed, 0), 1, 'used_event passed: exactly one interrupt');
    // used_event beyond the next batch: the driver wants none for it.
    bed.tx.setUsedEvent(3 * TX_BATCH);
    assert.is(await interruptsForBatch(bed, TX_BATCH), 0, 'used_event not reached: no interrupt');
    await expectReplies(bed, 2 * TX_BATCH);
  });
});

test('transmit in batches without EVENT_IDX: one interrupt per batch, none while the driver sets NO_INTERRUPT', async () => {
  await withBed({ features: ALL_FEATURES & ~bit(V.VIRTIO_F_RING_EVENT_IDX) }, async (bed) => {
    assert.not.ok(bed.has(V.VIRTIO_F_RING_EVENT_IDX), 'EVENT_IDX not negotiated');
    addNeighbour(bed);
    assert.is(await interruptsSinceLastCount(bed), 0, 'no interrupt before anything is sent');
    bed.tx.setAvailFlags(0);
    assert.is(await interruptsForBatch(bed, 0), 1, 'interrupts wanted: exactly one for the batch');
    bed.tx.setAvailFlags(V.VIRTQ_AVAIL_F_NO_INTERRUPT);
    assert.is(await interruptsForBatch(bed, TX_BATCH), 0, 'NO_INTERRUPT: none');
    await expectReplies(bed, 2 * TX_BATCH);
  });
});

test('reset turns the TAP offloads off and stops reading; a new driver starts afresh', async () => {
  await withBed({}, async (bed) => {
    assert.ok(bed.stats.get('tapOffloads') & TUN_F_TSO4);
    bed.h.reset();
    assert.is(bed.stats.get('tapOffloads'), 0);
    const offered = bed.h.negotiate(ALL_FEATURES);
    assert.ok(offered & bit(S.VIRTIO_NET_F_MRG_RXBUF));
    bed.h.setupQueue(RX, 64);
    bed.h.setupQueue(1, 64);
    bed.h.setupQueue(2, 64);
    bed.h.driverOk();
    await new Promise((r) => setTimeout(r, 20));
    assert.ok(bed.stats.get('tapOffloads') & TUN_F_TSO4);
  });
});

test.run();
