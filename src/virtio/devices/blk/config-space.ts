/** The virtio-blk feature bits and configuration space a device offers for its options. */
import { VIRTIO_ID_BLOCK, featureBit } from '../../virtio-constants.js';
import type { VirtioDeviceDescription } from '../../virtio-device.js';
import { DeviceCounters } from '../../device-counters.js';
import {
  BLK_COUNTERS,
  blkDataPlaneQueues,
  BLK_DISCARD_ALIGNMENT_SECTORS,
  BLK_DEFAULT_QUEUE_SIZE,
  BLK_MAX_DWZ_SECTORS,
  BLK_MAX_DWZ_SEGMENTS,
  BLK_SIZE_MAX,
  type BlkOptions,
} from './options.js';
import * as S from './spec.js';

export interface BlkDescription {
  readonly features: bigint;
  readonly config: Uint8Array;
  readonly capacitySectors: number;
  readonly segMax: number;
  readonly blockSize: number;
}

export function describeBlk(options: BlkOptions): BlkDescription {
  const queueSize = options.queueSize ?? BLK_DEFAULT_QUEUE_SIZE;
  const capacitySectors = Math.floor(options.sizeBytes / S.VIRTIO_BLK_SECTOR_SIZE);
  // Without indirect descriptors the header and the status take two ring entries (QEMU's rule).
  const segMax = queueSize - 2;
  const blockSize = options.direct ? Math.max(S.VIRTIO_BLK_SECTOR_SIZE, options.directOffsetAlign ?? 0) : S.VIRTIO_BLK_SECTOR_SIZE;
  let features =
    featureBit(S.VIRTIO_BLK_F_SIZE_MAX) |
    featureBit(S.VIRTIO_BLK_F_SEG_MAX) |
    featureBit(S.VIRTIO_BLK_F_BLK_SIZE) |
    featureBit(S.VIRTIO_BLK_F_FLUSH) |
    featureBit(S.VIRTIO_BLK_F_MQ);
  if (options.readOnly) features |= featureBit(S.VIRTIO_BLK_F_RO);
  else features |= featureBit(S.VIRTIO_BLK_F_DISCARD) | featureBit(S.VIRTIO_BLK_F_WRITE_ZEROES);

  const config = new Uint8Array(S.BLK_CONFIG_SIZE);
  const v = new DataView(config.buffer);
  v.setBigUint64(S.BLK_CFG_CAPACITY, BigInt(capacitySectors), true);
  v.setUint32(S.BLK_CFG_SIZE_MAX, BLK_SIZE_MAX, true);
  v.setUint32(S.BLK_CFG_SEG_MAX, segMax, true);
  v.setUint32(S.BLK_CFG_BLK_SIZE, blockSize, true);
  v.setUint16(S.BLK_CFG_NUM_QUEUES, options.queues, true);
  if (!options.readOnly) {
    v.setUint32(S.BLK_CFG_MAX_DISCARD_SECTORS, BLK_MAX_DWZ_SECTORS, true);
    v.setUint32(S.BLK_CFG_MAX_DISCARD_SEG, BLK_MAX_DWZ_SEGMENTS, true);
    v.setUint32(S.BLK_CFG_DISCARD_SECTOR_ALIGNMENT, Math.max(BLK_DISCARD_ALIGNMENT_SECTORS, blockSize / 512), true);
    v.setUint32(S.BLK_CFG_MAX_WRITE_ZEROES_SECTORS, BLK_MAX_DWZ_SECTORS, true);
    v.setUint32(S.BLK_CFG_MAX_WRITE_ZEROES_SEG, BLK_MAX_DWZ_SEGMENTS, true);
    v.setUint8(S.BLK_CFG_WRITE_ZEROES_MAY_UNMAP, 1);
  }
  return { features, config, capacitySectors, segMax, blockSize };
}

/**
 * What a virtio-blk device with these options offers (the kind's describe): its queues, split
 * among data-plane threads by blkDataPlaneQueues, features and configuration space. It checks the
 * options the way the device's constructor does, so a bad one fails on the main thread, not where
 * a data-plane thread would fail to start.
 */
export function describeVirtioBlk(options: BlkOptions): VirtioDeviceDescription {
  if (!Number.isInteger(options.queues) || options.queues < 1 || options.queues > 0xffff) {
    throw new RangeError(`virtio-blk ${options.name}: ${options.queues} queues`);
  }
  const dataPlaneQueues = blkDataPlaneQueues(options.queues);
  if (options.counters && DeviceCounters.lanesIn(options.counters, BLK_COUNTERS) < dataPlaneQueues.length) {
    throw new RangeError(`virtio-blk ${options.name}: counters need ${dataPlaneQueues.length} lanes (one per data-plane thread)`);
  }
  const queueSize = options.queueSize ?? BLK_DEFAULT_QUEUE_SIZE;
  const { features, config } = describeBlk(options);
  return {
    deviceType: VIRTIO_ID_BLOCK,
    queueMaxSizes: Array.from({ length: options.queues }, () => queueSize),
    features,
    configSpace: config,
    dataPlaneQueues,
  };
}
