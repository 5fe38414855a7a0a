/**
 * bench/net: virtio-net throughput against a raw TAP read/write loop, same
 * TAP, same frames, same run. The device runs in its real data-plane thread
 * behind the real virtio-mmio transport, driven by a host-side driver that
 * behaves like Linux's virtio_net on the rings (bench/net/driver.ts): no
 * guest CPU is in the loop, so the numbers are the data plane's.
 *
 * Everything happens in a network namespace the benchmark creates (and
 * deletes), with the TAP inside it.
 *
 * Transmit: the device (or the raw loop, write(2) per frame on the same fd)
 * sends frames addressed to a MAC nobody has, which the namespace's stack
 * takes and drops at the IP layer — the kernel's cost is the same for both.
 * Receive: before each measurement the TAP's queue is filled with N frames —
 * by an AF_PACKET socket, or for 64 KiB GSO frames by a UDP socket sending
 * with UDP_SEGMENT (bench/net/udp-gso.ts) — while nothing reads it (the
 * device has no buffers posted yet); then the clock runs while the reader —
 * the device, or the raw loop, read(2) per frame — drains them. No
 * generator competes for the CPU.
 *
 * On transmit the 64 KiB frames are TCP TSO frames (HOST_TSO4), on receive
 * UDP USO frames (GUEST_USO4/6): both one 64 KiB GSO frame per write/read.
 *
 * The raw loops run in a thread of their own, as the device's data plane does: a reader on the
 * thread that queued the frames drains them up to a third faster (bench/net/raw-loop.ts).
 *
 * Each round measures raw then device back to back; the table shows the median
 * rate of each and the median of the per-round ratios. A first, unmeasured
 * round with half the frames warms both up (the device's code is compiled by
 * V8 as it runs; every buffer is touched once).
 *
 * Usage: node dist/bench/net.js [--rounds N] [--quick] [--cases 64,1500,gso] [--directions tx,rx]
 *          [--driver-wait halt-poll|sleep]
 */
import { parseArgs } from 'node:util';
import * as S from '../src/virtio/devices/net/spec.js';
import { readFd } from '../src/sys/fd.js';
import { NetBed, TX, RX } from '../test/virtio/devices/net/net-bed.js';
import { ETHERTYPE_IPV4, IPPROTO_TCP, IPPROTO_UDP, TCP_ACK, ethernet, ipv4, tcp, vnetHeader } from '../test/helpers/packets.js';
import { RxBenchDriver, TxBenchDriver, benchBuffers } from './net/driver.js';
import { RawLoopThread } from './net/raw-loop.js';
import { PacketSocket } from './net/packet-socket.js';
import { UDP_GSO_PAYLOAD, UdpGsoSender } from './net/udp-gso.js';
import { parseDriverWait } from './halt-poll.js';

interface Case {
  readonly name: string;
  /** Ethernet frame bytes (no virtio-net header, no FCS). */
  readonly frameBytes: number;
  readonly gso: boolean;
  /** Receive buffer size the driver posts (with MRG_RXBUF, as Linux sizes them). */
  readonly rxBuffer: number;
  readonly txFrames: number;
  readonly rxFrames: number;
  readonly unit: 'pps' | 'Gbps';
}

const CASES: readonly Case[] = [
  { name: '64', frameBytes: 64, gso: false, rxBuffer: 1536, txFrames: 400_000, rxFrames: 200_000, unit: 'pps' },
  { name: '1500', frameBytes: 1514, gso: false, rxBuffer: 1536, txFrames: 200_000, rxFrames: 100_000, unit: 'Gbps' },
  { name: 'gso', frameBytes: S.ETH_HLEN + 20 + 8 + UDP_GSO_PAYLOAD, gso: true, rxBuffer: 4096, txFrames: 20_000, rxFrames: 20_000, unit: 'Gbps' },
];
const GOAL = 0.8;
/** The warm-up round moves this share of a measured round's frames. */
const WARM_UP_SHARE = 0.5;
const QUEUE_SIZE = 1024;
const NOBODY_MAC = Uint8Array.of(0x02, 0x00, 0x00, 0x00, 0x00, 0x99);
const GUEST_MAC = Uint8Array.of(0x52, 0x54, 0x00, 0x12, 0x34, 0x56);

