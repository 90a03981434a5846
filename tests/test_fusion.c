// SPDX-License-Identifier: MIT
/*
 * test_fusion.c - the planner's fusion of Gemm/MatMul + bias Add +
 * activation into one step: fewer steps, and results identical bit for
 * bit (memcmp, not a tolerance) to the unfused plan (fuse = 0), on
 * models written by copro-model and on graphs built here by hand; and
 * no fusion where it would hide a value someone else reads (a graph
 * output, a second reader).
 *
 * The lowered (bf16, int8) steps are checked here too on every form of
 * Gemm the planner takes, against one layer's worst-case rounding bound;
 * test_precision.c checks whole models.
 *
 * Bit for bit is the contract in f32: the fused step runs the same BLAS
 * call (or the same own kernel, which the unfused plan uses too) on the
 * same buffers, then the same float operations (y + b, then the
 * activation's own formula) in the same order as the Add and activation
 * steps did. The own f32 kernel is also checked against OpenBLAS and a
 * double reference, for giving a row the same bits in any batch, and for
 * packing each graph's weights once.
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
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "onnx/graph.h"
#include "onnx/plan.h"

/* Whether the CPU has what the AVX-512 kernels need (else only portable ones run). */
static int avx512_bf16, avx512_vnni;

/* ---------------------------------------------------------------------- */
/* Allocation counter: a fused run must not allocate either              */
/* ---------------------------------------------------------------------- */

#include "alloc_count.h"

/* ---------------------------------------------------------------------- */
/* Graphs by hand                                                         */
/* ---------------------------------------------------------------------- */

static uint64_t rng = 0x243f6a8885a308d3ULL;

static float rndf(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;	/* [-1, 1) */
}

static struct copro_graph *gb_new(void)
{
	struct copro_graph *g = calloc(1, sizeof(*g));

	assert_non_null(g);
	g->opset = 13;
	g->ir_version = 8;
	g->producer = strdup("test_fusion");
	return g;
}

/* The id of value name, added (untyped) if new. */
static int gb_value(struct copro_graph *g, const char *name)
{
	int i;

	for (i = 0; i < g->n_values; i++)
		if (!strcmp(g->values[i].name, name))
			return i;
	g->values = realloc(g->values, (size_t)(g->n_values + 1) * sizeof(*g->values));
	assert_non_null(g->values);
	memset(&g->values[g->n_values], 0, sizeof(*g->values));
	g->values[g->n_values].name = strdup(name);
	g->values[g->n_values].t.rank = -1;
	return g->n_values++;
}

static void gb_input(struct copro_graph *g, const char *name, int rank, const int64_t *dims)
{
	int id = gb_value(g, name);
	struct copro_value *v = &g->values[id];

	v->is_input = 1;
	v->t.dtype = COPRO_K_F32;
	v->t.rank = rank;
	memcpy(v->t.dims, dims, (size_t)rank * sizeof(*dims));
	g->inputs = realloc(g->inputs, (size_t)(g->n_inputs + 1) * sizeof(int));
	g->inputs[g->n_inputs++] = id;
}

static void gb_output(struct copro_graph *g, const char *name)
{
	int id = gb_value(g, name);

	g->values[id].is_output = 1;
	g->values[id].t.dtype = COPRO_K_F32;
	g->outputs = realloc(g->outputs, (size_t)(g->n_outputs + 1) * sizeof(int));
	g->outputs[g->n_outputs++] = id;
}

/* A constant of random values in [-1, 1). */
static void gb_const(struct copro_graph *g, const char *name, int rank, const int64_t *dims)
{
	int id = gb_value(g, name);
	struct copro_value *v = &g->values[id];
	int64_t n = 1, i;
	float *d;

	v->is_const = 1;
	v->t.dtype = COPRO_K_F32;
	v->t.rank = rank;
	memcpy(v->t.dims, dims, (size_t)rank * sizeof(*dims));
	for (i = 0; i < rank; i++)
		n *= dims[i];
	d = malloc((size_t)(n ? n : 1) * sizeof(float));
	for (i = 0; i < n; i++)
		d[i] = rndf();
	v->t.data = d;
}

/* Adds a node; ins/outs are NULL-terminated value names. */
static struct copro_node *gb_node(struct copro_graph *g, const char *op, const char **ins,
				  const char **outs)
{
	struct copro_node *n;
	int k;

	g->nodes = realloc(g->nodes, (size_t)(g->n_nodes + 1) * sizeof(*g->nodes));
	n = &g->nodes[g->n_nodes++];
	memset(n, 0, sizeof(*n));
	n->op_type = strdup(op);
	n->name = strdup("");
	n->domain = strdup("");
	n->opset = 13;
	for (k = 0; ins[k]; k++)
		;
	n->n_in = k;
	n->in = calloc((size_t)k + 1, sizeof(int));
	for (k = 0; k < n->n_in; k++)
		n->in[k] = gb_value(g, ins[k]);
	for (k = 0; outs[k]; k++)
		;
	n->n_out = k;
	n->out = calloc((size_t)k + 1, sizeof(int));
	for (k = 0; k < n->n_out; k++)
		n->out[k] = gb_value(g, outs[k]);
	return n;
}

static void gb_attr(struct copro_node *n, const char *name, int type, int64_t i, float f)
{
	n->attrs = realloc(n->attrs, (size_t)(n->n_attrs + 1) * sizeof(*n->attrs));
	memset(&n->attrs[n->n_attrs], 0, sizeof(*n->attrs));
	n->attrs[n->n_attrs].name = strdup(name);
	n->attrs[n->n_attrs].type = type;
	n->attrs[n->n_attrs].i = i;
	n->attrs[n->n_attrs].f = f;
	n->n_attrs++;
}

#define IN(...)		((const char *[]){ __VA_ARGS__, NULL })
#define DIMS(...)	((const int64_t[]){ __VA_ARGS__ })

/* ---------------------------------------------------------------------- */
/* Running and comparing                                                  */
/* ---------------------------------------------------------------------- */

#define MAX_IO	4

struct run {
	struct copro_plan *p;
	float *out[MAX_IO];
	size_t bytes[MAX_IO];
};

