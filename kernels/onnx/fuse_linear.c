// SPDX-License-Identifier: MIT
/*
 * fuse_linear.c - the linear step: a Gemm or MatMul with a constant B,
 * the bias row added after it and its activation, as one step.
 *
 * In f32 the step runs the Gemm/MatMul exactly as its own step would
 * (same routine, same arguments, same priv), then adds the bias row and
 * applies the activation in one pass over the output right after the
 * BLAS call has written it, still in cache (64 KiB at batch 64 for a
 * 256-wide layer). The arithmetic is the unfused steps', operation for
 * operation, so the results are identical bit for bit; what goes is one
 * or two steps, their passes over memory, and an intermediate buffer.
 * OpenBLAS has no epilogue hook, so this is as close as f32 gets.
 *
 * Where the planner chose it (an AVX-512 CPU, a Gemm/MatMul it takes),
 * f32 runs instead on this project's own kernel (gemm_f32.c) with the
 * weights packed once per graph and the epilogue in registers; the
 * unfused plan then uses the same kernel, so bit for bit still holds.
 *
 * In bf16 and int8 the kernels are this project's own (quant_bf16.c,
 * quant_int8.c) and the epilogue runs on the accumulators in registers
 * before the output is stored: scale, bias row (Gemm's constant C folded
 * in at build time), Relu/LeakyRelu; Sigmoid and Tanh on the sixteen
 * values just stored.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/fuse.h"
#include "onnx/plan.h"

struct linear_priv {
	uint32_t prec;			/* COPRO_PREC_* the step computes in */
	const struct copro_op *inner_op;	/* f32: Gemm or MatMul */
	struct copro_node inner;	/* f32: its node, with its own priv */
	int is_gemm, ta;
	float alpha, beta;
	int64_t K;
	int c_general;			/* low precision: C added per element at run time */
	int64_t csm, csn;		/* its strides */
	struct copro_epi epi;		/* act, bias; c bound at run time */
	float *bias;			/* owned: f32 (N); low precision (Np), C folded in */
	struct copro_q8w q8;
	struct copro_bf16w bf;
	int portable;
	int f32_own;			/* f32 on gemm_f32.c's kernel, not the inner op */
	struct copro_f32w f32;
	float *crow;			/* f32_own: (Np) beta * C's row, or NULL */
};

void copro_epi_finish(const struct copro_epi *e, float *y, int64_t i, int64_t j0, int64_t n)
{
	int64_t j;

	if (e->c) {
		for (j = 0; j < n; j++)
			y[j] += e->beta * e->c[i * e->csm + (j0 + j) * e->csn];
	}
	if (e->act == COPRO_ACT_NONE)
		return;
	for (j = 0; j < n; j++)
		y[j] = copro_act(e->act, e->act_alpha, y[j]);
}

/*
 * y[M, N] = act(y + bias) in one pass, with exactly the operations the
 * Add and activation ops do (y + b, then v < 0 ? 0 : v, ...), one loop
 * per case so the compiler vectorizes the cheap ones.
 */
static void f32_epilogue(float *y, int64_t M, int64_t N, const struct copro_epi *e)
{
	const float *b = e->bias;
	const float al = e->act_alpha;
	int64_t i, j;

	for (i = 0; i < M; i++) {
		float *r = y + i * N;

		switch (e->act) {
		case COPRO_ACT_RELU:
			if (b) {
				for (j = 0; j < N; j++) {
					float v = r[j] + b[j];

					r[j] = v < 0 ? 0.0f : v;
				}
			} else {
				for (j = 0; j < N; j++)
					r[j] = r[j] < 0 ? 0.0f : r[j];
			}
			break;
		case COPRO_ACT_LEAKY:
			for (j = 0; j < N; j++) {
				float v = b ? r[j] + b[j] : r[j];

				r[j] = v >= 0 ? v : v * al;
			}
			break;
		case COPRO_ACT_SIGMOID:
			for (j = 0; j < N; j++)
				r[j] = copro_sigmoidf(b ? r[j] + b[j] : r[j]);
			break;
		case COPRO_ACT_TANH:
			for (j = 0; j < N; j++)
				r[j] = tanhf(b ? r[j] + b[j] : r[j]);
			break;
		default:
			if (b)
				for (j = 0; j < N; j++)
					r[j] = r[j] + b[j];
			break;
		}
	}
}

/* Rows of the product for these planned shapes: Gemm's M, or MatMul's batch * M. */
static int64_t linear_rows(const struct linear_priv *lp, const struct copro_kt *a)
{
	int64_t k = 1;
	int i;

	if (lp->is_gemm)
		return a->dims[lp->ta ? 1 : 0];
	for (i = 0; i + 1 < a->rank; i++)
		k *= a->dims[i];
	return k;
}

