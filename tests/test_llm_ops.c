// SPDX-License-Identifier: MIT
/*
 * test_llm_ops - the Llama CPU math (kernels/llm/matmul.c, kernels/llm/ops.c)
 * against straightforward double-precision references.
 *
 * The matmul runs for every type on every ISA path (paths this CPU lacks are
 * skipped, counted as skipped), over m = 1, 3, 17, 64 tokens, k = 32, 64,
 * 768 and n = 1, 5, 33, 256 rows, plus k = 37 and 100 for F32/F16 (vector
 * tails) and a sub-range [n0, n1). The reference is computed in double from
 * copro_dequantize_row of W and, for Q8_0/Q4_0, from x quantized by
 * copro_quantize_row_q8_0 then dequantized.
 *
 * Error budgets, each a multiple of FLT_EPSILON times l1 = sum |w_i x_i|
 * (the size of the terms, so the bound holds whatever the cancellation):
 *
 *   F32, F16   (k / 4 + 16) eps l1: every path sums k float products in at
 *              least four interleaved partial sums (SIMD lanes, eight
 *              partials in the scalar path, OpenBLAS's own blocking), each
 *              partial at most k / 4 roundings deep, plus the final adds.
 *   Q8_0, Q4_0 on the quantized x: (k / 32 + 16) eps l1: the block dot
 *              products are exact integers; what rounds is the product of
 *              the two scales, the dequantized reference (d * q in float)
 *              and k / 32 float block sums.
 *   Q8_0, Q4_0 against the f32 x: the above plus the quantization error of
 *              x: each element is off by at most 0.6 d_x (d / 2 from
 *              rounding q, plus the f16 rounding of the scale times |q| <=
 *              127: 127 * 2^-11 d < 0.07 d), so sum over blocks of
 *              0.6 d_x * sum |w|.
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/ops.h"
#if defined(__x86_64__) || defined(__i386__)
#define OPS_X86 1
#include "llm/vexp.h"
#else
#define OPS_X86 0
#endif

static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

/* Uniform in [-1, 1): xorshift64*, deterministic across runs. */
static float frand(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return (float)((rng_state * 0x2545f4914f6cdd1dull) >> 40) / (float)(1 << 23) - 1.0f;
}

static const uint32_t types[] = { COPRO_GGML_F32, COPRO_GGML_F16, COPRO_GGML_Q8_0,
				  COPRO_GGML_Q4_0 };

static int is_block(uint32_t type)
{
	return type == COPRO_GGML_Q8_0 || type == COPRO_GGML_Q4_0;
}

/* A random (n, k) matrix of type in w (returned, malloc'd) and its
 * dequantized f32 form in wd (n, k). Rows get different magnitudes so the
 * per-block scales differ. */
static void *make_w(uint32_t type, size_t n, size_t k, float *wd)
{
	size_t rb = copro_ggml_row_bytes(type, k);
	uint8_t *w = malloc(n * rb);
	float *row = malloc(k * sizeof(float));

	assert_non_null(w);
	assert_non_null(row);
	for (size_t j = 0; j < n; j++) {
		float mag = 0.1f + (float)(j % 7);

		for (size_t i = 0; i < k; i++)
			row[i] = frand() * mag;
		switch (type) {
		case COPRO_GGML_F32:
			memcpy(w + j * rb, row, rb);
			break;
		case COPRO_GGML_F16:
			for (size_t i = 0; i < k; i++)
				((uint16_t *)(w + j * rb))[i] = copro_f32_to_f16(row[i]);
			break;
		case COPRO_GGML_Q8_0:
			copro_quantize_row_q8_0(row, (void *)(w + j * rb), k);
			break;
		case COPRO_GGML_Q4_0:
			copro_quantize_row_q4_0(row, (void *)(w + j * rb), k);
			break;
		}
		copro_dequantize_row(type, w + j * rb, wd + j * k, k);
	}
	free(row);
	return w;
}

struct mm_case {
	uint32_t type;
	int isa;
};

/* Check one shape on the current path: y from copro_llm_matmul over
 * [n0, n1) against the double reference, columns outside left alone. */
