// SPDX-License-Identifier: MIT
/*
 * The weight matmul of a Llama forward pass, y = x W^T, over the GGUF
 * element types, with a scalar, an AVX2 and an AVX-512 path.
 *
 * Loop order: the output is cut into tiles of R weight rows by T tokens;
 * a tile walks all k once, holding R x T accumulators in registers. The
 * outer loop takes R rows of W and runs every token over them before moving
 * on, so those rows stay in L1 and W is read from memory once per call
 * (x, m * k bytes quantized, stays in L2). The integer paths quantize x to
 * Q8_0 first and take per-block int8 dot products: AVX-512 VNNI vpdpbusd or
 * AVX2 maddubs, with the usual |w| (unsigned) times sign(x, w) (signed) trick;
 * one float multiply-add by the two block scales follows each block.
 */
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "llm/ops.h"

#if defined(__x86_64__) || defined(__i386__)
#define LLM_X86 1
#include <immintrin.h>
#else
#define LLM_X86 0
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))

/* ---- ISA selection ----------------------------------------------------- */

static int isa_cur = -1;
static pthread_once_t isa_once = PTHREAD_ONCE_INIT;

int copro_llm_isa_supported(int isa)
{
	switch (isa) {
	case COPRO_LLM_ISA_SCALAR:
		return 1;
#if LLM_X86
	case COPRO_LLM_ISA_AVX2:
		return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
		       __builtin_cpu_supports("f16c");
	case COPRO_LLM_ISA_AVX512:
		return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		       __builtin_cpu_supports("avx512vl") &&
		       __builtin_cpu_supports("avx512vnni") && __builtin_cpu_supports("f16c") &&
		       __builtin_cpu_supports("fma") && __builtin_cpu_supports("avx2");
#endif
	}
	return 0;
}

const char *copro_llm_isa_name(int isa)
{
	static const char *const names[] = { "scalar", "avx2", "avx512" };

	return isa >= 0 && isa <= COPRO_LLM_ISA_AVX512 ? names[isa] : NULL;
}

/* Best path the CPU has, capped by COPRO_LLM_ISA when that names one. */
static void isa_init(void)
{
	const char *env = getenv("COPRO_LLM_ISA");
	int cap = COPRO_LLM_ISA_AVX512;

	for (int i = 0; env && i <= COPRO_LLM_ISA_AVX512; i++)
		if (!strcmp(env, copro_llm_isa_name(i)))
			cap = i;
	while (cap > 0 && !copro_llm_isa_supported(cap))
		cap--;
	__atomic_store_n(&isa_cur, cap, __ATOMIC_RELAXED);
}

int copro_llm_isa(void)
{
	pthread_once(&isa_once, isa_init);
	return __atomic_load_n(&isa_cur, __ATOMIC_RELAXED);
}

int copro_llm_set_isa(int isa)
{
	if (!copro_llm_isa_name(isa))
		return -EINVAL;
	if (!copro_llm_isa_supported(isa))
		return -ENOTSUP;
	pthread_once(&isa_once, isa_init);
	__atomic_store_n(&isa_cur, isa, __ATOMIC_RELAXED);
	return 0;
}

/* ---- shared arguments and the tile driver ------------------------------ */

struct mm_args {
	const uint8_t *w; /* (n, k) in type */
	size_t wrow;	  /* bytes per row of w */
	const float *x;	  /* (m, k) f32, F32/F16 */
	const struct copro_block_q8_0 *xq; /* (m, k / 32), Q8_0/Q4_0 */
	size_t k, nb;			   /* elements, blocks per row */
	float *y;			   /* (m, ldy) */
	size_t ldy;
};

typedef void tile_fn(const struct mm_args *a, size_t r0, size_t t0);

/* A kernel in four tile shapes: R x T, R x 1, 1 x T and 1 x 1. */
struct tiles {
	size_t R, T;
	tile_fn *rt, *r1, *t1, *one;
};

/* Run every tile of rows [n0, n1) x tokens [0, m): R rows at a time, all
 * tokens over them, the leftover rows one at a time. */
static void drive(const struct tiles *tl, const struct mm_args *a, size_t m, size_t n0, size_t n1)
{
	size_t r = n0, t;

	for (; r + tl->R <= n1; r += tl->R) {
		for (t = 0; t + tl->T <= m; t += tl->T)
			tl->rt(a, r, t);
		for (; t < m; t++)
			tl->r1(a, r, t);
	}
	for (; r < n1; r++) {
		for (t = 0; t + tl->T <= m; t += tl->T)
			tl->t1(a, r, t);
		for (; t < m; t++)
			tl->one(a, r, t);
	}
}

