// SPDX-License-Identifier: MIT
/*
 * llm.c - a language model's worker: generation jobs in, forward steps,
 * tokens and text written straight into the clients' arenas (see llm.h).
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "llm.h"
#include "llmsched.h"
#include "log.h"
#include "registry.h"
#include "ring.h"
#include "llm/llama.h"
#include "llm/tokenizer.h"
#include "cuda/cuda.h"

#define WORKER_SPIN_NS	50000ULL
#define STATS_EVERY_NS	5000000ULL

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void wake(int efd)
{
	static const uint64_t one = 1;

	if (write(efd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		log_err("llm eventfd: %s", strerror(errno));
}

int copro_llm_is_gguf(const char *path)
{
	char magic[4];
	int fd = open(path, O_RDONLY | O_CLOEXEC), ok;

	if (fd < 0)
		return 0;
	ok = read(fd, magic, 4) == 4 && !memcmp(magic, "GGUF", 4);
	close(fd);
	return ok;
}

/* ---- the worker: callbacks from the scheduler ------------------------------------ */

/* Wakes the poller if it sleeps: progress or a finished job is waiting. */
static void notify_poller(struct copro_llm *l)
{
	/* Pairs with the poller's fence between setting its flag and looking for work. */
	copro_fence();
	if (atomic_load_explicit(l->poller_sleeping, memory_order_relaxed))
		wake(l->poller_efd);
}

/* Writes a token and its text into the client's output tensors, then publishes them. */
static void on_token(void *owner, struct copro_seq *q, int32_t id, const char *text, size_t len)
{
	struct copro_gen_job *job = owner;
	struct copro_llm *l = job->model->llm;
	uint32_t n = atomic_load_explicit(&job->n_tok, memory_order_relaxed);
	uint32_t nt = atomic_load_explicit(&job->n_text, memory_order_relaxed);

	int32_t pair[2];

	if (len && !job->text_full) {
		if (nt + len <= job->desc[3].length) {
			memcpy(job->arena + job->desc[3].offset + nt, text, len);
			nt += (uint32_t)len;
			/* Release: a poller that sees the count sees the bytes. */
			atomic_store_explicit(&job->n_text, nt, memory_order_release);
		} else {
			/* Whole pieces only: the text ends here, and so does the sequence. */
			job->text_full = 1;
			copro_sched_cancel(l->sched, q);
		}
	}
	/* n < max_tokens <= the tokens tensor's rows: admission checked it. */
	pair[0] = id;
	pair[1] = (int32_t)nt;
	memcpy(job->arena + job->desc[2].offset + (uint64_t)n * 8, pair, 8);
	/* Release: pairs with the poller's acquire of n_tok before it posts a count. */
	atomic_store_explicit(&job->n_tok, n + 1, memory_order_release);
}

static void write_result(struct copro_gen_job *job, const struct copro_seq *q)
{
	struct copro_gen_result r = { 0 };

	r.finish = job->finish;
	r.error = job->res < 0 ? job->res : 0;
	r.text_bytes = atomic_load_explicit(&job->n_text, memory_order_relaxed);
	if (q) {
		r.prompt_tokens = q->n_prompt;
		r.gen_tokens = q->n_gen;
		r.cached_tokens = q->n_cached;
		r.preemptions = q->preemptions;
		if (q->t_first) {
			r.ttft_ns = q->t_first - job->admit_ns;
			r.total_ns = q->t_last - job->admit_ns;
			if (q->n_gen > 1)
				r.tpot_ns = (q->t_last - q->t_first) / (q->n_gen - 1);
		}
	}
	memcpy(job->arena + job->desc[4].offset, &r, sizeof(r));
}

static void on_done(void *owner, struct copro_seq *q, const char *text, size_t len)
{
	struct copro_gen_job *job = owner;
	struct copro_llm *l = job->model->llm;
	uint32_t nt = atomic_load_explicit(&job->n_text, memory_order_relaxed);

	if (len && !job->text_full && nt + len <= job->desc[3].length) {
		memcpy(job->arena + job->desc[3].offset + nt, text, len);
		atomic_store_explicit(&job->n_text, nt + (uint32_t)len, memory_order_release);
	}
	job->finish = q->finish;
	if (job->text_full)
		job->finish = COPRO_FINISH_LENGTH;
	job->res = q->finish == COPRO_SEQ_ERROR ? (q->error ? q->error : -EIO) :
		   (int32_t)q->n_gen;
	if (q->finish == COPRO_SEQ_CANCELLED && !job->text_full)
		job->res = COPRO_E_CANCELLED;
	write_result(job, q);
	l->ended[l->n_ended++] = job;
}

