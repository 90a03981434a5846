/* SPDX-License-Identifier: MIT */
/*
 * op_cast.c - Cast and CastLike between the numeric types: float,
 * double, float16, bfloat16, int8/16/32/64, uint8/16/32/64 and bool.
 * Strings are not supported (the runtime has no string tensors).
 *
 * Conversions follow numpy's astype, the ONNX reference: float to
 * integer truncates toward zero; NaN and out-of-range values, where C
 * would have undefined behaviour, become 0 and the nearest end of the
 * range. Integer to integer wraps. Anything to bool is `!= 0` (NaN is
 * true). float16 rounds to nearest even; bfloat16 truncates, as ONNX's
 * 1.12 reference (and its node tests) do for opsets up to 17.
 */
#include <errno.h>
#include <math.h>
#include <string.h>

#include "onnx/op_impl.h"

/* ---------------------------------------------------------------------- */
/* float16 / bfloat16                                                     */
/* ---------------------------------------------------------------------- */

/* copro_f32_to_f16() and copro_f16_to_f32() live in kernels/llm/quant_ref.c
 * (bit-identical on every input), declared in both onnx/op_impl.h and
 * llm/quant.h: one definition, so a program may link the ONNX and the GGUF
 * code together. */

uint16_t copro_f32_to_bf16(float f)
{
	uint32_t x;

	memcpy(&x, &f, 4);
	if ((x & 0x7fffffff) > 0x7f800000)
		return (uint16_t)((x >> 16) | 0x40);	/* NaN stays NaN */
	return (uint16_t)(x >> 16);
}

float copro_bf16_to_f32(uint16_t b)
{
	uint32_t x = (uint32_t)b << 16;
	float f;

	memcpy(&f, &x, 4);
	return f;
}

/* ---------------------------------------------------------------------- */
/* The plain C types: one loop per (source, destination) pair             */
/* ---------------------------------------------------------------------- */

/* Float to integer without UB: NaN is 0, the rest saturates. */
#define SAT(name, T, LO, HI)							\
static inline T sat_##name(double v)						\
{										\
	if (v != v)								\
		return 0;							\
	if (v <= (double)(LO))							\
		return (LO);							\
	if (v >= (double)(HI))							\
		return (HI);							\
	return (T)v;								\
}
SAT(i8, int8_t, INT8_MIN, INT8_MAX)
SAT(u8, uint8_t, 0, UINT8_MAX)
SAT(i16, int16_t, INT16_MIN, INT16_MAX)
SAT(u16, uint16_t, 0, UINT16_MAX)
SAT(i32, int32_t, INT32_MIN, INT32_MAX)
SAT(u32, uint32_t, 0, UINT32_MAX)
SAT(i64, int64_t, INT64_MIN, INT64_MAX)
SAT(u64, uint64_t, 0, UINT64_MAX)
static inline float sat_f32(double v) { return (float)v; }
static inline double sat_f64(double v) { return v; }

#define K_f32 COPRO_K_F32
#define K_f64 COPRO_K_F64
#define K_i8 COPRO_K_I8
#define K_u8 COPRO_K_U8
#define K_i16 COPRO_K_I16
#define K_u16 COPRO_K_U16
#define K_i32 COPRO_K_I32
#define K_u32 COPRO_K_U32
#define K_i64 COPRO_K_I64
#define K_u64 COPRO_K_U64

/* M(src name, src type, src is float, dst name, dst type, dst is float) */
#define CAST_DSTS(M, SN, S, SF)							\
	M(SN, S, SF, f32, float, 1) M(SN, S, SF, f64, double, 1)		\
	M(SN, S, SF, i8, int8_t, 0) M(SN, S, SF, u8, uint8_t, 0)		\
	M(SN, S, SF, i16, int16_t, 0) M(SN, S, SF, u16, uint16_t, 0)		\
	M(SN, S, SF, i32, int32_t, 0) M(SN, S, SF, u32, uint32_t, 0)		\
	M(SN, S, SF, i64, int64_t, 0) M(SN, S, SF, u64, uint64_t, 0)
#define CAST_ALL(M)								\
	CAST_DSTS(M, f32, float, 1) CAST_DSTS(M, f64, double, 1)		\
	CAST_DSTS(M, i8, int8_t, 0) CAST_DSTS(M, u8, uint8_t, 0)		\
	CAST_DSTS(M, i16, int16_t, 0) CAST_DSTS(M, u16, uint16_t, 0)		\
	CAST_DSTS(M, i32, int32_t, 0) CAST_DSTS(M, u32, uint32_t, 0)		\
	CAST_DSTS(M, i64, int64_t, 0) CAST_DSTS(M, u64, uint64_t, 0)

/*
 * The branch is constant per pair, so each loop is one plain conversion:
 * a C cast where it is defined for every value, the saturating one for
 * float to integer.
 */
#define CAST_LOOP(SN, S, SF, DN, D, DF)						\
static void cast_##SN##_##DN(const void *px, void *py, int64_t n)		\
{										\
	const S *x = px;							\
	D *y = py;								\
	int64_t i;								\
										\
	for (i = 0; i < n; i++)							\
		y[i] = (DF || !SF) ? (D)x[i] : sat_##DN((double)x[i]);		\
}
CAST_ALL(CAST_LOOP)

typedef void (*cast_fn)(const void *x, void *y, int64_t n);

#define CAST_ENTRY(SN, S, SF, DN, D, DF) [K_##SN][K_##DN] = cast_##SN##_##DN,
static const cast_fn cast_loops[COPRO_K_BF16 + 1][COPRO_K_BF16 + 1] = {
	CAST_ALL(CAST_ENTRY)
};