static void check_shape(uint32_t type, size_t m, size_t n, size_t k, size_t n0, size_t n1)
{
	float *wd = malloc(n * k * sizeof(float));
	float *x = malloc(m * k * sizeof(float));
	float *xd = malloc(m * k * sizeof(float)); /* x as the kernel sees it */
	float *y = malloc(m * n * sizeof(float));
	struct copro_block_q8_0 *xq = malloc((m * k / 32 + 1) * sizeof(*xq));
	size_t ss = copro_llm_matmul_scratch(type, m, k);
	void *scratch = malloc(ss + 1);
	void *w;

	assert_non_null(wd);
	assert_non_null(x);
	assert_non_null(xd);
	assert_non_null(y);
	assert_non_null(xq);
	assert_non_null(scratch);
	w = make_w(type, n, k, wd);
	for (size_t i = 0; i < m * k; i++)
		x[i] = frand() * (1.0f + (float)(i % 5));
	if (is_block(type)) {
		assert_int_equal(ss, m * k / 32 * sizeof(*xq));
		for (size_t t = 0; t < m; t++)
			copro_quantize_row_q8_0(x + t * k, xq + t * k / 32, k);
		copro_dequantize_row(COPRO_GGML_Q8_0, xq, xd, m * k);
	} else {
		assert_int_equal(ss, 0);
		memcpy(xd, x, m * k * sizeof(float));
	}
	for (size_t i = 0; i < m * n; i++)
		y[i] = 12345.0f;
	assert_int_equal(copro_llm_matmul(type, w, n, k, x, m, y, n0, n1, scratch), 0);

	for (size_t t = 0; t < m; t++) {
		for (size_t j = 0; j < n; j++) {
			float got = y[t * n + j];
			double ref = 0, ref_f = 0, l1 = 0, qerr = 0;

			if (j < n0 || j >= n1) {
				assert_true(got == 12345.0f);
				continue;
			}
			for (size_t i = 0; i < k; i++) {
				double wi = wd[j * k + i];

				ref += wi * xd[t * k + i];
				ref_f += wi * x[t * k + i];
				l1 += fabs(wi * xd[t * k + i]);
			}
			double tight = is_block(type) ? (double)(k / 32 + 16) * FLT_EPSILON * l1
						      : (double)(k / 4 + 16) * FLT_EPSILON * l1;

			if (fabs(got - ref) > tight + 1e-30) {
				fail_msg("%s %s m=%zu n=%zu k=%zu: y[%zu][%zu] = %.9g, ref %.9g "
					 "(budget %.3g)",
					 copro_ggml_type_name(type), copro_llm_isa_name(copro_llm_isa()),
					 m, n, k, t, j, got, ref, tight);
			}
			if (!is_block(type))
				continue;
			for (size_t b = 0; b < k / 32; b++) {
				double sw = 0;

				for (size_t i = b * 32; i < b * 32 + 32; i++)
					sw += fabs(wd[j * k + i]);
				qerr += 0.6 * copro_f16_to_f32(xq[t * k / 32 + b].d) * sw;
			}
			if (fabs(got - ref_f) > tight + qerr)
				fail_msg("%s vs f32 x: y[%zu][%zu] = %.9g, ref %.9g (budget %.3g)",
					 copro_ggml_type_name(type), t, j, got, ref_f, tight + qerr);
		}
	}
	free(w);
	free(scratch);
	free(xq);
	free(y);
	free(xd);
	free(x);
	free(wd);
}

static int set_path(const struct mm_case *c)
{
	if (!copro_llm_isa_supported(c->isa)) {
		print_message("skipping %s: this CPU lacks it\n", copro_llm_isa_name(c->isa));
		return -1;
	}
	assert_int_equal(copro_llm_set_isa(c->isa), 0);
	assert_int_equal(copro_llm_isa(), c->isa);
	return 0;
}

static void matmul_should_match_reference_on_every_shape(void **state)
{
	const struct mm_case *c = *state;
	static const size_t ms[] = { 1, 3, 17, 64 };
	static const size_t ks[] = { 32, 64, 768, 37, 100 };
	static const size_t ns[] = { 1, 5, 33, 256 };

	if (set_path(c))
		skip();
	for (size_t a = 0; a < 4; a++)
		for (size_t b = 0; b < 5; b++)
			for (size_t d = 0; d < 4; d++) {
				if (ks[b] % 32 && is_block(c->type))
					continue;
				check_shape(c->type, ms[a], ns[d], ks[b], 0, ns[d]);
			}
	/* Sub-ranges: a thread's share of the rows, odd edges. */
	check_shape(c->type, 17, 33, 64, 5, 17);
	check_shape(c->type, 3, 256, 768, 100, 256);
	check_shape(c->type, 64, 33, 32, 32, 33);
	copro_llm_set_isa(COPRO_LLM_ISA_SCALAR);
}

/* NaN (and Inf) in one token's x makes that token's outputs NaN and leaves
 * the other tokens finite. */
static void matmul_should_propagate_nan_in_x(void **state)
{
	const struct mm_case *c = *state;
	const size_t m = 5, n = 9, k = 64;
	float *wd = malloc(n * k * sizeof(float));
	float x[5 * 64], y[5 * 9];
	struct copro_block_q8_0 scratch[5 * 2];
	void *w;

	if (set_path(c))
		skip();
	assert_non_null(wd);
	w = make_w(c->type, n, k, wd);
	for (size_t i = 0; i < m * k; i++)
		x[i] = frand();
	x[1 * k + 40] = NAN;
	x[3 * k + 3] = INFINITY;
	assert_int_equal(copro_llm_matmul(c->type, w, n, k, x, m, y, 0, n, scratch), 0);
	for (size_t t = 0; t < m; t++)
		for (size_t j = 0; j < n; j++) {
			if (t == 1)
				assert_true(isnan(y[t * n + j]));
			else if (t == 3)
				assert_false(isfinite(y[t * n + j]));
			else
				assert_true(isfinite(y[t * n + j]));
		}
	free(w);
	free(wd);
	copro_llm_set_isa(COPRO_LLM_ISA_SCALAR);
}

#define MM_CASES(type)                                                                     \
	{ type, COPRO_LLM_ISA_SCALAR }, { type, COPRO_LLM_ISA_AVX2 },                      \
	{                                                                                  \
		type, COPRO_LLM_ISA_AVX512                                                 \
	}

