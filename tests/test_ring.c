// SPDX-License-Identifier: MIT
/*
 * test_ring.c - the SPSC ring helpers of shm/ring.h: empty and full, the
 * wrap of free-running u32 indices, the cached-index reload, the checks
 * against a broken peer, and a two-thread stress run.
 *
 * Each test lays out one ring by hand in a private buffer (producer line,
 * consumer line, entries) and gives the producer and the consumer their own
 * struct copro_ring over it, as the two processes would have.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "layout.h"
#include "ring.h"

#define ENTRY_SIZE	8	/* one uint64_t per entry */

struct ring_pair {
	uint8_t *region;		/* (2 * 64 + n * ENTRY_SIZE), rounded up to 64 */
	struct copro_ring_off off;
	struct copro_ring prod;
	struct copro_ring cons;
};

/*
 * What a test allocated, freed by the teardown so that a failing assertion,
 * which longjmps out of the test, does not show up as a leak as well.
 */
static void *test_region;
static void *test_stress;

static int teardown(void **state)
{
	free(test_region);
	free(test_stress);
	test_region = test_stress = NULL;
	return 0;
}

/* Lays out a ring of n entries at offset 0 and opens both sides on it. */
static void pair_open(struct ring_pair *p, uint32_t n)
{
	/* aligned_alloc wants a multiple of the alignment. */
	size_t size = (2 * COPRO_CACHELINE + (size_t)n * ENTRY_SIZE + COPRO_CACHELINE - 1) &
		      ~(size_t)(COPRO_CACHELINE - 1);

	p->region = aligned_alloc(COPRO_CACHELINE, size);
	assert_non_null(p->region);
	test_region = p->region;
	memset(p->region, 0, size);
	memset(&p->off, 0, sizeof(p->off));
	p->off.off = 0;
	p->off.tail = 0;
	p->off.head = COPRO_CACHELINE;
	p->off.entries = 2 * COPRO_CACHELINE;
	p->off.ring_entries = n;
	p->off.entry_size = ENTRY_SIZE;
	copro_ring_init(&p->prod, p->region, &p->off);
	copro_ring_init(&p->cons, p->region, &p->off);
}

static void pair_close(struct ring_pair *p)
{
	free(p->region);
	p->region = test_region = NULL;
}

/* Moves both sides and the shared indices to start at idx, ring empty. */
static void pair_start_at(struct ring_pair *p, uint32_t idx)
{
	atomic_store(p->prod.tail, idx);
	atomic_store(p->prod.head, idx);
	p->prod.local = p->prod.cached = idx;
	p->cons.local = p->cons.cached = idx;
}

/* Producer: pushes one value if there is room; returns 1 if it did. */
static int push(struct ring_pair *p, uint64_t v)
{
	if (copro_ring_space(&p->prod, 1) < 1)
		return 0;
	memcpy(copro_ring_prod_slot(&p->prod, 0), &v, sizeof(v));
	copro_ring_publish(&p->prod, 1);
	return 1;
}

/* Consumer: pops one value if one is ready; returns 1 if it did. */
static int pop(struct ring_pair *p, uint64_t *v)
{
	uint32_t n = copro_ring_ready(&p->cons);

	assert_int_not_equal(n, UINT32_MAX);
	if (n == 0)
		return 0;
	memcpy(v, copro_ring_cons_slot(&p->cons, 0), sizeof(*v));
	copro_ring_release(&p->cons, 1);
	return 1;
}

/* ---- empty and full ----------------------------------------------------------- */

static void should_start_empty_with_all_slots_free(void **state)
{
	struct ring_pair p;

	pair_open(&p, 8);
	assert_int_equal(copro_ring_ready(&p.cons), 0);
	assert_int_equal(copro_ring_space(&p.prod, 1), 8);
	assert_int_equal(copro_ring_space(&p.prod, 8), 8);
	pair_close(&p);
}

