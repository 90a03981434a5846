// SPDX-License-Identifier: MIT
/*
 * The packed Q8_0 / Q4_0 matmul: weights interleaved 16 rows to a group at
 * load (copro_llm_pack), activations quantized per token with their scale
 * in f32 and a bias constant (copro_llm_quantize_xs). The layout and the
 * arithmetic every path follows are described in kernels/llm/ops.h.
 *
 * Loop order: for each group of 16 rows, tokens T at a time (8 on AVX-512),
 * all blocks of the row group per token tile. A group's weights (16 rows x
 * k, 12 KiB for k = 768 in Q8_0) stay in L1 while the tokens pass over
 * them, so W is read from memory once per call. The outputs of a tile are
 * 16 float lanes, one per row: no horizontal sums. While a group computes,
 * its blocks prefetch the next group's lines: left to the hardware
 * prefetcher, the weight stream and the arithmetic took turns (a forward
 * step of 16 tokens of a 100M-parameter Q8_0 model: 17 ms without, 11 ms
 * with, on one Zen 4 core).
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "llm/ops.h"

#if defined(__x86_64__) || defined(__i386__)
#define LLM_X86 1
#include <immintrin.h>
#else
#define LLM_X86 0
#endif

#define ALWAYS_INLINE inline __attribute__((always_inline))
#define R COPRO_LLM_PACK_R
#define HUGE_BYTES ((size_t)2 << 20)

/* ---- packing ----------------------------------------------------------------- */

static size_t n_groups(size_t n)
{
	return (n + R - 1) / R;
}

size_t copro_llm_pack_bytes(const struct copro_llm_packed *p)
{
	return p ? n_groups(p->n) * p->gbytes : 0;
}

int copro_llm_pack(uint32_t type, const void *w, size_t n, size_t k,
		   struct copro_llm_packed **out)
{
	const int q4 = type == COPRO_GGML_Q4_0;
	struct copro_llm_packed *p;
	size_t rb = copro_ggml_row_bytes(type, k), bytes;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if ((type != COPRO_GGML_Q8_0 && !q4) || !rb || !n || !w || k / COPRO_QK > UINT32_MAX ||
	    n > UINT32_MAX)
		return -EINVAL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->type = type;
	p->n = (uint32_t)n;
	p->k = (uint32_t)k;
	p->nb = (uint32_t)(k / COPRO_QK);
	p->qbytes = q4 ? R * COPRO_QK / 2 : R * COPRO_QK;
	/* Groups start on a cache line, so every 64-byte chunk is one line. */
	p->gbytes = (p->nb * (p->qbytes + R * sizeof(uint16_t)) + 63) & ~(size_t)63;
	bytes = n_groups(n) * p->gbytes;
	/* Large copies on 2 MiB boundaries, with advice to back them with huge
	 * pages: packing a 100 MB model otherwise spends most of its time in
	 * 4 KiB page faults, and the matmul in TLB misses. */
	if (bytes >= HUGE_BYTES) {
		bytes = (bytes + HUGE_BYTES - 1) & ~(HUGE_BYTES - 1);
		p->data = aligned_alloc(HUGE_BYTES, bytes);
		if (p->data)
			madvise(p->data, bytes, MADV_HUGEPAGE);	/* advice: failure is harmless */
	} else {
		p->data = aligned_alloc(64, bytes);
	}
	if (!p->data) {
		free(p);
		return -ENOMEM;
	}
	for (size_t g = 0; g < n_groups(n); g++) {
		uint8_t *gq = p->data + g * p->gbytes;
		uint16_t *gd = (uint16_t *)(gq + p->nb * p->qbytes);

		for (size_t r = 0; r < R; r++) {
			size_t row = g * R + r;
			const uint8_t *src = (const uint8_t *)w + row * rb;

			for (size_t b = 0; b < p->nb; b++) {
				uint8_t *dq = gq + b * p->qbytes + r * 4;

				if (row >= n) {
					/* Padding: zero weights (Q8_0 0 + 128, Q4_0
					 * nibbles 8) and zero scales. */
					for (size_t j = 0; j < p->qbytes / 64; j++)
						memset(dq + j * 64, q4 ? 0x88 : 0x80, 4);
					gd[b * R + r] = 0;
				} else if (q4) {
					const struct copro_block_q4_0 *s =
						(const struct copro_block_q4_0 *)src + b;

					for (size_t j = 0; j < 4; j++)
						memcpy(dq + j * 64, s->qs + 4 * j, 4);
					gd[b * R + r] = s->d;
				} else {
					const struct copro_block_q8_0 *s =
						(const struct copro_block_q8_0 *)src + b;

					for (size_t j = 0; j < 8; j++) {
						uint32_t v;

						memcpy(&v, s->qs + 4 * j, 4);
						v ^= 0x80808080u;
						memcpy(dq + j * 64, &v, 4);
					}
					gd[b * R + r] = s->d;
				}
			}
		}
	}
	*out = p;
	return 0;
}

