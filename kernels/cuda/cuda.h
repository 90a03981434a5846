/* SPDX-License-Identifier: MIT */
/*
 * cuda.h - the CUDA backend: device discovery, one context per device and
 * worker (a stream and a cuBLAS handle), device memory and copies, and the
 * ops of the Llama and ONNX runtimes as device kernels. Callable from C; the
 * implementation is the .cu files of kernels/cuda/ (built where nvcc is
 * found) or, in a build without CUDA, kernels/cuda/cuda_none.c, which has
 * the same symbols.
 *
 * Conventions
 *
 * - Every int function returns 0 (or a count) or a negative errno; nothing
 *   here aborts, exits or logs. A failed CUDA or cuBLAS call records
 *   "file:line: expression: message" in its context, which
 *   copro_cuda_last_error() returns until the next failure.
 * - Codes: -ENODEV no such device (or none at all), -ENOTSUP built without
 *   CUDA (every call but discovery and ctx_new/llama_cuda_load, which say
 *   -ENODEV as there are no devices), -ENOMEM device or pinned memory
 *   exhausted, -EINVAL bad arguments (checked on the host before anything is
 *   launched), -EIO any other CUDA/cuBLAS failure.
 * - A kernel fault (illegal address, ...) is sticky in CUDA: the device's
 *   state is lost for the whole process. The context notes it, and every
 *   later call on it returns -EIO without touching the device; the caller
 *   should take the device out of service.
 * - Pointers named "device" below are device memory from copro_cuda_alloc()
 *   (or pinned/registered host memory, which devices can also read). Ops are
 *   asynchronous on the context's stream: their results are ready after
 *   copro_cuda_sync() or for later work on the same context. Host arrays
 *   passed to h2d/d2h must stay valid until the next copro_cuda_sync().
 * - A context may be used from any thread, one thread at a time (it is not
 *   locked); each call makes its device current for the calling thread.
 */
#ifndef COPRO_CUDA_H
#define COPRO_CUDA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "llm/attention.h"

/* ---- discovery ---------------------------------------------------------------- */

struct copro_cuda_dev {
	int index;			/* the id copro_cuda_ctx_new() takes */
	char name[256];			/* "NVIDIA H100 80GB HBM3" */
	char pci_bus_id[32];		/* "0000:65:00.0", lower case, as sysfs names it */
	uint64_t total_mem;		/* bytes */
	int cc_major, cc_minor;		/* compute capability */
	int n_sm;			/* multiprocessors */
};

/* 1 when this build has the CUDA backend, 0 when it has the stub. */
int copro_cuda_built(void);

/*
 * Fills out[0 .. min(count, max)) and returns the number of devices (which
 * may exceed max; out may be NULL with max 0 to count). With no driver, no
 * device or no CUDA support built in it returns 0 and, when why is not NULL,
 * sets *why to a static string saying which (e.g. "no CUDA support built
 * in", or the runtime's "no CUDA-capable device is detected"); *why is NULL
 * when devices were found. Creates no CUDA context. -EINVAL for max < 0.
 */
int copro_cuda_devices(struct copro_cuda_dev *out, int max, const char **why);

/* NUMA node of a device from its PCI bus id (sysfs), or -1 when unknown. */
int copro_cuda_numa_node(const struct copro_cuda_dev *d);

/* ---- contexts and memory -------------------------------------------------------- */

struct copro_cuda_ctx;

/*
 * A stream and a cuBLAS handle on device. Returns 0, -ENODEV (no such
 * device; the reason in err), -ENOMEM or -EIO with a one-line reason in err.
 */
int copro_cuda_ctx_new(int device, struct copro_cuda_ctx **out, char *err, size_t errlen);
/* Waits for the stream's work, then frees it all. NULL is a no-op. */
void copro_cuda_ctx_free(struct copro_cuda_ctx *c);
int copro_cuda_ctx_device(const struct copro_cuda_ctx *c);
/* The last failure recorded on c ("" if none). Valid until the next call on c. */
const char *copro_cuda_last_error(const struct copro_cuda_ctx *c);

/* Waits for every op queued on c. */
int copro_cuda_sync(struct copro_cuda_ctx *c);
/* Free and total bytes of c's device now. */
int copro_cuda_mem_info(struct copro_cuda_ctx *c, size_t *free_b, size_t *total_b);

/* n bytes of device memory, 256-byte aligned; n == 0 gives NULL and 0. */
int copro_cuda_alloc(struct copro_cuda_ctx *c, size_t n, void **out);
/* Frees after the work queued so far (it synchronizes). NULL is a no-op. */
void copro_cuda_free(struct copro_cuda_ctx *c, void *p);

