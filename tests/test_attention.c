// SPDX-License-Identifier: MIT
/*
 * test_attention.c - paged decode attention (kernels/llm/attention.c)
 * against the contiguous double-precision reference.
 *
 * Every case fills the whole pool with noise, scatters the sequence over a
 * random permutation of block ids and writes a different sequence into
 * another layer, so a kernel that ignored the block table, the layer or the
 * kv-head mapping would read the noise and fail. Tolerance: every output
 * element within 1e-5 * max(1, |ref|) of the reference (outputs are convex
 * combinations of values in [-1, 1]).
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/attention.h"
#include "llm/ops.h"

#define TOL	1e-5

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static float rndf(void)
{
	return (float)rnd() / 2147483648.0f - 1.0f;	/* rnd() < 2^32: [-1, 1) */
}

static void fill(float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		x[i] = rndf();
}

/* A paged copy of contiguous K/V in layer `layer` of a pool with noise elsewhere. */
struct paged {
	struct copro_kv_view kv;
	float *k, *v;				/* (n_blocks, block_floats) each */
	uint32_t *table;			/* (ceil(n_ctx / block_tokens)) */
};

static void paged_build(struct paged *p, const struct copro_kv_geom *g, uint32_t layer,
			uint32_t n_ctx, const float *k, const float *v)
{
	uint32_t n_tab = (n_ctx + g->block_tokens - 1) / g->block_tokens;
	uint32_t n_blocks = n_tab + 3;
	size_t bf = copro_kv_block_floats(g);
	size_t row = (size_t)g->n_kv_heads * g->head_dim;
	uint32_t *perm = malloc(n_blocks * sizeof(*perm));
	float *junk = malloc(row * sizeof(float));

	assert_non_null(perm);
	assert_non_null(junk);
	p->k = malloc(bf * n_blocks * sizeof(float));
	p->v = malloc(bf * n_blocks * sizeof(float));
	p->table = malloc(n_tab * sizeof(*p->table));
	assert_non_null(p->k);
	assert_non_null(p->v);
	assert_non_null(p->table);
	fill(p->k, bf * n_blocks);
	fill(p->v, bf * n_blocks);
	assert_int_equal(copro_kv_view_init(&p->kv, g, p->k, p->v, n_blocks), 0);

	/* Fisher-Yates over all the pool's ids; the table takes the first n_tab */
	for (uint32_t i = 0; i < n_blocks; i++)
		perm[i] = i;
	for (uint32_t i = n_blocks - 1; i > 0; i--) {
		uint32_t j = rnd() % (i + 1), t = perm[i];

		perm[i] = perm[j];
		perm[j] = t;
	}
	memcpy(p->table, perm, n_tab * sizeof(*p->table));

	for (uint32_t t = 0; t < n_ctx; t++) {
		copro_kv_write(&p->kv, layer, p->table, t, k + t * row, v + t * row);
		/* another sequence's data in the other layers of the same blocks */
		for (uint32_t l = 0; l < g->n_layers; l++) {
			if (l == layer)
				continue;
			fill(junk, row);
			copro_kv_write(&p->kv, l, p->table, t, junk, junk);
		}
	}
	free(junk);
	free(perm);
}

static void paged_free(struct paged *p)
{
	free(p->k);
	free(p->v);
	free(p->table);
}

static void check_close(const float *got, const float *want, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		double tol = TOL * fmax(1.0, fabs(want[i]));

		if (!isfinite(got[i]) || fabs((double)got[i] - want[i]) > tol) {
			print_error("%s: element %zu: got %.9g, want %.9g\n", what, i, got[i],
				    want[i]);
			fail();
		}
	}
}

struct acase {
	uint32_t n_heads, n_kv_heads, head_dim, block_tokens, n_ctx;
};

static void run_case(const struct acase *c, float qscale, float kscale)
{
	struct copro_kv_geom g = { 3, c->n_kv_heads, c->head_dim, c->block_tokens };
	size_t row = (size_t)c->n_kv_heads * c->head_dim;
	size_t qn = (size_t)c->n_heads * c->head_dim;
	float *q = malloc(qn * sizeof(float));
	float *k = malloc(row * c->n_ctx * sizeof(float));	/* (n_ctx, n_kv_heads, head_dim) */
	float *v = malloc(row * c->n_ctx * sizeof(float));	/* (n_ctx, n_kv_heads, head_dim) */
	float *out = malloc(qn * sizeof(float));		/* (n_heads, head_dim) */
	float *ref = malloc(qn * sizeof(float));		/* (n_heads, head_dim) */
	float *scratch = malloc(copro_paged_attention_scratch(c->n_heads, c->n_ctx) *
				sizeof(float));
	char what[128];
	struct paged p;

	assert_true(q && k && v && out && ref && scratch);
	fill(q, qn);
	fill(k, row * c->n_ctx);
	fill(v, row * c->n_ctx);
	for (size_t i = 0; i < qn; i++)
		q[i] *= qscale;
	for (size_t i = 0; i < row * c->n_ctx; i++)
		k[i] *= kscale;
	paged_build(&p, &g, 1, c->n_ctx, k, v);

	assert_int_equal(copro_paged_attention(&p.kv, 1, p.table, c->n_ctx, q, c->n_heads, out,
					       scratch), 0);
	assert_int_equal(copro_attention_ref(q, k, v, c->n_ctx, c->n_heads, c->n_kv_heads,
					     c->head_dim, ref), 0);
	snprintf(what, sizeof(what), "heads %u/%u dim %u block %u ctx %u", c->n_heads,
		 c->n_kv_heads, c->head_dim, c->block_tokens, c->n_ctx);
	check_close(out, ref, qn, what);

	paged_free(&p);
	free(q);
	free(k);
	free(v);
	free(out);
	free(ref);
	free(scratch);
}