static struct copro_plan *build(const struct copro_graph *g, const struct copro_kt *in,
				uint32_t fuse, uint32_t prec)
{
	struct copro_plan_opts o = { .precision = prec, .fuse = fuse };
	struct copro_plan *p = NULL;
	char err[256];
	int rc = copro_plan_build_opts(g, in, &o, &p, err, sizeof(err));

	if (rc)
		fail_msg("plan (fuse %u): %s", fuse, err);
	return p;
}

/* Runs p on in (no allocation allowed); outputs are malloc'ed into r. */
static void run(struct run *r, const struct copro_graph *g, const struct copro_kt *in)
{
	struct copro_kt out[MAX_IO];
	int k;

	assert_true(g->n_outputs <= MAX_IO);
	for (k = 0; k < g->n_outputs; k++) {
		r->bytes[k] = (size_t)copro_kt_bytes(copro_plan_output(r->p, k));
		r->out[k] = aligned_alloc(64, (r->bytes[k] + 63) & ~(size_t)63);
		memset(&out[k], 0, sizeof(out[k]));
		out[k].data = r->out[k];
	}
	n_allocs = 0;
	counting = 1;
	assert_int_equal(copro_plan_run(r->p, in, out), 0);
	counting = 0;
	if (COUNT_ALLOCS && n_allocs)
		fail_msg("a run allocated %ld times", n_allocs);
}

static void run_free(struct run *r, int n)
{
	for (int k = 0; k < n; k++)
		free(r->out[k]);
	copro_plan_free(r->p);
}

/*
 * Builds g fused and unfused for input shape in (data filled here),
 * checks the step counts (fused_steps < 0: fewer than unfused) and that
 * every output is bit for bit the same. Returns the fused step count.
 */
static int check_fused(const struct copro_graph *g, int n_in, const int64_t *const *dims,
		       const int *ranks, int fused_steps, int unfused_steps)
{
	struct copro_kt in[MAX_IO];
	struct run f = { 0 }, u = { 0 };
	int k, nf, nu;

	for (k = 0; k < n_in; k++) {
		int64_t n = 1, i;
		float *x;

		memset(&in[k], 0, sizeof(in[k]));
		in[k].dtype = COPRO_K_F32;
		in[k].rank = ranks[k];
		for (i = 0; i < ranks[k]; i++) {
			in[k].dims[i] = dims[k][i];
			n *= dims[k][i];
		}
		x = aligned_alloc(64, ((size_t)n * 4 + 63) & ~(size_t)63);
		/* Some exact zeros and negative zeros too: Relu keeps -0. */
		for (i = 0; i < n; i++)
			x[i] = i % 29 == 0 ? -0.0f : 2.0f * rndf();
		in[k].data = x;
	}
	f.p = build(g, in, 1, COPRO_PREC_F32);
	u.p = build(g, in, 0, COPRO_PREC_F32);
	nf = copro_plan_n_steps(f.p);
	nu = copro_plan_n_steps(u.p);
	assert_int_equal(nu, unfused_steps);
	if (fused_steps >= 0)
		assert_int_equal(nf, fused_steps);
	run(&f, g, in);
	run(&u, g, in);
	for (k = 0; k < g->n_outputs; k++) {
		assert_int_equal(f.bytes[k], u.bytes[k]);
		if (memcmp(f.out[k], u.out[k], f.bytes[k]))
			fail_msg("output %d differs between the fused and unfused plans", k);
	}
	run_free(&f, g->n_outputs);
	run_free(&u, g->n_outputs);
	for (k = 0; k < n_in; k++)
		free(in[k].data);
	return nf;
}

/* ---------------------------------------------------------------------- */
/* copro-model MLPs                                                       */
/* ---------------------------------------------------------------------- */

static char *write_mlp(const char *args)
{
	const char *coprod = getenv("COPRO_COPROD");
	char bindir[256], cmd[768], *path = malloc(64), *slash;
	int fd, st;

	snprintf(bindir, sizeof(bindir), "%s", coprod ? coprod : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	strcpy(path, "/tmp/copro-fusion.XXXXXX");
	fd = mkstemp(path);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd), "%s/copro-model mlp %s -o %s >/dev/null", bindir, args, path);
	st = system(cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("%s failed", cmd);
	return path;
}

static void mlp_check(const char *args, int64_t width, int layers)
{
	static const int64_t batches[] = { 1, 2, 7, 64, 200 };
	struct copro_graph *g;
	char err[256], *path = write_mlp(args);

	assert_int_equal(copro_graph_load(path, &g, err, sizeof(err)), 0);
	unlink(path);
	free(path);
	for (size_t bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++) {
		const int64_t d[] = { batches[bi], width };
		const int64_t *dims[] = { d };

		/* Gemm + activation per layer: 2 * layers steps become layers. */
		check_fused(g, 1, dims, (const int[]){ 2 }, layers, 2 * layers);
	}
	copro_graph_free(g);
}

static void should_fuse_each_layer_of_the_fraud_mlp_and_match_bit_for_bit(void **state)
{
	mlp_check("--in 32 --hidden 256,256 --out 1 --seed 1", 32, 3);
}

static void should_fuse_an_mlp_with_odd_widths_and_tanh(void **state)
{
	mlp_check("--in 45 --hidden 100,37 --out 3 --act tanh --seed 5", 45, 3);
}

/* ---------------------------------------------------------------------- */
/* Hand-built graphs                                                      */
/* ---------------------------------------------------------------------- */

/* Y = act(MatMul(X, W) + B), X (rows, 24), W (24, 40). */
static struct copro_graph *matmul_bias_act(const char *act, int bias_first, int bias_rank)
{
	struct copro_graph *g = gb_new();
	struct copro_node *n;

	gb_input(g, "X", 2, DIMS(-1, 24));
	gb_output(g, "Y");
	gb_const(g, "W", 2, DIMS(24, 40));
	if (bias_rank == 2)
		gb_const(g, "B", 2, DIMS(1, 40));
	else
		gb_const(g, "B", 1, DIMS(40));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Add", bias_first ? IN("B", "XW") : IN("XW", "B"), IN(act ? "Z" : "Y"));
	if (act) {
		n = gb_node(g, act, IN("Z"), IN("Y"));
		if (!strcmp(act, "LeakyRelu"))
			gb_attr(n, "alpha", COPRO_ATTR_FLOAT, 0, 0.2f);
	}
	return g;
}