static int linear_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			char *err, size_t errlen)
{
	/* Never in the registry: the planner makes these steps after inference. */
	return -ENOTSUP;
}

static size_t linear_scratch(const struct copro_node *n, const struct copro_kt *in,
			     const struct copro_kt *out)
{
	const struct linear_priv *lp = n->priv;
	int64_t M = linear_rows(lp, &in[0]);

	switch (lp->prec) {
	case COPRO_PREC_INT8:
		return copro_q8_scratch(&lp->q8, M);
	case COPRO_PREC_BF16:
		return copro_bf16_scratch(&lp->bf, M);
	default:
		if (lp->f32_own)
			return 0;
		return lp->inner_op->scratch ? lp->inner_op->scratch(&lp->inner, in, out) : 0;
	}
}

static int linear_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      void *scratch)
{
	const struct linear_priv *lp = n->priv;
	struct copro_epi e = lp->epi;
	int64_t M = linear_rows(lp, &in[0]);
	float *y = out[0].data;		/* (M, N) */
	int rc;

	if (lp->f32_own) {
		copro_f32_gemm(&lp->f32, in[0].data, M, lp->crow, &e, y);
		return 0;
	}
	if (lp->prec == COPRO_PREC_F32) {
		rc = lp->inner_op->run(&lp->inner, in, out, scratch);
		if (rc)
			return rc;
		f32_epilogue(y, M, out[0].rank ? out[0].dims[out[0].rank - 1] : 1, &e);
		return 0;
	}
	if (lp->c_general) {
		e.c = in[2].data;
		e.csm = lp->csm;
		e.csn = lp->csn;
		e.beta = lp->beta;
	}
	if (lp->prec == COPRO_PREC_INT8)
		copro_q8_gemm(&lp->q8, in[0].data, lp->ta, M, lp->alpha, &e, y, scratch);
	else
		copro_bf16_gemm(&lp->bf, in[0].data, lp->ta, M, lp->alpha, &e, y, scratch,
				lp->portable);
	return 0;
}

static void linear_release(struct copro_node *n)
{
	struct linear_priv *lp = n->priv;

	if (!lp)
		return;
	if (lp->inner_op && lp->inner_op->release && lp->inner.priv)
		lp->inner_op->release(&lp->inner);
	copro_q8_free(&lp->q8);
	copro_bf16_free(&lp->bf);
	copro_f32_free(&lp->f32);
	free(lp->crow);
	free(lp->bias);
	free(lp);
	n->priv = NULL;
}

const struct copro_op copro_op_linear = {
	.name = "Linear", .since = 1, .infer = linear_infer, .scratch = linear_scratch,
	.run = linear_run, .release = linear_release,
};

/*
 * Low precision's bias row (Np floats): beta * C when C is a constant row
 * (or scalar), plus the fused Add's row. A C with one value per row, or a
 * computed one, is added at run time instead (c_general).
 */
static int lowp_bias(struct linear_priv *lp, const struct copro_linear_spec *s, int64_t Np)
{
	const struct copro_kt *c = s->c;
	int64_t N = s->N, j;
	int use_c = c && c->dtype && s->beta != 0.0f;

	if (use_c) {
		lp->csn = (c->rank >= 1 && c->dims[c->rank - 1] != 1) ? 1 : 0;
		lp->csm = (c->rank == 2 && c->dims[0] != 1) ? c->dims[1] : 0;
		lp->c_general = !c->data || lp->csm != 0;
	}
	if (!s->bias && (!use_c || lp->c_general))
		return 0;
	lp->bias = calloc((size_t)(Np ? Np : 1), sizeof(float));
	if (!lp->bias)
		return -ENOMEM;
	for (j = 0; j < N; j++) {
		float v = 0;

		if (use_c && !lp->c_general)
			v = s->beta * ((const float *)c->data)[j * lp->csn];
		lp->bias[j] = s->bias ? v + s->bias[j] : v;
	}
	lp->epi.bias = lp->bias;
	return 0;
}

/*
 * Sets lp up for the own f32 kernel: the weights packed (shared through
 * the graph when s->g), Gemm's beta * C row and the bias padded to the
 * kernel's width. The planner checked C is absent, ignored (beta 0) or a
 * constant row. Adds what lp owns to *bytes; returns 0 or -ENOMEM.
 */
