// SPDX-License-Identifier: MIT
/*
 * test_arena.c - the client's first-fit arena allocator (client/arena.c).
 *
 * The allocator's lists are visible in struct copro_arena, so the tests check
 * the free list itself after each free (sorted, coalesced) as well as the
 * offsets it hands out, and a long random run is checked step by step
 * against a granule bitmap that does first fit the slow, obvious way.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "arena.h"
#include "copro_abi.h"

#define A	COPRO_ARENA_ALIGN

/* Checks the free list is sorted, coalesced, aligned and inside [lo, hi). */
static void check_free_list(const struct copro_arena *a, uint64_t lo, uint64_t hi)
{
	for (uint32_t i = 0; i < a->n_free; i++) {
		const struct copro_extent *e = &a->free[i];

		assert_true(e->len > 0);
		assert_int_equal(e->off % A, 0);
		assert_true(e->off >= lo && e->off + e->len <= hi);
		if (i > 0)
			/* Strictly after the previous one, with a gap: touching ones merge. */
			assert_true(a->free[i - 1].off + a->free[i - 1].len < e->off);
	}
	for (uint32_t i = 1; i < a->n_used; i++)
		assert_true(a->used[i - 1].off + a->used[i - 1].len <= a->used[i].off);
}

static void assert_extent(const struct copro_arena *a, uint32_t i, uint64_t off, uint64_t len)
{
	assert_true(i < a->n_free);
	assert_int_equal(a->free[i].off, off);
	assert_int_equal(a->free[i].len, len);
}

/* ---- init and alignment ---------------------------------------------------------- */

static void should_start_with_one_free_extent(void **state)
{
	struct copro_arena a;

	assert_int_equal(copro_arena_init(&a, 0, 4096), 0);
	assert_int_equal(a.n_free, 1);
	assert_extent(&a, 0, 0, 4096);
	assert_int_equal(a.n_used, 0);
	copro_arena_destroy(&a);
}

static void should_align_unaligned_base(void **state)
{
	struct copro_arena a;
	uint64_t off;

	assert_int_equal(copro_arena_init(&a, 10, 4096), 0);
	assert_extent(&a, 0, A, 4096 + 10 - A);
	assert_int_equal(copro_arena_alloc(&a, 1, &off), 0);
	assert_int_equal(off, A);
	copro_arena_destroy(&a);
}

static void should_have_no_space_when_arena_smaller_than_alignment_pad(void **state)
{
	struct copro_arena a;
	uint64_t off;

	assert_int_equal(copro_arena_init(&a, 1, 10), 0);
	assert_int_equal(a.n_free, 0);
	assert_int_equal(copro_arena_alloc(&a, 1, &off), -ENOMEM);
	copro_arena_destroy(&a);
}

static void should_return_64_byte_aligned_offsets(void **state)
{
	static const uint64_t lens[] = { 1, 63, 64, 65, 100, 127, 128, 129, 1000, 4095 };
	struct copro_arena a;
	uint64_t off, prev_end = 0;

	assert_int_equal(copro_arena_init(&a, 0, 1 << 20), 0);
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		assert_int_equal(copro_arena_alloc(&a, lens[i], &off), 0);
		assert_int_equal(off % A, 0);
		/* Blocks are packed: each starts at the previous one's rounded end. */
		assert_int_equal(off, prev_end);
		prev_end = off + ((lens[i] + A - 1) / A) * A;
	}
	check_free_list(&a, 0, 1 << 20);
	copro_arena_destroy(&a);
}

static void should_reject_zero_and_huge_lengths(void **state)
{
	struct copro_arena a;
	uint64_t off = 12345;

	assert_int_equal(copro_arena_init(&a, 0, 4096), 0);
	assert_int_equal(copro_arena_alloc(&a, 0, &off), -EINVAL);
	assert_int_equal(copro_arena_alloc(&a, UINT64_MAX, &off), -EINVAL);
	assert_int_equal(copro_arena_alloc(&a, UINT64_MAX - A + 1, &off), -EINVAL);
	assert_int_equal(off, 12345);
	/* Larger than the arena but representable: no space. */
	assert_int_equal(copro_arena_alloc(&a, UINT64_MAX - A, &off), -ENOMEM);
	copro_arena_destroy(&a);
}

