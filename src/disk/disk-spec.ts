/**
 * The -d/--disk argument: PATH[,ro][,direct][,serial=ID][,queues=N].
 * Paths containing commas cannot be named (kvmtool's syntax has the same limit).
 */
import { DiskError } from './disk-error.js';

export interface DiskSpec {
  readonly path: string;
  readonly readOnly: boolean;
  readonly direct: boolean;
  /** GET_ID string; by default derived from the path (see defaultSerial). */
  readonly serial?: string;
  /** Request queues; by default one per vCPU. */
  readonly queues?: number;
}

/** Longest device ID virtio-blk carries (VIRTIO_BLK_ID_BYTES). */
export const MAX_SERIAL_BYTES = 20;
/** More queues than this serve no guest better, and each costs MSI-X vectors and memory. */
export const MAX_DISK_QUEUES = 64;

export function parseDiskSpec(text: string): DiskSpec {
  const [path = '', ...options] = text.split(',');
  if (path === '') throw new DiskError('bad-option', `disk "${text}": no path`);
  let readOnly = false;
  let direct = false;
  let serial: string | undefined;
  let queues: number | undefined;
  for (const option of options) {
    const [name, value] = splitOption(option);
    if (name === 'ro' && value === undefined) readOnly = true;
    else if (name === 'direct' && value === undefined) direct = true;
    else if (name === 'serial' && value !== undefined) {
      if (!/^[\x21-\x7e]{1,20}$/.test(value)) {
        throw new DiskError('bad-option', `disk ${path}: serial "${value}" must be 1 to ${MAX_SERIAL_BYTES} printable ASCII characters`);
      }
      serial = value;
    } else if (name === 'queues' && value !== undefined) {
      if (!/^\d+$/.test(value) || Number(value) < 1 || Number(value) > MAX_DISK_QUEUES) {
        throw new DiskError('bad-option', `disk ${path}: queues "${value}" is not a number from 1 to ${MAX_DISK_QUEUES}`);
      }
      queues = Number(value);
    } else {
      throw new DiskError('bad-option', `disk ${path}: unknown option "${option}" (ro, direct, serial=ID, queues=N)`);
    }
  }
  return { path, readOnly, direct, ...(serial !== undefined ? { serial } : {}), ...(queues !== undefined ? { queues } : {}) };
}

function splitOption(option: string): [string, string | undefined] {
  const at = option.indexOf('=');
  return at < 0 ? [option, undefined] : [option.slice(0, at), option.slice(at + 1)];
}

/** The guest's name for the n-th disk: vda, vdb, …, vdz, vdaa, … (as Linux names virtio disks). */
export function diskName(index: number): string {
  let name = '';
  let n = index;
  do {
    name = String.fromCharCode(97 + (n % 26)) + name;
    n = Math.floor(n / 26) - 1;
  } while (n >= 0);
  return `vd${name}`;
}
