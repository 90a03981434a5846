// SPDX-License-Identifier: MIT
/*
 * attention.c - paged KV writes and single-query (decode) attention over the
 * block pool, plus the contiguous reference the tests compare it with.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/attention.h"
#include "llm/ops.h"

#if defined(__x86_64__) || defined(__i386__)
#define ATT_X86 1
#include <immintrin.h>

#include "llm/vexp.h"
#else
#define ATT_X86 0
#endif

size_t copro_kv_block_floats(const struct copro_kv_geom *g)
{
	size_t n;

	if (!g->n_layers || !g->n_kv_heads || !g->head_dim || !g->block_tokens)
		return 0;
	if (__builtin_mul_overflow((size_t)g->block_tokens, (size_t)g->head_dim, &n) ||
	    __builtin_mul_overflow(n, (size_t)g->n_kv_heads, &n) ||
	    __builtin_mul_overflow(n, (size_t)g->n_layers, &n))
		return 0;
	return n;
}

int copro_kv_view_init(struct copro_kv_view *view, const struct copro_kv_geom *g, float *k,
		       float *v, uint32_t n_blocks)
{
	size_t bf, total;

	if (!g->n_layers || !g->n_kv_heads || !g->head_dim || !g->block_tokens)
		return -EINVAL;
	bf = copro_kv_block_floats(g);
	if (!bf || __builtin_mul_overflow(bf, (size_t)n_blocks, &total) ||
	    __builtin_mul_overflow(total, sizeof(float), &total))
		return -EOVERFLOW;
	memset(view, 0, sizeof(*view));
	view->k = k;
	view->v = v;
	view->n_blocks = n_blocks;
	view->n_layers = g->n_layers;
	view->n_kv_heads = g->n_kv_heads;
	view->head_dim = g->head_dim;
	view->block_tokens = g->block_tokens;
	view->head_stride = (size_t)g->block_tokens * g->head_dim;
	view->layer_stride = view->head_stride * g->n_kv_heads;
	view->block_stride = bf;
	return 0;
}

void copro_kv_write(const struct copro_kv_view *kv, uint32_t layer, const uint32_t *block_table,
		    uint32_t pos, const float *k, const float *v)
{
	uint32_t block = block_table[pos / kv->block_tokens];
	uint32_t slot = pos % kv->block_tokens;
	size_t row = (size_t)kv->head_dim * sizeof(float);

	for (uint32_t h = 0; h < kv->n_kv_heads; h++) {
		memcpy(copro_kv_k_at(kv, layer, block, h, slot), k + (size_t)h * kv->head_dim, row);
		memcpy(copro_kv_v_at(kv, layer, block, h, slot), v + (size_t)h * kv->head_dim, row);
	}
}

/*
 * Returns a . b over n floats. Eight independent partial sums let the
 * compiler vectorize without -ffast-math (a single running sum would fix
 * the order of the additions and keep the loop scalar).
 */
static inline float dot(const float *restrict a, const float *restrict b, uint32_t n)
{
	float acc[8] = { 0 };
	float s = 0.0f;
	uint32_t i = 0;

	for (; i + 8 <= n; i += 8)
		for (uint32_t j = 0; j < 8; j++)
			acc[j] += a[i + j] * b[i + j];
	for (; i < n; i++)
		s += a[i] * b[i];
	return s + ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7]));
}

static inline void axpy(float *restrict y, float a, const float *restrict x, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		y[i] += a * x[i];
}

/*
 * The portable path. Two passes per kv head, each walking the sequence's
 * blocks in order so every block is read as one contiguous (block_tokens,
 * head_dim) tile: first the scores of all the heads of the group (each key
 * row is loaded once for the group), then, after each head's
 * max-subtracted softmax, the weighted sum of the value rows.
 */
