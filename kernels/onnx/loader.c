// SPDX-License-Identifier: MIT
/*
 * loader.c - turns a serialized ONNX ModelProto into a struct copro_graph.
 *
 * protobuf-c parses the bytes; everything after that distrusts the message
 * as much as the bytes: every count is checked before it becomes an int,
 * every tensor's data length against its dims (without overflow), every
 * name against the names defined so far. The loader will be fuzzed, so an
 * input it cannot understand gets an error and a one-line reason, never a
 * crash, and everything allocated so far is released.
 *
 * The graph owns copies of everything it keeps; the protobuf message is
 * freed before copro_graph_load returns.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "onnx.pb-c.h"
#include "onnx/graph.h"

#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "raw_data is little-endian and is copied as is: a big-endian host needs byte swaps here"
#endif

/* Opsets of the default domain whose operator semantics the runtime knows. */
#define COPRO_OPSET_MIN		9
#define COPRO_OPSET_MAX		17

/*
 * More values or nodes than this is not a model, it is an attack on the
 * int counters (and a 2 GiB protobuf cannot hold that many anyway).
 */
#define LOADER_MAX_COUNT	(1 << 24)

/* Writes a reason into err (may be NULL) and returns code. */
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

/* A name for messages: protobuf-c leaves absent proto2 strings NULL. */
static const char *str_or(const char *s, const char *def)
{
	return s && *s ? s : def;
}

static char *xstrdup(const char *s)
{
	return strdup(s ? s : "");
}

/* ---------------------------------------------------------------------- */
/* Names -> value ids                                                     */
/* ---------------------------------------------------------------------- */

/*
 * An open-addressing table from value name to id, sized once for every
 * value the graph can have. A linear scan would do for real models, but a
 * fuzzed file with a million names must not take minutes.
 */
struct name_map {
	uint32_t mask;
	int *slot;			/* value id, -1 = empty */
	const struct copro_value *values;
};

static uint32_t name_hash(const char *s)
{
	uint32_t h = 2166136261u;	/* FNV-1a */

	while (*s)
		h = (h ^ (uint8_t)*s++) * 16777619u;
	return h;
}

static int map_init(struct name_map *m, size_t n, const struct copro_value *values)
{
	size_t cap = 16;

	while (cap < 2 * n)
		cap <<= 1;
	m->slot = malloc(cap * sizeof(*m->slot));
	if (!m->slot)
		return -ENOMEM;
	memset(m->slot, 0xff, cap * sizeof(*m->slot));
	m->mask = (uint32_t)(cap - 1);
	m->values = values;
	return 0;
}

/* Returns the id of name, or -1. */
static int map_get(const struct name_map *m, const char *name)
{
	uint32_t i = name_hash(name) & m->mask;

	while (m->slot[i] >= 0) {
		if (strcmp(m->values[m->slot[i]].name, name) == 0)
			return m->slot[i];
		i = (i + 1) & m->mask;
	}
	return -1;
}

/* Adds id under its value's name, which the caller checked is not there. */
static void map_put(struct name_map *m, int id)
{
	uint32_t i = name_hash(m->values[id].name) & m->mask;

	while (m->slot[i] >= 0)
		i = (i + 1) & m->mask;
	m->slot[i] = id;
}

/* ---------------------------------------------------------------------- */
/* Tensors                                                                */
/* ---------------------------------------------------------------------- */

/*
 * Checks an element type: 0 if the runtime can hold it, else -ENOTSUP (or
 * -EINVAL for a tensor that declares none) with a reason about what.
 */
static int check_dtype(int32_t dtype, const char *what, const char *name, char *err,
		       size_t errlen)
{
	if (copro_k_dtype_size(dtype))
		return 0;
	if (dtype == 0)
		return fail(err, errlen, -EINVAL, "%s %s has no element type", what, name);
	if (dtype == COPRO_K_STRING)
		return fail(err, errlen, -ENOTSUP, "%s %s: string tensors are not supported",
			    what, name);
	if (dtype == 14 || dtype == 15)
		return fail(err, errlen, -ENOTSUP, "%s %s: %s tensors are not supported", what,
			    name, copro_k_dtype_name(dtype));
	return fail(err, errlen, -ENOTSUP, "%s %s: unknown element type %d", what, name,
		    (int)dtype);
}

