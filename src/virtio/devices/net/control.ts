/**
 * The control virtqueue (virtio 1.2 §5.1.6.5): each chain is a command —
 * class, command, data (device-readable), then one device-writable ack byte.
 * Only VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET is served (it is the command the
 * offered features imply); anything else is answered VIRTIO_NET_ERR.
 */
import type { DescriptorChain } from '../../descriptor-chain.js';
import type { GuestMemory } from '../../../vmm/guest-memory.js';
import * as S from './spec.js';

export interface ControlHandlers {
  /** Enables exactly these receive offloads (feature bits); false when they cannot be. */
  setGuestOffloads(offloads: bigint): boolean;
}

const OFFLOADS_SIZE = 8;

/** Serves one command; returns the used length (1 with the ack written, 0 for a chain with nowhere to put it). */
export function serveControlCommand(chain: DescriptorChain, memory: GuestMemory, handlers: ControlHandlers): { used: number; ok: boolean } {
  if (chain.error || chain.writableLength < 1) return { used: 0, ok: false };
  const ok = run(chain, memory, handlers);
  chain.writeWritable(memory, 0, Uint8Array.of(ok ? S.VIRTIO_NET_OK : S.VIRTIO_NET_ERR));
  return { used: 1, ok };
}

function run(chain: DescriptorChain, memory: GuestMemory, handlers: ControlHandlers): boolean {
  if (chain.readableLength < S.VIRTIO_NET_CTRL_HDR_SIZE) return false;
  const [commandClass, command] = chain.readReadable(memory, 0, S.VIRTIO_NET_CTRL_HDR_SIZE);
  if (commandClass === S.VIRTIO_NET_CTRL_GUEST_OFFLOADS && command === S.VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET) {
    if (chain.readableLength !== S.VIRTIO_NET_CTRL_HDR_SIZE + OFFLOADS_SIZE) return false;
    const data = chain.readReadable(memory, S.VIRTIO_NET_CTRL_HDR_SIZE, OFFLOADS_SIZE);
    return handlers.setGuestOffloads(new DataView(data.buffer).getBigUint64(0, true));
  }
  return false;
}
