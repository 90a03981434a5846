/* SPDX-License-Identifier: MIT */
/*
 * llm.c - the language-model runtime end to end, in process: a synthetic
 * Llama model of about 100 M parameters (F32 and Q8_0) driven through the
 * continuous-batching scheduler (server/llmsched.c) exactly as coprod's
 * worker drives it, minus the transport.
 *
 *   1. decode     one sequence after a short prompt: tokens/s
 *   2. batching   a mixed-length workload at 1, 4, 16 and 64 concurrent
 *                 sequences (max_seqs), continuous batching against static
 *                 batching of the same requests: aggregate tokens/s; then
 *                 the same with heavy-tailed output lengths (exponential,
 *                 as chat replies are), Q8_0 at 4, 16 and 64 sequences
 *   3. latency    Poisson arrivals at a fraction of the capacity measured
 *                 in 2: time to first token and time per output token
 *   4. KV use     live token slots / slots in allocated blocks, at steady
 *                 state of the 64-sequence runs of 2
 *   5. prefix     time to first token with a cached 512-token prefix,
 *                 against a cold scheduler and an uncached prefix
 *
 * Every request is submitted, the scheduler stepped and the tokens
 * timestamped (CLOCK_MONOTONIC) in the callbacks, on this one thread; the
 * forward pass runs on --threads threads (this one and helpers). OpenBLAS,
 * loaded with the library (the tensor models use it, the language models
 * do not), is held to one thread unless --blas-threads says otherwise.
 * Sampling is greedy and every request ignores EOS, so each generates
 * exactly the max_tokens it drew; the workloads come from a fixed seed.
 * Each row of 2 is run --reps times, continuous and static in turn, and
 * reports the run of median throughput of each (the machine is shared).
 *
 * The workloads are sized for about 4 minutes on a 2-vCPU VM (fewer tokens,
 * not a smaller model): prompts of 8-48 tokens and max_tokens 8-104, twice
 * as many requests as sequences per row (8 at one sequence,
 * so that row is not a half-second sample of a noisy host); F32 runs only
 * 1 and 2 (at 1 and 16 sequences). The KV pool holds every sequence of the
 * 64-sequence row at its longest, so nothing is preempted.
 *
 * The model files are written once into a cache directory ($BUILD/
 * bench-models by default) and reused while they load. --quick runs a tiny
 * model with the same workloads, to check the benchmark itself in seconds.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <cblas.h>

#include "kvcache.h"
#include "llmsched.h"
#include "llm/llama.h"
#include "llm/quant.h"
#include "llm/synth.h"

#define N_SEQS		4
#define MAX_SEQS	64
#define BLOCK_TOKENS	16
#define STEP_TOKENS	512		/* max_batched_tokens */
#define PREFIX_LEN	512
#define SUFFIX_LEN	16
#define BOS		1

static const uint32_t seq_counts[N_SEQS] = { 1, 4, 16, 64 };

struct opts {
	int quick;
	const char *dir;		/* model cache */
	const char *vocab_file;		/* NULL: generated vocabulary */
	uint32_t kv_heads;
	uint64_t seed;
	uint32_t p_min, p_max;		/* prompt tokens, uniform */
	uint32_t g_min, g_max;		/* max_tokens, uniform */
	uint32_t reps;			/* runs of each row of 2 (the median is shown) */
	uint32_t waves;			/* requests = waves x seqs (at least min_reqs) */
	uint32_t min_reqs;
	uint32_t decode_prompt, decode_tokens;
	uint32_t poisson_reqs;
	double load;			/* Poisson rate / measured capacity */
	double rate;			/* requests/s; 0: load x capacity */
	uint32_t prefix_reps;
	int blas_threads;
	unsigned sections;		/* bit i: section i + 1 */
};

