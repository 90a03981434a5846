// SPDX-License-Identifier: MIT
/*
 * llama.c - the Llama-family forward pass over GGUF weights and a paged
 * KV cache. Reads top to bottom like llama2.c's: embed, then per layer
 * RMSNorm -> q, k, v -> rope -> K/V into the cache -> attention through the
 * block table -> output projection -> residual -> RMSNorm -> SwiGLU
 * feed-forward -> residual; then the final norm and the logits.
 *
 * F32/F16 weights stay in the file's mapping. Q8_0/Q4_0 matrices are
 * repacked at load, 16 rows interleaved (copro_llm_pack), which takes about
 * as long as reading them once; the mapped originals are then dropped.
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "llm/gguf.h"
#include "llm/llama.h"
#include "llm/ops.h"
#include "llm/tok_gguf.h"
#include "llm/tokenizer.h"

/* ---- loading ------------------------------------------------------------------ */

static int get_u32(const struct copro_gguf *g, const char *key, uint32_t def, uint32_t *out,
		   char *err, size_t errlen)
{
	int ret = copro_gguf_get_u32(g, key, out);

	if (ret == -ENOENT && def != UINT32_MAX) {
		*out = def;
		return 0;
	}
	if (ret)
		snprintf(err, errlen, "%s: %s", key, ret == -ENOENT ? "missing" : "not a valid count");
	return ret;
}

/*
 * Finds tensor name and checks its type and shape (ne0 elements per row,
 * ne1 rows; ne1 == 0 for a vector). Norm vectors must be F32.
 */
static int tensor(const struct copro_gguf *g, const char *name, uint32_t ne0, uint32_t ne1,
		  struct copro_llama_w *w, char *err, size_t errlen)
{
	const struct copro_gguf_tensor *t = copro_gguf_tensor(g, name);

	if (!t) {
		snprintf(err, errlen, "tensor '%s' is missing", name);
		return -EINVAL;
	}
	if (t->ne[0] != ne0 || (ne1 ? t->n_dims != 2 || t->ne[1] != ne1 : t->n_dims != 1)) {
		snprintf(err, errlen,
			 "tensor '%s' has shape [%llu, %llu] (%u dims); the model's sizes say "
			 "[%u, %u]", name, (unsigned long long)t->ne[0],
			 (unsigned long long)(t->n_dims > 1 ? t->ne[1] : 1), t->n_dims, ne0,
			 ne1 ? ne1 : 1);
		return -EINVAL;
	}
	if (!ne1 && t->type != COPRO_GGML_F32) {
		snprintf(err, errlen, "tensor '%s' is %s; norm weights must be F32", name,
			 copro_ggml_type_name(t->type) ? copro_ggml_type_name(t->type) : "?");
		return -EINVAL;
	}
	if (!copro_ggml_type_name(t->type) || !copro_ggml_row_bytes(t->type, ne0)) {
		snprintf(err, errlen, "tensor '%s': type %u is not supported here "
			 "(F32, F16, Q8_0, Q4_0 with rows a multiple of 32)", name, t->type);
		return -ENOTSUP;
	}
	w->data = t->data;
	w->type = t->type;
	w->k = ne0;
	w->n = ne1 ? ne1 : 1;
	return 0;
}

static int vec(const struct copro_gguf *g, const char *name, uint32_t n, const float **out,
	       char *err, size_t errlen)
{
	struct copro_llama_w w;
	int ret = tensor(g, name, n, 0, &w, err, errlen);

	*out = w.data;
	return ret;
}