void copro_llm_pack_free(struct copro_llm_packed *p)
{
	if (!p)
		return;
	free(p->data);
	free(p);
}

#if LLM_X86
/*
 * One block of copro_llm_quantize_xs with AVX-512, bit for bit the scalar
 * reference: the same NaN/Inf test, the same maximum, the same scalar scale
 * and reciprocal, the same products, and roundf's rounding (half away from
 * zero) rebuilt from trunc: |frac| >= 0.5 steps away from zero.
 */
__attribute__((target("avx512f,avx512bw,avx512vl")))
static void quantize_block_xs_avx512(const float *xb, struct copro_block_q8_x *out)
{
	__m512 v0 = _mm512_loadu_ps(xb), v1 = _mm512_loadu_ps(xb + 16);
	__mmask16 bad = _mm512_cmp_ps_mask(_mm512_sub_ps(v0, v0), _mm512_setzero_ps(), _CMP_NEQ_UQ) |
			_mm512_cmp_ps_mask(_mm512_sub_ps(v1, v1), _mm512_setzero_ps(), _CMP_NEQ_UQ);
	const __m512 half = _mm512_set1_ps(0.5f), one = _mm512_set1_ps(1.0f);
	float amax, d, id;
	__m512 p[2], v[2] = { v0, v1 };
	__m512i q[2];
	int32_t sum;

	if (bad) {
		/* NaN or Inf: a NaN scale and zero quants, as the scalar path does. */
		out->d = copro_f16_to_f32(0x7e00);
		out->c = 0;
		memset(out->qs, 0, COPRO_QK);
		return;
	}
	amax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
	d = amax / 127.0f;
	id = d != 0.0f ? 1.0f / d : 0.0f;
	for (int h = 0; h < 2; h++) {
		__m512 t, frac, away;
		__mmask16 up;

		p[h] = _mm512_mul_ps(v[h], _mm512_set1_ps(id));
		t = _mm512_roundscale_ps(p[h], _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
		frac = _mm512_sub_ps(p[h], t);
		up = _mm512_cmp_ps_mask(_mm512_abs_ps(frac), half, _CMP_GE_OQ);
		/* copysign(1, p): 1 with p's sign bit */
		away = _mm512_castsi512_ps(_mm512_or_si512(
			_mm512_castps_si512(one),
			_mm512_and_si512(_mm512_castps_si512(p[h]), _mm512_set1_epi32(INT32_MIN))));
		t = _mm512_mask_add_ps(t, up, t, away);
		q[h] = _mm512_cvttps_epi32(t);
	}
	sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q[0], q[1]));
	_mm_storeu_si128((__m128i *)out->qs, _mm512_cvtepi32_epi8(q[0]));
	_mm_storeu_si128((__m128i *)(out->qs + 16), _mm512_cvtepi32_epi8(q[1]));
	out->d = copro_f16_to_f32(copro_f32_to_f16(d));
	out->c = -128 * sum;
}
#endif

