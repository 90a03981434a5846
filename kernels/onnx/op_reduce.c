/* SPDX-License-Identifier: MIT */
/*
 * op_reduce.c - reductions: ReduceMean, ReduceSum, ReduceMax, ReduceMin,
 * ArgMax, ArgMin.
 *
 * ReduceMean/Max/Min take `axes` as an attribute up to opset 17 (it
 * became an input at 18, which this runtime does not load); ReduceSum
 * moved it to an input at 13 and added noop_with_empty_axes. No axes
 * means all axes. keepdims (default 1) keeps reduced dims as 1.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "onnx/op_impl.h"

enum { RED_MEAN, RED_SUM, RED_MAX, RED_MIN };

typedef void (*red_fn)(const void *x, void *y, int nk, const int64_t *kd, const int64_t *ks,
		       int nr, const int64_t *rd, const int64_t *rs, int64_t cnt);

/* ReduceSum takes its axes as an input from opset 13; the rest at 18. */
static int axes_in_input(const struct copro_node *n)
{
	return n->opset >= 13 && !strcmp(n->op_type, "ReduceSum");
}

/*
 * The reduced dims as a bit mask, read from the attribute or (ReduceSum
 * 13+) the constant second input. Returns 0, or a negative code with err
 * set. An empty mask with noop set means the identity.
 */
static int red_mask(const struct copro_node *n, const struct copro_kt *in, unsigned *mask,
		    char *err, size_t errlen)
{
	const int64_t *axes = NULL;
	int r = in[0].rank, k, i;

	if (axes_in_input(n)) {
		if (copro_attr_find(n, "axes"))
			return copro_op_err(err, errlen, -EINVAL, n,
					    "axes is an input from opset 13");
		if (n->n_in > 2)
			return copro_op_err(err, errlen, -EINVAL, n, "too many inputs");
		k = -1;
		if (copro_op_nin(n, in, 1)) {
			if (in[1].dtype != COPRO_K_I64 || in[1].rank != 1 || !in[1].data ||
			    in[1].dims[0] > 64)
				return copro_op_err(err, errlen, -EINVAL, n,
						    "axes must be a constant 1-D int64 tensor");
			axes = in[1].data;
			k = (int)in[1].dims[0];
		}
	} else {
		if (n->n_in != 1)
			return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
		k = copro_attr_ints(n, "axes", &axes);
	}
	*mask = 0;
	for (i = 0; i < k; i++) {
		int a;

		if (copro_op_axis(axes[i], r, &a) < 0)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "axis %lld out of range for rank %d",
					    (long long)axes[i], r);
		if (*mask & (1U << a))
			return copro_op_err(err, errlen, -EINVAL, n, "axis %d given twice", a);
		*mask |= 1U << a;
	}
	if (k <= 0 && !(axes_in_input(n) &&
			copro_attr_int(n, "noop_with_empty_axes", 0)))
		*mask = (1U << r) - 1;
	return 0;
}

static int red_kind(const struct copro_node *n)
{
	const char *s = n->op_type + 6;		/* after "Reduce" */

	return !strcmp(s, "Mean") ? RED_MEAN : !strcmp(s, "Sum") ? RED_SUM :
	       !strcmp(s, "Max") ? RED_MAX : RED_MIN;
}

static int red_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	int64_t keep = copro_attr_int(n, "keepdims", 1);
	int32_t dt = in[0].dtype;
	unsigned mask;
	int rc, i, j;

	if (n->n_in < 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs data");
	if (dt != COPRO_K_F32 && dt != COPRO_K_F64 && dt != COPRO_K_I32 && dt != COPRO_K_I64)
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(dt));
	rc = red_mask(n, in, &mask, err, errlen);
	if (rc < 0)
		return rc;
	if (red_kind(n) >= RED_MAX)
		for (i = 0; i < in[0].rank; i++)
			if ((mask & (1U << i)) && in[0].dims[i] == 0)
				return copro_op_err(err, errlen, -EINVAL, n,
						    "max/min over an empty dim");
	for (i = 0, j = 0; i < in[0].rank; i++) {
		if (!(mask & (1U << i)))
			out[0].dims[j++] = in[0].dims[i];
		else if (keep)
			out[0].dims[j++] = 1;
	}
	out[0].rank = j;
	out[0].dtype = dt;
	return 0;
}

/*
 * For each output element (kept dims, in order), folds the reduced dims
 * with their own odometer. Sums are kept in double (int64 for int64),
 * so a mean over many floats does not drift.
 */
