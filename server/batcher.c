// SPDX-License-Identifier: MIT
/*
 * batcher.c - the worker of a tensor model: order, batch, run, hand back.
 */
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <time.h>
#include <unistd.h>

#include "admit.h"
#include "batcher.h"
#include "copro_abi.h"
#include "log.h"
#include "registry.h"
#include "ring.h"
#include "tmodel.h"

#define WORKER_SPIN_NS	20000ULL	/* spin this long before sleeping when idle */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static void wake(int efd)
{
	static const uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("batcher eventfd: %s", strerror(errno));
}

/* ---- poller side -------------------------------------------------------------- */

struct copro_job *copro_batcher_job_get(struct copro_batcher *b)
{
	struct copro_job *job = b->free_list;

	if (job)
		b->free_list = job->next;
	return job;
}

void copro_batcher_job_put(struct copro_batcher *b, struct copro_job *job)
{
	atomic_store_explicit(&job->state, COPRO_JOB_FREE, memory_order_relaxed);
	job->next = b->free_list;
	b->free_list = job;
}

void copro_batcher_submit(struct copro_batcher *b, struct copro_job *job)
{
	jring_push(&b->in, job);
	/* Pairs with the worker's fence between setting worker_sleeping and re-checking. */
	copro_fence();
	if (atomic_load_explicit(&b->worker_sleeping, memory_order_relaxed))
		wake(b->efd);
}

uint32_t copro_batcher_reap(struct copro_batcher *b, struct copro_job **out, uint32_t max)
{
	uint32_t n = 0;

	while (n < max && (out[n] = jring_pop(&b->done)))
		n++;
	return n;
}

void copro_batcher_stage(struct copro_batcher *b, struct copro_job *job)
{
	atomic_store_explicit(&job->state, COPRO_JOB_QUEUED, memory_order_relaxed);
	b->staged[b->n_staged++] = job;
}

/* Claims a queued job to run; 0 if it was cancelled first (its result is set). */
static int claim(struct copro_job *job)
{
	uint32_t expect = COPRO_JOB_QUEUED;

	if (atomic_compare_exchange_strong(&job->state, &expect, COPRO_JOB_RUNNING))
		return 1;
	job->res = COPRO_E_CANCELLED;
	return 0;
}

int copro_batcher_cancel(struct copro_batcher *b, const struct copro_session *s,
			 uint64_t user_data)
{
	for (uint32_t i = 0; i < b->depth; i++) {
		struct copro_job *job = &b->pool[i];
		uint32_t expect = COPRO_JOB_QUEUED;

		if (job->s != s || job->sqe.user_data != user_data ||
		    atomic_load_explicit(&job->state, memory_order_relaxed) != COPRO_JOB_QUEUED)
			continue;
		if (atomic_compare_exchange_strong(&job->state, &expect, COPRO_JOB_CANCELLED)) {
			/* Let the worker hand it back now, not when its batch would run. */
			copro_fence();
			if (atomic_load_explicit(&b->worker_sleeping, memory_order_relaxed))
				wake(b->efd);
			return 1;
		}
	}
	return 0;
}

static int runs_before(const struct copro_job *a, const struct copro_job *b);
static void run_rows(struct copro_batcher *b, struct copro_job **jobs, uint32_t n,
		     uint32_t rows, uint64_t now);

