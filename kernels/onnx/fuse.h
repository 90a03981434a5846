/* SPDX-License-Identifier: MIT */
/*
 * fuse.h - internal to the planner and the linear kernels: one step that
 * computes act(op(A) op(B) + bias) for a Gemm or MatMul with a constant B,
 * in f32, bf16 or int8. Not installed; not in the operator registry (no
 * model names it: the planner makes these steps out of Gemm/MatMul nodes
 * and the Add/activation nodes after them).
 */
#ifndef COPRO_ONNX_FUSE_H
#define COPRO_ONNX_FUSE_H

#include <math.h>
#include <stddef.h>
#include <stdint.h>

#include "onnx/ops.h"

/* The activation an epilogue applies. */
#define COPRO_ACT_NONE		0
#define COPRO_ACT_RELU		1
#define COPRO_ACT_LEAKY		2	/* LeakyRelu(alpha) */
#define COPRO_ACT_SIGMOID	3
#define COPRO_ACT_TANH		4

/*
 * What the planner found: a Gemm or MatMul step (its node, with the
 * priv its infer() made) and what follows it. b is the constant B as
 * stored (K x N, or N x K when tb); the product has M rows (a MatMul's
 * batch dims folded into M).
 */
struct copro_linear_spec {
	const struct copro_op *op;	/* copro_op_gemm or copro_op_matmul */
	struct copro_node node;		/* the step's node; priv now belongs to the spec */
	int ta, tb;			/* Gemm's transA/transB; 0 for MatMul */
	float alpha, beta;		/* Gemm's; 1 and 0 for MatMul */
	int64_t M, N, K;
	const float *b;			/* constant B */
	const struct copro_kt *c;	/* Gemm's C as planned (data set if constant), or NULL */
	const float *bias;		/* (N) the fused Add's constant, or NULL */
	int act;			/* COPRO_ACT_* */
	float act_alpha;		/* LeakyRelu's alpha */
	uint32_t precision;		/* COPRO_PREC_* wanted */
	int portable;			/* 1: plain C kernels; 0: AVX-512 ones, or stay f32 */
	int f32_own;			/* f32: 1 = gemm_f32.c's kernel, 0 = OpenBLAS */
	struct copro_graph *g;		/* b is g's initializer: share its packing; or NULL */
};

/*
 * Makes n a linear step from s: n->op and n->priv are set; the step's
 * inputs stay the Gemm/MatMul's (A, B and C when Gemm has one), its one
 * output is the last fused node's. Takes over s->node.priv (released
 * with the step, or now on failure). *bytes gets the memory it holds
 * (packed weights) for the plan's budget, *lowp whether it computes in
 * bf16/int8 (0: f32, because s asked for it or the weights could not be
 * lowered). Returns 0 or -ENOMEM.
 */
int copro_linear_make(struct copro_node *n, struct copro_linear_spec *s, size_t *bytes,
		      int *lowp, const char **kernel);

extern const struct copro_op copro_op_linear;

/* ---------------------------------------------------------------------- */
/* The epilogue                                                           */
/* ---------------------------------------------------------------------- */

/*
 * Applied to each output after the product: y = act(v + bias[j] +
 * beta * C[i, j]). The f32 kernels have added C already; bias is then
 * the fused Add's row, and the low-precision kernels fold a constant
 * row C into it at build time, so c is set only for a C they could not
 * fold (computed, or one per row).
 */
struct copro_epi {
	int act;
	float act_alpha;
	const float *bias;		/* (N, padded to the kernel's width), or NULL */
	const float *c;			/* or NULL */
	int64_t csm, csn;		/* c's element strides over [M, N]: 0 where broadcast */
	float beta;
};

/*
 * The activations exactly as op_activation.c computes them, so a fused
 * f32 step is bit for bit the unfused steps.
 */
static inline float copro_sigmoidf(float v)
{
	float e;

	if (v >= 0)
		return 1.0f / (1.0f + expf(-v));
	e = expf(v);
	return e / (1.0f + e);
}

static inline float copro_act(int act, float alpha, float v)
{
	switch (act) {
	case COPRO_ACT_RELU: return v < 0 ? 0.0f : v;
	case COPRO_ACT_LEAKY: return v >= 0 ? v : v * alpha;
	case COPRO_ACT_SIGMOID: return copro_sigmoidf(v);
	case COPRO_ACT_TANH: return tanhf(v);
	default: return v;
	}
}

/*
 * Finishes n outputs y[0..n) of row i, columns j0.. that a vector
 * epilogue left without C and with act == SIGMOID/TANH or any act when
 * e->c is set (the vector code does bias, scale, Relu and LeakyRelu).
 */