/* ---- scalar path ------------------------------------------------------- */

/* Signed weights of block b of row w (Q8_0 or Q4_0) and its scale. */
static ALWAYS_INLINE float w_block(uint32_t type, const uint8_t *row, size_t b, int8_t *q)
{
	if (type == COPRO_GGML_Q8_0) {
		const struct copro_block_q8_0 *blk = (const struct copro_block_q8_0 *)row + b;

		memcpy(q, blk->qs, COPRO_QK);
		return copro_f16_to_f32(blk->d);
	}
	const struct copro_block_q4_0 *blk = (const struct copro_block_q4_0 *)row + b;

	for (int j = 0; j < COPRO_QK / 2; j++) {
		q[j] = (int8_t)((blk->qs[j] & 0x0f) - 8);
		q[j + 16] = (int8_t)((blk->qs[j] >> 4) - 8);
	}
	return copro_f16_to_f32(blk->d);
}

/* One weight row by every token, blocks outermost so the row is unpacked
 * once; y[t][r] accumulates in place. */
static void scalar_q(uint32_t type, const struct mm_args *a, size_t m, size_t n0, size_t n1)
{
	int8_t q[COPRO_QK];

	for (size_t r = n0; r < n1; r++) {
		const uint8_t *row = a->w + r * a->wrow;

		for (size_t t = 0; t < m; t++)
			a->y[t * a->ldy + r] = 0.0f;
		for (size_t b = 0; b < a->nb; b++) {
			float dw = w_block(type, row, b, q);

			for (size_t t = 0; t < m; t++) {
				const struct copro_block_q8_0 *xb = a->xq + t * a->nb + b;
				int32_t s = 0;

				for (int j = 0; j < COPRO_QK; j++)
					s += (int32_t)q[j] * xb->qs[j];
				a->y[t * a->ldy + r] += dw * copro_f16_to_f32(xb->d) * (float)s;
			}
		}
	}
}

/* Eight partial sums so the compiler vectorizes without reassociating. */
static float dot_f32(const float *a, const float *b, size_t k)
{
	float s[8] = { 0 };
	size_t i = 0;

	for (; i + 8 <= k; i += 8)
		for (int j = 0; j < 8; j++)
			s[j] += a[i + j] * b[i + j];
	for (; i < k; i++)
		s[0] += a[i] * b[i];
	return ((s[0] + s[4]) + (s[1] + s[5])) + ((s[2] + s[6]) + (s[3] + s[7]));
}

/* F32/F16 rows converted a chunk at a time and run past every token. */
static void scalar_f(uint32_t type, const struct mm_args *a, size_t m, size_t n0, size_t n1)
{
	enum { CH = 256 };
	float buf[CH];

	for (size_t r = n0; r < n1; r++) {
		const uint8_t *row = a->w + r * a->wrow;

		for (size_t t = 0; t < m; t++)
			a->y[t * a->ldy + r] = 0.0f;
		for (size_t c = 0; c < a->k; c += CH) {
			size_t len = a->k - c < CH ? a->k - c : CH;
			const float *wr = buf;

			if (type == COPRO_GGML_F32)
				wr = (const float *)row + c;
			else
				copro_dequantize_row(type, (const uint16_t *)row + c, buf, len);
			for (size_t t = 0; t < m; t++)
				a->y[t * a->ldy + r] += dot_f32(wr, a->x + t * a->k + c, len);
		}
	}
}

#if LLM_X86
/* ---- AVX-512 path -------------------------------------------------------- */

#define TARGET_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

static ALWAYS_INLINE TARGET_AVX2 float hsum256(__m256 v)
{
	__m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));

	s = _mm_add_ps(s, _mm_movehl_ps(s, s));
	s = _mm_add_ss(s, _mm_movehdup_ps(s));
	return _mm_cvtss_f32(s);
}

/* Block b of a Q8_0 or Q4_0 row as 32 signed bytes; its scale in *d. */
static ALWAYS_INLINE TARGET_AVX2 __m256i w_block256(uint32_t type, const uint8_t *row, size_t b,
						      float *d)
{
	if (type == COPRO_GGML_Q8_0) {
		const struct copro_block_q8_0 *blk = (const struct copro_block_q8_0 *)row + b;

		*d = _cvtsh_ss(blk->d);
		return _mm256_loadu_si256((const __m256i *)blk->qs);
	}
	const struct copro_block_q4_0 *blk = (const struct copro_block_q4_0 *)row + b;
	__m128i p = _mm_loadu_si128((const __m128i *)blk->qs);
	__m128i lo = _mm_and_si128(p, _mm_set1_epi8(0x0f));
	__m128i hi = _mm_and_si128(_mm_srli_epi16(p, 4), _mm_set1_epi8(0x0f));

	*d = _cvtsh_ss(blk->d);
	return _mm256_sub_epi8(_mm256_set_m128i(hi, lo), _mm256_set1_epi8(8));
}

