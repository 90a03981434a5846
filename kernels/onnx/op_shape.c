/* SPDX-License-Identifier: MIT */
/*
 * op_shape.c - operators that relabel data or make it from attributes and
 * shapes, with no arithmetic: Identity, Dropout (inference), Reshape,
 * Flatten, Squeeze, Unsqueeze, Shape, Size, Constant, ConstantOfShape,
 * Range.
 *
 * They work on any element type the runtime knows (they only need its
 * size). Those whose output is the input relabeled (Identity, Reshape,
 * Flatten, Squeeze, Unsqueeze, Dropout) copy unless the planner made the
 * output alias the input (COPRO_OP_F_INPLACE_OK).
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "onnx/op_impl.h"


/* Copies in[0] to out[0] unless they are the same buffer. */
static int copy_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		    void *scratch)
{
	int64_t bytes = copro_op_numel(&in[0]) * (int64_t)copro_op_dsize(in[0].dtype);

	if (out[0].data != in[0].data && bytes > 0)
		memcpy(out[0].data, in[0].data, (size_t)bytes);
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Identity, Dropout                                                      */
/* ---------------------------------------------------------------------- */

static int identity_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			  char *err, size_t errlen)
{
	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	out[0].dtype = in[0].dtype;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

const struct copro_op copro_op_identity = {
	.name = "Identity", .since = 1, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = identity_infer, .run = copy_run,
};

/*
 * Dropout at inference is the identity; the optional mask is all true
 * (bool from opset 10; before that it had the input's type, all ones).
 * Training mode (opset 12's training_mode input, when true) would need
 * random numbers and is refused, unless the ratio is a known 0, which
 * makes it the identity again.
 */
static int dropout_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			 char *err, size_t errlen)
{
	int32_t dt = in[0].dtype;

	if (n->n_in < 1 || n->n_in > 3 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs one to three inputs");
	if (n->n_out < 1 || n->n_out > 2)
		return copro_op_err(err, errlen, -EINVAL, n, "has one or two outputs");
	if (copro_op_need_dtype(n, dt, err, errlen) < 0)
		return -ENOTSUP;
	if (n->opset < 12 && n->n_in > 1)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "ratio is an attribute before opset 12");
	if (copro_op_nin(n, in, 2)) {
		const struct copro_kt *tm = &in[2];

		if (tm->dtype != COPRO_K_BOOL || copro_op_numel(tm) != 1 || !tm->data)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "training_mode must be a constant bool scalar");
		if (*(const uint8_t *)tm->data) {
			const struct copro_kt *r = &in[1];
			int zero = 0;

			if (copro_op_nin(n, in, 1) && r->data && copro_op_numel(r) == 1) {
				if (r->dtype == COPRO_K_F32)
					zero = *(const float *)r->data == 0.0f;
				else if (r->dtype == COPRO_K_F64)
					zero = *(const double *)r->data == 0.0;
			}
			if (!zero)
				return copro_op_err(err, errlen, -ENOTSUP, n,
						    "training mode not supported");
		}
	}
	out[0].dtype = dt;
	copro_op_shape_copy(&out[0], &in[0]);
	if (copro_op_nout(n, 1)) {
		int32_t mt = n->opset >= 10 ? COPRO_K_BOOL : dt;

		if (mt != COPRO_K_BOOL && mt != COPRO_K_F32 && mt != COPRO_K_F64)
			return copro_op_err(err, errlen, -ENOTSUP, n,
					    "mask of type %s not supported", copro_op_dname(mt));
		out[1].dtype = mt;
		copro_op_shape_copy(&out[1], &in[0]);
	}
	return 0;
}

static int dropout_run(const struct copro_node *n, const struct copro_kt *in,
		       struct copro_kt *out, void *scratch)
{
	int64_t k = copro_op_numel(&in[0]), i;