/* ---- first fit and exhaustion ---------------------------------------------------- */

static void should_allocate_from_lowest_hole_that_fits(void **state)
{
	struct copro_arena a;
	uint64_t o[6], off;

	assert_int_equal(copro_arena_init(&a, 0, 4096), 0);
	/* [0,256) [256,320) [320,448) [448,512) [512,576) [576,640), rest free */
	assert_int_equal(copro_arena_alloc(&a, 256, &o[0]), 0);
	assert_int_equal(copro_arena_alloc(&a, 64, &o[1]), 0);
	assert_int_equal(copro_arena_alloc(&a, 128, &o[2]), 0);
	assert_int_equal(copro_arena_alloc(&a, 64, &o[3]), 0);
	assert_int_equal(copro_arena_alloc(&a, 64, &o[4]), 0);
	assert_int_equal(copro_arena_alloc(&a, 64, &o[5]), 0);
	assert_int_equal(o[5], 576);
	/* Holes: 256 at 0, 128 at 320, 64 at 512. */
	assert_int_equal(copro_arena_free(&a, o[0]), 0);
	assert_int_equal(copro_arena_free(&a, o[2]), 0);
	assert_int_equal(copro_arena_free(&a, o[4]), 0);
	check_free_list(&a, 0, 4096);
	/* 64 fits all three: first fit takes the lowest, not the tightest. */
	assert_int_equal(copro_arena_alloc(&a, 64, &off), 0);
	assert_int_equal(off, 0);
	/* 192 left at 64: a 200-byte block (256) does not fit there or at 320. */
	assert_int_equal(copro_arena_alloc(&a, 200, &off), 0);
	assert_int_equal(off, 640);
	/* 100 -> 128 fits the 192 hole at 64. */
	assert_int_equal(copro_arena_alloc(&a, 100, &off), 0);
	assert_int_equal(off, 64);
	check_free_list(&a, 0, 4096);
	copro_arena_destroy(&a);
}

static void should_take_whole_hole_when_it_fits_exactly(void **state)
{
	struct copro_arena a;
	uint64_t o[3], off;

	assert_int_equal(copro_arena_init(&a, 0, 4096), 0);
	assert_int_equal(copro_arena_alloc(&a, 64, &o[0]), 0);
	assert_int_equal(copro_arena_alloc(&a, 128, &o[1]), 0);
	assert_int_equal(copro_arena_alloc(&a, 64, &o[2]), 0);
	assert_int_equal(copro_arena_free(&a, o[1]), 0);
	assert_int_equal(a.n_free, 2);
	assert_int_equal(copro_arena_alloc(&a, 128, &off), 0);
	assert_int_equal(off, o[1]);
	assert_int_equal(a.n_free, 1);
	assert_extent(&a, 0, 256, 4096 - 256);
	copro_arena_destroy(&a);
}

static void should_fail_with_enomem_when_exhausted(void **state)
{
	struct copro_arena a;
	uint64_t off;

	assert_int_equal(copro_arena_init(&a, 0, 1024), 0);
	for (int i = 0; i < 1024 / A; i++)
		assert_int_equal(copro_arena_alloc(&a, A, &off), 0);
	assert_int_equal(a.n_free, 0);
	assert_int_equal(copro_arena_alloc(&a, 1, &off), -ENOMEM);
	assert_int_equal(copro_arena_free(&a, 512), 0);
	assert_int_equal(copro_arena_alloc(&a, 65, &off), -ENOMEM);
	assert_int_equal(copro_arena_alloc(&a, 64, &off), 0);
	assert_int_equal(off, 512);
	copro_arena_destroy(&a);
}

static void should_fail_when_free_space_is_fragmented(void **state)
{
	struct copro_arena a;
	uint64_t off;

	assert_int_equal(copro_arena_init(&a, 0, 1024), 0);
	for (int i = 0; i < 1024 / A; i++)
		assert_int_equal(copro_arena_alloc(&a, A, &off), 0);
	/* Free every other block: 512 bytes free, no two blocks adjacent. */
	for (uint64_t o = 0; o < 1024; o += 2 * A)
		assert_int_equal(copro_arena_free(&a, o), 0);
	assert_int_equal(a.n_free, 8);
	assert_int_equal(copro_arena_alloc(&a, 2 * A, &off), -ENOMEM);
	check_free_list(&a, 0, 1024);
	copro_arena_destroy(&a);
}

