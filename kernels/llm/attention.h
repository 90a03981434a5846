/* SPDX-License-Identifier: MIT */
/*
 * attention.h - paged KV storage and decode attention over it.
 *
 * The keys and values of every running sequence live in a pool of
 * fixed-size blocks of block_tokens positions (vLLM's paged attention). A
 * sequence names its blocks in a block table: position p of the sequence is
 * slot p % block_tokens of block table[p / block_tokens]. One block id
 * covers the same positions in every layer, so one table serves all layers.
 *
 * Layout (chosen for the decode loop): K and V are two arrays with the same
 * shape, block-major, then layer, then kv head, then slot:
 *
 *	k[block][layer][kv_head][slot][d]  // (n_blocks, n_layers, n_kv_heads, block_tokens, head_dim)
 *	v[block][layer][kv_head][slot][d]  // (n_blocks, n_layers, n_kv_heads, block_tokens, head_dim)
 *
 * - Attention for one kv head reads block_tokens * head_dim contiguous
 *   floats per block (the scores pass and the weighted-sum pass alike).
 * - A block is one contiguous span in K and one in V, so copy-on-write of
 *   a block (all layers) is two memcpy()s.
 * - Writing one token scatters n_kv_heads rows of head_dim floats, which
 *   happens once per token per layer and costs nothing in comparison.
 *
 * Nothing here allocates or knows about sequences' owners: the server's
 * block manager (server/kvcache.c) hands out block ids and builds the view.
 */
#ifndef COPRO_LLM_ATTENTION_H
#define COPRO_LLM_ATTENTION_H

#include <stddef.h>
#include <stdint.h>

/* The shape of one model's KV state. All fields must be non-zero. */
struct copro_kv_geom {
	uint32_t n_layers;
	uint32_t n_kv_heads;
	uint32_t head_dim;
	uint32_t block_tokens;		/* positions per block (16 by default) */
};

/* The storage seen by the kernels. Strides are in floats. */
struct copro_kv_view {
	float *k;			/* (n_blocks, n_layers, n_kv_heads, block_tokens, head_dim) */
	float *v;			/* (n_blocks, n_layers, n_kv_heads, block_tokens, head_dim) */
	uint32_t n_blocks;
	uint32_t n_layers, n_kv_heads, head_dim, block_tokens;
	size_t head_stride;		/* block_tokens * head_dim */
	size_t layer_stride;		/* n_kv_heads * head_stride */
	size_t block_stride;		/* n_layers * layer_stride: floats of K (or V) per block */
};

/*
 * Fills view for storage k and v of n_blocks blocks of geometry g. Returns
 * 0, or -EINVAL for a zero field or -EOVERFLOW when a block does not fit
 * size_t. The caller owns k and v (each n_blocks * block_stride floats).
 */
int copro_kv_view_init(struct copro_kv_view *view, const struct copro_kv_geom *g, float *k,
		       float *v, uint32_t n_blocks);

/* Floats one block takes in K (and again in V); 0 on a zero field or overflow. */
size_t copro_kv_block_floats(const struct copro_kv_geom *g);

/* Key row (head_dim floats) of (layer, block, kv_head, slot). */
static inline float *copro_kv_k_at(const struct copro_kv_view *kv, uint32_t layer,
				   uint32_t block, uint32_t kv_head, uint32_t slot)
{
	return kv->k + block * kv->block_stride + layer * kv->layer_stride +
	       kv_head * kv->head_stride + (size_t)slot * kv->head_dim;
}

/* Value row (head_dim floats) of (layer, block, kv_head, slot). */
static inline float *copro_kv_v_at(const struct copro_kv_view *kv, uint32_t layer,
				   uint32_t block, uint32_t kv_head, uint32_t slot)
{
	return kv->v + block * kv->block_stride + layer * kv->layer_stride +
	       kv_head * kv->head_stride + (size_t)slot * kv->head_dim;
}

/*
 * Stores one token's key and value, each (n_kv_heads, head_dim), at
 * position pos of the sequence whose blocks are block_table (which must
 * cover pos), in the given layer.
 */
void copro_kv_write(const struct copro_kv_view *kv, uint32_t layer, const uint32_t *block_table,
		    uint32_t pos, const float *k, const float *v);

/* Floats of scratch copro_paged_attention() needs: one score per head per position. */
static inline size_t copro_paged_attention_scratch(uint32_t n_heads, uint32_t n_ctx)
{
	return (size_t)n_heads * n_ctx;
}

/*
 * Attention of one query token over positions [0, n_ctx) of its sequence
 * (the caller has already written this token's K/V at n_ctx - 1, so the
 * mask is causal by construction). q is (n_heads, head_dim), out is
 * (n_heads, head_dim); head h reads kv head h / (n_heads / n_kv_heads)
 * (grouped-query attention). Scores are scaled by 1/sqrt(head_dim) and the
 * softmax subtracts each head's maximum, so large logits cannot overflow;
 * accumulation is in f32. scratch holds copro_paged_attention_scratch()
 * floats. Returns 0, or -EINVAL when n_ctx is 0 or n_heads is not a
 * non-zero multiple of n_kv_heads. out must not alias q.
 */
int copro_paged_attention(const struct copro_kv_view *kv, uint32_t layer,
			  const uint32_t *block_table, uint32_t n_ctx, const float *q,
			  uint32_t n_heads, float *out, float *scratch);

/*
 * The contiguous reference the tests hold the paged kernel to: same
 * contract, with k and v (n_ctx, n_kv_heads, head_dim) arrays, computed
 * in double. Returns 0, -EINVAL (as above, or on a zero head_dim) or
 * -ENOMEM (it allocates head_dim + n_ctx doubles).
 */
int copro_attention_ref(const float *q, const float *k, const float *v, uint32_t n_ctx,
			uint32_t n_heads, uint32_t n_kv_heads, uint32_t head_dim, float *out);

#endif