uint32_t copro_batcher_flush(struct copro_batcher *b)
{
	uint32_t n = b->n_staged, n_all = n, start = 0, rows = 0, i;
	uint32_t expect = 0;
	uint64_t now;

	if (!n)
		return 0;
	b->n_staged = 0;
	if (b->max_delay_ns || !jring_empty(&b->in) ||
	    atomic_load_explicit(&b->held, memory_order_acquire) ||
	    !atomic_compare_exchange_strong(&b->busy, &expect, 1)) {
		for (i = 0; i < n; i++)
			copro_batcher_submit(b, b->staged[i]);
		return 0;
	}
	/* Priority, then deadline, then arrival, as the worker would order them. */
	for (i = 1; i < n; i++) {
		struct copro_job *job = b->staged[i];
		uint32_t k = i;

		while (k > 0 && runs_before(job, b->staged[k - 1])) {
			b->staged[k] = b->staged[k - 1];
			k--;
		}
		b->staged[k] = job;
	}
	/* Jobs cancelled in this same pass complete as such, unrun. */
	for (i = 0; i < n; i++)
		b->ran[i] = b->staged[i];
	for (i = start = 0; i < n; i++)
		if (claim(b->staged[i]))
			b->staged[start++] = b->staged[i];
	n = start;
	now = now_ns();
	for (i = start = 0; i < n; i++) {
		if (rows + b->staged[i]->rows > b->max_batch) {
			run_rows(b, b->staged + start, i - start, rows, now);
			start = i;
			rows = 0;
			now = now_ns();
		}
		rows += b->staged[i]->rows;
	}
	run_rows(b, b->staged + start, n - start, rows, now);
	atomic_store_explicit(&b->busy, 0, memory_order_release);
	return n_all;
}

int copro_batcher_has_done(struct copro_batcher *b)
{
	return !jring_empty(&b->done);
}

/* ---- worker ---------------------------------------------------------------------- */

/* Whether a runs before b: higher priority, then earlier deadline, then older. */
static int runs_before(const struct copro_job *a, const struct copro_job *b)
{
	uint64_t da = a->sqe.deadline_ns ? a->sqe.deadline_ns : UINT64_MAX;
	uint64_t db = b->sqe.deadline_ns ? b->sqe.deadline_ns : UINT64_MAX;

	if (a->sqe.priority != b->sqe.priority)
		return a->sqe.priority > b->sqe.priority;
	if (da != db)
		return da < db;
	return a->admit_ns < b->admit_ns;
}

/* Moves everything from the in ring into the ordered pending list. */
static void take_new(struct copro_batcher *b)
{
	struct copro_job *job;

	while ((job = jring_pop(&b->in))) {
		uint32_t i = b->n_pending;

		/* Insertion from the back: arrivals are mostly in order already. */
		while (i > 0 && runs_before(job, b->pending[i - 1])) {
			b->pending[i] = b->pending[i - 1];
			i--;
		}
		b->pending[i] = job;
		b->n_pending++;
	}
	atomic_store_explicit(&b->held, b->n_pending, memory_order_release);
}

static void notify_poller(struct copro_batcher *b);

static void hand_back(struct copro_batcher *b, struct copro_job *job)
{
	if (!job->end_ns)
		job->end_ns = job->start_ns;
	jring_push(&b->done, job);
}

/* Hands back at once every pending job its client cancelled. */
static void drop_cancelled(struct copro_batcher *b)
{
	uint32_t k = 0, dropped = 0;

	for (uint32_t i = 0; i < b->n_pending; i++) {
		struct copro_job *job = b->pending[i];

		if (atomic_load_explicit(&job->state, memory_order_relaxed) == COPRO_JOB_CANCELLED) {
			job->res = COPRO_E_CANCELLED;
			job->start_ns = job->admit_ns;
			hand_back(b, job);
			dropped++;
		} else {
			b->pending[k++] = job;
		}
	}
	b->n_pending = k;
	if (dropped) {
		atomic_store_explicit(&b->held, k, memory_order_release);
		notify_poller(b);
	}
}

/* Wakes the poller if it sleeps; called once per batch. */
static void notify_poller(struct copro_batcher *b)
{
	/* Pairs with the poller's fence between setting its flag and checking done rings. */
	copro_fence();
	if (atomic_load_explicit(b->poller_sleeping, memory_order_relaxed))
		wake(b->poller_efd);
}

/* Whether the pending rows call for a batch now. */
static int batch_due(struct copro_batcher *b, uint64_t now, uint64_t *wait_ns)
{
	uint64_t rows = 0, oldest = UINT64_MAX;

	for (uint32_t i = 0; i < b->n_pending; i++) {
		rows += b->pending[i]->rows;
		if (b->pending[i]->admit_ns < oldest)
			oldest = b->pending[i]->admit_ns;
	}
	if (!b->max_delay_ns || rows >= b->max_batch)
		return 1;
	for (uint32_t i = 0; i < b->n_preferred; i++)
		if (rows == b->preferred[i])
			return 1;
	if (now - oldest >= b->max_delay_ns)
		return 1;
	*wait_ns = oldest + b->max_delay_ns - now;
	return 0;
}

