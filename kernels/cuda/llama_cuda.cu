// SPDX-License-Identifier: MIT
/*
 * llama_cuda.cu - the Llama forward pass on one device, op for op the CPU's
 * (kernels/llm/llama.c): embed, then per layer RMSNorm -> q, k, v -> rope
 * -> K/V into the paged cache -> attention through the block tables ->
 * output projection -> residual -> RMSNorm -> SwiGLU feed-forward ->
 * residual; then the final norm of the wanted rows and the logits.
 *
 * Load uploads every weight once into one device allocation; the KV pool
 * has the CPU pool's layout, so the server's block ids mean the same here.
 * A step uploads the batch's host arrays through a pinned staging buffer,
 * queues everything on the context's stream, and waits for the logits.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_impl.h"

#define KV_MARGIN ((size_t)128 << 20)	/* cuBLAS workspace and the unforeseen */

/* A weight matrix on the device. */
struct dw {
	const void *d;
	uint32_t type, n, k;
};

struct dlayer {
	const float *attn_norm, *ffn_norm;	/* (dim) */
	struct dw wq, wk, wv, wo;		/* (dim | kv_dim, dim) */
	struct dw w_gate, w_up, w_down;		/* (hidden, dim), (dim, hidden) */
};

struct copro_llama_cuda {
	struct copro_cuda_ctx *c;
	struct copro_llama_hparams hp;
	uint32_t block_tokens, max_tokens, max_ctx;
	uint32_t max_blocks;		/* blocks one max_ctx sequence needs */

	void *arena;			/* every weight, and the rope frequencies */
	struct dw tok_embd, output;
	const float *out_norm;		/* (dim) */
	const float *freqs;		/* (rot_dim / 2) */
	struct dlayer *layers;		/* [n_layers], host array of device pointers */

	float *kv_k, *kv_v;		/* the pool, see llm/attention.h */
	struct copro_kv_view kv;

	void *work;			/* the step buffers below, one allocation */
	float *x, *xb, *q;		/* (max_tokens, dim) */
	float *k, *v;			/* (max_tokens, kv_dim) */
	float *att;			/* (max_tokens, dim) */
	float *hb, *hb2;		/* (max_tokens, hidden) */
	float *logits;			/* (max_tokens, vocab) */
	void *scratch;			/* x quantized or in f16, for the matmuls */
	int32_t *d_tok, *d_pos, *d_want; /* (max_tokens) */
	uint32_t *d_tables;		/* (max_tokens, max_blocks) */

	int32_t *h_stage;		/* pinned: the same four arrays, host side */
};

/* ---- load ------------------------------------------------------------------------- */

static size_t al(size_t n)
{
	return (n + 255) & ~(size_t)255;
}

static size_t w_bytes(const struct copro_llama_w *w)
{
	return (size_t)w->n * copro_ggml_row_bytes(w->type, w->k);
}

/* The byte layout of the step buffers; returns their total. */
struct work_layout {
	size_t x, xb, q, k, v, att, hb, hb2, logits, scratch, tok, pos, want, tables, total;
};

static void work_layout(const struct copro_llama_hparams *hp, uint32_t mt, uint32_t max_blocks,
			struct work_layout *L)
{
	const size_t wide = hp->hidden > hp->dim ? hp->hidden : hp->dim;
	size_t s1 = copro_cuda_matmul_scratch(COPRO_GGML_Q8_0, mt, wide);
	size_t s2 = copro_cuda_matmul_scratch(COPRO_GGML_F16, mt, wide);
	size_t o = 0;

#define PUT(f, bytes) (L->f = o, o += al(bytes))
	PUT(x, (size_t)mt * hp->dim * 4);
	PUT(xb, (size_t)mt * hp->dim * 4);
	PUT(q, (size_t)mt * hp->dim * 4);
	PUT(k, (size_t)mt * hp->kv_dim * 4);
	PUT(v, (size_t)mt * hp->kv_dim * 4);
	PUT(att, (size_t)mt * hp->dim * 4);
	PUT(hb, (size_t)mt * hp->hidden * 4);
	PUT(hb2, (size_t)mt * hp->hidden * 4);
	PUT(logits, (size_t)mt * hp->vocab * 4);
	PUT(scratch, s1 > s2 ? s1 : s2);
	PUT(tok, (size_t)mt * 4);
	PUT(pos, (size_t)mt * 4);
	PUT(want, (size_t)mt * 4);
	PUT(tables, (size_t)mt * max_blocks * 4);
#undef PUT
	L->total = o;
}