static const struct acase cases[] = {
	{ 1, 1, 8, 16, 1 },		/* one position */
	{ 4, 4, 16, 16, 1 },
	{ 4, 4, 16, 16, 16 },		/* exactly one block */
	{ 4, 2, 32, 16, 48 },		/* GQA 2, multiple of the block */
	{ 8, 2, 64, 16, 50 },		/* GQA 4, partial last block */
	{ 8, 8, 128, 16, 33 },
	{ 32, 8, 128, 16, 77 },		/* Llama-3-8B heads */
	{ 6, 3, 12, 5, 23 },		/* odd dim (vector tail), odd block */
	{ 2, 1, 7, 1, 9 },		/* one position per block */
	{ 4, 1, 20, 32, 100 },
	{ 4, 2, 64, 16, 256 },
	{ 8, 4, 96, 16, 70 },		/* 6 AVX-512 vectors, 12 AVX2 */
	{ 4, 2, 80, 16, 37 },		/* 5 and 10 */
	{ 2, 1, 256, 16, 20 },		/* 16 AVX-512 vectors; AVX2 falls back */
	{ 1, 1, 272, 8, 11 },		/* too wide for either vector path */
	{ 3, 1, 64, 3, 14 },		/* blocks shorter than the 4-key step */
};

/*
 * Runs fn once on every instruction-set path this CPU has (the vector
 * paths take head dims that are multiples of their width, up to 16
 * vectors; the others fall back to the portable path), then restores the
 * default.
 */
static void on_every_isa(void (*fn)(void))
{
	int best = copro_llm_isa();

	for (int isa = COPRO_LLM_ISA_SCALAR; isa <= COPRO_LLM_ISA_AVX512; isa++) {
		if (!copro_llm_isa_supported(isa)) {
			print_message("skip %s: this CPU lacks it\n", copro_llm_isa_name(isa));
			continue;
		}
		assert_int_equal(copro_llm_set_isa(isa), 0);
		fn();
	}
	assert_int_equal(copro_llm_set_isa(best), 0);
}

static void reference_cases(void)
{
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
		run_case(&cases[i], 1.0f, 1.0f);
}

static void should_match_reference_over_permuted_blocks(void **state)
{
	on_every_isa(reference_cases);
}

static void peaked_cases(void)
{
	/* scores ~ +-30: a sharp but not one-hot softmax */
	static const struct acase c[] = { { 8, 2, 64, 16, 40 }, { 4, 4, 16, 4, 13 },
					  { 4, 2, 128, 16, 29 } };

	for (size_t i = 0; i < sizeof(c) / sizeof(c[0]); i++)
		run_case(&c[i], 4.0f, 4.0f);
}

static void should_match_reference_with_peaked_scores(void **state)
{
	on_every_isa(peaked_cases);
}

/*
 * Scores near 1e3: exp() of a raw score overflows f32 (limit ~88.7), so
 * this fails unless the maximum is subtracted. Key 7 scores 40 above the
 * others (exp(-40) ~ 4e-18): the output is value row 7 to f32 precision.
 * A second layer has every score equal at 1e3: the output is the mean.
 */