	copy_run(n, in, out, scratch);
	if (!copro_op_nout(n, 1))
		return 0;
	switch (out[1].dtype) {
	case COPRO_K_BOOL:
		memset(out[1].data, 1, (size_t)k);
		break;
	case COPRO_K_F32:
		for (i = 0; i < k; i++)
			((float *)out[1].data)[i] = 1.0f;
		break;
	case COPRO_K_F64:
		for (i = 0; i < k; i++)
			((double *)out[1].data)[i] = 1.0;
		break;
	}
	return 0;
}

const struct copro_op copro_op_dropout = {
	.name = "Dropout", .since = 7, .flags = COPRO_OP_F_INPLACE_OK,
	.value_inputs = 1U << 2, .infer = dropout_infer, .run = dropout_run,
};

/* ---------------------------------------------------------------------- */
/* Reshape, Flatten                                                       */
/* ---------------------------------------------------------------------- */

/*
 * Reshape (opset 5 on; 14 added allowzero): in the shape, 0 copies the
 * input's dim at that index (or, with allowzero, means a real 0) and one
 * -1 takes whatever is left.
 */
static int reshape_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			 char *err, size_t errlen)
{
	int64_t allowzero = copro_attr_int(n, "allowzero", 0);
	int64_t total = copro_op_numel(&in[0]), known = 1, k, i;
	const int64_t *s;
	int neg = -1, has_zero = 0, unknown = 0;

	if (n->n_in != 2 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs data and shape");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	k = copro_op_const_ints(&in[1], &s);
	if (k < 0)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "shape must be a constant 1-D int64 tensor");
	if (k > COPRO_K_MAX_RANK)
		return copro_op_err(err, errlen, -ENOTSUP, n, "rank %lld too large",
				    (long long)k);
	if (allowzero != 0 && allowzero != 1)
		return copro_op_err(err, errlen, -EINVAL, n, "allowzero must be 0 or 1");
	for (i = 0; i < k; i++) {
		int64_t d = s[i];

		if (d == -1) {
			if (neg >= 0)
				return copro_op_err(err, errlen, -EINVAL, n,
						    "more than one -1 in shape");
			neg = (int)i;
			continue;
		}
		if (d < -1)
			return copro_op_err(err, errlen, -EINVAL, n, "bad dim %lld in shape",
					    (long long)d);
		if (d == 0 && !allowzero) {
			if (i >= in[0].rank)
				return copro_op_err(err, errlen, -EINVAL, n,
						    "0 at index %lld copies a dim the input lacks",
						    (long long)i);
			d = in[0].dims[i];
		} else if (d == 0) {
			has_zero = 1;
		}
		out[0].dims[i] = d;
		if (d < 0)
			unknown = 1;
		else if (__builtin_mul_overflow(known, d, &known))
			/* A constant shape from the file: never trust its size. */
			return copro_op_err(err, errlen, -EINVAL, n,
					    "shape's element count overflows");
	}
	if (allowzero && has_zero && neg >= 0)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "allowzero with both 0 and -1 in shape");
	out[0].rank = (int)k;
	out[0].dtype = in[0].dtype;
	if (total < 0 || unknown) {
		/* A symbolic dim: the -1 stays unknown until shapes are real. */
		if (neg >= 0)
			out[0].dims[neg] = -1;
		return 0;
	}
	if (neg >= 0) {
		if (known == 0 || total % known)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "cannot infer -1: %lld elements into %lld",
					    (long long)total, (long long)known);
		out[0].dims[neg] = total / known;
	} else if (known != total) {
		return copro_op_err(err, errlen, -EINVAL, n, "%lld elements into %lld",
				    (long long)total, (long long)known);
	}
	return 0;
}

const struct copro_op copro_op_reshape = {
	.name = "Reshape", .since = 5, .flags = COPRO_OP_F_INPLACE_OK, .value_inputs = 1U << 1,
	.infer = reshape_infer, .run = copy_run,
};