static void attn_scalar(const struct copro_kv_view *kv, uint32_t layer,
			const uint32_t *block_table, uint32_t n_ctx, const float *q,
			uint32_t n_heads, float *out, float *scratch)
{
	const uint32_t hd = kv->head_dim, bt = kv->block_tokens;
	const uint32_t group = n_heads / kv->n_kv_heads;
	const float scale = 1.0f / sqrtf((float)hd);

	for (uint32_t kh = 0; kh < kv->n_kv_heads; kh++) {
		const uint32_t h0 = kh * group;

		/* scores: scratch[h * n_ctx + t] = scale * q_h . k_t */
		for (uint32_t t0 = 0; t0 < n_ctx; t0 += bt) {
			const uint32_t n = n_ctx - t0 < bt ? n_ctx - t0 : bt;
			const float *kb = copro_kv_k_at(kv, layer, block_table[t0 / bt], kh, 0);

			for (uint32_t s = 0; s < n; s++)
				for (uint32_t g = 0; g < group; g++) {
					const float *qh = q + (size_t)(h0 + g) * hd;

					scratch[(size_t)(h0 + g) * n_ctx + t0 + s] =
						scale * dot(qh, kb + (size_t)s * hd, hd);
				}
		}

		/* softmax per head, max-subtracted so exp() stays in (0, 1] */
		for (uint32_t g = 0; g < group; g++) {
			float *p = scratch + (size_t)(h0 + g) * n_ctx;
			float mx = p[0], sum = 0.0f;

			for (uint32_t t = 1; t < n_ctx; t++)
				mx = p[t] > mx ? p[t] : mx;
			for (uint32_t t = 0; t < n_ctx; t++) {
				p[t] = expf(p[t] - mx);
				sum += p[t];
			}
			/* sum >= 1: the maximum contributes exp(0) */
			for (uint32_t t = 0; t < n_ctx; t++)
				p[t] /= sum;
			memset(out + (size_t)(h0 + g) * hd, 0, hd * sizeof(float));
		}

		/* out_h = sum_t p_h[t] * v_t */
		for (uint32_t t0 = 0; t0 < n_ctx; t0 += bt) {
			const uint32_t n = n_ctx - t0 < bt ? n_ctx - t0 : bt;
			const float *vb = copro_kv_v_at(kv, layer, block_table[t0 / bt], kh, 0);

			for (uint32_t s = 0; s < n; s++)
				for (uint32_t g = 0; g < group; g++)
					axpy(out + (size_t)(h0 + g) * hd,
					     scratch[(size_t)(h0 + g) * n_ctx + t0 + s],
					     vb + (size_t)s * hd, hd);
		}
	}
}

#if ATT_X86
/*
 * The vector paths work one query head at a time with the head's query
 * and its output accumulator in registers (nc vectors each, nc = head_dim /
 * lanes, a constant after inlining): the scores of four keys at a time,
 * reduced together; a softmax with a vector exp whose 1 / sum is applied
 * to the output once; then the value rows weighted into the accumulator.
 * The group's heads re-read the kv head's blocks, from L1 or L2.
 */
#define TARGET_512	__attribute__((target("avx512f,avx512vl,avx2,fma")))
#define TARGET_AVX2	__attribute__((target("avx2,fma")))
#define INLINE		__attribute__((always_inline)) inline
#define MAX_NC		16

/* The sums of a0..a3, in lanes 0..3. */
TARGET_512 static INLINE __m128 hsum4_512(__m512 a0, __m512 a1, __m512 a2, __m512 a3)
{
	__m512 x = _mm512_add_ps(_mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(1, 0, 1, 0)),
				 _mm512_shuffle_f32x4(a0, a1, _MM_SHUFFLE(3, 2, 3, 2)));
	__m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(1, 0, 1, 0)),
				 _mm512_shuffle_f32x4(a2, a3, _MM_SHUFFLE(3, 2, 3, 2)));
	/* z: four 128-bit lanes holding four partial sums of a0, a1, a2, a3 */
	__m512 z = _mm512_add_ps(_mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(2, 0, 2, 0)),
				 _mm512_shuffle_f32x4(x, y, _MM_SHUFFLE(3, 1, 3, 1)));

	return _mm_hadd_ps(_mm_hadd_ps(_mm512_castps512_ps128(z), _mm512_extractf32x4_ps(z, 1)),
			   _mm_hadd_ps(_mm512_extractf32x4_ps(z, 2), _mm512_extractf32x4_ps(z, 3)));
}