static struct mm_case cases[] = { MM_CASES(COPRO_GGML_F32), MM_CASES(COPRO_GGML_F16),
				   MM_CASES(COPRO_GGML_Q8_0), MM_CASES(COPRO_GGML_Q4_0) };

static void matmul_should_refuse_bad_shapes(void **state)
{
	float x[64] = { 0 }, y[8];
	uint8_t w[8 * 34 * 2] = { 0 };
	struct copro_block_q8_0 s[4];

	(void)state;
	/* k not a multiple of 32 for the block types. */
	assert_int_equal(copro_llm_matmul(COPRO_GGML_Q8_0, w, 2, 48, x, 1, y, 0, 2, s), -EINVAL);
	assert_int_equal(copro_llm_matmul(COPRO_GGML_Q4_0, w, 2, 33, x, 1, y, 0, 2, s), -EINVAL);
	assert_int_equal(copro_llm_matmul_scratch(COPRO_GGML_Q4_0, 1, 33), 0);
	assert_int_equal(copro_llm_quantize_x(x, 1, 48, s), -EINVAL);
	assert_int_equal(copro_llm_matmul(COPRO_GGML_F32, w, 2, 0, x, 1, y, 0, 2, s), -EINVAL);
	assert_int_equal(copro_llm_matmul(7, w, 2, 32, x, 1, y, 0, 2, s), -EINVAL);
	/* Column range outside [0, n] or reversed. */
	assert_int_equal(copro_llm_matmul(COPRO_GGML_F32, w, 2, 32, x, 1, y, 0, 3, s), -EINVAL);
	assert_int_equal(copro_llm_matmul(COPRO_GGML_F32, w, 2, 32, x, 1, y, 2, 1, s), -EINVAL);
	/* Missing scratch for the block types, missing xq or x. */
	assert_int_equal(copro_llm_matmul(COPRO_GGML_Q8_0, w, 2, 32, x, 1, y, 0, 2, NULL),
			 -EINVAL);
	assert_int_equal(copro_llm_matmul_xq(COPRO_GGML_Q8_0, w, 2, 32, x, NULL, 1, y, 0, 2),
			 -EINVAL);
	assert_int_equal(copro_llm_matmul_xq(COPRO_GGML_F16, w, 2, 32, NULL, s, 1, y, 0, 2),
			 -EINVAL);
	assert_int_equal(copro_llm_set_isa(9), -EINVAL);
	assert_null(copro_llm_isa_name(9));
}

static void matmul_should_do_nothing_for_an_empty_range(void **state)
{
	float x[64] = { 1 }, y[2] = { 7.0f, 7.0f };
	uint8_t w[2 * 34] = { 0 };
	struct copro_block_q8_0 s[1];

	(void)state;
	for (size_t i = 0; i < 4; i++) {
		assert_int_equal(copro_llm_matmul(types[i], w, 2, 32, x, 1, y, 1, 1, s), 0);
		assert_int_equal(copro_llm_matmul(types[i], w, 2, 32, x, 0, y, 0, 2, s), 0);
	}
	assert_true(y[0] == 7.0f && y[1] == 7.0f);
}

/* Pre-quantized x is the reference quantizer's, and one xq feeds several
 * matrices with the same result as quantizing inside each call. */
static void quantize_x_should_match_reference_and_be_shareable(void **state)
{
	const size_t m = 3, n = 7, k = 96;
	float x[3 * 96], wd[7 * 96], y1[3 * 7], y2[3 * 7];
	struct copro_block_q8_0 xq[9], ref[9], s[9];
	void *w;

	(void)state;
	for (size_t i = 0; i < m * k; i++)
		x[i] = frand() * 3.0f;
	assert_int_equal(copro_llm_quantize_x(x, m, k, xq), 0);
	copro_quantize_row_q8_0(x, ref, m * k);
	assert_memory_equal(xq, ref, sizeof(ref));
	for (int i = 0; i < 2; i++) {
		uint32_t type = i ? COPRO_GGML_Q4_0 : COPRO_GGML_Q8_0;

		w = make_w(type, n, k, wd);
		assert_int_equal(copro_llm_matmul_xq(type, w, n, k, NULL, xq, m, y1, 0, n), 0);
		assert_int_equal(copro_llm_matmul(type, w, n, k, x, m, y2, 0, n, s), 0);
		assert_memory_equal(y1, y2, sizeof(y1));
		free(w);
	}
}

/* ---- element-wise ops ---------------------------------------------------- */

static void rmsnorm_should_match_reference(void **state)
{
	enum { N = 77, ROWS = 3 };
	float x[ROWS * N], w[N], out[ROWS * N];
	const float eps = 1e-5f;

	(void)state;
	for (int i = 0; i < ROWS * N; i++)
		x[i] = frand() * (float)(1 + i % 4);
	for (int i = 0; i < N; i++)
		w[i] = 1.0f + frand() * 0.5f;
	copro_llm_rmsnorm_rows(out, x, w, ROWS, N, eps);
	for (int r = 0; r < ROWS; r++) {
		double ss = 0;

		for (int i = 0; i < N; i++)
			ss += (double)x[r * N + i] * x[r * N + i];
		double sc = 1.0 / sqrt(ss / N + eps);

		for (int i = 0; i < N; i++) {
			double ref = x[r * N + i] * sc * w[i];

			assert_true(fabs(out[r * N + i] - ref) <= 1e-5 * (fabs(ref) + 1e-3));
		}
	}
	/* In place gives the same. */
	copro_llm_rmsnorm(x, x, w, N, eps);
	assert_memory_equal(x, out, N * sizeof(float));
}