static const struct copro_sched_ops sched_ops = { .token = on_token, .done = on_done };

/* ---- the worker ------------------------------------------------------------------- */

static void hand_back(struct copro_llm *l, struct copro_gen_job *job)
{
	jring_push(&l->done, job);
}

/* Ends a job that never reached the scheduler. */
static void refuse(struct copro_llm *l, struct copro_gen_job *job, int code, const char *why)
{
	job->res = code;
	job->finish = COPRO_FINISH_ERROR;
	write_result(job, NULL);
	log_debug("generation refused: %s", why);
	hand_back(l, job);
	notify_poller(l);
}

/* Reads a job's prompt (copied out of the arena first) as token ids. */
static int prompt_ids(struct copro_llm *l, struct copro_gen_job *job, int32_t **out,
		      uint32_t *n_out, const char **why)
{
	const struct copro_tensor_desc *d = &job->desc[0];
	int32_t *ids;
	int n;

	*out = NULL;
	if (job->p.flags & COPRO_GEN_F_IDS) {
		ids = malloc(d->length ? d->length : 4);
		if (!ids)
			return -ENOMEM;
		memcpy(ids, job->arena + d->offset, d->length);
		*out = ids;
		*n_out = (uint32_t)(d->length / 4);
		return 0;
	} else {
		bool bos = !(job->p.flags & COPRO_GEN_F_NO_BOS) && copro_tok_bos(l->m->tok) >= 0;
		char *text = malloc(d->length + 1);
		size_t cap = d->length + 3;

		if (!text)
			return -ENOMEM;
		/* Copy first: the client may be rewriting its prompt right now. */
		memcpy(text, job->arena + d->offset, d->length);
		ids = malloc(cap * sizeof(*ids));
		if (!ids) {
			free(text);
			return -ENOMEM;
		}
		n = copro_tok_encode(l->m->tok, text, d->length, bos, ids, cap);
		free(text);
		if (n < 0 || (size_t)n > cap) {
			free(ids);
			*why = "the prompt cannot be tokenized";
			return n < 0 ? n : -EINVAL;
		}
		*out = ids;
		*n_out = (uint32_t)n;
		return 0;
	}
}

/* Takes new jobs from the poller into the scheduler. */
static void take_new(struct copro_llm *l)
{
	struct copro_gen_job *job;

	while ((job = jring_pop(&l->in))) {
		const char *stops[COPRO_GEN_STOP_STRS], *why = "bad request";
		struct copro_seq_req r = { 0 };
		int32_t *ids;
		uint32_t n;
		int ret;

		if (atomic_load_explicit(&l->degraded, memory_order_relaxed)) {
			refuse(l, job, -ENODEV, "the model's device failed");
			continue;
		}
		ret = prompt_ids(l, job, &ids, &n, &why);
		if (ret) {
			refuse(l, job, ret, why);
			continue;
		}
		r.prompt = ids;
		r.n_prompt = n;
		r.max_tokens = job->p.max_tokens;
		r.flags = (job->p.flags & COPRO_GEN_F_IGNORE_EOS ? COPRO_SEQ_F_IGNORE_EOS : 0) |
			  (job->p.flags & COPRO_GEN_F_TRUNCATE ? COPRO_SEQ_F_TRUNCATE : 0);
		r.priority = job->sqe.priority;
		r.sp.temperature = job->p.temperature;
		r.sp.top_k = job->p.top_k;
		r.sp.top_p = job->p.top_p;
		r.sp.min_p = job->p.min_p;
		r.sp.repeat_penalty = job->p.repeat_penalty;
		r.sp.repeat_last_n = job->p.repeat_last_n;
		r.sp.seed = job->p.seed;
		r.stop_ids = job->p.stop_ids;
		r.n_stop_ids = job->p.n_stop_ids;
		for (uint32_t i = 0; i < COPRO_GEN_STOP_STRS; i++)
			if (job->p.stop[i][0])
				stops[r.n_stop_strs++] = job->p.stop[i];
		r.stop_strs = stops;
		r.owner = job;
		ret = copro_sched_submit(l->sched, &r, &job->seq, &why);
		free(ids);
		if (ret) {
			refuse(l, job, ret, why);
			continue;
		}
		if (job->sqe.n_out == 4) {
			/* The prompt as the model reads it, before any token is published. */
			uint64_t cap = job->desc[5].length / 4;
			uint32_t np = job->seq->n_prompt < cap ? job->seq->n_prompt : (uint32_t)cap;

			memcpy(job->arena + job->desc[5].offset, job->seq->tokens, (size_t)np * 4);
		}
		l->live[l->n_live++] = job;
	}
}

