// SPDX-License-Identifier: MIT
/*
 * test_client.c - libcopro through its public API: argument checking,
 * error strings, and the request path against a real coprod.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "copro.h"

static char dir[64];
static char sock[128];
static pid_t daemon_pid;

static int start_daemon(void **state)
{
	const char *bin = getenv("COPRO_COPROD");

	if (!bin)
		bin = "build/bin/coprod";
	strcpy(dir, "/tmp/copro-tc.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/coprod.sock", dir);
	daemon_pid = fork();
	if (daemon_pid == 0) {
		int fd = open("/dev/null", O_WRONLY);

		dup2(fd, STDERR_FILENO);
		execl(bin, "coprod", "-s", sock, "-i", "sleep", (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200; i++) {
		struct stat st;

		if (stat(sock, &st) == 0)
			return 0;
		usleep(10000);
	}
	return -1;
}

static int stop_daemon(void **state)
{
	int st;

	kill(daemon_pid, SIGTERM);
	waitpid(daemon_pid, &st, 0);
	unlink(sock);
	rmdir(dir);
	return 0;
}

static struct copro_client *connect_or_fail(uint32_t idle)
{
	struct copro_opts o = { .idle = idle };
	struct copro_client *c = NULL;

	assert_int_equal(copro_connect(sock, &o, &c), 0);
	assert_non_null(c);
	return c;
}

/* ---- without a daemon ---------------------------------------------------------- */

static void should_describe_every_error_code(void **state)
{
	for (int e = COPRO_E_BASE + 1; e <= COPRO_E_LAST; e++) {
		const char *s = copro_strerror(-e);

		assert_non_null(s);
		assert_string_not_equal(s, "unknown error");
	}
	assert_string_equal(copro_strerror(0), "success");
	assert_string_equal(copro_strerror(-ETIMEDOUT), "timed out");
	assert_string_equal(copro_strerror(-99999), "unknown error");
	assert_string_equal(copro_strerror(-(COPRO_E_LAST + 1)), "unknown error");
}

static void should_refuse_null_arguments(void **state)
{
	struct copro_client *c;
	struct copro_cqe cqe;
	char buf[8];

	assert_int_equal(copro_connect(sock, NULL, NULL), -EINVAL);
	assert_int_equal(copro_lookup(NULL, "echo", NULL), -EINVAL);
	assert_int_equal(copro_ping(NULL, NULL), -EINVAL);
	assert_int_equal(copro_status(NULL, buf, sizeof(buf)), -EINVAL);
	assert_int_equal(copro_submit(NULL, NULL, 1), -EINVAL);
	assert_int_equal(copro_poll(NULL, &cqe, 1), -EINVAL);
	assert_int_equal(copro_wait(NULL, &cqe, 1, 0), -EINVAL);
	assert_int_equal(copro_run(NULL, NULL, 0), -EINVAL);
	assert_int_equal(copro_cancel(NULL, 1), -EINVAL);
	assert_int_equal(copro_default_socket(NULL, 10), -EINVAL);
	copro_close(NULL);
	copro_tensor_free(NULL, NULL);
	(void)c;
}

static void should_fail_clearly_without_a_daemon(void **state)
{
	struct copro_client *c = (void *)1;

	assert_int_equal(copro_connect("/tmp/copro-no-such-dir/x.sock", NULL, &c), -ENOENT);
	assert_null(c);
}

static void should_reject_bad_options(void **state)
{
	struct copro_client *c;
	struct copro_opts o = { .idle = 7 };

	assert_int_equal(copro_connect(sock, &o, &c), -EINVAL);
	memset(&o, 0, sizeof(o));
	o.resv[2] = 1;
	assert_int_equal(copro_connect(sock, &o, &c), -EINVAL);
	memset(&o, 0, sizeof(o));
	o.sq_entries = 1u << 20;
	assert_int_equal(copro_connect(sock, &o, &c), -EINVAL);
	memset(&o, 0, sizeof(o));
	o.arena_bytes = 1ULL << 40;
	assert_int_equal(copro_connect(sock, &o, &c), -EINVAL);
}

static void should_refuse_an_over_long_socket_path(void **state)
{
	char path[300];
	struct copro_client *c;

	memset(path, 'a', sizeof(path) - 1);
	path[sizeof(path) - 1] = '\0';
	assert_int_equal(copro_connect(path, NULL, &c), -ENAMETOOLONG);
}

/* ---- against coprod ---------------------------------------------------------------- */