static void should_fuse_matmul_bias_and_each_activation(void **state)
{
	static const char *acts[] = { "Relu", "LeakyRelu", "Sigmoid", "Tanh", NULL };

	for (int a = 0; a < 5; a++) {
		for (int rows = 1; rows <= 67; rows += 33) {
			struct copro_graph *g = matmul_bias_act(acts[a], a & 1, a == 2 ? 2 : 1);
			const int64_t d[] = { rows, 24 };
			const int64_t *dims[] = { d };

			check_fused(g, 1, dims, (const int[]){ 2 }, 1, acts[a] ? 3 : 2);
			copro_graph_free(g);
		}
	}
}

/* MatMul of a 3-D X: its batch dims become rows of one fused product. */
static void should_fuse_a_batched_matmul_with_a_2d_weight(void **state)
{
	struct copro_graph *g = gb_new();
	const int64_t d[] = { 3, 5, 16 };
	const int64_t *dims[] = { d };

	gb_input(g, "X", 3, DIMS(3, 5, 16));
	gb_output(g, "Y");
	gb_const(g, "W", 2, DIMS(16, 33));
	gb_const(g, "B", 3, DIMS(1, 1, 33));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Add", IN("XW", "B"), IN("Z"));
	gb_node(g, "Sigmoid", IN("Z"), IN("Y"));
	check_fused(g, 1, dims, (const int[]){ 3 }, 1, 3);
	copro_graph_free(g);
}

/* Gemm with transA, alpha, beta and a C per row, then Tanh; and with a scalar C. */
static void should_fuse_gemm_with_every_attribute_and_c_shape(void **state)
{
	for (int v = 0; v < 3; v++) {
		struct copro_graph *g = gb_new();
		struct copro_node *n;
		const int64_t d[] = { 20, 9 };	/* (K, M): transA */
		const int64_t *dims[] = { d };

		gb_input(g, "A", 2, DIMS(20, 9));
		gb_output(g, "Y");
		gb_const(g, "Wt", 2, DIMS(31, 20));
		if (v == 0)
			gb_const(g, "C", 2, DIMS(9, 1));
		else if (v == 1)
			gb_const(g, "C", 1, DIMS(1));
		else
			gb_const(g, "C", 2, DIMS(9, 31));
		n = gb_node(g, "Gemm", IN("A", "Wt", "C"), IN("G"));
		gb_attr(n, "transA", COPRO_ATTR_INT, 1, 0);
		gb_attr(n, "transB", COPRO_ATTR_INT, 1, 0);
		gb_attr(n, "alpha", COPRO_ATTR_FLOAT, 0, 0.75f);
		gb_attr(n, "beta", COPRO_ATTR_FLOAT, 0, -1.5f);
		gb_node(g, "Tanh", IN("G"), IN("Y"));
		check_fused(g, 1, dims, (const int[]){ 2 }, 1, 2);
		copro_graph_free(g);
	}
}

/* The MatMul's result is also a graph output: it must be written, so no fusion. */
static void should_not_fuse_when_the_intermediate_is_a_graph_output(void **state)
{
	struct copro_graph *g = gb_new();
	const int64_t d[] = { 8, 24 };
	const int64_t *dims[] = { d };

	gb_input(g, "X", 2, DIMS(-1, 24));
	gb_output(g, "Y");
	gb_output(g, "XW");
	gb_const(g, "W", 2, DIMS(24, 40));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Relu", IN("XW"), IN("Y"));
	check_fused(g, 1, dims, (const int[]){ 2 }, 2, 2);
	copro_graph_free(g);
}

/* Two readers of the MatMul's result, or of the Add's: nothing fuses past them. */
static void should_not_fuse_an_intermediate_with_two_readers(void **state)
{
	struct copro_graph *g = gb_new();
	const int64_t d[] = { 8, 24 };
	const int64_t *dims[] = { d };

	gb_input(g, "X", 2, DIMS(-1, 24));
	gb_output(g, "Y1");
	gb_output(g, "Y2");
	gb_const(g, "W", 2, DIMS(24, 40));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Relu", IN("XW"), IN("Y1"));
	gb_node(g, "Sigmoid", IN("XW"), IN("Y2"));
	check_fused(g, 1, dims, (const int[]){ 2 }, 3, 3);
	copro_graph_free(g);

	/* Add(XW, XW) reads it twice: not a bias. */
	g = gb_new();
	gb_input(g, "X", 2, DIMS(-1, 24));
	gb_output(g, "Y");
	gb_const(g, "W", 2, DIMS(24, 40));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Add", IN("XW", "XW"), IN("Z"));
	gb_node(g, "Relu", IN("Z"), IN("Y"));
	check_fused(g, 1, dims, (const int[]){ 2 }, 3, 3);
	copro_graph_free(g);

	/* The Add's result read twice: the bias fuses, the activations do not. */
	g = gb_new();
	gb_input(g, "X", 2, DIMS(-1, 24));
	gb_output(g, "Y1");
	gb_output(g, "Y2");
	gb_const(g, "W", 2, DIMS(24, 40));
	gb_const(g, "B", 1, DIMS(40));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Add", IN("XW", "B"), IN("Z"));
	gb_node(g, "Relu", IN("Z"), IN("Y1"));
	gb_node(g, "Tanh", IN("Z"), IN("Y2"));
	check_fused(g, 1, dims, (const int[]){ 2 }, 3, 4);
	copro_graph_free(g);
}

/*
 * An Add that is not a bias row (a computed operand, or a constant that
 * broadcasts per row) is left alone, and so is what follows it; a
 * computed B is not a layer's weights.
 */
