/** The virtio-blk device options for an opened disk image (what crosses to its data-plane thread). */
import type { BlkOptions } from '../virtio/devices/blk/options.js';
import { BlkSharedState } from '../virtio/devices/blk/disk-shared.js';
import type { DiskImage } from '../disk/disk-image.js';
import { MAX_DISK_QUEUES } from '../disk/disk-spec.js';

/** `defaultQueues` (one per vCPU) applies when the disk did not say queues=N. */
export function blkOptionsFor(image: DiskImage, name: string, defaultQueues: number): BlkOptions {
  return {
    name,
    fd: image.fd,
    ...(image.bufferedFd !== undefined ? { bufferedFd: image.bufferedFd } : {}),
    sizeBytes: image.sizeBytes,
    readOnly: image.readOnly,
    direct: image.direct,
    blockDevice: image.blockDevice,
    serial: image.serial,
    queues: image.queues ?? Math.min(Math.max(1, defaultQueues), MAX_DISK_QUEUES),
    ...(image.directMemoryAlign !== undefined ? { directMemoryAlign: image.directMemoryAlign } : {}),
    ...(image.directOffsetAlign !== undefined ? { directOffsetAlign: image.directOffsetAlign } : {}),
    // One per disk, crossing to each of its data-plane threads with the options.
    shared: BlkSharedState.allocate(),
  };
}
