/* SPDX-License-Identifier: MIT */
/*
 * GGUF tensor element types and their block formats (the layouts GGML and
 * llama.cpp write, so a GGUF file's bytes are used as they are), with the
 * reference (portable, scalar) conversions. The fast dequantize-dot kernels
 * live in kernels/llm/matmul.c and are checked against these.
 */
#ifndef COPRO_LLM_QUANT_H
#define COPRO_LLM_QUANT_H

#include <stddef.h>
#include <stdint.h>

/* GGML type ids as stored in a GGUF tensor info. */
enum copro_ggml_type {
	COPRO_GGML_F32 = 0,
	COPRO_GGML_F16 = 1,
	COPRO_GGML_Q4_0 = 2,
	COPRO_GGML_Q8_0 = 8,
};

#define COPRO_QK 32 /* elements per Q8_0/Q4_0 block */

/* Q8_0: 32 int8 values and one fp16 scale; x = d * q. 34 bytes. */
struct copro_block_q8_0 {
	uint16_t d; /* IEEE half */
	int8_t qs[COPRO_QK];
};

/* Q4_0: 32 4-bit values and one fp16 scale; x = d * (q - 8).
 * qs[j] holds element j in its low nibble and element j + 16 in its high. */
struct copro_block_q4_0 {
	uint16_t d;
	uint8_t qs[COPRO_QK / 2];
};

_Static_assert(sizeof(struct copro_block_q8_0) == 34, "Q8_0 block is 34 bytes");
_Static_assert(sizeof(struct copro_block_q4_0) == 18, "Q4_0 block is 18 bytes");

/* Name ("F32", "Q8_0", ...) of a type; NULL for a type copro does not run. */
const char *copro_ggml_type_name(uint32_t type);

/* Bytes a row of n elements takes; 0 if n does not fit the type's blocks
 * (n % 32 != 0 for the block types) or the type is unknown. */
size_t copro_ggml_row_bytes(uint32_t type, uint64_t n);

float copro_f16_to_f32(uint16_t h);
uint16_t copro_f32_to_f16(float f); /* round to nearest even */

/* Reference conversions of one row of n elements (n a multiple of 32 for
 * the block types). Quantizers follow GGML's reference rounding. */
void copro_quantize_row_q8_0(const float *x, struct copro_block_q8_0 *y, size_t n);
void copro_quantize_row_q4_0(const float *x, struct copro_block_q4_0 *y, size_t n);
void copro_dequantize_row(uint32_t type, const void *src, float *dst, size_t n);

#endif