static void rope_check(bool neox, int32_t pos)
{
	enum { H = 3, D = 64, R = 48 };
	float x[H * D], orig[H * D];
	const double base = 10000.0;

	for (int i = 0; i < H * D; i++)
		orig[i] = x[i] = frand();
	assert_int_equal(copro_llm_rope(x, H, D, R, pos, (float)base, neox), 0);
	for (int h = 0; h < H; h++) {
		const float *o = orig + h * D;
		const float *v = x + h * D;

		for (int i = 0; i < R / 2; i++) {
			double th = pos * pow(base, -2.0 * i / R);
			int i0 = neox ? i : 2 * i, i1 = neox ? i + R / 2 : 2 * i + 1;
			double r0 = o[i0] * cos(th) - o[i1] * sin(th);
			double r1 = o[i0] * sin(th) + o[i1] * cos(th);
			/* The angle is computed in float: ~1e-6 relative, times pos. */
			double tol = 4e-6 + 2e-6 * pos;

			if (fabs(v[i0] - r0) > tol || fabs(v[i1] - r1) > tol)
				fail_msg("rope neox=%d pos=%d head %d pair %d: (%g, %g) vs (%g, %g)",
					 neox, pos, h, i, v[i0], v[i1], r0, r1);
		}
		/* Past rot_dim: untouched. */
		assert_memory_equal(v + R, o + R, (D - R) * sizeof(float));
	}
}

static void rope_should_match_direct_formula_in_both_layouts(void **state)
{
	static const int32_t pos[] = { 0, 1, 7, 100, 4095 };

	(void)state;
	for (int i = 0; i < 5; i++) {
		rope_check(false, pos[i]);
		rope_check(true, pos[i]);
	}
}

static void rope_should_refuse_bad_rot_dim(void **state)
{
	float x[16] = { 0 };

	(void)state;
	assert_int_equal(copro_llm_rope(x, 1, 16, 15, 1, 10000.0f, false), -EINVAL);
	assert_int_equal(copro_llm_rope(x, 1, 16, 18, 1, 10000.0f, false), -EINVAL);
	assert_int_equal(copro_llm_rope(x, 1, 16, 0, 1, 10000.0f, true), -EINVAL);
}

static void softmax_should_not_overflow_on_large_values(void **state)
{
	float x[] = { 1000.0f, 999.0f, -1000.0f, 88.8f, 1000.0f };
	double e[5], sum = 0, max = 1000.0;

	(void)state;
	for (int i = 0; i < 5; i++)
		sum += e[i] = exp(x[i] - max);
	copro_llm_softmax(x, 5);
	for (int i = 0; i < 5; i++) {
		assert_true(isfinite(x[i]));
		assert_true(fabs(x[i] - e[i] / sum) <= 1e-6);
	}
	copro_llm_softmax(x, 0);
}

#if OPS_X86
/* exp of 16 (AVX-512) or 8 (AVX2) floats through vexp.h, into out. */
__attribute__((target("avx512f,avx2,fma")))
static void vexp16(const float *x, float *out)
{
	_mm512_storeu_ps(out, copro_vexp512(_mm512_loadu_ps(x)));
}

__attribute__((target("avx2,fma")))
static void vexp8(const float *x, float *out)
{
	_mm256_storeu_ps(out, copro_vexp256(_mm256_loadu_ps(x)));
}

/* Fails unless got is exp(x) within 2 ulp (normal), 1 ulp (subnormal), or exactly 0 / +inf. */
static double check_exp(int isa, float x, float got)
{
	double ref = exp((double)x);

	if (isnan(x)) {
		if (!isnan(got))
			fail_msg("%s: exp(NaN) = %.9g", copro_llm_isa_name(isa), got);
	} else if (ref > FLT_MAX) {
		if (!(isinf(got) && got > 0))
			fail_msg("%s: exp(%.9g) = %.9g, want +inf", copro_llm_isa_name(isa), x, got);
	} else if (ref >= FLT_MIN) {
		double rel = fabs(got - ref) / ref;

		if (rel > 2.4e-7)
			fail_msg("%s: exp(%.9g) = %.9g, want %.9g", copro_llm_isa_name(isa), x, got,
				 ref);
		return rel;
	} else if (fabs(got - ref) > 0x1p-149 * 1.01 || (ref < 0x1p-150 * 0.99 && got != 0.0f)) {
		fail_msg("%s: exp(%.9g) = %.9g, want %.9g (subnormal or 0)",
			 copro_llm_isa_name(isa), x, got, ref);
	}
	return 0.0;
}

/*
 * The vector exp against exp() in double over its whole range in steps of
 * ~1e-3 (the steps' odd spacing hits many mantissas), then special values:
 * infinities, NaN, zeros, the edges of the range.
 */
