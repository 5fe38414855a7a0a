/** Fuzz: see net-tx.ts. */
import { fuzzSuite } from './fuzz-suite.js';
import { netTxTarget } from './net-tx.js';

fuzzSuite(netTxTarget);
