/* SPDX-License-Identifier: MIT */
/*
 * op_activation.c - element-wise math of one tensor and the row-wise
 * normalizers: Relu, LeakyRelu, Sigmoid, Tanh, Erf, Sqrt, Exp, Log, Neg,
 * Abs, Reciprocal, Floor, Ceil, Round, Elu, Selu, Celu, HardSigmoid,
 * HardSwish, Softplus, Softsign, ThresholdedRelu, Clip, PRelu, Softmax,
 * LogSoftmax.
 *
 * The unary ops are table-driven: one struct unary_def per op lists the
 * loop for each element type it supports (f32 and f64 for all; the
 * integer types only where the op means something on integers). A NULL
 * loop is a type the op rejects in infer().
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <string.h>

#include "onnx/op_impl.h"

typedef void (*unary_fn)(const void *x, void *y, int64_t n, float alpha, float beta);

struct unary_def {
	unary_fn f32, f64, i8, i16, i32, i64;
};

#define UN_LOOP(fname, T, EXPR)							\
static void fname(const void *px, void *py, int64_t n, float alpha,		\
		  float beta)							\
{										\
	const T *x = px;							\
	T *y = py;								\
	int64_t i;								\
										\
	for (i = 0; i < n; i++) {						\
		T v = x[i];							\
		y[i] = (EXPR);							\
	}									\
}

/*
 * Sigmoid in the form that cannot overflow: exp() only ever sees a
 * non-positive argument, so large |v| gives 0 or 1 instead of inf/inf.
 */
static inline float sigmoidf(float v)
{
	float e;

	if (v >= 0)
		return 1.0f / (1.0f + expf(-v));
	e = expf(v);
	return e / (1.0f + e);
}

static inline double sigmoid(double v)
{
	double e;

	if (v >= 0)
		return 1.0 / (1.0 + exp(-v));
	e = exp(v);
	return e / (1.0 + e);
}

/* Relu keeps NaN, as the reference's max(x, 0) does (v < 0 is false). */
UN_LOOP(relu_f32, float, v < 0 ? 0.0f : v)
UN_LOOP(relu_f64, double, v < 0 ? 0.0 : v)
UN_LOOP(relu_i8, int8_t, v > 0 ? v : 0)
UN_LOOP(relu_i16, int16_t, v > 0 ? v : 0)
UN_LOOP(relu_i32, int32_t, v > 0 ? v : 0)
UN_LOOP(relu_i64, int64_t, v > 0 ? v : 0)
UN_LOOP(leaky_f32, float, v >= 0 ? v : v * alpha)
UN_LOOP(leaky_f64, double, v >= 0 ? v : v * (double)alpha)
UN_LOOP(sigmoid_f32, float, sigmoidf(v))
UN_LOOP(sigmoid_f64, double, sigmoid(v))
UN_LOOP(tanh_f32, float, tanhf(v))
UN_LOOP(tanh_f64, double, tanh(v))
UN_LOOP(erf_f32, float, erff(v))
UN_LOOP(erf_f64, double, erf(v))
UN_LOOP(sqrt_f32, float, sqrtf(v))
UN_LOOP(sqrt_f64, double, sqrt(v))
UN_LOOP(exp_f32, float, expf(v))
UN_LOOP(exp_f64, double, exp(v))
UN_LOOP(log_f32, float, logf(v))
UN_LOOP(log_f64, double, log(v))
UN_LOOP(neg_f32, float, -v)
UN_LOOP(neg_f64, double, -v)
UN_LOOP(neg_i8, int8_t, (int8_t)(0 - (uint64_t)v))
UN_LOOP(neg_i16, int16_t, (int16_t)(0 - (uint64_t)v))
UN_LOOP(neg_i32, int32_t, (int32_t)(0 - (uint64_t)v))
UN_LOOP(neg_i64, int64_t, (int64_t)(0 - (uint64_t)v))
UN_LOOP(abs_f32, float, fabsf(v))
UN_LOOP(abs_f64, double, fabs(v))
UN_LOOP(abs_i8, int8_t, v < 0 ? (int8_t)(0 - (uint64_t)v) : v)
UN_LOOP(abs_i16, int16_t, v < 0 ? (int16_t)(0 - (uint64_t)v) : v)
UN_LOOP(abs_i32, int32_t, v < 0 ? (int32_t)(0 - (uint64_t)v) : v)
UN_LOOP(abs_i64, int64_t, v < 0 ? (int64_t)(0 - (uint64_t)v) : v)
UN_LOOP(recip_f32, float, 1.0f / v)
UN_LOOP(recip_f64, double, 1.0 / v)

