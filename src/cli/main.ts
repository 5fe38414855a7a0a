#!/usr/bin/env node
/**
 * The `kvm` command: parse flags, build the VM through the library API, wire
 * the console and signals, and exit with the documented status. Every error
 * ends here as one line, `kvm: <message>`, with the status errorToExit gives it.
 */
import createDebug from 'debug';
import { readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, constants } from 'node:os';
import { errorToExit } from '../base/error-exit.js';
import { EXIT_POWER_OFF } from '../base/exit-status.js';
import { prewarmVcpuThreads, releaseVcpuThreads } from '../vmm/vcpu-threads.js';
import { validateConfig } from '../builder/config.js';
import type { VirtualMachine } from '../builder/vm.js';
import { MAIN_HELP, RUN_HELP, checkMetricsPath, parseCommand } from './args.js';
import { TerminalConsole } from './terminal.js';

const log = createDebug('kvm:cli');

function fail(message: string, status: number): never {
  process.stderr.write(`kvm: ${message}\n`);
  process.exit(status);
}

async function main(argv: readonly string[]): Promise<void> {
  const command = parseCommand(argv);
  if (command.kind === 'help') {
    process.stdout.write(command.topic === 'run' ? RUN_HELP : MAIN_HELP);
    return;
  }
  if (command.kind === 'version') {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`kvm ${pkg.version}\n`);
    return;
  }

  // Every mistake in the command line or the files it names is caught here (status 2),
  // before any thread or native module exists and before /dev/kvm is opened.
  const config = validateConfig(command.config);
  const { metricsPath } = command;
  if (metricsPath !== undefined) checkMetricsPath(metricsPath);
  // vCPU threads boot Node and koffi while this thread loads the VMM.
  // Only for counts KVM will accept (its recommended limit is the host's CPU count).
  if (config.cpus <= availableParallelism()) prewarmVcpuThreads(config.cpus);
  const { VirtualMachine } = await import('../builder/vm.js');
  let vm: VirtualMachine;
  try {
    vm = await VirtualMachine.create(config);
  } catch (error) {
    await releaseVcpuThreads();
    throw error;
  }
  const terminal = new TerminalConsole(process.stdin, {
    input: (bytes) => vm.sendConsoleInput(bytes),
    quit: () => vm.stop({ status: EXIT_POWER_OFF, reason: 'quit from the console (Ctrl-A x)' }),
  });
  process.on('exit', () => terminal.restore());
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => vm.stop({ status: 128 + constants.signals[signal], reason: `received ${signal}` }));
  }
  terminal.attach();
  vm.start();
  const exit = await vm.wait();
  terminal.detach();
  if (metricsPath !== undefined) {
    try {
      writeFileSync(metricsPath, `${JSON.stringify({ status: exit.status, reason: exit.reason, devices: vm.deviceCounters(), dataPlaneThreads: vm.dataPlaneThreadCounters() }, null, 2)}\n`);
    } catch (error) {
      process.stderr.write(`kvm: --metrics: cannot write ${metricsPath}: ${errorToExit(error).message}\n`);
    }
  }
  if (process.env.KVM_REPORT_EXIT || exit.status % 2 === 0 && exit.status !== EXIT_POWER_OFF) {
    process.stderr.write(`kvm: ${exit.reason} (status ${exit.status})\n`);
  }
  process.exit(exit.status);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  log('%O', error);
  const { status, message } = errorToExit(error);
  fail(message, status);
});