static void should_init_private_view_from_offsets(void **state)
{
	struct ring_pair p;

	pair_open(&p, 16);
	assert_ptr_equal(p.prod.tail, (void *)(p.region + 0));
	assert_ptr_equal(p.prod.head, (void *)(p.region + COPRO_CACHELINE));
	assert_ptr_equal(p.prod.entries, p.region + 2 * COPRO_CACHELINE);
	assert_int_equal(p.prod.mask, 15);
	assert_int_equal(p.prod.entry_size, ENTRY_SIZE);
	assert_int_equal(p.prod.local, 0);
	assert_int_equal(p.prod.cached, 0);
	/* Slot i of index idx is (idx & mask) * entry_size past the entries. */
	assert_ptr_equal(copro_ring_entry(&p.prod, 17), p.region + 2 * COPRO_CACHELINE + 8);
	pair_close(&p);
}

static void should_reject_push_when_full(void **state)
{
	struct ring_pair p;
	uint64_t v;

	pair_open(&p, 4);
	for (uint64_t i = 0; i < 4; i++)
		assert_true(push(&p, i));
	assert_int_equal(copro_ring_space(&p.prod, 1), 0);
	assert_false(push(&p, 99));
	assert_int_equal(copro_ring_ready(&p.cons), 4);

	/* One pop frees exactly one slot. */
	assert_true(pop(&p, &v));
	assert_int_equal(v, 0);
	assert_int_equal(copro_ring_space(&p.prod, 1), 1);
	assert_true(push(&p, 4));
	assert_int_equal(copro_ring_space(&p.prod, 1), 0);
	pair_close(&p);
}

static void should_report_nothing_ready_when_drained(void **state)
{
	struct ring_pair p;
	uint64_t v;

	pair_open(&p, 4);
	assert_true(push(&p, 7));
	assert_true(pop(&p, &v));
	assert_int_equal(v, 7);
	assert_false(pop(&p, &v));
	assert_int_equal(copro_ring_ready(&p.cons), 0);
	assert_int_equal(copro_ring_space(&p.prod, 4), 4);
	pair_close(&p);
}

static void should_publish_and_release_in_batches(void **state)
{
	struct ring_pair p;
	uint64_t v;

	pair_open(&p, 8);
	assert_int_equal(copro_ring_space(&p.prod, 5), 8);
	for (uint32_t i = 0; i < 5; i++) {
		v = 100 + i;
		memcpy(copro_ring_prod_slot(&p.prod, i), &v, sizeof(v));
	}
	/* Nothing is visible before the publish. */
	assert_int_equal(copro_ring_ready(&p.cons), 0);
	copro_ring_publish(&p.prod, 5);
	assert_int_equal(atomic_load(p.prod.tail), 5);
	assert_int_equal(copro_ring_ready(&p.cons), 5);
	for (uint32_t i = 0; i < 5; i++) {
		memcpy(&v, copro_ring_cons_slot(&p.cons, i), sizeof(v));
		assert_int_equal(v, 100 + i);
	}
	copro_ring_release(&p.cons, 5);
	assert_int_equal(atomic_load(p.cons.head), 5);
	assert_int_equal(copro_ring_space(&p.prod, 8), 8);
	pair_close(&p);
}

/* ---- wrap-around of free-running indices --------------------------------------- */

static void should_wrap_indices_past_uint32_max(void **state)
{
	struct ring_pair p;
	uint64_t v, next_in = 0, next_out = 0;

	pair_open(&p, 4);
	pair_start_at(&p, UINT32_MAX - 2);
	/* Push and pop 4 rings' worth so the indices cross 2^32 with data in flight. */
	for (int round = 0; round < 16; round++) {
		while (push(&p, next_in))
			next_in++;
		assert_int_equal(atomic_load(p.prod.tail) - atomic_load(p.prod.head), 4);
		assert_int_equal(copro_ring_space(&p.prod, 1), 0);
		/* Drain half, so the ring is never aligned to the wrap point. */
		for (int k = 0; k < 2 + (round & 1); k++) {
			assert_true(pop(&p, &v));
			assert_int_equal(v, next_out);
			next_out++;
		}
	}
	while (pop(&p, &v)) {
		assert_int_equal(v, next_out);
		next_out++;
	}
	assert_int_equal(next_in, next_out);
	/* The shared indices have wrapped. */
	assert_true(atomic_load(p.prod.tail) < 1000);
	assert_int_equal(atomic_load(p.prod.tail), atomic_load(p.cons.head));
	pair_close(&p);
}

