// SPDX-License-Identifier: MIT
/*
 * quant_bf16.c - bfloat16 products for the linear steps: weights rounded
 * to bf16 when the plan is built, activations per run into scratch,
 * products summed in f32, and a bias + activation epilogue.
 *
 * Why not OpenBLAS's cblas_sbgemm: Debian's OpenBLAS 0.3.21 declares it
 * in cblas.h but is built without BUILD_BFLOAT16, so the library has no
 * sbgemm symbol at all (nm -D shows none). The CPU here (AMD EPYC, Zen 4)
 * has AVX512-BF16 but no AMX; vdpbf16ps is what bf16 hardware there is,
 * and this file calls it directly:
 *
 *   - AVX-512 BF16, where the CPU has it: vdpbf16ps multiplies pairs of
 *     bf16 and adds both products to an f32 lane, so weights are laid out
 *     (K/2, N, 2): two consecutive k of sixteen columns fill one 64-byte
 *     load, and one pair of a row's activations is broadcast against it.
 *     4 rows x 64 columns of accumulators stay in registers and the
 *     epilogue runs on them before anything is stored; the last M mod 4
 *     rows (all of batch 1) go in blocks up to 256 columns wide, for 16
 *     independent sums in flight. Each output's sum runs over k in the
 *     same order whatever the block, so a row's result does not depend
 *     on the batch it came in.
 *   - plain C over the same layout, one row at a time into an f32 row.
 *
 * Rounding is to nearest even, and subnormal inputs become zero: that is
 * what vcvtneps2bf16 and vdpbf16ps do, and the C path does the same so
 * both kernels see the same bf16 numbers. Each rounding is off by at most
 * 2^-9 relative; test_precision.c turns that into the bound it checks.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define BF_HAVE_X86	1
#else
#define BF_HAVE_X86	0
#endif

#include "onnx/fuse.h"

#define BF_ALIGN	64

static size_t round64(size_t n)
{
	return (n + BF_ALIGN - 1) & ~(size_t)(BF_ALIGN - 1);
}

int copro_bf16_avx512_ok(void)
{
#if BF_HAVE_X86
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
	return 0;
#endif
}

uint16_t copro_bf16_round(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40);	/* NaN stays a quiet NaN */
	if ((x & 0x7f800000) == 0)
		return (uint16_t)((x >> 16) & 0x8000);	/* zero, subnormal: signed zero */
	/* Ties to even; an overflow rounds into the exponent, up to Inf, as it should. */
	x += 0x7fff + ((x >> 16) & 1);
	return (uint16_t)(x >> 16);
}

static inline float bf16_f32(uint16_t h)
{
	uint32_t x = (uint32_t)h << 16;
	float f;

	memcpy(&f, &x, 4);
	return f;
}

int copro_bf16_pack(struct copro_bf16w *w, const float *b, int tb, int64_t K, int64_t N)
{
	int64_t k, n;
	size_t bytes;

	memset(w, 0, sizeof(*w));
	w->N = N;
	w->K = K;
	w->Np = (N + 15) & ~(int64_t)15;
	w->Kp = (K + 1) & ~(int64_t)1;
	bytes = round64((size_t)(w->Np * w->Kp) * sizeof(uint16_t));
	w->w = aligned_alloc(BF_ALIGN, bytes ? bytes : BF_ALIGN);
	if (!w->w)
		return -ENOMEM;
	memset(w->w, 0, bytes);
	for (k = 0; k < K; k++)
		for (n = 0; n < N; n++)
			w->w[((k >> 1) * w->Np + n) * 2 + (k & 1)] =
				copro_bf16_round(tb ? b[n * K + k] : b[k * N + n]);
	return 0;
}

void copro_bf16_free(struct copro_bf16w *w)
{
	free(w->w);
	w->w = NULL;
}

size_t copro_bf16_bytes(const struct copro_bf16w *w)
{
	return round64((size_t)(w->Np * w->Kp) * sizeof(uint16_t));
}

/* Scratch: the rounded rows (M, Kp), then one f32 row of Np for the C kernel. */
size_t copro_bf16_scratch(const struct copro_bf16w *w, int64_t M)
{
	return round64((size_t)(M * w->Kp) * sizeof(uint16_t)) +
	       round64((size_t)w->Np * sizeof(float));
}

/* Rounds one row of K values read with stride xs into Kp bf16 (zero padding). */
static void round_row(const float *x, int64_t xs, int64_t K, int64_t Kp, uint16_t *q)
{
	int64_t k;

	for (k = 0; k < K; k++)
		q[k] = copro_bf16_round(x[k * xs]);
	for (; k < Kp; k++)
		q[k] = 0;
}

/* ---------------------------------------------------------------------- */
/* Plain C                                                                */
/* ---------------------------------------------------------------------- */

static void bf16_gemm_c(const struct copro_bf16w *w, const uint16_t *xb, int64_t M, float alpha,
			const struct copro_epi *e, float *y, float *acc)
{
	int64_t N = w->N, Np = w->Np, K2 = w->Kp >> 1, m, n, kk;

	for (m = 0; m < M; m++) {
		const uint16_t *xr = xb + m * w->Kp;
		float *yr = y + m * N;

		memset(acc, 0, (size_t)Np * sizeof(float));
		for (kk = 0; kk < K2; kk++) {
			const uint16_t *wk = w->w + kk * Np * 2;
			float x0 = bf16_f32(xr[2 * kk]), x1 = bf16_f32(xr[2 * kk + 1]);

			for (n = 0; n < Np; n++)
				acc[n] += x0 * bf16_f32(wk[2 * n]) + x1 * bf16_f32(wk[2 * n + 1]);
		}
		for (n = 0; n < N; n++)
			yr[n] = e->bias ? acc[n] * alpha + e->bias[n] : acc[n] * alpha;
		copro_epi_finish(e, yr, m, 0, N);
	}
}

