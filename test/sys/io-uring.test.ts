/** The io_uring binding virtio-blk's data plane sits on: every operation it uses, against a real file. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { IoUring } from '../../src/sys/io-uring.js';
import { setIovec } from '../../src/sys/iovec.js';
import { HostBuffer } from '../../src/sys/host-buffer.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, drainEventfd, eventfd } from '../../src/sys/eventfd.js';
import { O_RDWR, close, open } from '../../src/sys/fd.js';
import { FALLOC_FL_KEEP_SIZE, FALLOC_FL_PUNCH_HOLE } from '../../src/sys/files.js';

function scratch(bytes: Uint8Array): { file: string; fd: number; done(): void } {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-uring-'));
  const file = path.join(dir, 'f');
  writeFileSync(file, bytes);
  const fd = open(file, O_RDWR);
  return { file, fd, done: () => (close(fd), rmSync(dir, { recursive: true, force: true })) };
}

test('READV and WRITEV move bytes between the file and scattered host memory; tags come back', () => {
  const f = scratch(new Uint8Array(8192).map((_, i) => i & 0xff));
  const ring = IoUring.create(8);
  const buffer = new HostBuffer(8192);
  const iovecs = new HostBuffer(64);
  try {
    setIovec(iovecs.words, 0, buffer.address + 100, 10);
    setIovec(iovecs.words, 1, buffer.address + 1000, 20);
    ring.readv(f.fd, iovecs.address, 2, 4096, 42, 7);
    assert.is(ring.pending, 1);
    assert.is(ring.submit(1), 1);
    const seen: Array<[number, number, number]> = [];
    assert.is(ring.reap((tag, sub, result) => seen.push([tag, sub, result])), 1);
    assert.equal(seen, [[42, 7, 30]]);
    assert.equal(Array.from(buffer.bytes.subarray(100, 110)), Array.from({ length: 10 }, (_, i) => (4096 + i) & 0xff));
    assert.equal(Array.from(buffer.bytes.subarray(1000, 1020)), Array.from({ length: 20 }, (_, i) => (4106 + i) & 0xff));
    buffer.bytes.fill(0xcd, 0, 512);
    setIovec(iovecs.words, 0, buffer.address, 512);
    ring.writev(f.fd, iovecs.address, 1, 512, 1);
    ring.submit(1);
    ring.reap((_t, _s, result) => assert.is(result, 512));
    assert.ok(readFileSync(f.file).subarray(512, 1024).every((b) => b === 0xcd));
  } finally {
    ring.close();
    buffer.free();
    iovecs.free();
    f.done();
  }
});

test('FSYNC and FALLOCATE (punch hole) complete with 0; errors come back as -errno', () => {
  const f = scratch(new Uint8Array(1 << 20).fill(1));
  const ring = IoUring.create(4);
  try {
    ring.fsync(f.fd, true, 1);
    ring.fallocate(f.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, 0, 1 << 19, 2);
    ring.fallocate(f.fd, 0x7f00, 0, 4096, 3); // no such mode
    ring.submit();
    const results = new Map<number, number>();
    while (results.size < 3) {
      ring.submit(1);
      ring.reap((tag, _s, result) => results.set(tag, result));
    }
    assert.is(results.get(1), 0);
    assert.is(results.get(2), 0);
    assert.ok(results.get(3)! < 0);
    assert.is(statSync(f.file).size, 1 << 20);
    assert.ok(readFileSync(f.file).subarray(0, 1 << 19).every((b) => b === 0));
  } finally {
    ring.close();
    f.done();
  }
});

test('a registered eventfd is signalled by completions; more operations than SQ slots go through in turns', () => {
  const f = scratch(new Uint8Array(4096));
  const ring = IoUring.create(4);
  const efd = eventfd(EFD_CLOEXEC | EFD_NONBLOCK);
  try {
    ring.registerEventfd(efd);
    ring.nop(5);
    ring.submit(1);
    assert.ok(drainEventfd(efd) >= 1);
    let completed = 0;
    for (let i = 0; i < 100; i++) {
      if (ring.sqSpace === 0) ring.submit();
      ring.nop(i);
    }
    while (completed < 101) {
      ring.submit(1);
      completed += ring.reap(() => {});
    }
    assert.is(completed, 101);
    assert.is(ring.ready, 0);
  } finally {
    ring.close();
    close(efd);
    f.done();
  }
});

test.run();
