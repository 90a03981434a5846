/* SPDX-License-Identifier: MIT */
/*
 * tok_gguf.h - a tokenizer built from a GGUF file's tokenizer.ggml.* keys.
 */
#ifndef COPRO_LLM_TOK_GGUF_H
#define COPRO_LLM_TOK_GGUF_H

#include <stddef.h>

struct copro_gguf;
struct copro_tok;

/*
 * Builds the tokenizer a GGUF file describes (tokenizer.ggml.model "llama"
 * or "gpt2", its tokens, scores, token types, merges and special ids, read
 * as llama.cpp reads them; an id written as 2^32 - 1 means none). Returns 0
 * or a negative code with a one-line reason in err.
 */
int copro_tok_from_gguf(const struct copro_gguf *g, struct copro_tok **out, char *err,
			size_t errlen);

#endif
