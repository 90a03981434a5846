/* SPDX-License-Identifier: MIT */
/*
 * op_norm.c - normalizations at inference: BatchNormalization (with the
 * running statistics it was given) and LayerNormalization (opset 17).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "onnx/op_impl.h"

/* ---------------------------------------------------------------------- */
/* BatchNormalization                                                     */
/* ---------------------------------------------------------------------- */

/*
 * Y = (X - mean) / sqrt(var + epsilon) * scale + B per channel (dim 1),
 * X being [N, C, D1, ...]. Training mode (opset 14's training_mode = 1,
 * or asking for the statistics outputs) would update the statistics and
 * is refused.
 */
static int bn_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		    char *err, size_t errlen)
{
	static const char *const names[] = { "X", "scale", "B", "mean", "var" };
	int64_t c;
	int i;

	if (n->n_in != 5)
		return copro_op_err(err, errlen, -EINVAL, n, "needs five inputs");
	for (i = 0; i < 5; i++) {
		if (!copro_op_nin(n, in, i))
			return copro_op_err(err, errlen, -EINVAL, n, "input %s is missing",
					    names[i]);
		if (in[i].dtype != COPRO_K_F32)
			return copro_op_err(err, errlen, -ENOTSUP, n, "%s: dtype %s not supported",
					    names[i], copro_op_dname(in[i].dtype));
	}
	if (copro_attr_int(n, "training_mode", 0) != 0)
		return copro_op_err(err, errlen, -ENOTSUP, n, "training mode not supported");
	if (copro_attr_int(n, "spatial", 1) != 1)
		return copro_op_err(err, errlen, -ENOTSUP, n, "spatial=0 not supported");
	for (i = 1; i < n->n_out; i++)
		if (copro_op_nout(n, i))
			return copro_op_err(err, errlen, -ENOTSUP, n,
					    "statistics outputs (training) not supported");
	if (in[0].rank < 2)
		return copro_op_err(err, errlen, -EINVAL, n, "X must have rank >= 2, not %d",
				    in[0].rank);
	c = in[0].dims[1];
	for (i = 1; i < 5; i++)
		if (in[i].rank != 1 || !copro_op_dim_eq(in[i].dims[0], c))
			return copro_op_err(err, errlen, -EINVAL, n, "%s must be [%lld]", names[i],
					    (long long)c);
	out[0].dtype = COPRO_K_F32;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

static int bn_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		  void *scratch)
{
	const float *x = in[0].data, *sc = in[1].data, *b = in[2].data;
	const float *mu = in[3].data, *var = in[4].data;
	float *y = out[0].data;
	float eps = copro_attr_float(n, "epsilon", 1e-5f);
	int64_t N = in[0].dims[0], C = in[0].dims[1], S = 1, i, c, s;

	for (i = 2; i < in[0].rank; i++)
		S *= in[0].dims[i];
	for (i = 0; i < N; i++) {
		for (c = 0; c < C; c++) {
			/* Folded to y = x * k + d per channel. */
			float k = sc[c] / sqrtf(var[c] + eps), d = b[c] - mu[c] * k;
			const float *xp = x + (i * C + c) * S;
			float *yp = y + (i * C + c) * S;

			for (s = 0; s < S; s++)
				yp[s] = xp[s] * k + d;
		}
	}
	return 0;
}

const struct copro_op copro_op_batchnorm = {
	.name = "BatchNormalization", .since = 7, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = bn_infer, .run = bn_run,
};

/* ---------------------------------------------------------------------- */
/* LayerNormalization                                                     */
/* ---------------------------------------------------------------------- */

/*
 * Normalizes X over its dims [axis, rank): per row of D = prod(those)
 * elements, Y = (X - mean) / sqrt(var + epsilon) * Scale + B. Mean and
 * InvStdDev (optional outputs) are [dims[:axis], 1, ..., 1]. Scale and B
 * must hold D elements in the normalized shape (leading 1s allowed) or
 * be a single element; other broadcasts are refused.
 */
