/** Feature bits every virtio device offers here, whatever the transport. */
import {
  VIRTIO_F_RING_EVENT_IDX,
  VIRTIO_F_RING_INDIRECT_DESC,
  VIRTIO_F_VERSION_1,
  featureBit,
} from '../virtio/virtio-constants.js';

/** Device features plus VERSION_1 (modern only), indirect descriptors and event index. ACCESS_PLATFORM is never offered. */
export function transportFeatures(deviceFeatures: bigint): bigint {
  return (
    deviceFeatures |
    featureBit(VIRTIO_F_VERSION_1) |
    featureBit(VIRTIO_F_RING_INDIRECT_DESC) |
    featureBit(VIRTIO_F_RING_EVENT_IDX)
  );
}