#define RED_LOOP(fname, T, ACC, INIT, STEP, FINAL)				\
static void fname(const void *px, void *py, int nk, const int64_t *kd,		\
		  const int64_t *ks, int nr, const int64_t *rd,			\
		  const int64_t *rs, int64_t cnt)				\
{										\
	int64_t ki[COPRO_K_MAX_RANK] = { 0 }, ko = 0;				\
	const T *x = px;							\
	T *y = py;								\
	int d;									\
										\
	for (;;) {								\
		int64_t ri[COPRO_K_MAX_RANK] = { 0 }, ro = 0;			\
		ACC acc = INIT;							\
										\
		for (;;) {							\
			T v = x[ko + ro];					\
			STEP;							\
			for (d = nr - 1; d >= 0; d--) {				\
				ri[d]++;					\
				ro += rs[d];					\
				if (ri[d] < rd[d])				\
					break;					\
				ro -= rs[d] * rd[d];				\
				ri[d] = 0;					\
			}							\
			if (d < 0)						\
				break;						\
		}								\
		*y++ = (T)(FINAL);						\
		for (d = nk - 1; d >= 0; d--) {					\
			ki[d]++;						\
			ko += ks[d];						\
			if (ki[d] < kd[d])					\
				break;						\
			ko -= ks[d] * kd[d];					\
			ki[d] = 0;						\
		}								\
		if (d < 0)							\
			return;							\
	}									\
}

