/*
 * kvm test guest: test=virtio-blk, a virtio 1.2 block device driver on
 * virtio.c's transports and virtqueues. See README.md for the keys and
 * the output.
 *
 * A request is a descriptor chain: a 16-byte header (type, reserved,
 * sector; device-readable), the data (device-writable for reads, split
 * into VIRTIO_BLK_F_SIZE_MAX pieces if the device wants), a 1-byte status
 * (device-writable). Headers, statuses and data live in data_area() (RAM
 * above the image).
 */
#include "virtio.h"

#define BLK_F_SIZE_MAX 1
#define BLK_F_SEG_MAX 2
#define BLK_F_BLK_SIZE 6
#define BLK_F_FLUSH 9
#define BLK_F_MQ 12

#define BLK_T_IN 0
#define BLK_T_OUT 1
#define BLK_T_FLUSH 4
#define BLK_T_GET_ID 8

#define BLK_S_OK 0
#define BLK_S_IOERR 1
#define BLK_S_UNSUPP 2

#define CFG_CAPACITY 0
#define CFG_SIZE_MAX 8
#define CFG_SEG_MAX 12
#define CFG_BLK_SIZE 20
#define CFG_NUM_QUEUES 34

#define SEGS_MAX 32 /* data descriptors per request */
#define ID_LEN 20
#define PATTERN_DEFAULT 0x6b766d00u

enum { OP_READWRITE, OP_READ, OP_WRITE, OP_SEQREAD, OP_GETID };

struct blk_hdr {
	u32 type;
	u32 reserved;
	u64 sector;
};

static struct vq *vq;
static u32 feats, size_max, seg_max;
static struct blk_hdr *hdrs; /* one per request slot */
static u8 *stats;            /* one per request slot */

static void put_hex32(u32 v) /* exactly eight hex digits */
{
	put_hex2((u8)(v >> 24));
	put_hex2((u8)(v >> 16));
	put_hex2((u8)(v >> 8));
	put_hex2((u8)v);
}

/* pattern= : 1..8 hex digits, with or without 0x */
static u32 key_pattern(void)
{
	u32 len, k = 0, n = 0;
	const char *v = param("pattern", &len);

	if (!v)
		return PATTERN_DEFAULT;
	if (len > 2 && v[0] == '0' && (v[1] | 0x20) == 'x')
		k = 2;
	if (len == k || len - k > 8)
		fail("bad pattern= (want 1 to 8 hex digits)");
	for (; k < len; k++) {
		char c = (char)(v[k] | 0x20);
		if (v[k] >= '0' && v[k] <= '9')
			n = n << 4 | (u32)(v[k] - '0');
		else if (c >= 'a' && c <= 'f')
			n = n << 4 | (u32)(c - 'a' + 10);
		else
			fail("bad pattern= (want 1 to 8 hex digits)");
	}
	return n;
}

/* Data descriptors for len bytes: FAILED unless the device and the queue
 * can take them. */
static u32 segs_for(u64 len)
{
	u64 n = 1;

	if ((feats & 1u << BLK_F_SIZE_MAX) && size_max)
		n = len ? (len + size_max - 1) / size_max : 0;
	if (n > SEGS_MAX || ((feats & 1u << BLK_F_SEG_MAX) && n > seg_max) || n + 2 > vq->size) {
		fail_start();
		puts("a request of ");
		put_dec(len);
		puts(" bytes needs ");
		put_dec(n);
		puts(" data descriptors (size_max ");
		put_dec(size_max);
		puts(", seg_max ");
		put_dec(seg_max);
		puts(", queue size ");
		put_dec(vq->size);
		puts(", at most ");
		put_dec(SEGS_MAX);
		putc(')');
		fail_end();
	}
	return (u32)n;
}

