/* SPDX-License-Identifier: MIT */
/*
 * The CPU math of a Llama forward pass: the weight matmul over the GGUF
 * element types (kernels/llm/matmul.c) and the f32 element-wise ops around
 * it (kernels/llm/ops.c).
 *
 * Every kernel has a portable scalar path and, on x86-64, AVX2 (with FMA and
 * F16C) and AVX-512 (F/BW/VL/VNNI) paths chosen at run time. The paths give
 * the same results within float rounding; tests force each one in turn.
 * The environment variable COPRO_LLM_ISA=scalar|avx2|avx512, read once on
 * first use, caps the path (a path the CPU lacks falls back to the best one
 * it has).
 *
 * Nothing here allocates, takes a lock or touches errno; the matmul is safe
 * to run from several threads on disjoint output column ranges.
 */
#ifndef COPRO_LLM_OPS_H
#define COPRO_LLM_OPS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "llm/quant.h"

enum copro_llm_isa {
	COPRO_LLM_ISA_SCALAR = 0,
	COPRO_LLM_ISA_AVX2 = 1,   /* AVX2 + FMA + F16C */
	COPRO_LLM_ISA_AVX512 = 2, /* AVX-512 F/BW/VL/VNNI + F16C */
};

/* The path the kernels take now. */
int copro_llm_isa(void);

/* Whether this CPU can run isa (1) or not (0). */
int copro_llm_isa_supported(int isa);

/* Force a path (tests, benchmarks). Returns 0, or -ENOTSUP when the CPU lacks
 * it, -EINVAL for an unknown one. Not meant to race with running kernels. */
int copro_llm_set_isa(int isa);

/* "scalar", "avx2", "avx512"; NULL for an unknown isa. */
const char *copro_llm_isa_name(int isa);

/* ---- matmul ------------------------------------------------------------ */

/*
 * y = x W^T for a GGUF weight matrix W of n rows of k elements of type
 * (F32, F16, Q8_0, Q4_0), stored row-major as GGUF stores it (row j is
 * copro_ggml_row_bytes(type, k) bytes from w + j * that):
 *
 *	y[t][j] = sum_i x[t][i] * W[j][i]	t < m, n0 <= j < n1
 *
 *	w	(n, k) in type
 *	x	(m, k) f32
 *	y	(m, n) f32; only columns [n0, n1) are written
 *
 * so that a caller can split the rows of W over threads. For Q8_0 and Q4_0,
 * x is first quantized to Q8_0 (copro_quantize_row_q8_0, per token) and the
 * dot products are integer (as llama.cpp does): the result is exact on the
 * quantized x up to float rounding of the per-block scales. A block of x
 * holding NaN or Inf makes every output of that token NaN.
 *
 * scratch: copro_llm_matmul_scratch(type, m, k) bytes (none for F32/F16),
 * 2-byte aligned (that of struct copro_block_q8_0). W is read from memory
 * once per call whatever m is: the kernels keep a few rows of W in cache
 * while all m tokens pass over them. No path depends on how [n0, n1) is
 * cut (OpenBLAS is not used: its sums changed with the split).
 *
 * Returns 0, or -EINVAL when type is not one of the four, k is 0 or not a
 * multiple of 32 for Q8_0/Q4_0, n0 > n1, n1 > n, or a needed pointer is
 * NULL. m == 0 or n0 == n1 does nothing and returns 0.
 */
int copro_llm_matmul(uint32_t type, const void *w, size_t n, size_t k, const float *x,
		     size_t m, float *y, size_t n0, size_t n1, void *scratch);

/* Bytes of scratch copro_llm_matmul needs: m * k / 32 Q8_0 blocks for
 * Q8_0/Q4_0, 0 for F32/F16 (and 0 for an unknown type or a bad k). */
size_t copro_llm_matmul_scratch(uint32_t type, size_t m, size_t k);

/*
 * Quantize x (m, k) to Q8_0 once, for several matmuls that share an input
 * (q, k, v; gate, up): xq gets m * k / 32 blocks, token t's row at
 * xq + t * k / 32. Blocks are those of copro_quantize_row_q8_0, except that
 * a block holding NaN or Inf gets a NaN scale and zero quants (so the NaN
 * reaches the output instead of an undefined float-to-int cast).
 * Returns 0 or -EINVAL (k == 0 or not a multiple of 32, NULL pointer).
 */
