/** Which offloads virtio-net offers for a TAP, and what TUNSETOFFLOAD gets for the guest's choice. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { TUN_F_CSUM, TUN_F_TSO4, TUN_F_TSO6, TUN_F_TSO_ECN, TUN_F_UFO, TUN_F_USO4, TUN_F_USO6 } from '../../../../src/sys/tun-abi.js';
import { GUEST_OFFLOAD_FEATURES, offeredFeatures, receivesLargeFrames, tunOffloads } from '../../../../src/virtio/devices/net/offloads.js';
import * as S from '../../../../src/virtio/devices/net/spec.js';
import { featureBit as bit } from '../../../../src/virtio/virtio-constants.js';

const has = (features: bigint, feature: number): boolean => (features & bit(feature)) !== 0n;

test('a TAP that takes no offloads: transmit offloads still, no receive offloads', () => {
  const f = offeredFeatures(0);
  for (const feature of [S.VIRTIO_NET_F_CSUM, S.VIRTIO_NET_F_HOST_TSO4, S.VIRTIO_NET_F_HOST_TSO6, S.VIRTIO_NET_F_HOST_ECN, S.VIRTIO_NET_F_MRG_RXBUF, S.VIRTIO_NET_F_MAC, S.VIRTIO_NET_F_STATUS, S.VIRTIO_NET_F_CTRL_VQ]) {
    assert.ok(has(f, feature), `feature ${feature}`);
  }
  assert.is(f & GUEST_OFFLOAD_FEATURES, 0n);
  assert.not.ok(has(f, S.VIRTIO_NET_F_HOST_UFO));
});

test('receive offloads follow what the TAP accepted', () => {
  const f = offeredFeatures(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6);
  assert.ok(has(f, S.VIRTIO_NET_F_GUEST_CSUM) && has(f, S.VIRTIO_NET_F_GUEST_TSO4) && has(f, S.VIRTIO_NET_F_GUEST_TSO6));
  assert.not.ok(has(f, S.VIRTIO_NET_F_GUEST_ECN) || has(f, S.VIRTIO_NET_F_GUEST_UFO) || has(f, S.VIRTIO_NET_F_GUEST_USO4));
  const all = offeredFeatures(TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO6 | TUN_F_TSO_ECN | TUN_F_UFO | TUN_F_USO4 | TUN_F_USO6);
  for (const feature of [S.VIRTIO_NET_F_GUEST_ECN, S.VIRTIO_NET_F_GUEST_UFO, S.VIRTIO_NET_F_HOST_UFO, S.VIRTIO_NET_F_GUEST_USO4, S.VIRTIO_NET_F_GUEST_USO6, S.VIRTIO_NET_F_HOST_USO]) {
    assert.ok(has(all, feature), `feature ${feature}`);
  }
});

test('TUNSETOFFLOAD gets only what the guest accepted, with the spec dependencies', () => {
  const g = (...features: number[]): bigint => features.reduce((a, f) => a | bit(f), 0n);
  assert.is(tunOffloads(0n), 0);
  assert.is(tunOffloads(g(S.VIRTIO_NET_F_GUEST_TSO4)), 0, 'no segmentation without checksum offload');
  assert.is(tunOffloads(g(S.VIRTIO_NET_F_GUEST_CSUM)), TUN_F_CSUM);
  assert.is(tunOffloads(g(S.VIRTIO_NET_F_GUEST_CSUM, S.VIRTIO_NET_F_GUEST_TSO6)), TUN_F_CSUM | TUN_F_TSO6);
  assert.is(tunOffloads(g(S.VIRTIO_NET_F_GUEST_CSUM, S.VIRTIO_NET_F_GUEST_ECN)), TUN_F_CSUM, 'ECN only with TSO');
  assert.is(tunOffloads(g(S.VIRTIO_NET_F_GUEST_CSUM, S.VIRTIO_NET_F_GUEST_TSO4, S.VIRTIO_NET_F_GUEST_ECN)), TUN_F_CSUM | TUN_F_TSO4 | TUN_F_TSO_ECN);
  assert.is(tunOffloads(g(S.VIRTIO_NET_F_GUEST_CSUM, S.VIRTIO_NET_F_GUEST_USO4)), TUN_F_CSUM, 'the TAP takes USO for both IP versions or neither');
  assert.is(tunOffloads(g(S.VIRTIO_NET_F_GUEST_CSUM, S.VIRTIO_NET_F_GUEST_USO4, S.VIRTIO_NET_F_GUEST_USO6)), TUN_F_CSUM | TUN_F_USO4 | TUN_F_USO6);
  assert.ok(receivesLargeFrames(TUN_F_CSUM | TUN_F_TSO4));
  assert.not.ok(receivesLargeFrames(TUN_F_CSUM));
});

test.run();