/* Makes request 'slot' available (no notification); returns the head. */
static u32 blk_submit(u32 slot, u32 type, u64 sector, u8 *data, u32 len, u16 dflags)
{
	struct vseg sg[SEGS_MAX + 2];
	u32 n = 1, off, chunk = len;

	if ((feats & 1u << BLK_F_SIZE_MAX) && size_max && size_max < len)
		chunk = size_max;
	hdrs[slot].type = type;
	hdrs[slot].reserved = 0;
	hdrs[slot].sector = sector;
	stats[slot] = 0xff;
	sg[0].addr = &hdrs[slot];
	sg[0].len = sizeof(struct blk_hdr);
	sg[0].flags = 0;
	for (off = 0; off < len; off += chunk, n++) {
		sg[n].addr = data + off;
		sg[n].len = len - off < chunk ? len - off : chunk;
		sg[n].flags = dflags;
	}
	sg[n].addr = &stats[slot];
	sg[n].len = 1;
	sg[n].flags = VIRTQ_DESC_F_WRITE;
	return vq_add(vq, sg, n + 1);
}

static void blk_check(u32 slot)
{
	u8 s = stats[slot];
	u32 t = hdrs[slot].type;

	if (s == BLK_S_OK)
		return;
	fail_start();
	puts(t == BLK_T_IN ? "read" : t == BLK_T_OUT ? "write" : t == BLK_T_FLUSH ? "flush" : "get-id");
	puts(" request at sector ");
	put_dec(hdrs[slot].sector);
	puts(": status ");
	put_dec(s);
	puts(s == BLK_S_IOERR ? " (IOERR)" : s == BLK_S_UNSUPP ? " (UNSUPP)" :
	     s == 0xff ? " (not written by the device)" : " (not a status)");
	fail_end();
}

/* One request in slot 0, waited for. */
static void blk_do(u32 type, u64 sector, u8 *data, u32 len, u16 dflags, const char *what)
{
	u32 head = blk_submit(0, type, sector, data, len, dflags), ulen;

	vq_kick(vq);
	vq_wait(vq, what);
	if (vq_get(vq, &ulen) != (int)head)
		fail("used element is not the request we made available");
	check_status("after a request");
	blk_check(0);
}

static void blk_flush(void)
{
	if (!(feats & 1u << BLK_F_FLUSH)) {
		puts("virtio-blk: flush skipped (VIRTIO_BLK_F_FLUSH not offered)\n");
		return;
	}
	blk_do(BLK_T_FLUSH, 0, 0, 0, 0, "the flush request");
	puts("virtio-blk: flushed\n");
}

static void print_sectors(const char *what, u64 count, u64 sector)
{
	puts("virtio-blk: ");
	puts(what);
	put_dec(count);
	puts(" sectors at ");
	put_dec(sector);
}

/* Every guest instruction costs ~1 us on a nested host: the loops over
 * the data handle 8 bytes at a time. Word i of the pattern is pattern ^ i,
 * so 64-bit word j is (pattern * 0x100000001) ^ (2j | (2j + 1) << 32). */
#define PAT64(p) ((u64)(p) * 0x100000001ull)
#define IDX64_0 (1ull << 32)
#define IDX64_STEP 0x200000002ull

static void blk_write(u8 *buf, u64 count, u64 sector, u32 pattern)
{
	u64 *w = (u64 *)buf, pat = PAT64(pattern), idx = IDX64_0;
	u32 i, n = (u32)count * 64;

	for (i = 0; i < n; i++, idx += IDX64_STEP)
		w[i] = pat ^ idx;
	blk_do(BLK_T_OUT, sector, buf, n * 8, 0, "the write request");
	print_sectors("wrote ", count, sector);
	putc('\n');
}

static void blk_read(u8 *buf, u64 count, u64 sector)
{
	u32 h = 0x811c9dc5u, i, n = (u32)count * 512;

	blk_do(BLK_T_IN, sector, buf, n, VIRTQ_DESC_F_WRITE, "the read request");
	for (i = 0; i < n; i += 8) { /* FNV-1a, 32 bits: h ^= byte; h *= prime */
		u64 w = *(const u64 *)(buf + i);
		__asm__(".rept 8\n\t"
			"xorb %b1, %b0\n\t" /* the byte only changes h's low byte */
			"imull $0x01000193, %0, %0\n\t"
			"shrq $8, %1\n\t"
			".endr"
			: "+r"(h), "+r"(w));
	}
	print_sectors("read ", count, sector);
	puts(" fnv ");
	put_hex32(h);
	puts(" first ");
	for (i = 0; i < 16 && i < n; i++)
		put_hex2(buf[i]);
	putc('\n');
}

