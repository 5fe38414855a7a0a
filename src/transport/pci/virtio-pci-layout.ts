/** Where the virtio structures sit in a virtio-pci function's BAR 0 (our choice; the capabilities tell the driver). */
export const VIRTIO_PCI_BAR = 0;
export const VIRTIO_PCI_COMMON_OFFSET = 0x0000;
export const VIRTIO_PCI_COMMON_SIZE = 0x40;
export const VIRTIO_PCI_ISR_OFFSET = 0x1000;
export const VIRTIO_PCI_ISR_SIZE = 4;
export const VIRTIO_PCI_DEVICE_OFFSET = 0x2000;
export const VIRTIO_PCI_DEVICE_SIZE = 0x1000;
export const VIRTIO_PCI_NOTIFY_OFFSET = 0x3000;
export const VIRTIO_PCI_NOTIFY_SIZE = 0x1000;
/** Queue n is notified at NOTIFY_OFFSET + n × multiplier (queue_notify_off = n). */
export const VIRTIO_PCI_NOTIFY_OFF_MULTIPLIER = 4;
export const VIRTIO_PCI_MSIX_TABLE_OFFSET = 0x4000;
export const VIRTIO_PCI_MSIX_PBA_OFFSET = 0x5000;
export const VIRTIO_PCI_BAR_SIZE = 0x8000;

/** MSI-X vectors (each an MSI route) of a virtio-pci function: one per queue and one for configuration changes. */
export function virtioPciMsixVectors(queues: number): number {
  return queues + 1;
}

// struct virtio_pci_common_cfg (virtio 1.2 §4.1.4.3).
export const COMMON_DEVICE_FEATURE_SELECT = 0;
export const COMMON_DEVICE_FEATURE = 4;
export const COMMON_DRIVER_FEATURE_SELECT = 8;
export const COMMON_DRIVER_FEATURE = 12;
export const COMMON_CONFIG_MSIX_VECTOR = 16;
export const COMMON_NUM_QUEUES = 18;
export const COMMON_DEVICE_STATUS = 20;
export const COMMON_CONFIG_GENERATION = 21;
export const COMMON_QUEUE_SELECT = 22;
export const COMMON_QUEUE_SIZE = 24;
export const COMMON_QUEUE_MSIX_VECTOR = 26;
export const COMMON_QUEUE_ENABLE = 28;
export const COMMON_QUEUE_NOTIFY_OFF = 30;
export const COMMON_QUEUE_DESC = 32;
export const COMMON_QUEUE_DRIVER = 40;
export const COMMON_QUEUE_DEVICE = 48;
export const COMMON_QUEUE_NOTIFY_DATA = 56;
export const COMMON_QUEUE_RESET = 58;

/** struct virtio_pci_cap: cap_vndr, cap_next, cap_len, cfg_type, bar, id, padding[2], offset, length. */
export const VIRTIO_PCI_CAP_LENGTH = 16;
export const VIRTIO_PCI_CAP_CFG_TYPE = 3;
export const VIRTIO_PCI_CAP_BAR = 4;
export const VIRTIO_PCI_CAP_OFFSET = 8;
export const VIRTIO_PCI_CAP_LENGTH_FIELD = 12;
/** struct virtio_pci_cfg_cap: the cap, then pci_cfg_data[4]. */
export const VIRTIO_PCI_CFG_CAP_DATA = 16;
