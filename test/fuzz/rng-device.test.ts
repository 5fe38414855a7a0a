/** Fuzz: a whole virtio-rng device on random and aliased chains (see rng-device.ts). */
import { fuzzSuite } from './fuzz-suite.js';
import { rngDeviceTarget } from './rng-device.js';

fuzzSuite(rngDeviceTarget);