int copro_llm_quantize_xs(const float *x, size_t m, size_t k, struct copro_block_q8_x *xs)
{
	size_t nb = k / COPRO_QK;

	if (!k || k % COPRO_QK || (m && (!x || !xs)))
		return -EINVAL;
#if LLM_X86
	if (copro_llm_isa() == COPRO_LLM_ISA_AVX512) {
		for (size_t b = 0; b < m * nb; b++)
			quantize_block_xs_avx512(x + b * COPRO_QK, &xs[b]);
		return 0;
	}
#endif
	for (size_t b = 0; b < m * nb; b++) {
		struct copro_block_q8_0 q;
		int32_t sum = 0;

		copro_llm_quantize_x(x + b * COPRO_QK, 1, COPRO_QK, &q);
		for (int j = 0; j < COPRO_QK; j++)
			sum += q.qs[j];
		xs[b].d = copro_f16_to_f32(q.d);
		xs[b].c = -128 * sum;
		memcpy(xs[b].qs, q.qs, COPRO_QK);
	}
	return 0;
}

/* ---- scalar path: the reference arithmetic ---------------------------------------- */

/* Scale of lane r of block b, f32: d, or d / 16 for Q4_0 (exact, a power of two). */
static ALWAYS_INLINE float lane_scale(const struct copro_llm_packed *p, const uint16_t *gd,
				      size_t b, size_t r)
{
	float d = copro_f16_to_f32(gd[b * R + r]);

	return p->type == COPRO_GGML_Q4_0 ? d * 0.0625f : d;
}

/* Unsigned weight i (0..31) of lane r in the block's quants q: w + 128, or 16 q. */
static ALWAYS_INLINE int32_t lane_u(const struct copro_llm_packed *p, const uint8_t *q, size_t r,
				    int i)
{
	if (p->type == COPRO_GGML_Q8_0)
		return q[(i / 4) * 64 + r * 4 + i % 4];

	uint8_t v = q[((i % 16) / 4) * 64 + r * 4 + i % 4];

	return 16 * (i < 16 ? v & 0x0f : v >> 4);
}

static void scalar_packed(const struct copro_llm_packed *p, const struct copro_block_q8_x *xs,
			  size_t m, float *y, size_t n0, size_t n1)
{
	for (size_t g = n0 / R; g * R < n1; g++) {
		const uint8_t *gq = p->data + g * p->gbytes;
		const uint16_t *gd = (const uint16_t *)(gq + p->nb * p->qbytes);

		for (size_t t = 0; t < m; t++) {
			for (size_t r = 0; r < R; r++) {
				size_t j = g * R + r;
				float acc = 0.0f;

				if (j < n0 || j >= n1)
					continue;
				for (size_t b = 0; b < p->nb; b++) {
					const struct copro_block_q8_x *xb = xs + t * p->nb + b;
					const uint8_t *q = gq + b * p->qbytes;
					int32_t s = xb->c;

					for (int i = 0; i < COPRO_QK; i++)
						s += lane_u(p, q, r, i) * xb->qs[i];
					acc = fmaf((float)s, lane_scale(p, gd, b, r) * xb->d, acc);
				}
				y[t * p->n + j] = acc;
			}
		}
	}
}

#if LLM_X86
/* ---- AVX-512 path ---------------------------------------------------------------- */

#define TARGET_512 __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define TARGET_AVX2 __attribute__((target("avx2,fma,f16c")))

/*
 * Block b's share of the next group's lines at pf (none when pf is NULL):
 * lines [b x step, (b + 1) x step) of lines, step = ceil(lines / blocks),
 * so the whole next group is requested while this one computes.
 */