void copro_epi_finish(const struct copro_epi *e, float *y, int64_t i, int64_t j0, int64_t n);
/* Whether the vector epilogue may apply e's activation itself. */
static inline int copro_epi_vec_act(const struct copro_epi *e)
{
	return !e->c && (e->act == COPRO_ACT_NONE || e->act == COPRO_ACT_RELU ||
			 e->act == COPRO_ACT_LEAKY);
}

#if defined(__x86_64__)
#include <immintrin.h>

/*
 * Stores one vector of 16 (cnt at the row's end) finished outputs at
 * yr[n..]: adds the bias, applies Relu/LeakyRelu in registers when vact,
 * and leaves the rest to copro_epi_finish(). Both AVX-512 kernels end
 * here; their callers' targets include avx512f.
 */
__attribute__((target("avx512f"))) static inline void
copro_epi_store16(const struct copro_epi *e, __m512 v, float *yr, int64_t m, int64_t n,
		  int64_t cnt, int vact)
{
	__mmask16 mask = (__mmask16)((1u << cnt) - 1);

	if (e->bias)
		v = _mm512_add_ps(v, _mm512_loadu_ps(e->bias + n));
	if (vact && e->act == COPRO_ACT_RELU) {
		/* max(0, v): keeps NaN and -0, as v < 0 ? 0 : v does */
		v = _mm512_max_ps(_mm512_setzero_ps(), v);
	} else if (vact && e->act == COPRO_ACT_LEAKY) {
		__mmask16 neg = _mm512_cmp_ps_mask(v, _mm512_setzero_ps(), _CMP_LT_OQ);

		v = _mm512_mask_mul_ps(v, neg, v, _mm512_set1_ps(e->act_alpha));
	}
	_mm512_mask_storeu_ps(yr + n, mask, v);
	if (!vact || e->act == COPRO_ACT_SIGMOID || e->act == COPRO_ACT_TANH)
		copro_epi_finish(e, yr + n, m, n, cnt);
}
#endif

/* ---------------------------------------------------------------------- */
/* The blocking both AVX-512 kernels share                                */
/* ---------------------------------------------------------------------- */

/*
 * Walks y[M, N] in blocks of r rows x nv vectors of 16 columns and runs
 * BLOCK (which sees m0, n0, r, nv) on each. Rows in fours, columns
 * outside and rows inside, so a K x 64 slice of weights stays in L1
 * while every row goes past it; then the last M mod 4 rows in blocks as
 * wide as 16 accumulators allow (16, 8 or 5 vectors), so a lone row
 * still has 16 independent sums in flight.
 */
#define COPRO_BLOCK_LOOP(N, M, BLOCK)						\
	do {									\
		int64_t m0, n0, mf_ = (M) & ~(int64_t)3;			\
		int r, nv, wide_;						\
										\
		for (n0 = 0; n0 < (N); n0 += 64) {				\
			nv = (int)(((N) - n0 + 15) / 16);			\
			nv = nv > 4 ? 4 : nv;					\
			r = 4;							\
			for (m0 = 0; m0 < mf_; m0 += 4)				\
				BLOCK;						\
		}								\
		r = (int)((M) - mf_);						\
		m0 = mf_;							\
		wide_ = r == 1 ? 16 : r == 2 ? 8 : 5;				\
		for (n0 = 0; r && n0 < (N); n0 += 16 * wide_) {			\
			nv = (int)(((N) - n0 + 15) / 16);			\
			nv = nv > wide_ ? wide_ : nv;				\
			BLOCK;							\
		}								\
	} while (0)

/* The (rows, vectors) blocks COPRO_BLOCK_LOOP asks for, as switch cases. */
#define COPRO_BLOCK_NV4(C, R)	C(R, 1) C(R, 2) C(R, 3) C(R, 4)
#define COPRO_BLOCK_NV5(C, R)	COPRO_BLOCK_NV4(C, R) C(R, 5)
#define COPRO_BLOCK_NV8(C, R)	COPRO_BLOCK_NV5(C, R) C(R, 6) C(R, 7) C(R, 8)
#define COPRO_BLOCK_NV16(C, R)	COPRO_BLOCK_NV8(C, R) C(R, 9) C(R, 10) C(R, 11) C(R, 12) \
				C(R, 13) C(R, 14) C(R, 15) C(R, 16)
#define COPRO_BLOCK_CASES(C)	COPRO_BLOCK_NV16(C, 1) COPRO_BLOCK_NV8(C, 2) \
				COPRO_BLOCK_NV5(C, 3) COPRO_BLOCK_NV4(C, 4)

/* ---------------------------------------------------------------------- */
/* f32 (gemm_f32.c)                                                       */
/* ---------------------------------------------------------------------- */

/*
 * f32 weights packed for the AVX-512 kernel: (K, Np), or the column (K)
 * itself when N = 1. Shared by every plan of a graph when packed with
 * one (shared = 1: the graph frees it).
 */