static void large_logits(void)
{
	struct copro_kv_geom g = { 2, 1, 16, 4 };
	const uint32_t n_ctx = 10, hd = 16, n_heads = 2;
	float q[2 * 16], k[10 * 16], v[10 * 16], out[2 * 16], ref[2 * 16], mean[16];
	float scratch[2 * 10];
	struct paged p;

	for (uint32_t i = 0; i < n_heads * hd; i++)
		q[i] = 10.0f;
	for (uint32_t t = 0; t < n_ctx; t++)
		for (uint32_t d = 0; d < hd; d++) {
			k[t * hd + d] = t == 7 ? 26.0f : 25.0f;	/* score 1040 vs 1000 */
			v[t * hd + d] = rndf();
		}
	paged_build(&p, &g, 0, n_ctx, k, v);
	assert_int_equal(copro_paged_attention(&p.kv, 0, p.table, n_ctx, q, n_heads, out, scratch),
			 0);
	assert_int_equal(copro_attention_ref(q, k, v, n_ctx, n_heads, 1, hd, ref), 0);
	for (uint32_t h = 0; h < n_heads; h++)
		check_close(out + h * hd, v + 7 * hd, hd, "one-hot");
	check_close(out, ref, n_heads * hd, "one-hot vs ref");

	/* all scores equal and huge */
	memset(mean, 0, sizeof(mean));
	for (uint32_t t = 0; t < n_ctx; t++)
		for (uint32_t d = 0; d < hd; d++) {
			k[t * hd + d] = 25.0f;
			mean[d] += v[t * hd + d] / n_ctx;
		}
	for (uint32_t t = 0; t < n_ctx; t++)
		copro_kv_write(&p.kv, 1, p.table, t, k + t * hd, v + t * hd);
	assert_int_equal(copro_paged_attention(&p.kv, 1, p.table, n_ctx, q, n_heads, out, scratch),
			 0);
	for (uint32_t h = 0; h < n_heads; h++)
		check_close(out + h * hd, mean, hd, "uniform");
	paged_free(&p);
}

static void should_not_overflow_on_large_logits(void **state)
{
	on_every_isa(large_logits);
}

static void should_store_token_at_its_block_and_slot(void **state)
{
	struct copro_kv_geom g = { 2, 2, 4, 4 };
	float k[8], v[8], pool_k[5 * 64], pool_v[5 * 64];
	uint32_t table[3] = { 4, 0, 2 };
	struct copro_kv_view kv;

	assert_int_equal(copro_kv_block_floats(&g), 2 * 2 * 4 * 4);
	memset(pool_k, 0, sizeof(pool_k));
	memset(pool_v, 0, sizeof(pool_v));
	assert_int_equal(copro_kv_view_init(&kv, &g, pool_k, pool_v, 5), 0);
	for (int i = 0; i < 8; i++) {
		k[i] = (float)(i + 1);
		v[i] = (float)-(i + 1);
	}
	copro_kv_write(&kv, 1, table, 9, k, v);	/* block table[2] = 2, slot 1 */
	/* layout: [block][layer][kv_head][slot][d] */
	for (int h = 0; h < 2; h++)
		for (int d = 0; d < 4; d++) {
			size_t off = 2 * 64 + 1 * 32 + h * 16 + 1 * 4 + d;

			assert_true(pool_k[off] == k[h * 4 + d]);
			assert_true(pool_v[off] == v[h * 4 + d]);
			assert_ptr_equal(copro_kv_k_at(&kv, 1, 2, h, 1) + d, &pool_k[off]);
			assert_ptr_equal(copro_kv_v_at(&kv, 1, 2, h, 1) + d, &pool_v[off]);
		}
	/* and nowhere else */
	int nonzero = 0;

	for (size_t i = 0; i < 5 * 64; i++)
		nonzero += pool_k[i] != 0.0f;
	assert_int_equal(nonzero, 8);
}

static void should_reject_bad_shapes(void **state)
{
	struct copro_kv_geom g = { 1, 2, 4, 4 }, zero = { 1, 0, 4, 4 };
	struct copro_kv_geom huge = { UINT32_MAX, UINT32_MAX, UINT32_MAX, UINT32_MAX };
	float pool[2 * 32], q[3 * 4], out[3 * 4], scratch[16];
	uint32_t table[1] = { 0 };
	struct copro_kv_view kv;

	memset(pool, 0, sizeof(pool));
	assert_int_equal(copro_kv_view_init(&kv, &zero, pool, pool, 1), -EINVAL);
	assert_int_equal(copro_kv_block_floats(&zero), 0);
	assert_int_equal(copro_kv_view_init(&kv, &huge, pool, pool, 1), -EOVERFLOW);
	assert_int_equal(copro_kv_view_init(&kv, &g, pool, pool + 32, 1), 0);
	memset(q, 0, sizeof(q));
	/* 3 heads over 2 kv heads is not grouped-query attention */
	assert_int_equal(copro_paged_attention(&kv, 0, table, 1, q, 3, out, scratch), -EINVAL);
	assert_int_equal(copro_paged_attention(&kv, 0, table, 0, q, 2, out, scratch), -EINVAL);
	assert_int_equal(copro_paged_attention(&kv, 0, table, 1, q, 0, out, scratch), -EINVAL);
	assert_int_equal(copro_attention_ref(q, pool, pool, 0, 2, 2, 4, out), -EINVAL);
	assert_int_equal(copro_attention_ref(q, pool, pool, 1, 3, 2, 4, out), -EINVAL);
	assert_int_equal(copro_attention_ref(q, pool, pool, 1, 2, 2, 0, out), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_match_reference_over_permuted_blocks),
		cmocka_unit_test(should_match_reference_with_peaked_scores),
		cmocka_unit_test(should_not_overflow_on_large_logits),
		cmocka_unit_test(should_store_token_at_its_block_and_slot),
		cmocka_unit_test(should_reject_bad_shapes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
