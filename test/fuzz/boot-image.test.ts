/** Fuzz: kernel images (ELF, PVH note, bzImage, initrd) through loadKernel (see boot-image.ts). */
import { fuzzSuite } from './fuzz-suite.js';
import { bootImageTarget } from './boot-image.js';

fuzzSuite(bootImageTarget);