/* Allocates a tensor buffer: 64-byte aligned, never NULL for 0 bytes. */
static void *data_alloc(size_t bytes)
{
	size_t sz = (bytes + 63) & ~(size_t)63;
	void *p;

	if (sz == 0)
		sz = 64;
	p = aligned_alloc(64, sz);
	if (p)
		memset(p, 0, sz);
	return p;
}

/*
 * Decodes a TensorProto into t with freshly allocated, 64-byte aligned data
 * (the caller frees t->data). Data comes from raw_data (little-endian, as
 * the spec requires) or from the typed field the spec assigns to the
 * element type; its length must match the dims exactly.
 */
static int tensor_from_proto(const Onnx__TensorProto *tp, struct copro_kt *t, char *err,
			     size_t errlen)
{
	const char *name = str_or(tp->name, "(unnamed)");
	int64_t numel = 1, bytes;
	size_t esz, i, n;
	uint8_t *d;
	int rc;

	memset(t, 0, sizeof(*t));
	if (tp->n_external_data ||
	    (tp->has_data_location &&
	     tp->data_location == ONNX__TENSOR_PROTO__DATA_LOCATION__EXTERNAL))
		return fail(err, errlen, -ENOTSUP, "external data is not supported (tensor %s)",
			    name);
	if (tp->segment)
		return fail(err, errlen, -ENOTSUP,
			    "segmented tensors are not supported (tensor %s)", name);
	rc = check_dtype(tp->data_type, "tensor", name, err, errlen);
	if (rc)
		return rc;
	if (tp->n_dims > COPRO_K_MAX_RANK)
		return fail(err, errlen, -ENOTSUP, "tensor %s: rank %zu is more than %d", name,
			    tp->n_dims, COPRO_K_MAX_RANK);
	esz = copro_k_dtype_size(tp->data_type);
	for (i = 0; i < tp->n_dims; i++) {
		if (tp->dims[i] < 0)
			return fail(err, errlen, -EINVAL, "tensor %s: negative dimension %lld",
				    name, (long long)tp->dims[i]);
		if (__builtin_mul_overflow(numel, tp->dims[i], &numel))
			return fail(err, errlen, -EINVAL, "tensor %s: too many elements", name);
		t->dims[i] = tp->dims[i];
	}
	if (__builtin_mul_overflow(numel, (int64_t)esz, &bytes) || bytes > (int64_t)(SIZE_MAX / 2))
		return fail(err, errlen, -EINVAL, "tensor %s: too many elements", name);
	t->dtype = tp->data_type;
	t->rank = (int32_t)tp->n_dims;

	/* Find the data and check its length before allocating anything. */
	if (tp->has_raw_data) {
		if ((int64_t)tp->raw_data.len != bytes)
			return fail(err, errlen, -EINVAL,
				    "tensor %s: raw_data holds %zu bytes, %lld expected", name,
				    tp->raw_data.len, (long long)bytes);
		n = (size_t)numel;
	} else {
		switch (tp->data_type) {
		case COPRO_K_F32:
			n = tp->n_float_data;
			break;
		case COPRO_K_I32:
		case COPRO_K_I16:
		case COPRO_K_I8:
		case COPRO_K_U16:
		case COPRO_K_U8:
		case COPRO_K_BOOL:
		case COPRO_K_F16:
		case COPRO_K_BF16:
			n = tp->n_int32_data;
			break;
		case COPRO_K_I64:
			n = tp->n_int64_data;
			break;
		case COPRO_K_F64:
			n = tp->n_double_data;
			break;
		default:	/* U32, U64 */
			n = tp->n_uint64_data;
			break;
		}
		if ((int64_t)n != numel)
			return fail(err, errlen, -EINVAL,
				    "tensor %s: %zu values for %lld elements", name, n,
				    (long long)numel);
	}
	d = data_alloc((size_t)bytes);
	if (!d)
		return fail(err, errlen, -ENOMEM, "tensor %s: out of memory", name);
	if (tp->has_raw_data) {
		if (bytes)
			memcpy(d, tp->raw_data.data, (size_t)bytes);
	} else {
		for (i = 0; i < n; i++) {
			switch (tp->data_type) {
			case COPRO_K_F32:
				((float *)d)[i] = tp->float_data[i];
				break;
			case COPRO_K_I32:
				((int32_t *)d)[i] = tp->int32_data[i];
				break;
			case COPRO_K_I16:
			case COPRO_K_U16:
			case COPRO_K_F16:
			case COPRO_K_BF16:
				/* 16-bit types: the low half, bit for bit. */
				((uint16_t *)d)[i] = (uint16_t)tp->int32_data[i];
				break;
			case COPRO_K_I8:
			case COPRO_K_U8:
				((uint8_t *)d)[i] = (uint8_t)tp->int32_data[i];
				break;
			case COPRO_K_BOOL:
				((uint8_t *)d)[i] = tp->int32_data[i] != 0;
				break;
			case COPRO_K_I64:
				((int64_t *)d)[i] = tp->int64_data[i];
				break;
			case COPRO_K_F64:
				((double *)d)[i] = tp->double_data[i];
				break;
			case COPRO_K_U32:
				((uint32_t *)d)[i] = (uint32_t)tp->uint64_data[i];
				break;
			default:	/* U64 */
				((uint64_t *)d)[i] = tp->uint64_data[i];
				break;
			}
		}
	}
	t->data = d;
	return 0;
}

