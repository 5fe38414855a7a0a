/**
 * Runs the ACPICA tools (Debian package acpica-tools: iasl, acpiexec) on
 * tables written to a scratch directory. A missing tool is a failure with an
 * install hint, never a skip: these checks are the independent judge of the
 * tables.
 */

import { spawnSync } from 'node:child_process';

export interface ToolRun {
  readonly status: number | null;
  /** stdout and stderr together (iasl splits its messages between them). */
  readonly output: string;
}

export function runTool(tool: 'iasl' | 'acpiexec', args: readonly string[], cwd: string): ToolRun {
  const run = spawnSync(tool, args, { cwd, encoding: 'utf8', timeout: 30_000 });
  if (run.error && (run.error as NodeJS.ErrnoException).code === 'ENOENT') {
    throw new Error(`${tool} is not installed: it comes with the Debian package acpica-tools (run ./setup.sh, or apt-get install -y acpica-tools)`);
  }
  if (run.error) throw run.error;
  return { status: run.status, output: `${run.stdout}${run.stderr}` };
}

/** Lines of tool output (or disassembly) that report a problem. */
export function problems(text: string): string[] {
  return text
    .split('\n')
    .filter((line) => /error|warning|incorrect|invalid|\*\*\*\*|AE_[A-Z_]+/i.test(line))
    // The compiler's summary names both words even when it found nothing.
    .filter((line) => !/^Compilation successful\.\s+0 Errors, 0 Warnings/.test(line.trim()));
}

/** The error and warning counts of an iasl compile ("... 0 Errors, 0 Warnings, ..."). */
export function compileCounts(output: string): { errors: number; warnings: number } | undefined {
  const m = /(\d+) Errors?, (\d+) Warnings?/.exec(output);
  return m ? { errors: Number(m[1]), warnings: Number(m[2]) } : undefined;
}
