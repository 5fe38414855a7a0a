/** PCI configuration space constants (PCI Local Bus 3.0), by their Linux pci_regs.h names. */
export const PCI_VENDOR_ID = 0x00;
export const PCI_DEVICE_ID = 0x02;
export const PCI_COMMAND = 0x04;
export const PCI_STATUS = 0x06;
export const PCI_REVISION_ID = 0x08;
export const PCI_CLASS_PROG = 0x09;
export const PCI_CLASS_DEVICE = 0x0a;
export const PCI_HEADER_TYPE = 0x0e;
export const PCI_BASE_ADDRESS_0 = 0x10;
export const PCI_SUBSYSTEM_VENDOR_ID = 0x2c;
export const PCI_SUBSYSTEM_ID = 0x2e;
export const PCI_CAPABILITY_LIST = 0x34;
export const PCI_INTERRUPT_LINE = 0x3c;
export const PCI_INTERRUPT_PIN = 0x3d;
export const PCI_CONFIG_SPACE_SIZE = 256;

export const PCI_COMMAND_IO = 0x1;
export const PCI_COMMAND_MEMORY = 0x2;
export const PCI_COMMAND_MASTER = 0x4;
export const PCI_COMMAND_INTX_DISABLE = 0x400;
export const PCI_STATUS_CAP_LIST = 0x10;
export const PCI_HEADER_TYPE_NORMAL = 0;
export const PCI_BASE_ADDRESS_SPACE_MEMORY = 0;
export const PCI_BASE_ADDRESS_MEM_TYPE_32 = 0x0;
export const PCI_BASE_ADDRESS_MEM_MASK = ~0xf;
export const PCI_INTERRUPT_PIN_INTA = 1;

export const PCI_CAP_ID_VNDR = 0x09;
export const PCI_CAP_ID_MSIX = 0x11;
export const PCI_MSIX_FLAGS = 2;
export const PCI_MSIX_FLAGS_ENABLE = 0x8000;
export const PCI_MSIX_FLAGS_MASKALL = 0x4000;
export const PCI_MSIX_TABLE = 4;
export const PCI_MSIX_PBA = 8;
export const PCI_MSIX_ENTRY_SIZE = 16;
export const PCI_MSIX_ENTRY_VECTOR_CTRL = 12;

/** Configuration mechanism #1 (I/O ports 0xCF8 address, 0xCFC data). */
export const PCI_CONFIG_ADDRESS_PORT = 0xcf8;
export const PCI_CONFIG_DATA_PORT = 0xcfc;
export const PCI_CONFIG_PORT_COUNT = 8;
export const PCI_CONFIG_ADDRESS_ENABLE = 0x8000_0000;

export const PCI_CLASS_BRIDGE_HOST = 0x0600;
export const PCI_CLASS_COMMUNICATION_OTHER = 0x0780;
export const PCI_CLASS_OTHERS = 0xff00;
export const PCI_VENDOR_ID_INTEL = 0x8086;
/** Intel 440FX host bridge: what guests expect at 00:00.0. */
export const PCI_DEVICE_ID_INTEL_82441 = 0x1237;

// virtio over PCI (virtio 1.2 §4.1).
export const PCI_VENDOR_ID_REDHAT_QUMRANET = 0x1af4;
export const VIRTIO_PCI_MODERN_DEVICE_ID_BASE = 0x1040;
export const VIRTIO_PCI_CAP_COMMON_CFG = 1;
export const VIRTIO_PCI_CAP_NOTIFY_CFG = 2;
export const VIRTIO_PCI_CAP_ISR_CFG = 3;
export const VIRTIO_PCI_CAP_DEVICE_CFG = 4;
export const VIRTIO_PCI_CAP_PCI_CFG = 5;

/** Where the VMM places memory BARs (no firmware does it for us): the bottom of the 32-bit hole. */
/** Device numbers on bus 0 (the host bridge takes 0). */
export const PCI_MAX_SLOTS = 32;
export const PCI_MMIO_WINDOW_START = 0xc000_0000;
export const PCI_MMIO_WINDOW_SIZE = 0x1000_0000;
