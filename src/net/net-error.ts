/**
 * The one error class of src/net: a network backend the user named cannot be
 * used. Every message is one line that names the TAP; the kind decides the
 * exit status (what the user can fix in the command line is 2, what the host
 * refuses or lacks is 4).
 */
import { EXIT_HOST_ERROR, EXIT_INVALID_ARGUMENTS } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';

export type NetErrorKind =
  /** A malformed -n/--net argument (unknown key, bad interface name). */
  | 'bad-option'
  /** A MAC address that is malformed, multicast or all zeroes. */
  | 'bad-mac'
  /** No interface by that name, and this process may not create one. */
  | 'missing'
  /** The name belongs to an interface that is not a single-queue TAP (a TUN, a NIC, a multi-queue TAP). */
  | 'not-a-tap'
  /** The TAP exists but belongs to another user (and this process lacks CAP_NET_ADMIN). */
  | 'permission'
  /** Another process (or another --net of this VM) has the TAP open. */
  | 'busy'
  /** /dev/net/tun is missing or cannot be opened. */
  | 'no-tun'
  /** Any other failure of the host. */
  | 'io';

const USER_FIXABLE: ReadonlySet<NetErrorKind> = new Set<NetErrorKind>(['bad-option', 'bad-mac', 'missing', 'not-a-tap']);

export class NetError extends VmmError<NetErrorKind> {
  constructor(kind: NetErrorKind, message: string, options: { cause?: unknown } = {}) {
    super(kind, message, { ...options, status: USER_FIXABLE.has(kind) ? EXIT_INVALID_ARGUMENTS : EXIT_HOST_ERROR });
  }
}