/* Runs one batch from the front of the pending list. */
static void run_batch(struct copro_batcher *b, uint64_t now)
{
	struct copro_job **batch = b->batch;
	uint32_t n = 0, rows = 0, i;

	for (i = 0; i < b->n_pending; i++) {
		struct copro_job *job = b->pending[i];

		if (job->sqe.deadline_ns && now > job->sqe.deadline_ns) {
			/* Late already: refuse at once, the caller can fall back. */
			if (claim(job))
				job->res = COPRO_E_DEADLINE;	/* else it stays cancelled */
			job->start_ns = now;
			hand_back(b, job);
			stat_add(&b->expired, 1);
			continue;
		}
		if (rows + job->rows > b->max_batch)
			break;	/* keep the order: the next batch starts here */
		job->start_ns = now;
		if (!claim(job)) {
			hand_back(b, job);	/* cancelled while queued */
			continue;
		}
		batch[n++] = job;
		rows += job->rows;
	}
	/* Everything before i was run or refused; the rest stays in order. */
	memmove(b->pending, b->pending + i, (b->n_pending - i) * sizeof(*b->pending));
	b->n_pending -= i;
	if (n) {
		uint32_t expect = 0;

		/* The poller may be running a pass's batch inline: take turns. */
		while (!atomic_compare_exchange_weak(&b->busy, &expect, 1))
			expect = 0;
		run_rows(b, batch, n, rows, now);
		atomic_store_explicit(&b->busy, 0, memory_order_release);
		for (uint32_t j = 0; j < n; j++)
			hand_back(b, batch[j]);
	}
	atomic_store_explicit(&b->held, b->n_pending, memory_order_release);
	notify_poller(b);
}

/* Runs one batch of rows over jobs[0..n); the caller holds b->busy. */
static void run_rows(struct copro_batcher *b, struct copro_job **jobs, uint32_t n,
		     uint32_t rows, uint64_t now)
{
	uint64_t end;

	if (!n)
		return;
	for (uint32_t j = 0; j < n; j++)
		jobs[j]->start_ns = now;
	copro_tmodel_run(b->tm, jobs, n, rows);
	end = now_ns();
	for (uint32_t j = 0; j < n; j++)
		jobs[j]->end_ns = end;
	/* Two writers (worker, and the poller inline): a locked add, once per batch. */
	atomic_fetch_add_explicit(&b->batches, 1, memory_order_relaxed);
	atomic_fetch_add_explicit(&b->rows, rows, memory_order_relaxed);
}

/* Sleeps until the poller pushes a job or timeout_ns passes (0: no timeout). */
static void worker_sleep(struct copro_batcher *b, uint64_t timeout_ns)
{
	struct pollfd pfd = { .fd = b->efd, .events = POLLIN };
	struct timespec ts = { .tv_sec = (time_t)(timeout_ns / 1000000000ULL),
			       .tv_nsec = (long)(timeout_ns % 1000000000ULL) };
	uint64_t sink;

	atomic_store_explicit(&b->worker_sleeping, 1, memory_order_relaxed);
	/* Pairs with copro_batcher_submit()'s fence: no lost wake-up. */
	copro_fence();
	if (jring_empty(&b->in) && !atomic_load(&b->stop))
		ppoll(&pfd, 1, timeout_ns ? &ts : NULL, NULL);	/* ns, not poll()'s ms */
	atomic_store_explicit(&b->worker_sleeping, 0, memory_order_relaxed);
	if (read(b->efd, &sink, sizeof(sink)) < 0) {
		/* EAGAIN: woken by the timeout, nothing to drain */
	}
}

