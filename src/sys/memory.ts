/**
 * Host memory mappings: mmap(2) (anonymous guest RAM and host buffers, or a shared mapping of
 * a KVM fd or an io_uring ring), munmap, madvise hints, an ArrayBuffer view over an address, and
 * memfd_create: anonymous memory with a descriptor, which another process (a vhost-user backend)
 * maps MAP_SHARED to see the same pages.
 */
import koffi from 'koffi';
import { check, hostCallError, libc } from './ffi.js';

const cMmap = libc.func('uint64_t mmap(uint64_t addr, size_t length, int prot, int flags, int fd, int64_t offset)') as (
  addr: number,
  length: number,
  prot: number,
  flags: number,
  fd: number,
  offset: number,
) => number | bigint;
const cMunmap = libc.func('int munmap(uint64_t addr, size_t length)') as (addr: number, length: number) => number;
const cMemfdCreate = libc.func('int memfd_create(const char *name, unsigned int flags)') as (name: string, flags: number) => number;
const cMadvise = libc.func('int madvise(uint64_t addr, size_t length, int advice)') as (
  addr: number,
  length: number,
  advice: number,
) => number;

export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;
export const MAP_PRIVATE = 0x02;
export const MAP_ANONYMOUS = 0x20;
export const MAP_NORESERVE = 0x4000;
export const MAP_POPULATE = 0x8000;
const MAP_FAILED = 2 ** 64 - 1;
export const MADV_DONTFORK = 10;
export const MADV_MERGEABLE = 12;
export const MADV_HUGEPAGE = 14;

/** Maps `length` bytes at an address the kernel picks; returns the address or throws. */
export function mmap(length: number, prot: number, flags: number, fd = -1, offset = 0): number {
  const address = Number(cMmap(0, length, prot, flags, fd, offset));
  if (address === MAP_FAILED || address === -1) throw hostCallError('mmap');
  return address;
}

export function munmap(address: number, length: number): void {
  check('munmap', cMunmap(address, length));
}

export const MFD_CLOEXEC = 0x1;
export const MFD_ALLOW_SEALING = 0x2;

/** memfd_create(2), close-on-exec: an anonymous file of size 0 (size it with ftruncate). */
export function memfdCreate(name: string, flags = 0): number {
  return check(`memfd_create ${name}`, cMemfdCreate(name, flags | MFD_CLOEXEC));
}

/** Maps `length` bytes of `fd` from `offset`, readable and writable, shared with every other mapping of it. */
export function mapShared(fd: number, length: number, offset = 0): number {
  return mmap(length, PROT_READ | PROT_WRITE, MAP_SHARED, fd, offset);
}

/** Advice is best effort: a kernel without KSM still runs the VM. */
export function madvise(address: number, length: number, advice: number): boolean {
  return cMadvise(address, length, advice) === 0;
}

/** An ArrayBuffer over host memory at address (no copy). */
export function view(address: number, length: number): ArrayBuffer {
  return koffi.view(address, length) as ArrayBuffer;
}