static void should_not_fuse_an_add_that_is_not_a_bias_row(void **state)
{
	const int64_t d[] = { 8, 24 }, d2[] = { 8, 40 };
	const int64_t *dims[] = { d, d2 };
	struct copro_graph *g = gb_new();

	gb_input(g, "X", 2, DIMS(8, 24));
	gb_input(g, "R", 2, DIMS(8, 40));
	gb_output(g, "Y");
	gb_const(g, "W", 2, DIMS(24, 40));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Add", IN("XW", "R"), IN("Z"));
	gb_node(g, "Relu", IN("Z"), IN("Y"));
	check_fused(g, 2, dims, (const int[]){ 2, 2 }, 3, 3);
	copro_graph_free(g);

	g = gb_new();
	gb_input(g, "X", 2, DIMS(8, 24));
	gb_output(g, "Y");
	gb_const(g, "W", 2, DIMS(24, 40));
	gb_const(g, "B", 2, DIMS(8, 1));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Add", IN("XW", "B"), IN("Z"));
	gb_node(g, "Relu", IN("Z"), IN("Y"));
	check_fused(g, 1, dims, (const int[]){ 2 }, 3, 3);
	copro_graph_free(g);

	/* B computed from an input: X (8, 24) times Relu(V) (24, 40). */
	g = gb_new();
	gb_input(g, "X", 2, DIMS(8, 24));
	gb_input(g, "V", 2, DIMS(24, 40));
	gb_output(g, "Y");
	gb_node(g, "Relu", IN("V"), IN("W"));
	gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
	gb_node(g, "Sigmoid", IN("XW"), IN("Y"));
	check_fused(g, 2, (const int64_t *const[]){ d, DIMS(24, 40) }, (const int[]){ 2, 2 },
		    3, 3);
	copro_graph_free(g);
}

/* A chain of two layers where the second reads the first's fused output. */
static void should_chain_fused_layers_and_keep_nan_and_inf(void **state)
{
	struct copro_graph *g = gb_new();
	struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { 4, 24 } };
	struct run f = { 0 }, u = { 0 };
	float *x = aligned_alloc(64, 4 * 24 * sizeof(float));

	gb_input(g, "X", 2, DIMS(-1, 24));
	gb_output(g, "Y");
	gb_const(g, "W1", 2, DIMS(24, 40));
	gb_const(g, "B1", 1, DIMS(40));
	gb_const(g, "W2", 2, DIMS(40, 7));
	gb_node(g, "MatMul", IN("X", "W1"), IN("a"));
	gb_node(g, "Add", IN("a", "B1"), IN("b"));
	gb_node(g, "Relu", IN("b"), IN("c"));
	gb_node(g, "MatMul", IN("c", "W2"), IN("d"));
	gb_node(g, "Sigmoid", IN("d"), IN("Y"));
	for (int i = 0; i < 4 * 24; i++)
		x[i] = rndf();
	x[5] = NAN;		/* row 0 */
	x[24 + 3] = INFINITY;	/* row 1 */
	in.data = x;
	f.p = build(g, &in, 1, COPRO_PREC_F32);
	u.p = build(g, &in, 0, COPRO_PREC_F32);
	assert_int_equal(copro_plan_n_steps(f.p), 2);
	assert_int_equal(copro_plan_n_steps(u.p), 5);
	run(&f, g, &in);
	run(&u, g, &in);
	assert_memory_equal(f.out[0], u.out[0], f.bytes[0]);
	assert_true(isnan(f.out[0][0]));
	run_free(&f, 1);
	run_free(&u, 1);
	free(x);
	copro_graph_free(g);
}

/* ---------------------------------------------------------------------- */
/* Lowered steps on every Gemm form                                       */
/* ---------------------------------------------------------------------- */

/*
 * One Gemm (or MatMul + Add) layer: the plan's bf16/int8 result against
 * its f32 one, within the worst case of one layer's roundings, per output
 * (the activations after it are 1-Lipschitz):
 *   bf16: (2u + u^2) |alpha| sum_k |a_ik| |w_kj|, u = 2^-8
 *   int8: |alpha| sum_k (A_i (|w_kj| + h_j) + h_j |a_ik|), A_i = max_k |a_ik| / 254,
 *         h_j = max_k |w_kj| / 254
 * plus f32's own sums and the last rounding of beta * C. A wrong index
 * (transA, C's broadcast) is off by far more than that.
 */
struct gemm_form {
	int ta, tb, M, K, N;
	float alpha, beta;
	int c;			/* 0 none, 1 [N], 2 [M,1], 3 [1], 4 [M,N], 5 computed */
	const char *act;
};

static const struct gemm_form forms[] = {
	{ 0, 1, 9, 45, 37, 1.0f, 1.0f, 1, "Relu" },
	{ 1, 0, 5, 20, 33, 0.75f, -1.5f, 2, "Tanh" },
	{ 1, 1, 2, 64, 17, 2.0f, 0.5f, 3, "LeakyRelu" },
	{ 0, 0, 3, 31, 70, 1.0f, 1.0f, 4, "Sigmoid" },
	{ 0, 1, 6, 16, 40, 1.0f, 1.0f, 5, NULL },
	{ 0, 0, 1, 130, 300, 1.0f, 0.0f, 1, "Relu" },
	{ 0, 0, 7, 8, 1, 1.0f, 1.0f, 0, "Sigmoid" },
};

static const float *const_data(const struct copro_graph *g, const char *name)
{
	for (int i = 0; i < g->n_values; i++)
		if (!strcmp(g->values[i].name, name))
			return g->values[i].t.data;
	fail_msg("no value %s", name);
	return NULL;
}

