/* SPDX-License-Identifier: MIT */
/*
 * op_impl.h - internal to the operator families: the registry's list and
 * the helpers they share. Not installed; the planner uses ops.h only.
 */
#ifndef COPRO_ONNX_OP_IMPL_H
#define COPRO_ONNX_OP_IMPL_H

#include <stddef.h>
#include <stdint.h>

#include "onnx/ops.h"

/*
 * Every operator, one struct copro_op per (name, since). Adding an op is
 * one line here and its definition in its family's file.
 */
#define COPRO_OP_LIST \
	&copro_op_identity, \
	&copro_op_dropout, \
	&copro_op_reshape, \
	&copro_op_flatten, \
	&copro_op_squeeze_1, \
	&copro_op_squeeze_13, \
	&copro_op_unsqueeze_1, \
	&copro_op_unsqueeze_13, \
	&copro_op_transpose, \
	&copro_op_concat, \
	&copro_op_gather, \
	&copro_op_shape, \
	&copro_op_constant, \
	&copro_op_size, \
	&copro_op_expand, \
	&copro_op_tile, \
	&copro_op_slice_1, \
	&copro_op_slice_10, \
	&copro_op_split_2, \
	&copro_op_split_13, \
	&copro_op_constantofshape, \
	&copro_op_range, \
	&copro_op_cast_6, \
	&copro_op_castlike, \
	&copro_op_add, \
	&copro_op_sub, \
	&copro_op_mul, \
	&copro_op_div, \
	&copro_op_pow, \
	&copro_op_equal, \
	&copro_op_less, \
	&copro_op_greater, \
	&copro_op_lessorequal, \
	&copro_op_greaterorequal, \
	&copro_op_and, \
	&copro_op_or, \
	&copro_op_xor, \
	&copro_op_not, \
	&copro_op_where, \
	&copro_op_min, \
	&copro_op_max, \
	&copro_op_sum, \
	&copro_op_mean, \
	&copro_op_relu, \
	&copro_op_leakyrelu, \
	&copro_op_sigmoid, \
	&copro_op_tanh, \
	&copro_op_erf, \
	&copro_op_sqrt, \
	&copro_op_exp, \
	&copro_op_log, \
	&copro_op_neg, \
	&copro_op_abs, \
	&copro_op_reciprocal, \
	&copro_op_floor, \
	&copro_op_ceil, \
	&copro_op_round, \
	&copro_op_elu, \
	&copro_op_selu, \
	&copro_op_celu, \
	&copro_op_hardsigmoid, \
	&copro_op_hardswish, \
	&copro_op_softplus, \
	&copro_op_softsign, \
	&copro_op_thresholdedrelu, \
	&copro_op_clip, \
	&copro_op_prelu, \
	&copro_op_softmax, \
	&copro_op_logsoftmax, \
	&copro_op_gemm, \
	&copro_op_matmul, \
	&copro_op_matmulinteger, \
	&copro_op_reducemean, \
	&copro_op_reducesum_1, \
	&copro_op_reducesum_13, \
	&copro_op_reducemax, \
	&copro_op_reducemin, \
	&copro_op_argmax, \
	&copro_op_argmin, \
	&copro_op_batchnorm, \
	&copro_op_layernorm, \
	&copro_op_quantizelinear, \
	&copro_op_dequantizelinear,

extern const struct copro_op copro_op_identity;
extern const struct copro_op copro_op_dropout;
extern const struct copro_op copro_op_reshape;
extern const struct copro_op copro_op_flatten;
extern const struct copro_op copro_op_squeeze_1;
extern const struct copro_op copro_op_squeeze_13;
extern const struct copro_op copro_op_unsqueeze_1;
extern const struct copro_op copro_op_unsqueeze_13;
extern const struct copro_op copro_op_transpose;
extern const struct copro_op copro_op_concat;
extern const struct copro_op copro_op_gather;
extern const struct copro_op copro_op_shape;
extern const struct copro_op copro_op_constant;
extern const struct copro_op copro_op_size;
extern const struct copro_op copro_op_expand;
extern const struct copro_op copro_op_tile;
extern const struct copro_op copro_op_slice_1;
extern const struct copro_op copro_op_slice_10;
extern const struct copro_op copro_op_split_2;
extern const struct copro_op copro_op_split_13;
extern const struct copro_op copro_op_constantofshape;
extern const struct copro_op copro_op_range;
extern const struct copro_op copro_op_cast_6;
extern const struct copro_op copro_op_castlike;
extern const struct copro_op copro_op_add;
extern const struct copro_op copro_op_sub;
extern const struct copro_op copro_op_mul;
extern const struct copro_op copro_op_div;
extern const struct copro_op copro_op_pow;
extern const struct copro_op copro_op_equal;
extern const struct copro_op copro_op_less;
extern const struct copro_op copro_op_greater;
extern const struct copro_op copro_op_lessorequal;
extern const struct copro_op copro_op_greaterorequal;
extern const struct copro_op copro_op_and;
extern const struct copro_op copro_op_or;
extern const struct copro_op copro_op_xor;
extern const struct copro_op copro_op_not;
extern const struct copro_op copro_op_where;
extern const struct copro_op copro_op_min;
extern const struct copro_op copro_op_max;
extern const struct copro_op copro_op_sum;
extern const struct copro_op copro_op_mean;
extern const struct copro_op copro_op_relu;
extern const struct copro_op copro_op_leakyrelu;
extern const struct copro_op copro_op_sigmoid;
extern const struct copro_op copro_op_tanh;
extern const struct copro_op copro_op_erf;
extern const struct copro_op copro_op_sqrt;
extern const struct copro_op copro_op_exp;
extern const struct copro_op copro_op_log;
extern const struct copro_op copro_op_neg;
extern const struct copro_op copro_op_abs;
extern const struct copro_op copro_op_reciprocal;
extern const struct copro_op copro_op_floor;
extern const struct copro_op copro_op_ceil;
extern const struct copro_op copro_op_round;
extern const struct copro_op copro_op_elu;
extern const struct copro_op copro_op_selu;
extern const struct copro_op copro_op_celu;
extern const struct copro_op copro_op_hardsigmoid;
extern const struct copro_op copro_op_hardswish;
extern const struct copro_op copro_op_softplus;
extern const struct copro_op copro_op_softsign;
extern const struct copro_op copro_op_thresholdedrelu;
extern const struct copro_op copro_op_clip;
extern const struct copro_op copro_op_prelu;
extern const struct copro_op copro_op_softmax;
extern const struct copro_op copro_op_logsoftmax;
extern const struct copro_op copro_op_gemm;
extern const struct copro_op copro_op_matmul;
extern const struct copro_op copro_op_matmulinteger;
extern const struct copro_op copro_op_reducemean;
extern const struct copro_op copro_op_reducesum_1;
extern const struct copro_op copro_op_reducesum_13;
extern const struct copro_op copro_op_reducemax;
extern const struct copro_op copro_op_reducemin;
extern const struct copro_op copro_op_argmax;
extern const struct copro_op copro_op_argmin;
extern const struct copro_op copro_op_batchnorm;
extern const struct copro_op copro_op_layernorm;
extern const struct copro_op copro_op_quantizelinear;
extern const struct copro_op copro_op_dequantizelinear;

