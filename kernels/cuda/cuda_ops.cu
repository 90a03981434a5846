// SPDX-License-Identifier: MIT
/*
 * cuda_ops.cu - the ops of the Llama and ONNX runtimes as device kernels,
 * each the device twin of a CPU op (kernels/llm/ops.c, attention.c,
 * kernels/onnx/op_norm.c) and tested against it (tests/test_cuda.c).
 *
 * Every launcher checks its arguments on the host (-EINVAL before anything
 * is queued), launches on the context's stream and checks the launch.
 * No fast math: the build keeps IEEE division and square root, and where
 * the CPU's rounding must be reproduced exactly (rope, the quantization of
 * x) the products and sums are written with __fmul_rn/__fadd_rn, which the
 * compiler never contracts into an FMA.
 */
#include <math.h>
#include <string.h>

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include "cuda/cuda_impl.h"

#define FULL 0xffffffffu
#define ROW_THREADS 256		/* threads of a block that owns one row */
#define EW_THREADS 256		/* threads per block of the element-wise kernels */
#define MAX_HEAD_DIM 256	/* attention keeps head_dim / 32 values per lane */

/* ---- helpers ---------------------------------------------------------------------- */

static __device__ __forceinline__ float warp_sum(float v)
{
	for (int o = 16; o; o >>= 1)
		v += __shfl_xor_sync(FULL, v, o);
	return v;
}

static __device__ __forceinline__ float warp_max(float v)
{
	for (int o = 16; o; o >>= 1)
		v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
	return v;
}

/* Sum (max when is_max) over the block; every thread gets the result.
 * sh holds 32 floats; blockDim.x is a multiple of 32. */
static __device__ float block_reduce(float v, float *sh, bool is_max)
{
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;

	v = is_max ? warp_max(v) : warp_sum(v);
	__syncthreads();	/* sh may still be read from a previous call */
	if (lane == 0)
		sh[w] = v;
	__syncthreads();
	if (w == 0) {
		float id = is_max ? -INFINITY : 0.0f;

		v = lane < nw ? sh[lane] : id;
		v = is_max ? warp_max(v) : warp_sum(v);
		if (lane == 0)
			sh[0] = v;
	}
	__syncthreads();
	return sh[0];
}

static __device__ __forceinline__ float f16(uint16_t h)
{
	return __half2float(__ushort_as_half(h));
}

/* Grid of element-wise kernels: enough blocks, capped; they loop. */
static unsigned ew_blocks(size_t n)
{
	size_t b = (n + EW_THREADS - 1) / EW_THREADS;

	return (unsigned)(b > 65535 * 8 ? 65535 * 8 : b);
}

/* Launch epilogue shared by every launcher. */
#define LAUNCHED(c) COPRO_CK_LAUNCH(c)

/* ---- bias + activation (the Gemm epilogue) ---------------------------------------- */

static __global__ void bias_act_k(float *y, const float *bias, size_t rows, size_t cols, int act,
				  float alpha)
{
	const size_t n = rows * cols;

	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		float v = y[i];

		if (bias)
			v += bias[i % cols];
		switch (act) {
		case COPRO_CUDA_ACT_RELU:
			v = v < 0.0f ? 0.0f : v;
			break;
		case COPRO_CUDA_ACT_LEAKY:
			v = v >= 0.0f ? v : v * alpha;
			break;
		case COPRO_CUDA_ACT_GELU_ERF:
			v = 0.5f * v * (1.0f + erff(v * 0.70710678118654752f));
			break;
		case COPRO_CUDA_ACT_SIGMOID:
			if (v >= 0.0f) {
				v = 1.0f / (1.0f + expf(-v));
			} else {
				float e = expf(v);

				v = e / (1.0f + e);
			}
			break;
		case COPRO_CUDA_ACT_TANH:
			v = tanhf(v);
			break;
		}
		y[i] = v;
	}
}

extern "C" int copro_cuda_bias_act(struct copro_cuda_ctx *c, float *y, const float *bias,
				   size_t rows, size_t cols, int act, float alpha)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (act < COPRO_CUDA_ACT_NONE || act > COPRO_CUDA_ACT_TANH || (rows && cols && !y))
		return -EINVAL;
	if (!rows || !cols || (!bias && act == COPRO_CUDA_ACT_NONE))
		return 0;
	bias_act_k<<<ew_blocks(rows * cols), EW_THREADS, 0, c->stream>>>(y, bias, rows, cols, act,
									 alpha);
	return LAUNCHED(c);
}

/* ---- softmax, RMSNorm, LayerNorm: one block per row --------------------------------- */

static __global__ void softmax_k(float *x, size_t n)
{
	__shared__ float sh[32];
	float *r = x + blockIdx.x * n;
	float mx = -INFINITY, sum = 0.0f;

	for (size_t i = threadIdx.x; i < n; i += blockDim.x)
		mx = fmaxf(mx, r[i]);
	mx = block_reduce(mx, sh, true);
	for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
		float e = expf(r[i] - mx);

		r[i] = e;
		sum += e;
	}
	sum = block_reduce(sum, sh, false);
	const float inv = 1.0f / sum;

	for (size_t i = threadIdx.x; i < n; i += blockDim.x)
		r[i] *= inv;
}

