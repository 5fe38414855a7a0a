/**
 * What a virtio-net device is built from, on the main thread and again in its
 * data-plane thread: plain data and fd numbers only (the TAP is opened by the
 * main thread, src/net). One TAP fd per queue pair; only one pair until
 * multi-queue (VIRTIO_NET_F_MQ with IFF_MULTI_QUEUE TAPs) is added.
 */

export interface NetOptions {
  /** The TAP's name, for logs. */
  readonly name: string;
  /** Non-blocking TAP fds (IFF_TAP | IFF_NO_PI | IFF_VNET_HDR, 12-byte header), one per queue pair. */
  readonly tapFds: readonly number[];
  /** The guest's MAC address (6 bytes). */
  readonly mac: readonly number[];
  /** TUN_F_* bits the TAP accepted when probed: the device offers only the guest offloads these allow. */
  readonly tapOffloads: number;
  /** Entries per queue (default NET_DEFAULT_QUEUE_SIZE). */
  readonly queueSize?: number;
  /** Counters (NetStats), shared with whoever created the options. */
  readonly stats?: SharedArrayBuffer;
}

export const NET_DEFAULT_QUEUE_SIZE = 1024;
export const NET_CTRL_QUEUE_SIZE = 64;
