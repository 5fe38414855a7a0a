/**
 * Per-vCPU CPUID tables: the host's KVM_GET_SUPPORTED_CPUID, with each vCPU's
 * APIC id and a topology of one thread per core in one package, minus (or
 * plus) features named as in /proc/cpuinfo.
 */
import { EXIT_INVALID_ARGUMENTS } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';
import { CPUID_ENTRY, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, SIZEOF_KVM_CPUID2, SIZEOF_KVM_CPUID_ENTRY2 } from './kvm-abi.js';

export type CpuidErrorKind = 'unknown-feature' | 'unsupported-feature' | 'bad-syntax';

/** A --cpu-features list the host cannot honour: status 2. */
export class CpuidError extends VmmError<CpuidErrorKind> {
  constructor(kind: CpuidErrorKind, message: string) {
    super(kind, message, { status: EXIT_INVALID_ARGUMENTS });
  }
}

type Register = 'eax' | 'ebx' | 'ecx' | 'edx';

interface FeatureBit {
  readonly leaf: number;
  readonly subleaf: number;
  readonly register: Register;
  readonly bit: number;
}

const LEAF_FEATURES = 0x1;
const LEAF_EXTENDED_FEATURES = 0x7;
const LEAF_XSAVE = 0xd;
const LEAF_EXT_TOPOLOGY = 0xb;
const LEAF_CACHE_PARAMS = 0x4;
export const LEAF_KVM_FEATURES = 0x40000001;
const LEAF_AMD_FEATURES = 0x80000001;
const LEAF_AMD_SIZES = 0x80000008;
const LEAF_AMD_TOPOLOGY = 0x8000001e;

function bits(leaf: number, subleaf: number, register: Register, names: Record<string, number>): [string, FeatureBit][] {
  return Object.entries(names).map(([name, bit]) => [name, { leaf, subleaf, register, bit }]);
}

/** Feature names as Linux prints them in /proc/cpuinfo, plus kvm_* for KVM's paravirt leaf. */
export const CPU_FEATURES: ReadonlyMap<string, FeatureBit> = new Map([
  ...bits(LEAF_FEATURES, 0, 'ecx', {
    pni: 0, pclmulqdq: 1, dtes64: 2, monitor: 3, ds_cpl: 4, vmx: 5, smx: 6, est: 7, tm2: 8, ssse3: 9,
    cid: 10, sdbg: 11, fma: 12, cx16: 13, xtpr: 14, pdcm: 15, pcid: 17, dca: 18, sse4_1: 19, sse4_2: 20,
    x2apic: 21, movbe: 22, popcnt: 23, tsc_deadline_timer: 24, aes: 25, xsave: 26, avx: 28, f16c: 29,
    rdrand: 30, hypervisor: 31,
  }),
  ...bits(LEAF_FEATURES, 0, 'edx', {
    fpu: 0, vme: 1, de: 2, pse: 3, tsc: 4, msr: 5, pae: 6, mce: 7, cx8: 8, apic: 9, sep: 11, mtrr: 12,
    pge: 13, mca: 14, cmov: 15, pat: 16, pse36: 17, clflush: 19, ds: 21, acpi: 22, mmx: 23, fxsr: 24,
    sse: 25, sse2: 26, ss: 27, ht: 28, tm: 29, pbe: 31,
  }),
  ...bits(LEAF_EXTENDED_FEATURES, 0, 'ebx', {
    fsgsbase: 0, tsc_adjust: 1, sgx: 2, bmi1: 3, hle: 4, avx2: 5, smep: 7, bmi2: 8, erms: 9, invpcid: 10,
    rtm: 11, mpx: 14, avx512f: 16, avx512dq: 17, rdseed: 18, adx: 19, smap: 20, avx512ifma: 21,
    clflushopt: 23, clwb: 24, avx512pf: 26, avx512er: 27, avx512cd: 28, sha_ni: 29, avx512bw: 30,
    avx512vl: 31,
  }),
  ...bits(LEAF_EXTENDED_FEATURES, 0, 'ecx', {
    avx512vbmi: 1, umip: 2, pku: 3, waitpkg: 5, avx512_vbmi2: 6, gfni: 8, vaes: 9, vpclmulqdq: 10,
    avx512_vnni: 11, avx512_bitalg: 12, avx512_vpopcntdq: 14, la57: 16, rdpid: 22, cldemote: 25,
    movdiri: 27, movdir64b: 28,
  }),
  ...bits(LEAF_EXTENDED_FEATURES, 0, 'edx', {
    fsrm: 4, md_clear: 10, serialize: 14, tsxldtrk: 16, arch_lbr: 19, ibt: 20, avx512_fp16: 23,
    spec_ctrl: 26, stibp: 27, flush_l1d: 28, arch_capabilities: 29, ssbd: 31,
  }),
  ...bits(LEAF_XSAVE, 1, 'eax', { xsaveopt: 0, xsavec: 1, xgetbv1: 2, xsaves: 3 }),
  ...bits(LEAF_AMD_FEATURES, 0, 'ecx', {
    lahf_lm: 0, cmp_legacy: 1, svm: 2, extapic: 3, cr8_legacy: 4, abm: 5, sse4a: 6, misalignsse: 7,
    '3dnowprefetch': 8, osvw: 9, ibs: 10, xop: 11, skinit: 12, wdt: 13, lwp: 15, fma4: 16, tce: 17,
    nodeid_msr: 19, tbm: 21, topoext: 22, perfctr_core: 23, perfctr_nb: 24, mwaitx: 29,
  }),
  ...bits(LEAF_AMD_FEATURES, 0, 'edx', {
    syscall: 11, nx: 20, mmxext: 22, fxsr_opt: 25, pdpe1gb: 26, rdtscp: 27, lm: 29,
  }),
  ...bits(LEAF_KVM_FEATURES, 0, 'eax', {
    kvm_clocksource: 0, kvm_nopiodelay: 1, kvm_clocksource2: 3, kvm_async_pf: 4, kvm_steal_time: 5,
    kvm_pv_eoi: 6, kvm_pv_unhalt: 7, kvm_pv_tlb_flush: 9, kvm_async_pf_vmexit: 10, kvm_pv_send_ipi: 11,
    kvm_poll_control: 12, kvm_pv_sched_yield: 13, kvm_async_pf_int: 14, kvm_msi_ext_dest_id: 15,
    kvm_clocksource_stable: 24,
  }),
]);