static void *worker_main(void *arg)
{
	struct copro_batcher *b = arg;
	uint64_t idle_since = 0;

	/* max_delay_us is a promise in microseconds: no 50 us default timer slack. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0, 0, 0);

	for (;;) {
		uint64_t now, wait_ns = 0;

		take_new(b);
		drop_cancelled(b);
		if (!b->n_pending) {
			if (atomic_load_explicit(&b->stop, memory_order_acquire) &&
			    jring_empty(&b->in))
				break;
			now = now_ns();
			if (!idle_since)
				idle_since = now;
			if (now - idle_since < WORKER_SPIN_NS)
				continue;
			worker_sleep(b, 0);
			idle_since = 0;
			continue;
		}
		idle_since = 0;
		now = now_ns();
		if (batch_due(b, now, &wait_ns) || atomic_load(&b->stop)) {
			run_batch(b, now);
			continue;
		}
		/* Not due: spin through short waits, sleep through long ones. */
		if (wait_ns > 2 * WORKER_SPIN_NS)
			worker_sleep(b, wait_ns);
	}
	return NULL;
}

int copro_batcher_start(struct copro_batcher **out, struct copro_model *m,
			const struct copro_model_config *mc, int poller_efd,
			_Atomic uint32_t *poller_sleeping)
{
	struct copro_batcher *b = calloc(1, sizeof(*b));
	int ret = -ENOMEM;

	if (!b)
		return -ENOMEM;
	b->model = m;
	b->tm = m->tm;
	b->max_batch = mc->max_batch;
	b->max_delay_ns = (uint64_t)mc->max_delay_us * 1000ULL;
	b->n_preferred = mc->n_preferred;
	memcpy(b->preferred, mc->preferred, sizeof(b->preferred));
	b->depth = mc->queue_depth;
	b->poller_efd = poller_efd;
	b->poller_sleeping = poller_sleeping;
	b->efd = -1;
	if (jring_init(&b->in, b->depth) || jring_init(&b->done, b->depth))
		goto fail;
	b->pool = calloc(b->depth, sizeof(*b->pool));
	b->pending = calloc(b->depth, sizeof(*b->pending));
	b->batch = calloc(b->depth, sizeof(*b->batch));
	b->staged = calloc(b->depth, sizeof(*b->staged));
	b->ran = calloc(b->depth, sizeof(*b->ran));
	if (!b->pool || !b->pending || !b->batch || !b->staged || !b->ran)
		goto fail;
	if (mc->cache_mib) {
		/* Private copies for the cache: every job's inputs and outputs. */
		uint64_t per = (b->tm->in_max + b->tm->out_max + 63) & ~63ULL;

		b->priv = aligned_alloc(64, per * b->depth);
		if (!b->priv)
			goto fail;
		for (uint32_t i = 0; i < b->depth; i++)
			b->pool[i].priv = b->priv + per * i;
	}
	for (uint32_t i = 0; i < b->depth; i++)
		copro_batcher_job_put(b, &b->pool[i]);
	b->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (b->efd < 0) {
		ret = -errno;
		goto fail;
	}
	snprintf(b->placed.kind, sizeof(b->placed.kind), "batcher");
	ret = copro_place_spawn(&b->thread, &m->place, "copro-batch", &b->placed, worker_main, b);
	if (ret)
		goto fail;
	*out = b;
	return 0;
fail:
	if (b->efd >= 0)
		close(b->efd);
	free(b->in.slot);
	free(b->done.slot);
	free(b->pool);
	free(b->pending);
	free(b->batch);
	free(b->staged);
	free(b->ran);
	free(b->priv);
	free(b);
	return ret;
}

void copro_batcher_join(struct copro_batcher *b)
{
	if (b->joined)
		return;
	atomic_store_explicit(&b->stop, 1, memory_order_release);
	wake(b->efd);
	pthread_join(b->thread, NULL);
	b->joined = 1;
}

void copro_batcher_stop(struct copro_batcher *b)
{
	if (!b)
		return;
	copro_batcher_join(b);
	close(b->efd);
	free(b->in.slot);
	free(b->done.slot);
	free(b->pool);
	free(b->pending);
	free(b->batch);
	free(b->staged);
	free(b->ran);
	free(b->priv);
	free(b);
}
