/* SPDX-License-Identifier: MIT */
/*
 * copro-bench - latency percentiles and throughput of a model through coprod.
 *
 * The parent checks the flags, connects once to fail early with a clear
 * message, then forks one child per client. Each child connects on its own,
 * allocates one set of tensors per request it may keep in flight, runs the
 * warm-up, waits at a barrier so that the measured phases of all clients
 * overlap, then measures. Children record latencies in a log-linear
 * histogram in a MAP_SHARED region the parent merges afterwards: percentiles
 * over all samples, throughput over the wall time from the first client's
 * start to the last client's end.
 *
 * Three ways to drive the daemon:
 *   closed, depth 1  ping-pong: submit one, wait for it, repeat;
 *   closed, depth N  N requests in flight; every reap refills the pipeline
 *                    with one batched copro_submit();
 *   open, rate R     request k is due at t0 + k / R; it is sent as soon as
 *                    that time has come (at once when behind) and its latency
 *                    is counted from the due time, so a stall is charged to
 *                    every request it delayed (no coordinated omission).
 *
 * Every wait is bounded (BENCH_WAIT_NS); a child that cannot make progress
 * gives up and says why, and the parent kills a child whose heartbeat stops.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "copro.h"

#define BENCH_NAME		"copro-bench"
#define BENCH_WAIT_NS		(5ULL * 1000000000ULL)	/* longest wait for a completion */
#define BENCH_STALL_NS		(30ULL * 1000000000ULL)	/* parent kills a child silent this long */
#define BENCH_MAX_CLIENTS	1024
#define BENCH_MAX_DEPTH		4096	/* the largest SQ the ABI allows */
#define BENCH_MAX_BYTES		(1ULL << 30)
#define BENCH_MAX_RATE		1e9
#define BENCH_OPEN_DEPTH	64	/* in-flight cap of the open loop without -q */
#define BENCH_MSG_MAX		200
#define BENCH_EARLY_NS		50000	/* block: wake this early for a timed send */

/* ---- histogram ------------------------------------------------------------ */

/*
 * Log-linear histogram of nanoseconds (HdrHistogram's layout): values below
 * 2 * SUB are exact; above, each power of two is cut into SUB equal buckets,
 * so a bucket is at most 1/SUB = 0.8% of its values wide, and reporting its
 * midpoint is off by at most 0.4%. 7424 buckets cover all of uint64_t.
 */
#define BENCH_SUB_BITS		7
#define BENCH_SUB		(1U << BENCH_SUB_BITS)
#define BENCH_BUCKETS		(2 * BENCH_SUB + (63 - BENCH_SUB_BITS) * BENCH_SUB)

static unsigned int bench_hist_index(uint64_t v)
{
	unsigned int shift;

	if (v < 2 * BENCH_SUB)
		return (unsigned int)v;
	shift = 63 - __builtin_clzll(v) - BENCH_SUB_BITS;	/* >= 1 */
	return 2 * BENCH_SUB + (shift - 1) * BENCH_SUB + (unsigned int)((v >> shift) - BENCH_SUB);
}

/* Returns the midpoint of bucket idx, the value reported for its samples. */
static uint64_t bench_hist_value(unsigned int idx)
{
	unsigned int shift;
	uint64_t sub;

	if (idx < 2 * BENCH_SUB)
		return idx;
	shift = (idx - 2 * BENCH_SUB) / BENCH_SUB + 1;
	sub = (idx - 2 * BENCH_SUB) % BENCH_SUB + BENCH_SUB;
	return (sub << shift) + ((1ULL << shift) >> 1);
}

/* ---- what a child hands back ---------------------------------------------- */

#define BENCH_PHASE_START	0	/* connecting, warming up */
#define BENCH_PHASE_READY	1	/* at the barrier */
#define BENCH_PHASE_RUN		2	/* measuring */
#define BENCH_PHASE_DONE	3	/* finished, result valid */

/*
 * One per client, in a MAP_SHARED anonymous mapping made before fork(). The
 * child writes everything; the parent reads phase and beat_ns while the child
 * runs (relaxed: they only steer the watchdog and the barrier) and the rest
 * after waitpid(), which orders the child's stores before the parent's loads.
 */
struct bench_result {
	uint64_t hist[BENCH_BUCKETS];	/* successful latencies */
	uint64_t n;			/* samples in hist */
	uint64_t errors;		/* completions with res < 0 */
	uint64_t min_ns;
	uint64_t max_ns;
	uint64_t t_start;		/* CLOCK_MONOTONIC, measured phase */
	uint64_t t_end;
	_Atomic uint64_t beat_ns;	/* last sign of life */
	_Atomic uint32_t phase;		/* BENCH_PHASE_* */
	int32_t status;			/* 0, or why the child gave up */
	int32_t first_err;		/* res of the first failed completion */
	uint32_t resv;
	char msg[BENCH_MSG_MAX];	/* set with a non-zero status */
};

/* ---- options -------------------------------------------------------------- */

struct bench_form {
	uint32_t dtype;
	uint32_t rank;
	uint64_t dims[COPRO_MAX_RANK];
};

struct bench_opts {
	char socket[512];
	const char *model;
	uint64_t bytes;
	unsigned int clients;
	uint64_t count;
	uint64_t warmup;
	unsigned int idle;		/* COPRO_IDLE_* */
	double rate;			/* 0 = closed loop */
	unsigned int depth;		/* in flight: closed-loop depth or open-loop cap */
	int json;

	/* derived from the model's signature */
	unsigned int n_in;
	unsigned int n_out;
	struct bench_form in[COPRO_MAX_TENSORS];	/* (n_in) */
	struct bench_form out[COPRO_MAX_TENSORS];	/* (n_out) */
	int verify_echo;		/* check outputs after the warm-up */
};

static const char *const bench_idle_names[] = { "spin", "yield", "block" };

