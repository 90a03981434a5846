/* SPDX-License-Identifier: MIT */
/*
 * ops.c - the operator registry and the helpers every operator family
 * shares (broadcasting, axis checks, error messages).
 *
 * Each family file (op_elementwise.c, op_gemm.c, ...) defines its
 * struct copro_op values; this file only lists them. An op_type may have
 * several entries, one per opset where its semantics changed; lookup picks
 * the newest one a node's opset allows.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "onnx/op_impl.h"

const struct copro_op *const copro_ops[] = {
	COPRO_OP_LIST
};

const size_t copro_n_ops = sizeof(copro_ops) / sizeof(copro_ops[0]);

/*
 * Finds the entry named op_type with the newest `since` that is still <=
 * opset. Entries for one name need not be adjacent or ordered.
 */
const struct copro_op *copro_op_find(const char *op_type, int opset)
{
	const struct copro_op *best = NULL;
	size_t i;

	if (!op_type)
		return NULL;
	for (i = 0; i < copro_n_ops; i++) {
		const struct copro_op *op = copro_ops[i];

		if (strcmp(op->name, op_type) != 0 || op->since > opset)
			continue;
		if (!best || op->since > best->since)
			best = op;
	}
	return best;
}

/*
 * Aligns the shapes on their last dimension; each pair of dims must be
 * equal or one of them 1. An unknown dim (-1) against 1 stays unknown;
 * against a known d > 1 it is taken to be d (it must be d or 1, and the
 * plan checks real shapes before running). A 0 dim against 1 gives 0.
 */
int copro_broadcast_shape(const struct copro_kt *a, const struct copro_kt *b, struct copro_kt *out)
{
	int r = a->rank > b->rank ? a->rank : b->rank;
	int i;

	if (a->rank < 0 || b->rank < 0 || r > COPRO_K_MAX_RANK)
		return -EINVAL;
	for (i = 0; i < r; i++) {
		int ia = i - (r - a->rank), ib = i - (r - b->rank);
		int64_t da = ia >= 0 ? a->dims[ia] : 1;
		int64_t db = ib >= 0 ? b->dims[ib] : 1;
		int64_t d;

		if (da == db)
			d = da;
		else if (da == 1)
			d = db;
		else if (db == 1)
			d = da;
		else if (da == -1)
			d = db;
		else if (db == -1)
			d = da;
		else
			return -EINVAL;
		out->dims[i] = d;
	}
	out->rank = r;
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Helpers shared by the families (declared in op_impl.h)                 */
/* ---------------------------------------------------------------------- */

int copro_op_err(char *err, size_t errlen, int code, const struct copro_node *n,
		 const char *fmt, ...)
{
	va_list ap;
	int k = 0;

	if (!err || !errlen)
		return code;
	k = snprintf(err, errlen, "%s: ", n && n->op_type ? n->op_type : "?");
	if (k < 0 || (size_t)k >= errlen)
		return code;
	va_start(ap, fmt);
	vsnprintf(err + k, errlen - k, fmt, ap);
	va_end(ap);
	return code;
}

int copro_op_need_dtype(const struct copro_node *n, int32_t dtype, char *err, size_t errlen)
{
	if (!copro_op_dsize(dtype))
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(dtype));
	return 0;
}

int64_t copro_op_const_ints(const struct copro_kt *t, const int64_t **v)
{
	if (t->dtype != COPRO_K_I64 || t->rank != 1 || !t->data || t->dims[0] < 0)
		return -1;
	*v = t->data;
	return t->dims[0];
}

int copro_op_axis(int64_t axis, int rank, int *out)
{
	if (axis < -(int64_t)rank || axis >= rank)
		return -EINVAL;
	*out = (int)(axis < 0 ? axis + rank : axis);
	return 0;
}

int copro_op_nin(const struct copro_node *n, const struct copro_kt *in, int i)
{
	return i < n->n_in && n->in[i] >= 0 && in[i].dtype != 0;
}

int copro_op_nout(const struct copro_node *n, int i)
{
	return i < n->n_out && n->out[i] >= 0;
}

int64_t copro_op_numel(const struct copro_kt *t)
{
	int64_t k = 1;
	int i;

	for (i = 0; i < t->rank; i++) {
		if (t->dims[i] < 0)
			return -1;
		k *= t->dims[i];
	}
	return k;
}

