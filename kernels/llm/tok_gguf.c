// SPDX-License-Identifier: MIT
/*
 * tok_gguf.c - a tokenizer from a GGUF file's tokenizer.ggml.* metadata,
 * read the way llama.cpp reads it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/gguf.h"
#include "llm/tok_gguf.h"
#include "llm/tokenizer.h"

/* An optional id key: absent, or written as 2^32 - 1 ("none"), gives -1. */
static int32_t opt_id(const struct copro_gguf *g, const char *key, int32_t def)
{
	uint32_t v;

	if (copro_gguf_get_u32(g, key, &v))
		return def;
	return v == UINT32_MAX || v > INT32_MAX ? -1 : (int32_t)v;
}

int copro_tok_from_gguf(const struct copro_gguf *g, struct copro_tok **out, char *err,
			size_t errlen)
{
	const struct copro_gguf_kv *tokens, *merges = NULL;
	struct copro_tok_desc d = { 0 };
	const char *model, **text = NULL, **mtext = NULL;
	uint32_t *text_len = NULL, *mlen = NULL, et;
	float *scores = NULL;
	int32_t *types = NULL;
	const void *data;
	uint64_t n;
	size_t len;
	int ret, b;

	*out = NULL;
	if (copro_gguf_get_str(g, "tokenizer.ggml.model", &model, &len)) {
		snprintf(err, errlen, "tokenizer.ggml.model is missing: the file has no tokenizer");
		return -EINVAL;
	}
	d.model = copro_tok_model_parse(model, len);
	if (d.model < 0) {
		snprintf(err, errlen, "tokenizer model '%.*s' is not supported (llama, gpt2)",
			 (int)(len > 32 ? 32 : len), model);
		return -ENOTSUP;
	}
	tokens = copro_gguf_find(g, "tokenizer.ggml.tokens");
	if (!tokens || tokens->type != COPRO_GGUF_ARRAY || tokens->elem_type != COPRO_GGUF_STRING ||
	    !tokens->count || tokens->count > (1u << 24)) {
		snprintf(err, errlen, "tokenizer.ggml.tokens is missing or not an array of strings");
		return -EINVAL;
	}
	d.n_vocab = (uint32_t)tokens->count;
	text = calloc(d.n_vocab, sizeof(*text));
	text_len = calloc(d.n_vocab, sizeof(*text_len));
	if (!text || !text_len)
		goto nomem;
	for (uint32_t i = 0; i < d.n_vocab; i++) {
		const char *s;

		if (copro_gguf_arr_str(g, tokens, i, &s, &len) || len > UINT32_MAX) {
			snprintf(err, errlen, "tokenizer.ggml.tokens[%u] is unreadable", i);
			ret = -EINVAL;
			goto out;
		}
		text[i] = s;
		text_len[i] = (uint32_t)len;
	}
	if (!copro_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &n, &data)) {
		if (et != COPRO_GGUF_F32 || n != d.n_vocab) {
			snprintf(err, errlen, "tokenizer.ggml.scores: %llu values for %u tokens",
				 (unsigned long long)n, d.n_vocab);
			ret = -EINVAL;
			goto out;
		}
		/* Arrays in a GGUF header need not be aligned: copy them out. */
		scores = malloc((size_t)n * sizeof(float));
		if (!scores)
			goto nomem;
		memcpy(scores, data, (size_t)n * sizeof(float));
		d.scores = scores;
	}
	if (!copro_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &n, &data)) {
		if (et != COPRO_GGUF_I32 || n != d.n_vocab) {
			snprintf(err, errlen, "tokenizer.ggml.token_type: %llu values for %u tokens",
				 (unsigned long long)n, d.n_vocab);
			ret = -EINVAL;
			goto out;
		}
		types = malloc((size_t)n * sizeof(int32_t));
		if (!types)
			goto nomem;
		memcpy(types, data, (size_t)n * sizeof(int32_t));
		d.types = types;
	}
	merges = copro_gguf_find(g, "tokenizer.ggml.merges");
	if (merges) {
		if (merges->type != COPRO_GGUF_ARRAY || merges->elem_type != COPRO_GGUF_STRING ||
		    merges->count > (1u << 24)) {
			snprintf(err, errlen, "tokenizer.ggml.merges is not an array of strings");
			ret = -EINVAL;
			goto out;
		}
		d.n_merges = (uint32_t)merges->count;
		mtext = calloc(d.n_merges + 1, sizeof(*mtext));
		mlen = calloc(d.n_merges + 1, sizeof(*mlen));
		if (!mtext || !mlen)
			goto nomem;
		for (uint32_t i = 0; i < d.n_merges; i++) {
			const char *s;

			if (copro_gguf_arr_str(g, merges, i, &s, &len) || len > UINT32_MAX) {
				snprintf(err, errlen, "tokenizer.ggml.merges[%u] is unreadable", i);
				ret = -EINVAL;
				goto out;
			}
			mtext[i] = s;
			mlen[i] = (uint32_t)len;
		}
		d.merges = mtext;
		d.merge_len = mlen;
	}
	d.text = text;
	d.text_len = text_len;
	d.bos = opt_id(g, "tokenizer.ggml.bos_token_id", d.model == COPRO_TOK_LLAMA ? 1 : -1);
	d.eos = opt_id(g, "tokenizer.ggml.eos_token_id", d.model == COPRO_TOK_LLAMA ? 2 : -1);
	d.unk = opt_id(g, "tokenizer.ggml.unknown_token_id", d.model == COPRO_TOK_LLAMA ? 0 : -1);
	d.add_bos = copro_gguf_get_bool(g, "tokenizer.ggml.add_bos_token", &b) ?
			    d.model == COPRO_TOK_LLAMA : b;
	d.add_space_prefix = copro_gguf_get_bool(g, "tokenizer.ggml.add_space_prefix", &b) ?
				     d.model == COPRO_TOK_LLAMA : b;
	ret = copro_tok_create(&d, out, err, errlen);
	goto out;
nomem:
	snprintf(err, errlen, "out of memory");
	ret = -ENOMEM;
out:
	free(text);
	free(text_len);
	free(mtext);
	free(mlen);
	free(scores);
	free(types);
	return ret;
}
