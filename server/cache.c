// SPDX-License-Identifier: MIT
/*
 * cache.c - LRU response cache over XXH3 (Debian's libxxhash: a fast,
 * well-kept hash, so the daemon does not carry its own).
 */
#include <stdlib.h>
#include <string.h>
#include <xxhash.h>

#include "cache.h"

#define BUCKETS		(1U << 14)

struct copro_cache_entry {
	uint64_t key;
	size_t in_len, out_len;
	struct copro_cache_entry *chain;	/* next in the bucket */
	struct copro_cache_entry *prev, *next;	/* LRU list */
	uint8_t data[];				/* inputs, then outputs */
};

static uint64_t entry_bytes(const struct copro_cache_entry *e)
{
	return sizeof(*e) + e->in_len + e->out_len;
}

static void stat_add(_Atomic uint64_t *v, int64_t n)
{
	atomic_store_explicit(v, atomic_load_explicit(v, memory_order_relaxed) + (uint64_t)n,
			      memory_order_relaxed);
}

struct copro_cache *copro_cache_new(uint64_t cap_bytes, uint64_t seed)
{
	struct copro_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->buckets = calloc(BUCKETS, sizeof(*c->buckets));
	if (!c->buckets) {
		free(c);
		return NULL;
	}
	c->mask = BUCKETS - 1;
	c->cap_bytes = cap_bytes;
	c->seed = seed;
	return c;
}

void copro_cache_free(struct copro_cache *c)
{
	struct copro_cache_entry *e, *next;

	if (!c)
		return;
	for (e = c->lru_head; e; e = next) {
		next = e->next;
		free(e);
	}
	free(c->buckets);
	free(c);
}

uint64_t copro_cache_key(const struct copro_cache *c, const void *in, size_t in_len)
{
	return XXH3_64bits_withSeed(in, in_len, c->seed);
}

static void lru_unlink(struct copro_cache *c, struct copro_cache_entry *e)
{
	if (e->prev)
		e->prev->next = e->next;
	else
		c->lru_head = e->next;
	if (e->next)
		e->next->prev = e->prev;
	else
		c->lru_tail = e->prev;
	e->prev = e->next = NULL;
}

static void lru_push_front(struct copro_cache *c, struct copro_cache_entry *e)
{
	e->prev = NULL;
	e->next = c->lru_head;
	if (c->lru_head)
		c->lru_head->prev = e;
	c->lru_head = e;
	if (!c->lru_tail)
		c->lru_tail = e;
}

static void evict(struct copro_cache *c, struct copro_cache_entry *e)
{
	struct copro_cache_entry **pp = &c->buckets[e->key & c->mask];

	while (*pp && *pp != e)
		pp = &(*pp)->chain;
	if (*pp)
		*pp = e->chain;
	lru_unlink(c, e);
	stat_add(&c->used_bytes, -(int64_t)entry_bytes(e));
	stat_add(&c->entries, -1);
	free(e);
}

const void *copro_cache_get(struct copro_cache *c, uint64_t key, const void *in, size_t in_len,
			    size_t *out_len)
{
	struct copro_cache_entry *e;

	for (e = c->buckets[key & c->mask]; e; e = e->chain) {
		/* The hash narrows the search; the bytes decide. */
		if (e->key == key && e->in_len == in_len && !memcmp(e->data, in, in_len)) {
			lru_unlink(c, e);
			lru_push_front(c, e);
			stat_add(&c->hits, 1);
			*out_len = e->out_len;
			return e->data + e->in_len;
		}
	}
	stat_add(&c->misses, 1);
	return NULL;
}

void copro_cache_put(struct copro_cache *c, uint64_t key, const void *in, size_t in_len,
		     const void *out, size_t out_len)
{
	struct copro_cache_entry *e;
	size_t ignored;
	uint64_t need = sizeof(*e) + in_len + out_len;

	if (need > c->cap_bytes)
		return;
	/* Two misses on the same inputs in flight: the second finds the first. */
	for (e = c->buckets[key & c->mask]; e; e = e->chain)
		if (e->key == key && e->in_len == in_len && !memcmp(e->data, in, in_len))
			return;
	while (c->lru_tail &&
	       atomic_load_explicit(&c->used_bytes, memory_order_relaxed) + need > c->cap_bytes) {
		evict(c, c->lru_tail);
		stat_add(&c->evictions, 1);
	}
	e = malloc(need);
	if (!e)
		return;	/* a cache is allowed to forget */
	e->key = key;
	e->in_len = in_len;
	e->out_len = out_len;
	memcpy(e->data, in, in_len);
	memcpy(e->data + in_len, out, out_len);
	e->chain = c->buckets[key & c->mask];
	c->buckets[key & c->mask] = e;
	lru_push_front(c, e);
	stat_add(&c->used_bytes, (int64_t)need);
	stat_add(&c->entries, 1);
	(void)ignored;
}
