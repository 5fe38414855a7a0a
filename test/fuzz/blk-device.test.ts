/** Fuzz: a whole virtio-blk device on a checking I/O engine (see blk-device.ts). */
import { fuzzSuite } from './fuzz-suite.js';
import { blkDeviceTarget } from './blk-device.js';

fuzzSuite(blkDeviceTarget);