static void check_lowered_form(const struct gemm_form *f, uint32_t prec, uint32_t flags)
{
	struct copro_graph *g = gb_new();
	struct copro_node *n;
	struct copro_plan_opts o = { .precision = prec, .fuse = 1, .flags = flags };
	struct copro_kt in[2], out = { 0 };
	struct copro_plan *pl, *pr;
	int64_t M = f->M, K = f->K, N = f->N;
	float *a, *c = NULL, *y, *yr;
	const float *w;
	char err[256];

	gb_input(g, "A", 2, f->ta ? DIMS(K, M) : DIMS(M, K));
	gb_output(g, "Y");
	gb_const(g, "W", 2, f->tb ? DIMS(N, K) : DIMS(K, N));
	switch (f->c) {
	case 1: gb_const(g, "C", 1, DIMS(N)); break;
	case 2: gb_const(g, "C", 2, DIMS(M, 1)); break;
	case 3: gb_const(g, "C", 1, DIMS(1)); break;
	case 4: gb_const(g, "C", 2, DIMS(M, N)); break;
	case 5: gb_input(g, "C", 2, DIMS(M, N)); break;
	}
	n = gb_node(g, "Gemm", f->c ? IN("A", "W", "C") : IN("A", "W"), IN(f->act ? "G" : "Y"));
	gb_attr(n, "transA", COPRO_ATTR_INT, f->ta, 0);
	gb_attr(n, "transB", COPRO_ATTR_INT, f->tb, 0);
	gb_attr(n, "alpha", COPRO_ATTR_FLOAT, 0, f->alpha);
	gb_attr(n, "beta", COPRO_ATTR_FLOAT, 0, f->beta);
	if (f->act) {
		n = gb_node(g, f->act, IN("G"), IN("Y"));
		if (!strcmp(f->act, "LeakyRelu"))
			gb_attr(n, "alpha", COPRO_ATTR_FLOAT, 0, 0.3f);
	}
	a = aligned_alloc(64, ((size_t)(M * K) * 4 + 63) & ~(size_t)63);
	for (int64_t i = 0; i < M * K; i++)
		a[i] = 3.0f * rndf();
	memset(in, 0, sizeof(in));
	in[0].dtype = COPRO_K_F32;
	in[0].rank = 2;
	in[0].dims[0] = f->ta ? K : M;
	in[0].dims[1] = f->ta ? M : K;
	in[0].data = a;
	if (f->c == 5) {
		c = aligned_alloc(64, ((size_t)(M * N) * 4 + 63) & ~(size_t)63);
		for (int64_t i = 0; i < M * N; i++)
			c[i] = rndf();
		in[1] = in[0];
		in[1].dims[0] = M;
		in[1].dims[1] = N;
		in[1].data = c;
	}
	if (copro_plan_build_opts(g, in, &o, &pl, err, sizeof(err)))
		fail_msg("%s", err);
	assert_int_equal(copro_plan_n_lowp(pl), 1);
	assert_int_equal(copro_plan_n_steps(pl), 1);
	o.precision = COPRO_PREC_F32;
	o.fuse = 0;
	if (copro_plan_build_opts(g, in, &o, &pr, err, sizeof(err)))
		fail_msg("%s", err);
	y = aligned_alloc(64, ((size_t)(M * N) * 4 + 63) & ~(size_t)63);
	yr = aligned_alloc(64, ((size_t)(M * N) * 4 + 63) & ~(size_t)63);
	out.data = y;
	{
		struct run r = { .p = pl };

		run(&r, g, in);		/* the allocation check */
		free(r.out[0]);
	}
	assert_int_equal(copro_plan_run(pl, in, &out), 0);
	out.data = yr;
	assert_int_equal(copro_plan_run(pr, in, &out), 0);

	w = const_data(g, "W");
	for (int64_t i = 0; i < M; i++) {
		double amax = 0;

		for (int64_t k = 0; k < K; k++) {
			double v = fabs(a[f->ta ? k * M + i : i * K + k]);

			amax = v > amax ? v : amax;
		}
		for (int64_t j = 0; j < N; j++) {
			double wmax = 0, sum = 0, q8 = 0, bound, d;

			for (int64_t k = 0; k < K; k++) {
				double wk = fabs(w[f->tb ? j * K + k : k * N + j]);

				wmax = wk > wmax ? wk : wmax;
			}
			for (int64_t k = 0; k < K; k++) {
				double ak = fabs(a[f->ta ? k * M + i : i * K + k]);
				double wk = fabs(w[f->tb ? j * K + k : k * N + j]);

				sum += ak * wk;
				q8 += amax / 254 * (wk + wmax / 254) + wmax / 254 * ak;
			}
			if (prec == COPRO_PREC_BF16)
				bound = (2.0 / 256 + 1.0 / 65536) * sum;
			else
				bound = q8 * 1.01;
			bound = fabs(f->alpha) * bound + (K + 2) * 0x1p-23 * sum + 1e-6 +
				4e-7 * fabs(yr[i * N + j]);
			d = fabs((double)y[i * N + j] - yr[i * N + j]);
			if (!(d <= bound))
				fail_msg("form %d %s%s at (%lld, %lld): %.7g, f32 %.7g, "
					 "bound %.3g",
					 (int)(f - forms), copro_prec_name(prec),
					 flags ? " portable" : "", (long long)i, (long long)j,
					 y[i * N + j], yr[i * N + j], bound);
		}
	}
	copro_plan_free(pl);
	copro_plan_free(pr);
	free(a);
	free(c);
	free(y);
	free(yr);
	copro_graph_free(g);
}

static void lowered_gemm_should_stay_within_one_layers_bound_in_every_form(void **state)
{
	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
		for (uint32_t prec = COPRO_PREC_BF16; prec <= COPRO_PREC_INT8; prec++) {
			check_lowered_form(&forms[i], prec, COPRO_PLAN_F_PORTABLE);
			if (!strcmp(copro_prec_name(prec), "bf16") ? avx512_bf16 : avx512_vnni)
				check_lowered_form(&forms[i], prec, 0);
		}
	}
}

/* MatMul of a 3-D X, its bias Add and Relu, lowered: the same bound, by hand. */
static void lowered_matmul_should_fold_batch_dims_into_rows(void **state)
{
	for (uint32_t prec = COPRO_PREC_BF16; prec <= COPRO_PREC_INT8; prec++) {
		struct copro_graph *g = gb_new();
		struct copro_plan_opts o = { .precision = prec, .fuse = 1,
					     .flags = COPRO_PLAN_F_PORTABLE };
		struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 3, .dims = { 2, 3, 24 } };
		struct copro_kt out = { 0 };
		struct copro_plan *pl, *pr;
		float x[144] __attribute__((aligned(64))), y[300] __attribute__((aligned(64)));
		float yr[300] __attribute__((aligned(64)));
		char err[256];

		gb_input(g, "X", 3, DIMS(2, 3, 24));
		gb_output(g, "Y");
		gb_const(g, "W", 2, DIMS(24, 50));
		gb_const(g, "B", 1, DIMS(50));
		gb_node(g, "MatMul", IN("X", "W"), IN("XW"));
		gb_node(g, "Add", IN("B", "XW"), IN("Z"));
		gb_node(g, "Relu", IN("Z"), IN("Y"));
		for (int i = 0; i < 144; i++)
			x[i] = rndf();
		in.data = x;
		for (int v = 0; v < 2; v++) {
			o.flags = v ? 0 : COPRO_PLAN_F_PORTABLE;
			if (v && !(prec == COPRO_PREC_BF16 ? avx512_bf16 : avx512_vnni))
				continue;
			o.precision = prec;
			o.fuse = 1;
			assert_int_equal(copro_plan_build_opts(g, &in, &o, &pl, err, sizeof(err)),
					 0);
			assert_int_equal(copro_plan_n_steps(pl), 1);
			assert_int_equal(copro_plan_n_lowp(pl), 1);
			o.precision = COPRO_PREC_F32;
			o.fuse = 0;
			assert_int_equal(copro_plan_build_opts(g, &in, &o, &pr, err, sizeof(err)),
					 0);
			out.data = y;
			assert_int_equal(copro_plan_run(pl, &in, &out), 0);
			assert_int_equal(out.rank, 3);
			assert_int_equal(out.dims[2], 50);
			out.data = yr;
			assert_int_equal(copro_plan_run(pr, &in, &out), 0);
			/* |x| < 1, |w| < 1, K = 24: one layer's worst case is below 24 * 2/127 */
			for (int i = 0; i < 300; i++)
				assert_true(fabs(y[i] - yr[i]) < 24 * 2.0 / 127);
			copro_plan_free(pl);
			copro_plan_free(pr);
		}
		copro_graph_free(g);
	}
}

