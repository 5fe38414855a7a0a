/**
 * A minimal AML decoder for tests: walks a DSDT's term list (Name, Scope,
 * Device, Method) into a flat namespace of absolute paths ("\_SB_.PCI0._HID")
 * and decodes data objects and resource templates. It knows only what a
 * static table uses and fails loudly on anything else.
 */

export type AmlValue = bigint | string | Uint8Array | AmlValue[];

export interface AmlMethod {
  readonly method: true;
  readonly flags: number;
  readonly body: Uint8Array;
}

export type NamespaceEntry = { readonly kind: 'name'; readonly value: AmlValue } | { readonly kind: 'device' | 'scope' } | ({ readonly kind: 'method' } & AmlMethod);

export class AmlReader {
  at = 0;
  constructor(readonly bytes: Uint8Array) {}

  byte(): number {
    if (this.at >= this.bytes.length) throw new Error(`AML ends early at ${this.at}`);
    return this.bytes[this.at++]!;
  }

  /** Returns the end offset of the package that starts at the PkgLength. */
  pkgEnd(): number {
    const start = this.at;
    const lead = this.byte();
    const follow = lead >> 6;
    if (follow === 0) return start + (lead & 0x3f);
    if (lead & 0x30) throw new Error(`PkgLength lead byte 0x${lead.toString(16)} has bits 5-4 set`);
    let length = lead & 0x0f;
    for (let i = 0; i < follow; i++) length |= this.byte() << (4 + 8 * i);
    return start + length;
  }

  nameSeg(): string {
    let s = '';
    for (let i = 0; i < 4; i++) s += String.fromCharCode(this.byte());
    if (!/^[A-Z_][A-Z0-9_]{3}$/.test(s)) throw new Error(`bad NameSeg "${s}" at ${this.at - 4}`);
    return s;
  }

  nameString(): string {
    let prefix = '';
    while (this.bytes[this.at] === 0x5c || this.bytes[this.at] === 0x5e) prefix += String.fromCharCode(this.byte());
    const b = this.bytes[this.at];
    let segs: string[];
    if (b === 0x00) {
      this.at++;
      segs = [];
    } else if (b === 0x2e) {
      this.at++;
      segs = [this.nameSeg(), this.nameSeg()];
    } else if (b === 0x2f) {
      this.at++;
      const count = this.byte();
      segs = Array.from({ length: count }, () => this.nameSeg());
    } else {
      segs = [this.nameSeg()];
    }
    return prefix + segs.join('.');
  }

  integer(): bigint {
    const op = this.byte();
    const sized = (n: number): bigint => {
      let v = 0n;
      for (let i = 0; i < n; i++) v |= BigInt(this.byte()) << BigInt(8 * i);
      return v;
    };
    switch (op) {
      case 0x00:
        return 0n;
      case 0x01:
        return 1n;
      case 0xff:
        return (1n << 64n) - 1n;
      case 0x0a:
        return sized(1);
      case 0x0b:
        return sized(2);
      case 0x0c:
        return sized(4);
      case 0x0e:
        return sized(8);
      default:
        throw new Error(`not an integer opcode 0x${op.toString(16)} at ${this.at - 1}`);
    }
  }

  dataObject(): AmlValue {
    const op = this.bytes[this.at];
    if (op === 0x0d) {
      this.at++;
      const end = this.bytes.indexOf(0, this.at);
      const s = Buffer.from(this.bytes.subarray(this.at, end)).toString('latin1');
      this.at = end + 1;
      return s;
    }
    if (op === 0x11) {
      this.at++;
      const end = this.pkgEnd();
      const size = Number(this.integer());
      const data = this.bytes.slice(this.at, end);
      if (data.length !== size) throw new Error(`Buffer declares ${size} bytes, holds ${data.length}`);
      this.at = end;
      return data;
    }
    if (op === 0x12 || op === 0x13) {
      this.at++;
      const end = this.pkgEnd();
      const count = op === 0x12 ? this.byte() : Number(this.integer());
      const elements: AmlValue[] = [];
      while (this.at < end) elements.push(this.dataObject());
      if (this.at !== end || elements.length !== count) throw new Error(`Package declares ${count} elements, holds ${elements.length}`);
      return elements;
    }
    return this.integer();
  }
}

const join = (scope: string, path: string): string => {
  if (path.startsWith('\\')) return path === '\\' ? '\\' : path;
  if (path.startsWith('^')) throw new Error('parent prefixes are not supported by the test decoder');
  return scope === '\\' ? `\\${path}` : `${scope}.${path}`;
};

