/* SPDX-License-Identifier: MIT */
/*
 * Token sampling for the Llama runtime: the per-request sampling parameters,
 * a small seeded generator per sequence, the sampler chain (repetition
 * penalty, then greedy or top-k -> top-p -> min-p -> temperature -> draw, in
 * llama.cpp's default order), and an incremental stop-string matcher over the
 * generated text.
 *
 * Nothing here allocates per token: the sampler works in a scratch made once
 * per sequence (or per scheduler, it holds no state between calls) and the
 * stop matcher in a buffer made once when it is built.
 */
#ifndef COPRO_LLM_SAMPLE_H
#define COPRO_LLM_SAMPLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ---- parameters ---------------------------------------------------------- */

struct copro_sample_params {
	float temperature;	/* 0 = greedy; [0, 100] */
	uint32_t top_k;		/* 0 = off; above the vocabulary = off */
	float top_p;		/* 1 = off; (0, 1] */
	float min_p;		/* 0 = off; [0, 1) */
	float repeat_penalty;	/* 1 = off; finite, > 0 */
	uint32_t repeat_last_n; /* tokens of history penalized, 0 = off */
	uint64_t seed;
};

#define COPRO_SAMPLE_TEMPERATURE_MAX 100.0f

/* llama.cpp's defaults: temperature 0.8, top_k 40, top_p 0.95, min_p 0.05,
 * repeat_penalty 1 (off), repeat_last_n 64; seed 0. */
struct copro_sample_params copro_sample_params_default(void);

/* Checks every field's range. Returns 0, or -EINVAL with *why (if why is not
 * NULL) pointing at a static message naming the field and its range. */
int copro_sample_params_check(const struct copro_sample_params *p, const char **why);

/* ---- generator ----------------------------------------------------------- */

/* xoshiro256** (Blackman and Vigna), seeded through splitmix64 so that any
 * seed, 0 included, gives a full, well-mixed state. */
struct copro_rng {
	uint64_t s[4];
};

/* Advances a splitmix64 state and returns its next output. */
uint64_t copro_splitmix64(uint64_t *state);
void copro_rng_seed(struct copro_rng *r, uint64_t seed);
uint64_t copro_rng_u64(struct copro_rng *r);
/* Uniform in [0, 1): the top 24 bits of the next output, times 2^-24. */
float copro_rng_f32(struct copro_rng *r);

/* ---- sampler ------------------------------------------------------------- */

struct copro_sample_cand {
	int32_t id;
	float logit;
};

struct copro_sample_scratch {
	uint32_t n_vocab;		 /* the most a copro_sample call may pass */
	struct copro_sample_cand *cand; /* (n_vocab) */
	float *p;			 /* (n_vocab) weights of cand */
	uint8_t *seen;			 /* (n_vocab / 8 rounded up) bitmap, 0 between calls */
};

/* Allocates a scratch for vocabularies up to n_vocab (1 .. INT32_MAX).
 * Returns 0, -EINVAL or -ENOMEM (then s is left empty, safe to free). */
int copro_sample_scratch_init(struct copro_sample_scratch *s, uint32_t n_vocab);
void copro_sample_scratch_free(struct copro_sample_scratch *s);

/*
 * Picks the next token from logits (n_vocab), which are modified in place.
 *
 * recent (n_recent) is the sequence's history, oldest first; its last
 * repeat_last_n tokens are penalized once each however often they occur.
 * NaN logits count as -inf and +inf ones as the largest float, so a +inf
 * token wins (the lowest id of several). When every logit is -inf or NaN the
 * answer is token 0, the argmax under the lowest-id tie rule. Ties anywhere
 * (argmax, top-k cut, top-p order) go to the lowest id, so the result
 * depends only on the inputs and the generator state.
 *
 * Greedy (temperature 0) draws nothing from r, which may then be NULL;
 * sampling draws exactly one number per call, so a sequence's tokens depend
 * only on its seed and its logits, not on what else the batch holds. Returns the token id, or -EINVAL for invalid params, a
 * zero n_vocab or one larger than the scratch's, or a history token outside
 * [0, n_vocab) (logits are then left as they were).
 */
