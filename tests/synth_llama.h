/* SPDX-License-Identifier: MIT */
/*
 * synth_llama.h - the small random-weight Llama models the integration
 * tests serve (copro-model synth's defaults, a 400-token generated
 * vocabulary, Q8_0, seed 11), so no test downloads or ships one.
 * Header-only, like daemon.h.
 */
#ifndef COPRO_TEST_SYNTH_LLAMA_H
#define COPRO_TEST_SYNTH_LLAMA_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "llm/quant.h"
#include "llm/synth.h"

/* Writes the model to path; returns 0, or -1 after printing why. */
static inline int test_synth_llama(const char *path, uint32_t dim, uint32_t layers,
				   uint32_t heads, uint32_t kv_heads, uint32_t hidden,
				   uint32_t context)
{
	struct copro_synth_opts o;
	char err[256];

	copro_llm_synth_defaults(&o);
	o.dim = dim;
	o.n_layers = layers;
	o.n_heads = heads;
	o.n_kv_heads = kv_heads;
	o.hidden = hidden;
	o.vocab = 400;
	o.context = context;
	o.type = COPRO_GGML_Q8_0;
	o.seed = 11;
	if (copro_llm_synth(&o, path, err, sizeof(err))) {
		fprintf(stderr, "synth %s: %s\n", path, err);
		return -1;
	}
	return 0;
}

/* The tiniest: dim 64, 2 layers, 4 heads over 2 KV heads, context 256. */
static inline int test_synth_tiny(const char *path)
{
	return test_synth_llama(path, 64, 2, 4, 2, 128, 256);
}

/*
 * The model the runtime tests compare paths on: dim, 2 layers, 4 heads over
 * 2 KV heads, hidden 2 x dim, a 320-token vocabulary, an untied output,
 * every matrix of type, seed 42; at dir/synth-TYPE.gguf, returned in path.
 */
static inline int test_synth_typed(const char *dir, uint32_t type, uint32_t dim, char *path,
				   size_t len)
{
	struct copro_synth_opts o;
	char err[256];

	copro_llm_synth_defaults(&o);
	o.dim = dim;
	o.n_layers = 2;
	o.n_heads = 4;
	o.n_kv_heads = 2;
	o.hidden = 2 * dim;
	o.vocab = 320;
	o.context = 256;
	o.type = type;
	o.seed = 42;
	o.untied = 1;
	snprintf(path, len, "%s/synth-%s.gguf", dir, copro_ggml_type_name(type));
	if (copro_llm_synth(&o, path, err, sizeof(err))) {
		fprintf(stderr, "synth %s: %s\n", path, err);
		return -1;
	}
	return 0;
}

#endif
