// SPDX-License-Identifier: MIT
/*
 * llmsched.c - continuous batching over a paged KV cache (see llmsched.h).
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "llmsched.h"

#define TEXT_MAX	4096	/* bytes of text one token can release, at most */

struct seq_list {
	struct copro_seq *head, *tail;
	uint32_t n;
};

struct copro_sched {
	struct copro_llama *m;
	struct copro_llm_opts o;
	struct copro_sched_ops ops;
	struct copro_kvc *kvc;
	struct copro_llama_ctx *ctx;
	uint32_t max_ctx;
	uint32_t watermark;		/* blocks */
	struct seq_list waiting, running;
	uint64_t next_arrival;
	/* one step's batch */
	int32_t *b_tokens;		/* (max_batched_tokens) */
	uint32_t *b_pos;
	const uint32_t **b_tables;
	uint8_t *b_want;
	struct copro_seq **b_seq;	/* (max_batched_tokens) the sequence of each token */
	uint32_t *b_take;		/* (max_seqs) tokens each scheduled sequence runs */
	struct copro_seq **sched;	/* (max_seqs) scheduled sequences, in batch order */
	float *logits;			/* (max_seqs, vocab) */
	struct copro_sample_scratch scratch;
	char text[TEXT_MAX];
	char out[TEXT_MAX];		/* text past the stop matcher */
	size_t n_out;
	/* counters */
	uint64_t steps, tokens_computed, tokens_generated, preemptions, finished, last_step;
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- lists ---------------------------------------------------------------------- */

static void list_del(struct seq_list *l, struct copro_seq *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		l->head = s->next;
	if (s->next)
		s->next->prev = s->prev;
	else
		l->tail = s->prev;
	s->prev = s->next = NULL;
	l->n--;
	s->on_list = 0;
}

static void list_insert_before(struct seq_list *l, struct copro_seq *at, struct copro_seq *s)
{
	s->next = at;
	s->prev = at ? at->prev : l->tail;
	if (s->prev)
		s->prev->next = s;
	else
		l->head = s;
	if (at)
		at->prev = s;
	else
		l->tail = s;
	l->n++;
}

/*
 * Whether a goes before b in the waiting queue: preempted sequences first
 * (they were admitted once), then higher priority, then earlier arrival.
 */
static bool waits_before(const struct copro_seq *a, const struct copro_seq *b)
{
	bool pa = a->preemptions > 0, pb = b->preemptions > 0;

	if (pa != pb)
		return pa;
	if (a->priority != b->priority)
		return a->priority > b->priority;
	return a->arrival < b->arrival;
}

static void wait_enqueue(struct copro_sched *s, struct copro_seq *q)
{
	struct copro_seq *at = s->waiting.head;

	while (at && !waits_before(q, at))
		at = at->next;
	list_insert_before(&s->waiting, at, q);
	q->on_list = 1;
}

static void run_enqueue(struct copro_sched *s, struct copro_seq *q)
{
	list_insert_before(&s->running, NULL, q);
	q->on_list = 2;
}

/* ---- life of a sequence ------------------------------------------------------------ */

void copro_llm_opts_defaults(struct copro_llm_opts *o)
{
	if (!o->block_tokens)
		o->block_tokens = 16;
	if (!o->kv_cache_mib)
		o->kv_cache_mib = 64;
	if (!o->max_batched_tokens)
		o->max_batched_tokens = 512;
	if (!o->max_seqs)
		o->max_seqs = 64;
	if (!o->watermark_pct)
		o->watermark_pct = 1;
}

int copro_sched_new(struct copro_llama *m, const struct copro_llm_opts *opts,
		    const struct copro_sched_ops *ops, struct copro_sched **out, char *err,
		    size_t errlen)
{
	struct copro_kv_geom g;
	struct copro_sched *s;
	uint32_t vocab = m->hp.vocab, per_seq;
	int ret;

	*out = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->m = m;
	s->o = *opts;
	copro_llm_opts_defaults(&s->o);
	s->ops = *ops;
	s->max_ctx = s->o.max_ctx ? s->o.max_ctx : m->hp.ctx;
	if (s->o.max_seqs > s->o.max_batched_tokens)
		s->o.max_seqs = s->o.max_batched_tokens;
	copro_llama_kv_geom(m, s->o.block_tokens, &g);
	if (s->o.backend)
		ret = copro_kvc_create_external(&s->kvc, &g, &s->o.backend->view,
						s->o.backend->copy, s->o.backend->ctx, err, errlen);
	else
		ret = copro_kvc_create(&s->kvc, &g, (size_t)s->o.kv_cache_mib << 20, err, errlen);
	if (ret)
		goto fail;
	/* One sequence of the whole context must fit, or some request never could. */
	per_seq = (s->max_ctx + s->o.block_tokens - 1) / s->o.block_tokens;
	if (s->kvc->n_blocks < per_seq) {
		snprintf(err, errlen,
			 "kv_cache_mib %u holds %u blocks of %u tokens; one sequence of the "
			 "%u-token context needs %u (%zu bytes a block)", s->o.kv_cache_mib,
			 s->kvc->n_blocks, s->o.block_tokens, s->max_ctx, per_seq,
			 copro_kvc_block_bytes(&g));
		ret = -ENOSPC;
		goto fail;
	}
	s->watermark = (uint32_t)((uint64_t)s->kvc->n_blocks * s->o.watermark_pct / 100);
	if (!s->o.backend) {
		ret = copro_llama_ctx_new(m, s->o.max_batched_tokens, s->max_ctx, &s->ctx);
		if (ret)
			goto nomem;
		if (s->o.threads > 1) {
			ret = copro_llama_ctx_set_threads(s->ctx, (int)s->o.threads);
			if (ret) {
				snprintf(err, errlen, "cannot start %u forward-pass threads: %s",
					 s->o.threads, strerror(-ret));
				goto fail;
			}
		}
	}
	ret = copro_sample_scratch_init(&s->scratch, vocab);
	if (ret)
		goto nomem;
	s->b_tokens = calloc(s->o.max_batched_tokens, sizeof(*s->b_tokens));
	s->b_pos = calloc(s->o.max_batched_tokens, sizeof(*s->b_pos));
	s->b_tables = calloc(s->o.max_batched_tokens, sizeof(*s->b_tables));
	s->b_want = calloc(s->o.max_batched_tokens, sizeof(*s->b_want));
	s->b_seq = calloc(s->o.max_batched_tokens, sizeof(*s->b_seq));
	s->b_take = calloc(s->o.max_seqs, sizeof(*s->b_take));
	s->sched = calloc(s->o.max_seqs, sizeof(*s->sched));
	s->logits = aligned_alloc(64, ((size_t)s->o.max_seqs * vocab * sizeof(float) + 63) &
					      ~(size_t)63);
	if (!s->b_tokens || !s->b_pos || !s->b_tables || !s->b_want || !s->b_seq ||
	    !s->b_take || !s->sched || !s->logits)
		goto nomem;
	*out = s;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
	ret = -ENOMEM;
fail:
	copro_sched_free(s);
	return ret;
}

void copro_sched_free(struct copro_sched *s)
{
	if (!s)
		return;
	while (s->waiting.head) {
		struct copro_seq *q = s->waiting.head;

		list_del(&s->waiting, q);
		copro_sched_release(s, q);
	}
	while (s->running.head) {
		struct copro_seq *q = s->running.head;

		list_del(&s->running, q);
		copro_sched_release(s, q);
	}
	copro_sample_scratch_free(&s->scratch);
	copro_llama_ctx_free(s->ctx);
	copro_kvc_destroy(s->kvc);
	free(s->b_tokens);
	free(s->b_pos);
	free(s->b_tables);
	free(s->b_want);
	free(s->b_seq);
	free(s->b_take);
	free(s->sched);
	free(s->logits);
	free(s);
}

uint32_t copro_sched_ctx(const struct copro_sched *s)
{
	return s->max_ctx;
}

struct copro_kvc *copro_sched_kvc(struct copro_sched *s)
{
	return s->kvc;
}

int copro_sched_submit(struct copro_sched *s, const struct copro_seq_req *r,
		       struct copro_seq **out, const char **why)
{
	const int32_t *prompt = r->prompt;
	uint32_t n_prompt = r->n_prompt, vocab = s->m->hp.vocab;
	struct copro_seq *q;
	int ret;

