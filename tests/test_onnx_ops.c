// SPDX-License-Identifier: MIT
/*
 * test_onnx_ops.c - every ONNX operator against a naive reference on small
 * random tensors, plus the boundary shapes (rank 0, size-1 and size-0
 * dims, negative axes) and the nodes infer() must refuse.
 *
 * Nodes are built by hand (struct copro_node with its attributes), so
 * these tests need neither the loader nor the planner. The references
 * compute in double with plain index arithmetic; float results are
 * compared with a per-op budget (rtol, atol) that says how far the op may
 * drift: 1e-6 for one rounding, more where a BLAS sums K products in
 * another order.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "onnx/graph.h"
#include "onnx/op_impl.h"
#include "onnx/ops.h"

/* ---------------------------------------------------------------------- */
/* Allocation counter                                                     */
/* ---------------------------------------------------------------------- */

/*
 * malloc and friends, defined here, forward to glibc's and count calls
 * while `counting` is set: run() must not allocate. Sanitizer builds keep
 * their own allocator (and skip the check).
 */
#include "alloc_count.h"

/* ---------------------------------------------------------------------- */
/* Tensors, nodes                                                         */
/* ---------------------------------------------------------------------- */

#define D(...)	(const int64_t[]){ __VA_ARGS__ }
#define MAXT	64		/* tensors a test may hold at once */

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint32_t rnd(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (uint32_t)(rng >> 16);
}

static float rndf(float lo, float hi)
{
	return lo + (hi - lo) * (float)(rnd() % 1000000) / 1000000.0f;
}

static void *live[MAXT];
static int n_live;

/* 64-byte aligned, as the planner hands buffers to run(); freed in teardown. */
static void *talloc(size_t bytes)
{
	void *p = NULL;

	assert_int_equal(posix_memalign(&p, 64, bytes ? (bytes + 63) & ~(size_t)63 : 64), 0);
	assert_true(n_live < MAXT);
	live[n_live++] = p;
	return p;
}

static int teardown(void **state)
{
	while (n_live > 0)
		free(live[--n_live]);
	return 0;
}

static struct copro_kt kt(int32_t dt, int rank, const int64_t *dims)
{
	struct copro_kt t;
	int64_t k = 1;
	int i;

	memset(&t, 0, sizeof(t));
	t.dtype = dt;
	t.rank = rank;
	for (i = 0; i < rank; i++) {
		t.dims[i] = dims[i];
		k *= dims[i];
	}
	t.data = talloc((size_t)k * copro_op_dsize(dt));
	memset(t.data, 0, (size_t)k * copro_op_dsize(dt));
	return t;
}

/* A tensor with shape only, as infer() sees a value computed at run time. */
static struct copro_kt shape_only(int32_t dt, int rank, const int64_t *dims)
{
	struct copro_kt t;
	int i;

	memset(&t, 0, sizeof(t));
	t.dtype = dt;
	t.rank = rank;
	for (i = 0; i < rank; i++)
		t.dims[i] = dims[i];
	return t;
}

static int64_t numel(const struct copro_kt *t)
{
	return copro_op_numel(t);
}

static float *F(const struct copro_kt *t) { return t->data; }
static double *F64(const struct copro_kt *t) { return t->data; }
static int32_t *I32(const struct copro_kt *t) { return t->data; }
static int64_t *I64(const struct copro_kt *t) { return t->data; }

static struct copro_kt randf(int rank, const int64_t *dims, float lo, float hi)
{
	struct copro_kt t = kt(COPRO_K_F32, rank, dims);
	int64_t i;

	for (i = 0; i < numel(&t); i++)
		F(&t)[i] = rndf(lo, hi);
	return t;
}

static struct copro_kt i64s(int rank, const int64_t *dims, const int64_t *v)
{
	struct copro_kt t = kt(COPRO_K_I64, rank, dims);

	memcpy(t.data, v, (size_t)numel(&t) * 8);
	return t;
}

static struct copro_kt f32s(int rank, const int64_t *dims, const float *v)
{
	struct copro_kt t = kt(COPRO_K_F32, rank, dims);

	memcpy(t.data, v, (size_t)numel(&t) * 4);
	return t;
}

struct tn {
	struct copro_node n;
	int ins[16], outs[4];
	struct copro_attr at[8];
	int64_t ints[8][8];
	float floats[8][8];
};

static struct copro_node *node(struct tn *t, const char *op, int opset, int n_in, int n_out)
{
	int i;

	memset(t, 0, sizeof(*t));
	t->n.op_type = (char *)op;
	t->n.name = (char *)"";
	t->n.domain = (char *)"";
	t->n.opset = opset;
	t->n.n_in = n_in;
	t->n.n_out = n_out;
	t->n.in = t->ins;
	t->n.out = t->outs;
	t->n.attrs = t->at;
	for (i = 0; i < n_in; i++)
		t->ins[i] = i;
	for (i = 0; i < n_out; i++)
		t->outs[i] = 16 + i;
	return &t->n;
}

static struct copro_attr *attr(struct tn *t, const char *name, int type)
{
	struct copro_attr *a = &t->at[t->n.n_attrs++];

	assert_true(t->n.n_attrs <= 8);
	a->name = (char *)name;
	a->type = type;
	return a;
}

static void attr_i(struct tn *t, const char *name, int64_t v)
{
	attr(t, name, COPRO_ATTR_INT)->i = v;
}

static void attr_f(struct tn *t, const char *name, float v)
{
	attr(t, name, COPRO_ATTR_FLOAT)->f = v;
}

static void attr_is(struct tn *t, const char *name, int n, const int64_t *v)
{
	int k = t->n.n_attrs;
	struct copro_attr *a = attr(t, name, COPRO_ATTR_INTS);

	memcpy(t->ints[k], v, (size_t)n * 8);
	a->ints = t->ints[k];
	a->n = n;
}

static void attr_fs(struct tn *t, const char *name, int n, const float *v)
{
	int k = t->n.n_attrs;
	struct copro_attr *a = attr(t, name, COPRO_ATTR_FLOATS);

	memcpy(t->floats[k], v, (size_t)n * 4);
	a->floats = t->floats[k];
	a->n = n;
}

static char last_err[256];

/*
 * Inputs (bit i = input i) run() hides from infer(), as values computed
 * at run time are: their data pointer is NULL while the plan is built.
 */
static unsigned computed;

/* Resolves and infers; returns infer's code (or -ENOENT: no such op). */
static int infer(struct copro_node *n, struct copro_kt *in, struct copro_kt *out)
{
	const struct copro_op *op = copro_op_find(n->op_type, n->opset);
	int i;

	last_err[0] = '\0';
	if (!op)
		return -ENOENT;
	n->op = op;
	for (i = 0; i < n->n_in; i++)
		if (n->in[i] < 0)
			memset(&in[i], 0, sizeof(in[i]));
	for (i = 0; i < n->n_out; i++)
		memset(&out[i], 0, sizeof(out[i]));
	return op->infer(n, in, out, last_err, sizeof(last_err));
}

/*
 * Infers (which must succeed), allocates the outputs (filled with 0xff:
 * NaN for floats, so an element run() forgets shows) and scratch, runs,
 * and checks run() allocated nothing.
 */
static void run(struct copro_node *n, struct copro_kt *in, struct copro_kt *out)
{
	void *saved[16], *scratch = NULL;
	int rc, i;

	for (i = 0; i < n->n_in; i++) {
		saved[i] = in[i].data;
		if (computed & (1U << i))
			in[i].data = NULL;
	}
	rc = infer(n, in, out);
	for (i = 0; i < n->n_in; i++)
		in[i].data = saved[i];
	if (rc)
		fail_msg("%s infer failed (%d): %s", n->op_type, rc, last_err);
	for (i = 0; i < n->n_out; i++) {
		size_t b;

		if (n->out[i] < 0)
			continue;
		assert_true(numel(&out[i]) >= 0);
		b = (size_t)numel(&out[i]) * copro_op_dsize(out[i].dtype);
		out[i].data = talloc(b);
		memset(out[i].data, 0xff, b);
	}
	if (n->op->scratch) {
		size_t b = n->op->scratch(n, in, out);

		scratch = talloc(b);
	}
	n_allocs = 0;
	counting = 1;
	rc = n->op->run(n, in, out, scratch);
	counting = 0;
	if (n->op->release)
		n->op->release(n);
	assert_null(n->priv);
	assert_int_equal(rc, 0);
	if (COUNT_ALLOCS && n_allocs)
		fail_msg("%s run() allocated %ld times", n->op_type, n_allocs);
}

static void expect_refused(struct copro_node *n, struct copro_kt *in, int code)
{
	struct copro_kt out[4];
	int rc = infer(n, in, out);

	if (n->op && n->op->release)
		n->op->release(n);
	if (rc != code)
		fail_msg("%s: infer returned %d, expected %d (%s)", n->op_type, rc, code, last_err);
	/* The message names the op. */
	assert_non_null(strstr(last_err, n->op_type));
}

static void assert_shape(const struct copro_kt *t, int rank, const int64_t *dims)
{
	int i;

	if (t->rank != rank)
		fail_msg("rank %d, expected %d", t->rank, rank);
	for (i = 0; i < rank; i++)
		if (t->dims[i] != dims[i])
			fail_msg("dim %d is %lld, expected %lld", i, (long long)t->dims[i],
				 (long long)dims[i]);
}

static void assert_close(double got, double want, double rtol, double atol, const char *what,
			 int64_t i)
{
	if (isnan(want) && isnan(got))
		return;
	if (!(fabs(got - want) <= atol + rtol * fabs(want)))
		fail_msg("%s[%lld]: got %.9g, expected %.9g", what, (long long)i, got, want);
}

static void assert_f32(const struct copro_kt *t, const double *want, double rtol, double atol)
{
	int64_t i;

	assert_int_equal(t->dtype, COPRO_K_F32);
	for (i = 0; i < numel(t); i++)
		assert_close(F(t)[i], want[i], rtol, atol, "out", i);
}

/* Offset in a (row-major) of the output coordinate c, broadcasting a. */
static int64_t bcast_off(const struct copro_kt *a, int rank, const int64_t *c)
{
	int64_t off = 0;
	int i, j;

	for (i = 0; i < a->rank; i++) {
		j = i + rank - a->rank;
		off = off * a->dims[i] + (a->dims[i] == 1 ? 0 : c[j]);
	}
	return off;
}

/* Coordinates of flat index k in dims. */
static void unravel(int64_t k, int rank, const int64_t *dims, int64_t *c)
{
	int i;

	for (i = rank - 1; i >= 0; i--) {
		c[i] = dims[i] ? k % dims[i] : 0;
		k = dims[i] ? k / dims[i] : 0;
	}
}

static double *dbuf(int64_t n)
{
	return talloc((size_t)(n > 0 ? n : 1) * sizeof(double));
}

/* ---------------------------------------------------------------------- */
/* Registry, broadcasting                                                 */
/* ---------------------------------------------------------------------- */

static void registry_should_list_every_required_op(void **state)
{
	static const char *const req[] = {
		"Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Relu", "LeakyRelu", "Sigmoid",
		"Tanh", "Softmax", "LogSoftmax", "Erf", "Sqrt", "Pow", "Exp", "Clip", "Flatten",
		"Reshape", "Transpose", "Squeeze", "Unsqueeze", "Concat", "Gather", "Identity",
		"Dropout", "Constant", "Cast", "BatchNormalization", "LayerNormalization",
		"ReduceMean", "ArgMax", "QuantizeLinear", "DequantizeLinear", "MatMulInteger",
		"Shape",
	};
	size_t i, j;

	for (i = 0; i < sizeof(req) / sizeof(req[0]); i++) {
		const struct copro_op *op = copro_op_find(req[i], 17);

		if (!op)
			fail_msg("%s missing at opset 17", req[i]);
		assert_non_null(op->infer);
		assert_non_null(op->run);
	}
	/* Every entry is whole and no (name, since) pair is listed twice. */
	for (i = 0; i < copro_n_ops; i++) {
		assert_non_null(copro_ops[i]->infer);
		assert_non_null(copro_ops[i]->run);
		for (j = i + 1; j < copro_n_ops; j++)
			assert_false(!strcmp(copro_ops[i]->name, copro_ops[j]->name) &&
				     copro_ops[i]->since == copro_ops[j]->since);
	}
	assert_true(copro_op_find("Shape", 17)->flags & COPRO_OP_F_SHAPE_ONLY);
}

static void registry_should_pick_the_newest_entry_the_opset_allows(void **state)
{
	assert_int_equal(copro_op_find("Squeeze", 11)->since, 1);
	assert_int_equal(copro_op_find("Squeeze", 12)->since, 1);
	assert_int_equal(copro_op_find("Squeeze", 13)->since, 13);
	assert_int_equal(copro_op_find("Squeeze", 17)->since, 13);
	assert_int_equal(copro_op_find("Unsqueeze", 13)->value_inputs, 1U << 1);
	assert_int_equal(copro_op_find("Unsqueeze", 12)->value_inputs, 0);
	assert_int_equal(copro_op_find("ReduceSum", 12)->since, 1);
	assert_int_equal(copro_op_find("ReduceSum", 13)->since, 13);
	/* Older than the oldest semantics, unknown names: not found. */
	assert_null(copro_op_find("Add", 6));
	assert_null(copro_op_find("LayerNormalization", 16));
	assert_null(copro_op_find("NoSuchOp", 17));
	assert_null(copro_op_find(NULL, 17));
}

static void broadcast_shape_should_follow_numpy_rules(void **state)
{
	struct copro_kt a = shape_only(COPRO_K_F32, 3, D(2, 1, 4));
	struct copro_kt b = shape_only(COPRO_K_F32, 2, D(3, 1));
	struct copro_kt s = shape_only(COPRO_K_F32, 0, NULL), o;

	assert_int_equal(copro_broadcast_shape(&a, &b, &o), 0);
	assert_shape(&o, 3, D(2, 3, 4));
	assert_int_equal(copro_broadcast_shape(&s, &a, &o), 0);
	assert_shape(&o, 3, D(2, 1, 4));
	assert_int_equal(copro_broadcast_shape(&s, &s, &o), 0);
	assert_int_equal(o.rank, 0);
	/* A 0 dim against 1 is 0; against 3 it does not broadcast. */
	a = shape_only(COPRO_K_F32, 2, D(0, 3));
	b = shape_only(COPRO_K_F32, 1, D(1));
	assert_int_equal(copro_broadcast_shape(&a, &b, &o), 0);
	assert_shape(&o, 2, D(0, 3));
	b = shape_only(COPRO_K_F32, 2, D(3, 3));
	assert_int_equal(copro_broadcast_shape(&a, &b, &o), -EINVAL);
	/* An unknown dim takes the known one's size, or stays unknown against 1. */
	a = shape_only(COPRO_K_F32, 2, D(-1, 4));
	b = shape_only(COPRO_K_F32, 2, D(1, 4));
	assert_int_equal(copro_broadcast_shape(&a, &b, &o), 0);
	assert_shape(&o, 2, D(-1, 4));
	b = shape_only(COPRO_K_F32, 2, D(5, 4));
	assert_int_equal(copro_broadcast_shape(&a, &b, &o), 0);
	assert_shape(&o, 2, D(5, 4));
	a = shape_only(COPRO_K_F32, 2, D(2, 4));
	b = shape_only(COPRO_K_F32, 1, D(3));
	assert_int_equal(copro_broadcast_shape(&a, &b, &o), -EINVAL);
}