static void should_use_the_arena_tail_that_is_not_a_multiple_of_64(void **state)
{
	struct copro_arena a;
	uint64_t off;

	/* 100 bytes: one block of 64 fits, a block of 65 (128) does not. */
	assert_int_equal(copro_arena_init(&a, 0, 100), 0);
	assert_int_equal(copro_arena_alloc(&a, 65, &off), -ENOMEM);
	assert_int_equal(copro_arena_alloc(&a, 64, &off), 0);
	assert_int_equal(off, 0);
	assert_extent(&a, 0, 64, 36);
	assert_int_equal(copro_arena_alloc(&a, 1, &off), -ENOMEM);
	copro_arena_destroy(&a);
}

/* ---- free and coalescing --------------------------------------------------------- */

/* Four blocks of 64 at 0, 64, 128, 192 and a guard at 256 that stays allocated. */
static void four_blocks(struct copro_arena *a)
{
	uint64_t off;

	assert_int_equal(copro_arena_init(a, 0, 4096), 0);
	for (uint64_t i = 0; i < 5; i++) {
		assert_int_equal(copro_arena_alloc(a, 64, &off), 0);
		assert_int_equal(off, i * 64);
	}
	assert_int_equal(a->n_free, 1);
	assert_extent(a, 0, 320, 4096 - 320);
}

static void should_keep_separate_extents_when_not_touching(void **state)
{
	struct copro_arena a;

	four_blocks(&a);
	assert_int_equal(copro_arena_free(&a, 64), 0);
	assert_int_equal(copro_arena_free(&a, 192), 0);
	assert_int_equal(a.n_free, 3);
	assert_extent(&a, 0, 64, 64);
	assert_extent(&a, 1, 192, 64);
	assert_extent(&a, 2, 320, 4096 - 320);
	assert_int_equal(a.n_used, 3);
	copro_arena_destroy(&a);
}

static void should_coalesce_with_previous_extent(void **state)
{
	struct copro_arena a;

	four_blocks(&a);
	assert_int_equal(copro_arena_free(&a, 64), 0);
	assert_int_equal(copro_arena_free(&a, 128), 0);
	assert_int_equal(a.n_free, 2);
	assert_extent(&a, 0, 64, 128);
	check_free_list(&a, 0, 4096);
	copro_arena_destroy(&a);
}

static void should_coalesce_with_next_extent(void **state)
{
	struct copro_arena a;

	four_blocks(&a);
	assert_int_equal(copro_arena_free(&a, 128), 0);
	assert_int_equal(copro_arena_free(&a, 64), 0);
	assert_int_equal(a.n_free, 2);
	assert_extent(&a, 0, 64, 128);
	check_free_list(&a, 0, 4096);
	copro_arena_destroy(&a);
}

static void should_coalesce_with_both_neighbours(void **state)
{
	struct copro_arena a;

	four_blocks(&a);
	assert_int_equal(copro_arena_free(&a, 0), 0);
	assert_int_equal(copro_arena_free(&a, 128), 0);
	assert_int_equal(a.n_free, 3);
	assert_int_equal(copro_arena_free(&a, 64), 0);
	assert_int_equal(a.n_free, 2);
	assert_extent(&a, 0, 0, 192);
	assert_extent(&a, 1, 320, 4096 - 320);
	check_free_list(&a, 0, 4096);
	copro_arena_destroy(&a);
}

static void should_coalesce_into_the_tail_extent(void **state)
{
	struct copro_arena a;

	four_blocks(&a);
	assert_int_equal(copro_arena_free(&a, 256), 0);
	assert_int_equal(a.n_free, 1);
	assert_extent(&a, 0, 256, 4096 - 256);
	copro_arena_destroy(&a);
}