	*out = NULL;
	*why = NULL;
	if (!n_prompt || !prompt) {
		*why = "empty prompt";
		return -EINVAL;
	}
	if (!r->max_tokens) {
		*why = "max_tokens must be at least 1";
		return -EINVAL;
	}
	for (uint32_t i = 0; i < n_prompt; i++) {
		if (prompt[i] < 0 || (uint32_t)prompt[i] >= vocab) {
			*why = "a prompt token id is outside the vocabulary";
			return -EINVAL;
		}
	}
	if (r->n_stop_ids > COPRO_SEQ_STOP_IDS) {
		*why = "too many stop token ids";
		return -EINVAL;
	}
	for (uint32_t i = 0; i < r->n_stop_ids; i++) {
		if (r->stop_ids[i] < 0 || (uint32_t)r->stop_ids[i] >= vocab) {
			*why = "a stop token id is outside the vocabulary";
			return -EINVAL;
		}
	}
	ret = copro_sample_params_check(&r->sp, why);
	if (ret)
		return ret;
	/* The prompt must leave room for one generated token at least. */
	if (n_prompt >= s->max_ctx) {
		if (!(r->flags & COPRO_SEQ_F_TRUNCATE)) {
			*why = "the prompt fills the model's context (ask for truncation?)";
			return -E2BIG;
		}
		prompt += n_prompt - (s->max_ctx - 1);
		n_prompt = s->max_ctx - 1;
	}
	q = calloc(1, sizeof(*q));
	if (!q)
		goto nomem;
	q->cap = s->max_ctx;
	q->tokens = malloc((size_t)q->cap * sizeof(*q->tokens));
	if (!q->tokens || copro_kvc_seq_init(s->kvc, &q->kv))
		goto nomem;
	if (r->n_stop_strs) {
		ret = copro_stop_init(&q->stop, r->stop_strs, r->n_stop_strs);
		if (ret) {
			*why = "bad stop strings (empty, too long or too many)";
			copro_sched_release(s, q);
			return ret;
		}
		q->has_stop = 1;
	}
	memcpy(q->tokens, prompt, (size_t)n_prompt * sizeof(*prompt));
	q->n_tokens = q->n_prompt = n_prompt;
	q->max_tokens = r->max_tokens;
	q->flags = r->flags;
	q->priority = r->priority;
	q->owner = r->owner;
	q->sp = r->sp;
	copro_rng_seed(&q->rng, r->sp.seed);
	if (r->n_stop_ids)
		memcpy(q->stop_ids, r->stop_ids, r->n_stop_ids * sizeof(*r->stop_ids));
	q->n_stop_ids = r->n_stop_ids;
	/* SentencePiece's leading space goes when the text starts the output. */
	copro_detok_init(&q->detok, false);
	q->arrival = s->next_arrival++;
	q->t_arrive = now_ns();
	wait_enqueue(s, q);
	*out = q;
	return 0;
nomem:
	*why = "out of memory";
	if (q)
		copro_sched_release(s, q);
	return -ENOMEM;
}

void copro_sched_cancel(struct copro_sched *s, struct copro_seq *q)
{
	q->cancel = 1;
}

void copro_sched_release(struct copro_sched *s, struct copro_seq *q)
{
	if (!q)
		return;
	copro_kvc_seq_free(s->kvc, &q->kv);
	if (q->has_stop)
		copro_stop_free(&q->stop);
	free(q->tokens);
	free(q);
}

bool copro_sched_busy(const struct copro_sched *s)
{
	return s->waiting.n || s->running.n;
}

/*
 * Runs len bytes of text through q's stop matcher; what may be shown now is
 * left at s->out (s->n_out bytes). Returns whether a stop string completed.
 */
static bool stop_filter(struct copro_sched *s, struct copro_seq *q, const char *text, size_t len)
{
	size_t off = 0;
	bool matched = false;

	s->n_out = 0;
	while (off < len && !matched) {
		size_t emit = 0, k = copro_stop_feed(&q->stop, text + off, len - off, &emit, &matched);

		if (s->n_out + emit <= sizeof(s->out)) {
			memcpy(s->out + s->n_out, copro_stop_out(&q->stop), emit);
			s->n_out += emit;
		}
		off += k ? k : len - off;
	}
	return matched;
}

/* Ends q: frees its blocks, takes it off its list, flushes its text, tells the owner. */
static void finish(struct copro_sched *s, struct copro_seq *q, uint32_t how)
{
	size_t len = 0;

	if (q->on_list == 1)
		list_del(&s->waiting, q);
	else if (q->on_list == 2)
		list_del(&s->running, q);
	copro_kvc_seq_free(s->kvc, &q->kv);
	q->finish = how;
	if (how == COPRO_SEQ_LENGTH || (how == COPRO_SEQ_STOP && !q->stop_matched)) {
		int n = copro_detok_flush(&q->detok, s->text, sizeof(s->text));

		len = n > 0 ? (size_t)n : 0;
		if (q->has_stop) {
			/* Held-back text that no stop string completed is text after all. */
			bool matched = stop_filter(s, q, s->text, len);

			len = s->n_out;
			memcpy(s->text, s->out, len);
			if (!matched) {
				size_t k = copro_stop_finish(&q->stop);

				if (len + k <= sizeof(s->text)) {
					memcpy(s->text + len, copro_stop_out(&q->stop), k);
					len += k;
				}
			}
		}
	}
	s->finished++;
	s->ops.done(q->owner, q, s->text, len);
}

uint32_t copro_sched_fail_all(struct copro_sched *s, int code)
{
	uint32_t n = 0;

	while (s->running.head || s->waiting.head) {
		struct copro_seq *q = s->running.head ? s->running.head : s->waiting.head;

		q->error = code;
		finish(s, q, COPRO_SEQ_ERROR);
		n++;
	}
	return n;
}

/*
 * Gives a sequence's blocks back and queues it again ahead of new work; its
 * prompt and generated tokens are computed again when it returns.
 */
static void preempt(struct copro_sched *s, struct copro_seq *q)
{
	list_del(&s->running, q);
	copro_kvc_seq_free(s->kvc, &q->kv);
	copro_kvc_seq_init(s->kvc, &q->kv);
	q->n_computed = 0;
	q->preemptions++;
	s->preemptions++;
	wait_enqueue(s, q);
}

/* The running sequence to preempt: lowest priority, then the latest arrival. */
static struct copro_seq *victim(struct copro_sched *s)
{
	struct copro_seq *v = NULL;

