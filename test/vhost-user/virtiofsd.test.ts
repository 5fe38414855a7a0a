/**
 * The front-end against a real back-end: QEMU's C virtiofsd (Debian's qemu-system-common),
 * sharing a temporary directory. Skipped, with the reason on stderr, where the daemon is absent
 * or this is not root (its sandbox needs namespaces and pivot_root).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { VhostUserFrontend } from '../../src/vhost-user/frontend.js';
import { F_PROTOCOL_FEATURES, ProtocolFeature, bit } from '../../src/vhost-user/protocol.js';
import { Virtiofsd, exited, virtiofsdAbsentReason } from './virtiofsd-daemon.js';

const VIRTIO_F_VERSION_1 = 32;

const NAME = 'virtiofsd: negotiates features, takes ownership, resets, and exits when the front-end closes';
const reason = virtiofsdAbsentReason();
if (reason !== undefined) {
  process.stderr.write(`vhost-user: the virtiofsd test is skipped: ${reason}\n`);
  test.skip(NAME);
} else {
  test(NAME, async () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'kvm-virtiofsd-'));
    const source = path.join(dir, 'shared');
    mkdirSync(source);
    const socketPath = path.join(dir, 'vhost.sock');
    let daemon: Virtiofsd | undefined;
    let frontend: VhostUserFrontend | undefined;
    try {
      daemon = await Virtiofsd.start(source, socketPath);
      frontend = VhostUserFrontend.connect(socketPath, { timeoutMs: 5000 });

      const features = frontend.getFeatures();
      assert.ok(features & bit(VIRTIO_F_VERSION_1), `VIRTIO_F_VERSION_1 offered (0x${features.toString(16)})`);
      assert.ok(features & bit(F_PROTOCOL_FEATURES), 'VHOST_USER_F_PROTOCOL_FEATURES offered');
      const protocol = frontend.getProtocolFeatures();
      assert.ok(protocol & bit(ProtocolFeature.REPLY_ACK), `REPLY_ACK offered (0x${protocol.toString(16)})`);
      frontend.setProtocolFeatures(protocol & (bit(ProtocolFeature.MQ) | bit(ProtocolFeature.REPLY_ACK) | bit(ProtocolFeature.CONFIG)));
      assert.ok(frontend.hasProtocolFeature(ProtocolFeature.REPLY_ACK));
      frontend.setOwner(); // acknowledged: REPLY_ACK is negotiated
      frontend.setFeatures(bit(VIRTIO_F_VERSION_1) | bit(F_PROTOCOL_FEATURES));
      if (frontend.hasProtocolFeature(ProtocolFeature.MQ)) assert.ok(frontend.getQueueNum() >= 2, 'a hiprio queue and a request queue');
      frontend.reset();
      frontend.close();
      frontend = undefined;
      assert.ok(await exited(daemon.child, 5000), `virtiofsd exits when its front-end goes away: ${daemon.log}`);
    } finally {
      frontend?.close();
      await daemon?.kill();
      rmSync(dir, { recursive: true, force: true });
    }
  });
}

test.run();
