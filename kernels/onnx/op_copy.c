/* SPDX-License-Identifier: MIT */
/*
 * op_copy.c - operators that copy elements to new places: Transpose,
 * Concat, Gather, Expand, Tile, Slice, Split. Any element type the
 * runtime knows (they only move bytes of its size).
 */
#include <errno.h>
#include <string.h>

#include "onnx/op_impl.h"


/* ---------------------------------------------------------------------- */
/* Transpose                                                              */
/* ---------------------------------------------------------------------- */

/* perm, or the reversed dims when the attribute is absent. */
static void transpose_perm(const struct copro_node *n, int r, int *perm)
{
	const int64_t *p;
	int k = copro_attr_ints(n, "perm", &p), i;

	for (i = 0; i < r; i++)
		perm[i] = k < 0 ? r - 1 - i : (int)p[i];
}

static int transpose_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			   char *err, size_t errlen)
{
	int perm[COPRO_K_MAX_RANK], seen[COPRO_K_MAX_RANK] = { 0 };
	const int64_t *p;
	int r = in[0].rank, k, i;

	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	k = copro_attr_ints(n, "perm", &p);
	if (k >= 0 && k != r)
		return copro_op_err(err, errlen, -EINVAL, n, "perm has %d entries for rank %d",
				    k, r);
	for (i = 0; i < k; i++) {
		if (p[i] < 0 || p[i] >= r || seen[p[i]]++)
			return copro_op_err(err, errlen, -EINVAL, n, "perm is not a permutation");
	}
	transpose_perm(n, r, perm);
	for (i = 0; i < r; i++)
		out[0].dims[i] = in[0].dims[perm[i]];
	out[0].rank = r;
	out[0].dtype = in[0].dtype;
	return 0;
}

/*
 * Walks the output in order; the input offset follows the permuted
 * strides, the innermost output dim stepping by its input stride.
 */
#define TRANSPOSE_LOOP(fname, T)						\
static void fname(const T *x, T *y, int r, const int64_t *dims,		\
		  const int64_t *st)						\
{										\
	int64_t idx[COPRO_K_MAX_RANK] = { 0 }, off = 0, n = dims[r - 1];	\
	int64_t s = st[r - 1], i;						\
	int d;									\
										\
	for (;;) {								\
		for (i = 0; i < n; i++)						\
			*y++ = x[off + i * s];					\
		for (d = r - 2; d >= 0; d--) {					\
			idx[d]++;						\
			off += st[d];						\
			if (idx[d] < dims[d])					\
				break;						\
			off -= st[d] * dims[d];					\
			idx[d] = 0;						\
		}								\
		if (d < 0)							\
			return;							\
	}									\
}

TRANSPOSE_LOOP(transpose_1, uint8_t)
TRANSPOSE_LOOP(transpose_2, uint16_t)
TRANSPOSE_LOOP(transpose_4, uint32_t)
TRANSPOSE_LOOP(transpose_8, uint64_t)

static int transpose_run(const struct copro_node *n, const struct copro_kt *in,
			 struct copro_kt *out, void *scratch)
{
	int64_t ist[COPRO_K_MAX_RANK], st[COPRO_K_MAX_RANK];
	int perm[COPRO_K_MAX_RANK], r = in[0].rank, i;
	int64_t k = copro_op_numel(&in[0]);
	size_t es = copro_op_dsize(in[0].dtype);

	if (k == 0)
		return 0;
	if (r == 0) {
		memcpy(out[0].data, in[0].data, es);
		return 0;
	}
	transpose_perm(n, r, perm);
	copro_op_strides(&in[0], ist);
	for (i = 0; i < r; i++)
		st[i] = ist[perm[i]];
	switch (es) {
	case 1: transpose_1(in[0].data, out[0].data, r, out[0].dims, st); break;
	case 2: transpose_2(in[0].data, out[0].data, r, out[0].dims, st); break;
	case 4: transpose_4(in[0].data, out[0].data, r, out[0].dims, st); break;
	case 8: transpose_8(in[0].data, out[0].data, r, out[0].dims, st); break;
	}
	return 0;
}

