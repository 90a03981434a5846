// SPDX-License-Identifier: MIT
/*
 * Token sampling and stop strings. The sampler follows llama.cpp's default
 * chain (penalties, top-k, top-p, min-p, temperature, draw) so that a request
 * moved between the two behaves alike in distribution; exact token streams
 * differ, as the generators differ.
 */
#include <assert.h>
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "llm/sample.h"

/* ---- parameters ---------------------------------------------------------- */

struct copro_sample_params copro_sample_params_default(void)
{
	return (struct copro_sample_params){
		.temperature = 0.8f,
		.top_k = 40,
		.top_p = 0.95f,
		.min_p = 0.05f,
		.repeat_penalty = 1.0f,
		.repeat_last_n = 64,
		.seed = 0,
	};
}

/*
 * Checks the fields in declaration order and reports the first bad one. The
 * comparisons are written so that NaN fails each of them. top_k and
 * repeat_last_n need no check: any value means something (a top_k at or
 * above the vocabulary is off, a window longer than the history is the
 * whole history).
 */
int copro_sample_params_check(const struct copro_sample_params *p, const char **why)
{
	const char *msg = NULL;

	if (!(p->temperature >= 0.0f && p->temperature <= COPRO_SAMPLE_TEMPERATURE_MAX))
		msg = "temperature must be in [0, 100] (0 = greedy)";
	else if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
		msg = "top_p must be in (0, 1] (1 = off)";
	else if (!(p->min_p >= 0.0f && p->min_p < 1.0f))
		msg = "min_p must be in [0, 1) (0 = off)";
	else if (!(p->repeat_penalty > 0.0f && p->repeat_penalty <= FLT_MAX))
		msg = "repeat_penalty must be finite and > 0 (1 = off)";
	if (why)
		*why = msg;
	return msg ? -EINVAL : 0;
}

/* ---- generator ----------------------------------------------------------- */

