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
 * Two passes per kv head, each walking the sequence's blocks in order so
 * every block is read as one contiguous (block_tokens, head_dim) tile:
 * first the scores of all the heads of the group (each key row is loaded
 * once for the group), then, after each head's max-subtracted softmax, the
 * weighted sum of the value rows.
 */
int copro_paged_attention(const struct copro_kv_view *kv, uint32_t layer,
			  const uint32_t *block_table, uint32_t n_ctx, const float *q,
			  uint32_t n_heads, float *out, float *scratch)
{
	const uint32_t hd = kv->head_dim, bt = kv->block_tokens;
	const float scale = 1.0f / sqrtf((float)hd);
	uint32_t group;

	if (!n_ctx || !n_heads || !kv->n_kv_heads || n_heads % kv->n_kv_heads)
		return -EINVAL;
	group = n_heads / kv->n_kv_heads;

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
