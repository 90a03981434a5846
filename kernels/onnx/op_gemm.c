/* SPDX-License-Identifier: MIT */
/*
 * op_gemm.c - the matrix products: Gemm, MatMul (f32, on OpenBLAS) and
 * MatMulInteger (int8/uint8, plain C).
 *
 * OpenBLAS is kept single-threaded: on the small shapes of a scoring MLP
 * a second thread stalled calls for milliseconds here. A product with
 * one row or one column goes to sgemv, which on this machine's core is
 * 5-9x faster than a 1-row sgemm.
 *
 * Every other product runs as one row-major sgemm of A^T stored [K, M]
 * and B stored [K, N] (CblasTrans, CblasNoTrans), whatever the node's
 * layout; run() transposes A into scratch when it is not stored that way,
 * and B is made [K, N] once in infer() (kept in n->priv) when Gemm has
 * transB = 1 on a constant B, or in scratch when B is computed. Why, with
 * the OpenBLAS core selected here (COOPERLAKE, 0.3.21), measured:
 *
 *   - untransposed A * B goes to a "small matrix" kernel that mallocs a
 *     K-float buffer on every call once K >= 36, and run() must not
 *     allocate; (A^T)^T * B never allocates (scanned over M, N, K <= 300);
 *   - A * B^T (PyTorch's Linear as Gemm transB = 1, taken as is) is up to
 *     2.4x slower at 2 < M <= 32 than (A^T)^T * B (M = 8, N = K = 256:
 *     22.4 us against 9.9 us), and A^T * B^T slower still;
 *   - transposing A costs M * K copies against the M * N * K of the
 *     product.
 *
 * Outputs are prefilled (zeros, or beta * C for Gemm) and the BLAS call
 * accumulates into them: the plan's arena reuses buffers, and whether a
 * BLAS routine reads y when beta is 0 (NaN * 0) has varied across
 * OpenBLAS releases.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <cblas.h>

#include "onnx/op_impl.h"

static pthread_once_t blas_once = PTHREAD_ONCE_INIT;

static void blas_init(void)
{
	openblas_set_num_threads(1);
}

/* Called from every infer(): plans are built before anything runs. */
void copro_op_blas_init(void)
{
	pthread_once(&blas_once, blas_init);
}

/* BLAS takes int dimensions; anything larger is refused in infer(). */
static int blas_dim_ok(int64_t d)
{
	return d <= INT_MAX;
}

/* Whether a product goes to sgemm (not sgemv, not empty). */
static int uses_sgemm(int64_t M, int64_t N, int64_t K)
{
	return M > 1 && N > 1 && K > 0;
}

/* dst[c, r] = src[r, c] for one rows x cols matrix, in 16 x 16 tiles. */
static void transpose_f32(const float *src, float *dst, int64_t rows, int64_t cols)
{
	int64_t r0, c0, r, c;

	for (r0 = 0; r0 < rows; r0 += 16) {
		int64_t re = r0 + 16 < rows ? r0 + 16 : rows;

		for (c0 = 0; c0 < cols; c0 += 16) {
			int64_t ce = c0 + 16 < cols ? c0 + 16 : cols;

			for (c = c0; c < ce; c++)
				for (r = r0; r < re; r++)
					dst[c * rows + r] = src[r * cols + c];
		}
	}
}

/*
 * y[M,N] += alpha * op(a) * op(b), a stored [M,K] ([K,M] if ta), b stored
 * [K,N] ([N,K] if tb); y is already initialized. The sgemm case needs
 * a in [K,M] (akm: a itself if ta, else NULL and it is transposed into
 * sa, M * K floats) and b in [K,N] (bkn: b itself if !tb, else the
 * caller's transposed copy).
 */