/* Copies w's bytes to arena + *off; the device twin goes to d. */
static int upload_w(struct copro_llama_cuda *lc, const struct copro_llama_w *w, size_t *off,
		    struct dw *d)
{
	uint8_t *dst = (uint8_t *)lc->arena + *off;
	int ret = COPRO_CK(lc->c, cudaMemcpy(dst, w->data, w_bytes(w), cudaMemcpyHostToDevice));

	d->d = dst;
	d->type = w->type;
	d->n = w->n;
	d->k = w->k;
	*off += al(w_bytes(w));
	return ret;
}

static int upload_v(struct copro_llama_cuda *lc, const float *v, size_t n, size_t *off,
		    const float **d)
{
	uint8_t *dst = (uint8_t *)lc->arena + *off;
	int ret = COPRO_CK(lc->c, cudaMemcpy(dst, v, n * 4, cudaMemcpyHostToDevice));

	*d = (const float *)dst;
	*off += al(n * 4);
	return ret;
}

static size_t arena_bytes(const struct copro_llama *m)
{
	const struct copro_llama_hparams *hp = &m->hp;
	size_t n = al(w_bytes(&m->tok_embd)) + al((size_t)hp->dim * 4) +
		   al((size_t)hp->rot_dim * 2);

	if (m->output.data != m->tok_embd.data)
		n += al(w_bytes(&m->output));
	for (uint32_t l = 0; l < hp->n_layers; l++) {
		const struct copro_llama_layer *L = &m->layers[l];

		n += 2 * al((size_t)hp->dim * 4) + al(w_bytes(&L->wq)) + al(w_bytes(&L->wk)) +
		     al(w_bytes(&L->wv)) + al(w_bytes(&L->wo)) + al(w_bytes(&L->w_gate)) +
		     al(w_bytes(&L->w_up)) + al(w_bytes(&L->w_down));
	}
	return n;
}

static double mib(size_t n)
{
	return (double)n / (1 << 20);
}

extern "C" int copro_llama_cuda_load(const struct copro_llama *m, int device,
				     const struct copro_llama_cuda_opts *opts,
				     struct copro_llama_cuda **out, char *err, size_t errlen)
{
	const struct copro_llama_hparams *hp = &m->hp;
	struct copro_llama_cuda_opts o = {};
	struct copro_llama_cuda *lc;
	struct copro_kv_geom geom;
	struct work_layout W;
	size_t free_b = 0, total_b = 0, weights, kv_block, need, off = 0;
	uint64_t n_blocks;
	int ret;

