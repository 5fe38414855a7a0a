/** Fuzz: hostile vhost-user replies to the front-end (see vhost-user-reply.ts). */
import { fuzzSuite } from './fuzz-suite.js';
import { vhostUserReplyTarget } from './vhost-user-reply.js';

fuzzSuite(vhostUserReplyTarget);