/* ---------------------------------------------------------------------- */
/* Add, Sub, Mul, Div, Pow                                                */
/* ---------------------------------------------------------------------- */

static double ref_bin(const char *op, double x, double y)
{
	switch (op[0]) {
	case 'A': return x + y;
	case 'S': return x - y;
	case 'M': return x * y;
	case 'D': return x / y;
	default: return pow(x, y);
	}
}

struct shape_pair {
	int ra;
	int64_t a[4];
	int rb;
	int64_t b[4];
};

static const struct shape_pair pairs[] = {
	{ 2, { 3, 4 }, 2, { 3, 4 } },		/* same shape */
	{ 3, { 2, 3, 4 }, 1, { 4 } },		/* row + vector: the bias add */
	{ 1, { 4 }, 3, { 2, 3, 4 } },		/* vector + rows, other side */
	{ 3, { 2, 1, 4 }, 2, { 3, 1 } },	/* both sides broadcast */
	{ 0, { 0 }, 2, { 3, 2 } },		/* scalar op tensor */
	{ 2, { 3, 2 }, 0, { 0 } },		/* tensor op scalar */
	{ 0, { 0 }, 0, { 0 } },			/* scalar op scalar */
	{ 1, { 1 }, 0, { 0 } },			/* [1] op scalar = [1] */
	{ 4, { 2, 1, 3, 1 }, 4, { 1, 4, 1, 5 } },
	{ 3, { 4, 1, 5 }, 3, { 4, 3, 1 } },	/* middle broadcast, no merging */
	{ 2, { 0, 3 }, 1, { 3 } },		/* empty */
	{ 2, { 2, 0 }, 2, { 1, 0 } },
};

static void binary_ops_should_match_reference_with_broadcasting(void **state)
{
	static const char *const ops[] = { "Add", "Sub", "Mul", "Div", "Pow" };
	size_t o, p;

	for (o = 0; o < 5; o++) {
		for (p = 0; p < sizeof(pairs) / sizeof(pairs[0]); p++) {
			const struct shape_pair *sp = &pairs[p];
			int pw = o == 4;
			struct copro_kt in[2], out[1];
			struct tn t;
			struct copro_node *n = node(&t, ops[o], 14, 2, 1);
			int64_t c[8], k;
			double *want;

			/* Positive bases for Pow, divisors away from 0 for Div. */
			in[0] = randf(sp->ra, sp->a, pw ? 0.1f : -3, 3);
			in[1] = randf(sp->rb, sp->b, o == 3 ? 0.5f : -2, 2);
			run(n, in, out);
			assert_int_equal(out[0].dtype, COPRO_K_F32);
			want = dbuf(numel(&out[0]));
			for (k = 0; k < numel(&out[0]); k++) {
				unravel(k, out[0].rank, out[0].dims, c);
				double x = F(&in[0])[bcast_off(&in[0], out[0].rank, c)];
				double y = F(&in[1])[bcast_off(&in[1], out[0].rank, c)];

				want[k] = ref_bin(ops[o], x, y);
			}
			assert_f32(&out[0], want, 1e-5, 1e-6);
			teardown(NULL);
		}
	}
}

static void binary_ops_should_wrap_integers_and_not_trap_on_division(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	struct copro_node *n;

	in[0] = kt(COPRO_K_I32, 1, D(5));
	in[1] = kt(COPRO_K_I32, 1, D(5));
	memcpy(in[0].data, (int32_t[]){ INT32_MAX, INT32_MIN, 7, -7, 5 }, 20);
	memcpy(in[1].data, (int32_t[]){ 1, -1, 2, 2, 0 }, 20);
	n = node(&t, "Add", 14, 2, 1);
	run(n, in, out);
	assert_int_equal(I32(&out[0])[0], INT32_MIN);
	n = node(&t, "Div", 14, 2, 1);
	run(n, in, out);
	/* INT_MIN / -1 wraps, division truncates toward zero, x / 0 is 0. */
	assert_int_equal(I32(&out[0])[1], INT32_MIN);
	assert_int_equal(I32(&out[0])[2], 3);
	assert_int_equal(I32(&out[0])[3], -3);
	assert_int_equal(I32(&out[0])[4], 0);
	n = node(&t, "Mul", 14, 2, 1);
	run(n, in, out);
	assert_int_equal(I32(&out[0])[0], INT32_MAX);
	assert_int_equal(I32(&out[0])[3], -14);

	in[0] = kt(COPRO_K_U8, 1, D(3));
	in[1] = kt(COPRO_K_U8, 0, NULL);
	memcpy(in[0].data, (uint8_t[]){ 250, 3, 9 }, 3);
	*(uint8_t *)in[1].data = 10;
	n = node(&t, "Add", 14, 2, 1);
	run(n, in, out);
	assert_memory_equal(out[0].data, ((uint8_t[]){ 4, 13, 19 }), 3);
	n = node(&t, "Sub", 14, 2, 1);
	run(n, in, out);
	assert_memory_equal(out[0].data, ((uint8_t[]){ 240, 249, 255 }), 3);

	in[0] = kt(COPRO_K_I64, 2, D(2, 2));
	in[1] = kt(COPRO_K_I64, 1, D(2));
	memcpy(in[0].data, (int64_t[]){ 1LL << 40, 5, -6, 7 }, 32);
	memcpy(in[1].data, (int64_t[]){ 3, -2 }, 16);
	n = node(&t, "Mul", 14, 2, 1);
	run(n, in, out);
	assert_memory_equal(out[0].data, ((int64_t[]){ 3LL << 40, -10, -18, -14 }), 32);
}

static void binary_ops_should_compute_doubles(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	struct copro_node *n = node(&t, "Div", 14, 2, 1);

	in[0] = kt(COPRO_K_F64, 1, D(3));
	in[1] = kt(COPRO_K_F64, 0, NULL);
	memcpy(in[0].data, (double[]){ 1, 2, 1e300 }, 24);
	*F64(&in[1]) = 3;
	run(n, in, out);
	assert_true(F64(&out[0])[0] == 1.0 / 3);
	assert_true(F64(&out[0])[2] == 1e300 / 3);
}

static void binary_ops_should_refuse_bad_nodes(void **state)
{
	struct copro_kt in[2];
	struct tn t;

	in[0] = shape_only(COPRO_K_F32, 2, D(2, 3));
	in[1] = shape_only(COPRO_K_F32, 1, D(2));
	expect_refused(node(&t, "Add", 14, 2, 1), in, -EINVAL);	/* does not broadcast */
	in[1] = shape_only(COPRO_K_I32, 1, D(3));
	expect_refused(node(&t, "Mul", 14, 2, 1), in, -EINVAL);	/* types differ */
	in[0] = shape_only(COPRO_K_F16, 1, D(3));
	in[1] = shape_only(COPRO_K_F16, 1, D(3));
	expect_refused(node(&t, "Sub", 14, 2, 1), in, -ENOTSUP);
	assert_non_null(strstr(last_err, "float16"));
	in[0] = shape_only(COPRO_K_BOOL, 1, D(3));
	in[1] = shape_only(COPRO_K_BOOL, 1, D(3));
	expect_refused(node(&t, "Add", 14, 2, 1), in, -ENOTSUP);
	in[0] = shape_only(COPRO_K_F32, 1, D(3));
	expect_refused(node(&t, "Add", 14, 1, 1), in, -EINVAL);	/* one input */
}

static void pow_should_take_mixed_types_from_opset_12(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	struct copro_node *n;

	in[0] = kt(COPRO_K_I64, 1, D(3));
	in[1] = kt(COPRO_K_F32, 1, D(3));
	memcpy(in[0].data, (int64_t[]){ 1, 2, 3 }, 24);
	memcpy(in[1].data, (float[]){ 4, 5, 6 }, 12);
	n = node(&t, "Pow", 15, 2, 1);
	run(n, in, out);
	assert_int_equal(out[0].dtype, COPRO_K_I64);
	assert_memory_equal(out[0].data, ((int64_t[]){ 1, 32, 729 }), 24);

	in[0] = kt(COPRO_K_F32, 2, D(2, 2));
	in[1] = kt(COPRO_K_I32, 0, NULL);
	memcpy(in[0].data, (float[]){ 1, -2, 0.5f, 3 }, 16);
	*I32(&in[1]) = 3;
	run(n, in, out);
	assert_f32(&out[0], (double[]){ 1, -8, 0.125, 27 }, 1e-6, 0);

	n = node(&t, "Pow", 11, 2, 1);
	expect_refused(n, in, -EINVAL);
	in[0] = shape_only(COPRO_K_U8, 1, D(2));
	expect_refused(node(&t, "Pow", 15, 2, 1), in, -ENOTSUP);
}

/* ---------------------------------------------------------------------- */
/* Unary ops                                                              */
/* ---------------------------------------------------------------------- */

static double ref_unary(const char *op, double x, double alpha)
{
	if (!strcmp(op, "Relu"))
		return x > 0 ? x : 0;
	if (!strcmp(op, "LeakyRelu"))
		return x >= 0 ? x : x * alpha;
	if (!strcmp(op, "Sigmoid"))
		return 1 / (1 + exp(-x));
	if (!strcmp(op, "Tanh"))
		return tanh(x);
	if (!strcmp(op, "Erf"))
		return erf(x);
	if (!strcmp(op, "Sqrt"))
		return sqrt(x);
	if (!strcmp(op, "Exp"))
		return exp(x);
	if (!strcmp(op, "Log"))
		return log(x);
	if (!strcmp(op, "Neg"))
		return -x;
	if (!strcmp(op, "Abs"))
		return fabs(x);
	if (!strcmp(op, "Floor"))
		return floor(x);
	if (!strcmp(op, "Ceil"))
		return ceil(x);
	if (!strcmp(op, "Round"))
		return nearbyint(x);
	if (!strcmp(op, "Elu"))
		return x >= 0 ? x : alpha * (exp(x) - 1);
	if (!strcmp(op, "Selu"))
		return 1.0507009873554805 * (x > 0 ? x : 1.6732632423543772 * (exp(x) - 1));
	if (!strcmp(op, "Celu"))
		return fmax(0, x) + fmin(0, alpha * (exp(x / alpha) - 1));
	if (!strcmp(op, "HardSigmoid"))
		return fmax(0, fmin(1, alpha * x + 0.5));
	if (!strcmp(op, "HardSwish"))
		return x * fmax(0, fmin(1, x / 6 + 0.5));
	if (!strcmp(op, "Softplus"))
		return log(1 + exp(x));
	if (!strcmp(op, "Softsign"))
		return x / (1 + fabs(x));
	if (!strcmp(op, "ThresholdedRelu"))
		return x > alpha ? x : 0;
	return 1 / x;
}

static void unary_ops_should_match_reference(void **state)
{
	static const char *const ops[] = {
		"Relu", "LeakyRelu", "Sigmoid", "Tanh", "Erf", "Sqrt", "Exp", "Log", "Neg", "Abs",
		"Reciprocal", "Floor", "Ceil", "Round", "Elu", "Selu", "Celu", "HardSigmoid",
		"HardSwish", "Softplus", "Softsign", "ThresholdedRelu",
	};
	static const struct { int r; int64_t d[3]; } shapes[] = {
		{ 2, { 3, 5 } }, { 0, { 0 } }, { 3, { 2, 0, 3 } }, { 1, { 1 } },
	};
	size_t o, s;

	for (o = 0; o < sizeof(ops) / sizeof(ops[0]); o++) {
		for (s = 0; s < 4; s++) {
			int pos = !strcmp(ops[o], "Sqrt") || !strcmp(ops[o], "Log") ||
				  !strcmp(ops[o], "Reciprocal");
			struct copro_kt in[1], out[1];
			struct tn t;
			struct copro_node *n = node(&t, ops[o], 14, 1, 1);
			double *want;
			int64_t k;

			/* Every op with an alpha gets 0.2; the others ignore it. */
			if (strcmp(ops[o], "Selu"))
				attr_f(&t, "alpha", 0.2f);
			in[0] = randf(shapes[s].r, shapes[s].d, pos ? 0.1f : -4, 4);
			run(n, in, out);
			assert_shape(&out[0], in[0].rank, in[0].dims);
			want = dbuf(numel(&out[0]));
			for (k = 0; k < numel(&out[0]); k++)
				want[k] = ref_unary(ops[o], F(&in[0])[k], 0.2);
			assert_f32(&out[0], want, 2e-6, 1e-7);
			teardown(NULL);
		}
	}
}

static void unary_ops_should_keep_edge_values(void **state)
{
	struct copro_kt in[1], out[1];
	struct tn t;
	struct copro_node *n;

	in[0] = f32s(1, D(4), (float[]){ NAN, -INFINITY, INFINITY, -0.0f });
	n = node(&t, "Relu", 14, 1, 1);
	run(n, in, out);
	assert_true(isnan(F(&out[0])[0]));
	assert_true(F(&out[0])[1] == 0 && F(&out[0])[2] == INFINITY);
	/* Sigmoid saturates without inf/inf. */
	in[0] = f32s(1, D(4), (float[]){ -1000, 1000, 0, -88 });
	n = node(&t, "Sigmoid", 14, 1, 1);
	run(n, in, out);
	assert_f32(&out[0], (double[]){ 0, 1, 0.5, 1 / (1 + exp(88.0)) }, 1e-5, 1e-30);
	/* LeakyRelu's default alpha is 0.01. */
	in[0] = f32s(1, D(2), (float[]){ -3, 3 });
	n = node(&t, "LeakyRelu", 14, 1, 1);
	run(n, in, out);
	assert_f32(&out[0], (double[]){ -0.03, 3 }, 1e-6, 0);
}

static void unary_ops_should_take_integers_where_defined(void **state)
{
	struct copro_kt in[1], out[1];
	struct tn t;

	in[0] = kt(COPRO_K_I64, 1, D(3));
	memcpy(in[0].data, (int64_t[]){ -5, 0, 7 }, 24);
	run(node(&t, "Relu", 14, 1, 1), in, out);
	assert_memory_equal(out[0].data, ((int64_t[]){ 0, 0, 7 }), 24);
	in[0] = kt(COPRO_K_I8, 1, D(3));
	memcpy(in[0].data, (int8_t[]){ -128, -3, 4 }, 3);
	run(node(&t, "Abs", 14, 1, 1), in, out);
	assert_memory_equal(out[0].data, ((int8_t[]){ -128, 3, 4 }), 3);
	in[0] = kt(COPRO_K_F64, 1, D(2));
	memcpy(in[0].data, (double[]){ 0.5, -0.5 }, 16);
	run(node(&t, "Tanh", 14, 1, 1), in, out);
	assert_true(F64(&out[0])[0] == tanh(0.5));

	in[0] = shape_only(COPRO_K_I32, 1, D(3));
	expect_refused(node(&t, "Sigmoid", 14, 1, 1), in, -ENOTSUP);
	assert_non_null(strstr(last_err, "int32"));
	expect_refused(node(&t, "Exp", 14, 1, 1), in, -ENOTSUP);
	in[0] = shape_only(COPRO_K_U8, 1, D(3));
	expect_refused(node(&t, "Relu", 14, 1, 1), in, -ENOTSUP);
	in[0] = shape_only(COPRO_K_BF16, 1, D(3));
	expect_refused(node(&t, "Erf", 14, 1, 1), in, -ENOTSUP);
}

/* ---------------------------------------------------------------------- */
/* Clip                                                                   */
/* ---------------------------------------------------------------------- */