static void should_echo_several_tensors_of_several_dtypes(void **state)
{
	struct copro_client *c = connect_or_fail(COPRO_IDLE_BLOCK);
	static const uint32_t dts[3] = { COPRO_DT_F32, COPRO_DT_I64, COPRO_DT_BF16 };
	struct copro_tensor in[3], out[3];
	const struct copro_tensor *ins[3], *outs[3];
	struct copro_model_info mi;
	uint64_t dims[2] = { 3, 5 };
	int ret;

	assert_int_equal(copro_lookup(c, "echo", &mi), 0);
	assert_int_not_equal(mi.handle, 0);
	assert_int_equal(mi.in[0].rank, -1);
	assert_int_equal(mi.out[0].like_input, 1);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(copro_tensor_alloc(c, dts[i], 2, dims, &in[i]), 0);
		assert_int_equal(copro_tensor_alloc(c, dts[i], 2, dims, &out[i]), 0);
		assert_int_equal(in[i].bytes, 15 * copro_dtype_size(dts[i]));
		assert_int_equal((uintptr_t)in[i].data % COPRO_ARENA_ALIGN, 0);
		for (uint64_t b = 0; b < in[i].bytes; b++)
			((uint8_t *)in[i].data)[b] = (uint8_t)(b * 7 + i);
		memset(out[i].data, 0, out[i].bytes);
		ins[i] = &in[i];
		outs[i] = &out[i];
	}
	struct copro_request req = { .model = mi.handle, .n_in = 3, .n_out = 3,
				     .in = ins, .out = outs, .user_data = 77 };
	ret = copro_run(c, &req, 2000000000LL);
	assert_int_equal(ret, (int)(in[0].bytes + in[1].bytes + in[2].bytes));
	for (int i = 0; i < 3; i++)
		assert_memory_equal(in[i].data, out[i].data, in[i].bytes);
	copro_close(c);
}

static void should_complete_a_batch_exactly_once_each(void **state)
{
	struct copro_client *c = connect_or_fail(COPRO_IDLE_BLOCK);
	enum { N = 200 };
	struct copro_request reqs[N];
	struct copro_tensor in, out;
	const struct copro_tensor *ins[1] = { &in }, *outs[1] = { &out };
	struct copro_model_info mi;
	struct copro_cqe cqes[32];
	uint8_t seen[N] = { 0 };
	uint64_t dims[1] = { 16 };
	int sent = 0, got = 0;

	assert_int_equal(copro_lookup(c, "echo", &mi), 0);
	assert_int_equal(copro_tensor_alloc(c, COPRO_DT_U8, 1, dims, &in), 0);
	assert_int_equal(copro_tensor_alloc(c, COPRO_DT_U8, 1, dims, &out), 0);
	for (int i = 0; i < N; i++)
		reqs[i] = (struct copro_request){ .model = mi.handle, .n_in = 1, .n_out = 1,
						  .in = ins, .out = outs, .user_data = i };
	while (got < N) {
		if (sent < N) {
			int r = copro_submit(c, &reqs[sent], N - sent);

			assert_true(r > 0 || r == -EAGAIN);
			if (r > 0)
				sent += r;
		}
		int n = copro_wait(c, cqes, 32, 2000000000LL);

		assert_true(n > 0);
		for (int i = 0; i < n; i++) {
			assert_int_equal(cqes[i].res, 16);
			assert_true(cqes[i].user_data < N);
			assert_int_equal(seen[cqes[i].user_data], 0);
			seen[cqes[i].user_data] = 1;
		}
		got += n;
	}
	assert_int_equal(copro_poll(c, cqes, 32), 0);
	copro_close(c);
}

static void should_keep_other_completions_while_running_one(void **state)
{
	struct copro_client *c = connect_or_fail(COPRO_IDLE_SPIN);
	struct copro_model_info mi;
	struct copro_cqe cqes[8];
	struct copro_request r = { 0 };
	int n, total = 0;

	assert_int_equal(copro_lookup(c, "noop", &mi), 0);
	r.model = mi.handle;
	for (int i = 0; i < 5; i++) {
		r.user_data = 100 + i;
		assert_int_equal(copro_submit(c, &r, 1), 1);
	}
	r.user_data = 7;
	assert_int_equal(copro_run(c, &r, 2000000000LL), 0);
	/* The five earlier completions were kept for us, in order. */
	while (total < 5) {
		n = copro_wait(c, cqes + total, 8 - total, 2000000000LL);
		assert_true(n > 0);
		total += n;
	}
	for (int i = 0; i < 5; i++)
		assert_int_equal(cqes[i].user_data, 100 + i);
	copro_close(c);
}