/* Rows go to gridDim.x, which takes up to 2^31 - 1. */
static int rows_ok(size_t rows)
{
	return rows < (1u << 31);
}

extern "C" int copro_cuda_softmax_rows(struct copro_cuda_ctx *c, float *x, size_t rows, size_t n)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!rows || !n)
		return 0;
	if (!x || !rows_ok(rows))
		return -EINVAL;
	softmax_k<<<(unsigned)rows, ROW_THREADS, 0, c->stream>>>(x, n);
	return LAUNCHED(c);
}

static __global__ void rmsnorm_k(float *out, const float *x, const float *w, size_t n, float eps)
{
	__shared__ float sh[32];
	const float *r = x + blockIdx.x * n;
	float *o = out + blockIdx.x * n;
	float ss = 0.0f;

	for (size_t i = threadIdx.x; i < n; i += blockDim.x)
		ss += r[i] * r[i];
	ss = block_reduce(ss, sh, false);
	/* copro_llm_rmsnorm: 1 / sqrtf(sumsq / n + eps), then (x * scale) * w */
	const float scale = 1.0f / sqrtf(ss / (float)n + eps);

	for (size_t i = threadIdx.x; i < n; i += blockDim.x)
		o[i] = __fmul_rn(__fmul_rn(r[i], scale), w[i]);
}

extern "C" int copro_cuda_rmsnorm_rows(struct copro_cuda_ctx *c, float *out, const float *x,
				       const float *w, size_t rows, size_t n, float eps)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!rows || !n)
		return 0;
	if (!out || !x || !w || !rows_ok(rows))
		return -EINVAL;
	rmsnorm_k<<<(unsigned)rows, ROW_THREADS, 0, c->stream>>>(out, x, w, n, eps);
	return LAUNCHED(c);
}

static __global__ void layernorm_k(float *out, const float *x, const float *scale,
				   const float *bias, size_t n, float eps)
{
	__shared__ float sh[32];
	const float *r = x + blockIdx.x * n;
	float *o = out + blockIdx.x * n;
	float s = 0.0f;

	/* Two passes as on the CPU: the mean, then squares about it. */
	for (size_t i = threadIdx.x; i < n; i += blockDim.x)
		s += r[i];
	const float mean = block_reduce(s, sh, false) / (float)n;

	s = 0.0f;
	for (size_t i = threadIdx.x; i < n; i += blockDim.x)
		s += (r[i] - mean) * (r[i] - mean);
	const float var = block_reduce(s, sh, false) / (float)n;
	const float inv = 1.0f / sqrtf(var + eps);

	for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
		float v = (r[i] - mean) * inv * scale[i];

		o[i] = bias ? v + bias[i] : v;
	}
}

extern "C" int copro_cuda_layernorm_rows(struct copro_cuda_ctx *c, float *out, const float *x,
					 const float *scale, const float *bias, size_t rows,
					 size_t n, float eps)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!rows || !n)
		return 0;
	if (!out || !x || !scale || !rows_ok(rows))
		return -EINVAL;
	layernorm_k<<<(unsigned)rows, ROW_THREADS, 0, c->stream>>>(out, x, scale, bias, n, eps);
	return LAUNCHED(c);
}

/* ---- rope ------------------------------------------------------------------------------ */

extern "C" void copro_cuda_rope_freqs(float *freqs, uint32_t rot_dim, float base)
{
	/* kernels/llm/ops.c's expression, compiled for the host: same libm powf. */
	for (uint32_t i = 0; i < rot_dim / 2; i++)
		freqs[i] = 1.0f / powf(base, (float)(2 * i) / (float)rot_dim);
}

/* One thread per (token, head, pair). */
static __global__ void rope_k(float *x, uint32_t n_tok, uint32_t n_heads, uint32_t head_dim,
			      uint32_t half, const int32_t *pos, const float *freqs, int neox)
{
	const size_t total = (size_t)n_tok * n_heads * half;

	for (size_t g = blockIdx.x * (size_t)blockDim.x + threadIdx.x; g < total;
	     g += (size_t)gridDim.x * blockDim.x) {
		const uint32_t i = (uint32_t)(g % half);
		const size_t th = g / half;		/* token * n_heads + head */
		const uint32_t t = (uint32_t)(th / n_heads);
		float *v = x + th * head_dim;
		const float val = __fmul_rn((float)pos[t], freqs[i]);
		const float cs = cosf(val), sn = sinf(val);
		const uint32_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;
		const float a = v[i0], b = v[i1];

		v[i0] = __fsub_rn(__fmul_rn(a, cs), __fmul_rn(b, sn));
		v[i1] = __fadd_rn(__fmul_rn(a, sn), __fmul_rn(b, cs));
	}
}