static void clip_should_take_bounds_as_inputs_from_opset_11(void **state)
{
	struct copro_kt in[3], out[1];
	struct tn t;
	struct copro_node *n;
	float lo = -1, hi = 2;

	in[0] = f32s(1, D(5), (float[]){ -3, -1, 0.5f, 2, NAN });
	in[1] = f32s(0, NULL, &lo);
	in[2] = f32s(0, NULL, &hi);
	run(node(&t, "Clip", 13, 3, 1), in, out);
	assert_f32(&out[0], (double[]){ -1, -1, 0.5, 2, NAN }, 0, 0);
	/* min absent: only max applies. */
	n = node(&t, "Clip", 13, 3, 1);
	t.ins[1] = -1;
	run(n, in, out);
	assert_f32(&out[0], (double[]){ -3, -1, 0.5, 2, NAN }, 0, 0);
	in[1] = f32s(0, NULL, &lo);
	/* min > max gives max everywhere. */
	lo = 5;
	in[1] = f32s(0, NULL, &lo);
	run(node(&t, "Clip", 13, 3, 1), in, out);
	assert_f32(&out[0], (double[]){ 2, 2, 2, 2, NAN }, 0, 0);
	/* Only the input: nothing changes. */
	run(node(&t, "Clip", 13, 1, 1), in, out);
	assert_f32(&out[0], (double[]){ -3, -1, 0.5, 2, NAN }, 0, 0);

	in[0] = kt(COPRO_K_I8, 1, D(4));
	in[1] = kt(COPRO_K_I8, 0, NULL);
	memcpy(in[0].data, (int8_t[]){ -128, -5, 5, 127 }, 4);
	*(int8_t *)in[1].data = -6;
	run(node(&t, "Clip", 13, 2, 1), in, out);
	assert_memory_equal(out[0].data, ((int8_t[]){ -6, -5, 5, 127 }), 4);
}

static void clip_should_read_attributes_before_opset_11(void **state)
{
	struct copro_kt in[1], out[1];
	struct tn t;
	struct copro_node *n = node(&t, "Clip", 9, 1, 1);

	attr_f(&t, "min", -0.5f);
	attr_f(&t, "max", 0.5f);
	in[0] = f32s(1, D(3), (float[]){ -1, 0.25f, 1 });
	run(n, in, out);
	assert_f32(&out[0], (double[]){ -0.5, 0.25, 0.5 }, 0, 0);
	n = node(&t, "Clip", 9, 1, 1);
	in[0] = f32s(1, D(2), (float[]){ -1e38f, INFINITY });
	run(n, in, out);
	assert_f32(&out[0], (double[]){ -1e38, 3.4028234663852886e38 }, 1e-7, 0);
}

static void clip_should_refuse_bad_bounds(void **state)
{
	struct copro_kt in[3];
	struct tn t;

	in[0] = shape_only(COPRO_K_F32, 1, D(3));
	in[1] = shape_only(COPRO_K_F32, 1, D(2));
	expect_refused(node(&t, "Clip", 13, 2, 1), in, -EINVAL);	/* not a scalar */
	in[1] = shape_only(COPRO_K_F64, 0, NULL);
	expect_refused(node(&t, "Clip", 13, 2, 1), in, -EINVAL);	/* other type */
	in[1] = shape_only(COPRO_K_F32, 0, NULL);
	expect_refused(node(&t, "Clip", 10, 2, 1), in, -EINVAL);	/* input before 11 */
	in[0] = shape_only(COPRO_K_I32, 1, D(3));
	expect_refused(node(&t, "Clip", 10, 1, 1), in, -ENOTSUP);	/* ints before 12 */
	in[0] = shape_only(COPRO_K_F16, 1, D(3));
	expect_refused(node(&t, "Clip", 13, 1, 1), in, -ENOTSUP);
}

/* ---------------------------------------------------------------------- */
/* Softmax, LogSoftmax                                                    */
/* ---------------------------------------------------------------------- */

/* Reference over [outer, len, inner]. */
static void ref_softmax(const float *x, double *y, int64_t outer, int64_t len, int64_t inner,
			int logsm)
{
	int64_t o, i, k;

	for (o = 0; o < outer; o++) {
		for (i = 0; i < inner; i++) {
			double m = -INFINITY, s = 0;

			for (k = 0; k < len; k++)
				m = fmax(m, x[(o * len + k) * inner + i]);
			for (k = 0; k < len; k++)
				s += exp(x[(o * len + k) * inner + i] - m);
			for (k = 0; k < len; k++) {
				double v = x[(o * len + k) * inner + i] - m;

				y[(o * len + k) * inner + i] = logsm ? v - log(s) : exp(v) / s;
			}
		}
	}
}

static void softmax_should_normalize_one_axis_from_opset_13(void **state)
{
	static const int64_t axes[] = { 0, 1, 2, -1, -2, -3 };
	size_t a;
	int logsm;

	for (logsm = 0; logsm < 2; logsm++) {
		for (a = 0; a < 7; a++) {
			struct copro_kt in[1], out[1];
			struct tn t;
			struct copro_node *n = node(&t, logsm ? "LogSoftmax" : "Softmax", 13, 1, 1);
			int ax = a < 6 ? (int)((axes[a] + 3) % 3) : 2;
			int64_t outer = 1, inner = 1, i;
			double *want;

			if (a < 6)
				attr_i(&t, "axis", axes[a]);	/* a == 6: the default, -1 */
			in[0] = randf(3, D(2, 3, 4), -5, 5);
			for (i = 0; i < 3; i++) {
				if (i < ax)
					outer *= in[0].dims[i];
				else if (i > ax)
					inner *= in[0].dims[i];
			}
			run(n, in, out);
			want = dbuf(24);
			ref_softmax(F(&in[0]), want, outer, in[0].dims[ax], inner, logsm);
			assert_f32(&out[0], want, 1e-5, 1e-6);
			teardown(NULL);
		}
	}
}

static void softmax_should_flatten_at_axis_before_opset_13(void **state)
{
	int logsm;

	for (logsm = 0; logsm < 2; logsm++) {
		struct copro_kt in[1], out[1];
		struct tn t;
		struct copro_node *n = node(&t, logsm ? "LogSoftmax" : "Softmax", 11, 1, 1);
		double *want = dbuf(24);

		/* Default axis 1 on [2,3,4]: rows of 12. */
		in[0] = randf(3, D(2, 3, 4), -5, 5);
		run(n, in, out);
		ref_softmax(F(&in[0]), want, 2, 12, 1, logsm);
		assert_f32(&out[0], want, 1e-5, 1e-6);
		n = node(&t, logsm ? "LogSoftmax" : "Softmax", 11, 1, 1);
		attr_i(&t, "axis", -1);
		run(n, in, out);
		ref_softmax(F(&in[0]), want, 6, 4, 1, logsm);
		assert_f32(&out[0], want, 1e-5, 1e-6);
	}
}

static void softmax_should_survive_large_inputs_and_empty_rows(void **state)
{
	struct copro_kt in[1], out[1];
	struct tn t;

	in[0] = f32s(2, D(1, 3), (float[]){ 10000, 10001, 10002 });
	run(node(&t, "Softmax", 13, 1, 1), in, out);
	assert_f32(&out[0], (double[]){ 0.09003057, 0.24472847, 0.66524096 }, 1e-5, 0);
	run(node(&t, "LogSoftmax", 13, 1, 1), in, out);
	assert_f32(&out[0], (double[]){ -2.40760596, -1.40760596, -0.40760596 }, 1e-5, 0);
	in[0] = kt(COPRO_K_F32, 2, D(0, 4));
	run(node(&t, "Softmax", 13, 1, 1), in, out);
	assert_shape(&out[0], 2, D(0, 4));
}

static void softmax_should_refuse_bad_axes_and_types(void **state)
{
	struct copro_kt in[1];
	struct tn t;
	struct copro_node *n = node(&t, "Softmax", 13, 1, 1);

	attr_i(&t, "axis", 2);
	in[0] = shape_only(COPRO_K_F32, 2, D(2, 3));
	expect_refused(n, in, -EINVAL);
	n = node(&t, "LogSoftmax", 13, 1, 1);
	attr_i(&t, "axis", -3);
	expect_refused(n, in, -EINVAL);
	in[0] = shape_only(COPRO_K_F32, 0, NULL);	/* a scalar has no axis */
	expect_refused(node(&t, "Softmax", 13, 1, 1), in, -EINVAL);
	in[0] = shape_only(COPRO_K_I32, 1, D(3));
	expect_refused(node(&t, "Softmax", 13, 1, 1), in, -ENOTSUP);
}

/* ---------------------------------------------------------------------- */
/* Gemm, MatMul, MatMulInteger                                            */
/* ---------------------------------------------------------------------- */

/* y[M,N] = sum_k a(i,k) b(k,j) over strided operands. */
static void ref_mm(const float *a, int64_t sai, int64_t sak, const float *b, int64_t sbk,
		   int64_t sbj, double *y, int64_t M, int64_t N, int64_t K)
{
	int64_t i, j, k;

	for (i = 0; i < M; i++) {
		for (j = 0; j < N; j++) {
			double s = 0;

			for (k = 0; k < K; k++)
				s += (double)a[i * sai + k * sak] * b[k * sbk + j * sbj];
			y[i * N + j] = s;
		}
	}
}

/*
 * One Gemm against the reference: C of shape kind c (0 none, 1 scalar,
 * 2 [N], 3 [1,N] with beta 0, 4 [M,1], 5 [M,N]); B a constant weight, or
 * computed (cb) so run() transposes it into scratch.
 */
static void gemm_case(int64_t M, int64_t N, int64_t K, int ta, int tb, int c, int cb)
{
	struct copro_kt in[3], out[1];
	struct tn t;
	struct copro_node *n = node(&t, "Gemm", 13, c ? 3 : 2, 1);
	float alpha = 0.5f + (float)c, beta = c == 3 ? 0 : -1.5f;
	double *want = dbuf(M * N);
	int64_t i, j;

	attr_i(&t, "transA", ta);
	attr_i(&t, "transB", tb);
	attr_f(&t, "alpha", alpha);
	attr_f(&t, "beta", beta);
	in[0] = ta ? randf(2, D(K, M), -1, 1) : randf(2, D(M, K), -1, 1);
	in[1] = tb ? randf(2, D(N, K), -1, 1) : randf(2, D(K, N), -1, 1);
	switch (c) {
	case 1: in[2] = randf(0, NULL, -1, 1); break;
	case 2: in[2] = randf(1, D(N), -1, 1); break;
	case 3: in[2] = randf(2, D(1, N), -1, 1); break;
	case 4: in[2] = randf(2, D(M, 1), -1, 1); break;
	case 5: in[2] = randf(2, D(M, N), -1, 1); break;
	}
	computed = cb ? 2 : 0;
	run(n, in, out);
	computed = 0;
	assert_shape(&out[0], 2, D(M, N));
	ref_mm(F(&in[0]), ta ? 1 : K, ta ? M : 1, F(&in[1]), tb ? 1 : N, tb ? K : 1, want, M, N,
	       K);
	for (i = 0; i < M; i++) {
		for (j = 0; j < N; j++) {
			double cv = 0;

			if (c == 1)
				cv = F(&in[2])[0];
			else if (c == 2 || c == 3)
				cv = F(&in[2])[j];
			else if (c == 4)
				cv = F(&in[2])[i];
			else if (c == 5)
				cv = F(&in[2])[i * N + j];
			want[i * N + j] = alpha * want[i * N + j] + (c ? beta * cv : 0);
		}
	}
	assert_f32(&out[0], want, 1e-4, 1e-5);
	teardown(NULL);
}

static void gemm_should_match_reference_for_every_transpose_and_bias(void **state)
{
	/* gemv shapes (M or N = 1), K = 1, and K >= 36 (see op_gemm.c). */
	static const int64_t mnk[][3] = {
		{ 3, 5, 4 }, { 1, 7, 6 }, { 6, 1, 5 }, { 1, 1, 9 }, { 4, 3, 1 }, { 33, 17, 70 },
	};
	int s, ta, tb, c, cb;

	for (cb = 0; cb < 2; cb++)
		for (s = 0; s < 6; s++)
			for (ta = 0; ta < 2; ta++)
				for (tb = 0; tb < 2; tb++)
					for (c = 0; c < 6; c++)
						gemm_case(mnk[s][0], mnk[s][1], mnk[s][2], ta, tb,
							  c, cb);
}

static void gemm_should_handle_empty_dims(void **state)
{
	struct copro_kt in[3], out[1];
	struct tn t;
	struct copro_node *n = node(&t, "Gemm", 13, 3, 1);

	/* K = 0: the product is zeros, so Y = beta * C. */
	in[0] = kt(COPRO_K_F32, 2, D(2, 0));
	in[1] = kt(COPRO_K_F32, 2, D(0, 3));
	in[2] = f32s(1, D(3), (float[]){ 1, 2, 3 });
	attr_f(&t, "beta", 2);
	run(n, in, out);
	assert_f32(&out[0], (double[]){ 2, 4, 6, 2, 4, 6 }, 0, 0);
	in[0] = kt(COPRO_K_F32, 2, D(0, 4));
	in[1] = randf(2, D(4, 3), -1, 1);
	run(node(&t, "Gemm", 13, 2, 1), in, out);
	assert_shape(&out[0], 2, D(0, 3));
}

static void gemm_should_refuse_bad_nodes(void **state)
{
	struct copro_kt in[3];
	struct tn t;
	struct copro_node *n;

	in[0] = shape_only(COPRO_K_F32, 2, D(2, 3));
	in[1] = shape_only(COPRO_K_F32, 2, D(4, 5));
	expect_refused(node(&t, "Gemm", 13, 2, 1), in, -EINVAL);	/* K 3 vs 4 */
	in[1] = shape_only(COPRO_K_F32, 3, D(1, 3, 5));
	expect_refused(node(&t, "Gemm", 13, 2, 1), in, -EINVAL);	/* rank 3 */
	in[1] = shape_only(COPRO_K_F32, 2, D(3, 5));
	in[2] = shape_only(COPRO_K_F32, 1, D(3));
	expect_refused(node(&t, "Gemm", 13, 3, 1), in, -EINVAL);	/* C [3] vs N 5 */
	in[2] = shape_only(COPRO_K_F32, 2, D(5, 2));
	expect_refused(node(&t, "Gemm", 13, 3, 1), in, -EINVAL);
	n = node(&t, "Gemm", 13, 2, 1);
	attr_i(&t, "transA", 2);
	expect_refused(n, in, -EINVAL);
	in[0] = shape_only(COPRO_K_F64, 2, D(2, 3));
	in[1] = shape_only(COPRO_K_F64, 2, D(3, 5));
	expect_refused(node(&t, "Gemm", 13, 2, 1), in, -ENOTSUP);
	in[0] = shape_only(COPRO_K_I32, 2, D(2, 3));
	expect_refused(node(&t, "MatMul", 13, 2, 1), in, -ENOTSUP);
}

struct mm_case {
	int ra;
	int64_t a[4];
	int rb;
	int64_t b[4];
	int ry;
	int64_t y[4];
};

