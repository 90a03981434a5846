// SPDX-License-Identifier: MIT
/*
 * test_gen_tool.c - copro-gen, the built tool, run as a child process
 * against a real coprod serving synthetic language models: its greedy text
 * is the library's, --max-tokens, --ids, --stats, --stop and a prompt on
 * standard input do what they say, bad arguments exit 2 and an unknown
 * model 1, and Ctrl-C mid-stream exits 130 with the KV pool back to idle.
 */
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <poll.h>
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
#include "synth_llama.h"

#include "copro.h"

#define SEC	1000000000LL

static char dir[64], sock[128], tool[4096];
static pid_t daemon_pid;

/* Starts coprod on the config file conf; returns its pid or -1. */
static pid_t start_daemon(const char *conf)
{
	char log[160];
	int st;

	snprintf(log, sizeof(log), "%s/coprod.log", dir);
	return test_daemon_start(sock, conf, log, &st);
}

static int synth(const char *name, uint32_t dim, uint32_t layers, uint32_t heads,
		 uint32_t kv_heads, uint32_t hidden, uint32_t context)
{
	char path[160];

	snprintf(path, sizeof(path), "%s/%s.gguf", dir, name);
	return test_synth_llama(path, dim, layers, heads, kv_heads, hidden, context);
}

static int setup(void **state)
{
	const char *coprod = getenv("COPRO_COPROD") ? getenv("COPRO_COPROD") : "build/bin/coprod";
	char conf[160], buf[4096];
	FILE *f;

	snprintf(buf, sizeof(buf), "%s", coprod);
	snprintf(tool, sizeof(tool), "%s/copro-gen", dirname(buf));
	if (access(tool, X_OK)) {
		fprintf(stderr, "setup: %s is not built\n", tool);
		return -1;
	}
	strcpy(dir, "/tmp/copro-gtool.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/coprod.sock", dir);
	/* tiny: fast, a 256-token context; slow: a 4096-token context to interrupt. */
	if (synth("tiny", 64, 2, 4, 2, 128, 256) || synth("slow", 256, 4, 8, 4, 512, 4096))
		return -1;
	snprintf(conf, sizeof(conf), "%s/coprod.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[server]\nidle = sleep\n\n[model.tiny]\npath = %s/tiny.gguf\n"
		   "kv_cache_mib = 4\nmax_batched_tokens = 64\n\n[model.slow]\n"
		   "path = %s/slow.gguf\nkv_cache_mib = 32\n", dir, dir);
	fclose(f);
	daemon_pid = start_daemon(conf);
	return daemon_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	return test_daemon_stop(daemon_pid, dir);
}

/* ---- running the tool ---------------------------------------------------------------- */

struct out {
	char o[65536], e[16384];	/* stdout and stderr, NUL-terminated */
	size_t on, en;
	int status;			/* exit status, or 128 + signal */
};

static pid_t spawn(char **argv, int *in_fd, int *out_fd, int *err_fd)
{
	int pi[2], po[2], pe[2];
	pid_t pid;

	assert_int_equal(pipe(pi), 0);
	assert_int_equal(pipe(po), 0);
	assert_int_equal(pipe(pe), 0);
	pid = fork();
	assert_true(pid >= 0);
	if (pid == 0) {
		prctl(PR_SET_PDEATHSIG, SIGKILL);
		dup2(pi[0], STDIN_FILENO);
		dup2(po[1], STDOUT_FILENO);
		dup2(pe[1], STDERR_FILENO);
		for (int i = 0; i < 2; i++) {
			close(pi[i]);
			close(po[i]);
			close(pe[i]);
		}
		execv(tool, argv);
		_exit(127);
	}
	close(pi[0]);
	close(po[1]);
	close(pe[1]);
	*in_fd = pi[1];
	*out_fd = po[0];
	*err_fd = pe[0];
	return pid;
}

/* Reads what is ready on fd into buf; returns 0 at end of file. */
static int drain(int fd, char *buf, size_t cap, size_t *n)
{
	char sink[4096];
	ssize_t r;

	if (*n + 1 < cap)
		r = read(fd, buf + *n, cap - 1 - *n);
	else
		r = read(fd, sink, sizeof(sink));
	if (r > 0 && *n + 1 < cap) {
		*n += (size_t)r;
		buf[*n] = '\0';
	}
	return r != 0;
}