/* ---------------------------------------------------------------------- */
/* Options                                                                */
/* ---------------------------------------------------------------------- */

/* ---------------------------------------------------------------------- */
/* The own f32 kernel (gemm_f32.c)                                        */
/* ---------------------------------------------------------------------- */

static int avx512f;

/* A Gemm of form f (as check_lowered_form builds it), its input A filled in in[0]. */
static struct copro_graph *form_graph(const struct gemm_form *f, struct copro_kt *in)
{
	struct copro_graph *g = gb_new();
	struct copro_node *n;
	int64_t M = f->M, K = f->K, N = f->N;
	float *a;

	gb_input(g, "A", 2, f->ta ? DIMS(K, M) : DIMS(M, K));
	gb_output(g, "Y");
	gb_const(g, "W", 2, f->tb ? DIMS(N, K) : DIMS(K, N));
	switch (f->c) {
	case 1: gb_const(g, "C", 1, DIMS(N)); break;
	case 2: gb_const(g, "C", 2, DIMS(M, 1)); break;
	case 3: gb_const(g, "C", 1, DIMS(1)); break;
	case 4: gb_const(g, "C", 2, DIMS(M, N)); break;
	}
	n = gb_node(g, "Gemm", f->c && f->c != 5 ? IN("A", "W", "C") : IN("A", "W"),
		    IN(f->act ? "G" : "Y"));
	gb_attr(n, "transA", COPRO_ATTR_INT, f->ta, 0);
	gb_attr(n, "transB", COPRO_ATTR_INT, f->tb, 0);
	gb_attr(n, "alpha", COPRO_ATTR_FLOAT, 0, f->alpha);
	gb_attr(n, "beta", COPRO_ATTR_FLOAT, 0, f->beta);
	if (f->act) {
		n = gb_node(g, f->act, IN("G"), IN("Y"));
		if (!strcmp(f->act, "LeakyRelu"))
			gb_attr(n, "alpha", COPRO_ATTR_FLOAT, 0, 0.3f);
	}
	a = aligned_alloc(64, ((size_t)(M * K) * 4 + 63) & ~(size_t)63);
	for (int64_t i = 0; i < M * K; i++)
		a[i] = i % 31 == 0 ? 0.0f : 3.0f * rndf();
	memset(in, 0, sizeof(*in));
	in->dtype = COPRO_K_F32;
	in->rank = 2;
	in->dims[0] = f->ta ? K : M;
	in->dims[1] = f->ta ? M : K;
	in->data = a;
	return g;
}

static double ref_act(const char *act, double v)
{
	if (!act)
		return v;
	if (!strcmp(act, "Relu"))
		return v < 0 ? 0 : v;
	if (!strcmp(act, "LeakyRelu"))
		return v < 0 ? 0.3 * v : v;
	if (!strcmp(act, "Sigmoid"))
		return 1.0 / (1.0 + exp(-v));
	return tanh(v);
}

/*
 * The default plan (own kernel where it takes the form) and the OpenBLAS
 * plan (COPRO_PLAN_F_BLAS), fused and not, against a double reference
 * within f32's worst case for a K-term sum, (K + 2) u sum |alpha a w| +
 * |beta C| (u = 2^-24), doubled for the activation's own rounding; the
 * fused and unfused default plans bit for bit.
 */
static void check_f32_form(const struct gemm_form *f)
{
	struct copro_kt in;
	struct copro_graph *g = form_graph(f, &in);
	struct copro_plan_opts o = COPRO_PLAN_OPTS_INIT;
	struct copro_kt out = { 0 };
	struct copro_plan *p[4];
	int64_t M = f->M, K = f->K, N = f->N;
	const float *w = const_data(g, "W"), *c = f->c && f->c != 5 ? const_data(g, "C") : NULL;
	const float *a = in.data;
	float *y[4];
	char err[256];

	for (int v = 0; v < 4; v++) {
		o.fuse = v & 1 ? 0 : 1;
		o.flags = v & 2 ? COPRO_PLAN_F_BLAS : 0;
		if (copro_plan_build_opts(g, &in, &o, &p[v], err, sizeof(err)))
			fail_msg("%s", err);
		y[v] = aligned_alloc(64, ((size_t)(M * N) * 4 + 63) & ~(size_t)63);
		out.data = y[v];
		assert_int_equal(copro_plan_run(p[v], &in, &out), 0);
	}
	assert_memory_equal(y[0], y[1], (size_t)(M * N) * 4);
	for (int64_t i = 0; i < M; i++) {
		for (int64_t j = 0; j < N; j++) {
			double sum = 0, mag = 0, cv = 0, want, tol;

			for (int64_t k = 0; k < K; k++) {
				double t = (double)a[f->ta ? k * M + i : i * K + k] *
					   w[f->tb ? j * K + k : k * N + j];

				sum += t;
				mag += fabs(t);
			}
			if (c) {
				switch (f->c) {
				case 1: cv = c[j]; break;
				case 2: cv = c[i]; break;
				case 3: cv = c[0]; break;
				case 4: cv = c[i * N + j]; break;
				}
			}
			want = ref_act(f->act, f->alpha * sum + f->beta * cv);
			tol = 2.0 * (double)(K + 2) * ldexp(1.0, -24) *
			      (fabs(f->alpha) * mag + fabs(f->beta * cv)) + 1e-30;
			for (int v = 0; v < 4; v += 2) {
				double got = y[v][i * N + j];

				if (!(fabs(got - want) <= tol))
					fail_msg("form M%d K%d N%d c%d %s, %s plan, [%lld, %lld]: "
						 "%.9g, want %.9g (tol %.3g)", f->M, f->K, f->N,
						 f->c, f->act ? f->act : "-", v ? "BLAS" : "default",
						 (long long)i, (long long)j, got, want, tol);
			}
		}
	}
	for (int v = 0; v < 4; v++) {
		copro_plan_free(p[v]);
		free(y[v]);
	}
	free(in.data);
	copro_graph_free(g);
}

