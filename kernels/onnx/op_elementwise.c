/* SPDX-License-Identifier: MIT */
/*
 * op_elementwise.c - the binary arithmetic operators with ONNX's
 * multidirectional broadcasting: Add, Sub, Mul, Div, Pow.
 *
 * Add/Sub/Mul/Div take two inputs of one type and broadcast them (opset 7
 * on; older opsets had a `broadcast` attribute and are not supported).
 * Integer arithmetic wraps like two's complement (the ONNX reference is
 * numpy, which wraps too); integer division truncates toward zero, as the
 * reference runtimes do, and a division by zero yields 0 rather than a
 * trap, because run() cannot fail on data.
 *
 * Pow (opset 7; 12 added integer and mixed types) returns the base's type;
 * the exponent may be of another numeric type.
 *
 * Also here, with the same broadcasting: the comparisons (Equal, Less,
 * Greater, LessOrEqual, GreaterOrEqual: bool results), the logical ops
 * (And, Or, Xor, Not), Where, and the variadic Min, Max, Sum, Mean.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "onnx/op_impl.h"

enum { BIN_ADD, BIN_SUB, BIN_MUL, BIN_DIV, BIN_N };

/*
 * One inner loop per (op, type). The four cases let the compiler
 * vectorize the common ones (same shape, a row plus a broadcast vector,
 * tensor op scalar) instead of multiplying by a 0/1 stride.
 */
#define BIN_LOOP(fname, T, EXPR)						\
static void fname(const void *pa, const void *pb, void *pc, int64_t n,		\
		  int sa, int sb, const void *ctx)				\
{										\
	const T *a = pa, *b = pb;						\
	T *c = pc;								\
	int64_t i;								\
										\
	if (sa && sb) {								\
		for (i = 0; i < n; i++) {					\
			T x = a[i], y = b[i];					\
			c[i] = (EXPR);						\
		}								\
	} else if (sa) {							\
		T y = b[0];							\
		for (i = 0; i < n; i++) {					\
			T x = a[i];						\
			c[i] = (EXPR);						\
		}								\
	} else if (sb) {							\
		T x = a[0];							\
		for (i = 0; i < n; i++) {					\
			T y = b[i];						\
			c[i] = (EXPR);						\
		}								\
	} else {								\
		T x = a[0], y = b[0];						\
		T z = (EXPR);							\
		for (i = 0; i < n; i++)						\
			c[i] = z;						\
	}									\
}

/* Integers go through uint64_t so that overflow wraps instead of being UB. */
#define IADD(T) (T)((uint64_t)x + (uint64_t)y)
#define ISUB(T) (T)((uint64_t)x - (uint64_t)y)
#define IMUL(T) (T)((uint64_t)x * (uint64_t)y)
/* Signed: x / -1 is a negation (INT_MIN / -1 traps in hardware). */
#define SDIV(T) (T)(y == 0 ? 0 : y == -1 ? (T)(0 - (uint64_t)x) : x / y)
#define UDIV(T) (T)(y == 0 ? 0 : x / y)