void copro_op_shape_copy(struct copro_kt *dst, const struct copro_kt *src)
{
	int i;

	dst->rank = src->rank;
	for (i = 0; i < src->rank; i++)
		dst->dims[i] = src->dims[i];
}

void copro_op_strides(const struct copro_kt *t, int64_t *st)
{
	int64_t s = 1;
	int i;

	for (i = t->rank - 1; i >= 0; i--) {
		st[i] = s;
		s *= t->dims[i];
	}
}

void copro_op_bcast_strides(const struct copro_kt *t, const struct copro_kt *out, int64_t *st)
{
	int64_t k = 1;
	int i;

	for (i = out->rank - 1; i >= 0; i--) {
		int it = i - (out->rank - t->rank);
		int64_t d = it >= 0 ? t->dims[it] : 1;

		st[i] = d == 1 ? 0 : k;
		k *= d;
	}
}

/* The graph's own tables, with "absent" for an optional input left out. */
size_t copro_op_dsize(int32_t dtype)
{
	return copro_k_dtype_size(dtype);
}

const char *copro_op_dname(int32_t dtype)
{
	return dtype ? copro_k_dtype_name(dtype) : "absent";
}

/* ---------------------------------------------------------------------- */
/* Broadcast loops                                                        */
/* ---------------------------------------------------------------------- */

void copro_bcast_init(struct copro_bcast *bc, const struct copro_kt *a, const struct copro_kt *b,
		      const struct copro_kt *c)
{
	int64_t sa[COPRO_K_MAX_RANK], sb[COPRO_K_MAX_RANK];
	int64_t ka = 1, kb = 1;
	int r = c->rank, i, k = 0;

	/* Element strides of a and b aligned to c's dims, 0 where broadcast. */
	for (i = r - 1; i >= 0; i--) {
		int ia = i - (r - a->rank), ib = i - (r - b->rank);
		int64_t da = ia >= 0 ? a->dims[ia] : 1;
		int64_t db = ib >= 0 ? b->dims[ib] : 1;

		sa[i] = (da == 1) ? 0 : ka;
		sb[i] = (db == 1) ? 0 : kb;
		ka *= da;
		kb *= db;
	}
	for (i = 0; i < r; i++) {
		if (c->dims[i] == 1)
			continue;
		if (k > 0 && bc->sa[k - 1] == sa[i] * c->dims[i] &&
		    bc->sb[k - 1] == sb[i] * c->dims[i]) {
			/* The previous dim steps over exactly this one: merge. */
			bc->dims[k - 1] *= c->dims[i];
			bc->sa[k - 1] = sa[i];
			bc->sb[k - 1] = sb[i];
			continue;
		}
		bc->dims[k] = c->dims[i];
		bc->sa[k] = sa[i];
		bc->sb[k] = sb[i];
		k++;
	}
	if (k == 0) {
		bc->dims[0] = 1;
		bc->sa[0] = 0;
		bc->sb[0] = 0;
		k = 1;
	}
	bc->rank = k;
}

void copro_bcast_run(const struct copro_bcast *bc, const void *a, const void *b, void *c,
		     size_t ea, size_t eb, size_t ec, copro_bcast_fn fn, const void *ctx)
{
	int64_t idx[COPRO_K_MAX_RANK] = { 0 };
	int64_t n = bc->dims[bc->rank - 1], oa = 0, ob = 0, oc = 0;
	int sa = bc->sa[bc->rank - 1] != 0, sb = bc->sb[bc->rank - 1] != 0;
	int outer = bc->rank - 1, i;

	for (i = 0; i < bc->rank; i++)
		if (bc->dims[i] == 0)
			return;
	for (;;) {
		fn((const char *)a + oa * ea, (const char *)b + ob * eb, (char *)c + oc * ec,
		   n, sa, sb, ctx);
		oc += n;
		/* Odometer over the outer dims, carrying a's and b's offsets. */
		for (i = outer - 1; i >= 0; i--) {
			idx[i]++;
			oa += bc->sa[i];
			ob += bc->sb[i];
			if (idx[i] < bc->dims[i])
				break;
			oa -= bc->sa[i] * bc->dims[i];
			ob -= bc->sb[i] * bc->dims[i];
			idx[i] = 0;
		}
		if (i < 0)
			return;
	}
}
