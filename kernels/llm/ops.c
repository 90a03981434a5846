// SPDX-License-Identifier: MIT
/*
 * The f32 element-wise ops of a Llama forward pass. Written as plain loops
 * the compiler vectorizes (kernels build with -ftree-vectorize): reductions
 * keep 16 partial sums so no reassociation is needed. SwiGLU's exp runs on
 * vectors (vexp.h) on the AVX2 and AVX-512 paths; elsewhere exp and the
 * trig functions stay libm calls (vocab- and head-sized, not the hot path).
 */
#include <errno.h>
#include <math.h>

#include "llm/ops.h"

#if defined(__x86_64__) || defined(__i386__)
#include "llm/vexp.h"
#endif

/* Sum of squares of x with 16 partial sums (vectorizes to one zmm or two
 * ymm accumulators), added pairwise at the end. */
static float sumsq(const float *x, size_t n)
{
	float s[16] = { 0 };
	size_t i = 0;

	for (; i + 16 <= n; i += 16)
		for (int j = 0; j < 16; j++)
			s[j] += x[i + j] * x[i + j];
	for (; i < n; i++)
		s[i % 16] += x[i] * x[i];
	for (int w = 8; w; w /= 2)
		for (int j = 0; j < w; j++)
			s[j] += s[j + w];
	return s[0];
}

void copro_llm_rmsnorm(float *out, const float *x, const float *w, size_t n, float eps)
{
	if (!n)
		return;
	float scale = 1.0f / sqrtf(sumsq(x, n) / (float)n + eps);

	for (size_t i = 0; i < n; i++)
		out[i] = x[i] * scale * w[i];
}

void copro_llm_rmsnorm_rows(float *out, const float *x, const float *w, size_t rows, size_t n,
			    float eps)
{
	for (size_t r = 0; r < rows; r++)
		copro_llm_rmsnorm(out + r * n, x + r * n, w, n, eps);
}

/* cos and sin of pair i's angle at pos, as llama2.c computes it (in float). */
static inline void rope_cs(size_t i, size_t rot_dim, int32_t pos, float freq_base, float *c,
			   float *s)
{
	float freq = 1.0f / powf(freq_base, (float)(2 * i) / (float)rot_dim);
	float val = (float)pos * freq;

	*c = cosf(val);
	*s = sinf(val);
}

/* Turns pair i of every head by the angle whose cos and sin are c and s. */
static inline void rope_pair(float *x, size_t n_heads, size_t head_dim, size_t rot_dim, size_t i,
			     float c, float s, bool neox)
{
	size_t half = rot_dim / 2;
	size_t i0 = neox ? i : 2 * i, i1 = neox ? i + half : 2 * i + 1;

	for (size_t h = 0; h < n_heads; h++) {
		float *v = x + h * head_dim;
		float a = v[i0], b = v[i1];

		v[i0] = a * c - b * s;
		v[i1] = a * s + b * c;
	}
}

/*
 * The angle of pair i depends only on i, so cos and sin are computed once
 * per pair and applied to every head.
 */
int copro_llm_rope(float *x, size_t n_heads, size_t head_dim, size_t rot_dim, int32_t pos,
		   float freq_base, bool neox)
{
	if (!rot_dim || rot_dim % 2 || rot_dim > head_dim)
		return -EINVAL;
	for (size_t i = 0; i < rot_dim / 2; i++) {
		float c, s;

		rope_cs(i, rot_dim, pos, freq_base, &c, &s);
		rope_pair(x, n_heads, head_dim, rot_dim, i, c, s, neox);
	}
	return 0;
}

void copro_llm_rope_table(float *cs, size_t rot_dim, int32_t pos, float freq_base)
{
	for (size_t i = 0; i < rot_dim / 2; i++)
		rope_cs(i, rot_dim, pos, freq_base, &cs[2 * i], &cs[2 * i + 1]);
}

void copro_llm_rope_apply(float *x, size_t n_heads, size_t head_dim, size_t rot_dim,
			  const float *cs, bool neox)
{
	for (size_t i = 0; i < rot_dim / 2; i++)
		rope_pair(x, n_heads, head_dim, rot_dim, i, cs[2 * i], cs[2 * i + 1], neox);
}

#if defined(__x86_64__) || defined(__i386__)
__attribute__((target("avx512f,avx2,fma")))
static size_t swiglu_512(float *out, const float *gate, const float *up, size_t n)
{
	size_t i = 0;

	for (; i + 16 <= n; i += 16) {
		__m512 g = _mm512_loadu_ps(gate + i);
		__m512 e = copro_vexp512(_mm512_sub_ps(_mm512_setzero_ps(), g));

		g = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
		_mm512_storeu_ps(out + i, _mm512_mul_ps(g, _mm512_loadu_ps(up + i)));
	}
	return i;
}

__attribute__((target("avx2,fma")))
static size_t swiglu_256(float *out, const float *gate, const float *up, size_t n)
{
	size_t i = 0;

	for (; i + 8 <= n; i += 8) {
		__m256 g = _mm256_loadu_ps(gate + i);
		__m256 e = copro_vexp256(_mm256_sub_ps(_mm256_setzero_ps(), g));

		g = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
		_mm256_storeu_ps(out + i, _mm256_mul_ps(g, _mm256_loadu_ps(up + i)));
	}
	return i;
}
#endif

void copro_llm_swiglu(float *out, const float *gate, const float *up, size_t n)
{
	size_t i = 0;

#if defined(__x86_64__) || defined(__i386__)
	int isa = copro_llm_isa();

	if (isa == COPRO_LLM_ISA_AVX512)
		i = swiglu_512(out, gate, up, n);
	else if (isa == COPRO_LLM_ISA_AVX2)
		i = swiglu_256(out, gate, up, n);
#endif
	for (; i < n; i++) {
		float g = gate[i];

		out[i] = g / (1.0f + expf(-g)) * up[i];
	}
}

void copro_llm_softmax(float *x, size_t n)
{
	float max, sum = 0.0f;

	if (!n)
		return;
	max = x[0];
	for (size_t i = 1; i < n; i++)
		max = x[i] > max ? x[i] : max;
	for (size_t i = 0; i < n; i++) {
		x[i] = expf(x[i] - max);
		sum += x[i];
	}
	float inv = 1.0f / sum;

	for (size_t i = 0; i < n; i++)
		x[i] *= inv;
}

void copro_llm_add(float *y, const float *x, size_t n)
{
	for (size_t i = 0; i < n; i++)
		y[i] += x[i];
}

int copro_llm_embed(uint32_t type, const void *table, size_t n_vocab, size_t dim, int32_t id,
		    float *out)
{
	size_t row = copro_ggml_row_bytes(type, dim);

	if (!row || !table || !out || id < 0 || (size_t)id >= n_vocab)
		return -EINVAL;
	copro_dequantize_row(type, (const uint8_t *)table + (size_t)id * row, out, dim);
	return 0;
}

size_t copro_llm_argmax(const float *x, size_t n)
{
	size_t best = 0;
	size_t i = 0;

	/* Start from the first non-NaN, so a leading NaN does not block. */
	while (i < n && isnan(x[i]))
		i++;
	if (i == n)
		return 0;
	best = i;
	for (; i < n; i++)
		if (x[i] > x[best])
			best = i;
	return best;
}
