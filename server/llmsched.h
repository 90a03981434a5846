/* SPDX-License-Identifier: MIT */
/*
 * llmsched.h - continuous (iteration-level) batching for one language
 * model: sequences join and leave the running batch between forward steps.
 *
 * Each step gathers one token from every decoding sequence and, in the
 * budget left (max_batched_tokens), chunks of the prompts still being read,
 * then runs them as one forward pass. Between steps it retires finished
 * sequences, admits waiting ones while KV blocks allow (keeping a
 * watermark of free blocks for the running ones to grow into), and when
 * the pool runs dry preempts by recompute: the victim - lowest priority,
 * then the most recently arrived - gives its blocks back and waits again
 * ahead of new work; on its return its prompt and generated tokens are
 * computed again (blocks still cached are reused through the prefix map).
 *
 * The scheduler and its pool are owned by one thread; nothing here locks.
 * Results leave through the caller's callbacks, called on that thread.
 */
#ifndef COPRO_LLMSCHED_H
#define COPRO_LLMSCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "kvcache.h"
#include "llm/llama.h"
#include "llm/sample.h"
#include "llm/tokenizer.h"

/* How a sequence ended (also the ABI's COPRO_FINISH_*). */
#define COPRO_SEQ_RUNNING	0
#define COPRO_SEQ_STOP		1	/* EOS, a stop token or a stop string */
#define COPRO_SEQ_LENGTH	2	/* max_tokens, or the context is full */
#define COPRO_SEQ_CANCELLED	3
#define COPRO_SEQ_ERROR		4

/* Request flags. */
#define COPRO_SEQ_F_IGNORE_EOS	(1U << 0)	/* generate through EOS */
#define COPRO_SEQ_F_TRUNCATE	(1U << 1)	/* keep the prompt's tail if it is too long */

#define COPRO_SEQ_STOP_IDS	8

/*
 * Where the forward pass runs when not on the CPU (a GPU): it owns the KV
 * storage, laid out as view says (device pointers), which the scheduler's
 * block pool only counts; copy copies a block for copy-on-write.
 */
struct copro_llm_backend {
	const char *name;		/* "cuda:0" */
	void *ctx;
	int (*forward)(void *ctx, const struct copro_llama_batch *b, float *logits);
	int (*copy)(void *ctx, uint32_t dst, uint32_t src);
	struct copro_kv_view view;	/* view.n_blocks blocks */
};

struct copro_llm_opts {
	uint32_t block_tokens;		/* positions per KV block, default 16 */
	uint32_t kv_cache_mib;		/* KV pool, default 64 */
	uint32_t max_batched_tokens;	/* tokens per step, default 512 */
	uint32_t max_seqs;		/* running sequences, default 64 */
	uint32_t max_ctx;		/* 0: the model's context length */
	uint32_t watermark_pct;		/* free blocks kept at admission, % of pool, default 1 */
	uint32_t static_batching;	/* 1: admit only when nothing runs (the baseline
					 * continuous batching is measured against) */
	const struct copro_llm_backend *backend;	/* NULL: the CPU */
	uint32_t threads;		/* CPU forward pass threads, default 1 */
	uint32_t fail_step;		/* fault injection for tests: the forward pass of
					 * this step (1, 2, ...) fails with -EIO; 0 never */
};

struct copro_seq_req {
	const int32_t *prompt;		/* token ids */
	uint32_t n_prompt;
	uint32_t max_tokens;		/* >= 1; clamped to the context */
	uint32_t flags;			/* COPRO_SEQ_F_* */
	uint16_t priority;		/* higher first */
	struct copro_sample_params sp;
	const int32_t *stop_ids;
	uint32_t n_stop_ids;		/* <= COPRO_SEQ_STOP_IDS */
	const char *const *stop_strs;
	uint32_t n_stop_strs;
	void *owner;			/* handed back to the callbacks */
};