static const struct mm_case mm_cases[] = {
	{ 2, { 3, 4 }, 2, { 4, 5 }, 2, { 3, 5 } },
	{ 2, { 1, 4 }, 2, { 4, 5 }, 2, { 1, 5 } },		/* sgemv, row */
	{ 2, { 3, 4 }, 2, { 4, 1 }, 2, { 3, 1 } },		/* sgemv, column */
	{ 1, { 4 }, 2, { 4, 5 }, 1, { 5 } },			/* 1-D A */
	{ 2, { 3, 4 }, 1, { 4 }, 1, { 3 } },			/* 1-D B */
	{ 1, { 4 }, 1, { 4 }, 0, { 0 } },			/* dot: a scalar */
	{ 3, { 2, 3, 4 }, 2, { 4, 5 }, 3, { 2, 3, 5 } },	/* one B for all */
	{ 2, { 3, 4 }, 3, { 2, 4, 5 }, 3, { 2, 3, 5 } },	/* one A for all */
	{ 4, { 2, 1, 3, 4 }, 3, { 3, 4, 2 }, 4, { 2, 3, 3, 2 } },	/* both broadcast */
	{ 3, { 2, 1, 4 }, 3, { 2, 4, 5 }, 3, { 2, 1, 5 } },
	{ 3, { 1, 3, 4 }, 3, { 1, 4, 5 }, 3, { 1, 3, 5 } },
	{ 3, { 2, 0, 4 }, 2, { 4, 5 }, 3, { 2, 0, 5 } },	/* M = 0 */
	{ 2, { 3, 0 }, 2, { 0, 5 }, 2, { 3, 5 } },		/* K = 0: zeros */
	{ 3, { 0, 3, 4 }, 3, { 1, 4, 5 }, 3, { 0, 3, 5 } },	/* no batches */
	/* K >= 36: where OpenBLAS's small NN kernel would malloc. */
	{ 2, { 5, 40 }, 2, { 40, 7 }, 2, { 5, 7 } },
	{ 3, { 2, 1, 40 }, 2, { 40, 7 }, 3, { 2, 1, 7 } },	/* 1-row batches */
	{ 3, { 2, 3, 40 }, 3, { 2, 40, 6 }, 3, { 2, 3, 6 } },
};

static void matmul_should_follow_numpy_shapes_and_batching(void **state)
{
	size_t c;
	int cb;

	for (cb = 0; cb < 2; cb++)
	for (c = 0; c < sizeof(mm_cases) / sizeof(mm_cases[0]); c++) {
		const struct mm_case *mc = &mm_cases[c];
		struct copro_kt in[2], out[1], A, B;
		struct tn t;
		struct copro_node *n = node(&t, "MatMul", 13, 2, 1);
		int64_t M, N, K, k, ca[8], cy[8];
		double *want;
		int i, rb;

		in[0] = randf(mc->ra, mc->a, -1, 1);
		in[1] = randf(mc->rb, mc->b, -1, 1);
		computed = cb ? 2 : 0;
		run(n, in, out);
		computed = 0;
		assert_shape(&out[0], mc->ry, mc->y);
		/* Reference: promote 1-D operands, broadcast batches by hand. */
		A = in[0];
		B = in[1];
		if (A.rank == 1) {
			A.rank = 2;
			A.dims[1] = A.dims[0];
			A.dims[0] = 1;
		}
		if (B.rank == 1) {
			B.rank = 2;
			B.dims[1] = 1;
		}
		M = A.dims[A.rank - 2];
		K = A.dims[A.rank - 1];
		N = B.dims[B.rank - 1];
		rb = (A.rank > B.rank ? A.rank : B.rank) - 2;
		want = dbuf(numel(&out[0]));
		for (k = 0; k * M * N < numel(&out[0]); k++) {
			int64_t bd[8], oa = 0, ob = 0;
			struct copro_kt Ab = A, Bb = B;

			for (i = 0; i < rb; i++)
				bd[i] = out[0].dims[i];
			unravel(k, rb, bd, cy);
			Ab.rank = A.rank - 2;
			Bb.rank = B.rank - 2;
			memcpy(ca, cy, sizeof(ca));
			oa = bcast_off(&Ab, rb, cy) * M * K;
			ob = bcast_off(&Bb, rb, ca) * K * N;
			ref_mm(F(&in[0]) + oa, K, 1, F(&in[1]) + ob, N, 1, want + k * M * N, M, N,
			       K);
		}
		assert_f32(&out[0], want, 1e-5, 1e-6);
		teardown(NULL);
	}
}

static void matmul_should_refuse_mismatched_shapes(void **state)
{
	struct copro_kt in[2];
	struct tn t;

	in[0] = shape_only(COPRO_K_F32, 2, D(3, 4));
	in[1] = shape_only(COPRO_K_F32, 2, D(5, 6));
	expect_refused(node(&t, "MatMul", 13, 2, 1), in, -EINVAL);
	in[0] = shape_only(COPRO_K_F32, 3, D(2, 3, 4));
	in[1] = shape_only(COPRO_K_F32, 3, D(3, 4, 6));
	expect_refused(node(&t, "MatMul", 13, 2, 1), in, -EINVAL);	/* batch 2 vs 3 */
	in[0] = shape_only(COPRO_K_F32, 0, NULL);
	expect_refused(node(&t, "MatMul", 13, 2, 1), in, -EINVAL);	/* scalar */
}

static void matmulinteger_should_subtract_zero_points(void **state)
{
	const uint8_t *a8;
	const int8_t *b8;
	struct copro_kt in[4], out[1];
	struct tn t;
	struct copro_node *n;
	int64_t i, j, k;
	int za;

	for (za = 0; za < 3; za++) {
		n = node(&t, "MatMulInteger", 10, 4, 1);
		in[0] = kt(COPRO_K_U8, 2, D(3, 4));
		in[1] = kt(COPRO_K_I8, 3, D(2, 4, 2));
		for (i = 0; i < 12; i++)
			((uint8_t *)in[0].data)[i] = (uint8_t)rnd();
		for (i = 0; i < 16; i++)
			((int8_t *)in[1].data)[i] = (int8_t)rnd();
		a8 = in[0].data;
		b8 = in[1].data;
		if (za == 0) {
			t.ins[2] = -1;
			t.ins[3] = -1;
		} else if (za == 1) {
			in[2] = kt(COPRO_K_U8, 0, NULL);
			*(uint8_t *)in[2].data = 12;
			in[3] = kt(COPRO_K_I8, 0, NULL);
			*(int8_t *)in[3].data = -3;
		} else {
			in[2] = kt(COPRO_K_U8, 1, D(3));
			memcpy(in[2].data, (uint8_t[]){ 1, 128, 255 }, 3);
			in[3] = kt(COPRO_K_I8, 1, D(2));
			memcpy(in[3].data, (int8_t[]){ -128, 5 }, 2);
		}
		run(n, in, out);
		assert_int_equal(out[0].dtype, COPRO_K_I32);
		assert_shape(&out[0], 3, D(2, 3, 2));
		for (k = 0; k < 2; k++) {
			for (i = 0; i < 3; i++) {
				for (j = 0; j < 2; j++) {
					int32_t s = 0, a0 = 0, b0 = 0;
					int64_t q;

					if (za == 1) {
						a0 = 12;
						b0 = -3;
					} else if (za == 2) {
						a0 = ((uint8_t *)in[2].data)[i];
						b0 = ((int8_t *)in[3].data)[j];
					}
					for (q = 0; q < 4; q++) {
						int32_t av = a8[i * 4 + q] - a0;

						s += av * (b8[k * 8 + 2 * q + j] - b0);
					}
					assert_int_equal(I32(&out[0])[k * 6 + i * 2 + j], s);
				}
			}
		}
	}
	in[2] = shape_only(COPRO_K_I8, 0, NULL);	/* zero point of A's other type */
	expect_refused(node(&t, "MatMulInteger", 10, 3, 1), in, -EINVAL);
	in[0] = shape_only(COPRO_K_F32, 2, D(3, 4));
	expect_refused(node(&t, "MatMulInteger", 10, 2, 1), in, -ENOTSUP);
}

/* ---------------------------------------------------------------------- */
/* Shape ops                                                              */
/* ---------------------------------------------------------------------- */

static void reshape_should_copy_zeros_and_infer_minus_one(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	struct copro_node *n;

	in[0] = randf(3, D(2, 3, 4), -1, 1);
	in[1] = i64s(1, D(3), D(0, -1, 2));
	run(node(&t, "Reshape", 14, 2, 1), in, out);
	assert_shape(&out[0], 3, D(2, 6, 2));
	assert_memory_equal(out[0].data, in[0].data, 24 * 4);
	in[1] = i64s(1, D(1), D(-1));
	run(node(&t, "Reshape", 14, 2, 1), in, out);
	assert_shape(&out[0], 1, D(24));
	/* To a scalar and back. */
	in[0] = randf(2, D(1, 1), -1, 1);
	in[1] = kt(COPRO_K_I64, 1, D(0));
	run(node(&t, "Reshape", 14, 2, 1), in, out);
	assert_int_equal(out[0].rank, 0);
	/* allowzero: 0 is a real 0. */
	in[0] = kt(COPRO_K_F32, 2, D(0, 3));
	in[1] = i64s(1, D(3), D(3, 0, 5));
	n = node(&t, "Reshape", 14, 2, 1);
	attr_i(&t, "allowzero", 1);
	run(n, in, out);
	assert_shape(&out[0], 3, D(3, 0, 5));
	/* Without allowzero, 0 copies the input's dim. */
	in[1] = i64s(1, D(3), D(0, 3, 1));
	run(node(&t, "Reshape", 14, 2, 1), in, out);
	assert_shape(&out[0], 3, D(0, 3, 1));
	/* ... and -1 next to a 0 is ambiguous, as numpy says. */
	in[1] = i64s(1, D(2), D(0, -1));
	expect_refused(node(&t, "Reshape", 14, 2, 1), in, -EINVAL);
}

static void reshape_should_refuse_bad_shapes(void **state)
{
	struct copro_kt in[2];
	struct tn t;
	struct copro_node *n;

	in[0] = shape_only(COPRO_K_F32, 2, D(2, 3));
	in[1] = i64s(1, D(2), D(-1, -1));
	expect_refused(node(&t, "Reshape", 14, 2, 1), in, -EINVAL);
	in[1] = i64s(1, D(2), D(4, 2));
	expect_refused(node(&t, "Reshape", 14, 2, 1), in, -EINVAL);	/* 6 into 8 */
	in[1] = i64s(1, D(2), D(4, -1));
	expect_refused(node(&t, "Reshape", 14, 2, 1), in, -EINVAL);	/* 6 / 4 */
	in[1] = i64s(1, D(3), D(0, 0, 0));
	expect_refused(node(&t, "Reshape", 14, 2, 1), in, -EINVAL);	/* no dim 2 */
	in[1] = i64s(1, D(2), D(-2, 3));
	expect_refused(node(&t, "Reshape", 14, 2, 1), in, -EINVAL);
	in[1] = i64s(1, D(2), D(0, -1));
	n = node(&t, "Reshape", 14, 2, 1);
	attr_i(&t, "allowzero", 1);
	expect_refused(n, in, -EINVAL);					/* 0 and -1 */
	in[1] = shape_only(COPRO_K_I64, 1, D(2));
	expect_refused(node(&t, "Reshape", 14, 2, 1), in, -EINVAL);	/* not constant */
}

static void flatten_should_split_at_axis(void **state)
{
	static const struct { int64_t axis; int64_t d0, d1; } c[] = {
		{ 0, 1, 24 }, { 1, 2, 12 }, { 2, 6, 4 }, { 3, 24, 1 }, { -1, 6, 4 }, { -3, 1, 24 },
	};
	struct copro_kt in[1], out[1];
	struct tn t;
	struct copro_node *n;
	size_t i;

	in[0] = randf(3, D(2, 3, 4), -1, 1);
	for (i = 0; i < 6; i++) {
		n = node(&t, "Flatten", 13, 1, 1);
		attr_i(&t, "axis", c[i].axis);
		run(n, in, out);
		assert_shape(&out[0], 2, D(c[i].d0, c[i].d1));
		assert_memory_equal(out[0].data, in[0].data, 96);
	}
	run(node(&t, "Flatten", 13, 1, 1), in, out);		/* default 1 */
	assert_shape(&out[0], 2, D(2, 12));
	n = node(&t, "Flatten", 13, 1, 1);
	attr_i(&t, "axis", 4);
	expect_refused(n, in, -EINVAL);
	n = node(&t, "Flatten", 13, 1, 1);
	attr_i(&t, "axis", -4);
	expect_refused(n, in, -EINVAL);
}

static void squeeze_and_unsqueeze_should_take_axes_by_opset(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	struct copro_node *n;

	in[0] = randf(4, D(1, 3, 1, 2), -1, 1);
	n = node(&t, "Squeeze", 11, 1, 1);
	attr_is(&t, "axes", 1, D(-2));
	run(n, in, out);
	assert_shape(&out[0], 3, D(1, 3, 2));
	run(node(&t, "Squeeze", 11, 1, 1), in, out);		/* all 1s */
	assert_shape(&out[0], 2, D(3, 2));
	in[1] = i64s(1, D(2), D(2, 0));
	run(node(&t, "Squeeze", 13, 2, 1), in, out);
	assert_shape(&out[0], 2, D(3, 2));
	assert_memory_equal(out[0].data, in[0].data, 24);
	run(node(&t, "Squeeze", 13, 1, 1), in, out);
	assert_shape(&out[0], 2, D(3, 2));

	in[0] = randf(2, D(3, 2), -1, 1);
	in[1] = i64s(1, D(3), D(4, 0, -3));		/* unsorted, negative */
	run(node(&t, "Unsqueeze", 13, 2, 1), in, out);
	assert_shape(&out[0], 5, D(1, 3, 1, 2, 1));
	n = node(&t, "Unsqueeze", 11, 1, 1);
	attr_is(&t, "axes", 1, D(-1));
	run(n, in, out);
	assert_shape(&out[0], 3, D(3, 2, 1));
	in[0] = randf(0, NULL, -1, 1);
	in[1] = i64s(1, D(1), D(0));
	run(node(&t, "Unsqueeze", 13, 2, 1), in, out);
	assert_shape(&out[0], 1, D(1));
}

static void squeeze_and_unsqueeze_should_refuse_bad_axes(void **state)
{
	struct copro_kt in[2];
	struct tn t;
	struct copro_node *n;

	in[0] = shape_only(COPRO_K_F32, 3, D(1, 3, 1));
	in[1] = i64s(1, D(1), D(1));
	expect_refused(node(&t, "Squeeze", 13, 2, 1), in, -EINVAL);	/* dim is 3 */
	in[1] = i64s(1, D(1), D(3));
	expect_refused(node(&t, "Squeeze", 13, 2, 1), in, -EINVAL);	/* out of range */
	in[1] = i64s(1, D(2), D(0, -3));
	expect_refused(node(&t, "Squeeze", 13, 2, 1), in, -EINVAL);	/* twice */
	in[1] = i64s(1, D(2), D(0, 5));
	expect_refused(node(&t, "Unsqueeze", 13, 2, 1), in, -EINVAL);	/* out rank 5 */
	in[1] = i64s(1, D(2), D(1, -4));
	expect_refused(node(&t, "Unsqueeze", 13, 2, 1), in, -EINVAL);	/* twice */
	expect_refused(node(&t, "Unsqueeze", 13, 1, 1), in, -EINVAL);	/* no axes */
	n = node(&t, "Unsqueeze", 13, 2, 1);
	attr_is(&t, "axes", 1, D(0));
	expect_refused(n, in, -EINVAL);				/* attribute at 13 */
	n = node(&t, "Squeeze", 11, 2, 1);
	expect_refused(n, in, -EINVAL);				/* input before 13 */
}

