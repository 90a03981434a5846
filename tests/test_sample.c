// SPDX-License-Identifier: MIT
/*
 * test_sample.c - the sampler chain (greedy, top-k, top-p, min-p,
 * temperature, repetition penalty), its generator, its parameter checks, and
 * the incremental stop-string matcher, checked against brute-force
 * references written here.
 *
 * Every random test uses a fixed seed, so each run draws the same numbers:
 * the statistical bounds below are deterministic checks, chosen loose enough
 * that a correct sampler passes them for any seed (a wrong one - a token
 * dropped, a distribution at the wrong temperature - misses by far more).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/sample.h"

/* ---- helpers ------------------------------------------------------------- */

static struct copro_sample_params plain(float temperature)
{
	struct copro_sample_params p = {
		.temperature = temperature,
		.top_k = 0,
		.top_p = 1.0f,
		.min_p = 0.0f,
		.repeat_penalty = 1.0f,
		.repeat_last_n = 0,
		.seed = 1,
	};
	return p;
}

/* Samples once from a copy of logits (the sampler writes its input). */
static int32_t draw(const struct copro_sample_params *p, struct copro_rng *r, const float *logits,
		    uint32_t n, float *work, struct copro_sample_scratch *s)
{
	memcpy(work, logits, n * sizeof(float));
	return copro_sample(p, r, work, n, NULL, 0, s);
}

static void random_logits(float *l, uint32_t n, uint64_t seed, float scale)
{
	struct copro_rng r;

	copro_rng_seed(&r, seed);
	for (uint32_t i = 0; i < n; i++) {
		/* sum of 4 uniforms: roughly normal, enough for logits */
		float x = copro_rng_f32(&r) + copro_rng_f32(&r) + copro_rng_f32(&r) +
			  copro_rng_f32(&r) - 2.0f;
		l[i] = x * scale;
	}
}

static uint32_t argmax_ref(const float *l, uint32_t n)
{
	uint32_t b = 0;

	for (uint32_t i = 1; i < n; i++)
		if (l[i] > l[b])
			b = i;
	return b;
}

/* Softmax of l (n) at temperature t over the tokens with keep[i] set. */
static void softmax_ref(const float *l, const bool *keep, uint32_t n, double t, double *q)
{
	double m = -INFINITY, z = 0.0;

	for (uint32_t i = 0; i < n; i++)
		if (keep[i] && l[i] > m)
			m = l[i];
	for (uint32_t i = 0; i < n; i++) {
		q[i] = keep[i] ? exp((l[i] - m) / t) : 0.0;
		z += q[i];
	}
	for (uint32_t i = 0; i < n; i++)
		q[i] /= z;
}

/*
 * Pearson's statistic of counts (n_draws in all) against q, over the cells
 * with q > 0; a count in a cell with q == 0 makes it infinite.
 */
static double chi_square(const uint32_t *count, const double *q, uint32_t n, uint32_t n_draws,
			 uint32_t *df)
{
	double x2 = 0.0;

	*df = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (q[i] == 0.0) {
			if (count[i])
				return INFINITY;
			continue;
		}
		double e = q[i] * n_draws;
		x2 += (count[i] - e) * (count[i] - e) / e;
		(*df)++;
	}
	(*df)--;
	return x2;
}

/* ---- parameters ---------------------------------------------------------- */

static void default_params_pass_the_check(void **state)
{
	struct copro_sample_params p = copro_sample_params_default();
	const char *why = "unset";

	assert_int_equal(copro_sample_params_check(&p, &why), 0);
	assert_null(why);
	assert_true(p.temperature > 0.0f);
	assert_int_equal(p.top_k, 40);
}

static void expect_rejected(const struct copro_sample_params *p, const char *field)
{
	const char *why = NULL;

	assert_int_equal(copro_sample_params_check(p, &why), -EINVAL);
	assert_non_null(why);
	assert_non_null(strstr(why, field));
	/* the sampler refuses them as well */
	{
		struct copro_sample_scratch s;
		struct copro_rng r;
		float l[2] = { 0.0f, 1.0f };

		assert_int_equal(copro_sample_scratch_init(&s, 2), 0);
		copro_rng_seed(&r, 1);
		assert_int_equal(copro_sample(p, &r, l, 2, NULL, 0, &s), -EINVAL);
		copro_sample_scratch_free(&s);
	}
}

static void check_rejects_bad_temperature(void **state)
{
	const float bad[] = { NAN, -0.001f, -INFINITY, 100.5f, INFINITY };
	struct copro_sample_params p = copro_sample_params_default();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.temperature = bad[i];
		expect_rejected(&p, "temperature");
	}
	p.temperature = 0.0f;
	assert_int_equal(copro_sample_params_check(&p, NULL), 0);
	p.temperature = 100.0f;
	assert_int_equal(copro_sample_params_check(&p, NULL), 0);
}

static void check_rejects_bad_top_p(void **state)
{
	const float bad[] = { NAN, 0.0f, -0.5f, 1.0001f, INFINITY };
	struct copro_sample_params p = copro_sample_params_default();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.top_p = bad[i];
		expect_rejected(&p, "top_p");
	}
	p.top_p = 1.0f;
	assert_int_equal(copro_sample_params_check(&p, NULL), 0);
	p.top_p = 1e-9f;
	assert_int_equal(copro_sample_params_check(&p, NULL), 0);
}

static void check_rejects_bad_min_p(void **state)
{
	const float bad[] = { NAN, -0.01f, 1.0f, 2.0f };
	struct copro_sample_params p = copro_sample_params_default();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.min_p = bad[i];
		expect_rejected(&p, "min_p");
	}
	p.min_p = 0.0f;
	assert_int_equal(copro_sample_params_check(&p, NULL), 0);
	p.min_p = 0.999f;
	assert_int_equal(copro_sample_params_check(&p, NULL), 0);
}

