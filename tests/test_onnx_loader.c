// SPDX-License-Identifier: MIT
/*
 * test_onnx_loader.c - the ONNX loader on good and bad input, and the
 * planner: buffer reuse, constant folding, copies for outputs that are
 * inputs or constants, misaligned caller buffers, and a run that must not
 * allocate.
 *
 * Models are built in memory with protobuf-c (struct mb below), so the
 * tests need no file from outside the repository. Every bad input must come
 * back as its own error code with a reason, never a crash; run the ASan
 * build (make SANITIZE=address,undefined) to see that nothing leaks either.
 *
 * The allocation counter interposes malloc and friends in this binary (glibc
 * no longer has __malloc_hook); under ASan, whose allocator owns those
 * symbols, it uses the sanitizer's allocation hooks instead.
 */
#include <errno.h>
#include <malloc.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "onnx.pb-c.h"
#include "onnx/graph.h"
#include "onnx/ops.h"
#include "onnx/plan.h"

/* ---------------------------------------------------------------------- */
/* Counting allocations                                                   */
/* ---------------------------------------------------------------------- */

static atomic_int counting;
static atomic_long n_allocs;

static inline void count_alloc(void)
{
	if (atomic_load_explicit(&counting, memory_order_relaxed))
		atomic_fetch_add_explicit(&n_allocs, 1, memory_order_relaxed);
}

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* From <sanitizer/allocator_interface.h>, which gcc does not always install. */
int __sanitizer_install_malloc_and_free_hooks(void (*malloc_hook)(const volatile void *, size_t),
					      void (*free_hook)(const volatile void *));

static void hook_malloc(const volatile void *p, size_t n)
{
	count_alloc();
}

static void hook_free(const volatile void *p)
{
	count_alloc();
}

static void counter_install(void)
{
	static int done;

	if (!done)
		__sanitizer_install_malloc_and_free_hooks(hook_malloc, hook_free);
	done = 1;
}
#else
/*
 * The test binary's own allocator entry points: glibc resolves malloc to
 * these for every library in the process, the kernels included.
 */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void *__libc_memalign(size_t, size_t);
extern void __libc_free(void *);

void *malloc(size_t n)
{
	count_alloc();
	return __libc_malloc(n);
}

void *calloc(size_t a, size_t b)
{
	count_alloc();
	return __libc_calloc(a, b);
}

void *realloc(void *p, size_t n)
{
	count_alloc();
	return __libc_realloc(p, n);
}

void free(void *p)
{
	if (p)
		count_alloc();
	__libc_free(p);
}

void *aligned_alloc(size_t al, size_t n)
{
	count_alloc();
	return __libc_memalign(al, n);
}

void *memalign(size_t al, size_t n)
{
	count_alloc();
	return __libc_memalign(al, n);
}

int posix_memalign(void **out, size_t al, size_t n)
{
	void *p;

	count_alloc();
	if (al < sizeof(void *) || (al & (al - 1)))
		return EINVAL;
	p = __libc_memalign(al, n);
	if (!p)
		return ENOMEM;
	*out = p;
	return 0;
}

static void counter_install(void)
{
}
#endif

/* ---------------------------------------------------------------------- */
/* Building models in memory                                              */
/* ---------------------------------------------------------------------- */

#define MB_MAX	32

/*
 * One model under construction: every protobuf struct lives in these
 * arrays, so nothing needs freeing but the packed bytes. Strings point to
 * literals (protobuf-c's pack only reads them).
 */
struct mb {
	Onnx__ModelProto m;
	Onnx__GraphProto g;
	Onnx__OperatorSetIdProto os[2], *osp[2];
	Onnx__NodeProto node[MB_MAX], *nodep[MB_MAX];
	Onnx__AttributeProto attr[MB_MAX], *attrp[MB_MAX];
	int n_attr;
	Onnx__ValueInfoProto vi[MB_MAX], *inp[MB_MAX], *outp[MB_MAX];
	int n_vi;
	Onnx__TypeProto type[MB_MAX];
	Onnx__TypeProto__Tensor tt[MB_MAX];
	Onnx__TensorShapeProto shape[MB_MAX];
	Onnx__TensorShapeProto__Dimension dim[MB_MAX][COPRO_K_MAX_RANK + 2];
	Onnx__TensorShapeProto__Dimension *dimp[MB_MAX][COPRO_K_MAX_RANK + 2];
	Onnx__TensorProto init[MB_MAX], *initp[MB_MAX];
	int64_t init_dims[MB_MAX][COPRO_K_MAX_RANK + 2];
	char *names[MB_MAX][8];	/* node inputs, then outputs, per node */
	char *onames[MB_MAX][4];
};

static void mb_init(struct mb *b, int64_t opset)
{
	memset(b, 0, sizeof(*b));
	b->m = (Onnx__ModelProto)ONNX__MODEL_PROTO__INIT;
	b->g = (Onnx__GraphProto)ONNX__GRAPH_PROTO__INIT;
	b->os[0] = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
	b->os[0].domain = "";
	b->os[0].has_version = 1;
	b->os[0].version = opset;
	b->osp[0] = &b->os[0];
	b->m.has_ir_version = 1;
	b->m.ir_version = 8;
	b->m.producer_name = "test_onnx_loader";
	b->m.n_opset_import = 1;
	b->m.opset_import = b->osp;
	b->m.graph = &b->g;
	b->g.name = "g";
	b->g.node = b->nodep;
	b->g.input = b->inp;
	b->g.output = b->outp;
	b->g.initializer = b->initp;
}

