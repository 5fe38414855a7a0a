/**
 * virtio-blk inside KVM: the test guest's own virtio-blk driver (test/guest,
 * `test=virtio-blk`) reads and writes a disk given with -d through the real
 * CLI, over virtio-pci (MSI-X and INTx) and virtio-mmio; the host checks the
 * bytes in the image file — also after killing the VMM with SIGKILL the moment
 * the guest's flush completed.
 */
import { spawn } from 'node:child_process';
import { test as uvuTest } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ensureTestGuest } from '../helpers/test-guest.js';
import { CLI, assertKvmUsable, readMetrics, runKvm, type KvmRun } from '../helpers/run-kvm.js';
import { O_RDONLY, close, open } from '../../src/sys/fd.js';
import { pageCacheState } from '../helpers/host-bindings.js';
import { requiresKvm } from '../helpers/kvm-host.js';

/** Every test here boots a VM (skipped where the host has no /dev/kvm). */
const test = requiresKvm(uvuTest);

const guest = ensureTestGuest();
const SECTOR = 512;
const IMAGE_BYTES = 64 * 2 ** 20;
let dir = '';

test.before(async () => {
  await assertKvmUsable();
  dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-blk-guest-'));
});

test.after(() => {
  rmSync(dir, { recursive: true, force: true });
});

function image(name: string, fill?: (offset: number) => number): string {
  const file = path.join(dir, name);
  const bytes = new Uint8Array(IMAGE_BYTES);
  if (fill) for (let i = 0; i < 64 * SECTOR; i++) bytes[i] = fill(i);
  writeFileSync(file, bytes);
  return file;
}

function explain(run: KvmRun): string {
  return `status ${run.status}\nstdout: ${run.stdout}\nstderr: ${run.stderr}`;
}

/** The guest's write pattern: 32-bit little-endian word i of the data is pattern ^ i. */
function assertWords(file: string, sector: number, count: number, pattern: number): void {
  const data = readFileSync(file).subarray(sector * SECTOR, (sector + count) * SECTOR);
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let i = 0; i < data.length / 4; i++) {
    const word = view.getUint32(i * 4, true);
    if (word !== ((pattern ^ i) >>> 0)) assert.unreachable(`word ${i} of sector ${sector} is 0x${word.toString(16)}`);
  }
}

/** 32-bit FNV-1a, as the guest prints it. */
function fnv1a(bytes: Uint8Array): string {
  let h = 0x811c9dc5;
  for (const b of bytes) h = Math.imul(h ^ b, 0x01000193) >>> 0;
  return h.toString(16).padStart(8, '0');
}

for (const [transport, irq] of [['pci', 'msix'], ['pci', 'intx'], ['mmio', 'intx']] as const) {
  test(`${transport} ${irq}: the guest writes, flushes and reads back; the host sees its words in the image`, async () => {
    const file = image(`rw-${transport}-${irq}.img`);
    const run = await runKvm([
      'run', '-k', guest.elf, '--transport', transport, '-d', file,
      '-p', `test=virtio-blk transport=${transport} irq=${irq} sector=2048 count=16 pattern=0x1234abcd`,
    ]);
    assert.is(run.status, 1, explain(run));
    assert.match(run.stdout, 'virtio-blk: capacity 131072 sectors blk_size 512');
    assert.match(run.stdout, 'virtio-blk: wrote 16 sectors at 2048');
    assert.match(run.stdout, 'virtio-blk: flushed');
    assert.match(run.stdout, 'virtio-blk: verify ok');
    assertWords(file, 2048, 16, 0x1234abcd);
  });
}

