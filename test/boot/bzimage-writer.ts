/** Builds synthetic bzImages (setup sectors + protected-mode payload) for the boot tests. */

export interface TestBzImage {
  version?: number;
  loadflags?: number;
  xloadflags?: number;
  /** Raw setup_sects byte (0 means 4). */
  setupSects?: number;
  relocatable?: boolean;
  kernelAlignment?: number;
  cmdlineSize?: number;
  initrdAddrMax?: number;
  prefAddress?: number;
  initSize?: number;
  /** syssize (16-byte paragraphs); by default the payload's size rounded up. */
  syssize?: number;
  /** Header end offset; the jump displacement byte at 0x201 is end - 0x202. */
  headerEnd?: number;
  bootFlag?: number;
  magic?: number;
  payload?: Uint8Array;
}

export const DEFAULT_PAYLOAD_SIZE = 0x3000;

/** A recognisable payload: byte i is (i * 7 + 3) & 0xff. */
export function patternPayload(size = DEFAULT_PAYLOAD_SIZE): Uint8Array {
  return Uint8Array.from({ length: size }, (_, i) => (i * 7 + 3) & 0xff);
}

export function buildBzImage(spec: TestBzImage = {}): Uint8Array {
  const setupSectsByte = spec.setupSects ?? 1;
  const setupSects = setupSectsByte === 0 ? 4 : setupSectsByte;
  const payload = spec.payload ?? patternPayload();
  const kernelOffset = (setupSects + 1) * 512;
  const bytes = new Uint8Array(kernelOffset + payload.length);
  const v = new DataView(bytes.buffer);
  v.setUint8(0x1f1, setupSectsByte);
  v.setUint32(0x1f4, spec.syssize ?? Math.ceil(payload.length / 16), true);
  v.setUint16(0x1fe, spec.bootFlag ?? 0xaa55, true);
  v.setUint8(0x200, 0xeb);
  v.setUint8(0x201, (spec.headerEnd ?? 0x26c) - 0x202);
  v.setUint32(0x202, spec.magic ?? 0x53726448, true);
  v.setUint16(0x206, spec.version ?? 0x020f, true);
  v.setUint8(0x211, spec.loadflags ?? 0x01);
  v.setUint32(0x214, 0x100000, true);
  v.setUint32(0x22c, spec.initrdAddrMax ?? 0x7fffffff, true);
  v.setUint32(0x230, spec.kernelAlignment ?? 0x200000, true);
  v.setUint8(0x234, spec.relocatable === false ? 0 : 1);
  v.setUint8(0x235, 21);
  v.setUint16(0x236, spec.xloadflags ?? 0x03, true);
  v.setUint32(0x238, spec.cmdlineSize ?? 2047, true);
  v.setBigUint64(0x258, BigInt(spec.prefAddress ?? 0x1000000), true);
  v.setUint32(0x260, spec.initSize ?? 0x200000, true);
  bytes.set(payload, kernelOffset);
  return bytes;
}
