// SPDX-License-Identifier: MIT
/*
 * gemm_f32.c - the f32 product of a linear step with constant weights,
 * on this project's own AVX-512 kernel instead of OpenBLAS.
 *
 * Why: at the shapes of a scoring MLP (M = 1..64 rows, N, K = 32..256)
 * OpenBLAS spends its time around the product, not in it: sgemm wants A
 * transposed, B in its own panels (packed on every call), and C prefilled;
 * the bias and the activation are a second pass over the output. Here the
 * weights are packed once, when the first plan of a graph is built, and
 * every plan of that graph (one per batch size) reads the same copy, so a
 * daemon that runs batches of changing sizes keeps one set of weights in
 * cache; A is read in place and the epilogue (Gemm's C row, the fused
 * bias, Relu/LeakyRelu) runs on the accumulators before they are stored.
 *
 * Layout and blocking:
 *
 *   - weights (K, Np): row k holds the N weights of input k, zero-padded
 *     to Np (N rounded up to 16) so every load is a whole aligned vector;
 *   - blocks of 4 rows x 64 columns keep 16 accumulators in registers;
 *     one vector of weights is loaded per 16 columns and k, one value of
 *     A broadcast per row and k, and 16 FMAs issued. The last M mod 4
 *     rows (all of batch 1) go in blocks up to 256 columns wide, as in
 *     the bf16 and int8 kernels (COPRO_BLOCK_LOOP);
 *   - N = 1 (a score): the weights are the column itself, (K) padded to
 *     whole vectors, and each row is one 16-lane dot product over k,
 *     reduced at the end, four rows at a time.
 *
 * Only CPUs with AVX-512F take this path (copro_f32_avx512_ok(), asked by
 * the planner); elsewhere the product stays on OpenBLAS.
 *
 * Each output is summed over k in the same order (one FMA per k from 0,
 * or for N = 1 sixteen lanes then a fixed reduction) whatever the block
 * it falls in, so a row's result does not depend on how many rows came
 * with it: a request gets the same bits alone or in any batch. They are
 * not OpenBLAS's bits (its sums are ordered otherwise); the tests compare
 * both against a double reference.
 *
 * Then the epilogue adds Gemm's C row (beta * C, computed once), then the
 * fused Add's bias, then applies the activation: the order in which the
 * unfused Gemm, Add and activation steps do it, one rounding each, so a
 * fused step is bit for bit the unfused ones (the planner uses this kernel
 * for both).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define F32_HAVE_X86	1
#else
#define F32_HAVE_X86	0
#endif

#include "onnx/fuse.h"

#define F32_ALIGN	64
#define F32_PACK_TAG	0x46333250u	/* "F32P": this file's packs in the graph's list */

static size_t round64(size_t n)
{
	return (n + F32_ALIGN - 1) & ~(size_t)(F32_ALIGN - 1);
}

int copro_f32_avx512_ok(void)
{
#if F32_HAVE_X86
	return __builtin_cpu_supports("avx512f");
#else
	return 0;
#endif
}

/*
 * Whether the own kernel is the faster one for a product of M rows,
 * N columns and depth K. Measured with bench/onnx_mlp (COPRO_PLAN_F_BLAS
 * as the baseline, same rounds) against OpenBLAS 0.3.21 on one thread,
 * on the 2-vCPU AMD EPYC this project is measured on, whole models at
 * batch 1, 8 and 64: the fraud MLP 32-256-256-1 1.7x, 3.8x, 2.1x the
 * inferences/s; a 64-1024-1024-4 MLP (4 MiB of weights, past L2) 1.1x,
 * 1.8x, 1.1x. No shape seen where OpenBLAS won, so every one is taken;
 * this is the place to send one back to OpenBLAS.
 */
int copro_f32_wanted(int64_t M, int64_t N, int64_t K)
{
	return M > 0 && N > 0 && K > 0;
}

size_t copro_f32_bytes(const struct copro_f32w *w)
{
	if (w->N == 1)
		return round64((size_t)w->K * sizeof(float));
	return round64((size_t)(w->K * w->Np) * sizeof(float));
}

