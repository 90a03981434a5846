// SPDX-License-Identifier: MIT
/*
 * poller.c - drains submission rings, runs admitted work, posts completions.
 */
#include <errno.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "admit.h"
#include "config.h"
#include "copro_abi.h"
#include "log.h"
#include "poller.h"
#include "registry.h"
#include "session.h"
#include "batcher.h"
#include "tmodel.h"
#include "cache.h"
#include "llm.h"

#define POLLER_ADD	1
#define POLLER_REMOVE	2

/* io_uring user_data tags; a session's doorbell poll is TAG_SESSION + its id. */
#define TAG_CMD		1
#define TAG_WAKE	2
#define TAG_REMOVE	3
#define TAG_SESSION	16

#define PASS_BUDGET	64	/* most entries taken from one ring per pass */
#define PUBLISH_EVERY	16	/* completions published in chunks of this many */
#define URING_ENTRIES	1024

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

/*
 * Adds to a statistics counter. The poller is the only writer of every
 * counter it keeps, so a relaxed load and store do (no locked add on the
 * hot path); readers on other threads see a recent value.
 */
static inline void stat_add(_Atomic uint64_t *c, uint64_t n)
{
	atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
			      memory_order_relaxed);
}

static uint32_t sat32(uint64_t v)
{
	return v > UINT32_MAX ? UINT32_MAX : (uint32_t)v;
}

/* Gets an SQE, flushing the ring to the kernel once if it is full. */
static struct io_uring_sqe *get_sqe(struct copro_poller *p)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&p->ring);

	if (!sqe) {
		io_uring_submit(&p->ring);
		p->wakes_queued = 0;
		sqe = io_uring_get_sqe(&p->ring);
	}
	return sqe;
}

static void arm_cmd_read(struct copro_poller *p)
{
	static uint64_t sink;
	struct io_uring_sqe *sqe = get_sqe(p);

	if (!sqe)
		return;
	io_uring_prep_read(sqe, p->efd, &sink, sizeof(sink), 0);
	io_uring_sqe_set_data64(sqe, TAG_CMD);
}

static void arm_doorbell(struct copro_poller *p, struct copro_session *s)
{
	struct io_uring_sqe *sqe = get_sqe(p);

	if (!sqe)
		return;
	io_uring_prep_poll_multishot(sqe, s->sq_efd, POLLIN);
	io_uring_sqe_set_data64(sqe, TAG_SESSION + s->id);
}

static void mark_broken(struct copro_poller *p, struct copro_session *s, const char *why)
{
	static const uint64_t one = 1;

	if (atomic_exchange(&s->broken, 1))
		return;
	__atomic_store_n(&s->sb->sq_flags, COPRO_SQ_BROKEN, __ATOMIC_RELEASE);
	log_warn("client %llu (pid %d): %s; disconnecting it",
		 (unsigned long long)s->id, (int)s->pid, why);
	if (write(p->notify_efd, &one, sizeof(one)) < 0)
		log_err("notify eventfd: %s", strerror(errno));
}

/* ---- executing one entry -------------------------------------------------- */

/*
 * Runs one submission (a private copy) and fills the completion. Everything
 * the entry points at is validated by copro_admit() before it is used.
 */
/*
 * Copies a job's inputs out of the client's arena into its private buffer,
 * keys them, and on a cache hit copies the stored outputs into the client's
 * output tensors. Returns 1 on a hit (the model does not run).
 */
static int cache_hit(struct copro_model *m, struct copro_job *q, uint8_t *arena)
{
	const uint8_t *out;
	size_t in_len = 0, out_len;

	for (uint32_t i = 0; i < q->sqe.n_in; i++) {
		memcpy(q->priv + in_len, arena + q->desc[i].offset, q->desc[i].length);
		in_len += q->desc[i].length;
	}
	q->key = copro_cache_key(m->cache, q->priv, in_len);
	out = copro_cache_get(m->cache, q->key, q->priv, in_len, &out_len);
	if (!out)
		return 0;
	for (uint32_t o = 0; o < q->sqe.n_out; o++)
		out_len -= q->desc[q->sqe.n_in + o].length;
	if (out_len)
		return 0;	/* cannot happen for one model version; never guess */
	for (uint32_t o = 0; o < q->sqe.n_out; o++) {
		const struct copro_tensor_desc *d = &q->desc[q->sqe.n_in + o];

		/* Same inputs, same model version: the same output shapes and bytes. */
		memcpy(arena + d->offset, out, d->length);
		out += d->length;
	}
	return 1;
}