extern "C" int copro_cuda_rope(struct copro_cuda_ctx *c, float *x, uint32_t n_tok,
			       uint32_t n_heads, uint32_t head_dim, uint32_t rot_dim,
			       const int32_t *pos, const float *freqs, int neox)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!rot_dim || rot_dim % 2 || rot_dim > head_dim)
		return -EINVAL;
	if (!n_tok || !n_heads)
		return 0;
	if (!x || !pos || !freqs)
		return -EINVAL;
	rope_k<<<ew_blocks((size_t)n_tok * n_heads * (rot_dim / 2)), EW_THREADS, 0, c->stream>>>(
		x, n_tok, n_heads, head_dim, rot_dim / 2, pos, freqs, neox);
	return LAUNCHED(c);
}

/* ---- swiglu, add, gather, convert ------------------------------------------------------ */

static __global__ void swiglu_k(float *out, const float *gate, const float *up, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		const float g = gate[i];

		out[i] = __fmul_rn(g / (1.0f + expf(-g)), up[i]);
	}
}

extern "C" int copro_cuda_swiglu(struct copro_cuda_ctx *c, float *out, const float *gate,
				 const float *up, size_t n)
{
	int ret = copro_cuda_enter(c);

	if (ret || !n)
		return ret;
	if (!out || !gate || !up)
		return -EINVAL;
	swiglu_k<<<ew_blocks(n), EW_THREADS, 0, c->stream>>>(out, gate, up, n);
	return LAUNCHED(c);
}

static __global__ void add_k(float *y, const float *x, size_t n)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x)
		y[i] += x[i];
}

extern "C" int copro_cuda_add(struct copro_cuda_ctx *c, float *y, const float *x, size_t n)
{
	int ret = copro_cuda_enter(c);

	if (ret || !n)
		return ret;
	if (!y || !x)
		return -EINVAL;
	add_k<<<ew_blocks(n), EW_THREADS, 0, c->stream>>>(y, x, n);
	return LAUNCHED(c);
}

/* One block per output row. */
static __global__ void embed_k(uint32_t type, const uint8_t *table, size_t row_bytes,
			       uint32_t n_vocab, uint32_t dim, const int32_t *ids, float *out)
{
	const int32_t id = ids[blockIdx.x];
	float *o = out + (size_t)blockIdx.x * dim;

	if (id < 0 || (uint32_t)id >= n_vocab) {
		for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x)
			o[i] = __int_as_float(0x7fc00000);
		return;
	}
	const uint8_t *row = table + (size_t)id * row_bytes;

	for (uint32_t i = threadIdx.x; i < dim; i += blockDim.x) {
		const uint32_t b = i / COPRO_QK, j = i % COPRO_QK;
		float v;

		switch (type) {
		case COPRO_GGML_F32:
			v = ((const float *)row)[i];
			break;
		case COPRO_GGML_F16:
			v = f16(((const uint16_t *)row)[i]);
			break;
		case COPRO_GGML_Q8_0: {
			const uint8_t *blk = row + (size_t)b * sizeof(struct copro_block_q8_0);

			v = f16(*(const uint16_t *)blk) * (float)(int8_t)blk[2 + j];
			break;
		}
		default: {	/* Q4_0 */
			const uint8_t *blk = row + (size_t)b * sizeof(struct copro_block_q4_0);
			const uint8_t q = blk[2 + (j & 15)];

			v = f16(*(const uint16_t *)blk) * (float)((j < 16 ? q & 0x0f : q >> 4) - 8);
			break;
		}
		}
		o[i] = v;
	}
}

extern "C" int copro_cuda_embed(struct copro_cuda_ctx *c, uint32_t type, const void *table,
				uint32_t n_vocab, uint32_t dim, const int32_t *ids, uint32_t n,
				float *out)
{
	const size_t row = copro_ggml_row_bytes(type, dim);
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!row || !n_vocab)
		return -EINVAL;
	if (!n)
		return 0;
	if (!table || !ids || !out || n >= (1u << 31))
		return -EINVAL;
	embed_k<<<n, 128, 0, c->stream>>>(type, (const uint8_t *)table, row, n_vocab, dim, ids,
					  out);
	return LAUNCHED(c);
}

static __global__ void gather_k(float *out, const float *x, const int32_t *idx, size_t n)
{
	const float *r = x + (size_t)idx[blockIdx.x] * n;
	float *o = out + (size_t)blockIdx.x * n;

	for (size_t i = threadIdx.x; i < n; i += blockDim.x)
		o[i] = r[i];
}

extern "C" int copro_cuda_gather_rows(struct copro_cuda_ctx *c, float *out, const float *x,
				      const int32_t *idx, uint32_t n_idx, size_t n)
{
	int ret = copro_cuda_enter(c);

	if (ret || !n_idx || !n)
		return ret;
	if (!out || !x || !idx || n_idx >= (1u << 31))
		return -EINVAL;
	gather_k<<<n_idx, 128, 0, c->stream>>>(out, x, idx, n);
	return LAUNCHED(c);
}

