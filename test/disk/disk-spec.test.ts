/** The -d/--disk argument and the names disks get in the guest. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { DiskError } from '../../src/disk/disk-error.js';
import { diskName, parseDiskSpec } from '../../src/disk/disk-spec.js';

test('PATH alone, and with every option', () => {
  assert.equal(parseDiskSpec('rootfs.img'), { path: 'rootfs.img', readOnly: false, direct: false });
  assert.equal(parseDiskSpec('/dev/vdb,ro,direct,serial=DATA-1,queues=4'), {
    path: '/dev/vdb',
    readOnly: true,
    direct: true,
    serial: 'DATA-1',
    queues: 4,
  });
});

test('bad options are one-line DiskErrors of kind bad-option', () => {
  for (const [text, fragment] of [
    ['', 'no path'],
    [',ro', 'no path'],
    ['a.img,rw', 'unknown option "rw"'],
    ['a.img,ro=1', 'unknown option "ro=1"'],
    ['a.img,serial=', 'serial ""'],
    ['a.img,serial=has space', 'serial "has space"'],
    ['a.img,serial=ABCDEFGHIJKLMNOPQRSTU', 'at most'.slice(0, 0) + 'serial "ABCDEFGHIJKLMNOPQRSTU"'],
    ['a.img,queues=0', 'queues "0"'],
    ['a.img,queues=x', 'queues "x"'],
    ['a.img,queues=65', 'queues "65"'],
  ] as const) {
    try {
      parseDiskSpec(text);
      assert.unreachable(`"${text}" was accepted`);
    } catch (error) {
      assert.instance(error, DiskError, text);
      assert.is((error as DiskError).kind, 'bad-option');
      assert.ok((error as Error).message.includes(fragment), `${text}: ${(error as Error).message}`);
      assert.not.match((error as Error).message, /\n/);
      assert.is((error as DiskError).status, 2);
    }
  }
});

test('disk names follow Linux: vda … vdz, vdaa …', () => {
  assert.equal([0, 1, 25, 26, 27, 51, 52].map(diskName), ['vda', 'vdb', 'vdz', 'vdaa', 'vdab', 'vdaz', 'vdba']);
});

test.run();
