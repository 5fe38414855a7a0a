/**
 * Process exit statuses, documented in README and `kvm run --help`. VMM
 * statuses are even and debug-exit statuses odd, so they never collide.
 */
export const EXIT_POWER_OFF = 0;
export const EXIT_INVALID_ARGUMENTS = 2;
export const EXIT_HOST_ERROR = 4;
export const EXIT_GUEST_RESET = 32;
export const EXIT_GUEST_PANIC = 34;
export const EXIT_GUEST_CRASH = 36;
export const EXIT_TIMEOUT = 124;

/** QEMU isa-debug-exit semantics: the status is (value << 1) | 1, truncated to 8 bits like any exit code. */
export function debugExitStatus(value: number): number {
  return ((value << 1) | 1) & 0xff;
}

/** How a VM run ended. */
export interface VmExit {
  readonly status: number;
  /** One line saying why, e.g. "guest wrote 0x1 to debug-exit". */
  readonly reason: string;
}