/** A frame of exactly `bytes` bytes: UDP for small ones, TCP (one GSO frame when `gso`) for the 64 KiB one. */
function makeFrame(c: Case, dst: Uint8Array): Uint8Array {
  const ipPayload = c.frameBytes - S.ETH_HLEN - 20;
  if (c.gso) {
    // The same length as the UDP GSO frames received: one TCP TSO frame.
    const segment = tcp({ src: '10.77.0.2', dst: '10.77.0.1', srcPort: 40000, dstPort: 5001, seq: 1, ack: 1, flags: TCP_ACK, payload: new Uint8Array(ipPayload - 20), partialChecksum: true });
    return ethernet(dst, GUEST_MAC, ETHERTYPE_IPV4, ipv4('10.77.0.2', '10.77.0.1', IPPROTO_TCP, segment));
  }
  const udp = new Uint8Array(ipPayload);
  new DataView(udp.buffer).setUint16(4, ipPayload);
  return ethernet(dst, GUEST_MAC, ETHERTYPE_IPV4, ipv4('10.77.0.2', '10.77.0.1', IPPROTO_UDP, udp));
}

function gsoHeader(c: Case): Uint8Array {
  if (!c.gso) return vnetHeader();
  return vnetHeader({
    flags: S.VIRTIO_NET_HDR_F_NEEDS_CSUM,
    gsoType: S.VIRTIO_NET_HDR_GSO_TCPV4,
    hdrLen: S.ETH_HLEN + 40,
    gsoSize: 1448,
    csumStart: S.ETH_HLEN + 20,
    csumOffset: 16,
  });
}

function withHeader(header: Uint8Array, frame: Uint8Array): Uint8Array {
  const out = new Uint8Array(header.length + frame.length);
  out.set(header);
  out.set(frame, header.length);
  return out;
}


/** Reads and discards whatever the TAP still holds. */
function drainTap(fd: number): void {
  const buffer = new Uint8Array(S.VIRTIO_NET_HDR_SIZE + S.NET_MAX_FRAME);
  while (readFd(fd, buffer) > 0);
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)]!;
}