/* A tensor-typed ValueInfoProto; dims of -1 become the symbolic "N". */
static Onnx__ValueInfoProto *mb_vi(struct mb *b, const char *name, int32_t dtype, int rank,
				   const int64_t *dims)
{
	int i = b->n_vi++, k;

	assert_true(i < MB_MAX);
	b->vi[i] = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
	b->type[i] = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
	b->tt[i] = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
	b->shape[i] = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
	b->vi[i].name = (char *)name;
	b->vi[i].type = &b->type[i];
	b->type[i].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	b->type[i].tensor_type = &b->tt[i];
	b->tt[i].has_elem_type = 1;
	b->tt[i].elem_type = dtype;
	b->tt[i].shape = &b->shape[i];
	b->shape[i].n_dim = (size_t)rank;
	b->shape[i].dim = b->dimp[i];
	for (k = 0; k < rank; k++) {
		Onnx__TensorShapeProto__Dimension *d = &b->dim[i][k];

		*d = (Onnx__TensorShapeProto__Dimension)ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
		if (dims[k] < 0) {
			d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
			d->dim_param = "N";
		} else {
			d->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
			d->dim_value = dims[k];
		}
		b->dimp[i][k] = d;
	}
	return &b->vi[i];
}

static Onnx__ValueInfoProto *mb_input(struct mb *b, const char *name, int32_t dtype, int rank,
				      const int64_t *dims)
{
	Onnx__ValueInfoProto *vi = mb_vi(b, name, dtype, rank, dims);

	b->inp[b->g.n_input++] = vi;
	return vi;
}

static Onnx__ValueInfoProto *mb_output(struct mb *b, const char *name, int32_t dtype, int rank,
				       const int64_t *dims)
{
	Onnx__ValueInfoProto *vi = mb_vi(b, name, dtype, rank, dims);

	b->outp[b->g.n_output++] = vi;
	return vi;
}

/* An initializer with raw_data (the bytes are not copied: keep them alive). */
static Onnx__TensorProto *mb_init_raw(struct mb *b, const char *name, int32_t dtype, int rank,
				      const int64_t *dims, const void *data, size_t len)
{
	int i = (int)b->g.n_initializer++;
	Onnx__TensorProto *t = &b->init[i];

	assert_true(i < MB_MAX && rank <= COPRO_K_MAX_RANK + 2);
	*t = (Onnx__TensorProto)ONNX__TENSOR_PROTO__INIT;
	t->name = (char *)name;
	t->has_data_type = 1;
	t->data_type = dtype;
	memcpy(b->init_dims[i], dims, (size_t)rank * sizeof(int64_t));
	t->n_dims = (size_t)rank;
	t->dims = b->init_dims[i];
	t->has_raw_data = 1;
	t->raw_data.len = len;
	t->raw_data.data = (uint8_t *)data;
	b->initp[i] = t;
	return t;
}

/* A node; ins and outs are NULL-terminated lists of names ("" = absent). */
static Onnx__NodeProto *mb_node(struct mb *b, const char *op, const char *name,
				const char *const *ins, const char *const *outs)
{
	int i = (int)b->g.n_node++, k = 0, o = 0;
	Onnx__NodeProto *n = &b->node[i];

	assert_true(i < MB_MAX);
	*n = (Onnx__NodeProto)ONNX__NODE_PROTO__INIT;
	n->op_type = (char *)op;
	n->name = (char *)name;
	while (ins[k]) {
		b->names[i][k] = (char *)ins[k];
		k++;
	}
	while (outs[o]) {
		b->onames[i][o] = (char *)outs[o];
		o++;
	}
	n->n_input = (size_t)k;
	n->input = b->names[i];
	n->n_output = (size_t)o;
	n->output = b->onames[i];
	b->nodep[i] = n;
	return n;
}

static Onnx__AttributeProto *mb_attr(struct mb *b, Onnx__NodeProto *n, const char *name, int type)
{
	Onnx__AttributeProto *a = &b->attr[b->n_attr];

	assert_true(b->n_attr < MB_MAX);
	*a = (Onnx__AttributeProto)ONNX__ATTRIBUTE_PROTO__INIT;
	a->name = (char *)name;
	a->has_type = 1;
	a->type = type;
	b->attrp[b->n_attr++] = a;
	/* Attributes of one node must be adjacent in attrp: add them in a row. */
	if (!n->n_attribute)
		n->attribute = &b->attrp[b->n_attr - 1];
	n->n_attribute++;
	return a;
}

static uint8_t *mb_pack(struct mb *b, size_t *len)
{
	uint8_t *buf;

	*len = onnx__model_proto__get_packed_size(&b->m);
	buf = malloc(*len ? *len : 1);
	assert_non_null(buf);
	assert_int_equal(onnx__model_proto__pack(&b->m, buf), *len);
	return buf;
}

/* Loads b; returns the code, with the graph freed and the reason in err. */
static int mb_load(struct mb *b, char *err, size_t errlen)
{
	struct copro_graph *g = NULL;
	size_t len;
	uint8_t *buf = mb_pack(b, &len);
	int rc = copro_graph_load_buf(buf, len, &g, err, errlen);

	free(buf);
	if (rc == 0)
		assert_non_null(g);
	else
		assert_null(g);
	copro_graph_free(g);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* The small valid model                                                  */
/* ---------------------------------------------------------------------- */

static const int64_t dims_x[] = { -1, 4 };
static const int64_t dims_w[] = { 4, 3 };
static const int64_t dims_bias[] = { 3 };
static const int64_t dims_y[] = { -1, 3 };
static float w_data[12] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };
static float bias_data[3] = { -100, 0, 100 };

/* Y = Relu(X @ W + B), X (N, 4), W (4, 3), B (3), at the given opset. */
static void mb_mlp(struct mb *b, int64_t opset)
{
	mb_init(b, opset);
	mb_input(b, "X", COPRO_K_F32, 2, dims_x);
	mb_output(b, "Y", COPRO_K_F32, 2, dims_y);
	mb_init_raw(b, "W", COPRO_K_F32, 2, dims_w, w_data, sizeof(w_data));
	mb_init_raw(b, "B", COPRO_K_F32, 1, dims_bias, bias_data, sizeof(bias_data));
	mb_node(b, "MatMul", "mm", (const char *[]){ "X", "W", NULL },
		(const char *[]){ "XW", NULL });
	mb_node(b, "Add", "add", (const char *[]){ "XW", "B", NULL },
		(const char *[]){ "Z", NULL });
	mb_node(b, "Relu", "relu", (const char *[]){ "Z", NULL }, (const char *[]){ "Y", NULL });
}

