/**
 * Linux's TUN/TAP userspace ABI (linux/if_tun.h, linux/if.h): ioctl numbers,
 * TUNSETIFF flags, TUNSETOFFLOAD bits and struct ifreq, by their kernel names.
 */

const IOC_WRITE = 1;
const IOC_READ = 2;
const TUN_IOC_TYPE = 0x54; // 'T'
const SIZEOF_INT = 4;

function ioc(direction: number, nr: number, size: number): number {
  return direction * 2 ** 30 + size * 2 ** 16 + TUN_IOC_TYPE * 2 ** 8 + nr;
}

export const TUNSETIFF = ioc(IOC_WRITE, 202, SIZEOF_INT);
export const TUNSETPERSIST = ioc(IOC_WRITE, 203, SIZEOF_INT);
export const TUNSETOWNER = ioc(IOC_WRITE, 204, SIZEOF_INT);
export const TUNGETFEATURES = ioc(IOC_READ, 207, SIZEOF_INT);
export const TUNSETOFFLOAD = ioc(IOC_WRITE, 208, SIZEOF_INT);
export const TUNGETIFF = ioc(IOC_READ, 210, SIZEOF_INT);
export const TUNGETVNETHDRSZ = ioc(IOC_READ, 215, SIZEOF_INT);
export const TUNSETVNETHDRSZ = ioc(IOC_WRITE, 216, SIZEOF_INT);

// TUNSETIFF flags (ifr_flags).
export const IFF_TUN = 0x0001;
export const IFF_TAP = 0x0002;
export const IFF_MULTI_QUEUE = 0x0100;
export const IFF_NO_PI = 0x1000;
export const IFF_VNET_HDR = 0x4000;
export const IFF_TUN_EXCL = 0x8000;

// TUNSETOFFLOAD: what the reader of the TAP can take.
/** Unchecksummed frames (VIRTIO_NET_HDR_F_NEEDS_CSUM). */
export const TUN_F_CSUM = 0x01;
export const TUN_F_TSO4 = 0x02;
export const TUN_F_TSO6 = 0x04;
export const TUN_F_TSO_ECN = 0x08;
export const TUN_F_UFO = 0x10;
export const TUN_F_USO4 = 0x20;
export const TUN_F_USO6 = 0x40;

/** struct ifreq on x86-64: char ifr_name[IFNAMSIZ], then a 24-byte union (ifr_flags is its first short). */
export const IFNAMSIZ = 16;
export const SIZEOF_IFREQ = 40;
export const IFREQ_FLAGS = 16;