/* Passes the poller's cancel flags to the scheduler. */
static void take_cancels(struct copro_llm *l, int all)
{
	for (uint32_t i = 0; i < l->n_live; i++) {
		struct copro_gen_job *job = l->live[i];

		if (all || atomic_load_explicit(&job->cancel, memory_order_acquire))
			copro_sched_cancel(l->sched, job->seq);
	}
}

/* Hands back the jobs that ended in the last step and frees their sequences. */
static void hand_back_ended(struct copro_llm *l)
{
	for (uint32_t i = 0; i < l->n_ended; i++) {
		struct copro_gen_job *job = l->ended[i];

		for (uint32_t j = 0; j < l->n_live; j++) {
			if (l->live[j] == job) {
				l->live[j] = l->live[--l->n_live];
				break;
			}
		}
		copro_sched_release(l->sched, job->seq);
		job->seq = NULL;
		hand_back(l, job);
	}
	l->n_ended = 0;
}

static void publish_stats(struct copro_llm *l)
{
	struct copro_sched_stats st;

	copro_sched_stats(l->sched, &st);
	atomic_store_explicit(&l->st_running, st.running, memory_order_relaxed);
	atomic_store_explicit(&l->st_waiting, st.waiting, memory_order_relaxed);
	atomic_store_explicit(&l->st_steps, st.steps, memory_order_relaxed);
	atomic_store_explicit(&l->st_tokens, st.tokens_computed, memory_order_relaxed);
	atomic_store_explicit(&l->st_generated, st.tokens_generated, memory_order_relaxed);
	atomic_store_explicit(&l->st_preemptions, st.preemptions, memory_order_relaxed);
	atomic_store_explicit(&l->st_finished, st.finished, memory_order_relaxed);
	atomic_store_explicit(&l->kv_total, st.kv.total, memory_order_relaxed);
	atomic_store_explicit(&l->kv_used, st.kv.used, memory_order_relaxed);
	atomic_store_explicit(&l->kv_cached, st.kv.cached, memory_order_relaxed);
	atomic_store_explicit(&l->kv_free, st.kv.free, memory_order_relaxed);
	atomic_store_explicit(&l->kv_util_ppm, (uint32_t)(st.kv.utilization * 1e6),
			      memory_order_relaxed);
	atomic_store_explicit(&l->kv_hit_blocks, st.kv.hit_blocks, memory_order_relaxed);
	atomic_store_explicit(&l->kv_q_blocks, st.kv.q_blocks, memory_order_relaxed);
}

/*
 * The forward pass failed: the step's sequences have ended with the code.
 * A device error takes the device out of service: every other sequence
 * ends too, then a model whose device was chosen by `auto` moves to the
 * CPU (a fresh scheduler and KV pool) and later requests run there, while
 * one pinned to its device (cuda:N, or a CPU model) is marked degraded and
 * refuses later requests with -ENODEV.
 */
static void degrade(struct copro_llm *l, int code)
{
	struct copro_llm_opts o = l->cpu_opts;
	struct copro_sched *cpu;
	char err[256];

	log_err("model %s: forward step on %s failed: %s", l->name, l->device, strerror(-code));
	if (code != -EIO && code != -ENODEV)
		return;	/* the request's own problem: later requests run */
	copro_sched_fail_all(l->sched, code);
	hand_back_ended(l);
	if (l->cuda && l->fallback_cpu) {
		o.backend = NULL;
		o.fail_step = 0;
		if (!copro_sched_new(l->m, &o, &sched_ops, &cpu, err, sizeof(err))) {
			copro_sched_free(l->sched);
			l->sched = cpu;
			copro_llama_cuda_free(l->cuda);
			l->cuda = NULL;
			snprintf(l->device, sizeof(l->device), "cpu");
			log_warn("model %s: its GPU failed; serving on the CPU from now on", l->name);
			return;
		}
		log_err("model %s: cannot move to the CPU: %s", l->name, err);
	}
	atomic_store_explicit(&l->degraded, 1, memory_order_relaxed);
	log_err("model %s: degraded: its %s failed; requests are refused until it is loaded "
		"again", l->name, l->device);
}

static void worker_sleep(struct copro_llm *l)
{
	struct pollfd pfd = { .fd = l->efd, .events = POLLIN };
	uint64_t sink;

	atomic_store_explicit(&l->worker_sleeping, 1, memory_order_relaxed);
	/* Pairs with copro_llm_submit()/cancel()'s fence: no lost wake-up. */
	copro_fence();
	if (jring_empty(&l->in) && !atomic_load(&l->stop))
		poll(&pfd, 1, -1);
	atomic_store_explicit(&l->worker_sleeping, 0, memory_order_relaxed);
	if (read(l->efd, &sink, sizeof(sink)) < 0) {
		/* EAGAIN: nothing to drain */
	}
}

