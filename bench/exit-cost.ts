/**
 * bench/exit-cost: the cost of one port-I/O exit in our TypeScript VMM (kvm),
 * a minimal C VMM (bench/exit-cost/mini-vmm.c) and QEMU microvm, all booting
 * the same PVH test guest (test/guest, `test=pio-loop count=N`: N `outb` to
 * port 0x80, then a write of 0 to the isa-debug-exit port 0xf4, so every VMM
 * exits with status 1).
 *
 * Method: for each VMM, round-robin across VMMs, run count=N1 and count=N2
 * several times and take the median wall time (spawn to exit) of each.
 *   µs per exit = (median(N2) − median(N1)) / (N2 − N1)
 *   intercept   = median(N1) − N1 × µs per exit
 * The intercept is "process start to guest done, excluding the loop": VMM
 * start-up, guest boot to its first instruction, the banner, and teardown.
 *
 * Usage: node dist/bench/exit-cost.js [--quick] [--rounds N] [--n1 N] [--n2 N]
 *          [--vmm kvm,c-vmm,qemu] [--guest path/to/guest.elf]
 * See bench/exit-cost/README.md.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process';
import { existsSync } from 'node:fs';
import { availableParallelism, loadavg } from 'node:os';
import { dirname, join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

type VmmName = 'kvm' | 'c-vmm' | 'qemu';
const ALL_VMMS: readonly VmmName[] = ['kvm', 'c-vmm', 'qemu'];

/** The exit status of a guest that wrote 0 to the debug-exit port: (0 << 1) | 1. */
const SUCCESS_STATUS = 1;
/** Goal: kvm's cost per exit at most this multiple of the C VMM's. */
const GOAL_VS_C = 1.1;
/** A single run taking longer than this is a hang. */
const RUN_TIMEOUT_MS = 120_000;

interface Options {
  rounds: number;
  n1: number;
  n2: number;
  vmms: VmmName[];
  guest: string | undefined;
}

interface Vmm {
  readonly name: VmmName;
  readonly describe: string;
  /** argv for a run of the guest with the given command line. */
  command(cmdline: string): { file: string; args: string[] };
}

interface Result {
  readonly vmm: Vmm;
  readonly n1Ms: number[];
  readonly n2Ms: number[];
}

class BenchError extends Error {}

function findRepoRoot(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    if (existsSync(join(dir, 'package.json'))) return dir;
    const parent = dirname(dir);
    if (parent === dir) throw new BenchError('cannot find the repository root (no package.json above this script)');
    dir = parent;
  }
}

function usage(): string {
  return [
    'usage: node dist/bench/exit-cost.js [options]',
    '  --quick            fewer rounds and a shorter loop (about 4x faster, noisier)',
    '  --rounds N         interleaved rounds per VMM (default 9, quick 3)',
    '  --n1 N             exits in the short run (default 2000)',
    '  --n2 N             exits in the long run (default 100000, quick 30000)',
    '  --vmm LIST         comma-separated subset of kvm,c-vmm,qemu (default: all)',
    '  --guest ELF        use this PVH guest instead of building test/guest',
  ].join('\n');
}

