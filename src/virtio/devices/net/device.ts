/**
 * virtio-net (virtio 1.2 §5.1) over a host TAP.
 *
 * Queues: receiveq0, transmitq0 (one queue pair per TAP fd; VIRTIO_NET_F_MQ
 * would add pairs 1…N-1 before the control queue), then controlq. The
 * data-plane thread watches the kick eventfds and, while the guest has
 * receive buffers posted, the TAP fd (rx.ts, tx.ts).
 *
 * Offloads: transmit offloads (CSUM, HOST_TSO4/6, HOST_ECN, HOST_UFO, HOST_USO) need
 * nothing from the TAP: the kernel takes the header as it is. Receive
 * offloads are what the TAP may hand us, so TUNSETOFFLOAD enables exactly
 * the GUEST_* offloads the driver accepted, at activation (DRIVER_OK) and
 * again at each VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET; a reset turns them off.
 */
import createDebug from 'debug';
import { TUNSETOFFLOAD } from '../../../sys/tun-abi.js';
import { ioctlRaw } from '../../../sys/ioctl.js';
import { QueueError } from '../../queue.js';
import { VIRTIO_ID_NET, featureBit } from '../../virtio-constants.js';
import { defineVirtioDevice, type ActivationContext, type VirtioDevice, type VirtioDeviceDescription } from '../../virtio-device.js';
import { serveControlCommand } from './control.js';
import { GUEST_OFFLOAD_FEATURES, offeredFeatures, receivesLargeFrames, tunOffloads } from './offloads.js';
import { NET_CTRL_QUEUE_SIZE, NET_DEFAULT_QUEUE_SIZE, type NetOptions } from './options.js';
import { ReceiveBuffers, Receiver } from './rx.js';
import * as S from './spec.js';
import { NetStats } from './stats.js';
import { TransmitBuffers, Transmitter } from './tx.js';

interface QueuePair {
  readonly rx: Receiver | undefined;
  readonly tx: Transmitter | undefined;
}

/** What exists only from activate() to reset(). */
interface NetActive {
  readonly context: ActivationContext;
  /** The device-specific features in force. */
  readonly negotiated: bigint;
  readonly pairs: readonly QueuePair[];
}

function has(negotiated: bigint, feature: number): boolean {
  return (negotiated & featureBit(feature)) !== 0n;
}

export class VirtioNet implements VirtioDevice {
  /** The device-specific features offered (describeNet). */
  private readonly features: bigint;
  readonly stats: NetStats;
  private readonly log: createDebug.Debugger;
  private readonly controlQueue: number;
  private active: NetActive | undefined;
  private receiveBuffers: ReceiveBuffers[] = [];
  private transmitBuffers: TransmitBuffers[] = [];

  constructor(private readonly options: NetOptions) {
    this.features = describeNet(options).features;
    this.controlQueue = 2 * options.tapFds.length;
    this.stats = new NetStats(options.stats);
    this.log = createDebug(`kvm:virtio-net:${options.name}`);
  }

  activate(context: ActivationContext): void {
    // The device-specific features in force: a driver cannot enable what was not offered, whatever it wrote.
    const negotiated = context.features & this.features;
    const tunFlags = this.applyOffloads(negotiated & GUEST_OFFLOAD_FEATURES);
    const pairs = this.options.tapFds.map((tapFd, pair) => {
      this.receiveBuffers[pair] ??= new ReceiveBuffers();
      this.transmitBuffers[pair] ??= new TransmitBuffers();
      const rxQueue = context.queues[2 * pair];
      const txQueue = context.queues[2 * pair + 1];
      const common = { memory: context.memory, interrupt: context.interrupt, tapFd, stats: this.stats, log: this.log };
      return {
        rx: rxQueue
          ? new Receiver(
              {
                ...common,
                queue: rxQueue,
                queueIndex: 2 * pair,
                host: context.host,
                mergeable: has(negotiated, S.VIRTIO_NET_F_MRG_RXBUF),
                guestCsum: has(negotiated, S.VIRTIO_NET_F_GUEST_CSUM),
              },
              this.receiveBuffers[pair]!,
              receivesLargeFrames(tunFlags),
            )
          : undefined,
        tx: txQueue ? new Transmitter({ ...common, queue: txQueue, queueIndex: 2 * pair + 1, features: negotiated }, this.transmitBuffers[pair]!) : undefined,
      };
    });
    this.active = { context, negotiated, pairs };
    this.log('activated: features 0x%s, TAP offloads 0x%s', negotiated.toString(16), tunFlags.toString(16));
  }

