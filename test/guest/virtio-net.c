/*
 * kvm test guest: test=virtio-net, a virtio 1.2 network device driver on
 * virtio.c's transports and virtqueues: ARP for the peer, then one ICMP
 * echo request. See README.md for the keys and the output.
 *
 * No offloads: every frame has a 12-byte virtio_net_hdr (VERSION_1:
 * num_buffers included), all zero on transmit. Receive buffers are one
 * 1526-byte device-writable descriptor each (header + 1514-byte frame);
 * the transmit buffer is one descriptor (header + frame). Buffers live in
 * data_area() (RAM above the image).
 */
#include "virtio.h"

#define NET_F_MAC 5
#define NET_F_MRG_RXBUF 15
#define NET_F_STATUS 16

#define CFG_MAC 0
#define CFG_STATUS 6

#define HDR_LEN 12
#define FRAME_MAX 1514
#define BUF_LEN (HDR_LEN + FRAME_MAX)
#define BUF_STRIDE 1536

#define ETH_ARP 0x0806
#define ETH_IPV4 0x0800
#define PING_ID 0x6b76
#define PING_SEQ 1
#define PING_DATA 56
#define IGNORED_MAX 256

enum { WAIT_ARP, WAIT_PING, DONE };

static struct vq *rxq, *txq;
static u32 feats, state, ignored, skip;
static u8 mac[6], peer_mac[6], ip[4], peer[4];
static u8 *txbuf; /* header + frame */

/* ------------------------------------------------------------ helpers */

static void put16(u8 *p, u32 v) /* big-endian (network order) */
{
	p[0] = (u8)(v >> 8);
	p[1] = (u8)v;
}

static u32 get16(const u8 *p)
{
	return (u32)p[0] << 8 | p[1];
}

static void copy(u8 *d, const u8 *s, u32 n)
{
	while (n--)
		*d++ = *s++;
}

static int same(const u8 *a, const u8 *b, u32 n)
{
	while (n--)
		if (*a++ != *b++)
			return 0;
	return 1;
}

/* The Internet checksum (RFC 1071): 0 over data that includes its own. */
static u32 csum(const u8 *p, u32 n)
{
	u32 s = 0, i;

	for (i = 0; i + 1 < n; i += 2)
		s += get16(p + i);
	if (n & 1)
		s += (u32)p[n - 1] << 8;
	while (s >> 16)
		s = (s & 0xffff) + (s >> 16);
	return ~s & 0xffff;
}

static void put_mac(const u8 *m)
{
	u32 i;

	for (i = 0; i < 6; i++) {
		if (i)
			putc(':');
		put_hex2(m[i]);
	}
}

static void put_ip(const u8 *a)
{
	u32 i;

	for (i = 0; i < 4; i++) {
		if (i)
			putc('.');
		put_dec(a[i]);
	}
}

/* key=a.b.c.d (or dflt) */
static void key_ip(const char *key, const char *dflt, u8 *out)
{
	u32 len, k = 0, i;
	const char *v = param(key, &len);

	if (!v) {
		v = dflt;
		for (len = 0; dflt[len]; len++)
			;
	}
	for (i = 0; i < 4; i++) {
		u32 n = 0, digits = 0;
		if (i && (k >= len || v[k++] != '.'))
			goto bad;
		for (; k < len && v[k] >= '0' && v[k] <= '9' && digits < 3; k++, digits++)
			n = n * 10 + (u32)(v[k] - '0');
		if (!digits || n > 255)
			goto bad;
		out[i] = (u8)n;
	}
	if (k == len)
		return;
bad:
	fail_start();
	puts("bad ");
	puts(key);
	puts("= (want a.b.c.d)");
	fail_end();
}

/* mac=xx:xx:xx:xx:xx:xx; returns 0 if absent */
static int key_mac(u8 *out)
{
	u32 len, i, k;
	const char *v = param("mac", &len);

	if (!v)
		return 0;
	if (len != 17)
		fail("bad mac= (want xx:xx:xx:xx:xx:xx)");
	for (i = 0; i < 6; i++) {
		u32 n = 0;
		for (k = 0; k < 2; k++) {
			char c = v[3 * i + k], l = (char)(c | 0x20);
			if (c >= '0' && c <= '9')
				n = n << 4 | (u32)(c - '0');
			else if (l >= 'a' && l <= 'f')
				n = n << 4 | (u32)(l - 'a' + 10);
			else
				fail("bad mac= (want xx:xx:xx:xx:xx:xx)");
		}
		if (i < 5 && v[3 * i + 2] != ':')
			fail("bad mac= (want xx:xx:xx:xx:xx:xx)");
		out[i] = (u8)n;
	}
	return 1;
}

/* ------------------------------------------------------------ frames */

/* Sends the frame at txbuf + HDR_LEN (len bytes, padded to 60) and waits
 * until the device has used the buffer. */