/* Max-subtracted exp of p[0..n) in place; returns 1 / their sum. */
TARGET_512 static INLINE float softmax_512(float *p, uint32_t n)
{
	__m512 mx = _mm512_set1_ps(-INFINITY), sum = _mm512_setzero_ps();
	uint32_t t;

	for (t = 0; t + 16 <= n; t += 16)
		mx = _mm512_max_ps(mx, _mm512_loadu_ps(p + t));
	if (t < n)
		mx = _mm512_mask_max_ps(mx, (__mmask16)((1u << (n - t)) - 1), mx,
					_mm512_maskz_loadu_ps((__mmask16)((1u << (n - t)) - 1), p + t));
	mx = _mm512_set1_ps(_mm512_reduce_max_ps(mx));
	for (t = 0; t + 16 <= n; t += 16) {
		__m512 e = copro_vexp512(_mm512_sub_ps(_mm512_loadu_ps(p + t), mx));

		_mm512_storeu_ps(p + t, e);
		sum = _mm512_add_ps(sum, e);
	}
	if (t < n) {
		__mmask16 m = (__mmask16)((1u << (n - t)) - 1);
		__m512 e = copro_vexp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + t), mx));

		_mm512_mask_storeu_ps(p + t, m, e);
		sum = _mm512_mask_add_ps(sum, m, sum, e);
	}
	/* the sum is >= 1: the maximum contributes exp(0) */
	return 1.0f / _mm512_reduce_add_ps(sum);
}

TARGET_512 static INLINE void head_512(const struct copro_kv_view *kv, uint32_t layer,
				       const uint32_t *table, uint32_t n_ctx, uint32_t kh,
				       const float *qh, float *out, float *sc, const uint32_t nc)
{
	const uint32_t hd = kv->head_dim, bt = kv->block_tokens;
	const __m512 scale = _mm512_set1_ps(1.0f / sqrtf((float)hd));
	__m512 qv[MAX_NC], o[MAX_NC];
	float inv;

	/* all of them, so the compiler sees none read unset (unused ones vanish) */
#pragma GCC unroll 16
	for (uint32_t c = 0; c < MAX_NC; c++) {
		qv[c] = _mm512_setzero_ps();
		o[c] = _mm512_setzero_ps();
	}
#pragma GCC unroll 16
	for (uint32_t c = 0; c < nc; c++)
		qv[c] = _mm512_mul_ps(_mm512_loadu_ps(qh + 16 * c), scale);
	for (uint32_t t0 = 0; t0 < n_ctx; t0 += bt) {
		const uint32_t n = n_ctx - t0 < bt ? n_ctx - t0 : bt;
		const float *kb = copro_kv_k_at(kv, layer, table[t0 / bt], kh, 0);
		uint32_t s = 0;

		for (; s + 4 <= n; s += 4) {
			const float *k = kb + (size_t)s * hd;
			__m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

#pragma GCC unroll 16
			for (uint32_t c = 0; c < nc; c++) {
				a0 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + 16 * c), a0);
				a1 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + hd + 16 * c), a1);
				a2 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + 2 * hd + 16 * c), a2);
				a3 = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(k + 3 * hd + 16 * c), a3);
			}
			_mm_storeu_ps(sc + t0 + s, hsum4_512(a0, a1, a2, a3));
		}
		for (; s < n; s++) {
			__m512 a = _mm512_setzero_ps();

#pragma GCC unroll 16
			for (uint32_t c = 0; c < nc; c++)
				a = _mm512_fmadd_ps(qv[c], _mm512_loadu_ps(kb + (size_t)s * hd + 16 * c),
						    a);
			sc[t0 + s] = _mm512_reduce_add_ps(a);
		}
	}
	inv = softmax_512(sc, n_ctx);
	for (uint32_t t0 = 0; t0 < n_ctx; t0 += bt) {
		const uint32_t n = n_ctx - t0 < bt ? n_ctx - t0 : bt;
		const float *vb = copro_kv_v_at(kv, layer, table[t0 / bt], kh, 0);

		for (uint32_t s = 0; s < n; s++) {
			const __m512 p = _mm512_set1_ps(sc[t0 + s]);

#pragma GCC unroll 16
			for (uint32_t c = 0; c < nc; c++)
				o[c] = _mm512_fmadd_ps(p, _mm512_loadu_ps(vb + (size_t)s * hd + 16 * c),
						       o[c]);
		}
	}
