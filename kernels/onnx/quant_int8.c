// SPDX-License-Identifier: MIT
/*
 * quant_int8.c - int8 products for the linear steps: weights quantized
 * per output channel when the plan is built, activations per row when it
 * runs, i32 sums, and a dequantize + bias + activation epilogue.
 *
 * Symmetric both ways, no zero points: w ~ qw * sw[n] with
 * sw[n] = max_k |W[k, n]| / 127, x ~ qx * sx[m] with sx[m] = max_k
 * |x[m, k]| / 127, so y[m, n] ~ sx[m] sw[n] sum_k qx qw. Each value is
 * off by at most half a step (|x| max / 254 per row, |w| max / 254 per
 * channel); test_precision.c turns that into the bound it checks.
 *
 * Two kernels over the same numbers (their i32 sums are equal):
 *
 *   - AVX-512 VNNI (vpdpbusd), where the CPU has it: it multiplies
 *     unsigned by signed bytes, so activations are stored as qx + 128 and
 *     128 * sum_k qw[k, n] (comp[n], made at build time) is taken off
 *     the sum. Weights are laid out (K/4, N, 4): four consecutive k of
 *     sixteen columns fill one 64-byte load, and four bytes of one row of
 *     activations are broadcast against it. A block of 4 rows x 64
 *     columns keeps 16 accumulators in registers and the epilogue runs on
 *     them before anything is stored; the last M mod 4 rows (all of batch
 *     1) go in blocks up to 256 columns wide, so that there are still 16
 *     independent sums in flight (vpdpbusd's latency is several cycles,
 *     and with 4 chains a row was latency-bound).
 *   - plain C, weights laid out (N, K): one int8 dot product per output,
 *     which the compiler vectorizes with whatever the target has.
 *
 * 255 * 127 * K must fit an int32: K <= COPRO_Q8_MAX_K, which the planner
 * checks.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define Q8_HAVE_X86	1
#else
#define Q8_HAVE_X86	0
#endif

#include "onnx/fuse.h"

#define Q8_ALIGN	64

static size_t round64(size_t n)
{
	return (n + Q8_ALIGN - 1) & ~(size_t)(Q8_ALIGN - 1);
}

static void *zalloc64(size_t n)
{
	void *p = aligned_alloc(Q8_ALIGN, round64(n ? n : 1));

	if (p)
		memset(p, 0, round64(n ? n : 1));
	return p;
}

int copro_q8_vnni_ok(void)
{
#if Q8_HAVE_X86
	return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
	       __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
#else
	return 0;
#endif
}

/* Element (k, n) of W for b stored [K, N], or [N, K] when tb. */
static inline float w_at(const float *b, int tb, int64_t K, int64_t N, int64_t k, int64_t n)
{
	return tb ? b[n * K + k] : b[k * N + n];
}

int copro_q8_pack(struct copro_q8w *w, const float *b, int tb, int64_t K, int64_t N, int vnni)
{
	int64_t k, n;

	memset(w, 0, sizeof(*w));
	w->N = N;
	w->K = K;
	w->Np = (N + 15) & ~(int64_t)15;
	w->Kp = (K + 3) & ~(int64_t)3;
	w->vnni = vnni;
	for (k = 0; k < K * N; k++)
		if (!isfinite(b[k]))
			return -ERANGE;
	w->q = zalloc64((size_t)(w->Np * w->Kp));
	w->scale = zalloc64((size_t)w->Np * sizeof(float));
	w->comp = zalloc64((size_t)w->Np * sizeof(int32_t));
	if (!w->q || !w->scale || !w->comp) {
		copro_q8_free(w);
		return -ENOMEM;
	}
	for (n = 0; n < N; n++) {
		float amax = 0, inv;
		int32_t sum = 0;

		for (k = 0; k < K; k++) {
			float a = fabsf(w_at(b, tb, K, N, k, n));

			amax = a > amax ? a : amax;
		}
		/* An all-zero channel: q = 0 and scale 0, its outputs are the bias. */
		inv = amax > 0 ? 127.0f / amax : 0.0f;
		w->scale[n] = amax / 127.0f;
		for (k = 0; k < K; k++) {
			long q = lrintf(w_at(b, tb, K, N, k, n) * inv);

			q = q > 127 ? 127 : q < -127 ? -127 : q;
			if (vnni)
				w->q[((k >> 2) * w->Np + n) * 4 + (k & 3)] = (int8_t)q;
			else
				w->q[n * w->Kp + k] = (int8_t)q;
			sum += (int32_t)q;
		}
		w->comp[n] = 128 * sum;
	}
	return 0;
}