static void check_rejects_bad_repeat_penalty(void **state)
{
	const float bad[] = { NAN, 0.0f, -1.0f, INFINITY };
	struct copro_sample_params p = copro_sample_params_default();

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		p.repeat_penalty = bad[i];
		expect_rejected(&p, "repeat_penalty");
	}
	p.repeat_penalty = 0.5f; /* below 1 favours repeats: allowed */
	assert_int_equal(copro_sample_params_check(&p, NULL), 0);
}

static void check_accepts_any_top_k_and_window(void **state)
{
	struct copro_sample_params p = copro_sample_params_default();

	p.top_k = UINT32_MAX;
	p.repeat_last_n = UINT32_MAX;
	assert_int_equal(copro_sample_params_check(&p, NULL), 0);
}

/* ---- generator ----------------------------------------------------------- */

/* Published values: splitmix64 from 0, and xoshiro256** from {1, 2, 3, 4}
 * (the reference implementation's first outputs: 11520, 0, 1509978240). */
static void rng_matches_reference_outputs(void **state)
{
	struct copro_rng r = { .s = { 1, 2, 3, 4 } };
	uint64_t x = 0;

	assert_int_equal(copro_splitmix64(&x), 0xe220a8397b1dcdafull);
	assert_int_equal(copro_rng_u64(&r), 11520);
	assert_int_equal(copro_rng_u64(&r), 0);
	assert_int_equal(copro_rng_u64(&r), 1509978240);
	/* seeding: four splitmix64 outputs from the seed */
	copro_rng_seed(&r, 42);
	assert_int_equal(copro_rng_u64(&r), 0x15780b2e0c2ec716ull);
	assert_int_equal(copro_rng_u64(&r), 0x6104d9866d113a7eull);
}

static void rng_same_seed_same_draws_different_seed_differs(void **state)
{
	struct copro_rng a, b, c;
	unsigned same_ac = 0;

	copro_rng_seed(&a, 1234);
	copro_rng_seed(&b, 1234);
	copro_rng_seed(&c, 1235);
	for (int i = 0; i < 1000; i++) {
		float x = copro_rng_f32(&a);

		assert_true(x == copro_rng_f32(&b));
		same_ac += x == copro_rng_f32(&c);
	}
	assert_true(same_ac < 5);
}

static void rng_f32_is_in_unit_interval_and_uniform(void **state)
{
	uint32_t bins[16] = { 0 };
	struct copro_rng r;
	double q[16];
	uint32_t df;

	copro_rng_seed(&r, 0); /* seed 0 is as good as any */
	for (int i = 0; i < 160000; i++) {
		float x = copro_rng_f32(&r);

		assert_true(x >= 0.0f && x < 1.0f);
		bins[(int)(x * 16)]++;
	}
	for (int i = 0; i < 16; i++)
		q[i] = 1.0 / 16;
	/* 15 degrees of freedom: P(X2 > 50) ~ 1e-5 */
	assert_true(chi_square(bins, q, 16, 160000, &df) < 50.0);
}

/* ---- greedy -------------------------------------------------------------- */

static void greedy_is_argmax_lowest_id_on_ties(void **state)
{
	struct copro_sample_params p = plain(0.0f);
	struct copro_sample_scratch s;
	float l[6] = { 1.0f, 3.0f, -2.0f, 3.0f, 0.5f, 3.0f };
	static float big[32000];

	assert_int_equal(copro_sample_scratch_init(&s, 32000), 0);
	/* greedy draws nothing, so no generator is needed */
	assert_int_equal(copro_sample(&p, NULL, l, 6, NULL, 0, &s), 1);
	for (uint64_t seed = 1; seed <= 20; seed++) {
		random_logits(big, 32000, seed, 4.0f);
		uint32_t want = argmax_ref(big, 32000);
		assert_int_equal(copro_sample(&p, NULL, big, 32000, NULL, 0, &s), want);
	}
	for (uint32_t i = 0; i < 32000; i++)
		big[i] = -1.0f;
	big[31999] = 0.0f;
	big[17] = 0.0f;
	assert_int_equal(copro_sample(&p, NULL, big, 32000, NULL, 0, &s), 17);
	copro_sample_scratch_free(&s);
}

static void top_k_one_equals_greedy_at_any_temperature(void **state)
{
	const float temps[] = { 0.01f, 0.7f, 1.0f, 5.0f, 100.0f };
	struct copro_sample_scratch s;
	static float l[4096], w[4096];
	struct copro_rng r;

	assert_int_equal(copro_sample_scratch_init(&s, 4096), 0);
	copro_rng_seed(&r, 7);
	for (size_t t = 0; t < sizeof(temps) / sizeof(temps[0]); t++) {
		struct copro_sample_params p = plain(temps[t]);

		p.top_k = 1;
		for (uint64_t seed = 0; seed < 50; seed++) {
			random_logits(l, 4096, seed, 2.0f);
			assert_int_equal(draw(&p, &r, l, 4096, w, &s), argmax_ref(l, 4096));
		}
		/* a tie at the top still goes to the lowest id */
		l[4000] = l[argmax_ref(l, 4096)];
		assert_int_equal(draw(&p, &r, l, 4096, w, &s), argmax_ref(l, 4096));
	}
	copro_sample_scratch_free(&s);
}

static void tiny_top_p_equals_greedy(void **state)
{
	struct copro_sample_params p = plain(1.5f);
	struct copro_sample_scratch s;
	static float l[32000], w[32000];
	struct copro_rng r;

	p.top_p = 1e-6f;
	assert_int_equal(copro_sample_scratch_init(&s, 32000), 0);
	copro_rng_seed(&r, 9);
	for (uint64_t seed = 0; seed < 20; seed++) {
		random_logits(l, 32000, seed + 100, 1.0f);
		assert_int_equal(draw(&p, &r, l, 32000, w, &s), argmax_ref(l, 32000));
	}
	copro_sample_scratch_free(&s);
}