struct copro_f32w {
	int64_t N, K;
	int64_t Np;			/* N rounded up to 16 */
	int shared;
	float *w;
};

/* Whether this CPU runs the f32 kernel (AVX-512F). */
int copro_f32_avx512_ok(void);
/* Whether the kernel beats OpenBLAS for an M x N x K product (measured). */
int copro_f32_wanted(int64_t M, int64_t N, int64_t K);
/*
 * Packs b ([K, N], or [N, K] if tb) into w. With g, b must be one of g's
 * initializers: the packed copy is looked up in (or added to) g's list,
 * shared with every plan of g and freed with it; without, w owns it.
 * Returns 0 or -ENOMEM.
 */
int copro_f32_pack(struct copro_f32w *w, struct copro_graph *g, const float *b, int tb,
		   int64_t K, int64_t N);
/* Frees w's weights unless the graph holds them. */
void copro_f32_free(struct copro_f32w *w);
size_t copro_f32_bytes(const struct copro_f32w *w);
/* Frees one of the graph's packs (struct copro_wpack.release). */
void copro_f32_pack_release(void *data);
/*
 * y[M, N] = act(A W + crow + bias): A is [M, K] row-major, crow (Np) is
 * Gemm's beta * C row or NULL, e->bias (Np) or NULL, e->c must be NULL.
 * Only where copro_f32_avx512_ok().
 */
void copro_f32_gemm(const struct copro_f32w *w, const float *a, int64_t M, const float *crow,
		    const struct copro_epi *e, float *y);

/* ---------------------------------------------------------------------- */
/* int8 (quant_int8.c)                                                    */
/* ---------------------------------------------------------------------- */

/* Largest K an int8 product takes: 255 * 127 * K must fit an int32. */
#define COPRO_Q8_MAX_K		65536

/*
 * Weights quantized per output channel: W[k, n] ~ q[k, n] * scale[n],
 * scale = max_k |W[k, n]| / 127. The layout is the kernel's.
 */
struct copro_q8w {
	int64_t N, K;
	int64_t Np, Kp;			/* N rounded up to 16, K to 4 */
	int vnni;			/* 1: q is (Kp/4, Np, 4); 0: (Np, Kp) */
	int8_t *q;
	float *scale;			/* (Np) */
	int32_t *comp;			/* (Np) vnni: 128 * sum_k q[k, n] */
};

/* Whether this CPU runs the AVX-512 VNNI kernel. */
int copro_q8_vnni_ok(void);
/*
 * Quantizes W (b as stored: [K, N], or [N, K] if tb). Returns 0,
 * -ERANGE for a non-finite weight (the product stays f32), -ENOMEM.
 */
int copro_q8_pack(struct copro_q8w *w, const float *b, int tb, int64_t K, int64_t N, int vnni);
void copro_q8_free(struct copro_q8w *w);
size_t copro_q8_bytes(const struct copro_q8w *w);
/* Scratch copro_q8_gemm needs for M rows. */
size_t copro_q8_scratch(const struct copro_q8w *w, int64_t M);
/*
 * y[M, N] = epilogue(alpha * op(A) W): A is [M, K] ([K, M] if ta),
 * quantized per row (symmetric, dynamic) into scratch. A row holding
 * NaN or Inf gives NaN outputs.
 */
void copro_q8_gemm(const struct copro_q8w *w, const float *a, int ta, int64_t M, float alpha,
		   const struct copro_epi *e, float *y, void *scratch);

/* ---------------------------------------------------------------------- */
/* bf16 (quant_bf16.c)                                                    */
/* ---------------------------------------------------------------------- */

/* Weights rounded to bfloat16 (nearest even), in pairs along K: (Kp/2, Np, 2). */
struct copro_bf16w {
	int64_t N, K;
	int64_t Np, Kp;			/* N rounded up to 16, K to 2 */
	uint16_t *w;
};

/* Whether this CPU runs the AVX-512 BF16 kernel. */
int copro_bf16_avx512_ok(void);
int copro_bf16_pack(struct copro_bf16w *w, const float *b, int tb, int64_t K, int64_t N);
void copro_bf16_free(struct copro_bf16w *w);
size_t copro_bf16_bytes(const struct copro_bf16w *w);
size_t copro_bf16_scratch(const struct copro_bf16w *w, int64_t M);
/* As copro_q8_gemm, with A rounded to bf16 and f32 accumulation. */
void copro_bf16_gemm(const struct copro_bf16w *w, const float *a, int ta, int64_t M, float alpha,
		     const struct copro_epi *e, float *y, void *scratch, int portable);
/* f32 -> bf16, nearest even, subnormals to zero (as the AVX-512 instructions do). */
uint16_t copro_bf16_round(float f);

#endif /* COPRO_ONNX_FUSE_H */