static void *worker_main(void *arg)
{
	struct copro_llm *l = arg;
	uint64_t idle_since = 0, stats_at = 0;
	int err;

	/* On this (placed) thread, after the pool's mbind: pages land on our node. */
	err = copro_kvc_prefault(copro_sched_kvc(l->sched));
	if (err)
		log_warn("model %s: KV cache pool not faulted in (%s): it fills as it is used",
			 l->name, strerror(-err));
	for (;;) {
		int stopping = atomic_load_explicit(&l->stop, memory_order_acquire);

		take_new(l);
		take_cancels(l, stopping);
		if (copro_sched_busy(l->sched)) {
			int ret = copro_sched_step(l->sched);
			uint64_t now = now_ns();

			if (ret < 0)
				degrade(l, ret);
			hand_back_ended(l);
			if (now - stats_at > STATS_EVERY_NS) {
				publish_stats(l);
				stats_at = now;
			}
			notify_poller(l);
			idle_since = 0;
			continue;
		}
		hand_back_ended(l);
		if (stats_at) {
			publish_stats(l);
			stats_at = 0;
			notify_poller(l);
		}
		if (stopping && jring_empty(&l->in))
			break;
		if (!idle_since)
			idle_since = now_ns();
		if (now_ns() - idle_since < WORKER_SPIN_NS)
			continue;
		worker_sleep(l);
		idle_since = 0;
	}
	publish_stats(l);
	return NULL;
}

/* ---- life ----------------------------------------------------------------------------- */

/* The CUDA backend under the scheduler: forward steps and block copies on the device. */
static int cuda_forward(void *ctx, const struct copro_llama_batch *b, float *logits)
{
	return copro_llama_cuda_forward(ctx, b, logits);
}

static int cuda_copy(void *ctx, uint32_t dst, uint32_t src)
{
	return copro_llama_cuda_kv_copy(ctx, dst, src);
}