/* ---- distributions ------------------------------------------------------- */

/*
 * Draws n_draws tokens from l (n) and checks them against softmax at
 * temperature t over keep: none outside keep, and Pearson's X2 under
 * 3 * df + 30. For df up to 20 that is past the 1e-6 tail of the chi-square
 * distribution, so a correct sampler passes for any seed; a sampler at the
 * wrong temperature or with a token missing scores in the hundreds.
 */
static void expect_distribution(const struct copro_sample_params *p, const float *l,
				const bool *keep, uint32_t n, uint32_t n_draws, uint64_t seed)
{
	uint32_t *count = calloc(n, sizeof(*count));
	double *q = calloc(n, sizeof(*q));
	float *w = calloc(n, sizeof(*w));
	struct copro_sample_scratch s;
	struct copro_rng r;
	uint32_t df;
	double x2;

	assert_non_null(count);
	assert_non_null(q);
	assert_non_null(w);
	assert_int_equal(copro_sample_scratch_init(&s, n), 0);
	copro_rng_seed(&r, seed);
	for (uint32_t i = 0; i < n_draws; i++) {
		int32_t t = draw(p, &r, l, n, w, &s);

		assert_true(t >= 0 && (uint32_t)t < n);
		count[t]++;
	}
	softmax_ref(l, keep, n, p->temperature, q);
	x2 = chi_square(count, q, n, n_draws, &df);
	assert_true(x2 < 3.0 * df + 30.0);
	copro_sample_scratch_free(&s);
	free(w);
	free(q);
	free(count);
}

static void temperature_frequencies_match_softmax(void **state)
{
	const float l[8] = { 1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.25f };
	const float temps[] = { 0.5f, 1.0f, 2.0f };
	bool keep[8];

	for (int i = 0; i < 8; i++)
		keep[i] = true;
	for (size_t t = 0; t < 3; t++) {
		struct copro_sample_params p = plain(temps[t]);

		expect_distribution(&p, l, keep, 8, 20000, 11 + t);
	}
}

/* A sampler ignoring the temperature fails the check above: the same draws
 * scored against the wrong temperature are far outside the bound. */
static void distribution_check_can_fail(void **state)
{
	const float l[8] = { 1.0f, 0.5f, 2.0f, -1.0f, 0.0f, 1.5f, -0.5f, 0.25f };
	struct copro_sample_params p = plain(0.5f);
	uint32_t count[8] = { 0 }, df;
	struct copro_sample_scratch s;
	struct copro_rng r;
	bool keep[8];
	double q[8];
	float w[8];

	for (int i = 0; i < 8; i++)
		keep[i] = true;
	assert_int_equal(copro_sample_scratch_init(&s, 8), 0);
	copro_rng_seed(&r, 11);
	for (int i = 0; i < 20000; i++)
		count[draw(&p, &r, l, 8, w, &s)]++;
	softmax_ref(l, keep, 8, 1.0, q);
	assert_true(chi_square(count, q, 8, 20000, &df) > 10 * (3.0 * df + 30.0));
	copro_sample_scratch_free(&s);
}

static void top_k_draws_only_the_k_best_in_proportion(void **state)
{
	const float l[10] = { 0.1f, 2.0f, 1.0f, 1.9f, -3.0f, 0.0f, 1.2f, 0.3f, 1.9f, -1.0f };
	struct copro_sample_params p = plain(1.0f);
	bool keep[10] = { false };

	/* the best four: 2.0 (1), 1.9 (3), 1.9 (8), 1.2 (6) */
	p.top_k = 4;
	keep[1] = keep[3] = keep[8] = keep[6] = true;
	expect_distribution(&p, l, keep, 10, 20000, 21);
	/* with a tie at the cut, the lower id stays: 1, 3 and not 8 */
	p.top_k = 2;
	keep[8] = keep[6] = false;
	expect_distribution(&p, l, keep, 10, 20000, 22);
}

/* Probabilities 0.5, 0.3, 0.15, 0.05 (temperature 1): top_p 0.79 keeps the
 * first two, 0.81 the first three. */
static void top_p_keeps_the_smallest_set_reaching_the_mass(void **state)
{
	const float l[4] = { logf(0.15f), logf(0.5f), logf(0.05f), logf(0.3f) };
	struct copro_sample_params p = plain(1.0f);
	bool keep[4] = { false, true, false, true };

	p.top_p = 0.79f;
	expect_distribution(&p, l, keep, 4, 20000, 31);
	p.top_p = 0.81f;
	keep[0] = true;
	expect_distribution(&p, l, keep, 4, 20000, 32);
}

static int cmp_desc(const void *a, const void *b, void *ctx)
{
	const float *l = ctx;
	uint32_t i = *(const uint32_t *)a, j = *(const uint32_t *)b;

	if (l[i] != l[j])
		return l[i] > l[j] ? -1 : 1;
	return i < j ? -1 : 1;
}

/* Over a 32000-token vocabulary, no top-k: the kept set is thousands of
 * tokens over hundreds of the sampler's buckets. Every draw must be in the
 * set a full sort finds, and the token just past the cut never comes. */
