/** Every fuzz target, for the campaign runner (scripts/fuzz.mjs); each also has its own test file. */
import type { AnyFuzzTarget } from './fuzz-target.js';
import { blkDeviceTarget } from './blk-device.js';
import { blkRequestTarget } from './blk-request.js';
import { consoleDeviceTarget } from './console-device.js';
import { bootImageTarget } from './boot-image.js';
import { netControlTarget } from './net-control.js';
import { netTxTarget } from './net-tx.js';
import { pciFunctionsTarget } from './pci-functions.js';
import { rngDeviceTarget } from './rng-device.js';
import { splitQueueTarget } from './split-queue.js';
import { vhostUserReplyTarget } from './vhost-user-reply.js';

export const FUZZ_TARGETS: readonly AnyFuzzTarget[] = [
  splitQueueTarget,
  blkRequestTarget,
  netTxTarget,
  netControlTarget,
  blkDeviceTarget,
  rngDeviceTarget,
  consoleDeviceTarget,
  pciFunctionsTarget,
  bootImageTarget,
  vhostUserReplyTarget,
];
