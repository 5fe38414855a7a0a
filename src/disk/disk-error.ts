/**
 * The one error class of src/disk: a disk the user named cannot be used.
 * Every message is one line that names the disk; vm.ts maps the kinds to
 * exit statuses (a host conflict, 'locked', or a host failure, 'io', is 4;
 * everything the user can fix in the command line or the file is 2).
 */

export type DiskErrorKind =
  /** A malformed -d/--disk argument. */
  | 'bad-option'
  /** The path does not exist. */
  | 'missing'
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

export class DiskError extends Error {
  constructor(
    readonly kind: DiskErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'DiskError';
  }

  /** The documented exit status: 4 for host conflicts and failures, 2 for what the user can fix. */
  get exitStatus(): number {
    return this.kind === 'locked' || this.kind === 'io' ? 4 : 2;
  }
}