static void should_return_to_one_extent_after_freeing_everything(void **state)
{
	struct copro_arena a;
	static const uint64_t order[] = { 192, 0, 256, 64, 128 };

	four_blocks(&a);
	for (size_t i = 0; i < 5; i++) {
		assert_int_equal(copro_arena_free(&a, order[i]), 0);
		check_free_list(&a, 0, 4096);
	}
	assert_int_equal(a.n_free, 1);
	assert_extent(&a, 0, 0, 4096);
	assert_int_equal(a.n_used, 0);
	copro_arena_destroy(&a);
}

static void should_return_enoent_for_unknown_offset(void **state)
{
	struct copro_arena a;

	four_blocks(&a);
	assert_int_equal(copro_arena_free(&a, 1000), -ENOENT);	/* free space */
	assert_int_equal(copro_arena_free(&a, 65), -ENOENT);	/* inside a block */
	assert_int_equal(copro_arena_free(&a, UINT64_MAX), -ENOENT);
	assert_int_equal(a.n_used, 5);
	assert_int_equal(a.n_free, 1);
	copro_arena_destroy(&a);
}

static void should_return_enoent_on_double_free(void **state)
{
	struct copro_arena a;

	four_blocks(&a);
	assert_int_equal(copro_arena_free(&a, 128), 0);
	assert_int_equal(copro_arena_free(&a, 128), -ENOENT);
	assert_int_equal(a.n_free, 2);
	assert_int_equal(a.n_used, 4);
	copro_arena_destroy(&a);
}

static void should_reuse_freed_block(void **state)
{
	struct copro_arena a;
	uint64_t o1, o2, o3;

	assert_int_equal(copro_arena_init(&a, 4096, 65536), 0);
	assert_int_equal(copro_arena_alloc(&a, 1000, &o1), 0);
	assert_int_equal(copro_arena_alloc(&a, 1000, &o2), 0);
	assert_int_equal(copro_arena_free(&a, o1), 0);
	assert_int_equal(copro_arena_alloc(&a, 1000, &o3), 0);
	assert_int_equal(o3, o1);
	assert_int_equal(o1, 4096);
	copro_arena_destroy(&a);
}