/* The --idle name of a COPRO_IDLE_* value. */
static const char *bench_idle_name(unsigned int idle)
{
	return idle == COPRO_IDLE_SPIN ? "spin" : idle == COPRO_IDLE_YIELD ? "yield" : "block";
}

static void bench_usage(FILE *f)
{
	fprintf(f,
		"usage: " BENCH_NAME " [options]\n"
		"Measures latency percentiles and throughput of a model through coprod.\n"
		"\n"
		"  -s, --socket PATH    daemon socket (default: $COPRO_SOCKET, then\n"
		"                       $XDG_RUNTIME_DIR/coprod.sock, then /tmp/coprod-UID.sock)\n"
		"  -m, --model NAME     model to run (default echo)\n"
		"  -b, --bytes N        payload bytes per request, input and output each;\n"
		"                       K, M, G suffixes are powers of 1024 (default 64;\n"
		"                       0 only with noop, which then sends no tensor)\n"
		"  -c, --clients N      client processes, each with its own connection\n"
		"                       (default 1)\n"
		"  -n, --count N        measured requests per client (default 100000)\n"
		"  -w, --warmup N       unmeasured requests per client first (default 10000)\n"
		"  -i, --idle MODE      client idle strategy: spin, yield or block (default spin)\n"
		"  -r, --rate R         open loop: R requests/s per client on a fixed schedule,\n"
		"                       latency counted from the scheduled time; 0 = closed loop\n"
		"                       (default 0)\n"
		"  -q, --depth N        requests in flight: closed loop, submitted in batches\n"
		"                       (default 1 = ping-pong); open loop, the most that may be\n"
		"                       outstanding (default %u)\n"
		"      --json           one JSON object per result instead of the table\n"
		"  -h, --help           show this help\n"
		"\n"
		"Times are in microseconds in the table, nanoseconds in JSON. count is the\n"
		"number of successful measured requests over all clients; errors the failed\n"
		"ones, left out of the percentiles; rps the successful requests per second of\n"
		"wall time, all clients together. The open loop warms up closed-loop, and\n"
		"staggers the clients' schedules so that together they send evenly.\n"
		"Exit status: 0 on success, 1 when the daemon cannot be used or every request\n"
		"failed, 2 on bad usage.\n",
		BENCH_OPEN_DEPTH);
}