/** A feature change list: names to remove and to add. */
export interface CpuFeatureEdits {
  readonly remove: readonly string[];
  readonly add: readonly string[];
}

/** Parses "-cx16,-xsave,+x2apic" (a bare name means +name). */
export function parseCpuFeatures(spec: string): CpuFeatureEdits {
  const remove: string[] = [];
  const add: string[] = [];
  for (const raw of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
    const sign = raw[0] === '-' || raw[0] === '+' ? raw[0] : '+';
    const name = (raw[0] === '-' || raw[0] === '+' ? raw.slice(1) : raw).toLowerCase();
    if (!/^[a-z0-9_]+$/.test(name)) throw new CpuidError('bad-syntax', `cpu feature "${raw}" is not -name or +name`);
    if (!CPU_FEATURES.has(name)) throw new CpuidError('unknown-feature', `unknown cpu feature "${name}"`);
    (sign === '-' ? remove : add).push(name);
  }
  return { remove, add };
}


/** A mutable copy of kvm_cpuid_entry2 records. */
export class CpuidTable {
  private view: DataView;

  constructor(public entries: Uint8Array) {
    this.view = new DataView(entries.buffer, entries.byteOffset, entries.byteLength);
  }

  get count(): number {
    return this.entries.length / SIZEOF_KVM_CPUID_ENTRY2;
  }

  clone(): CpuidTable {
    return new CpuidTable(this.entries.slice());
  }

  /** Byte offset of the entry for leaf/subleaf, or -1. Subleaf is ignored for leaves KVM marks as not indexed. */
  private find(leaf: number, subleaf: number): number {
    for (let i = 0; i < this.count; i++) {
      const o = i * SIZEOF_KVM_CPUID_ENTRY2;
      if (this.view.getUint32(o + CPUID_ENTRY.function, true) !== leaf) continue;
      const indexed = (this.view.getUint32(o + CPUID_ENTRY.flags, true) & 1) !== 0;
      if (!indexed || this.view.getUint32(o + CPUID_ENTRY.index, true) === subleaf) return o;
    }
    return -1;
  }

  has(leaf: number, subleaf = 0): boolean {
    return this.find(leaf, subleaf) >= 0;
  }

  get(leaf: number, subleaf: number, register: Register): number {
    const o = this.find(leaf, subleaf);
    return o < 0 ? 0 : this.view.getUint32(o + CPUID_ENTRY[register], true);
  }

  set(leaf: number, subleaf: number, register: Register, value: number): void {
    const o = this.find(leaf, subleaf);
    if (o >= 0) this.view.setUint32(o + CPUID_ENTRY[register], value >>> 0, true);
  }

  /** Sets every register of an indexed leaf/subleaf entry, adding the entry if KVM did not list it. */
  put(leaf: number, subleaf: number, values: Record<Register, number>): void {
    if (!this.has(leaf, subleaf) || !this.isIndexed(leaf)) this.append(leaf, subleaf);
    for (const register of ['eax', 'ebx', 'ecx', 'edx'] as const) this.set(leaf, subleaf, register, values[register]);
  }

  private isIndexed(leaf: number): boolean {
    const o = this.find(leaf, 0);
    return o >= 0 && (this.view.getUint32(o + CPUID_ENTRY.flags, true) & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) !== 0;
  }