static void mm_acc(int ta, int tb, int64_t M, int64_t N, int64_t K, float alpha,
		   const float *a, const float *b, const float *bkn, float *sa, float *y)
{
	const float *akm = a;

	if (M == 0 || N == 0 || K == 0)
		return;
	if (M == 1) {
		/*
		 * y[N] = op(b)^T a: the row of a is contiguous either way.
		 * With a [K, N] copy of B at hand, the transposed sgemv is
		 * the faster one (2.5 us against 3.1 us at N = K = 256).
		 */
		if (tb && bkn)
			cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, bkn, (int)N,
				    a, 1, 1.0f, y, 1);
		else if (tb)
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)N, (int)K, alpha, b, (int)K,
				    a, 1, 1.0f, y, 1);
		else
			cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)N, alpha, b, (int)N,
				    a, 1, 1.0f, y, 1);
		return;
	}
	if (N == 1) {
		/* y[M] = op(a) b: the column of b is contiguous either way. */
		if (ta)
			cblas_sgemv(CblasRowMajor, CblasTrans, (int)K, (int)M, alpha, a, (int)M,
				    b, 1, 1.0f, y, 1);
		else
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)M, (int)K, alpha, a, (int)K,
				    b, 1, 1.0f, y, 1);
		return;
	}
	if (!ta) {
		transpose_f32(a, sa, M, K);
		akm = sa;
	}
	cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (int)M, (int)N, (int)K, alpha,
		    akm, (int)M, tb ? bkn : b, (int)N, 1.0f, y, (int)N);
}

/* ---------------------------------------------------------------------- */
/* Gemm                                                                   */
/* ---------------------------------------------------------------------- */

/*
 * What Gemm keeps between infer() and run(): the attributes (so run()
 * does not search for them) and, for transB = 1 on a constant B, B
 * transposed to [K, N].
 */
struct gemm_priv {
	int ta, tb;
	float alpha, beta;
	float *bkn;			/* (K, N), or NULL */
};

static void gemm_release(struct copro_node *n)
{
	struct gemm_priv *p = n->priv;

	if (p)
		free(p->bkn);
	free(p);
	n->priv = NULL;
}

struct gemm_geom {
	int ta, tb;
	int64_t M, N, K;
};

static void gemm_geom(const struct copro_node *n, const struct copro_kt *in, struct gemm_geom *g)
{
	g->ta = copro_attr_int(n, "transA", 0) != 0;
	g->tb = copro_attr_int(n, "transB", 0) != 0;
	g->M = in[0].dims[g->ta ? 1 : 0];
	g->K = in[0].dims[g->ta ? 0 : 1];
	g->N = in[1].dims[g->tb ? 0 : 1];
}

/*
 * Creates n->priv on the first infer() (later ones, for other batch
 * sizes, see the same constant B) and transposes B if it is a constant
 * stored [N, K]. Returns 0 or -ENOMEM.
 */
static int gemm_priv_get(struct copro_node *n, const struct copro_kt *b, const struct gemm_geom *g)
{
	struct gemm_priv *p = n->priv;

	if (!p) {
		p = calloc(1, sizeof(*p));
		if (!p)
			return -ENOMEM;
		n->priv = p;
	}
	p->ta = g->ta;
	p->tb = g->tb;
	p->alpha = copro_attr_float(n, "alpha", 1.0f);
	p->beta = copro_attr_float(n, "beta", 1.0f);
	if (g->tb && b->data && !p->bkn && g->K > 0 && g->N > 1) {
		p->bkn = malloc((size_t)(g->K * g->N) * sizeof(float));
		if (!p->bkn)
			return -ENOMEM;
		transpose_f32(b->data, p->bkn, g->N, g->K);
	}
	return 0;
}