/* ---- time, randomness, statistics ------------------------------------------------ */

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* CPU seconds this process has used (user and system). */
static double cpu_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng_next(uint64_t *st)
{
	uint64_t z = (*st += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi]. */
static uint32_t rng_range(uint64_t *st, uint32_t lo, uint32_t hi)
{
	return lo + (uint32_t)(rng_next(st) % ((uint64_t)hi - lo + 1));
}

/* Uniform in (0, 1]. */
static double rng_unit(uint64_t *st)
{
	return ((double)(rng_next(st) >> 11) + 1.0) / 9007199254740992.0;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return (x > y) - (x < y);
}

/* Nearest-rank percentile q (0..1] of v[0..n) (sorted here); 0 for none. */
static double pct(double *v, size_t n, double q)
{
	size_t r;

	if (!n)
		return 0;
	qsort(v, n, sizeof(*v), cmp_double);
	r = (size_t)ceil(q * (double)n);
	return v[r ? r - 1 : 0];
}

static const char *loadavg(char *buf, size_t len)
{
	FILE *f = fopen("/proc/loadavg", "r");

	snprintf(buf, len, "unknown");
	if (f) {
		double a, b, c;

		if (fscanf(f, "%lf %lf %lf", &a, &b, &c) == 3)
			snprintf(buf, len, "%.2f %.2f %.2f", a, b, c);
		fclose(f);
	}
	return buf;
}

/* ---- models ------------------------------------------------------------------------ */

struct model {
	uint32_t type;
	char path[512];
	struct copro_llama *m;
	double synth_s;			/* seconds spent writing it; 0 when reused */
	double kv_token_bytes;		/* K and V of one position, all layers */
};

static void model_opts(const struct opts *o, uint32_t type, struct copro_synth_opts *so)
{
	copro_llm_synth_defaults(so);
	if (o->quick) {
		so->dim = 64;
		so->n_layers = 2;
		so->n_heads = 4;
		so->n_kv_heads = 2;
		so->hidden = 128;
		so->vocab = 512;
	} else {
		so->dim = 768;
		so->n_layers = 12;
		so->n_heads = 12;
		so->n_kv_heads = o->kv_heads;
		so->hidden = 2048;
		so->vocab = o->vocab_file ? 0 : 32000;
		so->vocab_file = o->vocab_file;
	}
	so->context = 1024;
	so->type = type;
	so->seed = 1;
	so->name = "copro-bench";
}

/*
 * Opens the model of type from the cache directory, writing it first when
 * it is missing or does not load. Returns 0, or -1 after saying why.
 */
static int model_open(const struct opts *o, uint32_t type, struct model *md)
{
	struct copro_synth_opts so;
	char err[256], tmp[600];
	uint64_t t0;

	model_opts(o, type, &so);
	memset(md, 0, sizeof(*md));
	md->type = type;
	snprintf(md->path, sizeof(md->path), "%s/llama-d%u-l%u-h%u-kv%u-ff%u-v%u%s-c%u-%s.gguf",
		 o->dir, so.dim, so.n_layers, so.n_heads, so.n_kv_heads, so.hidden,
		 so.vocab_file ? 32000 : so.vocab, so.vocab_file ? "tok" : "gen", so.context,
		 copro_ggml_type_name(type));
	if (access(md->path, R_OK) || copro_llama_load(md->path, &md->m, err, sizeof(err))) {
		md->m = NULL;
		snprintf(tmp, sizeof(tmp), "%s.tmp.%d", md->path, (int)getpid());
		t0 = now_ns();
		if (copro_llm_synth(&so, tmp, err, sizeof(err)) || rename(tmp, md->path)) {
			fprintf(stderr, "llm: writing %s: %s\n", md->path,
				*err ? err : strerror(errno));
			unlink(tmp);
			return -1;
		}
		md->synth_s = (double)(now_ns() - t0) * 1e-9;
		if (copro_llama_load(md->path, &md->m, err, sizeof(err))) {
			fprintf(stderr, "llm: %s: %s\n", md->path, err);
			return -1;
		}
	}
	md->kv_token_bytes = 2.0 * md->m->hp.n_layers * md->m->hp.kv_dim * sizeof(float);
	return 0;
}

/* ---- requests and the scheduler loop ---------------------------------------------- */

struct req {
	int32_t *prompt;
	uint32_t n_prompt, max_tokens;
	uint32_t useful;		/* tokens that count: the drawn max_tokens */
	double arrive_s;		/* Poisson: seconds after the start */
	/* filled in by a run */
	uint64_t t_arrive, t_first, t_last;	/* ns */
	uint32_t n_out, n_cached, finish;
	int done;
	struct copro_seq *seq;
};

struct run_result {
	double wall_s;
	double cpu;			/* this process's CPU time / wall time */
	uint64_t gen, prompt;		/* tokens generated, prompt tokens */
	uint64_t steps, computed, preemptions;
	uint32_t short_reqs;		/* requests that ended before max_tokens */
	/* KV utilization over the steps with running >= util_at */
	double util_sum, util_min;
	uint64_t util_n;
};

/* Finished sequences, released after the step that finished them. */
static struct copro_seq **dead;
static uint32_t n_dead, dead_cap;

static void on_token(void *owner, struct copro_seq *s, int32_t id, const char *text, size_t len)
{
	struct req *r = owner;
	uint64_t t = now_ns();

	if (!r->n_out)
		r->t_first = t;
	r->t_last = t;
	r->n_out++;
}

static void on_done(void *owner, struct copro_seq *s, const char *text, size_t len)
{
	struct req *r = owner;

	r->done = 1;
	r->finish = s->finish;
	r->n_cached = s->n_cached;
	if (n_dead < dead_cap)
		dead[n_dead++] = s;
}

static const struct copro_sched_ops ops = { .token = on_token, .done = on_done };

static void reap(struct copro_sched *s)
{
	while (n_dead)
		copro_sched_release(s, dead[--n_dead]);
}

/* Forward-pass threads of every scheduler (--threads). */
static uint32_t fwd_threads = 1;

static struct copro_sched *sched_open(struct model *md, uint32_t max_seqs, uint32_t kv_mib,
				      int static_batching)
{
	struct copro_llm_opts o = {
		.block_tokens = BLOCK_TOKENS,
		.kv_cache_mib = kv_mib,
		.max_batched_tokens = STEP_TOKENS,
		.max_seqs = max_seqs,
		.static_batching = (uint32_t)static_batching,
		.threads = fwd_threads,
	};
	struct copro_sched *s;
	char err[256];

	if (copro_sched_new(md->m, &o, &ops, &s, err, sizeof(err))) {
		fprintf(stderr, "llm: scheduler: %s\n", err);
		exit(1);
	}
	/* as coprod's worker does when it starts: no step pays the first touch */
	copro_kvc_prefault(copro_sched_kvc(s));
	return s;
}

static void submit(struct copro_sched *s, struct req *r, uint64_t t_arrive)
{
	struct copro_seq_req q = {
		.prompt = r->prompt,
		.n_prompt = r->n_prompt,
		.max_tokens = r->max_tokens,
		.flags = COPRO_SEQ_F_IGNORE_EOS,
		.owner = r,
	};
	const char *why = "";

	q.sp = copro_sample_params_default();
	q.sp.temperature = 0;		/* greedy */
	r->t_arrive = t_arrive;
	r->t_first = r->t_last = 0;
	r->n_out = r->n_cached = r->finish = 0;
	r->done = 0;
	if (copro_sched_submit(s, &q, &r->seq, &why)) {
		fprintf(stderr, "llm: submit: %s\n", why);
		exit(1);
	}
}

static void step(struct copro_sched *s)
{
	int ret = copro_sched_step(s);

	if (ret < 0) {
		fprintf(stderr, "llm: forward step failed: %s\n", strerror(-ret));
		exit(1);
	}
	reap(s);
}

static void collect(struct copro_sched *s, const struct req *r, uint32_t n,
		    struct run_result *res)
{
	struct copro_sched_stats st;

	copro_sched_stats(s, &st);
	res->steps = st.steps;
	res->computed = st.tokens_computed;
	res->preemptions = st.preemptions;
	for (uint32_t i = 0; i < n; i++) {
		res->gen += r[i].n_out < r[i].useful ? r[i].n_out : r[i].useful;
		res->prompt += r[i].n_prompt;
		if (!r[i].done || r[i].finish != COPRO_SEQ_LENGTH || r[i].n_out != r[i].max_tokens)
			res->short_reqs++;
	}
}

/* How run_closed batches. */
enum batching {
	CONTINUOUS,
	STATIC,		/* a batch at a time; finished sequences leave its steps */
	PADDED,		/* a batch at a time, every one run to the batch's longest */
};

/*
 * Runs requests r[0..n) submitted together at the start through a
 * scheduler of max_seqs sequences, until all are done. KV utilization is
 * sampled after every step where at least util_at sequences run (0: never).
 * PADDED is static batching as servers without iteration-level scheduling
 * run it (a fixed batch tensor): the scheduler's static batches (max_seqs
 * requests in submission order) with every request's max_tokens raised to
 * its batch's longest; only each request's own max_tokens count as output.
 */
static void run_closed(struct model *md, struct req *r, uint32_t n, uint32_t max_seqs,
		       uint32_t kv_mib, enum batching how, uint32_t util_at,
		       struct run_result *res)
{
	struct copro_sched *s = sched_open(md, max_seqs, kv_mib, how != CONTINUOUS);
	struct copro_sched_stats st;
	uint64_t t0;
	double c0;

	for (uint32_t i = 0; i < n; i++)
		r[i].max_tokens = r[i].useful;
	for (uint32_t i = 0; how == PADDED && i < n; i += max_seqs) {
		uint32_t mx = 0, end = i + max_seqs < n ? i + max_seqs : n;

		for (uint32_t j = i; j < end; j++)
			mx = r[j].useful > mx ? r[j].useful : mx;
		for (uint32_t j = i; j < end; j++)
			r[j].max_tokens = mx;
	}
	memset(res, 0, sizeof(*res));
	res->util_min = 1;
	c0 = cpu_s();
	t0 = now_ns();
	for (uint32_t i = 0; i < n; i++)
		submit(s, &r[i], t0);
	while (copro_sched_busy(s)) {
		step(s);
		if (!util_at)
			continue;
		copro_sched_stats(s, &st);
		if (st.running >= util_at) {
			res->util_sum += st.kv.utilization;
			if (st.kv.utilization < res->util_min)
				res->util_min = st.kv.utilization;
			res->util_n++;
		}
	}
	res->wall_s = (double)(now_ns() - t0) * 1e-9;
	res->cpu = (cpu_s() - c0) / res->wall_s;
	collect(s, r, n, res);
	copro_sched_free(s);
	for (uint32_t i = 0; i < n; i++)
		r[i].max_tokens = r[i].useful;
}

/*
 * Heavy-tailed output lengths: g_min + an exponential draw, with the mean
 * of the uniform range (g_min + g_max) / 2, at most TAIL_CAP x that mean.
 * Of 16 such requests the longest is ~3.4 x the mean (uniform: ~1.9 x).
 */
#define TAIL_CAP	8

static uint32_t tail_len(const struct opts *o, uint64_t *st)
{
	double mean = (o->g_min + o->g_max) / 2.0, x = -(mean - o->g_min) * log(rng_unit(st));

	if (x > TAIL_CAP * mean)
		x = TAIL_CAP * mean;
	return o->g_min + (uint32_t)x;
}

/*
 * Draws n requests from the workload's distributions (max_tokens uniform,
 * or heavy-tailed with tail set); prompts start with BOS.
 */
static struct req *workload(const struct opts *o, uint32_t vocab, uint32_t n, uint64_t seed,
			    int tail)
{
	struct req *r = calloc(n, sizeof(*r));
	uint64_t st = seed;

	if (!r)
		goto nomem;
	for (uint32_t i = 0; i < n; i++) {
		r[i].n_prompt = rng_range(&st, o->p_min, o->p_max);
		r[i].max_tokens = tail ? tail_len(o, &st) : rng_range(&st, o->g_min, o->g_max);
		r[i].useful = r[i].max_tokens;
		r[i].prompt = malloc(r[i].n_prompt * sizeof(int32_t));
		if (!r[i].prompt)
			goto nomem;
		r[i].prompt[0] = BOS;
		for (uint32_t j = 1; j < r[i].n_prompt; j++)
			r[i].prompt[j] = (int32_t)rng_range(&st, 3, vocab - 1);
	}
	return r;
nomem:
	fprintf(stderr, "llm: out of memory\n");
	exit(1);
}

static void workload_free(struct req *r, uint32_t n)
{
	for (uint32_t i = 0; r && i < n; i++)
		free(r[i].prompt);
	free(r);
}

static uint32_t reqs_for(const struct opts *o, uint32_t seqs)
{
	uint32_t n = o->waves * seqs;

	return n < o->min_reqs ? o->min_reqs : n;
}

/* ---- 1. decode ---------------------------------------------------------------------- */

/*
 * Runs one short request through a scheduler of its own: pages the mmap'd
 * weights in (the first pass over a freshly opened F32 model took 0.5 s
 * longer) and settles the caches before anything is timed.
 */
static void warm_up(struct model *md, uint32_t kv_mib)
{
	struct copro_sched *s = sched_open(md, 1, kv_mib, 0);
	int32_t prompt[16];
	struct req r = { .prompt = prompt, .n_prompt = 16, .max_tokens = 4 };

	prompt[0] = BOS;
	for (uint32_t j = 1; j < r.n_prompt; j++)
		prompt[j] = (int32_t)(3 + j);
	submit(s, &r, now_ns());
	while (copro_sched_busy(s))
		step(s);
	copro_sched_free(s);
}

struct decode_result {
	double ttft_ms, tpot_ms;
};

static void bench_decode(const struct opts *o, struct model *md, uint32_t kv_mib,
			 struct decode_result *d)
{
	struct copro_sched *s = sched_open(md, 1, kv_mib, 0);
	struct req r = { 0 };
	uint64_t st = o->seed ^ 0xdec0de;
	int32_t prompt[256];

	r.prompt = prompt;
	r.n_prompt = o->decode_prompt;
	prompt[0] = BOS;
	for (uint32_t j = 1; j < r.n_prompt; j++)
		prompt[j] = (int32_t)rng_range(&st, 3, md->m->hp.vocab - 1);
	/*
	 * A 4-token request first: the first step of a new scheduler took up
	 * to 80 ms longer (its buffers and pool are touched for the first time).
	 */
	r.max_tokens = 4;
	submit(s, &r, now_ns());
	while (copro_sched_busy(s))
		step(s);
	prompt[1] = prompt[1] == 3 ? 4 : 3;	/* a new first block: nothing to reuse */
	r.max_tokens = o->decode_tokens;
	submit(s, &r, now_ns());
	while (copro_sched_busy(s))
		step(s);
	d->ttft_ms = (double)(r.t_first - r.t_arrive) * 1e-6;
	d->tpot_ms = r.n_out > 1 ? (double)(r.t_last - r.t_first) * 1e-6 / (r.n_out - 1) : 0;
	copro_sched_free(s);
}

/* ---- 3. Poisson arrivals ------------------------------------------------------------ */

struct poisson_result {
	double rate, wall_s, tput;
	double ttft_p50, ttft_p99, tpot_p50, tpot_p99, ttft_mean, tpot_mean;
	double mean_batch;
	uint64_t gen, preemptions;
	uint32_t short_reqs;
};

static void bench_poisson(const struct opts *o, struct model *md, uint32_t kv_mib, double rate,
			  struct poisson_result *p)
{
	uint32_t n = o->poisson_reqs, next = 0;
	struct req *r = workload(o, md->m->hp.vocab, n, o->seed + 1000, 0);
	struct copro_sched *s = sched_open(md, MAX_SEQS, kv_mib, 0);
	double *ttft = calloc(n, sizeof(double)), *tpot = calloc(n, sizeof(double));
	struct run_result res = { 0 };
	uint64_t st = o->seed + 2000, t0;
	double t = 0;
	size_t n_tpot = 0;

	if (!ttft || !tpot) {
		fprintf(stderr, "llm: out of memory\n");
		exit(1);
	}
	for (uint32_t i = 0; i < n; i++) {
		t += -log(rng_unit(&st)) / rate;
		r[i].arrive_s = t;
	}
	t0 = now_ns();
	while (next < n || copro_sched_busy(s)) {
		uint64_t tn = now_ns();

		/* Everything due by now, stamped with when it was due. */
		while (next < n && t0 + (uint64_t)(r[next].arrive_s * 1e9) <= tn) {
			submit(s, &r[next], t0 + (uint64_t)(r[next].arrive_s * 1e9));
			next++;
		}
		if (copro_sched_busy(s)) {
			step(s);
		} else if (next < n) {
			uint64_t due = t0 + (uint64_t)(r[next].arrive_s * 1e9);
			struct timespec ts;

			ts.tv_sec = (time_t)(due / 1000000000ULL);
			ts.tv_nsec = (long)(due % 1000000000ULL);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		}
	}
	memset(p, 0, sizeof(*p));
	p->wall_s = (double)(now_ns() - t0) * 1e-9;
	collect(s, r, n, &res);
	for (uint32_t i = 0; i < n; i++) {
		ttft[i] = (double)(r[i].t_first - r[i].t_arrive) * 1e-6;
		p->ttft_mean += ttft[i] / n;
		if (r[i].n_out > 1)
			tpot[n_tpot++] = (double)(r[i].t_last - r[i].t_first) * 1e-6 /
					 (r[i].n_out - 1);
	}
	for (size_t i = 0; i < n_tpot; i++)
		p->tpot_mean += tpot[i] / (double)n_tpot;
	p->rate = rate;
	p->gen = res.gen;
	p->tput = (double)res.gen / p->wall_s;
	p->preemptions = res.preemptions;
	p->short_reqs = res.short_reqs;
	p->mean_batch = res.steps ? (double)res.computed / (double)res.steps : 0;
	p->ttft_p50 = pct(ttft, n, 0.50);
	p->ttft_p99 = pct(ttft, n, 0.99);
	p->tpot_p50 = pct(tpot, n_tpot, 0.50);
	p->tpot_p99 = pct(tpot, n_tpot, 0.99);
	free(ttft);
	free(tpot);
	copro_sched_free(s);
	workload_free(r, n);
}

/* ---- 5. prefix caching ------------------------------------------------------------- */

/* TTFT in ms of one request through s, run alone to its first (only) token. */
static double ttft_one(struct copro_sched *s, struct req *r, uint32_t *cached)
{
	submit(s, r, now_ns());
	while (copro_sched_busy(s))
		step(s);
	*cached = r->n_cached;
	return (double)(r->t_first - r->t_arrive) * 1e-6;
}

static void fill(int32_t *p, uint32_t n, uint32_t vocab, uint64_t seed)
{
	uint64_t st = seed;

	for (uint32_t i = 0; i < n; i++)
		p[i] = (int32_t)rng_range(&st, 3, vocab - 1);
}

struct prefix_result {
	double cold, other, warm;	/* medians, ms */
	uint32_t cached_cold, cached_other, cached_warm;
};

static void bench_prefix(const struct opts *o, struct model *md, uint32_t kv_mib,
			 struct prefix_result *pr)
{
	uint32_t n = PREFIX_LEN + SUFFIX_LEN, vocab = md->m->hp.vocab, reps = o->prefix_reps;
	double *cold = calloc(reps, sizeof(double)), *other = calloc(reps, sizeof(double));
	double *warm = calloc(reps, sizeof(double));
	int32_t *a = malloc(n * sizeof(int32_t)), *b = malloc(n * sizeof(int32_t));
	struct req r = { .n_prompt = n, .max_tokens = 1 };

	if (!cold || !other || !warm || !a || !b) {
		fprintf(stderr, "llm: out of memory\n");
		exit(1);
	}
	memset(pr, 0, sizeof(*pr));
	for (uint32_t i = 0; i < reps; i++) {
		uint64_t seed = o->seed * 1000003 + i * 4;
		struct copro_sched *s;
		uint32_t c;

		/* a: prefix A (BOS first), suffix 1; b: prefix B, suffix 2. */
		a[0] = b[0] = BOS;
		fill(a + 1, PREFIX_LEN - 1, vocab, seed);
		fill(a + PREFIX_LEN, SUFFIX_LEN, vocab, seed + 1);
		fill(b + 1, PREFIX_LEN - 1, vocab, seed + 2);
		fill(b + PREFIX_LEN, SUFFIX_LEN, vocab, seed + 3);
		s = sched_open(md, MAX_SEQS, kv_mib, 0);
		r.prompt = a;
		cold[i] = ttft_one(s, &r, &pr->cached_cold);	/* A cached from here on */
		r.prompt = b;
		other[i] = ttft_one(s, &r, &pr->cached_other);	/* B: nothing of it cached */
		/* A again with a new suffix: the prefix's blocks come from the cache. */
		fill(a + PREFIX_LEN, SUFFIX_LEN, vocab, seed + 5);
		r.prompt = a;
		warm[i] = ttft_one(s, &r, &c);
		pr->cached_warm = c;
		copro_sched_free(s);
	}
	pr->cold = pct(cold, reps, 0.5);
	pr->other = pct(other, reps, 0.5);
	pr->warm = pct(warm, reps, 0.5);
	free(cold);
	free(other);
	free(warm);
	free(a);
	free(b);
}

/* ---- main ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: llm [--quick] [--models DIR] [--vocab-file FILE|none] [--kv-heads N]\n"
		"           [--seed N] [--prompt MIN-MAX] [--gen MIN-MAX] [--waves N]\n"
		"           [--decode-tokens N] [--poisson-reqs N] [--load F] [--rate R]\n"
		"           [--prefix-reps N] [--blas-threads N] [--threads N]\n"
		"           [--reps N] [--sections 1,2,3,5]\n"
		"  --quick          a tiny model (dim 64, 2 layers): checks the benchmark in\n"
		"                   seconds\n"
		"  --models DIR     model cache, default $BUILD/bench-models\n"
		"  --vocab-file     llama2.c tokenizer.bin, default\n"
		"                   ../shared/models/tokenizer.bin when present (else a\n"
		"                   generated 32000-token vocabulary)\n"
		"  --prompt, --gen  uniform ranges of prompt tokens and max_tokens (8-48, 8-104)\n"
		"  --waves N        requests per batching row = N x sequences, at least 8 (2)\n"
		"  --reps N         runs of each batching row; the median is shown (3)\n"
		"  --load F         Poisson rate as a fraction of the measured capacity (0.5)\n"
		"  --rate R         Poisson rate in requests/s instead\n"
		"  --threads N      forward-pass threads of the scheduler (1)\n"
		"  --sections LIST  which of 1 decode, 2 batching (and 4), 3 latency, 5 prefix\n");
}

static int parse_range(const char *s, uint32_t *lo, uint32_t *hi)
{
	char *end;
	unsigned long a = strtoul(s, &end, 10), b;

	if (*end != '-')
		return -1;
	b = strtoul(end + 1, &end, 10);
	if (*end || !a || b < a || b > 100000)
		return -1;
	*lo = (uint32_t)a;
	*hi = (uint32_t)b;
	return 0;
}

static int parse_args(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "quick", no_argument, NULL, 'q' },
		{ "models", required_argument, NULL, 'm' },
		{ "vocab-file", required_argument, NULL, 'v' },
		{ "kv-heads", required_argument, NULL, 'k' },
		{ "seed", required_argument, NULL, 's' },
		{ "prompt", required_argument, NULL, 'p' },
		{ "gen", required_argument, NULL, 'g' },
		{ "waves", required_argument, NULL, 'w' },
		{ "reps", required_argument, NULL, 'R' },
		{ "decode-tokens", required_argument, NULL, 'd' },
		{ "poisson-reqs", required_argument, NULL, 'n' },
		{ "load", required_argument, NULL, 'l' },
		{ "rate", required_argument, NULL, 'r' },
		{ "prefix-reps", required_argument, NULL, 'x' },
		{ "blas-threads", required_argument, NULL, 'b' },
		{ "threads", required_argument, NULL, 't' },
		{ "sections", required_argument, NULL, 'S' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 },
	};
	int c;

	while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		switch (c) {
		case 'q':
			o->quick = 1;
			break;
		case 'm':
			o->dir = optarg;
			break;
		case 'v':
			o->vocab_file = strcmp(optarg, "none") ? optarg : NULL;
			break;
		case 'k':
			o->kv_heads = (uint32_t)atoi(optarg);
			break;
		case 's':
			o->seed = strtoull(optarg, NULL, 0);
			break;
		case 'p':
			if (parse_range(optarg, &o->p_min, &o->p_max))
				goto bad;
			break;
		case 'g':
			if (parse_range(optarg, &o->g_min, &o->g_max))
				goto bad;
			break;
		case 'w':
			o->waves = (uint32_t)atoi(optarg);
			break;
		case 'R':
			if (atoi(optarg) < 1 || atoi(optarg) > 99) {
				fprintf(stderr, "llm: --reps takes 1 to 99\n");
				return -1;
			}
			o->reps = (uint32_t)atoi(optarg);
			break;
		case 'd':
			o->decode_tokens = (uint32_t)atoi(optarg);
			break;
		case 'n':
			o->poisson_reqs = (uint32_t)atoi(optarg);
			break;
		case 'l':
			o->load = atof(optarg);
			break;
		case 'r':
			o->rate = atof(optarg);
			break;
		case 'x':
			o->prefix_reps = (uint32_t)atoi(optarg);
			break;
		case 'b':
			o->blas_threads = atoi(optarg);
			break;
		case 't':
			if (atoi(optarg) < 1 || atoi(optarg) > 16) {
				fprintf(stderr, "llm: --threads takes 1 to 16\n");
				return -1;
			}
			fwd_threads = (uint32_t)atoi(optarg);
			break;
		case 'S':
			o->sections = 0;
			for (const char *p = optarg; *p; p++)
				if (*p >= '1' && *p <= '5')
					o->sections |= 1u << (*p - '1');
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "llm: unexpected argument '%s'\n", argv[optind]);
		return -1;
	}
	if (!o->waves || !o->decode_tokens || !o->poisson_reqs || !o->prefix_reps ||
	    o->load <= 0 || o->blas_threads < 1 || !o->kv_heads || o->decode_prompt < 2) {
		fprintf(stderr, "llm: a count is zero or out of range\n");
		return -1;
	}
	return 0;
bad:
	fprintf(stderr, "llm: bad range '%s' (want MIN-MAX)\n", optarg);
	return -1;
}

/* ---- the report ------------------------------------------------------------------- */

/* What the sections share: the options, both models, and the batching results. */
struct bench {
	struct opts o;
	struct model q8, f32;
	struct model *models[2];	/* Q8_0 first: every section runs it */
	uint32_t kv_mib;
	struct run_result cont[2][N_SEQS], stat[2][N_SEQS], pad[2][N_SEQS];
	int ran[2][N_SEQS];
	/* heavy-tailed, Q8_0 */
	struct run_result tail_cont[N_SEQS], tail_stat[N_SEQS], tail_pad[N_SEQS];
	int tail_ran[N_SEQS];
	double capacity;		/* requests/s, Q8_0, 64 seqs, continuous */
};

static double tok_s(const struct run_result *r)
{
	return (double)r->gen / r->wall_s;
}

static void print_header(struct bench *b)
{
	const struct copro_llama_hparams *hp = &b->q8.m->hp;
	double tok = b->q8.kv_token_bytes;
	char la[64];

	printf("copro llm benchmark%s: synthetic Llama through the continuous-batching "
	       "scheduler,\nin process, %u forward-pass thread%s\n", b->o.quick ? " (--quick: tiny model)" : "",
	       fwd_threads, fwd_threads == 1 ? "" : "s");
	printf("model:   copro-model synth: dim %u, %u layers, %u heads, %u KV heads, hidden %u, "
	       "vocab %u (%s),\n         context %u; %.1fM parameters\n", hp->dim, hp->n_layers,
	       hp->n_heads, hp->n_kv_heads, hp->hidden, hp->vocab,
	       b->o.vocab_file && !b->o.quick ? b->o.vocab_file : "generated", hp->ctx,
	       (double)b->q8.m->n_params * 1e-6);
	for (int i = 0; i < 2; i++)
		printf("         %-5s %7.1f MB  %s%s\n", copro_ggml_type_name(b->models[i]->type),
		       (double)b->models[i]->m->weight_bytes * 1e-6, b->models[i]->path,
		       b->models[i]->synth_s > 0 ? " (written now)" : " (cached)");
	printf("sched:   block_tokens %u, max_batched_tokens %u, KV pool %u MiB (%.1f KiB a "
	       "token: %u tokens), watermark 1%%\n", BLOCK_TOKENS, STEP_TOKENS, b->kv_mib,
	       tok / 1024.0, (uint32_t)((double)b->kv_mib * 1048576.0 / tok));
	printf("threads: forward pass %u (OpenBLAS, unused here, held to %d)\n", fwd_threads,
	       b->o.blas_threads);
	printf("sampling: greedy, ignore EOS: each request generates exactly its max_tokens\n");
	printf("load:    %s before the run (1/5/15 min; other work on the machine skews every "
	       "row: see the cpu columns)\n", loadavg(la, sizeof(la)));
}

static void section_decode(struct bench *b)
{
	struct decode_result d;

	printf("\n1. decode, one sequence: prompt %u tokens, then %u generated (after a 4-token "
	       "request\n   on the same scheduler)\n", b->o.decode_prompt, b->o.decode_tokens);
	printf("%-5s %12s %10s %10s %14s\n", "type", "prefill ms", "ms/token", "tokens/s",
	       "weights GB/s");
	for (int i = 0; i < 2; i++) {
		bench_decode(&b->o, b->models[i], b->kv_mib, &d);
		printf("%-5s %12.1f %10.2f %10.1f %14.2f\n",
		       copro_ggml_type_name(b->models[i]->type), d.ttft_ms, d.tpot_ms,
		       1e3 / d.tpot_ms, (double)b->models[i]->m->weight_bytes / d.tpot_ms * 1e-6);
		fflush(stdout);
	}
	printf("  prefill ms: submit to first token (the prompt's one forward step); ms/token: "
	       "first to last token / (tokens - 1);\n"
	       "  weights GB/s: weight bytes / ms per token (each decode step reads every weight "
	       "once)\n");
}

static void print_batch_row(const char *type, uint32_t seqs, uint32_t reqs,
			    const struct run_result *c, const struct run_result *st,
			    const struct run_result *pd)
{
	printf("%-5s %4u %4u %6llu %6llu  %6.2f %7.1f %6.1f %4.0f%% %3llu  "
	       "%6.2f %7.1f %6.1f %4.0f%% %3llu  %7.1f %4.0f%%  %5.2fx %5.2fx\n",
	       type, seqs, reqs, (unsigned long long)c->gen, (unsigned long long)c->prompt,
	       c->wall_s, tok_s(c), (double)c->computed / (double)c->steps, 100 * c->cpu,
	       (unsigned long long)c->preemptions, st->wall_s, tok_s(st),
	       (double)st->computed / (double)st->steps, 100 * st->cpu,
	       (unsigned long long)st->preemptions, tok_s(pd), 100 * pd->cpu,
	       tok_s(c) / tok_s(st), tok_s(c) / tok_s(pd));
	if (c->short_reqs || st->short_reqs || pd->short_reqs)
		printf("      ^ %u + %u + %u requests ended before their max_tokens (context "
		       "full?)\n", c->short_reqs, st->short_reqs, pd->short_reqs);
}

static void target(int met, const char *what, double v, double goal)
{
	printf("  [%s] %-50s %.2fx (goal %.1fx)\n", met ? "met " : "miss", what, v, goal);
}

static int cmp_run(const void *a, const void *b)
{
	double x = tok_s(a), y = tok_s(b);

	return x < y ? -1 : x > y;
}

/*
 * Runs requests w[0..n) reps times with continuous, static and padded
 * static batching in turn (so a slow spell of the machine hits all), and
 * keeps the run of median throughput of each. At one sequence the padded
 * run is the static one (a batch of one has nothing to pad).
 */
static void run_row(const struct bench *b, struct model *md, struct req *w, uint32_t n,
		    uint32_t seqs, uint32_t util_at, struct run_result *cont,
		    struct run_result *stat, struct run_result *pad)
{
	struct run_result *out[3] = { cont, stat, pad };
	uint32_t reps = b->o.reps;
	struct run_result *r[3];

	for (int k = 0; k < 3; k++) {
		r[k] = calloc(reps, sizeof(*r[k]));
		if (!r[k]) {
			fprintf(stderr, "llm: out of memory\n");
			exit(1);
		}
	}
	for (uint32_t i = 0; i < reps; i++)
		for (int k = 0; k < 3; k++)
			if (k < 2 || seqs > 1)
				run_closed(md, w, n, seqs, b->kv_mib, (enum batching)k, util_at,
					   &r[k][i]);
	for (int k = 0; k < 3; k++)
		qsort(r[k], reps, sizeof(*r[k]), cmp_run);
	for (int k = 0; k < 3; k++)
		*out[k] = r[k == 2 && seqs == 1 ? 1 : k][reps / 2];
	for (int k = 0; k < 3; k++)
		free(r[k]);
}

/*
 * Runs the workload's first reqs_for(seqs) requests at every sequence count,
 * continuous then static; F32 only at 1 and 16 sequences, to keep the run
 * short. The 64-sequence runs also sample KV utilization (section 4).
 */
static void section_batching(struct bench *b)
{
	const struct opts *o = &b->o;
	uint32_t max_reqs = reqs_for(o, seq_counts[N_SEQS - 1]);
	struct req *w = workload(o, b->q8.m->hp.vocab, max_reqs, o->seed, 0);

	printf("\n2. aggregate throughput, mixed workload: seed %llu, prompt %u-%u tokens, "
	       "max_tokens %u-%u (uniform),\n   %u x seqs requests (at least %u) submitted at "
	       "once, max_seqs = seqs;\n   the same requests with continuous and two kinds of "
	       "static batching: a batch of up\n   to seqs requests is admitted together and the "
	       "next only when all of it has finished;\n   static: finished ones leave the steps; "
	       "padded: every one runs to the batch's longest\n   (a fixed batch tensor, as "
	       "servers without iteration-level scheduling run it; only\n   each request's own "
	       "tokens count); each row the median of %u runs of each\n",
	       (unsigned long long)o->seed, o->p_min, o->p_max, o->g_min, o->g_max, o->waves,
	       o->min_reqs, o->reps);
	printf("%-5s %4s %4s %6s %6s  %-32s  %-32s  %-13s\n", "", "", "", "", "",
	       "---------- continuous ----------", "------------ static ------------",
	       "-- padded ---");
	printf("%-5s %4s %4s %6s %6s  %6s %7s %6s %5s %3s  %6s %7s %6s %5s %3s  %7s %5s  "
	       "%6s %6s\n", "type", "seqs", "reqs", "gen", "prompt", "s", "tok/s", "tok/st", "cpu",
	       "pre", "s", "tok/s", "tok/st", "cpu", "pre", "tok/s", "cpu", "c/s", "c/p");
	for (int i = 0; i < 2; i++) {
		for (int j = 0; j < N_SEQS; j++) {
			uint32_t seqs = seq_counts[j], n = reqs_for(o, seqs);
			uint32_t util_at = seqs == MAX_SEQS ? (seqs * 9 + 9) / 10 : 0;
			struct model *md = b->models[i];

			if (i == 1 && seqs != 1 && seqs != 16)
				continue;
			run_row(b, md, w, n, seqs, util_at, &b->cont[i][j], &b->stat[i][j],
				&b->pad[i][j]);
			b->ran[i][j] = 1;
			print_batch_row(copro_ggml_type_name(md->type), seqs, n,
					&b->cont[i][j], &b->stat[i][j], &b->pad[i][j]);
			fflush(stdout);
		}
	}
	workload_free(w, max_reqs);
	printf("  gen: tokens generated; tok/s: gen / wall time (prompt tokens are computed but "
	       "not counted);\n"
	       "  tok/st: tokens computed per forward step (prompt chunks and decode tokens);\n"
	       "  cpu: CPU time of this process / wall time (below ~95%%: other work took the "
	       "CPU); pre: preemptions;\n  c/s, c/p: continuous / static, padded tok/s; at 1 "
	       "seq all run the same schedule,\n  so their c/s is this run's noise (padded is "
	       "static there)\n");
	b->capacity = (double)reqs_for(o, MAX_SEQS) / b->cont[0][N_SEQS - 1].wall_s;

	/* the same with heavy-tailed output lengths */
	w = workload(o, b->q8.m->hp.vocab, max_reqs, o->seed + 2000, 1);
	{
		uint64_t sum = 0;
		uint32_t mx = 0, n16 = reqs_for(o, 16);

		for (uint32_t i = 0; i < n16; i++) {
			sum += w[i].max_tokens;
			mx = w[i].max_tokens > mx ? w[i].max_tokens : mx;
		}
		printf("\n   heavy-tailed output lengths: seed %llu, max_tokens %u + exponential, mean "
		       "%.0f, at most %u;\n   the %u requests of the 16-sequence row: mean %.1f, "
		       "longest %u; prompts as above\n", (unsigned long long)o->seed + 2000,
		       o->g_min, (o->g_min + o->g_max) / 2.0,
		       o->g_min + (uint32_t)(TAIL_CAP * (o->g_min + o->g_max) / 2.0), n16,
		       (double)sum / n16, mx);
	}
	for (int j = 1; j < N_SEQS; j++) {
		uint32_t seqs = seq_counts[j], n = reqs_for(o, seqs);

		run_row(b, &b->q8, w, n, seqs, 0, &b->tail_cont[j], &b->tail_stat[j],
			&b->tail_pad[j]);
		b->tail_ran[j] = 1;
		print_batch_row(copro_ggml_type_name(b->q8.type), seqs, n, &b->tail_cont[j],
				&b->tail_stat[j], &b->tail_pad[j]);
		fflush(stdout);
	}
	workload_free(w, max_reqs);

	printf("\ntargets (reported, not enforced):\n");
	for (int i = 0; i < 2; i++) {
		const char *t = copro_ggml_type_name(b->models[i]->type);
		char what[96];
		double r;

		if (!b->ran[i][0] || !b->ran[i][2])
			continue;
		r = tok_s(&b->cont[i][2]) / tok_s(&b->cont[i][0]);
		snprintf(what, sizeof(what), "%s continuous, 16 seqs over 1 seq", t);
		target(r >= 4, what, r, 4.0);
		for (int j = 1; j < N_SEQS; j++) {
			if (!b->ran[i][j])
				continue;
			r = tok_s(&b->cont[i][j]) / tok_s(&b->stat[i][j]);
			snprintf(what, sizeof(what), "%s continuous over static, %u seqs", t,
				 seq_counts[j]);
			target(r >= 1.5, what, r, 1.5);
			r = tok_s(&b->cont[i][j]) / tok_s(&b->pad[i][j]);
			snprintf(what, sizeof(what), "%s continuous over padded static, %u seqs", t,
				 seq_counts[j]);
			target(r >= 1.5, what, r, 1.5);
		}
	}
	for (int j = 1; j < N_SEQS; j++) {
		char what[96];
		double r;

		if (!b->tail_ran[j])
			continue;
		r = tok_s(&b->tail_cont[j]) / tok_s(&b->tail_stat[j]);
		snprintf(what, sizeof(what), "Q8_0 heavy-tailed, cont. over static, %u seqs",
			 seq_counts[j]);
		target(r >= 1.5, what, r, 1.5);
		r = tok_s(&b->tail_cont[j]) / tok_s(&b->tail_pad[j]);
		snprintf(what, sizeof(what), "Q8_0 heavy-tailed, cont. over padded, %u seqs",
			 seq_counts[j]);
		target(r >= 1.5, what, r, 1.5);
	}
}

static int section_latency(struct bench *b)
{
	struct poisson_result p;
	double rate = b->o.rate;

	if (rate <= 0 && b->capacity <= 0) {
		fprintf(stderr, "llm: section 3 needs section 2's capacity or --rate\n");
		return -1;
	}
	if (rate <= 0)
		rate = b->o.load * b->capacity;
	printf("\n3. latency under Poisson arrivals, Q8_0: %u requests (seed %llu, the "
	       "distributions of 2), max_seqs %u,\n", b->o.poisson_reqs,
	       (unsigned long long)b->o.seed + 1000, MAX_SEQS);
	if (b->o.rate > 0)
		printf("   rate %.3f requests/s (--rate)\n", rate);
	else
		printf("   rate %.3f requests/s = %.2f x the capacity measured in 2 (64 seqs, "
		       "continuous: %.3f requests/s)\n", rate, b->o.load, b->capacity);
	bench_poisson(&b->o, &b->q8, b->kv_mib, rate, &p);
	printf("%8s %8s %9s %10s %10s %10s %10s %10s %10s %10s\n", "wall s", "gen", "tok/s",
	       "tok/step", "TTFT p50", "TTFT p99", "TTFT mean", "TPOT p50", "TPOT p99",
	       "TPOT mean");
	printf("%8.2f %8llu %9.1f %10.1f %10.1f %10.1f %10.1f %10.2f %10.2f %10.2f\n", p.wall_s,
	       (unsigned long long)p.gen, p.tput, p.mean_batch, p.ttft_p50, p.ttft_p99,
	       p.ttft_mean, p.tpot_p50, p.tpot_p99, p.tpot_mean);
	printf("  milliseconds. TTFT: from the request's arrival time (it is submitted at the "
	       "first step boundary\n  after it) to its first token; TPOT: per request, (last "
	       "token - first token) / (tokens - 1);\n  percentiles over the requests (nearest "
	       "rank: p99 of %u is the %s)\n", b->o.poisson_reqs,
	       b->o.poisson_reqs < 100 ? "maximum" : "99th");
	if (p.preemptions || p.short_reqs)
		printf("  %llu preemptions, %u requests short\n",
		       (unsigned long long)p.preemptions, p.short_reqs);
	return 0;
}

static void section_kv(struct bench *b)
{
	printf("\n4. KV utilization (live token slots / slots in allocated blocks of %u), Q8_0, "
	       "64 seqs,\n   over the steps of 2 with at least %u of 64 sequences running\n",
	       BLOCK_TOKENS, (MAX_SEQS * 9 + 9) / 10);
	printf("%-12s %7s %8s %8s\n", "batching", "steps", "mean", "min");
	for (int k = 0; k < 2; k++) {
		const struct run_result *r = k ? &b->stat[0][N_SEQS - 1] : &b->cont[0][N_SEQS - 1];

		printf("%-12s %7llu %7.1f%% %7.1f%%\n", k ? "static" : "continuous",
		       (unsigned long long)r->util_n,
		       r->util_n ? 100.0 * r->util_sum / (double)r->util_n : 0.0,
		       r->util_n ? 100.0 * r->util_min : 0.0);
	}
}

/*
 * KV utilization on longer sequences: 64 at once, prompts of 192-320 tokens
 * (chat-sized) and 96-160 generated (long enough that all are admitted
 * before the first ends: prompts enter at max_batched_tokens a step). The
 * waste is the unfilled end of each
 * sequence's last block, about half a block a sequence, so it shrinks as
 * sequences grow; the short mixed workload of section 2 shows the other end.
 */
static void section_kv_long(struct bench *b)
{
	struct opts lo = b->o;
	struct run_result r;
	struct req *w;
	uint32_t n = MAX_SEQS, kv_mib = b->kv_mib;

	lo.p_min = 192;
	lo.p_max = 320;
	lo.g_min = 96;
	lo.g_max = 160;
	/* Room for all 64 at their longest, and a quarter more: nothing is preempted. */
	{
		double need = (double)MAX_SEQS * (lo.p_max + lo.g_max + BLOCK_TOKENS) *
			      b->q8.kv_token_bytes * 1.25 / 1048576.0;

		if (need > kv_mib)
			kv_mib = (uint32_t)need + 1;
	}
	w = workload(&lo, b->q8.m->hp.vocab, n, b->o.seed + 7, 0);
	run_closed(&b->q8, w, n, MAX_SEQS, kv_mib, 0, (MAX_SEQS * 9 + 9) / 10, &r);
	printf("   longer sequences: 64 requests at once, prompt %u-%u tokens, max_tokens %u-%u, "
	       "continuous:\n", lo.p_min, lo.p_max, lo.g_min, lo.g_max);
	printf("%-12s %7llu %7.1f%% %7.1f%%\n", "continuous", (unsigned long long)r.util_n,
	       r.util_n ? 100.0 * r.util_sum / (double)r.util_n : 0.0,
	       r.util_n ? 100.0 * r.util_min : 0.0);
	workload_free(w, n);
}

static void section_prefix(struct bench *b)
{
	struct prefix_result pr;

	bench_prefix(&b->o, &b->q8, b->kv_mib, &pr);
	printf("\n5. prefix caching, Q8_0: TTFT of a %u-token prompt (a %u-token prefix, BOS "
	       "first, and %u new tokens),\n   median of %u\n", PREFIX_LEN + SUFFIX_LEN,
	       PREFIX_LEN, SUFFIX_LEN, b->o.prefix_reps);
	printf("%-44s %10s %8s %9s\n", "case", "TTFT ms", "cached", "speed-up");
	printf("%-44s %10.1f %8u %8.2fx\n", "cold scheduler (nothing cached)", pr.cold,
	       pr.cached_cold, 1.0);
	printf("%-44s %10.1f %8u %8.2fx\n", "warm scheduler, a different prefix", pr.other,
	       pr.cached_other, pr.cold / pr.other);
	printf("%-44s %10.1f %8u %8.2fx\n", "the same prefix after it finished (cached)",
	       pr.warm, pr.cached_warm, pr.cold / pr.warm);
	printf("  cached: prompt tokens found in the prefix cache (whole %u-token blocks);\n"
	       "  speed-up: cold TTFT / row TTFT\n", BLOCK_TOKENS);
}

int main(int argc, char **argv)
{
	static struct bench b = {
		.o = {
			.kv_heads = 4,
			.seed = 1,
			.p_min = 8, .p_max = 48,
			.g_min = 8, .g_max = 104,
			.waves = 2,
			.reps = 3,
			.min_reqs = 8,
			.decode_prompt = 16,
			.decode_tokens = 64,
			.poisson_reqs = 48,
			.load = 0.5,
			.prefix_reps = 3,
			.blas_threads = 1,
			.sections = 0x1f,
		},
	};
	static const char *def_vocab = "../shared/models/tokenizer.bin";
	struct opts *o = &b.o;
	const char *build = getenv("BUILD");
	double t_start = (double)now_ns() * 1e-9, cpu_start = cpu_s(), need, wall;
	char dirbuf[512], la[64];
	uint32_t max_reqs;

	if (!access(def_vocab, R_OK))
		o->vocab_file = def_vocab;
	snprintf(dirbuf, sizeof(dirbuf), "%s/bench-models", build && *build ? build : "build");
	o->dir = dirbuf;
	if (parse_args(argc, argv, o))
		return 2;
	/*
	 * OpenBLAS starts its threads when it is loaded, and after
	 * openblas_set_num_threads(1) a spare one still spun on the other CPU
	 * for a while after each product; only the environment variable, read
	 * at load, keeps it from starting. So set it and start again.
	 */
	if (!getenv("OPENBLAS_NUM_THREADS")) {
		char n[16];

		snprintf(n, sizeof(n), "%d", o->blas_threads);
		setenv("OPENBLAS_NUM_THREADS", n, 1);
		execv("/proc/self/exe", argv);
		/* No /proc: go on with the threads OpenBLAS started. */
	}
	openblas_set_num_threads(o->blas_threads);
	if (mkdir(o->dir, 0755) && errno != EEXIST) {
		fprintf(stderr, "llm: mkdir %s: %s\n", o->dir, strerror(errno));
		return 1;
	}
	if (model_open(o, COPRO_GGML_Q8_0, &b.q8) || model_open(o, COPRO_GGML_F32, &b.f32))
		return 1;
	b.models[0] = &b.q8;
	b.models[1] = &b.f32;

	/*
	 * The KV pool: every sequence of the widest row at its longest with a
	 * quarter to spare (no preemption), and at least four contexts for
	 * the prefix test.
	 */
	need = (double)MAX_SEQS * (o->p_max + o->g_max + BLOCK_TOKENS) * 1.25;
	if (need < 4.0 * b.q8.m->hp.ctx)
		need = 4.0 * b.q8.m->hp.ctx;
	b.kv_mib = (uint32_t)ceil(need * b.q8.kv_token_bytes / 1048576.0);
	max_reqs = reqs_for(o, seq_counts[N_SEQS - 1]);
	dead_cap = (max_reqs > o->poisson_reqs ? max_reqs : o->poisson_reqs) + MAX_SEQS;
	dead = calloc(dead_cap, sizeof(*dead));
	if (!dead)
		return 1;

	print_header(&b);
	for (int i = 0; i < 2; i++)
		warm_up(b.models[i], b.kv_mib);
	if (o->sections & 1)
		section_decode(&b);
	if (o->sections & 2)
		section_batching(&b);
	if ((o->sections & 4) && section_latency(&b))
		return 2;
	if (o->sections & 2)
		{ section_kv(&b); section_kv_long(&b); }
	if (o->sections & 16)
		section_prefix(&b);

	wall = (double)now_ns() * 1e-9 - t_start;
	printf("\nbench/llm: %.1f s wall, %.0f%% of one CPU; load after: %s\n", wall,
	       100.0 * (cpu_s() - cpu_start) / wall, loadavg(la, sizeof(la)));
	copro_llama_free(b.q8.m);
	copro_llama_free(b.f32.m);
	free(dead);
	return 0;
}