static void should_see_full_ring_across_the_wrap(void **state)
{
	struct ring_pair p;

	pair_open(&p, 8);
	pair_start_at(&p, UINT32_MAX - 3);
	for (uint64_t i = 0; i < 8; i++)
		assert_true(push(&p, i));
	/* tail = 4 after the wrap, head = 2^32 - 4: tail - head is 8 = full. */
	assert_int_equal(atomic_load(p.prod.tail), 4);
	assert_int_equal(copro_ring_space(&p.prod, 1), 0);
	assert_int_equal(copro_ring_ready(&p.cons), 8);
	pair_close(&p);
}

static void should_place_slots_by_mask_across_the_wrap(void **state)
{
	struct ring_pair p;

	pair_open(&p, 4);
	pair_start_at(&p, UINT32_MAX);
	/* Index 2^32 - 1 is slot 3, the next one (0 after the wrap) is slot 0. */
	assert_ptr_equal(copro_ring_prod_slot(&p.prod, 0), p.prod.entries + 3 * ENTRY_SIZE);
	assert_ptr_equal(copro_ring_prod_slot(&p.prod, 1), p.prod.entries);
	pair_close(&p);
}

/* ---- cached-index reload -------------------------------------------------------- */

static void should_not_reload_head_while_cached_space_suffices(void **state)
{
	struct ring_pair p;

	pair_open(&p, 8);
	assert_true(push(&p, 1));
	/* Scribble on the shared head: the producer has room and must not look. */
	atomic_store(p.prod.head, 12345);
	assert_int_equal(copro_ring_space(&p.prod, 1), 7);
	assert_int_equal(p.prod.cached, 0);
	pair_close(&p);
}

static void should_reload_head_when_cache_says_full(void **state)
{
	struct ring_pair p;
	uint64_t v;

	pair_open(&p, 4);
	for (uint64_t i = 0; i < 4; i++)
		assert_true(push(&p, i));
	assert_true(pop(&p, &v));
	assert_true(pop(&p, &v));
	/* The producer's cache still says head = 0 until it asks for more. */
	assert_int_equal(p.prod.cached, 0);
	assert_int_equal(copro_ring_space(&p.prod, 1), 2);
	assert_int_equal(p.prod.cached, 2);
	pair_close(&p);
}

static void should_reload_head_when_asking_for_more_than_cached(void **state)
{
	struct ring_pair p;
	uint64_t v;

	pair_open(&p, 8);
	for (uint64_t i = 0; i < 6; i++)
		assert_true(push(&p, i));
	for (int i = 0; i < 6; i++)
		assert_true(pop(&p, &v));
	/* Cached head 0: 2 free by the cache; asking for 2 needs no reload. */
	assert_int_equal(copro_ring_space(&p.prod, 2), 2);
	assert_int_equal(p.prod.cached, 0);
	/* Asking for 3 reloads and finds all 8 free. */
	assert_int_equal(copro_ring_space(&p.prod, 3), 8);
	assert_int_equal(p.prod.cached, 6);
	pair_close(&p);
}

static void should_not_reload_tail_while_entries_are_cached(void **state)
{
	struct ring_pair p;
	uint64_t v;

	pair_open(&p, 8);
	assert_true(push(&p, 1));
	assert_true(push(&p, 2));
	assert_int_equal(copro_ring_ready(&p.cons), 2);
	assert_true(push(&p, 3));
	/* Two entries still cached: no reload, the third is not seen yet. */
	assert_int_equal(copro_ring_ready(&p.cons), 2);
	assert_true(pop(&p, &v));
	assert_true(pop(&p, &v));
	assert_int_equal(v, 2);
	/* Cache empty: reload finds the third. */
	assert_int_equal(copro_ring_ready(&p.cons), 1);
	assert_true(pop(&p, &v));
	assert_int_equal(v, 3);
	pair_close(&p);
}

/* ---- broken peers ---------------------------------------------------------------- */

static void should_report_broken_when_tail_runs_more_than_a_ring_ahead(void **state)
{
	struct ring_pair p;

	pair_open(&p, 8);
	atomic_store(p.prod.tail, 9);
	assert_int_equal(copro_ring_ready(&p.cons), UINT32_MAX);
	pair_close(&p);
}

static void should_accept_tail_exactly_a_ring_ahead(void **state)
{
	struct ring_pair p;

	pair_open(&p, 8);
	atomic_store(p.prod.tail, 8);
	assert_int_equal(copro_ring_ready(&p.cons), 8);
	pair_close(&p);
}

