/**
 * The virtio_net_hdr fields the device writes into a received frame's first
 * buffer: the TAP wrote the header itself (vnet header) but leaves num_buffers
 * alone, so it is set here to the number of buffers the frame took; without
 * GUEST_CSUM the flags must be 0. The header is the driver's once used.idx
 * moves: the receive loop writes it before it publishes the frame's buffers.
 */
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import { VIRTIO_NET_HDR_FLAGS, VIRTIO_NET_HDR_NUM_BUFFERS, VIRTIO_NET_HDR_SIZE } from './spec.js';

/** Completes a header that lies whole at guest `address`. */
export function writeHeader(memory: GuestMemory, address: number, buffers: number, guestCsum: boolean): void {
  memory.writeU16(address + VIRTIO_NET_HDR_NUM_BUFFERS, buffers);
  if (!guestCsum) memory.writeU8(address + VIRTIO_NET_HDR_FLAGS, 0);
}

/** writeHeader for a header anywhere in the pieces [guest address, length, …]. */
export function writeSplitHeader(memory: GuestMemory, pieces: readonly number[], buffers: number, guestCsum: boolean): void {
  if (pieces[1]! >= VIRTIO_NET_HDR_SIZE) {
    writeHeader(memory, pieces[0]!, buffers, guestCsum);
    return;
  }
  const put = (offset: number, bytes: Uint8Array): void => {
    let skip = offset;
    let done = 0;
    for (let i = 0; i < pieces.length && done < bytes.length; i += 2) {
      const length = pieces[i + 1]!;
      if (skip >= length) {
        skip -= length;
        continue;
      }
      const n = Math.min(length - skip, bytes.length - done);
      memory.write(pieces[i]! + skip, bytes.subarray(done, done + n));
      done += n;
      skip = 0;
    }
  };
  put(VIRTIO_NET_HDR_NUM_BUFFERS, Uint8Array.of(buffers & 0xff, buffers >> 8));
  if (!guestCsum) put(VIRTIO_NET_HDR_FLAGS, Uint8Array.of(0));
}
