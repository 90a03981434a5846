// SPDX-License-Identifier: MIT
/*
 * Reference (scalar) conversions for the GGUF element types. They define
 * what the fast kernels must compute and are what `copro-model synth` uses
 * to write quantized tensors.
 */
#include <math.h>
#include <string.h>

#include "llm/quant.h"

const char *copro_ggml_type_name(uint32_t type)
{
	switch (type) {
	case COPRO_GGML_F32:
		return "F32";
	case COPRO_GGML_F16:
		return "F16";
	case COPRO_GGML_Q4_0:
		return "Q4_0";
	case COPRO_GGML_Q8_0:
		return "Q8_0";
	}
	return NULL;
}

size_t copro_ggml_row_bytes(uint32_t type, uint64_t n)
{
	if (n > ((uint64_t)1 << 40))
		return 0;
	switch (type) {
	case COPRO_GGML_F32:
		return n * 4;
	case COPRO_GGML_F16:
		return n * 2;
	case COPRO_GGML_Q4_0:
		return n % COPRO_QK ? 0 : n / COPRO_QK * sizeof(struct copro_block_q4_0);
	case COPRO_GGML_Q8_0:
		return n % COPRO_QK ? 0 : n / COPRO_QK * sizeof(struct copro_block_q8_0);
	}
	return 0;
}

float copro_f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h & 0x8000) << 16;
	uint32_t exp = (h >> 10) & 0x1f;
	uint32_t man = h & 0x3ff;
	uint32_t bits;
	float f;

	if (exp == 0x1f) {
		bits = sign | 0x7f800000u | (man << 13);
	} else if (exp) {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	} else if (man) {
		/* subnormal: value = man * 2^-24 */
		f = (float)man * 0x1p-24f;
		memcpy(&bits, &f, 4);
		bits |= sign;
	} else {
		bits = sign;
	}
	memcpy(&f, &bits, 4);
	return f;
}

uint16_t copro_f32_to_f16(float f)
{
	uint32_t x;
	uint32_t sign, exp, man;

	memcpy(&x, &f, 4);
	sign = (x >> 16) & 0x8000;
	exp = (x >> 23) & 0xff;
	man = x & 0x7fffff;
	if (exp == 0xff) /* Inf, NaN (keep it a NaN) */
		return (uint16_t)(sign | 0x7c00 | (man ? 0x200 | (man >> 13) : 0));
	int e = (int)exp - 127 + 15;
	if (e >= 0x1f)
		return (uint16_t)(sign | 0x7c00);
	if (e <= 0) {
		if (e < -10)
			return (uint16_t)sign;
		man |= 0x800000;
		uint32_t shift = (uint32_t)(14 - e);
		uint32_t half = man >> shift;
		uint32_t rem = man & ((1u << shift) - 1);
		uint32_t mid = 1u << (shift - 1);
		if (rem > mid || (rem == mid && (half & 1)))
			half++;
		return (uint16_t)(sign | half);
	}
	uint32_t h = sign | ((uint32_t)e << 10) | (man >> 13);
	uint32_t rem = man & 0x1fff;
	if (rem > 0x1000 || (rem == 0x1000 && (h & 1)))
		h++; /* may carry into the exponent, up to Inf: correct */
	return (uint16_t)h;
}

void copro_quantize_row_q8_0(const float *x, struct copro_block_q8_0 *y, size_t n)
{
	for (size_t b = 0; b < n / COPRO_QK; b++, x += COPRO_QK) {
		float amax = 0.0f;

		for (int j = 0; j < COPRO_QK; j++)
			amax = fmaxf(amax, fabsf(x[j]));
		float d = amax / 127.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		y[b].d = copro_f32_to_f16(d);
		for (int j = 0; j < COPRO_QK; j++)
			y[b].qs[j] = (int8_t)roundf(x[j] * id);
	}
}

void copro_quantize_row_q4_0(const float *x, struct copro_block_q4_0 *y, size_t n)
{
	for (size_t b = 0; b < n / COPRO_QK; b++, x += COPRO_QK) {
		float amax = 0.0f, max = 0.0f;

		for (int j = 0; j < COPRO_QK; j++) {
			if (amax < fabsf(x[j])) {
				amax = fabsf(x[j]);
				max = x[j];
			}
		}
		float d = max / -8.0f;
		float id = d != 0.0f ? 1.0f / d : 0.0f;
		y[b].d = copro_f32_to_f16(d);
		for (int j = 0; j < COPRO_QK / 2; j++) {
			int q0 = (int)(int8_t)(x[j] * id + 8.5f);
			int q1 = (int)(int8_t)(x[j + COPRO_QK / 2] * id + 8.5f);

			q0 = q0 > 15 ? 15 : q0;
			q1 = q1 > 15 ? 15 : q1;
			y[b].qs[j] = (uint8_t)(q0 | (q1 << 4));
		}
	}
}

void copro_dequantize_row(uint32_t type, const void *src, float *dst, size_t n)
{
	switch (type) {
	case COPRO_GGML_F32:
		memcpy(dst, src, n * 4);
		break;
	case COPRO_GGML_F16: {
		const uint16_t *h = src;

		for (size_t i = 0; i < n; i++)
			dst[i] = copro_f16_to_f32(h[i]);
		break;
	}
	case COPRO_GGML_Q8_0: {
		const struct copro_block_q8_0 *b = src;

		for (size_t i = 0; i < n / COPRO_QK; i++) {
			float d = copro_f16_to_f32(b[i].d);

			for (int j = 0; j < COPRO_QK; j++)
				dst[i * COPRO_QK + j] = d * (float)b[i].qs[j];
		}
		break;
	}
	case COPRO_GGML_Q4_0: {
		const struct copro_block_q4_0 *b = src;

		for (size_t i = 0; i < n / COPRO_QK; i++) {
			float d = copro_f16_to_f32(b[i].d);

			for (int j = 0; j < COPRO_QK / 2; j++) {
				dst[i * COPRO_QK + j] = d * (float)((b[i].qs[j] & 0x0f) - 8);
				dst[i * COPRO_QK + j + 16] = d * (float)((b[i].qs[j] >> 4) - 8);
			}
		}
		break;
	}
	}
}
