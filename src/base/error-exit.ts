/**
 * Any error → the documented exit status and one line saying what is wrong,
 * for the CLI (`kvm: <message>`) and the library (`runVm`) alike.
 *
 * - a VmmError carries both;
 * - a Node system error about a path (ELOOP, EACCES, … from fs) names a file
 *   the user gave: status 2, with the path and a readable reason;
 * - any other system error is the host's: status 4;
 * - anything else is a bug: status 4, "internal error: …".
 */
import { EXIT_HOST_ERROR, EXIT_INVALID_ARGUMENTS } from './exit-status.js';
import { VmmError } from './vmm-error.js';

export interface ErrorExit {
  readonly status: number;
  /** One line, without the "kvm: " prefix. */
  readonly message: string;
}

export function errorToExit(error: unknown): ErrorExit {
  if (error instanceof VmmError) return { status: error.status, message: oneLine(error.message) };
  const system = systemError(error);
  if (system?.path !== undefined) {
    return { status: EXIT_INVALID_ARGUMENTS, message: `${system.path}: ${fileErrorReason(system)}` };
  }
  if (system) return { status: EXIT_HOST_ERROR, message: `${system.syscall ?? 'host call'} failed: ${fileErrorReason(system)}` };
  const text = error instanceof Error ? error.message : String(error);
  return { status: EXIT_HOST_ERROR, message: `internal error: ${oneLine(text)}` };
}

/** A Node system error (`code` like "ELOOP"), as fs and child_process throw them. */
export function systemError(error: unknown): NodeJS.ErrnoException | undefined {
  if (!(error instanceof Error)) return undefined;
  const code = (error as NodeJS.ErrnoException).code;
  return typeof code === 'string' && /^E[A-Z0-9]+$/.test(code) ? (error as NodeJS.ErrnoException) : undefined;
}

const FILE_REASONS: Readonly<Record<string, string>> = {
  ENOENT: 'no such file',
  ENOTDIR: 'no such file (a component of the path is not a directory)',
  EACCES: 'permission denied',
  EPERM: 'operation not permitted',
  ELOOP: 'too many levels of symbolic links (ELOOP)',
  ENAMETOOLONG: 'file name too long (ENAMETOOLONG)',
  EISDIR: 'a directory',
  EROFS: 'on a read-only filesystem',
  EIO: 'I/O error (EIO)',
};

/** What a failed file operation says, readably: "permission denied", "too many levels of symbolic links (ELOOP)". */
export function fileErrorReason(error: NodeJS.ErrnoException): string {
  const code = error.code ?? 'error';
  const known = FILE_REASONS[code];
  if (known) return known;
  // Node's message is "ECODE: description, syscall 'path'": keep the description.
  const description = new RegExp(`^${code}: ([^,]+)`).exec(error.message)?.[1];
  return description ? `${description} (${code})` : code;
}

function oneLine(text: string): string {
  return text.split('\n')[0]!.trim();
}