const struct copro_op copro_op_transpose = {
	.name = "Transpose", .since = 1, .infer = transpose_infer, .run = transpose_run,
};

/* ---------------------------------------------------------------------- */
/* Concat                                                                 */
/* ---------------------------------------------------------------------- */

static int concat_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			char *err, size_t errlen)
{
	const struct copro_attr *aa = copro_attr_find(n, "axis");
	int r = in[0].rank, axis, i, j;
	int64_t sum = 0;

	if (n->n_in < 1)
		return copro_op_err(err, errlen, -EINVAL, n, "needs at least one input");
	if (!aa || aa->type != COPRO_ATTR_INT)
		return copro_op_err(err, errlen, -EINVAL, n, "axis attribute is required");
	for (i = 0; i < n->n_in; i++)
		if (!copro_op_nin(n, in, i))
			return copro_op_err(err, errlen, -EINVAL, n, "input %d is missing", i);
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	if (copro_op_axis(aa->i, r, &axis) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "axis %lld out of range for rank %d",
				    (long long)aa->i, r);
	copro_op_shape_copy(&out[0], &in[0]);
	for (i = 0; i < n->n_in; i++) {
		if (in[i].dtype != in[0].dtype)
			return copro_op_err(err, errlen, -EINVAL, n, "input %d is %s, input 0 %s",
					    i, copro_op_dname(in[i].dtype),
					    copro_op_dname(in[0].dtype));
		if (in[i].rank != r)
			return copro_op_err(err, errlen, -EINVAL, n, "input %d has rank %d, not %d",
					    i, in[i].rank, r);
		for (j = 0; j < r; j++) {
			if (j == axis)
				continue;
			if (!copro_op_dim_eq(in[i].dims[j], in[0].dims[j]))
				return copro_op_err(err, errlen, -EINVAL, n,
						    "input %d differs in dim %d", i, j);
			if (out[0].dims[j] < 0)
				out[0].dims[j] = in[i].dims[j];
		}
		if (sum >= 0)
			sum = in[i].dims[axis] < 0 ? -1 : sum + in[i].dims[axis];
	}
	out[0].dims[axis] = sum;
	out[0].dtype = in[0].dtype;
	return 0;
}

static int concat_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      void *scratch)
{
	int axis = 0, i, j;
	size_t es = copro_op_dsize(in[0].dtype);
	int64_t outer = 1, inner = es, o;
	char *y = out[0].data;

	copro_op_axis(copro_attr_int(n, "axis", 0), in[0].rank, &axis);
	for (j = 0; j < in[0].rank; j++) {
		if (j < axis)
			outer *= out[0].dims[j];
		else if (j > axis)
			inner *= out[0].dims[j];
	}
	/* One slab of dims[axis] * inner bytes per input per outer index. */
	for (o = 0; o < outer; o++) {
		for (i = 0; i < n->n_in; i++) {
			int64_t b = in[i].dims[axis] * inner;

			if (b > 0)
				memcpy(y, (const char *)in[i].data + o * b, (size_t)b);
			y += b;
		}
	}
	return 0;
}

const struct copro_op copro_op_concat = {
	.name = "Concat", .since = 4, .infer = concat_infer, .run = concat_run,
};

/* ---------------------------------------------------------------------- */
/* Gather                                                                 */
/* ---------------------------------------------------------------------- */

static int64_t gather_index(const struct copro_kt *ix, int64_t i)
{
	return ix->dtype == COPRO_K_I32 ? ((const int32_t *)ix->data)[i]
					: ((const int64_t *)ix->data)[i];
}

/*
 * Gather along axis: out = data.dims[:axis] + indices.dims +
 * data.dims[axis+1:]. Negative indices count from the end (opset 11).
 * Indices known at plan time are range-checked here; indices computed
 * or sent by a client are checked by run(), which fails with -ERANGE
 * (an unknown category's embedding is an error for that request, not a
 * zero slice that would give a plausible but wrong score).
 */