int copro_llm_quantize_x(const float *x, size_t m, size_t k, struct copro_block_q8_0 *xq);

/*
 * copro_llm_matmul with x already quantized: xq (m, k / 32) blocks from
 * copro_llm_quantize_x is used for Q8_0/Q4_0 (x may be NULL), x for
 * F32/F16 (xq may be NULL). Same contract and errors otherwise.
 */
int copro_llm_matmul_xq(uint32_t type, const void *w, size_t n, size_t k, const float *x,
			const struct copro_block_q8_0 *xq, size_t m, float *y, size_t n0,
			size_t n1);

/* ---- packed (row-interleaved) Q8_0 / Q4_0 weights -------------------------
 *
 * The batched matmul above spends, per block of 32 and per (row, token), one
 * int8 dot, one int->float convert and one FMA: about 8 multiply-adds per
 * instruction. Packing interleaves the blocks of COPRO_LLM_PACK_R (16)
 * consecutive rows, as llama.cpp's repacked Q8_0 does, so that one AVX-512
 * vpdpbusd multiplies 4 int8 of one token (broadcast) by 4 int8 of each of
 * 16 rows: a block costs 8 vpdpbusd, one convert and one FMA for 16 rows.
 *
 * Layout of one group of 16 rows (row g * 16 + r in lane r), nb = k / 32:
 *
 *	quants	(nb, qbytes) block b: Q8_0: 8 chunks of 64 bytes, chunk j holds
 *		for each row r the 4 bytes w[r][32b + 4j .. + 3] + 128 (unsigned);
 *		Q4_0: 4 chunks of 64 bytes, chunk j holds for each row r the 4
 *		GGUF bytes qs[4j .. 4j + 3] (low nibble element 4j + e, high
 *		nibble element 16 + 4j + e), the nibbles q unsigned, (q - 8) * d.
 *	scales	(nb, 16) fp16, the rows' block scales as the file has them.
 *
 * so a packed matrix takes the bytes of the GGUF one, plus the last group's
 * padding rows (zero weights, zero scales) and up to 32 bytes per group to
 * start each group on a cache line.
 *
 * The sign: vpdpbusd multiplies unsigned by signed bytes. The weights are
 * the unsigned side (Q8_0 stored + 128, Q4_0 nibbles q as they are, used as
 * 16 q), the activation the signed side, and the bias is taken out with a
 * per-(token, block) constant, c = -128 * sum(x q): it starts the integer
 * accumulator, so
 *
 *	Q8_0:	c + sum (w + 128) x  = sum w x
 *	Q4_0:	c + sum 16 q x       = 16 sum (q - 8) x  (the scale is d / 16)
 *
 * exactly, in int32 (|sum| < 2^20). The activation is quantized per token
 * to struct copro_block_q8_x: the Q8_0 block of copro_llm_quantize_x with
 * its scale in f32 and c. All paths (scalar, AVX2, AVX-512) compute, per
 * (row, token), the same integer block sums and then the same float steps
 * in the same order:
 *
 *	acc = 0; for b in 0 .. nb - 1: acc = fmaf((float)S_b, dw_b * dx_b, acc)
 *
 * so their results are bitwise equal, and a token's result depends only on
 * its own x and W, never on m or the other tokens in the call (batch
 * invariance by construction).
 */
#define COPRO_LLM_PACK_R 16

/* A Q8_0 block of an activation for the packed matmul. 40 bytes. */
struct copro_block_q8_x {
	float d;		/* the block scale (f16 value of the Q8_0 block), f32 */
	int32_t c;		/* -128 * sum of qs */
	int8_t qs[COPRO_QK];
};

_Static_assert(sizeof(struct copro_block_q8_x) == 40, "packed-x block is 40 bytes");

struct copro_llm_packed {
	uint32_t type;		/* COPRO_GGML_Q8_0 or COPRO_GGML_Q4_0, the source type */
	uint32_t n, k;		/* the matrix: n rows of k */
	uint32_t nb;		/* blocks per row, k / 32 */
	size_t qbytes;		/* quant bytes of one block of a group: 512 or 256 */
	size_t gbytes;		/* bytes of one group of 16 rows: nb * (qbytes + 32),
				 * rounded up to 64 */
	uint8_t *data;		/* (ceil(n / 16), gbytes), 64-byte aligned */
};

