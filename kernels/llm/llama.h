/* SPDX-License-Identifier: MIT */
/*
 * llama.h - the Llama-family transformer: a GGUF file's weights in place
 * (mmap), its hyper-parameters and tokenizer, and a batched forward pass
 * whose attention reads the paged KV cache through block tables.
 *
 * One forward step takes any set of tokens from any sequences (prompt
 * chunks and decode tokens alike): every weight matrix is applied to all of
 * them as one matmul, which is what batching buys. Each token attends to
 * the positions [0, pos] of its own sequence, through its block table.
 */
#ifndef COPRO_LLM_LLAMA_H
#define COPRO_LLM_LLAMA_H

#include <stddef.h>
#include <stdint.h>

#include "llm/attention.h"

struct copro_gguf;
struct copro_tok;

struct copro_llama_hparams {
	uint32_t dim;			/* embedding length */
	uint32_t n_layers;
	uint32_t n_heads, n_kv_heads;
	uint32_t head_dim;		/* dim / n_heads */
	uint32_t kv_dim;		/* n_kv_heads * head_dim */
	uint32_t hidden;		/* feed-forward length */
	uint32_t vocab;
	uint32_t ctx;			/* llama.context_length (advisory, see llama.c) */
	uint32_t rot_dim;		/* rope dimension count */
	float rope_base;
	float eps;			/* RMSNorm epsilon */
};

struct copro_llm_packed;

/* A weight matrix as GGUF stores it: n rows of k elements of type. For
 * Q8_0/Q4_0, pk is the row-interleaved copy the matmul reads instead
 * (kernels/llm/ops.h), made at load; NULL otherwise. */
struct copro_llama_w {
	const void *data;
	uint32_t type;			/* COPRO_GGML_* */
	uint32_t n, k;
	struct copro_llm_packed *pk;	/* owned by the model; NULL: not packed */
};

struct copro_llama_layer {
	const float *attn_norm;		/* (dim) */
	struct copro_llama_w wq;	/* (dim, dim) */
	struct copro_llama_w wk;	/* (kv_dim, dim) */
	struct copro_llama_w wv;	/* (kv_dim, dim) */
	struct copro_llama_w wo;	/* (dim, dim) */
	const float *ffn_norm;		/* (dim) */
	struct copro_llama_w w_gate;	/* (hidden, dim) */
	struct copro_llama_w w_up;	/* (hidden, dim) */
	struct copro_llama_w w_down;	/* (dim, hidden) */
};

struct copro_llama {
	struct copro_gguf *g;
	struct copro_llama_hparams hp;
	struct copro_llama_w tok_embd;	/* (vocab, dim) */
	const float *out_norm;		/* (dim) */
	struct copro_llama_w output;	/* (vocab, dim); the embedding when tied */
	struct copro_llama_layer *layers; /* [n_layers] */
	struct copro_tok *tok;
	uint64_t n_params;
	uint64_t weight_bytes;
	uint64_t packed_bytes;		/* heap taken by the packed copies */
};

/*
 * Opens a GGUF file and checks that it is a Llama model copro can run:
 * architecture, every tensor present with the shape the hyper-parameters
 * imply, types F32/F16/Q8_0/Q4_0 (norms F32), and a tokenizer. Returns 0
 * or a negative code with a one-line reason in err.
 *
 * Every Q8_0/Q4_0 matrix the forward pass multiplies by (the output too,
 * when quantized) is repacked for the batched kernel (copro_llm_pack: as
 * many bytes again, on the heap) and the file pages it came from are
 * dropped from the mapping (they are read again only if something asks
 * for data, which stays valid). COPRO_LLM_PACK=0 in the environment skips
 * the packing: the matmul then reads the file's rows as before.
 */
int copro_llama_load(const char *path, struct copro_llama **out, char *err, size_t errlen);
void copro_llama_free(struct copro_llama *m);
/*
 * Frees the packed copies of the quantized matrices (a model whose forward
 * pass runs elsewhere, on a GPU, does not need them); the CPU forward pass
 * still works, through the file's own rows.
 */
void copro_llama_drop_packed(struct copro_llama *m);

/* The geometry of a KV cache for m with block_tokens positions per block. */
void copro_llama_kv_geom(const struct copro_llama *m, uint32_t block_tokens,
			 struct copro_kv_geom *g);

/*
 * One forward step over n tokens. Token i is tokens[i] at position pos[i]
 * of the sequence whose block table is tables[i] (its blocks must already
 * cover pos[i]); the K/V of that position are written, then the token
 * attends to [0, pos[i]]. Tokens of one sequence in one step must come in
 * position order. For the tokens with want[i] != 0, in order, the logits
 * are written to logits (n_want, vocab).
 */
struct copro_llama_batch {
	uint32_t n;
	const int32_t *tokens;		/* (n) */
	const uint32_t *pos;		/* (n) */
	const uint32_t *const *tables;	/* (n) block tables */
	const uint8_t *want;		/* (n) 1: logits for this token */
};

/* Work buffers for steps of up to max_tokens tokens and contexts of up to max_ctx. */
struct copro_llama_ctx;

int copro_llama_ctx_new(const struct copro_llama *m, uint32_t max_tokens, uint32_t max_ctx,
			struct copro_llama_ctx **out);
void copro_llama_ctx_free(struct copro_llama_ctx *c);
/*
 * Runs the steps of c on n threads (the caller's and n - 1 helpers, 1 to
 * 16): each matmul's output columns and the step's attention are split
 * between them. Every output is computed as it is on one thread, so the
 * logits do not depend on n. Call once, before the first step. Returns 0,
 * -EINVAL or the error of a helper that did not start.
 */
int copro_llama_ctx_set_threads(struct copro_llama_ctx *c, int n);

/*
 * Runs the step. Returns 0, or -EINVAL for a token id out of range, a
 * position at or past max_ctx, or more tokens than the context was made for.
 * Allocates nothing.
 */
int copro_llama_forward(struct copro_llama_ctx *c, const struct copro_kv_view *kv,
			const struct copro_llama_batch *b, float *logits);

#endif