static int gemm_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      char *err, size_t errlen)
{
	int64_t ta = copro_attr_int(n, "transA", 0), tb = copro_attr_int(n, "transB", 0), kb;
	struct gemm_geom g;
	int i;

	copro_op_blas_init();
	if (n->n_in < 2 || n->n_in > 3 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs inputs A, B and optional C");
	for (i = 0; i < n->n_in; i++)
		if (copro_op_nin(n, in, i) && in[i].dtype != COPRO_K_F32)
			return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
					    copro_op_dname(in[i].dtype));
	if (in[0].rank != 2 || in[1].rank != 2)
		return copro_op_err(err, errlen, -EINVAL, n, "A and B must be 2-D (ranks %d, %d)",
				    in[0].rank, in[1].rank);
	if ((ta != 0 && ta != 1) || (tb != 0 && tb != 1))
		return copro_op_err(err, errlen, -EINVAL, n, "transA/transB must be 0 or 1");
	gemm_geom(n, in, &g);
	kb = in[1].dims[g.tb ? 1 : 0];
	if (!copro_op_dim_eq(g.K, kb))
		return copro_op_err(err, errlen, -EINVAL, n, "inner dims differ (%lld, %lld)",
				    (long long)g.K, (long long)kb);
	if (!blas_dim_ok(g.M) || !blas_dim_ok(g.N) || !blas_dim_ok(g.K))
		return copro_op_err(err, errlen, -ENOTSUP, n, "dims beyond BLAS's int range");
	if (copro_op_nin(n, in, 2)) {
		const struct copro_kt *c = &in[2];
		int64_t cm = c->rank == 2 ? c->dims[0] : 1;
		int64_t cn = c->rank >= 1 ? c->dims[c->rank - 1] : 1;

		/* C broadcasts one way only: to [M, N]. */
		if (c->rank > 2 || (cm != 1 && !copro_op_dim_eq(cm, g.M)) ||
		    (cn != 1 && !copro_op_dim_eq(cn, g.N)))
			return copro_op_err(err, errlen, -EINVAL, n,
					    "C does not broadcast to [%lld, %lld]",
					    (long long)g.M, (long long)g.N);
	}
	if (gemm_priv_get(n, &in[1], &g) < 0)
		return copro_op_err(err, errlen, -ENOMEM, n, "out of memory");
	out[0].dtype = COPRO_K_F32;
	out[0].rank = 2;
	out[0].dims[0] = g.M;
	out[0].dims[1] = g.N;
	return 0;
}

/* Room for A^T, and for B^T when B is computed and stored [N, K]. */
static size_t gemm_scratch(const struct copro_node *n, const struct copro_kt *in,
			   const struct copro_kt *out)
{
	const struct gemm_priv *p = n->priv;
	struct gemm_geom g;
	size_t k = 0;

	gemm_geom(n, in, &g);
	if (!uses_sgemm(g.M, g.N, g.K))
		return 0;
	if (!g.ta)
		k += (size_t)(g.M * g.K);
	if (g.tb && !p->bkn)
		k += (size_t)(g.K * g.N);
	return k * sizeof(float);
}

static int gemm_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		    void *scratch)
{
	const struct gemm_priv *p = n->priv;
	float beta = p->beta;
	float *y = out[0].data;		/* (M, N) */
	float *sa = scratch;		/* (K, M) when A is not stored so */
	const float *bkn = p->bkn;
	int64_t M = in[0].dims[p->ta ? 1 : 0], K = in[0].dims[p->ta ? 0 : 1];
	int64_t N = in[1].dims[p->tb ? 0 : 1], i, j;

	if (copro_op_nin(n, in, 2) && beta != 0.0f) {
		const struct copro_kt *c = &in[2];
		const float *cd = c->data;
		/* Element strides of C over [M, N]; 0 where C is broadcast. */
		int64_t sn = (c->rank >= 1 && c->dims[c->rank - 1] != 1) ? 1 : 0;
		int64_t sm = (c->rank == 2 && c->dims[0] != 1) ? c->dims[1] : 0;

		for (i = 0; i < M; i++)
			for (j = 0; j < N; j++)
				y[i * N + j] = beta * cd[i * sm + j * sn];
	} else {
		memset(y, 0, (size_t)(M * N) * sizeof(float));
	}
	if (p->tb && !bkn && uses_sgemm(M, N, K)) {
		float *sb = sa + (p->ta ? 0 : M * K);

		transpose_f32(in[1].data, sb, N, K);
		bkn = sb;
	}
	mm_acc(p->ta, p->tb, M, N, K, p->alpha, in[0].data, in[1].data, bkn, sa, y);
	return 0;
}