static void __attribute__((format(printf, 1, 2))) bench_usage_error(const char *fmt, ...)
{
	va_list ap;

	fputs(BENCH_NAME ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(2);
}

/*
 * Parses a decimal unsigned integer within [min, max]; with scaled, one
 * trailing K, M or G multiplies by 1024, 1024^2 or 1024^3. Returns 0 or
 * -EINVAL.
 */
static int bench_parse_u64(const char *s, int scaled, uint64_t min, uint64_t max, uint64_t *out)
{
	unsigned long long v;
	unsigned int shift = 0;
	char *end;

	if (*s < '0' || *s > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno)
		return -EINVAL;
	if (scaled && *end) {
		switch (*end) {
		case 'k': case 'K': shift = 10; break;
		case 'm': case 'M': shift = 20; break;
		case 'g': case 'G': shift = 30; break;
		default: return -EINVAL;
		}
		end++;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return -EINVAL;
	v <<= shift;
	if (v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

/* Names the option getopt_long() complained about: "--name" or "-c". */
static const char *bench_opt_name(const char *arg, int opt)
{
	static char name[64];

	if (!strncmp(arg, "--", 2))
		snprintf(name, sizeof(name), "%.*s", (int)strcspn(arg, "="), arg);
	else
		snprintf(name, sizeof(name), "-%c", opt ? opt : '?');
	return name;
}

static void bench_parse_args(int argc, char **argv, struct bench_opts *o)
{
	static const struct option longopts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "model", required_argument, NULL, 'm' },
		{ "bytes", required_argument, NULL, 'b' },
		{ "clients", required_argument, NULL, 'c' },
		{ "count", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "idle", required_argument, NULL, 'i' },
		{ "rate", required_argument, NULL, 'r' },
		{ "depth", required_argument, NULL, 'q' },
		{ "json", no_argument, NULL, 'J' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *sock = NULL;
	int depth_set = 0;
	uint64_t v;
	char *end;
	int ch, ret;

	memset(o, 0, sizeof(*o));
	o->model = "echo";
	o->bytes = 64;
	o->clients = 1;
	o->count = 100000;
	o->warmup = 10000;
	o->idle = COPRO_IDLE_SPIN;
	o->depth = 1;

	opterr = 0;
	while ((ch = getopt_long(argc, argv, ":s:m:b:c:n:w:i:r:q:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'm':
			if (!*optarg || strlen(optarg) >= 64)
				bench_usage_error("invalid --model '%s': want 1 to 63 bytes",
						  optarg);
			o->model = optarg;
			break;
		case 'b':
			if (bench_parse_u64(optarg, 1, 0, BENCH_MAX_BYTES, &o->bytes))
				bench_usage_error("invalid --bytes '%s': want 0 to 1G", optarg);
			break;
		case 'c':
			if (bench_parse_u64(optarg, 0, 1, BENCH_MAX_CLIENTS, &v))
				bench_usage_error("invalid --clients '%s': want 1 to %d", optarg,
						  BENCH_MAX_CLIENTS);
			o->clients = (unsigned int)v;
			break;
		case 'n':
			if (bench_parse_u64(optarg, 0, 1, UINT64_MAX >> 1, &o->count))
				bench_usage_error("invalid --count '%s': want a positive integer",
						  optarg);
			break;
		case 'w':
			if (bench_parse_u64(optarg, 0, 0, UINT64_MAX >> 1, &o->warmup))
				bench_usage_error("invalid --warmup '%s': want an integer >= 0",
						  optarg);
			break;
		case 'i':
			for (v = 0; v < 3; v++)
				if (!strcmp(optarg, bench_idle_names[v]))
					break;
			if (v == 3)
				bench_usage_error("invalid --idle '%s': want spin, yield or block",
						  optarg);
			{
				static const unsigned int idle_of[3] = {
					COPRO_IDLE_SPIN, COPRO_IDLE_YIELD, COPRO_IDLE_BLOCK
				};

				o->idle = idle_of[v];
			}
			break;
		case 'r':
			errno = 0;
			o->rate = strtod(optarg, &end);
			if (errno || end == optarg || *end || !isfinite(o->rate) || o->rate < 0 ||
			    o->rate > BENCH_MAX_RATE)
				bench_usage_error("invalid --rate '%s': want 0 to 1e9 requests/s",
						  optarg);
			break;
		case 'q':
			if (bench_parse_u64(optarg, 0, 1, BENCH_MAX_DEPTH, &v))
				bench_usage_error("invalid --depth '%s': want 1 to %d", optarg,
						  BENCH_MAX_DEPTH);
			o->depth = (unsigned int)v;
			depth_set = 1;
			break;
		case 'J':
			o->json = 1;
			break;
		case 'h':
			bench_usage(stdout);
			exit(0);
		case ':':
			bench_usage_error("option '%s' needs an argument",
					  bench_opt_name(argv[optind - 1], optopt));
			break;
		default:
			bench_usage_error("bad option '%s' (try --help)",
					  bench_opt_name(argv[optind - 1], optopt));
		}
	}
	if (optind < argc)
		bench_usage_error("unexpected argument '%s' (try --help)", argv[optind]);
	if (o->bytes == 0 && strcmp(o->model, "noop"))
		bench_usage_error("--bytes 0 is only valid with --model noop");
	if (o->rate > 0 && !depth_set)
		o->depth = BENCH_OPEN_DEPTH;

	if (sock) {
		if (strlen(sock) >= sizeof(o->socket))
			bench_usage_error("socket path too long");
		strcpy(o->socket, sock);
	} else {
		ret = copro_default_socket(o->socket, sizeof(o->socket));
		if (ret < 0 || (size_t)ret >= sizeof(o->socket)) {
			fprintf(stderr, BENCH_NAME ": cannot name the default socket: %s\n",
				copro_strerror(ret < 0 ? ret : -ENAMETOOLONG));
			exit(1);
		}
	}
}

/* ---- tensor forms --------------------------------------------------------- */

/*
 * Fills f from a signature entry: any dtype becomes U8, any rank becomes 1;
 * the first free dim takes whatever makes the tensor about `bytes` long
 * (at least 1), the other free dims become 1. Returns 0 or -EINVAL.
 */
static int bench_form_from_info(const struct copro_tensor_info *ti, uint64_t bytes,
				struct bench_form *f)
{
	uint64_t fixed = 1, esz;
	int free_dim = -1;
	uint32_t i;

	memset(f, 0, sizeof(*f));
	f->dtype = ti->dtype ? ti->dtype : COPRO_DT_U8;
	esz = copro_dtype_size(f->dtype);
	if (!esz || ti->rank > COPRO_MAX_RANK)
		return -EINVAL;
	f->rank = ti->rank < 0 ? 1 : (uint32_t)ti->rank;
	for (i = 0; i < f->rank; i++) {
		if (ti->rank < 0 || ti->dims[i] < 0) {
			f->dims[i] = 1;
			if (free_dim < 0)
				free_dim = (int)i;
		} else {
			f->dims[i] = (uint64_t)ti->dims[i];
			if (f->dims[i] && fixed > UINT64_MAX / f->dims[i])
				return -EINVAL;
			fixed *= f->dims[i];
		}
	}
	if (free_dim >= 0 && fixed && fixed <= bytes / esz && bytes / esz / fixed > 1)
		f->dims[free_dim] = bytes / esz / fixed;
	return 0;
}

static uint64_t bench_form_bytes(const struct bench_form *f)
{
	uint64_t n = copro_dtype_size(f->dtype);
	uint32_t i;

	for (i = 0; i < f->rank; i++)
		n *= f->dims[i];
	return n;
}

/*
 * Decides the tensors of one request: fixed forms for echo and noop, the
 * model's signature for anything else. Returns 0 or -EINVAL when the
 * signature cannot be met.
 */
static int bench_pick_forms(struct bench_opts *o, const struct copro_model_info *info)
{
	struct bench_form u8 = { .dtype = COPRO_DT_U8, .rank = 1, .dims = { o->bytes } };
	unsigned int i;

	if (!strcmp(o->model, "echo")) {
		o->n_in = o->n_out = 1;
		o->in[0] = o->out[0] = u8;
		o->verify_echo = 1;
		return 0;
	}
	if (!strcmp(o->model, "noop")) {
		o->n_in = o->bytes ? 1 : 0;
		o->in[0] = u8;
		return 0;
	}
	if (info->n_in + info->n_out > COPRO_MAX_TENSORS)
		return -EINVAL;
	o->n_in = info->n_in;
	o->n_out = info->n_out;
	for (i = 0; i < o->n_in; i++)
		if (bench_form_from_info(&info->in[i], o->bytes, &o->in[i]))
			return -EINVAL;
	for (i = 0; i < o->n_out; i++) {
		if (info->out[i].like_input && i < o->n_in)
			o->out[i] = o->in[i];
		else if (bench_form_from_info(&info->out[i], o->bytes, &o->out[i]))
			return -EINVAL;
	}
	/*
	 * A tensor model batches along dim 0 (free in every tensor): every
	 * tensor of a request carries the rows that --bytes gave the first input.
	 */
	if (o->n_in && info->in[0].rank > 0 && info->in[0].dims[0] < 0) {
		int batch = 1;

		for (i = 0; i < o->n_in; i++)
			batch &= info->in[i].rank > 0 && info->in[i].dims[0] < 0;
		for (i = 0; i < o->n_out; i++)
			batch &= info->out[i].rank > 0 && info->out[i].dims[0] < 0;
		for (i = 0; batch && i < o->n_in + o->n_out; i++) {
			struct bench_form *f = i < o->n_in ? &o->in[i] : &o->out[i - o->n_in];

			f->dims[0] = o->in[0].dims[0];
		}
	}
	return 0;
}

/* Returns the connection options for o: rings and arena big enough for depth. */
static struct copro_opts bench_conn_opts(const struct bench_opts *o)
{
	struct copro_opts co;
	uint64_t per_req = 0, arena;
	unsigned int i, sq = 256;

	for (i = 0; i < o->n_in; i++)
		per_req += (bench_form_bytes(&o->in[i]) + COPRO_ARENA_ALIGN - 1) &
			   ~(uint64_t)(COPRO_ARENA_ALIGN - 1);
	for (i = 0; i < o->n_out; i++)
		per_req += (bench_form_bytes(&o->out[i]) + COPRO_ARENA_ALIGN - 1) &
			   ~(uint64_t)(COPRO_ARENA_ALIGN - 1);
	while (sq < o->depth)
		sq <<= 1;
	/* The tensors of every slot and 1 MiB of slack; libcopro adds its descriptors. */
	arena = per_req * o->depth + (1ULL << 20);
	arena = (arena + (1ULL << 20) - 1) & ~((1ULL << 20) - 1);

	memset(&co, 0, sizeof(co));
	co.sq_entries = sq;
	co.arena_bytes = arena < (4ULL << 20) ? (4ULL << 20) : arena;
	co.idle = o->idle;
	return co;
}

/* ---- one client ----------------------------------------------------------- */

struct bench_slot {
	struct copro_tensor t[COPRO_MAX_TENSORS];		/* inputs, then outputs */
	const struct copro_tensor *in[COPRO_MAX_TENSORS];
	const struct copro_tensor *out[COPRO_MAX_TENSORS];
	uint64_t t0_ns;		/* closed: when submitted; open: when due */
	uint32_t busy;
	uint32_t ok_once;	/* completed successfully at least once */
};

struct bench_ctx {
	const struct bench_opts *o;
	struct bench_result *r;
	struct copro_client *c;
	uint32_t model;
	unsigned int idx;		/* this client's number, 0..clients-1 */
	unsigned int nslots;
	struct bench_slot *slots;	/* (nslots) */
	unsigned int *free_ids;		/* (nslots) stack of idle slots */
	unsigned int nfree;
	struct copro_request *reqs;	/* (nslots) one batch */
	struct copro_cqe *cqes;		/* (nslots) */
	int record;			/* measured phase: keep samples */
};

static uint64_t bench_now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void bench_beat(struct bench_ctx *x, uint64_t now)
{
	atomic_store_explicit(&x->r->beat_ns, now, memory_order_relaxed);
}

/* Records why the child gives up; returns err so callers can return it. */
static int __attribute__((format(printf, 3, 4)))
bench_fail(struct bench_ctx *x, int err, const char *fmt, ...)
{
	va_list ap;

	if (x->r->status)
		return err;
	x->r->status = err ? err : -EIO;
	va_start(ap, fmt);
	vsnprintf(x->r->msg, sizeof(x->r->msg), fmt, ap);
	va_end(ap);
	return x->r->status;
}

static void bench_record(struct bench_ctx *x, int32_t res, uint64_t lat)
{
	struct bench_result *r = x->r;

	if (!x->record)
		return;
	if (res < 0) {
		if (!r->errors)
			r->first_err = res;
		r->errors++;
		return;
	}
	r->hist[bench_hist_index(lat)]++;
	if (!r->n || lat < r->min_ns)
		r->min_ns = lat;
	if (lat > r->max_ns)
		r->max_ns = lat;
	r->n++;
}

/* Builds the request for slot s into *req. */
static void bench_fill_req(struct bench_ctx *x, unsigned int s, struct copro_request *req)
{
	memset(req, 0, sizeof(*req));
	req->model = x->model;
	req->n_in = (uint16_t)x->o->n_in;
	req->n_out = (uint16_t)x->o->n_out;
	req->user_data = s;
	req->in = x->slots[s].in;
	req->out = x->slots[s].out;
}

/*
 * Submits the first n requests of x->reqs, whose slots are busy and came
 * off the free stack in order. Slots of requests the SQ had no room for go
 * back on the stack. Returns how many were queued (0 when the SQ was full)
 * or a negative code.
 */
static int bench_submit(struct bench_ctx *x, unsigned int n)
{
	int ret = copro_submit(x->c, x->reqs, n);
	unsigned int i;

	if (ret == -EAGAIN)
		ret = 0;
	if (ret < 0)
		return bench_fail(x, ret, "copro_submit: %s", copro_strerror(ret));
	for (i = n; i > (unsigned int)ret; i--) {
		x->slots[x->reqs[i - 1].user_data].busy = 0;
		x->free_ids[x->nfree++] = (unsigned int)x->reqs[i - 1].user_data;
	}
	return ret;
}

/*
 * Accounts n completions reaped at time now: latency from each slot's t0.
 * Returns how many requests they finished, or a negative code when one of
 * them does not belong to a request in flight.
 */
static int bench_reap(struct bench_ctx *x, int n, uint64_t now)
{
	int i, done = 0;

	for (i = 0; i < n; i++) {
		const struct copro_cqe *e = &x->cqes[i];
		struct bench_slot *sl;

		if (e->flags & (COPRO_CQE_F_NOTIF | COPRO_CQE_F_MORE))
			continue;
		if (e->user_data >= x->nslots || !x->slots[e->user_data].busy)
			return bench_fail(x, COPRO_E_PROTO,
					  "completion for unknown request %llu (res %d)",
					  (unsigned long long)e->user_data, e->res);
		sl = &x->slots[e->user_data];
		bench_record(x, e->res, now - sl->t0_ns);
		if (e->res >= 0)
			sl->ok_once = 1;
		sl->busy = 0;
		x->free_ids[x->nfree++] = (unsigned int)e->user_data;
		done++;
	}
	return done;
}

/*
 * Runs n requests closed-loop with every slot in flight: fill the pipeline
 * with one batch, then after every reap refill the freed slots with one
 * batch. Returns 0 or a negative code (the reason is in x->r).
 */
static int bench_closed(struct bench_ctx *x, uint64_t n)
{
	uint64_t issued = 0, done = 0, now, last = bench_now();
	int ret;

	while (done < n) {
		unsigned int k = 0;

		while (x->nfree && issued + k < n) {
			unsigned int s = x->free_ids[--x->nfree];

			x->slots[s].busy = 1;
			bench_fill_req(x, s, &x->reqs[k++]);
		}
		if (k) {
			unsigned int i;

			now = bench_now();
			for (i = 0; i < k; i++)
				x->slots[x->reqs[i].user_data].t0_ns = now;
			ret = bench_submit(x, k);
			if (ret < 0)
				return ret;
			issued += (unsigned int)ret;
		}
		if (issued == done) {
			/* The SQ is full of nothing of ours: cannot happen, but stay bounded. */
			if (bench_now() - last > BENCH_WAIT_NS)
				return bench_fail(x, -EAGAIN, "submission queue stays full");
			sched_yield();
			continue;
		}
		ret = copro_wait(x->c, x->cqes, x->nslots, (int64_t)BENCH_WAIT_NS);
		now = bench_now();
		bench_beat(x, now);
		if (ret == -ETIMEDOUT)
			return bench_fail(x, ret, "no completion in %llu s (%llu in flight)",
					  BENCH_WAIT_NS / 1000000000ULL,
					  (unsigned long long)(issued - done));
		if (ret < 0)
			return bench_fail(x, ret, "copro_wait: %s", copro_strerror(ret));
		ret = bench_reap(x, ret, now);
		if (ret < 0)
			return ret;
		done += (unsigned int)ret;
		last = now;
	}
	return 0;
}

/*
 * Idles until CLOCK_MONOTONIC reaches t, the way the idle strategy says.
 * Block sleeps until BENCH_EARLY_NS before t and spins the rest: a sleep
 * overshoots by tens of microseconds, and the open loop would charge that
 * lateness to the request as latency.
 */
static void bench_idle_until(struct bench_ctx *x, uint64_t t)
{
	uint64_t now = bench_now();

	while (now < t) {
		if (x->o->idle == COPRO_IDLE_BLOCK && t - now > BENCH_EARLY_NS) {
			/* Sleep in slices of at most 1 s so the heartbeat keeps going. */
			uint64_t until = t - BENCH_EARLY_NS;
			struct timespec ts;

			if (until - now > 1000000000ULL)
				until = now + 1000000000ULL;
			ts.tv_sec = (time_t)(until / 1000000000ULL);
			ts.tv_nsec = (long)(until % 1000000000ULL);
			clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
		} else if (x->o->idle == COPRO_IDLE_YIELD) {
			sched_yield();
		}
		now = bench_now();
		bench_beat(x, now);
	}
}

/*
 * Runs n requests open-loop at x->o->rate per second: request k is due at
 * t0 + k / rate and its latency counts from then, however late it is sent.
 * At most nslots are outstanding; when all are, due requests wait and their
 * latency grows, which is what the schedule is for. Returns 0 or a negative
 * code.
 */
static int bench_open(struct bench_ctx *x, uint64_t n)
{
	const double period = 1e9 / x->o->rate;
	/* Clients take turns within a period so that together they send evenly. */
	uint64_t t0 = bench_now() + (uint64_t)(period * x->idx / x->o->clients);
	uint64_t k = 0, done = 0, now, last = t0;
	int ret;

#define BENCH_DUE(i) (t0 + (uint64_t)((double)(i) * period))
	x->r->t_start = t0;
	while (done < n) {
		unsigned int nb = 0, short_sq = 0;
		int64_t tmo;

		now = bench_now();
		while (k + nb < n && x->nfree && BENCH_DUE(k + nb) <= now) {
			unsigned int s = x->free_ids[--x->nfree];

			x->slots[s].busy = 1;
			x->slots[s].t0_ns = BENCH_DUE(k + nb);
			bench_fill_req(x, s, &x->reqs[nb++]);
		}
		if (nb) {
			if (k == done)
				last = now;	/* the stall clock starts now */
			ret = bench_submit(x, nb);
			if (ret < 0)
				return ret;
			k += (unsigned int)ret;
			short_sq = (unsigned int)ret < nb;
		}
		if (k == done) {
			if (k < n)
				bench_idle_until(x, BENCH_DUE(k));
			continue;
		}

		/* Reap, waiting at most until the next request is due. */
		if (short_sq)
			tmo = 0;
		else if (k < n && x->nfree)
			tmo = (int64_t)(BENCH_DUE(k) - now);
		else
			tmo = (int64_t)BENCH_WAIT_NS;
		if (tmo <= 0) {
			ret = copro_poll(x->c, x->cqes, x->nslots);
		} else {
			ret = copro_wait(x->c, x->cqes, x->nslots, tmo);
			if (ret == -ETIMEDOUT)
				ret = 0;
		}
		now = bench_now();
		bench_beat(x, now);
		if (ret < 0)
			return bench_fail(x, ret, "copro_wait: %s", copro_strerror(ret));
		ret = bench_reap(x, ret, now);
		if (ret < 0)
			return ret;
		if (ret > 0) {
			done += (unsigned int)ret;
			last = now;
		} else if (now - last > BENCH_WAIT_NS) {
			return bench_fail(x, -ETIMEDOUT, "no completion in %llu s (%llu in flight)",
					  BENCH_WAIT_NS / 1000000000ULL,
					  (unsigned long long)(k - done));
		}
	}
#undef BENCH_DUE
	x->r->t_end = bench_now();
	return 0;
}

/* Allocates every slot's tensors and fills inputs with a per-slot byte. */
static int bench_alloc_slots(struct bench_ctx *x)
{
	const struct bench_opts *o = x->o;
	unsigned int s, i;
	int ret;

	x->slots = calloc(x->nslots, sizeof(*x->slots));
	x->free_ids = calloc(x->nslots, sizeof(*x->free_ids));
	x->reqs = calloc(x->nslots, sizeof(*x->reqs));
	x->cqes = calloc(x->nslots, sizeof(*x->cqes));
	if (!x->slots || !x->free_ids || !x->reqs || !x->cqes)
		return bench_fail(x, -ENOMEM, "out of memory");

	for (s = 0; s < x->nslots; s++) {
		struct bench_slot *sl = &x->slots[s];

		for (i = 0; i < o->n_in + o->n_out; i++) {
			const struct bench_form *f = i < o->n_in ? &o->in[i] : &o->out[i - o->n_in];

			ret = copro_tensor_alloc(x->c, f->dtype, f->rank, f->dims, &sl->t[i]);
			if (ret < 0)
				return bench_fail(x, ret,
						  "copro_tensor_alloc (%llu bytes, slot %u): %s",
						  (unsigned long long)bench_form_bytes(f), s,
						  copro_strerror(ret));
			memset(sl->t[i].data, i < o->n_in ? (int)(s * 7 + i + 1) : 0,
			       sl->t[i].bytes);
			if (i < o->n_in)
				sl->in[i] = &sl->t[i];
			else
				sl->out[i - o->n_in] = &sl->t[i];
		}
		/* Pop order hands out slot 0 first. */
		x->free_ids[x->nslots - 1 - s] = s;
	}
	x->nfree = x->nslots;
	return 0;
}

static void bench_free_slots(struct bench_ctx *x)
{
	unsigned int s, i;

	if (x->slots && x->c)
		for (s = 0; s < x->nslots; s++)
			for (i = 0; i < x->o->n_in + x->o->n_out; i++)
				copro_tensor_free(x->c, &x->slots[s].t[i]);
	free(x->cqes);
	free(x->reqs);
	free(x->free_ids);
	free(x->slots);
}

/* Checks that echo copied every used slot's input into its output. */
static int bench_verify_echo(struct bench_ctx *x)
{
	unsigned int s;

	for (s = 0; s < x->nslots; s++) {
		const struct bench_slot *sl = &x->slots[s];

		if (sl->ok_once && memcmp(sl->t[0].data, sl->t[1].data, sl->t[0].bytes))
			return bench_fail(x, COPRO_E_PROTO,
					  "echo output differs from its input (slot %u)", s);
	}
	return 0;
}

/*
 * The body of one client process: connect, warm up, report ready, block on
 * the go pipe until the parent closes it, measure. Returns the exit status.
 */
static int bench_child(const struct bench_opts *o, unsigned int idx, struct bench_result *r,
		       int go_fd)
{
	struct copro_opts co = bench_conn_opts(o);
	struct bench_ctx x = { .o = o, .r = r, .idx = idx, .nslots = o->depth };
	struct copro_model_info info;
	char b;
	int ret;

	/* Timed sleeps of the open loop should not be stretched by the 50 us default slack. */
	prctl(PR_SET_TIMERSLACK, 1UL, 0UL, 0UL, 0UL);
	bench_beat(&x, bench_now());
	ret = copro_connect(o->socket, &co, &x.c);
	if (ret < 0) {
		bench_fail(&x, ret, "cannot connect to %s (asking for a %llu MiB arena): %s",
			   o->socket, (unsigned long long)(co.arena_bytes >> 20),
			   copro_strerror(ret));
		goto out;
	}
	ret = copro_lookup(x.c, o->model, &info);
	if (ret < 0) {
		bench_fail(&x, ret, "model %s: %s", o->model, copro_strerror(ret));
		goto out_close;
	}
	x.model = info.handle;
	if (bench_alloc_slots(&x))
		goto out_free;

	if (o->warmup) {
		if (bench_closed(&x, o->warmup))
			goto out_free;
		if (o->verify_echo && bench_verify_echo(&x))
			goto out_free;
	}

	atomic_store_explicit(&r->phase, BENCH_PHASE_READY, memory_order_relaxed);
	while (read(go_fd, &b, 1) < 0 && errno == EINTR)
		;
	atomic_store_explicit(&r->phase, BENCH_PHASE_RUN, memory_order_relaxed);
	bench_beat(&x, bench_now());

	x.record = 1;
	if (o->rate > 0) {
		if (bench_open(&x, o->count))
			goto out_free;
	} else {
		r->t_start = bench_now();
		if (bench_closed(&x, o->count))
			goto out_free;
		r->t_end = bench_now();
	}
	atomic_store_explicit(&r->phase, BENCH_PHASE_DONE, memory_order_relaxed);

out_free:
	bench_free_slots(&x);
out_close:
	copro_close(x.c);
out:
	return r->status ? 1 : 0;
}

/* ---- the parent ----------------------------------------------------------- */

struct bench_summary {
	uint64_t n, errors, min_ns, max_ns, wall_ns;
	uint64_t p[4];			/* p50, p90, p99, p99.9 */
	double rps;
	int32_t first_err;
};

/* Sends SIGKILL to every child still running and reaps it. */
static void bench_kill_all(pid_t *pids, unsigned int n)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (pids[i] > 0)
			kill(pids[i], SIGKILL);
	for (i = 0; i < n; i++)
		if (pids[i] > 0) {
			while (waitpid(pids[i], NULL, 0) < 0 && errno == EINTR)
				;
			pids[i] = 0;
		}
}

/*
 * Reaps children that exited, without blocking. Returns how many are still
 * running, or -1 when one failed (its message is printed) or died.
 */
static int bench_reap_children(pid_t *pids, struct bench_result *res, unsigned int n)
{
	unsigned int i, running = 0;
	int failed = 0, st;

	for (i = 0; i < n; i++) {
		if (pids[i] <= 0)
			continue;
		if (waitpid(pids[i], &st, WNOHANG) != pids[i]) {
			running++;
			continue;
		}
		pids[i] = 0;
		if (WIFEXITED(st) && WEXITSTATUS(st) == 0)
			continue;
		failed = 1;
		if (res[i].status)
			fprintf(stderr, BENCH_NAME ": client %u: %s\n", i, res[i].msg);
		else if (WIFSIGNALED(st))
			fprintf(stderr, BENCH_NAME ": client %u: killed by signal %d\n", i,
				WTERMSIG(st));
		else
			fprintf(stderr, BENCH_NAME ": client %u: exited with status %d\n", i,
				WEXITSTATUS(st));
	}
	return failed ? -1 : (int)running;
}

/*
 * Returns 1 when a running child has shown no sign of life for
 * BENCH_STALL_NS, counting from `since` at the earliest (the barrier's end:
 * a child waiting at the barrier is silent by design).
 */
static int bench_stalled(const pid_t *pids, struct bench_result *res, unsigned int n,
			 uint64_t since, int at_barrier)
{
	uint64_t now = bench_now();
	unsigned int i;

	for (i = 0; i < n; i++) {
		uint64_t beat = atomic_load_explicit(&res[i].beat_ns, memory_order_relaxed);

		if (pids[i] <= 0)
			continue;
		if (at_barrier && atomic_load_explicit(&res[i].phase, memory_order_relaxed) ==
				  BENCH_PHASE_READY)
			continue;
		if (beat < since)
			beat = since;
		if (now > beat && now - beat > BENCH_STALL_NS) {
			fprintf(stderr, BENCH_NAME ": client %u: no progress in %llu s, "
				"giving up\n", i, BENCH_STALL_NS / 1000000000ULL);
			return 1;
		}
	}
	return 0;
}

/*
 * Returns the smallest histogram value with at least ceil(permille/1000 of n)
 * samples at or below it: the nearest-rank percentile, to within a bucket.
 */
static uint64_t bench_percentile(const uint64_t *hist, uint64_t n, unsigned int permille)
{
	uint64_t rank = n / 1000 * permille + ((n % 1000) * permille + 999) / 1000;
	uint64_t acc = 0;
	unsigned int b;

	if (rank < 1)
		rank = 1;
	for (b = 0; b < BENCH_BUCKETS - 1; b++) {
		acc += hist[b];
		if (acc >= rank)
			break;
	}
	return bench_hist_value(b);
}

/*
 * Merges the clients' results into *sum: histograms added into res[0]'s,
 * percentiles over all samples (clamped to the exact min and max), rps over
 * the wall time from the earliest measured start to the latest end.
 */
static void bench_merge(struct bench_result *res, unsigned int n, struct bench_summary *sum)
{
	static const unsigned int permille[4] = { 500, 900, 990, 999 };
	uint64_t t_start = UINT64_MAX, t_end = 0;
	unsigned int i, b;

	memset(sum, 0, sizeof(*sum));
	for (i = 0; i < n; i++) {
		const struct bench_result *r = &res[i];

		if (r->errors && !sum->errors)
			sum->first_err = r->first_err;
		sum->errors += r->errors;
		if (r->n) {
			if (!sum->n || r->min_ns < sum->min_ns)
				sum->min_ns = r->min_ns;
			if (r->max_ns > sum->max_ns)
				sum->max_ns = r->max_ns;
			sum->n += r->n;
		}
		if (r->t_start < t_start)
			t_start = r->t_start;
		if (r->t_end > t_end)
			t_end = r->t_end;
		if (i)
			for (b = 0; b < BENCH_BUCKETS; b++)
				res[0].hist[b] += r->hist[b];
	}
	sum->wall_ns = t_end > t_start ? t_end - t_start : 0;
	sum->rps = sum->wall_ns ? (double)sum->n * 1e9 / (double)sum->wall_ns : 0.0;
	if (!sum->n)
		return;
	for (i = 0; i < 4; i++) {
		uint64_t v = bench_percentile(res[0].hist, sum->n, permille[i]);

		sum->p[i] = v < sum->min_ns ? sum->min_ns : v > sum->max_ns ? sum->max_ns : v;
	}
}

/*
 * Forks the clients, runs the barrier between warm-up and measurement, waits
 * for all of them and merges their results into *sum. Returns 0, or 1 when
 * a client failed (the reason is printed).
 */
static int bench_run(const struct bench_opts *o, struct bench_summary *sum)
{
	size_t map_len = (size_t)o->clients * sizeof(struct bench_result);
	struct bench_result *res;
	struct timespec tick = { 0, 1000000 };	/* 1 ms */
	unsigned int i, j;
	uint64_t since;
	int go[2], ret = 1, left;
	pid_t *pids;

	res = mmap(NULL, map_len, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	if (res == MAP_FAILED) {
		fprintf(stderr, BENCH_NAME ": mmap: %s\n", strerror(errno));
		return 1;
	}
	pids = calloc(o->clients, sizeof(*pids));
	if (!pids) {
		fprintf(stderr, BENCH_NAME ": out of memory\n");
		goto out_unmap;
	}
	if (pipe(go) < 0) {
		fprintf(stderr, BENCH_NAME ": pipe: %s\n", strerror(errno));
		goto out_free;
	}

	fflush(NULL);
	for (i = 0; i < o->clients; i++) {
		pids[i] = fork();
		if (pids[i] < 0) {
			fprintf(stderr, BENCH_NAME ": fork: %s\n", strerror(errno));
			pids[i] = 0;
			close(go[1]);
			bench_kill_all(pids, i);
			goto out_pipe;
		}
		if (pids[i] == 0) {
			close(go[1]);
			_exit(bench_child(o, i, &res[i], go[0]));
		}
	}

	/* Barrier: every child warmed up and waits on go[0]. */
	since = bench_now();
	for (;;) {
		for (i = 0, j = 0; i < o->clients; i++)
			j += atomic_load_explicit(&res[i].phase, memory_order_relaxed) ==
			     BENCH_PHASE_READY;
		if (j == o->clients)
			break;
		left = bench_reap_children(pids, res, o->clients);
		if (left < 0 || bench_stalled(pids, res, o->clients, since, 1)) {
			close(go[1]);
			bench_kill_all(pids, o->clients);
			goto out_pipe;
		}
		nanosleep(&tick, NULL);
	}
	since = bench_now();
	close(go[1]);	/* EOF on go[0] starts every child at once */

	tick.tv_nsec = 10000000;	/* 10 ms */
	while ((left = bench_reap_children(pids, res, o->clients)) > 0) {
		if (bench_stalled(pids, res, o->clients, since, 0)) {
			left = -1;
			break;
		}
		nanosleep(&tick, NULL);
	}
	if (left < 0) {
		bench_kill_all(pids, o->clients);
		goto out_pipe;
	}

	bench_merge(res, o->clients, sum);
	ret = 0;

out_pipe:
	close(go[0]);
out_free:
	free(pids);
out_unmap:
	munmap(res, map_len);
	return ret;
}

/* ---- output --------------------------------------------------------------- */

static void bench_json_string(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

static void bench_print(const struct bench_opts *o, const struct bench_summary *s)
{
	const char *mode = o->rate > 0 ? "open" : "closed";
	const char *idle = bench_idle_name(o->idle);

	if (o->json) {
		printf("{\"model\":");
		bench_json_string(o->model);
		printf(",\"bytes\":%llu,\"clients\":%u,\"mode\":\"%s\",\"idle\":\"%s\","
		       "\"depth\":%u,\"rate\":%.10g,\"count\":%llu,\"min_ns\":%llu,"
		       "\"p50_ns\":%llu,\"p90_ns\":%llu,\"p99_ns\":%llu,\"p999_ns\":%llu,"
		       "\"max_ns\":%llu,\"rps\":%.1f,\"errors\":%llu,\"wall_ns\":%llu}\n",
		       (unsigned long long)o->bytes, o->clients, mode, idle, o->depth, o->rate,
		       (unsigned long long)s->n, (unsigned long long)s->min_ns,
		       (unsigned long long)s->p[0], (unsigned long long)s->p[1],
		       (unsigned long long)s->p[2], (unsigned long long)s->p[3],
		       (unsigned long long)s->max_ns, s->rps, (unsigned long long)s->errors,
		       (unsigned long long)s->wall_ns);
		return;
	}
	printf("%-10s %9s %7s %-6s %-5s %5s %9s %9s %9s %9s %9s %9s %9s %9s %11s %7s\n",
	       "model", "bytes", "clients", "mode", "idle", "depth", "rate", "count", "min",
	       "p50", "p90", "p99", "p99.9", "max", "rps", "errors");
	printf("%-10s %9llu %7u %-6s %-5s %5u ", o->model, (unsigned long long)o->bytes,
	       o->clients, mode, idle, o->depth);
	if (o->rate > 0)
		printf("%9.6g ", o->rate);
	else
		printf("%9s ", "-");
	if (s->n)
		printf("%9llu %9.2f %9.2f %9.2f %9.2f %9.2f %9.2f %11.0f %7llu\n",
		       (unsigned long long)s->n, s->min_ns / 1e3, s->p[0] / 1e3, s->p[1] / 1e3,
		       s->p[2] / 1e3, s->p[3] / 1e3, s->max_ns / 1e3, s->rps,
		       (unsigned long long)s->errors);
	else
		printf("%9d %9s %9s %9s %9s %9s %9s %11d %7llu\n", 0, "-", "-", "-", "-", "-",
		       "-", 0, (unsigned long long)s->errors);
	printf("(times in microseconds; rps over all clients)\n");
}

int main(int argc, char **argv)
{
	struct copro_model_info info;
	struct bench_summary sum;
	struct copro_client *c;
	struct copro_opts co;
	struct bench_opts o;
	int ret;

	bench_parse_args(argc, argv, &o);

	/*
	 * Connect once here so that a missing daemon or model is one clear line
	 * and exit 1, not one complaint per client.
	 */
	memset(&co, 0, sizeof(co));
	co.idle = o.idle;
	ret = copro_connect(o.socket, &co, &c);
	if (ret < 0) {
		fprintf(stderr, BENCH_NAME ": cannot connect to %s: %s\n", o.socket,
			copro_strerror(ret));
		return 1;
	}
	ret = copro_lookup(c, o.model, &info);
	copro_close(c);
	if (ret < 0) {
		fprintf(stderr, BENCH_NAME ": model %s: %s\n", o.model, copro_strerror(ret));
		return 1;
	}
	if (bench_pick_forms(&o, &info)) {
		fprintf(stderr, BENCH_NAME ": model %s: cannot build tensors for its signature\n",
			o.model);
		return 1;
	}

	if (bench_run(&o, &sum))
		return 1;
	if (sum.errors)
		fprintf(stderr, BENCH_NAME ": %llu of %llu requests failed, the first with: %s\n",
			(unsigned long long)sum.errors, (unsigned long long)(sum.errors + sum.n),
			copro_strerror(sum.first_err));
	bench_print(&o, &sum);
	if (!sum.n) {
		fprintf(stderr, BENCH_NAME ": every request failed\n");
		return 1;
	}
	return 0;
}