/* ---------------------------------------------------------------------- */
/* AVX-512 BF16                                                           */
/* ---------------------------------------------------------------------- */

#if BF_HAVE_X86
#define TARGET_BF16	__attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16")))
#define INLINE_BF16	TARGET_BF16 inline __attribute__((always_inline))

/* As round_row for a contiguous row, sixteen values at a time (same results). */
static TARGET_BF16 void round_row_avx512(const float *x, int64_t K, int64_t Kp, uint16_t *q)
{
	int64_t k;

	for (k = 0; k < K; k += 16) {
		__mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
		__m256bh h = _mm512_cvtneps_pbh(_mm512_maskz_loadu_ps(m, x + k));
		__m256i hi;

		memcpy(&hi, &h, sizeof(hi));
		_mm256_mask_storeu_epi16(q + k, m, hi);
	}
	if (Kp > K)
		q[K] = 0;
}

static INLINE_BF16 void bf16_block(const struct copro_bf16w *w, const uint16_t *xb, float alpha,
				   const struct copro_epi *e, float *y, int64_t m0, int64_t n0,
				   const int R, const int NV)
{
	const int64_t K2 = w->Kp >> 1, Np = w->Np, N = w->N;
	const uint16_t *wq = w->w + n0 * 2;
	const int vact = copro_epi_vec_act(e);
	const __m512 va = _mm512_set1_ps(alpha);
	__m512 acc[4][16];
	int64_t kk;
	int r, j;

#pragma GCC unroll 4
	for (r = 0; r < R; r++)
#pragma GCC unroll 16
		for (j = 0; j < NV; j++)
			acc[r][j] = _mm512_setzero_ps();
	for (kk = 0; kk < K2; kk++) {
		const uint16_t *wk = wq + kk * Np * 2;
		__m512bh b[16];

#pragma GCC unroll 16
		for (j = 0; j < NV; j++) {
			__m512i v = _mm512_loadu_si512(wk + j * 32);

			memcpy(&b[j], &v, sizeof(v));
		}
#pragma GCC unroll 4
		for (r = 0; r < R; r++) {
			int32_t pair;
			__m512i xi;
			__m512bh x;

			memcpy(&pair, xb + (m0 + r) * w->Kp + kk * 2, 4);
			xi = _mm512_set1_epi32(pair);
			memcpy(&x, &xi, sizeof(x));
#pragma GCC unroll 16
			for (j = 0; j < NV; j++)
				acc[r][j] = _mm512_dpbf16_ps(acc[r][j], x, b[j]);
		}
	}
#pragma GCC unroll 4
	for (r = 0; r < R; r++) {
		float *yr = y + (m0 + r) * N;

#pragma GCC unroll 16
		for (j = 0; j < NV; j++) {
			int64_t n = n0 + 16 * j, cnt = N - n < 16 ? N - n : 16;
			__m512 v = _mm512_mul_ps(acc[r][j], va);

			copro_epi_store16(e, v, yr, m0 + r, n, cnt, vact);
		}
	}
}

#define BF_CASE(R, NV)								\
	case (R) * 32 + (NV):							\
		bf16_block(w, xb, alpha, e, y, m0, n0, R, NV);			\
		break;

/* Runs the block of R rows and NV vectors at (m0, n0); R * NV <= 16. */
static TARGET_BF16 void bf16_dispatch(const struct copro_bf16w *w, const uint16_t *xb,
				     float alpha, const struct copro_epi *e, float *y, int64_t m0,
				     int64_t n0, int R, int NV)
{
	switch (R * 32 + NV) {
	COPRO_BLOCK_CASES(BF_CASE)
	}
}

static TARGET_BF16 void bf16_gemm_avx512(const struct copro_bf16w *w, const uint16_t *xb,
					int64_t M, float alpha, const struct copro_epi *e,
					float *y)
{
	int64_t N = w->N;

	COPRO_BLOCK_LOOP(N, M, bf16_dispatch(w, xb, alpha, e, y, m0, n0, r, nv));
}
#endif /* BF_HAVE_X86 */

void copro_bf16_gemm(const struct copro_bf16w *w, const float *a, int ta, int64_t M, float alpha,
		     const struct copro_epi *e, float *y, void *scratch, int portable)
{
	uint16_t *xb = scratch;					/* (M, Kp) */
	float *acc = (float *)((uint8_t *)scratch +
			       round64((size_t)(M * w->Kp) * sizeof(uint16_t)));	/* (Np) */
	int64_t K = w->K, m;

	if (M == 0 || w->N == 0)
		return;
#if BF_HAVE_X86
	if (!portable) {
		for (m = 0; m < M; m++) {
			if (ta)
				round_row(a + m, M, K, w->Kp, xb + m * w->Kp);
			else
				round_row_avx512(a + m * K, K, w->Kp, xb + m * w->Kp);
		}
		bf16_gemm_avx512(w, xb, M, alpha, e, y);
		return;
	}
#endif
	for (m = 0; m < M; m++)
		round_row(ta ? a + m : a + m * K, ta ? M : 1, K, w->Kp, xb + m * w->Kp);
	bf16_gemm_c(w, xb, M, alpha, e, y, acc);
}
