import { test } from 'uvu';
import * as assert from 'uvu/assert';
import {
  MAX_MEM_REGIONS,
  MAX_PAYLOAD,
  Request,
  decodeConfig,
  decodeHeader,
  decodeMemoryTable,
  encodeConfig,
  encodeMemoryTable,
  encodeMessage,
  requestName,
} from '../../src/vhost-user/protocol.js';

test('every request number 1 to 43 has exactly one spec name; others are named by number', () => {
  const codes = Object.values(Request).sort((a, b) => a - b);
  assert.equal(codes, Array.from({ length: 43 }, (_, i) => i + 1));
  assert.is(requestName(Request.SET_MEM_TABLE), 'VHOST_USER_SET_MEM_TABLE');
  assert.is(requestName(0), 'request 0');
  assert.is(requestName(1000), 'request 1000');
});

test('a message is a little-endian header with version 1, then its payload', () => {
  const bytes = encodeMessage(Request.SET_VRING_NUM, 0x8, Uint8Array.of(1, 0, 0, 0, 0, 1, 0, 0));
  assert.equal([...bytes.subarray(0, 12)], [8, 0, 0, 0, 9, 0, 0, 0, 8, 0, 0, 0]);
  assert.equal(decodeHeader(bytes), { request: 8, flags: 9, size: 8 });
});

test('memory table and config payloads round-trip; bad counts and sizes are refused', () => {
  const regions = [{ guestPhysicalAddress: 0x1_0000_0000n, size: 0x4000_0000n, userAddress: 0x7f00_0000_0000n, mmapOffset: 0xc000_0000n }];
  const table = encodeMemoryTable(regions);
  assert.is(table.length, 8 + MAX_MEM_REGIONS * 32);
  assert.equal(decodeMemoryTable(table), regions);
  new DataView(table.buffer).setUint32(0, 9, true);
  assert.throws(() => decodeMemoryTable(table), RangeError);
  const config = { offset: 4, flags: 1, data: Uint8Array.of(5, 6) };
  assert.equal(decodeConfig(encodeConfig(config)), config);
  const lying = encodeConfig(config);
  new DataView(lying.buffer).setUint32(4, 300, true);
  assert.throws(() => decodeConfig(lying), RangeError);
  assert.ok(MAX_PAYLOAD >= table.length && MAX_PAYLOAD >= 12 + 256);
});

test.run();