static int f32_own_make(struct linear_priv *lp, const struct copro_linear_spec *s, size_t *bytes)
{
	const struct copro_kt *c = s->c;
	int64_t Np, j;
	int rc;

	rc = copro_f32_pack(&lp->f32, s->g, s->b, s->tb, s->K, s->N);
	if (rc)
		return rc;
	lp->f32_own = 1;
	if (!lp->f32.shared)
		*bytes += copro_f32_bytes(&lp->f32);
	Np = lp->f32.Np;
	if (c && c->dtype && s->beta != 0.0f) {
		int64_t csn = (c->rank >= 1 && c->dims[c->rank - 1] != 1) ? 1 : 0;

		lp->crow = calloc((size_t)Np, sizeof(float));
		if (!lp->crow)
			return -ENOMEM;
		/* As the Gemm op prefills its output: beta * C, one rounding */
		for (j = 0; j < s->N; j++)
			lp->crow[j] = s->beta * ((const float *)c->data)[j * csn];
		*bytes += (size_t)Np * sizeof(float);
	}
	if (s->bias) {
		lp->bias = calloc((size_t)Np, sizeof(float));
		if (!lp->bias)
			return -ENOMEM;
		memcpy(lp->bias, s->bias, (size_t)s->N * sizeof(float));
		lp->epi.bias = lp->bias;
		*bytes += (size_t)Np * sizeof(float);
	}
	return 0;
}

int copro_linear_make(struct copro_node *n, struct copro_linear_spec *s, size_t *bytes,
		      int *lowp, const char **kernel)
{
	struct linear_priv *lp = calloc(1, sizeof(*lp));
	int rc = 0;

	*bytes = 0;
	*lowp = 0;
	*kernel = "f32";
	if (!lp) {
		if (s->op->release && s->node.priv)
			s->op->release(&s->node);
		return -ENOMEM;
	}
	lp->inner_op = s->op;
	lp->inner = s->node;
	lp->is_gemm = strcmp(s->op->name, "Gemm") == 0;
	lp->ta = s->ta;
	lp->alpha = s->alpha;
	lp->beta = s->beta;
	lp->K = s->K;
	lp->portable = s->portable;
	lp->epi.act = s->act;
	lp->epi.act_alpha = s->act_alpha;
	lp->prec = COPRO_PREC_F32;

	/*
	 * Without the AVX-512 kernel the product stays f32 unless the caller
	 * asked for the plain C one: that is 7-20x slower than OpenBLAS's
	 * f32 here, and a precision option is asked for speed.
	 */
	if (s->precision == COPRO_PREC_INT8 && s->K <= COPRO_Q8_MAX_K &&
	    (s->portable || copro_q8_vnni_ok())) {
		int vnni = !s->portable;

		rc = copro_q8_pack(&lp->q8, s->b, s->tb, s->K, s->N, vnni);
		if (rc == 0) {
			lp->prec = COPRO_PREC_INT8;
			*bytes = copro_q8_bytes(&lp->q8);
			*kernel = vnni ? "avx512-vnni" : "portable";
			rc = lowp_bias(lp, s, lp->q8.Np);
		}
	} else if (s->precision == COPRO_PREC_BF16 && (s->portable || copro_bf16_avx512_ok())) {
		rc = copro_bf16_pack(&lp->bf, s->b, s->tb, s->K, s->N);
		if (rc == 0) {
			lp->prec = COPRO_PREC_BF16;
			*bytes = copro_bf16_bytes(&lp->bf);
			*kernel = s->portable ? "portable" : "avx512-bf16";
			rc = lowp_bias(lp, s, lp->bf.Np);
		}
	}
	if (rc == -ERANGE)
		rc = 0;		/* non-finite weights: this product stays f32 */
	if (rc == 0 && lp->prec == COPRO_PREC_F32 && s->f32_own) {
		rc = f32_own_make(lp, s, bytes);
	} else if (rc == 0 && lp->prec == COPRO_PREC_F32 && s->bias) {
		lp->bias = malloc((size_t)s->N * sizeof(float));
		if (!lp->bias)
			rc = -ENOMEM;
		else
			memcpy(lp->bias, s->bias, (size_t)s->N * sizeof(float));
		lp->epi.bias = lp->bias;
		*bytes += (size_t)s->N * sizeof(float);
	}
	if (rc == 0 && (lp->prec != COPRO_PREC_F32 || lp->f32_own) && lp->inner_op->release &&
	    lp->inner.priv) {
		/* The f32 op's own copy of B (Gemm's transposed weights) is not needed. */
		lp->inner_op->release(&lp->inner);
		lp->inner.priv = NULL;
	}
	n->op = &copro_op_linear;
	n->priv = lp;
	if (rc) {
		linear_release(n);
		n->op = NULL;
		return rc;
	}
	*lowp = lp->prec != COPRO_PREC_F32;
	if (!*lowp)
		*kernel = "f32";
	return 0;
}