/* Asynchronous copies on c's stream (host memory pinned or not; unpinned host
 * memory makes the copy synchronous with the host, as CUDA does). */
int copro_cuda_h2d(struct copro_cuda_ctx *c, void *dst_dev, const void *src_host, size_t n);
int copro_cuda_d2h(struct copro_cuda_ctx *c, void *dst_host, const void *src_dev, size_t n);
int copro_cuda_d2d(struct copro_cuda_ctx *c, void *dst_dev, const void *src_dev, size_t n);
int copro_cuda_memset(struct copro_cuda_ctx *c, void *dst_dev, int byte, size_t n);

/*
 * Pins a client's host region [p, p + n) (page-locked, visible to every
 * device) so copies from and to it are DMA and truly asynchronous; undone by
 * copro_cuda_host_unregister(c, p) before the region is unmapped.
 * -EEXIST when already registered, -ENOENT on unregistering what was not,
 * -ENOMEM when the system refuses to lock it.
 */
int copro_cuda_host_register(struct copro_cuda_ctx *c, void *p, size_t n);
int copro_cuda_host_unregister(struct copro_cuda_ctx *c, void *p);

/* ---- element-wise, norms, rope ------------------------------------------------- */

enum copro_cuda_act {
	COPRO_CUDA_ACT_NONE = 0,
	COPRO_CUDA_ACT_RELU = 1,
	COPRO_CUDA_ACT_LEAKY = 2,	/* v >= 0 ? v : alpha * v */
	COPRO_CUDA_ACT_GELU_ERF = 3,	/* 0.5 v (1 + erf(v / sqrt 2)), ONNX Gelu "none" */
	COPRO_CUDA_ACT_SIGMOID = 4,
	COPRO_CUDA_ACT_TANH = 5,
};

/* y (rows, cols) = act(y + bias), bias (cols) or NULL: the Gemm epilogue. */
int copro_cuda_bias_act(struct copro_cuda_ctx *c, float *y, const float *bias, size_t rows,
			size_t cols, int act, float alpha);

/* Softmax of every row of x (rows, n) in place, the row maximum subtracted. */
int copro_cuda_softmax_rows(struct copro_cuda_ctx *c, float *x, size_t rows, size_t n);

/* out (rows, n) = x / sqrt(mean(x^2) + eps) * w (n), as copro_llm_rmsnorm; out may be x. */
int copro_cuda_rmsnorm_rows(struct copro_cuda_ctx *c, float *out, const float *x, const float *w,
			    size_t rows, size_t n, float eps);

/* out (rows, n) = (x - mean) / sqrt(var + eps) * scale (n) + bias (n, or NULL). */
int copro_cuda_layernorm_rows(struct copro_cuda_ctx *c, float *out, const float *x,
			      const float *scale, const float *bias, size_t rows, size_t n,
			      float eps);

/*
 * The rope frequencies, on the host, with copro_llm_rope's own float
 * expression (1 / powf(base, 2i / (float)rot_dim), i < rot_dim / 2), so the
 * device turns pairs by the CPU's angles bit for bit (only cosf/sinf differ,
 * by an ulp or two). freqs holds rot_dim / 2 floats.
 */
void copro_cuda_rope_freqs(float *freqs, uint32_t rot_dim, float base);

/*
 * Rope in place on x (n_tok, n_heads, head_dim): token t at position pos[t]
 * (device, n_tok), freqs (device, rot_dim / 2) from copro_cuda_rope_freqs.
 * neox 0: adjacent pairs (llama), 1: x[i] with x[i + rot_dim / 2].
 * -EINVAL when rot_dim is odd, 0 or above head_dim.
 */
int copro_cuda_rope(struct copro_cuda_ctx *c, float *x, uint32_t n_tok, uint32_t n_heads,
		    uint32_t head_dim, uint32_t rot_dim, const int32_t *pos, const float *freqs,
		    int neox);

/* out = silu(gate) * up over n; out may alias either. */
int copro_cuda_swiglu(struct copro_cuda_ctx *c, float *out, const float *gate, const float *up,
		      size_t n);

/* y += x over n. */
int copro_cuda_add(struct copro_cuda_ctx *c, float *y, const float *x, size_t n);

/*
 * out (n, dim) = rows ids[0..n) (device) of table (n_vocab, dim) in a GGUF
 * type (F32, F16, Q8_0, Q4_0), dequantized. An id outside [0, n_vocab) gives
 * a row of NaN (the caller checks ids; the kernel only refuses to fault).
 */
