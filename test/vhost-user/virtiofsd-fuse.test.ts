/**
 * The vhost-user data path end to end, without KVM: "guest RAM" is a memfd this process maps
 * shared, a MockSplitQueueDriver plays the guest's virtio-fs driver on its hiprio and request
 * queues, and QEMU's C virtiofsd maps the same memfd, pops the chains, and answers FUSE requests
 * in place: INIT, LOOKUP of a file in the shared directory, OPEN and READ of its bytes.
 * Skipped, with the reason on stderr, where the daemon is absent or this is not root (its
 * sandbox needs namespaces and pivot_root).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { nonBlockingEventfd, drainEventfd, signalEventfd } from '../../src/sys/eventfd.js';
import { close, ftruncate } from '../../src/sys/fd.js';
import { mapShared, memfdCreate, munmap } from '../../src/sys/memory.js';
import { VhostUserFrontend } from '../../src/vhost-user/frontend.js';
import { F_PROTOCOL_FEATURES, ProtocolFeature, bit } from '../../src/vhost-user/protocol.js';
import type { GuestMemory } from '../../src/vmm/guest-memory.js';
import { memoryFromRegions } from '../../src/vmm/guest-ram.js';
import { MockSplitQueueDriver, type DriverBuffer } from '../virtio/mock-driver.js';
import { Virtiofsd, exited, virtiofsdAbsentReason } from './virtiofsd-daemon.js';

const VIRTIO_F_VERSION_1 = 32;

// virtio-fs queues (virtio spec 5.11.2): 0 is hiprio, 1.. are request queues.
const HIPRIO_QUEUE = 0;
const REQUEST_QUEUE = 1;
const QUEUE_SIZE = 64;

// Guest RAM layout: rings low, request and reply buffers above them.
const RAM_SIZE = 4 * 1024 * 1024;
const RING_BASE = [0x1000, 0x4000] as const;
const BUFFER_AREA = 0x10000;
const REPLY_BUFFER = 4096;
const REPLY_TIMEOUT_MS = 5000;

// FUSE opcodes and protocol version (linux/fuse.h, 7.31).
const FUSE_LOOKUP = 1;
const FUSE_OPEN = 14;
const FUSE_READ = 15;
const FUSE_INIT = 26;
const FUSE_KERNEL_VERSION = 7;
const FUSE_KERNEL_MINOR_VERSION = 31;
const FUSE_ROOT_ID = 1n;
const O_RDONLY = 0;

// struct fuse_in_header: len u32 @0, opcode u32 @4, unique u64 @8, nodeid u64 @16, uid u32 @24,
// gid u32 @28, pid u32 @32, padding u32 @36.
const IN_HEADER_SIZE = 40;
// struct fuse_out_header: len u32 @0, error i32 @4, unique u64 @8.
const OUT_HEADER_SIZE = 16;
// struct fuse_init_in: major u32, minor u32, max_readahead u32, flags u32.
const INIT_IN_SIZE = 16;
// struct fuse_init_out: major u32 @0, minor u32 @4, max_readahead u32 @8, flags u32 @12, … max_write u32 @20.
const INIT_OUT_MAJOR = 0;
const INIT_OUT_MINOR = 4;
const INIT_OUT_MAX_WRITE = 20;
// struct fuse_entry_out: nodeid u64 @0, generation u64 @8, entry_valid u64 @16, attr_valid u64 @24,
// entry_valid_nsec u32 @32, attr_valid_nsec u32 @36, struct fuse_attr attr @40 (ino u64 @0, size u64 @8, …).
const ENTRY_OUT_NODEID = 0;
const ENTRY_OUT_ATTR = 40;
const ATTR_SIZE = 8;
const ENTRY_OUT_SIZE = 128;
// struct fuse_open_in: flags u32, unused u32.
const OPEN_IN_SIZE = 8;
// struct fuse_open_out: fh u64 @0, open_flags u32 @8, padding u32 @12.
const OPEN_OUT_FH = 0;
const OPEN_OUT_SIZE = 16;
// struct fuse_read_in: fh u64 @0, offset u64 @8, size u32 @16, read_flags u32 @20, lock_owner u64 @24,
// flags u32 @32, padding u32 @36.
const READ_IN_SIZE = 40;

const CONTENT = 'hello from the host, through virtiofsd and a split queue\n';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

async function waitFor(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await sleep(5);
  }
}

interface FuseReply {
  readonly error: number;
  readonly unique: bigint;
  /** The reply's body, after fuse_out_header. */
  readonly body: DataView;
  readonly bytes: Uint8Array;
}

/** The guest's side of a virtio-fs request queue: lays out FUSE requests and reads the replies. */
class FuseQueue {
  private nextBuffer = BUFFER_AREA;
  private unique = 0n;

  constructor(
    private readonly memory: GuestMemory,
    private readonly driver: MockSplitQueueDriver,
    private readonly kick: number,
    private readonly call: number,
  ) {}

