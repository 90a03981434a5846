// SPDX-License-Identifier: MIT
/*
 * test_model_mgmt.c - models loaded, replaced and unloaded at run time
 * (copro_load, copro_unload, `coproctl load|unload`) on a real coprod
 * while real client processes keep sending requests: versions under one
 * handle, draining, a file replaced under a loaded model, the response
 * cache across versions, and every bad request refused with its reason.
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

#include "daemon.h"

#include "copro.h"
#include "onnx/graph.h"
#include "onnx/plan.h"

#define IN	16
#define SEC	1000000000LL

static char bindir[256], dir[64], sock[128], model_a[128], model_b[128], live[128];
static pid_t daemon_pid;

static void *alloc64(size_t n)
{
	return aligned_alloc(64, (n + 63) & ~(size_t)63);
}

#define sh test_sh

/* Starts coprod on the config file conf; returns its pid or -1. */
static pid_t start_daemon(const char *conf)
{
	char log[160];
	int st;

	snprintf(log, sizeof(log), "%s/coprod.log", dir);
	return test_daemon_start(sock, conf, log, &st);
}

static int setup(void **state)
{
	const char *d = getenv("COPRO_COPROD");
	char conf[160];
	FILE *f;
	char *slash;

	snprintf(bindir, sizeof(bindir), "%s", d ? d : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	strcpy(dir, "/tmp/copro-mm.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/coprod.sock", dir);
	snprintf(model_a, sizeof(model_a), "%s/a.onnx", dir);
	snprintf(model_b, sizeof(model_b), "%s/b.onnx", dir);
	snprintf(live, sizeof(live), "%s/live.onnx", dir);
	if (sh("%s/copro-model mlp --in %d --hidden 32 --out 1 --seed 1 -o %s >/dev/null",
	       bindir, IN, model_a) ||
	    sh("%s/copro-model mlp --in %d --hidden 32 --out 1 --seed 2 -o %s >/dev/null",
	       bindir, IN, model_b))
		return -1;
	snprintf(conf, sizeof(conf), "%s/coprod.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[server]\nidle = sleep\n");	/* no models: all loaded at run time */
	fclose(f);
	daemon_pid = start_daemon(conf);
	return daemon_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	return test_daemon_stop(daemon_pid, dir);
}

static struct copro_client *ctl(void)
{
	struct copro_client *c;

	assert_int_equal(copro_connect(sock, NULL, &c), 0);
	return c;
}

static uint32_t load(const char *name, const char *path, const char *opts)
{
	struct copro_client *c = ctl();
	char err[256];
	uint32_t v = 0;
	int ret = copro_load(c, name, path, opts, &v, err, sizeof(err));

	if (ret)
		print_message("load %s %s: %s: %s\n", name, path ? path : "-", copro_strerror(ret),
			      err);
	assert_int_equal(ret, 0);
	copro_close(c);
	return v;
}

static void unload(const char *name)
{
	struct copro_client *c = ctl();

	assert_int_equal(copro_unload(c, name, NULL), 0);
	copro_close(c);
}

/* The status line of model `name`, version `version` (0: any), or "" when absent. */
static void status_line(const char *name, uint32_t version, char *line, size_t len)
{
	struct copro_client *c = ctl();
	char buf[16384], key[128], *p;

	assert_true(copro_status(c, buf, sizeof(buf)) > 0);
	copro_close(c);
	if (version)
		snprintf(key, sizeof(key), "model name=%s handle=", name);
	else
		snprintf(key, sizeof(key), "model name=%s ", name);
	line[0] = '\0';
	for (p = strstr(buf, key); p; p = strstr(p + 1, key)) {
		char *end = strchrnul(p, '\n'), v[32];

		snprintf(v, sizeof(v), " version=%u ", version);
		if (version && !memmem(p, (size_t)(end - p), v, strlen(v)))
			continue;
		snprintf(line, len, "%.*s", (int)(end - p), p);
		return;
	}
}

/* Waits (up to 5 s) until version `version` of name is gone from the status. */
static void wait_freed(const char *name, uint32_t version)
{
	char line[1024];

	for (int i = 0; i < 500; i++) {
		status_line(name, version, line, sizeof(line));
		if (!line[0])
			return;
		usleep(10000);
	}
	fail_msg("%s version %u never drained: %s", name, version, line);
}

static void fill(float *x, uint32_t seed)
{
	for (int i = 0; i < IN; i++)
		x[i] = (float)((int)(((uint32_t)i * 2654435761u + seed * 40503u) % 2001) - 1000) /
		       500.0f;
}

/* What the model in `path` answers for one row x, planned in-process. */
static float expected(const char *path, const float *x)
{
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { 1, IN } };
	struct copro_kt out = { 0 };
	char err[256];
	float *xa = alloc64(IN * sizeof(float)), *ya = alloc64(sizeof(float)), y;

	assert_int_equal(copro_graph_load(path, &g, err, sizeof(err)), 0);
	assert_int_equal(copro_plan_build(g, &in, &p, err, sizeof(err)), 0);
	memcpy(xa, x, IN * sizeof(float));
	in.data = xa;
	out.data = ya;
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	y = ya[0];
	copro_plan_free(p);
	copro_graph_free(g);
	free(xa);
	free(ya);
	return y;
}

