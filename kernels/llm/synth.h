/* SPDX-License-Identifier: MIT */
/*
 * Synthetic Llama models: random weights, written as a GGUF file named and
 * shaped exactly as llama.cpp's converter names and shapes a Llama model,
 * with a llama (SentencePiece-style) tokenizer in the metadata. Benchmarks
 * and tests use them where no trained model of the wanted size is at hand.
 *
 * Weights come from a counter-based generator (splitmix64 of the seed, a
 * hash of the tensor's name and the element's index), so the same options
 * always write the same bytes, and copro_llm_synth_values() can recompute
 * any tensor's values before quantization.
 */
#ifndef COPRO_LLM_SYNTH_H
#define COPRO_LLM_SYNTH_H

#include <stddef.h>
#include <stdint.h>

struct copro_synth_opts {
	uint32_t dim;		/* embedding length */
	uint32_t n_layers;
	uint32_t n_heads;
	uint32_t n_kv_heads;	/* divides n_heads */
	uint32_t hidden;	/* feed-forward length */
	uint32_t vocab;		/* 0 with vocab_file: the file's size */
	uint32_t context;
	uint32_t type;		/* enum copro_ggml_type of the 2-D matrices */
	uint64_t seed;
	int untied;		/* write output.weight (else the embedding is reused) */
	float rope_freq_base;	/* 0: 10000 */
	float norm_eps;		/* 0: 1e-5 */
	const char *name;	/* general.name; NULL: "copro-synth" */
	const char *vocab_file; /* llama2.c tokenizer.bin, or NULL for a generated vocab */
};

/* Fills o with the defaults of `copro-model synth` (a tiny F32 model). */
void copro_llm_synth_defaults(struct copro_synth_opts *o);

/* Checks the options; 0, or -EINVAL with the reason in err. */
int copro_llm_synth_check(const struct copro_synth_opts *o, char *err, size_t errlen);

/* Writes the model to path; 0, or a negative errno with the reason in err. */
int copro_llm_synth(const struct copro_synth_opts *o, const char *path, char *err,
		    size_t errlen);

/* The f32 values (before conversion to o->type) of elements [first, first + n)
 * of the tensor called name with rows of ne0 elements, as copro_llm_synth
 * writes them. Norm weights ("*_norm.weight") are near 1; everything else is
 * uniform in +-1/sqrt(ne0). */
void copro_llm_synth_values(uint64_t seed, const char *name, uint64_t ne0, uint64_t first,
			    uint64_t n, float *out);

#endif
