/**
 * The one error class of src/net: a network backend the user named cannot be
 * used. Every message is one line that names the TAP; vm.ts maps the kinds
 * to exit statuses (what the user can fix in the command line is 2, what the
 * host refuses or lacks is 4).
 */

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

export class NetError extends Error {
  constructor(
    readonly kind: NetErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'NetError';
  }

  /** The documented exit status: 2 for what the user can fix, 4 for what the host refuses or lacks. */
  get exitStatus(): number {
    return USER_FIXABLE.has(this.kind) ? 2 : 4;
  }
}