static int close_to(float y, float e)
{
	return fabsf(y - e) <= 1e-6f + 1e-5f * fabsf(e);
}

/* A client with one row's tensors. */
struct cl {
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in, out;
	const struct copro_tensor *ins[1], *outs[1];
};

static int cl_open(struct cl *k, const char *name)
{
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	uint64_t di[2] = { 1, IN }, dout[2] = { 1, 1 };
	int ret;

	ret = copro_connect(sock, &o, &k->c);
	if (!ret)
		ret = copro_lookup(k->c, name, &k->mi);
	if (!ret)
		ret = copro_tensor_alloc(k->c, COPRO_DT_F32, 2, di, &k->in);
	if (!ret)
		ret = copro_tensor_alloc(k->c, COPRO_DT_F32, 2, dout, &k->out);
	k->ins[0] = &k->in;
	k->outs[0] = &k->out;
	return ret;
}

/* Runs one row; returns the completion's res, the output in *y. */
static int cl_run(struct cl *k, uint32_t seed, float *y)
{
	struct copro_request r = { .model = k->mi.handle, .n_in = 1, .n_out = 1,
				   .in = k->ins, .out = k->outs, .user_data = seed };
	int ret;

	fill(k->in.data, seed);
	*(float *)k->out.data = NAN;
	ret = copro_run(k->c, &r, 5 * SEC);
	*y = *(float *)k->out.data;
	return ret;
}

/* ---- tests ------------------------------------------------------------------------ */

static void should_load_serve_and_unload_a_model_at_run_time(void **state)
{
	struct cl k;
	float x[IN], y;
	char line[1024];
	struct copro_client *c = ctl();
	struct copro_model_info mi;

	assert_int_equal(copro_lookup(c, "m1", &mi), COPRO_E_NOMODEL);
	copro_close(c);
	assert_int_equal(load("m1", model_a, "max_batch=8"), 1);
	assert_int_equal(cl_open(&k, "m1"), 0);
	assert_int_equal(k.mi.version, 1);
	assert_int_equal(k.mi.n_in, 1);
	assert_int_equal(k.mi.in[0].dims[1], IN);
	assert_int_equal(cl_run(&k, 7, &y), 0);
	fill(x, 7);
	assert_true(close_to(y, expected(model_a, x)));
	status_line("m1", 0, line, sizeof(line));
	assert_non_null(strstr(line, "state=serving"));
	assert_non_null(strstr(line, "max_batch=8"));

	unload("m1");
	/* The handle now names nothing: a clear error, at once. */
	assert_int_equal(cl_run(&k, 7, &y), COPRO_E_NOMODEL);
	assert_int_equal(copro_lookup(k.c, "m1", &mi), COPRO_E_NOMODEL);
	wait_freed("m1", 1);
	/* Loaded again, the name keeps its handle; versions go on counting. */
	assert_int_equal(load("m1", model_a, NULL), 2);
	assert_int_equal(cl_run(&k, 7, &y), 0);
	assert_true(close_to(y, expected(model_a, x)));
	unload("m1");
	copro_close(k.c);
}