function parseArgs(argv: readonly string[]): Options {
  let quick = false;
  let rounds: number | undefined;
  let n1: number | undefined;
  let n2: number | undefined;
  let vmms: VmmName[] = [...ALL_VMMS];
  let guest: string | undefined;
  const positiveInt = (flag: string, value: string | undefined): number => {
    const n = Number(value);
    if (value === undefined || !Number.isSafeInteger(n) || n <= 0) throw new BenchError(`${flag} needs a positive integer\n${usage()}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const arg = argv[i]!;
    const [flag, inline] = arg.startsWith('--') && arg.includes('=') ? [arg.slice(0, arg.indexOf('=')), arg.slice(arg.indexOf('=') + 1)] : [arg, undefined];
    const value = (): string | undefined => inline ?? argv[++i];
    switch (flag) {
      case '--quick':
        quick = true;
        break;
      case '--rounds':
        rounds = positiveInt(flag, value());
        break;
      case '--n1':
        n1 = positiveInt(flag, value());
        break;
      case '--n2':
        n2 = positiveInt(flag, value());
        break;
      case '--vmm': {
        const list = (value() ?? '').split(',').filter((s) => s !== '');
        const bad = list.filter((s) => !(ALL_VMMS as readonly string[]).includes(s));
        if (list.length === 0 || bad.length > 0) throw new BenchError(`--vmm takes a list of ${ALL_VMMS.join(',')}\n${usage()}`);
        vmms = ALL_VMMS.filter((v) => list.includes(v));
        break;
      }
      case '--guest':
        guest = value();
        if (guest === undefined) throw new BenchError(`--guest needs a path\n${usage()}`);
        break;
      case '-h':
      case '--help':
        console.log(usage());
        process.exit(0);
      default:
        throw new BenchError(`unknown argument ${arg}\n${usage()}`);
    }
  }
  const opts: Options = {
    rounds: rounds ?? (quick ? 3 : 9),
    n1: n1 ?? 2000,
    n2: n2 ?? (quick ? 30_000 : 100_000),
    vmms,
    guest,
  };
  if (opts.n2 <= opts.n1) throw new BenchError('--n2 must be larger than --n1');
  return opts;
}

/** Runs a setup step whose output goes straight to our stderr. */
function runStep(root: string, file: string, args: string[]): void {
  const r = spawnSync(file, args, { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] });
  if (r.error) throw new BenchError(`${file} ${args.join(' ')}: ${r.error.message}`);
  if (r.status !== 0) throw new BenchError(`${file} ${args.join(' ')} failed (status ${r.status ?? r.signal})`);
}

function haveCommand(name: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${name}`], { stdio: 'ignore' }).status === 0;
}

function makeVmms(root: string, guest: string): Record<VmmName, Vmm> {
  return {
    kvm: {
      name: 'kvm',
      describe: 'node dist/src/cli/main.js run (this project)',
      command: (cmdline) => ({
        file: process.execPath,
        args: [join(root, 'dist/src/cli/main.js'), 'run', '-k', guest, '-p', cmdline],
      }),
    },
    'c-vmm': {
      name: 'c-vmm',
      describe: 'build/bench/mini-vmm (bench/exit-cost/mini-vmm.c, gcc -O2)',
      command: (cmdline) => ({ file: join(root, 'build/bench/mini-vmm'), args: [guest, cmdline] }),
    },
    qemu: {
      name: 'qemu',
      describe: 'qemu-system-x86_64 -M microvm (in-kernel irqchip and PIT, as ours)',
      command: (cmdline) => ({
        file: 'qemu-system-x86_64',
        args: [
          '-M', 'microvm,accel=kvm,x-option-roms=off,rtc=off,acpi=off',
          '-cpu', 'host,-arch-capabilities',
          '-m', '128',
          '-smp', '1',
          '-nodefaults', '-no-user-config',
          '-display', 'none', '-monitor', 'none',
          '-serial', 'stdio',
          '-device', 'isa-debug-exit,iobase=0xf4,iosize=0x01',
          '-kernel', guest,
          '-append', cmdline,
        ],
      }),
    },
  };
}

/** Environment for the VMMs: no debug logging, which would slow the exit path. */
function vmmEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env['DEBUG'];
  return env;
}

/** One run: wall time in ms from spawn to exit; throws unless the guest exited with status 1. */
function timeRun(vmm: Vmm, count: number, env: NodeJS.ProcessEnv): number {
  const { file, args } = vmm.command(`test=pio-loop count=${count}`);
  const start = process.hrtime.bigint();
  const r: SpawnSyncReturns<Buffer> = spawnSync(file, args, {
    stdio: ['ignore', 'pipe', 'pipe'],
    env,
    timeout: RUN_TIMEOUT_MS,
    maxBuffer: 64 << 20,
  });
  const ms = Number(process.hrtime.bigint() - start) / 1e6;
  if (r.error !== undefined || r.status !== SUCCESS_STATUS) {
    const why = r.error !== undefined ? r.error.message : r.signal !== null ? `killed by ${r.signal}` : `exit status ${r.status}`;
    const tail = (b: Buffer | null): string => (b === null ? '' : b.toString('utf8').slice(-4000).trimEnd());
    throw new BenchError(
      [
        `${vmm.name}: run with count=${count} failed (${why}; expected status ${SUCCESS_STATUS})`,
        `command: ${[file, ...args].map((a) => (/[\s']/.test(a) ? `'${a}'` : a)).join(' ')}`,
        `--- stderr ---\n${tail(r.stderr)}`,
        `--- stdout ---\n${tail(r.stdout)}`,
      ].join('\n'),
    );
  }
  return ms;
}