static void blk_verify(const u8 *buf, u64 count, u32 pattern)
{
	const u64 *w = (const u64 *)buf;
	u64 pat = PAT64(pattern), idx = IDX64_0;
	u32 i, n = (u32)count * 64;

	for (i = 0; i < n; i++, idx += IDX64_STEP) {
		if (w[i] != (pat ^ idx)) {
			const u32 *w32 = (const u32 *)buf;
			u32 k = 2 * i + (w32[2 * i] == (pattern ^ 2 * i));
			fail_start();
			puts("verify: the word at byte ");
			put_dec(k * 4);
			puts(" reads ");
			put_hex(w32[k]);
			puts(", wrote ");
			put_hex(pattern ^ k);
			fail_end();
		}
	}
	puts("virtio-blk: verify ok\n");
}

static void blk_getid(u8 *buf)
{
	u32 i;

	for (i = 0; i < ID_LEN; i++)
		buf[i] = 0;
	blk_do(BLK_T_GET_ID, 0, buf, ID_LEN, VIRTQ_DESC_F_WRITE, "the get-id request");
	puts("virtio-blk: id ");
	for (i = 0; i < ID_LEN && buf[i]; i++)
		putc(buf[i] >= 0x20 && buf[i] < 0x7f ? (char)buf[i] : '.');
	putc('\n');
}

/* Reads 'bytes' from 'sector' on in 'req'-byte requests, up to 'depth' in
 * flight (slot s reads into data + s * req); notifies once per batch. */
static void blk_seqread(u8 *data, u64 sector, u64 bytes, u32 req, u32 depth)
{
	u8 slot_of[QMAX], free_slots[QMAX];
	u64 nreq = (bytes + req - 1) / req, issued = 0, done = 0;
	u32 nfree = depth, ulen, i;
	int id;

	puts("virtio-blk: reading ");
	put_dec(bytes);
	puts(" bytes at sector ");
	put_dec(sector);
	puts(" in ");
	put_dec(req);
	puts("-byte requests, up to ");
	put_dec(depth);
	puts(" in flight\n");
	for (i = 0; i < depth; i++)
		free_slots[i] = (u8)i;
	while (done < nreq) {
		int added = 0;
		while (issued < nreq && nfree) {
			u32 s = free_slots[--nfree];
			u64 off = issued * req;
			u32 len = bytes - off < req ? (u32)(bytes - off) : req;
			u32 head = blk_submit(s, BLK_T_IN, sector + off / 512, data + (u64)s * req, len,
					      VIRTQ_DESC_F_WRITE);
			slot_of[head] = (u8)s;
			issued++;
			added = 1;
		}
		if (added)
			vq_kick(vq);
		vq_wait(vq, "a read request");
		while ((id = vq_get(vq, &ulen)) >= 0) {
			u32 s = slot_of[id];
			if (stats[s] != BLK_S_OK)
				blk_check(s);
			free_slots[nfree++] = (u8)s;
			done++;
		}
		check_status("after read requests");
	}
	puts("virtio-blk: seqread ");
	put_dec(bytes);
	puts(" bytes in ");
	put_dec(nreq);
	puts(" requests\n");
}