const struct copro_op copro_op_gemm = {
	.name = "Gemm", .since = 7, .infer = gemm_infer, .scratch = gemm_scratch,
	.run = gemm_run, .release = gemm_release,
};

/* ---------------------------------------------------------------------- */
/* MatMul, MatMulInteger: numpy matmul shapes                             */
/* ---------------------------------------------------------------------- */

/*
 * numpy's matmul: a 1-D A is a row [1, K] and a 1-D B a column [K, 1],
 * their unit dim dropped from the result; the leading (batch) dims of
 * both broadcast. bt holds the broadcast batch shape.
 */
struct mm_geom {
	int64_t M, N, K;
	struct copro_kt bt, ba, bb;	/* batch shapes: result, A, B */
};

static int mm_geom(const struct copro_kt *a, const struct copro_kt *b, struct mm_geom *g)
{
	int i;

	if (a->rank < 1 || b->rank < 1)
		return -EINVAL;
	g->M = a->rank >= 2 ? a->dims[a->rank - 2] : 1;
	g->K = a->dims[a->rank - 1];
	g->N = b->rank >= 2 ? b->dims[b->rank - 1] : 1;
	memset(&g->ba, 0, sizeof(g->ba));
	memset(&g->bb, 0, sizeof(g->bb));
	g->ba.rank = a->rank > 2 ? a->rank - 2 : 0;
	g->bb.rank = b->rank > 2 ? b->rank - 2 : 0;
	for (i = 0; i < g->ba.rank; i++)
		g->ba.dims[i] = a->dims[i];
	for (i = 0; i < g->bb.rank; i++)
		g->bb.dims[i] = b->dims[i];
	if (!copro_op_dim_eq(g->K, b->rank >= 2 ? b->dims[b->rank - 2] : b->dims[0]))
		return -EINVAL;
	return copro_broadcast_shape(&g->ba, &g->bb, &g->bt);
}

static int mm_shape(struct copro_node *n, const struct copro_kt *a, const struct copro_kt *b,
		    struct copro_kt *out, char *err, size_t errlen)
{
	struct mm_geom g;
	int i, r;

	if (a->rank < 1 || b->rank < 1)
		return copro_op_err(err, errlen, -EINVAL, n, "inputs must have rank >= 1");
	if (mm_geom(a, b, &g) < 0)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "shapes do not multiply (inner dims or batch dims differ)");
	if (g.bt.rank + 2 > COPRO_K_MAX_RANK)
		return copro_op_err(err, errlen, -ENOTSUP, n, "rank too large");
	r = g.bt.rank;
	for (i = 0; i < r; i++)
		out->dims[i] = g.bt.dims[i];
	if (a->rank >= 2)
		out->dims[r++] = g.M;
	if (b->rank >= 2)
		out->dims[r++] = g.N;
	out->rank = r;
	return 0;
}

/*
 * Walks the result's batch index, calling fn for each (A, B, Y) matrix
 * triple; A's and B's offsets follow broadcasting (stride 0 on their
 * size-1 or missing batch dims).
 */
typedef void (*mm_fn)(const struct mm_geom *g, const void *a, const void *b, void *y,
		      const void *ctx);

