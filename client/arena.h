/* SPDX-License-Identifier: MIT */
/*
 * arena.h - the client's allocator for tensor space in its arena.
 *
 * The bookkeeping lives in private memory, never in the shared region: the
 * server does not care how the client carves its arena, and a bug in the
 * client's tensor writes cannot corrupt the allocator.
 */
#ifndef COPRO_ARENA_H
#define COPRO_ARENA_H

#include <stdint.h>

struct copro_extent {
	uint64_t off;
	uint64_t len;
};

struct copro_arena {
	struct copro_extent *free;	/* sorted by offset, coalesced */
	uint32_t n_free, cap_free;
	struct copro_extent *used;	/* sorted by offset */
	uint32_t n_used, cap_used;
};

/* Manages [base, base + size); returns 0 or -ENOMEM. */
int copro_arena_init(struct copro_arena *a, uint64_t base, uint64_t size);
void copro_arena_destroy(struct copro_arena *a);
/* First fit, COPRO_ARENA_ALIGN aligned. Returns 0 or -ENOMEM / -EINVAL. */
int copro_arena_alloc(struct copro_arena *a, uint64_t len, uint64_t *off);
/* Frees the block starting at off; unknown offsets are ignored (returns -ENOENT). */
int copro_arena_free(struct copro_arena *a, uint64_t off);

#endif /* COPRO_ARENA_H */
