/** Fuzz: the split virtqueue and chain walker against the reference model (see split-queue.ts). */
import { fuzzSuite } from './fuzz-suite.js';
import { splitQueueTarget } from './split-queue.js';

fuzzSuite(splitQueueTarget);