static void top_p_on_a_large_vocabulary_matches_a_full_sort(void **state)
{
	const uint32_t n = 32000;
	uint32_t *order = malloc(n * sizeof(*order));
	float *l = malloc(n * sizeof(*l)), *w = malloc(n * sizeof(*w));
	bool *keep = calloc(n, sizeof(*keep));
	struct copro_sample_params p = plain(1.0f);
	struct copro_sample_scratch s;
	double z = 0.0, cum = 0.0, m;
	uint32_t n_keep = 0, hit_top = 0;
	struct copro_rng r;

	assert_non_null(order);
	assert_non_null(l);
	assert_non_null(w);
	assert_non_null(keep);
	random_logits(l, n, 77, 1.0f);
	for (uint32_t i = 0; i < n; i++)
		order[i] = i;
	qsort_r(order, n, sizeof(*order), cmp_desc, l);
	m = l[order[0]];
	for (uint32_t i = 0; i < n; i++)
		z += exp(l[i] - m);
	p.top_p = 0.5f;
	while (cum < p.top_p)
		cum += exp(l[order[n_keep++]] - m) / z;
	for (uint32_t i = 0; i < n_keep; i++)
		keep[order[i]] = true;
	assert_true(n_keep > 2048);

	assert_int_equal(copro_sample_scratch_init(&s, n), 0);
	copro_rng_seed(&r, 5);
	for (int i = 0; i < 2000; i++) {
		int32_t t = draw(&p, &r, l, n, w, &s);

		assert_true(t >= 0 && keep[t]);
		hit_top += (uint32_t)t == order[0];
	}
	assert_true(hit_top < 50); /* a flat set: no single token dominates */
	copro_sample_scratch_free(&s);
	free(keep);
	free(w);
	free(l);
	free(order);
}

/* min_p 0.1: tokens 4 and 5 have p / p_max = e^-2.5 and e^-3, under it. */
static void min_p_never_draws_tokens_below_the_cut(void **state)
{
	const float l[6] = { 0.0f, -0.5f, -1.0f, -2.0f, -2.5f, -3.0f };
	struct copro_sample_params p = plain(1.0f);
	bool keep[6] = { true, true, true, true, false, false };

	p.min_p = 0.1f;
	expect_distribution(&p, l, keep, 6, 10000, 41);
	/* a high temperature flattens what is drawn, not what is cut */
	p.temperature = 50.0f;
	expect_distribution(&p, l, keep, 6, 10000, 42);
}

/* The default chain on a real-sized vocabulary draws only from the best 40. */
static void default_chain_stays_inside_top_k(void **state)
{
	struct copro_sample_params p = copro_sample_params_default();
	static float l[32000], w[32000];
	static uint32_t order[32000];
	static bool top[32000];
	struct copro_sample_scratch s;
	struct copro_rng r;

	random_logits(l, 32000, 3, 3.0f);
	for (uint32_t i = 0; i < 32000; i++)
		order[i] = i;
	qsort_r(order, 32000, sizeof(*order), cmp_desc, l);
	for (uint32_t i = 0; i < 40; i++)
		top[order[i]] = true;
	assert_int_equal(copro_sample_scratch_init(&s, 32000), 0);
	copro_rng_seed(&r, p.seed);
	for (int i = 0; i < 500; i++) {
		int32_t t = draw(&p, &r, l, 32000, w, &s);

		assert_true(t >= 0 && top[t]);
	}
	copro_sample_scratch_free(&s);
}

static void same_seed_same_tokens_across_1000_calls(void **state)
{
	struct copro_sample_params p = copro_sample_params_default();
	static int32_t a[1000], b[1000];
	static float l[512], w[512];
	struct copro_sample_scratch s;
	struct copro_rng r;
	unsigned differ = 0;

	p.top_k = 0;
	p.temperature = 1.0f;
	random_logits(l, 512, 8, 0.5f);
	assert_int_equal(copro_sample_scratch_init(&s, 512), 0);
	copro_rng_seed(&r, 99);
	for (int i = 0; i < 1000; i++)
		a[i] = draw(&p, &r, l, 512, w, &s);
	copro_rng_seed(&r, 99);
	for (int i = 0; i < 1000; i++)
		b[i] = draw(&p, &r, l, 512, w, &s);
	assert_memory_equal(a, b, sizeof(a));
	copro_rng_seed(&r, 100);
	for (int i = 0; i < 1000; i++)
		differ += draw(&p, &r, l, 512, w, &s) != a[i];
	assert_true(differ > 500);
	copro_sample_scratch_free(&s);
}

/* ---- repetition penalty -------------------------------------------------- */

static void repeat_penalty_divides_positive_and_multiplies_negative(void **state)
{
	float l[6] = { 2.0f, -2.0f, 0.0f, 3.0f, 4.0f, -1.0f };
	const int32_t recent[5] = { 4, 0, 1, 2, 0 };
	struct copro_sample_params p = plain(0.0f);
	struct copro_sample_scratch s;

	assert_int_equal(copro_sample_scratch_init(&s, 6), 0);
	p.repeat_penalty = 2.0f;
	p.repeat_last_n = 4; /* 0, 1, 2, 0: token 4 is out of the window */
	assert_int_equal(copro_sample(&p, NULL, l, 6, recent, 5, &s), 4);
	assert_true(l[0] == 1.0f); /* twice in the window, penalized once */
	assert_true(l[1] == -4.0f);
	assert_true(l[2] == 0.0f);
	assert_true(l[3] == 3.0f);
	assert_true(l[4] == 4.0f);
	assert_true(l[5] == -1.0f);
	/* the penalty changes the greedy choice: 4 -> 4 / 2 < 3 */
	p.repeat_last_n = 64; /* longer than the history: all of it */
	assert_int_equal(copro_sample(&p, NULL, l, 6, recent, 5, &s), 3);
	assert_true(l[4] == 2.0f);
	assert_true(l[0] == 0.5f);
	/* a penalty under 1 favours repeats */
	p.repeat_penalty = 0.25f;
	assert_int_equal(copro_sample(&p, NULL, l, 6, recent, 5, &s), 4);
	assert_true(l[4] == 8.0f);
	assert_true(l[1] == -2.0f);
	copro_sample_scratch_free(&s);
}