static int hparams(const struct copro_gguf *g, struct copro_llama_hparams *hp, char *err,
		   size_t errlen)
{
	const char *arch;
	size_t len;
	int ret;

	ret = copro_gguf_get_str(g, "general.architecture", &arch, &len);
	if (ret) {
		snprintf(err, errlen, "general.architecture is missing");
		return -EINVAL;
	}
	if (len != 5 || memcmp(arch, "llama", 5)) {
		snprintf(err, errlen, "architecture '%.*s' is not supported (llama only)",
			 (int)(len > 40 ? 40 : len), arch);
		return -ENOTSUP;
	}
	if ((ret = get_u32(g, "llama.embedding_length", UINT32_MAX, &hp->dim, err, errlen)) ||
	    (ret = get_u32(g, "llama.block_count", UINT32_MAX, &hp->n_layers, err, errlen)) ||
	    (ret = get_u32(g, "llama.attention.head_count", UINT32_MAX, &hp->n_heads, err,
			   errlen)) ||
	    (ret = get_u32(g, "llama.attention.head_count_kv", hp->n_heads, &hp->n_kv_heads, err,
			   errlen)) ||
	    (ret = get_u32(g, "llama.feed_forward_length", UINT32_MAX, &hp->hidden, err,
			   errlen)) ||
	    (ret = get_u32(g, "llama.context_length", 2048, &hp->ctx, err, errlen)))
		return ret;
	if (!hp->dim || !hp->n_layers || !hp->n_heads || !hp->n_kv_heads || !hp->hidden ||
	    hp->dim % hp->n_heads || hp->n_heads % hp->n_kv_heads || hp->dim > 65536 ||
	    hp->hidden > 262144 || hp->n_layers > 1024) {
		snprintf(err, errlen, "inconsistent sizes: dim %u, %u heads, %u kv heads, "
			 "hidden %u, %u layers", hp->dim, hp->n_heads, hp->n_kv_heads, hp->hidden,
			 hp->n_layers);
		return -EINVAL;
	}
	hp->head_dim = hp->dim / hp->n_heads;
	hp->kv_dim = hp->n_kv_heads * hp->head_dim;
	if ((ret = get_u32(g, "llama.rope.dimension_count", hp->head_dim, &hp->rot_dim, err,
			   errlen)))
		return ret;
	if (!hp->rot_dim || hp->rot_dim % 2 || hp->rot_dim > hp->head_dim) {
		snprintf(err, errlen, "llama.rope.dimension_count %u does not fit head size %u",
			 hp->rot_dim, hp->head_dim);
		return -EINVAL;
	}
	if (copro_gguf_get_f32(g, "llama.rope.freq_base", &hp->rope_base))
		hp->rope_base = 10000.0f;
	if (copro_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &hp->eps))
		hp->eps = 1e-5f;
	if (!(hp->rope_base > 0.0f) || !(hp->eps > 0.0f) || !isfinite(hp->rope_base)) {
		snprintf(err, errlen, "bad rope base %g or norm epsilon %g", hp->rope_base,
			 hp->eps);
		return -EINVAL;
	}
	return 0;
}

static int is_quant_type(uint32_t type)
{
	return type == COPRO_GGML_Q8_0 || type == COPRO_GGML_Q4_0;
}

static uint64_t w_bytes(const struct copro_llama_w *w)
{
	return (uint64_t)w->n * copro_ggml_row_bytes(w->type, w->k);
}

/*
 * Packs w when it is Q8_0/Q4_0 and packing is on, then drops the file pages
 * wholly inside its bytes from the mapping: the hot path no longer reads
 * them, and a later read of w->data (the CUDA upload, say) faults them in
 * again from the page cache. keep: the bytes are still read (the token
 * embedding when the output is tied to it).
 */
static int pack_w(struct copro_llama *m, struct copro_llama_w *w, int keep, char *err,
		  size_t errlen)
{
	const char *env = getenv("COPRO_LLM_PACK");
	long page = sysconf(_SC_PAGESIZE);
	uintptr_t lo, hi;
	int ret;

	if (!is_quant_type(w->type) || (env && !strcmp(env, "0")))
		return 0;
	lo = (uintptr_t)w->data & ~((uintptr_t)page - 1);
	hi = (uintptr_t)w->data + w_bytes(w);
#ifdef MADV_POPULATE_READ
	/* Map the source in one call rather than a fault per page (Linux 5.14;
	 * advice: failure leaves the faults). */
	madvise((void *)lo, hi - lo, MADV_POPULATE_READ);
#endif
	ret = copro_llm_pack(w->type, w->data, w->n, w->k, &w->pk);
	if (ret) {
		snprintf(err, errlen, "cannot repack a %u x %u weight: %s", w->n, w->k,
			 strerror(-ret));
		return ret;
	}
	m->packed_bytes += copro_llm_pack_bytes(w->pk);
	if (keep || page <= 0)
		return 0;
	lo = ((uintptr_t)w->data + (uintptr_t)page - 1) & ~((uintptr_t)page - 1);
	hi = ((uintptr_t)w->data + w_bytes(w)) & ~((uintptr_t)page - 1);
	if (hi > lo)
		madvise((void *)lo, hi - lo, MADV_DONTNEED);	/* advice: failure is harmless */
	return 0;
}