static int gather_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			char *err, size_t errlen)
{
	int64_t a = copro_attr_int(n, "axis", 0), k, i;
	const struct copro_kt *d = &in[0], *ix = &in[1];
	int axis, r, j;

	if (n->n_in != 2 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs data and indices");
	if (copro_op_need_dtype(n, d->dtype, err, errlen) < 0)
		return -ENOTSUP;
	if (ix->dtype != COPRO_K_I32 && ix->dtype != COPRO_K_I64)
		return copro_op_err(err, errlen, -EINVAL, n, "indices are %s, not int32/int64",
				    copro_op_dname(ix->dtype));
	if (d->rank < 1)
		return copro_op_err(err, errlen, -EINVAL, n, "data must have rank >= 1");
	if (copro_op_axis(a, d->rank, &axis) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "axis %lld out of range for rank %d",
				    (long long)a, d->rank);
	if (d->rank - 1 + ix->rank > COPRO_K_MAX_RANK)
		return copro_op_err(err, errlen, -ENOTSUP, n, "rank too large");
	k = copro_op_numel(ix);
	if (ix->data && k > 0 && d->dims[axis] >= 0) {
		for (i = 0; i < k; i++) {
			int64_t v = gather_index(ix, i);

			if (v < -d->dims[axis] || v >= d->dims[axis])
				return copro_op_err(err, errlen, -EINVAL, n,
						    "index %lld out of range [%lld, %lld)",
						    (long long)v, (long long)-d->dims[axis],
						    (long long)d->dims[axis]);
		}
	}
	r = 0;
	for (j = 0; j < axis; j++)
		out[0].dims[r++] = d->dims[j];
	for (j = 0; j < ix->rank; j++)
		out[0].dims[r++] = ix->dims[j];
	for (j = axis + 1; j < d->rank; j++)
		out[0].dims[r++] = d->dims[j];
	out[0].rank = r;
	out[0].dtype = d->dtype;
	return 0;
}

/*
 * Copies the selected slices. Returns 0, or -ERANGE before writing
 * anything if an index lies outside [-dims[axis], dims[axis]): the one
 * data-dependent failure an op has, because the indices may be a
 * client's bytes.
 */
static int gather_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      void *scratch)
{
	const struct copro_kt *d = &in[0], *ix = &in[1];
	int64_t outer = 1, inner = copro_op_dsize(d->dtype), kx = copro_op_numel(ix), o, i;
	int64_t kd;
	char *y = out[0].data;
	int axis = 0, j;

	copro_op_axis(copro_attr_int(n, "axis", 0), d->rank, &axis);
	kd = d->dims[axis];
	for (j = 0; j < d->rank; j++) {
		if (j < axis)
			outer *= d->dims[j];
		else if (j > axis)
			inner *= d->dims[j];
	}
	for (i = 0; i < kx; i++) {
		int64_t v = gather_index(ix, i);

		if (v < -kd || v >= kd)
			return -ERANGE;
	}
	for (o = 0; o < outer; o++) {
		const char *src = (const char *)d->data + o * kd * inner;

		for (i = 0; i < kx; i++, y += inner) {
			int64_t v = gather_index(ix, i);

			memcpy(y, src + (v < 0 ? v + kd : v) * inner, (size_t)inner);
		}
	}
	return 0;
}

const struct copro_op copro_op_gather = {
	.name = "Gather", .since = 1, .infer = gather_infer, .run = gather_run,
};


/* ---------------------------------------------------------------------- */
/* Strided copies: Expand, Tile, Slice                                    */
/* ---------------------------------------------------------------------- */

/*
 * Copies out's elements in order from x, where element (c0, c1, ...) of
 * out comes from x + base + sum(c_d * st[d]) elements: the one loop under
 * Expand (stride 0 on broadcast dims), Slice (start and step) and, a dim
 * at a time, Tile.
 */