/* Remembers the outputs of a finished job in its model's cache. */
static void cache_fill(struct copro_model *m, const struct copro_job *job)
{
	size_t in_len = 0, out_len = 0;

	for (uint32_t i = 0; i < job->sqe.n_in; i++)
		in_len += job->desc[i].length;
	for (uint32_t o = 0; o < job->sqe.n_out; o++)
		out_len += job->desc[job->sqe.n_in + o].length;
	copro_cache_put(m->cache, job->key, job->priv, in_len, job->priv + m->tm->in_max, out_len);
}

/* Queues a CQ doorbell write; they are all submitted at the end of the pass. */
static void queue_wake(struct copro_poller *p, struct copro_session *s)
{
	static const uint64_t one = 1;
	struct io_uring_sqe *sqe;

	if (s->wake_pending)
		return;	/* one doorbell per pass is enough */
	sqe = get_sqe(p);
	if (!sqe)
		return;
	s->wake_pending = 1;
	io_uring_prep_write(sqe, s->cq_efd, &one, sizeof(one), 0);
	io_uring_sqe_set_data64(sqe, TAG_WAKE);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	p->wakes_queued++;
}

/* ---- generation ------------------------------------------------------------------ */

/*
 * Queues an admitted GENERATE job to its model's worker. Returns 1 when
 * queued (its last completion comes from the worker), else the code to
 * complete it with now.
 */
static int gen_admit(struct copro_poller *p, struct copro_session *s, struct copro_job *job,
		     uint64_t now)
{
	struct copro_llm *l = job->model->llm;
	struct copro_gen_job *g;
	int ret;

	g = copro_llm_job_get(l);
	if (!g)
		return COPRO_E_OVERLOAD;	/* bounded queue: refuse at once */
	ret = copro_admit_gen_params(job, s->arena, &g->p);
	if (ret) {
		copro_llm_job_put(l, g);
		return ret;
	}
	g->sqe = job->sqe;
	memcpy(g->desc, job->desc, sizeof(g->desc));
	g->s = s;
	g->arena = s->arena;
	g->model = job->model;
	g->admit_ns = now;
	s->inflight++;
	job->model->inflight++;
	copro_llm_submit(l, g);
	return 1;
}

/* Cancels s's generation with user_data; returns whether there was one. */
static int llm_cancel(struct copro_llm *l, struct copro_session *s, uint64_t user_data)
{
	for (struct copro_gen_job *g = l->active; g; g = g->next) {
		if (g->s == s && g->sqe.user_data == user_data) {
			copro_llm_cancel(l, g);
			return 1;
		}
	}
	return 0;
}

/* Posts a completion to s's CQ (space was checked or reserved) and wakes it if it sleeps. */
static void post_cqe(struct copro_poller *p, struct copro_session *s, const struct copro_cqe *cqe)
{
	memcpy(copro_ring_prod_slot(&s->cq, 0), cqe, sizeof(*cqe));
	/* Release pairs with the client's acquire load of the CQ tail. */
	copro_ring_publish(&s->cq, 1);
	/* Pairs with the client's fence after setting WAITING. */
	copro_fence();
	if (__atomic_load_n(&s->sb->cq_flags, __ATOMIC_RELAXED) & COPRO_CQ_WAITING)
		queue_wake(p, s);
}

static int session_gone(const struct copro_session *s)
{
	return s->removed || atomic_load_explicit(&s->broken, memory_order_relaxed);
}

/*
 * Streams generation progress: a MORE completion for every job whose token
 * count moved, when its client's CQ has a slot beyond those reserved for
 * its requests' last completions (else the next pass posts the newer
 * count); then the last completion of every job the worker handed back.
 * Returns the completions posted.
 */