/* R rows x T tokens of a Q8_0/Q4_0 matrix against Q8_0 x, VNNI. */
static ALWAYS_INLINE TARGET_512 void q_tile_512(uint32_t type, const struct mm_args *a, size_t r0,
						size_t t0, const int R, const int T)
{
	__m256 acc[4][4];
	const struct copro_block_q8_0 *xr[4];

#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int t = 0; t < T; t++)
			acc[r][t] = _mm256_setzero_ps();
#pragma GCC unroll 4
	for (int t = 0; t < T; t++)
		xr[t] = a->xq + (t0 + t) * a->nb;
	for (size_t b = 0; b < a->nb; b++) {
		__m256i ws[4], wa[4];
		float dw[4];

#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			ws[r] = w_block256(type, a->w + (r0 + r) * a->wrow, b, &dw[r]);
			wa[r] = _mm256_abs_epi8(ws[r]);
		}
#pragma GCC unroll 4
		for (int t = 0; t < T; t++) {
			__m256i xv = _mm256_loadu_si256((const __m256i *)xr[t][b].qs);
			float dx = _cvtsh_ss(xr[t][b].d);

#pragma GCC unroll 4
			for (int r = 0; r < R; r++) {
				__m256i p = _mm256_dpbusd_epi32(_mm256_setzero_si256(), wa[r],
								_mm256_sign_epi8(xv, ws[r]));

				acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
							    _mm256_set1_ps(dw[r] * dx), acc[r][t]);
			}
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int t = 0; t < T; t++)
			a->y[(t0 + t) * a->ldy + r0 + r] = hsum256(acc[r][t]);
}

/* R rows x T tokens of an F32/F16 matrix against f32 x, 16 lanes. */
static ALWAYS_INLINE TARGET_512 void f_tile_512(uint32_t type, const struct mm_args *a, size_t r0,
						size_t t0, const int R, const int T)
{
	__m512 acc[4][4];
	const float *xr[4];
	size_t i = 0;

#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int t = 0; t < T; t++)
			acc[r][t] = _mm512_setzero_ps();
#pragma GCC unroll 4
	for (int t = 0; t < T; t++)
		xr[t] = a->x + (t0 + t) * a->k;
	for (; i + 16 <= a->k; i += 16) {
		__m512 wv[4];

#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			const uint8_t *row = a->w + (r0 + r) * a->wrow;

			if (type == COPRO_GGML_F32)
				wv[r] = _mm512_loadu_ps((const float *)row + i);
			else
				wv[r] = _mm512_cvtph_ps(
					_mm256_loadu_si256((const __m256i *)((const uint16_t *)row + i)));
		}
#pragma GCC unroll 4
		for (int t = 0; t < T; t++) {
			__m512 xv = _mm512_loadu_ps(xr[t] + i);

#pragma GCC unroll 4
			for (int r = 0; r < R; r++)
				acc[r][t] = _mm512_fmadd_ps(wv[r], xv, acc[r][t]);
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++) {
		const uint8_t *row = a->w + (r0 + r) * a->wrow;

#pragma GCC unroll 4
		for (int t = 0; t < T; t++) {
			float s = _mm512_reduce_add_ps(acc[r][t]);

			for (size_t j = i; j < a->k; j++) {
				float wj = type == COPRO_GGML_F32 ? ((const float *)row)[j]
								 : _cvtsh_ss(((const uint16_t *)row)[j]);

				s += wj * xr[t][j];
			}
			a->y[(t0 + t) * a->ldy + r0 + r] = s;
		}
	}
}