static __global__ void convert_k(const float *x, void *out, size_t n, int dtype)
{
	for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
	     i += (size_t)gridDim.x * blockDim.x) {
		if (dtype == COPRO_CUDA_F16)
			((__half *)out)[i] = __float2half_rn(x[i]);
		else
			((__nv_bfloat16 *)out)[i] = __float2bfloat16_rn(x[i]);
	}
}

extern "C" int copro_cuda_convert(struct copro_cuda_ctx *c, int dtype, const float *x, void *out,
				  size_t n)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (dtype != COPRO_CUDA_F16 && dtype != COPRO_CUDA_BF16)
		return -EINVAL;
	if (!n)
		return 0;
	if (!x || !out)
		return -EINVAL;
	convert_k<<<ew_blocks(n), EW_THREADS, 0, c->stream>>>(x, out, n, dtype);
	return LAUNCHED(c);
}

/* ---- matmul: cuBLAS for F32/F16/BF16 -------------------------------------------------- */

static const int INT_LIM = 0x7fffffff;

extern "C" int copro_cuda_gemm(struct copro_cuda_ctx *c, int dtype, const void *x, const void *w,
			       float *y, size_t m, size_t n, size_t k)
{
	static const cudaDataType_t types[] = { CUDA_R_32F, CUDA_R_16F, CUDA_R_16BF };
	const float one = 1.0f, zero = 0.0f;
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (dtype < COPRO_CUDA_F32 || dtype > COPRO_CUDA_BF16 || m > (size_t)INT_LIM ||
	    n > (size_t)INT_LIM || k > (size_t)INT_LIM || !k)
		return -EINVAL;
	if (!m || !n)
		return 0;
	if (!x || !w || !y)
		return -EINVAL;
	/*
	 * Row-major y (m, n) is column-major y^T (n, m) = W (n, k) x^T (k, m):
	 * row-major W (n, k) read column-major is W^T (k, n), hence OP_T on it;
	 * row-major x (m, k) read column-major is x^T (k, m), taken as it is.
	 */
	return COPRO_CK(c, cublasGemmEx(c->blas, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)m, (int)k,
					&one, w, types[dtype], (int)k, x, types[dtype], (int)k,
					&zero, y, CUDA_R_32F, (int)n, CUBLAS_COMPUTE_32F,
					CUBLAS_GEMM_DEFAULT));
}

/* ---- matmul: Q8_0/Q4_0 against x quantized to Q8_0 ------------------------------------- */

/* The quantized x in scratch: qs (m, k) int8, then the scales (m, k / 32) f32. */
static size_t xq_qs_bytes(size_t m, size_t k)
{
	return (m * k + 255) & ~(size_t)255;
}

extern "C" size_t copro_cuda_matmul_scratch(uint32_t type, size_t m, size_t k)
{
	if (!copro_ggml_row_bytes(type, k))
		return 0;
	switch (type) {
	case COPRO_GGML_F16:
		return m * k * sizeof(__half);
	case COPRO_GGML_Q8_0:
	case COPRO_GGML_Q4_0:
		return xq_qs_bytes(m, k) + m * (k / COPRO_QK) * sizeof(float);
	default:
		return 0;
	}
}

/*
 * One warp per block of 32: copro_quantize_row_q8_0's arithmetic exactly
 * (amax, d = amax / 127, id = 1 / d, q = roundf(x * id), d stored as fp16),
 * so both sides feed the integer dots the same quants and scales.
 */
static __global__ void quantize_k(const float *x, size_t n_blocks, int8_t *qs, float *d)
{
	const size_t warps = (size_t)gridDim.x * (blockDim.x >> 5);
	const int lane = threadIdx.x & 31;

	for (size_t b = blockIdx.x * (size_t)(blockDim.x >> 5) + (threadIdx.x >> 5); b < n_blocks;
	     b += warps) {
		const float v = x[b * COPRO_QK + lane];
		/* x - x is 0 for finite x, NaN for NaN or Inf (as the CPU tests it) */
		const float z = warp_sum(v - v);
		const float amax = warp_max(fabsf(v));

		if (z == 0.0f) {
			const float dd = amax / 127.0f;
			const float id = dd != 0.0f ? 1.0f / dd : 0.0f;

			qs[b * COPRO_QK + lane] = (int8_t)roundf(__fmul_rn(v, id));
			if (lane == 0)
				d[b] = __half2float(__float2half_rn(dd));
		} else {
			qs[b * COPRO_QK + lane] = 0;
			if (lane == 0)
				d[b] = __int_as_float(0x7fc00000);
		}
	}
}

extern "C" int copro_cuda_quantize_x(struct copro_cuda_ctx *c, const float *x, size_t m,
				     size_t k, void *xq)
{
	const size_t nb = m * (k / COPRO_QK);
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!k || k % COPRO_QK)
		return -EINVAL;
	if (!m)
		return 0;
	if (!x || !xq)
		return -EINVAL;
	quantize_k<<<ew_blocks(nb * COPRO_QK), EW_THREADS, 0, c->stream>>>(
		x, nb, (int8_t *)xq, (float *)((uint8_t *)xq + xq_qs_bytes(m, k)));
	return LAUNCHED(c);
}

