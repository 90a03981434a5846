/* SPDX-License-Identifier: MIT */
/*
 * llm.h - a language model served by coprod: its worker thread, which owns
 * the continuous-batching scheduler and the KV pool, and the generation
 * jobs the poller hands it.
 *
 * The poller admits a COPRO_OP_GENERATE entry into a job from the model's
 * pool and pushes it to the worker. The worker tokenizes the prompt, runs
 * forward steps, and for every token writes the id and its text straight
 * into the client's output tensors, then publishes the counts (release).
 * The poller, each pass, posts a MORE completion to a client whose counts
 * moved and whose CQ has room beyond the slots it reserved; the last
 * completion (its slot reserved at admission) comes when the worker hands
 * the finished job back. Cancel and a client's disconnect set the job's
 * cancel flag; the worker ends the sequence at its next step and its KV
 * blocks go back to the pool.
 */
#ifndef COPRO_LLM_H
#define COPRO_LLM_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "copro_abi.h"
#include "jring.h"
#include "llmsched.h"
#include "placement.h"

#define COPRO_NAME_MAX_LLM	64

struct copro_llama;
struct copro_llama_cuda;
struct copro_sched;
struct copro_seq;
struct copro_session;
struct copro_model;

struct copro_gen_job {
	struct copro_sqe sqe;				/* private copy */
	struct copro_tensor_desc desc[6];		/* prompt, params; tokens, text, result,
							 * and prompt_ids when n_out is 4 */
	struct copro_gen_params p;			/* private copy, checked */
	struct copro_session *s;
	uint8_t *arena;
	struct copro_model *model;
	uint64_t admit_ns;
	_Atomic uint32_t cancel;			/* set by the poller */
	_Atomic uint32_t n_tok;				/* published by the worker (release) */
	_Atomic uint32_t n_text;
	uint32_t posted;				/* poller: n_tok of the last MORE entry */
	int32_t res;					/* worker, before hand-back */
	uint32_t finish;
	uint8_t text_full;				/* worker: out[1] could not take a piece */
	struct copro_seq *seq;				/* worker */
	struct copro_gen_job *next, *prev;		/* poller: free list / active list */
};

struct copro_llm {
	struct copro_llama *m;
	struct copro_sched *sched;	/* the worker's */
	uint32_t depth;
	struct copro_jring in;		/* poller -> worker */
	struct copro_jring done;	/* worker -> poller */

	/* poller-private */
	struct copro_gen_job *pool;
	struct copro_gen_job *free_list;
	struct copro_gen_job *active;	/* admitted, not yet handed back */

	pthread_t thread;
	int efd;			/* wakes the worker */
	int started;
	_Atomic uint32_t stop;
	_Atomic uint32_t worker_sleeping;
	int poller_efd;
	_Atomic uint32_t *poller_sleeping;

	/* worker-private */
	struct copro_gen_job **live;	/* (depth) jobs the scheduler holds */
	uint32_t n_live;
	struct copro_gen_job **ended;	/* (depth) handed back after the step */
	uint32_t n_ended;

	/* published by the worker after each step, read by status */
	_Atomic uint32_t st_running, st_waiting;
	_Atomic uint64_t st_steps, st_tokens, st_generated, st_preemptions, st_finished;
	_Atomic uint32_t kv_total, kv_used, kv_cached, kv_free, kv_util_ppm;
	_Atomic uint64_t kv_hit_blocks, kv_q_blocks;
	uint32_t ctx;
	uint32_t block_tokens;

	struct copro_place place;	/* set by copro_llm_place() before the start */
	struct copro_placed placed;	/* what the worker's placement came to */
	char device[16];		/* "cpu" or "cuda:N" */
	char name[COPRO_NAME_MAX_LLM];	/* the model's, for the log */
	int fallback_cpu;		/* device = auto: a failed GPU hands over to the CPU */
	struct copro_llm_opts cpu_opts;	/* the scheduler's options on the CPU */
	_Atomic uint32_t degraded;	/* its device failed: requests are refused */
	struct copro_llama_cuda *cuda;	/* the GPU backend, or NULL */
	struct copro_llm_backend backend;
};

/* Whether path starts with the GGUF magic (a language model). */
int copro_llm_is_gguf(const char *path);

/*
 * Loads the GGUF model of mc and builds its scheduler and KV pool
 * (kv_cache_mib, block_tokens, max_batched_tokens, max_seqs, context,
 * queue_depth): on the CPU when device < 0, else on CUDA device `device`
 * (weights and KV pool in device memory; kv_cache_mib 0 there takes a share
 * of the free memory). Returns 0 or a negative code with a reason in err.
 */
int copro_llm_load(const struct copro_model_config *mc, int device, struct copro_llm **out,
		   char *err, size_t errlen);
/*
 * Places a loaded model before its worker starts: keeps p for the worker
 * and binds the KV pool's storage, untouched so far, to p's node. A bind
 * that fails is logged; the pool works wherever its pages land.
 */
void copro_llm_place(struct copro_llm *l, const struct copro_place *p);
/* Starts the worker; it wakes the poller through poller_efd when it sleeps. */
int copro_llm_start(struct copro_llm *l, int poller_efd, _Atomic uint32_t *poller_sleeping);
/* Stops the worker (jobs it holds end as cancelled and are handed back). */
void copro_llm_join(struct copro_llm *l);
void copro_llm_free(struct copro_llm *l);

/* ---- the poller's side ---- */

struct copro_gen_job *copro_llm_job_get(struct copro_llm *l);
void copro_llm_job_put(struct copro_llm *l, struct copro_gen_job *job);
/* Hands an admitted job to the worker and puts it on the active list. */
void copro_llm_submit(struct copro_llm *l, struct copro_gen_job *job);
/* Jobs the worker finished, in order; NULL when none. Takes them off the active list. */
struct copro_gen_job *copro_llm_reap(struct copro_llm *l);
int copro_llm_has_done(struct copro_llm *l);
/* Asks the worker to end a job (cancel, or its client went away). */
void copro_llm_cancel(struct copro_llm *l, struct copro_gen_job *job);

#endif