int copro_cuda_embed(struct copro_cuda_ctx *c, uint32_t type, const void *table,
		     uint32_t n_vocab, uint32_t dim, const int32_t *ids, uint32_t n, float *out);

/* out (n_idx, n) = rows idx[0..n_idx) (device) of x (?, n). */
int copro_cuda_gather_rows(struct copro_cuda_ctx *c, float *out, const float *x,
			   const int32_t *idx, uint32_t n_idx, size_t n);

/* ---- matmul ----------------------------------------------------------------------- */

enum copro_cuda_dtype {
	COPRO_CUDA_F32 = 0,
	COPRO_CUDA_F16 = 1,
	COPRO_CUDA_BF16 = 2,
};

/*
 * y (m, n) f32 = x (m, k) W^T, W (n, k) row-major, x and W both of dtype,
 * through cublasGemmEx with CUBLAS_COMPUTE_32F (f32 accumulation; no TF32
 * unless NVIDIA_TF32_OVERRIDE says so). m, n, k below 2^31.
 */
int copro_cuda_gemm(struct copro_cuda_ctx *c, int dtype, const void *x, const void *w, float *y,
		    size_t m, size_t n, size_t k);

/* out (n) in dtype F16 or BF16 = x (n) f32, round to nearest even (overflow to Inf). */
int copro_cuda_convert(struct copro_cuda_ctx *c, int dtype, const float *x, void *out, size_t n);

/*
 * The Llama weight matmul, copro_llm_matmul's contract on the device:
 * y (m, n) = x (m, k) W^T for a GGUF matrix W (n rows of k elements of type)
 * stored as GGUF stores it. F32 goes to cuBLAS as is; F16 converts x to f16
 * first (in scratch) and runs cuBLAS f16 x f16 -> f32; Q8_0/Q4_0 quantize x
 * to Q8_0 per 32 (exactly copro_llm_quantize_x's rounding) and take integer
 * dot products (dp4a) in a warp-per-row kernel, as the CPU does.
 * scratch: copro_cuda_matmul_scratch(type, m, k) device bytes (0: NULL ok).
 * -EINVAL on an unknown type, k not fitting the blocks, or sizes over 2^31.
 */
int copro_cuda_matmul(struct copro_cuda_ctx *c, uint32_t type, const void *w, size_t n, size_t k,
		      const float *x, size_t m, float *y, void *scratch);
size_t copro_cuda_matmul_scratch(uint32_t type, size_t m, size_t k);

/*
 * The two halves of the quantized path, for several matmuls sharing one x
 * (q, k, v; gate, up): xq gets copro_cuda_matmul_scratch(COPRO_GGML_Q8_0, m,
 * k) bytes laid out as int8 qs (m, k) then float scales (m, k / 32), the
 * scales already rounded through fp16 like a Q8_0 block's. A block holding
 * NaN or Inf gets a NaN scale and zero quants, as on the CPU.
 */
int copro_cuda_quantize_x(struct copro_cuda_ctx *c, const float *x, size_t m, size_t k,
			  void *xq);
int copro_cuda_matmul_xq(struct copro_cuda_ctx *c, uint32_t type, const void *w, size_t n,
			 size_t k, const void *xq, size_t m, float *y);

/* ---- paged attention -------------------------------------------------------------- */

/*
 * The KV pool on the device has the CPU layout of llm/attention.h, so a
 * struct copro_kv_view whose k and v are device pointers describes it and
 * block ids mean the same on both. tables (device) is (n_tok, table_stride):
 * row t is token t's block table, covering position pos[t] (device, n_tok).
 * A block id at or past kv->n_blocks, or a position past the table, makes
 * the kernels skip the write and give NaN instead of faulting.
 *
 * kv_write stores k, v (n_tok, n_kv_heads, head_dim) at each token's
 * position. paged_attention then computes, for every token t and head h, the
 * attention of q (n_tok, n_heads, head_dim) over positions [0, pos[t]] of
 * t's sequence (causal: later tokens of the same sequence in the step are
 * not seen) into out (n_tok, n_heads, head_dim); grouped-query heads read kv
 * head h / (n_heads / n_kv_heads); scores scaled by 1 / sqrtf(head_dim);
 * online softmax in f32. One CUDA block per (token, head): decode and
 * chunked prefill are the same kernel. head_dim up to 256.
 */
int copro_cuda_kv_write(struct copro_cuda_ctx *c, const struct copro_kv_view *kv, uint32_t layer,
			const uint32_t *tables, uint32_t table_stride, const int32_t *pos,
			uint32_t n_tok, const float *k, const float *v);
