/* SPDX-License-Identifier: MIT */
/*
 * ops.h - the operator interface of the ONNX runtime.
 *
 * An operator is defined once, as a struct copro_op: a shape/type inference
 * function that also validates the node, and a run function that computes
 * outputs into buffers someone else allocated. run() never allocates and
 * never locks; every check that shapes and constants allow belongs in
 * infer(), which runs once per batch size when a plan is built. run() fails
 * only on values it alone sees that would make it read outside an input
 * (Gather's indices: -ERANGE), so that a bad request fails alone.
 * Scratch memory an op needs is declared by scratch() and handed to run().
 */
#ifndef COPRO_ONNX_OPS_H
#define COPRO_ONNX_OPS_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"

/* copro_op.flags */
#define COPRO_OP_F_SHAPE_ONLY	(1U << 0)	/* run() reads only input shapes (Shape) */
#define COPRO_OP_F_INPLACE_OK	(1U << 1)	/* output 0 may alias input 0 (same size) */

struct copro_op {
	const char *name;		/* op_type, default domain */
	int since;			/* oldest opset whose semantics this implements */
	uint32_t flags;
	/*
	 * Inputs whose values infer() needs (bit i = input i), e.g. the shape
	 * input of Reshape. The planner makes sure they are constants (given
	 * or folded) before calling infer(); if one is not, the node is
	 * unsupported for that model.
	 */
	uint32_t value_inputs;
	/*
	 * Validates the node and infers every output's dtype, rank and dims
	 * from the inputs' (in[i].data is set for constant inputs, NULL
	 * otherwise; an absent optional input has dtype 0). Returns 0, or
	 * -ENOTSUP (a valid node this runtime does not handle: an attribute
	 * value, a dtype) or -EINVAL (an invalid node), with a one-line reason
	 * in err naming what is wrong.
	 */
	int (*infer)(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen);
	/* Optional: bytes of scratch run() needs for these shapes. */
	size_t (*scratch)(const struct copro_node *n, const struct copro_kt *in,
			  const struct copro_kt *out);
	/*
	 * Computes the outputs. Shapes are exactly those infer() produced;
	 * every data pointer is valid and suitably aligned (64 bytes); inputs
	 * and outputs do not overlap unless COPRO_OP_F_INPLACE_OK. Returns 0,
	 * or -ERANGE for an index input out of range (outputs then undefined).
	 */
	int (*run)(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch);
	/* Optional: frees n->priv. */
	void (*release)(struct copro_node *n);
};

/*
 * Finds the operator for op_type at this opset in the default domain, or
 * NULL. A node whose opset is older than op->since is unsupported (the
 * semantics differ), as is any node of another domain.
 */
const struct copro_op *copro_op_find(const char *op_type, int opset);

/* Every operator known, for listing (copro-model) and the conformance report. */
extern const struct copro_op *const copro_ops[];
extern const size_t copro_n_ops;

/*
 * Multidirectional (numpy-style) broadcasting as ONNX defines it: the output
 * shape of a and b, or -EINVAL if they do not broadcast.
 */
int copro_broadcast_shape(const struct copro_kt *a, const struct copro_kt *b, struct copro_kt *out);

#endif /* COPRO_ONNX_OPS_H */