	for (struct copro_seq *q = s->running.head; q; q = q->next)
		if (!v || q->priority < v->priority ||
		    (q->priority == v->priority && q->arrival > v->arrival))
			v = q;
	return v;
}

/* ---- one step -------------------------------------------------------------------- */

/* Puts tokens [n_computed, n_computed + take) of q into the batch. */
static void add_to_batch(struct copro_sched *s, struct copro_seq *q, uint32_t take,
			 uint32_t *n_tok, uint32_t *n_seq)
{
	for (uint32_t j = 0; j < take; j++) {
		uint32_t i = *n_tok + j, pos = q->n_computed + j;

		s->b_tokens[i] = q->tokens[pos];
		s->b_pos[i] = pos;
		s->b_tables[i] = q->kv.table;
		s->b_seq[i] = q;
		s->b_want[i] = pos + 1 == q->n_tokens;
	}
	s->sched[*n_seq] = q;
	s->b_take[*n_seq] = take;
	*n_tok += take;
	(*n_seq)++;
}

/* Whether q is in this step's batch already. */
static bool scheduled(struct copro_sched *s, uint32_t n_seq, const struct copro_seq *q)
{
	for (uint32_t i = 0; i < n_seq; i++)
		if (s->sched[i] == q)
			return true;
	return false;
}

/*
 * Makes room for take positions of running q, preempting others - never one
 * already in this step's batch - while the pool is dry. Returns 0, or -1 when
 * q itself was preempted.
 */
static int reserve(struct copro_sched *s, struct copro_seq *q, uint32_t take, uint32_t n_seq)
{
	while (copro_kvc_seq_append(s->kvc, &q->kv, take)) {
		struct copro_seq *v = NULL;

		for (struct copro_seq *c = s->running.head; c; c = c->next) {
			if (c == q || scheduled(s, n_seq, c))
				continue;
			if (!v || c->priority < v->priority ||
			    (c->priority == v->priority && c->arrival > v->arrival))
				v = c;
		}
		/* The victim rule would pick q itself before anyone lower. */
		if (!v || (victim(s) == q)) {
			preempt(s, q);
			return -1;
		}
		preempt(s, v);
	}
	return 0;
}

/* Text of a new token: whole UTF-8 characters, then past the stop strings. */
static int emit_token(struct copro_sched *s, struct copro_seq *q, int32_t id)
{
	int n = 0;
	size_t len;
	bool matched;

	if (!copro_tok_is_control(s->m->tok, id))
		n = copro_detok_push(s->m->tok, &q->detok, id, s->text, sizeof(s->text));
	len = n > 0 ? (size_t)n : 0;
	if (!q->has_stop) {
		s->ops.token(q->owner, q, id, s->text, len);
		return 0;
	}
	matched = stop_filter(s, q, s->text, len);
	s->ops.token(q->owner, q, id, s->out, s->n_out);
	return matched;
}

/* Samples the next token of q from its logits row and decides whether q ends. */
static void advance(struct copro_sched *s, struct copro_seq *q, float *logits, uint64_t now)
{
	uint32_t n_recent = q->sp.repeat_last_n < q->n_tokens ? q->sp.repeat_last_n : q->n_tokens;
	int32_t id;
	int stopped = 0;

	id = copro_sample(&q->sp, &q->rng, logits, s->m->hp.vocab,
			  q->tokens + q->n_tokens - n_recent, n_recent, &s->scratch);
	q->tokens[q->n_tokens++] = id;
	q->n_gen++;
	s->tokens_generated++;
	if (!q->t_first)
		q->t_first = now;
	q->t_last = now;
	if (id == copro_tok_eos(s->m->tok) && !(q->flags & COPRO_SEQ_F_IGNORE_EOS)) {
		s->ops.token(q->owner, q, id, "", 0);
		finish(s, q, COPRO_SEQ_STOP);
		return;
	}
	for (uint32_t i = 0; i < q->n_stop_ids; i++)
		stopped |= id == q->stop_ids[i];
	if (stopped) {
		s->ops.token(q->owner, q, id, "", 0);
		finish(s, q, COPRO_SEQ_STOP);
		return;
	}
	if (emit_token(s, q, id)) {
		q->stop_matched = 1;
		finish(s, q, COPRO_SEQ_STOP);
		return;
	}
	if (q->n_gen >= q->max_tokens || q->n_tokens >= q->cap)
		finish(s, q, COPRO_SEQ_LENGTH);
}

int copro_sched_step(struct copro_sched *s)
{
	uint32_t budget = s->o.max_batched_tokens, n_tok = 0, n_seq = 0, n_want = 0;
	struct copro_llama_batch b;
	struct copro_seq *q, *next;
	uint64_t now;
	bool admit;
	int ret;

	/* Retire what was cancelled, waiting or running. */
	for (q = s->waiting.head; q; q = next) {
		next = q->next;
		if (q->cancel)
			finish(s, q, COPRO_SEQ_CANCELLED);
	}
	for (q = s->running.head; q; q = next) {
		next = q->next;
		if (q->cancel)
			finish(s, q, COPRO_SEQ_CANCELLED);
	}
	/*
	 * Decoding sequences first: one token each, so nobody's next token
	 * waits behind a prompt; then the prompt chunks of running ones. Each
	 * reservation may preempt others, so the list is walked afresh.
	 */
	for (int pass = 0; pass < 2; pass++) {
		while (budget && n_seq < s->o.max_seqs) {
			uint32_t need = 0, take;

			for (q = s->running.head; q; q = q->next) {
				need = q->n_tokens - q->n_computed;
				if ((pass == 0) == (need == 1) && !scheduled(s, n_seq, q))
					break;
			}
			if (!q)
				break;
			take = need < budget ? need : budget;
			if (reserve(s, q, take, n_seq))
				continue;	/* q went back to waiting */
			add_to_batch(s, q, take, &n_tok, &n_seq);
			budget -= take;
		}
	}
	/* Then admit waiting sequences while the budget and the pool allow. */
	admit = !s->o.static_batching || !s->running.n;
	/* Static batching takes a whole batch at once; its prompts run in later steps. */
	while (admit && (q = s->waiting.head) && (budget || s->o.static_batching) &&
	       s->running.n < s->o.max_seqs && n_seq < s->o.max_seqs) {
		uint32_t need, take;
		int got = copro_kvc_seq_match_prefix(s->kvc, &q->kv, q->tokens, q->n_tokens);

		q->n_computed = got > 0 ? (uint32_t)got : 0;
		if (!q->preemptions)
			q->n_cached = q->n_computed;
		need = q->n_tokens - q->n_computed;
		take = need < budget ? need : budget;
		/* Keep the watermark for the running ones to grow into. */
		if (copro_kvc_blocks_needed(s->kvc, &q->kv, take) +
			    (s->running.n ? s->watermark : 0) > copro_kvc_free_blocks(s->kvc) ||
		    copro_kvc_seq_append(s->kvc, &q->kv, take)) {
			/* Not now: hold no blocks while waiting (they may be evicted). */
			copro_kvc_seq_free(s->kvc, &q->kv);
			copro_kvc_seq_init(s->kvc, &q->kv);
			q->n_computed = 0;
			break;
		}
		list_del(&s->waiting, q);
		run_enqueue(s, q);
		if (take)
			add_to_batch(s, q, take, &n_tok, &n_seq);
		budget -= take;
	}
	if (!n_tok)
		return 0;

	b.n = n_tok;
	b.tokens = s->b_tokens;
	b.pos = s->b_pos;
	b.tables = s->b_tables;
	b.want = s->b_want;
	if (s->o.fail_step && s->steps + 1 == s->o.fail_step)
		ret = -EIO;	/* injected: the device failed under this step */
	else if (s->o.backend)
		ret = s->o.backend->forward(s->o.backend->ctx, &b, s->logits);
	else
		ret = copro_llama_forward(s->ctx, copro_kvc_view(s->kvc), &b, s->logits);
	if (ret) {
		/* The step counts: an injected fault fires once. */
		s->steps++;
		for (uint32_t i = 0; i < n_seq; i++) {
			s->sched[i]->error = ret;
			finish(s, s->sched[i], COPRO_SEQ_ERROR);
		}
		return ret;
	}
	s->steps++;
	s->tokens_computed += n_tok;
	s->last_step = n_tok;
	now = now_ns();
	/* Record the ids of the positions just written: full blocks become shareable. */
	for (uint32_t i = 0; i < n_seq; i++) {
		q = s->sched[i];
		copro_kvc_seq_commit(s->kvc, &q->kv, q->tokens + q->n_computed, s->b_take[i]);
		q->n_computed += s->b_take[i];
	}
	/* Logits rows come in batch order of the tokens that wanted them. */
	for (uint32_t i = 0; i < n_seq; i++) {
		q = s->sched[i];
		if (q->n_computed != q->n_tokens)
			continue;	/* a prompt chunk: no token yet */
		advance(s, q, s->logits + (size_t)n_want * s->m->hp.vocab, now);
		n_want++;
	}
	return (int)n_tok;
}

void copro_sched_stats(const struct copro_sched *s, struct copro_sched_stats *st)
{
	memset(st, 0, sizeof(*st));
	st->running = s->running.n;
	st->waiting = s->waiting.n;
	st->steps = s->steps;
	st->tokens_computed = s->tokens_computed;
	st->tokens_generated = s->tokens_generated;
	st->preemptions = s->preemptions;
	st->finished = s->finished;
	st->last_step_tokens = s->last_step;
	copro_kvc_stats(s->kvc, &st->kv);
}
