// SPDX-License-Identifier: MIT
/*
 * plan.c - compiles a graph for fixed input shapes into a flat list of steps
 * over one preallocated arena, and runs it.
 *
 * Building walks the nodes in order (the loader made sure it is a
 * topological order): it resolves each node's operator, infers its output
 * shapes, and runs at once any node whose inputs are all known (constants,
 * or only shapes for shape-only ops such as Shape); what it computes
 * becomes a constant owned by the plan. Nodes that remain are steps. Dead
 * steps (nothing of theirs reaches a graph output) are dropped. Each
 * intermediate value then gets a place in one arena, reusing the place of
 * a value whose last reader has run (best fit); graph outputs are written
 * straight into the caller's buffers and graph inputs read straight from
 * the caller's, so a run copies nothing unless a caller's buffer is not
 * 64-byte aligned (the ops may count on that; the ABI does not promise it).
 *
 * Between the two, with the options asking for it (plan_linear), a
 * Gemm/MatMul with a constant B becomes a linear step (fuse_linear.c):
 * the Add of a constant bias row and the activation after it join the
 * step, and/or its weights are converted to bf16 or int8.
 *
 * Running binds the caller's pointers into the steps (a list of patches
 * made at build time) and calls each op's run(). It allocates nothing and
 * takes no lock, so one plan serves one thread at a time.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/fuse.h"
#include "onnx/graph.h"
#include "onnx/ops.h"
#include "onnx/plan.h"

/*
 * Most bytes one plan may allocate (arena, scratch, folded constants, staging).
 * A model that wants more is refused at build time instead of making the
 * daemon swap; the fuzz build lowers it so a fuzzed Expand cannot ask for
 * terabytes.
 */
#ifndef COPRO_PLAN_MAX_BYTES
#define COPRO_PLAN_MAX_BYTES	((int64_t)16 << 30)
#endif

#define PLAN_ALIGN		64

/* What a value is to the plan. */
enum {
	PV_UNSET = 0,	/* not computed yet (or a dead value) */
	PV_INPUT,	/* graph input idx: the caller's in[idx] */
	PV_CONST,	/* known at build time: t.data is the graph's or the plan's */
	PV_INTER,	/* computed by a step into the arena at off */
	PV_OUTPUT,	/* computed by a step straight into the caller's out[idx] */
};

struct pval {
	struct copro_kt t;	/* planned dtype and shape; data for PV_CONST */
	int kind;		/* PV_* */
	int idx;		/* PV_INPUT / PV_OUTPUT: which graph input / output */
	int def;		/* the step that computes it */
	int last;		/* the last step that reads it */
	int live;		/* reaches a graph output */
	int held;		/* owns its arena block (an in-place output took it over) */
	size_t off, size;	/* arena block, PV_INTER only */
};

/*
 * A run-time binding: *slot receives the caller's in[src].data (src >= 0)
 * or out[-1 - src].data (src < 0), or the staging copy when that pointer
 * is misaligned.
 */
struct plan_patch {
	void **slot;
	int src;
};

struct plan_step {
	struct copro_node node;	/* the graph's node, with this plan's op and priv */
	const struct copro_op *op;	/* NULL: copy in[0] to out[0] (a graph output) */
	int n_in, n_out;
	struct copro_kt *in;	/* (n_in) planned shapes and bound data */
	struct copro_kt *out;	/* (n_out) */
	size_t *tmp_off;	/* (n_out) arena offsets of unused outputs, build time */
	int *own_out;		/* a linear step's node.out, owned (not the graph's) */
	int copy_src;		/* copy steps: the value copied */
	int copy_dst;		/* copy steps: the graph output written */
	size_t copy_bytes;
};

struct plan_io {
	struct copro_kt t;	/* planned dtype and shape, data NULL */
	size_t bytes;
	void *stage;		/* 64-byte aligned place for a misaligned caller buffer */
	const void *frozen;	/* inputs only: the values the plan was built for, or NULL */
};

struct copro_plan {
	const struct copro_graph *g;
	int n_steps;
	struct plan_step *steps;	/* (n_steps) in execution order */
	int n_patches;
	struct plan_patch *patches;
	int n_in, n_out;
	struct plan_io *in;		/* (n_in) graph inputs */
	struct plan_io *out;		/* (n_out) graph outputs */
	int n_consts;
	void **consts;			/* folded values' data, owned */
	uint8_t *mem;			/* arena, then staging, then scratch */
	size_t arena_bytes;
	void *scratch;
	size_t scratch_bytes;
	int n_lowp;			/* linear steps in bf16/int8 */
	const char *kernel;		/* their kernel, for reports */
};

static int __attribute__((format(printf, 4, 5)))
fail(char *err, size_t errlen, int code, const char *fmt, ...)
{
	va_list ap;

	if (err && errlen) {
		va_start(ap, fmt);
		vsnprintf(err, errlen, fmt, ap);
		va_end(ap);
	}
	return code;
}

static size_t round_up(size_t n)
{
	return (n + PLAN_ALIGN - 1) & ~(size_t)(PLAN_ALIGN - 1);
}

/* A buffer size for a tensor: 64-byte multiple, at least 64 so data is never NULL. */
static size_t buf_size(int64_t bytes)
{
	return bytes > 0 ? round_up((size_t)bytes) : PLAN_ALIGN;
}

static void *aligned_zalloc(size_t n)
{
	void *p;

	n = n ? round_up(n) : PLAN_ALIGN;
	p = aligned_alloc(PLAN_ALIGN, n);
	if (p)
		memset(p, 0, n);
	return p;
}

/* "#3" for an unnamed node, its name otherwise: for messages. */
static const char *node_label(const struct copro_node *n, int i, char *buf, size_t len)
{
	if (n->name && *n->name)
		return n->name;
	snprintf(buf, len, "#%d", i);
	return buf;
}

static void shape_str(const struct copro_kt *t, char *buf, size_t len)
{
	size_t k = 0;
	int i;

	k += snprintf(buf + k, len - k, "[");
	for (i = 0; i < t->rank && k < len; i++)
		k += snprintf(buf + k, len - k, i ? ",%lld" : "%lld", (long long)t->dims[i]);
	if (k < len)
		snprintf(buf + k, len - k, "]");
}