  queueNotified(queueIndex: number): void {
    if (queueIndex === this.controlQueue) {
      this.serveControlQueue();
      return;
    }
    const pair = this.active?.pairs[queueIndex >> 1];
    if (queueIndex & 1) pair?.tx?.transmit();
    else pair?.rx?.receive();
  }

  /** Enables receive offloads (feature bits) on every TAP; returns the TUN_F_* flags now in force (the receivers are told by the caller). */
  private applyOffloads(guestOffloads: bigint): number {
    let flags = tunOffloads(guestOffloads);
    for (const fd of this.options.tapFds) {
      const r = ioctlRaw(fd, TUNSETOFFLOAD, flags);
      if (r < 0) {
        // Fewer offloads than negotiated is always safe for the guest; more never is.
        this.log('TUNSETOFFLOAD 0x%s refused (errno %d): receive offloads off', flags.toString(16), -r);
        flags = 0;
        for (const other of this.options.tapFds) ioctlRaw(other, TUNSETOFFLOAD, 0);
        break;
      }
    }
    this.stats.set('tapOffloads', flags);
    return flags;
  }

  private serveControlQueue(): void {
    const active = this.active;
    const queue = active?.context.queues[this.controlQueue];
    if (!active || !queue || !has(active.negotiated, S.VIRTIO_NET_F_CTRL_VQ)) return;
    const context = active.context;
    let served = 0;
    do {
      queue.disableNotifications();
      for (let chain = queue.pop(); chain; chain = queue.pop()) {
        let result = { used: 0, ok: false };
        try {
          result = serveControlCommand(chain, context.memory, {
            setGuestOffloads: (offloads) => this.setGuestOffloads(active, offloads),
          });
        } catch (error) {
          if (!(error instanceof QueueError) || error.fatal) throw error;
        }
        this.stats.add('ctrlCommands');
        if (!result.ok) this.stats.add('ctrlErrors');
        queue.addUsed(chain.head, result.used);
        served++;
      }
    } while (queue.enableNotifications());
    if (served > 0 && queue.needsNotification()) context.interrupt.signalUsed(this.controlQueue);
  }

  /** VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET: only receive offloads that were negotiated. */
  private setGuestOffloads(active: NetActive, offloads: bigint): boolean {
    if (!has(active.negotiated, S.VIRTIO_NET_F_CTRL_GUEST_OFFLOADS)) return false;
    if ((offloads & ~(active.negotiated & GUEST_OFFLOAD_FEATURES)) !== 0n) {
      this.log('GUEST_OFFLOADS_SET 0x%s names offloads that were not negotiated', offloads.toString(16));
      return false;
    }
    const wanted = tunOffloads(offloads);
    const flags = this.applyOffloads(offloads);
    for (const pair of active.pairs) pair.rx?.setLargeFrames(receivesLargeFrames(flags));
    this.log('guest offloads set to 0x%s: TAP offloads 0x%s', offloads.toString(16), flags.toString(16));
    return flags === wanted;
  }

  reset(): void {
    const active = this.active;
    this.active = undefined;
    if (!active) return;
    for (const pair of active.pairs) pair.rx?.stop();
    this.applyOffloads(0n);
  }
}

/**
 * Queues (a receive/transmit pair per TAP fd, then controlq), the offloads the TAP allows
 * (offeredFeatures), and a configuration space with the MAC, link up and the number of pairs.
 */
export function describeNet(options: NetOptions): VirtioDeviceDescription {
  if (options.tapFds.length !== 1) throw new RangeError('virtio-net: exactly one TAP fd (multi-queue is not supported yet)');
  if (options.mac.length !== 6) throw new RangeError('virtio-net: a MAC address has 6 bytes');
  const size = options.queueSize ?? NET_DEFAULT_QUEUE_SIZE;
  const configSpace = new Uint8Array(S.VIRTIO_NET_CONFIG_SIZE);
  configSpace.set(options.mac, S.VIRTIO_NET_CONFIG_MAC);
  const config = new DataView(configSpace.buffer);
  config.setUint16(S.VIRTIO_NET_CONFIG_STATUS, S.VIRTIO_NET_S_LINK_UP, true);
  config.setUint16(S.VIRTIO_NET_CONFIG_MAX_VIRTQUEUE_PAIRS, options.tapFds.length, true);
  const queueMaxSizes = [...options.tapFds.flatMap(() => [size, size]), NET_CTRL_QUEUE_SIZE];
  return { deviceType: VIRTIO_ID_NET, queueMaxSizes, features: offeredFeatures(options.tapOffloads), configSpace, dataPlaneQueues: [queueMaxSizes.map((_, q) => q)] };
}

export const virtioNet = defineVirtioDevice<NetOptions>({
  module: import.meta.url,
  exportName: 'virtioNet',
  describe: describeNet,
  create: (options) => new VirtioNet(options),
});
