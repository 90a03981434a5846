// SPDX-License-Identifier: MIT
/*
 * test_tools.c - the command-line programs as a user runs them: --help,
 * bad flags, bad configuration, exit codes and one-line reasons, SIGHUP
 * reload and SIGTERM drain of coprod.
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
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

static char bindir[256];
static char dir[64];
static pid_t started[16];	/* daemons to kill if a test fails before stopping them */
static int n_started;

/*
 * Runs a shell command line, capturing stdout+stderr into out (truncated),
 * and returns its exit status (or -1).
 */
static int run(char *out, size_t len, const char *fmt, ...)
{
	char cmd[1024];
	va_list ap;
	FILE *p;
	size_t n;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	n = fread(out, 1, len - 1, p);
	out[n] = '\0';
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static int setup(void **state)
{
	const char *d = getenv("COPRO_COPROD");
	char *slash;

	snprintf(bindir, sizeof(bindir), "%s", d ? d : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	else
		strcpy(bindir, ".");
	strcpy(dir, "/tmp/copro-tt.XXXXXX");
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char out[256];

	for (int i = 0; i < n_started; i++)
		if (started[i] > 0 && kill(started[i], SIGKILL) == 0)
			waitpid(started[i], NULL, 0);

	run(out, sizeof(out), "rm -rf %s", dir);
	return 0;
}

static pid_t start(const char *extra, char *sock, size_t len)
{
	char cmd[512];
	pid_t pid;

	snprintf(sock, len, "%s/d%d.sock", dir, rand() % 100000);
	snprintf(cmd, sizeof(cmd), "exec %s/coprod -s %s %s 2>>%s/coprod.log", bindir, sock,
		 extra, dir);
	pid = fork();
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a crashed test */
		execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 300; i++) {
		struct stat st;

		if (stat(sock, &st) == 0) {
			if (n_started < 16)
				started[n_started++] = pid;
			return pid;
		}
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return -1;
}

/* Sends sig and waits up to 5 s; returns the exit status or -1. */
static int stop(pid_t pid, int sig)
{
	int st;

	for (int i = 0; i < n_started; i++)
		if (started[i] == pid)
			started[i] = 0;	/* reaped below: never signal it again */

	kill(pid, sig);
	for (int i = 0; i < 500; i++) {
		if (waitpid(pid, &st, WNOHANG) == pid)
			return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &st, 0);
	return -1;
}

static void should_print_help_and_exit_zero(void **state)
{
	static const char *const tools[] = { "coprod", "coproctl", "copro-bench", "copro-model",
					     "copro-infer", "copro-gen" };
	char out[4096];

	for (unsigned int i = 0; i < sizeof(tools) / sizeof(tools[0]); i++) {
		assert_int_equal(run(out, sizeof(out), "%s/%s --help", bindir, tools[i]), 0);
		assert_non_null(strstr(out, "usage"));
		assert_int_equal(run(out, sizeof(out), "%s/%s -h", bindir, tools[i]), 0);
	}
}

static void should_exit_two_on_a_bad_flag(void **state)
{
	static const char *const tools[] = { "coprod", "coproctl", "copro-bench" };
	char out[4096];

	for (unsigned int i = 0; i < 3; i++)
		assert_int_equal(run(out, sizeof(out), "%s/%s --no-such-flag", bindir, tools[i]), 2);
	assert_int_equal(run(out, sizeof(out), "%s/coprod -i fast", bindir), 2);
	assert_non_null(strstr(out, "fast"));
	assert_int_equal(run(out, sizeof(out), "%s/coproctl frobnicate", bindir), 2);
	assert_non_null(strstr(out, "unknown command"));
	assert_int_equal(run(out, sizeof(out), "%s/copro-model frobnicate", bindir), 2);
	assert_int_equal(run(out, sizeof(out), "%s/copro-model mlp --in 0 --out 1 -o %s/m.onnx",
			     bindir, dir), 2);
	assert_int_equal(run(out, sizeof(out), "%s/copro-model mlp --in 4 --hidden 8,x --out 1 -o %s/m.onnx",
			     bindir, dir), 2);
	assert_int_equal(run(out, sizeof(out), "%s/copro-model mlp --in 4 --out 1", bindir), 2);
}

static void should_name_the_line_of_a_bad_config(void **state)
{
	char out[4096], path[128];
	FILE *f;

	snprintf(path, sizeof(path), "%s/bad.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[server]\nspin_us = 10\nidle = fast\n");
	fclose(f);
	assert_int_equal(run(out, sizeof(out), "%s/coprod -c %s -s %s/x.sock", bindir, path, dir), 1);
	assert_non_null(strstr(out, "bad.conf:3:"));
	assert_non_null(strstr(out, "idle"));
	assert_int_equal(run(out, sizeof(out), "%s/coprod -c %s/missing.conf", bindir, dir), 1);
	assert_non_null(strstr(out, "missing.conf"));
}

static void should_say_in_one_line_when_no_daemon_listens(void **state)
{
	char out[4096];

	assert_int_equal(run(out, sizeof(out), "%s/copro-model info %s/none.onnx", bindir, dir), 1);
	assert_non_null(strstr(out, "none.onnx"));
	assert_int_equal(run(out, sizeof(out), "%s/coproctl -s %s/none.sock status", bindir, dir), 1);
	assert_non_null(strstr(out, "cannot connect"));
	assert_non_null(strchr(out, '\n'));
	assert_null(strchr(strchr(out, '\n') + 1, '\n'));
	assert_int_equal(run(out, sizeof(out), "%s/copro-bench -s %s/none.sock -n 10", bindir, dir), 1);
	assert_non_null(strstr(out, "cannot connect"));
}

static void should_refuse_a_second_daemon_on_a_live_socket(void **state)
{
	char sock[128], out[4096];
	pid_t pid = start("", sock, sizeof(sock));

	assert_true(pid > 0);
	assert_int_equal(run(out, sizeof(out), "%s/coprod -s %s", bindir, sock), 1);
	assert_non_null(strstr(out, "already"));
	assert_int_equal(stop(pid, SIGTERM), 0);
}

static void should_ping_and_show_status(void **state)
{
	char sock[128], out[8192];
	pid_t pid = start("", sock, sizeof(sock));

	assert_true(pid > 0);
	assert_int_equal(run(out, sizeof(out), "%s/coproctl -s %s ping -n 2", bindir, sock), 0);
	assert_non_null(strstr(out, "control: seq=2"));
	assert_non_null(strstr(out, "ring:    seq=2"));
	assert_int_equal(run(out, sizeof(out), "%s/coproctl -s %s status", bindir, sock), 0);
	/*
	 * The ping client's session may still be listed: a closed client's
	 * io_uring (which holds its socket) is torn down by the kernel later.
	 */
	assert_non_null(strstr(out, "\nclients "));
	assert_non_null(strstr(out, "state=active"));
	assert_non_null(strstr(out, "model name=echo"));
	assert_non_null(strstr(out, "model name=noop"));
	assert_int_equal(stop(pid, SIGTERM), 0);
}

static void should_reload_the_config_on_sighup(void **state)
{
	char sock[128], out[8192], path[128], extra[256];
	FILE *f;
	pid_t pid;

	snprintf(path, sizeof(path), "%s/hup.conf", dir);
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[server]\nidle = sleep\nspin_us = 50\n");
	fclose(f);
	snprintf(extra, sizeof(extra), "-c %s", path);
	pid = start(extra, sock, sizeof(sock));
	assert_true(pid > 0);
	assert_int_equal(run(out, sizeof(out), "%s/coproctl -s %s status", bindir, sock), 0);
	assert_non_null(strstr(out, "idle sleep"));

	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[server]\nidle = yield\nspin_us = 7\n");
	fclose(f);
	kill(pid, SIGHUP);
	for (int i = 0; i < 100; i++) {
		run(out, sizeof(out), "%s/coproctl -s %s status", bindir, sock);
		if (strstr(out, "idle yield"))
			break;
		usleep(20000);
	}
	assert_non_null(strstr(out, "idle yield"));
	assert_non_null(strstr(out, "spin_us 7"));

	/* A broken file on reload keeps the running configuration. */
	f = fopen(path, "w");
	assert_non_null(f);
	fprintf(f, "[server]\nidle = nope\n");
	fclose(f);
	kill(pid, SIGHUP);
	usleep(100000);
	assert_int_equal(run(out, sizeof(out), "%s/coproctl -s %s status", bindir, sock), 0);
	assert_non_null(strstr(out, "idle yield"));
	assert_int_equal(stop(pid, SIGTERM), 0);
}

static void should_drain_on_sigterm_and_remove_its_socket(void **state)
{
	char sock[128];
	struct stat st;
	pid_t pid = start("-i spin", sock, sizeof(sock));

	assert_true(pid > 0);
	assert_int_equal(stop(pid, SIGTERM), 0);
	assert_int_equal(stat(sock, &st), -1);
	pid = start("", sock, sizeof(sock));
	assert_true(pid > 0);
	assert_int_equal(stop(pid, SIGINT), 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_print_help_and_exit_zero),
		cmocka_unit_test(should_exit_two_on_a_bad_flag),
		cmocka_unit_test(should_name_the_line_of_a_bad_config),
		cmocka_unit_test(should_say_in_one_line_when_no_daemon_listens),
		cmocka_unit_test(should_refuse_a_second_daemon_on_a_live_socket),
		cmocka_unit_test(should_ping_and_show_status),
		cmocka_unit_test(should_reload_the_config_on_sighup),
		cmocka_unit_test(should_drain_on_sigterm_and_remove_its_socket),
	};

	srand((unsigned int)getpid());
	return cmocka_run_group_tests_name("tools", tests, setup, teardown);
}
