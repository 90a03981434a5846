// SPDX-License-Identifier: MIT
/*
 * cuda_none.c - the CUDA API in a build without CUDA (no nvcc, or CUDA=0):
 * no devices, so contexts and models are refused with -ENODEV and every op
 * answers -ENOTSUP. Callers need no #ifdef: they find 0 devices and say why.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>

#include "cuda/cuda.h"

static const char no_cuda[] = "no CUDA support built in (nvcc was not found, or CUDA=0)";

int copro_cuda_built(void)
{
	return 0;
}

int copro_cuda_devices(struct copro_cuda_dev *out, int max, const char **why)
{
	if (why)
		*why = no_cuda;
	return max < 0 || (max && !out) ? -EINVAL : 0;
}

int copro_cuda_numa_node(const struct copro_cuda_dev *d)
{
	return -1;
}

int copro_cuda_ctx_new(int device, struct copro_cuda_ctx **out, char *err, size_t errlen)
{
	*out = NULL;
	snprintf(err, errlen, "no CUDA device: %s", no_cuda);
	return -ENODEV;
}

void copro_cuda_ctx_free(struct copro_cuda_ctx *c)
{
}

int copro_cuda_ctx_device(const struct copro_cuda_ctx *c)
{
	return -1;
}

const char *copro_cuda_last_error(const struct copro_cuda_ctx *c)
{
	return no_cuda;
}

int copro_cuda_sync(struct copro_cuda_ctx *c)
{
	return -ENOTSUP;
}

int copro_cuda_mem_info(struct copro_cuda_ctx *c, size_t *free_b, size_t *total_b)
{
	return -ENOTSUP;
}

int copro_cuda_alloc(struct copro_cuda_ctx *c, size_t n, void **out)
{
	if (out)
		*out = NULL;
	return -ENOTSUP;
}

void copro_cuda_free(struct copro_cuda_ctx *c, void *p)
{
}

int copro_cuda_h2d(struct copro_cuda_ctx *c, void *dst, const void *src, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_d2h(struct copro_cuda_ctx *c, void *dst, const void *src, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_d2d(struct copro_cuda_ctx *c, void *dst, const void *src, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_memset(struct copro_cuda_ctx *c, void *dst, int byte, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_host_register(struct copro_cuda_ctx *c, void *p, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_host_unregister(struct copro_cuda_ctx *c, void *p)
{
	return -ENOTSUP;
}

int copro_cuda_bias_act(struct copro_cuda_ctx *c, float *y, const float *bias, size_t rows,
			size_t cols, int act, float alpha)
{
	return -ENOTSUP;
}

int copro_cuda_softmax_rows(struct copro_cuda_ctx *c, float *x, size_t rows, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_rmsnorm_rows(struct copro_cuda_ctx *c, float *out, const float *x, const float *w,
			    size_t rows, size_t n, float eps)
{
	return -ENOTSUP;
}

int copro_cuda_layernorm_rows(struct copro_cuda_ctx *c, float *out, const float *x,
			      const float *scale, const float *bias, size_t rows, size_t n,
			      float eps)
{
	return -ENOTSUP;
}

/* Host-only, so the same as the CUDA build's (kernels/llm/ops.c's expression). */
void copro_cuda_rope_freqs(float *freqs, uint32_t rot_dim, float base)
{
	for (uint32_t i = 0; i < rot_dim / 2; i++)
		freqs[i] = 1.0f / powf(base, (float)(2 * i) / (float)rot_dim);
}

int copro_cuda_rope(struct copro_cuda_ctx *c, float *x, uint32_t n_tok, uint32_t n_heads,
		    uint32_t head_dim, uint32_t rot_dim, const int32_t *pos, const float *freqs,
		    int neox)
{
	return -ENOTSUP;
}

int copro_cuda_swiglu(struct copro_cuda_ctx *c, float *out, const float *gate, const float *up,
		      size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_add(struct copro_cuda_ctx *c, float *y, const float *x, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_embed(struct copro_cuda_ctx *c, uint32_t type, const void *table,
		     uint32_t n_vocab, uint32_t dim, const int32_t *ids, uint32_t n, float *out)
{
	return -ENOTSUP;
}

int copro_cuda_gather_rows(struct copro_cuda_ctx *c, float *out, const float *x,
			   const int32_t *idx, uint32_t n_idx, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_gemm(struct copro_cuda_ctx *c, int dtype, const void *x, const void *w, float *y,
		    size_t m, size_t n, size_t k)
{
	return -ENOTSUP;
}

int copro_cuda_convert(struct copro_cuda_ctx *c, int dtype, const float *x, void *out, size_t n)
{
	return -ENOTSUP;
}

int copro_cuda_matmul(struct copro_cuda_ctx *c, uint32_t type, const void *w, size_t n, size_t k,
		      const float *x, size_t m, float *y, void *scratch)
{
	return -ENOTSUP;
}

size_t copro_cuda_matmul_scratch(uint32_t type, size_t m, size_t k)
{
	return 0;
}

int copro_cuda_quantize_x(struct copro_cuda_ctx *c, const float *x, size_t m, size_t k,
			  void *xq)
{
	return -ENOTSUP;
}

int copro_cuda_matmul_xq(struct copro_cuda_ctx *c, uint32_t type, const void *w, size_t n,
			 size_t k, const void *xq, size_t m, float *y)
{
	return -ENOTSUP;
}

int copro_cuda_kv_write(struct copro_cuda_ctx *c, const struct copro_kv_view *kv, uint32_t layer,
			const uint32_t *tables, uint32_t table_stride, const int32_t *pos,
			uint32_t n_tok, const float *k, const float *v)
{
	return -ENOTSUP;
}

int copro_cuda_paged_attention(struct copro_cuda_ctx *c, const struct copro_kv_view *kv,
			       uint32_t layer, const uint32_t *tables, uint32_t table_stride,
			       const int32_t *pos, uint32_t n_tok, const float *q,
			       uint32_t n_heads, float *out)
{
	return -ENOTSUP;
}

int copro_cuda_argmax_rows(struct copro_cuda_ctx *c, const float *x, size_t rows, size_t n,
			   int32_t *out)
{
	return -ENOTSUP;
}

int copro_cuda_topk_rows(struct copro_cuda_ctx *c, const float *x, size_t rows, size_t n,
			 uint32_t k, int32_t *ids, float *vals)
{
	return -ENOTSUP;
}

int copro_llama_cuda_load(const struct copro_llama *m, int device,
			  const struct copro_llama_cuda_opts *opts, struct copro_llama_cuda **out,
			  char *err, size_t errlen)
{
	*out = NULL;
	snprintf(err, errlen, "no CUDA device: %s", no_cuda);
	return -ENODEV;
}

void copro_llama_cuda_free(struct copro_llama_cuda *lc)
{
}

struct copro_cuda_ctx *copro_llama_cuda_ctx(struct copro_llama_cuda *lc)
{
	return NULL;
}

void copro_llama_cuda_kv(const struct copro_llama_cuda *lc, uint32_t *n_blocks,
			 struct copro_kv_view *view)
{
	if (n_blocks)
		*n_blocks = 0;
	if (view)
		memset(view, 0, sizeof(*view));
}

int copro_llama_cuda_kv_copy(struct copro_llama_cuda *lc, uint32_t dst, uint32_t src)
{
	return -ENOTSUP;
}

int copro_llama_cuda_forward(struct copro_llama_cuda *lc, const struct copro_llama_batch *b,
			     float *logits)
{
	return -ENOTSUP;
}

const float *copro_llama_cuda_logits(const struct copro_llama_cuda *lc)
{
	return NULL;
}