UN_LOOP(floor_f32, float, floorf(v))
UN_LOOP(floor_f64, double, floor(v))
UN_LOOP(ceil_f32, float, ceilf(v))
UN_LOOP(ceil_f64, double, ceil(v))
/* Round: half to even, as the spec says (rint in the default mode). */
UN_LOOP(round_f32, float, rintf(v))
UN_LOOP(round_f64, double, rint(v))
UN_LOOP(elu_f32, float, v >= 0 ? v : alpha * expm1f(v))
UN_LOOP(elu_f64, double, v >= 0 ? v : alpha * expm1(v))
UN_LOOP(selu_f32, float, beta * (v > 0 ? v : alpha * expm1f(v)))
UN_LOOP(selu_f64, double, beta * (v > 0 ? v : alpha * expm1(v)))
UN_LOOP(celu_f32, float, (v > 0 ? v : 0) + fminf(0.0f, alpha * expm1f(v / alpha)))
UN_LOOP(hsig_f32, float, fmaxf(0.0f, fminf(1.0f, alpha * v + beta)))
UN_LOOP(hsig_f64, double, fmax(0.0, fmin(1.0, alpha * v + beta)))
UN_LOOP(hswish_f32, float, v * fmaxf(0.0f, fminf(1.0f, v / 6.0f + 0.5f)))
UN_LOOP(hswish_f64, double, v * fmax(0.0, fmin(1.0, v / 6.0 + 0.5)))
/* log(1 + e^v) without overflow for large v. */
UN_LOOP(softplus_f32, float, v > 0 ? v + log1pf(expf(-v)) : log1pf(expf(v)))
UN_LOOP(softplus_f64, double, v > 0 ? v + log1p(exp(-v)) : log1p(exp(v)))
UN_LOOP(softsign_f32, float, v / (1.0f + fabsf(v)))
UN_LOOP(softsign_f64, double, v / (1.0 + fabs(v)))
UN_LOOP(threlu_f32, float, v > alpha ? v : 0.0f)
UN_LOOP(threlu_f64, double, v > alpha ? v : 0.0)

static unary_fn unary_loop(const struct unary_def *d, int32_t dtype)
{
	switch (dtype) {
	case COPRO_K_F32: return d->f32;
	case COPRO_K_F64: return d->f64;
	case COPRO_K_I8: return d->i8;
	case COPRO_K_I16: return d->i16;
	case COPRO_K_I32: return d->i32;
	case COPRO_K_I64: return d->i64;
	default: return NULL;
	}
}

static int unary_infer(const struct unary_def *d, struct copro_node *n, const struct copro_kt *in,
		       struct copro_kt *out, char *err, size_t errlen)
{
	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	if (!unary_loop(d, in[0].dtype))
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(in[0].dtype));
	out[0].dtype = in[0].dtype;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

static int unary_run(const struct unary_def *d, const struct copro_node *n,
		     const struct copro_kt *in, struct copro_kt *out, float alpha, float beta)
{
	unary_loop(d, in[0].dtype)(in[0].data, out[0].data, copro_op_numel(&in[0]), alpha,
				   beta);
	return 0;
}

/*
 * One struct copro_op per unary op; ALPHA and BETA are its attributes
 * (with their defaults), read in run().
 */