/*
 * Pack w, (n, k) Q8_0 or Q4_0 as GGUF stores it, into *out (allocated;
 * release with copro_llm_pack_free). Returns 0, -EINVAL for another type,
 * n == 0, k == 0 or not a multiple of 32, or a NULL pointer, -ENOMEM.
 */
int copro_llm_pack(uint32_t type, const void *w, size_t n, size_t k,
		   struct copro_llm_packed **out);
void copro_llm_pack_free(struct copro_llm_packed *p);

/* Bytes the packed copy takes. */
size_t copro_llm_pack_bytes(const struct copro_llm_packed *p);

/*
 * Quantize x (m, k) to m * k / 32 packed-x blocks (token t's at
 * xs + t * k / 32): the quants and scale of copro_llm_quantize_x (a block
 * holding NaN or Inf gets a NaN scale, zero quants and c = 0).
 * Returns 0 or -EINVAL (k == 0 or not a multiple of 32, NULL pointer).
 */
int copro_llm_quantize_xs(const float *x, size_t m, size_t k, struct copro_block_q8_x *xs);

/*
 * y[t][j] = sum_i x[t][i] W[j][i] for t < m, n0 <= j < n1, with W packed
 * and x quantized by copro_llm_quantize_xs (m, p->k / 32 blocks); y is
 * (m, p->n), only columns [n0, n1) written (n0, n1 need not be multiples
 * of 16: a group cut by the range is computed whole and stored masked, so
 * threads may take any disjoint ranges). Returns 0, or -EINVAL for n0 > n1,
 * n1 > p->n or a NULL pointer; m == 0 or n0 == n1 does nothing.
 */
int copro_llm_matmul_packed(const struct copro_llm_packed *p, const struct copro_block_q8_x *xs,
			    size_t m, float *y, size_t n0, size_t n1);

/* ---- element-wise ops (f32) ------------------------------------------ */

/* out = x / sqrt(mean(x^2) + eps) * w over one row of n; out may be x. */
void copro_llm_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps);

/* The same over rows rows of n: out (rows, n), x (rows, n), w (n). */
void copro_llm_rmsnorm_rows(float *out, const float *x, const float *w, size_t rows, size_t n,
			    float eps);

/*
 * Rotary position embedding in place on x (n_heads, head_dim), at position
 * pos. The first rot_dim elements of each head are rotated; the rest are
 * left alone. Pair i (i < rot_dim / 2) turns by pos * base^(-2i / rot_dim),
 * computed in float as llama2.c does (1 / powf(base, 2i / (float)rot_dim)).
 * The llama layout (neox false) pairs adjacent elements (x[2i], x[2i+1]);
 * the neox layout pairs x[i] with x[i + rot_dim / 2].
 * Returns 0, or -EINVAL when rot_dim is odd, 0 or above head_dim.
 */
int copro_llm_rope(float *x, size_t n_heads, size_t head_dim, size_t rot_dim, int32_t pos,
		   float freq_base, bool neox);

/*
 * copro_llm_rope in two halves, for a forward pass that turns many vectors
 * at one position: the table cs (rot_dim floats: cos and sin of each pair)
 * of position pos, then the rotation with it. rot_dim must be valid as
 * above (the halves do not check it). The result is bit for bit
 * copro_llm_rope's.
 */
void copro_llm_rope_table(float *cs, size_t rot_dim, int32_t pos, float freq_base);
void copro_llm_rope_apply(float *x, size_t n_heads, size_t head_dim, size_t rot_dim,
			  const float *cs, bool neox);

/* out = silu(gate) * up = gate / (1 + exp(-gate)) * up; out may alias either. */
void copro_llm_swiglu(float *out, const float *gate, const float *up, size_t n);

/* Softmax in place, the maximum subtracted first so large values do not
 * overflow. n == 0 does nothing. */
void copro_llm_softmax(float *x, size_t n);

/* y += x. */
void copro_llm_add(float *y, const float *x, size_t n);

/*
 * Dequantize row id of a token embedding table (n_vocab, dim) of type into
 * out (dim). Returns 0, or -EINVAL when id is outside [0, n_vocab), the type
 * is unknown, dim does not fit its blocks, or a pointer is NULL.
 */
int copro_llm_embed(uint32_t type, const void *table, size_t n_vocab, size_t dim, int32_t id,
		    float *out);

/* Index of the largest element of x (n > 0); the lowest index wins ties and
 * NaNs never win (all NaN gives 0). n == 0 gives 0. */
size_t copro_llm_argmax(const float *x, size_t n);

#endif
