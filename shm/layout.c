// SPDX-License-Identifier: MIT
/*
 * layout.c - region layout: computed by the server, checked by the client.
 */
#include <errno.h>
#include <string.h>

#include "layout.h"

static uint32_t roundup_pow2(uint32_t v)
{
	v--;
	v |= v >> 1;
	v |= v >> 2;
	v |= v >> 4;
	v |= v >> 8;
	v |= v >> 16;
	return v + 1;
}

static uint64_t align_up(uint64_t v, uint64_t a)
{
	return (v + a - 1) & ~(a - 1);
}

/* Lays out one ring at *pos: producer line, consumer line, then entries. */
static void ring_place(struct copro_ring_off *o, uint64_t *pos, uint32_t n, uint32_t esize)
{
	memset(o, 0, sizeof(*o));
	o->off = (uint32_t)*pos;
	o->tail = o->off;
	o->head = o->off + COPRO_CACHELINE;
	o->entries = o->off + 2 * COPRO_CACHELINE;
	o->ring_entries = n;
	o->entry_size = esize;
	*pos = align_up(o->entries + (uint64_t)n * esize, 4096);
}

int copro_layout_compute(uint32_t sq_entries, uint32_t cq_entries, uint64_t arena_size,
			 struct copro_layout *l)
{
	uint64_t pos = COPRO_SB_SIZE;

	if (!sq_entries || !arena_size)
		return -EINVAL;
	if (sq_entries > COPRO_SQ_MAX)
		sq_entries = COPRO_SQ_MAX;
	if (sq_entries < COPRO_SQ_MIN)
		sq_entries = COPRO_SQ_MIN;
	sq_entries = roundup_pow2(sq_entries);
	if (!cq_entries)
		cq_entries = 2 * sq_entries;
	if (cq_entries > COPRO_CQ_MAX)
		cq_entries = COPRO_CQ_MAX;
	cq_entries = roundup_pow2(cq_entries);
	if (cq_entries < sq_entries)
		cq_entries = sq_entries;
	if (arena_size < COPRO_ARENA_MIN)
		arena_size = COPRO_ARENA_MIN;
	if (arena_size > COPRO_ARENA_MAX)
		return -EINVAL;
	arena_size = align_up(arena_size, 4096);

	memset(l, 0, sizeof(*l));
	l->sq_entries = sq_entries;
	l->cq_entries = cq_entries;
	ring_place(&l->sq, &pos, sq_entries, sizeof(struct copro_sqe));
	ring_place(&l->cq, &pos, cq_entries, sizeof(struct copro_cqe));
	l->arena_off = pos;
	l->arena_size = arena_size;
	l->region_size = pos + arena_size;
	return 0;
}

void copro_layout_to_sb(const struct copro_layout *l, struct copro_sb *sb)
{
	sb->abi_major = COPRO_ABI_MAJOR;
	sb->abi_minor = COPRO_ABI_MINOR;
	sb->sb_size = sizeof(*sb);
	sb->region_size = l->region_size;
	sb->sq = l->sq;
	sb->cq = l->cq;
	sb->arena_off = l->arena_off;
	sb->arena_size = l->arena_size;
}

static int ring_check(const struct copro_ring_off *o, uint32_t esize, uint64_t file_size)
{
	uint32_t n = o->ring_entries;

	if (n == 0 || (n & (n - 1)) || o->entry_size != esize)
		return -EPROTO;
	if (o->off % COPRO_CACHELINE || o->tail % 4 || o->head % 4 || o->entries % 8)
		return -EPROTO;
	/* Head and tail must sit on different cache lines of the ring part. */
	if (o->tail / COPRO_CACHELINE == o->head / COPRO_CACHELINE)
		return -EPROTO;
	/* Both index words lie in the ring's own header, before its entries. */
	if (o->tail < o->off || o->head < o->off || o->entries < o->off ||
	    (uint64_t)o->tail + 4 > o->entries || (uint64_t)o->head + 4 > o->entries)
		return -ERANGE;
	if ((uint64_t)o->tail + 4 > file_size || (uint64_t)o->head + 4 > file_size)
		return -ERANGE;
	if ((uint64_t)o->entries + (uint64_t)n * esize > file_size)
		return -ERANGE;
	return 0;
}

static int overlap(uint64_t a, uint64_t alen, uint64_t b, uint64_t blen)
{
	return a < b + blen && b < a + alen;
}

int copro_layout_from_sb(const struct copro_sb *sb, uint64_t file_size, struct copro_layout *l)
{
	uint64_t sq_end, cq_end;
	int ret;

	if (file_size < sizeof(*sb))
		return -EPROTO;
	if (sb->magic != COPRO_ABI_MAGIC)
		return -EPROTO;
	if (sb->abi_major != COPRO_ABI_MAJOR)
		return -EPROTONOSUPPORT;
	if (sb->sb_size != sizeof(*sb) || sb->region_size != file_size)
		return -EPROTO;
	ret = ring_check(&sb->sq, sizeof(struct copro_sqe), file_size);
	if (ret)
		return ret;
	ret = ring_check(&sb->cq, sizeof(struct copro_cqe), file_size);
	if (ret)
		return ret;
	if (sb->sq.off < sizeof(*sb) || sb->cq.off < sizeof(*sb))
		return -ERANGE;
	if (sb->arena_off < sizeof(*sb) || sb->arena_off > file_size ||
	    sb->arena_size > file_size - sb->arena_off || sb->arena_size == 0)
		return -ERANGE;
	sq_end = sb->sq.entries + (uint64_t)sb->sq.ring_entries * sb->sq.entry_size;
	cq_end = sb->cq.entries + (uint64_t)sb->cq.ring_entries * sb->cq.entry_size;
	if (overlap(sb->sq.off, sq_end - sb->sq.off, sb->cq.off, cq_end - sb->cq.off) ||
	    overlap(sb->sq.off, sq_end - sb->sq.off, sb->arena_off, sb->arena_size) ||
	    overlap(sb->cq.off, cq_end - sb->cq.off, sb->arena_off, sb->arena_size))
		return -ERANGE;

	memset(l, 0, sizeof(*l));
	l->sq = sb->sq;
	l->cq = sb->cq;
	l->sq_entries = sb->sq.ring_entries;
	l->cq_entries = sb->cq.ring_entries;
	l->arena_off = sb->arena_off;
	l->arena_size = sb->arena_size;
	l->region_size = sb->region_size;
	return 0;
}

void copro_ring_init(struct copro_ring *r, void *base, const struct copro_ring_off *o)
{
	uint8_t *b = base;

	r->tail = (_Atomic uint32_t *)(b + o->tail);
	r->head = (_Atomic uint32_t *)(b + o->head);
	r->entries = b + o->entries;
	r->mask = o->ring_entries - 1;
	r->entry_size = o->entry_size;
	r->local = 0;
	r->cached = 0;
}