int32_t copro_sample(const struct copro_sample_params *p, struct copro_rng *r, float *logits,
		     uint32_t n_vocab, const int32_t *recent, uint32_t n_recent,
		     struct copro_sample_scratch *s);

/* ---- stop strings -------------------------------------------------------- */

#define COPRO_STOP_MAX 16	/* stop strings per matcher */
#define COPRO_STOP_MAX_LEN 256	/* bytes per stop string */
#define COPRO_STOP_CHUNK 1024	/* bytes of a piece taken per feed, at least */

/*
 * Incremental matcher over the generated text. Stop strings are bytes, so a
 * UTF-8 stop string matches UTF-8 text; when the stop strings and the text
 * are valid UTF-8, the matcher never splits a character that the pieces
 * themselves did not split (held-back text always starts where a stop string
 * starts, at a lead byte).
 *
 * Buffer ownership: the matcher owns one buffer, made by copro_stop_init.
 * Each feed (or finish) leaves the bytes the caller may now emit at
 * copro_stop_out(s); they stay valid until the next call on the matcher.
 *
 * A stop is where a stop string first completes in the text; when several
 * complete at the same byte, the longest (earliest-starting) one is the
 * stop, so the emitted text never holds the start of it.
 */
struct copro_stop {
	uint32_t n;			/* stop strings */
	uint32_t max_len;		/* longest of them */
	const char *str[COPRO_STOP_MAX];	/* copies, inside mem */
	uint32_t len[COPRO_STOP_MAX];
	char *buf;			/* (cap) [out bytes][held bytes] */
	size_t cap;			/* max_len - 1 + COPRO_STOP_CHUNK */
	size_t out;			/* bytes at buf to emit, from the last call */
	size_t held;			/* bytes after them kept back */
	int32_t which;			/* stop string that matched, -1 while none */
	char *mem;			/* the one allocation: strings, then buf */
};

/*
 * Builds a matcher from n (0 .. COPRO_STOP_MAX) NUL-terminated stop strings,
 * copied. With n = 0 every byte is emitted as it comes. Returns 0, -EINVAL
 * for a NULL or empty string, -E2BIG for too many strings or one longer than
 * COPRO_STOP_MAX_LEN, -ENOMEM. On error s is left empty (safe to free).
 */
int copro_stop_init(struct copro_stop *s, const char *const *stops, uint32_t n);
void copro_stop_free(struct copro_stop *s);
/* Forgets the text seen so far and any match, for the next request. */
void copro_stop_reset(struct copro_stop *s);

/*
 * Feeds the next piece of generated text. Takes as much of it as fits the
 * buffer after the held bytes - all of it, or at least COPRO_STOP_CHUNK
 * bytes - and returns how many it took; the caller feeds the rest in
 * further calls, emitting after each:
 *
 *	while (len && !matched) {
 *		size_t used = copro_stop_feed(s, piece, len, &n, &matched);
 *		emit(copro_stop_out(s), n);
 *		piece += used, len -= used;
 *	}
 *
 * *emit is the number of bytes at copro_stop_out(s) that can no longer be
 * part of a stop string. On a match *matched is true, *emit covers the text
 * up to the stop string (never the stop string itself), the count returned
 * ends at the stop string's last byte (what follows it is to be dropped) and
 * later feeds take everything and emit nothing until copro_stop_reset.
 */
size_t copro_stop_feed(struct copro_stop *s, const char *piece, size_t len, size_t *emit,
		       bool *matched);

/* Releases the text held back at the end of generation: returns how many
 * bytes are at copro_stop_out(s) (0 after a match). */
size_t copro_stop_finish(struct copro_stop *s);

static inline const char *copro_stop_out(const struct copro_stop *s)
{
	return s->buf;
}

#endif