#define STRIDED_LOOP(fname, T)							\
static void fname(const T *x, T *y, int r, const int64_t *dims,		\
		  const int64_t *st, int64_t base)				\
{										\
	int64_t idx[COPRO_K_MAX_RANK] = { 0 }, off = base, n, s, i;		\
	int d;									\
										\
	if (r == 0) {								\
		*y = x[base];							\
		return;								\
	}									\
	n = dims[r - 1];							\
	s = st[r - 1];								\
	for (;;) {								\
		for (i = 0; i < n; i++)						\
			*y++ = x[off + i * s];					\
		for (d = r - 2; d >= 0; d--) {					\
			idx[d]++;						\
			off += st[d];						\
			if (idx[d] < dims[d])					\
				break;						\
			off -= st[d] * dims[d];					\
			idx[d] = 0;						\
		}								\
		if (d < 0)							\
			return;							\
	}									\
}

STRIDED_LOOP(strided_1, uint8_t)
STRIDED_LOOP(strided_2, uint16_t)
STRIDED_LOOP(strided_4, uint32_t)
STRIDED_LOOP(strided_8, uint64_t)

static void strided_copy(const void *x, void *y, size_t es, const struct copro_kt *out,
			 const int64_t *st, int64_t base)
{
	int i;

	for (i = 0; i < out->rank; i++)
		if (out->dims[i] == 0)
			return;
	switch (es) {
	case 1: strided_1(x, y, out->rank, out->dims, st, base); break;
	case 2: strided_2(x, y, out->rank, out->dims, st, base); break;
	case 4: strided_4(x, y, out->rank, out->dims, st, base); break;
	case 8: strided_8(x, y, out->rank, out->dims, st, base); break;
	}
}

/* Expand (opset 8): broadcast the input to the shape input, both ways. */
static int expand_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			char *err, size_t errlen)
{
	struct copro_kt t;
	const int64_t *s;
	int64_t k, i;

	if (n->n_in != 2 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs input and shape");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	k = copro_op_const_ints(&in[1], &s);
	if (k < 0)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "shape must be a constant 1-D int64 tensor");
	if (k > COPRO_K_MAX_RANK)
		return copro_op_err(err, errlen, -ENOTSUP, n, "rank %lld too large",
				    (long long)k);
	memset(&t, 0, sizeof(t));
	t.rank = (int)k;
	for (i = 0; i < k; i++) {
		if (s[i] < 0)
			return copro_op_err(err, errlen, -EINVAL, n, "bad dim %lld in shape",
					    (long long)s[i]);
		t.dims[i] = s[i];
	}
	if (copro_broadcast_shape(&in[0], &t, &out[0]) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "input does not broadcast to shape");
	out[0].dtype = in[0].dtype;
	return 0;
}

static int expand_run(const struct copro_node *n, const struct copro_kt *in,
		      struct copro_kt *out, void *scratch)
{
	int64_t st[COPRO_K_MAX_RANK];

	copro_op_bcast_strides(&in[0], &out[0], st);
	strided_copy(in[0].data, out[0].data, copro_op_dsize(in[0].dtype), &out[0], st, 0);
	return 0;
}

const struct copro_op copro_op_expand = {
	.name = "Expand", .since = 8, .value_inputs = 1U << 1,
	.infer = expand_infer, .run = expand_run,
};

/* Tile (opset 6): out dims = dims * repeats, the input repeated along each. */
static int tile_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      char *err, size_t errlen)
{
	const int64_t *rep;
	int64_t k;
	int i;

	if (n->n_in != 2 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs input and repeats");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	k = copro_op_const_ints(&in[1], &rep);
	if (k < 0)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "repeats must be a constant 1-D int64 tensor");
	if (k != in[0].rank)
		return copro_op_err(err, errlen, -EINVAL, n, "%lld repeats for rank %d",
				    (long long)k, in[0].rank);
	for (i = 0; i < in[0].rank; i++) {
		if (rep[i] < 0)
			return copro_op_err(err, errlen, -EINVAL, n, "negative repeat");
		out[0].dims[i] = in[0].dims[i] < 0 ? -1 : in[0].dims[i] * rep[i];
	}
	out[0].rank = in[0].rank;
	out[0].dtype = in[0].dtype;
	return 0;
}

/*
 * Viewing out as [rep0, d0, rep1, d1, ...] turns Tile into one strided
 * copy: the rep dims have stride 0 over the input.
 */