static cast_fn plain_cast(int32_t from, int32_t to)
{
	if (from < 0 || from > COPRO_K_BF16 || to < 0 || to > COPRO_K_BF16)
		return NULL;
	return cast_loops[from][to];
}

static int cast_supported(int32_t dt)
{
	return dt == COPRO_K_BOOL || dt == COPRO_K_F16 || dt == COPRO_K_BF16 ||
	       plain_cast(dt, COPRO_K_F32);
}

/* Reads any supported element as a double (for casts to bool). */
static double load_any(const void *p, int32_t dt, int64_t i)
{
	switch (dt) {
	case COPRO_K_BOOL: return ((const uint8_t *)p)[i] != 0;
	case COPRO_K_F16: return copro_f16_to_f32(((const uint16_t *)p)[i]);
	case COPRO_K_BF16: return copro_bf16_to_f32(((const uint16_t *)p)[i]);
	default: return copro_op_load_f64(p, dt, i);
	}
}

/*
 * Converts n elements. bool, float16 and bfloat16 go through a float
 * block on the stack (exact for all three as sources); a double source
 * headed for float16 is thus rounded twice, off by one ulp only for
 * values within 2^-29 of a half-way point.
 */
static void cast_any(const void *x, int32_t from, void *y, int32_t to, int64_t n)
{
	float blk[256];
	int64_t i, j, m;
	cast_fn f = plain_cast(from, to);

	if (from == to) {
		memcpy(y, x, (size_t)n * copro_op_dsize(to));
		return;
	}
	if (f) {
		f(x, y, n);
		return;
	}
	if (to == COPRO_K_BOOL) {
		for (i = 0; i < n; i++) {
			double v = load_any(x, from, i);

			((uint8_t *)y)[i] = v != 0;
		}
		return;
	}
	for (i = 0; i < n; i += m) {
		m = n - i < 256 ? n - i : 256;
		/* Source block to float. */
		switch (from) {
		case COPRO_K_BOOL:
			for (j = 0; j < m; j++)
				blk[j] = ((const uint8_t *)x)[i + j] ? 1.0f : 0.0f;
			break;
		case COPRO_K_F16:
			for (j = 0; j < m; j++)
				blk[j] = copro_f16_to_f32(((const uint16_t *)x)[i + j]);
			break;
		case COPRO_K_BF16:
			for (j = 0; j < m; j++)
				blk[j] = copro_bf16_to_f32(((const uint16_t *)x)[i + j]);
			break;
		default:
			plain_cast(from, COPRO_K_F32)((const char *)x + i * copro_op_dsize(from),
						      blk, m);
		}
		/* Float block to the destination. */
		switch (to) {
		case COPRO_K_F16:
			for (j = 0; j < m; j++)
				((uint16_t *)y)[i + j] = copro_f32_to_f16(blk[j]);
			break;
		case COPRO_K_BF16:
			for (j = 0; j < m; j++)
				((uint16_t *)y)[i + j] = copro_f32_to_bf16(blk[j]);
			break;
		default:
			plain_cast(COPRO_K_F32, to)(blk, (char *)y + i * copro_op_dsize(to), m);
		}
	}
}

/* Exposed for the tests and for the plan's lower-precision paths. */
void copro_op_cast(const void *x, int32_t from, void *y, int32_t to, int64_t n)
{
	cast_any(x, from, y, to, n);
}

static int cast_infer_to(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			 int64_t to, char *err, size_t errlen)
{
	if (!copro_op_nin(n, in, 0))
		return copro_op_err(err, errlen, -EINVAL, n, "needs an input");
	if (!cast_supported(in[0].dtype))
		return copro_op_err(err, errlen, -ENOTSUP, n, "from %s not supported",
				    copro_op_dname(in[0].dtype));
	if (to < 0 || to > COPRO_K_BF16 || !cast_supported((int32_t)to))
		return copro_op_err(err, errlen, -ENOTSUP, n, "to %s not supported",
				    copro_op_dname((int32_t)to));
	out[0].dtype = (int32_t)to;
	copro_op_shape_copy(&out[0], &in[0]);
	return 0;
}

static int cast_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		      char *err, size_t errlen)
{
	const struct copro_attr *a = copro_attr_find(n, "to");

	if (n->n_in != 1)
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly one input");
	if (!a || a->type != COPRO_ATTR_INT)
		return copro_op_err(err, errlen, -EINVAL, n, "attribute `to` is required");
	return cast_infer_to(n, in, out, a->i, err, errlen);
}

static int cast_run(const struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
		    void *scratch)
{
	cast_any(in[0].data, in[0].dtype, out[0].data, out[0].dtype, copro_op_numel(&in[0]));
	return 0;
}

const struct copro_op copro_op_cast_6 = {
	.name = "Cast", .since = 6, .infer = cast_infer, .run = cast_run,
};

/* CastLike (opset 15): the target type is the second input's. */
static int castlike_infer(struct copro_node *n, const struct copro_kt *in, struct copro_kt *out,
			  char *err, size_t errlen)
{
	if (n->n_in != 2 || !copro_op_nin(n, in, 1))
		return copro_op_err(err, errlen, -EINVAL, n, "needs exactly two inputs");
	return cast_infer_to(n, in, out, in[1].dtype, err, errlen);
}

const struct copro_op copro_op_castlike = {
	.name = "CastLike", .since = 15, .infer = castlike_infer, .run = cast_run,
};
