/**
 * `kvm run` flags (kvmtool's short flags, with long aliases) → VmConfig.
 * Every mistake becomes a UsageError with one line that names the flag.
 */
import { accessSync, constants as fsConstants, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { fileErrorReason, systemError } from '../base/error-exit.js';
import { EXIT_INVALID_ARGUMENTS } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';
import type { HostQuirksMode } from '../vmm/host-quirks.js';
import { ConfigError, DEFAULT_MEMORY_BYTES, MAX_TIMEOUT_SECONDS, parseMemorySize, type ConsoleKind, type TransportKind, type VmConfig } from '../builder/config.js';
import { NetError } from '../net/net-error.js';
import { parseNetOption, type NetSpec } from '../net/net-spec.js';
import { DiskError } from '../disk/disk-error.js';
import { parseDiskSpec, type DiskSpec } from '../disk/disk-spec.js';

/** A bad command line: status 2. */
export class UsageError extends VmmError<'usage'> {
  constructor(message: string, options: { cause?: unknown } = {}) {
    super('usage', message, { ...options, status: EXIT_INVALID_ARGUMENTS });
  }
}

export type Command =
  | { readonly kind: 'help'; readonly topic: 'main' | 'run' }
  | { readonly kind: 'version' }
  | { readonly kind: 'run'; readonly config: VmConfig; readonly metricsPath?: string };

const runOptions = {
  kernel: { type: 'string', short: 'k' },
  initrd: { type: 'string', short: 'i' },
  params: { type: 'string', short: 'p', multiple: true },
  cmdline: { type: 'string', multiple: true },
  append: { type: 'string', multiple: true },
  mem: { type: 'string', short: 'm' },
  cpus: { type: 'string', short: 'c' },
  console: { type: 'string' },
  timeout: { type: 'string' },
  'cpu-features': { type: 'string' },
  rng: { type: 'boolean' },
  'host-quirks': { type: 'string' },
  transport: { type: 'string' },
  net: { type: 'string', short: 'n', multiple: true },
  disk: { type: 'string', short: 'd', multiple: true },
  metrics: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const;

/** How the user spelled each option that takes a value ("-m" or "--mem"), for messages. */
type Spelling = ReadonlyMap<string, string>;

/** Options that take a value, by every spelling: "--mem" and "-m" → "mem". */
const VALUE_OPTIONS = new Map<string, string>(
  Object.entries(runOptions).flatMap(([name, option]) =>
    option.type === 'string' ? [[`--${name}`, name] as const, ...('short' in option ? [[`-${option.short}`, name] as const] : [])] : [],
  ),
);
const FLAG_OPTIONS = new Set(Object.entries(runOptions).flatMap(([name, option]) => (option.type === 'boolean' ? [`--${name}`] : [])));

/**
 * An option that takes a value takes the next argument whatever it looks like, so
 * `--cpu-features -cx16,-xsave` and `-m -5` reach our own checks (parseArgs refuses a value
 * that starts with '-' unless it is written `--opt=value`). Returns the arguments with every
 * such pair joined as `--name=value`, and how each option was spelled.
 */
function joinOptionValues(args: readonly string[]): { args: string[]; spelling: Spelling } {
  const joined: string[] = [];
  const spelling = new Map<string, string>();
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') {
      joined.push(...args.slice(i));
      break;
    }
    const eq = arg.startsWith('--') ? arg.indexOf('=') : -1;
    const flag = eq >= 0 ? arg.slice(0, eq) : arg;
    const name = VALUE_OPTIONS.get(flag);
    if (name !== undefined) {
      spelling.set(name, flag);
      if (eq >= 0) {
        joined.push(arg);
        continue;
      }
      const value = args[i + 1];
      if (value === undefined) throw new UsageError(`${flag} needs a value (try: kvm run --help)`);
      joined.push(`--${name}=${value}`);
      i++;
      continue;
    }
    if (eq >= 0 && FLAG_OPTIONS.has(flag)) throw new UsageError(`${flag} takes no value`);
    // A short option with its value attached: -m512.
    const attached = /^-([A-Za-z])./.exec(arg);
    const shortName = attached ? VALUE_OPTIONS.get(`-${attached[1]}`) : undefined;
    if (shortName !== undefined) spelling.set(shortName, `-${attached![1]}`);
    joined.push(arg);
  }
  return { args: joined, spelling };
}

function parseRunArgs(rest: readonly string[]): { values: ReturnType<typeof parseRunOptions>; spelling: Spelling } {
  const { args, spelling } = joinOptionValues(rest);
  try {
    return { values: parseRunOptions(args), spelling };
  } catch (error) {
    const { code, message } = error as { code?: string; message: string };
    const quoted = /'([^']+)'/.exec(message)?.[1] ?? '';
    if (code === 'ERR_PARSE_ARGS_UNKNOWN_OPTION') throw new UsageError(`unknown option ${quoted} (try: kvm run --help)`);
    if (code === 'ERR_PARSE_ARGS_UNEXPECTED_POSITIONAL') throw new UsageError(`unexpected argument "${quoted}" (try: kvm run --help)`);
    if (code === 'ERR_PARSE_ARGS_INVALID_OPTION_VALUE') throw new UsageError(`bad value for ${quoted.split(',')[0]} (try: kvm run --help)`);
    throw new UsageError(`cannot read the options (try: kvm run --help)`, { cause: error });
  }
}