/** Decodes a term list into `namespace`, keyed by absolute path. */
export function decodeTermList(r: AmlReader, end: number, scope: string, namespace: Map<string, NamespaceEntry>): void {
  while (r.at < end) {
    const op = r.byte();
    if (op === 0x08) {
      const path = join(scope, r.nameString());
      namespace.set(path, { kind: 'name', value: r.dataObject() });
    } else if (op === 0x10 || (op === 0x5b && r.bytes[r.at] === 0x82)) {
      if (op === 0x5b) r.at++;
      const pkgEnd = r.pkgEnd();
      const path = join(scope, r.nameString());
      namespace.set(path, { kind: op === 0x10 ? 'scope' : 'device' });
      decodeTermList(r, pkgEnd, path, namespace);
      if (r.at !== pkgEnd) throw new Error(`${path} overruns its package`);
    } else if (op === 0x14) {
      const pkgEnd = r.pkgEnd();
      const path = join(scope, r.nameString());
      const flags = r.byte();
      namespace.set(path, { kind: 'method', method: true, flags, body: r.bytes.slice(r.at, pkgEnd) });
      r.at = pkgEnd;
    } else {
      throw new Error(`unexpected opcode 0x${op.toString(16)} at ${r.at - 1} in ${scope}`);
    }
  }
  if (r.at !== end) throw new Error(`term list of ${scope} overruns its end`);
}

/** The namespace a DSDT's AML (the bytes after its 36-byte header) defines. */
export function decodeDsdt(aml: Uint8Array): Map<string, NamespaceEntry> {
  const namespace = new Map<string, NamespaceEntry>();
  decodeTermList(new AmlReader(aml), aml.length, '\\', namespace);
  return namespace;
}

export type Resource =
  | { type: 'io'; decode16: boolean; min: number; max: number; alignment: number; length: number }
  | { type: 'irq'; mask: number; flags?: number }
  | { type: 'memory32-fixed'; writable: boolean; base: number; length: number }
  | { type: 'interrupt'; flags: number; interrupts: number[] }
  | { type: 'address'; width: 16 | 32 | 64; resourceType: number; flags: number; typeFlags: number; granularity: bigint; min: bigint; max: bigint; translation: bigint; length: bigint };

/** Decodes a ResourceTemplate buffer; requires exactly one End Tag, last. */
export function decodeResources(buffer: Uint8Array): Resource[] {
  const v = new DataView(buffer.buffer, buffer.byteOffset, buffer.byteLength);
  const out: Resource[] = [];
  let at = 0;
  for (;;) {
    if (at >= buffer.length) throw new Error('resource template has no End Tag');
    const tag = buffer[at]!;
    if (tag & 0x80) {
      const length = v.getUint16(at + 1, true);
      const body = at + 3;
      if (tag === 0x86) {
        out.push({ type: 'memory32-fixed', writable: (buffer[body]! & 1) === 1, base: v.getUint32(body + 1, true), length: v.getUint32(body + 5, true) });
      } else if (tag === 0x89) {
        const count = buffer[body + 1]!;
        out.push({ type: 'interrupt', flags: buffer[body]!, interrupts: Array.from({ length: count }, (_, i) => v.getUint32(body + 2 + 4 * i, true)) });
      } else if (tag === 0x87 || tag === 0x88 || tag === 0x8a) {
        const width = tag === 0x88 ? 16 : tag === 0x87 ? 32 : 64;
        const size = width / 8;
        const field = (i: number): bigint => {
          const o = body + 3 + i * size;
          return width === 16 ? BigInt(v.getUint16(o, true)) : width === 32 ? BigInt(v.getUint32(o, true)) : v.getBigUint64(o, true);
        };
        if (length !== 3 + 5 * size) throw new Error(`address descriptor length ${length}`);
        out.push({
          type: 'address',
          width,
          resourceType: buffer[body]!,
          flags: buffer[body + 1]!,
          typeFlags: buffer[body + 2]!,
          granularity: field(0),
          min: field(1),
          max: field(2),
          translation: field(3),
          length: field(4),
        });
      } else {
        throw new Error(`unknown large resource 0x${tag.toString(16)}`);
      }
      at = body + length;
    } else {
      const kind = (tag >> 3) & 0x0f;
      const length = tag & 7;
      const body = at + 1;
      if (kind === 0x0f) {
        if (body + length !== buffer.length) throw new Error('End Tag is not last');
        return out;
      }
      if (kind === 0x08) {
        out.push({ type: 'io', decode16: (buffer[body]! & 1) === 1, min: v.getUint16(body + 1, true), max: v.getUint16(body + 3, true), alignment: buffer[body + 5]!, length: buffer[body + 6]! });
      } else if (kind === 0x04) {
        out.push({ type: 'irq', mask: v.getUint16(body, true), ...(length === 3 ? { flags: buffer[body + 2]! } : {}) });
      } else {
        throw new Error(`unknown small resource 0x${tag.toString(16)}`);
      }
      at = body + length;
    }
  }
}