/* ---------------------------------------------------------------------- */
/* The arena allocator (build time only)                                  */
/* ---------------------------------------------------------------------- */

/*
 * Blocks tile [0, end) in offset order; a value owns one block while it
 * lives. Allocation takes the smallest free block that fits (splitting it),
 * or grows the arena at its end; release merges neighbours. The number of
 * blocks is bounded by twice the number of live values, so the linear
 * scans cost little for real graphs.
 */
struct arena_block {
	size_t off, size;
	int free;
};

struct arena {
	struct arena_block *b;
	int n, cap;
	size_t end;		/* high-water mark: the arena's size */
};

static int arena_insert(struct arena *a, int at, size_t off, size_t size, int is_free)
{
	if (a->n == a->cap) {
		int cap = a->cap ? 2 * a->cap : 16;
		struct arena_block *nb = realloc(a->b, (size_t)cap * sizeof(*nb));

		if (!nb)
			return -ENOMEM;
		a->b = nb;
		a->cap = cap;
	}
	memmove(&a->b[at + 1], &a->b[at], (size_t)(a->n - at) * sizeof(*a->b));
	a->b[at] = (struct arena_block){ off, size, is_free };
	a->n++;
	return 0;
}

static void arena_erase(struct arena *a, int at)
{
	memmove(&a->b[at], &a->b[at + 1], (size_t)(a->n - at - 1) * sizeof(*a->b));
	a->n--;
}

/* Places size bytes (a multiple of 64); returns 0 and the offset in *off. */
static int arena_alloc(struct arena *a, size_t size, size_t *off)
{
	int best = -1, i;

	for (i = 0; i < a->n; i++) {
		if (a->b[i].free && a->b[i].size >= size &&
		    (best < 0 || a->b[i].size < a->b[best].size))
			best = i;
	}
	if (best >= 0) {
		if (a->b[best].size > size &&
		    arena_insert(a, best + 1, a->b[best].off + size, a->b[best].size - size, 1))
			return -ENOMEM;
		a->b[best].size = size;
		a->b[best].free = 0;
		*off = a->b[best].off;
		return 0;
	}
	/* Nothing fits: grow the free tail block if there is one, else append. */
	if (a->n && a->b[a->n - 1].free) {
		struct arena_block *t = &a->b[a->n - 1];

		a->end += size - t->size;
		t->size = size;
		t->free = 0;
		*off = t->off;
		return 0;
	}
	if (arena_insert(a, a->n, a->end, size, 0))
		return -ENOMEM;
	*off = a->end;
	a->end += size;
	return 0;
}

static void arena_release(struct arena *a, size_t off)
{
	int i;

	for (i = 0; i < a->n && a->b[i].off != off; i++)
		;
	if (i == a->n || a->b[i].free)
		return;		/* not ours: a planner bug, but never corrupt the map */
	a->b[i].free = 1;
	if (i + 1 < a->n && a->b[i + 1].free) {
		a->b[i].size += a->b[i + 1].size;
		arena_erase(a, i + 1);
	}
	if (i > 0 && a->b[i - 1].free) {
		a->b[i - 1].size += a->b[i].size;
		arena_erase(a, i);
	}
}

/* ---------------------------------------------------------------------- */
/* Building                                                               */
/* ---------------------------------------------------------------------- */

struct builder {
	const struct copro_graph *g;
	const struct copro_kt *in;	/* the caller's inputs (data only for freezing) */
	struct copro_plan *p;
	struct pval *pv;	/* (g->n_values) */
	struct copro_plan_opts opts;
	int64_t total;		/* bytes allocated so far, against COPRO_PLAN_MAX_BYTES */
	char *err;
	size_t errlen;
};

/* Counts bytes against the plan's limit. */
static int charge(struct builder *b, int64_t bytes, const char *what)
{
	if (bytes < 0 || bytes > COPRO_PLAN_MAX_BYTES - b->total)
		return fail(b->err, b->errlen, -E2BIG,
			    "%s: the plan would need more than %lld bytes", what,
			    (long long)COPRO_PLAN_MAX_BYTES);
	b->total += bytes;
	return 0;
}

static void step_release(struct plan_step *s)
{
	if (s->op && s->op->release && s->node.priv)
		s->op->release(&s->node);
	s->node.priv = NULL;
	free(s->in);
	free(s->out);
	free(s->tmp_off);
	free(s->own_out);
	s->in = s->out = NULL;
	s->tmp_off = NULL;
	s->own_out = NULL;
}

/* Checks the caller's input shapes against the graph's declarations. */
static int check_inputs(struct builder *b, const struct copro_kt *in)
{
	const struct copro_graph *g = b->g;
	char s1[160], s2[160];
	int k, i;

	for (k = 0; k < g->n_inputs; k++) {
		const struct copro_value *v = &g->values[g->inputs[k]];
		const struct copro_kt *t = &in[k];
		int ok = t->dtype == v->t.dtype && t->rank >= 0 && t->rank <= COPRO_K_MAX_RANK;

		if (ok && v->t.rank >= 0) {
			ok = t->rank == v->t.rank;
			for (i = 0; ok && i < t->rank; i++)
				ok = v->t.dims[i] < 0 || v->t.dims[i] == t->dims[i];
		}
		for (i = 0; ok && i < t->rank; i++)
			ok = t->dims[i] >= 0;
		if (!ok || copro_kt_bytes(t) < 0) {
			shape_str(t, s1, sizeof(s1));
			shape_str(&v->t, s2, sizeof(s2));
			return fail(b->err, b->errlen, -EINVAL,
				    "input %s: %s %s given, the model declares %s %s", v->name,
				    copro_k_dtype_name(t->dtype), s1,
				    copro_k_dtype_name(v->t.dtype),
				    v->t.rank < 0 ? "(any shape)" : s2);
		}
	}
	return 0;
}

/*
 * Runs a node whose inputs are all known now, at build time; its outputs
 * become constants owned by the plan.
 */