static void transpose_should_permute_every_element_size(void **state)
{
	static const int32_t types[] = { COPRO_K_U8, COPRO_K_F16, COPRO_K_F32, COPRO_K_I64 };
	static const struct { int r; int64_t d[4]; int64_t p[4]; } c[] = {
		{ 2, { 3, 5 }, { 1, 0 } }, { 3, { 2, 3, 4 }, { 2, 0, 1 } },
		{ 3, { 2, 3, 4 }, { 0, 2, 1 } }, { 4, { 2, 1, 3, 2 }, { 3, 1, 0, 2 } },
		{ 1, { 5 }, { 0 } }, { 3, { 2, 0, 3 }, { 2, 1, 0 } },
	};
	size_t ti, ci;

	for (ti = 0; ti < 4; ti++) {
		for (ci = 0; ci < 6; ci++) {
			struct copro_kt in[1], out[1];
			struct tn t;
			struct copro_node *n = node(&t, "Transpose", 13, 1, 1);
			size_t es = copro_op_dsize(types[ti]);
			int64_t k, cy[8], cx[8], ist[8];
			int i;

			attr_is(&t, "perm", c[ci].r, c[ci].p);
			in[0] = kt(types[ti], c[ci].r, c[ci].d);
			for (k = 0; k < numel(&in[0]) * (int64_t)es; k++)
				((uint8_t *)in[0].data)[k] = (uint8_t)rnd();
			run(n, in, out);
			copro_op_strides(&in[0], ist);
			for (k = 0; k < numel(&out[0]); k++) {
				int64_t off = 0;

				unravel(k, out[0].rank, out[0].dims, cy);
				for (i = 0; i < c[ci].r; i++)
					cx[c[ci].p[i]] = cy[i];
				for (i = 0; i < c[ci].r; i++)
					off += cx[i] * ist[i];
				assert_memory_equal((uint8_t *)out[0].data + k * es,
						    (uint8_t *)in[0].data + off * es, es);
			}
			teardown(NULL);
		}
	}
}

static void transpose_should_reverse_by_default_and_refuse_bad_perms(void **state)
{
	struct copro_kt in[1], out[1];
	struct tn t;
	struct copro_node *n;

	in[0] = randf(3, D(2, 3, 4), -1, 1);
	run(node(&t, "Transpose", 13, 1, 1), in, out);
	assert_shape(&out[0], 3, D(4, 3, 2));
	assert_true(F(&out[0])[1] == F(&in[0])[12]);
	in[0] = randf(0, NULL, -1, 1);
	run(node(&t, "Transpose", 13, 1, 1), in, out);
	assert_true(F(&out[0])[0] == F(&in[0])[0]);

	in[0] = shape_only(COPRO_K_F32, 3, D(2, 3, 4));
	n = node(&t, "Transpose", 13, 1, 1);
	attr_is(&t, "perm", 3, D(0, 0, 1));
	expect_refused(n, in, -EINVAL);
	n = node(&t, "Transpose", 13, 1, 1);
	attr_is(&t, "perm", 2, D(1, 0));
	expect_refused(n, in, -EINVAL);
	n = node(&t, "Transpose", 13, 1, 1);
	attr_is(&t, "perm", 3, D(0, 1, 3));
	expect_refused(n, in, -EINVAL);
}

static void concat_should_join_along_negative_and_positive_axes(void **state)
{
	struct copro_kt in[3], out[1];
	struct tn t;
	struct copro_node *n;
	int64_t i, j, k;

	in[0] = randf(3, D(2, 1, 3), -1, 1);
	in[1] = randf(3, D(2, 0, 3), -1, 1);
	in[2] = randf(3, D(2, 2, 3), -1, 1);
	n = node(&t, "Concat", 13, 3, 1);
	attr_i(&t, "axis", -2);
	run(n, in, out);
	assert_shape(&out[0], 3, D(2, 3, 3));
	for (i = 0; i < 2; i++)
		for (j = 0; j < 3; j++)
			for (k = 0; k < 3; k++)
				assert_true(F(&out[0])[(i * 3 + j) * 3 + k] ==
					    (j == 0 ? F(&in[0])[i * 3 + k]
						    : F(&in[2])[(i * 2 + j - 1) * 3 + k]));
	in[0] = i64s(1, D(2), D(1, 2));
	in[1] = i64s(1, D(1), D(3));
	n = node(&t, "Concat", 13, 2, 1);
	attr_i(&t, "axis", 0);
	run(n, in, out);
	assert_memory_equal(out[0].data, D(1, 2, 3), 24);

	in[0] = shape_only(COPRO_K_F32, 2, D(2, 3));
	in[1] = shape_only(COPRO_K_F32, 2, D(3, 3));
	n = node(&t, "Concat", 13, 2, 1);
	attr_i(&t, "axis", 1);
	expect_refused(n, in, -EINVAL);		/* dim 0 differs */
	n = node(&t, "Concat", 13, 2, 1);
	attr_i(&t, "axis", 2);
	expect_refused(n, in, -EINVAL);		/* axis out of range */
	expect_refused(node(&t, "Concat", 13, 2, 1), in, -EINVAL);	/* no axis */
	in[1] = shape_only(COPRO_K_F64, 2, D(2, 3));
	n = node(&t, "Concat", 13, 2, 1);
	attr_i(&t, "axis", 0);
	expect_refused(n, in, -EINVAL);		/* types differ */
	in[0] = shape_only(COPRO_K_F32, 0, NULL);
	in[1] = shape_only(COPRO_K_F32, 0, NULL);
	n = node(&t, "Concat", 13, 2, 1);
	attr_i(&t, "axis", 0);
	expect_refused(n, in, -EINVAL);		/* scalars */
}

static void gather_should_select_along_axis_with_negative_indices(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	struct copro_node *n;
	int64_t a, i, j, k;

	for (a = -2; a < 2; a++) {
		int ax = (int)((a + 2) % 2);

		in[0] = randf(2, D(4, 5), -1, 1);
		in[1] = kt(COPRO_K_I32, 2, D(2, 2));
		memcpy(in[1].data, (int32_t[]){ 0, -1, 3, 1 }, 16);
		n = node(&t, "Gather", 13, 2, 1);
		attr_i(&t, "axis", a);
		run(n, in, out);
		if (ax == 0)
			assert_shape(&out[0], 3, D(2, 2, 5));
		else
			assert_shape(&out[0], 3, D(4, 2, 2));
		for (i = 0; i < 4; i++) {
			int32_t ix = I32(&in[1])[i], r = ix < 0 ? ix + (ax ? 5 : 4) : ix;

			for (j = 0; j < (ax ? 4 : 5); j++) {
				float want = ax ? F(&in[0])[j * 5 + r] : F(&in[0])[r * 5 + j];
				float got = ax ? F(&out[0])[j * 4 + i] : F(&out[0])[i * 5 + j];

				assert_true(got == want);
			}
		}
	}
	/* Scalar index: the axis disappears (embedding of one category). */
	in[0] = i64s(2, D(3, 2), D(1, 2, 3, 4, 5, 6));
	in[1] = i64s(0, NULL, D(2));
	run(node(&t, "Gather", 13, 2, 1), in, out);
	assert_shape(&out[0], 1, D(2));
	assert_memory_equal(out[0].data, D(5, 6), 16);
	/*
	 * Indices known only at run time (a client's): the negative ones in
	 * range count from the end, one past either end fails the run with
	 * -ERANGE, and a failed run writes nothing.
	 */
	in[1] = kt(COPRO_K_I64, 1, D(2));
	in[1].data = NULL;			/* unknown at plan time */
	n = node(&t, "Gather", 13, 2, 1);
	assert_int_equal(infer(n, in, out), 0);
	{
		static const int64_t good[][2] = { { -3, 2 }, { -1, 0 } };
		static const int64_t want[][4] = { { 1, 2, 5, 6 }, { 5, 6, 1, 2 } };
		static const int64_t bad[][2] = { { 0, 3 }, { -4, 0 }, { 1, INT64_MAX },
						  { INT64_MIN, 1 } };
		struct copro_kt o2[1];

		o2[0] = kt(COPRO_K_I64, 2, D(2, 2));
		for (k = 0; k < 2; k++) {
			in[1] = i64s(1, D(2), good[k]);
			memset(o2[0].data, 0xff, 32);
			assert_int_equal(n->op->run(n, in, o2, NULL), 0);
			assert_memory_equal(o2[0].data, want[k], 32);
		}
		for (k = 0; k < 4; k++) {
			in[1] = i64s(1, D(2), bad[k]);
			memset(o2[0].data, 0xff, 32);
			assert_int_equal(n->op->run(n, in, o2, NULL), -ERANGE);
			for (i = 0; i < 4; i++)
				assert_true(((int64_t *)o2[0].data)[i] == -1);
		}
		/* int32 indices too */
		in[1] = kt(COPRO_K_I32, 1, D(2));
		memcpy(in[1].data, (int32_t[]){ -2, 3 }, 8);
		assert_int_equal(n->op->run(n, in, o2, NULL), -ERANGE);
		memcpy(in[1].data, (int32_t[]){ -2, 2 }, 8);
		assert_int_equal(n->op->run(n, in, o2, NULL), 0);
		assert_memory_equal(o2[0].data, D(3, 4, 5, 6), 32);
	}
	if (n->op->release)
		n->op->release(n);
	/* A constant index out of range is refused at plan time. */
	in[1] = i64s(1, D(1), D(3));
	expect_refused(node(&t, "Gather", 13, 2, 1), in, -EINVAL);
	in[1] = i64s(1, D(1), D(-4));
	expect_refused(node(&t, "Gather", 13, 2, 1), in, -EINVAL);
	in[1] = shape_only(COPRO_K_F32, 1, D(1));
	expect_refused(node(&t, "Gather", 13, 2, 1), in, -EINVAL);	/* float indices */
	in[1] = shape_only(COPRO_K_I64, 1, D(1));
	n = node(&t, "Gather", 13, 2, 1);
	attr_i(&t, "axis", 2);
	expect_refused(n, in, -EINVAL);
}

static void shape_should_report_dims_and_slice_from_opset_15(void **state)
{
	struct copro_kt in[1], out[1];
	struct tn t;
	struct copro_node *n;

	in[0] = shape_only(COPRO_K_F32, 3, D(2, 3, 4));
	run(node(&t, "Shape", 13, 1, 1), in, out);
	assert_shape(&out[0], 1, D(3));
	assert_memory_equal(out[0].data, D(2, 3, 4), 24);
	n = node(&t, "Shape", 15, 1, 1);
	attr_i(&t, "start", -2);
	run(n, in, out);
	assert_memory_equal(out[0].data, D(3, 4), 16);
	n = node(&t, "Shape", 15, 1, 1);
	attr_i(&t, "start", 1);
	attr_i(&t, "end", -1);
	run(n, in, out);
	assert_shape(&out[0], 1, D(1));
	assert_memory_equal(out[0].data, D(3), 8);
	n = node(&t, "Shape", 15, 1, 1);
	attr_i(&t, "start", 10);
	attr_i(&t, "end", -10);
	run(n, in, out);
	assert_shape(&out[0], 1, D(0));
	in[0] = shape_only(COPRO_K_F32, 0, NULL);
	run(node(&t, "Shape", 15, 1, 1), in, out);
	assert_shape(&out[0], 1, D(0));
}

static void constant_should_emit_each_value_attribute(void **state)
{
	struct copro_kt out[1], val = f32s(2, D(2, 2), (float[]){ 1, 2, 3, 4 });
	struct tn t;
	struct copro_node *n;

	n = node(&t, "Constant", 13, 0, 1);
	attr(&t, "value", COPRO_ATTR_TENSOR)->t = &val;
	run(n, NULL, out);
	assert_shape(&out[0], 2, D(2, 2));
	assert_memory_equal(out[0].data, val.data, 16);
	assert_true(out[0].data != val.data);
	n = node(&t, "Constant", 13, 0, 1);
	attr_f(&t, "value_float", 2.5f);
	run(n, NULL, out);
	assert_int_equal(out[0].rank, 0);
	assert_true(F(&out[0])[0] == 2.5f);
	n = node(&t, "Constant", 13, 0, 1);
	attr_fs(&t, "value_floats", 3, (float[]){ 1, 2, 3 });
	run(n, NULL, out);
	assert_shape(&out[0], 1, D(3));
	n = node(&t, "Constant", 13, 0, 1);
	attr_i(&t, "value_int", -7);
	run(n, NULL, out);
	assert_int_equal(out[0].dtype, COPRO_K_I64);
	assert_int_equal(I64(&out[0])[0], -7);
	n = node(&t, "Constant", 13, 0, 1);
	attr_is(&t, "value_ints", 2, D(4, 5));
	run(n, NULL, out);
	assert_memory_equal(out[0].data, D(4, 5), 16);

	n = node(&t, "Constant", 13, 0, 1);
	attr(&t, "value_string", COPRO_ATTR_STRING)->s = (char *)"x";
	expect_refused(n, NULL, -ENOTSUP);
	n = node(&t, "Constant", 13, 0, 1);
	attr(&t, "sparse_value", COPRO_ATTR_TENSOR);
	expect_refused(n, NULL, -ENOTSUP);
	n = node(&t, "Constant", 13, 0, 1);
	expect_refused(n, NULL, -EINVAL);		/* no value */
	n = node(&t, "Constant", 13, 0, 1);
	attr_i(&t, "value_int", 1);
	attr_f(&t, "value_float", 1);
	expect_refused(n, NULL, -EINVAL);		/* two values */
}

static void identity_and_dropout_should_pass_data_through(void **state)
{
	struct copro_kt in[3], out[2];
	struct tn t;
	struct copro_node *n;
	float ratio = 0.5f, zero = 0;
	uint8_t yes = 1;

	in[0] = randf(2, D(2, 3), -1, 1);
	run(node(&t, "Identity", 14, 1, 1), in, out);
	assert_memory_equal(out[0].data, in[0].data, 24);
	run(node(&t, "Dropout", 13, 1, 2), in, out);
	assert_memory_equal(out[0].data, in[0].data, 24);
	assert_int_equal(out[1].dtype, COPRO_K_BOOL);
	assert_memory_equal(out[1].data, ((uint8_t[]){ 1, 1, 1, 1, 1, 1 }), 6);
	/* Opset 7..9: the mask has the input's type. */
	n = node(&t, "Dropout", 9, 1, 2);
	attr_f(&t, "ratio", 0.3f);
	run(n, in, out);
	assert_f32(&out[1], (double[]){ 1, 1, 1, 1, 1, 1 }, 0, 0);
	/* training_mode false: inference; true: refused unless ratio is 0. */
	in[1] = f32s(0, NULL, &ratio);
	in[2] = kt(COPRO_K_BOOL, 0, NULL);
	run(node(&t, "Dropout", 13, 3, 1), in, out);
	assert_memory_equal(out[0].data, in[0].data, 24);
	*(uint8_t *)in[2].data = yes;
	expect_refused(node(&t, "Dropout", 13, 3, 1), in, -ENOTSUP);
	in[1] = f32s(0, NULL, &zero);
	run(node(&t, "Dropout", 13, 3, 1), in, out);
	assert_memory_equal(out[0].data, in[0].data, 24);
	in[2].data = NULL;
	expect_refused(node(&t, "Dropout", 13, 3, 1), in, -EINVAL);
}

