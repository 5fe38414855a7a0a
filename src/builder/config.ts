/**
 * The typed configuration of one VM and its validation: everything a user
 * can get wrong is caught here with a one-line message, before KVM is touched,
 * and validation returns the config with every default filled in.
 */
import { accessSync, closeSync, constants, openSync, readSync, statSync } from 'node:fs';
import os from 'node:os';
import { fileErrorReason, systemError } from '../base/error-exit.js';
import { EXIT_INVALID_ARGUMENTS } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';
import { MAX_CPUS } from '../boot/acpi/firmware-description.js';
import { KERNEL_HEADER_BYTES, checkKernelFormat } from '../boot/kernel-format.js';
import { CONSOLE_QUEUES, NET_QUEUES, RNG_QUEUES, checkDevicesFit } from './device-placement.js';
import { parseCpuFeatures, type CpuFeatureEdits } from '../vmm/cpuid.js';
import type { HostQuirksMode } from '../vmm/host-quirks.js';
import { checkDiskPath, checkDistinctDisks } from '../disk/disk-check.js';
import { MAX_DISK_QUEUES, diskName, type DiskSpec } from '../disk/disk-spec.js';
import { NetError } from '../net/net-error.js';
import { checkInterfaceName, parseMac, type NetSpec } from '../net/net-spec.js';

export type ConfigErrorKind = 'missing-file' | 'unreadable-file' | 'not-a-file' | 'empty-file' | 'bad-value';

