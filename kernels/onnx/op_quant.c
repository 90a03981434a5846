/* SPDX-License-Identifier: MIT */
/*
 * op_quant.c - linear (de)quantization and its helpers:
 * QuantizeLinear, DequantizeLinear (opset 10; per-axis from 13).
 *
 * QuantizeLinear: y = saturate(round(x / scale) + zero_point), rounding
 * half to even as the spec says; y has the zero point's type, uint8 when
 * there is none. DequantizeLinear: y = (x - zero_point) * scale in float.
 * scale (float) and zero_point are scalars, or from opset 13 1-D tensors
 * along `axis` (default 1) for per-channel quantization.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "onnx/op_impl.h"

/*
 * Geometry of a per-tensor or per-axis scale over x seen as [outer, C,
 * inner]: C = 1 (per tensor) or dims[axis].
 */
struct q_geom {
	int64_t outer, C, inner;
};

static void q_geom(const struct copro_node *n, const struct copro_kt *x,
		   const struct copro_kt *scale, struct q_geom *g)
{
	int axis = 0, i;

	g->outer = copro_op_numel(x);
	g->C = 1;
	g->inner = 1;
	if (copro_op_numel(scale) == 1 && scale->rank <= 1)
		return;
	copro_op_axis(copro_attr_int(n, "axis", 1), x->rank, &axis);
	g->outer = 1;
	g->C = x->dims[axis];
	for (i = 0; i < x->rank; i++) {
		if (i < axis)
			g->outer *= x->dims[i];
		else if (i > axis)
			g->inner *= x->dims[i];
	}
}

/* Checks scale (input 1) and the optional zero point (input 2). */
static int q_params(struct copro_node *n, const struct copro_kt *in, char *err, size_t errlen)
{
	const struct copro_kt *s = &in[1];
	int axis;

	if (n->n_in < 2 || n->n_in > 3 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs x, scale, optional zero point");
	if (s->dtype != COPRO_K_F32)
		return copro_op_err(err, errlen, -ENOTSUP, n, "scale dtype %s not supported",
				    copro_op_dname(s->dtype));
	if (!(copro_op_numel(s) == 1 && s->rank <= 1)) {
		if (n->opset < 13)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "scale must be a scalar before opset 13");
		if (s->rank != 1)
			return copro_op_err(err, errlen, -EINVAL, n, "scale must be 0-D or 1-D");
		if (copro_op_axis(copro_attr_int(n, "axis", 1), in[0].rank, &axis) < 0)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "axis %lld out of range for rank %d",
					    (long long)copro_attr_int(n, "axis", 1), in[0].rank);
		if (!copro_op_dim_eq(s->dims[0], in[0].dims[axis]))
			return copro_op_err(err, errlen, -EINVAL, n,
					    "scale has %lld entries, axis %d has %lld",
					    (long long)s->dims[0], axis,
					    (long long)in[0].dims[axis]);
	}
	if (copro_op_nin(n, in, 2)) {
		const struct copro_kt *z = &in[2];
		int i, same = z->rank == s->rank;

		for (i = 0; same && i < z->rank; i++)
			same = copro_op_dim_eq(z->dims[i], s->dims[i]);
		if (!same && !(copro_op_numel(z) == 1 && copro_op_numel(s) == 1))
			return copro_op_err(err, errlen, -EINVAL, n,
					    "zero point and scale shapes differ");
	}
	return 0;
}

static inline int32_t q_zero(const struct copro_kt *z, int64_t c)
{
	if (!z)
		return 0;
	switch (z->dtype) {
	case COPRO_K_U8: return ((const uint8_t *)z->data)[c];
	case COPRO_K_I8: return ((const int8_t *)z->data)[c];
	case COPRO_K_I32: return ((const int32_t *)z->data)[c];
	default: return 0;
	}
}