static int tile_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		    void *scratch)
{
	int64_t ist[COPRO_K_MAX_RANK], st[2 * COPRO_K_MAX_RANK];
	struct {
		int32_t dtype, rank;
		int64_t dims[2 * COPRO_K_MAX_RANK];
	} v;
	int r = in[0].rank, i, k = 0;
	size_t es = copro_op_dsize(in[0].dtype);

	copro_op_strides(&in[0], ist);
	for (i = 0; i < r; i++) {
		if (in[0].dims[i] == 0 || out[0].dims[i] == 0)
			return 0;
		v.dims[k] = out[0].dims[i] / in[0].dims[i];
		st[k++] = 0;
		v.dims[k] = in[0].dims[i];
		st[k++] = ist[i];
	}
	v.rank = k;
	if (k == 0) {
		memcpy(out[0].data, in[0].data, es);
		return 0;
	}
	switch (es) {
	case 1: strided_1(in[0].data, out[0].data, k, v.dims, st, 0); break;
	case 2: strided_2(in[0].data, out[0].data, k, v.dims, st, 0); break;
	case 4: strided_4(in[0].data, out[0].data, k, v.dims, st, 0); break;
	case 8: strided_8(in[0].data, out[0].data, k, v.dims, st, 0); break;
	}
	return 0;
}

const struct copro_op copro_op_tile = {
	.name = "Tile", .since = 6, .value_inputs = 1U << 1, .infer = tile_infer, .run = tile_run,
};

/*
 * Slice: starts, ends, optional axes and steps: attributes before opset
 * 10 (no steps), constant inputs from 10 (int32 or int64). Out-of-range
 * starts/ends are clamped as the spec says; a negative step walks
 * backwards.
 */
struct slice_geom {
	int64_t start[COPRO_K_MAX_RANK], step[COPRO_K_MAX_RANK], len[COPRO_K_MAX_RANK];
};

static int64_t ld_index(const struct copro_kt *t, int64_t i)
{
	return t->dtype == COPRO_K_I32 ? ((const int32_t *)t->data)[i]
				       : ((const int64_t *)t->data)[i];
}

/* Reads input i as a list of ints into v; returns the count or -1. */
static int64_t slice_list(const struct copro_kt *t, int64_t *v)
{
	int64_t k, i;

	if ((t->dtype != COPRO_K_I32 && t->dtype != COPRO_K_I64) || t->rank != 1 || !t->data)
		return -1;
	k = t->dims[0];
	if (k > COPRO_K_MAX_RANK)
		return -1;
	for (i = 0; i < k; i++)
		v[i] = ld_index(t, i);
	return k;
}

static int slice_geom(const struct copro_node *n, const struct copro_kt *in,
		      struct slice_geom *g, char *err, size_t errlen)
{
	int64_t st[COPRO_K_MAX_RANK], en[COPRO_K_MAX_RANK], ax[COPRO_K_MAX_RANK];
	int64_t sp[COPRO_K_MAX_RANK];
	int r = in[0].rank, seen = 0, i;
	int64_t k, ke, ka, ks;