static uint32_t llm_pass(struct copro_poller *p, struct copro_model *m)
{
	struct copro_llm *l = m->llm;
	struct copro_gen_job *g;
	uint32_t work = 0;

	for (g = l->active; g; g = g->next) {
		/* Acquire pairs with the worker's release: the tokens are in the arena. */
		uint32_t n = atomic_load_explicit(&g->n_tok, memory_order_acquire);
		struct copro_session *s = g->s;
		struct copro_cqe cqe;

		if (n == g->posted || session_gone(s) ||
		    copro_ring_space(&s->cq, s->inflight + 1) <= s->inflight)
			continue;
		cqe = (struct copro_cqe){
			.user_data = g->sqe.user_data,
			.res = (int32_t)n,
			.flags = COPRO_CQE_F_MORE,
			.aux = atomic_load_explicit(&g->n_text, memory_order_acquire),
		};
		post_cqe(p, s, &cqe);
		g->posted = n;
		work++;
	}
	while ((g = copro_llm_reap(l))) {
		struct copro_session *s = g->s;

		if (!session_gone(s)) {
			struct copro_cqe cqe = {
				.user_data = g->sqe.user_data,
				.res = g->res,
				.aux = g->finish,
			};

			post_cqe(p, s, &cqe);
			if (g->res < 0)
				stat_add(&s->errors, 1);
			stat_add(&m->served, 1);
		}
		s->inflight--;
		m->inflight--;
		copro_llm_job_put(l, g);
		if (s->removed && !s->inflight)
			copro_session_free(s);
		work++;
	}
	return work;
}

/* Whether a language model has something for the poller: progress or a finished job. */
static int llm_has_work(struct copro_llm *l)
{
	if (copro_llm_has_done(l))
		return 1;
	/*
	 * Progress counts only where the client's CQ can take it: one that does
	 * not reap must not keep the poller spinning (the worker wakes us again
	 * with its next token or its end).
	 */
	for (struct copro_gen_job *g = l->active; g; g = g->next)
		if (atomic_load_explicit(&g->n_tok, memory_order_acquire) != g->posted &&
		    !session_gone(g->s) &&
		    copro_ring_space(&g->s->cq, g->s->inflight + 1) > g->s->inflight)
			return 1;
	return 0;
}

static int execute(struct copro_poller *p, struct copro_session *s,
		   const struct copro_sqe *copy, struct copro_cqe *cqe, uint64_t now)
{
	struct copro_job job, *q;
	int ret;

	cqe->user_data = copy->user_data;
	cqe->flags = 0;
	cqe->aux = 0;
	ret = copro_admit(copy, s->arena, s->lay.arena_size, p->reg, &job);
	if (ret) {
		if (job.model)
			stat_add(&job.model->failed, 1);
		stat_add(&s->errors, 1);
		cqe->res = ret;
		if (copy->opcode == COPRO_OP_GENERATE)
			cqe->aux = COPRO_FINISH_ERROR;	/* a generation's last completion */
		return 0;
	}
	switch (job.sqe.opcode) {
	case COPRO_OP_NOP:
		ret = 0;
		break;
	case COPRO_OP_CANCEL:
		/*
		 * Built-in models run to completion when admitted; a tensor-model
		 * job can be cancelled until a batch claims it.
		 */
		cqe->user_data = job.sqe.aux;
		cqe->flags = COPRO_CQE_F_NOTIF;
		ret = -ENOENT;
		for (uint32_t i = 0, n = copro_registry_slots(p->reg); i < n && ret; i++) {
			struct copro_model *m = copro_registry_live(p->reg, i);

			if (m && m->batcher && copro_batcher_cancel(m->batcher, s, job.sqe.aux))
				ret = 0;
			if (m && m->llm && llm_cancel(m->llm, s, job.sqe.aux))
				ret = 0;
		}
		break;
	case COPRO_OP_GENERATE:
		if (job.sqe.deadline_ns && now > job.sqe.deadline_ns) {
			ret = COPRO_E_DEADLINE;
			stat_add(&s->errors, 1);
			cqe->aux = COPRO_FINISH_ERROR;
			break;
		}
		ret = gen_admit(p, s, &job, now);
		if (ret == 1)
			return 1;	/* queued: the worker streams it */
		stat_add(&s->errors, 1);
		stat_add(&job.model->failed, 1);
		cqe->aux = COPRO_FINISH_ERROR;
		break;
	default:
		if (job.sqe.deadline_ns && now > job.sqe.deadline_ns) {
			ret = COPRO_E_DEADLINE;
			stat_add(&s->errors, 1);
			break;
		}
		if (job.model->batcher) {
			q = copro_batcher_job_get(job.model->batcher);
			if (!q) {
				/* Bounded queue: refuse at once rather than late. */
				ret = COPRO_E_OVERLOAD;
				stat_add(&s->errors, 1);
				break;
			}
			q->sqe = job.sqe;
			memcpy(q->desc, job.desc,
			       ((size_t)job.sqe.n_in + job.sqe.n_out) * sizeof(job.desc[0]));
			q->model = job.model;
			q->s = s;
			q->arena = s->arena;
			q->res = 0;
			q->rows = copro_tmodel_rows(&job);
			q->admit_ns = now;
			q->start_ns = q->end_ns = 0;
			if (job.model->cache && cache_hit(job.model, q, s->arena)) {
				copro_batcher_job_put(job.model->batcher, q);
				stat_add(&job.model->served, 1);
				ret = 0;
				break;
			}
			s->inflight++;
			job.model->inflight++;
			/* Batched with what else this pass admits: see flush_staged(). */
			copro_batcher_stage(job.model->batcher, q);
			return 1;
		}
		ret = job.model->run(job.model, &job, s->arena);
		stat_add(&job.model->served, 1);
		break;
	}
	cqe->res = ret;
	return 0;
}


