// SPDX-License-Identifier: MIT
/*
 * test_tensor_serving.c - ONNX tensor models served by a real coprod to
 * real client processes: signature, results equal to the same plan run
 * in-process, batching across clients, bad shapes, overload, deadlines,
 * non-finite outputs, a client killed with queued work, a model that does
 * not load.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "copro.h"
#include "onnx/graph.h"
#include "onnx/plan.h"

#define IN	32
#define SEC	1000000000LL

static char bindir[256], dir[64], sock[128], model[128];
static pid_t daemon_pid;

/* aligned_alloc wants a size that is a multiple of the alignment. */
static void *alloc64(size_t n)
{
	return aligned_alloc(64, (n + 63) & ~(size_t)63);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int sh(const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Starts coprod on a config; returns its pid or -1 (and its exit status in *st). */
static pid_t start_daemon(const char *conf, int *st)
{
	pid_t pid = fork();

	if (pid == 0) {
		char log[160];
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a crashed test */
		snprintf(log, sizeof(log), "%s/coprod.log", dir);
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, STDERR_FILENO);
		execl(getenv("COPRO_COPROD") ? getenv("COPRO_COPROD") : "build/bin/coprod",
		      "coprod", "-s", sock, "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 500; i++) {
		struct stat sb;

		if (waitpid(pid, st, WNOHANG) == pid)
			return -1;
		if (stat(sock, &sb) == 0)
			return pid;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, st, 0);
	return -1;
}

static int setup(void **state)
{
	const char *d = getenv("COPRO_COPROD");
	char conf[160];
	FILE *f;
	char *slash;
	int st;

	snprintf(bindir, sizeof(bindir), "%s", d ? d : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	strcpy(dir, "/tmp/copro-ts.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/coprod.sock", dir);
	snprintf(model, sizeof(model), "%s/fraud.onnx", dir);
	if (sh("%s/copro-model mlp --in %d --hidden 64,64 --out 1 --seed 3 -o %s >/dev/null",
	       bindir, IN, model))
		return -1;
	snprintf(conf, sizeof(conf), "%s/coprod.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[server]\nidle = sleep\n\n"
		   "[model.fraud]\npath = %s\nmax_batch = 64\n\n"
		   "[model.fraud_delay]\npath = %s\nmax_batch = 64\nmax_delay_us = 2000\n\n"
		   "[model.fraud_small]\npath = %s\nmax_batch = 4\nmax_delay_us = 200000\n"
		   "queue_depth = 4\n\n"
		   "[model.fraud_strict]\npath = %s\nreject_nonfinite = 1\n\n"
		   "[model.fraud_cached]\npath = %s\ncache_mib = 1\n",
		model, model, model, model, model);
	fclose(f);
	daemon_pid = start_daemon(conf, &st);
	return daemon_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	int st = 0;

	if (daemon_pid > 0) {
		kill(daemon_pid, SIGTERM);
		waitpid(daemon_pid, &st, 0);
	}
	sh("rm -rf %s", dir);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* A client with one request's tensors for `rows` rows of `name`. */
struct cl {
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in, out;
};

static void cl_open(struct cl *k, const char *name, uint64_t rows, uint32_t idle)
{
	struct copro_opts o = { .idle = idle };
	uint64_t di[2] = { rows, IN }, dout[2] = { rows, 1 };

	assert_int_equal(copro_connect(sock, &o, &k->c), 0);
	assert_int_equal(copro_lookup(k->c, name, &k->mi), 0);
	assert_int_equal(copro_tensor_alloc(k->c, COPRO_DT_F32, 2, di, &k->in), 0);
	assert_int_equal(copro_tensor_alloc(k->c, COPRO_DT_F32, 2, dout, &k->out), 0);
}

static struct copro_request cl_req(struct cl *k, uint64_t user_data)
{
	static const struct copro_tensor *ins[1], *outs[1];
	struct copro_request r = { .model = k->mi.handle, .n_in = 1, .n_out = 1,
				   .user_data = user_data };

	ins[0] = &k->in;
	outs[0] = &k->out;
	r.in = ins;
	r.out = outs;
	return r;
}

static void fill(float *x, uint64_t rows, uint32_t seed)
{
	for (uint64_t i = 0; i < rows * IN; i++)
		x[i] = (float)((int)((i * 2654435761u + seed * 40503u) % 2001) - 1000) / 500.0f;
}

/* The same model planned in-process for `rows` rows. */
static void expected(const float *x, uint64_t rows, float *y)
{
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { (int64_t)rows, IN } };
	struct copro_kt out = { 0 };
	char err[256];
	float *xa = alloc64(rows * IN * sizeof(float));
	float *ya = alloc64(rows * sizeof(float));

	assert_int_equal(copro_graph_load(model, &g, err, sizeof(err)), 0);
	assert_int_equal(copro_plan_build(g, &in, &p, err, sizeof(err)), 0);
	memcpy(xa, x, rows * IN * sizeof(float));
	in.data = xa;
	out.data = ya;
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	memcpy(y, ya, rows * sizeof(float));
	copro_plan_free(p);
	copro_graph_free(g);
	free(xa);
	free(ya);
}

static void should_publish_the_model_signature(void **state)
{
	struct cl k;

	cl_open(&k, "fraud", 1, COPRO_IDLE_BLOCK);
	assert_int_equal(k.mi.n_in, 1);
	assert_int_equal(k.mi.n_out, 1);
	assert_int_equal(k.mi.in[0].dtype, COPRO_DT_F32);
	assert_int_equal(k.mi.in[0].rank, 2);
	assert_int_equal(k.mi.in[0].dims[0], -1);
	assert_int_equal(k.mi.in[0].dims[1], IN);
	assert_string_equal(k.mi.in[0].name, "x");
	assert_int_equal(k.mi.out[0].dims[0], -1);
	assert_int_equal(k.mi.out[0].dims[1], 1);
	copro_close(k.c);
}

static void should_equal_the_in_process_plan_for_any_rows(void **state)
{
	static const uint64_t rows_list[] = { 1, 5, 64 };

	for (unsigned int t = 0; t < 3; t++) {
		uint64_t rows = rows_list[t];
		float *y = malloc(rows * sizeof(float));
		struct cl k;
		struct copro_request r;

		cl_open(&k, "fraud", rows, COPRO_IDLE_BLOCK);
		fill(k.in.data, rows, (uint32_t)t);
		r = cl_req(&k, 7);
		assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
		expected(k.in.data, rows, y);
		/* The same plan code on the same bytes: the same bits. */
		assert_memory_equal(k.out.data, y, rows * sizeof(float));
		free(y);
		copro_close(k.c);
	}
}

/* Child: `count` requests at depth 8, each checked; exits 0 when all match. */
static void client_process(const char *name, int count, uint32_t seed)
{
	enum { DEPTH = 8 };
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in[DEPTH], out[DEPTH];
	const struct copro_tensor *ins[DEPTH][1], *outs[DEPTH][1];
	float ref[DEPTH];
	uint64_t di[2] = { 1, IN }, dout[2] = { 1, 1 };
	int sent = 0, got = 0;

	alarm(30);
	if (copro_connect(sock, &o, &c) || copro_lookup(c, name, &mi))
		_exit(2);
	for (int i = 0; i < DEPTH; i++) {
		if (copro_tensor_alloc(c, COPRO_DT_F32, 2, di, &in[i]) ||
		    copro_tensor_alloc(c, COPRO_DT_F32, 2, dout, &out[i]))
			_exit(3);
		fill(in[i].data, 1, seed + (uint32_t)i);
		expected(in[i].data, 1, &ref[i]);
		ins[i][0] = &in[i];
		outs[i][0] = &out[i];
	}
	while (got < count) {
		while (sent < count && sent - got < DEPTH) {
			int slot = sent % DEPTH;
			struct copro_request r = { .model = mi.handle, .n_in = 1, .n_out = 1,
						   .in = ins[slot], .out = outs[slot],
						   .user_data = (uint64_t)slot };

			if (copro_submit(c, &r, 1) != 1)
				_exit(4);
			sent++;
		}
		struct copro_cqe cqe;

		if (copro_wait(c, &cqe, 1, 5 * SEC) != 1 || cqe.res != 0)
			_exit(5);
		/*
		 * In a batch of several rows the GEMM runs as sgemm, alone as
		 * sgemv: the sums are ordered differently, so allow rounding.
		 */
		{
			float y = *(float *)out[cqe.user_data].data, e = ref[cqe.user_data];

			if (!(fabsf(y - e) <= 1e-6f + 1e-5f * fabsf(e)))
				_exit(6);
		}
		got++;
	}
	copro_close(c);
	_exit(0);
}

/* Reads "rows=R" and "batches=B" of a model from the status text. */
static void batch_stats(const char *name, uint64_t *batches, uint64_t *rows)
{
	struct copro_client *c;
	char buf[8192], key[96], *line;

	assert_int_equal(copro_connect(sock, NULL, &c), 0);
	assert_true(copro_status(c, buf, sizeof(buf)) > 0);
	copro_close(c);
	snprintf(key, sizeof(key), "model name=%s ", name);
	line = strstr(buf, key);
	assert_non_null(line);
	assert_non_null(strstr(line, "batches="));
	*batches = strtoull(strstr(line, "batches=") + 8, NULL, 10);
	*rows = strtoull(strstr(line, " rows=") + 6, NULL, 10);
}

static void should_batch_the_requests_of_several_client_processes(void **state)
{
	enum { K = 4, COUNT = 300 };
	uint64_t b0, r0, b1, r1;
	pid_t kids[K];

	batch_stats("fraud_delay", &b0, &r0);
	for (int i = 0; i < K; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			client_process("fraud_delay", COUNT, 100u * (uint32_t)i);
	}
	for (int i = 0; i < K; i++) {
		int st;

		waitpid(kids[i], &st, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	batch_stats("fraud_delay", &b1, &r1);
	assert_int_equal(r1 - r0, K * COUNT);
	/* 32 requests in flight and a 2 ms window: batches hold many rows. */
	print_message("fraud_delay: %llu rows in %llu batches\n",
		      (unsigned long long)(r1 - r0), (unsigned long long)(b1 - b0));
	assert_true((r1 - r0) >= 4 * (b1 - b0));
}

static void should_serve_many_processes_without_delay_too(void **state)
{
	enum { K = 3, COUNT = 500 };
	pid_t kids[K];

	for (int i = 0; i < K; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			client_process("fraud", COUNT, 7u * (uint32_t)i);
	}
	for (int i = 0; i < K; i++) {
		int st;

		waitpid(kids[i], &st, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
}

static void should_refuse_shapes_and_dtypes_the_model_does_not_take(void **state)
{
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in, out;
	const struct copro_tensor *ins[1] = { &in }, *outs[1] = { &out };
	static const struct {
		uint32_t dt;
		uint64_t in_rows, in_cols, out_rows, out_cols;
	} bad[] = {
		{ COPRO_DT_F32, 1, IN + 1, 1, 1 },	/* wrong feature count */
		{ COPRO_DT_I32, 1, IN, 1, 1 },		/* wrong dtype */
		{ COPRO_DT_F32, 65, IN, 65, 1 },	/* more rows than max_batch */
		{ COPRO_DT_F32, 0, IN, 0, 1 },		/* no rows */
		{ COPRO_DT_F32, 2, IN, 3, 1 },		/* output rows differ */
		{ COPRO_DT_F32, 1, IN, 1, 2 },		/* wrong output width */
	};

	assert_int_equal(copro_connect(sock, &o, &c), 0);
	assert_int_equal(copro_lookup(c, "fraud", &mi), 0);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t di[2] = { bad[i].in_rows, bad[i].in_cols };
		uint64_t dout[2] = { bad[i].out_rows, bad[i].out_cols };
		struct copro_request r = { .model = mi.handle, .n_in = 1, .n_out = 1,
					   .in = ins, .out = outs, .user_data = i };

		assert_int_equal(copro_tensor_alloc(c, bad[i].dt, 2, di, &in), 0);
		assert_int_equal(copro_tensor_alloc(c, COPRO_DT_F32, 2, dout, &out), 0);
		assert_int_equal(copro_run(c, &r, 5 * SEC), COPRO_E_SIGNATURE);
		copro_tensor_free(c, &in);
		copro_tensor_free(c, &out);
	}
	copro_close(c);
}

static void should_refuse_at_once_when_the_queue_is_full(void **state)
{
	struct cl k;
	struct copro_request r[12];
	struct copro_cqe cqe;
	int overload = 0, ok = 0;
	uint64_t t0 = now_ns();

	/* fraud_small: 4 queued at most, batches of 4 rows, waits 200 ms for rows. */
	cl_open(&k, "fraud_small", 1, COPRO_IDLE_BLOCK);
	fill(k.in.data, 1, 1);
	for (int i = 0; i < 12; i++)
		r[i] = cl_req(&k, (uint64_t)i);
	assert_int_equal(copro_submit(k.c, r, 12), 12);
	for (int i = 0; i < 12; i++) {
		assert_int_equal(copro_wait(k.c, &cqe, 1, 5 * SEC), 1);
		if (cqe.res == COPRO_E_OVERLOAD)
			overload++;
		else if (cqe.res == 0)
			ok++;
		/* The refusals come first, long before any batch ran. */
		if (i == 0)
			assert_true(now_ns() - t0 < 100000000ULL);
	}
	assert_true(overload >= 8 - 4);
	assert_int_equal(ok + overload, 12);
	copro_close(k.c);
}

static void should_refuse_a_request_whose_deadline_passes_in_the_queue(void **state)
{
	struct cl k;
	struct copro_request r;

	cl_open(&k, "fraud_small", 1, COPRO_IDLE_BLOCK);
	fill(k.in.data, 1, 2);
	r = cl_req(&k, 1);
	r.deadline_ns = now_ns() + 5000000ULL;	/* 5 ms, the batch waits 200 ms */
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), COPRO_E_DEADLINE);
	r.deadline_ns = now_ns() - 1;
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), COPRO_E_DEADLINE);
	copro_close(k.c);
}

static void should_cancel_a_queued_request(void **state)
{
	struct cl k;
	struct copro_request r;
	struct copro_cqe cqe[2];
	uint64_t t0;
	int got = 0, notif = 0, cancelled = 0;

	/* fraud_small waits 200 ms for rows: the request sits in the queue. */
	cl_open(&k, "fraud_small", 1, COPRO_IDLE_BLOCK);
	fill(k.in.data, 1, 4);
	r = cl_req(&k, 99);
	t0 = now_ns();
	assert_int_equal(copro_submit(k.c, &r, 1), 1);
	usleep(20000);
	assert_int_equal(copro_cancel(k.c, 99), 0);
	while (got < 2) {
		int n = copro_wait(k.c, cqe + got, 2 - got, 5 * SEC);

		assert_true(n > 0);
		got += n;
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(cqe[i].user_data, 99);
		if (cqe[i].flags & COPRO_CQE_F_NOTIF) {
			assert_int_equal(cqe[i].res, 0);
			notif++;
		} else {
			assert_int_equal(cqe[i].res, COPRO_E_CANCELLED);
			cancelled++;
		}
	}
	assert_int_equal(notif, 1);
	assert_int_equal(cancelled, 1);
	/* Handed back at once, not when the 200 ms batch window closed. */
	assert_true(now_ns() - t0 < 150000000ULL);
	/* Nothing left to cancel now. */
	assert_int_equal(copro_cancel(k.c, 99), 0);
	assert_int_equal(copro_wait(k.c, cqe, 1, 5 * SEC), 1);
	assert_true(cqe[0].flags & COPRO_CQE_F_NOTIF);
	assert_int_equal(cqe[0].res, -ENOENT);
	copro_close(k.c);
}

/* Reads "KEY=N" of a model's status line. */
static uint64_t model_stat(const char *name, const char *key)
{
	struct copro_client *c;
	char buf[8192], k[96], *line, *v;

	assert_int_equal(copro_connect(sock, NULL, &c), 0);
	assert_true(copro_status(c, buf, sizeof(buf)) > 0);
	copro_close(c);
	snprintf(k, sizeof(k), "model name=%s ", name);
	line = strstr(buf, k);
	assert_non_null(line);
	*strchrnul(line, '\n') = '\0';
	snprintf(k, sizeof(k), " %s=", key);
	v = strstr(line, k);
	assert_non_null(v);
	return strtoull(v + strlen(k), NULL, 10);
}

static void should_answer_repeated_inputs_from_the_cache(void **state)
{
	struct cl k;
	struct copro_request r;
	float first[3], again[3];
	uint64_t hits0 = model_stat("fraud_cached", "cache_hits");
	uint64_t rows0 = model_stat("fraud_cached", "rows");

	cl_open(&k, "fraud_cached", 3, COPRO_IDLE_BLOCK);
	fill(k.in.data, 3, 11);
	r = cl_req(&k, 1);
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	memcpy(first, k.out.data, sizeof(first));
	memset(k.out.data, 0, sizeof(first));
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	memcpy(again, k.out.data, sizeof(again));
	/* A hit returns the very same bytes and does not run the model. */
	assert_memory_equal(first, again, sizeof(first));
	assert_int_equal(model_stat("fraud_cached", "cache_hits"), hits0 + 1);
	assert_int_equal(model_stat("fraud_cached", "rows"), rows0 + 3);
	/* One changed byte is another key. */
	((float *)k.in.data)[5] += 1.0f;
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	assert_int_equal(model_stat("fraud_cached", "cache_hits"), hits0 + 1);
	assert_int_equal(model_stat("fraud_cached", "rows"), rows0 + 6);
	copro_close(k.c);
}

static void should_keep_the_cache_within_its_bytes(void **state)
{
	struct cl k;
	struct copro_request r;

	cl_open(&k, "fraud_cached", 1, COPRO_IDLE_SPIN);
	r = cl_req(&k, 1);
	/* ~230 bytes an entry: 8000 distinct rows overflow 1 MiB. */
	fill(k.in.data, 1, 5);
	for (uint32_t i = 0; i < 8000; i++) {
		((float *)k.in.data)[0] = (float)i;	/* distinct inputs */
		assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	}
	assert_true(model_stat("fraud_cached", "cache_evictions") > 0);
	assert_true(model_stat("fraud_cached", "cache_bytes") <= 1ULL << 20);
	copro_close(k.c);
}

static void should_pass_nan_through_unless_the_model_rejects_it(void **state)
{
	struct cl k, s;
	struct copro_request r;

	cl_open(&k, "fraud", 1, COPRO_IDLE_BLOCK);
	fill(k.in.data, 1, 3);
	((float *)k.in.data)[0] = NAN;
	r = cl_req(&k, 1);
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	assert_true(isnan(((float *)k.out.data)[0]));
	copro_close(k.c);

	cl_open(&s, "fraud_strict", 1, COPRO_IDLE_BLOCK);
	fill(s.in.data, 1, 3);
	((float *)s.in.data)[0] = NAN;
	r = cl_req(&s, 1);
	assert_int_equal(copro_run(s.c, &r, 5 * SEC), -EDOM);
	((float *)s.in.data)[0] = 0.5f;
	assert_int_equal(copro_run(s.c, &r, 5 * SEC), 0);
	copro_close(s.c);
}

static void should_survive_a_client_killed_with_queued_work(void **state)
{
	for (int round = 0; round < 20; round++) {
		pid_t kid = fork();

		if (kid == 0) {
			struct cl k;
			struct copro_request r[4];

			alarm(10);
			cl_open(&k, "fraud_small", 1, COPRO_IDLE_BLOCK);
			for (int i = 0; i < 4; i++)
				r[i] = cl_req(&k, (uint64_t)i);
			copro_submit(k.c, r, 4);
			raise(SIGKILL);
		}
		waitpid(kid, NULL, 0);
	}
	/* The queued work finishes into arenas that outlived their clients; others go on. */
	should_equal_the_in_process_plan_for_any_rows(state);
}

static void should_exit_with_a_reason_when_a_model_does_not_load(void **state)
{
	char conf[160], log[160], buf[4096] = "";
	FILE *f;
	int st = 0, n;
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/bad.conf", dir);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[model.broken]\npath = %s\n", conf);	/* not an ONNX file */
	fclose(f);
	{
		char saved[128];

		strcpy(saved, sock);
		snprintf(sock, sizeof(sock), "%s/bad.sock", dir);
		pid = start_daemon(conf, &st);
		strcpy(sock, saved);
	}
	assert_int_equal(pid, -1);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	snprintf(log, sizeof(log), "%s/coprod.log", dir);
	f = fopen(log, "r");
	assert_non_null(f);
	n = (int)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	assert_non_null(strstr(buf, "model broken"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_publish_the_model_signature),
		cmocka_unit_test(should_equal_the_in_process_plan_for_any_rows),
		cmocka_unit_test(should_batch_the_requests_of_several_client_processes),
		cmocka_unit_test(should_serve_many_processes_without_delay_too),
		cmocka_unit_test(should_refuse_shapes_and_dtypes_the_model_does_not_take),
		cmocka_unit_test(should_refuse_at_once_when_the_queue_is_full),
		cmocka_unit_test(should_refuse_a_request_whose_deadline_passes_in_the_queue),
		cmocka_unit_test(should_cancel_a_queued_request),
		cmocka_unit_test(should_answer_repeated_inputs_from_the_cache),
		cmocka_unit_test(should_keep_the_cache_within_its_bytes),
		cmocka_unit_test(should_pass_nan_through_unless_the_model_rejects_it),
		cmocka_unit_test(should_survive_a_client_killed_with_queued_work),
		cmocka_unit_test(should_exit_with_a_reason_when_a_model_does_not_load),
	};

	return cmocka_run_group_tests_name("tensor models through coprod", tests, setup, teardown);
}
