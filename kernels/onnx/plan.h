/* SPDX-License-Identifier: MIT */
/*
 * plan.h - an ONNX graph compiled for given input shapes into a flat list
 * of steps over preallocated buffers.
 *
 * Building a plan resolves every node's operator, infers every value's
 * shape, folds constants (nodes whose inputs are all known, and
 * shape-only nodes such as Shape), and allocates one arena for all
 * intermediate values with buffers reused once their last reader has run.
 * Running a plan allocates nothing and takes no lock.
 */
#ifndef COPRO_ONNX_PLAN_H
#define COPRO_ONNX_PLAN_H

#include <stddef.h>
#include <stdint.h>

#include "graph.h"

struct copro_plan;

/*
 * Builds a plan of g for inputs of exactly the given dtypes and shapes
 * (in[i] describes graph input i, g->inputs[i]). in[i].data may be NULL; it
 * is read only when an operator needs input i's values at build time (a
 * Reshape whose shape is a graph input): then the plan is built for those
 * values, copies them, and copro_plan_run refuses any other (-EINVAL);
 * with data NULL such a node is unsupported. The plan refers to g's
 * constants: g must outlive it. Returns 0, or -ENOTSUP with a reason naming
 * the operator, node and opset that is not supported, -EINVAL for a graph
 * that is inconsistent with these shapes, -E2BIG for a plan that would
 * need more memory than the runtime allows, -ENOMEM.
 */
int copro_plan_build(const struct copro_graph *g, const struct copro_kt *in,
		     struct copro_plan **out, char *err, size_t errlen);

/*
 * Runs the plan: in[i].data holds graph input i (shapes as planned),
 * out[i].data receives graph output i; out[i] shapes are filled in. The
 * caller's buffers are used directly: no copy of inputs is made when they
 * are 64-byte aligned (a misaligned buffer is staged through the plan's
 * own memory, which costs one copy). Outputs must not overlap inputs. One
 * thread at a time per plan: the plan's arena is its working memory.
 * Returns 0 or -EINVAL if an input's shape differs from the plan's, a
 * frozen input's values differ, or a buffer is NULL.
 */
int copro_plan_run(struct copro_plan *p, const struct copro_kt *in, struct copro_kt *out);

/* The shape and dtype graph output i will have. */
const struct copro_kt *copro_plan_output(const struct copro_plan *p, int i);
/* Bytes of the plan's arena (intermediate values), for reports. */
size_t copro_plan_arena_bytes(const struct copro_plan *p);
/* Steps a run executes (folded and dead nodes are gone), for reports and tests. */
int copro_plan_n_steps(const struct copro_plan *p);

void copro_plan_free(struct copro_plan *p);

#endif /* COPRO_ONNX_PLAN_H */