int copro_tensor_decode(const void *buf, size_t len, struct copro_kt *t, char **name,
			char *err, size_t errlen)
{
	Onnx__TensorProto *tp;
	int rc;

	memset(t, 0, sizeof(*t));
	if (name)
		*name = NULL;
	if (err && errlen)
		err[0] = '\0';
	tp = onnx__tensor_proto__unpack(NULL, len, buf);
	if (!tp)
		return fail(err, errlen, -EINVAL, "not a valid TensorProto");
	rc = tensor_from_proto(tp, t, err, errlen);
	if (rc == 0 && name) {
		*name = xstrdup(tp->name);
		if (!*name) {
			free(t->data);
			memset(t, 0, sizeof(*t));
			rc = fail(err, errlen, -ENOMEM, "out of memory");
		}
	}
	onnx__tensor_proto__free_unpacked(tp, NULL);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Graph inputs and outputs                                               */
/* ---------------------------------------------------------------------- */

/*
 * Fills v->t and v->dim_names from a ValueInfoProto's tensor type. A dim
 * given by dim_param, or not given at all, becomes -1 (with its name kept
 * when it has one); a shape that is absent altogether leaves rank -1.
 */
static int value_from_info(const Onnx__ValueInfoProto *vi, struct copro_value *v,
			   const char *what, char *err, size_t errlen)
{
	const char *name = str_or(vi->name, "(unnamed)");
	const Onnx__TypeProto__Tensor *tt;
	size_t i;
	int rc;

	if (!vi->type || vi->type->value_case == ONNX__TYPE_PROTO__VALUE__NOT_SET)
		return fail(err, errlen, -EINVAL, "%s %s has no type", what, name);
	if (vi->type->value_case != ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE || !vi->type->tensor_type)
		return fail(err, errlen, -ENOTSUP,
			    "%s %s is not a tensor (sequences, maps, optionals and sparse "
			    "tensors are not supported)", what, name);
	tt = vi->type->tensor_type;
	rc = check_dtype(tt->elem_type, what, name, err, errlen);
	if (rc)
		return rc;
	v->t.dtype = tt->elem_type;
	if (!tt->shape) {
		v->t.rank = -1;
		return 0;
	}
	if (tt->shape->n_dim > COPRO_K_MAX_RANK)
		return fail(err, errlen, -ENOTSUP, "%s %s: rank %zu is more than %d", what, name,
			    tt->shape->n_dim, COPRO_K_MAX_RANK);
	if (tt->shape->n_dim) {
		v->dim_names = calloc(tt->shape->n_dim, sizeof(*v->dim_names));
		if (!v->dim_names)
			return fail(err, errlen, -ENOMEM, "out of memory");
	}
	v->t.rank = (int32_t)tt->shape->n_dim;
	for (i = 0; i < tt->shape->n_dim; i++) {
		const Onnx__TensorShapeProto__Dimension *d = tt->shape->dim[i];

		v->t.dims[i] = -1;
		if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE) {
			if (d->dim_value < 0)
				return fail(err, errlen, -EINVAL, "%s %s: negative dimension %lld",
					    what, name, (long long)d->dim_value);
			v->t.dims[i] = d->dim_value;
		} else if (d->value_case == ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM &&
			   d->dim_param && *d->dim_param) {
			v->dim_names[i] = strdup(d->dim_param);
			if (!v->dim_names[i])
				return fail(err, errlen, -ENOMEM, "out of memory");
		}
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* Nodes and attributes                                                   */
/* ---------------------------------------------------------------------- */

/*
 * The attribute's type. IR version 1 files may leave it out; then the one
 * field that is set says what it is.
 */
static int attr_type(const Onnx__AttributeProto *ap)
{
	if (ap->has_type && ap->type != ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__UNDEFINED)
		return ap->type;
	if (ap->has_f)
		return COPRO_ATTR_FLOAT;
	if (ap->has_i)
		return COPRO_ATTR_INT;
	if (ap->has_s)
		return COPRO_ATTR_STRING;
	if (ap->t)
		return COPRO_ATTR_TENSOR;
	if (ap->g)
		return COPRO_ATTR_GRAPH;
	if (ap->n_floats)
		return COPRO_ATTR_FLOATS;
	if (ap->n_ints)
		return COPRO_ATTR_INTS;
	if (ap->n_strings)
		return COPRO_ATTR_STRINGS;
	return 0;
}

/* Copies protobuf bytes into a NUL-terminated string. */
static char *bytes_dup(const ProtobufCBinaryData *b)
{
	char *s = malloc(b->len + 1);

	if (!s)
		return NULL;
	if (b->len)
		memcpy(s, b->data, b->len);
	s[b->len] = '\0';
	return s;
}

static int attr_from_proto(const Onnx__AttributeProto *ap, const char *op, const char *node,
			   struct copro_attr *a, char *err, size_t errlen)
{
	const char *aname = str_or(ap->name, "(unnamed)");
	int type = attr_type(ap);
	size_t i;
	int rc;

	if (!ap->name || !*ap->name)
		return fail(err, errlen, -EINVAL, "%s: an attribute has no name (node %s)", op,
			    node);
	a->name = strdup(ap->name);
	if (!a->name)
		goto nomem;
	a->type = type;
	switch (type) {
	case COPRO_ATTR_FLOAT:
		a->f = ap->f;
		return 0;
	case COPRO_ATTR_INT:
		a->i = ap->i;
		return 0;
	case COPRO_ATTR_STRING:
		a->s = bytes_dup(&ap->s);
		if (!a->s)
			goto nomem;
		return 0;
	case COPRO_ATTR_TENSOR:
		if (!ap->t)
			return fail(err, errlen, -EINVAL,
				    "%s: attribute %s has no tensor (node %s)", op, aname, node);
		a->t = calloc(1, sizeof(*a->t));
		if (!a->t)
			goto nomem;
		rc = tensor_from_proto(ap->t, a->t, err, errlen);
		if (rc) {
			/* Say which node the tensor belongs to. */
			char why[192];

			snprintf(why, sizeof(why), "%s", err && errlen ? err : "");
			return fail(err, errlen, rc, "%s: attribute %s: %s (node %s)", op, aname,
				    why, node);
		}
		return 0;
	case COPRO_ATTR_FLOATS:
		if (ap->n_floats > INT_MAX)
			return fail(err, errlen, -EINVAL, "%s: attribute %s is too long", op,
				    aname);
		a->n = (int)ap->n_floats;
		if (a->n) {
			a->floats = malloc(ap->n_floats * sizeof(float));
			if (!a->floats)
				goto nomem;
			memcpy(a->floats, ap->floats, ap->n_floats * sizeof(float));
		}
		return 0;
	case COPRO_ATTR_INTS:
		if (ap->n_ints > INT_MAX)
			return fail(err, errlen, -EINVAL, "%s: attribute %s is too long", op,
				    aname);
		a->n = (int)ap->n_ints;
		if (a->n) {
			a->ints = malloc(ap->n_ints * sizeof(int64_t));
			if (!a->ints)
				goto nomem;
			memcpy(a->ints, ap->ints, ap->n_ints * sizeof(int64_t));
		}
		return 0;
	case COPRO_ATTR_STRINGS:
		if (ap->n_strings > INT_MAX)
			return fail(err, errlen, -EINVAL, "%s: attribute %s is too long", op,
				    aname);
		if (ap->n_strings) {
			a->strings = calloc(ap->n_strings, sizeof(char *));
			if (!a->strings)
				goto nomem;
		}
		/* n counts what exists, so a failure halfway frees exactly that. */
		for (i = 0; i < ap->n_strings; i++) {
			a->strings[i] = bytes_dup(&ap->strings[i]);
			if (!a->strings[i])
				goto nomem;
			a->n++;
		}
		return 0;
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPH:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__GRAPHS:
		return fail(err, errlen, -ENOTSUP,
			    "%s: attribute %s is a subgraph; subgraphs are not supported (node %s)",
			    op, aname, node);
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSOR:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__SPARSE_TENSORS:
		return fail(err, errlen, -ENOTSUP,
			    "%s: attribute %s is a sparse tensor, not supported (node %s)", op,
			    aname, node);
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TENSORS:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTO:
	case ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__TYPE_PROTOS:
		return fail(err, errlen, -ENOTSUP,
			    "%s: attribute %s has type %d, not supported (node %s)", op, aname,
			    type, node);
	default:
		return fail(err, errlen, -EINVAL, "%s: attribute %s has no valid type (node %s)",
			    op, aname, node);
	}
nomem:
	return fail(err, errlen, -ENOMEM, "out of memory");
}

/* The default ONNX domain has two spellings. */
static int is_default_domain(const char *d)
{
	return !d || !*d || strcmp(d, "ai.onnx") == 0;
}

/* ---------------------------------------------------------------------- */
/* The model                                                              */
/* ---------------------------------------------------------------------- */

/* Creates value id n_values with a copy of name; the caller checked it is new. */
static int value_add(struct copro_graph *g, struct name_map *m, const char *name)
{
	struct copro_value *v = &g->values[g->n_values];

	v->name = strdup(name);
	if (!v->name)
		return -ENOMEM;
	map_put(m, g->n_values);
	return g->n_values++;
}

/*
 * Finds the opset a node of domain d was imported with, 0 if the model
 * imports none (such a node is unsupported at plan time either way).
 */
static int domain_opset(const Onnx__ModelProto *mp, const char *d)
{
	int64_t best = 0;
	size_t i;

	for (i = 0; i < mp->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *os = mp->opset_import[i];

		if (is_default_domain(os->domain) || strcmp(os->domain, d) != 0)
			continue;
		if (os->version > best)
			best = os->version;
	}
	return best > INT_MAX ? INT_MAX : (int)best;
}

static int graph_from_model(const Onnx__ModelProto *mp, struct copro_graph *g, char *err,
			    size_t errlen)
{
	const Onnx__GraphProto *gp = mp->graph;
	struct name_map m = { 0 };
	int64_t opset = -1;
	size_t i, j, cap;
	int rc;

	g->ir_version = mp->ir_version;
	g->producer = xstrdup(mp->producer_name);
	if (!g->producer)
		return fail(err, errlen, -ENOMEM, "out of memory");

	/* The default domain's opset decides which operator semantics apply. */
	for (i = 0; i < mp->n_opset_import; i++) {
		const Onnx__OperatorSetIdProto *os = mp->opset_import[i];

		if (is_default_domain(os->domain) && os->version > opset)
			opset = os->version;
	}
	if (!gp)
		return fail(err, errlen, -EINVAL, "the model has no graph");
	/*
	 * A model of another domain only (ai.onnx.preview.training, say) need
	 * not import the default one; its nodes are unsupported at plan time.
	 */
	if (opset < 0) {
		for (i = 0; i < gp->n_node; i++) {
			if (is_default_domain(gp->node[i]->domain))
				return fail(err, errlen, -EINVAL,
					    "the model imports no opset of the default domain");
		}
		opset = 0;
	} else if (opset < COPRO_OPSET_MIN || opset > COPRO_OPSET_MAX) {
		return fail(err, errlen, -ENOTSUP,
			    "opset %lld of the default domain is not supported (%d..%d are)",
			    (long long)opset, COPRO_OPSET_MIN, COPRO_OPSET_MAX);
	}
	g->opset = (int)opset;
	if (gp->n_sparse_initializer)
		return fail(err, errlen, -ENOTSUP, "sparse initializers are not supported");

	/* Every value is an initializer, a graph input or a node output. */
	cap = gp->n_initializer + gp->n_input;
	if (gp->n_node > LOADER_MAX_COUNT || gp->n_output > LOADER_MAX_COUNT ||
	    cap > LOADER_MAX_COUNT)
		return fail(err, errlen, -EINVAL, "the graph is too large");
	for (i = 0; i < gp->n_node; i++) {
		if (gp->node[i]->n_output > LOADER_MAX_COUNT ||
		    gp->node[i]->n_input > LOADER_MAX_COUNT)
			return fail(err, errlen, -EINVAL, "the graph is too large");
		cap += gp->node[i]->n_output;
		if (cap > LOADER_MAX_COUNT)
			return fail(err, errlen, -EINVAL, "the graph is too large");
	}
	g->values = calloc(cap ? cap : 1, sizeof(*g->values));
	g->nodes = calloc(gp->n_node ? gp->n_node : 1, sizeof(*g->nodes));
	g->inputs = calloc(gp->n_input ? gp->n_input : 1, sizeof(int));
	g->outputs = calloc(gp->n_output ? gp->n_output : 1, sizeof(int));
	if (!g->values || !g->nodes || !g->inputs || !g->outputs || map_init(&m, cap, g->values))
		return fail(err, errlen, -ENOMEM, "out of memory");

	/* Initializers: constants with their data decoded. */
	for (i = 0; i < gp->n_initializer; i++) {
		const Onnx__TensorProto *tp = gp->initializer[i];
		struct copro_value *v;
		int id;

		if (!tp->name || !*tp->name) {
			rc = fail(err, errlen, -EINVAL, "initializer %zu has no name", i);
			goto out;
		}
		if (map_get(&m, tp->name) >= 0) {
			rc = fail(err, errlen, -EINVAL, "initializer %s is defined twice",
				  tp->name);
			goto out;
		}
		id = value_add(g, &m, tp->name);
		if (id < 0)
			goto nomem;
		v = &g->values[id];
		v->is_const = 1;
		rc = tensor_from_proto(tp, &v->t, err, errlen);
		if (rc)
			goto out;
	}

	/*
	 * Graph inputs. One that is also an initializer is a constant with an
	 * overridable default in ONNX; the runtime keeps it constant, so the
	 * caller does not provide it.
	 */
	for (i = 0; i < gp->n_input; i++) {
		const Onnx__ValueInfoProto *vi = gp->input[i];
		int id;

		if (!vi->name || !*vi->name) {
			rc = fail(err, errlen, -EINVAL, "graph input %zu has no name", i);
			goto out;
		}
		id = map_get(&m, vi->name);
		if (id >= 0 && g->values[id].is_const)
			continue;
		if (id >= 0) {
			rc = fail(err, errlen, -EINVAL, "graph input %s is listed twice", vi->name);
			goto out;
		}
		id = value_add(g, &m, vi->name);
		if (id < 0)
			goto nomem;
		g->values[id].is_input = 1;
		g->inputs[g->n_inputs++] = id;
		rc = value_from_info(vi, &g->values[id], "graph input", err, errlen);
		if (rc)
			goto out;
	}

	/* Nodes, in the file's order, which ONNX requires to be topological. */
	for (i = 0; i < gp->n_node; i++) {
		const Onnx__NodeProto *np = gp->node[i];
		struct copro_node *n = &g->nodes[i];
		const char *nname;

		g->n_nodes = (int)i + 1;
		if (!np->op_type || !*np->op_type) {
			rc = fail(err, errlen, -EINVAL, "node %zu (%s) has no op_type", i,
				  str_or(np->name, "unnamed"));
			goto out;
		}
		n->op_type = strdup(np->op_type);
		n->name = xstrdup(np->name);
		n->domain = xstrdup(is_default_domain(np->domain) ? "" : np->domain);
		if (!n->op_type || !n->name || !n->domain)
			goto nomem;
		n->opset = *n->domain ? domain_opset(mp, n->domain) : g->opset;
		nname = n->name;
		if (np->n_input) {
			n->in = malloc(np->n_input * sizeof(int));
			if (!n->in)
				goto nomem;
		}
		n->n_in = (int)np->n_input;
		for (j = 0; j < np->n_input; j++) {
			const char *in = np->input[j];

			n->in[j] = -1;
			if (!*in)
				continue;	/* an absent optional input */
			n->in[j] = map_get(&m, in);
			if (n->in[j] >= 0)
				continue;
			/* Tell an unsorted graph from a dangling input. */
			for (size_t k = i + 1; k < gp->n_node; k++) {
				for (size_t l = 0; l < gp->node[k]->n_output; l++) {
					if (strcmp(gp->node[k]->output[l], in) == 0) {
						rc = fail(err, errlen, -EINVAL,
							  "%s: input %s is read before node %s "
							  "produces it (nodes are not in "
							  "topological order) (node %s)",
							  n->op_type, in,
							  str_or(gp->node[k]->name, "unnamed"),
							  nname);
						goto out;
					}
				}
			}
			rc = fail(err, errlen, -EINVAL,
				  "%s: input %s is never produced and is not a graph input or an "
				  "initializer (node %s)", n->op_type, in, nname);
			goto out;
		}
		if (np->n_output) {
			n->out = malloc(np->n_output * sizeof(int));
			if (!n->out)
				goto nomem;
		}
		n->n_out = (int)np->n_output;
		for (j = 0; j < np->n_output; j++) {
			const char *o = np->output[j];
			int id;

			n->out[j] = -1;
			if (!*o)
				continue;	/* an unused optional output */
			if (map_get(&m, o) >= 0) {
				rc = fail(err, errlen, -EINVAL,
					  "%s: output %s is already defined (two producers) "
					  "(node %s)", n->op_type, o, nname);
				goto out;
			}
			id = value_add(g, &m, o);
			if (id < 0)
				goto nomem;
			n->out[j] = id;
		}
		if (np->n_attribute > INT_MAX) {
			rc = fail(err, errlen, -EINVAL, "%s: too many attributes (node %s)",
				  n->op_type, nname);
			goto out;
		}
		if (np->n_attribute) {
			n->attrs = calloc(np->n_attribute, sizeof(*n->attrs));
			if (!n->attrs)
				goto nomem;
		}
		for (j = 0; j < np->n_attribute; j++) {
			n->n_attrs = (int)j + 1;
			rc = attr_from_proto(np->attribute[j], n->op_type, nname, &n->attrs[j], err,
					     errlen);
			if (rc)
				goto out;
		}
	}

	/*
	 * Graph outputs: any value at all (a node output, an input, a
	 * constant). The declared type is kept for node outputs so the planner
	 * can check what it infers against it.
	 */
	for (i = 0; i < gp->n_output; i++) {
		const Onnx__ValueInfoProto *vi = gp->output[i];
		struct copro_value *v;
		int id;

		if (!vi->name || !*vi->name) {
			rc = fail(err, errlen, -EINVAL, "graph output %zu has no name", i);
			goto out;
		}
		id = map_get(&m, vi->name);
		if (id < 0) {
			rc = fail(err, errlen, -EINVAL, "graph output %s is never produced",
				  vi->name);
			goto out;
		}
		v = &g->values[id];
		if (!v->is_input && !v->is_const && !v->is_output && vi->type) {
			rc = value_from_info(vi, v, "graph output", err, errlen);
			if (rc)
				goto out;
		}
		v->is_output = 1;
		g->outputs[g->n_outputs++] = id;
	}
	rc = 0;
out:
	free(m.slot);
	return rc;
nomem:
	rc = fail(err, errlen, -ENOMEM, "out of memory");
	goto out;
}

int copro_graph_load_buf(const void *buf, size_t len, struct copro_graph **out, char *err,
			 size_t errlen)
{
	Onnx__ModelProto *mp;
	struct copro_graph *g;
	int rc;

	*out = NULL;
	if (err && errlen)
		err[0] = '\0';
	if (!buf && len)
		return fail(err, errlen, -EINVAL, "no buffer");
	mp = onnx__model_proto__unpack(NULL, len, buf);
	if (!mp)
		return fail(err, errlen, -EINVAL, "not a valid ONNX model (protobuf parse failed)");
	g = calloc(1, sizeof(*g));
	if (!g) {
		rc = fail(err, errlen, -ENOMEM, "out of memory");
		goto out_proto;
	}
	rc = graph_from_model(mp, g, err, errlen);
	if (rc) {
		copro_graph_free(g);
		goto out_proto;
	}
	*out = g;
out_proto:
	onnx__model_proto__free_unpacked(mp, NULL);
	return rc;
}

/*
 * Reads the whole file and parses it from memory: an mmap would let a file
 * replaced or truncated while loading change the bytes under the parser.
 */
int copro_graph_load(const char *path, struct copro_graph **out, char *err, size_t errlen)
{
	struct stat st;
	uint8_t *buf = NULL;
	size_t len, done = 0;
	int fd, rc;

	*out = NULL;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		rc = -errno;
		return fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
	}
	if (fstat(fd, &st) < 0) {
		rc = -errno;
		fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
		goto out_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		rc = fail(err, errlen, -EINVAL, "%s: not a regular file", path);
		goto out_fd;
	}
	/* protobuf messages are limited to 2 GiB. */
	if (st.st_size > INT32_MAX) {
		rc = fail(err, errlen, -EFBIG,
			  "%s: larger than 2 GiB (external data is not supported)", path);
		goto out_fd;
	}
	len = (size_t)st.st_size;
	buf = malloc(len ? len : 1);
	if (!buf) {
		rc = fail(err, errlen, -ENOMEM, "%s: out of memory", path);
		goto out_fd;
	}
	while (done < len) {
		ssize_t k = read(fd, buf + done, len - done);

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0) {
			rc = -errno;
			fail(err, errlen, rc, "%s: %s", path, strerror(-rc));
			goto out_buf;
		}
		if (k == 0)
			break;	/* shrank while we read: parse what is there */
		done += (size_t)k;
	}
	rc = copro_graph_load_buf(buf, done, out, err, errlen);
out_buf:
	free(buf);
out_fd:
	close(fd);
	return rc;
}