  private append(leaf: number, subleaf: number): void {
    const bytes = new Uint8Array(this.entries.length + SIZEOF_KVM_CPUID_ENTRY2);
    bytes.set(this.entries);
    const v = new DataView(bytes.buffer);
    const o = this.entries.length;
    v.setUint32(o + CPUID_ENTRY.function, leaf, true);
    v.setUint32(o + CPUID_ENTRY.index, subleaf, true);
    v.setUint32(o + CPUID_ENTRY.flags, KVM_CPUID_FLAG_SIGNIFCANT_INDEX, true);
    this.entries = bytes;
    this.view = v;
  }

  update(leaf: number, subleaf: number, register: Register, fn: (value: number) => number): void {
    if (this.has(leaf, subleaf)) this.set(leaf, subleaf, register, fn(this.get(leaf, subleaf, register)));
  }

  /** Indices of every subleaf entry present for a leaf. */
  subleaves(leaf: number): number[] {
    const result: number[] = [];
    for (let i = 0; i < this.count; i++) {
      const o = i * SIZEOF_KVM_CPUID_ENTRY2;
      if (this.view.getUint32(o + CPUID_ENTRY.function, true) === leaf) {
        result.push(this.view.getUint32(o + CPUID_ENTRY.index, true));
      }
    }
    return result;
  }

  hasFeature(name: string): boolean {
    const f = CPU_FEATURES.get(name);
    if (!f) throw new CpuidError('unknown-feature', `unknown cpu feature "${name}"`);
    return ((this.get(f.leaf, f.subleaf, f.register) >>> f.bit) & 1) === 1;
  }

  applyFeatureEdits(edits: CpuFeatureEdits): void {
    for (const name of edits.add) {
      if (!this.hasFeature(name)) {
        throw new CpuidError('unsupported-feature', `cpu feature "${name}" is not supported by this host's KVM`);
      }
    }
    for (const name of edits.remove) {
      const f = CPU_FEATURES.get(name)!;
      this.update(f.leaf, f.subleaf, f.register, (v) => v & ~(1 << f.bit));
    }
  }

  /** The kvm_cpuid2 buffer for KVM_SET_CPUID2. */
  toKvmCpuid2(): Uint8Array {
    const buffer = new Uint8Array(SIZEOF_KVM_CPUID2 + this.entries.length);
    new DataView(buffer.buffer).setUint32(0, this.count, true);
    buffer.set(this.entries, SIZEOF_KVM_CPUID2);
    return buffer;
  }
}

const X2APIC_LEVEL_SMT = 1;
const X2APIC_LEVEL_CORE = 2;

function bitsFor(count: number): number {
  return count <= 1 ? 0 : Math.ceil(Math.log2(count));
}

/**
 * The table for one vCPU: APIC id = vCPU index, one package of vcpuCount
 * cores with one thread each, consistent across leaves 1, 4, 0xB and AMD's
 * 0x80000008 / 0x8000001E so Linux's topology code and the ACPI/MP tables agree.
 */
export function vcpuCpuid(base: CpuidTable, apicId: number, vcpuCount: number): CpuidTable {
  const table = base.clone();
  const coreBits = bitsFor(vcpuCount);
  table.update(LEAF_FEATURES, 0, 'ebx', (v) => (v & 0x0000ffff) | (vcpuCount << 16) | (apicId << 24));
  table.update(LEAF_FEATURES, 0, 'edx', (v) => (vcpuCount > 1 ? v | (1 << 28) : v & ~(1 << 28)));
  for (const sub of table.subleaves(LEAF_CACHE_PARAMS)) {
    // EAX[31:26]: cores per package - 1; EAX[25:14]: threads sharing the cache - 1 (one per core).
    table.update(LEAF_CACHE_PARAMS, sub, 'eax', (v) => (v & 0x3fff) | ((vcpuCount - 1) << 26));
  }
  if (table.has(LEAF_EXT_TOPOLOGY)) {
    // KVM lists only subleaf 0; Linux needs the core level too, or every vCPU looks like its own package.
    table.put(LEAF_EXT_TOPOLOGY, 0, { eax: 0, ebx: 1, ecx: (X2APIC_LEVEL_SMT << 8) | 0, edx: apicId });
    table.put(LEAF_EXT_TOPOLOGY, 1, { eax: coreBits, ebx: vcpuCount, ecx: (X2APIC_LEVEL_CORE << 8) | 1, edx: apicId });
    table.put(LEAF_EXT_TOPOLOGY, 2, { eax: 0, ebx: 0, ecx: 2, edx: apicId });
  }
  table.update(LEAF_AMD_SIZES, 0, 'ecx', (v) => (v & ~0xf0ff) | (coreBits << 12) | (vcpuCount - 1));
  if (table.has(LEAF_AMD_TOPOLOGY)) {
    table.set(LEAF_AMD_TOPOLOGY, 0, 'eax', apicId);
    table.set(LEAF_AMD_TOPOLOGY, 0, 'ebx', apicId & 0xff); // compute unit id, one thread per unit
    table.set(LEAF_AMD_TOPOLOGY, 0, 'ecx', 0); // node 0, one node per package
  }
  return table;
}