/* Flatten: [prod(dims[:axis]), prod(dims[axis:])], axis in [-r, r]. */
static int flatten_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			 char *err, size_t errlen)
{
	int64_t axis = copro_attr_int(n, "axis", 1), a = 1, b = 1;
	int r = in[0].rank, i;

	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	if (axis < -r || axis > r)
		return copro_op_err(err, errlen, -EINVAL, n, "axis %lld out of range for rank %d",
				    (long long)axis, r);
	if (axis < 0)
		axis += r;
	for (i = 0; i < r; i++) {
		int64_t *p = i < axis ? &a : &b;

		*p = (*p < 0 || in[0].dims[i] < 0) ? -1 : *p * in[0].dims[i];
	}
	out[0].dtype = in[0].dtype;
	out[0].rank = 2;
	out[0].dims[0] = a;
	out[0].dims[1] = b;
	return 0;
}

const struct copro_op copro_op_flatten = {
	.name = "Flatten", .since = 1, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = flatten_infer, .run = copy_run,
};

/* ---------------------------------------------------------------------- */
/* Squeeze, Unsqueeze                                                     */
/* ---------------------------------------------------------------------- */

/*
 * The axes of Squeeze/Unsqueeze: the `axes` attribute before opset 13,
 * the optional second input from 13. Returns the count (-1: none given),
 * or -EINVAL with err set.
 */
static int get_axes(struct copro_node *n, const struct copro_kt *in, const int64_t **v,
		    char *err, size_t errlen)
{
	int64_t k;

	if (n->opset < 13) {
		if (n->n_in != 1)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "axes is an attribute before opset 13");
		return copro_attr_ints(n, "axes", v);
	}
	if (copro_attr_find(n, "axes"))
		return copro_op_err(err, errlen, -EINVAL, n,
				    "axes is an input from opset 13, not an attribute");
	if (n->n_in > 2)
		return copro_op_err(err, errlen, -EINVAL, n, "too many inputs");
	if (!copro_op_nin(n, in, 1))
		return -1;
	k = copro_op_const_ints(&in[1], v);
	if (k < 0)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "axes must be a constant 1-D int64 tensor");
	if (k > COPRO_K_MAX_RANK)
		return copro_op_err(err, errlen, -EINVAL, n, "too many axes");
	return (int)k;
}

static int squeeze_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			 char *err, size_t errlen)
{
	const int64_t *axes = NULL;
	int drop[COPRO_K_MAX_RANK] = { 0 };
	int r = in[0].rank, k, i, j;

	if (n->n_in < 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs data");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	k = get_axes(n, in, &axes, err, errlen);
	if (k < -1)
		return k;
	if (k < 0) {
		/* No axes: every dim of size 1 goes, so all must be known. */
		for (i = 0; i < r; i++) {
			if (in[0].dims[i] < 0)
				return copro_op_err(err, errlen, -ENOTSUP, n,
						    "squeeze without axes of an unknown dim");
			drop[i] = in[0].dims[i] == 1;
		}
	}
	for (i = 0; i < k; i++) {
		int a;

		if (copro_op_axis(axes[i], r, &a) < 0)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "axis %lld out of range for rank %d",
					    (long long)axes[i], r);
		if (drop[a])
			return copro_op_err(err, errlen, -EINVAL, n, "axis %d given twice", a);
		if (!copro_op_dim_eq(in[0].dims[a], 1))
			return copro_op_err(err, errlen, -EINVAL, n,
					    "dim %d is %lld, not 1", a, (long long)in[0].dims[a]);
		drop[a] = 1;
	}
	for (i = 0, j = 0; i < r; i++)
		if (!drop[i])
			out[0].dims[j++] = in[0].dims[i];
	out[0].rank = j;
	out[0].dtype = in[0].dtype;
	return 0;
}

