/**
 * How the VM's GSIs are numbered: the in-kernel IOAPIC's pins first, then the
 * MSI routes the VMM hands out. Plain numbers, so validation can count MSI
 * routes without loading the KVM bindings.
 */

/** KVM's in-kernel IOAPIC has 24 pins: GSIs 0..23. */
export const IOAPIC_PINS = 24;
/** First GSI handed out for MSI routes. */
export const FIRST_MSI_GSI = IOAPIC_PINS;
/** MSI routes per VM (the shared routing table's size). */
export const MAX_MSI_ROUTES = 1000;
