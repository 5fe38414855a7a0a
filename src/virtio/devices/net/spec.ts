/** virtio-net constants from the virtio 1.2 specification (§5.1), by their spec names. */

// Feature bits (5.1.3).
export const VIRTIO_NET_F_CSUM = 0;
export const VIRTIO_NET_F_GUEST_CSUM = 1;
export const VIRTIO_NET_F_CTRL_GUEST_OFFLOADS = 2;
export const VIRTIO_NET_F_MTU = 3;
export const VIRTIO_NET_F_MAC = 5;
export const VIRTIO_NET_F_GUEST_TSO4 = 7;
export const VIRTIO_NET_F_GUEST_TSO6 = 8;
export const VIRTIO_NET_F_GUEST_ECN = 9;
export const VIRTIO_NET_F_GUEST_UFO = 10;
export const VIRTIO_NET_F_HOST_TSO4 = 11;
export const VIRTIO_NET_F_HOST_TSO6 = 12;
export const VIRTIO_NET_F_HOST_ECN = 13;
export const VIRTIO_NET_F_HOST_UFO = 14;
export const VIRTIO_NET_F_MRG_RXBUF = 15;
export const VIRTIO_NET_F_STATUS = 16;
export const VIRTIO_NET_F_CTRL_VQ = 17;
export const VIRTIO_NET_F_CTRL_RX = 18;
export const VIRTIO_NET_F_CTRL_VLAN = 19;
export const VIRTIO_NET_F_GUEST_ANNOUNCE = 21;
export const VIRTIO_NET_F_MQ = 22;
export const VIRTIO_NET_F_CTRL_MAC_ADDR = 23;
export const VIRTIO_NET_F_GUEST_USO4 = 54;
export const VIRTIO_NET_F_GUEST_USO6 = 55;
export const VIRTIO_NET_F_HOST_USO = 56;

// Device configuration layout (5.1.4): mac[6], status, max_virtqueue_pairs, mtu.
export const VIRTIO_NET_CONFIG_MAC = 0;
export const VIRTIO_NET_CONFIG_STATUS = 6;
export const VIRTIO_NET_CONFIG_MAX_VIRTQUEUE_PAIRS = 8;
export const VIRTIO_NET_CONFIG_MTU = 10;
export const VIRTIO_NET_CONFIG_SIZE = 12;
export const VIRTIO_NET_S_LINK_UP = 1;
export const VIRTIO_NET_S_ANNOUNCE = 2;

// struct virtio_net_hdr (5.1.6), 12 bytes: num_buffers is always there with VIRTIO_F_VERSION_1.
export const VIRTIO_NET_HDR_FLAGS = 0;
export const VIRTIO_NET_HDR_GSO_TYPE = 1;
export const VIRTIO_NET_HDR_HDR_LEN = 2;
export const VIRTIO_NET_HDR_GSO_SIZE = 4;
export const VIRTIO_NET_HDR_CSUM_START = 6;
export const VIRTIO_NET_HDR_CSUM_OFFSET = 8;
export const VIRTIO_NET_HDR_NUM_BUFFERS = 10;
export const VIRTIO_NET_HDR_SIZE = 12;

export const VIRTIO_NET_HDR_F_NEEDS_CSUM = 1;
export const VIRTIO_NET_HDR_F_DATA_VALID = 2;
export const VIRTIO_NET_HDR_F_RSC_INFO = 4;

export const VIRTIO_NET_HDR_GSO_NONE = 0;
export const VIRTIO_NET_HDR_GSO_TCPV4 = 1;
export const VIRTIO_NET_HDR_GSO_UDP = 3;
export const VIRTIO_NET_HDR_GSO_TCPV6 = 4;
export const VIRTIO_NET_HDR_GSO_UDP_L4 = 5;
export const VIRTIO_NET_HDR_GSO_ECN = 0x80;

// Control virtqueue (5.1.6.5): struct virtio_net_ctrl { u8 class; u8 command; data…; u8 ack; }.
export const VIRTIO_NET_CTRL_HDR_SIZE = 2;
export const VIRTIO_NET_OK = 0;
export const VIRTIO_NET_ERR = 1;
export const VIRTIO_NET_CTRL_RX = 0;
export const VIRTIO_NET_CTRL_MAC = 1;
export const VIRTIO_NET_CTRL_VLAN = 2;
export const VIRTIO_NET_CTRL_ANNOUNCE = 3;
export const VIRTIO_NET_CTRL_MQ = 4;
export const VIRTIO_NET_CTRL_GUEST_OFFLOADS = 5;
export const VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET = 0;

// Frame sizes.
export const ETH_HLEN = 14;
export const VLAN_HLEN = 4;
export const ETH_DATA_LEN = 1500;
/** Largest frame the device carries: a 64 KiB IP packet (the GSO limit) behind an Ethernet and a VLAN header. */
export const NET_MAX_FRAME = 65535 + ETH_HLEN + VLAN_HLEN;
/** A full-size frame without offloads (VLAN-tagged) with its header: what Linux posts per receive buffer. */
export const NET_GOOD_PACKET_BUFFER = VIRTIO_NET_HDR_SIZE + ETH_HLEN + VLAN_HLEN + ETH_DATA_LEN;