static int unsqueeze_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			   char *err, size_t errlen)
{
	const int64_t *axes = NULL;
	int add[COPRO_K_MAX_RANK] = { 0 };
	int r = in[0].rank, k, ro, i, j;

	if (n->n_in < 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs data");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	k = get_axes(n, in, &axes, err, errlen);
	if (k < -1)
		return k;
	if (k < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "axes are required");
	ro = r + k;
	if (ro > COPRO_K_MAX_RANK)
		return copro_op_err(err, errlen, -ENOTSUP, n, "rank %d too large", ro);
	/* Axes index the output, so they are normalized against its rank. */
	for (i = 0; i < k; i++) {
		int a;

		if (copro_op_axis(axes[i], ro, &a) < 0)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "axis %lld out of range for rank %d",
					    (long long)axes[i], ro);
		if (add[a])
			return copro_op_err(err, errlen, -EINVAL, n, "axis %d given twice", a);
		add[a] = 1;
	}
	for (i = 0, j = 0; i < ro; i++)
		out[0].dims[i] = add[i] ? 1 : in[0].dims[j++];
	out[0].rank = ro;
	out[0].dtype = in[0].dtype;
	return 0;
}

const struct copro_op copro_op_squeeze_1 = {
	.name = "Squeeze", .since = 1, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = squeeze_infer, .run = copy_run,
};
const struct copro_op copro_op_squeeze_13 = {
	.name = "Squeeze", .since = 13, .flags = COPRO_OP_F_INPLACE_OK, .value_inputs = 1U << 1,
	.infer = squeeze_infer, .run = copy_run,
};
const struct copro_op copro_op_unsqueeze_1 = {
	.name = "Unsqueeze", .since = 1, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = unsqueeze_infer, .run = copy_run,
};
const struct copro_op copro_op_unsqueeze_13 = {
	.name = "Unsqueeze", .since = 13, .flags = COPRO_OP_F_INPLACE_OK,
	.value_inputs = 1U << 1, .infer = unsqueeze_infer, .run = copy_run,
};


/* ---------------------------------------------------------------------- */
/* Shape                                                                  */
/* ---------------------------------------------------------------------- */

/* The dims [start, end) Shape reports (opset 15's slice; whole before). */
static void shape_range(const struct copro_node *n, int r, int64_t *s, int64_t *e)
{
	int64_t a = n->opset >= 15 ? copro_attr_int(n, "start", 0) : 0;
	int64_t b = n->opset >= 15 ? copro_attr_int(n, "end", r) : r;

	if (a < 0)
		a += r;
	if (b < 0)
		b += r;
	a = a < 0 ? 0 : a > r ? r : a;
	b = b < 0 ? 0 : b > r ? r : b;
	*s = a;
	*e = b > a ? b : a;
}

static int shape_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		       char *err, size_t errlen)
{
	int64_t s, e;

	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	shape_range(n, in[0].rank, &s, &e);
	out[0].dtype = COPRO_K_I64;
	out[0].rank = 1;
	out[0].dims[0] = e - s;
	return 0;
}

static int shape_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     void *scratch)
{
	int64_t *y = out[0].data, s, e, i;

	shape_range(n, in[0].rank, &s, &e);
	for (i = s; i < e; i++)
		y[i - s] = in[0].dims[i];
	return 0;
}

const struct copro_op copro_op_shape = {
	.name = "Shape", .since = 1, .flags = COPRO_OP_F_SHAPE_ONLY,
	.infer = shape_infer, .run = shape_run,
};

/* ---------------------------------------------------------------------- */
/* Constant                                                               */
/* ---------------------------------------------------------------------- */

/*
 * Constant holds its value in exactly one attribute: value (a tensor),
 * value_float(s) or value_int(s) (opset 12). Strings and sparse tensors
 * are not supported.
 */