function displayPath(root: string, path: string): string {
  const rel = relative(root, path);
  return rel === '' || rel.startsWith('..') ? path : rel;
}

function median(xs: readonly number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = s.length >> 1;
  return s.length % 2 === 1 ? s[mid]! : (s[mid - 1]! + s[mid]!) / 2;
}

interface Summary {
  readonly vmm: Vmm;
  readonly n1Ms: number;
  readonly n2Ms: number;
  readonly usPerExit: number;
  /** The same from the fastest N1 and N2 runs: less sensitive to other load on the machine. */
  readonly usPerExitMin: number;
  /** Spread of the per-round estimates (N2 − N1 of the same round), µs. */
  readonly usMin: number;
  readonly usMax: number;
  readonly interceptMs: number;
}

function summarize(r: Result, opts: Options): Summary {
  const n1Ms = median(r.n1Ms);
  const n2Ms = median(r.n2Ms);
  const span = opts.n2 - opts.n1;
  const usPerExit = ((n2Ms - n1Ms) * 1000) / span;
  const perRound = r.n1Ms.map((a, i) => ((r.n2Ms[i]! - a) * 1000) / span);
  return {
    vmm: r.vmm,
    n1Ms,
    n2Ms,
    usPerExit,
    usPerExitMin: ((Math.min(...r.n2Ms) - Math.min(...r.n1Ms)) * 1000) / span,
    usMin: Math.min(...perRound),
    usMax: Math.max(...perRound),
    interceptMs: n1Ms - (opts.n1 * usPerExit) / 1000,
  };
}

function table(rows: readonly string[][]): string {
  const widths = rows[0]!.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  return rows.map((r) => r.map((cell, c) => (c === 0 ? cell.padEnd(widths[c]!) : cell.padStart(widths[c]!))).join('  ')).join('\n');
}

