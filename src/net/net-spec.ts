/**
 * What -n/--net names: a TAP interface and the guest's MAC address. Parses
 * `tap0` or `tap=NAME[,mac=MAC]`, validates both before any host call, and
 * picks a default MAC that is the same for the same TAP name on every run.
 */
import { createHash } from 'node:crypto';
import { NetError } from './net-error.js';
import { IFNAMSIZ } from '../sys/tun-abi.js';

export interface NetSpec {
  /** Name of the TAP interface to attach to (or create). */
  readonly tap: string;
  /** aa:bb:cc:dd:ee:ff; when absent, defaultMac(tap). */
  readonly mac?: string;
}

export const MAC_LENGTH = 6;

/** Parses an -n/--net argument. Throws NetError 'bad-option' or 'bad-mac'. */
export function parseNetOption(text: string): NetSpec {
  if (!text.includes('=')) {
    checkInterfaceName(text);
    return { tap: text };
  }
  let tap: string | undefined;
  let mac: string | undefined;
  for (const part of text.split(',')) {
    const eq = part.indexOf('=');
    const key = eq < 0 ? part : part.slice(0, eq);
    const value = eq < 0 ? '' : part.slice(eq + 1);
    if (key === 'tap' && tap === undefined) tap = value;
    else if (key === 'mac' && mac === undefined) mac = value;
    else if (key === 'tap' || key === 'mac') throw new NetError('bad-option', `--net "${text}": ${key}= given twice`);
    else throw new NetError('bad-option', `--net "${text}": unknown key "${key}" (expected tap=NAME[,mac=MAC])`);
  }
  if (tap === undefined) throw new NetError('bad-option', `--net "${text}": missing tap=NAME`);
  checkInterfaceName(tap);
  if (mac !== undefined) parseMac(mac);
  return mac !== undefined ? { tap, mac } : { tap };
}

/** The kernel's dev_valid_name(): 1–15 bytes, not "." or "..", no '/', ':' or whitespace. */
export function checkInterfaceName(name: string): void {
  const problem =
    name.length === 0
      ? 'is empty'
      : Buffer.byteLength(name) >= IFNAMSIZ
        ? `is longer than ${IFNAMSIZ - 1} bytes`
        : name === '.' || name === '..'
          ? 'is not a valid name'
          : /[/:\s]/.test(name)
            ? "contains '/', ':' or whitespace"
            : undefined;
  if (problem) throw new NetError('bad-option', `--net: interface name "${name}" ${problem}`);
}

/** "aa:bb:cc:dd:ee:ff" (or with '-') → 6 bytes. Throws NetError 'bad-mac' for malformed, multicast or zero addresses. */
export function parseMac(text: string): Uint8Array {
  const match = /^([0-9a-f]{2})([:-])([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})\2([0-9a-f]{2})$/i.exec(text);
  if (!match) throw new NetError('bad-mac', `--net: MAC address "${text}" is not six hex bytes like 52:54:00:12:34:56`);
  const bytes = Uint8Array.from([1, 3, 4, 5, 6, 7].map((i) => parseInt(match[i]!, 16)));
  // Bit 0 of the first byte is the group bit: a NIC's own address must be unicast.
  if (bytes[0]! & 1) throw new NetError('bad-mac', `--net: MAC address "${text}" is a multicast address`);
  if (bytes.every((b) => b === 0)) throw new NetError('bad-mac', `--net: MAC address "${text}" is all zeroes`);
  return bytes;
}

/** A unicast, locally administered address derived from the TAP name: stable across runs. */
export function defaultMac(tap: string): Uint8Array {
  const digest = createHash('sha256').update(`kvm virtio-net ${tap}`).digest();
  const mac = Uint8Array.from(digest.subarray(0, MAC_LENGTH));
  mac[0] = (mac[0]! & 0xfc) | 0x02; // unicast, locally administered
  return mac;
}

export function formatMac(mac: Uint8Array): string {
  return Array.from(mac, (b) => b.toString(16).padStart(2, '0')).join(':');
}