#define UNARY_OP(sym, NAME, SINCE, ALPHA, BETA, ...)				\
static const struct unary_def sym##_def = { __VA_ARGS__ };			\
static int sym##_infer(struct copro_node *n, const struct copro_kt *in,		\
		       struct copro_kt *out, char *err, size_t errlen)		\
{										\
	return unary_infer(&sym##_def, n, in, out, err, errlen);		\
}										\
static int sym##_run(const struct copro_node *n, const struct copro_kt *in,	\
		     struct copro_kt *out, void *scratch)			\
{										\
	return unary_run(&sym##_def, n, in, out, (ALPHA), (BETA));		\
}										\
const struct copro_op copro_op_##sym = {					\
	.name = NAME, .since = SINCE, .flags = COPRO_OP_F_INPLACE_OK,		\
	.infer = sym##_infer, .run = sym##_run,					\
};

UNARY_OP(relu, "Relu", 6, 0, 0, .f32 = relu_f32, .f64 = relu_f64, .i8 = relu_i8,
	 .i16 = relu_i16, .i32 = relu_i32, .i64 = relu_i64)
UNARY_OP(leakyrelu, "LeakyRelu", 6, copro_attr_float(n, "alpha", 0.01f), 0,
	 .f32 = leaky_f32, .f64 = leaky_f64)
UNARY_OP(sigmoid, "Sigmoid", 6, 0, 0, .f32 = sigmoid_f32, .f64 = sigmoid_f64)
UNARY_OP(tanh, "Tanh", 6, 0, 0, .f32 = tanh_f32, .f64 = tanh_f64)
UNARY_OP(erf, "Erf", 9, 0, 0, .f32 = erf_f32, .f64 = erf_f64)
UNARY_OP(sqrt, "Sqrt", 6, 0, 0, .f32 = sqrt_f32, .f64 = sqrt_f64)
UNARY_OP(exp, "Exp", 6, 0, 0, .f32 = exp_f32, .f64 = exp_f64)
UNARY_OP(log, "Log", 6, 0, 0, .f32 = log_f32, .f64 = log_f64)
UNARY_OP(neg, "Neg", 6, 0, 0, .f32 = neg_f32, .f64 = neg_f64, .i8 = neg_i8, .i16 = neg_i16,
	 .i32 = neg_i32, .i64 = neg_i64)
UNARY_OP(abs, "Abs", 6, 0, 0, .f32 = abs_f32, .f64 = abs_f64, .i8 = abs_i8, .i16 = abs_i16,
	 .i32 = abs_i32, .i64 = abs_i64)
UNARY_OP(reciprocal, "Reciprocal", 6, 0, 0, .f32 = recip_f32, .f64 = recip_f64)
UNARY_OP(floor, "Floor", 6, 0, 0, .f32 = floor_f32, .f64 = floor_f64)
UNARY_OP(ceil, "Ceil", 6, 0, 0, .f32 = ceil_f32, .f64 = ceil_f64)
UNARY_OP(round, "Round", 11, 0, 0, .f32 = round_f32, .f64 = round_f64)
UNARY_OP(elu, "Elu", 6, copro_attr_float(n, "alpha", 1.0f), 0, .f32 = elu_f32, .f64 = elu_f64)
UNARY_OP(selu, "Selu", 6, copro_attr_float(n, "alpha", 1.67326319217681884765625f),
	 copro_attr_float(n, "gamma", 1.05070102214813232421875f), .f32 = selu_f32,
	 .f64 = selu_f64)
UNARY_OP(celu, "Celu", 12, copro_attr_float(n, "alpha", 1.0f), 0, .f32 = celu_f32)
UNARY_OP(hardsigmoid, "HardSigmoid", 6, copro_attr_float(n, "alpha", 0.2f),
	 copro_attr_float(n, "beta", 0.5f), .f32 = hsig_f32, .f64 = hsig_f64)
UNARY_OP(hardswish, "HardSwish", 14, 0, 0, .f32 = hswish_f32, .f64 = hswish_f64)
UNARY_OP(softplus, "Softplus", 1, 0, 0, .f32 = softplus_f32, .f64 = softplus_f64)
UNARY_OP(softsign, "Softsign", 1, 0, 0, .f32 = softsign_f32, .f64 = softsign_f64)
UNARY_OP(thresholdedrelu, "ThresholdedRelu", 10, copro_attr_float(n, "alpha", 1.0f), 0,
	 .f32 = threlu_f32, .f64 = threlu_f64)