#pragma GCC unroll 16
	for (uint32_t c = 0; c < nc; c++)
		_mm512_storeu_ps(out + 16 * c, _mm512_mul_ps(o[c], _mm512_set1_ps(inv)));
}

TARGET_512 static void attn_512(const struct copro_kv_view *kv, uint32_t layer,
				const uint32_t *table, uint32_t n_ctx, const float *q,
				uint32_t n_heads, float *out, float *scratch)
{
	const uint32_t group = n_heads / kv->n_kv_heads, nc = kv->head_dim / 16;

	for (uint32_t h = 0; h < n_heads; h++) {
		const size_t off = (size_t)h * kv->head_dim;
		float *sc = scratch + (size_t)h * n_ctx;

		switch (nc) {
		case 4:		/* head_dim 64 */
			head_512(kv, layer, table, n_ctx, h / group, q + off, out + off, sc, 4);
			break;
		case 8:		/* head_dim 128 */
			head_512(kv, layer, table, n_ctx, h / group, q + off, out + off, sc, 8);
			break;
		default:
			head_512(kv, layer, table, n_ctx, h / group, q + off, out + off, sc, nc);
			break;
		}
	}
}

/* The sums of a0..a3, in lanes 0..3. */
TARGET_AVX2 static INLINE __m128 hsum4_256(__m256 a0, __m256 a1, __m256 a2, __m256 a3)
{
	__m256 z = _mm256_hadd_ps(_mm256_hadd_ps(a0, a1), _mm256_hadd_ps(a2, a3));

	return _mm_add_ps(_mm256_castps256_ps128(z), _mm256_extractf128_ps(z, 1));
}

TARGET_AVX2 static INLINE float hsum_256(__m256 a)
{
	__m128 x = _mm_add_ps(_mm256_castps256_ps128(a), _mm256_extractf128_ps(a, 1));

	x = _mm_add_ps(x, _mm_movehl_ps(x, x));
	x = _mm_add_ss(x, _mm_movehdup_ps(x));
	return _mm_cvtss_f32(x);
}

TARGET_AVX2 static INLINE float softmax_256(float *p, uint32_t n)
{
	__m256 mx = _mm256_set1_ps(-INFINITY), sum = _mm256_setzero_ps();
	float m, tail = 0.0f;
	uint32_t t;

	for (t = 0; t + 8 <= n; t += 8)
		mx = _mm256_max_ps(mx, _mm256_loadu_ps(p + t));
	{
		__m128 x = _mm_max_ps(_mm256_castps256_ps128(mx), _mm256_extractf128_ps(mx, 1));

		x = _mm_max_ps(x, _mm_movehl_ps(x, x));
		x = _mm_max_ss(x, _mm_movehdup_ps(x));
		m = _mm_cvtss_f32(x);
	}
	for (uint32_t i = t; i < n; i++)
		m = p[i] > m ? p[i] : m;
	mx = _mm256_set1_ps(m);
	for (t = 0; t + 8 <= n; t += 8) {
		__m256 e = copro_vexp256(_mm256_sub_ps(_mm256_loadu_ps(p + t), mx));

		_mm256_storeu_ps(p + t, e);
		sum = _mm256_add_ps(sum, e);
	}
	if (t < n) {
		float buf[8] = { 0 };
		__m256 e;

		memcpy(buf, p + t, (n - t) * sizeof(float));
		e = copro_vexp256(_mm256_sub_ps(_mm256_loadu_ps(buf), mx));
		_mm256_storeu_ps(buf, e);
		memcpy(p + t, buf, (n - t) * sizeof(float));
		for (uint32_t i = 0; i < n - t; i++)
			tail += buf[i];
	}
	return 1.0f / (hsum_256(sum) + tail);
}