static void vexp_should_match_libm_over_its_range(void **state)
{
	static const float special[16] = { -INFINITY, INFINITY, NAN, -1000.0f, 1000.0f, 0.0f,
					   -0.0f, 88.72f, 88.73f, -87.33f, -103.0f, -104.0f,
					   -110.0f, 1.0f, -1.0f, 0.5f };
	float x[16], got[16];
	double worst = 0.0;

	(void)state;
	for (int isa = COPRO_LLM_ISA_AVX2; isa <= COPRO_LLM_ISA_AVX512; isa++) {
		const int w = isa == COPRO_LLM_ISA_AVX512 ? 16 : 8;

		if (!copro_llm_isa_supported(isa)) {
			print_message("skip %s: this CPU lacks it\n", copro_llm_isa_name(isa));
			continue;
		}
		for (double v = -110.0; v < 90.0; v += w * 0.0009765625 * 1.0137) {
			for (int i = 0; i < w; i++)
				x[i] = (float)(v + i * 0.0009765625 * 1.0137);
			if (w == 16)
				vexp16(x, got);
			else
				vexp8(x, got);
			for (int i = 0; i < w; i++)
				worst = fmax(worst, check_exp(isa, x[i], got[i]));
		}
		for (int i = 0; i < 16; i += w) {
			if (w == 16)
				vexp16(special, got);
			else
				vexp8(special + i, got + i);
		}
		for (int i = 0; i < 16; i++)
			check_exp(isa, special[i], got[i]);
		assert_true(got[0] == 0.0f && got[5] == 1.0f && got[6] == 1.0f);
	}
	print_message("figures: vector exp: worst relative error %.3g (%.2f ulp)\n", worst,
		      worst / 0x1p-23);
}
#endif /* OPS_X86 */

static void swiglu_and_add_should_match_reference(void **state)
{
	enum { N = 53 };	/* vectors of 16 or 8 and a tail */
	float g[N], u[N], out[N], y[N];
	int best = copro_llm_isa();

	(void)state;
	for (int i = 0; i < N; i++) {
		g[i] = frand() * 10.0f;
		u[i] = frand() * 2.0f;
		y[i] = frand();
	}
	g[0] = -100.0f; /* exp(100) overflows to Inf: silu is -0, not NaN */
	g[1] = 100.0f;	/* exp(-100) underflows to 0: silu is g */
	g[2] = -89.0f;
	g[3] = 88.0f;
	g[50] = -100.0f; /* the same in the scalar tail (48..52) */
	for (int isa = COPRO_LLM_ISA_SCALAR; isa <= COPRO_LLM_ISA_AVX512; isa++) {
		if (copro_llm_set_isa(isa))
			continue;	/* this CPU lacks it */
		memset(out, 0xff, sizeof(out));
		copro_llm_swiglu(out, g, u, N);
		for (int i = 0; i < N; i++) {
			double ref = g[i] / (1.0 + exp(-(double)g[i])) * u[i];

			if (!(fabs(out[i] - ref) <= 1e-6 * (fabs(ref) + 1)))
				fail_msg("%s: element %d: silu(%g) * %g = %.9g, want %.9g",
					 copro_llm_isa_name(isa), i, g[i], u[i], out[i], ref);
		}
		/* out may alias gate */
		memcpy(out, g, sizeof(g));
		copro_llm_swiglu(out, out, u, N);
		for (int i = 0; i < N; i++)
			assert_true(fabs(out[i] - g[i] / (1.0 + exp(-(double)g[i])) * u[i]) <=
				    1e-6 * (fabs(out[i]) + 1));
	}
	assert_int_equal(copro_llm_set_isa(best), 0);
	memcpy(out, y, sizeof(y));
	copro_llm_add(out, u, N);
	for (int i = 0; i < N; i++)
		assert_true(out[i] == y[i] + u[i]);
}

static void embed_should_dequantize_one_row_and_refuse_bad_ids(void **state)
{
	enum { V = 5, D = 64 };
	float wd[V * D], out[D];

	(void)state;
	for (int i = 0; i < 4; i++) {
		void *t = make_w(types[i], V, D, wd);

		assert_int_equal(copro_llm_embed(types[i], t, V, D, 3, out), 0);
		assert_memory_equal(out, wd + 3 * D, sizeof(out));
		assert_int_equal(copro_llm_embed(types[i], t, V, D, V, out), -EINVAL);
		assert_int_equal(copro_llm_embed(types[i], t, V, D, -1, out), -EINVAL);
		free(t);
	}
	assert_int_equal(copro_llm_embed(COPRO_GGML_Q8_0, wd, V, 40, 0, out), -EINVAL);
}

static void argmax_should_take_lowest_index_on_ties_and_skip_nan(void **state)
{
	float a[] = { 1.0f, 3.0f, -2.0f, 3.0f };
	float b[] = { NAN, -5.0f, NAN, -1.0f, -1.0f };
	float c[] = { NAN, NAN };

	(void)state;
	assert_int_equal(copro_llm_argmax(a, 4), 1);
	assert_int_equal(copro_llm_argmax(b, 5), 3);
	assert_int_equal(copro_llm_argmax(c, 2), 0);
	assert_int_equal(copro_llm_argmax(a, 0), 0);
}