static void should_serve_a_new_version_under_the_same_handle(void **state)
{
	struct cl k;
	float x[IN], y;
	char line[1024];
	struct copro_model_info mi;

	fill(x, 11);
	assert_int_equal(load("m2", model_a, NULL), 1);
	assert_int_equal(cl_open(&k, "m2"), 0);
	assert_int_equal(cl_run(&k, 11, &y), 0);
	assert_true(close_to(y, expected(model_a, x)));

	assert_int_equal(load("m2", model_b, NULL), 2);
	assert_int_equal(cl_run(&k, 11, &y), 0);
	assert_true(close_to(y, expected(model_b, x)));
	assert_int_equal(copro_lookup(k.c, "m2", &mi), 0);
	assert_int_equal(mi.handle, k.mi.handle);
	assert_int_equal(mi.version, 2);
	wait_freed("m2", 1);
	/* No path: the serving version's file again, with its options. */
	assert_int_equal(load("m2", NULL, "max_batch=4"), 3);
	status_line("m2", 3, line, sizeof(line));
	assert_non_null(strstr(line, "max_batch=4"));
	assert_non_null(strstr(line, "b.onnx"));
	unload("m2");
	copro_close(k.c);
}

/* A client process that keeps requests in flight and checks every answer. */
static void traffic_process(const char *name, uint32_t seed, int seconds)
{
	enum { DEPTH = 4 };
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in[DEPTH], out[DEPTH];
	const struct copro_tensor *ins[DEPTH][1], *outs[DEPTH][1];
	float ya[DEPTH], yb[DEPTH];
	uint64_t di[2] = { 1, IN }, dout[2] = { 1, 1 };
	long ok = 0, gone = 0;
	int busy[DEPTH] = { 0 };
	time_t end = time(NULL) + seconds;
	int inflight = 0;

	alarm(seconds + 20);
	if (copro_connect(sock, &o, &c) || copro_lookup(c, name, &mi))
		_exit(2);
	for (int i = 0; i < DEPTH; i++) {
		if (copro_tensor_alloc(c, COPRO_DT_F32, 2, di, &in[i]) ||
		    copro_tensor_alloc(c, COPRO_DT_F32, 2, dout, &out[i]))
			_exit(3);
		fill(in[i].data, seed + (uint32_t)i);
		ya[i] = expected(model_a, in[i].data);
		yb[i] = expected(model_b, in[i].data);
		ins[i][0] = &in[i];
		outs[i][0] = &out[i];
	}
	for (;;) {
		struct copro_cqe cqe;

		while (inflight < DEPTH && time(NULL) < end) {
			for (int i = 0; i < DEPTH && inflight < DEPTH; i++) {
				struct copro_request r = { .model = mi.handle, .n_in = 1,
							   .n_out = 1, .in = ins[i],
							   .out = outs[i], .user_data = (uint64_t)i };

				if (busy[i])
					continue;	/* still in flight */
				busy[i] = 1;
				*(uint32_t *)out[i].data = 0xffffffffu;	/* NaN until written */
				if (copro_submit(c, &r, 1) != 1)
					_exit(4);
				inflight++;
			}
		}
		if (!inflight)
			break;
		if (copro_wait(c, &cqe, 1, 10 * SEC) != 1)
			_exit(5);	/* a hang */
		inflight--;
		if (cqe.user_data >= DEPTH)
			_exit(9);
		busy[cqe.user_data] = 0;
		if (cqe.res == COPRO_E_NOMODEL) {
			gone++;
			continue;
		}
		if (cqe.res != 0)
			_exit(6);
		{
			float y = *(float *)out[cqe.user_data].data;
			int i = (int)cqe.user_data;

			/* Either version's answer, never a mix or garbage. */
			if (!close_to(y, ya[i]) && !close_to(y, yb[i]))
				_exit(7);
		}
		ok++;
	}
	copro_close(c);
	_exit(ok > 0 ? 0 : 8);
}