struct copro_seq {
	struct copro_seq *prev, *next;	/* on the waiting or the running list */
	void *owner;
	uint64_t arrival;		/* order of submission */
	uint16_t priority;
	uint8_t on_list;		/* 0 none, 1 waiting, 2 running */
	uint8_t cancel;			/* set by copro_sched_cancel */
	uint32_t flags;
	struct copro_kvc_seq kv;
	int32_t *tokens;		/* (cap) prompt then generated */
	uint32_t cap;			/* the context this sequence may fill */
	uint32_t n_tokens, n_prompt, n_computed, n_gen, max_tokens;
	uint32_t n_cached;		/* prompt tokens found in the prefix cache, first admission */
	uint32_t preemptions;
	uint32_t finish;		/* COPRO_SEQ_* */
	int32_t error;
	struct copro_sample_params sp;
	struct copro_rng rng;
	int32_t stop_ids[COPRO_SEQ_STOP_IDS];
	uint32_t n_stop_ids;
	struct copro_stop stop;
	uint8_t has_stop;
	uint8_t stop_matched;		/* a stop string ended it */
	struct copro_detok detok;
	uint64_t t_arrive, t_first, t_last;	/* CLOCK_MONOTONIC ns */
};

struct copro_sched_ops {
	/*
	 * A token was generated: its id and the text it completes (whole UTF-8
	 * characters only; text held back by a possible stop string comes
	 * later; len may be 0).
	 */
	void (*token)(void *owner, struct copro_seq *s, int32_t id, const char *text, size_t len);
	/*
	 * The sequence ended (s->finish says how), with the rest of its text.
	 * Its KV blocks are already freed; the caller frees s with
	 * copro_sched_release() once it is done with it, not before returning.
	 */
	void (*done)(void *owner, struct copro_seq *s, const char *text, size_t len);
};

struct copro_sched_stats {
	uint32_t running, waiting;
	uint64_t steps, tokens_computed, tokens_generated, preemptions, finished;
	uint64_t last_step_tokens;
	struct copro_kvc_stats kv;
};

struct copro_sched;

/*
 * Creates a scheduler for model m with its own KV pool. Returns 0 or a
 * negative code with the reason in err: a pool too small for one
 * sequence of the full context is refused here.
 */
int copro_sched_new(struct copro_llama *m, const struct copro_llm_opts *o,
		    const struct copro_sched_ops *ops, struct copro_sched **out, char *err,
		    size_t errlen);
void copro_sched_free(struct copro_sched *s);

/* Fills in the defaults for the fields left zero. */
void copro_llm_opts_defaults(struct copro_llm_opts *o);

/* The context length sequences get. */
uint32_t copro_sched_ctx(const struct copro_sched *s);

/*
 * Queues a sequence. Returns 0 and *out, or -EINVAL (empty prompt, a token
 * id out of range, max_tokens 0, sampling parameters out of range, too
 * many stop ids or strings), -E2BIG (a prompt that leaves no room to
 * generate, without COPRO_SEQ_F_TRUNCATE), -ENOMEM; why says which.
 */
int copro_sched_submit(struct copro_sched *s, const struct copro_seq_req *r,
		       struct copro_seq **out, const char **why);

/* Ends s at the next step with COPRO_SEQ_CANCELLED (its blocks freed then). */
void copro_sched_cancel(struct copro_sched *s, struct copro_seq *seq);

/* Frees a sequence after its done callback. */
void copro_sched_release(struct copro_sched *s, struct copro_seq *seq);

/*
 * Runs one step: retires, admits, preempts, one forward pass, samples.
 * Returns the number of tokens computed (0: nothing to do), or a negative
 * code when the forward pass failed (the step's sequences end with
 * COPRO_SEQ_ERROR).
 */
int copro_sched_step(struct copro_sched *s);

/*
 * Ends every sequence, waiting or running, with COPRO_SEQ_ERROR and code
 * (the device under them failed). Returns how many ended.
 */
uint32_t copro_sched_fail_all(struct copro_sched *s, int code);

/* Whether any sequence waits or runs. */
bool copro_sched_busy(const struct copro_sched *s);

void copro_sched_stats(const struct copro_sched *s, struct copro_sched_stats *st);

/* The KV pool (tests: idle counts, invariants). */
struct copro_kvc *copro_sched_kvc(struct copro_sched *s);

#endif