  private allocate(length: number): number {
    const at = this.nextBuffer;
    this.nextBuffer = (at + length + 0xf) & ~0xf;
    if (this.nextBuffer > RAM_SIZE) throw new RangeError('guest RAM exhausted');
    return at;
  }

  /** Posts one request (header + `argument`) with a writable reply buffer, kicks, and waits for the used element. */
  async request(opcode: number, nodeid: bigint, argument: Uint8Array): Promise<FuseReply> {
    const unique = ++this.unique;
    const length = IN_HEADER_SIZE + argument.length;
    const request = this.allocate(length);
    const header = new DataView(new ArrayBuffer(IN_HEADER_SIZE));
    header.setUint32(0, length, true);
    header.setUint32(4, opcode, true);
    header.setBigUint64(8, unique, true);
    header.setBigUint64(16, nodeid, true);
    // uid, gid, pid, padding: 0 (root, as the daemon's own requests would carry)
    this.memory.write(request, new Uint8Array(header.buffer));
    this.memory.write(request + IN_HEADER_SIZE, argument);
    const reply = this.allocate(REPLY_BUFFER);
    this.memory.fill(reply, REPLY_BUFFER, 0xee);
    const buffers: DriverBuffer[] = [
      { address: request, length, writable: false },
      { address: reply, length: REPLY_BUFFER, writable: true },
    ];
    const head = this.driver.addChain(buffers);
    assert.ok(signalEventfd(this.kick), 'kick');

    let used: { id: number; len: number }[] = [];
    await waitFor(
      () => {
        used = this.driver.takeUsed();
        return used.length > 0;
      },
      REPLY_TIMEOUT_MS,
      `the used element for FUSE opcode ${opcode}`,
    );
    assert.is(used.length, 1, 'one used element per request');
    assert.is(used[0]!.id, head, 'the used element names the chain posted');
    const bytes = this.memory.slice(reply, used[0]!.len).slice();
    assert.ok(bytes.length >= OUT_HEADER_SIZE, `reply of ${bytes.length} bytes holds a fuse_out_header`);
    const out = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    assert.is(out.getUint32(0, true), bytes.length, 'fuse_out_header.len is the used length');
    return {
      error: out.getInt32(4, true),
      unique: out.getBigUint64(8, true),
      body: new DataView(bytes.buffer, bytes.byteOffset + OUT_HEADER_SIZE, bytes.length - OUT_HEADER_SIZE),
      bytes: bytes.subarray(OUT_HEADER_SIZE),
    };
  }

  /** Whether the device signalled the call eventfd since the last look (drains it). */
  called(): boolean {
    return drainEventfd(this.call) > 0;
  }
}

function fields(size: number, set: (view: DataView) => void): Uint8Array {
  const view = new DataView(new ArrayBuffer(size));
  set(view);
  return new Uint8Array(view.buffer);
}