static int quant_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		       char *err, size_t errlen)
{
	int rc = q_params(n, in, err, errlen);
	int32_t yt = COPRO_K_U8;

	if (rc < 0)
		return rc;
	if (in[0].dtype != COPRO_K_F32 && in[0].dtype != COPRO_K_I32)
		return copro_op_err(err, errlen, -ENOTSUP, n, "x dtype %s not supported",
				    copro_op_dname(in[0].dtype));
	if (copro_op_nin(n, in, 2)) {
		yt = in[2].dtype;
		if (yt != COPRO_K_U8 && yt != COPRO_K_I8)
			return copro_op_err(err, errlen, -ENOTSUP, n,
					    "zero point dtype %s not supported",
					    copro_op_dname(yt));
	}
	out[0].dtype = yt;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

static int quant_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     void *scratch)
{
	const struct copro_kt *z = copro_op_nin(n, in, 2) ? &in[2] : NULL;
	const float *sc = in[1].data;
	int is_i8 = out[0].dtype == COPRO_K_I8;
	float lo = is_i8 ? -128.0f : 0.0f, hi = is_i8 ? 127.0f : 255.0f;
	struct q_geom g;
	int64_t o, c, i, k = 0;

	q_geom(n, &in[0], &in[1], &g);
	for (o = 0; o < g.outer; o++) {
		for (c = 0; c < g.C; c++) {
			float s = sc[c], zp = (float)q_zero(z, c);

			for (i = 0; i < g.inner; i++, k++) {
				float x = in[0].dtype == COPRO_K_F32
						  ? ((const float *)in[0].data)[k]
						  : (float)((const int32_t *)in[0].data)[k];
				/* rintf: the current mode, round-half-even by default. */
				float v = rintf(x / s) + zp;

				v = v < lo ? lo : v > hi ? hi : v;
				if (v != v)
					v = zp;
				if (is_i8)
					((int8_t *)out[0].data)[k] = (int8_t)v;
				else
					((uint8_t *)out[0].data)[k] = (uint8_t)v;
			}
		}
	}
	return 0;
}

const struct copro_op copro_op_quantizelinear = {
	.name = "QuantizeLinear", .since = 10, .infer = quant_infer, .run = quant_run,
};

static int dequant_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			 char *err, size_t errlen)
{
	int rc = q_params(n, in, err, errlen);
	int32_t xt = in[0].dtype;

	if (rc < 0)
		return rc;
	if (xt != COPRO_K_U8 && xt != COPRO_K_I8 && xt != COPRO_K_I32)
		return copro_op_err(err, errlen, -ENOTSUP, n, "x dtype %s not supported",
				    copro_op_dname(xt));
	if (copro_op_nin(n, in, 2) && in[2].dtype != xt)
		return copro_op_err(err, errlen, -EINVAL, n, "zero point is %s, x is %s",
				    copro_op_dname(in[2].dtype), copro_op_dname(xt));
	out[0].dtype = COPRO_K_F32;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

static int dequant_run(const struct copro_node *n, const struct copro_kt *in,
		       struct copro_kt *out, void *scratch)
{
	const struct copro_kt *z = copro_op_nin(n, in, 2) ? &in[2] : NULL;
	const float *sc = in[1].data;
	float *y = out[0].data;
	struct q_geom g;
	int64_t o, c, i, k = 0;

	q_geom(n, &in[0], &in[1], &g);
	for (o = 0; o < g.outer; o++) {
		for (c = 0; c < g.C; c++) {
			float s = sc[c], zp = (float)q_zero(z, c);

			for (i = 0; i < g.inner; i++, k++) {
				float x;

				switch (in[0].dtype) {
				case COPRO_K_U8: x = ((const uint8_t *)in[0].data)[k]; break;
				case COPRO_K_I8: x = ((const int8_t *)in[0].data)[k]; break;
				default: x = (float)((const int32_t *)in[0].data)[k]; break;
				}
				y[k] = (x - zp) * s;
			}
		}
	}
	return 0;
}

const struct copro_op copro_op_dequantizelinear = {
	.name = "DequantizeLinear", .since = 10, .infer = dequant_infer, .run = dequant_run,
};