/*
 * Serves one session: takes as many entries as are ready and as the CQ has
 * room for (back-pressure: an entry is never taken without a completion slot
 * for it, so nothing is dropped), runs them, publishes their completions and
 * wakes the client if it sleeps. Returns the number of entries taken.
 */
static uint32_t serve(struct copro_poller *p, struct copro_session *s)
{
	uint32_t ready, space, n, done, k, i;
	uint64_t now, t0, t1;

	if (atomic_load_explicit(&s->broken, memory_order_relaxed))
		return 0;
	ready = copro_ring_ready(&s->sq);
	if (ready == UINT32_MAX) {
		mark_broken(p, s, "SQ tail moved more than a ring ahead");
		return 0;
	}
	if (!ready)
		return 0;
	n = ready < PASS_BUDGET ? ready : PASS_BUDGET;
	/* Every taken entry, queued or not, owns a CQ slot until it completes. */
	space = copro_ring_space(&s->cq, n + s->inflight);
	space = space > s->inflight ? space - s->inflight : 0;
	if (space < n)
		n = space;
	if (!n)
		return 0;
	now = t0 = now_ns();
	/*
	 * Publish in chunks, so a client reaping a deep queue works on the
	 * first completions while we produce the next ones.
	 */
	for (done = 0; done < n; done += k) {
		uint32_t made = 0;

		k = n - done < PUBLISH_EVERY ? n - done : PUBLISH_EVERY;
		for (i = 0; i < k; i++) {
			struct copro_sqe copy;
			struct copro_cqe cqe;

			/* Copy first: the client may rewrite the slot while we look at it. */
			memcpy(&copy, copro_ring_cons_slot(&s->sq, i), sizeof(copy));
			if (execute(p, s, &copy, &cqe, t0))
				continue;	/* queued: its worker completes it */
			t1 = now_ns();
			cqe.queue_ns = sat32(t0 - now);
			cqe.exec_ns = sat32(t1 - t0);
			t0 = t1;
			memcpy(copro_ring_prod_slot(&s->cq, made++), &cqe, sizeof(cqe));
		}
		/* Release pairs with the client's acquire load of the SQ head. */
		copro_ring_release(&s->sq, k);
		/* Release pairs with the client's acquire load of the CQ tail. */
		if (made)
			copro_ring_publish(&s->cq, made);
	}
	stat_add(&s->served, n);
	stat_add(&p->completed, n);
	/* Pairs with the client's fence between setting WAITING and re-checking. */
	copro_fence();
	if (__atomic_load_n(&s->sb->cq_flags, __ATOMIC_RELAXED) & COPRO_CQ_WAITING)
		queue_wake(p, s);
	return n;
}

/* ---- commands from the event loop ------------------------------------------- */