void copro_q8_free(struct copro_q8w *w)
{
	free(w->q);
	free(w->scale);
	free(w->comp);
	w->q = NULL;
	w->scale = NULL;
	w->comp = NULL;
}

size_t copro_q8_bytes(const struct copro_q8w *w)
{
	return round64((size_t)(w->Np * w->Kp)) + 2 * round64((size_t)w->Np * 4);
}

/* Scratch: the quantized rows (M, Kp) bytes, then their scales (M) floats. */
size_t copro_q8_scratch(const struct copro_q8w *w, int64_t M)
{
	return round64((size_t)(M * w->Kp)) + round64((size_t)M * sizeof(float));
}

/*
 * Quantizes one row of K values read with stride xs into q (Kp bytes:
 * qx + off, padding off), and returns its scale: max |x| / 127, 0 for a
 * zero row, NaN for a row with a NaN or an Inf (then q is all off).
 */
static float quant_row(const float *x, int64_t xs, int64_t K, int64_t Kp, uint8_t *q, int off)
{
	float amax = 0, inv;
	int nan = 0;
	int64_t k;

	for (k = 0; k < K; k++) {
		float a = fabsf(x[k * xs]);

		nan |= a != a;
		amax = a > amax ? a : amax;
	}
	if (nan || !isfinite(amax)) {
		memset(q, off, (size_t)Kp);
		return NAN;
	}
	inv = amax > 0 ? 127.0f / amax : 0.0f;
	for (k = 0; k < K; k++) {
		long v = lrintf(x[k * xs] * inv);

		v = v > 127 ? 127 : v < -127 ? -127 : v;
		q[k] = (uint8_t)(v + off);
	}
	memset(q + K, off, (size_t)(Kp - K));
	return amax / 127.0f;
}

/* ---------------------------------------------------------------------- */
/* Plain C                                                                */
/* ---------------------------------------------------------------------- */

static int32_t dot_s8(const int8_t *a, const int8_t *b, int64_t n)
{
	int32_t s = 0;
	int64_t k;

	for (k = 0; k < n; k++)
		s += (int32_t)a[k] * (int32_t)b[k];
	return s;
}

static void q8_gemm_c(const struct copro_q8w *w, const float *a, int ta, int64_t M, float alpha,
		      const struct copro_epi *e, float *y, uint8_t *xq, float *sx)
{
	int64_t N = w->N, K = w->K, Kp = w->Kp, m, n;

	for (m = 0; m < M; m++)
		sx[m] = quant_row(ta ? a + m : a + m * K, ta ? M : 1, K, Kp, xq + m * Kp, 0);
	for (m = 0; m < M; m++) {
		const int8_t *xr = (const int8_t *)(xq + m * Kp);
		float rs = sx[m] * alpha, *yr = y + m * N;

		for (n = 0; n < N; n++) {
			float v = (float)dot_s8(xr, w->q + n * Kp, Kp) * (rs * w->scale[n]);

			if (e->bias)
				v += e->bias[n];
			yr[n] = v;
		}
		copro_epi_finish(e, yr, m, 0, N);
	}
}

/* ---------------------------------------------------------------------- */
/* AVX-512 VNNI                                                           */
/* ---------------------------------------------------------------------- */

#if Q8_HAVE_X86
#define TARGET_VNNI	__attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni")))
#define INLINE_VNNI	TARGET_VNNI inline __attribute__((always_inline))

/* As quant_row for a contiguous row, sixteen values at a time (same results). */
static TARGET_VNNI float quant_row_avx512(const float *x, int64_t K, int64_t Kp, uint8_t *q)
{
	__m512 vmax = _mm512_setzero_ps(), vinv;
	__mmask16 nan = 0;
	float amax, inv;
	int64_t k;

	for (k = 0; k < K; k += 16) {
		__mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
		__m512 v = _mm512_maskz_loadu_ps(m, x + k);

		nan |= _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q);
		vmax = _mm512_max_ps(vmax, _mm512_abs_ps(v));
	}
	amax = _mm512_reduce_max_ps(vmax);
	if (nan || !isfinite(amax)) {
		memset(q, 128, (size_t)Kp);
		return NAN;
	}
	inv = amax > 0 ? 127.0f / amax : 0.0f;
	vinv = _mm512_set1_ps(inv);
	for (k = 0; k < K; k += 16) {
		__mmask16 m = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
		/* cvtps rounds to nearest even, as lrintf does in the default mode. */
		__m512 f = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + k), vinv);
		__m512i v = _mm512_cvtps_epi32(f);

		v = _mm512_min_epi32(_mm512_max_epi32(v, _mm512_set1_epi32(-127)),
				     _mm512_set1_epi32(127));
		v = _mm512_add_epi32(v, _mm512_set1_epi32(128));
		_mm512_mask_cvtepi32_storeu_epi8(q + k, m, v);
	}
	memset(q + K, 128, (size_t)(Kp - K));
	return amax / 127.0f;
}