TARGET_AVX2 static INLINE void head_256(const struct copro_kv_view *kv, uint32_t layer,
					const uint32_t *table, uint32_t n_ctx, uint32_t kh,
					const float *qh, float *out, float *sc, const uint32_t nc)
{
	const uint32_t hd = kv->head_dim, bt = kv->block_tokens;
	const __m256 scale = _mm256_set1_ps(1.0f / sqrtf((float)hd));
	__m256 qv[MAX_NC], o[MAX_NC];
	float inv;

	/* all of them, so the compiler sees none read unset (unused ones vanish) */
#pragma GCC unroll 16
	for (uint32_t c = 0; c < MAX_NC; c++) {
		qv[c] = _mm256_setzero_ps();
		o[c] = _mm256_setzero_ps();
	}
#pragma GCC unroll 16
	for (uint32_t c = 0; c < nc; c++)
		qv[c] = _mm256_mul_ps(_mm256_loadu_ps(qh + 8 * c), scale);
	for (uint32_t t0 = 0; t0 < n_ctx; t0 += bt) {
		const uint32_t n = n_ctx - t0 < bt ? n_ctx - t0 : bt;
		const float *kb = copro_kv_k_at(kv, layer, table[t0 / bt], kh, 0);
		uint32_t s = 0;

		for (; s + 4 <= n; s += 4) {
			const float *k = kb + (size_t)s * hd;
			__m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;

#pragma GCC unroll 16
			for (uint32_t c = 0; c < nc; c++) {
				a0 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k + 8 * c), a0);
				a1 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k + hd + 8 * c), a1);
				a2 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k + 2 * hd + 8 * c), a2);
				a3 = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(k + 3 * hd + 8 * c), a3);
			}
			_mm_storeu_ps(sc + t0 + s, hsum4_256(a0, a1, a2, a3));
		}
		for (; s < n; s++) {
			__m256 a = _mm256_setzero_ps();

#pragma GCC unroll 16
			for (uint32_t c = 0; c < nc; c++)
				a = _mm256_fmadd_ps(qv[c], _mm256_loadu_ps(kb + (size_t)s * hd + 8 * c),
						    a);
			sc[t0 + s] = hsum_256(a);
		}
	}
	inv = softmax_256(sc, n_ctx);
	for (uint32_t t0 = 0; t0 < n_ctx; t0 += bt) {
		const uint32_t n = n_ctx - t0 < bt ? n_ctx - t0 : bt;
		const float *vb = copro_kv_v_at(kv, layer, table[t0 / bt], kh, 0);

		for (uint32_t s = 0; s < n; s++) {
			const __m256 p = _mm256_set1_ps(sc[t0 + s]);

#pragma GCC unroll 16
			for (uint32_t c = 0; c < nc; c++)
				o[c] = _mm256_fmadd_ps(p, _mm256_loadu_ps(vb + (size_t)s * hd + 8 * c),
						       o[c]);
		}
	}
#pragma GCC unroll 16
	for (uint32_t c = 0; c < nc; c++)
		_mm256_storeu_ps(out + 8 * c, _mm256_mul_ps(o[c], _mm256_set1_ps(inv)));
}