static int constant_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			  char *err, size_t errlen)
{
	const struct copro_attr *a;

	if (n->n_in != 0 || n->n_out != 1)
		return copro_op_err(err, errlen, -EINVAL, n, "takes no input, gives one output");
	if (n->n_attrs != 1)
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one value attribute");
	a = &n->attrs[0];
	if (!strcmp(a->name, "value") && a->type == COPRO_ATTR_TENSOR && a->t) {
		if (!copro_op_dsize(a->t->dtype))
			return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
					    copro_op_dname(a->t->dtype));
		if (copro_op_numel(a->t) < 0 || (copro_op_numel(a->t) > 0 && !a->t->data))
			return copro_op_err(err, errlen, -EINVAL, n, "value has no data");
		*out = *a->t;
	} else if (!strcmp(a->name, "value_float") && a->type == COPRO_ATTR_FLOAT) {
		out[0].dtype = COPRO_K_F32;
		out[0].rank = 0;
	} else if (!strcmp(a->name, "value_floats") && a->type == COPRO_ATTR_FLOATS) {
		out[0].dtype = COPRO_K_F32;
		out[0].rank = 1;
		out[0].dims[0] = a->n;
	} else if (!strcmp(a->name, "value_int") && a->type == COPRO_ATTR_INT) {
		out[0].dtype = COPRO_K_I64;
		out[0].rank = 0;
	} else if (!strcmp(a->name, "value_ints") && a->type == COPRO_ATTR_INTS) {
		out[0].dtype = COPRO_K_I64;
		out[0].rank = 1;
		out[0].dims[0] = a->n;
	} else {
		return copro_op_err(err, errlen, -ENOTSUP, n, "attribute %s not supported",
				    a->name);
	}
	out[0].data = NULL;
	return 0;
}

static int constant_run(const struct copro_node *n, const struct copro_kt *in,
			struct copro_kt *out, void *scratch)
{
	const struct copro_attr *a = &n->attrs[0];
	int64_t k = copro_op_numel(&out[0]);

	if (a->type == COPRO_ATTR_TENSOR) {
		if (k > 0)
			memcpy(out[0].data, a->t->data, (size_t)k * copro_op_dsize(a->t->dtype));
	} else if (a->type == COPRO_ATTR_FLOAT) {
		*(float *)out[0].data = a->f;
	} else if (a->type == COPRO_ATTR_INT) {
		*(int64_t *)out[0].data = a->i;
	} else if (a->type == COPRO_ATTR_FLOATS) {
		if (k > 0)
			memcpy(out[0].data, a->floats, (size_t)k * sizeof(float));
	} else if (k > 0) {
		memcpy(out[0].data, a->ints, (size_t)k * sizeof(int64_t));
	}
	return 0;
}

const struct copro_op copro_op_constant = {
	.name = "Constant", .since = 1, .infer = constant_infer, .run = constant_run,
};

/* ---------------------------------------------------------------------- */
/* Size                                                                   */
/* ---------------------------------------------------------------------- */

static int size_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      char *err, size_t errlen)
{
	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	out[0].dtype = COPRO_K_I64;
	out[0].rank = 0;
	return 0;
}

static int size_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		    void *scratch)
{
	*(int64_t *)out[0].data = copro_op_numel(&in[0]);
	return 0;
}

const struct copro_op copro_op_size = {
	.name = "Size", .since = 1, .flags = COPRO_OP_F_SHAPE_ONLY,
	.infer = size_infer, .run = size_run,
};


/* ConstantOfShape (opset 9): a tensor of the given shape, filled with value. */
static int cos_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	const struct copro_attr *a = copro_attr_find(n, "value");
	const int64_t *s;
	int64_t k, i;

	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs a shape input");
	k = copro_op_const_ints(&in[0], &s);
	if (k < 0)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "shape must be a constant 1-D int64 tensor");
	if (k > COPRO_K_MAX_RANK)
		return copro_op_err(err, errlen, -ENOTSUP, n, "rank %lld too large",
				    (long long)k);
	if (a && (a->type != COPRO_ATTR_TENSOR || !a->t || copro_op_numel(a->t) != 1 ||
		  !a->t->data))
		return copro_op_err(err, errlen, -EINVAL, n, "value must be a one-element tensor");
	if (a && !copro_op_dsize(a->t->dtype))
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(a->t->dtype));
	for (i = 0; i < k; i++) {
		if (s[i] < 0)
			return copro_op_err(err, errlen, -EINVAL, n, "negative dim in shape");
		out[0].dims[i] = s[i];
	}
	out[0].rank = (int)k;
	out[0].dtype = a ? a->t->dtype : COPRO_K_F32;
	return 0;
}