static void should_report_broken_when_tail_moves_backwards(void **state)
{
	struct ring_pair p;

	pair_open(&p, 8);
	pair_start_at(&p, 100);
	atomic_store(p.prod.tail, 99);
	assert_int_equal(copro_ring_ready(&p.cons), UINT32_MAX);
	pair_close(&p);
}

static void should_report_broken_across_the_wrap(void **state)
{
	struct ring_pair p;

	pair_open(&p, 8);
	pair_start_at(&p, UINT32_MAX - 1);
	/* tail - head = 2 + 9 - 2 = 9 > 8 across the wrap. */
	atomic_store(p.prod.tail, 7);
	assert_int_equal(copro_ring_ready(&p.cons), UINT32_MAX);
	pair_close(&p);
}

/*
 * Once the producer's tail was found more than a ring ahead, later calls must
 * keep saying so: the consumer must never be told that more than a ring of
 * entries is ready.
 */
static void should_keep_reporting_broken_tail_on_the_next_call(void **state)
{
	struct ring_pair p;
	uint32_t n;

	pair_open(&p, 8);
	atomic_store(p.prod.tail, 100);
	assert_int_equal(copro_ring_ready(&p.cons), UINT32_MAX);
	n = copro_ring_ready(&p.cons);
	assert_true(n == UINT32_MAX || n <= 8);
	pair_close(&p);
}

static void should_report_no_space_when_head_passes_tail(void **state)
{
	struct ring_pair p;

	pair_open(&p, 8);
	for (uint64_t i = 0; i < 8; i++)
		assert_true(push(&p, i));
	/* A broken consumer claims to have consumed 9 of the 8 entries. */
	atomic_store(p.prod.head, 9);
	assert_int_equal(copro_ring_space(&p.prod, 1), 0);
	pair_close(&p);
}

static void should_report_no_space_when_head_passes_tail_across_the_wrap(void **state)
{
	struct ring_pair p;

	pair_open(&p, 4);
	pair_start_at(&p, UINT32_MAX - 1);
	for (uint64_t i = 0; i < 4; i++)
		assert_true(push(&p, i));
	/* tail = 2 after the wrap; a head of 3 is past it. */
	atomic_store(p.prod.head, 3);
	assert_int_equal(copro_ring_space(&p.prod, 1), 0);
	pair_close(&p);
}

/*
 * A consumer that moved its head past our tail is broken, and ring.h promises
 * to report the ring full. The server treats 0 space as back-pressure and
 * calls again on its next pass, so the answer must stay 0 (or at least never
 * exceed the ring size, which would overwrite unconsumed completions).
 */
static void should_keep_reporting_no_space_after_head_passed_tail(void **state)
{
	struct ring_pair p;
	uint32_t space;

	pair_open(&p, 8);
	for (uint64_t i = 0; i < 8; i++)
		assert_true(push(&p, i));
	atomic_store(p.prod.head, 20);
	assert_int_equal(copro_ring_space(&p.prod, 1), 0);
	space = copro_ring_space(&p.prod, 1);
	assert_true(space <= 8);
	assert_int_equal(space, 0);
	pair_close(&p);
}

/* ---- two threads ---------------------------------------------------------------- */

#define STRESS_COUNT	500000ULL
#define STRESS_SECONDS	60

struct stress {
	struct ring_pair p;
	_Atomic int stop;		/* set by whoever gives up first */
	uint64_t received;		/* consumer: values seen in order */
	uint64_t first_bad;		/* consumer: 0, or the value that broke the order */
	int broken;			/* consumer: ring reported UINT32_MAX */
	struct timespec start;
};

static int out_of_time(struct stress *s)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return now.tv_sec - s->start.tv_sec > STRESS_SECONDS;
}