static ALWAYS_INLINE void prefetch_share(const uint8_t *pf, size_t lines, size_t step, size_t b)
{
	for (size_t l = b * step; pf && l < (b + 1) * step && l < lines; l++)
		_mm_prefetch((const char *)pf + l * 64, _MM_HINT_T0);
}

static ALWAYS_INLINE int32_t x4(const int8_t *q)
{
	int32_t v;

	memcpy(&v, q, 4);
	return v;
}

/*
 * Group g by tokens [t0, t0 + T): 8 weight vectors of the block (unpacked
 * from 4 for Q4_0) and its 16 scales are loaded once for the T tokens.
 * Per token and block: the accumulator starts at c, 8 vpdpbusd with the
 * token's 4-byte groups broadcast, one convert, dw * dx, one FMA.
 */
static ALWAYS_INLINE TARGET_512 void tile_512(const struct copro_llm_packed *p, const int q4,
					      const struct copro_block_q8_x *xs, float *y,
					      size_t g, __mmask16 mask, size_t t0, const int T,
					      const uint8_t *pf, size_t pf_lines)
{
	const uint8_t *gq = p->data + g * p->gbytes;
	const size_t pf_step = (pf_lines + p->nb - 1) / p->nb;
	const uint16_t *gd = (const uint16_t *)(gq + p->nb * p->qbytes);
	const struct copro_block_q8_x *xr[8];
	__m512 acc[8];

#pragma GCC unroll 8
	for (int t = 0; t < T; t++) {
		acc[t] = _mm512_setzero_ps();
		xr[t] = xs + (t0 + t) * p->nb;
	}
	for (size_t b = 0; b < p->nb; b++) {
		const uint8_t *q = gq + b * p->qbytes;
		__m512i w[8];
		__m512 dw = _mm512_cvtph_ps(_mm256_load_si256((const __m256i *)(gd + b * R)));

		prefetch_share(pf, pf_lines, pf_step, b);
		if (q4) {
			const __m512i hi = _mm512_set1_epi8((char)0xf0);

#pragma GCC unroll 4
			for (int j = 0; j < 4; j++) {
				__m512i v = _mm512_loadu_si512(q + j * 64);

				w[j] = _mm512_and_si512(_mm512_slli_epi16(v, 4), hi);
				w[j + 4] = _mm512_and_si512(v, hi);
			}
			dw = _mm512_mul_ps(dw, _mm512_set1_ps(0.0625f));
		} else {
#pragma GCC unroll 8
			for (int j = 0; j < 8; j++)
				w[j] = _mm512_loadu_si512(q + j * 64);
		}
#pragma GCC unroll 8
		for (int t = 0; t < T; t++) {
			const struct copro_block_q8_x *xb = xr[t] + b;
			__m512i s = _mm512_set1_epi32(xb->c);

#pragma GCC unroll 8
			for (int j = 0; j < 8; j++)
				s = _mm512_dpbusd_epi32(s, w[j], _mm512_set1_epi32(x4(xb->qs + 4 * j)));
			acc[t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s),
						 _mm512_mul_ps(dw, _mm512_set1_ps(xb->d)), acc[t]);
		}
	}
#pragma GCC unroll 8
	for (int t = 0; t < T; t++)
		_mm512_mask_storeu_ps(y + (t0 + t) * p->n + g * R, mask, acc[t]);
}

#define TILES_512(name, q4)                                                                      \
	static TARGET_512 void name(const struct copro_llm_packed *p,                           \
				    const struct copro_block_q8_x *xs, size_t m, float *y,      \
				    size_t g, __mmask16 mask, const uint8_t *pf)                 \
	{                                                                                        \
		const size_t lines = pf ? p->gbytes / 64 : 0;                                    \
		size_t t = 0;                                                                    \
		for (; t + 8 <= m; t += 8, pf = NULL)                                            \
			tile_512(p, q4, xs, y, g, mask, t, 8, pf, lines);                        \
		if (t + 4 <= m) {                                                                \
			tile_512(p, q4, xs, y, g, mask, t, 4, pf, lines);                        \
			t += 4;                                                                  \
			pf = NULL;                                                               \
		}                                                                                \
		if (t + 2 <= m) {                                                                \
			tile_512(p, q4, xs, y, g, mask, t, 2, pf, lines);                        \
			t += 2;                                                                  \
			pf = NULL;                                                               \
		}                                                                                \
		if (t < m)                                                                       \
			tile_512(p, q4, xs, y, g, mask, t, 1, pf, lines);                        \
	}

