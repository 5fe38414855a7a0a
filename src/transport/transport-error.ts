/**
 * The one error class of src/transport: a device cannot be placed on its
 * transport. Validation (src/builder/config.ts, src/builder/device-placement.ts) refuses device
 * counts beyond these limits before KVM is touched, so these are a second
 * line; those about how many devices the user asked for are status 2, a
 * layout the VMM itself got wrong is 4.
 */
import { EXIT_HOST_ERROR, EXIT_INVALID_ARGUMENTS } from '../base/exit-status.js';
import { VmmError } from '../base/vmm-error.js';

export type TransportErrorKind =
  /** Every device number of PCI bus 0 is taken. */
  | 'pci-bus-full'
  /** The BARs no longer fit the PCI MMIO window. */
  | 'pci-window-full'
  /** More MSI-X vectors than the VM's MSI routes. */
  | 'out-of-msi-routes'
  /** More virtio-mmio devices than interrupt lines for them. */
  | 'mmio-full'
  /** A PCI capability does not fit the configuration space (a VMM bug). */
  | 'capability-list-full';

const TOO_MANY_DEVICES: ReadonlySet<TransportErrorKind> = new Set<TransportErrorKind>([
  'pci-bus-full',
  'pci-window-full',
  'out-of-msi-routes',
  'mmio-full',
]);

export class TransportError extends VmmError<TransportErrorKind> {
  constructor(kind: TransportErrorKind, message: string) {
    super(kind, message, { status: TOO_MANY_DEVICES.has(kind) ? EXIT_INVALID_ARGUMENTS : EXIT_HOST_ERROR });
  }
}