	if (n->opset < 10) {
		const int64_t *p;

		if (n->n_in != 1)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "starts/ends are attributes before opset 10");
		k = copro_attr_ints(n, "starts", &p);
		if (k < 0 || k > COPRO_K_MAX_RANK)
			return copro_op_err(err, errlen, -EINVAL, n, "starts is required");
		memcpy(st, p, (size_t)k * 8);
		ke = copro_attr_ints(n, "ends", &p);
		if (ke != k)
			return copro_op_err(err, errlen, -EINVAL, n, "ends must match starts");
		memcpy(en, p, (size_t)k * 8);
		ka = copro_attr_ints(n, "axes", &p);
		if (ka > COPRO_K_MAX_RANK)
			return copro_op_err(err, errlen, -EINVAL, n, "too many axes");
		if (ka >= 0)
			memcpy(ax, p, (size_t)ka * 8);
		ks = -1;
	} else {
		if (n->n_in < 3 || n->n_in > 5 || !copro_op_nin(n, in, 1) ||
		    !copro_op_nin(n, in, 2))
			return copro_op_err(err, errlen, -EINVAL, n,
					    "needs data, starts, ends, optional axes, steps");
		k = slice_list(&in[1], st);
		ke = slice_list(&in[2], en);
		ka = copro_op_nin(n, in, 3) ? slice_list(&in[3], ax) : -2;
		ks = copro_op_nin(n, in, 4) ? slice_list(&in[4], sp) : -2;
		if (k < 0 || ke < 0 || ka == -1 || ks == -1)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "starts/ends/axes/steps must be constant 1-D ints");
		if (ke != k || (ka >= 0 && ka != k) || (ks >= 0 && ks != k))
			return copro_op_err(err, errlen, -EINVAL, n,
					    "starts, ends, axes, steps differ in length");
		if (ka == -2)
			ka = -1;
		if (ks == -2)
			ks = -1;
	}
	if (ka >= 0 && ka != k)
		return copro_op_err(err, errlen, -EINVAL, n, "axes and starts differ in length");
	for (i = 0; i < r; i++) {
		g->start[i] = 0;
		g->step[i] = 1;
		g->len[i] = in[0].dims[i];
	}
	for (i = 0; i < k; i++) {
		int64_t a = ka >= 0 ? ax[i] : i, step = ks >= 0 ? sp[i] : 1, d, s, e;
		int axis;

		if (copro_op_axis(a, r, &axis) < 0)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "axis %lld out of range for rank %d", (long long)a, r);
		if (seen & (1 << axis))
			return copro_op_err(err, errlen, -EINVAL, n, "axis %d given twice", axis);
		seen |= 1 << axis;
		if (step == 0)
			return copro_op_err(err, errlen, -EINVAL, n, "step is 0");
		d = in[0].dims[axis];
		if (d < 0) {
			g->len[axis] = -1;
			continue;
		}
		s = st[i];
		e = en[i];
		if (s < 0)
			s = s < -d ? 0 : s + d;
		if (e < 0)
			e = e < -d ? -1 : e + d;
		if (step > 0) {
			s = s > d ? d : s;
			e = e < 0 ? 0 : e > d ? d : e;
			g->len[axis] = e > s ? (e - s + step - 1) / step : 0;
		} else {
			s = s > d - 1 ? d - 1 : s;
			e = e > d - 1 ? d - 1 : e;
			g->len[axis] = s > e ? (s - e + (-step) - 1) / (-step) : 0;
		}
		g->start[axis] = s;
		g->step[axis] = step;
	}
	return 0;
}

static int slice_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		       char *err, size_t errlen)
{
	struct slice_geom g;
	int rc, i;

	if (n->n_in < 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs data");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	if (in[0].rank < 1)
		return copro_op_err(err, errlen, -EINVAL, n, "data must have rank >= 1");
	rc = slice_geom(n, in, &g, err, errlen);
	if (rc < 0)
		return rc;
	for (i = 0; i < in[0].rank; i++)
		out[0].dims[i] = g.len[i];
	out[0].rank = in[0].rank;
	out[0].dtype = in[0].dtype;
	return 0;
}

static int slice_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     void *scratch)
{
	int64_t ist[COPRO_K_MAX_RANK], st[COPRO_K_MAX_RANK], base = 0;
	struct slice_geom g;
	int i;

	slice_geom(n, in, &g, NULL, 0);
	copro_op_strides(&in[0], ist);
	for (i = 0; i < in[0].rank; i++) {
		base += g.start[i] * ist[i];
		st[i] = g.step[i] * ist[i];
	}
	strided_copy(in[0].data, out[0].data, copro_op_dsize(in[0].dtype), &out[0], st, base);
	return 0;
}

const struct copro_op copro_op_slice_1 = {
	.name = "Slice", .since = 1, .infer = slice_infer, .run = slice_run,
};
const struct copro_op copro_op_slice_10 = {
	.name = "Slice", .since = 10, .value_inputs = (1U << 1) | (1U << 2) | (1U << 3) | (1U << 4),
	.infer = slice_infer, .run = slice_run,
};

/*
 * Split along axis into the node's outputs: sizes from `split` (an
 * attribute before opset 13, a constant input from 13), or equal parts.
 */
