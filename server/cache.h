/* SPDX-License-Identifier: MIT */
/*
 * cache.h - a tensor model's response cache: input bytes -> output bytes.
 *
 * Keyed by an XXH3 hash of the model's handle and version and the request's
 * input bytes, confirmed by comparing the stored input bytes, so a hash
 * collision can never return another request's outputs. Bounded in bytes,
 * least recently used first out. The poller alone uses it: no locks.
 * Both the inputs hashed and the outputs stored are the server's private
 * copies, never bytes in a client's arena, which the client may rewrite at
 * any time: one client cannot plant outputs for another.
 */
#ifndef COPRO_CACHE_H
#define COPRO_CACHE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct copro_cache_entry;

struct copro_cache {
	uint64_t cap_bytes;
	uint64_t seed;			/* handle and version of the model */
	uint32_t mask;			/* buckets - 1 */
	struct copro_cache_entry **buckets;
	struct copro_cache_entry *lru_head;	/* most recent */
	struct copro_cache_entry *lru_tail;	/* next to evict */
	/* read by the status reply on another thread */
	_Atomic uint64_t used_bytes, entries, hits, misses, evictions;
};

/* Returns a cache of cap_bytes, or NULL (out of memory). */
struct copro_cache *copro_cache_new(uint64_t cap_bytes, uint64_t seed);
void copro_cache_free(struct copro_cache *c);

uint64_t copro_cache_key(const struct copro_cache *c, const void *in, size_t in_len);

/*
 * Looks up inputs in[0..in_len) under key; on a hit returns the stored
 * outputs (out_len bytes) and makes the entry most recent, else NULL.
 */
const void *copro_cache_get(struct copro_cache *c, uint64_t key, const void *in, size_t in_len,
			    size_t *out_len);

/* Stores a copy of inputs and outputs, evicting the least recent to fit. */
void copro_cache_put(struct copro_cache *c, uint64_t key, const void *in, size_t in_len,
		     const void *out, size_t out_len);

#endif
