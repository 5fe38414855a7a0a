/**
 * The one error building firmware tables (ACPI, MP table) can end in. Every
 * one comes from the VMM's own description, never from the guest, so the
 * message names the offending field. Status 2: what reaches the tables is the
 * user's configuration (vCPU and device counts).
 */
import { EXIT_INVALID_ARGUMENTS } from '../../base/exit-status.js';
import { VmmError } from '../../base/vmm-error.js';

export type FirmwareErrorKind =
  /** A description field is missing, not an integer, or out of its range. */
  | 'bad-description'
  /** More vCPUs than xAPIC ids (and the I/O APIC id) can number. */
  | 'too-many-cpus'
  /** A device interrupt collides with a fixed line or with a device of another trigger mode. */
  | 'irq-conflict'
  /** The tables do not fit in their area below 1 MiB. */
  | 'area-overflow'
  /** The table area is not guest RAM. */
  | 'not-ram'
  /** An AML name, integer or resource descriptor the encoder cannot express. */
  | 'bad-aml';

export class FirmwareError extends VmmError<FirmwareErrorKind> {
  constructor(kind: FirmwareErrorKind, message: string) {
    super(kind, message, { status: EXIT_INVALID_ARGUMENTS });
  }
}
