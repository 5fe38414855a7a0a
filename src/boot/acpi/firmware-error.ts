/**
 * The one error building firmware tables (ACPI, MP table) can end in. Every
 * one comes from the VMM's own description, never from the guest, so the
 * message names the offending field.
 */

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

export class FirmwareError extends Error {
  constructor(readonly kind: FirmwareErrorKind, message: string) {
    super(message);
    this.name = 'FirmwareError';
  }
}