static void loader_should_load_a_small_model(void **state)
{
	struct copro_graph *g = NULL;
	const struct copro_value *x, *w;
	char err[256] = "";
	struct mb b;
	size_t len;
	uint8_t *buf;

	mb_mlp(&b, 13);
	buf = mb_pack(&b, &len);
	assert_int_equal(copro_graph_load_buf(buf, len, &g, err, sizeof(err)), 0);
	free(buf);
	assert_int_equal(g->opset, 13);
	assert_int_equal(g->n_nodes, 3);
	assert_int_equal(g->n_inputs, 1);
	assert_int_equal(g->n_outputs, 1);
	x = &g->values[g->inputs[0]];
	assert_string_equal(x->name, "X");
	assert_true(x->is_input);
	assert_int_equal(x->t.rank, 2);
	assert_int_equal(x->t.dims[0], -1);
	assert_string_equal(x->dim_names[0], "N");
	assert_null(x->dim_names[1]);
	assert_int_equal(x->t.dims[1], 4);
	w = &g->values[g->nodes[0].in[1]];
	assert_string_equal(w->name, "W");
	assert_true(w->is_const);
	assert_int_equal(((uintptr_t)w->t.data) % 64, 0);
	assert_memory_equal(w->t.data, w_data, sizeof(w_data));
	assert_string_equal(g->nodes[2].op_type, "Relu");
	assert_int_equal(g->nodes[2].out[0], g->outputs[0]);
	assert_string_equal(g->producer, "test_onnx_loader");
	copro_graph_free(g);
}

static void loader_should_survive_every_truncation(void **state)
{
	struct mb b;
	size_t len, i;
	uint8_t *buf;
	int ok = 0;

	mb_mlp(&b, 13);
	buf = mb_pack(&b, &len);
	for (i = 0; i < len; i++) {
		struct copro_graph *g = NULL;
		char err[256] = "";
		/* A copy of exactly i bytes, so ASan sees any read past the end. */
		uint8_t *p = malloc(i ? i : 1);
		int rc;

		memcpy(p, buf, i);
		rc = copro_graph_load_buf(p, i, &g, err, sizeof(err));
		if (rc == 0) {
			ok++;	/* a prefix that ends on a field boundary can be a model */
			copro_graph_free(g);
		} else {
			assert_true(rc == -EINVAL || rc == -ENOTSUP);
			assert_true(err[0] != '\0');
			assert_null(g);
		}
		free(p);
	}
	assert_true(ok < (int)len);
	free(buf);
}

/* xorshift64*: reproducible bytes without libc's rand state. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;

static uint64_t rng(void)
{
	rng_state ^= rng_state >> 12;
	rng_state ^= rng_state << 25;
	rng_state ^= rng_state >> 27;
	return rng_state * 2685821657736338717ull;
}

static void loader_should_survive_random_and_mutated_bytes(void **state)
{
	struct mb b;
	size_t len, i, k;
	uint8_t *model;

	mb_mlp(&b, 13);
	model = mb_pack(&b, &len);
	for (i = 0; i < 3000; i++) {
		struct copro_graph *g = NULL;
		struct copro_plan *p = NULL;
		char err[256] = "";
		size_t n = i < 1000 ? rng() % 300 : len;
		uint8_t *buf = malloc(n ? n : 1);
		int rc;

		if (i < 1000) {
			for (k = 0; k < n; k++)
				buf[k] = (uint8_t)rng();
		} else {
			/* The valid model with one to four bytes changed. */
			memcpy(buf, model, len);
			for (k = 0; k <= rng() % 4; k++)
				buf[rng() % len] = (uint8_t)rng();
		}
		rc = copro_graph_load_buf(buf, n, &g, err, sizeof(err));
		if (rc == 0) {
			struct copro_kt in[8] = { 0 };
			int j, d;

			/* Whatever loaded must plan or fail cleanly too. */
			for (j = 0; j < g->n_inputs && j < 8; j++) {
				in[j] = g->values[g->inputs[j]].t;
				if (in[j].rank < 0)
					in[j].rank = 0;
				for (d = 0; d < in[j].rank; d++)
					in[j].dims[d] = in[j].dims[d] < 0 ? 1 : in[j].dims[d];
			}
			if (g->n_inputs <= 8 && copro_plan_build(g, in, &p, err, sizeof(err)) == 0)
				copro_plan_free(p);
			copro_graph_free(g);
		} else {
			assert_true(err[0] != '\0');
		}
		free(buf);
	}
	free(model);
}

static void loader_should_reject_negative_dims(void **state)
{
	static const int64_t bad[] = { -3, 4 };
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	b.init[0].dims[0] = bad[0];
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "negative"));

	/* And in a declared input shape. */
	mb_mlp(&b, 13);
	b.dim[0][1].dim_value = -4;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "negative"));
}

static void loader_should_reject_a_raw_data_size_mismatch(void **state)
{
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	b.init[0].raw_data.len -= 4;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "raw_data"));
	assert_non_null(strstr(err, "W"));

	/* dims whose product overflows int64 must not wrap to a small size */
	mb_mlp(&b, 13);
	b.init[0].dims[0] = INT64_MAX / 2;
	b.init[0].dims[1] = 4;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);

	/* typed field with the wrong count */
	mb_mlp(&b, 13);
	b.init[0].has_raw_data = 0;
	b.init[0].n_float_data = 11;
	b.init[0].float_data = w_data;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "11 values for 12 elements"));
}

static void loader_should_refuse_external_data(void **state)
{
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	b.init[0].has_raw_data = 0;
	b.init[0].has_data_location = 1;
	b.init[0].data_location = ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "external data is not supported (tensor W)");
}