#define FLOAT_LOOPS(sfx, T)							\
	BIN_LOOP(add_##sfx, T, x + y)						\
	BIN_LOOP(sub_##sfx, T, x - y)						\
	BIN_LOOP(mul_##sfx, T, x * y)						\
	BIN_LOOP(div_##sfx, T, x / y)
#define INT_LOOPS(sfx, T, DIV)							\
	BIN_LOOP(add_##sfx, T, IADD(T))						\
	BIN_LOOP(sub_##sfx, T, ISUB(T))						\
	BIN_LOOP(mul_##sfx, T, IMUL(T))						\
	BIN_LOOP(div_##sfx, T, DIV(T))

FLOAT_LOOPS(f32, float)
FLOAT_LOOPS(f64, double)
INT_LOOPS(i8, int8_t, SDIV)
INT_LOOPS(u8, uint8_t, UDIV)
INT_LOOPS(i16, int16_t, SDIV)
INT_LOOPS(u16, uint16_t, UDIV)
INT_LOOPS(i32, int32_t, SDIV)
INT_LOOPS(u32, uint32_t, UDIV)
INT_LOOPS(i64, int64_t, SDIV)
INT_LOOPS(u64, uint64_t, UDIV)

#define ROW(sfx) { add_##sfx, sub_##sfx, mul_##sfx, div_##sfx }

/* Indexed by ONNX dtype; NULL rows are unsupported types. */
static const copro_bcast_fn bin_loops[COPRO_K_BF16 + 1][BIN_N] = {
	[COPRO_K_F32] = ROW(f32),
	[COPRO_K_F64] = ROW(f64),
	[COPRO_K_I8] = ROW(i8),
	[COPRO_K_U8] = ROW(u8),
	[COPRO_K_I16] = ROW(i16),
	[COPRO_K_U16] = ROW(u16),
	[COPRO_K_I32] = ROW(i32),
	[COPRO_K_U32] = ROW(u32),
	[COPRO_K_I64] = ROW(i64),
	[COPRO_K_U64] = ROW(u64),
};

static int bin_kind(const struct copro_node *n)
{
	switch (n->op_type[0]) {
	case 'A': return BIN_ADD;
	case 'S': return BIN_SUB;
	case 'M': return BIN_MUL;
	default: return BIN_DIV;
	}
}

/* Checks two present inputs and sets out[0]'s shape to their broadcast. */
static int bcast_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		       char *err, size_t errlen)
{
	if (n->n_in != 2 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly two inputs");
	if (copro_broadcast_shape(&in[0], &in[1], &out[0]) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "shapes do not broadcast");
	return 0;
}

/*
 * Two inputs of one dtype that broadcast; loop is that dtype's kernel (NULL:
 * unsupported). The output gets out_dt, or the inputs' dtype when 0.
 */
static int bcast_same_infer(struct copro_node *n, const struct copro_kt *in,
			    struct copro_kt *out, char *err, size_t errlen, const void *loop,
			    int32_t out_dt)
{
	int32_t dt = in[0].dtype;
	int rc = bcast_infer(n, in, out, err, errlen);

	if (rc < 0)
		return rc;
	if (in[1].dtype != dt)
		return copro_op_err(err, errlen, -EINVAL, n, "input types differ (%s, %s)",
				    copro_op_dname(dt), copro_op_dname(in[1].dtype));
	if (!loop)
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(dt));
	out[0].dtype = out_dt ? out_dt : dt;
	return 0;
}

static int bin_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	int32_t dt = in[0].dtype;

	return bcast_same_infer(n, in, out, err, errlen,
				dt >= 0 && dt <= COPRO_K_BF16 ? bin_loops[dt][bin_kind(n)] : NULL, 0);
}

static int bin_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	size_t es = copro_op_dsize(in[0].dtype);
	struct copro_bcast bc;

	copro_bcast_init(&bc, &in[0], &in[1], &out[0]);
	copro_bcast_run(&bc, in[0].data, in[1].data, out[0].data, es, es, es,
			bin_loops[in[0].dtype][bin_kind(n)], NULL);
	return 0;
}

const struct copro_op copro_op_add = {
	.name = "Add", .since = 7, .infer = bin_infer, .run = bin_run,
};
const struct copro_op copro_op_sub = {
	.name = "Sub", .since = 7, .infer = bin_infer, .run = bin_run,
};
const struct copro_op copro_op_mul = {
	.name = "Mul", .since = 7, .infer = bin_infer, .run = bin_run,
};
const struct copro_op copro_op_div = {
	.name = "Div", .since = 7, .infer = bin_infer, .run = bin_run,
};

/* ---------------------------------------------------------------------- */
/* Pow                                                                    */
/* ---------------------------------------------------------------------- */

BIN_LOOP(pow_f32, float, powf(x, y))
BIN_LOOP(pow_f64, double, pow(x, y))

struct pow_types {
	int32_t base, exp;
};

/* Reads element i of a numeric array as a double; for Pow's mixed types. */
double copro_op_load_f64(const void *p, int32_t dtype, int64_t i)
{
	switch (dtype) {
	case COPRO_K_F32: return ((const float *)p)[i];
	case COPRO_K_F64: return ((const double *)p)[i];
	case COPRO_K_I8: return ((const int8_t *)p)[i];
	case COPRO_K_U8: return ((const uint8_t *)p)[i];
	case COPRO_K_I16: return ((const int16_t *)p)[i];
	case COPRO_K_U16: return ((const uint16_t *)p)[i];
	case COPRO_K_I32: return ((const int32_t *)p)[i];
	case COPRO_K_U32: return ((const uint32_t *)p)[i];
	case COPRO_K_I64: return (double)((const int64_t *)p)[i];
	case COPRO_K_U64: return (double)((const uint64_t *)p)[i];
	default: return 0;
	}
}

/*
 * Mixed-type Pow, one element at a time through double: slow, but only
 * the float^float case shows up in exported models (x^2 in a norm, x^3 in
 * tanh-GELU), and that one has its own loop above.
 */
static void pow_mixed(const void *a, const void *b, void *c, int64_t n, int sa, int sb,
		      const void *ctx)
{
	const struct pow_types *ty = ctx;
	int64_t i;

	for (i = 0; i < n; i++) {
		double z = pow(copro_op_load_f64(a, ty->base, sa ? i : 0),
			       copro_op_load_f64(b, ty->exp, sb ? i : 0));

		switch (ty->base) {
		case COPRO_K_F32: ((float *)c)[i] = (float)z; break;
		case COPRO_K_F64: ((double *)c)[i] = z; break;
		/* Integer results: truncate like numpy's astype, NaN as 0. */
		case COPRO_K_I32:
			((int32_t *)c)[i] = z != z ? 0 : z >= 2147483647.0 ? INT32_MAX :
					    z <= -2147483648.0 ? INT32_MIN : (int32_t)z;
			break;
		case COPRO_K_I64:
			((int64_t *)c)[i] = z != z ? 0 : z >= 9.2233720368547758e18 ? INT64_MAX :
					    z <= -9.2233720368547758e18 ? INT64_MIN : (int64_t)z;
			break;
		}
	}
}

static int pow_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	int32_t bt, et;
	int rc = bcast_infer(n, in, out, err, errlen);

	if (rc < 0)
		return rc;
	bt = in[0].dtype;
	et = in[1].dtype;
	if (bt != COPRO_K_F32 && bt != COPRO_K_F64 && bt != COPRO_K_I32 && bt != COPRO_K_I64)
		return copro_op_err(err, errlen, -ENOTSUP, n, "base dtype %s not supported",
				    copro_op_dname(bt));
	switch (et) {
	case COPRO_K_F32: case COPRO_K_F64: case COPRO_K_I8: case COPRO_K_U8:
	case COPRO_K_I16: case COPRO_K_U16: case COPRO_K_I32: case COPRO_K_U32:
	case COPRO_K_I64: case COPRO_K_U64:
		break;
	default:
		return copro_op_err(err, errlen, -ENOTSUP, n, "exponent dtype %s not supported",
				    copro_op_dname(et));
	}
	if (n->opset < 12 && bt != et)
		return copro_op_err(err, errlen, -EINVAL, n,
				    "base and exponent types differ before opset 12");
	out[0].dtype = bt;
	return 0;
}

static int pow_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	struct pow_types ty = { in[0].dtype, in[1].dtype };
	struct copro_bcast bc;
	copro_bcast_fn fn = pow_mixed;

	if (ty.base == COPRO_K_F32 && ty.exp == COPRO_K_F32)
		fn = pow_f32;
	else if (ty.base == COPRO_K_F64 && ty.exp == COPRO_K_F64)
		fn = pow_f64;
	copro_bcast_init(&bc, &in[0], &in[1], &out[0]);
	copro_bcast_run(&bc, in[0].data, in[1].data, out[0].data, copro_op_dsize(ty.base),
			copro_op_dsize(ty.exp), copro_op_dsize(ty.base), fn, &ty);
	return 0;
}

const struct copro_op copro_op_pow = {
	.name = "Pow", .since = 7, .infer = pow_infer, .run = pow_run,
};

/* ---------------------------------------------------------------------- */
/* Comparisons and logic: bool (one byte, 0 or 1) results                 */
/* ---------------------------------------------------------------------- */

enum { CMP_EQ, CMP_LT, CMP_GT, CMP_LE, CMP_GE, LOG_AND, LOG_OR, LOG_XOR, CMP_N };

#define CMP_LOOP(fname, T, EXPR)						\
static void fname(const void *pa, const void *pb, void *pc, int64_t n,		\
		  int sa, int sb, const void *ctx)				\
{										\
	const T *a = pa, *b = pb;						\
	uint8_t *c = pc;							\
	int64_t i;								\
										\
	for (i = 0; i < n; i++) {						\
		T x = a[sa ? i : 0], y = b[sb ? i : 0];				\
		c[i] = (EXPR);							\
	}									\
}

#define CMP_LOOPS(sfx, T)							\
	CMP_LOOP(eq_##sfx, T, x == y)						\
	CMP_LOOP(lt_##sfx, T, x < y)						\
	CMP_LOOP(gt_##sfx, T, x > y)						\
	CMP_LOOP(le_##sfx, T, x <= y)						\
	CMP_LOOP(ge_##sfx, T, x >= y)

CMP_LOOPS(f32, float)
CMP_LOOPS(f64, double)
CMP_LOOPS(i8, int8_t)
CMP_LOOPS(u8, uint8_t)
CMP_LOOPS(i16, int16_t)
CMP_LOOPS(u16, uint16_t)
CMP_LOOPS(i32, int32_t)
CMP_LOOPS(u32, uint32_t)
CMP_LOOPS(i64, int64_t)
CMP_LOOPS(u64, uint64_t)
/* bool: any nonzero byte is true. */
CMP_LOOP(eq_b, uint8_t, !x == !y)
CMP_LOOP(and_b, uint8_t, x && y)
CMP_LOOP(or_b, uint8_t, x || y)
CMP_LOOP(xor_b, uint8_t, !x != !y)

#define CROW(sfx) { eq_##sfx, lt_##sfx, gt_##sfx, le_##sfx, ge_##sfx }

static const copro_bcast_fn cmp_loops[COPRO_K_BF16 + 1][CMP_N] = {
	[COPRO_K_F32] = CROW(f32),
	[COPRO_K_F64] = CROW(f64),
	[COPRO_K_I8] = CROW(i8),
	[COPRO_K_U8] = CROW(u8),
	[COPRO_K_I16] = CROW(i16),
	[COPRO_K_U16] = CROW(u16),
	[COPRO_K_I32] = CROW(i32),
	[COPRO_K_U32] = CROW(u32),
	[COPRO_K_I64] = CROW(i64),
	[COPRO_K_U64] = CROW(u64),
	[COPRO_K_BOOL] = { [CMP_EQ] = eq_b, [LOG_AND] = and_b, [LOG_OR] = or_b,
			   [LOG_XOR] = xor_b },
};

static int cmp_kind(const struct copro_node *n)
{
	static const char *const names[CMP_N] = {
		"Equal", "Less", "Greater", "LessOrEqual", "GreaterOrEqual", "And", "Or", "Xor",
	};
	int i;

	for (i = 0; i < CMP_N; i++)
		if (!strcmp(n->op_type, names[i]))
			return i;
	return 0;
}

static int cmp_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	int32_t dt = in[0].dtype;

	return bcast_same_infer(n, in, out, err, errlen,
				dt >= 0 && dt <= COPRO_K_BF16 ? cmp_loops[dt][cmp_kind(n)] : NULL,
				COPRO_K_BOOL);
}

static int cmp_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	size_t es = copro_op_dsize(in[0].dtype);
	struct copro_bcast bc;

	copro_bcast_init(&bc, &in[0], &in[1], &out[0]);
	copro_bcast_run(&bc, in[0].data, in[1].data, out[0].data, es, es, 1,
			cmp_loops[in[0].dtype][cmp_kind(n)], NULL);
	return 0;
}

#define CMP_OP(sym, NAME, SINCE)						\
const struct copro_op copro_op_##sym = {					\
	.name = NAME, .since = SINCE, .infer = cmp_infer, .run = cmp_run,	\
};
CMP_OP(equal, "Equal", 7)
CMP_OP(less, "Less", 7)
CMP_OP(greater, "Greater", 7)
CMP_OP(lessorequal, "LessOrEqual", 12)
CMP_OP(greaterorequal, "GreaterOrEqual", 12)
CMP_OP(and, "And", 7)
CMP_OP(or, "Or", 7)
CMP_OP(xor, "Xor", 7)

static int not_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	if (n->n_in != 1 || !copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	if (in[0].dtype != COPRO_K_BOOL)
		return copro_op_err(err, errlen, -EINVAL, n, "input is %s, not bool",
				    copro_op_dname(in[0].dtype));
	out[0].dtype = COPRO_K_BOOL;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

static int not_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	const uint8_t *x = in[0].data;
	uint8_t *y = out[0].data;
	int64_t i, k = copro_op_numel(&in[0]);

	for (i = 0; i < k; i++)
		y[i] = !x[i];
	return 0;
}

const struct copro_op copro_op_not = {
	.name = "Not", .since = 1, .flags = COPRO_OP_F_INPLACE_OK,
	.infer = not_infer, .run = not_run,
};

/* ---------------------------------------------------------------------- */
/* Where                                                                  */
/* ---------------------------------------------------------------------- */

static int where_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		       char *err, size_t errlen)
{
	struct copro_kt t;

	if (n->n_in != 3 || !copro_op_nin(n, in, 0) || !copro_op_nin(n, in, 1) ||
	    !copro_op_nin(n, in, 2))
		return copro_op_err(err, errlen, -EINVAL, n, "needs condition, X and Y");
	if (in[0].dtype != COPRO_K_BOOL)
		return copro_op_err(err, errlen, -EINVAL, n, "condition is %s, not bool",
				    copro_op_dname(in[0].dtype));
	if (in[1].dtype != in[2].dtype)
		return copro_op_err(err, errlen, -EINVAL, n, "X is %s, Y is %s",
				    copro_op_dname(in[1].dtype), copro_op_dname(in[2].dtype));
	if (!copro_op_dsize(in[1].dtype))
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(in[1].dtype));
	if (copro_broadcast_shape(&in[0], &in[1], &t) < 0 ||
	    copro_broadcast_shape(&t, &in[2], &out[0]) < 0)
		return copro_op_err(err, errlen, -EINVAL, n, "shapes do not broadcast");
	out[0].dtype = in[1].dtype;
	return 0;
}

static int where_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     void *scratch)
{
	int64_t sc[COPRO_K_MAX_RANK], sx[COPRO_K_MAX_RANK], sy[COPRO_K_MAX_RANK];
	int64_t idx[COPRO_K_MAX_RANK] = { 0 }, oc = 0, ox = 0, oy = 0, k, total;
	size_t es = copro_op_dsize(out[0].dtype);
	const uint8_t *c = in[0].data;
	const char *x = in[1].data, *y = in[2].data;
	char *o = out[0].data;
	int r = out[0].rank, d;

	total = copro_op_numel(&out[0]);
	copro_op_bcast_strides(&in[0], &out[0], sc);
	copro_op_bcast_strides(&in[1], &out[0], sx);
	copro_op_bcast_strides(&in[2], &out[0], sy);
	/* One element at a time: Where is rare and never on the hot path. */
	for (k = 0; k < total; k++) {
		memcpy(o + k * es, c[oc] ? x + ox * es : y + oy * es, es);
		for (d = r - 1; d >= 0; d--) {
			idx[d]++;
			oc += sc[d];
			ox += sx[d];
			oy += sy[d];
			if (idx[d] < out[0].dims[d])
				break;
			oc -= sc[d] * out[0].dims[d];
			ox -= sx[d] * out[0].dims[d];
			oy -= sy[d] * out[0].dims[d];
			idx[d] = 0;
		}
	}
	return 0;
}

const struct copro_op copro_op_where = {
	.name = "Where", .since = 9, .infer = where_infer, .run = where_run,
};

/* ---------------------------------------------------------------------- */
/* Min, Max, Sum, Mean: variadic, broadcast                               */
/* ---------------------------------------------------------------------- */

enum { VAR_MIN, VAR_MAX, VAR_SUM, VAR_MEAN, VAR_COPY, VAR_N };

/* NaN wins in Min/Max, as numpy's minimum/maximum (the reference) do. */
#define FMIN(x, y) ((x) != (x) || (x) < (y) ? (x) : (y))
#define FMAX(x, y) ((x) != (x) || (x) > (y) ? (x) : (y))

#define VAR_LOOPS(sfx, T, MIN, MAX, ADD)					\
	BIN_LOOP(vmin_##sfx, T, MIN(x, y))					\
	BIN_LOOP(vmax_##sfx, T, MAX(x, y))					\
	BIN_LOOP(vsum_##sfx, T, ADD)						\
	BIN_LOOP(vcopy_##sfx, T, ((void)y, x))

#define IMIN(x, y) ((x) < (y) ? (x) : (y))
#define IMAX(x, y) ((x) > (y) ? (x) : (y))

VAR_LOOPS(f32, float, FMIN, FMAX, x + y)
VAR_LOOPS(f64, double, FMIN, FMAX, x + y)
VAR_LOOPS(i32, int32_t, IMIN, IMAX, IADD(int32_t))
VAR_LOOPS(i64, int64_t, IMIN, IMAX, IADD(int64_t))
VAR_LOOPS(u8, uint8_t, IMIN, IMAX, IADD(uint8_t))
VAR_LOOPS(i8, int8_t, IMIN, IMAX, IADD(int8_t))
VAR_LOOPS(i16, int16_t, IMIN, IMAX, IADD(int16_t))
VAR_LOOPS(u16, uint16_t, IMIN, IMAX, IADD(uint16_t))
VAR_LOOPS(u32, uint32_t, IMIN, IMAX, IADD(uint32_t))
VAR_LOOPS(u64, uint64_t, IMIN, IMAX, IADD(uint64_t))

#define VROW(sfx) { vmin_##sfx, vmax_##sfx, vsum_##sfx, vsum_##sfx, vcopy_##sfx }
static const copro_bcast_fn var_loops[COPRO_K_BF16 + 1][VAR_N] = {
	[COPRO_K_F32] = VROW(f32),
	[COPRO_K_F64] = VROW(f64),
	[COPRO_K_I32] = VROW(i32),
	[COPRO_K_I64] = VROW(i64),
	[COPRO_K_U8] = VROW(u8),
	[COPRO_K_I8] = VROW(i8),
	[COPRO_K_I16] = VROW(i16),
	[COPRO_K_U16] = VROW(u16),
	[COPRO_K_U32] = VROW(u32),
	[COPRO_K_U64] = VROW(u64),
};

static int var_kind(const struct copro_node *n)
{
	return !strcmp(n->op_type, "Min") ? VAR_MIN : !strcmp(n->op_type, "Max") ? VAR_MAX :
	       !strcmp(n->op_type, "Sum") ? VAR_SUM : VAR_MEAN;
}

static int var_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		     char *err, size_t errlen)
{
	int32_t dt = in[0].dtype;
	int kind = var_kind(n), i;

	if (n->n_in < 1)
		return copro_op_err(err, errlen, -EINVAL, n, "needs at least one input");
	for (i = 0; i < n->n_in; i++) {
		if (!copro_op_nin(n, in, i))
			return copro_op_err(err, errlen, -EINVAL, n, "input %d is missing", i);
		if (in[i].dtype != dt)
			return copro_op_err(err, errlen, -EINVAL, n, "input %d is %s, input 0 %s",
					    i, copro_op_dname(in[i].dtype), copro_op_dname(dt));
	}
	if (dt < 0 || dt > COPRO_K_BF16 || !var_loops[dt][kind] ||
	    (kind == VAR_MEAN && dt != COPRO_K_F32 && dt != COPRO_K_F64))
		return copro_op_err(err, errlen, -ENOTSUP, n, "dtype %s not supported",
				    copro_op_dname(dt));
	copro_op_shape_copy(&out[0], &in[0]);
	for (i = 1; i < n->n_in; i++) {
		struct copro_kt t = out[0];

		if (copro_broadcast_shape(&t, &in[i], &out[0]) < 0)
			return copro_op_err(err, errlen, -EINVAL, n, "input %d does not broadcast",
					    i);
	}
	out[0].dtype = dt;
	return 0;
}

/*
 * Input 0 is broadcast into the output first, then every other input is
 * folded in place (the loops read a[i] before writing c[i]).
 */
static int var_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		   void *scratch)
{
	int32_t dt = in[0].dtype;
	size_t es = copro_op_dsize(dt);
	int kind = var_kind(n), i;
	struct copro_bcast bc;
	int64_t k, total = copro_op_numel(&out[0]);

	copro_bcast_init(&bc, &in[0], &in[0], &out[0]);
	copro_bcast_run(&bc, in[0].data, in[0].data, out[0].data, es, es, es,
			var_loops[dt][VAR_COPY], NULL);
	for (i = 1; i < n->n_in; i++) {
		copro_bcast_init(&bc, &out[0], &in[i], &out[0]);
		copro_bcast_run(&bc, out[0].data, in[i].data, out[0].data, es, es, es,
				var_loops[dt][kind], NULL);
	}
	if (kind == VAR_MEAN) {
		for (k = 0; k < total; k++) {
			if (dt == COPRO_K_F32)
				((float *)out[0].data)[k] /= (float)n->n_in;
			else
				((double *)out[0].data)[k] /= (double)n->n_in;
		}
	}
	return 0;
}

const struct copro_op copro_op_min = {
	.name = "Min", .since = 8, .infer = var_infer, .run = var_run,
};
const struct copro_op copro_op_max = {
	.name = "Max", .since = 8, .infer = var_infer, .run = var_run,
};
const struct copro_op copro_op_sum = {
	.name = "Sum", .since = 8, .infer = var_infer, .run = var_run,
};
const struct copro_op copro_op_mean = {
	.name = "Mean", .since = 8, .infer = var_infer, .run = var_run,
};