function parseRunOptions(args: string[]) {
  return parseArgs({ args, options: runOptions, strict: true, allowPositionals: false }).values;
}

function wholeNumber(flag: string, text: string): number {
  if (!/^\d+$/.test(text)) throw new UsageError(`${flag} "${text}" is not a whole number`);
  return Number(text);
}

export function parseCommand(argv: readonly string[]): Command {
  const [command, ...rest] = argv;
  if (command === undefined || command === '-h' || command === '--help' || command === 'help') {
    return { kind: 'help', topic: rest[0] === 'run' ? 'run' : 'main' };
  }
  if (command === '-V' || command === '--version' || command === 'version') return { kind: 'version' };
  if (command !== 'run') throw new UsageError(`unknown command "${command}" (try: kvm run --help)`);

  const { values, spelling } = parseRunArgs(rest);
  const flag = (name: keyof typeof runOptions): string => spelling.get(name) ?? `--${name}`;
  if (values.help) return { kind: 'help', topic: 'run' };
  if (values.kernel === undefined) throw new UsageError('missing --kernel (-k): the kernel to boot');
  if (values.kernel === '') throw new UsageError(`${flag('kernel')} needs a file path`);
  if (values.initrd === '') throw new UsageError(`${flag('initrd')} needs a file path`);

  let memoryBytes = DEFAULT_MEMORY_BYTES;
  if (values.mem !== undefined) {
    try {
      memoryBytes = parseMemorySize(values.mem);
    } catch (error) {
      throw new UsageError(`${flag('mem')}: ${(error as ConfigError).message}`);
    }
  }
  const cpus = values.cpus !== undefined ? wholeNumber(flag('cpus'), values.cpus) : 1;
  const consoleKind = values.console ?? 'serial';
  if (consoleKind !== 'serial' && consoleKind !== 'virtio') {
    throw new UsageError(`--console "${consoleKind}" is not serial or virtio`);
  }
  const transport = values.transport ?? 'pci';
  if (transport !== 'pci' && transport !== 'mmio') throw new UsageError(`--transport "${transport}" is not pci or mmio`);
  const hostQuirks = values['host-quirks'] ?? 'auto';
  if (hostQuirks !== 'auto' && hostQuirks !== 'on' && hostQuirks !== 'off') {
    throw new UsageError(`--host-quirks "${hostQuirks}" is not auto, on or off`);
  }
  let timeoutSeconds: number | undefined;
  if (values.timeout !== undefined) {
    timeoutSeconds = Number(values.timeout);
    if (!/^\d+(\.\d+)?$/.test(values.timeout) || !(timeoutSeconds > 0)) {
      throw new UsageError(`--timeout "${values.timeout}" is not a positive number of seconds`);
    }
    if (timeoutSeconds > MAX_TIMEOUT_SECONDS) {
      throw new UsageError(`--timeout ${values.timeout} is longer than the longest supported, ${MAX_TIMEOUT_SECONDS} s (24 days)`);
    }
  }
  if (values['cpu-features'] === '') throw new UsageError('--cpu-features needs a list, e.g. -cx16,-xsave');
  let net: NetSpec[] = [];
  try {
    net = (values.net ?? []).map(parseNetOption);
  } catch (error) {
    if (error instanceof NetError) throw new UsageError(error.message);
    throw error;
  }
  let disks: DiskSpec[] = [];
  try {
    disks = (values.disk ?? []).map(parseDiskSpec);
  } catch (error) {
    if (error instanceof DiskError) throw new UsageError(`${flag('disk')}: ${error.message}`);
    throw error;
  }
  const params = [...(values.params ?? []), ...(values.cmdline ?? []), ...(values.append ?? [])];
  if (values.metrics === '') throw new UsageError('--metrics needs a file path');
  return {
    kind: 'run',
    ...(values.metrics !== undefined ? { metricsPath: values.metrics } : {}),
    config: {
      kernel: values.kernel,
      ...(values.initrd !== undefined ? { initrd: values.initrd } : {}),
      ...(params.length ? { cmdline: params.join(' ') } : {}),
      memoryBytes,
      cpus,
      console: consoleKind as ConsoleKind,
      ...(timeoutSeconds !== undefined ? { timeoutSeconds } : {}),
      ...(values['cpu-features'] !== undefined ? { cpuFeatures: values['cpu-features'] } : {}),
      ...(values.rng ? { rng: true } : {}),
      ...(net.length ? { net } : {}),
      ...(disks.length ? { disks } : {}),
      transport: transport as TransportKind,
      hostQuirks: hostQuirks as HostQuirksMode,
    },
  };
}

/**
 * Where --metrics will write at the end of the run: refused now (status 2) unless it is a
 * regular file or a new name in a directory this process may write, so the metrics of a
 * run are never lost at its end.
 */