static void remove_session(struct copro_poller *p, struct copro_session *s)
{
	struct io_uring_sqe *sqe;

	for (uint32_t i = 0; i < p->n_sessions; i++) {
		if (p->sessions[i] != s)
			continue;
		p->sessions[i] = p->sessions[--p->n_sessions];
		break;
	}
	sqe = get_sqe(p);
	if (sqe) {
		io_uring_prep_poll_remove(sqe, TAG_SESSION + s->id);
		io_uring_sqe_set_data64(sqe, TAG_REMOVE);
		sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
		/* The kernel holds its own file references: closing below is safe. */
		io_uring_submit(&p->ring);
	}
	if (s->inflight) {
		/* Workers still read and write its arena: free it with the last job. */
		s->removed = 1;
		/* Its generations end now; their KV blocks go back to the pool. */
		for (uint32_t i = 0, n = copro_registry_slots(p->reg); i < n; i++) {
			struct copro_model *m = copro_registry_live(p->reg, i);

			if (!m || !m->llm)
				continue;
			for (struct copro_gen_job *g = m->llm->active; g; g = g->next)
				if (g->s == s)
					copro_llm_cancel(m->llm, g);
		}
		return;
	}
	copro_session_free(s);
}

static void handle_cmds(struct copro_poller *p)
{
	struct copro_poller_cmd *cmds;
	uint32_t n;

	pthread_mutex_lock(&p->lock);
	cmds = p->cmds;
	n = p->n_cmds;
	p->cmds = NULL;
	p->n_cmds = p->cap_cmds = 0;
	atomic_store_explicit(&p->cmds_pending, 0, memory_order_relaxed);
	pthread_mutex_unlock(&p->lock);

	for (uint32_t i = 0; i < n; i++) {
		struct copro_session *s = cmds[i].s;

		if (cmds[i].op == POLLER_REMOVE) {
			remove_session(p, s);
			continue;
		}
		if (p->n_sessions == p->cap_sessions) {
			uint32_t cap = p->cap_sessions ? 2 * p->cap_sessions : 64;
			void *v = realloc(p->sessions, cap * sizeof(*p->sessions));

			if (!v) {
				log_err("out of memory adding client %llu", (unsigned long long)s->id);
				mark_broken(p, s, "out of memory");
				continue;
			}
			p->sessions = v;
			p->cap_sessions = cap;
		}
		p->sessions[p->n_sessions++] = s;
		arm_doorbell(p, s);
		/* We are awake and will pass over it: no doorbell needed now. */
		__atomic_store_n(&s->sb->sq_flags, 0, __ATOMIC_RELAXED);
	}
	free(cmds);
	io_uring_submit(&p->ring);
}

static int push_cmd(struct copro_poller *p, int op, struct copro_session *s)
{
	static const uint64_t one = 1;
	int ret = 0;

	pthread_mutex_lock(&p->lock);
	if (p->n_cmds == p->cap_cmds) {
		uint32_t cap = p->cap_cmds ? 2 * p->cap_cmds : 16;
		void *v = realloc(p->cmds, cap * sizeof(*p->cmds));

		if (!v) {
			ret = -ENOMEM;
			goto out;
		}
		p->cmds = v;
		p->cap_cmds = cap;
	}
	p->cmds[p->n_cmds++] = (struct copro_poller_cmd){ .op = op, .s = s };
	atomic_store_explicit(&p->cmds_pending, 1, memory_order_release);
out:
	pthread_mutex_unlock(&p->lock);
	if (!ret && write(p->efd, &one, sizeof(one)) < 0)
		ret = -errno;
	return ret;
}

int copro_poller_add(struct copro_poller *p, struct copro_session *s)
{
	return push_cmd(p, POLLER_ADD, s);
}

int copro_poller_remove(struct copro_poller *p, struct copro_session *s)
{
	return push_cmd(p, POLLER_REMOVE, s);
}

/* ---- the loop ----------------------------------------------------------------- */