static void net_send(u32 len)
{
	u32 i, d, ulen;

	for (i = 0; i < HDR_LEN; i++) /* no offloads, num_buffers 0 */
		txbuf[i] = 0;
	for (; len < 60; len++)
		txbuf[HDR_LEN + len] = 0;
	d = vq_add1(txq, txbuf, HDR_LEN + len, 0);
	vq_kick(txq);
	vq_wait(txq, "the transmit buffer");
	if (vq_get(txq, &ulen) != (int)d)
		fail("used element is not the transmit buffer we posted");
}

/* Ethernet header from us to dst; returns the payload. */
static u8 *eth(const u8 *dst, u32 type)
{
	u8 *f = txbuf + HDR_LEN;

	copy(f, dst, 6);
	copy(f + 6, mac, 6);
	put16(f + 12, type);
	return f + 14;
}

/* ARP (RFC 826) for Ethernet/IPv4: request (op 1, broadcast) or reply (op 2). */
static void send_arp(u32 op, const u8 *tha, const u8 *tpa)
{
	static const u8 bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };
	static const u8 zero[6];
	u8 *a = eth(op == 1 ? bcast : tha, ETH_ARP);

	put16(a, 1);           /* hardware type: Ethernet */
	put16(a + 2, ETH_IPV4); /* protocol type */
	a[4] = 6;
	a[5] = 4;
	put16(a + 6, op);
	copy(a + 8, mac, 6);
	copy(a + 14, ip, 4);
	copy(a + 18, op == 1 ? zero : tha, 6);
	copy(a + 24, tpa, 4);
	net_send(14 + 28);
}

static u8 ping_byte(u32 i)
{
	return (u8)(0x10 + i);
}

/* ICMP echo request (id PING_ID, seq PING_SEQ, PING_DATA bytes) to the peer. */
static void send_ping(void)
{
	u8 *p = eth(peer_mac, ETH_IPV4), *ic = p + 20;
	u32 i;

	p[0] = 0x45; /* IPv4, 20-byte header */
	p[1] = 0;
	put16(p + 2, 20 + 8 + PING_DATA);
	put16(p + 4, 1);      /* identification */
	put16(p + 6, 0x4000); /* don't fragment */
	p[8] = 64;            /* TTL */
	p[9] = 1;             /* ICMP */
	put16(p + 10, 0);
	copy(p + 12, ip, 4);
	copy(p + 16, peer, 4);
	put16(p + 10, csum(p, 20));
	ic[0] = 8; /* echo request */
	ic[1] = 0;
	put16(ic + 2, 0);
	put16(ic + 4, PING_ID);
	put16(ic + 6, PING_SEQ);
	for (i = 0; i < PING_DATA; i++)
		ic[8 + i] = ping_byte(i);
	put16(ic + 2, csum(ic, 8 + PING_DATA));
	net_send(14 + 20 + 8 + PING_DATA);
}

static void ignore(const u8 *f, u32 len)
{
	puts("virtio-net: ignored a frame of ");
	put_dec(len);
	puts(" bytes");
	if (len >= 14) {
		puts(", type ");
		put_hex(get16(f + 12));
	}
	putc('\n');
	if (++ignored > IGNORED_MAX)
		fail_x("too many unrelated frames: ", ignored);
}

/* Is this the reply to our echo request? (FAILED if it is, but broken.) */
static int echo_reply(const u8 *f, u32 len)
{
	const u8 *p = f + 14, *ic;
	u32 ihl, total, i;

	if (get16(f + 12) != ETH_IPV4 || len < 14 + 20 + 8)
		return 0;
	ihl = (p[0] & 15u) * 4;
	total = get16(p + 2);
	if ((p[0] >> 4) != 4 || ihl < 20 || p[9] != 1 || !same(p + 12, peer, 4) || !same(p + 16, ip, 4) ||
	    total < ihl + 8 || 14 + total > len)
		return 0;
	ic = p + ihl;
	if (ic[0] != 0 || ic[1] != 0 || get16(ic + 4) != PING_ID || get16(ic + 6) != PING_SEQ)
		return 0;
	if (csum(p, ihl))
		fail("echo reply: bad IPv4 header checksum");
	if (csum(ic, total - ihl))
		fail("echo reply: bad ICMP checksum");
	if (total - ihl != 8 + PING_DATA)
		fail_x("echo reply: wrong data length ", total - ihl - 8);
	for (i = 0; i < PING_DATA; i++)
		if (ic[8 + i] != ping_byte(i))
			fail_x("echo reply: the data differs at byte ", i);
	return 1;
}