static void mm_batches(const struct mm_geom *g, const void *a, const void *b, void *y,
		       size_t ea, size_t eb, size_t ey, mm_fn fn, const void *ctx)
{
	int64_t sa[COPRO_K_MAX_RANK], sb[COPRO_K_MAX_RANK], idx[COPRO_K_MAX_RANK] = { 0 };
	int64_t ma = g->M * g->K, mb = g->K * g->N, my = g->M * g->N, oa = 0, ob = 0, oy = 0;
	int r = g->bt.rank, i;

	for (i = 0; i < r; i++)
		if (g->bt.dims[i] == 0)
			return;
	/* Batch strides in matrices, aligned to the result's batch dims. */
	{
		int64_t ka = 1, kb = 1;

		for (i = r - 1; i >= 0; i--) {
			int ia = i - (r - g->ba.rank), ib = i - (r - g->bb.rank);
			int64_t da = ia >= 0 ? g->ba.dims[ia] : 1;
			int64_t db = ib >= 0 ? g->bb.dims[ib] : 1;

			sa[i] = da == 1 ? 0 : ka;
			sb[i] = db == 1 ? 0 : kb;
			ka *= da;
			kb *= db;
		}
	}
	for (;;) {
		fn(g, (const char *)a + oa * ma * ea, (const char *)b + ob * mb * eb,
		   (char *)y + oy * my * ey, ctx);
		oy++;
		for (i = r - 1; i >= 0; i--) {
			idx[i]++;
			oa += sa[i];
			ob += sb[i];
			if (idx[i] < g->bt.dims[i])
				break;
			oa -= sa[i] * g->bt.dims[i];
			ob -= sb[i] * g->bt.dims[i];
			idx[i] = 0;
		}
		if (i < 0)
			return;
	}
}

static int64_t kt_prod(const struct copro_kt *t)
{
	int64_t k = 1;
	int i;

	for (i = 0; i < t->rank; i++)
		k *= t->dims[i];
	return k;
}

/* ctx is the scratch for one A^T, M * K floats. */
static void matmul_one(const struct mm_geom *g, const void *a, const void *b, void *y,
		       const void *ctx)
{
	memset(y, 0, (size_t)(g->M * g->N) * sizeof(float));
	mm_acc(0, 0, g->M, g->N, g->K, 1.0f, a, b, NULL, (float *)ctx, y);
}

static int matmul_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			char *err, size_t errlen)
{
	struct mm_geom g;
	int rc;

	copro_op_blas_init();
	if (n->n_in != 2 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly two inputs");
	if (in[0].dtype != COPRO_K_F32 || in[1].dtype != COPRO_K_F32)
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s x %s not supported",
				    copro_op_dname(in[0].dtype), copro_op_dname(in[1].dtype));
	rc = mm_shape(n, &in[0], &in[1], &out[0], err, errlen);
	if (rc < 0)
		return rc;
	mm_geom(&in[0], &in[1], &g);
	if (!blas_dim_ok(g.N) || !blas_dim_ok(g.K) ||
	    (kt_prod(&g.ba) >= 0 && !blas_dim_ok(g.M * kt_prod(&g.ba))))
		return copro_op_err(err, errlen, -ENOTSUP, n, "dims beyond BLAS's int range");
	out[0].dtype = COPRO_K_F32;
	return 0;
}

/*
 * Whether B is one matrix for every batch: A's batches are then
 * contiguous rows and the whole product one [batches * M, K] x [K, N].
 */
static int mm_one_b(const struct mm_geom *g)
{
	return kt_prod(&g->bb) == 1 && kt_prod(&g->ba) == kt_prod(&g->bt);
}

/* Room for A^T: all rows at once, or one batch's at a time. */
static size_t matmul_scratch(const struct copro_node *n, const struct copro_kt *in,
			     const struct copro_kt *out)
{
	struct mm_geom g;
	int64_t m;

	mm_geom(&in[0], &in[1], &g);
	m = mm_one_b(&g) ? g.M * kt_prod(&g.ba) : g.M;
	return uses_sgemm(m, g.N, g.K) ? (size_t)(m * g.K) * sizeof(float) : 0;
}

static int matmul_run(const struct copro_node *n, const struct copro_kt *in,
		      struct copro_kt *out, void *scratch)
{
	struct mm_geom g;

	mm_geom(&in[0], &in[1], &g);
	if (mm_one_b(&g)) {
		int64_t m = g.M * kt_prod(&g.ba);

		memset(out[0].data, 0, (size_t)(m * g.N) * sizeof(float));
		mm_acc(0, 0, m, g.N, g.K, 1.0f, in[0].data, in[1].data, NULL, scratch,
		       out[0].data);
		return 0;
	}
	mm_batches(&g, in[0].data, in[1].data, out[0].data, 4, 4, 4, matmul_one, scratch);
	return 0;
}