static int fold(struct builder *b, struct plan_step *s)
{
	struct copro_plan *p = b->p;
	void *scratch = NULL, **nc;
	size_t sb = 0;
	int j, rc;

	nc = realloc(p->consts, (size_t)(p->n_consts + s->n_out) * sizeof(void *));
	if (!nc)
		return fail(b->err, b->errlen, -ENOMEM, "out of memory");
	p->consts = nc;
	for (j = 0; j < s->n_out; j++) {
		int64_t bytes = copro_kt_bytes(&s->out[j]);

		rc = charge(b, bytes, s->node.op_type);
		if (rc)
			return rc;
		s->out[j].data = aligned_zalloc(buf_size(bytes));
		if (!s->out[j].data)
			return fail(b->err, b->errlen, -ENOMEM, "out of memory");
		p->consts[p->n_consts++] = s->out[j].data;
	}
	if (s->op->scratch)
		sb = s->op->scratch(&s->node, s->in, s->out);
	if (sb) {
		rc = charge(b, (int64_t)sb, s->node.op_type);
		if (rc)
			return rc;
		scratch = aligned_zalloc(sb);
		if (!scratch)
			return fail(b->err, b->errlen, -ENOMEM, "out of memory");
	}
	rc = s->op->run(&s->node, s->in, s->out, scratch);
	free(scratch);
	if (rc)
		return fail(b->err, b->errlen, rc < 0 ? rc : -EINVAL,
			    "%s: run failed while folding a constant", s->node.op_type);
	for (j = 0; j < s->n_out; j++) {
		int id = s->node.out[j];

		if (id < 0)
			continue;
		b->pv[id].t = s->out[j];
		b->pv[id].kind = PV_CONST;
	}
	return 0;
}

/*
 * Makes graph input value id a constant of the values the caller gave at
 * build time, for an op that needs them then (Reshape's shape fed as a
 * graph input, as ONNX's node tests do). The run refuses other values, so
 * the plan never computes with shapes it was not built for.
 */
static int freeze_input(struct builder *b, int id)
{
	struct copro_plan *p = b->p;
	struct pval *pv = &b->pv[id];
	struct plan_io *io = &p->in[pv->idx];
	void **nc;
	void *d;

	nc = realloc(p->consts, (size_t)(p->n_consts + 1) * sizeof(void *));
	if (!nc)
		return fail(b->err, b->errlen, -ENOMEM, "out of memory");
	p->consts = nc;
	if (charge(b, (int64_t)io->bytes, b->g->values[id].name))
		return -E2BIG;
	d = aligned_zalloc(buf_size((int64_t)io->bytes));
	if (!d)
		return fail(b->err, b->errlen, -ENOMEM, "out of memory");
	p->consts[p->n_consts++] = d;
	memcpy(d, b->in[pv->idx].data, io->bytes);
	io->frozen = d;
	pv->t.data = d;
	pv->kind = PV_CONST;
	return 0;
}

/*
 * Resolves, infers and either folds node i or appends it as a step.
 * err gets "<reason> (node NAME, opset N)" so reports can group reasons.
 */
static int plan_node(struct builder *b, int i)
{
	const struct copro_node *n = &b->g->nodes[i];
	struct copro_plan *p = b->p;
	struct plan_step *s = &p->steps[p->n_steps];
	char lbl[32], why[256];
	const char *name = node_label(n, i, lbl, sizeof(lbl));
	int j, rc, known = 1;

	if (n->domain && *n->domain)
		return fail(b->err, b->errlen, -ENOTSUP,
			    "unsupported operator %s of domain %s (node %s, opset %d)", n->op_type,
			    n->domain, name, n->opset);
	s->op = copro_op_find(n->op_type, n->opset);
	if (!s->op)
		return fail(b->err, b->errlen, -ENOTSUP,
			    "unsupported operator %s (node %s, opset %d)", n->op_type, name,
			    n->opset);
	s->node = *n;
	s->node.op = s->op;
	s->node.priv = NULL;
	s->n_in = n->n_in;
	s->n_out = n->n_out;
	s->in = calloc(n->n_in ? n->n_in : 1, sizeof(*s->in));
	s->out = calloc(n->n_out ? n->n_out : 1, sizeof(*s->out));
	if (!s->in || !s->out) {
		rc = fail(b->err, b->errlen, -ENOMEM, "out of memory");
		goto out_step;
	}
	for (j = 0; j < n->n_in; j++) {
		int id = n->in[j];

		if (id < 0)
			continue;	/* absent optional input: dtype 0 */
		if (j < 32 && (s->op->value_inputs & (1U << j)) && b->pv[id].kind == PV_INPUT &&
		    b->in[b->pv[id].idx].data) {
			rc = freeze_input(b, id);
			if (rc)
				goto out_step;
		}
		s->in[j] = b->pv[id].t;
		if (b->pv[id].kind != PV_CONST) {
			s->in[j].data = NULL;
			known = 0;
		}
		if (j < 32 && (s->op->value_inputs & (1U << j)) && b->pv[id].kind != PV_CONST) {
			rc = fail(b->err, b->errlen, -ENOTSUP,
				  "%s: input %d (%s) must be a constant, computed values are not "
				  "supported there (node %s, opset %d)", n->op_type, j,
				  b->g->values[id].name, name, n->opset);
			goto out_step;
		}
	}
	why[0] = '\0';
	rc = s->op->infer(&s->node, s->in, s->out, why, sizeof(why));
	if (rc) {
		rc = rc == -ENOTSUP || rc == -ENOMEM ? rc : -EINVAL;
		rc = fail(b->err, b->errlen, rc, "%s (node %s, opset %d)",
			  *why ? why : "shape inference failed", name, n->opset);
		goto out_step;
	}
	for (j = 0; j < n->n_out; j++) {
		struct copro_kt *t = &s->out[j];
		int k, ok = t->rank >= 0 && t->rank <= COPRO_K_MAX_RANK;

		t->data = NULL;
		if (n->out[j] < 0 && !t->dtype) {
			t->rank = 0;	/* unused and untyped: a placeholder buffer */
			continue;
		}
		if (!ok) {
			rc = fail(b->err, b->errlen, -EINVAL,
				  "%s: inferred output %d has rank %d (node %s, opset %d)",
				  n->op_type, j, t->rank, name, n->opset);
			goto out_step;
		}
		for (k = 0; ok && k < t->rank; k++)
			ok = t->dims[k] >= 0;
		if (!ok) {
			rc = fail(b->err, b->errlen, -ENOTSUP,
				  "%s: output %d has a shape that depends on run-time data "
				  "(node %s, opset %d)", n->op_type, j, name, n->opset);
			goto out_step;
		}
		if (!copro_k_dtype_size(t->dtype) || copro_kt_bytes(t) < 0) {
			rc = fail(b->err, b->errlen, -EINVAL,
				  "%s: inferred output %d has type %d and no size "
				  "(node %s, opset %d)",
				  n->op_type, j, t->dtype, name, n->opset);
			goto out_step;
		}
		if (n->out[j] >= 0) {
			b->pv[n->out[j]].t = *t;
			b->pv[n->out[j]].def = p->n_steps;
		}
	}
	/*
	 * A node without outputs computes nothing anyone can see: validated
	 * above, never run (an op's run() may assume it has an output 0).
	 */
	if (n->n_out == 0) {
		rc = 0;
		goto out_step;
	}
	if (known || (s->op->flags & COPRO_OP_F_SHAPE_ONLY)) {
		rc = fold(b, s);
		goto out_step;	/* folded: the step is not kept either way */
	}
	for (j = 0; j < n->n_out; j++) {
		if (n->out[j] >= 0)
			b->pv[n->out[j]].kind = PV_INTER;
	}
	p->n_steps++;
	return 0;
out_step:
	step_release(s);
	memset(s, 0, sizeof(*s));
	return rc;
}