function format(c: Case, rate: number): string {
  return c.unit === 'pps' ? `${(rate / 1e6).toFixed(3)} Mpps` : `${((rate * c.frameBytes * 8) / 1e9).toFixed(2)} Gbps`;
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: { rounds: { type: 'string' }, quick: { type: 'boolean' }, cases: { type: 'string' }, directions: { type: 'string' }, 'driver-wait': { type: 'string' } },
  });
  const wait = parseDriverWait(values['driver-wait']);
  const rounds = Number(values.rounds ?? (values.quick ? 1 : 3));
  const scale = values.quick ? 0.1 : 1;
  const wanted = values.cases?.split(',') ?? CASES.map((c) => c.name);
  const directions = values.directions?.split(',') ?? ['tx', 'rx'];
  const bed = await NetBed.create({ queueSize: QUEUE_SIZE, memoryBytes: 1024 * 2 ** 20 });
  if (typeof bed === 'string') {
    console.error(`bench/net: cannot set up a namespace with a TAP: ${bed}`);
    process.exit(4);
  }
  const results: Array<{ c: Case; direction: string; raw: number; kvm: number; ratio: number }> = [];
  const raw = new RawLoopThread();
  try {
    const fd = bed.tap.fd;
    bed.ns.ip('link', 'set', 'dev', bed.tap.name, 'txqueuelen', '300000');
    const plain = new PacketSocket(bed.ns, bed.tap.name, false);
    bed.ns.ip('neigh', 'replace', '10.77.0.2', 'lladdr', '52:54:00:12:34:56', 'dev', bed.tap.name, 'nud', 'permanent');
    const udp = new UdpGsoSender(bed.ns, '10.77.0.2', 9, 1472);
    const waits = wait === 'halt-poll' ? 'waits for interrupts as a halting KVM vCPU does (halt polling)' : 'sleeps for every interrupt';
    console.log(`bench/net: TAP ${bed.tap.name} in namespace ${bed.ns.name}; ${rounds} round(s); median of rounds; the driver ${waits}`);
    for (const c of CASES.filter((x) => wanted.includes(x.name))) {
      const txCount = Math.ceil(c.txFrames * scale);
      const rxCount = Math.ceil(c.rxFrames * scale);
      const txFrame = withHeader(gsoHeader(c), makeFrame(c, NOBODY_MAC));
      const rxFrame = makeFrame(c, GUEST_MAC);
      const fill = (count: number): number => (c.gso ? udp.fill(count) : plain.fill(rxFrame, count));
      const txBuffers = benchBuffers(bed.h, QUEUE_SIZE, txFrame.length);
      const rxBuffers = benchBuffers(bed.h, QUEUE_SIZE, c.rxBuffer);
      const tx = { raw: [] as number[], kvm: [] as number[] };
      const rx = { raw: [] as number[], kvm: [] as number[] };
      // Round 0 warms up (JIT-compiled code paths, first touch of every buffer) and is not counted.
      for (let round = 0; round <= rounds; round++) {
        const warmUp = round === 0;
        const share = warmUp ? WARM_UP_SHARE : 1;
        const txFrames = Math.ceil(txCount * share);
        if (directions.includes('tx')) {
          bed.activate();
          const r1 = await raw.run({ kind: 'transmit', fd, frame: txFrame, count: txFrames, slots: QUEUE_SIZE });
          const seconds = new TxBenchDriver(bed.h, TX, bed.tx, txFrame, txBuffers, wait).run(txFrames);
          if (!warmUp) {
            tx.raw.push(r1.frames / r1.seconds);
            tx.kvm.push(txFrames / seconds);
          }
        }
        if (!directions.includes('rx')) continue;
        // Receive: the device is active with no buffers posted, so the TAP queue fills untouched.
        bed.activate();
        drainTap(fd);
        const queued = fill(Math.ceil(rxCount * share));
        // Buffers as large as the device's (or as one frame, when a frame takes several of the device's).
        const bufferSize = Math.max(c.rxBuffer, S.VIRTIO_NET_HDR_SIZE + c.frameBytes);
        const buffers = Math.max(1, Math.floor((QUEUE_SIZE * c.rxBuffer) / bufferSize));
        const r2 = await raw.run({ kind: 'receive', fd, count: queued, bufferSize, buffers });
        if (r2.frames !== queued) throw new Error(`raw receive got ${r2.frames} of ${queued} frames`);
        drainTap(fd);
        const queued2 = fill(Math.ceil(rxCount * share));
        const d = new RxBenchDriver(bed.h, RX, bed.rx, c.rxBuffer, rxBuffers, wait).run(queued2);
        if (d.frames !== queued2) throw new Error(`device receive got ${d.frames} of ${queued2} frames`);
        if (!warmUp) {
          rx.raw.push(r2.frames / r2.seconds);
          rx.kvm.push(d.frames / d.seconds);
        }
      }
      // Ratios per round (raw and device measured back to back), then their median: steadier than a
      // ratio of medians when something else on the host comes and goes.
      const ratio = (m: { raw: number[]; kvm: number[] }): number => median(m.kvm.map((k, i) => k / m.raw[i]!));
      if (directions.includes('tx')) results.push({ c, direction: 'tx', raw: median(tx.raw), kvm: median(tx.kvm), ratio: ratio(tx) });
      if (directions.includes('rx')) results.push({ c, direction: 'rx', raw: median(rx.raw), kvm: median(rx.kvm), ratio: ratio(rx) });
    }
    plain.close();
    udp.close();
  } finally {
    let stats: Record<string, number> = {};
    try {
      stats = bed.stats.snapshot();
      await raw.close();
    } finally {
      // The namespace and its TAP go whatever happened before.
      await bed.close();
    }
    const drops = Object.entries(stats).filter(([k, v]) => /Dropped|Errors|BadChains/.test(k) && v > 0);
    if (drops.length) console.log(`device drops/errors: ${drops.map(([k, v]) => `${k}=${v}`).join(' ')}`);
  }
  console.log('');
  console.log('case            dir   raw TAP loop      virtio-net        ratio   goal');
  let ok = true;
  for (const { c, direction, raw, kvm, ratio } of results) {
    ok &&= ratio >= GOAL;
    const label = c.gso ? '64 KiB GSO' : `${c.frameBytes} B`;
    console.log(
      `${label.padEnd(15)} ${direction.padEnd(5)} ${format(c, raw).padEnd(17)} ${format(c, kvm).padEnd(17)} ${(ratio * 100).toFixed(0).padStart(4)}%   ${ratio >= GOAL ? 'ok' : `< ${GOAL * 100}%`}`,
    );
  }
  process.exitCode = ok ? 0 : 1;
}

await main();