static void should_refuse_tensors_of_another_client(void **state)
{
	struct copro_client *a = connect_or_fail(COPRO_IDLE_BLOCK);
	struct copro_client *b = connect_or_fail(COPRO_IDLE_BLOCK);
	struct copro_model_info mi;
	struct copro_tensor tb, ta;
	uint64_t dims[1] = { 8 };
	const struct copro_tensor *ins[1] = { &tb }, *outs[1] = { &ta };

	assert_int_equal(copro_lookup(a, "echo", &mi), 0);
	assert_int_equal(copro_tensor_alloc(b, COPRO_DT_U8, 1, dims, &tb), 0);
	assert_int_equal(copro_tensor_alloc(a, COPRO_DT_U8, 1, dims, &ta), 0);
	struct copro_request r = { .model = mi.handle, .n_in = 1, .n_out = 1,
				   .in = ins, .out = outs };
	assert_int_equal(copro_submit(a, &r, 1), -EINVAL);
	copro_close(a);
	copro_close(b);
}

static void should_report_arena_exhaustion(void **state)
{
	struct copro_opts o = { .arena_bytes = 64 << 10 };
	struct copro_client *c;
	struct copro_tensor t, t2;
	uint64_t big[1] = { 1 << 20 }, dims[1] = { 1024 };
	int n = 0;

	assert_int_equal(copro_connect(sock, &o, &c), 0);
	assert_int_equal(copro_tensor_alloc(c, COPRO_DT_U8, 1, big, &t), COPRO_E_NOMEM);
	while (copro_tensor_alloc(c, COPRO_DT_U8, 1, dims, &t) == 0)
		n++;
	assert_true(n >= 60);
	copro_tensor_free(c, &t);	/* t holds the failed call's zeroed state: no-op */
	assert_int_equal(copro_tensor_alloc(c, COPRO_DT_U8, 9, dims, &t2), -EINVAL);
	assert_int_equal(copro_tensor_alloc(c, 0, 1, dims, &t2), -EINVAL);
	assert_int_equal(copro_tensor_alloc(c, COPRO_DT_MAX + 1, 1, dims, &t2), -EINVAL);
	copro_close(c);
}

static void should_time_out_a_wait_with_nothing_in_flight(void **state)
{
	struct copro_client *c = connect_or_fail(COPRO_IDLE_BLOCK);
	struct copro_cqe cqe;
	struct timespec t0, t1;
	double ms;

	assert_int_equal(copro_wait(c, &cqe, 1, 0), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(copro_wait(c, &cqe, 1, 50000000LL), -ETIMEDOUT);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	ms = (t1.tv_sec - t0.tv_sec) * 1e3 + (t1.tv_nsec - t0.tv_nsec) / 1e6;
	assert_true(ms >= 45 && ms < 1000);
	copro_close(c);
}

static void should_serve_many_clients_in_one_process(void **state)
{
	enum { K = 8 };
	struct copro_client *c[K];
	struct copro_model_info mi;
	struct copro_request r = { 0 };

	for (int i = 0; i < K; i++)
		c[i] = connect_or_fail(i % 2 ? COPRO_IDLE_SPIN : COPRO_IDLE_BLOCK);
	assert_int_equal(copro_lookup(c[0], "noop", &mi), 0);
	r.model = mi.handle;
	for (int round = 0; round < 50; round++)
		for (int i = 0; i < K; i++)
			assert_int_equal(copro_run(c[i], &r, 2000000000LL), 0);
	for (int i = 0; i < K; i++)
		copro_close(c[i]);
}

int main(void)
{
	const struct CMUnitTest offline[] = {
		cmocka_unit_test(should_describe_every_error_code),
		cmocka_unit_test(should_refuse_null_arguments),
		cmocka_unit_test(should_fail_clearly_without_a_daemon),
		cmocka_unit_test(should_refuse_an_over_long_socket_path),
	};
	const struct CMUnitTest online[] = {
		cmocka_unit_test(should_reject_bad_options),
		cmocka_unit_test(should_echo_several_tensors_of_several_dtypes),
		cmocka_unit_test(should_complete_a_batch_exactly_once_each),
		cmocka_unit_test(should_keep_other_completions_while_running_one),
		cmocka_unit_test(should_refuse_tensors_of_another_client),
		cmocka_unit_test(should_report_arena_exhaustion),
		cmocka_unit_test(should_time_out_a_wait_with_nothing_in_flight),
		cmocka_unit_test(should_serve_many_clients_in_one_process),
	};
	int fails;

	fails = cmocka_run_group_tests_name("client offline", offline, NULL, NULL);
	fails += cmocka_run_group_tests_name("client with coprod", online, start_daemon,
					     stop_daemon);
	return fails ? 1 : 0;
}