static void should_keep_serving_while_versions_come_and_go(void **state)
{
	enum { K = 3, SECONDS = 3 };
	pid_t kids[K];
	uint32_t v = 0;

	assert_int_equal(load("m3", model_a, "max_batch=16"), 1);
	for (int i = 0; i < K; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			traffic_process("m3", 100u * (uint32_t)i, SECONDS);
	}
	/* Swap versions under the traffic, alternating the two files. */
	for (int i = 0; i < 12; i++) {
		usleep(150000);
		v = load("m3", i % 2 ? model_a : model_b, i % 3 ? NULL : "max_delay_us=500");
	}
	assert_int_equal(v, 13);
	for (int i = 0; i < K; i++) {
		int st;

		waitpid(kids[i], &st, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	for (uint32_t old = 1; old < v; old++)
		wait_freed("m3", old);
	unload("m3");
	wait_freed("m3", v);
}

static void should_finish_queued_requests_when_unloaded(void **state)
{
	enum { N = 6 };
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in[N], out[N];
	const struct copro_tensor *ins[N][1], *outs[N][1];
	uint64_t di[2] = { 1, IN }, dout[2] = { 1, 1 };
	struct copro_cqe cqe[N];
	int got = 0;

	/* A long batching window keeps the requests queued at the unload. */
	assert_int_equal(load("m4", model_a, "max_batch=64\nmax_delay_us=300000"), 1);
	assert_int_equal(copro_connect(sock, &o, &c), 0);
	assert_int_equal(copro_lookup(c, "m4", &mi), 0);
	for (int i = 0; i < N; i++) {
		struct copro_request r = { .model = mi.handle, .n_in = 1, .n_out = 1,
					   .user_data = (uint64_t)i };

		assert_int_equal(copro_tensor_alloc(c, COPRO_DT_F32, 2, di, &in[i]), 0);
		assert_int_equal(copro_tensor_alloc(c, COPRO_DT_F32, 2, dout, &out[i]), 0);
		fill(in[i].data, (uint32_t)i);
		ins[i][0] = &in[i];
		outs[i][0] = &out[i];
		r.in = ins[i];
		r.out = outs[i];
		assert_int_equal(copro_submit(c, &r, 1), 1);
	}
	usleep(20000);
	unload("m4");
	while (got < N) {
		int n = copro_wait(c, cqe + got, N - got, 5 * SEC);

		assert_true(n > 0);
		got += n;
	}
	for (int i = 0; i < N; i++) {
		float x[IN];

		assert_int_equal(cqe[i].res, 0);
		fill(x, (uint32_t)cqe[i].user_data);
		assert_true(close_to(*(float *)out[cqe[i].user_data].data,
				     expected(model_a, x)));
	}
	wait_freed("m4", 1);
	copro_close(c);
}

static void should_keep_serving_when_the_file_is_replaced(void **state)
{
	struct copro_client *c;
	struct cl k;
	float x[IN], y;
	char err[256];
	uint32_t v;

	fill(x, 5);
	assert_int_equal(sh("cp %s %s", model_a, live), 0);
	assert_int_equal(load("m5", live, NULL), 1);
	assert_int_equal(cl_open(&k, "m5"), 0);
	/* Replaced by garbage, then by another model: the loaded one is unaffected. */
	assert_int_equal(sh("head -c 3000 /dev/urandom > %s.tmp && mv %s.tmp %s", live, live, live),
			 0);
	assert_int_equal(cl_run(&k, 5, &y), 0);
	assert_true(close_to(y, expected(model_a, x)));
	/* Reloading the garbage fails with a reason and leaves version 1 serving. */
	c = ctl();
	assert_true(copro_load(c, "m5", NULL, NULL, &v, err, sizeof(err)) < 0);
	print_message("reload of a corrupted file: %s\n", err);
	assert_true(strlen(err) > 0);
	copro_close(c);
	assert_int_equal(cl_run(&k, 5, &y), 0);
	assert_true(close_to(y, expected(model_a, x)));
	/* Overwritten in place with another model: still version 1's answers. */
	assert_int_equal(sh("cat %s > %s", model_b, live), 0);
	assert_int_equal(cl_run(&k, 5, &y), 0);
	assert_true(close_to(y, expected(model_a, x)));
	/* Until it is loaded as the next version. */
	assert_int_equal(load("m5", NULL, NULL), 2);
	assert_int_equal(cl_run(&k, 5, &y), 0);
	assert_true(close_to(y, expected(model_b, x)));
	unload("m5");
	copro_close(k.c);
}

static void should_not_answer_from_the_previous_versions_cache(void **state)
{
	struct cl k;
	float x[IN], y;
	char line[1024];

	fill(x, 9);
	assert_int_equal(load("m6", model_a, "cache_mib=1"), 1);
	assert_int_equal(cl_open(&k, "m6"), 0);
	assert_int_equal(cl_run(&k, 9, &y), 0);
	assert_int_equal(cl_run(&k, 9, &y), 0);
	status_line("m6", 1, line, sizeof(line));
	assert_non_null(strstr(line, "cache_hits=1"));
	assert_true(close_to(y, expected(model_a, x)));
	assert_int_equal(load("m6", model_b, NULL), 2);
	assert_int_equal(cl_run(&k, 9, &y), 0);
	assert_true(close_to(y, expected(model_b, x)));
	status_line("m6", 2, line, sizeof(line));
	assert_non_null(strstr(line, "cache_hits=0"));
	unload("m6");
	copro_close(k.c);
}

static void should_refuse_bad_loads_and_unloads_with_a_reason(void **state)
{
	struct copro_client *c = ctl();
	char err[256], longname[100];
	uint32_t v;
	int ret;

	ret = copro_load(c, "x", "/nonexistent/model.onnx", NULL, &v, err, sizeof(err));
	assert_true(ret < 0);
	assert_non_null(strstr(err, "nonexistent"));
	ret = copro_load(c, "x", model_a, "max_batch=0", &v, err, sizeof(err));
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err, "max_batch"));
	ret = copro_load(c, "x", model_a, "colour=blue", &v, err, sizeof(err));
	assert_int_equal(ret, -EINVAL);
	assert_non_null(strstr(err, "colour"));
	ret = copro_load(c, "x", model_a, "max_batch", &v, err, sizeof(err));
	assert_int_equal(ret, -EINVAL);
	ret = copro_load(c, "x", NULL, NULL, &v, err, sizeof(err));
	assert_int_equal(ret, COPRO_E_NOMODEL);
	ret = copro_load(c, "echo", model_a, NULL, &v, err, sizeof(err));
	assert_int_equal(ret, -EPERM);
	assert_non_null(strstr(err, "built-in"));
	memset(longname, 'n', sizeof(longname) - 1);
	longname[sizeof(longname) - 1] = '\0';
	assert_int_equal(copro_load(c, longname, model_a, NULL, &v, err, sizeof(err)), -EINVAL);
	assert_int_equal(copro_load(c, "", model_a, NULL, &v, err, sizeof(err)), -EINVAL);
	assert_int_equal(copro_unload(c, "x", &v), COPRO_E_NOMODEL);
	assert_int_equal(copro_unload(c, "noop", &v), -EPERM);
	assert_int_equal(copro_unload(c, "", &v), -EINVAL);
	/* Nothing failed half-way: no slot or name was left behind. */
	{
		char line[1024];

		status_line("x", 0, line, sizeof(line));
		assert_string_equal(line, "");
	}
	copro_close(c);
}