/*
 * Writes "<op_type>: <message>" into err and returns code, so infer()
 * can say `return copro_op_err(err, errlen, -EINVAL, n, "...", ...);`.
 */
int copro_op_err(char *err, size_t errlen, int code, const struct copro_node *n,
		 const char *fmt, ...) __attribute__((format(printf, 5, 6)));

/* -ENOTSUP with err set unless dtype is one the runtime can hold. */
int copro_op_need_dtype(const struct copro_node *n, int32_t dtype, char *err, size_t errlen);
/*
 * A constant 1-D int64 input (Reshape's shape, Squeeze's axes): sets *v
 * and returns its length, or -1 if t is not one.
 */
int64_t copro_op_const_ints(const struct copro_kt *t, const int64_t **v);
/* Normalizes a possibly negative axis into [0, rank); -EINVAL if outside. */
int copro_op_axis(int64_t axis, int rank, int *out);
/* Whether input i is present (given and not an empty name). */
int copro_op_nin(const struct copro_node *n, const struct copro_kt *in, int i);
/* Whether output i is wanted. */
int copro_op_nout(const struct copro_node *n, int i);
/* Elements of t, -1 if a dim is unknown. */
int64_t copro_op_numel(const struct copro_kt *t);
void copro_op_shape_copy(struct copro_kt *dst, const struct copro_kt *src);
/* Row-major element strides of t's dims. */
void copro_op_strides(const struct copro_kt *t, int64_t *st);
/*
 * Element strides of t aligned to out's dims (t broadcasts to out), 0
 * where t is broadcast; for the ops that walk the output one element at
 * a time (Where, Expand).
 */
void copro_op_bcast_strides(const struct copro_kt *t, const struct copro_kt *out, int64_t *st);
/* Bytes per element, 0 for an unknown type (graph.c's, kept local). */
size_t copro_op_dsize(int32_t dtype);
const char *copro_op_dname(int32_t dtype);

/* Whether two dims can be the same: equal, or one is still unknown (-1). */
static inline int copro_op_dim_eq(int64_t a, int64_t b)
{
	return a == b || a < 0 || b < 0;
}

/*
 * A broadcast binary loop, collapsed: dims of size 1 in the output are
 * dropped and adjacent dims merged wherever both operands stay
 * contiguous, so [B,N] + [N] becomes one outer loop of B rows of N with
 * b's stride 0 on the rows. Strides are in elements; the innermost one is
 * 0 (broadcast) or 1.
 */
struct copro_bcast {
	int rank;			/* >= 1 after collapsing */
	int64_t dims[COPRO_K_MAX_RANK];
	int64_t sa[COPRO_K_MAX_RANK];
	int64_t sb[COPRO_K_MAX_RANK];
};

/* c's shape must be the broadcast of a's and b's, all dims known. */
void copro_bcast_init(struct copro_bcast *bc, const struct copro_kt *a, const struct copro_kt *b,
		      const struct copro_kt *c);

/*
 * The inner loop a broadcast op supplies: n elements of c from a and b,
 * advancing a by sa and b by sb elements (each 0 or 1).
 */
typedef void (*copro_bcast_fn)(const void *a, const void *b, void *c, int64_t n, int sa, int sb,
			       const void *ctx);

/* Runs fn over the whole output; ea/eb/ec are the element sizes. */
void copro_bcast_run(const struct copro_bcast *bc, const void *a, const void *b, void *c,
		     size_t ea, size_t eb, size_t ec, copro_bcast_fn fn, const void *ctx);

/* Element i of a numeric array (not bool/f16/bf16) as a double. */
double copro_op_load_f64(const void *p, int32_t dtype, int64_t i);
/* Sets OpenBLAS to one thread, once; every BLAS op's infer() calls it. */
void copro_op_blas_init(void);

/* Cast's conversions, for tests and the plan's lower-precision paths. */
void copro_op_cast(const void *x, int32_t from, void *y, int32_t to, int64_t n);
uint16_t copro_f32_to_f16(float f);
float copro_f16_to_f32(uint16_t h);
uint16_t copro_f32_to_bf16(float f);
float copro_bf16_to_f32(uint16_t b);

#endif /* COPRO_ONNX_OP_IMPL_H */
