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
 * Options for building a plan. Start from COPRO_PLAN_OPTS_INIT (a
 * zero-filled struct is f32 without fusion), then set fields; every
 * reserved field must be 0 (a plan refuses what it does not know, so a
 * field added later cannot be silently ignored by an older runtime).
 */
#define COPRO_PREC_F32		0	/* float32 everywhere (the default) */
#define COPRO_PREC_BF16		1	/* Gemm/MatMul weights, activations in bfloat16 */
#define COPRO_PREC_INT8		2	/* int8 weights per channel, activations per row */

/*
 * copro_plan_opts.flags. PORTABLE: bf16/int8 in plain C, never AVX-512
 * (for tests and comparisons: 7-20x slower than f32 on OpenBLAS here).
 */
#define COPRO_PLAN_F_PORTABLE	(1U << 0)
/*
 * BLAS: f32 products on OpenBLAS only, never the own AVX-512 f32 kernel
 * (for comparisons; the results differ from the default's in the last
 * bits, the sums being ordered otherwise).
 */
#define COPRO_PLAN_F_BLAS	(1U << 1)

struct copro_plan_opts {
	/*
	 * COPRO_PREC_*: the precision of every Gemm/MatMul whose B is a
	 * constant 2-D float matrix (a layer's weights). Weights are
	 * converted once when the plan is built; activations per run, into
	 * scratch; products accumulate in f32 (bf16) or i32 (int8) and the
	 * outputs are f32, so every other op and the model's signature stay
	 * as they are. A product that cannot be lowered stays f32: B
	 * computed, int8 with K > 65536, non-finite weights, or a CPU
	 * without the AVX-512 kernel (AVX512-BF16 / AVX512-VNNI) unless
	 * COPRO_PLAN_F_PORTABLE asks for plain C. copro_plan_n_lowp() and
	 * copro_plan_kernel() tell what was done.
	 */
	uint32_t precision;
	/*
	 * 1: a Gemm/MatMul, the Add of a constant bias row after it and a
	 * Relu, LeakyRelu, Sigmoid or Tanh after that run as one step, when
	 * each intermediate has one reader and is not a graph output.
	 * In f32 the fused step computes bit for bit what the separate
	 * steps compute. Fused or not, an f32 Gemm/MatMul with constant
	 * weights (Gemm: alpha 1, A not transposed, C absent or one row)
	 * runs on the own AVX-512 kernel where the CPU has AVX-512F, with
	 * its weights packed once per graph, unless COPRO_PLAN_F_BLAS.
	 */
	uint32_t fuse;
	uint32_t flags;			/* COPRO_PLAN_F_* */
	uint32_t reserved[5];		/* must be 0 */
};

/* The defaults: f32, fusion on. */
#define COPRO_PLAN_OPTS_INIT	{ .precision = COPRO_PREC_F32, .fuse = 1 }

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
 *
 * This entry point builds in f32 without fusion, as it always has;
 * copro_plan_build_opts with NULL options gives the defaults (fusion on).
 */
int copro_plan_build(const struct copro_graph *g, const struct copro_kt *in,
		     struct copro_plan **out, char *err, size_t errlen);

/*
 * The same with options (NULL: COPRO_PLAN_OPTS_INIT). Also returns
 * -EINVAL with a reason for an unknown precision, an unknown flag or a
 * reserved field that is not 0.
 */
int copro_plan_build_opts(const struct copro_graph *g, const struct copro_kt *in,
			  const struct copro_plan_opts *opts, struct copro_plan **out, char *err,
			  size_t errlen);

/*
 * Parses "f32" (or "fp32", "float32"), "bf16" (or "bfloat16"), "int8"
 * into *prec: 0, or -EINVAL for anything else. For configuration files.
 */
int copro_prec_parse(const char *s, uint32_t *prec);
/* "f32", "bf16", "int8"; "?" for an unknown value. */
const char *copro_prec_name(uint32_t prec);

/*
 * Runs the plan: in[i].data holds graph input i (shapes as planned),
 * out[i].data receives graph output i; out[i] shapes are filled in. The
 * caller's buffers are used directly: no copy of inputs is made when they
 * are 64-byte aligned (a misaligned buffer is staged through the plan's
 * own memory, which costs one copy). Outputs must not overlap inputs. One
 * thread at a time per plan: the plan's arena is its working memory.
 * Returns 0 or -EINVAL if an input's shape differs from the plan's, a
 * frozen input's values differ, or a buffer is NULL; -ERANGE if an index
 * input (Gather's) holds a value out of range, when outputs are undefined.
 */
int copro_plan_run(struct copro_plan *p, const struct copro_kt *in, struct copro_kt *out);

/* The shape and dtype graph output i will have. */
const struct copro_kt *copro_plan_output(const struct copro_plan *p, int i);
/* Bytes of the plan's arena (intermediate values), for reports. */
size_t copro_plan_arena_bytes(const struct copro_plan *p);
/* Steps a run executes (folded and dead nodes are gone), for reports and tests. */
int copro_plan_n_steps(const struct copro_plan *p);

/* Gemm/MatMul steps that run in bf16 or int8, for reports and tests. */
int copro_plan_n_lowp(const struct copro_plan *p);
/*
 * The kernel those steps use: "avx512-bf16", "avx512-vnni", "portable",
 * or "f32" when none is lowered. For reports.
 */
const char *copro_plan_kernel(const struct copro_plan *p);

void copro_plan_free(struct copro_plan *p);

#endif /* COPRO_ONNX_PLAN_H */
