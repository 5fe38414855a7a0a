/** -n/--net arguments, MAC addresses and the default MAC (src/net/net-spec.ts). */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { NetError } from '../../src/net/net-error.js';
import { defaultMac, formatMac, parseMac, parseNetOption } from '../../src/net/net-spec.js';

function netError(fn: () => unknown): NetError {
  try {
    fn();
  } catch (error) {
    assert.instance(error, NetError);
    return error as NetError;
  }
  throw new Error('expected a NetError');
}

test('a bare name or tap=NAME[,mac=MAC]', () => {
  assert.equal(parseNetOption('tap0'), { tap: 'tap0' });
  assert.equal(parseNetOption('tap=tap1'), { tap: 'tap1' });
  assert.equal(parseNetOption('tap=tap1,mac=52:54:00:ab:cd:ef'), { tap: 'tap1', mac: '52:54:00:ab:cd:ef' });
  assert.equal(parseNetOption('mac=52-54-00-AB-CD-EF,tap=t'), { tap: 't', mac: '52-54-00-AB-CD-EF' });
});

test('malformed arguments are bad options (status 2)', () => {
  for (const text of ['', 'tap=', 'mac=52:54:00:00:00:01', 'tap=a,tap=b', 'tap=a,model=e1000', 'sixteen-chars-xx', 'a/b', 'a b', '..']) {
    const e = netError(() => parseNetOption(text));
    assert.is(e.kind, 'bad-option', text);
    assert.is(e.status, 2);
  }
});

test('malformed, multicast and zero MACs are refused (status 2)', () => {
  for (const mac of ['52:54:00:ab:cd', '52:54:00:ab:cd:ef:01', '52:54:00:ab:cd:eg', '5254.00ab.cdef', '52:54-00:ab:cd:ef', '01:00:5e:00:00:01', '00:00:00:00:00:00']) {
    const e = netError(() => parseNetOption(`tap=t,mac=${mac}`));
    assert.is(e.kind, 'bad-mac', mac);
    assert.is(e.status, 2);
    assert.match(e.message, mac);
  }
  assert.equal(Array.from(parseMac('52:54:00:AB:cd:EF')), [0x52, 0x54, 0x00, 0xab, 0xcd, 0xef]);
});

test('the default MAC is unicast, locally administered, and stable per TAP name', () => {
  const a = defaultMac('tap0');
  assert.is(a[0]! & 0x03, 0x02);
  assert.equal(defaultMac('tap0'), a);
  assert.not.equal(defaultMac('tap1'), a);
  assert.match(formatMac(a), /^([0-9a-f]{2}:){5}[0-9a-f]{2}$/);
});

test('host refusals are status 4', () => {
  for (const kind of ['permission', 'busy', 'no-tun', 'io'] as const) assert.is(new NetError(kind, 'x').status, 4);
  for (const kind of ['missing', 'not-a-tap'] as const) assert.is(new NetError(kind, 'x').status, 2);
});

test.run();