/* ---------------------------------------------------------------------- */
/* Clip                                                                   */
/* ---------------------------------------------------------------------- */

/*
 * Clip before opset 11 takes min/max as float attributes (defaults are
 * the float range, as the spec states); from 11 they are optional scalar
 * inputs of the input's type, read in run() so they may be computed
 * values. min > max gives max everywhere, as the spec says. NaN passes
 * through: both comparisons are false.
 */
#define CLIP_LOOP(fname, T)							\
static void fname(const void *px, void *py, int64_t n, const void *plo,		\
		  const void *phi, T dlo, T dhi)				\
{										\
	const T *x = px;							\
	T *y = py, lo = plo ? *(const T *)plo : dlo;				\
	T hi = phi ? *(const T *)phi : dhi;					\
	int64_t i;								\
										\
	for (i = 0; i < n; i++) {						\
		T v = x[i];							\
		v = v < lo ? lo : v;						\
		y[i] = v > hi ? hi : v;						\
	}									\
}

CLIP_LOOP(clip_f32, float)
CLIP_LOOP(clip_f64, double)
CLIP_LOOP(clip_i8, int8_t)
CLIP_LOOP(clip_u8, uint8_t)
CLIP_LOOP(clip_i16, int16_t)
CLIP_LOOP(clip_u16, uint16_t)
CLIP_LOOP(clip_i32, int32_t)
CLIP_LOOP(clip_u32, uint32_t)
CLIP_LOOP(clip_i64, int64_t)
CLIP_LOOP(clip_u64, uint64_t)

static int clip_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      char *err, size_t errlen)
{
	int32_t dt = in[0].dtype;
	int i;

	if (n->n_in < 1 || n->n_in > 3 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs one to three inputs");
	if (n->opset < 11) {
		if (n->n_in != 1)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "min/max are attributes before opset 11");
		if (dt != COPRO_K_F32 && dt != COPRO_K_F64)
			return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
					    copro_op_dname(dt));
	} else {
		switch (dt) {
		case COPRO_K_F32: case COPRO_K_F64: case COPRO_K_I8: case COPRO_K_U8:
		case COPRO_K_I16: case COPRO_K_U16: case COPRO_K_I32: case COPRO_K_U32:
		case COPRO_K_I64: case COPRO_K_U64:
			break;
		default:
			return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
					    copro_op_dname(dt));
		}
		for (i = 1; i < n->n_in; i++) {
			if (!copro_op_nin(n, in, i))
				continue;
			if (in[i].dtype != dt)
				return copro_op_err(err, errlen, -EINVAL, n,
						    "%s is %s, input is %s", i == 1 ? "min" : "max",
						    copro_op_dname(in[i].dtype),
						    copro_op_dname(dt));
			if (copro_op_numel(&in[i]) != 1)
				return copro_op_err(err, errlen, -EINVAL, n,
						    "%s must be a scalar", i == 1 ? "min" : "max");
		}
	}
	out[0].dtype = dt;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

