/**
 * Which offloads the device offers, given what the TAP accepted, and how the
 * guest's receive offloads (negotiated, or later set through the control
 * queue) become TUNSETOFFLOAD bits. Transmit offloads need nothing from the
 * TAP: IFF_VNET_HDR makes the kernel take partial checksums and GSO frames.
 */
import { featureBit } from '../../virtio-constants.js';
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO, TUN_F_USO4, TUN_F_USO6 } from '../../../sys/tun-abi.js';
import * as S from './spec.js';

const bit = featureBit;

/** Feature bits of the receive offloads: the only ones VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET may name. */
export const GUEST_OFFLOAD_FEATURES =
  bit(S.VIRTIO_NET_F_GUEST_CSUM) |
  bit(S.VIRTIO_NET_F_GUEST_TSO4) |
  bit(S.VIRTIO_NET_F_GUEST_TSO6) |
  bit(S.VIRTIO_NET_F_GUEST_ECN) |
  bit(S.VIRTIO_NET_F_GUEST_UFO) |
  bit(S.VIRTIO_NET_F_GUEST_USO4) |
  bit(S.VIRTIO_NET_F_GUEST_USO6);

/** The TAP takes UDP segmentation for both IP versions or for neither. */
const TUN_USO = TUN_F_USO4 | TUN_F_USO6;

/** Receive-side feature → the TUN_F_* bit that lets the TAP hand such frames over. */
const GUEST_TO_TUN: ReadonlyArray<readonly [number, number]> = [
  [S.VIRTIO_NET_F_GUEST_CSUM, TUN_F_CSUM],
  [S.VIRTIO_NET_F_GUEST_TSO4, TUN_F_TSO4],
  [S.VIRTIO_NET_F_GUEST_TSO6, TUN_F_TSO6],
  [S.VIRTIO_NET_F_GUEST_ECN, TUN_F_TSO_ECN],
  [S.VIRTIO_NET_F_GUEST_UFO, TUN_F_UFO],
];

/** Every feature the device offers on a TAP that accepted `tapOffloads` (the transport adds the ring features). */
export function offeredFeatures(tapOffloads: number): bigint {
  let features =
    bit(S.VIRTIO_NET_F_MAC) |
    bit(S.VIRTIO_NET_F_STATUS) |
    bit(S.VIRTIO_NET_F_MRG_RXBUF) |
    bit(S.VIRTIO_NET_F_CTRL_VQ) |
    bit(S.VIRTIO_NET_F_CTRL_GUEST_OFFLOADS) |
    // Transmit: the TAP takes partial checksums and TCP/ECN segmentation from any writer.
    bit(S.VIRTIO_NET_F_CSUM) |
    bit(S.VIRTIO_NET_F_HOST_TSO4) |
    bit(S.VIRTIO_NET_F_HOST_TSO6) |
    bit(S.VIRTIO_NET_F_HOST_ECN);
  // A kernel that takes TUN_F_UFO (TUN_F_USO*) also builds UFO (USO) frames from a writer's header.
  if (tapOffloads & TUN_F_UFO) features |= bit(S.VIRTIO_NET_F_HOST_UFO);
  if ((tapOffloads & TUN_USO) === TUN_USO) {
    features |= bit(S.VIRTIO_NET_F_HOST_USO) | bit(S.VIRTIO_NET_F_GUEST_USO4) | bit(S.VIRTIO_NET_F_GUEST_USO6);
  }
  for (const [feature, tun] of GUEST_TO_TUN) {
    if ((tapOffloads & tun) === tun) features |= bit(feature);
  }
  return features;
}

/**
 * TUN_F_* bits for a set of enabled receive offloads (feature bits), keeping the
 * spec's dependencies (5.1.3.1): segmentation only with checksum offload, ECN only with TSO.
 */
export function tunOffloads(guestOffloads: bigint): number {
  const has = (feature: number): boolean => (guestOffloads & bit(feature)) !== 0n;
  if (!has(S.VIRTIO_NET_F_GUEST_CSUM)) return 0;
  let flags = TUN_F_CSUM;
  if (has(S.VIRTIO_NET_F_GUEST_TSO4)) flags |= TUN_F_TSO4;
  if (has(S.VIRTIO_NET_F_GUEST_TSO6)) flags |= TUN_F_TSO6;
  if (has(S.VIRTIO_NET_F_GUEST_ECN) && flags & (TUN_F_TSO4 | TUN_F_TSO6)) flags |= TUN_F_TSO_ECN;
  if (has(S.VIRTIO_NET_F_GUEST_UFO)) flags |= TUN_F_UFO;
  if (has(S.VIRTIO_NET_F_GUEST_USO4) && has(S.VIRTIO_NET_F_GUEST_USO6)) flags |= TUN_USO;
  return flags;
}

/** Whether frames of the receive offloads can be as large as a GSO frame (else one MTU-size frame). */
export function receivesLargeFrames(tunFlags: number): boolean {
  return (tunFlags & (TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_UFO | TUN_USO)) !== 0;
}