/*
 * Binds graph outputs: a value a step computes is written straight into
 * the caller's buffer; one that is an input, a constant or already another
 * output's is copied there by a copy step at the end.
 */
static int plan_outputs(struct builder *b)
{
	const struct copro_graph *g = b->g;
	struct copro_plan *p = b->p;
	int k;

	for (k = 0; k < g->n_outputs; k++) {
		int id = g->outputs[k];
		const struct copro_value *v = &g->values[id];
		struct pval *pv = &b->pv[id];
		struct plan_step *s;

		if (!v->is_input && !v->is_const && v->t.dtype && v->t.dtype != pv->t.dtype)
			return fail(b->err, b->errlen, -EINVAL,
				    "output %s: the model declares %s, the graph computes %s",
				    v->name, copro_k_dtype_name(v->t.dtype),
				    copro_k_dtype_name(pv->t.dtype));
		p->out[k].t = pv->t;
		p->out[k].t.data = NULL;
		p->out[k].bytes = (size_t)copro_kt_bytes(&pv->t);
		if (pv->kind == PV_INTER) {
			pv->kind = PV_OUTPUT;
			pv->idx = k;
			continue;
		}
		s = &p->steps[p->n_steps++];
		s->n_in = s->n_out = 1;
		s->in = calloc(1, sizeof(*s->in));
		s->out = calloc(1, sizeof(*s->out));
		if (!s->in || !s->out)
			return fail(b->err, b->errlen, -ENOMEM, "out of memory");
		s->in[0] = pv->t;
		s->out[0] = pv->t;
		s->out[0].data = NULL;
		s->copy_src = id;
		s->copy_dst = k;
		s->copy_bytes = p->out[k].bytes;
	}
	return 0;
}

/* Closes the gaps that steps marked dead (n_in = -1, already released) left. */
static void compact_steps(struct copro_plan *p)
{
	int i, k = 0;

	for (i = 0; i < p->n_steps; i++) {
		if (p->steps[i].n_in < 0)
			continue;
		if (k != i)
			p->steps[k] = p->steps[i];
		k++;
	}
	for (i = k; i < p->n_steps; i++)
		memset(&p->steps[i], 0, sizeof(p->steps[i]));
	p->n_steps = k;
}

/* Drops steps whose outputs reach no graph output and no later live step. */
static void plan_dce(struct builder *b)
{
	struct copro_plan *p = b->p;
	int i, j;

	for (i = 0; i < b->g->n_outputs; i++)
		b->pv[b->g->outputs[i]].live = 1;
	for (i = p->n_steps - 1; i >= 0; i--) {
		struct plan_step *s = &p->steps[i];
		int live = !s->op;

		for (j = 0; j < s->node.n_out && !live; j++)
			live = s->node.out[j] >= 0 && b->pv[s->node.out[j]].live;
		if (!live) {
			step_release(s);
			s->n_in = -1;	/* mark dead */
			continue;
		}
		if (!s->op)
			b->pv[s->copy_src].live = 1;
		for (j = 0; j < s->node.n_in; j++) {
			if (s->node.in[j] >= 0)
				b->pv[s->node.in[j]].live = 1;
		}
	}
	compact_steps(p);
}

/* ---------------------------------------------------------------------- */
/* Linear steps: fusion and lower precision                               */
/* ---------------------------------------------------------------------- */

static int is_op(const struct plan_step *s, const char *name)
{
	return s->op && s->n_in >= 0 && strcmp(s->op->name, name) == 0;
}

static int same_dims(const struct copro_kt *a, const struct copro_kt *b)
{
	int i;

	if (a->rank != b->rank)
		return 0;
	for (i = 0; i < a->rank; i++) {
		if (a->dims[i] != b->dims[i])
			return 0;
	}
	return 1;
}

/*
 * The step after step i that reads value id, when it is id's one reader
 * (nread counts every read: a node that reads it twice, a copy step) and
 * id is no graph output, which fusing would leave unwritten; -1 if not.
 */
static int sole_reader(struct builder *b, const int *nread, int id, int i)
{
	struct copro_plan *p = b->p;
	int k, j;

	if (id < 0 || nread[id] != 1 || b->g->values[id].is_output || b->pv[id].kind != PV_INTER)
		return -1;
	for (k = i + 1; k < p->n_steps; k++) {
		const struct plan_step *s = &p->steps[k];

		for (j = 0; s->op && s->n_in >= 0 && j < s->node.n_in; j++) {
			if (s->node.in[j] == id)
				return k;
		}
	}
	return -1;
}

/*
 * Whether the own f32 kernel (gemm_f32.c) takes product sp: the CPU has
 * it, the options allow it, it is faster at this shape, and the product
 * is one it does (A not transposed, alpha 1, C absent, ignored or a
 * constant row: one that varies by row or is computed stays on BLAS).
 */
