/**
 * The typed configuration of one VM and its validation: everything a user
 * can get wrong is caught here with a one-line message, before KVM is touched.
 */
import { accessSync, constants, statSync } from 'node:fs';
import os from 'node:os';
import { parseCpuFeatures, type CpuFeatureEdits } from './vmm/cpuid.js';
import type { HostQuirksMode } from './vmm/host-quirks.js';
import type { DiskSpec } from './disk/disk-spec.js';
import { NetError } from './net/net-error.js';
import { checkInterfaceName, parseMac, type NetSpec } from './net/net-spec.js';

export type ConfigErrorKind = 'missing-file' | 'unreadable-file' | 'not-a-file' | 'empty-file' | 'bad-value';

export class ConfigError extends Error {
  constructor(
    readonly kind: ConfigErrorKind,
    message: string,
  ) {
    super(message);
    this.name = 'ConfigError';
  }
}

export type ConsoleKind = 'serial' | 'virtio';
export type TransportKind = 'pci' | 'mmio';

export interface VmConfig {
  /** Path of the kernel: bzImage, ELF vmlinux, or any ELF with a PVH note. */
  readonly kernel: string;
  readonly initrd?: string;
  /** Kernel command line, appended after the defaults (later words win in Linux). */
  readonly cmdline?: string;
  readonly memoryBytes: number;
  readonly cpus: number;
  readonly console: ConsoleKind;
  /** End the run with status 124 after this many seconds. */
  readonly timeoutSeconds?: number;
  /** "-cx16,+x2apic": CPUID features to hide or require, as named in /proc/cpuinfo. */
  readonly cpuFeatures?: string;
  /** Where the console writes (default 1, stdout): the serial port, and virtio-console when chosen. */
  readonly serialOutputFd?: number;
  /** Add a virtio-rng device. */
  readonly rng?: boolean;
  /** virtio-net devices, one per host TAP. */
  readonly net?: readonly NetSpec[];
  /** virtio-blk devices, vda, vdb, … in this order. */
  readonly disks?: readonly DiskSpec[];
  /** Transport of every virtio device (default pci). */
  readonly transport?: TransportKind;
  /** Work-arounds for nested PVM hosts: auto (default) turns them on only where kvm_pvm is loaded. */
  readonly hostQuirks?: HostQuirksMode;
}

export const DEFAULT_MEMORY_BYTES = 256 * 2 ** 20;
/** Below this the boot structures, a kernel and its stack do not fit. */
export const MIN_MEMORY_BYTES = 2 * 2 ** 20;

/** Parses "512", "512M", "2G", "65536K" (MiB when no suffix, as kvmtool and QEMU do). */
export function parseMemorySize(text: string): number {
  const match = /^(\d+)([KMGT]?)(i?B)?$/i.exec(text.trim());
  if (!match) throw new ConfigError('bad-value', `memory size "${text}" is not a number with an optional K, M or G suffix`);
  const units: Record<string, number> = { '': 2 ** 20, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30, T: 2 ** 40 };
  const bytes = Number(match[1]) * units[match[2]!.toUpperCase()]!;
  if (!Number.isSafeInteger(bytes)) throw new ConfigError('bad-value', `memory size "${text}" is too large`);
  return bytes;
}

function checkReadableFile(what: string, path: string): void {
  let stat;
  try {
    stat = statSync(path);
  } catch {
    throw new ConfigError('missing-file', `${what} ${path}: no such file`);
  }
  if (!stat.isFile() && !stat.isBlockDevice()) throw new ConfigError('not-a-file', `${what} ${path}: not a regular file`);
  try {
    accessSync(path, constants.R_OK);
  } catch {
    throw new ConfigError('unreadable-file', `${what} ${path}: permission denied`);
  }
  if (stat.isFile() && stat.size === 0) throw new ConfigError('empty-file', `${what} ${path}: file is empty`);
}

export interface ValidatedConfig extends VmConfig {
  readonly cpuFeatureEdits: CpuFeatureEdits;
}

export function validateConfig(config: VmConfig): ValidatedConfig {
  checkReadableFile('kernel', config.kernel);
  if (config.initrd !== undefined) checkReadableFile('initrd', config.initrd);
  if (!Number.isSafeInteger(config.memoryBytes) || config.memoryBytes <= 0) {
    throw new ConfigError('bad-value', 'memory size must be greater than 0');
  }
  if (config.memoryBytes < MIN_MEMORY_BYTES) {
    throw new ConfigError('bad-value', `memory size ${config.memoryBytes} bytes is below the minimum of 2 MiB`);
  }
  if (config.memoryBytes % 4096 !== 0) throw new ConfigError('bad-value', 'memory size must be a multiple of 4 KiB');
  const hostBytes = os.totalmem();
  if (config.memoryBytes > hostBytes) {
    throw new ConfigError(
      'bad-value',
      `memory size ${Math.round(config.memoryBytes / 2 ** 20)} MiB is larger than this host's ${Math.floor(hostBytes / 2 ** 20)} MiB`,
    );
  }
  if (!Number.isInteger(config.cpus) || config.cpus < 1) throw new ConfigError('bad-value', 'cpus must be at least 1');
  if (config.console !== 'serial' && config.console !== 'virtio') {
    throw new ConfigError('bad-value', `console "${String(config.console)}" is not serial or virtio`);
  }
  if (config.transport !== undefined && config.transport !== 'pci' && config.transport !== 'mmio') {
    throw new ConfigError('bad-value', `transport "${String(config.transport)}" is not pci or mmio`);
  }
  if (config.hostQuirks !== undefined && !['auto', 'on', 'off'].includes(config.hostQuirks)) {
    throw new ConfigError('bad-value', `host quirks "${String(config.hostQuirks)}" is not auto, on or off`);
  }
  if (config.timeoutSeconds !== undefined && !(config.timeoutSeconds > 0)) {
    throw new ConfigError('bad-value', 'timeout must be a positive number of seconds');
  }
  validateNetSpecs(config.net ?? []);
  let cpuFeatureEdits: CpuFeatureEdits = { remove: [], add: [] };
  if (config.cpuFeatures !== undefined) {
    try {
      cpuFeatureEdits = parseCpuFeatures(config.cpuFeatures);
    } catch (error) {
      throw new ConfigError('bad-value', (error as Error).message);
    }
  }
  return { ...config, cpuFeatureEdits };
}

/** Each TAP once, with a valid name and MAC (throws NetError, status 2). */
function validateNetSpecs(specs: readonly NetSpec[]): void {
  const seen = new Set<string>();
  for (const spec of specs) {
    checkInterfaceName(spec.tap);
    if (spec.mac !== undefined) parseMac(spec.mac);
    if (seen.has(spec.tap)) throw new NetError('bad-option', `--net: TAP ${spec.tap} is named twice`);
    seen.add(spec.tap);
  }
}

/** Default kernel parameters, before the user's: the console, i8042 reset, reboot at once on panic. */
export function kernelCommandLine(config: VmConfig): string {
  const user = config.cmdline?.trim() ?? '';
  const defaults: string[] = [];
  if (!/(^|\s)console=/.test(user)) defaults.push(config.console === 'virtio' ? 'console=hvc0' : 'console=ttyS0');
  if (!/(^|\s)reboot=/.test(user)) defaults.push('reboot=k');
  if (!/(^|\s)panic=/.test(user)) defaults.push('panic=-1');
  return [...defaults, user].filter(Boolean).join(' ');
}