#define MMQ_WARPS 4	/* weight rows per CUDA block */
#define MMQ_TOK 8	/* tokens whose sums one warp holds at once */

/* Two 2-byte-aligned halves as one little-endian 32-bit word. */
static __device__ __forceinline__ int ld32(const uint16_t *p)
{
	return (int)((uint32_t)p[0] | ((uint32_t)p[1] << 16));
}

/*
 * Block b of a weight row as 8 words of 4 signed bytes in element order, and
 * its scale. Blocks are 34 (Q8_0) or 18 (Q4_0) bytes, so only 2-byte loads
 * are aligned.
 */
template <uint32_t TYPE>
static __device__ __forceinline__ float w_block(const uint8_t *row, uint32_t b, int *q)
{
	if (TYPE == COPRO_GGML_Q8_0) {
		const uint16_t *p = (const uint16_t *)(row + (size_t)b * 34);

#pragma unroll
		for (int j = 0; j < 8; j++)
			q[j] = ld32(p + 1 + 2 * j);
		return f16(p[0]);
	}
	const uint16_t *p = (const uint16_t *)(row + (size_t)b * 18);

	/* byte i of word j is qs[4j + i]: its low nibble is element 4j + i, its
	 * high nibble element 4j + i + 16; each minus 8, per byte */
#pragma unroll
	for (int j = 0; j < 4; j++) {
		const uint32_t v = (uint32_t)ld32(p + 1 + 2 * j);

		q[j] = (int)__vsub4(v & 0x0f0f0f0fu, 0x08080808u);
		q[j + 4] = (int)__vsub4((v >> 4) & 0x0f0f0f0fu, 0x08080808u);
	}
	return f16(p[0]);
}

/*
 * y (m, n) = x W^T, one warp per weight row (decode-oriented: W is read
 * once per MMQ_TOK tokens). Lane l takes blocks l, l + 32, ...; each block
 * is one integer dot of 32 (8 dp4a), times both scales, added in f32.
 */
template <uint32_t TYPE>
static __global__ void mmq_k(const uint8_t *w, size_t wrow, uint32_t nb, const int8_t *xqs,
			     const float *xd, uint32_t m, uint32_t n, float *y)
{
	const uint32_t r = blockIdx.x * MMQ_WARPS + (threadIdx.x >> 5);
	const int lane = threadIdx.x & 31;

	if (r >= n)
		return;
	const uint8_t *row = w + (size_t)r * wrow;
	const size_t k = (size_t)nb * COPRO_QK;

	for (uint32_t t0 = 0; t0 < m; t0 += MMQ_TOK) {
		const uint32_t tn = m - t0 < MMQ_TOK ? m - t0 : MMQ_TOK;
		float acc[MMQ_TOK];

#pragma unroll
		for (int t = 0; t < MMQ_TOK; t++)
			acc[t] = 0.0f;
		for (uint32_t b = lane; b < nb; b += 32) {
			int q[8];
			const float dw = w_block<TYPE>(row, b, q);

#pragma unroll
			for (uint32_t t = 0; t < MMQ_TOK; t++) {
				if (t < tn) {
					const size_t xb = (size_t)(t0 + t) * nb + b;
					const int4 *xv = (const int4 *)(xqs + (size_t)(t0 + t) * k +
									(size_t)b * COPRO_QK);
					const int4 a0 = xv[0], a1 = xv[1];
					int s = 0;

					s = __dp4a(q[0], a0.x, s);
					s = __dp4a(q[1], a0.y, s);
					s = __dp4a(q[2], a0.z, s);
					s = __dp4a(q[3], a0.w, s);
					s = __dp4a(q[4], a1.x, s);
					s = __dp4a(q[5], a1.y, s);
					s = __dp4a(q[6], a1.z, s);
					s = __dp4a(q[7], a1.w, s);
					acc[t] += dw * xd[xb] * (float)s;
				}
			}
		}
#pragma unroll
		for (uint32_t t = 0; t < MMQ_TOK; t++) {
			const float v = warp_sum(acc[t]);

			if (lane == 0 && t < tn)
				y[(size_t)(t0 + t) * n + r] = v;
		}
	}
}

extern "C" int copro_cuda_matmul_xq(struct copro_cuda_ctx *c, uint32_t type, const void *w,
				    size_t n, size_t k, const void *xq, size_t m, float *y)
{
	const size_t wrow = copro_ggml_row_bytes(type, k);
	const unsigned grid = (unsigned)((n + MMQ_WARPS - 1) / MMQ_WARPS);
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if ((type != COPRO_GGML_Q8_0 && type != COPRO_GGML_Q4_0) || !wrow || n > (size_t)INT_LIM ||
	    m > (size_t)INT_LIM || k > (size_t)INT_LIM)
		return -EINVAL;
	if (!m || !n)
		return 0;
	if (!w || !xq || !y)
		return -EINVAL;
	const int8_t *qs = (const int8_t *)xq;
	const float *d = (const float *)((const uint8_t *)xq + xq_qs_bytes(m, k));

	if (type == COPRO_GGML_Q8_0)
		mmq_k<COPRO_GGML_Q8_0><<<grid, MMQ_WARPS * 32, 0, c->stream>>>(
			(const uint8_t *)w, wrow, (uint32_t)(k / COPRO_QK), qs, d, (uint32_t)m,
			(uint32_t)n, y);
	else
		mmq_k<COPRO_GGML_Q4_0><<<grid, MMQ_WARPS * 32, 0, c->stream>>>(
			(const uint8_t *)w, wrow, (uint32_t)(k / COPRO_QK), qs, d, (uint32_t)m,
			(uint32_t)n, y);
	return LAUNCHED(c);
}

