/* SPDX-License-Identifier: MIT */
/*
 * jring.h - a single-producer single-consumer ring of pointers between the
 * poller and a model's worker thread (jobs one way, finished jobs back).
 * The producer never overruns it: every job comes from a pool of the
 * ring's size, so there is no full check.
 */
#ifndef COPRO_JRING_H
#define COPRO_JRING_H

#include <errno.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>

struct copro_jring {
	_Alignas(64) _Atomic uint32_t tail;	/* producer */
	_Alignas(64) _Atomic uint32_t head;	/* consumer */
	_Alignas(64) uint32_t mask;
	void **slot;
};

/* Sizes the ring to a power of two >= min_entries. Returns 0 or -ENOMEM. */
static inline int jring_init(struct copro_jring *r, uint32_t min_entries)
{
	uint32_t n = 1;

	while (n < min_entries)
		n <<= 1;
	r->slot = calloc(n, sizeof(*r->slot));
	if (!r->slot)
		return -ENOMEM;
	r->mask = n - 1;
	atomic_init(&r->head, 0);
	atomic_init(&r->tail, 0);
	return 0;
}

static inline void jring_push(struct copro_jring *r, void *job)
{
	uint32_t t = atomic_load_explicit(&r->tail, memory_order_relaxed);

	r->slot[t & r->mask] = job;
	/* Release pairs with jring_pop()'s acquire load of the tail. */
	atomic_store_explicit(&r->tail, t + 1, memory_order_release);
}

static inline void *jring_pop(struct copro_jring *r)
{
	uint32_t h = atomic_load_explicit(&r->head, memory_order_relaxed);
	void *job;

	if (h == atomic_load_explicit(&r->tail, memory_order_acquire))
		return NULL;
	job = r->slot[h & r->mask];
	atomic_store_explicit(&r->head, h + 1, memory_order_release);
	return job;
}

static inline int jring_empty(struct copro_jring *r)
{
	return atomic_load_explicit(&r->head, memory_order_relaxed) ==
	       atomic_load_explicit(&r->tail, memory_order_acquire);
}

#endif