int copro_cuda_paged_attention(struct copro_cuda_ctx *c, const struct copro_kv_view *kv,
			       uint32_t layer, const uint32_t *tables, uint32_t table_stride,
			       const int32_t *pos, uint32_t n_tok, const float *q,
			       uint32_t n_heads, float *out);

/* ---- sampling --------------------------------------------------------------------- */

/* out[r] (device int32) = index of the largest of row r of x (rows, n): the
 * lowest index wins ties, NaN never wins, all-NaN gives 0 (copro_llm_argmax). */
int copro_cuda_argmax_rows(struct copro_cuda_ctx *c, const float *x, size_t rows, size_t n,
			   int32_t *out);

#define COPRO_CUDA_TOPK_MAX 256

/*
 * The k best (id, logit) of every row of x (rows, n), best first (higher
 * logit, then lower id), into ids and vals (device, (rows, k)); NaN never
 * enters. Slots past the row's non-NaN count get id -1 and -Inf. The CPU
 * finishes the draw (top-p, temperature, ...) over these k. 1 <= k <=
 * COPRO_CUDA_TOPK_MAX, else -EINVAL.
 */
int copro_cuda_topk_rows(struct copro_cuda_ctx *c, const float *x, size_t rows, size_t n,
			 uint32_t k, int32_t *ids, float *vals);

/* ---- the Llama forward pass on a device -------------------------------------------- */

struct copro_llama;
struct copro_llama_batch;
struct copro_llama_cuda;

struct copro_llama_cuda_opts {
	uint32_t block_tokens;	/* KV positions per block; 0: 16 */
	uint32_t max_tokens;	/* tokens per step; 0: 512 */
	uint32_t max_ctx;	/* positions per sequence; 0: the model's context length */
	uint64_t kv_bytes;	/* K + V pool bytes; 0: kv_fraction of what is left */
	float kv_fraction;	/* of the free memory after weights and buffers; 0: 0.9 */
};

/*
 * Uploads m's weights to device (one allocation, read once from the
 * mapping), makes the KV pool and the step buffers there. opts may be NULL.
 * Refuses with -ENOMEM and the sizes in err when the weights, the buffers and
 * a KV pool for one max_ctx sequence do not fit the device's free memory;
 * -ENODEV with the reason in err when the device does not exist (no GPU, no
 * driver, or no CUDA support built in); -EINVAL for a head_dim above 256.
 * m must outlive the result only for its hparams (copied) - the weights are
 * not read after this returns.
 */
int copro_llama_cuda_load(const struct copro_llama *m, int device,
			  const struct copro_llama_cuda_opts *opts, struct copro_llama_cuda **out,
			  char *err, size_t errlen);
void copro_llama_cuda_free(struct copro_llama_cuda *lc);

/* The device context (for ops on logits, copies, its last error). */
struct copro_cuda_ctx *copro_llama_cuda_ctx(struct copro_llama_cuda *lc);

/*
 * The KV pool's shape: *n_blocks blocks of the geometry
 * copro_llama_kv_geom(m, opts->block_tokens) gives; block ids from the
 * server's block manager index it as they would the CPU pool. *view gets
 * the pool as a view with device pointers (NULL allowed for either out).
 */
void copro_llama_cuda_kv(const struct copro_llama_cuda *lc, uint32_t *n_blocks,
			 struct copro_kv_view *view);

/* Copies block src to dst in every layer (copy-on-write of a shared prefix). */
int copro_llama_cuda_kv_copy(struct copro_llama_cuda *lc, uint32_t dst, uint32_t src);

/*
 * copro_llama_forward's contract on the device: b's arrays are host memory,
 * uploaded on each call; for the tokens with want[i], in order, the logits go
 * to logits (n_want, vocab) on the host, or stay on the device when logits is
 * NULL (copro_llama_cuda_logits, for argmax/top-k there). Returns when done.
 * -EINVAL for a token id out of range, a position at or past max_ctx, more
 * than max_tokens tokens, or a table entry at or past the pool's n_blocks
 * (checked on the host: nothing is launched then); -EIO etc. from the device
 * with the reason in copro_cuda_last_error(copro_llama_cuda_ctx(lc)).
 */
int copro_llama_cuda_forward(struct copro_llama_cuda *lc, const struct copro_llama_batch *b,
			     float *logits);

/* The last step's logits on the device, (n_want, vocab) f32, valid until the next step. */
const float *copro_llama_cuda_logits(const struct copro_llama_cuda *lc);

#ifdef __cplusplus
}
#endif

#endif