extern "C" int copro_cuda_matmul(struct copro_cuda_ctx *c, uint32_t type, const void *w,
				 size_t n, size_t k, const float *x, size_t m, float *y,
				 void *scratch)
{
	int ret;

	if (!copro_ggml_row_bytes(type, k))
		return -EINVAL;
	switch (type) {
	case COPRO_GGML_F32:
		return copro_cuda_gemm(c, COPRO_CUDA_F32, x, w, y, m, n, k);
	case COPRO_GGML_F16:
		if ((ret = copro_cuda_convert(c, COPRO_CUDA_F16, x, scratch, m * k)))
			return ret;
		return copro_cuda_gemm(c, COPRO_CUDA_F16, scratch, w, y, m, n, k);
	case COPRO_GGML_Q8_0:
	case COPRO_GGML_Q4_0:
		if ((ret = copro_cuda_quantize_x(c, x, m, k, scratch)))
			return ret;
		return copro_cuda_matmul_xq(c, type, w, n, k, scratch, m, y);
	}
	return -EINVAL;
}

/* ---- paged attention ------------------------------------------------------------------- */

#define ATT_WARPS 4
#define ATT_PER_LANE (MAX_HEAD_DIM / 32)

/* Where the layout puts (block, layer, kv head, slot): floats from the pool's base. */
struct kv_geo {
	size_t block_stride, layer_stride, head_stride;
	uint32_t n_blocks, head_dim, block_tokens, n_kv_heads;
};

static kv_geo geo_of(const struct copro_kv_view *kv)
{
	kv_geo g;

	g.block_stride = kv->block_stride;
	g.layer_stride = kv->layer_stride;
	g.head_stride = kv->head_stride;
	g.n_blocks = kv->n_blocks;
	g.head_dim = kv->head_dim;
	g.block_tokens = kv->block_tokens;
	g.n_kv_heads = kv->n_kv_heads;
	return g;
}

/* One thread per element of k (n_tok, n_kv_heads, head_dim). */
static __global__ void kv_write_k(float *kc, float *vc, kv_geo g, uint32_t layer,
				  const uint32_t *tables, uint32_t tstride, const int32_t *pos,
				  uint32_t n_tok, const float *k, const float *v)
{
	const uint32_t kv_dim = g.n_kv_heads * g.head_dim;
	const size_t total = (size_t)n_tok * kv_dim;

	for (size_t e = blockIdx.x * (size_t)blockDim.x + threadIdx.x; e < total;
	     e += (size_t)gridDim.x * blockDim.x) {
		const uint32_t t = (uint32_t)(e / kv_dim), r = (uint32_t)(e % kv_dim);
		const uint32_t p = (uint32_t)pos[t], bi = p / g.block_tokens;

		if (pos[t] < 0 || bi >= tstride)
			continue;
		const uint32_t blk = tables[(size_t)t * tstride + bi];

		if (blk >= g.n_blocks)
			continue;
		const size_t off = blk * g.block_stride + layer * g.layer_stride +
				   (r / g.head_dim) * g.head_stride +
				   (size_t)(p % g.block_tokens) * g.head_dim + r % g.head_dim;

		kc[off] = k[e];
		vc[off] = v[e];
	}
}

extern "C" int copro_cuda_kv_write(struct copro_cuda_ctx *c, const struct copro_kv_view *kv,
				   uint32_t layer, const uint32_t *tables, uint32_t table_stride,
				   const int32_t *pos, uint32_t n_tok, const float *k,
				   const float *v)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!kv || layer >= kv->n_layers || !kv->head_dim || !kv->block_tokens || !kv->n_kv_heads)
		return -EINVAL;
	if (!n_tok)
		return 0;
	if (!kv->k || !kv->v || !tables || !table_stride || !pos || !k || !v)
		return -EINVAL;
	kv_write_k<<<ew_blocks((size_t)n_tok * kv->n_kv_heads * kv->head_dim), EW_THREADS, 0,
		     c->stream>>>(kv->k, kv->v, geo_of(kv), layer, tables, table_stride, pos,
				  n_tok, k, v);
	return LAUNCHED(c);
}

/*
 * Block (t, h): token t's query head h over positions [0, pos[t]]. Warp w
 * takes positions w, w + ATT_WARPS, ... with an online softmax (running max
 * m, running sum l, running weighted sum of V in acc, rescaled when m
 * grows); lane l holds elements l, l + 32, ... of q and acc. The warps'
 * partial states are then merged through shared memory.
 */
