/* SPDX-License-Identifier: MIT */
/*
 * vexp.h - exp(x) on a vector of floats, for the softmax of attention and
 * the SiLU of the feed-forward: Cody-Waite range reduction (x = n ln2 + r,
 * |r| <= ln2 / 2) and the degree-6 polynomial of Cephes' expf, within 2 ulp
 * of exp over the normal range (tests/test_llm_ops.c), within one ulp
 * where the result is subnormal (below -87.3), 0 below -103.97, +inf
 * above 88.72; NaN stays NaN.
 *
 * Internal to kernels/llm: each function carries its own target attribute,
 * so it inlines only into functions built for the same instruction set.
 */
#ifndef COPRO_LLM_VEXP_H
#define COPRO_LLM_VEXP_H

#include <immintrin.h>

#define COPRO_VEXP_LO	-105.0f		/* clamp: below -103.97 the result is 0 */
#define COPRO_VEXP_HI	89.0f		/* clamp: above 88.72 the result is +inf */
#define COPRO_LOG2E	1.44269504088896341f
#define COPRO_LN2_HI	0.693359375f
#define COPRO_LN2_LO	-2.12194440e-4f

#define COPRO_VEXP_P0	1.9875691500e-4f
#define COPRO_VEXP_P1	1.3981999507e-3f
#define COPRO_VEXP_P2	8.3334519073e-3f
#define COPRO_VEXP_P3	4.1665795894e-2f
#define COPRO_VEXP_P4	1.6666665459e-1f
#define COPRO_VEXP_P5	5.0000001201e-1f

__attribute__((target("avx512f"), always_inline))
static inline __m512 copro_vexp512(__m512 x)
{
	__m512 n, r, p;

	/* the clamp's constant goes first: max/min return the second operand,
	 * x, when it is NaN */
	x = _mm512_max_ps(_mm512_set1_ps(COPRO_VEXP_LO), x);
	x = _mm512_min_ps(_mm512_set1_ps(COPRO_VEXP_HI), x);
	n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(COPRO_LOG2E)),
				 _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(COPRO_LN2_HI), x);
	r = _mm512_fnmadd_ps(n, _mm512_set1_ps(COPRO_LN2_LO), r);
	p = _mm512_set1_ps(COPRO_VEXP_P0);
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(COPRO_VEXP_P1));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(COPRO_VEXP_P2));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(COPRO_VEXP_P3));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(COPRO_VEXP_P4));
	p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(COPRO_VEXP_P5));
	p = _mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r);
	p = _mm512_add_ps(p, _mm512_set1_ps(1.0f));
	/* scalef handles n outside the normal exponent range (0 or inf) */
	return _mm512_scalef_ps(p, n);
}

/*
 * The AVX2 form builds 2^n in the exponent field, so it splits n in two
 * halves (each within the normal range) to reach subnormals and +inf like
 * the AVX-512 form does.
 */
__attribute__((target("avx2,fma"), always_inline))
static inline __m256 copro_vexp256(__m256 x)
{
	__m256 n, r, p;
	__m256i n1, n2;

	x = _mm256_max_ps(_mm256_set1_ps(COPRO_VEXP_LO), x);
	x = _mm256_min_ps(_mm256_set1_ps(COPRO_VEXP_HI), x);
	n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(COPRO_LOG2E)),
			    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(COPRO_LN2_HI), x);
	r = _mm256_fnmadd_ps(n, _mm256_set1_ps(COPRO_LN2_LO), r);
	p = _mm256_set1_ps(COPRO_VEXP_P0);
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(COPRO_VEXP_P1));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(COPRO_VEXP_P2));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(COPRO_VEXP_P3));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(COPRO_VEXP_P4));
	p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(COPRO_VEXP_P5));
	p = _mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r);
	p = _mm256_add_ps(p, _mm256_set1_ps(1.0f));
	/* n in [-152, 129]: 2^n = 2^(n/2) * 2^(n - n/2), each a normal float */
	n1 = _mm256_srai_epi32(_mm256_cvtps_epi32(n), 1);
	n2 = _mm256_sub_epi32(_mm256_cvtps_epi32(n), n1);
	n1 = _mm256_slli_epi32(_mm256_add_epi32(n1, _mm256_set1_epi32(127)), 23);
	n2 = _mm256_slli_epi32(_mm256_add_epi32(n2, _mm256_set1_epi32(127)), 23);
	p = _mm256_mul_ps(p, _mm256_castsi256_ps(n1));
	return _mm256_mul_ps(p, _mm256_castsi256_ps(n2));
}

#endif