uint64_t copro_splitmix64(uint64_t *state)
{
	uint64_t z = (*state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Fills the state with four splitmix64 outputs, as the xoshiro authors
 * recommend; splitmix64 never yields four zeros in a row, so the all-zero
 * state (a fixed point of xoshiro) cannot come out. */
void copro_rng_seed(struct copro_rng *r, uint64_t seed)
{
	for (int i = 0; i < 4; i++)
		r->s[i] = copro_splitmix64(&seed);
}

static inline uint64_t rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

uint64_t copro_rng_u64(struct copro_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;

	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = rotl(s[3], 45);
	return result;
}

/* 24 bits fill a float's mantissa exactly, so the result is a multiple of
 * 2^-24 and at most 1 - 2^-24: 1.0 never comes out. */
float copro_rng_f32(struct copro_rng *r)
{
	return (float)(copro_rng_u64(r) >> 40) * 0x1p-24f;
}

/* ---- sampler ------------------------------------------------------------- */

int copro_sample_scratch_init(struct copro_sample_scratch *s, uint32_t n_vocab)
{
	memset(s, 0, sizeof(*s));
	if (n_vocab == 0 || n_vocab > INT32_MAX)
		return -EINVAL;
	s->cand = malloc((size_t)n_vocab * sizeof(*s->cand));
	if (!s->cand)
		goto fail;
	s->p = malloc((size_t)n_vocab * sizeof(*s->p));
	if (!s->p)
		goto fail_cand;
	s->seen = calloc(((size_t)n_vocab + 7) / 8, 1);
	if (!s->seen)
		goto fail_p;
	s->n_vocab = n_vocab;
	return 0;

fail_p:
	free(s->p);
fail_cand:
	free(s->cand);
fail:
	memset(s, 0, sizeof(*s));
	return -ENOMEM;
}

void copro_sample_scratch_free(struct copro_sample_scratch *s)
{
	free(s->seen);
	free(s->p);
	free(s->cand);
	memset(s, 0, sizeof(*s));
}

/* The candidate order: higher logit first, lower id on a tie. Logits are
 * NaN-free by then, so this is a strict total order. */
static inline bool better(const struct copro_sample_cand *a, const struct copro_sample_cand *b)
{
	return a->logit > b->logit || (a->logit == b->logit && a->id < b->id);
}

static inline void swap_cand(struct copro_sample_cand *a, struct copro_sample_cand *b)
{
	struct copro_sample_cand t = *a;

	*a = *b;
	*b = t;
}

/* Restores a heap of n whose root is its worst element (every parent is
 * worse than its children), from node i down. */
static void sift_down(struct copro_sample_cand *c, uint32_t n, uint32_t i)
{
	for (;;) {
		uint32_t l = 2 * i + 1, w;

		if (l >= n)
			return;
		w = l;
		if (l + 1 < n && better(&c[l], &c[l + 1]))
			w = l + 1;
		if (!better(&c[i], &c[w]))
			return;
		swap_cand(&c[i], &c[w]);
		i = w;
	}
}

/*
 * Moves the k best of c (n) into c[0..k), in heap order, in O(n log k): a
 * heap of the best k so far, with the worst at the root, which each later
 * element replaces if it is better. Elements are swapped, never dropped, so
 * c still holds all n afterwards and can be selected again with a larger k.
 * A heap rather than quickselect because its worst case is bounded whatever
 * the logits are.
 */
static void select_top(struct copro_sample_cand *c, uint32_t n, uint32_t k)
{
	for (uint32_t i = k / 2; i-- > 0;)
		sift_down(c, k, i);
	for (uint32_t j = k; j < n; j++) {
		if (better(&c[j], &c[0])) {
			swap_cand(&c[j], &c[0]);
			sift_down(c, k, 0);
		}
	}
}

/* Sorts a heap made by select_top best first: popping the worst root to the
 * end each time leaves the best at the front. */
static void sort_heap(struct copro_sample_cand *c, uint32_t k)
{
	for (uint32_t end = k; end-- > 1;) {
		swap_cand(&c[0], &c[end]);
		sift_down(c, end, 0);
	}
}

#define TOP_P_BUCKETS 1024 /* over TOP_P_RANGE nats below the max, plus one past */
#define TOP_P_RANGE 32.0f

/* The bucket of a logit: its distance below the max, in 1/32 nat steps;
 * everything 32 nats or more below (and -inf) shares the last one. */
static inline uint32_t top_p_bucket(float logit, float max)
{
	float d = (max - logit) * (TOP_P_BUCKETS / TOP_P_RANGE);

	return d < (float)TOP_P_BUCKETS ? (uint32_t)d : TOP_P_BUCKETS;
}

/* Moves the candidates of c (n) for which bucket <= b (or < b when strict)
 * to the front, in a fixed order; returns how many there are. */
static uint32_t partition_buckets(struct copro_sample_cand *c, uint32_t n, float max, uint32_t b,
				  bool strict)
{
	uint32_t k = 0;

	for (uint32_t j = 0; j < n; j++) {
		uint32_t bj = top_p_bucket(c[j].logit, max);

		if (bj < b || (!strict && bj == b))
			swap_cand(&c[k++], &c[j]);
	}
	return k;
}

/*
 * Keeps the smallest set of best candidates of c (n) whose probability
 * (softmax at temperature 1 over the n) reaches top_p, at least one token;
 * moves it to the front of c and returns its size. The set is the one a
 * full sort (best first, lower id on ties) and a running sum would cut, but
 * without the sort: the mass is summed per bucket of logit, which finds the
 * one bucket the cut falls in, and only that bucket is sorted. A flat
 * distribution over 32000 tokens puts a few hundred in a bucket; only when
 * nearly all logits are equal does this degrade to a full sort.
 */
static uint32_t top_p_cut(struct copro_sample_cand *c, uint32_t n, float top_p, float max)
{
	double mass[TOP_P_BUCKETS + 1] = { 0 }, z = 0.0, target, cum = 0.0;
	uint32_t b, lo, hi;

	for (uint32_t i = 0; i < n; i++) {
		float w = expf(c[i].logit - max);

		mass[top_p_bucket(c[i].logit, max)] += w;
		z += w;
	}
	target = (double)top_p * z;
	for (b = 0; b < TOP_P_BUCKETS; b++) {
		if (cum + mass[b] >= target)
			break;
		cum += mass[b];
	}
	hi = partition_buckets(c, n, max, b, false);
	lo = partition_buckets(c, hi, max, b, true);
	/* c[lo..hi) is the bucket the cut falls in: sort it best first */
	select_top(c + lo, hi - lo, hi - lo);
	sort_heap(c + lo, hi - lo);
	for (uint32_t i = lo; i < hi; i++) {
		cum += expf(c[i].logit - max);
		if (cum >= target)
			return i + 1;
	}
	return hi; /* rounding kept the sum under the target: keep the bucket */
}

/* Checks the history window, then penalizes each token in it once. */
static int apply_penalty(const struct copro_sample_params *p, float *logits, uint32_t n_vocab,
			 const int32_t *recent, uint32_t n_recent, uint8_t *seen)
{
	uint32_t start, n_win = p->repeat_last_n < n_recent ? p->repeat_last_n : n_recent;

	if (n_win && !recent)
		return -EINVAL;
	start = n_recent - n_win;
	for (uint32_t j = start; j < n_recent; j++)
		if (recent[j] < 0 || (uint32_t)recent[j] >= n_vocab)
			return -EINVAL;
	if (p->repeat_penalty == 1.0f)
		return 0;
	for (uint32_t j = start; j < n_recent; j++) {
		uint32_t id = (uint32_t)recent[j];
		uint8_t bit = (uint8_t)(1u << (id & 7));

		if (seen[id >> 3] & bit)
			continue;
		seen[id >> 3] |= bit;
		/* llama.cpp: dividing a negative logit would raise it, so
		 * those are multiplied instead. */
		if (logits[id] > 0.0f)
			logits[id] /= p->repeat_penalty;
		else
			logits[id] *= p->repeat_penalty;
	}
	for (uint32_t j = start; j < n_recent; j++)
		seen[(uint32_t)recent[j] >> 3] = 0;
	return 0;
}

int32_t copro_sample(const struct copro_sample_params *p, struct copro_rng *r, float *logits,
		     uint32_t n_vocab, const int32_t *recent, uint32_t n_recent,
		     struct copro_sample_scratch *s)
{
	struct copro_sample_cand *c = s->cand;
	uint32_t best = 0, n;
	float max = -INFINITY, u;
	double sum = 0.0, cum = 0.0;
	int32_t last;
	int err;

	if (copro_sample_params_check(p, NULL) || n_vocab == 0 || n_vocab > s->n_vocab)
		return -EINVAL;
	err = apply_penalty(p, logits, n_vocab, recent, n_recent, s->seen);
	if (err)
		return err;

	/* NaN -> -inf and +inf -> FLT_MAX, so that differences from the max
	 * below are never inf - inf. Strict > keeps the lowest id on ties. */
	for (uint32_t i = 0; i < n_vocab; i++) {
		float x = logits[i];

		if (isnan(x))
			x = -INFINITY;
		else if (x > FLT_MAX)
			x = FLT_MAX;
		logits[i] = x;
		if (x > max) {
			max = x;
			best = i;
		}
	}
	if (p->temperature == 0.0f)
		return (int32_t)best;
	u = copro_rng_f32(r);
	if (max == -INFINITY)
		return 0;

	for (uint32_t i = 0; i < n_vocab; i++)
		c[i] = (struct copro_sample_cand){ .id = (int32_t)i, .logit = logits[i] };
	n = n_vocab;
	if (p->top_k && p->top_k < n) {
		select_top(c, n, p->top_k);
		n = p->top_k;
		if (p->top_p >= 1.0f)
			sort_heap(c, n); /* so that the draw order is by logit */
	}
	if (p->top_p < 1.0f)
		n = top_p_cut(c, n, p->top_p, max);
	if (p->min_p > 0.0f) {
		/* p_i >= min_p * p_max  <=>  exp(l_i - max) >= min_p; the
		 * best token passes as min_p < 1. c may be unsorted here
		 * (no top-k or top-p), so filter rather than cut. */
		uint32_t k = 0;

		for (uint32_t i = 0; i < n; i++)
			if (expf(c[i].logit - max) >= p->min_p)
				c[k++] = c[i];
		n = k;
	}

	for (uint32_t i = 0; i < n; i++) {
		s->p[i] = expf((c[i].logit - max) / p->temperature);
		sum += s->p[i];
	}
	/* The first token whose running sum passes u * sum: one with weight 0
	 * can never be it. If rounding leaves u * sum at or past the total,
	 * the last token of nonzero weight is the answer. */
	last = c[0].id;
	for (uint32_t i = 0; i < n; i++) {
		if (s->p[i] <= 0.0f)
			continue;
		cum += s->p[i];
		last = c[i].id;
		if (cum > (double)u * sum)
			return last;
	}
	return last;
}

/* ---- stop strings -------------------------------------------------------- */

int copro_stop_init(struct copro_stop *s, const char *const *stops, uint32_t n)
{
	size_t total = 0, hold_max;
	char *q;

	memset(s, 0, sizeof(*s));
	s->which = -1;
	if (n > COPRO_STOP_MAX)
		return -E2BIG;
	if (n && !stops)
		return -EINVAL;
	for (uint32_t i = 0; i < n; i++) {
		size_t len;

		if (!stops[i] || !stops[i][0])
			return -EINVAL;
		len = strnlen(stops[i], COPRO_STOP_MAX_LEN + 1);
		if (len > COPRO_STOP_MAX_LEN)
			return -E2BIG;
		s->len[i] = (uint32_t)len;
		if (len > s->max_len)
			s->max_len = (uint32_t)len;
		total += len + 1;
	}
	hold_max = s->max_len ? s->max_len - 1 : 0;
	s->cap = hold_max + COPRO_STOP_CHUNK;
	s->mem = malloc(total + s->cap);
	if (!s->mem) {
		memset(s, 0, sizeof(*s));
		s->which = -1;
		return -ENOMEM;
	}
	q = s->mem;
	for (uint32_t i = 0; i < n; i++) {
		memcpy(q, stops[i], s->len[i] + 1);
		s->str[i] = q;
		q += s->len[i] + 1;
	}
	s->buf = q;
	s->n = n;
	return 0;
}

void copro_stop_free(struct copro_stop *s)
{
	free(s->mem);
	memset(s, 0, sizeof(*s));
	s->which = -1;
}

void copro_stop_reset(struct copro_stop *s)
{
	s->out = 0;
	s->held = 0;
	s->which = -1;
}

/* Length of the longest suffix of b (w) that is a proper prefix of some stop
 * string: the text that could still begin one. */
static size_t hold_len(const struct copro_stop *s, const char *b, size_t w)
{
	size_t l = s->max_len ? s->max_len - 1 : 0;

	if (l > w)
		l = w;
	for (; l > 0; l--)
		for (uint32_t i = 0; i < s->n; i++)
			if (s->len[i] > l && b[w - l] == s->str[i][0] &&
			    !memcmp(b + w - l, s->str[i], l))
				return l;
	return 0;
}

/*
 * Appends a chunk of the piece after the held bytes and looks for a stop
 * string ending at each new byte. A stop string ending here can only start
 * inside the held bytes or later: the held bytes are the longest tail of the
 * text that is a start of a stop string, so anything starting earlier would
 * have had a longer tail to hold.
 */
size_t copro_stop_feed(struct copro_stop *s, const char *piece, size_t len, size_t *emit,
		       bool *matched)
{
	size_t held = s->held, take, w, h;

	assert(s->buf); /* built by copro_stop_init, not freed */
	if (s->which >= 0) {
		s->out = 0;
		*emit = 0;
		*matched = true;
		return len;
	}
	if (s->out) {
		memmove(s->buf, s->buf + s->out, held);
		s->out = 0;
	}
	take = len < s->cap - held ? len : s->cap - held;
	if (take)
		memcpy(s->buf + held, piece, take);
	w = held + take;
	for (size_t e = held + 1; e <= w; e++) {
		uint32_t best_len = 0;
		int32_t best = -1;

		for (uint32_t i = 0; i < s->n; i++) {
			uint32_t l = s->len[i];

			if (l <= e && l > best_len && s->buf[e - 1] == s->str[i][l - 1] &&
			    !memcmp(s->buf + e - l, s->str[i], l)) {
				best = (int32_t)i;
				best_len = l;
			}
		}
		if (best >= 0) {
			s->which = best;
			s->out = e - best_len;
			s->held = 0;
			*emit = s->out;
			*matched = true;
			return e - held;
		}
	}
	h = hold_len(s, s->buf, w);
	s->out = w - h;
	s->held = h;
	*emit = s->out;
	*matched = false;
	return take;
}

size_t copro_stop_finish(struct copro_stop *s)
{
	if (s->which >= 0) {
		s->out = 0;
		return 0;
	}
	if (s->out && s->held)
		memmove(s->buf, s->buf + s->out, s->held);
	s->out = s->held;
	s->held = 0;
	return s->out;
}