/* Pushes 1..STRESS_COUNT in batches of varying size. */
static void *stress_producer(void *arg)
{
	struct stress *s = arg;
	uint64_t next = 1;
	uint32_t spins = 0;

	while (next <= STRESS_COUNT && !atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		uint32_t want = 1 + (uint32_t)(next % 5);
		uint32_t space = copro_ring_space(&s->p.prod, want);
		uint32_t n = space < want ? space : want;

		if (n > STRESS_COUNT - next + 1)
			n = (uint32_t)(STRESS_COUNT - next + 1);
		if (!n) {
			/* Yield: on a loaded machine the peer may share our CPU. */
			sched_yield();
			if (++spins % 1024 == 0 && out_of_time(s))
				atomic_store(&s->stop, 1);
			continue;
		}
		for (uint32_t i = 0; i < n; i++) {
			uint64_t v = next + i;

			memcpy(copro_ring_prod_slot(&s->p.prod, i), &v, sizeof(v));
		}
		copro_ring_publish(&s->p.prod, n);
		next += n;
	}
	return NULL;
}

static void *stress_consumer(void *arg)
{
	struct stress *s = arg;
	uint32_t spins = 0;

	while (s->received < STRESS_COUNT &&
	       !atomic_load_explicit(&s->stop, memory_order_relaxed)) {
		uint32_t n = copro_ring_ready(&s->p.cons);

		if (n == UINT32_MAX) {
			s->broken = 1;
			atomic_store(&s->stop, 1);
			break;
		}
		if (!n) {
			/* Yield: on a loaded machine the peer may share our CPU. */
			sched_yield();
			if (++spins % 1024 == 0 && out_of_time(s))
				atomic_store(&s->stop, 1);
			continue;
		}
		for (uint32_t i = 0; i < n; i++) {
			uint64_t v;

			memcpy(&v, copro_ring_cons_slot(&s->p.cons, i), sizeof(v));
			if (v != s->received + 1 && !s->first_bad) {
				s->first_bad = v;
				atomic_store(&s->stop, 1);
			}
			s->received++;
		}
		copro_ring_release(&s->p.cons, n);
	}
	return NULL;
}

static void should_deliver_every_value_in_order_between_two_threads(void **state)
{
	struct stress *s = calloc(1, sizeof(*s));
	pthread_t prod, cons;

	assert_non_null(s);
	test_stress = s;
	pair_open(&s->p, 8);
	/* Start near the wrap so the run crosses it. */
	pair_start_at(&s->p, UINT32_MAX - 1000);
	clock_gettime(CLOCK_MONOTONIC, &s->start);
	assert_int_equal(pthread_create(&cons, NULL, stress_consumer, s), 0);
	assert_int_equal(pthread_create(&prod, NULL, stress_producer, s), 0);
	pthread_join(prod, NULL);
	pthread_join(cons, NULL);

	if (s->first_bad)
		print_error("out of order: expected %llu, got %llu\n",
			    (unsigned long long)s->received, (unsigned long long)s->first_bad);
	assert_false(s->broken);
	assert_int_equal(s->first_bad, 0);
	assert_int_equal(atomic_load(&s->stop), 0);	/* finished within the time bound */
	assert_int_equal(s->received, STRESS_COUNT);
	assert_int_equal(copro_ring_ready(&s->p.cons), 0);
	pair_close(&s->p);
	free(s);
	test_stress = NULL;
}

#define T(name)	cmocka_unit_test_teardown(name, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(should_start_empty_with_all_slots_free),
		T(should_init_private_view_from_offsets),
		T(should_reject_push_when_full),
		T(should_report_nothing_ready_when_drained),
		T(should_publish_and_release_in_batches),
		T(should_wrap_indices_past_uint32_max),
		T(should_see_full_ring_across_the_wrap),
		T(should_place_slots_by_mask_across_the_wrap),
		T(should_not_reload_head_while_cached_space_suffices),
		T(should_reload_head_when_cache_says_full),
		T(should_reload_head_when_asking_for_more_than_cached),
		T(should_not_reload_tail_while_entries_are_cached),
		T(should_report_broken_when_tail_runs_more_than_a_ring_ahead),
		T(should_accept_tail_exactly_a_ring_ahead),
		T(should_report_broken_when_tail_moves_backwards),
		T(should_report_broken_across_the_wrap),
		T(should_keep_reporting_broken_tail_on_the_next_call),
		T(should_report_no_space_when_head_passes_tail),
		T(should_report_no_space_when_head_passes_tail_across_the_wrap),
		T(should_keep_reporting_no_space_after_head_passed_tail),
		T(should_deliver_every_value_in_order_between_two_threads),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