static void own_f32_kernel_should_agree_with_openblas_and_a_double_reference(void **state)
{
	/* The forms above, and the shapes of the kernel's blocks and edges. */
	static const struct gemm_form own[] = {
		{ 0, 1, 1, 32, 256, 1.0f, 1.0f, 1, "Relu" },
		{ 0, 1, 64, 256, 256, 1.0f, 1.0f, 1, "Relu" },
		{ 0, 1, 67, 256, 1, 1.0f, 1.0f, 1, "Sigmoid" },
		{ 0, 0, 5, 17, 1, 1.0f, 1.0f, 3, NULL },
		{ 0, 0, 3, 1, 300, 1.0f, 2.0f, 1, "LeakyRelu" },
		{ 0, 1, 13, 100, 37, 1.0f, 0.5f, 3, "Tanh" },
		{ 0, 0, 2, 9, 260, 1.0f, 0.0f, 4, NULL },
		{ 0, 0, 8, 64, 80, 1.0f, 1.0f, 0, "Relu" },
	};

	for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
		check_f32_form(&forms[i]);
	for (size_t i = 0; i < sizeof(own) / sizeof(own[0]); i++)
		check_f32_form(&own[i]);
}

/*
 * The kernel sums each output in one order whatever block it is in: a row
 * scored alone and the same row inside a batch of 64 (or 13) agree bit
 * for bit, so a request's answer does not depend on who it was batched
 * with. (OpenBLAS's sgemv and sgemm do not promise that.)
 */
static void own_f32_kernel_should_give_a_row_the_same_bits_in_any_batch(void **state)
{
	static const int64_t batches[] = { 64, 13 };
	char err[256], *path = write_mlp("--in 32 --hidden 256,256 --out 1 --seed 1");
	struct copro_graph *g;
	struct copro_plan *p1;
	struct copro_kt in1 = { .dtype = COPRO_K_F32, .rank = 2, .dims = { 1, 32 } };
	struct copro_kt out = { 0 };
	float *x = aligned_alloc(64, 64 * 32 * 4), *y = aligned_alloc(64, 64 * 4);
	float *y1 = aligned_alloc(64, 64);

	if (!avx512f) {
		free(x);
		free(y);
		free(y1);
		unlink(path);
		free(path);
		skip();
	}
	assert_int_equal(copro_graph_load(path, &g, err, sizeof(err)), 0);
	unlink(path);
	free(path);
	for (int i = 0; i < 64 * 32; i++)
		x[i] = 4.0f * rndf();
	assert_int_equal(copro_plan_build_opts(g, &in1, NULL, &p1, err, sizeof(err)), 0);
	for (size_t bi = 0; bi < 2; bi++) {
		struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2,
				       .dims = { batches[bi], 32 }, .data = x };
		struct copro_plan *p;

		assert_int_equal(copro_plan_build_opts(g, &in, NULL, &p, err, sizeof(err)), 0);
		out.data = y;
		assert_int_equal(copro_plan_run(p, &in, &out), 0);
		for (int64_t r = 0; r < batches[bi]; r++) {
			in1.data = x + r * 32;	/* 128-byte rows: aligned, used in place */
			out.data = y1;
			assert_int_equal(copro_plan_run(p1, &in1, &out), 0);
			if (memcmp(y1, &y[r], 4))
				fail_msg("row %lld: %.9g alone, %.9g in a batch of %lld",
					 (long long)r, y1[0], y[r], (long long)batches[bi]);
		}
		copro_plan_free(p);
	}
	copro_plan_free(p1);
	copro_graph_free(g);
	free(x);
	free(y);
	free(y1);
}

/* Packs on g's list. */
static int n_packs(const struct copro_graph *g)
{
	int n = 0;

	for (const struct copro_wpack *p = g->packs; p; p = p->next)
		n++;
	return n;
}

/*
 * One packed copy of each layer's weights for all the plans of a graph
 * (a daemon builds one per batch size and runs whichever fits): three
 * layers, three packs, however many plans; none on OpenBLAS.
 */
static void every_plan_of_a_graph_should_share_one_packing_of_the_weights(void **state)
{
	char err[256], *path = write_mlp("--in 32 --hidden 256,256 --out 1 --seed 1");
	struct copro_plan_opts blas = COPRO_PLAN_OPTS_INIT;
	struct copro_plan *p[17];
	struct copro_graph *g;

	assert_int_equal(copro_graph_load(path, &g, err, sizeof(err)), 0);
	unlink(path);
	free(path);
	blas.flags = COPRO_PLAN_F_BLAS;
	for (int m = 1; m <= 16; m++) {
		struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { m, 32 } };

		assert_int_equal(copro_plan_build_opts(g, &in, &blas, &p[m], err, sizeof(err)), 0);
		copro_plan_free(p[m]);
	}
	assert_int_equal(n_packs(g), 0);
	for (int m = 1; m <= 16; m++) {
		struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { m, 32 } };

		assert_int_equal(copro_plan_build_opts(g, &in, NULL, &p[m], err, sizeof(err)), 0);
	}
	assert_int_equal(n_packs(g), avx512f ? 3 : 0);
	for (int m = 1; m <= 16; m++)
		copro_plan_free(p[m]);
	assert_int_equal(n_packs(g), avx512f ? 3 : 0);	/* the graph's until it goes */
	copro_graph_free(g);
}