static void repeat_penalty_off_leaves_logits(void **state)
{
	float l[3] = { 2.0f, -2.0f, 1.0f };
	const int32_t recent[2] = { 0, 1 };
	struct copro_sample_params p = plain(0.0f);
	struct copro_sample_scratch s;

	assert_int_equal(copro_sample_scratch_init(&s, 3), 0);
	p.repeat_penalty = 3.0f;
	p.repeat_last_n = 0;
	assert_int_equal(copro_sample(&p, NULL, l, 3, recent, 2, &s), 0);
	p.repeat_penalty = 1.0f;
	p.repeat_last_n = 2;
	assert_int_equal(copro_sample(&p, NULL, l, 3, recent, 2, &s), 0);
	assert_true(l[0] == 2.0f && l[1] == -2.0f && l[2] == 1.0f);
	/* the same history, penalized repeatedly across calls: the scratch's
	 * bookkeeping is clean between calls */
	p.repeat_penalty = 2.0f;
	for (int i = 0; i < 3; i++)
		copro_sample(&p, NULL, l, 3, recent, 2, &s);
	assert_true(l[0] == 0.25f && l[1] == -16.0f);
	copro_sample_scratch_free(&s);
}

static void history_token_out_of_range_is_rejected(void **state)
{
	const int32_t bad_hi[2] = { 1, 3 }, bad_neg[2] = { -1, 0 };
	float l[3] = { 2.0f, -2.0f, 1.0f };
	struct copro_sample_params p = plain(0.0f);
	struct copro_sample_scratch s;

	assert_int_equal(copro_sample_scratch_init(&s, 3), 0);
	p.repeat_penalty = 2.0f;
	p.repeat_last_n = 8;
	assert_int_equal(copro_sample(&p, NULL, l, 3, bad_hi, 2, &s), -EINVAL);
	assert_int_equal(copro_sample(&p, NULL, l, 3, bad_neg, 2, &s), -EINVAL);
	assert_int_equal(copro_sample(&p, NULL, l, 3, NULL, 2, &s), -EINVAL);
	assert_true(l[0] == 2.0f && l[1] == -2.0f && l[2] == 1.0f);
	/* outside the window it is not looked at */
	p.repeat_last_n = 1;
	assert_int_equal(copro_sample(&p, NULL, l, 3, bad_neg, 2, &s), 0); /* 1 vs 1: lowest id */
	copro_sample_scratch_free(&s);
}

static void bad_sizes_are_rejected(void **state)
{
	struct copro_sample_params p = plain(1.0f);
	struct copro_sample_scratch s;
	struct copro_rng r;
	float l[5] = { 0 };

	assert_int_equal(copro_sample_scratch_init(&s, 0), -EINVAL);
	assert_int_equal(copro_sample_scratch_init(&s, 4), 0);
	copro_rng_seed(&r, 1);
	assert_int_equal(copro_sample(&p, &r, l, 0, NULL, 0, &s), -EINVAL);
	assert_int_equal(copro_sample(&p, &r, l, 5, NULL, 0, &s), -EINVAL);
	assert_true(copro_sample(&p, &r, l, 4, NULL, 0, &s) >= 0);
	copro_sample_scratch_free(&s);
	copro_sample_scratch_free(&s); /* freeing twice is harmless */
}

/* ---- NaN and infinity ---------------------------------------------------- */

static void nan_logits_are_never_chosen(void **state)
{
	const float l[5] = { NAN, -1.0f, NAN, 0.5f, NAN };
	struct copro_sample_params g = plain(0.0f), p = plain(1.0f);
	struct copro_sample_scratch s;
	struct copro_rng r;
	float w[5];

	assert_int_equal(copro_sample_scratch_init(&s, 5), 0);
	copro_rng_seed(&r, 3);
	assert_int_equal(draw(&g, &r, l, 5, w, &s), 3);
	assert_true(isinf(w[0]) && w[0] < 0); /* written back as -inf */
	for (int i = 0; i < 2000; i++) {
		int32_t t = draw(&p, &r, l, 5, w, &s);

		assert_true(t == 1 || t == 3);
	}
	p.top_k = 3;
	p.top_p = 0.9f;
	for (int i = 0; i < 2000; i++) {
		int32_t t = draw(&p, &r, l, 5, w, &s);

		assert_true(t == 1 || t == 3);
	}
	copro_sample_scratch_free(&s);
}

static void all_nan_or_minus_inf_gives_token_zero(void **state)
{
	const float l[4] = { NAN, -INFINITY, NAN, -INFINITY };
	struct copro_sample_params g = plain(0.0f), p = copro_sample_params_default();
	struct copro_sample_scratch s;
	struct copro_rng r, r2;
	float w[4];

	assert_int_equal(copro_sample_scratch_init(&s, 4), 0);
	copro_rng_seed(&r, 3);
	r2 = r;
	assert_int_equal(draw(&g, &r, l, 4, w, &s), 0);
	assert_int_equal(draw(&p, &r, l, 4, w, &s), 0);
	/* still one draw from the generator, as for any sampled token */
	copro_rng_u64(&r2);
	assert_memory_equal(&r, &r2, sizeof(r));
	copro_sample_scratch_free(&s);
}

static void plus_inf_logit_takes_all_the_mass(void **state)
{
	const float one[4] = { 5.0f, INFINITY, 1e30f, NAN };
	const float two[4] = { INFINITY, 0.0f, INFINITY, -INFINITY };
	struct copro_sample_params g = plain(0.0f), p = plain(0.3f);
	struct copro_sample_scratch s;
	uint32_t c0 = 0, c2 = 0;
	struct copro_rng r;
	float w[4];

	assert_int_equal(copro_sample_scratch_init(&s, 4), 0);
	copro_rng_seed(&r, 4);
	assert_int_equal(draw(&g, &r, one, 4, w, &s), 1);
	assert_int_equal(draw(&g, &r, two, 4, w, &s), 0);
	for (int i = 0; i < 1000; i++)
		assert_int_equal(draw(&p, &r, one, 4, w, &s), 1);
	/* two infinite logits share the mass */
	for (int i = 0; i < 1000; i++) {
		int32_t t = draw(&p, &r, two, 4, w, &s);

		assert_true(t == 0 || t == 2);
		c0 += t == 0;
		c2 += t == 2;
	}
	assert_true(c0 > 400 && c2 > 400);
	/* a penalty under 1 on a huge logit overflows to +inf: same rule */
	{
		float h[3] = { 3e38f, 1.0f, 3e38f };
		const int32_t rec[1] = { 2 };

		g.repeat_penalty = 0.5f;
		g.repeat_last_n = 1;
		assert_int_equal(copro_sample(&g, NULL, h, 3, rec, 1, &s), 2);
	}
	copro_sample_scratch_free(&s);
}