static void rx_frame(const u8 *f, u32 len)
{
	const u8 *a = f + 14;

	if (len >= 14 + 28 && get16(f + 12) == ETH_ARP && get16(a) == 1 && get16(a + 2) == ETH_IPV4 &&
	    a[4] == 6 && a[5] == 4) {
		u32 op = get16(a + 6);
		if (op == 2 && state == WAIT_ARP && same(a + 14, peer, 4) && same(a + 24, ip, 4)) {
			copy(peer_mac, a + 8, 6);
			state = WAIT_PING;
			return;
		}
		if (op == 1 && same(a + 24, ip, 4)) {
			u8 sha[6], spa[4];
			copy(sha, a + 8, 6);
			copy(spa, a + 14, 4);
			send_arp(2, sha, spa);
			puts("virtio-net: answered an arp request from ");
			put_ip(spa);
			putc('\n');
			return;
		}
	}
	if (state == WAIT_PING && echo_reply(f, len)) {
		state = DONE;
		return;
	}
	ignore(f, len);
}

/* Waits for the receive queue, handles every used buffer and posts it again. */
static void rx_wait(const char *what)
{
	u32 len;
	int id;

	vq_wait(rxq, what);
	while ((id = vq_get(rxq, &len)) >= 0) {
		u8 *b = (u8 *)rxq->m->desc[id].addr;
		if (len > BUF_LEN)
			fail_x("receive used length larger than the buffer: ", len);
		if (skip) {
			skip--; /* the rest of a frame we ignored */
		} else if (len < HDR_LEN) {
			fail_x("receive used length shorter than the header: ", len);
		} else if ((feats & 1u << NET_F_MRG_RXBUF) && (b[10] | (u32)b[11] << 8) != 1) {
			/* num_buffers (little-endian) is not 1: a frame we did not
			 * ask for (ours fit one buffer); skip its other buffers */
			u32 nb = b[10] | (u32)b[11] << 8;
			if (!nb)
				fail("num_buffers 0 in a receive buffer");
			skip = nb - 1;
			ignore(b + HDR_LEN, len - HDR_LEN);
		} else {
			rx_frame(b + HDR_LEN, len - HDR_LEN);
		}
		vq_add1(rxq, b, BUF_LEN, VIRTQ_DESC_F_WRITE);
	}
	vq_kick(rxq);
}

void run_net(void)
{
	static const u8 mac_default[6] = { 0x02, 0x6b, 0x76, 0x6d, 0x00, 0x01 };
	u32 want, status = 1, g, tries, i, mrg = (u32)key_num("mrg", 0, 0, 1, 0);
	int own_mac = key_mac(mac);
	u8 *area;

	key_ip("ip", "10.0.2.15", ip);
	key_ip("peer", "10.0.2.1", peer);
	/* with mac= we do not take the device's address (VIRTIO_NET_F_MAC) */
	want = (own_mac ? 0 : 1u << NET_F_MAC) | 1u << NET_F_STATUS | (mrg ? 1u << NET_F_MRG_RXBUF : 0);
	feats = dev_init(2, 16, QMAX, want);
	if (mrg && !(feats & 1u << NET_F_MRG_RXBUF))
		fail("mrg=1 but the device does not offer VIRTIO_NET_F_MRG_RXBUF");
	rxq = &vqs[0];
	txq = &vqs[1];
	for (tries = 0;; tries++) {
		g = dev_cfg_gen();
		if (feats & 1u << NET_F_MAC)
			for (i = 0; i < 6; i++)
				mac[i] = (u8)dev_cfg_rd(CFG_MAC + i, 1);
		if (feats & 1u << NET_F_STATUS)
			status = dev_cfg_rd(CFG_STATUS, 2);
		if (g == dev_cfg_gen())
			break;
		if (tries == 100)
			fail("the configuration generation keeps changing");
	}
	if (!own_mac && !(feats & 1u << NET_F_MAC))
		copy(mac, mac_default, 6);
	puts("virtio-net: mac ");
	put_mac(mac);
	puts(" status ");
	put_dec(status);
	putc('\n');

	/* receive buffers fill the receive queue; one transmit buffer */
	area = data_area((u64)(rxq->size + 1) * BUF_STRIDE);
	txbuf = area;
	for (i = 0; i < rxq->size; i++)
		vq_add1(rxq, area + (u64)(i + 1) * BUF_STRIDE, BUF_LEN, VIRTQ_DESC_F_WRITE);
	vq_kick(rxq);

	state = WAIT_ARP;
	send_arp(1, 0, peer);
	puts("virtio-net: arp request for ");
	put_ip(peer);
	puts(" from ");
	put_ip(ip);
	putc('\n');
	while (state == WAIT_ARP)
		rx_wait("the ARP reply");
	puts("virtio-net: arp reply from ");
	put_ip(peer);
	puts(" is ");
	put_mac(peer_mac);
	putc('\n');

	send_ping();
	while (state == WAIT_PING)
		rx_wait("the echo reply");
	puts("virtio-net: ping reply from ");
	put_ip(peer);
	puts(" seq 1\n");
	check_status("at the end");
	puts("virtio-net: ok\n");
}