/* ---- packed Q8_0 / Q4_0 -------------------------------------------------------- */

/* m tokens of random x (k), quantized both ways: xs for the packed matmul,
 * xd (m, k) the dequantized Q8_0 values the reference uses. */
static struct copro_block_q8_x *make_xs(size_t m, size_t k, float *xd)
{
	float *x = malloc(m * k * sizeof(float));
	struct copro_block_q8_x *xs = malloc((m * k / 32 + 1) * sizeof(*xs));

	assert_non_null(x);
	assert_non_null(xs);
	for (size_t i = 0; i < m * k; i++)
		x[i] = frand() * (1.0f + (float)(i % 5));
	assert_int_equal(copro_llm_quantize_xs(x, m, k, xs), 0);
	for (size_t b = 0; b < m * k / 32; b++) {
		int32_t sum = 0;

		for (int i = 0; i < 32; i++) {
			xd[b * 32 + i] = xs[b].d * (float)xs[b].qs[i];
			sum += xs[b].qs[i];
		}
		assert_int_equal(xs[b].c, -128 * sum);
	}
	free(x);
	return xs;
}

/*
 * copro_llm_matmul_packed over [n0, n1) on the current path against the
 * double reference on the quantized x. Budget (k / 32 + 4) eps l1: the
 * block sums are exact integers; the product of the two scales rounds
 * once, the FMA that adds each block once (k / 32 roundings deep), and the
 * reference's dequantized w and x once each.
 */
static void check_packed(uint32_t type, size_t m, size_t n, size_t k, size_t n0, size_t n1)
{
	float *wd = malloc(n * k * sizeof(float));
	float *xd = malloc(m * k * sizeof(float));
	float *y = malloc(m * n * sizeof(float));
	struct copro_llm_packed *p;
	struct copro_block_q8_x *xs;
	void *w;

	assert_non_null(wd);
	assert_non_null(xd);
	assert_non_null(y);
	w = make_w(type, n, k, wd);
	xs = make_xs(m, k, xd);
	assert_int_equal(copro_llm_pack(type, w, n, k, &p), 0);
	assert_true(copro_llm_pack_bytes(p) >= (n + 15) / 16 * 16 * copro_ggml_row_bytes(type, k));
	for (size_t i = 0; i < m * n; i++)
		y[i] = 12345.0f;
	assert_int_equal(copro_llm_matmul_packed(p, xs, m, y, n0, n1), 0);
	for (size_t t = 0; t < m; t++) {
		for (size_t j = 0; j < n; j++) {
			float got = y[t * n + j];
			double ref = 0, l1 = 0;

			if (j < n0 || j >= n1) {
				assert_true(got == 12345.0f);
				continue;
			}
			for (size_t i = 0; i < k; i++) {
				double v = (double)wd[j * k + i] * xd[t * k + i];

				ref += v;
				l1 += fabs(v);
			}
			double budget = (double)(k / 32 + 4) * FLT_EPSILON * l1;

			if (fabs(got - ref) > budget + 1e-30)
				fail_msg("packed %s %s m=%zu n=%zu k=%zu: y[%zu][%zu] = %.9g, "
					 "ref %.9g (budget %.3g)", copro_ggml_type_name(type),
					 copro_llm_isa_name(copro_llm_isa()), m, n, k, t, j, got,
					 ref, budget);
		}
	}
	copro_llm_pack_free(p);
	free(xs);
	free(w);
	free(y);
	free(xd);
	free(wd);
}

static void packed_matmul_should_match_reference_on_every_shape(void **state)
{
	const struct mm_case *c = *state;
	static const size_t ms[] = { 1, 3, 4, 5, 17, 64 };
	static const size_t ks[] = { 32, 64, 768, 2048 };
	static const size_t ns[] = { 1, 5, 17, 33, 2048 };

	if (set_path(c))
		skip();
	for (size_t a = 0; a < 6; a++)
		for (size_t b = 0; b < 4; b++)
			for (size_t d = 0; d < 5; d++) {
				/* The reference is O(m n k) in double: keep it to seconds. */
				if (ms[a] * ns[d] * ks[b] > 17 * 2048 * 768)
					continue;
				check_packed(c->type, ms[a], ns[d], ks[b], 0, ns[d]);
			}
	/* Sub-ranges: a thread's share of the rows, cut inside a group. */
	check_packed(c->type, 17, 33, 64, 5, 17);
	check_packed(c->type, 5, 33, 64, 16, 32);
	check_packed(c->type, 3, 256, 768, 100, 256);
	check_packed(c->type, 64, 33, 32, 32, 33);
	check_packed(c->type, 4, 2048, 64, 1000, 1001);
	copro_llm_set_isa(COPRO_LLM_ISA_SCALAR);
}

/*
 * Batch invariance: token t's row of y computed with all 64 tokens in the
 * call equals, bit for bit, the row computed with token t alone, on every
 * path; and every path gives the scalar path's bits.
 */