static int ln_param_ok(const struct copro_kt *p, const struct copro_kt *x, int axis)
{
	int i, j;

	if (copro_op_numel(p) == 1)
		return 1;
	if (p->rank > x->rank - axis)
		return 0;
	for (i = p->rank - 1, j = x->rank - 1; i >= 0; i--, j--)
		if (!copro_op_dim_eq(p->dims[i], x->dims[j]))
			return 0;
	/* Dims of X the parameter does not cover must be 1. */
	for (; j >= axis; j--)
		if (!copro_op_dim_eq(x->dims[j], 1))
			return 0;
	return 1;
}

static int ln_axis(const struct copro_node *n, int rank, int *axis)
{
	return copro_op_axis(copro_attr_int(n, "axis", -1), rank, axis);
}

static int ln_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		    char *err, size_t errlen)
{
	int axis, i;

	if (n->n_in < 2 || n->n_in > 3 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs X, Scale and optional B");
	if (n->n_out > 3)
		return copro_op_err(err, errlen, -EINVAL, n, "has at most three outputs");
	for (i = 0; i < n->n_in; i++)
		if (copro_op_nin(n, in, i) && in[i].dtype != COPRO_K_F32)
			return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
					    copro_op_dname(in[i].dtype));
	if (copro_attr_int(n, "stash_type", 1) != COPRO_K_F32)
		return copro_op_err(err, errlen, -ENOTSUP, n, "stash_type %lld not supported",
				    (long long)copro_attr_int(n, "stash_type", 1));
	if (ln_axis(n, in[0].rank, &axis) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "axis %lld out of range for rank %d",
				    (long long)copro_attr_int(n, "axis", -1), in[0].rank);
	for (i = 1; i < n->n_in; i++)
		if (copro_op_nin(n, in, i) && !ln_param_ok(&in[i], &in[0], axis))
			return copro_op_err(err, errlen, -EINVAL, n,
					    "%s does not match the normalized dims",
					    i == 1 ? "Scale" : "B");
	out[0].dtype = COPRO_K_F32;
	copro_op_shape_copy(&out[0], &in[0]);
	for (i = 1; i < n->n_out && i < 3; i++) {
		int j;

		out[i].dtype = COPRO_K_F32;
		out[i].rank = in[0].rank;
		for (j = 0; j < in[0].rank; j++)
			out[i].dims[j] = j < axis ? in[0].dims[j] : 1;
	}
	return 0;
}

static int ln_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		  void *scratch)
{
	const float *x = in[0].data, *sc = in[1].data;
	const float *b = copro_op_nin(n, in, 2) ? in[2].data : NULL;
	int ssc = copro_op_numel(&in[1]) != 1;
	int sb = b && copro_op_numel(&in[2]) != 1;
	float *y = out[0].data;
	float *mo = copro_op_nout(n, 1) ? out[1].data : NULL;
	float *io = copro_op_nout(n, 2) ? out[2].data : NULL;
	double eps = copro_attr_float(n, "epsilon", 1e-5f);
	int64_t rows = 1, D = 1, r, j;
	int axis = 0, i;

	ln_axis(n, in[0].rank, &axis);
	for (i = 0; i < in[0].rank; i++) {
		if (i < axis)
			rows *= in[0].dims[i];
		else
			D *= in[0].dims[i];
	}
	for (r = 0; r < rows; r++) {
		const float *xr = x + r * D;
		float *yr = y + r * D;
		double mean = 0, var = 0;
		float fm, inv;

		/* Two passes: the mean first, then squares about it (no
		 * cancellation as in E[x^2] - E[x]^2). */
		for (j = 0; j < D; j++)
			mean += xr[j];
		mean = D ? mean / (double)D : 0;
		for (j = 0; j < D; j++)
			var += ((double)xr[j] - mean) * ((double)xr[j] - mean);
		var = D ? var / (double)D : 0;
		fm = (float)mean;
		inv = (float)(1.0 / sqrt(var + eps));
		for (j = 0; j < D; j++) {
			float v = (xr[j] - fm) * inv * sc[ssc ? j : 0];

			yr[j] = b ? v + b[sb ? j : 0] : v;
		}
		if (mo)
			mo[r] = fm;
		if (io)
			io[r] = inv;
	}
	return 0;
}

const struct copro_op copro_op_layernorm = {
	.name = "LayerNormalization", .since = 17, .infer = ln_infer, .run = ln_run,
};