/*
 * One block: rows m0 .. m0+R of y, columns n0 .. n0+16*NV (the last
 * vector masked at N). R and NV are constants at each call site, so the
 * accumulators live in registers; R * NV <= 16.
 */
static INLINE_VNNI void q8_block(const struct copro_q8w *w, const uint8_t *xq, const float *sx,
				 float alpha, const struct copro_epi *e, float *y, int64_t m0,
				 int64_t n0, const int R, const int NV)
{
	const int64_t K4 = w->Kp >> 2, Np = w->Np, N = w->N;
	const int8_t *wq = w->q + n0 * 4;
	const int vact = copro_epi_vec_act(e);
	__m512i acc[4][16];
	int64_t kk;
	int r, j;

#pragma GCC unroll 4
	for (r = 0; r < R; r++)
#pragma GCC unroll 16
		for (j = 0; j < NV; j++)
			acc[r][j] = _mm512_setzero_si512();
	for (kk = 0; kk < K4; kk++) {
		const int8_t *wk = wq + kk * Np * 4;
		__m512i b[16];

#pragma GCC unroll 16
		for (j = 0; j < NV; j++)
			b[j] = _mm512_loadu_si512(wk + j * 64);
#pragma GCC unroll 4
		for (r = 0; r < R; r++) {
			int32_t four;
			__m512i x;

			memcpy(&four, xq + (m0 + r) * w->Kp + kk * 4, 4);
			x = _mm512_set1_epi32(four);
#pragma GCC unroll 16
			for (j = 0; j < NV; j++)
				acc[r][j] = _mm512_dpbusd_epi32(acc[r][j], x, b[j]);
		}
	}
#pragma GCC unroll 4
	for (r = 0; r < R; r++) {
		const __m512 rs = _mm512_set1_ps(sx[m0 + r] * alpha);
		float *yr = y + (m0 + r) * N;

#pragma GCC unroll 16
		for (j = 0; j < NV; j++) {
			int64_t n = n0 + 16 * j, cnt = N - n < 16 ? N - n : 16;
			__m512i s = _mm512_sub_epi32(acc[r][j], _mm512_loadu_si512(w->comp + n));
			__m512 v = _mm512_mul_ps(_mm512_cvtepi32_ps(s),
						 _mm512_mul_ps(rs, _mm512_loadu_ps(w->scale + n)));

			copro_epi_store16(e, v, yr, m0 + r, n, cnt, vact);
		}
	}
}

#define Q8_CASE(R, NV)								\
	case (R) * 32 + (NV):							\
		q8_block(w, xq, sx, alpha, e, y, m0, n0, R, NV);		\
		break;

/* Runs the block of R rows and NV vectors at (m0, n0); R * NV <= 16. */
static TARGET_VNNI void q8_dispatch(const struct copro_q8w *w, const uint8_t *xq,
				   const float *sx, float alpha, const struct copro_epi *e,
				   float *y, int64_t m0, int64_t n0, int R, int NV)
{
	switch (R * 32 + NV) {
	COPRO_BLOCK_CASES(Q8_CASE)
	}
}

static TARGET_VNNI void q8_gemm_vnni(const struct copro_q8w *w, const float *a, int ta,
				    int64_t M, float alpha, const struct copro_epi *e, float *y,
				    uint8_t *xq, float *sx)
{
	int64_t N = w->N, K = w->K, Kp = w->Kp, m;

	for (m = 0; m < M; m++)
		sx[m] = ta ? quant_row(a + m, M, K, Kp, xq + m * Kp, 128)
			   : quant_row_avx512(a + m * K, K, Kp, xq + m * Kp);
	COPRO_BLOCK_LOOP(N, M, q8_dispatch(w, xq, sx, alpha, e, y, m0, n0, r, nv));
}
#endif /* Q8_HAVE_X86 */

void copro_q8_gemm(const struct copro_q8w *w, const float *a, int ta, int64_t M, float alpha,
		   const struct copro_epi *e, float *y, void *scratch)
{
	uint8_t *xq = scratch;					/* (M, Kp) */
	float *sx = (float *)((uint8_t *)scratch + round64((size_t)(M * w->Kp)));	/* (M) */

	if (M == 0 || w->N == 0)
		return;
#if Q8_HAVE_X86
	if (w->vnni) {
		q8_gemm_vnni(w, a, ta, M, alpha, e, y, xq, sx);
		return;
	}
#endif
	q8_gemm_c(w, a, ta, M, alpha, e, y, xq, sx);
}
