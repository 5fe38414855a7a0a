#!/usr/bin/env node
/**
 * The `kvm` command: parse flags, build the VM through the library API, wire
 * the console and signals, and exit with the documented status.
 */
import { accessSync, constants as fsConstants, readFileSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { availableParallelism, constants } from 'node:os';
import { EXIT_HOST_ERROR, EXIT_INVALID_ARGUMENTS, EXIT_POWER_OFF } from '../base/exit-status.js';
import { prewarmVcpuThreads, releaseVcpuThreads } from '../vmm/vcpu-threads.js';
import { ConfigError, validateConfig } from '../config.js';
import type { VirtualMachine } from '../vm.js';
import { MAIN_HELP, RUN_HELP, UsageError, parseCommand } from './args.js';
import { TerminalConsole } from './terminal.js';

function fail(message: string, status: number): never {
  process.stderr.write(`kvm: ${message}\n`);
  process.exit(status);
}

async function main(argv: readonly string[]): Promise<void> {
  let command;
  try {
    command = parseCommand(argv);
  } catch (error) {
    if (error instanceof UsageError) fail(error.message, EXIT_INVALID_ARGUMENTS);
    throw error;
  }
  if (command.kind === 'help') {
    process.stdout.write(command.topic === 'run' ? RUN_HELP : MAIN_HELP);
    return;
  }
  if (command.kind === 'version') {
    const pkg = JSON.parse(readFileSync(new URL('../../../package.json', import.meta.url), 'utf8')) as { version: string };
    process.stdout.write(`kvm ${pkg.version}\n`);
    return;
  }

  // Most mistakes are caught here, before any thread or native module exists.
  try {
    validateConfig(command.config);
  } catch (error) {
    if (error instanceof ConfigError) fail(error.message, EXIT_INVALID_ARGUMENTS);
    throw error;
  }
  const { metricsPath } = command;
  if (metricsPath !== undefined) {
    try {
      accessSync(dirname(resolve(metricsPath)), fsConstants.W_OK);
    } catch (error) {
      fail(`--metrics: cannot write ${metricsPath}: ${(error as NodeJS.ErrnoException).code ?? 'error'}`, EXIT_INVALID_ARGUMENTS);
    }
  }
  // vCPU threads boot Node and koffi while this thread loads the VMM.
  // Only for counts KVM will accept (its recommended limit is the host's CPU count).
  if (command.config.cpus <= availableParallelism()) prewarmVcpuThreads(command.config.cpus);
  const { VirtualMachine, messageForError, statusForError } = await import('../vm.js');
  let vm: VirtualMachine;
  try {
    vm = await VirtualMachine.create(command.config);
  } catch (error) {
    await releaseVcpuThreads();
    fail(messageForError(error), statusForError(error));
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
      process.stderr.write(`kvm: --metrics: cannot write ${metricsPath}: ${(error as Error).message}\n`);
    }
  }
  if (process.env.KVM_REPORT_EXIT || exit.status % 2 === 0 && exit.status !== EXIT_POWER_OFF) {
    process.stderr.write(`kvm: ${exit.reason} (status ${exit.status})\n`);
  }
  process.exit(exit.status);
}

main(process.argv.slice(2)).catch((error: unknown) => {
  fail(`internal error: ${error instanceof Error ? error.message : String(error)}`, EXIT_HOST_ERROR);
});