/* ---------------------------------------------------------------------- */
/* Cast                                                                   */
/* ---------------------------------------------------------------------- */

static void cast_should_convert_between_all_numeric_types(void **state)
{
	static const int32_t types[] = {
		COPRO_K_F32, COPRO_K_F64, COPRO_K_F16, COPRO_K_BF16, COPRO_K_I8, COPRO_K_U8,
		COPRO_K_I16, COPRO_K_U16, COPRO_K_I32, COPRO_K_I64, COPRO_K_U32, COPRO_K_U64,
		COPRO_K_BOOL,
	};
	/* Values every type holds exactly: they must survive any round trip. */
	static const double vals[] = { 0, 1, 2, 3, 100, 127, 0, 1 };
	size_t a, b, i;

	for (a = 0; a < 13; a++) {
		for (b = 0; b < 13; b++) {
			struct copro_kt in[1], out[1], back[1];
			struct tn t;
			struct copro_node *n = node(&t, "Cast", 13, 1, 1);
			struct copro_kt src = kt(COPRO_K_F64, 1, D(8));

			memcpy(src.data, vals, sizeof(vals));
			if (types[a] == COPRO_K_BOOL || types[b] == COPRO_K_BOOL)
				for (i = 0; i < 8; i++)
					F64(&src)[i] = vals[i] != 0;
			in[0] = kt(types[a], 1, D(8));
			copro_op_cast(src.data, COPRO_K_F64, in[0].data, types[a], 8);
			attr_i(&t, "to", types[b]);
			run(n, in, out);
			assert_int_equal(out[0].dtype, types[b]);
			back[0] = kt(COPRO_K_F64, 1, D(8));
			copro_op_cast(out[0].data, types[b], back[0].data, COPRO_K_F64, 8);
			for (i = 0; i < 8; i++)
				if (F64(&back[0])[i] != F64(&src)[i])
					fail_msg("%s -> %s: [%zu] %g != %g",
						 copro_op_dname(types[a]), copro_op_dname(types[b]),
						 i, F64(&back[0])[i], F64(&src)[i]);
			teardown(NULL);
		}
	}
}

static void cast_should_round_saturate_and_keep_nan(void **state)
{
	float f[] = { 1.5f, -2.7f, 300, -300, NAN, INFINITY, 1e-8f, 65520, 65519 };
	struct copro_kt in[1], out[1];
	struct tn t;
	struct copro_node *n;
	uint16_t *h;

	in[0] = f32s(1, D(9), f);
	n = node(&t, "Cast", 13, 1, 1);
	attr_i(&t, "to", COPRO_K_I8);
	run(n, in, out);
	/* Truncation toward zero, saturation, NaN as 0. */
	assert_memory_equal(out[0].data, ((int8_t[]){ 1, -2, 127, -128, 0, 127, 0, 127, 127 }),
			    9);
	n = node(&t, "Cast", 13, 1, 1);
	attr_i(&t, "to", COPRO_K_BOOL);
	run(n, in, out);
	assert_memory_equal(out[0].data, ((uint8_t[]){ 1, 1, 1, 1, 1, 1, 1, 1, 1 }), 9);
	n = node(&t, "Cast", 13, 1, 1);
	attr_i(&t, "to", COPRO_K_F16);
	run(n, in, out);
	h = out[0].data;
	assert_int_equal(h[0], 0x3e00);			/* 1.5 */
	assert_int_equal(h[4] & 0x7c00, 0x7c00);		/* NaN */
	assert_true((h[4] & 0x3ff) != 0);
	assert_int_equal(h[5], 0x7c00);			/* inf */
	assert_int_equal(h[6], 0x0000);			/* 1e-8 underflows to 0 */
	assert_int_equal(h[7], 0x7c00);			/* 65520 rounds to inf */
	assert_int_equal(h[8], 0x7bff);			/* 65519 to 65504 */
	/* Round half to even, subnormals, and the round trip. */
	assert_int_equal(copro_f32_to_f16(1.0f + 1.0f / 2048), 0x3c00);
	assert_int_equal(copro_f32_to_f16(1.0f + 3.0f / 2048), 0x3c02);
	assert_int_equal(copro_f32_to_f16(5.9604645e-8f), 0x0001);
	assert_int_equal(copro_f32_to_f16(-6.1035156e-5f), 0x8400);
	assert_true(copro_f16_to_f32(0x0001) == 5.9604645e-8f);
	assert_true(copro_f16_to_f32(0xfbff) == -65504.0f);
	/* bfloat16 truncates (ONNX 1.12's reference) and keeps NaN. */
	assert_int_equal(copro_f32_to_bf16(0.48033667f), 0x3ef5);
	assert_true(isnan(copro_bf16_to_f32(copro_f32_to_bf16(NAN))));
	assert_true(copro_bf16_to_f32(0x3f80) == 1.0f);
}

static void cast_should_refuse_strings_and_missing_to(void **state)
{
	struct copro_kt in[2];
	struct tn t;
	struct copro_node *n;

	in[0] = shape_only(COPRO_K_F32, 1, D(2));
	n = node(&t, "Cast", 13, 1, 1);
	attr_i(&t, "to", COPRO_K_STRING);
	expect_refused(n, in, -ENOTSUP);
	assert_non_null(strstr(last_err, "string"));
	expect_refused(node(&t, "Cast", 13, 1, 1), in, -EINVAL);
	in[0] = shape_only(COPRO_K_STRING, 1, D(2));
	n = node(&t, "Cast", 13, 1, 1);
	attr_i(&t, "to", COPRO_K_F32);
	expect_refused(n, in, -ENOTSUP);
	/* CastLike takes the type of its second input. */
	in[0] = shape_only(COPRO_K_F32, 1, D(2));
	in[1] = shape_only(COPRO_K_I64, 0, NULL);
	{
		struct copro_kt out[1];

		assert_int_equal(infer(node(&t, "CastLike", 15, 2, 1), in, out), 0);
		assert_int_equal(out[0].dtype, COPRO_K_I64);
	}
}

/* ---------------------------------------------------------------------- */
/* BatchNormalization, LayerNormalization                                 */
/* ---------------------------------------------------------------------- */

static void batchnorm_should_normalize_per_channel(void **state)
{
	static const struct { int r; int64_t d[4]; } shapes[] = {
		{ 4, { 2, 3, 2, 2 } }, { 2, { 4, 3 } }, { 3, { 1, 3, 5 } }, { 3, { 0, 3, 2 } },
	};
	size_t s;

	for (s = 0; s < 4; s++) {
		struct copro_kt in[5], out[1];
		struct tn t;
		struct copro_node *n = node(&t, "BatchNormalization", 15, 5, 1);
		int64_t N = shapes[s].d[0], C = 3, S, i, c, k;
		double *want;

		attr_f(&t, "epsilon", 1e-3f);
		in[0] = randf(shapes[s].r, shapes[s].d, -3, 3);
		in[1] = randf(1, D(3), 0.5f, 2);
		in[2] = randf(1, D(3), -1, 1);
		in[3] = randf(1, D(3), -1, 1);
		in[4] = randf(1, D(3), 0.1f, 2);
		run(n, in, out);
		S = N ? numel(&in[0]) / (N * C) : 0;
		want = dbuf(numel(&in[0]));
		for (i = 0; i < N; i++)
			for (c = 0; c < C; c++)
				for (k = 0; k < S; k++) {
					int64_t o = (i * C + c) * S + k;

					want[o] = (F(&in[0])[o] - F(&in[3])[c]) /
							  sqrt(F(&in[4])[c] + 1e-3) * F(&in[1])[c] +
						  F(&in[2])[c];
				}
		assert_f32(&out[0], want, 1e-5, 1e-6);
		teardown(NULL);
	}
}

static void batchnorm_should_refuse_training_and_bad_shapes(void **state)
{
	struct copro_kt in[5];
	struct tn t;
	struct copro_node *n;
	int i;

	in[0] = shape_only(COPRO_K_F32, 3, D(2, 3, 4));
	for (i = 1; i < 5; i++)
		in[i] = shape_only(COPRO_K_F32, 1, D(3));
	n = node(&t, "BatchNormalization", 15, 5, 1);
	attr_i(&t, "training_mode", 1);
	expect_refused(n, in, -ENOTSUP);
	expect_refused(node(&t, "BatchNormalization", 15, 5, 3), in, -ENOTSUP);
	in[3] = shape_only(COPRO_K_F32, 1, D(4));
	expect_refused(node(&t, "BatchNormalization", 15, 5, 1), in, -EINVAL);
	in[3] = shape_only(COPRO_K_F32, 1, D(3));
	in[0] = shape_only(COPRO_K_F32, 1, D(3));
	expect_refused(node(&t, "BatchNormalization", 15, 5, 1), in, -EINVAL);
	in[0] = shape_only(COPRO_K_F64, 3, D(2, 3, 4));
	expect_refused(node(&t, "BatchNormalization", 15, 5, 1), in, -ENOTSUP);
}

static void layernorm_should_normalize_trailing_dims(void **state)
{
	static const int64_t axes[] = { -1, -2, 0, 1, 2 };
	size_t a;
	int wb;

	for (a = 0; a < 5; a++) {
		for (wb = 0; wb < 2; wb++) {
			struct copro_kt in[3], out[3];
			struct tn t;
			struct copro_node *n = node(&t, "LayerNormalization", 17, wb ? 3 : 2, 3);
			int ax = (int)((axes[a] + 3) % 3);
			int64_t rows = 1, Dn = 1, r, j, i;
			double *want, *wm, *wi;

			attr_i(&t, "axis", axes[a]);
			attr_f(&t, "epsilon", 1e-4f);
			in[0] = randf(3, D(2, 3, 4), -3, 3);
			for (i = 0; i < 3; i++) {
				if (i < ax)
					rows *= in[0].dims[i];
				else
					Dn *= in[0].dims[i];
			}
			in[1] = randf(3 - ax, in[0].dims + ax, 0.5f, 2);
			if (wb)
				in[2] = randf(3 - ax, in[0].dims + ax, -1, 1);
			run(n, in, out);
			assert_shape(&out[0], 3, D(2, 3, 4));
			assert_int_equal(out[1].rank, 3);
			want = dbuf(24);
			wm = dbuf(rows);
			wi = dbuf(rows);
			for (r = 0; r < rows; r++) {
				double m = 0, v = 0;

				for (j = 0; j < Dn; j++)
					m += F(&in[0])[r * Dn + j];
				m /= (double)Dn;
				for (j = 0; j < Dn; j++)
					v += pow(F(&in[0])[r * Dn + j] - m, 2);
				v /= (double)Dn;
				wm[r] = m;
				wi[r] = 1 / sqrt(v + 1e-4);
				for (j = 0; j < Dn; j++)
					want[r * Dn + j] = (F(&in[0])[r * Dn + j] - m) * wi[r] *
								   F(&in[1])[j] +
							   (wb ? F(&in[2])[j] : 0);
			}
			assert_f32(&out[0], want, 1e-5, 1e-5);
			assert_f32(&out[1], wm, 1e-5, 1e-6);
			assert_f32(&out[2], wi, 1e-5, 1e-6);
			teardown(NULL);
		}
	}
}

static void layernorm_should_refuse_bad_scale_and_axis(void **state)
{
	struct copro_kt in[3];
	struct tn t;
	struct copro_node *n;

	in[0] = shape_only(COPRO_K_F32, 2, D(3, 4));
	in[1] = shape_only(COPRO_K_F32, 1, D(3));
	expect_refused(node(&t, "LayerNormalization", 17, 2, 1), in, -EINVAL);
	in[1] = shape_only(COPRO_K_F32, 1, D(4));
	n = node(&t, "LayerNormalization", 17, 2, 1);
	attr_i(&t, "axis", 2);
	expect_refused(n, in, -EINVAL);
	n = node(&t, "LayerNormalization", 17, 2, 1);
	attr_i(&t, "stash_type", COPRO_K_F64);
	expect_refused(n, in, -ENOTSUP);
	in[0] = shape_only(COPRO_K_F64, 2, D(3, 4));
	in[1] = shape_only(COPRO_K_F64, 1, D(4));
	expect_refused(node(&t, "LayerNormalization", 17, 2, 1), in, -ENOTSUP);
}

/* ---------------------------------------------------------------------- */
/* Reductions                                                             */
/* ---------------------------------------------------------------------- */

static void reduce_should_match_reference_for_axes_and_keepdims(void **state)
{
	static const char *const ops[] = { "ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin" };
	static const struct { int n; int64_t ax[3]; unsigned mask; } axes[] = {
		{ -1, { 0 }, 7 }, { 1, { 1 }, 2 }, { 1, { -1 }, 4 }, { 2, { 0, 2 }, 5 },
		{ 2, { -1, -3 }, 5 }, { 3, { 2, 0, 1 }, 7 }, { 0, { 0 }, 7 },
	};
	size_t o, a;
	int keep;

	for (o = 0; o < 4; o++) {
		for (a = 0; a < 7; a++) {
			for (keep = 0; keep < 2; keep++) {
				struct copro_kt in[2], out[1];
				struct tn t;
				struct copro_node *n = node(&t, ops[o], 13, 1, 1);
				int64_t c[3], k, oi, odims[3], ostride;
				double *acc = dbuf(24), *cnt = dbuf(24);
				int i, r;

				if (o == 1 && axes[a].n >= 0) {
					/* ReduceSum 13: axes is an input. */
					t.n.n_in = 2;
					t.ins[1] = 1;
					in[1] = i64s(1, D(axes[a].n), axes[a].ax);
				} else if (axes[a].n >= 0) {
					attr_is(&t, "axes", axes[a].n, axes[a].ax);
				}
				attr_i(&t, "keepdims", keep);
				in[0] = randf(3, D(2, 3, 4), -3, 3);
				run(n, in, out);
				for (i = 0, r = 0; i < 3; i++) {
					odims[i] = (axes[a].mask >> i) & 1 ? 1 : in[0].dims[i];
					if (!((axes[a].mask >> i) & 1) || keep)
						assert_int_equal(out[0].dims[r++], odims[i]);
				}
				assert_int_equal(out[0].rank, r);
				for (k = 0; k < 24; k++) {
					acc[k] = o == 2 ? -INFINITY : o == 3 ? INFINITY : 0;
					cnt[k] = 0;
				}
				for (k = 0; k < 24; k++) {
					double v = F(&in[0])[k];

					unravel(k, 3, in[0].dims, c);
					oi = 0;
					ostride = 1;
					for (i = 2; i >= 0; i--) {
						int red = (axes[a].mask >> i) & 1;

						oi += (red ? 0 : c[i]) * ostride;
						ostride *= odims[i];
					}
					acc[oi] = o == 2 ? fmax(acc[oi], v) :
						  o == 3 ? fmin(acc[oi], v) : acc[oi] + v;
					cnt[oi]++;
				}
				if (o == 0)
					for (k = 0; k < numel(&out[0]); k++)
						acc[k] /= cnt[k];
				assert_f32(&out[0], acc, 1e-5, 1e-6);
				teardown(NULL);
			}
		}
	}
}

