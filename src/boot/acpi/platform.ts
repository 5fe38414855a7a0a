/**
 * The fixed machine the firmware tables describe: addresses and ports the
 * VMM's devices sit at (src/legacy, src/transport), restated here by their
 * spec names so src/boot stays free of device code. A unit test checks they
 * still agree with the devices.
 */

/** Firmware table area, reserved in the e820 map (EBDA_START..1 MiB). */
export const ACPI_AREA_START = 0xe_0000;
export const ACPI_AREA_END = 0xf_0000;
export const MP_AREA_START = 0xf_0000;
export const MP_AREA_END = 0x10_0000;

/** Local APIC and I/O APIC MMIO (KVM's in-kernel irqchip). */
export const LOCAL_APIC_ADDRESS = 0xfee0_0000;
export const IO_APIC_ADDRESS = 0xfec0_0000;
/** KVM's in-kernel I/O APIC has 24 redirection entries (GSIs 0-23). */
export const IO_APIC_PINS = 24;
/** What KVM's registers report: LAPIC version 0x14, IOAPIC version 0x11. */
export const LOCAL_APIC_VERSION = 0x14;
export const IO_APIC_VERSION = 0x11;
/** xAPIC id 0xff is the broadcast address: ids 0-0xfe are usable. */
export const MAX_XAPIC_ID = 0xfe;

/** ACPI fixed hardware (src/legacy/acpi-pm.ts). */
export const SCI_IRQ = 9;
export const PM1A_EVT_BLK = 0x600;
export const PM1_EVT_LEN = 4;
export const PM1A_CNT_BLK = 0x604;
export const PM1_CNT_LEN = 2;
export const RESET_REG_PORT = 0x608;
export const RESET_VALUE = 0x01;
/** SLP_TYP the DSDT's \_S5 gives; the PM1a control device powers off on it. */
export const SLP_TYP_S5 = 5;
/** CMOS index of the century byte (src/legacy/cmos-rtc.ts serves it). */
export const RTC_CENTURY_INDEX = 0x32;

/** Legacy devices (src/legacy). */
export const COM1_PORT = 0x3f8;
export const COM1_PORT_COUNT = 8;
export const COM1_IRQ = 4;
export const PVPANIC_PORT = 0x505;

/** PCI host bridge: configuration mechanism #1 and the BAR window (src/transport/pci). */
export const PCI_CONFIG_PORT = 0xcf8;
export const PCI_CONFIG_PORT_COUNT = 8;
export const PCI_MMIO_WINDOW_START = 0xc000_0000;
export const PCI_MMIO_WINDOW_END = 0xd000_0000;
export const PCI_MAX_SLOT = 31;

/**
 * ISA lines a device interrupt may not use: PIT (0), keyboard (1), cascade (2),
 * COM1 (4), RTC (8) and the SCI (9, level/active-high, which a PCI INTx line —
 * level/active-low — or an edge-triggered virtio-mmio line cannot share).
 */
export const RESERVED_GSIS: ReadonlyMap<number, string> = new Map([
  [0, 'the PIT'],
  [1, 'the i8042 keyboard'],
  [2, 'the 8259 cascade'],
  [COM1_IRQ, 'COM1'],
  [8, 'the CMOS RTC'],
  [SCI_IRQ, 'the ACPI SCI'],
]);