/* Packs b ([K, N], or [N, K] if tb) into w->w, (K, Np); -ENOMEM. */
static int f32_pack_into(struct copro_f32w *w, const float *b, int tb, int64_t K, int64_t N)
{
	size_t bytes;
	int64_t k, n;

	w->N = N;
	w->K = K;
	w->Np = (N + 15) & ~(int64_t)15;
	bytes = copro_f32_bytes(w);
	w->w = aligned_alloc(F32_ALIGN, bytes ? bytes : F32_ALIGN);
	if (!w->w)
		return -ENOMEM;
	memset(w->w, 0, bytes);
	/* N = 1: the column itself, contiguous (both layouts store it so) */
	if (N == 1) {
		memcpy(w->w, b, (size_t)K * sizeof(float));
		return 0;
	}
	for (k = 0; k < K; k++)
		for (n = 0; n < N; n++)
			w->w[k * w->Np + n] = tb ? b[n * K + k] : b[k * N + n];
	return 0;
}

int copro_f32_pack(struct copro_f32w *w, struct copro_graph *g, const float *b, int tb,
		   int64_t K, int64_t N)
{
	struct copro_wpack *p, *head;
	int rc;

	memset(w, 0, sizeof(*w));
	if (!g)
		return f32_pack_into(w, b, tb, K, N);
	/* Acquire: pairs with the release CAS below, so an entry is seen whole. */
	for (p = __atomic_load_n(&g->packs, __ATOMIC_ACQUIRE); p; p = p->next) {
		if (p->src == b && p->tag == F32_PACK_TAG && p->tb == tb && p->K == K &&
		    p->N == N) {
			*w = *(const struct copro_f32w *)p->data;
			w->shared = 1;
			return 0;
		}
	}
	p = calloc(1, sizeof(*p));
	if (!p)
		return -ENOMEM;
	p->data = calloc(1, sizeof(struct copro_f32w));
	if (!p->data) {
		free(p);
		return -ENOMEM;
	}
	rc = f32_pack_into(p->data, b, tb, K, N);
	if (rc) {
		free(p->data);
		free(p);
		return rc;
	}
	p->src = b;
	p->tag = F32_PACK_TAG;
	p->tb = tb;
	p->K = K;
	p->N = N;
	p->release = copro_f32_pack_release;
	/*
	 * Two plans built at once may both pack the same weights; both
	 * entries stay on the list (the later lookups find the newer) and
	 * both are freed with the graph.
	 */
	head = __atomic_load_n(&g->packs, __ATOMIC_RELAXED);
	do {
		p->next = head;
	} while (!__atomic_compare_exchange_n(&g->packs, &head, p, 1, __ATOMIC_RELEASE,
					      __ATOMIC_RELAXED));
	*w = *(const struct copro_f32w *)p->data;
	w->shared = 1;
	return 0;
}

void copro_f32_pack_release(void *data)
{
	struct copro_f32w *w = data;

	if (w)
		free(w->w);
	free(w);
}

void copro_f32_free(struct copro_f32w *w)
{
	if (!w->shared)
		free(w->w);
	w->w = NULL;
}

/* ---------------------------------------------------------------------- */
/* AVX-512                                                                */
/* ---------------------------------------------------------------------- */

#if F32_HAVE_X86
#define TARGET_F32	__attribute__((target("avx512f")))
#define INLINE_F32	TARGET_F32 inline __attribute__((always_inline))

static inline float epi_scalar(const struct copro_epi *e, const float *crow, float v, int64_t n)
{
	if (crow)
		v = v + crow[n];
	if (e->bias)
		v = v + e->bias[n];
	return copro_act(e->act, e->act_alpha, v);
}

static INLINE_F32 void f32_store(const struct copro_epi *e, const float *crow, __m512 v,
				 float *yr, int64_t m, int64_t n, int64_t cnt, int vact)
{
	if (crow)
		v = _mm512_add_ps(v, _mm512_loadu_ps(crow + n));
	copro_epi_store16(e, v, yr, m, n, cnt, vact);
}