static int f32_own_ok(const struct builder *b, const struct copro_linear_spec *sp)
{
	const struct copro_kt *c = sp->c;

	if ((b->opts.flags & COPRO_PLAN_F_BLAS) || !copro_f32_avx512_ok() ||
	    !copro_f32_wanted(sp->M, sp->N, sp->K))
		return 0;
	if (sp->ta || sp->alpha != 1.0f)
		return 0;
	if (c && sp->beta != 0.0f &&
	    (!c->data || c->rank > 2 || (c->rank == 2 && c->dims[0] != 1)))
		return 0;
	return 1;
}

/*
 * Whether step s is a Gemm or MatMul the linear step can take: f32, B a
 * constant 2-D matrix, A 2-D (Gemm) or at least 2-D (MatMul, whose
 * batch dims become rows). Fills sp's product fields if so.
 */
static int linear_spec(struct builder *b, struct plan_step *s, struct copro_linear_spec *sp)
{
	const struct copro_kt *a = &s->in[0], *w = &s->in[1];
	int gemm = is_op(s, "Gemm"), i;

	if ((!gemm && !is_op(s, "MatMul")) || s->node.n_in < 2 || s->node.n_out != 1 ||
	    s->node.in[0] < 0 || s->node.in[1] < 0 || s->node.out[0] < 0)
		return 0;
	if (a->dtype != COPRO_K_F32 || w->dtype != COPRO_K_F32 || s->out[0].dtype != COPRO_K_F32 ||
	    w->rank != 2 || b->pv[s->node.in[1]].kind != PV_CONST || !w->data)
		return 0;
	memset(sp, 0, sizeof(*sp));
	sp->op = s->op;
	sp->node = s->node;
	sp->b = w->data;
	if (gemm) {
		if (a->rank != 2 || !s->node.priv)
			return 0;
		sp->ta = copro_attr_int(&s->node, "transA", 0) != 0;
		sp->tb = copro_attr_int(&s->node, "transB", 0) != 0;
		sp->alpha = copro_attr_float(&s->node, "alpha", 1.0f);
		sp->beta = copro_attr_float(&s->node, "beta", 1.0f);
		sp->M = a->dims[sp->ta ? 1 : 0];
		sp->K = a->dims[sp->ta ? 0 : 1];
		sp->N = w->dims[sp->tb ? 0 : 1];
		if (s->node.n_in > 2 && s->node.in[2] >= 0 && s->in[2].dtype)
			sp->c = &s->in[2];
	} else {
		if (a->rank < 2)
			return 0;
		sp->alpha = 1.0f;
		sp->M = 1;
		for (i = 0; i + 1 < a->rank; i++)
			sp->M *= a->dims[i];
		sp->K = a->dims[a->rank - 1];
		sp->N = w->dims[1];
	}
	sp->f32_own = b->opts.precision == COPRO_PREC_F32 && f32_own_ok(b, sp);
	if (b->g->values[s->node.in[1]].is_const && b->g->values[s->node.in[1]].t.data == w->data)
		sp->g = (struct copro_graph *)b->g;	/* its packs: the graph's one mutable part */
	return 1;
}

/*
 * Whether step s is an f32 Add of value id and a constant row (every dim
 * 1 but the last, which is N or 1) that leaves id's shape as it is; if
 * so, *bias gets that row as N floats (malloc'ed).
 */
static int bias_add(struct builder *b, const struct plan_step *s, int id,
		    const struct copro_kt *shape, int64_t N, float **bias)
{
	int other, d;
	const struct pval *v;
	int64_t j, last;

	if (!is_op(s, "Add") || s->node.n_in != 2 || s->node.n_out != 1 || s->node.out[0] < 0 ||
	    !same_dims(&s->out[0], shape) || s->out[0].dtype != COPRO_K_F32)
		return 0;
	other = s->node.in[0] == id ? s->node.in[1] : s->node.in[0];
	if (other < 0 || other == id)
		return 0;
	v = &b->pv[other];
	if (v->kind != PV_CONST || v->t.dtype != COPRO_K_F32 || !v->t.data ||
	    v->t.rank > shape->rank)
		return 0;
	for (d = 0; d + 1 < v->t.rank; d++) {
		if (v->t.dims[d] != 1)
			return 0;
	}
	last = v->t.rank ? v->t.dims[v->t.rank - 1] : 1;
	if (last != N && last != 1)
		return 0;
	*bias = malloc((size_t)(N ? N : 1) * sizeof(float));
	if (!*bias)
		return -ENOMEM;
	for (j = 0; j < N; j++)
		(*bias)[j] = ((const float *)v->t.data)[last == 1 ? 0 : j];
	return 1;
}

/* The COPRO_ACT_* step s computes on f32 value id, keeping its shape; -1 if none. */
static int act_of(const struct plan_step *s, int id, const struct copro_kt *shape, float *alpha)
{
	static const struct {
		const char *name;
		int act;
	} acts[] = {
		{ "Relu", COPRO_ACT_RELU }, { "LeakyRelu", COPRO_ACT_LEAKY },
		{ "Sigmoid", COPRO_ACT_SIGMOID }, { "Tanh", COPRO_ACT_TANH },
	};
	size_t k;

	if (!s->op || s->n_in < 0 || s->node.n_in != 1 || s->node.in[0] != id ||
	    s->node.n_out != 1 || s->node.out[0] < 0 || s->out[0].dtype != COPRO_K_F32 ||
	    !same_dims(&s->out[0], shape))
		return -1;
	for (k = 0; k < sizeof(acts) / sizeof(acts[0]); k++) {
		if (strcmp(s->op->name, acts[k].name) == 0) {
			*alpha = copro_attr_float(&s->node, "alpha", 0.01f);
			return acts[k].act;
		}
	}
	return -1;
}

/*
 * Turns Gemm/MatMul steps into linear steps: with opts.fuse, each takes
 * the bias Add and the activation that follow it (when it is their
 * intermediate's one reader), and with a lower precision each converts
 * its weights. The absorbed steps are dropped. In f32 a product the own
 * kernel takes becomes a linear step fused or not (so that both compute
 * the same bits); one it does not take, with nothing to absorb, stays as
 * it is.
 */