/* Collects the child's output until both pipes close, then its exit status. */
static void collect(pid_t pid, int out_fd, int err_fd, struct out *r)
{
	struct pollfd pf[2] = { { .fd = out_fd, .events = POLLIN },
				{ .fd = err_fd, .events = POLLIN } };
	int open_fds = 2, st;
	time_t end = time(NULL) + 30;

	while (open_fds) {
		int n = poll(pf, 2, 1000);

		if (time(NULL) > end) {
			kill(pid, SIGKILL);
			fail_msg("copro-gen did not finish in 30 s");
		}
		if (n <= 0)
			continue;
		for (int i = 0; i < 2; i++) {
			if (pf[i].fd < 0 || !(pf[i].revents & (POLLIN | POLLHUP | POLLERR)))
				continue;
			if (!drain(pf[i].fd, i ? r->e : r->o, i ? sizeof(r->e) : sizeof(r->o),
				   i ? &r->en : &r->on)) {
				close(pf[i].fd);
				pf[i].fd = -1;
				open_fds--;
			}
		}
	}
	assert_int_equal(waitpid(pid, &st, 0), pid);
	r->status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/*
 * Runs copro-gen -s SOCK with the NULL-terminated arguments, stdin from
 * `in` (NULL: an empty stdin); returns the output in r.
 */
static void run_tool(struct out *r, const char *in, ...)
{
	char *argv[64];
	int argc = 0, in_fd, out_fd, err_fd;
	va_list ap;
	pid_t pid;

	memset(r, 0, sizeof(*r));
	argv[argc++] = "copro-gen";
	argv[argc++] = "-s";
	argv[argc++] = sock;
	va_start(ap, in);
	for (char *a; (a = va_arg(ap, char *));) {
		assert_true(argc < 63);
		argv[argc++] = a;
	}
	va_end(ap);
	argv[argc] = NULL;
	pid = spawn(argv, &in_fd, &out_fd, &err_fd);
	/* Prompts here are small: the pipe's buffer holds them. */
	if (in)
		assert_int_equal(write(in_fd, in, strlen(in)), (ssize_t)strlen(in));
	close(in_fd);
	collect(pid, out_fd, err_fd, r);
}

/* ---- the library's answer, for comparison --------------------------------------------- */

struct run {
	int32_t toks[1024];
	uint32_t n;
	char text[16384];
	size_t len;
	struct copro_gen_result res;
};

static void lib_generate(const char *model, const char *prompt,
			 const struct copro_gen_params *p, struct run *r)
{
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK, .arena_bytes = 8 << 20 };
	struct copro_model_info mi;
	struct copro_gen_event ev;
	struct copro_client *c;
	struct copro_gen *g;
	int ret;

	memset(r, 0, sizeof(*r));
	assert_int_equal(copro_connect(sock, &o, &c), 0);
	assert_int_equal(copro_lookup(c, model, &mi), 0);
	assert_int_equal(copro_gen_start(c, mi.handle, prompt, strlen(prompt), p, 0, &g), 0);
	while ((ret = copro_gen_next(g, &ev, 20 * SEC)) >= 0) {
		assert_true(r->len + ev.len < sizeof(r->text));
		memcpy(r->text + r->len, ev.text, ev.len);
		r->len += ev.len;
		if (ret == 0)
			break;
		assert_true(r->n < 1024);
		r->toks[r->n++] = ev.token;
	}
	assert_int_equal(ret, 0);
	assert_int_equal(ev.status, 0);
	r->res = *ev.result;
	copro_gen_free(g);
	copro_close(c);
}

static void greedy(struct copro_gen_params *p, uint32_t max_tokens)
{
	copro_gen_params_init(p);
	p->max_tokens = max_tokens;
	p->temperature = 0.0f;
	p->flags = COPRO_GEN_F_IGNORE_EOS;
}