static void loader_should_refuse_opsets_outside_9_to_17(void **state)
{
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 8);
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "opset 8 "));
	mb_mlp(&b, 18);
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "opset 18 "));
	mb_mlp(&b, 9);
	assert_int_equal(mb_load(&b, err, sizeof(err)), 0);
	mb_mlp(&b, 17);
	assert_int_equal(mb_load(&b, err, sizeof(err)), 0);

	/* "ai.onnx" is the default domain too */
	mb_mlp(&b, 18);
	b.os[0].domain = "ai.onnx";
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);

	/* no default-domain import while default-domain nodes exist */
	mb_mlp(&b, 13);
	b.os[0].domain = "com.example";
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
}

static void loader_should_refuse_unknown_element_types(void **state)
{
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	b.init[0].data_type = 99;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "unknown element type 99"));

	mb_mlp(&b, 13);
	b.tt[0].elem_type = 42;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "X"));

	mb_mlp(&b, 13);
	b.init[0].data_type = COPRO_K_STRING;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "string"));

	mb_mlp(&b, 13);
	b.init[0].has_data_type = 0;
	b.init[0].data_type = 0;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
}

static void loader_should_refuse_an_input_never_produced(void **state)
{
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	b.names[1][0] = "nowhere";
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "nowhere"));
	assert_non_null(strstr(err, "never produced"));

	/* produced, but by a later node: not topologically sorted */
	mb_mlp(&b, 13);
	b.names[1][0] = "Y";
	b.names[2][0] = "XW";
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "topological"));

	/* a graph output nobody produces */
	mb_mlp(&b, 13);
	b.vi[1].name = "ghost";
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "ghost"));
}

static void loader_should_refuse_two_producers(void **state)
{
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	b.onames[1][0] = "XW";
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "XW"));

	/* a node writing over an initializer */
	mb_mlp(&b, 13);
	b.onames[0][0] = "W";
	assert_int_equal(mb_load(&b, err, sizeof(err)), -EINVAL);
}

static void loader_should_refuse_rank_9(void **state)
{
	static const int64_t d9[] = { 1, 1, 1, 1, 1, 1, 1, 1, 1 };
	static float one = 1;
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	mb_init_raw(&b, "R9", COPRO_K_F32, 9, d9, &one, sizeof(one));
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "rank 9"));

	mb_init(&b, 13);
	mb_input(&b, "X", COPRO_K_F32, 9, d9);
	mb_output(&b, "X", COPRO_K_F32, 9, d9);
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "rank 9"));
}

static void loader_should_refuse_subgraph_attributes(void **state)
{
	Onnx__GraphProto body = ONNX__GRAPH_PROTO__INIT;
	Onnx__AttributeProto *a;
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	a = mb_attr(&b, &b.node[2], "body", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH);
	a->g = &body;
	assert_int_equal(mb_load(&b, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "Relu"));
	assert_non_null(strstr(err, "body"));
	assert_non_null(strstr(err, "relu"));
}