static int plan_linear(struct builder *b)
{
	const struct copro_plan_opts *o = &b->opts;
	struct copro_plan *p = b->p;
	float *bias = NULL;
	int *nread, i, j, rc = 0;

	nread = calloc(b->g->n_values ? (size_t)b->g->n_values : 1, sizeof(*nread));
	if (!nread)
		return fail(b->err, b->errlen, -ENOMEM, "out of memory");
	for (i = 0; i < p->n_steps; i++) {
		const struct plan_step *s = &p->steps[i];

		if (!s->op)
			nread[s->copy_src]++;
		for (j = 0; s->op && j < s->node.n_in; j++) {
			if (s->node.in[j] >= 0)
				nread[s->node.in[j]]++;
		}
	}
	for (i = 0; i < p->n_steps; i++) {
		struct plan_step *s = &p->steps[i];
		struct copro_linear_spec sp;
		int add = -1, act = -1, last, r, lowp;
		const char *kernel;
		size_t bytes;

		if (s->n_in < 0 || !linear_spec(b, s, &sp))
			continue;
		last = s->node.out[0];
		sp.act = COPRO_ACT_NONE;
		r = o->fuse ? sole_reader(b, nread, last, i) : -1;
		if (r >= 0) {
			rc = bias_add(b, &p->steps[r], last, &s->out[0], sp.N, &bias);
			if (rc < 0)
				goto nomem;
			if (rc > 0) {
				add = r;
				last = p->steps[r].node.out[0];
				r = sole_reader(b, nread, last, r);
			}
			rc = 0;
		}
		if (r >= 0) {
			sp.act = act_of(&p->steps[r], last, &s->out[0], &sp.act_alpha);
			if (sp.act >= 0) {
				act = r;
				last = p->steps[r].node.out[0];
			} else {
				sp.act = COPRO_ACT_NONE;
			}
		}
		if (add < 0 && act < 0 && o->precision == COPRO_PREC_F32 && !sp.f32_own)
			continue;
		sp.bias = bias;
		sp.precision = o->precision;
		sp.portable = (o->flags & COPRO_PLAN_F_PORTABLE) != 0;
		s->own_out = malloc(sizeof(*s->own_out));
		if (!s->own_out)
			goto nomem;
		rc = copro_linear_make(&s->node, &sp, &bytes, &lowp, &kernel);
		free(bias);
		bias = NULL;
		if (rc) {
			s->node.priv = NULL;	/* released by copro_linear_make */
			goto nomem;
		}
		s->op = &copro_op_linear;
		s->own_out[0] = last;
		s->node.out = s->own_out;
		s->out[0] = b->pv[last].t;
		s->out[0].data = NULL;
		b->pv[last].def = i;
		if (lowp) {
			p->n_lowp++;
			p->kernel = kernel;
		}
		rc = charge(b, (int64_t)bytes, "lowered weights");
		if (rc)
			goto out;
		for (j = 0; j < 2; j++) {
			int k = j ? act : add;

			if (k >= 0) {
				step_release(&p->steps[k]);
				p->steps[k].n_in = -1;
			}
		}
	}
	compact_steps(p);
	goto out;
nomem:
	rc = fail(b->err, b->errlen, -ENOMEM, "out of memory");
out:
	free(bias);
	free(nread);
	return rc;
}

/* Whether value id is read by step s at some input other than input 0. */
static int read_elsewhere(const struct plan_step *s, int id)
{
	int j;

	for (j = 1; j < s->node.n_in; j++) {
		if (s->node.in[j] == id)
			return 1;
	}
	return 0;
}

/*
 * Gives every PV_INTER value (and every unused node output, which an op may
 * still write) a block of the arena, and frees a block after the last step
 * that reads it. Offsets go into pv and the steps' tmp_off; plan_bind turns
 * them into pointers once the arena exists.
 */
static int plan_arena(struct builder *b)
{
	struct copro_plan *p = b->p;
	struct arena a = { 0 };
	int i, j, rc = 0;

	for (i = 0; i < p->n_steps; i++) {
		struct plan_step *s = &p->steps[i];

		for (j = 0; j < s->node.n_in && s->op; j++) {
			if (s->node.in[j] >= 0)
				b->pv[s->node.in[j]].last = i;
		}
	}
	for (i = 0; i < p->n_steps; i++) {
		struct plan_step *s = &p->steps[i];
		int in0 = s->node.n_in > 0 ? s->node.in[0] : -1;

		if (!s->op)
			continue;
		s->tmp_off = calloc(s->n_out ? (size_t)s->n_out : 1, sizeof(*s->tmp_off));
		if (!s->tmp_off) {
			rc = fail(b->err, b->errlen, -ENOMEM, "out of memory");
			goto out;
		}
		for (j = 0; j < s->n_out; j++) {
			int id = s->node.out[j];
			int64_t bytes = copro_kt_bytes(&s->out[j]);
			struct pval *pv = id >= 0 ? &b->pv[id] : NULL;
			size_t off;

			if (pv && pv->kind == PV_OUTPUT)
				continue;
			if (pv && pv->last < i)
				pv->last = i;	/* never read: dies right after this step */
			/* Output 0 may take over input 0's block if input 0 dies here. */
			if (pv && j == 0 && (s->op->flags & COPRO_OP_F_INPLACE_OK) && in0 >= 0 &&
			    b->pv[in0].kind == PV_INTER && b->pv[in0].held &&
			    b->pv[in0].last == i && !read_elsewhere(s, in0) &&
			    copro_kt_bytes(&b->pv[in0].t) == bytes) {
				pv->off = b->pv[in0].off;
				pv->size = b->pv[in0].size;
				pv->held = 1;
				b->pv[in0].held = 0;
				continue;
			}
			if (bytes > COPRO_PLAN_MAX_BYTES) {
				rc = charge(b, bytes, s->node.op_type);
				goto out;
			}
			if (arena_alloc(&a, buf_size(bytes), &off)) {
				rc = fail(b->err, b->errlen, -ENOMEM, "out of memory");
				goto out;
			}
			if ((int64_t)a.end > COPRO_PLAN_MAX_BYTES) {
				rc = charge(b, (int64_t)a.end, "arena");
				goto out;
			}
			if (pv) {
				pv->off = off;
				pv->size = buf_size(bytes);
				pv->held = 1;
			} else {
				s->tmp_off[j] = off;
			}
		}
		/* Release what dies here: inputs read for the last time, unread outputs. */
		for (j = 0; j < s->node.n_in; j++) {
			int id = s->node.in[j];

			if (id >= 0 && b->pv[id].kind == PV_INTER && b->pv[id].held &&
			    b->pv[id].last == i) {
				arena_release(&a, b->pv[id].off);
				b->pv[id].held = 0;
			}
		}
		for (j = 0; j < s->n_out; j++) {
			int id = s->node.out[j];

			if (id < 0) {
				arena_release(&a, s->tmp_off[j]);
			} else if (b->pv[id].kind == PV_INTER && b->pv[id].held &&
				   b->pv[id].last == i) {
				arena_release(&a, b->pv[id].off);
				b->pv[id].held = 0;
			}
		}
	}
	p->arena_bytes = a.end;
	rc = charge(b, (int64_t)a.end, "arena");
out:
	free(a.b);
	return rc;
}

