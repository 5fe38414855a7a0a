/**
 * Opens a TAP the way the VMM does and prints the outcome as one JSON line.
 * test/net/tap.test.ts runs it inside a namespace as an unprivileged user:
 *   node tap-open-child.js TUN_DEVICE NAME
 */
import { NetError } from '../../src/net/net-error.js';
import { openTap } from '../../src/net/tap.js';

const [tunDevice, name] = process.argv.slice(2);
try {
  const tap = openTap(name!, { tunDevice: tunDevice! });
  console.log(JSON.stringify({ ok: true, name: tap.name, created: tap.created, offloads: tap.offloads }));
} catch (error) {
  if (!(error instanceof NetError)) throw error;
  console.log(JSON.stringify({ ok: false, kind: error.kind, status: error.exitStatus, message: error.message }));
}