const NAME = 'virtiofsd: FUSE INIT, LOOKUP, OPEN and READ over split queues in memfd guest RAM';
const reason = virtiofsdAbsentReason();
if (reason !== undefined) {
  process.stderr.write(`vhost-user: the virtiofsd FUSE test is skipped: ${reason}\n`);
  test.skip(NAME);
} else {
  test(NAME, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-virtiofsd-fuse-'));
    const source = path.join(dir, 'shared');
    mkdirSync(source);
    writeFileSync(path.join(source, 'hello.txt'), CONTENT);
    const expected = readFileSync(path.join(source, 'hello.txt'));
    const socketPath = path.join(dir, 'vhost.sock');

    const memfd = memfdCreate('guest-ram');
    ftruncate(memfd, RAM_SIZE);
    const host = mapShared(memfd, RAM_SIZE);
    const memory = memoryFromRegions([{ guestBase: 0, size: RAM_SIZE, hostAddress: host }]);
    const drivers = RING_BASE.map((base) => MockSplitQueueDriver.create(memory, base, QUEUE_SIZE));
    const kicks = drivers.map(() => nonBlockingEventfd());
    const calls = drivers.map(() => nonBlockingEventfd());

    let daemon: Virtiofsd | undefined;
    let frontend: VhostUserFrontend | undefined;
    try {
      daemon = await Virtiofsd.start(source, socketPath);
      frontend = VhostUserFrontend.connect(socketPath, { timeoutMs: 5000 });

      // Negotiation: VERSION_1, and protocol features with REPLY_ACK so every setup step is acknowledged.
      const features = frontend.getFeatures();
      assert.ok(features & bit(VIRTIO_F_VERSION_1), `VIRTIO_F_VERSION_1 offered (0x${features.toString(16)})`);
      assert.ok(features & bit(F_PROTOCOL_FEATURES), 'VHOST_USER_F_PROTOCOL_FEATURES offered');
      const protocol = frontend.getProtocolFeatures();
      frontend.setProtocolFeatures(protocol & bit(ProtocolFeature.REPLY_ACK));
      frontend.setOwner();
      frontend.setFeatures(bit(VIRTIO_F_VERSION_1) | bit(F_PROTOCOL_FEATURES));

      // Guest RAM: guest address 0 is host address `host` in this process; the daemon maps the memfd.
      frontend.setMemTable([{ guestPhysicalAddress: 0n, size: BigInt(RAM_SIZE), userAddress: BigInt(host), mmapOffset: 0n, fd: memfd }]);
      drivers.forEach((driver, index) => {
        const layout = driver.layout;
        frontend!.setVringNum(index, QUEUE_SIZE);
        frontend!.setVringAddr({
          index,
          flags: 0,
          descriptor: BigInt(host + layout.descTable),
          available: BigInt(host + layout.availRing),
          used: BigInt(host + layout.usedRing),
          log: 0n,
        });
        frontend!.setVringBase(index, 0);
        frontend!.setVringKick(index, kicks[index]);
        frontend!.setVringCall(index, calls[index]);
        frontend!.setVringEnable(index, true);
      });

      const fuse = new FuseQueue(memory, drivers[REQUEST_QUEUE]!, kicks[REQUEST_QUEUE]!, calls[REQUEST_QUEUE]!);

      // FUSE_INIT: the session starts; the daemon answers with its version.
      const init = await fuse.request(
        FUSE_INIT,
        0n,
        fields(INIT_IN_SIZE, (v) => {
          v.setUint32(0, FUSE_KERNEL_VERSION, true);
          v.setUint32(4, FUSE_KERNEL_MINOR_VERSION, true);
          v.setUint32(8, 0x20000, true); // max_readahead
          v.setUint32(12, 0, true); // flags: no optional capabilities
        }),
      );
      assert.is(init.error, 0, `FUSE_INIT error ${init.error}: ${daemon.log}`);
      assert.is(init.unique, 1n);
      assert.is(init.body.getUint32(INIT_OUT_MAJOR, true), FUSE_KERNEL_VERSION);
      assert.ok(init.body.getUint32(INIT_OUT_MINOR, true) >= 1, 'a minor version');
      assert.ok(init.body.getUint32(INIT_OUT_MAX_WRITE, true) > 0, 'a max_write');
      assert.ok(fuse.called(), 'the daemon signalled the call eventfd for the used buffer');

      // FUSE_LOOKUP hello.txt in the root directory.
      const lookup = await fuse.request(FUSE_LOOKUP, FUSE_ROOT_ID, new TextEncoder().encode('hello.txt\0'));
      assert.is(lookup.error, 0, `FUSE_LOOKUP error ${lookup.error}`);
      assert.is(lookup.unique, 2n);
      assert.ok(lookup.bytes.length >= ENTRY_OUT_SIZE, `fuse_entry_out in ${lookup.bytes.length} bytes`);
      const nodeid = lookup.body.getBigUint64(ENTRY_OUT_NODEID, true);
      assert.ok(nodeid !== 0n && nodeid !== FUSE_ROOT_ID, `a node id for hello.txt (${nodeid})`);
      assert.is(lookup.body.getBigUint64(ENTRY_OUT_ATTR + ATTR_SIZE, true), BigInt(expected.length), 'attr.size is the file size');

      // A name that is not there: ENOENT, negated, as FUSE replies carry errors.
      const missing = await fuse.request(FUSE_LOOKUP, FUSE_ROOT_ID, new TextEncoder().encode('absent.txt\0'));
      assert.is(missing.error, -os.constants.errno.ENOENT);

      // FUSE_OPEN read-only, then FUSE_READ the whole file.
      const open = await fuse.request(FUSE_OPEN, nodeid, fields(OPEN_IN_SIZE, (v) => v.setUint32(0, O_RDONLY, true)));
      assert.is(open.error, 0, `FUSE_OPEN error ${open.error}`);
      assert.ok(open.bytes.length >= OPEN_OUT_SIZE, 'fuse_open_out');
      const fh = open.body.getBigUint64(OPEN_OUT_FH, true);

      const read = await fuse.request(
        FUSE_READ,
        nodeid,
        fields(READ_IN_SIZE, (v) => {
          v.setBigUint64(0, fh, true);
          v.setBigUint64(8, 0n, true); // offset
          v.setUint32(16, REPLY_BUFFER - OUT_HEADER_SIZE, true); // size
        }),
      );
      assert.is(read.error, 0, `FUSE_READ error ${read.error}`);
      assert.is(Buffer.from(read.bytes).toString(), expected.toString(), 'the bytes read are the file on the host');

      // Stop both queues: the back-end gives the next available index it would have read.
      assert.is(frontend.getVringBase(HIPRIO_QUEUE), 0, 'nothing went on the hiprio queue');
      assert.is(frontend.getVringBase(REQUEST_QUEUE), 5, 'five requests went on the request queue');
      frontend.reset();
      frontend.close();
      frontend = undefined;
      assert.ok(await exited(daemon.child, 5000), `virtiofsd exits when its front-end goes away: ${daemon.log}`);
    } finally {
      frontend?.close();
      await daemon?.kill();
      for (const fd of [memfd, ...kicks, ...calls]) close(fd);
      munmap(host, RAM_SIZE);
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();