/* The numbers after "key:" on a line of s; returns how many were read. */
static int ints_after(const char *s, const char *key, long *v, int max)
{
	const char *line = strstr(s, key);
	char *end;
	int n = 0;

	if (!line)
		return -1;
	line += strlen(key);
	while (n < max) {
		long x = strtol(line, &end, 10);

		if (end == line || *line == '\n')
			break;
		v[n++] = x;
		line = end;
		if (*line == '\n')
			break;
	}
	return n;
}

/* A key's value on the status line of model name. */
static double stat_of(const char *name, const char *key)
{
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	char buf[16384], k[96], *line, *v;

	assert_int_equal(copro_connect(sock, &o, &c), 0);
	assert_true(copro_status(c, buf, sizeof(buf)) > 0);
	copro_close(c);
	snprintf(k, sizeof(k), "model name=%s ", name);
	line = strstr(buf, k);
	assert_non_null(line);
	*strchrnul(line, '\n') = '\0';
	snprintf(k, sizeof(k), " %s=", key);
	v = strstr(line, k);
	assert_non_null(v);
	return strtod(v + strlen(k), NULL);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void should_print_the_same_greedy_text_as_the_library(void **state)
{
	static struct out a, b;
	static struct run lib;
	struct copro_gen_params p;

	greedy(&p, 40);
	lib_generate("tiny", "abc abc", &p, &lib);
	assert_int_equal(lib.n, 40);
	/* Two words of argv are one prompt, joined by a space. */
	run_tool(&a, NULL, "-m", "tiny", "-n", "40", "--temperature", "0", "--ignore-eos",
		 "abc", "abc", (char *)NULL);
	assert_int_equal(a.status, 0);
	assert_int_equal(a.en, 0);
	assert_int_equal(a.on, lib.len);
	assert_memory_equal(a.o, lib.text, lib.len);
	run_tool(&b, NULL, "--model", "tiny", "--max-tokens", "40", "--temperature", "0",
		 "--ignore-eos", "abc abc", (char *)NULL);
	assert_int_equal(b.status, 0);
	assert_int_equal(b.on, a.on);
	assert_memory_equal(b.o, a.o, a.on);
}

static void should_bound_the_tokens_by_max_tokens_and_print_their_ids(void **state)
{
	static struct out r;
	static struct run lib;
	struct copro_gen_params p;
	long v[64];

	greedy(&p, 7);
	lib_generate("tiny", "hello", &p, &lib);
	run_tool(&r, NULL, "-m", "tiny", "-n", "7", "--temperature", "0", "--ignore-eos", "--ids",
		 "hello", (char *)NULL);
	assert_int_equal(r.status, 0);
	assert_int_equal(ints_after(r.e, "generated ids:", v, 64), 7);
	for (int i = 0; i < 7; i++)
		assert_int_equal(v[i], lib.toks[i]);
	/* A text prompt's ids, as the model read them: BOS first, as many as it counted. */
	assert_int_equal(ints_after(r.e, "prompt tokens:", v, 64), 1);
	assert_int_equal(v[0], lib.res.prompt_tokens);
	assert_int_equal(ints_after(r.e, "prompt ids:", v, 64), (int)lib.res.prompt_tokens);
	assert_int_equal(v[0], 1);
	/* Token ids in: printed back as given. */
	run_tool(&r, NULL, "-m", "tiny", "-n", "3", "--temperature", "0", "--ignore-eos", "--ids",
		 "--prompt-ids", "1, 5 9", (char *)NULL);
	assert_int_equal(r.status, 0);
	assert_int_equal(ints_after(r.e, "prompt ids:", v, 64), 3);
	assert_true(v[0] == 1 && v[1] == 5 && v[2] == 9);
	assert_int_equal(ints_after(r.e, "generated ids:", v, 64), 3);
}

static void should_print_the_stats_after_the_text(void **state)
{
	static const char *const keys[] = { "prompt tokens:", "cached tokens:",
					    "generated tokens:", "time to first:",
					    "time per token:", "total:", "tokens/s:", "finish:",
					    "preemptions:" };
	static struct out r;
	long v = 0;

	run_tool(&r, NULL, "-m", "tiny", "-n", "12", "--temperature", "0", "--ignore-eos",
		 "--stats", "abc", (char *)NULL);
	assert_int_equal(r.status, 0);
	for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		if (!strstr(r.e, keys[i]))
			fail_msg("--stats: no '%s' in:\n%s", keys[i], r.e);
	assert_int_equal(ints_after(r.e, "generated tokens:", &v, 1), 1);
	assert_int_equal(v, 12);
	assert_non_null(strstr(r.e, "finish:            length"));
	assert_non_null(strstr(r.e, " ms\n"));
}

static void should_read_the_prompt_from_standard_input(void **state)
{
	static struct out a, b, c;

	run_tool(&a, NULL, "-m", "tiny", "-n", "20", "--temperature", "0", "--ignore-eos",
		 "once upon", (char *)NULL);
	assert_int_equal(a.status, 0);
	/* One trailing newline is dropped: `echo PROMPT |` means PROMPT. */
	run_tool(&b, "once upon\n", "-m", "tiny", "-n", "20", "--temperature", "0",
		 "--ignore-eos", (char *)NULL);
	assert_int_equal(b.status, 0);
	assert_int_equal(b.on, a.on);
	assert_memory_equal(b.o, a.o, a.on);
	run_tool(&c, "once upon", "-m", "tiny", "-n", "20", "--temperature", "0",
		 "--ignore-eos", "-", (char *)NULL);
	assert_int_equal(c.status, 0);
	assert_int_equal(c.on, a.on);
	assert_memory_equal(c.o, a.o, a.on);
}

static void should_cut_the_text_before_a_stop_string(void **state)
{
	static struct out r;
	static struct run lib, cut;
	struct copro_gen_params p;
	char stop[4];
	const char *at;

	greedy(&p, 60);
	lib_generate("tiny", "zz top", &p, &lib);
	assert_true(lib.len >= 8);
	/* Three bytes from the middle of the text: the text ends before their first place. */
	memcpy(stop, lib.text + lib.len / 2, 3);
	stop[3] = '\0';
	at = memmem(lib.text, lib.len, stop, 3);
	assert_non_null(at);
	snprintf(p.stop[0], sizeof(p.stop[0]), "%s", stop);
	lib_generate("tiny", "zz top", &p, &cut);
	assert_int_equal(cut.res.finish, COPRO_FINISH_STOP);
	run_tool(&r, NULL, "-m", "tiny", "-n", "60", "--temperature", "0", "--ignore-eos",
		 "--stop", stop, "--stats", "zz top", (char *)NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.e, "finish:            stop"));
	assert_int_equal(r.on, cut.len);
	assert_memory_equal(r.o, cut.text, cut.len);
	assert_int_equal(r.on, (size_t)(at - lib.text));
	assert_memory_equal(r.o, lib.text, r.on);
}

