/* SPDX-License-Identifier: MIT */
/*
 * batcher.h - dynamic batching for a tensor model: a worker thread that
 * gathers the requests of every client into batches.
 *
 * The poller admits a request, takes a job from the batcher's pool, fills
 * it and pushes it on the `in` ring; the worker orders what it has by
 * priority, then deadline, then arrival, and runs a batch when the rows
 * reach max_batch or a preferred size, or when the oldest request has waited
 * max_delay_us (at once when that is 0). Finished jobs go back on the `done`
 * ring, and the poller writes their completions: the poller stays the only
 * producer of every client's CQ. Both rings are single-producer
 * single-consumer in private memory; the pool is the poller's alone, and its
 * size bounds the queue (a full pool is COPRO_E_OVERLOAD, at once).
 */
#ifndef COPRO_BATCHER_H
#define COPRO_BATCHER_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "jring.h"
#include "placement.h"

struct copro_job;
struct copro_model;
struct copro_tmodel;

/* A single-producer single-consumer ring of job pointers. */

struct copro_batcher {
	struct copro_model *model;
	struct copro_tmodel *tm;
	uint32_t max_batch;
	uint64_t max_delay_ns;
	uint32_t n_preferred;
	uint32_t preferred[COPRO_CFG_MAX_PREFERRED];
	uint32_t depth;

	struct copro_jring in;		/* poller -> worker */
	struct copro_jring done;	/* worker -> poller */

	/* poller-private */
	struct copro_job *pool;
	struct copro_job *free_list;
	struct copro_job **staged;	/* admitted this pass, not yet handed over */
	uint32_t n_staged;
	struct copro_job **ran;		/* run inline by flush, to complete */
	uint8_t *priv;			/* the jobs' private copies (cache on) */

	_Atomic uint32_t busy;		/* whoever runs the plans holds this */
	_Atomic uint32_t held;		/* jobs the worker holds (published by it) */

	/* worker */
	pthread_t thread;
	int efd;			/* wakes the worker */
	_Atomic uint32_t worker_sleeping;
	_Atomic uint32_t stop;
	uint8_t joined;
	struct copro_job **pending;	/* worker-private, ordered */
	uint32_t n_pending;
	struct copro_job **batch;	/* worker-private: the batch being run */

	/* how the worker wakes the poller */
	int poller_efd;
	_Atomic uint32_t *poller_sleeping;

	struct copro_placed placed;	/* where the worker runs (its model's place) */

	/* statistics, written by the worker */
	_Atomic uint64_t batches, rows, expired;
};

/*
 * Creates the batcher of model m (whose tensor model is m->tm) and starts
 * its worker. poller_efd / poller_sleeping let the worker wake a sleeping
 * poller. Returns 0 or -errno.
 */
int copro_batcher_start(struct copro_batcher **out, struct copro_model *m,
			const struct copro_model_config *mc, int poller_efd,
			_Atomic uint32_t *poller_sleeping);
/* Stops the worker after it finished what it holds (its jobs wait on done). */
void copro_batcher_join(struct copro_batcher *b);
/* Joins if needed and frees everything; jobs still on done are dropped. */
void copro_batcher_stop(struct copro_batcher *b);

/* Poller: a free job, or NULL when depth jobs are outstanding. */
struct copro_job *copro_batcher_job_get(struct copro_batcher *b);
void copro_batcher_job_put(struct copro_batcher *b, struct copro_job *job);
/* Poller: queue a filled job (never fails: the pool bounds the ring). */
void copro_batcher_submit(struct copro_batcher *b, struct copro_job *job);
/* Poller: keep a filled job until copro_batcher_flush() at the end of the pass. */
void copro_batcher_stage(struct copro_batcher *b, struct copro_job *job);
/*
 * Poller, once per pass: hands the staged jobs over. With max_delay_us 0
 * and an idle worker, runs them right here as batches (no hand-off, no
 * wake-up: what one pass gathered from every client is the batch) and
 * returns how many it ran, in b->ran; otherwise queues them to the worker
 * and returns 0.
 */
uint32_t copro_batcher_flush(struct copro_batcher *b);
/*
 * Poller: cancels the queued job of session s with this user_data, if it has
 * not started. Returns 1 if it will complete with COPRO_E_CANCELLED, 0 if
 * there is no such job or it already runs.
 */
struct copro_session;
int copro_batcher_cancel(struct copro_batcher *b, const struct copro_session *s,
			 uint64_t user_data);
/* Poller: up to max finished jobs. */
uint32_t copro_batcher_reap(struct copro_batcher *b, struct copro_job **out, uint32_t max);
/* Poller, before sleeping: whether finished jobs wait (after its fence). */
int copro_batcher_has_done(struct copro_batcher *b);

#endif
