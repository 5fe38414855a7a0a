/** virtio-blk through the host-side driver harness: every request type, against a real image file. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { BlkTestDevice, SECTOR, S, pattern } from './blk-helpers.js';

test('IN reads sectors straight into the guest buffer; OUT writes them to the file', async () => {
  const d = await BlkTestDevice.create({ sectors: 64 });
  try {
    const read = await d.request(S.VIRTIO_BLK_T_IN, 3, { inLength: 4 * SECTOR });
    assert.is(read.status, S.VIRTIO_BLK_S_OK);
    assert.is(read.len, 4 * SECTOR + 1);
    assert.equal(Array.from(read.data), Array.from(pattern(3 * SECTOR, 4 * SECTOR)));
    const bytes = new Uint8Array(2 * SECTOR).map((_, i) => (i * 31) & 0xff);
    const write = await d.request(S.VIRTIO_BLK_T_OUT, 10, { out: bytes });
    assert.is(write.status, S.VIRTIO_BLK_S_OK);
    assert.is(write.len, 1);
    const file = readFileSync(d.path);
    assert.equal(Array.from(file.subarray(10 * SECTOR, 12 * SECTOR)), Array.from(bytes));
  } finally {
    await d.close();
  }
});

test.run();
