/** Fuzz: a whole virtio-console device, transmit to a file and receive from a pipe (see console-device.ts). */
import { fuzzSuite } from './fuzz-suite.js';
import { consoleDeviceTarget } from './console-device.js';

fuzzSuite(consoleDeviceTarget);