static int split_sizes(const struct copro_node *n, const struct copro_kt *in, int axis,
		       int64_t *sz, char *err, size_t errlen)
{
	int64_t d = in[0].dims[axis], sum = 0, k, i;
	const int64_t *p = NULL;

	if (n->opset < 13) {
		if (n->n_in != 1)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "split is an attribute before opset 13");
		k = copro_attr_ints(n, "split", &p);
	} else {
		if (n->n_in > 2)
			return copro_op_err(err, errlen, -EINVAL, n, "too many inputs");
		k = -1;
		if (copro_op_nin(n, in, 1)) {
			k = copro_op_const_ints(&in[1], &p);
			if (k < 0)
				return copro_op_err(err, errlen, -EINVAL, n,
						    "split must be a constant 1-D int64 tensor");
		}
	}
	if (k >= 0) {
		if (k != n->n_out)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "%lld sizes for %d outputs", (long long)k, n->n_out);
		for (i = 0; i < k; i++) {
			if (p[i] < 0)
				return copro_op_err(err, errlen, -EINVAL, n, "negative size");
			sz[i] = p[i];
			sum += p[i];
		}
		if (d >= 0 && sum != d)
			return copro_op_err(err, errlen, -EINVAL, n,
					    "sizes sum to %lld, the axis has %lld",
					    (long long)sum, (long long)d);
		return 0;
	}
	if (d < 0) {
		for (i = 0; i < n->n_out; i++)
			sz[i] = -1;
		return 0;
	}
	if (d % n->n_out)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "%lld does not split into %d equal parts", (long long)d,
				    n->n_out);
	for (i = 0; i < n->n_out; i++)
		sz[i] = d / n->n_out;
	return 0;
}

#define SPLIT_MAX_OUT	64

static int split_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		       char *err, size_t errlen)
{
	int64_t sz[SPLIT_MAX_OUT];
	int axis, rc, i;

	if (n->n_in < 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs data");
	if (copro_op_need_dtype(n, in[0].dtype, err, errlen) < 0)
		return -ENOTSUP;
	if (n->n_out < 1 || n->n_out > SPLIT_MAX_OUT)
		return copro_op_err(err, errlen, -ENOTSUP, n, "%d outputs", n->n_out);
	if (copro_op_axis(copro_attr_int(n, "axis", 0), in[0].rank, &axis) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "axis %lld out of range for rank %d",
				    (long long)copro_attr_int(n, "axis", 0), in[0].rank);
	rc = split_sizes(n, in, axis, sz, err, errlen);
	if (rc < 0)
		return rc;
	for (i = 0; i < n->n_out; i++) {
		out[i].dtype = in[0].dtype;
		copro_op_shape_copy(&out[i], &in[0]);
		out[i].dims[axis] = sz[i];
	}
	return 0;
}

static int split_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     void *scratch)
{
	int64_t outer = 1, inner = copro_op_dsize(in[0].dtype), d, o;
	const char *x = in[0].data;
	int axis = 0, i;

	copro_op_axis(copro_attr_int(n, "axis", 0), in[0].rank, &axis);
	d = in[0].dims[axis];
	for (i = 0; i < in[0].rank; i++) {
		if (i < axis)
			outer *= in[0].dims[i];
		else if (i > axis)
			inner *= in[0].dims[i];
	}
	for (o = 0; o < outer; o++) {
		int64_t off = o * d * inner;

		for (i = 0; i < n->n_out; i++) {
			int64_t b = out[i].dims[axis] * inner;

			/* An unused output still advances through the input. */
			if (copro_op_nout(n, i) && b > 0)
				memcpy((char *)out[i].data + o * b, x + off, (size_t)b);
			off += b;
		}
	}
	return 0;
}

const struct copro_op copro_op_split_2 = {
	.name = "Split", .since = 2, .infer = split_infer, .run = split_run,
};
const struct copro_op copro_op_split_13 = {
	.name = "Split", .since = 13, .value_inputs = 1U << 1,
	.infer = split_infer, .run = split_run,
};