#define TILE_FNS(pfx, body, type, R, T, tgt)                                                      \
	static tgt void pfx##_rt(const struct mm_args *a, size_t r0, size_t t0)                   \
	{                                                                                          \
		body(type, a, r0, t0, R, T);                                                       \
	}                                                                                          \
	static tgt void pfx##_r1(const struct mm_args *a, size_t r0, size_t t0)                   \
	{                                                                                          \
		body(type, a, r0, t0, R, 1);                                                       \
	}                                                                                          \
	static tgt void pfx##_t1(const struct mm_args *a, size_t r0, size_t t0)                   \
	{                                                                                          \
		body(type, a, r0, t0, 1, T);                                                       \
	}                                                                                          \
	static tgt void pfx##_one(const struct mm_args *a, size_t r0, size_t t0)                  \
	{                                                                                          \
		body(type, a, r0, t0, 1, 1);                                                       \
	}                                                                                          \
	static const struct tiles pfx = { R, T, pfx##_rt, pfx##_r1, pfx##_t1, pfx##_one };

TILE_FNS(q8_512, q_tile_512, COPRO_GGML_Q8_0, 4, 4, TARGET_512)
TILE_FNS(q4_512, q_tile_512, COPRO_GGML_Q4_0, 4, 4, TARGET_512)
TILE_FNS(f32_512, f_tile_512, COPRO_GGML_F32, 4, 4, TARGET_512)
TILE_FNS(f16_512, f_tile_512, COPRO_GGML_F16, 4, 4, TARGET_512)

/* ---- AVX2 path ------------------------------------------------------------ */

/* As q_tile_512 with maddubs (int16 pairs, cannot saturate: |w| <= 128,
 * |x| <= 127) and madd by ones for the int32 sums. */
static ALWAYS_INLINE TARGET_AVX2 void q_tile_avx2(uint32_t type, const struct mm_args *a,
						  size_t r0, size_t t0, const int R, const int T)
{
	__m256 acc[4][4];
	const struct copro_block_q8_0 *xr[4];
	const __m256i ones = _mm256_set1_epi16(1);

#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int t = 0; t < T; t++)
			acc[r][t] = _mm256_setzero_ps();
#pragma GCC unroll 4
	for (int t = 0; t < T; t++)
		xr[t] = a->xq + (t0 + t) * a->nb;
	for (size_t b = 0; b < a->nb; b++) {
		__m256i ws[4], wa[4];
		float dw[4];

#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			ws[r] = w_block256(type, a->w + (r0 + r) * a->wrow, b, &dw[r]);
			wa[r] = _mm256_abs_epi8(ws[r]);
		}
#pragma GCC unroll 4
		for (int t = 0; t < T; t++) {
			__m256i xv = _mm256_loadu_si256((const __m256i *)xr[t][b].qs);
			float dx = _cvtsh_ss(xr[t][b].d);

#pragma GCC unroll 4
			for (int r = 0; r < R; r++) {
				__m256i p = _mm256_maddubs_epi16(wa[r], _mm256_sign_epi8(xv, ws[r]));

				p = _mm256_madd_epi16(p, ones);
				acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p),
							    _mm256_set1_ps(dw[r] * dx), acc[r][t]);
			}
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int t = 0; t < T; t++)
			a->y[(t0 + t) * a->ldy + r0 + r] = hsum256(acc[r][t]);
}

static ALWAYS_INLINE TARGET_AVX2 void f_tile_avx2(uint32_t type, const struct mm_args *a,
						  size_t r0, size_t t0, const int R, const int T)
{
	__m256 acc[4][4];
	const float *xr[4];
	size_t i = 0;

#pragma GCC unroll 4
	for (int r = 0; r < R; r++)
#pragma GCC unroll 4
		for (int t = 0; t < T; t++)
			acc[r][t] = _mm256_setzero_ps();
#pragma GCC unroll 4
	for (int t = 0; t < T; t++)
		xr[t] = a->x + (t0 + t) * a->k;
	for (; i + 8 <= a->k; i += 8) {
		__m256 wv[4];

#pragma GCC unroll 4
		for (int r = 0; r < R; r++) {
			const uint8_t *row = a->w + (r0 + r) * a->wrow;

			if (type == COPRO_GGML_F32)
				wv[r] = _mm256_loadu_ps((const float *)row + i);
			else
				wv[r] = _mm256_cvtph_ps(
					_mm_loadu_si128((const __m128i *)((const uint16_t *)row + i)));
		}
#pragma GCC unroll 4
		for (int t = 0; t < T; t++) {
			__m256 xv = _mm256_loadu_ps(xr[t] + i);

#pragma GCC unroll 4
			for (int r = 0; r < R; r++)
				acc[r][t] = _mm256_fmadd_ps(wv[r], xv, acc[r][t]);
		}
	}
#pragma GCC unroll 4
	for (int r = 0; r < R; r++) {
		const uint8_t *row = a->w + (r0 + r) * a->wrow;

#pragma GCC unroll 4
		for (int t = 0; t < T; t++) {
			float s = hsum256(acc[r][t]);

			for (size_t j = i; j < a->k; j++) {
				float wj = type == COPRO_GGML_F32 ? ((const float *)row)[j]
								 : _cvtsh_ss(((const uint16_t *)row)[j]);

				s += wj * xr[t][j];
			}
			a->y[(t0 + t) * a->ldy + r0 + r] = s;
		}
	}
}

