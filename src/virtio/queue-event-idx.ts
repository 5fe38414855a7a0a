/** VIRTIO_F_RING_EVENT_IDX arithmetic (virtio 1.2 §2.7.7, §2.7.10). */
import { INDEX_MASK } from './queue-layout.js';

/**
 * vring_need_event: whether moving a ring index from `oldIndex` to `newIndex`
 * passed the other side's event index, i.e. event ∈ [old, new) modulo 2^16.
 * Only meaningful when fewer than 2^16 entries were added in between.
 */
export function vringNeedEvent(eventIndex: number, newIndex: number, oldIndex: number): boolean {
  return ((newIndex - eventIndex - 1) & INDEX_MASK) < ((newIndex - oldIndex) & INDEX_MASK);
}