static void should_refuse_unknown_options_and_take_null_as_the_defaults(void **state)
{
	struct copro_graph *g = matmul_bias_act("Relu", 0, 1);
	struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { 2, 24 } };
	struct copro_plan_opts o = COPRO_PLAN_OPTS_INIT;
	struct copro_plan *p = NULL;
	char err[256];
	uint32_t prec = 99;

	o.reserved[4] = 1;
	assert_int_equal(copro_plan_build_opts(g, &in, &o, &p, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "reserved option 4 is not 0");
	assert_null(p);
	o.reserved[4] = 0;
	o.precision = 3;
	assert_int_equal(copro_plan_build_opts(g, &in, &o, &p, err, sizeof(err)), -EINVAL);
	o.precision = COPRO_PREC_F32;
	o.flags = 1U << 7;
	assert_int_equal(copro_plan_build_opts(g, &in, &o, &p, err, sizeof(err)), -EINVAL);
	o.flags = 0;
	o.fuse = 2;
	assert_int_equal(copro_plan_build_opts(g, &in, &o, &p, err, sizeof(err)), -EINVAL);

	assert_int_equal(copro_plan_build_opts(g, &in, NULL, &p, err, sizeof(err)), 0);
	assert_int_equal(copro_plan_n_steps(p), 1);
	assert_int_equal(copro_plan_n_lowp(p), 0);
	assert_string_equal(copro_plan_kernel(p), "f32");
	copro_plan_free(p);
	/* copro_plan_build: the defaults, f32 with fusion. */
	assert_int_equal(copro_plan_build(g, &in, &p, err, sizeof(err)), 0);
	assert_int_equal(copro_plan_n_steps(p), 1);
	copro_plan_free(p);
	copro_graph_free(g);

	assert_int_equal(copro_prec_parse("int8", &prec), 0);
	assert_int_equal(prec, COPRO_PREC_INT8);
	assert_int_equal(copro_prec_parse("bfloat16", &prec), 0);
	assert_int_equal(prec, COPRO_PREC_BF16);
	assert_int_equal(copro_prec_parse("fp32", &prec), 0);
	assert_int_equal(prec, COPRO_PREC_F32);
	assert_int_equal(copro_prec_parse("fp16", &prec), -EINVAL);
	assert_int_equal(copro_prec_parse(NULL, &prec), -EINVAL);
	assert_string_equal(copro_prec_name(COPRO_PREC_BF16), "bf16");
	assert_string_equal(copro_prec_name(7), "?");
}

/* ---------------------------------------------------------------------- */
/* Speed (informational: printed, never asserted)                         */
/* ---------------------------------------------------------------------- */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Best of 5 rounds of `iters` runs, in microseconds per run. */
static double time_plan(struct copro_plan *p, struct copro_kt *in, struct copro_kt *out,
			int iters)
{
	double best = 1e30;

	for (int r = 0; r < 5; r++) {
		double t0 = now_us();

		for (int i = 0; i < iters; i++)
			copro_plan_run(p, in, out);
		t0 = (now_us() - t0) / iters;
		best = t0 < best ? t0 : best;
	}
	return best;
}

static void should_report_the_speed_of_fused_and_unfused_plans(void **state)
{
	static const int64_t batches[] = { 1, 64 };
	char err[256], line[512], *path = write_mlp("--in 32 --hidden 256,256 --out 1 --seed 1");
	struct copro_graph *g;
	size_t k = 0;

	assert_int_equal(copro_graph_load(path, &g, err, sizeof(err)), 0);
	unlink(path);
	free(path);
	k += snprintf(line + k, sizeof(line) - k, "fraud MLP 32-256-256-1, f32, best of 5:");
	for (size_t bi = 0; bi < 2; bi++) {
		struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2,
				       .dims = { batches[bi], 32 } };
		struct copro_kt out = { 0 };
		float *x = aligned_alloc(64, (size_t)batches[bi] * 32 * 4);
		float *y = aligned_alloc(64, ((size_t)batches[bi] * 4 + 63) & ~(size_t)63);
		struct copro_plan *pf, *pu;
		int iters = batches[bi] == 1 ? 4000 : 400;

		for (int i = 0; i < batches[bi] * 32; i++)
			x[i] = rndf();
		pf = build(g, &in, 1, COPRO_PREC_F32);
		pu = build(g, &in, 0, COPRO_PREC_F32);
		in.data = x;
		out.data = y;
		k += snprintf(line + k, sizeof(line) - k,
			      " batch %lld %.2f us fused, %.2f unfused;", (long long)batches[bi],
			      time_plan(pf, &in, &out, iters), time_plan(pu, &in, &out, iters));
		copro_plan_free(pf);
		copro_plan_free(pu);
		free(x);
		free(y);
	}
	printf("figures: %s\n", line);
	copro_graph_free(g);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_fuse_each_layer_of_the_fraud_mlp_and_match_bit_for_bit),
		cmocka_unit_test(should_fuse_an_mlp_with_odd_widths_and_tanh),
		cmocka_unit_test(should_fuse_matmul_bias_and_each_activation),
		cmocka_unit_test(should_fuse_a_batched_matmul_with_a_2d_weight),
		cmocka_unit_test(should_fuse_gemm_with_every_attribute_and_c_shape),
		cmocka_unit_test(should_not_fuse_when_the_intermediate_is_a_graph_output),
		cmocka_unit_test(should_not_fuse_an_intermediate_with_two_readers),
		cmocka_unit_test(should_not_fuse_an_add_that_is_not_a_bias_row),
		cmocka_unit_test(should_chain_fused_layers_and_keep_nan_and_inf),
		cmocka_unit_test(lowered_gemm_should_stay_within_one_layers_bound_in_every_form),
		cmocka_unit_test(lowered_matmul_should_fold_batch_dims_into_rows),
		cmocka_unit_test(own_f32_kernel_should_agree_with_openblas_and_a_double_reference),
		cmocka_unit_test(own_f32_kernel_should_give_a_row_the_same_bits_in_any_batch),
		cmocka_unit_test(every_plan_of_a_graph_should_share_one_packing_of_the_weights),
		cmocka_unit_test(should_refuse_unknown_options_and_take_null_as_the_defaults),
		cmocka_unit_test(should_report_the_speed_of_fused_and_unfused_plans),
	};

#if defined(__x86_64__)
	avx512_bf16 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
	avx512_vnni = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
		      __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni");
	avx512f = __builtin_cpu_supports("avx512f");
#endif
	return cmocka_run_group_tests_name("plan fusion", tests, NULL, NULL);
}