/* AVX2 has 16 vector registers: 4 rows x 2 tokens of accumulators. */
TILE_FNS(q8_avx2, q_tile_avx2, COPRO_GGML_Q8_0, 4, 2, TARGET_AVX2)
TILE_FNS(q4_avx2, q_tile_avx2, COPRO_GGML_Q4_0, 4, 2, TARGET_AVX2)
TILE_FNS(f32_avx2, f_tile_avx2, COPRO_GGML_F32, 4, 2, TARGET_AVX2)
TILE_FNS(f16_avx2, f_tile_avx2, COPRO_GGML_F16, 4, 2, TARGET_AVX2)
#endif /* LLM_X86 */

/* ---- entry points ---------------------------------------------------------- */

size_t copro_llm_matmul_scratch(uint32_t type, size_t m, size_t k)
{
	if (!copro_ggml_row_bytes(type, k))
		return 0;
	if (type != COPRO_GGML_Q8_0 && type != COPRO_GGML_Q4_0)
		return 0;
	return m * (k / COPRO_QK) * sizeof(struct copro_block_q8_0);
}

int copro_llm_quantize_x(const float *x, size_t m, size_t k, struct copro_block_q8_0 *xq)
{
	size_t nb = k / COPRO_QK;

	if (!k || k % COPRO_QK || (m && (!x || !xq)))
		return -EINVAL;
	for (size_t b = 0; b < m * nb; b++) {
		const float *xb = x + b * COPRO_QK;
		float z = 0.0f;

		/* x - x is 0 for finite x and NaN for NaN or Inf. */
		for (int j = 0; j < COPRO_QK; j++)
			z += xb[j] - xb[j];
		if (z == 0.0f) {
			copro_quantize_row_q8_0(xb, xq + b, COPRO_QK);
		} else {
			xq[b].d = 0x7e00; /* f16 quiet NaN */
			memset(xq[b].qs, 0, COPRO_QK);
		}
	}
	return 0;
}

int copro_llm_matmul_xq(uint32_t type, const void *w, size_t n, size_t k, const float *x,
			const struct copro_block_q8_0 *xq, size_t m, float *y, size_t n0,
			size_t n1)
{
	size_t wrow = copro_ggml_row_bytes(type, k);
	int isq = type == COPRO_GGML_Q8_0 || type == COPRO_GGML_Q4_0;

	if (!wrow || n0 > n1 || n1 > n)
		return -EINVAL;
	if (!m || n0 == n1)
		return 0;
	if (!w || !y || (isq ? !xq : !x))
		return -EINVAL;

	struct mm_args a = {
		.w = w, .wrow = wrow, .x = x, .xq = xq, .k = k, .nb = k / COPRO_QK,
		.y = y, .ldy = n,
	};
	const struct tiles *tl = NULL;

#if LLM_X86
	static const struct tiles *const by_isa[3][4] = {
		[COPRO_LLM_ISA_AVX2] = { &f32_avx2, &f16_avx2, &q4_avx2, &q8_avx2 },
		[COPRO_LLM_ISA_AVX512] = { &f32_512, &f16_512, &q4_512, &q8_512 },
	};
	int ti = type == COPRO_GGML_F32 ? 0 : type == COPRO_GGML_F16 ? 1
					  : type == COPRO_GGML_Q4_0 ? 2 : 3;

	tl = by_isa[copro_llm_isa()][ti];
#endif
	if (tl)
		drive(tl, &a, m, n0, n1);
	else if (isq)
		scalar_q(type, &a, m, n0, n1);
	else
		scalar_f(type, &a, m, n0, n1);
	return 0;
}

int copro_llm_matmul(uint32_t type, const void *w, size_t n, size_t k, const float *x,
		     size_t m, float *y, size_t n0, size_t n1, void *scratch)
{
	int isq = type == COPRO_GGML_Q8_0 || type == COPRO_GGML_Q4_0;
	int err;

	if (!copro_ggml_row_bytes(type, k) || n0 > n1 || n1 > n)
		return -EINVAL;
	if (!m || n0 == n1)
		return 0;
	if (!isq)
		return copro_llm_matmul_xq(type, w, n, k, x, NULL, m, y, n0, n1);
	if (!scratch)
		return -EINVAL;
	err = copro_llm_quantize_x(x, m, k, scratch);
	if (err)
		return err;
	return copro_llm_matmul_xq(type, w, n, k, x, scratch, m, y, n0, n1);
}