TILES_512(q8_group_512, 0)
TILES_512(q4_group_512, 1)

/* ---- AVX2 path ---------------------------------------------------------------------- */

/*
 * The same integer sums in two halves of 8 rows (ymm). AVX2 has no
 * vpdpbusd and maddubs saturates int16 on (w + 128) x, so the block sum is
 * taken with signed weights instead: Q8_0 with the |w| times sign(x, w)
 * trick (pairs reach 2 * 128 * 127 < 2^15) and c unused, Q4_0 with the
 * nibbles q (pairs reach 2 * 15 * 127) then 16 S + c. Either way S is the
 * integer the other paths get, and the float steps that follow are theirs.
 */
static ALWAYS_INLINE TARGET_AVX2 void tile_avx2(const struct copro_llm_packed *p, const int q4,
						const struct copro_block_q8_x *xs, float *y,
						size_t g, int h, size_t n0, size_t n1, size_t t0,
						const int T, const uint8_t *pf, size_t pf_lines)
{
	const uint8_t *gq = p->data + g * p->gbytes;
	const size_t pf_step = (pf_lines + p->nb - 1) / p->nb;
	const uint16_t *gd = (const uint16_t *)(gq + p->nb * p->qbytes);
	const struct copro_block_q8_x *xr[4];
	const __m256i ones = _mm256_set1_epi16(1);
	__m256 acc[4];

#pragma GCC unroll 4
	for (int t = 0; t < T; t++) {
		acc[t] = _mm256_setzero_ps();
		xr[t] = xs + (t0 + t) * p->nb;
	}
	for (size_t b = 0; b < p->nb; b++) {
		const uint8_t *q = gq + b * p->qbytes + h * 32;
		__m256i w[8];
		__m256 dw = _mm256_cvtph_ps(_mm_load_si128((const __m128i *)(gd + b * R + h * 8)));

		prefetch_share(pf, pf_lines, pf_step, b);
		if (q4) {
			const __m256i lo = _mm256_set1_epi8(0x0f);

#pragma GCC unroll 4
			for (int j = 0; j < 4; j++) {
				__m256i v = _mm256_load_si256((const __m256i *)(q + j * 64));

				w[j] = _mm256_and_si256(v, lo);
				w[j + 4] = _mm256_and_si256(_mm256_srli_epi16(v, 4), lo);
			}
			dw = _mm256_mul_ps(dw, _mm256_set1_ps(0.0625f));
		} else {
			const __m256i bias = _mm256_set1_epi8((char)0x80);

#pragma GCC unroll 8
			for (int j = 0; j < 8; j++)
				w[j] = _mm256_xor_si256(
					_mm256_load_si256((const __m256i *)(q + j * 64)), bias);
		}
#pragma GCC unroll 4
		for (int t = 0; t < T; t++) {
			const struct copro_block_q8_x *xb = xr[t] + b;
			__m256i s = _mm256_setzero_si256();

#pragma GCC unroll 8
			for (int j = 0; j < 8; j++) {
				__m256i xv = _mm256_set1_epi32(x4(xb->qs + 4 * j));
				__m256i pr;

				if (q4)
					pr = _mm256_maddubs_epi16(w[j], xv);
				else
					pr = _mm256_maddubs_epi16(_mm256_abs_epi8(w[j]),
								  _mm256_sign_epi8(xv, w[j]));
				s = _mm256_add_epi32(s, _mm256_madd_epi16(pr, ones));
			}
			if (q4)
				s = _mm256_add_epi32(_mm256_slli_epi32(s, 4),
						     _mm256_set1_epi32(xb->c));
			acc[t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(s),
						 _mm256_mul_ps(dw, _mm256_set1_ps(xb->d)), acc[t]);
		}
	}
	size_t j0 = g * R + h * 8;

#pragma GCC unroll 4
	for (int t = 0; t < T; t++) {
		float out[8];
		float *yr = y + (t0 + t) * p->n;

		if (j0 >= n0 && j0 + 8 <= n1) {
			_mm256_storeu_ps(yr + j0, acc[t]);
			continue;
		}
		_mm256_storeu_ps(out, acc[t]);
		for (size_t r = 0; r < 8; r++)
			if (j0 + r >= n0 && j0 + r < n1)
				yr[j0 + r] = out[r];
	}
}