/* Reaps our own io_uring completions without blocking. */
static void reap_uring(struct copro_poller *p)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;
	int rearm_cmd = 0;

	io_uring_for_each_cqe(&p->ring, head, cqe) {
		uint64_t tag = io_uring_cqe_get_data64(cqe);

		n++;
		if (tag == TAG_CMD) {
			rearm_cmd = 1;
		} else if (tag >= TAG_SESSION && !(cqe->flags & IORING_CQE_F_MORE) &&
			   cqe->res != -ECANCELED && cqe->res != -ENOENT) {
			/* A multishot poll ended on its own: re-arm it if the session lives. */
			for (uint32_t i = 0; i < p->n_sessions; i++)
				if (TAG_SESSION + p->sessions[i]->id == tag)
					arm_doorbell(p, p->sessions[i]);
		}
	}
	io_uring_cq_advance(&p->ring, n);
	if (rearm_cmd)
		arm_cmd_read(p);
}

/*
 * Sleeps until a client rings its SQ doorbell or a command arrives. The
 * NEED_WAKEUP flags go up first, then a full fence, then one more look at
 * every ring: a client that published before our look is seen now, one that
 * publishes after it sees the flag and rings (see copro_fence()).
 */
static void sleep_on_doorbells(struct copro_poller *p)
{
	int work = 0;

	for (uint32_t i = 0; i < p->n_sessions; i++) {
		struct copro_session *s = p->sessions[i];

		if (!atomic_load_explicit(&s->broken, memory_order_relaxed))
			__atomic_store_n(&s->sb->sq_flags, COPRO_SQ_NEED_WAKEUP, __ATOMIC_RELAXED);
	}
	atomic_store_explicit(&p->sleeping, 1, memory_order_relaxed);
	copro_fence();
	for (uint32_t i = 0, n = copro_registry_slots(p->reg); i < n && !work; i++) {
		struct copro_model *m = copro_registry_live(p->reg, i);

		work = m && ((m->batcher && copro_batcher_has_done(m->batcher)) ||
			     (m->llm && llm_has_work(m->llm)));
	}
	for (uint32_t i = 0; i < p->n_sessions && !work; i++) {
		struct copro_session *s = p->sessions[i];

		/*
		 * Work is an entry we can take now. Entries waiting behind a full
		 * CQ are not: the client rings when it reaps with entries still
		 * queued and NEED_WAKEUP set (see reap_ring() in libcopro).
		 */
		if (atomic_load_explicit(&s->broken, memory_order_relaxed))
			continue;
		work = copro_load_acquire(s->sq.tail) != s->sq.local &&
		       copro_ring_space(&s->cq, 1) > 0;
	}
	if (!work && !atomic_load(&p->cmds_pending) && !atomic_load(&p->stop)) {
		stat_add(&p->sleeps, 1);
		io_uring_submit_and_wait(&p->ring, 1);
	}
	atomic_store_explicit(&p->sleeping, 0, memory_order_relaxed);
	for (uint32_t i = 0; i < p->n_sessions; i++) {
		struct copro_session *s = p->sessions[i];

		if (!atomic_load_explicit(&s->broken, memory_order_relaxed))
			__atomic_store_n(&s->sb->sq_flags, 0, __ATOMIC_RELAXED);
	}
}

/*
 * Writes the completions of jobs the workers finished. Space for each was
 * reserved when it was taken, so the CQ cannot be full here. A session the
 * loop has let go of gets no completion and is freed with its last job.
 */
static void post_job(struct copro_poller *p, struct copro_batcher *b, struct copro_job *job)
{
	struct copro_session *s = job->s;

	if (job->model->cache && job->res == 0)
		cache_fill(job->model, job);
	if (!s->removed && !atomic_load_explicit(&s->broken, memory_order_relaxed)) {
		struct copro_cqe cqe = {
			.user_data = job->sqe.user_data,
			.res = job->res,
			.queue_ns = sat32(job->start_ns - job->admit_ns),
			.exec_ns = sat32(job->end_ns - job->start_ns),
		};

		memcpy(copro_ring_prod_slot(&s->cq, 0), &cqe, sizeof(cqe));
		/* Release pairs with the client's acquire load of the CQ tail. */
		copro_ring_publish(&s->cq, 1);
		if (job->res < 0)
			stat_add(&s->errors, 1);
		stat_add(&job->model->served, 1);
		/* Pairs with the client's fence after setting WAITING. */
		copro_fence();
		if (__atomic_load_n(&s->sb->cq_flags, __ATOMIC_RELAXED) & COPRO_CQ_WAITING)
			queue_wake(p, s);
	}
	s->inflight--;
	job->model->inflight--;
	copro_batcher_job_put(b, job);
	if (s->removed && !s->inflight)
		copro_session_free(s);
}