static void should_exit_2_with_a_message_on_bad_arguments(void **state)
{
	static const char *const bad[][3] = {
		{ "--max-tokens", "0" }, { "--max-tokens", "12x" }, { "-n", "-3", "--max-tokens" },
		{ "--temperature", "abc" }, { "--temperature", "101" }, { "--temperature", "nan" },
		{ "--top-k", "-1" }, { "--top-p", "0" }, { "--top-p", "1.5" }, { "--min-p", "1" },
		{ "--repeat-penalty", "0" }, { "--repeat-penalty", "inf" }, { "--seed", "x" },
		{ "--stop", "" }, { "--stop", "0123456789012345678901234567890123" },
		{ "--prompt-ids", "1 two" }, { "--prompt-ids", "-4" }, { "--prompt-ids", " " },
		{ "--prompt-ids", "99999999999" },
	};
	static struct out r;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		run_tool(&r, NULL, "-m", "tiny", bad[i][0], bad[i][1], "x", (char *)NULL);
		/* The message names the option by its long name. */
		if (r.status != 2 || !strstr(r.e, bad[i][2] ? bad[i][2] : bad[i][0]))
			fail_msg("%s '%s': exit %d, stderr '%s'", bad[i][0], bad[i][1], r.status,
				 r.e);
	}
	run_tool(&r, NULL, "-m", "tiny", "--stop", "a", "--stop", "b", "--stop", "c", "--stop",
		 "d", "--stop", "e", "x", (char *)NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.e, "--stop"));
	run_tool(&r, NULL, "-m", "tiny", "--prompt-ids", "1 2", "words", (char *)NULL);
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.e, "--prompt-ids"));
	run_tool(&r, NULL, "--no-such-option", "x", (char *)NULL);
	assert_int_equal(r.status, 2);
	run_tool(&r, NULL, "x", (char *)NULL);	/* no model */
	assert_int_equal(r.status, 2);
	assert_non_null(strstr(r.e, "model"));
	/* --help and -V succeed and say what they should. */
	run_tool(&r, NULL, "--help", (char *)NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.o, "usage: copro-gen"));
	run_tool(&r, NULL, "-V", (char *)NULL);
	assert_int_equal(r.status, 0);
	assert_non_null(strstr(r.o, "copro-gen "));
}