static void reduce_should_handle_noop_scalars_and_bad_axes(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	struct copro_node *n;

	in[0] = randf(2, D(2, 3), -1, 1);
	in[1] = kt(COPRO_K_I64, 1, D(0));
	n = node(&t, "ReduceSum", 13, 2, 1);
	attr_i(&t, "noop_with_empty_axes", 1);
	run(n, in, out);
	assert_shape(&out[0], 2, D(2, 3));
	assert_memory_equal(out[0].data, in[0].data, 24);
	in[0] = f32s(0, NULL, (float[]){ 4 });
	run(node(&t, "ReduceMean", 13, 1, 1), in, out);
	assert_int_equal(out[0].rank, 0);
	assert_true(F(&out[0])[0] == 4);
	/* An empty dim: the sum is 0, the mean NaN. */
	in[0] = kt(COPRO_K_F32, 2, D(2, 0));
	n = node(&t, "ReduceSum", 11, 1, 1);
	attr_is(&t, "axes", 1, D(1));
	run(n, in, out);
	assert_f32(&out[0], (double[]){ 0, 0 }, 0, 0);
	n = node(&t, "ReduceMean", 11, 1, 1);
	attr_is(&t, "axes", 1, D(1));
	run(n, in, out);
	assert_true(isnan(F(&out[0])[0]));
	in[0] = kt(COPRO_K_I64, 2, D(2, 2));
	memcpy(in[0].data, D(1, 2, 3, 5), 32);
	run(node(&t, "ReduceSum", 11, 1, 1), in, out);
	assert_int_equal(I64(&out[0])[0], 11);

	in[0] = shape_only(COPRO_K_F32, 2, D(2, 3));
	n = node(&t, "ReduceMean", 13, 1, 1);
	attr_is(&t, "axes", 1, D(2));
	expect_refused(n, in, -EINVAL);
	n = node(&t, "ReduceMean", 13, 1, 1);
	attr_is(&t, "axes", 2, D(1, -1));
	expect_refused(n, in, -EINVAL);
	n = node(&t, "ReduceSum", 13, 1, 1);
	attr_is(&t, "axes", 1, D(1));
	expect_refused(n, in, -EINVAL);			/* attribute at 13 */
	in[0] = shape_only(COPRO_K_U8, 2, D(2, 3));
	expect_refused(node(&t, "ReduceMean", 13, 1, 1), in, -ENOTSUP);
	in[0] = shape_only(COPRO_K_F32, 2, D(2, 0));
	expect_refused(node(&t, "ReduceMax", 13, 1, 1), in, -EINVAL);
}

static void argmax_should_pick_first_or_last_extreme(void **state)
{
	struct copro_kt in[1], out[1];
	struct tn t;
	struct copro_node *n;
	int64_t a, i, j;

	in[0] = f32s(2, D(2, 3), (float[]){ 2, 5, 5, 7, 1, 7 });
	run(node(&t, "ArgMax", 13, 1, 1), in, out);
	assert_shape(&out[0], 2, D(1, 3));
	assert_memory_equal(out[0].data, D(1, 0, 1), 24);
	n = node(&t, "ArgMax", 13, 1, 1);
	attr_i(&t, "axis", -1);
	attr_i(&t, "keepdims", 0);
	run(n, in, out);
	assert_shape(&out[0], 1, D(2));
	assert_memory_equal(out[0].data, D(1, 0), 16);
	n = node(&t, "ArgMax", 13, 1, 1);
	attr_i(&t, "axis", 1);
	attr_i(&t, "select_last_index", 1);
	run(n, in, out);
	assert_memory_equal(out[0].data, D(2, 2), 16);
	n = node(&t, "ArgMin", 13, 1, 1);
	attr_i(&t, "axis", 1);
	run(n, in, out);
	assert_memory_equal(out[0].data, D(0, 1), 16);
	/* Random, against a reference, over a middle axis. */
	for (a = 0; a < 3; a++) {
		int64_t outer = a == 0 ? 1 : a == 1 ? 2 : 6, len = a == 0 ? 2 : a == 1 ? 3 : 4;
		int64_t inner = 24 / (outer * len);

		in[0] = kt(COPRO_K_I32, 3, D(2, 3, 4));
		for (i = 0; i < 24; i++)
			I32(&in[0])[i] = (int32_t)(rnd() % 7);
		n = node(&t, "ArgMax", 13, 1, 1);
		attr_i(&t, "axis", a);
		run(n, in, out);
		for (i = 0; i < outer; i++) {
			for (j = 0; j < inner; j++) {
				int64_t k, best = 0;

				for (k = 1; k < len; k++)
					if (I32(&in[0])[(i * len + k) * inner + j] >
					    I32(&in[0])[(i * len + best) * inner + j])
						best = k;
				assert_int_equal(I64(&out[0])[i * inner + j], best);
			}
		}
	}
	in[0] = shape_only(COPRO_K_F32, 2, D(2, 0));
	n = node(&t, "ArgMax", 13, 1, 1);
	attr_i(&t, "axis", 1);
	expect_refused(n, in, -EINVAL);
	n = node(&t, "ArgMax", 13, 1, 1);
	attr_i(&t, "axis", -3);
	expect_refused(n, in, -EINVAL);
	in[0] = shape_only(COPRO_K_BOOL, 1, D(2));
	expect_refused(node(&t, "ArgMax", 13, 1, 1), in, -ENOTSUP);
}

/* ---------------------------------------------------------------------- */
/* QuantizeLinear, DequantizeLinear                                       */
/* ---------------------------------------------------------------------- */

static void quantize_should_round_half_to_even_and_saturate(void **state)
{
	struct copro_kt in[3], out[1];
	struct tn t;
	float s = 2;

	in[0] = f32s(1, D(7), (float[]){ 0, 1, 3, 5, -3, 1000, -1000 });
	in[1] = f32s(0, NULL, &s);
	run(node(&t, "QuantizeLinear", 13, 2, 1), in, out);
	assert_int_equal(out[0].dtype, COPRO_K_U8);
	/* 0.5 -> 0, 1.5 -> 2, 2.5 -> 2, -1.5 -> -2 -> saturates at 0 */
	assert_memory_equal(out[0].data, ((uint8_t[]){ 0, 0, 2, 2, 0, 255, 0 }), 7);
	in[2] = kt(COPRO_K_I8, 0, NULL);
	*(int8_t *)in[2].data = -10;
	run(node(&t, "QuantizeLinear", 13, 3, 1), in, out);
	assert_int_equal(out[0].dtype, COPRO_K_I8);
	assert_memory_equal(out[0].data, ((int8_t[]){ -10, -10, -8, -8, -12, 127, -128 }), 7);
}

static void quantize_and_dequantize_should_work_per_axis_from_opset_13(void **state)
{
	struct copro_kt in[3], out[1], q[1];
	struct tn t;
	struct copro_node *n;
	int64_t i, j, k;

	in[0] = randf(3, D(2, 3, 2), -5, 5);
	in[1] = f32s(1, D(3), (float[]){ 0.05f, 0.1f, 0.2f });
	in[2] = kt(COPRO_K_U8, 1, D(3));
	memcpy(in[2].data, (uint8_t[]){ 100, 128, 10 }, 3);
	run(node(&t, "QuantizeLinear", 13, 3, 1), in, out);
	q[0] = out[0];
	for (i = 0; i < 2; i++)
		for (j = 0; j < 3; j++)
			for (k = 0; k < 2; k++) {
				int64_t o = (i * 3 + j) * 2 + k;
				double v = rint(F(&in[0])[o] / F(&in[1])[j]) +
					   ((uint8_t *)in[2].data)[j];

				v = v < 0 ? 0 : v > 255 ? 255 : v;
				assert_int_equal(((uint8_t *)q[0].data)[o], (int)v);
			}
	in[0] = q[0];
	run(node(&t, "DequantizeLinear", 13, 3, 1), in, out);
	for (i = 0; i < 12; i++) {
		int64_t c = (i / 2) % 3;
		double want = (((uint8_t *)q[0].data)[i] - ((uint8_t *)in[2].data)[c]) *
			      (double)F(&in[1])[c];

		assert_close(F(&out[0])[i], want, 1e-6, 1e-7, "dq", i);
	}
	/* axis 0 on [2,3]: one scale per row. */
	in[0] = kt(COPRO_K_I8, 2, D(2, 3));
	memcpy(in[0].data, (int8_t[]){ -128, 0, 127, 1, 2, 3 }, 6);
	in[1] = f32s(1, D(2), (float[]){ 1, 0.5f });
	n = node(&t, "DequantizeLinear", 13, 2, 1);
	attr_i(&t, "axis", 0);
	run(n, in, out);
	assert_f32(&out[0], (double[]){ -128, 0, 127, 0.5, 1, 1.5 }, 0, 0);

	/* Per-axis before 13, a scale of the wrong length, mixed types. */
	in[0] = shape_only(COPRO_K_F32, 2, D(2, 3));
	in[1] = shape_only(COPRO_K_F32, 1, D(3));
	expect_refused(node(&t, "QuantizeLinear", 10, 2, 1), in, -EINVAL);
	in[1] = shape_only(COPRO_K_F32, 1, D(4));
	expect_refused(node(&t, "QuantizeLinear", 13, 2, 1), in, -EINVAL);
	in[0] = shape_only(COPRO_K_U8, 2, D(2, 3));
	in[1] = shape_only(COPRO_K_F32, 0, NULL);
	in[2] = shape_only(COPRO_K_I8, 0, NULL);
	expect_refused(node(&t, "DequantizeLinear", 13, 3, 1), in, -EINVAL);
	in[0] = shape_only(COPRO_K_F64, 2, D(2, 3));
	expect_refused(node(&t, "QuantizeLinear", 13, 2, 1), in, -ENOTSUP);
}

static void round_should_send_halves_to_even(void **state)
{
	struct copro_kt in[1], out[1];
	struct tn t;

	in[0] = f32s(1, D(6), (float[]){ 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, 2.4f });
	run(node(&t, "Round", 13, 1, 1), in, out);
	assert_f32(&out[0], (double[]){ 0, 2, 2, -0.0, -2, 2 }, 0, 0);
}

static void prelu_should_broadcast_the_slope_one_way(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	int64_t i;

	in[0] = randf(2, D(2, 3), -2, 2);
	in[1] = randf(1, D(3), 0, 1);
	run(node(&t, "PRelu", 16, 2, 1), in, out);
	for (i = 0; i < 6; i++) {
		float x = F(&in[0])[i];

		assert_true(F(&out[0])[i] == (x < 0 ? x * F(&in[1])[i % 3] : x));
	}
	in[1] = randf(2, D(2, 1), 0, 1);
	run(node(&t, "PRelu", 16, 2, 1), in, out);
	for (i = 0; i < 6; i++) {
		float x = F(&in[0])[i];

		assert_true(F(&out[0])[i] == (x < 0 ? x * F(&in[1])[i / 3] : x));
	}
	in[1] = shape_only(COPRO_K_F32, 1, D(4));
	expect_refused(node(&t, "PRelu", 16, 2, 1), in, -EINVAL);
	in[1] = shape_only(COPRO_K_F32, 3, D(1, 2, 3));	/* would grow X */
	expect_refused(node(&t, "PRelu", 16, 2, 1), in, -EINVAL);
}

static void comparisons_should_give_bools_with_broadcasting(void **state)
{
	static const char *const ops[] = { "Equal", "Less", "Greater", "LessOrEqual",
					   "GreaterOrEqual" };
	size_t o;

	for (o = 0; o < 5; o++) {
		struct copro_kt in[2], out[1];
		struct tn t;
		int64_t k, c[3];

		in[0] = kt(COPRO_K_I32, 2, D(3, 4));
		in[1] = kt(COPRO_K_I32, 1, D(4));
		for (k = 0; k < 12; k++)
			I32(&in[0])[k] = (int32_t)(rnd() % 3);
		for (k = 0; k < 4; k++)
			I32(&in[1])[k] = (int32_t)(rnd() % 3);
		run(node(&t, ops[o], 16, 2, 1), in, out);
		assert_int_equal(out[0].dtype, COPRO_K_BOOL);
		for (k = 0; k < 12; k++) {
			int32_t x = I32(&in[0])[k], y;
			int want;

			unravel(k, 2, out[0].dims, c);
			y = I32(&in[1])[c[1]];
			want = o == 0 ? x == y : o == 1 ? x < y : o == 2 ? x > y :
			       o == 3 ? x <= y : x >= y;
			assert_int_equal(((uint8_t *)out[0].data)[k], want);
		}
		teardown(NULL);
	}
}

static void logic_ops_should_combine_bools(void **state)
{
	static const uint8_t a[] = { 0, 0, 1, 1 }, b[] = { 0, 1, 0, 1 };
	struct copro_kt in[2], out[1];
	struct tn t;

	in[0] = kt(COPRO_K_BOOL, 1, D(4));
	in[1] = kt(COPRO_K_BOOL, 1, D(4));
	memcpy(in[0].data, a, 4);
	memcpy(in[1].data, b, 4);
	run(node(&t, "And", 7, 2, 1), in, out);
	assert_memory_equal(out[0].data, ((uint8_t[]){ 0, 0, 0, 1 }), 4);
	run(node(&t, "Or", 7, 2, 1), in, out);
	assert_memory_equal(out[0].data, ((uint8_t[]){ 0, 1, 1, 1 }), 4);
	run(node(&t, "Xor", 7, 2, 1), in, out);
	assert_memory_equal(out[0].data, ((uint8_t[]){ 0, 1, 1, 0 }), 4);
	run(node(&t, "Equal", 13, 2, 1), in, out);
	assert_memory_equal(out[0].data, ((uint8_t[]){ 1, 0, 0, 1 }), 4);
	run(node(&t, "Not", 1, 1, 1), in, out);
	assert_memory_equal(out[0].data, ((uint8_t[]){ 1, 1, 0, 0 }), 4);

	expect_refused(node(&t, "Less", 13, 2, 1), in, -ENOTSUP);	/* bool */
	in[1] = shape_only(COPRO_K_I32, 1, D(4));
	expect_refused(node(&t, "Equal", 13, 2, 1), in, -EINVAL);	/* types differ */
	in[0] = shape_only(COPRO_K_F32, 1, D(4));
	in[1] = shape_only(COPRO_K_F32, 1, D(4));
	expect_refused(node(&t, "And", 7, 2, 1), in, -ENOTSUP);
	expect_refused(node(&t, "Not", 1, 1, 1), in, -EINVAL);
}

static void where_should_pick_with_three_way_broadcasting(void **state)
{
	struct copro_kt in[3], out[1];
	struct tn t;
	int64_t k, c[3];

	in[0] = kt(COPRO_K_BOOL, 3, D(2, 1, 4));
	in[1] = randf(2, D(3, 1), -1, 1);
	in[2] = randf(0, NULL, -1, 1);
	for (k = 0; k < 8; k++)
		((uint8_t *)in[0].data)[k] = rnd() & 1;
	run(node(&t, "Where", 16, 3, 1), in, out);
	assert_shape(&out[0], 3, D(2, 3, 4));
	for (k = 0; k < 24; k++) {
		unravel(k, 3, out[0].dims, c);
		assert_true(F(&out[0])[k] == (((uint8_t *)in[0].data)[c[0] * 4 + c[2]]
						      ? F(&in[1])[c[1]] : F(&in[2])[0]));
	}
	in[0] = shape_only(COPRO_K_I32, 1, D(4));
	expect_refused(node(&t, "Where", 16, 3, 1), in, -EINVAL);	/* not bool */
	in[0] = shape_only(COPRO_K_BOOL, 1, D(5));
	in[1] = shape_only(COPRO_K_F32, 2, D(3, 4));
	expect_refused(node(&t, "Where", 16, 3, 1), in, -EINVAL);	/* 5 vs 4 */
	in[0] = shape_only(COPRO_K_BOOL, 1, D(4));
	in[2] = shape_only(COPRO_K_F64, 0, NULL);
	expect_refused(node(&t, "Where", 16, 3, 1), in, -EINVAL);	/* X, Y types */
}