/* ---- stop strings -------------------------------------------------------- */

/* Collects everything a matcher emits, as the scheduler would. */
struct sink {
	char text[4096];
	size_t len;
	bool matched;
};

static void feed_all(struct copro_stop *st, struct sink *k, const char *piece, size_t len)
{
	while (len && !k->matched) {
		size_t n, used = copro_stop_feed(st, piece, len, &n, &k->matched);

		assert_true(used >= 1 && used <= len);
		assert_true(k->len + n <= sizeof(k->text));
		memcpy(k->text + k->len, copro_stop_out(st), n);
		k->len += n;
		piece += used;
		len -= used;
	}
}

static void finish(struct copro_stop *st, struct sink *k)
{
	size_t n = copro_stop_finish(st);

	memcpy(k->text + k->len, copro_stop_out(st), n);
	k->len += n;
	k->text[k->len] = '\0';
}

static void feed_str(struct copro_stop *st, struct sink *k, const char *piece)
{
	feed_all(st, k, piece, strlen(piece));
}

static void stop_init_rejects_bad_strings(void **state)
{
	const char *empty[2] = { "x", "" };
	const char *null[1] = { NULL };
	const char *many[COPRO_STOP_MAX + 1];
	char big[COPRO_STOP_MAX_LEN + 2];
	const char *longs[1] = { big };
	struct copro_stop st;

	for (int i = 0; i <= COPRO_STOP_MAX; i++)
		many[i] = "stop";
	assert_int_equal(copro_stop_init(&st, empty, 2), -EINVAL);
	assert_int_equal(copro_stop_init(&st, null, 1), -EINVAL);
	assert_int_equal(copro_stop_init(&st, NULL, 1), -EINVAL);
	assert_int_equal(copro_stop_init(&st, many, COPRO_STOP_MAX + 1), -E2BIG);
	memset(big, 'a', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	assert_int_equal(copro_stop_init(&st, longs, 1), -E2BIG);
	copro_stop_free(&st);
	big[COPRO_STOP_MAX_LEN] = '\0'; /* exactly the limit */
	assert_int_equal(copro_stop_init(&st, longs, 1), 0);
	copro_stop_free(&st);
	assert_int_equal(copro_stop_init(&st, many, COPRO_STOP_MAX), 0);
	copro_stop_free(&st);
}

static void stop_strings_are_copied(void **state)
{
	char word[8] = "END";
	const char *stops[1] = { word };
	struct copro_stop st;
	struct sink k = { .len = 0 };

	assert_int_equal(copro_stop_init(&st, stops, 1), 0);
	strcpy(word, "xyz");
	feed_str(&st, &k, "abEND");
	assert_true(k.matched);
	assert_int_equal(k.len, 2);
	copro_stop_free(&st);
}

static void no_stop_strings_pass_everything_through(void **state)
{
	struct copro_stop st;
	struct sink k = { .len = 0 };
	size_t n;
	bool m;

	assert_int_equal(copro_stop_init(&st, NULL, 0), 0);
	assert_int_equal(copro_stop_feed(&st, "hello", 5, &n, &m), 5);
	assert_int_equal(n, 5);
	assert_false(m);
	feed_str(&st, &k, " world");
	assert_int_equal(k.len, 6);
	copro_stop_free(&st);
}

static void stop_split_across_many_pieces(void **state)
{
	const char *stops[1] = { "</s>" };
	const char *pieces[] = { "hello", " ", "<", "/", "s", ">", "after" };
	struct copro_stop st;
	struct sink k = { .len = 0 };
	size_t n;
	bool m;

	assert_int_equal(copro_stop_init(&st, stops, 1), 0);
	for (size_t i = 0; i < 4; i++) {
		feed_str(&st, &k, pieces[i]);
		/* "<" and "</" are held, nothing of them emitted */
		assert_int_equal(k.len, i < 2 ? (i ? 6 : 5) : 6);
	}
	assert_false(k.matched);
	feed_str(&st, &k, "s");
	assert_false(k.matched);
	assert_int_equal(copro_stop_feed(&st, ">tail", 5, &n, &m), 1); /* ends at '>' */
	assert_true(m);
	assert_int_equal(n, 0);
	k.matched = true;
	assert_int_equal(st.which, 0);
	/* after a match everything is taken and nothing emitted */
	assert_int_equal(copro_stop_feed(&st, "after", 5, &n, &m), 5);
	assert_true(m);
	assert_int_equal(n, 0);
	finish(&st, &k);
	assert_string_equal(k.text, "hello ");
	copro_stop_free(&st);
}

static void partial_match_is_released_when_it_breaks(void **state)
{
	const char *stops[1] = { "<end>" };
	struct copro_stop st;
	struct sink k = { .len = 0 };

	assert_int_equal(copro_stop_init(&st, stops, 1), 0);
	feed_str(&st, &k, "a <en");
	assert_int_equal(k.len, 2); /* "a " - "<en" held */
	feed_str(&st, &k, "ter");
	assert_false(k.matched);
	assert_int_equal(k.len, 8); /* "<enter" cannot start "<end>" */
	feed_str(&st, &k, " <<e");
	assert_int_equal(k.len, 10); /* the first '<' is released, "<e" held */
	finish(&st, &k);
	assert_string_equal(k.text, "a <enter <<e");
	copro_stop_free(&st);
}

static void overlapping_prefix_is_found(void **state)
{
	const char *stops[1] = { "aab" };
	struct copro_stop st;
	struct sink k = { .len = 0 };

	assert_int_equal(copro_stop_init(&st, stops, 1), 0);
	feed_str(&st, &k, "a");
	feed_str(&st, &k, "a");
	feed_str(&st, &k, "a");
	assert_int_equal(k.len, 1); /* the first 'a' can no longer begin it */
	feed_str(&st, &k, "b");
	assert_true(k.matched);
	finish(&st, &k);
	assert_string_equal(k.text, "a");

	copro_stop_reset(&st);
	memset(&k, 0, sizeof(k));
	feed_str(&st, &k, "xaaab!");
	assert_true(k.matched);
	finish(&st, &k);
	assert_string_equal(k.text, "xa");
	copro_stop_free(&st);
}

static void held_text_is_released_at_finish(void **state)
{
	const char *stops[2] = { "###", "<|im_end|>" };
	struct copro_stop st;
	struct sink k = { .len = 0 };

	assert_int_equal(copro_stop_init(&st, stops, 2), 0);
	feed_str(&st, &k, "done <|im_");
	assert_int_equal(k.len, 5);
	finish(&st, &k);
	assert_string_equal(k.text, "done <|im_");
	/* finish twice: nothing more */
	assert_int_equal(copro_stop_finish(&st), 0);
	copro_stop_free(&st);
}

static void shared_prefixes_pick_the_right_stop(void **state)
{
	const char *stops[3] = { "<|end|>", "<|eot|>", "<|" };
	const char *two[2] = { "<|end|>", "<|eot|>" };
	struct copro_stop st;
	struct sink k = { .len = 0 };

	assert_int_equal(copro_stop_init(&st, two, 2), 0);
	feed_str(&st, &k, "x<|e");
	assert_int_equal(k.len, 1);
	feed_str(&st, &k, "o");
	assert_int_equal(k.len, 1); /* "<|eo" still starts "<|eot|>" */
	feed_str(&st, &k, "t|>");
	assert_true(k.matched);
	assert_int_equal(st.which, 1);
	finish(&st, &k);
	assert_string_equal(k.text, "x");
	copro_stop_free(&st);

	/* a stop that is a prefix of another completes first */
	assert_int_equal(copro_stop_init(&st, stops, 3), 0);
	memset(&k, 0, sizeof(k));
	feed_str(&st, &k, "y<|end|>");
	assert_true(k.matched);
	assert_int_equal(st.which, 2);
	finish(&st, &k);
	assert_string_equal(k.text, "y");
	copro_stop_free(&st);
}

/* Stops "abcd" and "bc" over "abcd": "bc" completes first (at the 'c'), so
 * it is the stop. Stops "b" and "ab" over "ab" complete together: the
 * longer one, starting earlier, wins and nothing is emitted. */
static void earliest_completion_wins(void **state)
{
	const char *s1[2] = { "abcd", "bc" }, *s2[2] = { "b", "ab" };
	struct copro_stop st;
	struct sink k = { .len = 0 };

	assert_int_equal(copro_stop_init(&st, s1, 2), 0);
	feed_str(&st, &k, "abcd");
	assert_true(k.matched);
	assert_int_equal(st.which, 1);
	finish(&st, &k);
	assert_string_equal(k.text, "a");
	copro_stop_free(&st);

	assert_int_equal(copro_stop_init(&st, s2, 2), 0);
	memset(&k, 0, sizeof(k));
	feed_str(&st, &k, "ab");
	assert_true(k.matched);
	assert_int_equal(st.which, 1);
	finish(&st, &k);
	assert_string_equal(k.text, "");
	copro_stop_free(&st);
}

/* UTF-8 text and stop strings. Fed one character per piece, every emit
 * ends on a character boundary, a near miss ("。続け" against "。続き")
 * included: held text starts where a stop string starts, at a lead byte.
 * Fed one byte per piece (as byte-fallback tokens arrive) the matcher emits
 * partial characters - it works on bytes - but stops at the same place. */
static void utf8_text_matches_and_splits_at_characters(void **state)
{
	const char *text = "日本語。続け。続き、é";
	const char *stops[2] = { "。続く", "。続き" };
	size_t len = strlen(text);

	for (int bytewise = 0; bytewise < 2; bytewise++) {
		struct copro_stop st;
		struct sink k = { .len = 0 };
		size_t i = 0;

		assert_int_equal(copro_stop_init(&st, stops, 2), 0);
		while (i < len && !k.matched) {
			size_t n = 1;

			while (!bytewise && ((unsigned char)text[i + n] & 0xc0) == 0x80)
				n++;
			feed_all(&st, &k, text + i, n);
			if (!bytewise)
				assert_true(((unsigned char)text[k.len] & 0xc0) != 0x80);
			i += n;
		}
		assert_true(k.matched);
		assert_int_equal(st.which, 1);
		finish(&st, &k);
		assert_string_equal(k.text, "日本語。続け");
		copro_stop_free(&st);
	}
}

/* A piece far longer than the matcher's chunk, with the stop deep inside. */
static void long_piece_is_taken_in_chunks(void **state)
{
	const size_t n = 100000, at = 70001;
	const char *stops[1] = { "STOP" };
	char *text = malloc(n);
	struct copro_stop st;
	size_t emitted = 0, taken = 0, e, used;
	bool m = false;

	assert_non_null(text);
	for (size_t i = 0; i < n; i++)
		text[i] = "STO "[i % 4]; /* "STO STO ...": always a near miss */
	memcpy(text + at, "STOP", 4);
	assert_int_equal(copro_stop_init(&st, stops, 1), 0);
	while (taken < n && !m) {
		used = copro_stop_feed(&st, text + taken, n - taken, &e, &m);
		/* at least a chunk, at most a chunk plus what was held */
		assert_true(used >= COPRO_STOP_CHUNK || used == n - taken || m);
		assert_true(used <= COPRO_STOP_CHUNK + 3);
		assert_memory_equal(copro_stop_out(&st), text + emitted, e);
		emitted += e;
		taken += used;
	}
	assert_true(m);
	assert_int_equal(emitted, at);
	assert_int_equal(taken, at + 4);
	copro_stop_free(&st);
	free(text);
}

/* The reference: the first byte where any stop string ends; of those
 * ending there, the longest. Returns the emitted length, or len if none. */
static size_t stop_ref(const char *t, size_t len, const char *const *stops, uint32_t n,
		       bool *matched)
{
	for (size_t e = 1; e <= len; e++) {
		size_t best = 0;

		for (uint32_t i = 0; i < n; i++) {
			size_t l = strlen(stops[i]);

			if (l <= e && l > best && !memcmp(t + e - l, stops[i], l))
				best = l;
		}
		if (best) {
			*matched = true;
			return e - best;
		}
	}
	*matched = false;
	return len;
}

/* Random text over a three-letter alphabet, random stop strings, random
 * piece boundaries: the matcher agrees with the reference every time. */
static void random_texts_match_the_reference(void **state)
{
	struct copro_rng r;

	copro_rng_seed(&r, 2024);
	for (int trial = 0; trial < 3000; trial++) {
		char text[200], words[4][8];
		const char *stops[4];
		uint32_t n_stop = 1 + copro_rng_u64(&r) % 4;
		size_t len = copro_rng_u64(&r) % sizeof(text), want, pos = 0;
		struct copro_stop st;
		struct sink k = { .len = 0 };
		bool want_m;

		for (uint32_t i = 0; i < n_stop; i++) {
			size_t l = 1 + copro_rng_u64(&r) % 6;

			for (size_t j = 0; j < l; j++)
				words[i][j] = "abc"[copro_rng_u64(&r) % 3];
			words[i][l] = '\0';
			stops[i] = words[i];
		}
		for (size_t j = 0; j < len; j++)
			text[j] = "abc"[copro_rng_u64(&r) % 3];
		want = stop_ref(text, len, stops, n_stop, &want_m);

		assert_int_equal(copro_stop_init(&st, stops, n_stop), 0);
		while (pos < len && !k.matched) {
			size_t piece = 1 + copro_rng_u64(&r) % 5;

			if (piece > len - pos)
				piece = len - pos;
			feed_all(&st, &k, text + pos, piece);
			/* nothing emitted is ever past the reference's cut */
			assert_true(k.len <= want);
			pos += piece;
		}
		finish(&st, &k);
		assert_int_equal(k.matched, want_m);
		assert_int_equal(k.len, want);
		assert_memory_equal(k.text, text, want);
		copro_stop_free(&st);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(default_params_pass_the_check),
		cmocka_unit_test(check_rejects_bad_temperature),
		cmocka_unit_test(check_rejects_bad_top_p),
		cmocka_unit_test(check_rejects_bad_min_p),
		cmocka_unit_test(check_rejects_bad_repeat_penalty),
		cmocka_unit_test(check_accepts_any_top_k_and_window),
		cmocka_unit_test(rng_matches_reference_outputs),
		cmocka_unit_test(rng_same_seed_same_draws_different_seed_differs),
		cmocka_unit_test(rng_f32_is_in_unit_interval_and_uniform),
		cmocka_unit_test(greedy_is_argmax_lowest_id_on_ties),
		cmocka_unit_test(top_k_one_equals_greedy_at_any_temperature),
		cmocka_unit_test(tiny_top_p_equals_greedy),
		cmocka_unit_test(temperature_frequencies_match_softmax),
		cmocka_unit_test(distribution_check_can_fail),
		cmocka_unit_test(top_k_draws_only_the_k_best_in_proportion),
		cmocka_unit_test(top_p_keeps_the_smallest_set_reaching_the_mass),
		cmocka_unit_test(top_p_on_a_large_vocabulary_matches_a_full_sort),
		cmocka_unit_test(min_p_never_draws_tokens_below_the_cut),
		cmocka_unit_test(default_chain_stays_inside_top_k),
		cmocka_unit_test(same_seed_same_tokens_across_1000_calls),
		cmocka_unit_test(repeat_penalty_divides_positive_and_multiplies_negative),
		cmocka_unit_test(repeat_penalty_off_leaves_logits),
		cmocka_unit_test(history_token_out_of_range_is_rejected),
		cmocka_unit_test(bad_sizes_are_rejected),
		cmocka_unit_test(nan_logits_are_never_chosen),
		cmocka_unit_test(all_nan_or_minus_inf_gives_token_zero),
		cmocka_unit_test(plus_inf_logit_takes_all_the_mass),
		cmocka_unit_test(stop_init_rejects_bad_strings),
		cmocka_unit_test(stop_strings_are_copied),
		cmocka_unit_test(no_stop_strings_pass_everything_through),
		cmocka_unit_test(stop_split_across_many_pieces),
		cmocka_unit_test(partial_match_is_released_when_it_breaks),
		cmocka_unit_test(overlapping_prefix_is_found),
		cmocka_unit_test(held_text_is_released_at_finish),
		cmocka_unit_test(shared_prefixes_pick_the_right_stop),
		cmocka_unit_test(earliest_completion_wins),
		cmocka_unit_test(utf8_text_matches_and_splits_at_characters),
		cmocka_unit_test(long_piece_is_taken_in_chunks),
		cmocka_unit_test(random_texts_match_the_reference),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