static void packed_matmul_should_be_batch_invariant_and_equal_on_every_path(void **state)
{
	const struct mm_case *c = *state;
	enum { M = 64, N = 37, K = 768 };
	float *wd = malloc(N * K * sizeof(float));
	float *xd = malloc(M * K * sizeof(float));
	float *y = malloc(M * N * sizeof(float));
	float *ref = malloc(M * N * sizeof(float));
	float y1[N];
	struct copro_llm_packed *p;
	struct copro_block_q8_x *xs;
	void *w;

	assert_non_null(wd);
	assert_non_null(xd);
	assert_non_null(y);
	assert_non_null(ref);
	if (set_path(c))
		skip();
	w = make_w(c->type, N, K, wd);
	xs = make_xs(M, K, xd);
	assert_int_equal(copro_llm_pack(c->type, w, N, K, &p), 0);
	assert_int_equal(copro_llm_set_isa(COPRO_LLM_ISA_SCALAR), 0);
	assert_int_equal(copro_llm_matmul_packed(p, xs, M, ref, 0, N), 0);
	assert_int_equal(copro_llm_set_isa(c->isa), 0);
	assert_int_equal(copro_llm_matmul_packed(p, xs, M, y, 0, N), 0);
	assert_memory_equal(y, ref, M * N * sizeof(float));
	for (size_t t = 0; t < M; t++) {
		assert_int_equal(copro_llm_matmul_packed(p, xs + t * K / 32, 1, y1, 0, N), 0);
		if (memcmp(y1, y + t * N, sizeof(y1)))
			fail_msg("%s %s: token %zu alone differs from the batch of %d",
				 copro_ggml_type_name(c->type), copro_llm_isa_name(c->isa), t, M);
	}
	/* And in a batch of 3 starting anywhere (other tile shapes). */
	for (size_t t = 0; t + 3 <= M; t += 7) {
		float y3[3 * N];

		assert_int_equal(copro_llm_matmul_packed(p, xs + t * K / 32, 3, y3, 0, N), 0);
		assert_memory_equal(y3, y + t * N, sizeof(y3));
	}
	copro_llm_pack_free(p);
	free(xs);
	free(w);
	free(ref);
	free(y);
	free(xd);
	free(wd);
	copro_llm_set_isa(COPRO_LLM_ISA_SCALAR);
}

/* A NaN block in one token's x makes that token's outputs NaN only. */
static void packed_matmul_should_propagate_nan_in_x(void **state)
{
	const struct mm_case *c = *state;
	enum { M = 5, N = 20, K = 64 };
	float wd[N * K], x[M * K], y[M * N];
	struct copro_block_q8_x xs[M * K / 32];
	struct copro_llm_packed *p;
	void *w;

	if (set_path(c))
		skip();
	w = make_w(c->type, N, K, wd);
	for (size_t i = 0; i < M * K; i++)
		x[i] = frand();
	x[2 * K + 40] = NAN;
	assert_int_equal(copro_llm_quantize_xs(x, M, K, xs), 0);
	assert_int_equal(copro_llm_pack(c->type, w, N, K, &p), 0);
	assert_int_equal(copro_llm_matmul_packed(p, xs, M, y, 0, N), 0);
	for (size_t t = 0; t < M; t++)
		for (size_t j = 0; j < N; j++)
			assert_true(t == 2 ? isnan(y[t * N + j]) : isfinite(y[t * N + j]));
	copro_llm_pack_free(p);
	free(w);
	copro_llm_set_isa(COPRO_LLM_ISA_SCALAR);
}

static void packed_matmul_should_refuse_bad_arguments(void **state)
{
	float wd[32 * 64], y[64];
	struct copro_block_q8_x xs[2];
	struct copro_llm_packed *p = (void *)1;
	void *w = make_w(COPRO_GGML_Q8_0, 32, 64, wd);

	(void)state;
	assert_int_equal(copro_llm_pack(COPRO_GGML_F16, w, 32, 64, &p), -EINVAL);
	assert_null(p);
	assert_int_equal(copro_llm_pack(COPRO_GGML_Q8_0, w, 32, 48, &p), -EINVAL);
	assert_int_equal(copro_llm_pack(COPRO_GGML_Q8_0, w, 0, 64, &p), -EINVAL);
	assert_int_equal(copro_llm_pack(COPRO_GGML_Q8_0, NULL, 32, 64, &p), -EINVAL);
	assert_int_equal(copro_llm_pack(COPRO_GGML_Q8_0, w, 32, 64, &p), 0);
	assert_int_equal(copro_llm_matmul_packed(p, xs, 1, y, 5, 4), -EINVAL);
	assert_int_equal(copro_llm_matmul_packed(p, xs, 1, y, 0, 33), -EINVAL);
	assert_int_equal(copro_llm_matmul_packed(p, NULL, 1, y, 0, 32), -EINVAL);
	assert_int_equal(copro_llm_matmul_packed(p, xs, 0, y, 0, 32), 0);
	assert_int_equal(copro_llm_matmul_packed(NULL, xs, 1, y, 0, 0), -EINVAL);
	assert_int_equal(copro_llm_quantize_xs(wd, 1, 48, xs), -EINVAL);
	copro_llm_pack_free(p);
	copro_llm_pack_free(NULL);
	free(w);
}