static __global__ void attention_k(const float *kc, const float *vc, kv_geo g, uint32_t layer,
				   const uint32_t *tables, uint32_t tstride, const int32_t *pos,
				   const float *q, uint32_t n_heads, uint32_t group, float scale,
				   float *out)
{
	__shared__ float s_m[ATT_WARPS], s_l[ATT_WARPS], s_acc[ATT_WARPS][MAX_HEAD_DIM];
	__shared__ int s_bad;
	const uint32_t t = blockIdx.x / n_heads, h = blockIdx.x % n_heads, kh = h / group;
	const uint32_t hd = g.head_dim, lane = threadIdx.x & 31, w = threadIdx.x >> 5;
	const uint32_t *tab = tables + (size_t)t * tstride;
	const float *qh = q + ((size_t)t * n_heads + h) * hd;
	float *oh = out + ((size_t)t * n_heads + h) * hd;
	const size_t base = (size_t)layer * g.layer_stride + (size_t)kh * g.head_stride;
	float qr[ATT_PER_LANE], acc[ATT_PER_LANE];
	float m = -INFINITY, l = 0.0f;

	if (threadIdx.x == 0)
		s_bad = pos[t] < 0 || (uint32_t)pos[t] / g.block_tokens >= tstride;
	__syncthreads();
	if (s_bad) {	/* a position the table does not cover: NaN, not a fault */
		for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x)
			oh[d] = __int_as_float(0x7fc00000);
		return;
	}
	const uint32_t n_ctx = (uint32_t)pos[t] + 1;

#pragma unroll
	for (int i = 0; i < ATT_PER_LANE; i++) {
		const uint32_t d = lane + 32 * i;

		qr[i] = d < hd ? qh[d] : 0.0f;
		acc[i] = 0.0f;
	}
	for (uint32_t p = w; p < n_ctx; p += ATT_WARPS) {
		const uint32_t blk = tab[p / g.block_tokens];

		if (blk >= g.n_blocks) {	/* poison this warp's state, see above */
			m = l = __int_as_float(0x7fc00000);
			break;
		}
		const size_t off = blk * g.block_stride + base +
				   (size_t)(p % g.block_tokens) * hd;
		const float *kr = kc + off, *vr = vc + off;
		float s = 0.0f;

#pragma unroll
		for (int i = 0; i < ATT_PER_LANE; i++) {
			const uint32_t d = lane + 32 * i;

			if (d < hd)
				s += qr[i] * kr[d];
		}
		s = warp_sum(s) * scale;
		const float mn = fmaxf(m, s);
		const float corr = expf(m - mn), pw = expf(s - mn);

		l = l * corr + pw;
#pragma unroll
		for (int i = 0; i < ATT_PER_LANE; i++) {
			const uint32_t d = lane + 32 * i;

			if (d < hd)
				acc[i] = acc[i] * corr + pw * vr[d];
		}
		m = mn;
	}
	if (lane == 0) {
		s_m[w] = m;
		s_l[w] = l;
	}
#pragma unroll
	for (int i = 0; i < ATT_PER_LANE; i++) {
		const uint32_t d = lane + 32 * i;

		if (d < hd)
			s_acc[w][d] = acc[i];
	}
	__syncthreads();
	/* Warps that saw no position have m = -Inf, l = 0: weight exp(-Inf) = 0.
	 * Warp 0 always saw position 0, so M is finite for finite inputs. */
	float M = s_m[0], L = 0.0f;

	for (int i = 1; i < ATT_WARPS; i++)
		M = fmaxf(M, s_m[i]);
	for (int i = 0; i < ATT_WARPS; i++)
		L += s_m[i] == -INFINITY ? 0.0f : s_l[i] * expf(s_m[i] - M);
	for (uint32_t d = threadIdx.x; d < hd; d += blockDim.x) {
		float o = 0.0f;

		for (int i = 0; i < ATT_WARPS; i++)
			if (s_m[i] != -INFINITY)
				o += s_acc[i][d] * expf(s_m[i] - M);
		oh[d] = o / L;
	}
}

extern "C" int copro_cuda_paged_attention(struct copro_cuda_ctx *c,
					  const struct copro_kv_view *kv, uint32_t layer,
					  const uint32_t *tables, uint32_t table_stride,
					  const int32_t *pos, uint32_t n_tok, const float *q,
					  uint32_t n_heads, float *out)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!kv || layer >= kv->n_layers || !kv->head_dim || kv->head_dim > MAX_HEAD_DIM ||
	    !kv->block_tokens || !kv->n_kv_heads || !n_heads || n_heads % kv->n_kv_heads)
		return -EINVAL;
	if (!n_tok)
		return 0;
	if (!kv->k || !kv->v || !tables || !table_stride || !pos || !q || !out ||
	    (uint64_t)n_tok * n_heads >= (1u << 31))
		return -EINVAL;
	/* copro_paged_attention's scale, computed the same way */
	const float scale = 1.0f / sqrtf((float)kv->head_dim);

	attention_k<<<n_tok * n_heads, ATT_WARPS * 32, 0, c->stream>>>(
		kv->k, kv->v, geo_of(kv), layer, tables, table_stride, pos, q, n_heads,
		n_heads / kv->n_kv_heads, scale, out);
	return LAUNCHED(c);
}