static uint32_t reap_jobs(struct copro_poller *p)
{
	struct copro_job *jobs[64];
	uint32_t total = 0;

	for (uint32_t i = 0, slots = copro_registry_slots(p->reg); i < slots; i++) {
		struct copro_model *m = copro_registry_live(p->reg, i);
		struct copro_batcher *b = m ? m->batcher : NULL;
		uint32_t n;

		if (!b)
			continue;
		while ((n = copro_batcher_reap(b, jobs, 64))) {
			for (uint32_t j = 0; j < n; j++)
				post_job(p, b, jobs[j]);
			total += n;
		}
	}
	return total;
}

/*
 * Hands over what this pass admitted for each tensor model: run at once as
 * one batch when the model's worker is idle (and no delay is configured),
 * else queued to the worker.
 */
static void flush_staged(struct copro_poller *p)
{
	for (uint32_t i = 0, slots = copro_registry_slots(p->reg); i < slots; i++) {
		struct copro_model *m = copro_registry_live(p->reg, i);
		struct copro_batcher *b = m ? m->batcher : NULL;
		uint32_t n;

		if (!b || !b->n_staged)
			continue;
		n = copro_batcher_flush(b);
		for (uint32_t j = 0; j < n; j++)
			post_job(p, b, b->ran[j]);
	}
}

/*
 * Retires the versions that drain and have no job left: nothing can route
 * a request to them any more (see registry.h), so the event loop may free
 * them. It learns through its notify eventfd.
 */
static void retire_drained(struct copro_poller *p)
{
	static const uint64_t one = 1;

	for (uint32_t i = 0, slots = copro_registry_slots(p->reg); i < slots; i++) {
		struct copro_model *m = &p->reg->models[i];

		/* Acquire pairs with route()'s release: no new request reaches m. */
		if (atomic_load_explicit(&m->state, memory_order_acquire) != COPRO_MODEL_DRAINING ||
		    m->inflight || (m->batcher && m->batcher->n_staged))
			continue;
		/* Release: the loop that sees RETIRED sees us done with m. */
		atomic_store_explicit(&m->state, COPRO_MODEL_RETIRED, memory_order_release);
		if (write(p->notify_efd, &one, sizeof(one)) < 0)
			log_err("notify eventfd: %s", strerror(errno));
	}
}

static uint32_t pass(struct copro_poller *p)
{
	uint32_t work = 0;

	work += reap_jobs(p);
	for (uint32_t i = 0; i < p->n_sessions; i++)
		work += serve(p, p->sessions[i]);
	flush_staged(p);
	for (uint32_t i = 0, n = copro_registry_slots(p->reg); i < n; i++) {
		struct copro_model *m = copro_registry_live(p->reg, i);

		if (m && m->llm)
			work += llm_pass(p, m);
	}
	retire_drained(p);
	if (p->wakes_queued) {
		io_uring_submit(&p->ring);
		stat_add(&p->wakeups_sent, p->wakes_queued);
		p->wakes_queued = 0;
		for (uint32_t i = 0; i < p->n_sessions; i++)
			p->sessions[i]->wake_pending = 0;
	}
	stat_add(&p->passes, 1);
	return work;
}

static void *poller_main(void *arg)
{
	struct copro_poller *p = arg;
	uint64_t idle_since = 0;

	arm_cmd_read(p);
	io_uring_submit(&p->ring);
	for (;;) {
		uint32_t idle;
		uint64_t now;

		if (atomic_load_explicit(&p->cmds_pending, memory_order_acquire))
			handle_cmds(p);
		if (atomic_load_explicit(&p->stop, memory_order_acquire)) {
			pass(p);	/* work already submitted finishes */
			break;
		}
		if (pass(p)) {
			idle_since = 0;
			continue;
		}
		if (*p->ring.cq.ktail != *p->ring.cq.khead)
			reap_uring(p);
		idle = atomic_load_explicit(&p->idle, memory_order_relaxed);
		if (idle == COPRO_IDLE_SRV_SPIN) {
			cpu_relax();
			continue;
		}
		now = now_ns();
		if (!idle_since)
			idle_since = now;
		if (now - idle_since < atomic_load_explicit(&p->spin_ns, memory_order_relaxed)) {
			cpu_relax();
			continue;
		}
		if (idle == COPRO_IDLE_SRV_YIELD) {
			sched_yield();
			continue;
		}
		sleep_on_doorbells(p);
		reap_uring(p);
		idle_since = 0;
	}
	return NULL;
}