static void loader_should_copy_attributes(void **state)
{
	static int64_t ints[] = { 3, -1, 7 };
	static float floats[] = { 0.5f, 2.0f };
	ProtobufCBinaryData strs[2] = { { 2, (uint8_t *)"ab" }, { 0, NULL } };
	struct copro_graph *g = NULL;
	const int64_t *iv;
	const float *fv;
	Onnx__AttributeProto *a;
	char err[256] = "";
	struct mb b;
	size_t len;
	uint8_t *buf;

	mb_mlp(&b, 13);
	a = mb_attr(&b, &b.node[2], "i", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = -5;
	a = mb_attr(&b, &b.node[2], "f", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOAT);
	a->has_f = 1;
	a->f = 0.25f;
	a = mb_attr(&b, &b.node[2], "s", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRING);
	a->has_s = 1;
	a->s = strs[0];
	a = mb_attr(&b, &b.node[2], "ints", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INTS);
	a->n_ints = 3;
	a->ints = ints;
	a = mb_attr(&b, &b.node[2], "floats", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__FLOATS);
	a->n_floats = 2;
	a->floats = floats;
	a = mb_attr(&b, &b.node[2], "strings", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__STRINGS);
	a->n_strings = 2;
	a->strings = strs;
	buf = mb_pack(&b, &len);
	assert_int_equal(copro_graph_load_buf(buf, len, &g, err, sizeof(err)), 0);
	free(buf);
	assert_int_equal(copro_attr_int(&g->nodes[2], "i", 0), -5);
	assert_int_equal(copro_attr_int(&g->nodes[2], "missing", 42), 42);
	assert_int_equal(copro_attr_int(&g->nodes[2], "f", 42), 42);	/* wrong type */
	assert_true(copro_attr_float(&g->nodes[2], "f", 0) == 0.25f);
	assert_string_equal(copro_attr_str(&g->nodes[2], "s", "x"), "ab");
	assert_int_equal(copro_attr_ints(&g->nodes[2], "ints", &iv), 3);
	assert_int_equal(iv[1], -1);
	assert_int_equal(copro_attr_floats(&g->nodes[2], "floats", &fv), 2);
	assert_true(fv[1] == 2.0f);
	assert_int_equal(copro_attr_ints(&g->nodes[2], "nope", &iv), -1);
	assert_int_equal(copro_attr_find(&g->nodes[2], "strings")->n, 2);
	assert_string_equal(copro_attr_find(&g->nodes[2], "strings")->strings[1], "");
	copro_graph_free(g);
}

static void tensor_decode_should_read_every_typed_field(void **state)
{
	static const int64_t d4[] = { 2, 2 };
	int32_t i32[4] = { -1, 2, 300, 0x3c00 };
	int64_t i64[4] = { INT64_MIN, -1, 0, INT64_MAX };
	double f64[4] = { 0.5, -1, 1e300, 0 };
	uint64_t u64[4] = { 1, UINT64_MAX, 0, 7 };
	Onnx__TensorProto tp = ONNX__TENSOR_PROTO__INIT;
	struct copro_kt t;
	char err[256], *name;
	uint8_t buf[256];
	size_t len;

	tp.name = "t";
	tp.has_data_type = 1;
	tp.n_dims = 2;
	tp.dims = (int64_t *)d4;
	tp.n_int32_data = 4;
	tp.int32_data = i32;

	tp.data_type = COPRO_K_I8;
	len = onnx__tensor_proto__pack(&tp, buf);
	assert_int_equal(copro_tensor_decode(buf, len, &t, &name, err, sizeof(err)), 0);
	assert_string_equal(name, "t");
	assert_int_equal(((int8_t *)t.data)[0], -1);
	assert_int_equal(((int8_t *)t.data)[2], (int8_t)300);
	free(t.data);
	free(name);

	tp.data_type = COPRO_K_F16;
	len = onnx__tensor_proto__pack(&tp, buf);
	assert_int_equal(copro_tensor_decode(buf, len, &t, NULL, err, sizeof(err)), 0);
	assert_int_equal(((uint16_t *)t.data)[3], 0x3c00);
	free(t.data);

	tp.data_type = COPRO_K_BOOL;
	len = onnx__tensor_proto__pack(&tp, buf);
	assert_int_equal(copro_tensor_decode(buf, len, &t, NULL, err, sizeof(err)), 0);
	assert_int_equal(((uint8_t *)t.data)[0], 1);
	assert_int_equal(((uint8_t *)t.data)[3], 1);
	free(t.data);

	tp.n_int32_data = 0;
	tp.data_type = COPRO_K_I64;
	tp.n_int64_data = 4;
	tp.int64_data = i64;
	len = onnx__tensor_proto__pack(&tp, buf);
	assert_int_equal(copro_tensor_decode(buf, len, &t, NULL, err, sizeof(err)), 0);
	assert_memory_equal(t.data, i64, sizeof(i64));
	free(t.data);

	tp.n_int64_data = 0;
	tp.data_type = COPRO_K_F64;
	tp.n_double_data = 4;
	tp.double_data = f64;
	len = onnx__tensor_proto__pack(&tp, buf);
	assert_int_equal(copro_tensor_decode(buf, len, &t, NULL, err, sizeof(err)), 0);
	assert_memory_equal(t.data, f64, sizeof(f64));
	free(t.data);

	tp.n_double_data = 0;
	tp.data_type = COPRO_K_U32;
	tp.n_uint64_data = 4;
	tp.uint64_data = u64;
	len = onnx__tensor_proto__pack(&tp, buf);
	assert_int_equal(copro_tensor_decode(buf, len, &t, NULL, err, sizeof(err)), 0);
	assert_int_equal(((uint32_t *)t.data)[1], UINT32_MAX);
	free(t.data);

	/* a mismatched count and garbage are errors with a reason */
	tp.n_uint64_data = 3;
	len = onnx__tensor_proto__pack(&tp, buf);
	assert_int_equal(copro_tensor_decode(buf, len, &t, NULL, err, sizeof(err)), -EINVAL);
	assert_null(t.data);
	memset(buf, 0xff, 16);
	assert_int_equal(copro_tensor_decode(buf, 16, &t, NULL, err, sizeof(err)), -EINVAL);
	assert_true(err[0] != '\0');
}

static void loader_should_report_a_missing_file(void **state)
{
	struct copro_graph *g = NULL;
	char err[256] = "";

	assert_int_equal(copro_graph_load("/nonexistent/model.onnx", &g, err, sizeof(err)),
			 -ENOENT);
	assert_null(g);
	assert_non_null(strstr(err, "/nonexistent/model.onnx"));
}

/* ---------------------------------------------------------------------- */
/* Plans                                                                  */
/* ---------------------------------------------------------------------- */

/* Loads b into *g, failing the test with the reason if it does not load. */
static struct copro_graph *mb_graph(struct mb *b)
{
	struct copro_graph *g = NULL;
	char err[256] = "";
	size_t len;
	uint8_t *buf = mb_pack(b, &len);
	int rc = copro_graph_load_buf(buf, len, &g, err, sizeof(err));

	free(buf);
	if (rc)
		fail_msg("load: %s", err);
	return g;
}

static struct copro_plan *build(struct copro_graph *g, const struct copro_kt *in)
{
	struct copro_plan *p = NULL;
	char err[256] = "";
	int rc = copro_plan_build(g, in, &p, err, sizeof(err));

	if (rc)
		fail_msg("plan: %s (%d)", err, rc);
	return p;
}

static struct copro_kt kt_f32(int rank, const int64_t *dims, void *data)
{
	struct copro_kt t = { .dtype = COPRO_K_F32, .rank = rank, .data = data };

	memcpy(t.dims, dims, (size_t)rank * sizeof(int64_t));
	return t;
}

static float *falloc(size_t n)
{
	float *p = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);

	assert_non_null(p);
	return p;
}

static void plan_should_run_the_small_model(void **state)
{
	static const int64_t d[] = { 2, 4 };
	float x[8] __attribute__((aligned(64))) = { 1, 0, 0, 0, 0, 0, 0, -1 };
	float y[6] __attribute__((aligned(64)));
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in, out;
	const struct copro_kt *o;
	struct mb b;

	mb_mlp(&b, 13);
	g = mb_graph(&b);
	in = kt_f32(2, d, x);
	p = build(g, &in);
	o = copro_plan_output(p, 0);
	assert_int_equal(o->rank, 2);
	assert_int_equal(o->dims[0], 2);
	assert_int_equal(o->dims[1], 3);
	out = (struct copro_kt){ .data = y };
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	assert_int_equal(out.dims[1], 3);
	/* row 0: W[0] + B = (1-100, 2, 3+100) -> relu; row 1: -W[3] + B */
	assert_true(y[0] == 0 && y[1] == 2 && y[2] == 103);
	assert_true(y[3] == 0 && y[4] == 0 && y[5] == 88);

	/* the wrong shape is refused at run time, and at build time */
	in.dims[0] = 3;
	assert_int_equal(copro_plan_run(p, &in, &out), -EINVAL);
	copro_plan_free(p);
	in.dims[1] = 5;
	{
		char err[256];

		assert_int_equal(copro_plan_build(g, &in, &p, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "X"));
	}
	copro_graph_free(g);
}

