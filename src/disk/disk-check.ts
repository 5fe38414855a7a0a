/**
 * The checks of a disk the user named that need no open fd: it exists, is a
 * file or block device, may be read (and written, without ,ro), is not empty,
 * and is named once. Config validation runs them before KVM is touched;
 * openDiskImage runs them again just before it opens the image.
 */
import { accessSync, constants, realpathSync, statSync, type Stats } from 'node:fs';
import path from 'node:path';
import { fileErrorReason, systemError } from '../base/error-exit.js';
import { DiskError } from './disk-error.js';
import type { DiskSpec } from './disk-spec.js';

export const SECTOR = 512;

/** Throws the DiskError (status 2) for a path that cannot be a disk as asked; returns its stat. */
export function checkDiskPath(spec: DiskSpec): Stats {
  const what = `disk ${spec.path}`;
  const stat = statOrThrow(what, spec.path);
  if (!stat.isFile() && !stat.isBlockDevice()) {
    const kind = stat.isDirectory() ? 'a directory' : 'not a regular file or block device';
    throw new DiskError('not-a-disk', `${what}: ${kind}`);
  }
  try {
    accessSync(spec.path, constants.R_OK);
  } catch {
    throw new DiskError('permission', `${what}: permission denied`);
  }
  // Root passes access(W_OK) on a 0444 file; a file nobody may write is still meant to stay as it is.
  if (!spec.readOnly) {
    const denied = !(stat.mode & 0o222) ? 'EACCES' : writeDenied(spec.path);
    if (denied === 'EROFS') throw new DiskError('read-only', `${what}: on a read-only filesystem; add ,ro to attach it read-only`);
    if (denied) throw new DiskError('read-only', `${what}: the file is read-only; add ,ro to attach it read-only`);
  }
  if (stat.isFile() && stat.size < SECTOR) {
    throw new DiskError('empty', `${what}: ${stat.size === 0 ? 'file is empty' : `smaller than one ${SECTOR}-byte sector`}`);
  }
  return stat;
}

/** Each image once: two names of one file (a link, another path) would be two writers of one image. */
export function checkDistinctDisks(specs: readonly DiskSpec[]): void {
  const seen = new Set<string>();
  for (const spec of specs) {
    const where = realPath(spec.path);
    if (seen.has(where)) throw new DiskError('bad-option', `disk ${spec.path} is named twice`);
    seen.add(where);
  }
}

export function realPath(file: string): string {
  try {
    return realpathSync(file);
  } catch {
    return path.resolve(file);
  }
}

function statOrThrow(what: string, file: string): Stats {
  try {
    return statSync(file);
  } catch (error) {
    const system = systemError(error);
    switch (system?.code) {
      case 'ENOENT':
      case 'ENOTDIR':
        throw new DiskError('missing', `${what}: no such file`, { cause: error });
      case 'EACCES':
        throw new DiskError('permission', `${what}: permission denied`, { cause: error });
      case 'ELOOP':
      case 'ENAMETOOLONG':
        throw new DiskError('bad-path', `${what}: ${fileErrorReason(system)}`, { cause: error });
      default:
        throw new DiskError('io', `${what}: ${system ? fileErrorReason(system) : (error as Error).message}`, { cause: error });
    }
  }
}

/** Why access(W_OK) refuses the file (EACCES, EPERM, EROFS), or undefined when it may be written (or failed otherwise: open will tell). */
function writeDenied(file: string): 'EACCES' | 'EPERM' | 'EROFS' | undefined {
  try {
    accessSync(file, constants.W_OK);
    return undefined;
  } catch (error) {
    const code = systemError(error)?.code;
    return code === 'EACCES' || code === 'EPERM' || code === 'EROFS' ? code : undefined;
  }
}