test('kvm run killed with SIGKILL right after the guest\'s flush completed: the image holds what the guest wrote', async () => {
  const file = image('sigkill.img');
  const vmm = spawn(process.execPath, [
    CLI, 'run', '-k', guest.elf, '-d', file,
    '-p', 'test=virtio-blk transport=pci irq=msix op=write flush=1 sector=4096 count=64 pattern=0x600dda7a then=spin',
  ], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  vmm.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<NodeJS.Signals | null>((resolve) => vmm.on('exit', (_code, signal) => resolve(signal)));
  try {
    // The guest prints "flushed" once the device answered its FLUSH, then spins: the VMM is alive.
    await new Promise<void>((resolve, reject) => {
      vmm.stdout.on('data', (d: Buffer) => {
        stdout += d.toString();
        if (stdout.includes('virtio: spinning')) resolve();
      });
      void exited.then(() => reject(new Error(`kvm exited before the guest's flush completed\nstdout: ${stdout}\nstderr: ${stderr}`)));
      setTimeout(() => reject(new Error(`no flush from the guest in 30 s\nstdout: ${stdout}`)), 30_000);
    });
    assert.match(stdout, 'virtio-blk: wrote 64 sectors at 4096');
    assert.match(stdout, 'virtio-blk: flushed');
    // Nothing the guest wrote may still wait in the host's page cache for writeback.
    const fd = open(file, O_RDONLY);
    const cache = pageCacheState(fd, 0, IMAGE_BYTES);
    close(fd);
    if (!cache) throw new Error('cachestat(2) is unavailable: cannot tell whether flushed data left the page cache');
    assert.is(cache.dirty, 0, 'dirty pages after the flush completed');
    assert.is(cache.writeback, 0, 'pages under writeback after the flush completed');
  } finally {
    vmm.kill('SIGKILL');
  }
  assert.is(await exited, 'SIGKILL');
  assertWords(file, 4096, 64, 0x600dda7a);
});

test('the guest reads what the host put in the image (checksum and first bytes)', async () => {
  const fill = (i: number): number => (i * 37 + (i >> 9)) & 0xff;
  const file = image('known.img', fill);
  const run = await runKvm(['run', '-k', guest.elf, '-d', file, '-p', 'test=virtio-blk transport=pci irq=msix op=read sector=3 count=8']);
  assert.is(run.status, 1, explain(run));
  const expected = readFileSync(file).subarray(3 * SECTOR, 11 * SECTOR);
  const first = Buffer.from(expected.subarray(0, 16)).toString('hex');
  assert.match(run.stdout, `virtio-blk: read 8 sectors at 3 fnv ${fnv1a(expected)} first ${first}`);
});

test('GET_ID returns the serial given with -d …,serial=', async () => {
  const file = image('id.img');
  const run = await runKvm(['run', '-k', guest.elf, '--transport', 'mmio', '-d', `${file},serial=kvm-test-disk1`, '-p', 'test=virtio-blk transport=mmio irq=intx op=getid']);
  assert.is(run.status, 1, explain(run));
  assert.match(run.stdout, 'virtio-blk: id kvm-test-disk1');
});

test('--metrics counts what the guest asked of the disk', async () => {
  const file = image('metrics.img');
  const metrics = path.join(dir, 'metrics.json');
  const read = await runKvm(['run', '-k', guest.elf, '-d', file, '--metrics', metrics, '-p', 'test=virtio-blk transport=pci irq=msix op=read sector=3 count=8']);
  assert.is(read.status, 1, explain(read));
  const counters = readMetrics(metrics).devices['virtio-blk:vda']!;
  assert.is(counters.reads, 1);
  assert.is(counters.readBytes, 8 * SECTOR);
  assert.is(counters.writes, 0);
  const pastEnd = await runKvm(['run', '-k', guest.elf, '-d', file, '--metrics', metrics, '-p', 'test=virtio-blk transport=pci irq=msix op=read sector=131072 count=1']);
  assert.is(pastEnd.status, 3, explain(pastEnd));
  const after = readMetrics(metrics).devices['virtio-blk:vda']!;
  assert.is(after.ioErrors, 1);
  assert.is(after.reads, 0);
});

test('requests on queue 1 are served and counted by the second data-plane thread (both transports)', async () => {
  for (const [transport, irq] of [['pci', 'msix'], ['mmio', 'intx']] as const) {
    const file = image(`queue1-${transport}.img`);
    const metrics = path.join(dir, `queue1-${transport}.json`);
    // Two vCPUs: one queue each by default, so two data-plane threads.
    const run = await runKvm(['run', '-k', guest.elf, '-c', '2', '--transport', transport, '-d', file, '--metrics', metrics, '-p', `test=virtio-blk transport=${transport} irq=${irq} op=read sector=3 count=8 queue=1`]);
    assert.is(run.status, 1, explain(run));
    assert.match(run.stdout, 'virtio-blk: requests on queue 1 of 2');
    // Queue 1's interrupts come on its own MSI-X entry (entry 0 is configuration changes).
    if (transport === 'pci') assert.match(run.stdout, /virtio: queue 1 size \d+ \(max \d+\) desc 0x[0-9a-f]+ notify 0x[0-9a-f]+ msix entry 2\n/);
    assert.match(run.stdout, 'virtio-blk: read 8 sectors at 3');
    const { devices, dataPlaneThreads } = readMetrics(metrics);
    const threads = dataPlaneThreads['virtio-blk:vda']!;
    assert.is(threads.length, 2, transport);
    assert.equal([threads[0]!.reads, threads[1]!.reads], [0, 1], `${transport}: ${JSON.stringify(threads)}`);
    assert.is(threads[1]!.readBytes, 8 * SECTOR);
    assert.is(devices['virtio-blk:vda']!.reads, 1, 'the device total sums the threads');
  }
});

test('a read past the end of the disk is IOERR to the guest', async () => {
  const file = image('end.img');
  const run = await runKvm(['run', '-k', guest.elf, '-d', file, '-p', 'test=virtio-blk transport=pci irq=msix op=read sector=131072 count=1']);
  assert.is(run.status, 3, explain(run));
  assert.match(run.stdout, 'virtio-blk: FAILED read request at sector 131072: status 1 (IOERR)');
});

test('a read-only disk refuses the guest\'s write with IOERR and stays unchanged', async () => {
  const file = image('ro.img');
  chmodSync(file, 0o444);
  const run = await runKvm(['run', '-k', guest.elf, '-d', `${file},ro`, '-p', 'test=virtio-blk transport=pci irq=msix op=write sector=8 count=1']);
  assert.is(run.status, 3, explain(run));
  assert.match(run.stdout, /virtio-blk: FAILED write request at sector 8: status 1 \(IOERR\)/);
  assert.ok(readFileSync(file).subarray(0, 64 * SECTOR).every((b) => b === 0));
});

test.run();
