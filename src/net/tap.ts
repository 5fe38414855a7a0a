/**
 * Opening a TAP for virtio-net (main thread): /dev/net/tun with
 * IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, attached to the named interface or
 * creating it when this process may, a 12-byte vnet header (virtio 1.x
 * always has num_buffers), and a probe of the offloads the TAP accepts so the
 * device offers only those. The fd is non-blocking: the data plane reads it
 * until EAGAIN. Offloads stay off until a driver negotiates them.
 */
import createDebug from 'debug';
import { O_NONBLOCK, O_RDWR, close, open } from '../sys/fd.js';
import { HostCallError } from '../sys/ffi.js';
import { ioctl, ioctlBuffer } from '../sys/ioctl.js';
import { interfaceIndex } from '../sys/sockets.js';
import { EACCES, EBUSY, EINVAL, ENODEV, ENOENT, ENXIO, EPERM, errnoName } from '../sys/errno.js';
import { NetError } from './net-error.js';
import { checkInterfaceName } from './net-spec.js';
import {
  IFF_NO_PI,
  IFF_TAP,
  IFF_VNET_HDR,
  IFNAMSIZ,
  IFREQ_FLAGS,
  SIZEOF_IFREQ,
  TUNGETIFF,
  TUNSETIFF,
  TUNSETOFFLOAD,
  TUNSETVNETHDRSZ,
  TUN_F_CSUM,
  TUN_F_TSO4,
  TUN_F_TSO6,
  TUN_F_TSO_ECN,
  TUN_F_UFO,
  TUN_F_USO4,
  TUN_F_USO6,
} from '../sys/tun-abi.js';

const log = createDebug('kvm:net');

export const TUN_DEVICE = '/dev/net/tun';
/** sizeof(struct virtio_net_hdr_mrg_rxbuf): the header every virtio 1.x driver uses. */
export const TAP_VNET_HDR_SIZE = 12;

export interface OpenTapOptions {
  /** The clone device to open (default /dev/net/tun). */
  readonly tunDevice?: string;
}

export interface OpenedTap {
  readonly fd: number;
  /** The interface name as the kernel reports it. */
  readonly name: string;
  /** True when the interface did not exist: it goes away when the fd is closed. */
  readonly created: boolean;
  /** TUN_F_* bits the TAP accepted in TUNSETOFFLOAD (it is left with none enabled). */
  readonly offloads: number;
}

/** Offload sets tried in turn: TSO needs CSUM, ECN needs TSO, USO comes for both IP versions at once. */
const OFFLOAD_PROBES = [
  TUN_F_CSUM,
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6,
  TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN,
  TUN_F_CSUM | TUN_F_UFO,
  TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6,
];


/** Opens (or creates) TAP `name` for a virtio-net device. Throws NetError. */
export function openTap(name: string, options: OpenTapOptions = {}): OpenedTap {
  checkInterfaceName(name);
  const device = options.tunDevice ?? TUN_DEVICE;
  let fd: number;
  try {
    fd = open(device, O_RDWR | O_NONBLOCK);
  } catch (error) {
    const code = error instanceof HostCallError ? error.errno : 0;
    if (code === ENOENT || code === ENODEV || code === ENXIO) {
      throw new NetError('no-tun', `TAP ${name}: ${device} does not exist (no TUN/TAP support in this kernel?)`);
    }
    if (code === EACCES || code === EPERM) throw new NetError('no-tun', `TAP ${name}: ${device}: permission denied`);
    throw new NetError('io', `TAP ${name}: cannot open ${device}: ${(error as Error).message}`);
  }
  try {
    const existed = interfaceIndex(name) !== 0;
    const ifreq = new Uint8Array(SIZEOF_IFREQ);
    Buffer.from(ifreq.buffer).write(name, 0, IFNAMSIZ - 1, 'utf8');
    new DataView(ifreq.buffer).setUint16(IFREQ_FLAGS, IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, true);
    try {
      ioctlBuffer(fd, TUNSETIFF, 'TUNSETIFF', ifreq);
    } catch (error) {
      throw attachError(name, existed, error);
    }
    const actual = new Uint8Array(SIZEOF_IFREQ);
    ioctlBuffer(fd, TUNGETIFF, 'TUNGETIFF', actual);
    const flags = new DataView(actual.buffer).getUint16(IFREQ_FLAGS, true);
    if (!(flags & IFF_VNET_HDR)) throw new NetError('io', `TAP ${name}: the kernel did not enable IFF_VNET_HDR`);
    const kernelName = Buffer.from(actual.subarray(0, IFNAMSIZ)).toString('utf8').replace(/\0.*$/s, '');
    const headerSize = new Uint8Array(4);
    new DataView(headerSize.buffer).setInt32(0, TAP_VNET_HDR_SIZE, true);
    ioctlBuffer(fd, TUNSETVNETHDRSZ, 'TUNSETVNETHDRSZ', headerSize);
    const offloads = probeOffloads(fd);
    log('TAP %s %s (fd %d), offloads it accepts: 0x%s', kernelName, existed ? 'attached' : 'created', fd, offloads.toString(16));
    return { fd, name: kernelName, created: !existed, offloads };
  } catch (error) {
    close(fd);
    if (error instanceof NetError) throw error;
    throw new NetError('io', `TAP ${name}: ${(error as Error).message}`);
  }
}

function attachError(name: string, existed: boolean, error: unknown): NetError {
  const code = error instanceof HostCallError ? error.errno : 0;
  if (code === EBUSY) return new NetError('busy', `TAP ${name} is busy: another process (or another --net) has it open`);
  if (code === EPERM || code === EACCES) {
    return existed
      ? new NetError('permission', `TAP ${name} belongs to another user (attaching needs its owner or CAP_NET_ADMIN)`)
      : new NetError('missing', `TAP ${name} does not exist, and creating it needs CAP_NET_ADMIN`);
  }
  if (code === EINVAL && existed) return new NetError('not-a-tap', `${name} is not a single-queue TAP device`);
  return new NetError('io', `TAP ${name}: TUNSETIFF failed: ${code ? errnoName(code) : (error as Error).message}`);
}

/** The TUN_F_* bits the TAP accepts; leaves every offload off. */
export function probeOffloads(fd: number): number {
  let accepted = 0;
  for (const set of OFFLOAD_PROBES) {
    if (trySetOffloads(fd, set)) accepted |= set;
  }
  setOffloads(fd, 0);
  return accepted;
}

/** TUNSETOFFLOAD; false when the TAP refuses the set. */
export function trySetOffloads(fd: number, offloads: number): boolean {
  try {
    setOffloads(fd, offloads);
    return true;
  } catch {
    return false;
  }
}

/** TUNSETOFFLOAD: the kernel may hand this fd's reader frames needing these offloads. Throws HostCallError. */
export function setOffloads(fd: number, offloads: number): void {
  ioctl(fd, TUNSETOFFLOAD, 'TUNSETOFFLOAD', offloads);
}