/** Something wrong in a VmConfig (a file, a size, a count): status 2. */
export class ConfigError extends VmmError<ConfigErrorKind> {
  constructor(kind: ConfigErrorKind, message: string, options: { cause?: unknown } = {}) {
    super(kind, message, { ...options, status: EXIT_INVALID_ARGUMENTS });
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

/** The longest --timeout a Node timer can honour: setTimeout takes at most 2^31 − 1 ms. */
export const MAX_TIMEOUT_SECONDS = Math.floor((2 ** 31 - 1) / 1000);

function checkReadableFile(what: string, path: string): void {
  if (path === '') throw new ConfigError('missing-file', `${what}: empty path`);
  let stat;
  try {
    stat = statSync(path);
  } catch (error) {
    const system = systemError(error);
    const missing = system?.code === 'ENOENT' || system?.code === 'ENOTDIR';
    const reason = system ? fileErrorReason(system) : (error as Error).message;
    throw new ConfigError(missing ? 'missing-file' : 'unreadable-file', `${what} ${path}: ${missing ? 'no such file' : reason}`, { cause: error });
  }
  if (stat.isDirectory()) throw new ConfigError('not-a-file', `${what} ${path}: a directory, not a regular file`);
  if (!stat.isFile() && !stat.isBlockDevice()) throw new ConfigError('not-a-file', `${what} ${path}: not a regular file`);
  try {
    accessSync(path, constants.R_OK);
  } catch (error) {
    throw new ConfigError('unreadable-file', `${what} ${path}: permission denied`, { cause: error });
  }
  if (stat.isFile() && stat.size === 0) throw new ConfigError('empty-file', `${what} ${path}: file is empty`);
}

/** A disk as a validated config has it: its queue count decided. */
export interface ValidDiskSpec extends DiskSpec {
  readonly queues: number;
}

/** What validateConfig returns: every field checked and defaulted; VirtualMachine.create takes it as it is. */
export interface ValidConfig {
  readonly kernel: string;
  readonly initrd: string | undefined;
  /** The user's parameters only (kernelCommandLine adds the defaults). */
  readonly cmdline: string;
  readonly memoryBytes: number;
  readonly cpus: number;
  readonly console: ConsoleKind;
  readonly timeoutSeconds: number | undefined;
  readonly cpuFeatureEdits: CpuFeatureEdits;
  readonly serialOutputFd: number;
  readonly rng: boolean;
  readonly net: readonly NetSpec[];
  readonly disks: readonly ValidDiskSpec[];
  readonly transport: TransportKind;
  readonly hostQuirks: HostQuirksMode;
}

/** A kernel that is neither an ELF nor a bzImage is refused here, before KVM is opened: its header is enough. */
function checkKernelFile(path: string): void {
  const head = new Uint8Array(KERNEL_HEADER_BYTES);
  const fd = openSync(path, 'r');
  let length: number;
  try {
    length = readSync(fd, head, 0, head.length, 0);
  } finally {
    closeSync(fd);
  }
  checkKernelFormat(head.subarray(0, length));
}

/** The configs validateConfig built (frozen, so still valid): VirtualMachine.create does not check them again. */
const validated = new WeakSet<object>();

export function isValidConfig(config: VmConfig | ValidConfig): config is ValidConfig {
  return validated.has(config);
}

/**
 * Checks everything a user can get wrong in a config — files, sizes, counts, names, duplicates,
 * devices beyond what the transport can place — without touching KVM, and fills in every
 * default. Throws a VmmError with status 2 (ConfigError, NetError, DiskError, TransportError).
 */
export function validateConfig(config: VmConfig | ValidConfig): ValidConfig {
  if (isValidConfig(config)) return config;
  checkReadableFile('kernel', config.kernel);
  checkKernelFile(config.kernel);
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
  if (config.cpus > MAX_CPUS) {
    throw new ConfigError('bad-value', `${config.cpus} vCPUs requested; at most ${MAX_CPUS} (the xAPIC ids the firmware tables can number)`);
  }
  if (config.console !== 'serial' && config.console !== 'virtio') {
    throw new ConfigError('bad-value', `console "${String(config.console)}" is not serial or virtio`);
  }
  const transport = config.transport ?? 'pci';
  if (transport !== 'pci' && transport !== 'mmio') {
    throw new ConfigError('bad-value', `transport "${String(transport)}" is not pci or mmio`);
  }
  const hostQuirks = config.hostQuirks ?? 'auto';
  if (!['auto', 'on', 'off'].includes(hostQuirks)) {
    throw new ConfigError('bad-value', `host quirks "${String(hostQuirks)}" is not auto, on or off`);
  }
  const timeoutSeconds = config.timeoutSeconds;
  if (timeoutSeconds !== undefined && !(timeoutSeconds > 0)) {
    throw new ConfigError('bad-value', 'timeout must be a positive number of seconds');
  }
  if (timeoutSeconds !== undefined && timeoutSeconds > MAX_TIMEOUT_SECONDS) {
    throw new ConfigError('bad-value', `timeout ${timeoutSeconds} s is longer than the longest supported, ${MAX_TIMEOUT_SECONDS} s (24 days)`);
  }
  const serialOutputFd = config.serialOutputFd ?? 1;
  if (!Number.isInteger(serialOutputFd) || serialOutputFd < 0) {
    throw new ConfigError('bad-value', `serial output fd ${String(serialOutputFd)} is not a file descriptor`);
  }
  const net = config.net ?? [];
  validateNetSpecs(net);
  const disks = (config.disks ?? []).map((spec): ValidDiskSpec => ({
    ...spec,
    queues: spec.queues ?? Math.min(config.cpus, MAX_DISK_QUEUES),
  }));
  checkDistinctDisks(disks);
  disks.forEach(checkDiskPath);
  let cpuFeatureEdits: CpuFeatureEdits = { remove: [], add: [] };
  if (config.cpuFeatures !== undefined) cpuFeatureEdits = parseCpuFeatures(config.cpuFeatures);
  const rng = config.rng ?? false;
  checkDevicesFit(transport, [
    ...(config.console === 'virtio' ? [{ name: 'virtio-console', queues: CONSOLE_QUEUES }] : []),
    ...(rng ? [{ name: 'virtio-rng', queues: RNG_QUEUES }] : []),
    ...net.map((spec) => ({ name: `virtio-net:${spec.tap}`, queues: NET_QUEUES })),
    ...disks.map((spec, i) => ({ name: `virtio-blk:${diskName(i)}`, queues: spec.queues })),
  ]);
  const valid: ValidConfig = Object.freeze({
    kernel: config.kernel,
    initrd: config.initrd,
    cmdline: config.cmdline?.trim() ?? '',
    memoryBytes: config.memoryBytes,
    cpus: config.cpus,
    console: config.console,
    timeoutSeconds,
    cpuFeatureEdits,
    serialOutputFd,
    rng,
    net: Object.freeze(net.map((spec) => Object.freeze({ ...spec }))),
    disks: Object.freeze(disks.map((spec) => Object.freeze(spec))),
    transport,
    hostQuirks,
  });
  validated.add(valid);
  return valid;
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
export function kernelCommandLine(config: Pick<VmConfig, 'cmdline' | 'console'>): string {
  const user = config.cmdline?.trim() ?? '';
  const defaults: string[] = [];
  if (!/(^|\s)console=/.test(user)) defaults.push(config.console === 'virtio' ? 'console=hvc0' : 'console=ttyS0');
  if (!/(^|\s)reboot=/.test(user)) defaults.push('reboot=k');
  if (!/(^|\s)panic=/.test(user)) defaults.push('panic=-1');
  return [...defaults, user].filter(Boolean).join(' ');
}
