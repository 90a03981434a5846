/* SPDX-License-Identifier: MIT */
/*
 * ring.h - single-producer single-consumer rings over a mapped region.
 *
 * Each side keeps a private struct copro_ring: pointers into the region for
 * the shared head and tail, its own copy of the index it owns, and a cached
 * copy of the other side's index that it reloads only when the ring looks
 * full (producer) or empty (consumer). Indices are free-running u32 and wrap
 * by mask. The mask and entry pointer come from the private struct, never
 * from shared memory, so a peer that scribbles on the region cannot make us
 * index outside it.
 *
 * Memory ordering (C11):
 *   producer: write entry; store-release tail   -- pairs with consumer's load-acquire tail
 *   consumer: read entry;  store-release head   -- pairs with producer's load-acquire head
 */
#ifndef COPRO_RING_H
#define COPRO_RING_H

#include <stdatomic.h>
#include <stdint.h>

#include "copro_abi.h"

struct copro_ring {
	_Atomic uint32_t *tail;		/* shared */
	_Atomic uint32_t *head;		/* shared */
	uint8_t *entries;		/* shared, ring_entries * entry_size */
	uint32_t mask;			/* private: ring_entries - 1 */
	uint32_t entry_size;		/* private */
	uint32_t local;			/* the index this side owns (tail or head) */
	uint32_t cached;		/* last value seen of the other side's index */
};

/* Loads the peer's index; acquire pairs with the peer's release store. */
static inline uint32_t copro_load_acquire(_Atomic uint32_t *p)
{
	return atomic_load_explicit(p, memory_order_acquire);
}

/* Publishes our index; release pairs with the peer's acquire load. */
static inline void copro_store_release(_Atomic uint32_t *p, uint32_t v)
{
	atomic_store_explicit(p, v, memory_order_release);
}

static inline uint32_t copro_load_relaxed(_Atomic uint32_t *p)
{
	return atomic_load_explicit(p, memory_order_relaxed);
}

/*
 * Full fence used by the sleep protocol: the sleeper stores its flag, fences,
 * then re-checks the ring; the waker publishes, fences, then checks the flag.
 * One of the two is guaranteed to see the other (Dekker), so no wake-up is
 * lost.
 */
static inline void copro_fence(void)
{
	atomic_thread_fence(memory_order_seq_cst);
}

static inline void *copro_ring_entry(const struct copro_ring *r, uint32_t idx)
{
	return r->entries + (size_t)(idx & r->mask) * r->entry_size;
}

/* Producer: number of free slots, reloading the consumer head if needed. */
static inline uint32_t copro_ring_space(struct copro_ring *r, uint32_t want)
{
	uint32_t size = r->mask + 1;
	uint32_t space = size - (r->local - r->cached);
	uint32_t head;

	if (space < want) {
		head = copro_load_acquire(r->head);
		space = size - (r->local - head);
		/*
		 * A consumer that moved head past our tail is broken: report
		 * full, and do not cache the bad value, so the next call checks
		 * again instead of trusting it.
		 */
		if (space > size)
			return 0;
		r->cached = head;
	}
	return space;
}

/* Producer: the slot for the next entry; caller checked space. */
static inline void *copro_ring_prod_slot(struct copro_ring *r, uint32_t i)
{
	return copro_ring_entry(r, r->local + i);
}

/* Producer: make n more entries visible to the consumer. */
static inline void copro_ring_publish(struct copro_ring *r, uint32_t n)
{
	r->local += n;
	copro_store_release(r->tail, r->local);
}

/*
 * Consumer: number of ready entries, reloading the producer tail when the
 * cached copy says empty. Returns UINT32_MAX when the producer's tail is
 * more than a ring ahead of our head: the peer is broken.
 */
static inline uint32_t copro_ring_ready(struct copro_ring *r)
{
	uint32_t n = r->cached - r->local;
	uint32_t tail;

	if (n == 0) {
		tail = copro_load_acquire(r->tail);
		n = tail - r->local;
		if (n > r->mask + 1)
			return UINT32_MAX;	/* not cached: stays broken */
		r->cached = tail;
	}
	return n;
}

/* Consumer: the i-th ready entry. */
static inline void *copro_ring_cons_slot(struct copro_ring *r, uint32_t i)
{
	return copro_ring_entry(r, r->local + i);
}

/* Consumer: release n entries back to the producer. */
static inline void copro_ring_release(struct copro_ring *r, uint32_t n)
{
	r->local += n;
	copro_store_release(r->head, r->local);
}

#endif /* COPRO_RING_H */
