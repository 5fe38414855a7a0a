/**
 * Opens a TAP the way the VMM does and prints the outcome as one JSON line,
 * with who it ran as (uid, effective capabilities) so the test can tell it
 * really was unprivileged. test/net/tap.test.ts runs it inside a namespace as
 * an unprivileged user:
 *   node tap-open-child.js TUN_DEVICE NAME
 */
import { readFileSync } from 'node:fs';
import { NetError } from '../../src/net/net-error.js';
import { openTap } from '../../src/net/tap.js';

const [tunDevice, name] = process.argv.slice(2);
const capEff = /^CapEff:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))?.[1] ?? 'unknown';
const identity = { uid: process.getuid!(), capEff };
try {
  const tap = openTap(name!, { tunDevice: tunDevice! });
  console.log(JSON.stringify({ ...identity, ok: true, name: tap.name, created: tap.created, offloads: tap.offloads }));
} catch (error) {
  if (!(error instanceof NetError)) throw error;
  console.log(JSON.stringify({ ...identity, ok: false, kind: error.kind, status: error.status, message: error.message }));
}