static void variadic_ops_should_fold_every_input(void **state)
{
	static const char *const ops[] = { "Min", "Max", "Sum", "Mean" };
	size_t o;

	for (o = 0; o < 4; o++) {
		struct copro_kt in[3], out[1];
		struct tn t;
		int64_t k, c[3];
		double *want = dbuf(24);

		in[0] = randf(1, D(4), -1, 1);
		in[1] = randf(3, D(2, 3, 1), -1, 1);
		in[2] = randf(2, D(3, 4), -1, 1);
		run(node(&t, ops[o], 13, 3, 1), in, out);
		assert_shape(&out[0], 3, D(2, 3, 4));
		for (k = 0; k < 24; k++) {
			double v[3];
			int i;

			unravel(k, 3, out[0].dims, c);
			for (i = 0; i < 3; i++)
				v[i] = F(&in[i])[bcast_off(&in[i], 3, c)];
			want[k] = o == 0 ? fmin(fmin(v[0], v[1]), v[2]) :
				  o == 1 ? fmax(fmax(v[0], v[1]), v[2]) :
				  (v[0] + v[1] + v[2]) / (o == 3 ? 3 : 1);
		}
		assert_f32(&out[0], want, 1e-6, 1e-7);
		/* One input: a copy. */
		run(node(&t, ops[o], 13, 1, 1), in, out);
		assert_memory_equal(out[0].data, in[0].data, 16);
		teardown(NULL);
	}
	{
		struct copro_kt in[2], out[1];
		struct tn t;

		in[0] = f32s(1, D(2), (float[]){ NAN, 1 });
		in[1] = f32s(1, D(2), (float[]){ 0, NAN });
		run(node(&t, "Max", 13, 2, 1), in, out);
		assert_true(isnan(F(&out[0])[0]) && isnan(F(&out[0])[1]));
		in[0] = shape_only(COPRO_K_I32, 1, D(2));
		in[1] = shape_only(COPRO_K_I32, 1, D(2));
		expect_refused(node(&t, "Mean", 13, 2, 1), in, -ENOTSUP);
		in[1] = shape_only(COPRO_K_I32, 1, D(3));
		expect_refused(node(&t, "Sum", 13, 2, 1), in, -EINVAL);
	}
}

static void size_expand_and_tile_should_shape_copies(void **state)
{
	struct copro_kt in[2], out[1];
	struct tn t;
	int64_t k, c[3];

	in[0] = shape_only(COPRO_K_F32, 3, D(2, 0, 3));
	run(node(&t, "Size", 13, 1, 1), in, out);
	assert_int_equal(out[0].rank, 0);
	assert_int_equal(I64(&out[0])[0], 0);

	in[0] = randf(2, D(3, 1), -1, 1);
	in[1] = i64s(1, D(3), D(2, 1, 4));
	run(node(&t, "Expand", 13, 2, 1), in, out);
	assert_shape(&out[0], 3, D(2, 3, 4));
	for (k = 0; k < 24; k++) {
		unravel(k, 3, out[0].dims, c);
		assert_true(F(&out[0])[k] == F(&in[0])[c[1]]);
	}
	in[1] = i64s(1, D(1), D(1));			/* smaller shape: stays [3, 1] */
	run(node(&t, "Expand", 13, 2, 1), in, out);
	assert_shape(&out[0], 2, D(3, 1));
	in[1] = i64s(1, D(2), D(3, 5));
	run(node(&t, "Expand", 13, 2, 1), in, out);
	assert_shape(&out[0], 2, D(3, 5));
	in[1] = i64s(1, D(2), D(2, 1));
	expect_refused(node(&t, "Expand", 13, 2, 1), in, -EINVAL);	/* 3 vs 2 */

	in[0] = i64s(2, D(2, 2), D(1, 2, 3, 4));
	in[1] = i64s(1, D(2), D(2, 3));
	run(node(&t, "Tile", 13, 2, 1), in, out);
	assert_shape(&out[0], 2, D(4, 6));
	for (k = 0; k < 24; k++) {
		unravel(k, 2, out[0].dims, c);
		assert_int_equal(I64(&out[0])[k], I64(&in[0])[(c[0] % 2) * 2 + c[1] % 2]);
	}
	in[1] = i64s(1, D(1), D(2));
	expect_refused(node(&t, "Tile", 13, 2, 1), in, -EINVAL);	/* rank 2, 1 repeat */
}

static void slice_should_clamp_and_step_both_ways(void **state)
{
	static const struct {
		int64_t start, end, axis, step, len;
	} c[] = {
		{ 1, 4, 1, 1, 3 }, { -3, -1, 1, 1, 2 }, { 0, INT64_MAX, 1, 2, 3 },
		{ -1, INT64_MIN, 1, -1, 5 }, { 4, 0, -1, -2, 2 }, { 10, 20, 1, 1, 0 },
		{ -10, 2, 0, 1, 2 }, { 3, 1, 1, 1, 0 },
	};
	struct copro_kt in[5], out[1];
	struct tn t;
	struct copro_node *n;
	size_t i;
	int64_t r, j;

	in[0] = randf(2, D(3, 5), -1, 1);
	for (i = 0; i < sizeof(c) / sizeof(c[0]); i++) {
		int ax = (int)((c[i].axis + 2) % 2);
		int64_t s = c[i].start, d = in[0].dims[ax];

		in[1] = i64s(1, D(1), &c[i].start);
		in[2] = i64s(1, D(1), &c[i].end);
		in[3] = i64s(1, D(1), &c[i].axis);
		in[4] = i64s(1, D(1), &c[i].step);
		run(node(&t, "Slice", 13, 5, 1), in, out);
		assert_int_equal(out[0].dims[ax], c[i].len);
		assert_int_equal(out[0].dims[1 - ax], in[0].dims[1 - ax]);
		s = s < 0 ? s + d : s;
		s = s < 0 ? 0 : s;
		if (c[i].step < 0 && s > d - 1)
			s = d - 1;
		for (r = 0; r < out[0].dims[0]; r++)
			for (j = 0; j < out[0].dims[1]; j++) {
				int64_t y = ax ? r : s + r * c[i].step;
				int64_t x = ax ? s + j * c[i].step : j;

				assert_true(F(&out[0])[r * out[0].dims[1] + j] ==
					    F(&in[0])[y * 5 + x]);
			}
	}
	/* int32 starts/ends, no axes or steps: the leading axes. */
	in[1] = kt(COPRO_K_I32, 1, D(2));
	in[2] = kt(COPRO_K_I32, 1, D(2));
	memcpy(in[1].data, (int32_t[]){ 1, 1 }, 8);
	memcpy(in[2].data, (int32_t[]){ 3, 2 }, 8);
	run(node(&t, "Slice", 13, 3, 1), in, out);
	assert_shape(&out[0], 2, D(2, 1));
	assert_true(F(&out[0])[0] == F(&in[0])[6] && F(&out[0])[1] == F(&in[0])[11]);
	/* Opset 9: attributes. */
	n = node(&t, "Slice", 9, 1, 1);
	attr_is(&t, "starts", 1, D(2));
	attr_is(&t, "ends", 1, D(100));
	attr_is(&t, "axes", 1, D(1));
	run(n, in, out);
	assert_shape(&out[0], 2, D(3, 3));

	in[1] = i64s(1, D(1), D(0));
	in[2] = i64s(1, D(1), D(1));
	in[3] = i64s(1, D(1), D(0));
	in[4] = i64s(1, D(1), D(0));
	expect_refused(node(&t, "Slice", 13, 5, 1), in, -EINVAL);	/* step 0 */
	in[3] = i64s(1, D(1), D(2));
	in[4] = i64s(1, D(1), D(1));
	expect_refused(node(&t, "Slice", 13, 5, 1), in, -EINVAL);	/* axis 2 */
	in[2] = i64s(1, D(2), D(1, 1));
	expect_refused(node(&t, "Slice", 13, 5, 1), in, -EINVAL);	/* lengths */
}

static void split_should_cut_equal_or_given_parts(void **state)
{
	struct copro_kt in[2], out[3];
	struct tn t;
	struct copro_node *n;
	int64_t i;

	in[0] = randf(2, D(2, 6), -1, 1);
	n = node(&t, "Split", 13, 1, 3);
	attr_i(&t, "axis", -1);
	run(n, in, out);
	for (i = 0; i < 3; i++) {
		assert_shape(&out[i], 2, D(2, 2));
		assert_true(F(&out[i])[0] == F(&in[0])[2 * i]);
		assert_true(F(&out[i])[3] == F(&in[0])[6 + 2 * i + 1]);
	}
	in[1] = i64s(1, D(2), D(1, 5));
	n = node(&t, "Split", 13, 2, 2);
	attr_i(&t, "axis", 1);
	run(n, in, out);
	assert_shape(&out[0], 2, D(2, 1));
	assert_shape(&out[1], 2, D(2, 5));
	assert_true(F(&out[1])[5] == F(&in[0])[7]);
	n = node(&t, "Split", 11, 1, 2);
	attr_is(&t, "split", 2, D(1, 1));
	run(n, in, out);
	assert_shape(&out[0], 2, D(1, 6));
	assert_memory_equal(out[1].data, F(&in[0]) + 6, 24);

	n = node(&t, "Split", 13, 1, 4);
	attr_i(&t, "axis", 1);
	expect_refused(n, in, -EINVAL);			/* 6 into 4 */
	in[1] = i64s(1, D(2), D(2, 5));
	n = node(&t, "Split", 13, 2, 2);
	attr_i(&t, "axis", 1);
	expect_refused(n, in, -EINVAL);			/* 7 != 6 */
}

static void constantofshape_and_range_should_make_values(void **state)
{
	struct copro_kt in[3], out[1], v = i64s(1, D(1), D(7));
	struct tn t;
	struct copro_node *n;
	float f[3];
	int64_t l[3];

	in[0] = i64s(1, D(2), D(2, 3));
	run(node(&t, "ConstantOfShape", 9, 1, 1), in, out);
	assert_int_equal(out[0].dtype, COPRO_K_F32);
	assert_f32(&out[0], (double[]){ 0, 0, 0, 0, 0, 0 }, 0, 0);
	n = node(&t, "ConstantOfShape", 9, 1, 1);
	attr(&t, "value", COPRO_ATTR_TENSOR)->t = &v;
	run(n, in, out);
	assert_memory_equal(out[0].data, D(7, 7, 7, 7, 7, 7), 48);
	in[0] = kt(COPRO_K_I64, 1, D(0));		/* a scalar */
	run(n, in, out);
	assert_int_equal(out[0].rank, 0);
	assert_int_equal(I64(&out[0])[0], 7);
	in[0] = i64s(1, D(1), D(-1));
	expect_refused(node(&t, "ConstantOfShape", 9, 1, 1), in, -EINVAL);

	f[0] = 1;
	f[1] = 2;
	f[2] = 0.25f;
	in[0] = f32s(0, NULL, &f[0]);
	in[1] = f32s(0, NULL, &f[1]);
	in[2] = f32s(0, NULL, &f[2]);
	run(node(&t, "Range", 11, 3, 1), in, out);
	assert_f32(&out[0], (double[]){ 1, 1.25, 1.5, 1.75 }, 0, 0);
	l[0] = 10;
	l[1] = 4;
	l[2] = -3;
	in[0] = i64s(0, NULL, &l[0]);
	in[1] = i64s(0, NULL, &l[1]);
	in[2] = i64s(0, NULL, &l[2]);
	run(node(&t, "Range", 11, 3, 1), in, out);
	assert_shape(&out[0], 1, D(2));
	assert_memory_equal(out[0].data, D(10, 7), 16);
	l[2] = 0;
	in[2] = i64s(0, NULL, &l[2]);
	expect_refused(node(&t, "Range", 11, 3, 1), in, -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
#define T(f) cmocka_unit_test_teardown(f, teardown)
		T(registry_should_list_every_required_op),
		T(registry_should_pick_the_newest_entry_the_opset_allows),
		T(broadcast_shape_should_follow_numpy_rules),
		T(binary_ops_should_match_reference_with_broadcasting),
		T(binary_ops_should_wrap_integers_and_not_trap_on_division),
		T(binary_ops_should_compute_doubles),
		T(binary_ops_should_refuse_bad_nodes),
		T(pow_should_take_mixed_types_from_opset_12),
		T(unary_ops_should_match_reference),
		T(unary_ops_should_keep_edge_values),
		T(unary_ops_should_take_integers_where_defined),
		T(clip_should_take_bounds_as_inputs_from_opset_11),
		T(clip_should_read_attributes_before_opset_11),
		T(clip_should_refuse_bad_bounds),
		T(softmax_should_normalize_one_axis_from_opset_13),
		T(softmax_should_flatten_at_axis_before_opset_13),
		T(softmax_should_survive_large_inputs_and_empty_rows),
		T(softmax_should_refuse_bad_axes_and_types),
		T(gemm_should_match_reference_for_every_transpose_and_bias),
		T(gemm_should_handle_empty_dims),
		T(gemm_should_refuse_bad_nodes),
		T(matmul_should_follow_numpy_shapes_and_batching),
		T(matmul_should_refuse_mismatched_shapes),
		T(matmulinteger_should_subtract_zero_points),
		T(reshape_should_copy_zeros_and_infer_minus_one),
		T(reshape_should_refuse_bad_shapes),
		T(flatten_should_split_at_axis),
		T(squeeze_and_unsqueeze_should_take_axes_by_opset),
		T(squeeze_and_unsqueeze_should_refuse_bad_axes),
		T(transpose_should_permute_every_element_size),
		T(transpose_should_reverse_by_default_and_refuse_bad_perms),
		T(concat_should_join_along_negative_and_positive_axes),
		T(gather_should_select_along_axis_with_negative_indices),
		T(shape_should_report_dims_and_slice_from_opset_15),
		T(constant_should_emit_each_value_attribute),
		T(identity_and_dropout_should_pass_data_through),
		T(cast_should_convert_between_all_numeric_types),
		T(cast_should_round_saturate_and_keep_nan),
		T(cast_should_refuse_strings_and_missing_to),
		T(batchnorm_should_normalize_per_channel),
		T(batchnorm_should_refuse_training_and_bad_shapes),
		T(layernorm_should_normalize_trailing_dims),
		T(layernorm_should_refuse_bad_scale_and_axis),
		T(reduce_should_match_reference_for_axes_and_keepdims),
		T(reduce_should_handle_noop_scalars_and_bad_axes),
		T(argmax_should_pick_first_or_last_extreme),
		T(quantize_should_round_half_to_even_and_saturate),
		T(quantize_and_dequantize_should_work_per_axis_from_opset_13),
		T(round_should_send_halves_to_even),
		T(prelu_should_broadcast_the_slope_one_way),
		T(comparisons_should_give_bools_with_broadcasting),
		T(logic_ops_should_combine_bools),
		T(where_should_pick_with_three_way_broadcasting),
		T(variadic_ops_should_fold_every_input),
		T(size_expand_and_tile_should_shape_copies),
		T(slice_should_clamp_and_step_both_ways),
		T(split_should_cut_equal_or_given_parts),
		T(constantofshape_and_range_should_make_values),
#undef T
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