static void plan_should_name_an_unsupported_operator(void **state)
{
	static const int64_t d[] = { 2, 4 };
	struct copro_graph *g;
	struct copro_plan *p = NULL;
	struct copro_kt in = kt_f32(2, d, NULL);
	char err[256] = "";
	struct mb b;

	mb_mlp(&b, 13);
	b.node[2].op_type = "NoSuchOp";
	g = mb_graph(&b);
	assert_int_equal(copro_plan_build(g, &in, &p, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err, "unsupported operator NoSuchOp (node relu, opset 13)");
	assert_null(p);
	copro_graph_free(g);

	mb_mlp(&b, 13);
	b.node[2].domain = "com.example";
	b.os[1] = (Onnx__OperatorSetIdProto)ONNX__OPERATOR_SET_ID_PROTO__INIT;
	b.os[1].domain = "com.example";
	b.os[1].has_version = 1;
	b.os[1].version = 2;
	b.osp[1] = &b.os[1];
	b.m.n_opset_import = 2;
	g = mb_graph(&b);
	assert_int_equal(copro_plan_build(g, &in, &p, err, sizeof(err)), -ENOTSUP);
	assert_string_equal(err,
			    "unsupported operator Relu of domain com.example (node relu, opset 2)");
	copro_graph_free(g);
}

/*
 * A chain of unary ops over (64, 64): five intermediates of 16 KiB; with
 * reuse the arena holds at most two at a time.
 */
static void plan_should_reuse_buffers_on_a_chain(void **state)
{
	static const int64_t d[] = { 64, 64 };
	static const char *names[] = { "X", "a", "b", "c", "d", "e", "Y" };
	static const char *ops[] = { "Relu", "Sigmoid", "Tanh", "Relu", "Sigmoid", "Tanh" };
	const size_t n = 64 * 64, one = n * sizeof(float);
	float *x = falloc(n), *y = falloc(n);
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in, out;
	struct mb b;
	size_t i;
	int k;

	mb_init(&b, 13);
	mb_input(&b, "X", COPRO_K_F32, 2, d);
	mb_output(&b, "Y", COPRO_K_F32, 2, d);
	for (k = 0; k < 6; k++)
		mb_node(&b, ops[k], "", (const char *[]){ names[k], NULL },
			(const char *[]){ names[k + 1], NULL });
	g = mb_graph(&b);
	in = kt_f32(2, d, x);
	p = build(g, &in);
	assert_int_equal(copro_plan_n_steps(p), 6);
	assert_true(copro_plan_arena_bytes(p) < 5 * one);
	assert_true(copro_plan_arena_bytes(p) <= 2 * one);
	for (i = 0; i < n; i++)
		x[i] = (float)((int)(i % 17) - 8) / 4.0f;
	out = (struct copro_kt){ .data = y };
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	/* reference, step by step */
	for (i = 0; i < n; i++) {
		double v = x[i] > 0 ? x[i] : 0;

		v = tanh(1 / (1 + exp(-v)));
		v = v > 0 ? v : 0;
		v = tanh(1 / (1 + exp(-v)));
		assert_true(fabs(y[i] - v) < 1e-5);
	}
	copro_plan_free(p);
	copro_graph_free(g);
	free(x);
	free(y);
}

/*
 * A value read late must keep its buffer while others come and go:
 * A = Relu(X); B = Sigmoid(A); C = Tanh(A); D = Add(B, C); Y = Mul(D, A).
 */
static void plan_should_keep_a_value_alive_until_its_last_reader(void **state)
{
	static const int64_t d[] = { 8, 32 };
	const size_t n = 8 * 32;
	float *x = falloc(n), *y = falloc(n);
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in, out;
	struct mb b;
	size_t i;

	mb_init(&b, 13);
	mb_input(&b, "X", COPRO_K_F32, 2, d);
	mb_output(&b, "Y", COPRO_K_F32, 2, d);
	mb_node(&b, "Relu", "", (const char *[]){ "X", NULL }, (const char *[]){ "A", NULL });
	mb_node(&b, "Sigmoid", "", (const char *[]){ "A", NULL }, (const char *[]){ "B", NULL });
	mb_node(&b, "Tanh", "", (const char *[]){ "A", NULL }, (const char *[]){ "C", NULL });
	mb_node(&b, "Add", "", (const char *[]){ "B", "C", NULL }, (const char *[]){ "D", NULL });
	mb_node(&b, "Mul", "", (const char *[]){ "D", "A", NULL }, (const char *[]){ "Y", NULL });
	g = mb_graph(&b);
	in = kt_f32(2, d, x);
	p = build(g, &in);
	for (i = 0; i < n; i++)
		x[i] = (float)((int)(i % 13) - 6) / 3.0f;
	out = (struct copro_kt){ .data = y };
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	for (i = 0; i < n; i++) {
		double a = x[i] > 0 ? x[i] : 0;
		double v = (1 / (1 + exp(-a)) + tanh(a)) * a;

		assert_true(fabs(y[i] - v) < 1e-5);
	}
	copro_plan_free(p);
	copro_graph_free(g);
	free(x);
	free(y);
}

/*
 * Shape -> Gather -> Concat -> Reshape: the new shape is known at build
 * time, so only the Reshape runs.
 */
static void plan_should_fold_a_shape_computation(void **state)
{
	static const int64_t dx[] = { 2, 3, 4 }, d1[] = { 1 };
	static int64_t idx[] = { 0 }, minus1[] = { -1 };
	float x[24] __attribute__((aligned(64))), y[24] __attribute__((aligned(64)));
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in, out;
	const struct copro_kt *o;
	Onnx__AttributeProto *a;
	struct mb b;
	int i;

	mb_init(&b, 13);
	mb_input(&b, "X", COPRO_K_F32, 3, dx);
	mb_output(&b, "Y", COPRO_K_F32, 2, (const int64_t[]){ -1, -1 });
	mb_init_raw(&b, "idx", COPRO_K_I64, 1, d1, idx, sizeof(idx));
	mb_init_raw(&b, "m1", COPRO_K_I64, 1, d1, minus1, sizeof(minus1));
	mb_node(&b, "Shape", "shape", (const char *[]){ "X", NULL },
		(const char *[]){ "s", NULL });
	mb_node(&b, "Gather", "gather", (const char *[]){ "s", "idx", NULL },
		(const char *[]){ "d0", NULL });
	a = mb_attr(&b, mb_node(&b, "Concat", "concat", (const char *[]){ "d0", "m1", NULL },
				(const char *[]){ "shape2", NULL }),
		    "axis", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = 0;
	mb_node(&b, "Reshape", "reshape", (const char *[]){ "X", "shape2", NULL },
		(const char *[]){ "Y", NULL });
	g = mb_graph(&b);
	in = kt_f32(3, dx, x);
	p = build(g, &in);
	assert_int_equal(copro_plan_n_steps(p), 1);
	o = copro_plan_output(p, 0);
	assert_int_equal(o->rank, 2);
	assert_int_equal(o->dims[0], 2);
	assert_int_equal(o->dims[1], 12);
	for (i = 0; i < 24; i++)
		x[i] = (float)i;
	out = (struct copro_kt){ .data = y };
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	assert_memory_equal(x, y, sizeof(x));
	copro_plan_free(p);
	copro_graph_free(g);
}

/*
 * A node with no outputs computes nothing: it is checked but never run
 * (found by fuzzing: Shape's run() writes its output 0 unconditionally).
 */
static void plan_should_not_run_a_node_without_outputs(void **state)
{
	static const int64_t d[] = { 2, 4 };
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in = kt_f32(2, d, NULL);
	struct mb b;

	mb_mlp(&b, 13);
	mb_node(&b, "Shape", "orphan", (const char *[]){ "X", NULL }, (const char *[]){ NULL });
	g = mb_graph(&b);
	p = build(g, &in);
	/* MatMul + Add + Relu fuse into one step; the orphan Shape adds none. */
	assert_int_equal(copro_plan_n_steps(p), 1);
	copro_plan_free(p);
	copro_graph_free(g);
}

/*
 * Reshape's shape fed as a graph input (as ONNX's node tests do): the plan
 * is built for the values given at build time and refuses others.
 */
static void plan_should_freeze_a_shape_input_and_refuse_other_values(void **state)
{
	static const int64_t dx[] = { 2, 6 }, ds[] = { 2 };
	int64_t shape[2] __attribute__((aligned(64))) = { 3, 4 };
	float x[12] __attribute__((aligned(64))), y[12] __attribute__((aligned(64)));
	struct copro_graph *g;
	struct copro_plan *p = NULL;
	struct copro_kt in[2], out;
	char err[256] = "";
	struct mb b;
	int i;

	mb_init(&b, 13);
	mb_input(&b, "X", COPRO_K_F32, 2, dx);
	mb_input(&b, "S", COPRO_K_I64, 1, ds);
	mb_output(&b, "Y", COPRO_K_F32, 2, (const int64_t[]){ -1, -1 });
	mb_node(&b, "Reshape", "r", (const char *[]){ "X", "S", NULL },
		(const char *[]){ "Y", NULL });
	g = mb_graph(&b);
	in[0] = kt_f32(2, dx, x);
	in[1] = (struct copro_kt){ .dtype = COPRO_K_I64, .rank = 1, .dims = { 2 }, .data = NULL };

	/* without the values the node cannot be planned */
	assert_int_equal(copro_plan_build(g, in, &p, err, sizeof(err)), -ENOTSUP);
	assert_non_null(strstr(err, "Reshape"));
	assert_non_null(strstr(err, "(node r, opset 13)"));

	in[1].data = shape;
	p = build(g, in);
	assert_int_equal(copro_plan_output(p, 0)->dims[0], 3);
	assert_int_equal(copro_plan_output(p, 0)->dims[1], 4);
	for (i = 0; i < 12; i++)
		x[i] = (float)i;
	out = (struct copro_kt){ .data = y };
	assert_int_equal(copro_plan_run(p, in, &out), 0);
	assert_memory_equal(x, y, sizeof(x));
	assert_int_equal(out.dims[0], 3);

	shape[0] = 4;
	shape[1] = 3;
	assert_int_equal(copro_plan_run(p, in, &out), -EINVAL);
	copro_plan_free(p);
	copro_graph_free(g);
}

/* Outputs that are an input or a constant get copy steps; misaligned buffers are staged. */
static void plan_should_copy_outputs_that_are_inputs_or_constants(void **state)
{
	static const int64_t d[] = { 3 };
	static float c[3] = { 7, 8, 9 };
	uint8_t xb[64 + 16] __attribute__((aligned(64)));
	uint8_t yb[3][64 + 16] __attribute__((aligned(64)));
	float *x = (float *)(xb + 4);	/* misaligned on purpose */
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in, out[3];
	struct mb b;
	int k;

	mb_init(&b, 13);
	mb_input(&b, "X", COPRO_K_F32, 1, d);
	mb_output(&b, "X", COPRO_K_F32, 1, d);
	mb_output(&b, "C", COPRO_K_F32, 1, d);
	mb_output(&b, "R", COPRO_K_F32, 1, d);
	mb_init_raw(&b, "C", COPRO_K_F32, 1, d, c, sizeof(c));
	mb_node(&b, "Relu", "", (const char *[]){ "X", NULL }, (const char *[]){ "R", NULL });
	g = mb_graph(&b);
	in = kt_f32(1, d, x);
	p = build(g, &in);
	x[0] = -1;
	x[1] = 2;
	x[2] = -3;
	for (k = 0; k < 3; k++)
		out[k] = (struct copro_kt){ .data = yb[k] + 4 * k };
	assert_int_equal(copro_plan_run(p, &in, out), 0);
	assert_memory_equal(out[0].data, x, 3 * sizeof(float));
	assert_memory_equal(out[1].data, c, sizeof(c));
	assert_true(((float *)out[2].data)[0] == 0 && ((float *)out[2].data)[1] == 2 &&
		    ((float *)out[2].data)[2] == 0);
	copro_plan_free(p);
	copro_graph_free(g);
}

/* An MLP like the fraud scorer's: Gemm, Relu, Gemm, Sigmoid. */
static void plan_run_should_not_allocate(void **state)
{
	enum { BATCH = 8, IN = 32, H = 64 };
	static float w1[H * IN], b1[H], w2[H], b2[1];
	static const int64_t dx[] = { -1, IN }, dy[] = { -1, 1 };
	static const int64_t dw1[] = { H, IN }, db1[] = { H }, dw2[] = { 1, H }, db2[] = { 1 };
	const int64_t d[] = { BATCH, IN };
	float *x = falloc(BATCH * IN), *y = falloc(BATCH);
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in, out;
	Onnx__AttributeProto *a;
	struct mb b;
	int i;

	for (i = 0; i < H * IN; i++)
		w1[i] = (float)((i * 7919) % 101 - 50) / 500.0f;
	for (i = 0; i < H; i++)
		w2[i] = (float)((i * 104729) % 37 - 18) / 100.0f;
	for (i = 0; i < BATCH * IN; i++)
		x[i] = (float)(i % 11) / 10.0f;
	mb_init(&b, 13);
	mb_input(&b, "X", COPRO_K_F32, 2, dx);
	mb_output(&b, "Y", COPRO_K_F32, 2, dy);
	mb_init_raw(&b, "W1", COPRO_K_F32, 2, dw1, w1, sizeof(w1));
	mb_init_raw(&b, "B1", COPRO_K_F32, 1, db1, b1, sizeof(b1));
	mb_init_raw(&b, "W2", COPRO_K_F32, 2, dw2, w2, sizeof(w2));
	mb_init_raw(&b, "B2", COPRO_K_F32, 1, db2, b2, sizeof(b2));
	a = mb_attr(&b, mb_node(&b, "Gemm", "fc1", (const char *[]){ "X", "W1", "B1", NULL },
				(const char *[]){ "h", NULL }),
		    "transB", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = 1;
	mb_node(&b, "Relu", "", (const char *[]){ "h", NULL }, (const char *[]){ "hr", NULL });
	a = mb_attr(&b, mb_node(&b, "Gemm", "fc2", (const char *[]){ "hr", "W2", "B2", NULL },
				(const char *[]){ "z", NULL }),
		    "transB", ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT);
	a->has_i = 1;
	a->i = 1;
	mb_node(&b, "Sigmoid", "", (const char *[]){ "z", NULL }, (const char *[]){ "Y", NULL });
	g = mb_graph(&b);
	in = kt_f32(2, d, x);
	p = build(g, &in);
	out = (struct copro_kt){ .data = y };
	/* The first run may warm up OpenBLAS's own buffers; runs after it must not allocate. */
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	counter_install();
	atomic_store(&n_allocs, 0);
	atomic_store(&counting, 1);
	for (i = 0; i < 100; i++)
		copro_plan_run(p, &in, &out);
	atomic_store(&counting, 0);
	assert_int_equal(atomic_load(&n_allocs), 0);

	/* the counter does count (volatile: the compiler may drop a malloc/free pair) */
	{
		void *volatile q;

		atomic_store(&counting, 1);
		q = malloc(16);
		free(q);
		atomic_store(&counting, 0);
	}
	assert_true(atomic_load(&n_allocs) >= 1);

	for (i = 0; i < BATCH; i++) {
		double h[H], z = 0;
		int j, k;

		for (j = 0; j < H; j++) {
			h[j] = 0;
			for (k = 0; k < IN; k++)
				h[j] += (double)x[i * IN + k] * w1[j * IN + k];
			z += (h[j] > 0 ? h[j] : 0) * w2[j];
		}
		assert_true(fabs(y[i] - 1 / (1 + exp(-z))) < 1e-5);
	}
	copro_plan_free(p);
	copro_graph_free(g);
	free(x);
	free(y);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(loader_should_load_a_small_model),
		cmocka_unit_test(loader_should_survive_every_truncation),
		cmocka_unit_test(loader_should_survive_random_and_mutated_bytes),
		cmocka_unit_test(loader_should_reject_negative_dims),
		cmocka_unit_test(loader_should_reject_a_raw_data_size_mismatch),
		cmocka_unit_test(loader_should_refuse_external_data),
		cmocka_unit_test(loader_should_refuse_opsets_outside_9_to_17),
		cmocka_unit_test(loader_should_refuse_unknown_element_types),
		cmocka_unit_test(loader_should_refuse_an_input_never_produced),
		cmocka_unit_test(loader_should_refuse_two_producers),
		cmocka_unit_test(loader_should_refuse_rank_9),
		cmocka_unit_test(loader_should_refuse_subgraph_attributes),
		cmocka_unit_test(loader_should_copy_attributes),
		cmocka_unit_test(tensor_decode_should_read_every_typed_field),
		cmocka_unit_test(loader_should_report_a_missing_file),
		cmocka_unit_test(plan_should_run_the_small_model),
		cmocka_unit_test(plan_should_name_an_unsupported_operator),
		cmocka_unit_test(plan_should_reuse_buffers_on_a_chain),
		cmocka_unit_test(plan_should_keep_a_value_alive_until_its_last_reader),
		cmocka_unit_test(plan_should_fold_a_shape_computation),
		cmocka_unit_test(plan_should_not_run_a_node_without_outputs),
		cmocka_unit_test(plan_should_freeze_a_shape_input_and_refuse_other_values),
		cmocka_unit_test(plan_should_copy_outputs_that_are_inputs_or_constants),
		cmocka_unit_test(plan_run_should_not_allocate),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