static int clip_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		    void *scratch)
{
	const void *lo = copro_op_nin(n, in, 1) ? in[1].data : NULL;
	const void *hi = copro_op_nin(n, in, 2) ? in[2].data : NULL;
	int64_t k = copro_op_numel(&in[0]);
	float alo, ahi;

	switch (in[0].dtype) {
	case COPRO_K_F32:
		if (n->opset < 11) {
			alo = copro_attr_float(n, "min", -FLT_MAX);
			ahi = copro_attr_float(n, "max", FLT_MAX);
			clip_f32(in[0].data, out[0].data, k, &alo, &ahi, 0, 0);
		} else {
			clip_f32(in[0].data, out[0].data, k, lo, hi, -INFINITY, INFINITY);
		}
		break;
	case COPRO_K_F64:
		if (n->opset < 11)
			clip_f64(in[0].data, out[0].data, k, NULL, NULL,
				 copro_attr_float(n, "min", -FLT_MAX),
				 copro_attr_float(n, "max", FLT_MAX));
		else
			clip_f64(in[0].data, out[0].data, k, lo, hi, -INFINITY, INFINITY);
		break;
	case COPRO_K_I8: clip_i8(in[0].data, out[0].data, k, lo, hi, INT8_MIN, INT8_MAX); break;
	case COPRO_K_U8: clip_u8(in[0].data, out[0].data, k, lo, hi, 0, UINT8_MAX); break;
	case COPRO_K_I16:
		clip_i16(in[0].data, out[0].data, k, lo, hi, INT16_MIN, INT16_MAX);
		break;
	case COPRO_K_U16: clip_u16(in[0].data, out[0].data, k, lo, hi, 0, UINT16_MAX); break;
	case COPRO_K_I32:
		clip_i32(in[0].data, out[0].data, k, lo, hi, INT32_MIN, INT32_MAX);
		break;
	case COPRO_K_U32: clip_u32(in[0].data, out[0].data, k, lo, hi, 0, UINT32_MAX); break;
	case COPRO_K_I64:
		clip_i64(in[0].data, out[0].data, k, lo, hi, INT64_MIN, INT64_MAX);
		break;
	case COPRO_K_U64: clip_u64(in[0].data, out[0].data, k, lo, hi, 0, UINT64_MAX); break;
	}
	return 0;
}

const struct copro_op copro_op_clip = {
	.name = "Clip", .since = 6, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = clip_infer, .run = clip_run,
};

/* ---------------------------------------------------------------------- */
/* PRelu                                                                  */
/* ---------------------------------------------------------------------- */

#define PRELU_LOOP(fname, T)							\
static void fname(const void *pa, const void *pb, void *pc, int64_t n,		\
		  int sa, int sb, const void *ctx)				\
{										\
	const T *a = pa, *b = pb;						\
	T *c = pc;								\
	int64_t i;								\
										\
	for (i = 0; i < n; i++) {						\
		T x = a[sa ? i : 0], s = b[sb ? i : 0];				\
		c[i] = x < 0 ? x * s : x;					\
	}									\
}
PRELU_LOOP(prelu_f32, float)
PRELU_LOOP(prelu_f64, double)

/* PRelu: y = x < 0 ? slope * x : x, slope broadcast to X (one way). */
static int prelu_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		       char *err, size_t errlen)
{
	struct copro_kt t;
	int i;

	if (n->n_in != 2 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs X and slope");
	if (in[0].dtype != in[1].dtype)
		return copro_op_err(err, errlen, -EINVAL, n, "X is %s, slope %s",
				    copro_op_dname(in[0].dtype), copro_op_dname(in[1].dtype));
	if (in[0].dtype != COPRO_K_F32 && in[0].dtype != COPRO_K_F64)
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(in[0].dtype));
	if (copro_broadcast_shape(&in[0], &in[1], &t) < 0 || t.rank != in[0].rank)
		return copro_op_err(err, errlen, -EINVAL, n, "slope does not broadcast to X");
	for (i = 0; i < t.rank; i++)
		if (in[0].dims[i] >= 0 && t.dims[i] != in[0].dims[i])
			return copro_op_err(err, errlen, -EINVAL, n,
					    "slope does not broadcast to X");
	out[0].dtype = in[0].dtype;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

static int prelu_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     void *scratch)
{
	size_t es = copro_op_dsize(in[0].dtype);
	struct copro_bcast bc;

	copro_bcast_init(&bc, &in[0], &in[1], &out[0]);
	copro_bcast_run(&bc, in[0].data, in[1].data, out[0].data, es, es, es,
			in[0].dtype == COPRO_K_F32 ? prelu_f32 : prelu_f64, NULL);
	return 0;
}

const struct copro_op copro_op_prelu = {
	.name = "PRelu", .since = 7, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = prelu_infer, .run = prelu_run,
};

/* ---------------------------------------------------------------------- */
/* Softmax, LogSoftmax                                                    */
/* ---------------------------------------------------------------------- */

/*
 * The input seen as [outer, len, inner] with the reduction over len.
 * Before opset 13 the op flattened the input to 2-D at `axis` (default 1)
 * and normalized whole rows: len = prod(dims[axis:]), inner = 1. From 13
 * it normalizes along the one axis (default -1).
 */