/* ---- argmax and top-k -------------------------------------------------------------------- */

/*
 * The order both use: a before b when a's value is larger, or equal with a
 * lower index; NaN (and "none", index -1) after everything.
 */
static __device__ __forceinline__ bool before(float av, int ai, float bv, int bi)
{
	if (ai < 0)
		return false;
	if (bi < 0)
		return true;
	return av > bv || (av == bv && ai < bi);
}

/* The block's best (value, index) by before(); every thread gets it. */
static __device__ void block_best(float *v, int *i, float *sv, int *si)
{
	const int lane = threadIdx.x & 31, w = threadIdx.x >> 5, nw = blockDim.x >> 5;

	for (int o = 16; o; o >>= 1) {
		const float ov = __shfl_xor_sync(FULL, *v, o);
		const int oi = __shfl_xor_sync(FULL, *i, o);

		if (before(ov, oi, *v, *i)) {
			*v = ov;
			*i = oi;
		}
	}
	__syncthreads();
	if (lane == 0) {
		sv[w] = *v;
		si[w] = *i;
	}
	__syncthreads();
	if (w == 0) {
		*v = lane < nw ? sv[lane] : 0.0f;
		*i = lane < nw ? si[lane] : -1;
		for (int o = 16; o; o >>= 1) {
			const float ov = __shfl_xor_sync(FULL, *v, o);
			const int oi = __shfl_xor_sync(FULL, *i, o);

			if (before(ov, oi, *v, *i)) {
				*v = ov;
				*i = oi;
			}
		}
		if (lane == 0) {
			sv[0] = *v;
			si[0] = *i;
		}
	}
	__syncthreads();
	*v = sv[0];
	*i = si[0];
}

static __global__ void argmax_k(const float *x, size_t n, int32_t *out)
{
	__shared__ float sv[32];
	__shared__ int si[32];
	const float *r = x + blockIdx.x * n;
	float bv = 0.0f;
	int bi = -1;

	for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
		const float v = r[i];

		if (!isnan(v) && before(v, (int)i, bv, bi)) {
			bv = v;
			bi = (int)i;
		}
	}
	block_best(&bv, &bi, sv, si);
	if (threadIdx.x == 0)
		out[blockIdx.x] = bi < 0 ? 0 : bi;
}

extern "C" int copro_cuda_argmax_rows(struct copro_cuda_ctx *c, const float *x, size_t rows,
				      size_t n, int32_t *out)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (n > (size_t)INT_LIM || !rows_ok(rows))
		return -EINVAL;
	if (!rows)
		return 0;
	if (!out || (n && !x))
		return -EINVAL;
	if (!n)
		return copro_cuda_memset(c, out, 0, rows * sizeof(*out));
	argmax_k<<<(unsigned)rows, ROW_THREADS, 0, c->stream>>>(x, n, out);
	return LAUNCHED(c);
}

/*
 * k rounds over the row; round j takes the best element strictly after
 * round j - 1's pick in before() order, so no marks are needed and equal
 * values come out by index. O(k n) per row: fine for k of tens over a
 * vocabulary; a radix select would be the next step if it ever shows.
 */
static __global__ void topk_k(const float *x, size_t n, uint32_t k, int32_t *ids, float *vals)
{
	__shared__ float sv[32];
	__shared__ int si[32];
	const float *r = x + blockIdx.x * n;
	float pv = 0.0f;
	int pi = -1;	/* the previous pick; -1 before the first */

	for (uint32_t j = 0; j < k; j++) {
		float bv = 0.0f;
		int bi = -1;

		if (j == 0 || pi >= 0) {
			for (size_t i = threadIdx.x; i < n; i += blockDim.x) {
				const float v = r[i];

				if (isnan(v) || (pi >= 0 && !before(pv, pi, v, (int)i)))
					continue;
				if (before(v, (int)i, bv, bi)) {
					bv = v;
					bi = (int)i;
				}
			}
			block_best(&bv, &bi, sv, si);
		}
		if (threadIdx.x == 0) {
			ids[(size_t)blockIdx.x * k + j] = bi;
			vals[(size_t)blockIdx.x * k + j] = bi < 0 ? -INFINITY : bv;
		}
		pv = bv;
		pi = bi;
	}
}

extern "C" int copro_cuda_topk_rows(struct copro_cuda_ctx *c, const float *x, size_t rows,
				    size_t n, uint32_t k, int32_t *ids, float *vals)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!k || k > COPRO_CUDA_TOPK_MAX || n > (size_t)INT_LIM || !rows_ok(rows))
		return -EINVAL;
	if (!rows)
		return 0;
	if (!ids || !vals || (n && !x))
		return -EINVAL;
	topk_k<<<(unsigned)rows, ROW_THREADS, 0, c->stream>>>(x, n, k, ids, vals);
	return LAUNCHED(c);
}