/* Named by type and path so a failure says which one: "... (F16 avx2)". */
#define MM_TEST(i, what, fn) { #fn " (" what ")", fn, NULL, NULL, &cases[i] }
#define MM_TESTS(i, what)                                                                  \
	MM_TEST(i, what, matmul_should_match_reference_on_every_shape),                    \
		MM_TEST(i, what, matmul_should_propagate_nan_in_x)

#define PK_TEST(i, what, fn) MM_TEST(i, what, fn)
#define PK_TESTS(i, what)                                                                  \
	PK_TEST(i, what, packed_matmul_should_match_reference_on_every_shape),             \
		PK_TEST(i, what, packed_matmul_should_be_batch_invariant_and_equal_on_every_path), \
		PK_TEST(i, what, packed_matmul_should_propagate_nan_in_x)

/*
 * The AVX-512 quantizer of x for the packed matmul gives the scalar
 * reference's bytes exactly: rounding ties (values *.5 after scaling, both
 * signs), zeros, a block's maximum on either sign, NaN and Inf blocks.
 */
static void quantize_xs_should_match_the_scalar_path_bit_for_bit(void **state)
{
	enum { M = 7, K = 256, NB = M * K / COPRO_QK };
	static float x[M * K];
	static struct copro_block_q8_x a[NB], b[NB];
	uint32_t r = 12345;

	if (!copro_llm_isa_supported(COPRO_LLM_ISA_AVX512)) {
		print_message("skipped: this CPU has no AVX-512\n");
		skip();
	}
	for (int i = 0; i < M * K; i++) {
		r = r * 1103515245u + 12345u;
		x[i] = ((float)(r >> 8) / 16777216.0f - 0.5f) * 8.0f;
	}
	/* Block 1: halves after scaling (amax 127 makes id 1): ties both ways. */
	for (int j = 0; j < COPRO_QK; j++)
		x[COPRO_QK + j] = (j == 0) ? 127.0f : (float)(j % 9) - 4.5f;
	/* Block 2: all zero; block 3: the maximum is negative. */
	memset(x + 2 * COPRO_QK, 0, COPRO_QK * sizeof(float));
	x[3 * COPRO_QK + 5] = -50.0f;
	x[4 * COPRO_QK + 7] = NAN;
	x[5 * COPRO_QK + 9] = INFINITY;
	assert_int_equal(copro_llm_set_isa(COPRO_LLM_ISA_SCALAR), 0);
	assert_int_equal(copro_llm_quantize_xs(x, M, K, a), 0);
	assert_int_equal(copro_llm_set_isa(COPRO_LLM_ISA_AVX512), 0);
	assert_int_equal(copro_llm_quantize_xs(x, M, K, b), 0);
	for (int i = 0; i < NB; i++) {
		assert_memory_equal(a[i].qs, b[i].qs, COPRO_QK);
		assert_int_equal(a[i].c, b[i].c);
		if (isnan(a[i].d))
			assert_true(isnan(b[i].d));
		else
			assert_memory_equal(&a[i].d, &b[i].d, sizeof(float));
	}
	assert_true(isnan(b[4].d) && isnan(b[5].d));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(quantize_xs_should_match_the_scalar_path_bit_for_bit),
		MM_TESTS(0, "F32 scalar"),
		MM_TESTS(1, "F32 avx2"),
		MM_TESTS(2, "F32 avx512"),
		MM_TESTS(3, "F16 scalar"),
		MM_TESTS(4, "F16 avx2"),
		MM_TESTS(5, "F16 avx512"),
		MM_TESTS(6, "Q8_0 scalar"),
		MM_TESTS(7, "Q8_0 avx2"),
		MM_TESTS(8, "Q8_0 avx512"),
		MM_TESTS(9, "Q4_0 scalar"),
		MM_TESTS(10, "Q4_0 avx2"),
		MM_TESTS(11, "Q4_0 avx512"),
		PK_TESTS(6, "Q8_0 scalar"),
		PK_TESTS(7, "Q8_0 avx2"),
		PK_TESTS(8, "Q8_0 avx512"),
		PK_TESTS(9, "Q4_0 scalar"),
		PK_TESTS(10, "Q4_0 avx2"),
		PK_TESTS(11, "Q4_0 avx512"),
		cmocka_unit_test(packed_matmul_should_refuse_bad_arguments),
		cmocka_unit_test(matmul_should_refuse_bad_shapes),
		cmocka_unit_test(matmul_should_do_nothing_for_an_empty_range),
		cmocka_unit_test(quantize_x_should_match_reference_and_be_shareable),
		cmocka_unit_test(rmsnorm_should_match_reference),
		cmocka_unit_test(rope_should_match_direct_formula_in_both_layouts),
		cmocka_unit_test(rope_should_refuse_bad_rot_dim),
		cmocka_unit_test(softmax_should_not_overflow_on_large_values),
#if OPS_X86
		cmocka_unit_test(vexp_should_match_libm_over_its_range),
#endif
		cmocka_unit_test(swiglu_and_add_should_match_reference),
		cmocka_unit_test(embed_should_dequantize_one_row_and_refuse_bad_ids),
		cmocka_unit_test(argmax_should_take_lowest_index_on_ties_and_skip_nan),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
