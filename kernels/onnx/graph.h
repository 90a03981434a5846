/* SPDX-License-Identifier: MIT */
/*
 * graph.h - an ONNX model as the runtime sees it: values, nodes, attributes.
 *
 * The loader (loader.c) turns a ModelProto into a struct copro_graph that
 * owns every byte it points to (names, attributes, initializer data), so the
 * protobuf message can be freed right after loading. Nothing here knows about
 * rings, sessions or clients.
 *
 * Element types use ONNX's TensorProto.DataType numbering, the model
 * format's own; the server maps them to the ABI's COPRO_DT_* at its edge.
 */
#ifndef COPRO_ONNX_GRAPH_H
#define COPRO_ONNX_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#define COPRO_K_MAX_RANK	8

/* ONNX TensorProto.DataType values the runtime knows. */
#define COPRO_K_F32		1
#define COPRO_K_U8		2
#define COPRO_K_I8		3
#define COPRO_K_U16		4
#define COPRO_K_I16		5
#define COPRO_K_I32		6
#define COPRO_K_I64		7
#define COPRO_K_STRING		8	/* never supported: a load error */
#define COPRO_K_BOOL		9
#define COPRO_K_F16		10
#define COPRO_K_F64		11
#define COPRO_K_U32		12
#define COPRO_K_U64		13
#define COPRO_K_BF16		16

/*
 * A tensor at run time: element type, shape and data. dims[i] == -1 marks a
 * dimension not known yet (only during shape inference, e.g. a symbolic
 * batch). rank 0 is a scalar with one element. data is NULL when the values
 * are not known (shape inference of a non-constant value).
 */
struct copro_kt {
	int32_t dtype;				/* COPRO_K_* */
	int32_t rank;
	int64_t dims[COPRO_K_MAX_RANK];
	void *data;
};

/* Bytes per element, 0 for an unknown or unsupported type. */
size_t copro_k_dtype_size(int32_t dtype);
/* "float", "int64", ... for messages. */
const char *copro_k_dtype_name(int32_t dtype);
/* Number of elements (1 for a scalar); -1 if a dim is unknown. */
int64_t copro_kt_numel(const struct copro_kt *t);
/* Bytes of data; -1 if a dim is unknown. */
int64_t copro_kt_bytes(const struct copro_kt *t);

/* Attribute types: ONNX AttributeProto.AttributeType numbering. */
#define COPRO_ATTR_FLOAT	1
#define COPRO_ATTR_INT		2
#define COPRO_ATTR_STRING	3
#define COPRO_ATTR_TENSOR	4
#define COPRO_ATTR_GRAPH	5	/* not supported: load error */
#define COPRO_ATTR_FLOATS	6
#define COPRO_ATTR_INTS		7
#define COPRO_ATTR_STRINGS	8

struct copro_attr {
	char *name;
	int type;			/* COPRO_ATTR_* */
	float f;
	int64_t i;
	char *s;			/* NUL-terminated copy of the bytes */
	int n;				/* elements of floats / ints / strings */
	float *floats;
	int64_t *ints;
	char **strings;
	struct copro_kt *t;		/* TENSOR: owned, data included */
};

struct copro_op;

struct copro_node {
	char *op_type;
	char *name;			/* may be "" */
	char *domain;			/* "" for the default ONNX domain */
	int opset;			/* the model's opset for this node's domain */
	int n_in, n_out;
	int *in;			/* value ids; -1 = optional input absent */
	int *out;			/* value ids; -1 = optional output unused */
	int n_attrs;
	struct copro_attr *attrs;
	const struct copro_op *op;	/* resolved by the executor / planner */
	void *priv;			/* the op's own state, if it keeps any */
};

/*
 * A value: a graph input, an initializer (constant), a node output or a
 * graph output. t.data is set for initializers (owned by the graph).
 */
struct copro_value {
	char *name;
	struct copro_kt t;		/* declared type/shape; -1 dims are symbolic;
					 * rank -1: an input/output declared without a shape */
	char **dim_names;		/* NULL, or rank entries (declared inputs/outputs):
					 * each NULL or the dim's symbolic name */
	uint8_t is_input;		/* a graph input the caller provides */
	uint8_t is_const;		/* an initializer */
	uint8_t is_output;		/* a graph output */
};

/*
 * Weights a kernel converted once for every plan of a graph (one plan per
 * batch size reads one copy): a list the planner pushes onto with a CAS
 * and copro_graph_free() frees. src is the initializer's data; tag, tb,
 * K and N say what conversion data holds (the kernel's own struct).
 */
struct copro_wpack {
	struct copro_wpack *next;
	const void *src;
	uint32_t tag;
	int tb;
	int64_t K, N;
	void *data;
	void (*release)(void *data);
};

struct copro_graph {
	int n_values, n_nodes;
	struct copro_value *values;
	struct copro_node *nodes;	/* in the file's (topological) order */
	int n_inputs, n_outputs;
	int *inputs;			/* value ids of the inputs the caller provides */
	int *outputs;			/* value ids of the graph outputs */
	int opset;			/* default-domain opset; 0: not imported (no such node) */
	int64_t ir_version;
	char *producer;			/* producer_name, may be "" */
	/*
	 * The one part plans write: packed weights they share (gemm_f32.c).
	 * NULL in a fresh graph; accessed with __atomic loads and CAS.
	 */
	struct copro_wpack *packs;
};

/* Attribute lookups: return def when the attribute is absent. */
const struct copro_attr *copro_attr_find(const struct copro_node *n, const char *name);
int64_t copro_attr_int(const struct copro_node *n, const char *name, int64_t def);
float copro_attr_float(const struct copro_node *n, const char *name, float def);
const char *copro_attr_str(const struct copro_node *n, const char *name, const char *def);
/* Sets *v to the INTS list and returns its length, or -1 if absent. */
int copro_attr_ints(const struct copro_node *n, const char *name, const int64_t **v);
int copro_attr_floats(const struct copro_node *n, const char *name, const float **v);

/*
 * Loads an ONNX file. Returns 0 and a graph the caller frees with
 * copro_graph_free(), or a negative code with a one-line reason in err:
 * -ENOENT/-EACCES (file), -EFBIG (over protobuf's 2 GiB), -EINVAL (not a
 * valid ModelProto, inconsistent graph), -ENOTSUP (external data, an
 * unsupported element type, a subgraph attribute, opset outside 9..17).
 */
int copro_graph_load(const char *path, struct copro_graph **out, char *err, size_t errlen);
/* The same from a buffer (used by fuzzing and tests). */
int copro_graph_load_buf(const void *buf, size_t len, struct copro_graph **out, char *err,
			 size_t errlen);
void copro_graph_free(struct copro_graph *g);

/*
 * Decodes a serialized TensorProto (the node tests' input_N.pb/output_N.pb)
 * into t, with freshly malloc'ed data the caller frees; name (may be NULL)
 * receives a malloc'ed copy of the tensor's name. Returns 0 or -EINVAL /
 * -ENOTSUP with a reason in err.
 */
int copro_tensor_decode(const void *buf, size_t len, struct copro_kt *t, char **name,
			char *err, size_t errlen);

#endif /* COPRO_ONNX_GRAPH_H */