static int cos_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	const struct copro_attr *a = copro_attr_find(n, "value");
	size_t es = copro_op_dsize(out[0].dtype);
	int64_t k = copro_op_numel(&out[0]), i;

	if (!a) {
		memset(out[0].data, 0, (size_t)k * es);
		return 0;
	}
	for (i = 0; i < k; i++)
		memcpy((char *)out[0].data + i * es, a->t->data, es);
	return 0;
}

const struct copro_op copro_op_constantofshape = {
	.name = "ConstantOfShape", .since = 9, .value_inputs = 1U << 0,
	.infer = cos_infer, .run = cos_run,
};

/* Range (opset 11): start, start + delta, ... up to (not including) limit. */
static double range_ld(const struct copro_kt *t)
{
	return copro_op_load_f64(t->data, t->dtype, 0);
}

static int range_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		       char *err, size_t errlen)
{
	int32_t dt = in[0].dtype;
	double s, l, d, k;
	int i;

	if (n->n_in != 3)
		return copro_op_err(err, errlen, -EINVAL, n, "needs start, limit and delta");
	for (i = 0; i < 3; i++) {
		if (!copro_op_nin(n, in, i) || in[i].dtype != dt || copro_op_numel(&in[i]) != 1 ||
		    in[i].rank != 0 || !in[i].data)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "inputs must be constant scalars of one type");
	}
	if (dt != COPRO_K_F32 && dt != COPRO_K_F64 && dt != COPRO_K_I16 && dt != COPRO_K_I32 &&
	    dt != COPRO_K_I64)
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(dt));
	s = range_ld(&in[0]);
	l = range_ld(&in[1]);
	d = range_ld(&in[2]);
	if (d == 0)
		return copro_op_err(err, errlen, -EINVAL, n, "delta is 0");
	k = ceil((l - s) / d);
	if (!(k < 1e9))
		return copro_op_err(err, errlen, -ENOTSUP, n, "range too long");
	out[0].dtype = dt;
	out[0].rank = 1;
	out[0].dims[0] = k > 0 ? (int64_t)k : 0;
	return 0;
}

static int range_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     void *scratch)
{
	int64_t k = out[0].dims[0], i;

	switch (in[0].dtype) {
	case COPRO_K_F32: {
		float s = *(const float *)in[0].data, d = *(const float *)in[2].data;

		for (i = 0; i < k; i++)
			((float *)out[0].data)[i] = s + (float)i * d;
		break;
	}
	case COPRO_K_F64: {
		double s = *(const double *)in[0].data, d = *(const double *)in[2].data;

		for (i = 0; i < k; i++)
			((double *)out[0].data)[i] = s + (double)i * d;
		break;
	}
	case COPRO_K_I16:
		for (i = 0; i < k; i++)
			((int16_t *)out[0].data)[i] = (int16_t)(*(const int16_t *)in[0].data +
								i * *(const int16_t *)in[2].data);
		break;
	case COPRO_K_I32:
		for (i = 0; i < k; i++)
			((int32_t *)out[0].data)[i] = (int32_t)(*(const int32_t *)in[0].data +
								i * *(const int32_t *)in[2].data);
		break;
	case COPRO_K_I64:
		for (i = 0; i < k; i++)
			((int64_t *)out[0].data)[i] = *(const int64_t *)in[0].data +
						      i * *(const int64_t *)in[2].data;
		break;
	}
	return 0;
}

const struct copro_op copro_op_range = {
	.name = "Range", .since = 11, .value_inputs = 7, .infer = range_infer, .run = range_run,
};

