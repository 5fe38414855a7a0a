/**
 * What a virtio-blk device is built from, on the main thread and again in
 * its data-plane thread: plain data and fd numbers only (the image is opened
 * and locked by the main thread, src/disk).
 */

export type BlkEngineKind = 'auto' | 'io-uring' | 'sync';

export interface BlkOptions {
  /** The guest's name for it (vda, vdb, …), for logs. */
  readonly name: string;
  /** The image, opened O_RDONLY or O_RDWR (and O_DIRECT with `direct`). */
  readonly fd: number;
  /** The same image without O_DIRECT, for requests whose file offset or length O_DIRECT cannot take. */
  readonly bufferedFd?: number;
  readonly sizeBytes: number;
  readonly readOnly: boolean;
  readonly direct: boolean;
  /** A block device (not a regular file): discard and write-zeroes go by the block-device fallocate modes. */
  readonly blockDevice: boolean;
  /** GET_ID answer: printable ASCII, at most 20 bytes. */
  readonly serial: string;
  /** Request queues (VIRTIO_BLK_F_MQ). */
  readonly queues: number;
  /** Entries per queue (default BLK_DEFAULT_QUEUE_SIZE). */
  readonly queueSize?: number;
  /** O_DIRECT alignment of guest buffers (bytes). */
  readonly directMemoryAlign?: number;
  /** O_DIRECT alignment of file offsets and lengths (bytes); also the blk_size offered. */
  readonly directOffsetAlign?: number;
  /** io_uring when the host allows it (auto, the default), or one request at a time with preadv/pwritev. */
  readonly engine?: BlkEngineKind;
  /** How long the data plane keeps watching the rings after a burst before it sleeps (0: never polls). */
  readonly pollMicroseconds?: number;
  /** Shared counters (BLK_COUNTERS, see DeviceCounters); the thread that built the options reads them. */
  readonly counters?: SharedArrayBuffer;
  /** State the disk's data-plane threads share (BlkSharedState: sticky flush failure, bounce bytes held). */
  readonly shared?: SharedArrayBuffer;
  /** O_DIRECT bounce buffers the disk may hold at once, all threads together (default BLK_BOUNCE_BUDGET_BYTES). */
  readonly bounceBudgetBytes?: number;
}

/** Requests answered OK by type (and the bytes moved), and those answered IOERR or UNSUPP. */
export const BLK_COUNTERS = [
  'reads',
  'readBytes',
  'writes',
  'writeBytes',
  'flushes',
  'discards',
  'writeZeroes',
  'getIds',
  'ioErrors',
  'unsupported',
] as const;
export type BlkCounter = (typeof BLK_COUNTERS)[number];

export const BLK_DEFAULT_QUEUE_SIZE = 256;
/** Data-plane threads per disk at most: beyond this many queues, threads serve several (round robin). */
export const BLK_MAX_DATA_PLANE_THREADS = 8;

/** Which queues each of a disk's data-plane threads serves: one thread per queue, up to the cap. */
export function blkDataPlaneQueues(queues: number): number[][] {
  const threads = Math.min(queues, BLK_MAX_DATA_PLANE_THREADS);
  const groups = Array.from({ length: threads }, (): number[] => []);
  for (let q = 0; q < queues; q++) groups[q % threads]!.push(q);
  return groups;
}
/** A driver that answers a completion with its next request within this long needs no kick. */
export const BLK_DEFAULT_POLL_US = 100;
/** Segments per discard or write-zeroes request (max_discard_seg, max_write_zeroes_seg). */
export const BLK_MAX_DWZ_SEGMENTS = 32;
/** Sectors per discard or write-zeroes segment: 2 GiB − 512, as QEMU offers. */
export const BLK_MAX_DWZ_SECTORS = 0x3f_ffff;
/** Largest single data segment the driver may send (size_max). */
export const BLK_SIZE_MAX = 1 << 20;
/** Discard granularity in sectors: a 4 KiB filesystem block. */
export const BLK_DISCARD_ALIGNMENT_SECTORS = 8;