	*out = NULL;
	if (opts)
		o = *opts;
	if (!o.block_tokens)
		o.block_tokens = 16;
	if (!o.max_tokens)
		o.max_tokens = 512;
	if (!o.max_ctx)
		o.max_ctx = hp->ctx ? hp->ctx : 2048;
	if (!(o.kv_fraction > 0.0f))
		o.kv_fraction = 0.9f;
	if (o.kv_fraction > 1.0f || o.max_tokens >= (1u << 24) || o.max_ctx >= (1u << 30)) {
		snprintf(err, errlen, "bad options: kv_fraction %g, max_tokens %u, max_ctx %u",
			 o.kv_fraction, o.max_tokens, o.max_ctx);
		return -EINVAL;
	}
	if (hp->head_dim > 256) {
		snprintf(err, errlen, "head size %u: the CUDA attention kernel takes up to 256",
			 hp->head_dim);
		return -EINVAL;
	}
	lc = (struct copro_llama_cuda *)calloc(1, sizeof(*lc));
	if (!lc || !(lc->layers = (struct dlayer *)calloc(hp->n_layers, sizeof(*lc->layers)))) {
		free(lc);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	lc->hp = *hp;
	lc->block_tokens = o.block_tokens;
	lc->max_tokens = o.max_tokens;
	lc->max_ctx = o.max_ctx;
	lc->max_blocks = (o.max_ctx + o.block_tokens - 1) / o.block_tokens;
	ret = copro_cuda_ctx_new(device, &lc->c, err, errlen);
	if (ret)
		goto fail;

	/* What it takes: weights, the step buffers, one max_ctx sequence of KV. */
	copro_llama_kv_geom(m, o.block_tokens, &geom);
	kv_block = copro_kv_block_floats(&geom) * 2 * sizeof(float);
	weights = arena_bytes(m);
	work_layout(hp, o.max_tokens, lc->max_blocks, &W);
	need = weights + W.total + (size_t)lc->max_blocks * kv_block + KV_MARGIN;
	if ((ret = copro_cuda_mem_info(lc->c, &free_b, &total_b)))
		goto fail_dev;
	if (!kv_block || need > free_b) {
		snprintf(err, errlen, "the model does not fit CUDA device %d: it needs %.0f MiB "
			 "(weights %.0f, step buffers %.0f for %u tokens, KV for one %u-token "
			 "sequence %.0f, margin %.0f); %.0f MiB of %.0f are free", device,
			 mib(need), mib(weights), mib(W.total), o.max_tokens, o.max_ctx,
			 mib((size_t)lc->max_blocks * kv_block), mib(KV_MARGIN), mib(free_b),
			 mib(total_b));
		ret = -ENOMEM;
		goto fail;
	}

	/* Weights, read once from the mapping. */
	if ((ret = copro_cuda_alloc(lc->c, weights, &lc->arena)))
		goto fail_dev;
	if ((ret = upload_w(lc, &m->tok_embd, &off, &lc->tok_embd)) ||
	    (ret = upload_v(lc, m->out_norm, hp->dim, &off, &lc->out_norm)))
		goto fail_dev;
	if (m->output.data == m->tok_embd.data)
		lc->output = lc->tok_embd;	/* tied */
	else if ((ret = upload_w(lc, &m->output, &off, &lc->output)))
		goto fail_dev;
	for (uint32_t l = 0; l < hp->n_layers; l++) {
		const struct copro_llama_layer *L = &m->layers[l];
		struct dlayer *D = &lc->layers[l];

		if ((ret = upload_v(lc, L->attn_norm, hp->dim, &off, &D->attn_norm)) ||
		    (ret = upload_v(lc, L->ffn_norm, hp->dim, &off, &D->ffn_norm)) ||
		    (ret = upload_w(lc, &L->wq, &off, &D->wq)) ||
		    (ret = upload_w(lc, &L->wk, &off, &D->wk)) ||
		    (ret = upload_w(lc, &L->wv, &off, &D->wv)) ||
		    (ret = upload_w(lc, &L->wo, &off, &D->wo)) ||
		    (ret = upload_w(lc, &L->w_gate, &off, &D->w_gate)) ||
		    (ret = upload_w(lc, &L->w_up, &off, &D->w_up)) ||
		    (ret = upload_w(lc, &L->w_down, &off, &D->w_down)))
			goto fail_dev;
	}
	{
		float *f = (float *)malloc(sizeof(float) * (hp->rot_dim / 2 + 1));

		if (!f) {
			ret = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto fail;
		}
		copro_cuda_rope_freqs(f, hp->rot_dim, hp->rope_base);
		ret = upload_v(lc, f, hp->rot_dim / 2, &off, &lc->freqs);
		free(f);
		if (ret)
			goto fail_dev;
	}

	/* The step buffers, device and pinned host. */
	if ((ret = copro_cuda_alloc(lc->c, W.total, &lc->work)))
		goto fail_dev;
#define AT(f, type) (lc->f = (type)((uint8_t *)lc->work + W.f))
	AT(x, float *);
	AT(xb, float *);
	AT(q, float *);
	AT(k, float *);
	AT(v, float *);
	AT(att, float *);
	AT(hb, float *);
	AT(hb2, float *);
	AT(logits, float *);
	AT(scratch, void *);
#undef AT
	lc->d_tok = (int32_t *)((uint8_t *)lc->work + W.tok);
	lc->d_pos = (int32_t *)((uint8_t *)lc->work + W.pos);
	lc->d_want = (int32_t *)((uint8_t *)lc->work + W.want);
	lc->d_tables = (uint32_t *)((uint8_t *)lc->work + W.tables);
	if ((ret = COPRO_CK(lc->c, cudaMallocHost((void **)&lc->h_stage,
						  (size_t)o.max_tokens * (3 + lc->max_blocks) *
							  sizeof(int32_t)))))
		goto fail_dev;

	/* The KV pool: what was asked for, or a fraction of what is left. */
	if ((ret = copro_cuda_mem_info(lc->c, &free_b, NULL)))
		goto fail_dev;
	free_b = free_b > KV_MARGIN ? free_b - KV_MARGIN : 0;
	n_blocks = o.kv_bytes ? o.kv_bytes / kv_block
			      : (uint64_t)((double)free_b * o.kv_fraction) / kv_block;
	if (n_blocks > UINT32_MAX - 1)
		n_blocks = UINT32_MAX - 1;
	if (n_blocks < lc->max_blocks || n_blocks * kv_block > free_b) {
		snprintf(err, errlen, "KV pool of %llu blocks (%.0f MiB) on CUDA device %d: "
			 "one %u-token sequence needs %u blocks, %.0f MiB are free",
			 (unsigned long long)n_blocks, mib(n_blocks * kv_block), device,
			 o.max_ctx, lc->max_blocks, mib(free_b));
		ret = -ENOMEM;
		goto fail;
	}
	if ((ret = copro_cuda_alloc(lc->c, n_blocks * kv_block / 2, (void **)&lc->kv_k)) ||
	    (ret = copro_cuda_alloc(lc->c, n_blocks * kv_block / 2, (void **)&lc->kv_v)))
		goto fail_dev;
	if ((ret = copro_kv_view_init(&lc->kv, &geom, lc->kv_k, lc->kv_v, (uint32_t)n_blocks))) {
		snprintf(err, errlen, "KV geometry overflows");
		goto fail;
	}
	if ((ret = copro_cuda_sync(lc->c)))
		goto fail_dev;
	*out = lc;
	return 0;
fail_dev:
	snprintf(err, errlen, "CUDA device %d: %s", device, copro_cuda_last_error(lc->c));
fail:
	copro_llama_cuda_free(lc);
	return ret;
}

extern "C" void copro_llama_cuda_free(struct copro_llama_cuda *lc)
{
	if (!lc)
		return;
	if (lc->c) {
		copro_cuda_free(lc->c, lc->kv_v);
		copro_cuda_free(lc->c, lc->kv_k);
		if (lc->h_stage)
			COPRO_CK(lc->c, cudaFreeHost(lc->h_stage));
		copro_cuda_free(lc->c, lc->work);
		copro_cuda_free(lc->c, lc->arena);
		copro_cuda_ctx_free(lc->c);
	}
	free(lc->layers);
	free(lc);
}

extern "C" struct copro_cuda_ctx *copro_llama_cuda_ctx(struct copro_llama_cuda *lc)
{
	return lc->c;
}

extern "C" void copro_llama_cuda_kv(const struct copro_llama_cuda *lc, uint32_t *n_blocks,
				    struct copro_kv_view *view)
{
	if (n_blocks)
		*n_blocks = lc->kv.n_blocks;
	if (view)
		*view = lc->kv;
}

extern "C" int copro_llama_cuda_kv_copy(struct copro_llama_cuda *lc, uint32_t dst, uint32_t src)
{
	const size_t bytes = lc->kv.block_stride * sizeof(float);
	int ret;

	if (dst >= lc->kv.n_blocks || src >= lc->kv.n_blocks)
		return -EINVAL;
	if (dst == src)
		return 0;
	if ((ret = copro_cuda_d2d(lc->c, lc->kv_k + dst * lc->kv.block_stride,
				  lc->kv_k + src * lc->kv.block_stride, bytes)))
		return ret;
	return copro_cuda_d2d(lc->c, lc->kv_v + dst * lc->kv.block_stride,
			      lc->kv_v + src * lc->kv.block_stride, bytes);
}

extern "C" const float *copro_llama_cuda_logits(const struct copro_llama_cuda *lc)
{
	return lc->logits;
}

/* ---- the forward pass ------------------------------------------------------------------ */

/* What the matmul scratch holds now: x quantized, x in f16, or nothing. */
enum { PREP_NONE, PREP_Q8, PREP_F16 };

/*
 * y (m, w->n) = x (m, w->k) W^T. *prep says what the scratch holds of this
 * x, so matrices sharing an input (q, k, v; gate, up) convert it once.
 */
static int mm(struct copro_llama_cuda *lc, const struct dw *w, const float *x, int *prep,
	      uint32_t m, float *y)
{
	struct copro_cuda_ctx *c = lc->c;
	int ret;

	switch (w->type) {
	case COPRO_GGML_F32:
		return copro_cuda_gemm(c, COPRO_CUDA_F32, x, w->d, y, m, w->n, w->k);
	case COPRO_GGML_F16:
		if (*prep != PREP_F16) {
			if ((ret = copro_cuda_convert(c, COPRO_CUDA_F16, x, lc->scratch,
						      (size_t)m * w->k)))
				return ret;
			*prep = PREP_F16;
		}
		return copro_cuda_gemm(c, COPRO_CUDA_F16, lc->scratch, w->d, y, m, w->n, w->k);
	case COPRO_GGML_Q8_0:
	case COPRO_GGML_Q4_0:
		if (*prep != PREP_Q8) {
			if ((ret = copro_cuda_quantize_x(c, x, m, w->k, lc->scratch)))
				return ret;
			*prep = PREP_Q8;
		}
		return copro_cuda_matmul_xq(c, w->type, w->d, w->n, w->k, lc->scratch, m, y);
	}
	return -EINVAL;
}

/* Checks b on the host and stages its arrays in the pinned buffer: the
 * wanted rows' indices and the table stride (the most blocks a token of the
 * step needs) come back. Returns 0 or -EINVAL. */
static int stage(struct copro_llama_cuda *lc, const struct copro_llama_batch *b,
		 uint32_t *n_want, uint32_t *tstride)
{
	const uint32_t n = b->n, bt = lc->block_tokens, mt = lc->max_tokens;
	int32_t *tok = lc->h_stage, *pos = tok + mt, *want = pos + mt;
	uint32_t *tab = (uint32_t *)(want + mt), ts = 1;

	if (n > mt)
		return -EINVAL;
	*n_want = 0;
	for (uint32_t i = 0; i < n; i++) {
		if (b->tokens[i] < 0 || (uint32_t)b->tokens[i] >= lc->hp.vocab ||
		    b->pos[i] >= lc->max_ctx)
			return -EINVAL;
		for (uint32_t j = 0; j <= b->pos[i] / bt; j++)
			if (b->tables[i][j] >= lc->kv.n_blocks)
				return -EINVAL;
		ts = b->pos[i] / bt + 1 > ts ? b->pos[i] / bt + 1 : ts;
	}
	for (uint32_t i = 0; i < n; i++) {
		tok[i] = b->tokens[i];
		pos[i] = (int32_t)b->pos[i];
		if (b->want[i])
			want[(*n_want)++] = (int32_t)i;
		memcpy(tab + (size_t)i * ts, b->tables[i], (b->pos[i] / bt + 1) * sizeof(uint32_t));
	}
	*tstride = ts;
	return 0;
}

extern "C" int copro_llama_cuda_forward(struct copro_llama_cuda *lc,
					const struct copro_llama_batch *b, float *logits)
{
	struct copro_cuda_ctx *c = lc->c;
	const struct copro_llama_hparams *hp = &lc->hp;
	const uint32_t n = b->n, dim = hp->dim, hidden = hp->hidden;
	const uint32_t mt = lc->max_tokens;
	uint32_t n_want = 0, ts = 1;
	int ret, prep;

	/* The staging buffer may still feed the last step's copies if it failed. */
	if ((ret = copro_cuda_sync(c)))
		return ret;
	if ((ret = stage(lc, b, &n_want, &ts)))
		return ret;
	if (!n)
		return 0;
	if ((ret = copro_cuda_h2d(c, lc->d_tok, lc->h_stage, n * 4)) ||
	    (ret = copro_cuda_h2d(c, lc->d_pos, lc->h_stage + mt, n * 4)) ||
	    (ret = copro_cuda_h2d(c, lc->d_want, lc->h_stage + 2 * mt, n_want * 4)) ||
	    (ret = copro_cuda_h2d(c, lc->d_tables, lc->h_stage + 3 * mt, (size_t)n * ts * 4)))
		return ret;

	if ((ret = copro_cuda_embed(c, lc->tok_embd.type, lc->tok_embd.d, hp->vocab, dim,
				    lc->d_tok, n, lc->x)))
		return ret;
	for (uint32_t l = 0; l < hp->n_layers; l++) {
		const struct dlayer *L = &lc->layers[l];

		/* attention */
		if ((ret = copro_cuda_rmsnorm_rows(c, lc->xb, lc->x, L->attn_norm, n, dim,
						   hp->eps)))
			return ret;
		prep = PREP_NONE;
		if ((ret = mm(lc, &L->wq, lc->xb, &prep, n, lc->q)) ||
		    (ret = mm(lc, &L->wk, lc->xb, &prep, n, lc->k)) ||
		    (ret = mm(lc, &L->wv, lc->xb, &prep, n, lc->v)))
			return ret;
		if ((ret = copro_cuda_rope(c, lc->q, n, hp->n_heads, hp->head_dim, hp->rot_dim,
					   lc->d_pos, lc->freqs, 0)) ||
		    (ret = copro_cuda_rope(c, lc->k, n, hp->n_kv_heads, hp->head_dim, hp->rot_dim,
					   lc->d_pos, lc->freqs, 0)))
			return ret;
		/* Every K/V of the step is in the cache before any token attends
		 * (stream order); causality comes from each token's own pos. */
		if ((ret = copro_cuda_kv_write(c, &lc->kv, l, lc->d_tables, ts, lc->d_pos, n, lc->k,
					       lc->v)) ||
		    (ret = copro_cuda_paged_attention(c, &lc->kv, l, lc->d_tables, ts, lc->d_pos, n,
						      lc->q, hp->n_heads, lc->att)))
			return ret;
		prep = PREP_NONE;
		if ((ret = mm(lc, &L->wo, lc->att, &prep, n, lc->xb)) ||
		    (ret = copro_cuda_add(c, lc->x, lc->xb, (size_t)n * dim)))
			return ret;

		/* feed-forward */
		if ((ret = copro_cuda_rmsnorm_rows(c, lc->xb, lc->x, L->ffn_norm, n, dim,
						   hp->eps)))
			return ret;
		prep = PREP_NONE;
		if ((ret = mm(lc, &L->w_gate, lc->xb, &prep, n, lc->hb)) ||
		    (ret = mm(lc, &L->w_up, lc->xb, &prep, n, lc->hb2)) ||
		    (ret = copro_cuda_swiglu(c, lc->hb, lc->hb, lc->hb2, (size_t)n * hidden)))
			return ret;
		prep = PREP_NONE;
		if ((ret = mm(lc, &L->w_down, lc->hb, &prep, n, lc->xb)) ||
		    (ret = copro_cuda_add(c, lc->x, lc->xb, (size_t)n * dim)))
			return ret;
	}
	/* The rows that want logits, packed, through the final norm and the output. */
	if (n_want) {
		prep = PREP_NONE;
		if ((ret = copro_cuda_gather_rows(c, lc->xb, lc->x, lc->d_want, n_want, dim)) ||
		    (ret = copro_cuda_rmsnorm_rows(c, lc->xb, lc->xb, lc->out_norm, n_want, dim,
						   hp->eps)) ||
		    (ret = mm(lc, &lc->output, lc->xb, &prep, n_want, lc->logits)))
			return ret;
		if (logits && (ret = copro_cuda_d2h(c, logits, lc->logits,
						    (size_t)n_want * hp->vocab * sizeof(float))))
			return ret;
	}
	return copro_cuda_sync(c);
}
