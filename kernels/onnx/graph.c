// SPDX-License-Identifier: MIT
/*
 * graph.c - element types, tensor sizes, attribute lookups and the
 * destructor of a loaded graph. The loader itself is loader.c.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/graph.h"
#include "onnx/ops.h"

size_t copro_k_dtype_size(int32_t dtype)
{
	switch (dtype) {
	case COPRO_K_U8:
	case COPRO_K_I8:
	case COPRO_K_BOOL:
		return 1;
	case COPRO_K_U16:
	case COPRO_K_I16:
	case COPRO_K_F16:
	case COPRO_K_BF16:
		return 2;
	case COPRO_K_F32:
	case COPRO_K_I32:
	case COPRO_K_U32:
		return 4;
	case COPRO_K_I64:
	case COPRO_K_F64:
	case COPRO_K_U64:
		return 8;
	default:
		return 0;	/* STRING, complex, UNDEFINED, anything newer */
	}
}

const char *copro_k_dtype_name(int32_t dtype)
{
	switch (dtype) {
	case COPRO_K_F32:	return "float";
	case COPRO_K_U8:	return "uint8";
	case COPRO_K_I8:	return "int8";
	case COPRO_K_U16:	return "uint16";
	case COPRO_K_I16:	return "int16";
	case COPRO_K_I32:	return "int32";
	case COPRO_K_I64:	return "int64";
	case COPRO_K_STRING:	return "string";
	case COPRO_K_BOOL:	return "bool";
	case COPRO_K_F16:	return "float16";
	case COPRO_K_F64:	return "double";
	case COPRO_K_U32:	return "uint32";
	case COPRO_K_U64:	return "uint64";
	case 14:		return "complex64";
	case 15:		return "complex128";
	case COPRO_K_BF16:	return "bfloat16";
	case 0:			return "undefined";
	default:		return "unknown";
	}
}

/*
 * Returns the element count, or -1 when a dim is unknown, the rank is not
 * declared (-1) or the product does not fit in int64: every caller treats
 * -1 as "cannot be sized", which is what an overflowing shape is too.
 */
int64_t copro_kt_numel(const struct copro_kt *t)
{
	int64_t k = 1;
	int i;

	if (t->rank < 0 || t->rank > COPRO_K_MAX_RANK)
		return -1;
	for (i = 0; i < t->rank; i++) {
		if (t->dims[i] < 0 || __builtin_mul_overflow(k, t->dims[i], &k))
			return -1;
	}
	return k;
}

int64_t copro_kt_bytes(const struct copro_kt *t)
{
	int64_t k = copro_kt_numel(t), b;

	if (k < 0 || __builtin_mul_overflow(k, (int64_t)copro_k_dtype_size(t->dtype), &b))
		return -1;
	return b;
}

/* ---------------------------------------------------------------------- */
/* Attributes                                                             */
/* ---------------------------------------------------------------------- */

/*
 * Returns the attribute called name, or NULL. Attribute lists are a handful
 * of entries, so a linear scan is the right structure; it runs at plan
 * build time only.
 */
const struct copro_attr *copro_attr_find(const struct copro_node *n, const char *name)
{
	int i;

	if (!n || !name)
		return NULL;
	for (i = 0; i < n->n_attrs; i++) {
		if (n->attrs[i].name && strcmp(n->attrs[i].name, name) == 0)
			return &n->attrs[i];
	}
	return NULL;
}

/* The typed lookups return def for an absent attribute and for one of another type. */
int64_t copro_attr_int(const struct copro_node *n, const char *name, int64_t def)
{
	const struct copro_attr *a = copro_attr_find(n, name);

	return a && a->type == COPRO_ATTR_INT ? a->i : def;
}

float copro_attr_float(const struct copro_node *n, const char *name, float def)
{
	const struct copro_attr *a = copro_attr_find(n, name);

	return a && a->type == COPRO_ATTR_FLOAT ? a->f : def;
}

const char *copro_attr_str(const struct copro_node *n, const char *name, const char *def)
{
	const struct copro_attr *a = copro_attr_find(n, name);

	return a && a->type == COPRO_ATTR_STRING && a->s ? a->s : def;
}

int copro_attr_ints(const struct copro_node *n, const char *name, const int64_t **v)
{
	const struct copro_attr *a = copro_attr_find(n, name);

	if (!a || a->type != COPRO_ATTR_INTS)
		return -1;
	*v = a->ints;
	return a->n;
}

int copro_attr_floats(const struct copro_node *n, const char *name, const float **v)
{
	const struct copro_attr *a = copro_attr_find(n, name);

	if (!a || a->type != COPRO_ATTR_FLOATS)
		return -1;
	*v = a->floats;
	return a->n;
}

/* ---------------------------------------------------------------------- */
/* Destructor                                                             */
/* ---------------------------------------------------------------------- */

/* Frees what an attribute owns; the struct itself lives in its node's array. */
static void attr_clear(struct copro_attr *a)
{
	int i;

	free(a->name);
	free(a->s);
	free(a->floats);
	free(a->ints);
	if (a->strings) {
		for (i = 0; i < a->n; i++)
			free(a->strings[i]);
		free(a->strings);
	}
	if (a->t) {
		free(a->t->data);
		free(a->t);
	}
}

/*
 * Frees g and everything it owns. Safe on a graph the loader abandoned
 * halfway: every array is zeroed when allocated and every count covers only
 * entries that exist. A node's priv is released through its op when someone
 * resolved one on the graph's own nodes (plans keep their own copies).
 */
void copro_graph_free(struct copro_graph *g)
{
	int i, j;

	if (!g)
		return;
	while (g->packs) {
		struct copro_wpack *p = g->packs;

		g->packs = p->next;
		p->release(p->data);
		free(p);
	}
	for (i = 0; i < g->n_nodes && g->nodes; i++) {
		struct copro_node *n = &g->nodes[i];

		if (n->op && n->op->release && n->priv)
			n->op->release(n);
		free(n->op_type);
		free(n->name);
		free(n->domain);
		free(n->in);
		free(n->out);
		for (j = 0; j < n->n_attrs && n->attrs; j++)
			attr_clear(&n->attrs[j]);
		free(n->attrs);
	}
	free(g->nodes);
	for (i = 0; i < g->n_values && g->values; i++) {
		struct copro_value *v = &g->values[i];

		free(v->name);
		if (v->is_const)
			free(v->t.data);
		if (v->dim_names) {
			for (j = 0; j < v->t.rank; j++)
				free(v->dim_names[j]);
			free(v->dim_names);
		}
	}
	free(g->values);
	free(g->inputs);
	free(g->outputs);
	free(g->producer);
	free(g);
}
