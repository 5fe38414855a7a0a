/** Fuzz: see net-control.ts. */
import { fuzzSuite } from './fuzz-suite.js';
import { netControlTarget } from './net-control.js';

fuzzSuite(netControlTarget);