struct smax_geom {
	int64_t outer, len, inner;
};

static void smax_geom(const struct copro_node *n, const struct copro_kt *x, int axis,
		      struct smax_geom *g)
{
	int i;

	g->outer = g->len = g->inner = 1;
	for (i = 0; i < x->rank; i++) {
		if (i < axis)
			g->outer *= x->dims[i];
		else if (i == axis || n->opset < 13)
			g->len *= x->dims[i];
		else
			g->inner *= x->dims[i];
	}
}

static int smax_axis(const struct copro_node *n, int rank, int *axis)
{
	return copro_op_axis(copro_attr_int(n, "axis", n->opset < 13 ? 1 : -1), rank, axis);
}

static int smax_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      char *err, size_t errlen)
{
	int axis;

	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	if (in[0].dtype != COPRO_K_F32 && in[0].dtype != COPRO_K_F64)
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(in[0].dtype));
	if (smax_axis(n, in[0].rank, &axis) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "axis %lld out of range for rank %d",
				    (long long)copro_attr_int(n, "axis", n->opset < 13 ? 1 : -1),
				    in[0].rank);
	out[0].dtype = in[0].dtype;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

/*
 * Max-subtracted, so exp() never overflows: softmax(x) = e^(x-m) / sum,
 * logsoftmax(x) = (x - m) - log(sum). The sum is kept in double.
 */
#define SMAX_LOOP(fname, T, EXP, LOG)						\
static void fname(const T *x, T *y, const struct smax_geom *g, int logsm)	\
{										\
	int64_t o, i, k, L = g->len, I = g->inner;				\
										\
	for (o = 0; o < g->outer; o++) {					\
		for (i = 0; i < I; i++) {					\
			const T *xr = x + o * L * I + i;			\
			T *yr = y + o * L * I + i;				\
			T m = L ? xr[0] : 0;					\
			double s = 0;						\
										\
			for (k = 1; k < L; k++)					\
				m = xr[k * I] > m ? xr[k * I] : m;		\
			if (logsm) {						\
				for (k = 0; k < L; k++)				\
					s += EXP(xr[k * I] - m);		\
				T ls = LOG((T)s);				\
				for (k = 0; k < L; k++)				\
					yr[k * I] = xr[k * I] - m - ls;		\
			} else {						\
				for (k = 0; k < L; k++) {			\
					T e = EXP(xr[k * I] - m);		\
					yr[k * I] = e;				\
					s += e;					\
				}						\
				T r = (T)(1.0 / s);				\
				for (k = 0; k < L; k++)				\
					yr[k * I] *= r;				\
			}							\
		}								\
	}									\
}

SMAX_LOOP(smax_f32, float, expf, logf)
SMAX_LOOP(smax_f64, double, exp, log)

static int smax_run_common(const struct copro_node *n, const struct copro_kt *in,
			   struct copro_kt *out, int logsm)
{
	struct smax_geom g;
	int axis = 0;

	smax_axis(n, in[0].rank, &axis);
	smax_geom(n, &in[0], axis, &g);
	if (in[0].dtype == COPRO_K_F32)
		smax_f32(in[0].data, out[0].data, &g, logsm);
	else
		smax_f64(in[0].data, out[0].data, &g, logsm);
	return 0;
}

static int softmax_run(const struct copro_node *n, const struct copro_kt *in,
		       struct copro_kt *out, void *scratch)
{
	return smax_run_common(n, in, out, 0);
}

static int logsoftmax_run(const struct copro_node *n, const struct copro_kt *in,
			  struct copro_kt *out, void *scratch)
{
	return smax_run_common(n, in, out, 1);
}

/*
 * One entry each: the opset < 13 and >= 13 semantics are told apart by
 * the node's opset inside (the default axis and the flattening).
 */
const struct copro_op copro_op_softmax = {
	.name = "Softmax", .since = 1, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = smax_infer, .run = softmax_run,
};
const struct copro_op copro_op_logsoftmax = {
	.name = "LogSoftmax", .since = 1, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = smax_infer, .run = logsoftmax_run,
};