/* Adds a patch for *slot from the caller's in[k] (src = k) or out[k] (src = -1 - k). */
static void add_patch(struct copro_plan *p, void **slot, int src)
{
	p->patches[p->n_patches].slot = slot;
	p->patches[p->n_patches].src = src;
	p->n_patches++;
}

/* Points data at where value id lives, or records a patch for it. */
static void bind(struct builder *b, struct copro_kt *t, int id)
{
	struct copro_plan *p = b->p;
	struct pval *pv = &b->pv[id];

	switch (pv->kind) {
	case PV_CONST:
		t->data = pv->t.data;
		break;
	case PV_INTER:
		t->data = p->mem + pv->off;
		break;
	case PV_INPUT:
		add_patch(p, &t->data, pv->idx);
		break;
	case PV_OUTPUT:
		add_patch(p, &t->data, -1 - pv->idx);
		break;
	}
}

/* Allocates the arena, staging and scratch, and binds every step's data. */
static int plan_bind(struct builder *b)
{
	struct copro_plan *p = b->p;
	size_t stage = 0, off, np = 0;
	int i, j, k;

	for (i = 0; i < p->n_steps; i++) {
		struct plan_step *s = &p->steps[i];

		np += (size_t)s->n_in + (size_t)s->n_out;
		if (s->op && s->op->scratch) {
			size_t sb = s->op->scratch(&s->node, s->in, s->out);

			if (sb > p->scratch_bytes)
				p->scratch_bytes = sb;
		}
	}
	for (k = 0; k < p->n_in; k++)
		stage += buf_size((int64_t)p->in[k].bytes);
	for (k = 0; k < p->n_out; k++)
		stage += buf_size((int64_t)p->out[k].bytes);
	if (charge(b, (int64_t)stage, "staging") ||
	    charge(b, (int64_t)round_up(p->scratch_bytes), "scratch"))
		return -E2BIG;
	p->patches = calloc(np ? np : 1, sizeof(*p->patches));
	p->mem = aligned_zalloc(p->arena_bytes + stage + round_up(p->scratch_bytes));
	if (!p->patches || !p->mem)
		return fail(b->err, b->errlen, -ENOMEM, "out of memory");
	off = p->arena_bytes;
	for (k = 0; k < p->n_in; k++) {
		p->in[k].stage = p->mem + off;
		off += buf_size((int64_t)p->in[k].bytes);
	}
	for (k = 0; k < p->n_out; k++) {
		p->out[k].stage = p->mem + off;
		off += buf_size((int64_t)p->out[k].bytes);
	}
	p->scratch = p->scratch_bytes ? p->mem + off : NULL;

	for (i = 0; i < p->n_steps; i++) {
		struct plan_step *s = &p->steps[i];

		if (!s->op) {
			bind(b, &s->in[0], s->copy_src);
			add_patch(p, &s->out[0].data, -1 - s->copy_dst);
			continue;
		}
		for (j = 0; j < s->n_in; j++) {
			if (s->node.in[j] >= 0)
				bind(b, &s->in[j], s->node.in[j]);
		}
		for (j = 0; j < s->n_out; j++) {
			if (s->node.out[j] >= 0)
				bind(b, &s->out[j], s->node.out[j]);
			else
				s->out[j].data = p->mem + s->tmp_off[j];
		}
	}
	return 0;
}

int copro_plan_build(const struct copro_graph *g, const struct copro_kt *in,
		     struct copro_plan **out, char *err, size_t errlen)
{
	/* The defaults: f32, Gemm/MatMul fused with bias and activation. */
	return copro_plan_build_opts(g, in, NULL, out, err, errlen);
}

int copro_prec_parse(const char *s, uint32_t *prec)
{
	if (!s)
		return -EINVAL;
	if (!strcmp(s, "f32") || !strcmp(s, "fp32") || !strcmp(s, "float32"))
		*prec = COPRO_PREC_F32;
	else if (!strcmp(s, "bf16") || !strcmp(s, "bfloat16"))
		*prec = COPRO_PREC_BF16;
	else if (!strcmp(s, "int8"))
		*prec = COPRO_PREC_INT8;
	else
		return -EINVAL;
	return 0;
}

const char *copro_prec_name(uint32_t prec)
{
	switch (prec) {
	case COPRO_PREC_F32: return "f32";
	case COPRO_PREC_BF16: return "bf16";
	case COPRO_PREC_INT8: return "int8";
	default: return "?";
	}
}

/* Refuses options this runtime does not know, naming the field. */
static int check_opts(const struct copro_plan_opts *o, char *err, size_t errlen)
{
	size_t i;

	if (o->precision > COPRO_PREC_INT8)
		return fail(err, errlen, -EINVAL, "unknown precision %u", o->precision);
	if (o->fuse > 1)
		return fail(err, errlen, -EINVAL, "fuse must be 0 or 1, not %u", o->fuse);
	if (o->flags & ~(COPRO_PLAN_F_PORTABLE | COPRO_PLAN_F_BLAS))
		return fail(err, errlen, -EINVAL, "unknown plan flags 0x%x", o->flags);
	for (i = 0; i < sizeof(o->reserved) / sizeof(o->reserved[0]); i++) {
		if (o->reserved[i])
			return fail(err, errlen, -EINVAL, "reserved option %zu is not 0", i);
	}
	return 0;
}