#define RED_TYPE(sfx, T, SUMT, LO, HI)						\
RED_LOOP(mean_##sfx, T, double, 0, acc += v, acc / (double)cnt)			\
RED_LOOP(sum_##sfx, T, SUMT, 0, acc += v, acc)					\
RED_LOOP(max_##sfx, T, T, LO, acc = v > acc ? v : acc, acc)			\
RED_LOOP(min_##sfx, T, T, HI, acc = v < acc ? v : acc, acc)

RED_TYPE(f32, float, double, -INFINITY, INFINITY)
RED_TYPE(f64, double, double, -INFINITY, INFINITY)
RED_TYPE(i32, int32_t, int64_t, INT32_MIN, INT32_MAX)
RED_TYPE(i64, int64_t, int64_t, INT64_MIN, INT64_MAX)

#define RED_ROW(sfx) { mean_##sfx, sum_##sfx, max_##sfx, min_##sfx }

static red_fn red_loop(int32_t dt, int kind)
{
	static const red_fn t[4][4] = {
		RED_ROW(f32), RED_ROW(f64), RED_ROW(i32), RED_ROW(i64),
	};
	int row = dt == COPRO_K_F32 ? 0 : dt == COPRO_K_F64 ? 1 : dt == COPRO_K_I32 ? 2 : 3;

	return t[row][kind];
}

static int red_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	int64_t st[COPRO_K_MAX_RANK], kd[COPRO_K_MAX_RANK], ks[COPRO_K_MAX_RANK];
	int64_t rd[COPRO_K_MAX_RANK], rs[COPRO_K_MAX_RANK], cnt = 1;
	int nk = 0, nr = 0, i;
	unsigned mask = 0;

	red_mask(n, in, &mask, NULL, 0);
	if (copro_op_numel(&out[0]) == 0)
		return 0;
	copro_op_strides(&in[0], st);
	for (i = 0; i < in[0].rank; i++) {
		if (mask & (1U << i)) {
			rd[nr] = in[0].dims[i];
			rs[nr++] = st[i];
			cnt *= in[0].dims[i];
		} else {
			kd[nk] = in[0].dims[i];
			ks[nk++] = st[i];
		}
	}
	if (cnt == 0) {
		/* An empty sum is 0, an empty mean 0/0; max/min were refused. */
		int64_t k = copro_op_numel(&out[0]), j;
		double v = red_kind(n) == RED_MEAN ? NAN : 0;

		for (j = 0; j < k; j++) {
			switch (in[0].dtype) {
			case COPRO_K_F32: ((float *)out[0].data)[j] = (float)v; break;
			case COPRO_K_F64: ((double *)out[0].data)[j] = v; break;
			case COPRO_K_I32: ((int32_t *)out[0].data)[j] = 0; break;
			case COPRO_K_I64: ((int64_t *)out[0].data)[j] = 0; break;
			}
		}
		return 0;
	}
	/* A dim-less side still runs its odometer body once. */
	if (nr == 0) {
		rd[0] = 1;
		rs[0] = 0;
		nr = 1;
	}
	if (nk == 0) {
		kd[0] = 1;
		ks[0] = 0;
		nk = 1;
	}
	red_loop(in[0].dtype, red_kind(n))(in[0].data, out[0].data, nk, kd, ks, nr, rd, rs, cnt);
	return 0;
}

const struct copro_op copro_op_reducemean = {
	.name = "ReduceMean", .since = 1, .infer = red_infer, .run = red_run,
};
const struct copro_op copro_op_reducemax = {
	.name = "ReduceMax", .since = 1, .infer = red_infer, .run = red_run,
};
const struct copro_op copro_op_reducemin = {
	.name = "ReduceMin", .since = 1, .infer = red_infer, .run = red_run,
};
const struct copro_op copro_op_reducesum_1 = {
	.name = "ReduceSum", .since = 1, .infer = red_infer, .run = red_run,
};
const struct copro_op copro_op_reducesum_13 = {
	.name = "ReduceSum", .since = 13, .value_inputs = 1U << 1,
	.infer = red_infer, .run = red_run,
};

/* ---------------------------------------------------------------------- */
/* ArgMax, ArgMin                                                         */
/* ---------------------------------------------------------------------- */

/*
 * The first index of the extreme value along axis, or the last with
 * select_last_index (opset 12). NaN compares false, so it is never picked
 * over a number that came first.
 */
#define ARG_LOOP(fname, T)							\
static void fname(const T *x, int64_t *y, int64_t outer, int64_t len,		\
		  int64_t inner, int is_max, int last)				\
{										\
	int64_t o, i, k;							\
										\
	for (o = 0; o < outer; o++) {						\
		for (i = 0; i < inner; i++) {					\
			const T *p = x + o * len * inner + i;			\
			T best = p[0];						\
			int64_t bi = 0;						\
										\
			for (k = 1; k < len; k++) {				\
				T v = p[k * inner];				\
				int better = is_max ? (v > best || (last && v == best)) \
						    : (v < best || (last && v == best)); \
				if (better) {					\
					best = v;				\
					bi = k;					\
				}						\
			}							\
			y[o * inner + i] = bi;					\
		}								\
	}									\
}

ARG_LOOP(arg_f32, float)
ARG_LOOP(arg_f64, double)
ARG_LOOP(arg_i8, int8_t)
ARG_LOOP(arg_u8, uint8_t)
ARG_LOOP(arg_i16, int16_t)
ARG_LOOP(arg_u16, uint16_t)
ARG_LOOP(arg_i32, int32_t)
ARG_LOOP(arg_u32, uint32_t)
ARG_LOOP(arg_i64, int64_t)
ARG_LOOP(arg_u64, uint64_t)

static int arg_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	int64_t a = copro_attr_int(n, "axis", 0), keep = copro_attr_int(n, "keepdims", 1);
	int axis, i, j;

	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	switch (in[0].dtype) {
	case COPRO_K_F32: case COPRO_K_F64: case COPRO_K_I8: case COPRO_K_U8:
	case COPRO_K_I16: case COPRO_K_U16: case COPRO_K_I32: case COPRO_K_U32:
	case COPRO_K_I64: case COPRO_K_U64:
		break;
	default:
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(in[0].dtype));
	}
	if (copro_op_axis(a, in[0].rank, &axis) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "axis %lld out of range for rank %d",
				    (long long)a, in[0].rank);
	if (in[0].dims[axis] == 0)
		return copro_op_err(err, errlen, -EINVAL, n, "axis %d is empty", axis);
	for (i = 0, j = 0; i < in[0].rank; i++) {
		if (i != axis)
			out[0].dims[j++] = in[0].dims[i];
		else if (keep)
			out[0].dims[j++] = 1;
	}
	out[0].rank = j;
	out[0].dtype = COPRO_K_I64;
	return 0;
}

static int arg_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	int64_t outer = 1, len, inner = 1;
	int is_max = n->op_type[3] == 'M' && n->op_type[4] == 'a';
	int last = copro_attr_int(n, "select_last_index", 0) != 0;
	int axis = 0, i;
	const void *x = in[0].data;
	int64_t *y = out[0].data;

	copro_op_axis(copro_attr_int(n, "axis", 0), in[0].rank, &axis);
	len = in[0].dims[axis];
	for (i = 0; i < in[0].rank; i++) {
		if (i < axis)
			outer *= in[0].dims[i];
		else if (i > axis)
			inner *= in[0].dims[i];
	}
	switch (in[0].dtype) {
	case COPRO_K_F32: arg_f32(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_F64: arg_f64(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_I8: arg_i8(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_U8: arg_u8(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_I16: arg_i16(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_U16: arg_u16(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_I32: arg_i32(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_U32: arg_u32(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_I64: arg_i64(x, y, outer, len, inner, is_max, last); break;
	case COPRO_K_U64: arg_u64(x, y, outer, len, inner, is_max, last); break;
	}
	return 0;
}

const struct copro_op copro_op_argmax = {
	.name = "ArgMax", .since = 1, .infer = arg_infer, .run = arg_run,
};
const struct copro_op copro_op_argmin = {
	.name = "ArgMin", .since = 1, .infer = arg_infer, .run = arg_run,
};