#define TILES_AVX2(name, q4)                                                                     \
	static TARGET_AVX2 void name(const struct copro_llm_packed *p,                          \
				     const struct copro_block_q8_x *xs, size_t m, float *y,     \
				     size_t g, size_t n0, size_t n1, const uint8_t *pf)          \
	{                                                                                        \
		const size_t lines = pf ? p->gbytes / 64 : 0;                                    \
		for (int h = 0; h < 2; h++) {                                                    \
			size_t t = 0;                                                            \
			if (g * R + h * 8 >= n1 || g * R + h * 8 + 8 <= n0)                      \
				continue;                                                        \
			for (; t + 2 <= m; t += 2, pf = NULL)                                    \
				tile_avx2(p, q4, xs, y, g, h, n0, n1, t, 2, pf, lines);          \
			if (t < m)                                                               \
				tile_avx2(p, q4, xs, y, g, h, n0, n1, t, 1, pf, lines);          \
			pf = NULL;                                                               \
		}                                                                                \
	}

TILES_AVX2(q8_group_avx2, 0)
TILES_AVX2(q4_group_avx2, 1)
#endif /* LLM_X86 */

/* ---- entry point -------------------------------------------------------------------- */

int copro_llm_matmul_packed(const struct copro_llm_packed *p, const struct copro_block_q8_x *xs,
			    size_t m, float *y, size_t n0, size_t n1)
{
	if (!p || n0 > n1 || n1 > p->n)
		return -EINVAL;
	if (!m || n0 == n1)
		return 0;
	if (!xs || !y)
		return -EINVAL;
#if LLM_X86
	int q4 = p->type == COPRO_GGML_Q4_0;

	switch (copro_llm_isa()) {
	case COPRO_LLM_ISA_AVX512:
		for (size_t g = n0 / R; g * R < n1; g++) {
			size_t lo = g * R < n0 ? n0 - g * R : 0;
			size_t hi = n1 - g * R < R ? n1 - g * R : R;
			__mmask16 mask = (__mmask16)(((1u << hi) - 1) & ~((1u << lo) - 1));
			const uint8_t *pf = (g + 1) * R < n1 ? p->data + (g + 1) * p->gbytes : NULL;

			if (q4)
				q4_group_512(p, xs, m, y, g, mask, pf);
			else
				q8_group_512(p, xs, m, y, g, mask, pf);
		}
		return 0;
	case COPRO_LLM_ISA_AVX2:
		for (size_t g = n0 / R; g * R < n1; g++) {
			const uint8_t *pf = (g + 1) * R < n1 ? p->data + (g + 1) * p->gbytes : NULL;

			if (q4)
				q4_group_avx2(p, xs, m, y, g, n0, n1, pf);
			else
				q8_group_avx2(p, xs, m, y, g, n0, n1, pf);
		}
		return 0;
	}
#endif
	scalar_packed(p, xs, m, y, n0, n1);
	return 0;
}
