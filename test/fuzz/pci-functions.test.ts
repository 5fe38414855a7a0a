/** Fuzz: two virtio-pci functions under hostile configuration-space and BAR accesses (see pci-functions.ts). */
import { fuzzSuite } from './fuzz-suite.js';
import { pciFunctionsTarget } from './pci-functions.js';

fuzzSuite(pciFunctionsTarget);