export function checkMetricsPath(file: string): void {
  let stat;
  try {
    stat = statSync(file);
  } catch (error) {
    const system = systemError(error);
    if (system?.code !== 'ENOENT') {
      throw new UsageError(`--metrics ${file}: ${system ? fileErrorReason(system) : (error as Error).message}`, { cause: error });
    }
  }
  if (stat?.isDirectory()) throw new UsageError(`--metrics ${file}: a directory; name the file to write`);
  if (stat && !stat.isFile()) throw new UsageError(`--metrics ${file}: not a regular file`);
  const target = stat ? file : dirname(resolve(file));
  try {
    accessSync(target, fsConstants.W_OK);
  } catch (error) {
    const system = systemError(error);
    throw new UsageError(`--metrics ${file}: cannot write ${target}: ${system ? fileErrorReason(system) : (error as Error).message}`, {
      cause: error,
    });
  }
}

export const MAIN_HELP = `kvm — a lightweight KVM virtual machine monitor

usage: kvm run -k KERNEL [options]     boot a kernel (kvm run --help for options)
       kvm --help | --version

On hosts with QEMU installed, /usr/bin/kvm is QEMU: call this tool as
\`npx kvm\`, through its alias \`kvm-ts\`, or by its path in node_modules/.bin.
`;

export const RUN_HELP = `usage: kvm run -k KERNEL [options]

  -k, --kernel PATH        kernel: bzImage, ELF vmlinux, or any ELF with a PVH note
                           (PVH is used when the note is present)
  -i, --initrd PATH        initial ramdisk
  -p, --params STRING      kernel command line (also --cmdline, --append);
                           appended to the defaults "console=ttyS0 reboot=k panic=-1",
                           each default left out when you give that parameter
  -m, --mem SIZE           guest RAM, MiB unless suffixed K, M or G (default 256M)
  -c, --cpus N             number of vCPUs (default 1)
      --console KIND       serial (8250 UART on ttyS0) or virtio (virtio-console, hvc0;
                           the UART stays for early output)
      --rng                add a virtio-rng device (entropy from the host)
  -n, --net TAP            add a virtio-net device on host TAP interface TAP (also
                           tap=TAP[,mac=MAC]; repeatable). An existing TAP is attached
                           (one made with \`ip tuntap add TAP mode tap user USER\` works
                           without privileges); a missing one is created when allowed
                           and goes away with the VM. MAC defaults to a locally
                           administered address derived from the TAP name.
  -d, --disk PATH[,ro][,direct][,serial=ID][,queues=N]
                           add a virtio-blk disk (vda, vdb, … in order; repeatable):
                           a raw image file or a block device. ro: read-only;
                           direct: O_DIRECT, no host page cache (except requests at
                           unaligned offsets or with misaligned buffers over 4 MiB);
                           serial: GET_ID string (default: file name and a hash of
                           its path); queues: request queues (default one per vCPU,
                           at most 64), a data-plane thread each (at most 8 per
                           disk). A read-write disk is locked against other VMMs.
      --transport KIND     pci (default) or mmio, for every virtio device; MMIO
                           devices are announced with virtio_mmio.device= parameters
      --timeout SECONDS    end the run with status 124 after this long (at most
                           2147483 s, about 24 days)
      --metrics PATH       when the run ends, write JSON to file PATH (checked before
                           the VM starts: not a directory, writable): the exit status and
                           reason, and every virtio device's counters (requests,
                           bytes, frames, drops by reason; per data-plane thread too
                           for disks with several queues)
      --cpu-features LIST  hide or require CPUID features, e.g. -cx16,-xsave,+x2apic
                           (names as in /proc/cpuinfo)
      --host-quirks MODE   auto (default), on or off: on nested PVM hosts (kvm_pvm
                           loaded) finish int3/fwait, hide hypercall features and
                           CX16, and give Linux kernels the parameters that host's
                           emulator needs (noxsave, clearcpuid=…; see README)
  -h, --help               this help

An option that takes a value takes the next argument even when it starts with
'-': --cpu-features -cx16,-xsave.

Console: the guest's serial port is stdin/stdout; on a terminal, Ctrl-A x quits
and Ctrl-A Ctrl-A sends Ctrl-A.

Exit status:
    0   guest powered off (ACPI S5) or halted (or Ctrl-A x)
    2   invalid arguments or configuration (bad flag, file, size, kernel format,
        MAC address, no such TAP or not a TAP, unusable disk)
    4   host error (no usable /dev/kvm, permission, I/O failure, TAP busy or not
        permitted, no /dev/net/tun, disk in use by another VMM)
   32   guest reset (i8042 reset, ACPI reset register)
   34   guest panic (pvpanic)
   36   guest crash (triple fault, emulation failure, unhandled exit)
  124   --timeout expired
  128+N killed by signal N (130 for SIGINT, 143 for SIGTERM)
  odd   (v << 1) | 1: the guest wrote v to the debug-exit port 0xf4 (QEMU's isa-debug-exit)
`;