int copro_llm_load(const struct copro_model_config *mc, int device, struct copro_llm **out,
		   char *err, size_t errlen)
{
	struct copro_llm_opts o = {
		.block_tokens = mc->block_tokens,
		.kv_cache_mib = mc->kv_cache_mib,
		.max_batched_tokens = mc->max_batched_tokens,
		.max_seqs = mc->max_seqs,
		.max_ctx = mc->context,
		.threads = mc->threads,
	};
	struct copro_llm *l;
	int ret;

	*out = NULL;
	l = calloc(1, sizeof(*l));
	if (!l) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	l->efd = -1;
	ret = copro_llama_load(mc->path, &l->m, err, errlen);
	if (ret)
		goto fail;
	if (device >= 0) {
		struct copro_llama_cuda_opts co = {
			.block_tokens = mc->block_tokens,
			.max_tokens = mc->max_batched_tokens,
			.max_ctx = mc->context,
			/* kv_cache_mib given: that; else a share of the device's free memory */
			.kv_bytes = (uint64_t)mc->kv_cache_mib << 20,
		};

		ret = copro_llama_cuda_load(l->m, device, &co, &l->cuda, err, errlen);
		if (ret)
			goto fail;
		/* The weights live on the device now: the CPU's packed copies go. */
		copro_llama_drop_packed(l->m);
		snprintf(l->device, sizeof(l->device), "cuda:%d", device & 0xff);
		l->backend.name = l->device;
		l->backend.ctx = l->cuda;
		l->backend.forward = cuda_forward;
		l->backend.copy = cuda_copy;
		copro_llama_cuda_kv(l->cuda, NULL, &l->backend.view);
		o.backend = &l->backend;
	} else {
		snprintf(l->device, sizeof(l->device), "cpu");
	}
	/* Fault injection for tests: COPRO_FAULT_STEP=name:N fails name's N-th step. */
	{
		const char *f = getenv("COPRO_FAULT_STEP");
		size_t nl = strlen(mc->name);

		if (f && !strncmp(f, mc->name, nl) && f[nl] == ':')
			o.fail_step = (uint32_t)strtoul(f + nl + 1, NULL, 10);
	}
	snprintf(l->name, sizeof(l->name), "%s", mc->name);
	l->fallback_cpu = !strcmp(mc->device, "auto");
	l->cpu_opts = o;
	l->cpu_opts.backend = NULL;
	ret = copro_sched_new(l->m, &o, &sched_ops, &l->sched, err, errlen);
	if (ret)
		goto fail;
	copro_llm_opts_defaults(&o);
	l->ctx = copro_sched_ctx(l->sched);
	l->block_tokens = o.block_tokens;
	l->depth = mc->queue_depth ? mc->queue_depth : 1024;
	ret = -ENOMEM;
	if (jring_init(&l->in, l->depth) || jring_init(&l->done, l->depth))
		goto nomem;
	l->pool = calloc(l->depth, sizeof(*l->pool));
	l->live = calloc(l->depth, sizeof(*l->live));
	l->ended = calloc(l->depth, sizeof(*l->ended));
	if (!l->pool || !l->live || !l->ended)
		goto nomem;
	for (uint32_t i = 0; i < l->depth; i++)
		copro_llm_job_put(l, &l->pool[i]);
	l->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (l->efd < 0) {
		ret = -errno;
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	publish_stats(l);
	*out = l;
	return 0;
nomem:
	snprintf(err, errlen, "out of memory");
fail:
	copro_llm_free(l);
	return ret;
}

void copro_llm_place(struct copro_llm *l, const struct copro_place *p)
{
	struct copro_kvc *kvc = copro_sched_kvc(l->sched);
	int ret;

	l->place = *p;
	/* The pool is mapped lazily and nothing has run: no page is there yet. */
	ret = copro_place_memory(p, kvc->mem, kvc->mem_bytes);
	if (ret)
		log_warn("KV cache: cannot bind to node %d: %s", p->node, strerror(-ret));
}

int copro_llm_start(struct copro_llm *l, int poller_efd, _Atomic uint32_t *poller_sleeping)
{
	int ret;

	l->poller_efd = poller_efd;
	l->poller_sleeping = poller_sleeping;
	snprintf(l->placed.kind, sizeof(l->placed.kind), "llm");
	ret = copro_place_spawn(&l->thread, &l->place, "copro-llm", &l->placed, worker_main, l);
	if (!ret)
		l->started = 1;
	return ret;
}

void copro_llm_join(struct copro_llm *l)
{
	if (!l || !l->started)
		return;
	atomic_store_explicit(&l->stop, 1, memory_order_release);
	wake(l->efd);
	pthread_join(l->thread, NULL);
	l->started = 0;
}

void copro_llm_free(struct copro_llm *l)
{
	if (!l)
		return;
	copro_llm_join(l);
	copro_sched_free(l->sched);
	copro_llama_cuda_free(l->cuda);
	copro_llama_free(l->m);
	if (l->efd >= 0)
		close(l->efd);
	free(l->in.slot);
	free(l->done.slot);
	free(l->pool);
	free(l->live);
	free(l->ended);
	free(l);
}

/* ---- the poller's side ---------------------------------------------------------------- */

struct copro_gen_job *copro_llm_job_get(struct copro_llm *l)
{
	struct copro_gen_job *job = l->free_list;

	if (job)
		l->free_list = job->next;
	return job;
}

void copro_llm_job_put(struct copro_llm *l, struct copro_gen_job *job)
{
	job->next = l->free_list;
	l->free_list = job;
}

void copro_llm_submit(struct copro_llm *l, struct copro_gen_job *job)
{
	atomic_store_explicit(&job->cancel, 0, memory_order_relaxed);
	atomic_store_explicit(&job->n_tok, 0, memory_order_relaxed);
	atomic_store_explicit(&job->n_text, 0, memory_order_relaxed);
	job->posted = 0;
	job->text_full = 0;
	job->seq = NULL;
	job->prev = NULL;
	job->next = l->active;
	if (l->active)
		l->active->prev = job;
	l->active = job;
	jring_push(&l->in, job);
	/* Pairs with the worker's fence between setting worker_sleeping and re-checking. */
	copro_fence();
	if (atomic_load_explicit(&l->worker_sleeping, memory_order_relaxed))
		wake(l->efd);
}

struct copro_gen_job *copro_llm_reap(struct copro_llm *l)
{
	struct copro_gen_job *job = jring_pop(&l->done);

	if (!job)
		return NULL;
	if (job->prev)
		job->prev->next = job->next;
	else
		l->active = job->next;
	if (job->next)
		job->next->prev = job->prev;
	job->next = job->prev = NULL;
	return job;
}

int copro_llm_has_done(struct copro_llm *l)
{
	return !jring_empty(&l->done);
}

void copro_llm_cancel(struct copro_llm *l, struct copro_gen_job *job)
{
	atomic_store_explicit(&job->cancel, 1, memory_order_release);
	copro_fence();
	if (atomic_load_explicit(&l->worker_sleeping, memory_order_relaxed))
		wake(l->efd);
}