function main(): void {
  const opts = parseArgs(process.argv.slice(2));
  const root = findRepoRoot();
  const log = (msg: string): void => void process.stderr.write(`exit-cost: ${msg}\n`);

  // Setup: packages, the C VMM, the guest.
  runStep(root, 'bash', [join(root, 'bench/exit-cost/setup.sh')]);
  if (opts.vmms.includes('c-vmm')) runStep(root, 'bash', [join(root, 'bench/exit-cost/build.sh')]);
  let guest: string;
  if (opts.guest !== undefined) {
    guest = opts.guest;
  } else {
    runStep(root, 'bash', [join(root, 'test/guest/build.sh')]);
    guest = join(root, 'build/guest/test-guest.elf');
  }
  if (!existsSync(guest)) throw new BenchError(`guest ${guest} does not exist`);
  if (opts.vmms.includes('qemu') && !haveCommand('qemu-system-x86_64')) {
    log('qemu-system-x86_64 is not installed (as root: apt-get install -y qemu-system-x86); comparing kvm and the C VMM only');
    opts.vmms = opts.vmms.filter((v) => v !== 'qemu');
  }
  if (opts.vmms.includes('kvm') && !existsSync(join(root, 'dist/src/cli/main.js'))) {
    throw new BenchError('dist/src/cli/main.js is missing: run `npm run build` first (or leave kvm out with --vmm c-vmm,qemu)');
  }

  const all = makeVmms(root, guest);
  const results: Result[] = opts.vmms.map((name) => ({ vmm: all[name], n1Ms: [], n2Ms: [] }));
  const env = vmmEnv();

  const loadAtStart = loadavg()[0]!;
  // One warm-up run each (page cache, first-run costs); it also fails fast on a VMM that does not work.
  for (const r of results) timeRun(r.vmm, opts.n1, env);

  log(`${opts.rounds} rounds of count=${opts.n1} and count=${opts.n2} for ${opts.vmms.join(', ')}, interleaved`);
  for (let round = 0; round < opts.rounds; round++) {
    // Rotate the order each round so no VMM always runs right after another one.
    for (let k = 0; k < results.length; k++) {
      const r = results[(round + k) % results.length]!;
      // Alternate N1/N2 order as well.
      if (round % 2 === 0) {
        r.n1Ms.push(timeRun(r.vmm, opts.n1, env));
        r.n2Ms.push(timeRun(r.vmm, opts.n2, env));
      } else {
        r.n2Ms.push(timeRun(r.vmm, opts.n2, env));
        r.n1Ms.push(timeRun(r.vmm, opts.n1, env));
      }
    }
    log(`round ${round + 1}/${opts.rounds} done`);
  }

  const load = Math.max(loadAtStart, loadavg()[0]!);
  const sums = results.map((r) => summarize(r, opts));
  const f = (x: number, d: number): string => x.toFixed(d);
  console.log(`exit-cost: cost of one port-I/O exit (outb to port 0x80), guest ${displayPath(root, guest)}`);
  console.log(`  median wall time of ${opts.rounds} interleaved runs at count=${opts.n1} (N1) and count=${opts.n2} (N2)`);
  console.log(`  µs/exit = (N2 ms − N1 ms) / ${opts.n2 - opts.n1}; intercept = N1 ms − ${opts.n1} × µs/exit (start to guest done, excluding the loop)`);
  if (load > availableParallelism() / 2) {
    console.log(`  warning: load average ${load.toFixed(1)} on ${availableParallelism()} CPUs: other work competes with the VMMs, numbers are noisy`);
  }
  console.log('');
  console.log(
    table([
      ['VMM', 'N1 ms', 'N2 ms', 'µs/exit', 'intercept ms', 'µs/exit of minima', 'per-round µs/exit'],
      ...sums.map((s) => [
        s.vmm.name,
        f(s.n1Ms, 1),
        f(s.n2Ms, 1),
        f(s.usPerExit, 2),
        f(s.interceptMs, 1),
        f(s.usPerExitMin, 2),
        `${f(s.usMin, 2)}–${f(s.usMax, 2)}`,
      ]),
    ]),
  );
  console.log('');
  for (const s of sums) console.log(`  ${s.vmm.name.padEnd(5)}  ${s.vmm.describe}`);
  console.log('');

  const by = (name: VmmName): Summary | undefined => sums.find((s) => s.vmm.name === name);
  const kvm = by('kvm');
  const c = by('c-vmm');
  const qemu = by('qemu');
  if (kvm !== undefined && c !== undefined) {
    const ratio = kvm.usPerExit / c.usPerExit;
    console.log(
      `ratio kvm/c-vmm: ${f(ratio, 2)} (goal ≤ ${f(GOAL_VS_C, 2)}) ${ratio <= GOAL_VS_C ? 'met' : 'MISSED'}; from minima ${f(kvm.usPerExitMin / c.usPerExitMin, 2)}`,
    );
  }
  if (kvm !== undefined && qemu !== undefined) {
    const ratio = kvm.usPerExit / qemu.usPerExit;
    console.log(`ratio kvm/qemu: ${f(ratio, 2)} (goal < 1) ${ratio < 1 ? 'met' : 'MISSED'}; from minima ${f(kvm.usPerExitMin / qemu.usPerExitMin, 2)}`);
  }
  if (c !== undefined && qemu !== undefined) {
    console.log(`ratio c-vmm/qemu: ${f(c.usPerExit / qemu.usPerExit, 2)} (for reference); from minima ${f(c.usPerExitMin / qemu.usPerExitMin, 2)}`);
  }
  if (kvm !== undefined) {
    console.log(`kvm start to guest done, excluding the loop: ${f(kvm.interceptMs, 1)} ms`);
  }
}

try {
  main();
} catch (e) {
  if (e instanceof BenchError) {
    process.stderr.write(`exit-cost: ${e.message}\n`);
    process.exit(1);
  }
  throw e;
}