void run_blk(void)
{
	u32 len, op, pattern, flush, depth, req, nslots = 1, g, tries, blk_size = 512, queue, want;
	u64 sector, count, bytes, capacity, need;
	const char *v = param("op", &len);
	u8 *area, *data;

	if (!v || value_is(v, len, "readwrite"))
		op = OP_READWRITE;
	else if (value_is(v, len, "read"))
		op = OP_READ;
	else if (value_is(v, len, "write"))
		op = OP_WRITE;
	else if (value_is(v, len, "seqread"))
		op = OP_SEQREAD;
	else if (value_is(v, len, "getid"))
		op = OP_GETID;
	else
		fail("bad op= (want read, write, readwrite, seqread or getid)");
	sector = key_num("sector", 0, 0, (1ull << 55) - 1, 0);
	count = key_num("count", 8, 1, 0x100000, 0); /* up to 512 MiB */
	pattern = key_pattern();
	flush = (u32)key_num("flush", 0, 0, 1, 0);
	bytes = key_num("bytes", 1 << 20, 512, 1ull << 40, 1);
	req = (u32)key_num("req", 64 << 10, 512, 1 << 30, 1);
	depth = (u32)key_num("depth", 0, 0, QMAX, 0); /* 0: as many as the queue takes */
	queue = (u32)key_num("queue", 0, 0, NQ_MAX - 1, 0); /* the requests go on this queue */
	if ((bytes | req) & 511)
		fail("bytes= and req= must be multiples of 512");

	want = 1u << BLK_F_SIZE_MAX | 1u << BLK_F_SEG_MAX | 1u << BLK_F_BLK_SIZE | 1u << BLK_F_FLUSH;
	if (queue)
		want |= 1u << BLK_F_MQ; /* queues beyond the first exist only with MQ (5.2.5) */
	feats = dev_init(queue + 1, 128, QMAX, want);
	if (queue) {
		u32 nq;
		if (!(feats & 1u << BLK_F_MQ))
			fail("queue= needs VIRTIO_BLK_F_MQ, not offered");
		nq = dev_cfg_rd(CFG_NUM_QUEUES, 2);
		if (nq <= queue)
			fail_x("queue= beyond the device's queues, num_queues ", nq);
		puts("virtio-blk: requests on queue ");
		put_dec(queue);
		puts(" of ");
		put_dec(nq);
		putc('\n');
	}
	vq = &vqs[queue];
	for (tries = 0;; tries++) {
		g = dev_cfg_gen();
		capacity = dev_cfg_rd(CFG_CAPACITY, 4) | (u64)dev_cfg_rd(CFG_CAPACITY + 4, 4) << 32;
		if (feats & 1u << BLK_F_SIZE_MAX)
			size_max = dev_cfg_rd(CFG_SIZE_MAX, 4);
		if (feats & 1u << BLK_F_SEG_MAX)
			seg_max = dev_cfg_rd(CFG_SEG_MAX, 4);
		if (feats & 1u << BLK_F_BLK_SIZE)
			blk_size = dev_cfg_rd(CFG_BLK_SIZE, 4);
		if (g == dev_cfg_gen())
			break;
		if (tries == 100)
			fail("the configuration generation keeps changing");
	}
	puts("virtio-blk: capacity ");
	put_dec(capacity);
	puts(" sectors blk_size ");
	put_dec(blk_size);
	putc('\n');
	if (feats & (1u << BLK_F_SIZE_MAX | 1u << BLK_F_SEG_MAX)) {
		puts("virtio-blk:");
		if (feats & 1u << BLK_F_SIZE_MAX) {
			puts(" size_max ");
			put_dec(size_max);
		}
		if (feats & 1u << BLK_F_SEG_MAX) {
			puts(" seg_max ");
			put_dec(seg_max);
		}
		putc('\n');
	}

	/* data area: request headers and statuses, then the data (4 KiB aligned) */
	if (op == OP_SEQREAD) {
		u32 fit = vq->size / (segs_for(bytes < req ? bytes : req) + 2);
		u64 nreq = (bytes + req - 1) / req;
		if (!depth)
			depth = fit;
		if (depth > fit) {
			fail_start();
			puts("depth= larger than the queue takes: ");
			put_dec(fit);
			fail_end();
		}
		if (depth > nreq)
			depth = (u32)nreq;
		nslots = depth;
		need = (u64)depth * req;
	} else if (op == OP_GETID) {
		need = ID_LEN;
	} else {
		segs_for(count * 512);
		need = count * 512 * (op == OP_READWRITE ? 2 : 1);
	}
	area = data_area(4096 + need);
	hdrs = (struct blk_hdr *)area;
	stats = area + nslots * sizeof(struct blk_hdr);
	data = area + 4096;

	switch (op) {
	case OP_READWRITE:
		blk_write(data, count, sector, pattern);
		blk_flush();
		blk_read(data + count * 512, count, sector);
		blk_verify(data + count * 512, count, pattern);
		break;
	case OP_WRITE:
		blk_write(data, count, sector, pattern);
		if (flush)
			blk_flush();
		break;
	case OP_READ:
		blk_read(data, count, sector);
		break;
	case OP_SEQREAD:
		blk_seqread(data, sector, bytes, req, depth);
		break;
	default:
		blk_getid(data);
		break;
	}
	if (flush && op != OP_WRITE && op != OP_READWRITE)
		blk_flush();
	check_status("at the end");
	puts("virtio-blk: ok\n");
}