int copro_llama_load(const char *path, struct copro_llama **out, char *err, size_t errlen)
{
	struct copro_llama *m;
	struct copro_llama_hparams *hp;
	struct copro_gguf *g;
	char name[96];
	int ret;

	*out = NULL;
	ret = copro_gguf_open(path, &g, err, errlen);
	if (ret)
		return ret;
	m = calloc(1, sizeof(*m));
	if (!m) {
		copro_gguf_close(g);
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	m->g = g;
	hp = &m->hp;
	ret = hparams(g, hp, err, errlen);
	if (ret)
		goto fail;
	{
		const struct copro_gguf_tensor *t = copro_gguf_tensor(g, "token_embd.weight");

		if (!t || t->n_dims != 2 || t->ne[1] == 0 || t->ne[1] > (1u << 24)) {
			snprintf(err, errlen, "tensor 'token_embd.weight' is missing or malformed");
			ret = -EINVAL;
			goto fail;
		}
		hp->vocab = (uint32_t)t->ne[1];
	}
	if ((ret = tensor(g, "token_embd.weight", hp->dim, hp->vocab, &m->tok_embd, err,
			  errlen)) ||
	    (ret = vec(g, "output_norm.weight", hp->dim, &m->out_norm, err, errlen)))
		goto fail;
	if (copro_gguf_tensor(g, "output.weight")) {
		ret = tensor(g, "output.weight", hp->dim, hp->vocab, &m->output, err, errlen);
		if (ret)
			goto fail;
	} else {
		m->output = m->tok_embd;	/* tied */
	}
	m->layers = calloc(hp->n_layers, sizeof(*m->layers));
	if (!m->layers) {
		ret = -ENOMEM;
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	for (uint32_t l = 0; l < hp->n_layers; l++) {
		struct copro_llama_layer *L = &m->layers[l];

#define T(field, suffix, ne0, ne1)						\
		snprintf(name, sizeof(name), "blk.%u." suffix, l);		\
		if ((ret = tensor(g, name, ne0, ne1, &L->field, err, errlen)))	\
			goto fail
#define V(field, suffix)							\
		snprintf(name, sizeof(name), "blk.%u." suffix, l);		\
		if ((ret = vec(g, name, hp->dim, &L->field, err, errlen)))	\
			goto fail
		V(attn_norm, "attn_norm.weight");
		T(wq, "attn_q.weight", hp->dim, hp->dim);
		T(wk, "attn_k.weight", hp->dim, hp->kv_dim);
		T(wv, "attn_v.weight", hp->dim, hp->kv_dim);
		T(wo, "attn_output.weight", hp->dim, hp->dim);
		V(ffn_norm, "ffn_norm.weight");
		T(w_gate, "ffn_gate.weight", hp->dim, hp->hidden);
		T(w_up, "ffn_up.weight", hp->dim, hp->hidden);
		T(w_down, "ffn_down.weight", hp->hidden, hp->dim);
#undef T
#undef V
		if ((ret = pack_w(m, &L->wq, 0, err, errlen)) ||
		    (ret = pack_w(m, &L->wk, 0, err, errlen)) ||
		    (ret = pack_w(m, &L->wv, 0, err, errlen)) ||
		    (ret = pack_w(m, &L->wo, 0, err, errlen)) ||
		    (ret = pack_w(m, &L->w_gate, 0, err, errlen)) ||
		    (ret = pack_w(m, &L->w_up, 0, err, errlen)) ||
		    (ret = pack_w(m, &L->w_down, 0, err, errlen)))
			goto fail;
		m->weight_bytes += w_bytes(&L->wq) + w_bytes(&L->wk) + w_bytes(&L->wv) +
				   w_bytes(&L->wo) + w_bytes(&L->w_gate) + w_bytes(&L->w_up) +
				   w_bytes(&L->w_down) + 2 * (uint64_t)hp->dim * 4;
		m->n_params += 2ULL * hp->dim * hp->dim + 2ULL * hp->dim * hp->kv_dim +
			       3ULL * hp->dim * hp->hidden + 2ULL * hp->dim;
	}
	m->weight_bytes += w_bytes(&m->tok_embd) + (uint64_t)hp->dim * 4;
	m->n_params += (uint64_t)hp->vocab * hp->dim + hp->dim;
	if (m->output.data != m->tok_embd.data) {
		m->weight_bytes += w_bytes(&m->output);
		m->n_params += (uint64_t)hp->vocab * hp->dim;
	}
	/* The embedding rows are still looked up in the file: keep them mapped. */
	ret = pack_w(m, &m->output, m->output.data == m->tok_embd.data, err, errlen);
	if (ret)
		goto fail;
	ret = copro_tok_from_gguf(g, &m->tok, err, errlen);
	if (ret)
		goto fail;
	if (copro_tok_n_vocab(m->tok) != hp->vocab) {
		snprintf(err, errlen, "the tokenizer has %u tokens, the embedding %u rows",
			 copro_tok_n_vocab(m->tok), hp->vocab);
		ret = -EINVAL;
		goto fail;
	}
	*out = m;
	return 0;
fail:
	copro_llama_free(m);
	return ret;
}

static void unpack(struct copro_llama_w *w)
{
	copro_llm_pack_free(w->pk);
	w->pk = NULL;
}

void copro_llama_drop_packed(struct copro_llama *m)
{
	for (uint32_t l = 0; m->layers && l < m->hp.n_layers; l++) {
		struct copro_llama_layer *L = &m->layers[l];

		unpack(&L->wq);
		unpack(&L->wk);
		unpack(&L->wv);
		unpack(&L->wo);
		unpack(&L->w_gate);
		unpack(&L->w_up);
		unpack(&L->w_down);
	}
	unpack(&m->output);
	m->packed_bytes = 0;
}

void copro_llama_free(struct copro_llama *m)
{
	if (!m)
		return;
	copro_tok_destroy(m->tok);
	copro_llama_drop_packed(m);
	free(m->layers);
	copro_gguf_close(m->g);
	free(m);
}

void copro_llama_kv_geom(const struct copro_llama *m, uint32_t block_tokens,
			 struct copro_kv_geom *g)
{
	g->n_layers = m->hp.n_layers;
	g->n_kv_heads = m->hp.n_kv_heads;
	g->head_dim = m->hp.head_dim;
	g->block_tokens = block_tokens;
}

/* ---- the forward pass ------------------------------------------------------------ */

#define LLM_MAX_THREADS	16
#define HELPER_SPIN	20000	/* pauses a helper spins for the next region, then sleeps */

struct copro_llama_ctx;
typedef int (*par_fn)(struct copro_llama_ctx *c, void *arg, int part, int parts);

struct copro_llama_ctx {
	const struct copro_llama *m;
	uint32_t max_tokens, max_ctx;
	/*
	 * Helper threads for the parallel regions of a step (matmul columns,
	 * attention tokens): the caller's thread is part 0. A region is
	 * published by bumping gen (seq_cst, paired with the helpers' sleeping
	 * count so none sleeps through one); each helper adds to done when its
	 * part is finished.
	 */
	int n_threads;
	pthread_t th[LLM_MAX_THREADS];
	_Atomic uint32_t gen, done, stop, sleeping;
	pthread_mutex_t mu;
	pthread_cond_t cv;
	par_fn fn;
	void *arg;
	int part_ret[LLM_MAX_THREADS];
	float *scores_t[LLM_MAX_THREADS];	/* attention scratch of parts 1.. */
	float *x;		/* (max_tokens, dim) the residual stream */
	float *xb;		/* (max_tokens, dim) */
	float *q;		/* (max_tokens, dim) */
	float *k;		/* (max_tokens, kv_dim) */
	float *v;		/* (max_tokens, kv_dim) */
	float *att;		/* (max_tokens, dim) */
	float *hb, *hb2;	/* (max_tokens, hidden) */
	float *scores;		/* (n_heads, max_ctx) attention scratch */
	float *rope;		/* (max_tokens, rot_dim) cos/sin of each token's position */
	struct copro_block_q8_0 *xq;	/* (max_tokens, max(dim, hidden) / 32) */
	struct copro_block_q8_x *xs;	/* (max_tokens, max(dim, hidden) / 32) packed path */
};

static void *falloc(size_t n)
{
	return aligned_alloc(64, ((n * sizeof(float)) + 63) & ~(size_t)63);
}

int copro_llama_ctx_new(const struct copro_llama *m, uint32_t max_tokens, uint32_t max_ctx,
			struct copro_llama_ctx **out)
{
	const struct copro_llama_hparams *hp = &m->hp;
	struct copro_llama_ctx *c;
	size_t wide = hp->hidden > hp->dim ? hp->hidden : hp->dim;

	*out = NULL;
	if (!max_tokens || !max_ctx)
		return -EINVAL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->m = m;
	c->max_tokens = max_tokens;
	c->max_ctx = max_ctx;
	c->n_threads = 1;
	c->x = falloc((size_t)max_tokens * hp->dim);
	c->xb = falloc((size_t)max_tokens * hp->dim);
	c->q = falloc((size_t)max_tokens * hp->dim);
	c->k = falloc((size_t)max_tokens * hp->kv_dim);
	c->v = falloc((size_t)max_tokens * hp->kv_dim);
	c->att = falloc((size_t)max_tokens * hp->dim);
	c->hb = falloc((size_t)max_tokens * hp->hidden);
	c->hb2 = falloc((size_t)max_tokens * hp->hidden);
	c->scores = falloc(copro_paged_attention_scratch(hp->n_heads, max_ctx));
	c->rope = falloc((size_t)max_tokens * hp->rot_dim);
	c->xq = aligned_alloc(64, ((size_t)max_tokens * (wide / COPRO_QK + 1) *
				   sizeof(struct copro_block_q8_0) + 63) & ~(size_t)63);
	c->xs = aligned_alloc(64, ((size_t)max_tokens * (wide / COPRO_QK + 1) *
				   sizeof(struct copro_block_q8_x) + 63) & ~(size_t)63);
	if (!c->x || !c->xb || !c->q || !c->k || !c->v || !c->att || !c->hb || !c->hb2 ||
	    !c->scores || !c->rope || !c->xq || !c->xs) {
		copro_llama_ctx_free(c);
		return -ENOMEM;
	}
	*out = c;
	return 0;
}

static void stop_helpers(struct copro_llama_ctx *c);

void copro_llama_ctx_free(struct copro_llama_ctx *c)
{
	if (!c)
		return;
	stop_helpers(c);
	free(c->x);
	free(c->xb);
	free(c->q);
	free(c->k);
	free(c->v);
	free(c->att);
	free(c->hb);
	free(c->hb2);
	free(c->scores);
	free(c->rope);
	free(c->xq);
	free(c->xs);
	for (int i = 1; i < LLM_MAX_THREADS; i++)
		free(c->scores_t[i]);
	free(c);
}

/* ---- helper threads ---------------------------------------------------------------- */

static inline void relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#endif
}

struct helper_arg {
	struct copro_llama_ctx *c;
	int part;
};

static void *helper_main(void *p)
{
	struct helper_arg *h = p;
	struct copro_llama_ctx *c = h->c;
	int part = h->part;
	uint32_t seen = 0;

	free(h);
	for (;;) {
		uint32_t g;
		int spin = 0;

		/* Spin briefly: the next region of a step comes within microseconds. */
		while ((g = atomic_load(&c->gen)) == seen && !atomic_load(&c->stop) &&
		       spin++ < HELPER_SPIN)
			relax();
		if (g == seen && !atomic_load(&c->stop)) {
			pthread_mutex_lock(&c->mu);
			atomic_fetch_add(&c->sleeping, 1);
			while ((g = atomic_load(&c->gen)) == seen && !atomic_load(&c->stop))
				pthread_cond_wait(&c->cv, &c->mu);
			atomic_fetch_sub(&c->sleeping, 1);
			pthread_mutex_unlock(&c->mu);
		}
		if (atomic_load(&c->stop))
			break;
		seen = g;
		c->part_ret[part] = c->fn(c, c->arg, part, c->n_threads);
		/* Release: the caller that sees done sees the part's outputs. */
		atomic_fetch_add_explicit(&c->done, 1, memory_order_release);
	}
	return NULL;
}

/*
 * Runs fn over parts 0 .. n_threads - 1, part 0 on this thread, and returns
 * the first part's error, if any. The parts write disjoint outputs.
 */
static int par_run(struct copro_llama_ctx *c, par_fn fn, void *arg)
{
	int ret;

	if (c->n_threads == 1)
		return fn(c, arg, 0, 1);
	c->fn = fn;
	c->arg = arg;
	atomic_store_explicit(&c->done, 0, memory_order_relaxed);
	/* seq_cst with the helpers' sleeping count: either they see gen or we see them. */
	atomic_fetch_add(&c->gen, 1);
	if (atomic_load(&c->sleeping)) {
		pthread_mutex_lock(&c->mu);
		pthread_cond_broadcast(&c->cv);
		pthread_mutex_unlock(&c->mu);
	}
	ret = fn(c, arg, 0, c->n_threads);
	while (atomic_load_explicit(&c->done, memory_order_acquire) != (uint32_t)c->n_threads - 1)
		relax();
	for (int i = 1; i < c->n_threads; i++)
		if (!ret)
			ret = c->part_ret[i];
	return ret;
}

int copro_llama_ctx_set_threads(struct copro_llama_ctx *c, int n)
{
	if (n < 1 || n > LLM_MAX_THREADS || c->n_threads > 1)
		return -EINVAL;
	if (n == 1)
		return 0;
	for (int i = 1; i < n; i++) {
		c->scores_t[i] = falloc(copro_paged_attention_scratch(c->m->hp.n_heads, c->max_ctx));
		if (!c->scores_t[i])
			return -ENOMEM;
	}
	pthread_mutex_init(&c->mu, NULL);
	pthread_cond_init(&c->cv, NULL);
	c->n_threads = n;
	for (int i = 1; i < n; i++) {
		struct helper_arg *h = malloc(sizeof(*h));
		int ret;

		if (!h)
			ret = ENOMEM;
		else {
			h->c = c;
			h->part = i;
			ret = pthread_create(&c->th[i], NULL, helper_main, h);
		}
		if (ret) {
			free(h);
			c->n_threads = i;	/* the ones started so far stop with the context */
			return -ret;
		}
	}
	return 0;
}

static void stop_helpers(struct copro_llama_ctx *c)
{
	if (c->n_threads <= 1)
		return;
	pthread_mutex_lock(&c->mu);
	atomic_store(&c->stop, 1);
	pthread_cond_broadcast(&c->cv);
	pthread_mutex_unlock(&c->mu);
	for (int i = 1; i < c->n_threads; i++)
		pthread_join(c->th[i], NULL);
	pthread_mutex_destroy(&c->mu);
	pthread_cond_destroy(&c->cv);
	c->n_threads = 1;
}

/* Which quantized forms of the current input mm() has made (bits of *x_q). */
#define XQ_Q8_0 1	/* c->xq, for the unpacked Q8_0/Q4_0 kernel */
#define XQ_PACKED 2	/* c->xs, for the packed kernel */

/*
 * y_i (m, w_i->n) = x (m, k) W_i^T for up to three matrices that share
 * their input (q, k, v; gate, up), in one parallel region. x_q says which
 * quantized forms of x the matmuls sharing this input have made: each is
 * made once, by the first region that needs it. With swiglu set (gate and
 * up, of one shape), each part then applies SwiGLU to its own columns, so
 * y_0 = silu(y_0) * y_1 needs no region of its own.
 */
struct mm_job {
	const struct copro_llama_w *w[3];
	float *y[3];
	int nw;
	int swiglu;
	const float *x;
	uint32_t m;
	/* the work, in chunks the threads take in turn (set by mm_run) */
	uint32_t cg[3];		/* row groups of 16 a chunk of range r takes */
	uint32_t nc[3];		/* chunks of range r: matrix r, or (swiglu) all at once */
	uint32_t total;
	_Atomic uint32_t next;
};

/*
 * Chunks a thread's share is cut into: a thread that finds its CPU slower
 * (another tenant, a cold cache) takes fewer of them instead of making the
 * others wait. At least MM_MIN_GROUPS row groups a chunk, so most groups
 * still find their lines prefetched by the one before.
 */
#define MM_CHUNKS_PER_THREAD	8
#define MM_MIN_GROUPS		4

/*
 * The matmuls, one chunk of output columns at a time until none is left:
 * columns cut at multiples of 16 (the packed kernel's row groups), each
 * computed exactly as without threads, so the result depends neither on
 * the number of threads nor on which thread took which chunk. With swiglu,
 * a chunk is the same columns of gate and up, then SwiGLU over them.
 */
static int mm_part(struct copro_llama_ctx *c, void *arg, int part, int parts)
{
	struct mm_job *j = arg;

	(void)c;
	(void)part;
	(void)parts;
	for (;;) {
		uint32_t k = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		uint32_t r = 0;
		size_t n0, n1, n;

		if (k >= j->total)
			return 0;
		while (k >= j->nc[r])
			k -= j->nc[r++];
		n = j->w[r]->n;
		n0 = (size_t)k * j->cg[r] * 16;
		n1 = n0 + (size_t)j->cg[r] * 16 < n ? n0 + (size_t)j->cg[r] * 16 : n;
		for (int i = j->swiglu ? 0 : (int)r; i < (j->swiglu ? j->nw : (int)r + 1); i++) {
			const struct copro_llama_w *w = j->w[i];
			int ret;

			if (w->pk)
				ret = copro_llm_matmul_packed(w->pk, c->xs, j->m, j->y[i], n0, n1);
			else
				ret = copro_llm_matmul_xq(w->type, w->data, w->n, w->k, j->x, c->xq,
							  j->m, j->y[i], n0, n1);
			if (ret)
				return ret;
		}
		for (uint32_t t = 0; j->swiglu && t < j->m; t++)
			copro_llm_swiglu(j->y[0] + t * n + n0, j->y[0] + t * n + n0,
					 j->y[1] + t * n + n0, n1 - n0);
	}
}

/* Quantizes x as j's matrices need it (once per input: *x_q), then runs j. */
static int mm_run(struct copro_llama_ctx *c, struct mm_job *j, int *x_q)
{
	int ret;

	for (int i = 0; i < j->nw; i++) {
		const struct copro_llama_w *w = j->w[i];

		if (w->pk) {
			if (!(*x_q & XQ_PACKED)) {
				ret = copro_llm_quantize_xs(j->x, j->m, w->k, c->xs);
				if (ret)
					return ret;
				*x_q |= XQ_PACKED;
			}
		} else if (is_quant_type(w->type) && !(*x_q & XQ_Q8_0)) {
			ret = copro_llm_quantize_x(j->x, j->m, w->k, c->xq);
			if (ret)
				return ret;
			*x_q |= XQ_Q8_0;
		}
	}
	j->total = 0;
	for (int r = 0; r < (j->swiglu ? 1 : j->nw); r++) {
		uint32_t groups = (j->w[r]->n + 15) / 16;
		uint32_t want = (uint32_t)c->n_threads * MM_CHUNKS_PER_THREAD;

		j->cg[r] = (groups + want - 1) / want;
		if (j->cg[r] < MM_MIN_GROUPS)
			j->cg[r] = MM_MIN_GROUPS;
		j->nc[r] = (groups + j->cg[r] - 1) / j->cg[r];
		j->total += j->nc[r];
	}
	/* published to the helpers with the region (par_run's gen) */
	atomic_store_explicit(&j->next, 0, memory_order_relaxed);
	return par_run(c, mm_part, j);
}

/* y (m, w->n) = x (m, w->k) W^T. */
static int mm(struct copro_llama_ctx *c, const struct copro_llama_w *w, const float *x,
	      int *x_q, uint32_t m, float *y)
{
	struct mm_job j = { .w = { w }, .y = { y }, .nw = 1, .x = x, .m = m };

	return mm_run(c, &j, x_q);
}

/* The quantized forms (XQ_*) the matmul w needs of its input. */
static int forms_of(const struct copro_llama_w *w)
{
	if (w->pk)
		return XQ_PACKED;
	return is_quant_type(w->type) ? XQ_Q8_0 : 0;
}

/*
 * The per-token work between two matmuls, in one region split by tokens:
 * x += y (the residual, when y is set), out = RMSNorm(x) (when norm is
 * set), then the quantized forms of out (width floats a row) the next
 * matmul takes. Rows are independent, so the split changes no bit.
 */
struct prep_job {
	float *x;
	const float *y;
	const float *norm;
	float *out;
	uint32_t n, width;
	int forms;
};

static int prep_part(struct copro_llama_ctx *c, void *arg, int part, int parts)
{
	const struct prep_job *j = arg;
	const struct copro_llama_hparams *hp = &c->m->hp;
	uint32_t i0 = j->n * (uint32_t)part / (uint32_t)parts;
	uint32_t i1 = j->n * (uint32_t)(part + 1) / (uint32_t)parts;
	size_t nb = j->width / COPRO_QK;
	int ret = 0;

	for (uint32_t i = i0; i < i1 && !ret; i++) {
		float *out = j->out + (size_t)i * j->width;

		if (j->y)
			copro_llm_add(j->x + (size_t)i * hp->dim, j->y + (size_t)i * hp->dim,
				      hp->dim);
		if (j->norm)
			copro_llm_rmsnorm(out, j->x + (size_t)i * hp->dim, j->norm, hp->dim,
					  hp->eps);
		if (j->forms & XQ_PACKED)
			ret = copro_llm_quantize_xs(out, 1, j->width, c->xs + i * nb);
		if (!ret && (j->forms & XQ_Q8_0))
			ret = copro_llm_quantize_x(out, 1, j->width, c->xq + i * nb);
	}
	return ret;
}

/*
 * Steps of fewer tokens than this run their per-token regions (prep, RoPE)
 * on the caller's thread alone: a token's share is a microsecond or two,
 * less than handing its rows to another core and back costs.
 */
#define PAR_MIN_TOKENS	8

static int par_run_tokens(struct copro_llama_ctx *c, par_fn fn, void *arg, uint32_t n)
{
	return n < PAR_MIN_TOKENS ? fn(c, arg, 0, 1) : par_run(c, fn, arg);
}

/* Runs j and records in *x_q the forms it made of j->out. */
static int prep_run(struct copro_llama_ctx *c, struct prep_job *j, int *x_q)
{
	int ret = par_run_tokens(c, prep_part, j, j->n);

	*x_q = ret ? 0 : j->forms;
	return ret;
}

/* Part `part` of a step's rotary embeddings and K/V writes: a slice of its tokens. */
struct rope_job {
	const struct copro_kv_view *kv;
	const struct copro_llama_batch *b;
	uint32_t layer;
};

static int rope_part(struct copro_llama_ctx *c, void *arg, int part, int parts)
{
	const struct rope_job *j = arg;
	const struct copro_llama_hparams *hp = &c->m->hp;
	uint32_t n = j->b->n, i0 = n * (uint32_t)part / (uint32_t)parts;
	uint32_t i1 = n * (uint32_t)(part + 1) / (uint32_t)parts;

	for (uint32_t i = i0; i < i1; i++) {
		float *qi = c->q + (size_t)i * hp->dim, *ki = c->k + (size_t)i * hp->kv_dim;
		const float *cs = c->rope + (size_t)i * hp->rot_dim;

		copro_llm_rope_apply(qi, hp->n_heads, hp->head_dim, hp->rot_dim, cs, false);
		copro_llm_rope_apply(ki, hp->n_kv_heads, hp->head_dim, hp->rot_dim, cs, false);
		copro_kv_write(j->kv, j->layer, j->b->tables[i], j->b->pos[i], ki,
			       c->v + (size_t)i * hp->kv_dim);
	}
	return 0;
}

struct att_job {
	const struct copro_kv_view *kv;
	const struct copro_llama_batch *b;
	uint32_t layer;
	_Atomic uint32_t next;		/* the next token to take */
};

/*
 * Part `part` of the attention of a step: its threads take the tokens one
 * at a time, so a token that costs more (a late token of a prompt chunk
 * reads more positions) or a slower thread leaves the others at most one
 * token's work to wait for.
 */
static int att_part(struct copro_llama_ctx *c, void *arg, int part, int parts)
{
	struct att_job *j = arg;
	const struct copro_llama_hparams *hp = &c->m->hp;
	float *scratch = part ? c->scores_t[part] : c->scores;

	(void)parts;
	for (;;) {
		uint32_t i = atomic_fetch_add_explicit(&j->next, 1, memory_order_relaxed);
		int ret;

		if (i >= j->b->n)
			return 0;
		ret = copro_paged_attention(j->kv, j->layer, j->b->tables[i], j->b->pos[i] + 1,
					    c->q + (size_t)i * hp->dim, hp->n_heads,
					    c->att + (size_t)i * hp->dim, scratch);
		if (ret)
			return ret;
	}
}

int copro_llama_forward(struct copro_llama_ctx *c, const struct copro_kv_view *kv,
			const struct copro_llama_batch *b, float *logits)
{
	const struct copro_llama *m = c->m;
	const struct copro_llama_hparams *hp = &m->hp;
	const uint32_t n = b->n, dim = hp->dim;
	uint32_t n_want = 0;
	int ret = 0, xq;

	if (n > c->max_tokens)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		if (b->tokens[i] < 0 || (uint32_t)b->tokens[i] >= hp->vocab ||
		    b->pos[i] >= c->max_ctx)
			return -EINVAL;
	}
	for (uint32_t i = 0; i < n; i++) {
		ret = copro_llm_embed(m->tok_embd.type, m->tok_embd.data, hp->vocab, dim,
				      b->tokens[i], c->x + (size_t)i * dim);
		if (ret)
			return ret;
		copro_llm_rope_table(c->rope + (size_t)i * hp->rot_dim, hp->rot_dim,
				     (int32_t)b->pos[i], hp->rope_base);
	}
	for (uint32_t l = 0; l < hp->n_layers; l++) {
		const struct copro_llama_layer *L = &m->layers[l];

		/* attention: x += the last layer's feed-forward; xb = norm(x) */
		{
			struct prep_job pj = { .x = c->x, .y = l ? c->xb : NULL,
					       .norm = L->attn_norm, .out = c->xb, .n = n,
					       .width = dim, .forms = forms_of(&L->wq) };

			if ((ret = prep_run(c, &pj, &xq)))
				return ret;
		}
		{
			struct mm_job j = { .w = { &L->wq, &L->wk, &L->wv },
					    .y = { c->q, c->k, c->v }, .nw = 3,
					    .x = c->xb, .m = n };
			struct rope_job rj = { .kv = kv, .b = b, .layer = l };
			struct att_job aj = { .kv = kv, .b = b, .layer = l };

			/* Every K/V of the step is in the cache before any token attends. */
			if ((ret = mm_run(c, &j, &xq)) || (ret = par_run_tokens(c, rope_part, &rj, n)) ||
			    (ret = par_run(c, att_part, &aj)))
				return ret;
		}
		{
			struct prep_job pj = { .out = c->att, .n = n, .width = dim,
					       .forms = forms_of(&L->wo) };

			if ((ret = prep_run(c, &pj, &xq)) ||
			    (ret = mm(c, &L->wo, c->att, &xq, n, c->xb)))
				return ret;
		}

		/* feed-forward: x += attention; xb = norm(x) */
		{
			struct prep_job pj = { .x = c->x, .y = c->xb, .norm = L->ffn_norm,
					       .out = c->xb, .n = n, .width = dim,
					       .forms = forms_of(&L->w_gate) };

			if ((ret = prep_run(c, &pj, &xq)))
				return ret;
		}
		{
			struct mm_job j = { .w = { &L->w_gate, &L->w_up },
					    .y = { c->hb, c->hb2 }, .nw = 2, .swiglu = 1,
					    .x = c->xb, .m = n };

			if ((ret = mm_run(c, &j, &xq)))
				return ret;
		}
		{
			struct prep_job pj = { .out = c->hb, .n = n, .width = hp->hidden,
					       .forms = forms_of(&L->w_down) };

			if ((ret = prep_run(c, &pj, &xq)) ||
			    (ret = mm(c, &L->w_down, c->hb, &xq, n, c->xb)))
				return ret;
		}
	}
	copro_llm_add(c->x, c->xb, (size_t)n * dim);
	/* The rows that want logits, packed, through the final norm and the output. */
	for (uint32_t i = 0; i < n; i++) {
		if (!b->want[i])
			continue;
		copro_llm_rmsnorm(c->xb + (size_t)n_want * dim, c->x + (size_t)i * dim, m->out_norm,
				  dim, hp->eps);
		n_want++;
	}
	if (!n_want)
		return 0;
	xq = 0;
	return mm(c, &m->output, c->xb, &xq, n_want, logits);
}