static INLINE_F32 void f32_block(const struct copro_f32w *w, const float *a, const float *crow,
				 const struct copro_epi *e, float *y, int64_t m0, int64_t n0,
				 const int R, const int NV)
{
	const int64_t K = w->K, Np = w->Np, N = w->N;
	const float *wq = w->w + n0;
	const float *ar = a + m0 * K;
	const int vact = copro_epi_vec_act(e);
	__m512 acc[4][16];
	int64_t k;
	int r, j;

#pragma GCC unroll 4
	for (r = 0; r < R; r++)
#pragma GCC unroll 16
		for (j = 0; j < NV; j++)
			acc[r][j] = _mm512_setzero_ps();
	for (k = 0; k < K; k++) {
		const float *wk = wq + k * Np;
		__m512 b[16];

#pragma GCC unroll 16
		for (j = 0; j < NV; j++)
			b[j] = _mm512_load_ps(wk + j * 16);
#pragma GCC unroll 4
		for (r = 0; r < R; r++) {
			__m512 x = _mm512_set1_ps(ar[r * K + k]);

#pragma GCC unroll 16
			for (j = 0; j < NV; j++)
				acc[r][j] = _mm512_fmadd_ps(x, b[j], acc[r][j]);
		}
	}
#pragma GCC unroll 4
	for (r = 0; r < R; r++) {
		float *yr = y + (m0 + r) * N;

#pragma GCC unroll 16
		for (j = 0; j < NV; j++) {
			int64_t n = n0 + 16 * j, cnt = N - n < 16 ? N - n : 16;

			f32_store(e, crow, acc[r][j], yr, m0 + r, n, cnt, vact);
		}
	}
}

#define F32_CASE(R, NV)								\
	case (R) * 32 + (NV):							\
		f32_block(w, a, crow, e, y, m0, n0, R, NV);			\
		break;

/* Runs the block of R rows and NV vectors at (m0, n0); R * NV <= 16. */
static TARGET_F32 void f32_dispatch(const struct copro_f32w *w, const float *a, const float *crow,
				    const struct copro_epi *e, float *y, int64_t m0, int64_t n0,
				    int R, int NV)
{
	switch (R * 32 + NV) {
	COPRO_BLOCK_CASES(F32_CASE)
	}
}

/* N = 1: y[m] = epilogue(a[m, :] . w), R rows at a time, 16 lanes each. */
static INLINE_F32 void f32_dot_rows(const struct copro_f32w *w, const float *a,
				    const float *crow, const struct copro_epi *e, float *y,
				    int64_t m0, const int R)
{
	const int64_t K = w->K;
	__m512 acc[4];
	int64_t k;
	int r;

#pragma GCC unroll 4
	for (r = 0; r < R; r++)
		acc[r] = _mm512_setzero_ps();
	for (k = 0; k < K; k += 16) {
		__mmask16 msk = K - k >= 16 ? 0xffff : (__mmask16)((1u << (K - k)) - 1);
		__m512 b = _mm512_load_ps(w->w + k);	/* zero-padded to whole vectors */

#pragma GCC unroll 4
		for (r = 0; r < R; r++)
			acc[r] = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(msk, a + (m0 + r) * K + k),
						 b, acc[r]);
	}
#pragma GCC unroll 4
	for (r = 0; r < R; r++)
		y[m0 + r] = epi_scalar(e, crow, _mm512_reduce_add_ps(acc[r]), 0);
}

static TARGET_F32 void f32_gemm_avx512(const struct copro_f32w *w, const float *a, int64_t M,
				       const float *crow, const struct copro_epi *e, float *y)
{
	int64_t N = w->N;

	if (N == 1) {
		int64_t m = 0;

		for (; m + 4 <= M; m += 4)
			f32_dot_rows(w, a, crow, e, y, m, 4);
		for (; m < M; m++)
			f32_dot_rows(w, a, crow, e, y, m, 1);
		return;
	}
	COPRO_BLOCK_LOOP(N, M, f32_dispatch(w, a, crow, e, y, m0, n0, r, nv));
}
#endif /* F32_HAVE_X86 */

void copro_f32_gemm(const struct copro_f32w *w, const float *a, int64_t M, const float *crow,
		    const struct copro_epi *e, float *y)
{
	if (M == 0 || w->N == 0)
		return;
#if F32_HAVE_X86
	f32_gemm_avx512(w, a, M, crow, e, y);
#endif
}
