/**
 * Opens a disk image for a virtio-blk device on the main thread: checks what
 * the user named, opens it (O_DIRECT with `direct`), takes an
 * open-file-description lock (shared for ,ro, exclusive otherwise, so two
 * VMMs never write one image at once), and measures it. The fds are handed
 * to the device's data-plane thread by number; the lock lives as long as
 * they stay open. With `direct`, the second fd (without O_DIRECT) is opened
 * through /proc/self/fd of the first, so both are always the same file.
 */
import { createHash } from 'node:crypto';
import { fstatSync } from 'node:fs';
import path from 'node:path';
import { O_DIRECT, O_RDONLY, O_RDWR, close, open } from '../sys/fd.js';
import { HostCallError } from '../sys/ffi.js';
import { F_RDLCK, F_WRLCK, directIoAlignment, lockWholeFile } from '../sys/files.js';
import { ioctlBuffer } from '../sys/ioctl.js';
import { EACCES, EAGAIN, errnoName } from '../sys/errno.js';
import { SECTOR, checkDiskPath, checkDistinctDisks, realPath } from './disk-check.js';
import { DiskError } from './disk-error.js';
import type { DiskSpec } from './disk-spec.js';

/** BLKGETSIZE64 = _IOR(0x12, 114, size_t); BLKSSZGET = _IO(0x12, 104). */
const BLKGETSIZE64 = 0x8008_1272;
const BLKSSZGET = 0x1268;
/** O_DIRECT alignment assumed when the kernel does not report it. */
const FALLBACK_DIRECT_ALIGN = 4096;

export interface DiskImage {
  readonly path: string;
  readonly fd: number;
  /** Without O_DIRECT, for ranges O_DIRECT cannot address (direct only). */
  readonly bufferedFd?: number;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  readonly direct: boolean;
  readonly blockDevice: boolean;
  readonly serial: string;
  /** Request queues asked for with queues=N (otherwise the VM's default). */
  readonly queues?: number;
  readonly directMemoryAlign?: number;
  readonly directOffsetAlign?: number;
  close(): void;
}

export function openDiskImage(spec: DiskSpec): DiskImage {
  const what = `disk ${spec.path}`;
  checkDiskPath(spec);

  const access = spec.readOnly ? O_RDONLY : O_RDWR;
  const fd = openOrThrow(what, spec.path, access | (spec.direct ? O_DIRECT : 0), spec.direct);
  const fds = [fd];
  try {
    const locked = lockWholeFile(fd, spec.readOnly ? F_RDLCK : F_WRLCK);
    if (locked < 0) {
      const errno = -locked;
      if (errno === EAGAIN || errno === EACCES) {
        throw new DiskError('locked', `${what}: in use by another VMM (locked${spec.readOnly ? ' for writing' : ''})`);
      }
      throw new DiskError('io', `${what}: cannot lock: ${errnoName(errno)}`);
    }
    const opened = fstatSync(fd);
    const blockDevice = opened.isBlockDevice();
    const sizeBytes = blockDevice ? blockDeviceSize(what, fd) : opened.size;
    if (sizeBytes < SECTOR) throw new DiskError('empty', `${what}: ${sizeBytes === 0 ? 'device is empty' : `smaller than one ${SECTOR}-byte sector`}`);

    let direct: Pick<DiskImage, 'bufferedFd' | 'directMemoryAlign' | 'directOffsetAlign'> = {};
    if (spec.direct) {
      const alignment = directIoAlignment(fd) ?? fallbackAlignment(fd, blockDevice);
      // Through the open fd, never by path again: a path renamed or replaced since the first open
      // would give misaligned writes another file, outside the lock and the flush.
      const bufferedFd = openOrThrow(what, `/proc/self/fd/${fd}`, access, false);
      fds.push(bufferedFd);
      direct = { bufferedFd, directMemoryAlign: alignment.memory, directOffsetAlign: alignment.offset };
    }
    let closed = false;
    return {
      path: spec.path,
      fd,
      ...direct,
      sizeBytes,
      readOnly: spec.readOnly,
      direct: spec.direct,
      blockDevice,
      serial: spec.serial ?? defaultSerial(spec.path),
      ...(spec.queues !== undefined ? { queues: spec.queues } : {}),
      close() {
        if (closed) return;
        closed = true;
        fds.forEach(close);
      },
    };
  } catch (error) {
    fds.forEach(close);
    throw error;
  }
}

/** Opens every disk in order; when one fails, those already open are closed again. */
export function openDisks(specs: readonly DiskSpec[]): DiskImage[] {
  checkDistinctDisks(specs);
  const opened: DiskImage[] = [];
  try {
    for (const spec of specs) opened.push(openDiskImage(spec));
    return opened;
  } catch (error) {
    opened.forEach((image) => image.close());
    throw error;
  }
}

function openOrThrow(what: string, file: string, flags: number, direct: boolean): number {
  try {
    return open(file, flags);
  } catch (error) {
    if (!(error instanceof HostCallError)) throw error;
    switch (error.code) {
      case 'ENOENT':
        throw new DiskError('missing', `${what}: no such file`);
      case 'EACCES':
      case 'EPERM':
        throw new DiskError('permission', `${what}: permission denied`);
      case 'ELOOP':
        throw new DiskError('bad-path', `${what}: too many levels of symbolic links (ELOOP)`, { cause: error });
      case 'ENAMETOOLONG':
        throw new DiskError('bad-path', `${what}: file name too long (ENAMETOOLONG)`, { cause: error });
      case 'EROFS':
        throw new DiskError('read-only', `${what}: on a read-only filesystem; add ,ro to attach it read-only`);
      case 'EINVAL':
        if (direct) throw new DiskError('io', `${what}: the filesystem does not support O_DIRECT (drop ,direct)`);
        throw new DiskError('io', `${what}: cannot open: EINVAL`);
      default:
        throw new DiskError('io', `${what}: cannot open: ${error.code}`);
    }
  }
}

function blockDeviceSize(what: string, fd: number): number {
  const size = new Uint8Array(8);
  try {
    ioctlBuffer(fd, BLKGETSIZE64, 'BLKGETSIZE64', size);
  } catch (error) {
    throw new DiskError('io', `${what}: cannot read the device size: ${(error as Error).message}`);
  }
  const bytes = new DataView(size.buffer).getBigUint64(0, true);
  if (bytes > BigInt(Number.MAX_SAFE_INTEGER)) throw new DiskError('io', `${what}: device larger than 8 PiB`);
  return Number(bytes);
}

function fallbackAlignment(fd: number, blockDevice: boolean): { memory: number; offset: number } {
  if (blockDevice) {
    const sector = new Uint8Array(4);
    try {
      ioctlBuffer(fd, BLKSSZGET, 'BLKSSZGET', sector);
      const bytes = new DataView(sector.buffer).getInt32(0, true);
      if (bytes >= SECTOR) return { memory: bytes, offset: bytes };
    } catch {
      // The conservative default below.
    }
  }
  return { memory: FALLBACK_DIRECT_ALIGN, offset: FALLBACK_DIRECT_ALIGN };
}

/**
 * GET_ID's default: the image's file name (up to 11 characters) and 8 hex digits of a hash of
 * its real path, so two images called rootfs.img in different folders still differ.
 */
export function defaultSerial(file: string): string {
  const real = realPath(file);
  const base = path.basename(real).replace(/[^A-Za-z0-9._-]/g, '_').slice(0, 11);
  const hash = createHash('sha256').update(real).digest('hex').slice(0, 8);
  return base ? `${base}-${hash}` : hash;
}
