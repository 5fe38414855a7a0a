/*
 * kvm test guest: what the virtio drivers share. virtio.c has the
 * transports (virtio-pci, virtio-mmio), interrupts, split virtqueues, the
 * device initialisation and the rng and console tests; virtio-blk.c and
 * virtio-net.c use them for the block and network tests.
 */
#ifndef VIRTIO_H
#define VIRTIO_H

#include "guest.h"

#pragma GCC visibility push(hidden)

/* Device types (5) */
#define VIRTIO_ID_NET 1
#define VIRTIO_ID_BLOCK 2
#define VIRTIO_ID_CONSOLE 3
#define VIRTIO_ID_RNG 4

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2

#define QMAX 256 /* largest queue size (the rings are sized for it) */
#define NQ_MAX 2 /* queues per device */

enum { IRQ_POLL, IRQ_MSIX, IRQ_INTX };

struct vring_desc {
	u64 addr;
	u32 len;
	u16 flags;
	u16 next;
};

struct vring_avail { /* alignment 2 */
	u16 flags;
	u16 idx;
	u16 ring[QMAX];
	u16 used_event;
};

struct vring_used { /* alignment 4 */
	u16 flags;
	u16 idx;
	struct {
		u32 id;
		u32 len;
	} ring[QMAX];
	u16 avail_event;
};

struct vq_mem { /* one split virtqueue: descriptor table aligned 16 */
	struct vring_desc desc[QMAX];
	struct vring_avail avail;
	struct vring_used used __attribute__((aligned(4)));
} __attribute__((aligned(16)));

struct vq {
	volatile struct vq_mem *m;
	u64 notify;     /* notification address */
	u16 q, size;
	u16 next_avail; /* shadow of avail.idx */
	u16 last_used;  /* used elements consumed */
	u16 nfree;      /* free[0..nfree) are free descriptors (a stack) */
	u16 free[QMAX];
	u8 chain[QMAX]; /* descriptors in the chain headed by d while in flight, else 0 */
	u32 irq_seen;   /* queue_irqs[q] when we last returned from a wait */
	u32 suppressed; /* notifications skipped for VIRTQ_USED_F_NO_NOTIFY */
};

/* One buffer of a descriptor chain. */
struct vseg {
	const void *addr;
	u32 len;
	u16 flags; /* VIRTQ_DESC_F_WRITE for device-writable buffers */
};

extern const char *tname; /* "virtio-blk", ...: the prefix of FAILED lines */
extern u32 irq_mode;
extern struct vq vqs[NQ_MAX];

void say(const char *s); /* "virtio: " + s */
void fail_start(void);   /* "<tname>: FAILED " */
__attribute__((noreturn)) void fail_end(void);
__attribute__((noreturn)) void fail(const char *why);
__attribute__((noreturn)) void fail_x(const char *why, u64 v);
void check_status(const char *when);

/* Numeric keys: decimal (or 0x hex), with K/M/G (binary) suffixes if
 * 'sizes'; FAILED "bad <key>=" if malformed or outside lo..hi. */
u64 key_num(const char *key, u64 dflt, u64 lo, u64 hi, int sizes);

/* Resets and initialises the device (status, features, queues,
 * DRIVER_OK): accepts VERSION_1 and whatever of 'want' (feature bits 0..31)
 * the device offers; returns the accepted bits 0..31. qsize= (default
 * qdefault, a power of two <= qmax) is halved until the device takes it. */
u32 dev_init(u32 queues, u32 qdefault, u32 qmax, u32 want);

/* Device-specific configuration (PCI: the device structure; MMIO: 0x100):
 * reads of 1, 2 or 4 bytes at off; the generation counter. */
u32 dev_cfg_rd(u32 off, u32 width);
u32 dev_cfg_gen(void);

u32 vq_add(struct vq *vq, const struct vseg *s, u32 n); /* returns the head */
u32 vq_add1(struct vq *vq, const void *buf, u32 len, u16 flags);
void vq_kick(struct vq *vq);
int vq_get(struct vq *vq, u32 *len);
void vq_wait(struct vq *vq, const char *what);

/* Guest RAM above the image for buffers: len bytes at a 64 KiB aligned
 * address, checked against the memory map, below 1 GiB. Not zeroed. */
u8 *data_area(u64 len);

void run_blk(void); /* virtio-blk.c */
void run_net(void); /* virtio-net.c */

#pragma GCC visibility pop

#endif
