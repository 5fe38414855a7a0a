/**
 * The one error class of src/disk: a disk the user named cannot be used.
 * Every message is one line that names the disk; the kind decides the exit
 * status (a host conflict, 'locked', or a host failure, 'io', is 4;
 * everything the user can fix in the command line or the file is 2).
 */
import { EXIT_HOST_ERROR, EXIT_INVALID_ARGUMENTS } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';

export type DiskErrorKind =
  /** A malformed -d/--disk argument. */
  | 'bad-option'
  /** The path does not exist. */
  | 'missing'
  /** The path cannot be resolved: a symbolic link loop (ELOOP), a name too long. */
  | 'bad-path'
  /** A directory, FIFO, socket or character device. */
  | 'not-a-disk'
  /** Smaller than one 512-byte sector. */
  | 'empty'
  /** The file or device may not be opened as asked (permission bits, EACCES, EPERM). */
  | 'permission'
  /** A read-only file or filesystem opened without ,ro. */
  | 'read-only'
  /** Another VMM (or another disk of this VM) holds a conflicting lock. */
  | 'locked'
  /** Any other failure of the host (EIO, O_DIRECT refused, …). */
  | 'io';

export class DiskError extends VmmError<DiskErrorKind> {
  constructor(kind: DiskErrorKind, message: string, options: { cause?: unknown } = {}) {
    super(kind, message, { ...options, status: kind === 'locked' || kind === 'io' ? EXIT_HOST_ERROR : EXIT_INVALID_ARGUMENTS });
  }
}