int copro_poller_start(struct copro_poller *p, struct copro_registry *reg, uint32_t idle,
		       uint32_t spin_us, int notify_efd, const struct copro_place *place)
{
	int ret;

	memset(p, 0, sizeof(*p));
	p->reg = reg;
	p->notify_efd = notify_efd;
	p->place = *place;
	snprintf(p->placed.kind, sizeof(p->placed.kind), "poller");
	atomic_store(&p->idle, idle);
	atomic_store(&p->spin_ns, spin_us * 1000U);
	pthread_mutex_init(&p->lock, NULL);
	p->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (p->efd < 0)
		return -errno;
	ret = io_uring_queue_init(URING_ENTRIES, &p->ring, 0);
	if (ret < 0) {
		close(p->efd);
		return ret;
	}
	ret = copro_place_spawn(&p->thread, &p->place, "copro-poller", &p->placed, poller_main, p);
	if (ret) {
		io_uring_queue_exit(&p->ring);
		close(p->efd);
	}
	return ret;
}

int copro_poller_model_start(struct copro_poller *p, struct copro_model *m)
{
	int ret;

	if (m->llm)
		return copro_llm_start(m->llm, p->efd, &p->sleeping);
	ret = copro_batcher_start(&m->batcher, m, &m->cfg, p->efd, &p->sleeping);
	if (ret)
		return ret;
	if (m->cfg.cache_mib) {
		/* Keyed by handle and version: a new version never hits the old's. */
		m->cache = copro_cache_new((uint64_t)m->cfg.cache_mib << 20,
					   ((uint64_t)m->handle << 32) | m->version);
		if (!m->cache) {
			copro_poller_model_stop(m);
			return -ENOMEM;
		}
	}
	return 0;
}

void copro_poller_model_stop(struct copro_model *m)
{
	copro_llm_join(m->llm);
	copro_batcher_stop(m->batcher);
	m->batcher = NULL;
	copro_cache_free(m->cache);
	m->cache = NULL;
}

void copro_poller_set_idle(struct copro_poller *p, uint32_t idle, uint32_t spin_us)
{
	static const uint64_t one = 1;

	atomic_store(&p->idle, idle);
	atomic_store(&p->spin_ns, spin_us * 1000U);
	if (write(p->efd, &one, sizeof(one)) < 0)
		log_err("poller eventfd: %s", strerror(errno));
}

void copro_poller_stop(struct copro_poller *p)
{
	static const uint64_t one = 1;

	atomic_store_explicit(&p->stop, 1, memory_order_release);
	if (write(p->efd, &one, sizeof(one)) < 0)
		log_err("poller eventfd: %s", strerror(errno));
	pthread_join(p->thread, NULL);
	/* Commands that raced with the stop still hand over sessions to free. */
	handle_cmds(p);
	/* Workers finish what they hold and their completions go out. */
	for (uint32_t i = 0, n = copro_registry_slots(p->reg); i < n; i++) {
		if (p->reg->models[i].batcher)
			copro_batcher_join(p->reg->models[i].batcher);
		/* Generations still running end as cancelled and come back. */
		copro_llm_join(p->reg->models[i].llm);
	}
	reap_jobs(p);
	for (uint32_t i = 0, n = copro_registry_slots(p->reg); i < n; i++) {
		struct copro_model *m = copro_registry_live(p->reg, i);

		if (m && m->llm)
			llm_pass(p, m);
	}
	for (uint32_t i = 0, n = copro_registry_slots(p->reg); i < n; i++)
		copro_poller_model_stop(&p->reg->models[i]);
	for (uint32_t i = 0; i < p->n_sessions; i++)
		copro_session_free(p->sessions[i]);
	free(p->sessions);
	io_uring_queue_exit(&p->ring);
	close(p->efd);
	pthread_mutex_destroy(&p->lock);
}
