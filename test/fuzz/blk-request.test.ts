/** Fuzz: the virtio-blk request parser on random chains (see blk-request.ts). */
import { fuzzSuite } from './fuzz-suite.js';
import { blkRequestTarget } from './blk-request.js';

fuzzSuite(blkRequestTarget);