static void should_exit_1_on_an_unknown_model_or_a_refused_prompt(void **state)
{
	static struct out r;

	run_tool(&r, NULL, "-m", "no-such-model", "hello", (char *)NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.e, "no such model"));
	/* An id outside the 400-token vocabulary: the daemon refuses it. */
	run_tool(&r, NULL, "-m", "tiny", "--prompt-ids", "1 2 9999", (char *)NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.e, "finish error"));
	/* A tensor model cannot generate. */
	run_tool(&r, NULL, "-m", "echo", "hello", (char *)NULL);
	assert_int_equal(r.status, 1);
	assert_non_null(strstr(r.e, "signature"));
}

static void should_exit_130_on_sigint_and_free_the_kv_blocks(void **state)
{
	static struct out r;
	char *argv[] = { "copro-gen", "-s", sock, "-m", "slow", "-n", "4000", "--temperature",
			 "0", "--ignore-eos", "--stats", "tell me a long story", NULL };
	struct pollfd pf;
	int in_fd, out_fd, err_fd;
	pid_t pid;
	long v = 0;

	memset(&r, 0, sizeof(r));
	pid = spawn(argv, &in_fd, &out_fd, &err_fd);
	close(in_fd);
	/* Interrupt once text flows: the sequence holds KV blocks then. */
	pf = (struct pollfd){ .fd = out_fd, .events = POLLIN };
	assert_int_equal(poll(&pf, 1, 10000), 1);
	assert_true(drain(out_fd, r.o, sizeof(r.o), &r.on));
	assert_true(stat_of("slow", "running") + stat_of("slow", "waiting") >= 0);
	assert_int_equal(kill(pid, SIGINT), 0);
	collect(pid, out_fd, err_fd, &r);
	assert_int_equal(r.status, 130);
	assert_non_null(strstr(r.e, "finish:            cancelled"));
	assert_int_equal(ints_after(r.e, "generated tokens:", &v, 1), 1);
	assert_true(v > 0 && v < 4000);
	/*
	 * The daemon ended the sequence before the tool's last event; the
	 * status figures follow within the worker's publishing interval.
	 */
	for (int i = 0; i < 100; i++) {
		if (stat_of("slow", "kv_used") == 0 && stat_of("slow", "running") == 0 &&
		    stat_of("slow", "waiting") == 0)
			return;
		usleep(10000);
	}
	fail_msg("the KV pool of slow never returned to idle (kv_used %.0f)",
		 stat_of("slow", "kv_used"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_print_the_same_greedy_text_as_the_library),
		cmocka_unit_test(should_bound_the_tokens_by_max_tokens_and_print_their_ids),
		cmocka_unit_test(should_print_the_stats_after_the_text),
		cmocka_unit_test(should_read_the_prompt_from_standard_input),
		cmocka_unit_test(should_cut_the_text_before_a_stop_string),
		cmocka_unit_test(should_exit_2_with_a_message_on_bad_arguments),
		cmocka_unit_test(should_exit_1_on_an_unknown_model_or_a_refused_prompt),
		cmocka_unit_test(should_exit_130_on_sigint_and_free_the_kv_blocks),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