int copro_plan_build_opts(const struct copro_graph *g, const struct copro_kt *in,
			  const struct copro_plan_opts *opts, struct copro_plan **out, char *err,
			  size_t errlen)
{
	static const struct copro_plan_opts defaults = COPRO_PLAN_OPTS_INIT;
	struct builder b = { .g = g, .in = in, .err = err, .errlen = errlen };
	struct copro_plan *p;
	int i, k, rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	b.opts = opts ? *opts : defaults;
	rc = check_opts(&b.opts, err, errlen);
	if (rc)
		return rc;
	p = calloc(1, sizeof(*p));
	if (!p)
		return fail(err, errlen, -ENOMEM, "out of memory");
	b.p = p;
	p->g = g;
	p->n_in = g->n_inputs;
	p->n_out = g->n_outputs;
	b.pv = calloc(g->n_values ? (size_t)g->n_values : 1, sizeof(*b.pv));
	p->steps = calloc((size_t)g->n_nodes + (size_t)g->n_outputs + 1, sizeof(*p->steps));
	p->in = calloc(p->n_in ? (size_t)p->n_in : 1, sizeof(*p->in));
	p->out = calloc(p->n_out ? (size_t)p->n_out : 1, sizeof(*p->out));
	if (!b.pv || !p->steps || !p->in || !p->out) {
		rc = fail(err, errlen, -ENOMEM, "out of memory");
		goto fail;
	}
	rc = check_inputs(&b, in);
	if (rc)
		goto fail;
	for (k = 0; k < g->n_inputs; k++) {
		struct pval *pv = &b.pv[g->inputs[k]];

		pv->t = in[k];
		pv->t.data = NULL;
		pv->kind = PV_INPUT;
		pv->idx = k;
		p->in[k].t = pv->t;
		p->in[k].bytes = (size_t)copro_kt_bytes(&pv->t);
	}
	for (i = 0; i < g->n_values; i++) {
		if (g->values[i].is_const) {
			b.pv[i].t = g->values[i].t;
			b.pv[i].kind = PV_CONST;
		}
	}
	for (i = 0; i < g->n_nodes; i++) {
		rc = plan_node(&b, i);
		if (rc)
			goto fail;
	}
	rc = plan_outputs(&b);
	if (rc)
		goto fail;
	plan_dce(&b);
	rc = plan_linear(&b);
	if (rc)
		goto fail;
	rc = plan_arena(&b);
	if (rc)
		goto fail;
	rc = plan_bind(&b);
	if (rc)
		goto fail;
	free(b.pv);
	*out = p;
	return 0;
fail:
	free(b.pv);
	copro_plan_free(p);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Running                                                                */
/* ---------------------------------------------------------------------- */

static int same_shape(const struct copro_kt *a, const struct copro_kt *b)
{
	int i;

	if (a->dtype != b->dtype || a->rank != b->rank)
		return 0;
	for (i = 0; i < a->rank; i++) {
		if (a->dims[i] != b->dims[i])
			return 0;
	}
	return 1;
}

static int misaligned(const void *d)
{
	return ((uintptr_t)d & (PLAN_ALIGN - 1)) != 0;
}

int copro_plan_run(struct copro_plan *p, const struct copro_kt *in, struct copro_kt *out)
{
	int i, k, rc;

	for (k = 0; k < p->n_in; k++) {
		if (!same_shape(&in[k], &p->in[k].t) || (!in[k].data && p->in[k].bytes))
			return -EINVAL;
		if (p->in[k].frozen && p->in[k].bytes &&
		    memcmp(in[k].data, p->in[k].frozen, p->in[k].bytes))
			return -EINVAL;
	}
	for (k = 0; k < p->n_out; k++) {
		if (!out[k].data && p->out[k].bytes)
			return -EINVAL;
	}
	/* Misaligned inputs are staged so every op sees 64-byte aligned data. */
	for (k = 0; k < p->n_in; k++) {
		if (misaligned(in[k].data))
			memcpy(p->in[k].stage, in[k].data, p->in[k].bytes);
	}
	for (i = 0; i < p->n_patches; i++) {
		const struct plan_patch *pt = &p->patches[i];

		if (pt->src >= 0) {
			void *d = in[pt->src].data;

			*pt->slot = misaligned(d) ? p->in[pt->src].stage : d;
		} else {
			void *d = out[-1 - pt->src].data;

			*pt->slot = misaligned(d) ? p->out[-1 - pt->src].stage : d;
		}
	}
	for (i = 0; i < p->n_steps; i++) {
		struct plan_step *s = &p->steps[i];

		if (!s->op) {
			if (s->copy_bytes && s->out[0].data != s->in[0].data)
				memmove(s->out[0].data, s->in[0].data, s->copy_bytes);
			continue;
		}
		rc = s->op->run(&s->node, s->in, s->out, p->scratch);
		if (rc)
			return rc < 0 ? rc : -EIO;
	}
	for (k = 0; k < p->n_out; k++) {
		void *d = out[k].data;

		if (misaligned(d))
			memcpy(d, p->out[k].stage, p->out[k].bytes);
		out[k] = p->out[k].t;
		out[k].data = d;
	}
	return 0;
}

const struct copro_kt *copro_plan_output(const struct copro_plan *p, int i)
{
	if (!p || i < 0 || i >= p->n_out)
		return NULL;
	return &p->out[i].t;
}

size_t copro_plan_arena_bytes(const struct copro_plan *p)
{
	return p ? p->arena_bytes : 0;
}

int copro_plan_n_steps(const struct copro_plan *p)
{
	return p ? p->n_steps : 0;
}

int copro_plan_n_lowp(const struct copro_plan *p)
{
	return p ? p->n_lowp : 0;
}

const char *copro_plan_kernel(const struct copro_plan *p)
{
	return p && p->kernel ? p->kernel : "f32";
}

void copro_plan_free(struct copro_plan *p)
{
	int i;

	if (!p)
		return;
	for (i = 0; i < p->n_steps && p->steps; i++)
		step_release(&p->steps[i]);
	free(p->steps);
	free(p->patches);
	for (i = 0; i < p->n_consts; i++)
		free(p->consts[i]);
	free(p->consts);
	free(p->mem);
	free(p->in);
	free(p->out);
	free(p);
}