static void should_load_and_unload_with_coproctl(void **state)
{
	char line[1024];

	assert_int_equal(sh("%s/coproctl -s %s load m7 %s max_batch=2 precision=bf16 >/dev/null",
			    bindir, sock, model_a), 0);
	status_line("m7", 1, line, sizeof(line));
	assert_non_null(strstr(line, "precision=bf16"));
	assert_non_null(strstr(line, "max_batch=2"));
	assert_int_equal(sh("%s/coproctl -s %s load m7 >/dev/null", bindir, sock), 0);
	wait_freed("m7", 1);
	assert_int_equal(sh("%s/coproctl -s %s load m7 bogus=1 2>/dev/null", bindir, sock), 1);
	assert_int_equal(sh("%s/coproctl -s %s load m7 /nonexistent 2>/dev/null", bindir, sock),
			 1);
	assert_int_equal(sh("%s/coproctl -s %s unload m7 >/dev/null", bindir, sock), 0);
	assert_int_equal(sh("%s/coproctl -s %s unload m7 2>/dev/null", bindir, sock), 1);
	assert_int_equal(sh("%s/coproctl -s %s unload 2>/dev/null", bindir, sock), 2);
	wait_freed("m7", 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_load_serve_and_unload_a_model_at_run_time),
		cmocka_unit_test(should_serve_a_new_version_under_the_same_handle),
		cmocka_unit_test(should_keep_serving_while_versions_come_and_go),
		cmocka_unit_test(should_finish_queued_requests_when_unloaded),
		cmocka_unit_test(should_keep_serving_when_the_file_is_replaced),
		cmocka_unit_test(should_not_answer_from_the_previous_versions_cache),
		cmocka_unit_test(should_refuse_bad_loads_and_unloads_with_a_reason),
		cmocka_unit_test(should_load_and_unload_with_coproctl),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
