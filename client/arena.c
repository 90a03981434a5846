// SPDX-License-Identifier: MIT
/*
 * arena.c - first-fit allocator over a client's tensor arena.
 *
 * Two sorted extent arrays: free (coalesced) and used. Allocation and free
 * are O(extents), which is fine: tensors are allocated once and reused, not
 * per request.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "arena.h"
#include "copro_abi.h"

static int grow(struct copro_extent **v, uint32_t *cap, uint32_t need)
{
	struct copro_extent *n;
	uint32_t c;

	if (need <= *cap)
		return 0;
	c = *cap ? *cap * 2 : 16;
	while (c < need)
		c *= 2;
	n = realloc(*v, c * sizeof(**v));
	if (!n)
		return -ENOMEM;
	*v = n;
	*cap = c;
	return 0;
}

static void insert_at(struct copro_extent *v, uint32_t *n, uint32_t i, struct copro_extent e)
{
	memmove(&v[i + 1], &v[i], (*n - i) * sizeof(*v));
	v[i] = e;
	(*n)++;
}

static void remove_at(struct copro_extent *v, uint32_t *n, uint32_t i)
{
	memmove(&v[i], &v[i + 1], (*n - i - 1) * sizeof(*v));
	(*n)--;
}

int copro_arena_init(struct copro_arena *a, uint64_t base, uint64_t size)
{
	uint64_t start = (base + COPRO_ARENA_ALIGN - 1) & ~(uint64_t)(COPRO_ARENA_ALIGN - 1);

	memset(a, 0, sizeof(*a));
	if (grow(&a->free, &a->cap_free, 1))
		return -ENOMEM;
	if (start < base + size) {
		a->free[0] = (struct copro_extent){ start, base + size - start };
		a->n_free = 1;
	}
	return 0;
}

void copro_arena_destroy(struct copro_arena *a)
{
	free(a->free);
	free(a->used);
	memset(a, 0, sizeof(*a));
}

int copro_arena_alloc(struct copro_arena *a, uint64_t len, uint64_t *off)
{
	uint32_t i, j;

	if (!len || len > UINT64_MAX - COPRO_ARENA_ALIGN)
		return -EINVAL;
	len = (len + COPRO_ARENA_ALIGN - 1) & ~(uint64_t)(COPRO_ARENA_ALIGN - 1);
	for (i = 0; i < a->n_free; i++)
		if (a->free[i].len >= len)
			break;
	if (i == a->n_free)
		return -ENOMEM;
	if (grow(&a->used, &a->cap_used, a->n_used + 1))
		return -ENOMEM;
	*off = a->free[i].off;
	if (a->free[i].len == len) {
		remove_at(a->free, &a->n_free, i);
	} else {
		a->free[i].off += len;
		a->free[i].len -= len;
	}
	for (j = 0; j < a->n_used && a->used[j].off < *off; j++)
		;
	insert_at(a->used, &a->n_used, j, (struct copro_extent){ *off, len });
	return 0;
}

int copro_arena_free(struct copro_arena *a, uint64_t off)
{
	struct copro_extent e;
	uint32_t i, j;

	for (i = 0; i < a->n_used && a->used[i].off != off; i++)
		;
	if (i == a->n_used)
		return -ENOENT;
	e = a->used[i];
	remove_at(a->used, &a->n_used, i);
	for (j = 0; j < a->n_free && a->free[j].off < e.off; j++)
		;
	/* Merge with the previous and/or next free extent where they touch. */
	if (j > 0 && a->free[j - 1].off + a->free[j - 1].len == e.off) {
		a->free[j - 1].len += e.len;
		if (j < a->n_free && e.off + e.len == a->free[j].off) {
			a->free[j - 1].len += a->free[j].len;
			remove_at(a->free, &a->n_free, j);
		}
		return 0;
	}
	if (j < a->n_free && e.off + e.len == a->free[j].off) {
		a->free[j].off = e.off;
		a->free[j].len += e.len;
		return 0;
	}
	if (grow(&a->free, &a->cap_free, a->n_free + 1))
		return -ENOMEM;	/* leaks the extent; never happens in practice */
	insert_at(a->free, &a->n_free, j, e);
	return 0;
}