TARGET_AVX2 static void attn_256(const struct copro_kv_view *kv, uint32_t layer,
				 const uint32_t *table, uint32_t n_ctx, const float *q,
				 uint32_t n_heads, float *out, float *scratch)
{
	const uint32_t group = n_heads / kv->n_kv_heads, nc = kv->head_dim / 8;

	for (uint32_t h = 0; h < n_heads; h++) {
		const size_t off = (size_t)h * kv->head_dim;
		float *sc = scratch + (size_t)h * n_ctx;

		switch (nc) {
		case 8:		/* head_dim 64 */
			head_256(kv, layer, table, n_ctx, h / group, q + off, out + off, sc, 8);
			break;
		default:
			head_256(kv, layer, table, n_ctx, h / group, q + off, out + off, sc, nc);
			break;
		}
	}
}
#endif /* ATT_X86 */

int copro_paged_attention(const struct copro_kv_view *kv, uint32_t layer,
			  const uint32_t *block_table, uint32_t n_ctx, const float *q,
			  uint32_t n_heads, float *out, float *scratch)
{
	const uint32_t hd = kv->head_dim;
	int isa;

	if (!n_ctx || !n_heads || !kv->n_kv_heads || n_heads % kv->n_kv_heads)
		return -EINVAL;
	isa = copro_llm_isa();
#if ATT_X86
	if (isa == COPRO_LLM_ISA_AVX512 && hd % 16 == 0 && hd <= 16 * MAX_NC) {
		attn_512(kv, layer, block_table, n_ctx, q, n_heads, out, scratch);
		return 0;
	}
	if (isa >= COPRO_LLM_ISA_AVX2 && hd % 8 == 0 && hd <= 8 * MAX_NC) {
		attn_256(kv, layer, block_table, n_ctx, q, n_heads, out, scratch);
		return 0;
	}
#endif
	(void)isa;
	(void)hd;
	attn_scalar(kv, layer, block_table, n_ctx, q, n_heads, out, scratch);
	return 0;
}

int copro_attention_ref(const float *q, const float *k, const float *v, uint32_t n_ctx,
			uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim, float *out)
{
	const double scale = 1.0 / sqrt((double)head_dim);
	const size_t row = (size_t)n_kv_heads * head_dim;
	double *acc;

	if (!n_ctx || !head_dim || !n_heads || !n_kv_heads || n_heads % n_kv_heads)
		return -EINVAL;
	acc = malloc(((size_t)head_dim + n_ctx) * sizeof(*acc));
	if (!acc)
		return -ENOMEM;
	for (uint32_t h = 0; h < n_heads; h++) {
		const uint32_t kh = h / (n_heads / n_kv_heads);
		const float *qh = q + (size_t)h * head_dim;
		double *p = acc + head_dim;	/* (n_ctx) */
		double mx = -INFINITY, sum = 0.0;

		for (uint32_t t = 0; t < n_ctx; t++) {
			const float *kt = k + t * row + (size_t)kh * head_dim;
			double s = 0.0;

			for (uint32_t d = 0; d < head_dim; d++)
				s += (double)qh[d] * kt[d];
			p[t] = s * scale;
			mx = p[t] > mx ? p[t] : mx;
		}
		for (uint32_t t = 0; t < n_ctx; t++) {
			p[t] = exp(p[t] - mx);
			sum += p[t];
		}
		for (uint32_t d = 0; d < head_dim; d++)
			acc[d] = 0.0;
		for (uint32_t t = 0; t < n_ctx; t++) {
			const float *vt = v + t * row + (size_t)kh * head_dim;

			for (uint32_t d = 0; d < head_dim; d++)
				acc[d] += p[t] / sum * vt[d];
		}
		for (uint32_t d = 0; d < head_dim; d++)
			out[(size_t)h * head_dim + d] = (float)acc[d];
	}
	free(acc);
	return 0;
}