const struct copro_op copro_op_matmul = {
	.name = "MatMul", .since = 1, .infer = matmul_infer, .scratch = matmul_scratch,
	.run = matmul_run,
};

/*
 * MatMulInteger: int32 sums of (a - a_zero_point) * (b - b_zero_point).
 * a_zero_point is a scalar or one per row of A ([M]); b_zero_point a
 * scalar or one per column of B ([N]).
 */
struct mmi_ctx {
	int32_t ta, tb;			/* COPRO_K_U8 or COPRO_K_I8 */
	const void *za, *zb;		/* NULL: 0 */
	int64_t nza, nzb;		/* elements of za, zb */
};

static inline int32_t ld8(const void *p, int32_t dt, int64_t i)
{
	return dt == COPRO_K_U8 ? ((const uint8_t *)p)[i] : ((const int8_t *)p)[i];
}

static void mmi_one(const struct mm_geom *g, const void *a, const void *b, void *py,
		    const void *pctx)
{
	const struct mmi_ctx *c = pctx;
	int32_t *y = py;		/* (M, N) */
	int64_t i, j, k;

	memset(y, 0, (size_t)(g->M * g->N) * sizeof(int32_t));
	for (i = 0; i < g->M; i++) {
		int32_t za = c->za ? ld8(c->za, c->ta, c->nza == 1 ? 0 : i) : 0;

		/* i-k-j order: the inner loop runs along rows of B and Y. */
		for (k = 0; k < g->K; k++) {
			int32_t av = ld8(a, c->ta, i * g->K + k) - za;

			if (!av)
				continue;
			for (j = 0; j < g->N; j++) {
				int32_t zb = c->zb ? ld8(c->zb, c->tb, c->nzb == 1 ? 0 : j) : 0;

				y[i * g->N + j] += av * (ld8(b, c->tb, k * g->N + j) - zb);
			}
		}
	}
}

static int mmi_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	struct mm_geom g;
	int rc, i;

	if (n->n_in < 2 || n->n_in > 4 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n,
				    "needs A, B and optional zero points");
	for (i = 0; i < 2; i++)
		if (in[i].dtype != COPRO_K_U8 && in[i].dtype != COPRO_K_I8)
			return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
					    copro_op_dname(in[i].dtype));
	rc = mm_shape(n, &in[0], &in[1], &out[0], err, errlen);
	if (rc < 0)
		return rc;
	mm_geom(&in[0], &in[1], &g);
	for (i = 2; i < n->n_in; i++) {
		int64_t k;

		if (!copro_op_nin(n, in, i))
			continue;
		k = copro_op_numel(&in[i]);
		if (in[i].dtype != in[i - 2].dtype)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "zero point %d is %s, its input %s", i - 2,
					    copro_op_dname(in[i].dtype),
					    copro_op_dname(in[i - 2].dtype));
		if (k != 1 && !(in[i].rank == 1 && copro_op_dim_eq(k, i == 2 ? g.M : g.N)))
			return copro_op_err(err, errlen, -ENOTSUP, n,
					    "zero point %d must be a scalar or 1-D per %s", i - 2,
					    i == 2 ? "row" : "column");
	}
	out[0].dtype = COPRO_K_I32;
	return 0;
}

static int mmi_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	struct mmi_ctx c = { in[0].dtype, in[1].dtype, NULL, NULL, 0, 0 };
	struct mm_geom g;

	if (copro_op_nin(n, in, 2)) {
		c.za = in[2].data;
		c.nza = copro_op_numel(&in[2]);
	}
	if (copro_op_nin(n, in, 3)) {
		c.zb = in[3].data;
		c.nzb = copro_op_numel(&in[3]);
	}
	mm_geom(&in[0], &in[1], &g);
	mm_batches(&g, in[0].data, in[1].data, out[0].data, 1, 1, 4, mmi_one, &c);
	return 0;
}

const struct copro_op copro_op_matmulinteger = {
	.name = "MatMulInteger", .since = 10, .infer = mmi_infer, .run = mmi_run,
};