static void should_grow_lists_past_initial_capacity(void **state)
{
	struct copro_arena a;
	uint64_t off;

	assert_int_equal(copro_arena_init(&a, 0, 1 << 20), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(copro_arena_alloc(&a, 64, &off), 0);
	assert_int_equal(a.n_used, 1000);
	/* Every other block: 500 separate free extents plus the tail. */
	for (uint64_t o = 0; o < 1000 * 64; o += 128)
		assert_int_equal(copro_arena_free(&a, o), 0);
	assert_int_equal(a.n_free, 501);
	check_free_list(&a, 0, 1 << 20);
	copro_arena_destroy(&a);
}

/* ---- random run against a reference model --------------------------------------- */

#define MODEL_BASE	8192
#define MODEL_GRANULES	1024			/* arena of 64 KiB */
#define MODEL_STEPS	20000
#define MODEL_LIVE_MAX	256

struct model {
	uint8_t used[MODEL_GRANULES];
	struct copro_extent live[MODEL_LIVE_MAX];	/* granule index, granule count */
	uint32_t n_live;
};

/* First fit the slow way: lowest start of a free run of k granules, or -1. */
static int64_t model_find(const struct model *m, uint64_t k)
{
	uint64_t run = 0;

	for (uint64_t g = 0; g < MODEL_GRANULES; g++) {
		run = m->used[g] ? 0 : run + 1;
		if (run == k)
			return (int64_t)(g + 1 - k);
	}
	return -1;
}

static uint64_t rng_next(uint64_t *s)
{
	/* xorshift64*: deterministic, so a failure replays. */
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

/* The allocator's free space must be exactly the model's free granules. */
static void compare_with_model(const struct copro_arena *a, const struct model *m)
{
	uint64_t free_bytes = 0, model_free = 0;

	check_free_list(a, MODEL_BASE, MODEL_BASE + MODEL_GRANULES * A);
	for (uint32_t i = 0; i < a->n_free; i++) {
		uint64_t g0 = (a->free[i].off - MODEL_BASE) / A;

		for (uint64_t g = g0; g < g0 + a->free[i].len / A; g++)
			assert_int_equal(m->used[g], 0);
		free_bytes += a->free[i].len;
	}
	for (uint64_t g = 0; g < MODEL_GRANULES; g++)
		model_free += !m->used[g];
	assert_int_equal(free_bytes, model_free * A);
	assert_int_equal(a->n_used, m->n_live);
}

static void should_match_first_fit_model_over_random_alloc_free(void **state)
{
	struct copro_arena a;
	struct model *m = calloc(1, sizeof(*m));
	uint64_t seed = 0x9e3779b97f4a7c15ULL;

	assert_non_null(m);
	assert_int_equal(copro_arena_init(&a, MODEL_BASE, MODEL_GRANULES * A), 0);
	for (int step = 0; step < MODEL_STEPS; step++) {
		uint64_t r = rng_next(&seed);
		int do_alloc = m->n_live == 0 ||
			       (m->n_live < MODEL_LIVE_MAX && (r % 100) < 55);

		if (do_alloc) {
			/* Mostly small, sometimes large requests, any byte count. */
			uint64_t len = (r >> 8) % 8 == 0 ? 1 + (r >> 16) % (16 * 1024)
							 : 1 + (r >> 16) % 1024;
			uint64_t k = (len + A - 1) / A, off = 0;
			int64_t want = model_find(m, k);
			int ret = copro_arena_alloc(&a, len, &off);

			if (want < 0) {
				assert_int_equal(ret, -ENOMEM);
			} else {
				assert_int_equal(ret, 0);
				assert_int_equal(off, MODEL_BASE + (uint64_t)want * A);
				memset(&m->used[want], 1, k);
				m->live[m->n_live++] = (struct copro_extent){ (uint64_t)want, k };
			}
		} else {
			uint32_t i = (uint32_t)((r >> 8) % m->n_live);
			struct copro_extent e = m->live[i];

			assert_int_equal(copro_arena_free(&a, MODEL_BASE + e.off * A), 0);
			memset(&m->used[e.off], 0, e.len);
			m->live[i] = m->live[--m->n_live];
		}
		compare_with_model(&a, m);
	}
	/* Free what is left: the arena must be one extent again. */
	while (m->n_live) {
		struct copro_extent e = m->live[--m->n_live];

		assert_int_equal(copro_arena_free(&a, MODEL_BASE + e.off * A), 0);
		memset(&m->used[e.off], 0, e.len);
	}
	assert_int_equal(a.n_free, 1);
	assert_extent(&a, 0, MODEL_BASE, MODEL_GRANULES * A);
	copro_arena_destroy(&a);
	free(m);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_start_with_one_free_extent),
		cmocka_unit_test(should_align_unaligned_base),
		cmocka_unit_test(should_have_no_space_when_arena_smaller_than_alignment_pad),
		cmocka_unit_test(should_return_64_byte_aligned_offsets),
		cmocka_unit_test(should_reject_zero_and_huge_lengths),
		cmocka_unit_test(should_allocate_from_lowest_hole_that_fits),
		cmocka_unit_test(should_take_whole_hole_when_it_fits_exactly),
		cmocka_unit_test(should_fail_with_enomem_when_exhausted),
		cmocka_unit_test(should_fail_when_free_space_is_fragmented),
		cmocka_unit_test(should_use_the_arena_tail_that_is_not_a_multiple_of_64),
		cmocka_unit_test(should_keep_separate_extents_when_not_touching),
		cmocka_unit_test(should_coalesce_with_previous_extent),
		cmocka_unit_test(should_coalesce_with_next_extent),
		cmocka_unit_test(should_coalesce_with_both_neighbours),
		cmocka_unit_test(should_coalesce_into_the_tail_extent),
		cmocka_unit_test(should_return_to_one_extent_after_freeing_everything),
		cmocka_unit_test(should_return_enoent_for_unknown_offset),
		cmocka_unit_test(should_return_enoent_on_double_free),
		cmocka_unit_test(should_reuse_freed_block),
		cmocka_unit_test(should_grow_lists_past_initial_capacity),
		cmocka_unit_test(should_match_first_fit_model_over_random_alloc_free),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
