// SPDX-License-Identifier: MIT
/*
 * test_generation.c - language models served by a real coprod to real
 * client processes through libcopro's generation API: the reference
 * model's streamed continuation token for token, seeds, many processes at
 * once, stop strings, cancel and a client killed mid-stream (the KV pool
 * returns to idle), and bad requests refused with their codes.
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

#include "daemon.h"
#include "synth_llama.h"

#include "copro.h"
#include "cuda/cuda.h"

#define SEC	1000000000LL

static char dir[64], sock[128], story[300];
static int have_story;
static pid_t daemon_pid;

/* llama.cpp's greedy continuation of "Once upon a time" (the shared reference file). */
static const int32_t ref_ids[64] = {
	432, 383, 286, 261, 376, 298, 315, 421, 395, 317, 426, 338, 401, 396, 267, 337,
	410, 408, 419, 292, 411, 322, 265, 282, 295, 433, 426, 385, 328, 432, 358, 394,
	261, 370, 432, 352, 266, 268, 388, 426, 338, 391, 266, 267, 337, 335, 312, 432,
	398, 312, 286, 267, 414, 270, 333, 415, 426, 13, 438, 310, 439, 419, 357, 336 };
static const char ref_text[] = ", there was a little girl named Lily. She loved to play outside "
			       "in the park. One day, she saw a big, red ball. She wanted to "
			       "play with it, but it was too high.\nLily's mom said";

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
	const char *sh = getenv("COPRO_SHARED");
	char conf[160], tiny[160], slow[160];
	FILE *f;

	strcpy(dir, "/tmp/copro-gen.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/coprod.sock", dir);
	snprintf(story, sizeof(story), "%s/models/stories260K.gguf", sh ? sh : "../shared");
	have_story = access(story, R_OK) == 0;
	snprintf(tiny, sizeof(tiny), "%s/tiny.gguf", dir);
	if (test_synth_tiny(tiny))
		return -1;
	/* Slow enough that a cancel or a kill lands mid-stream: 2048 tokens of context. */
	snprintf(slow, sizeof(slow), "%s/slow.gguf", dir);
	if (test_synth_llama(slow, 256, 4, 4, 2, 512, 2048))
		return -1;
	snprintf(conf, sizeof(conf), "%s/coprod.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[server]\nidle = sleep\n\n[model.tiny]\npath = %s\nkv_cache_mib = 4\n"
		   "max_batched_tokens = 64\n\n[model.slow]\npath = %s\nkv_cache_mib = 16\n"
		   "\n[model.flaky]\npath = %s\ndevice = cpu\nkv_cache_mib = 4\n", tiny, slow, tiny);
	if (have_story)
		fprintf(f, "\n[model.story]\npath = %s\ncontext = 512\nkv_cache_mib = 8\n", story);
	fclose(f);
	/* The forward pass of flaky's 3rd step fails as a dead GPU's would. */
	setenv("COPRO_FAULT_STEP", "flaky:3", 1);
	daemon_pid = start_daemon(conf);
	unsetenv("COPRO_FAULT_STEP");
	return daemon_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	return test_daemon_stop(daemon_pid, dir);
}

static struct copro_client *client(uint32_t *handle, const char *model)
{
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK, .arena_bytes = 8 << 20 };
	struct copro_model_info mi;
	struct copro_client *c;

	assert_int_equal(copro_connect(sock, &o, &c), 0);
	if (handle) {
		assert_int_equal(copro_lookup(c, model, &mi), 0);
		*handle = mi.handle;
	}
	return c;
}

struct run {
	int32_t toks[1024];
	uint32_t n;
	char text[16384];
	size_t len;
	int32_t status;
	struct copro_gen_result res;
	int32_t pids[1024];		/* the prompt's ids as the model read them */
	uint32_t np;
};

/* Streams one generation to its end; returns copro_gen_start's code. */
static int generate(struct copro_client *c, uint32_t model, const char *prompt,
		    const struct copro_gen_params *p, struct run *r)
{
	struct copro_gen *g;
	struct copro_gen_event ev;
	int ret;

	memset(r, 0, sizeof(*r));
	ret = copro_gen_start(c, model, prompt, strlen(prompt), p, 0, &g);
	if (ret)
		return ret;
	while ((ret = copro_gen_next(g, &ev, 20 * SEC)) == 1) {
		assert_int_equal(ev.index, r->n);
		assert_true(r->n < 1024);
		r->toks[r->n++] = ev.token;
		assert_true(r->len + ev.len < sizeof(r->text));
		memcpy(r->text + r->len, ev.text, ev.len);
		r->len += ev.len;
	}
	assert_int_equal(ret, 0);
	assert_true(ev.done);
	memcpy(r->text + r->len, ev.text, ev.len);
	r->len += ev.len;
	r->text[r->len] = '\0';
	r->status = ev.status;
	r->res = *ev.result;
	{
		const int32_t *ids;
		int np = copro_gen_prompt_ids(g, &ids);

		assert_true(np >= 0);
		r->np = (uint32_t)(np < 1024 ? np : 1024);
		memcpy(r->pids, ids, r->np * sizeof(int32_t));
	}
	copro_gen_free(g);
	return 0;
}

static void greedy(struct copro_gen_params *p, uint32_t max_tokens)
{
	copro_gen_params_init(p);
	p->max_tokens = max_tokens;
	p->temperature = 0.0f;
	p->flags = COPRO_GEN_F_IGNORE_EOS;
}

/* A key's value on the status line of model name. */
static double stat_of(const char *name, const char *key)
{
	struct copro_client *c = client(NULL, NULL);
	char buf[16384], k[96], *line, *v;

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

/* Waits (5 s at most) until the model holds no KV block and runs nothing. */
static void wait_idle_pool(const char *name)
{
	for (int i = 0; i < 500; i++) {
		if (stat_of(name, "kv_used") == 0 && stat_of(name, "running") == 0 &&
		    stat_of(name, "waiting") == 0)
			return;
		usleep(10000);
	}
	fail_msg("%s: the KV pool never returned to idle (kv_used %.0f)", name,
		 stat_of(name, "kv_used"));
}

/* ---- tests ------------------------------------------------------------------------- */

static void should_stream_the_reference_continuation(void **state)
{
	struct copro_gen_params p;
	struct copro_client *c;
	uint32_t h;
	static struct run r;

	if (!have_story) {
		print_message("skipped: %s is absent (the shared test models are not here)\n", story);
		skip();
	}
	c = client(&h, "story");
	greedy(&p, 64);
	p.repeat_penalty = 1.0f;
	assert_int_equal(generate(c, h, "Once upon a time", &p, &r), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n, 64);
	assert_memory_equal(r.toks, ref_ids, sizeof(ref_ids));
	assert_string_equal(r.text, ref_text);
	assert_int_equal(r.res.finish, COPRO_FINISH_LENGTH);
	assert_int_equal(r.res.prompt_tokens, 5);
	/* The prompt as the model read it: llama.cpp's ids for it. */
	{
		static const int32_t ref_prompt[5] = { 1, 403, 407, 261, 378 };

		assert_int_equal(r.np, 5);
		assert_memory_equal(r.pids, ref_prompt, sizeof(ref_prompt));
	}
	assert_int_equal(r.res.gen_tokens, 64);
	assert_int_equal(r.res.text_bytes, strlen(ref_text));
	assert_true(r.res.ttft_ns > 0 && r.res.tpot_ns > 0 && r.res.total_ns >= r.res.ttft_ns);
	print_message("figures: stories260K through coprod: ttft %.0f us, %.0f us per token\n",
		      r.res.ttft_ns / 1e3, r.res.tpot_ns / 1e3);
	/* A stop string: the text ends before it, finish STOP. */
	snprintf(p.stop[0], sizeof(p.stop[0]), "Lily");
	assert_int_equal(generate(c, h, "Once upon a time", &p, &r), 0);
	assert_int_equal(r.res.finish, COPRO_FINISH_STOP);
	assert_string_equal(r.text, ", there was a little girl named ");
	copro_close(c);
}

static void should_give_the_same_tokens_for_the_same_seed(void **state)
{
	struct copro_gen_params p;
	struct copro_client *c;
	static struct run a, b, d;
	uint32_t h;

	c = client(&h, "tiny");
	copro_gen_params_init(&p);
	p.max_tokens = 40;
	p.flags = COPRO_GEN_F_IGNORE_EOS;
	p.temperature = 1.0f;
	p.top_k = 0;
	p.top_p = 1.0f;
	p.min_p = 0.0f;
	p.seed = 42;
	assert_int_equal(generate(c, h, "abc abc", &p, &a), 0);
	assert_int_equal(generate(c, h, "abc abc", &p, &b), 0);
	p.seed = 43;
	assert_int_equal(generate(c, h, "abc abc", &p, &d), 0);
	assert_int_equal(a.n, 40);
	assert_memory_equal(a.toks, b.toks, sizeof(a.toks[0]) * 40);
	assert_string_equal(a.text, b.text);
	assert_memory_not_equal(a.toks, d.toks, sizeof(a.toks[0]) * 40);
	copro_close(c);
}

/* A client process: greedy continuations; exits 0 when each equals want. */
static void gen_process(const char *model, const char *prompt, const struct run *want, int count)
{
	struct copro_gen_params p;
	struct copro_client *c;
	static struct run r;
	uint32_t h;

	alarm(60);
	c = client(&h, model);
	greedy(&p, want->n);
	for (int i = 0; i < count; i++) {
		if (generate(c, h, prompt, &p, &r) || r.n != want->n ||
		    memcmp(r.toks, want->toks, r.n * sizeof(r.toks[0])) || strcmp(r.text, want->text))
			_exit(1);
	}
	copro_close(c);
	_exit(0);
}

static void should_batch_many_client_processes_without_changing_their_tokens(void **state)
{
	enum { K = 8 };
	static const char *prompts[4] = { "a b c", "the quick brown", "z", "hello there friend" };
	static struct run want[4];
	struct copro_gen_params p;
	struct copro_client *c;
	double steps0, gen0, steps1, gen1;
	pid_t kids[K];
	uint32_t h;

	c = client(&h, "tiny");
	greedy(&p, 48);
	for (int i = 0; i < 4; i++)
		assert_int_equal(generate(c, h, prompts[i], &p, &want[i]), 0);
	copro_close(c);
	steps0 = stat_of("tiny", "steps");
	gen0 = stat_of("tiny", "generated");
	for (int i = 0; i < K; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			gen_process("tiny", prompts[i % 4], &want[i % 4], 3);
	}
	for (int i = 0; i < K; i++) {
		int st;

		waitpid(kids[i], &st, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	/* Wait for the worker's figures to settle, then compare. */
	usleep(50000);
	steps1 = stat_of("tiny", "steps");
	gen1 = stat_of("tiny", "generated");
	print_message("figures: %d processes x 3 generations: %.0f tokens in %.0f steps\n", K,
		      gen1 - gen0, steps1 - steps0);
	assert_true(gen1 - gen0 >= K * 3 * 48);
	/* Batched: fewer forward steps than tokens. */
	assert_true(steps1 - steps0 < gen1 - gen0);
	wait_idle_pool("tiny");
}

static void should_end_a_cancelled_generation_and_free_its_blocks(void **state)
{
	struct copro_gen_params p;
	struct copro_gen_event ev;
	struct copro_client *c;
	struct copro_gen *g;
	uint32_t h;
	int ret, n = 0;

	c = client(&h, "slow");
	greedy(&p, 2000);
	assert_int_equal(copro_gen_start(c, h, "long story", 10, &p, 0, &g), 0);
	for (int i = 0; i < 3; i++)
		assert_int_equal(copro_gen_next(g, &ev, 10 * SEC), 1);
	assert_int_equal(copro_gen_cancel(g), 0);
	while ((ret = copro_gen_next(g, &ev, 10 * SEC)) == 1)
		n++;
	assert_int_equal(ret, 0);
	assert_int_equal(ev.status, COPRO_E_CANCELLED);
	assert_int_equal(ev.result->finish, COPRO_FINISH_CANCELLED);
	assert_true(3 + n < 2000);
	copro_gen_free(g);
	wait_idle_pool("slow");
	/* The cancel's acknowledgement was the library's: nothing reaches the caller. */
	{
		struct copro_cqe cqe;

		assert_int_equal(copro_poll(c, &cqe, 1), 0);
	}
	copro_close(c);
}

static void should_free_the_blocks_of_a_client_killed_mid_stream(void **state)
{
	int fds[2], st;
	pid_t kid;
	char b;

	assert_int_equal(pipe(fds), 0);
	kid = fork();
	if (kid == 0) {
		struct copro_gen_params p;
		struct copro_gen_event ev;
		struct copro_client *c;
		struct copro_gen *g;
		uint32_t h;

		c = client(&h, "slow");
		greedy(&p, 2000);
		if (copro_gen_start(c, h, "x y", 3, &p, 0, &g) ||
		    copro_gen_next(g, &ev, 10 * SEC) != 1)
			_exit(1);
		if (write(fds[1], "x", 1) != 1)
			_exit(2);
		pause();	/* killed here, mid-stream */
		_exit(3);
	}
	assert_int_equal(read(fds[0], &b, 1), 1);
	usleep(100000);
	/* Still generating (2000 tokens take seconds), holding blocks, when it dies. */
	assert_true(stat_of("slow", "kv_used") > 0);
	kill(kid, SIGKILL);
	waitpid(kid, &st, 0);
	wait_idle_pool("slow");
	close(fds[0]);
	close(fds[1]);
}

static int gen_status(struct copro_client *c, uint32_t h, const void *prompt, size_t len,
		      const struct copro_gen_params *p)
{
	struct copro_gen_event ev;
	struct copro_gen *g;
	int ret = copro_gen_start(c, h, prompt, len, p, 0, &g);

	if (ret)
		return ret;
	while ((ret = copro_gen_next(g, &ev, 10 * SEC)) == 1)
		;
	if (ret)
		print_message("gen_status: copro_gen_next: %s (flags %#x)\n", copro_strerror(ret),
			      p->flags);
	assert_int_equal(ret, 0);
	ret = ev.status;
	if (ret)
		assert_int_equal(ev.result->finish, COPRO_FINISH_ERROR);
	copro_gen_free(g);
	return ret;
}

static void should_refuse_bad_generation_requests(void **state)
{
	struct copro_gen_params p;
	struct copro_client *c;
	struct copro_tensor in, out;
	const struct copro_tensor *ins[1] = { &in }, *outs[1] = { &out };
	struct copro_request r = { 0 };
	struct copro_cqe cqe;
	static char longp[4000];
	int32_t ids[3] = { 1, 5, 9999 };
	uint64_t d = 4;
	uint32_t h;
	static struct run run;

	c = client(&h, "tiny");
	greedy(&p, 8);
	p.max_tokens = 0;
	assert_int_equal(gen_status(c, h, "a", 1, &p), -EINVAL);	/* client side */
	p.max_tokens = 8;
	p.temperature = -1.0f;
	assert_int_equal(gen_status(c, h, "a", 1, &p), -EINVAL);
	p.temperature = 0.0f;
	p.top_p = 2.0f;
	assert_int_equal(gen_status(c, h, "a", 1, &p), -EINVAL);
	p.top_p = 1.0f;
	p.flags |= COPRO_GEN_F_IDS;
	assert_int_equal(gen_status(c, h, ids, 3, &p), -EINVAL);	/* id 9999 */
	ids[2] = 9;
	assert_int_equal(gen_status(c, h, ids, 3, &p), 0);
	p.flags &= ~COPRO_GEN_F_IDS;
	p.n_stop_ids = COPRO_GEN_STOP_IDS + 1;
	assert_int_equal(gen_status(c, h, "a", 1, &p), -EINVAL);
	p.n_stop_ids = 0;
	p.flags |= 0x100;	/* unknown flag */
	assert_int_equal(gen_status(c, h, "a", 1, &p), -EINVAL);
	p.flags &= ~0x100u;
	p.stop[1][COPRO_GEN_STOP_LEN - 1] = 'x';	/* not NUL-terminated */
	memset(p.stop[1], 'y', COPRO_GEN_STOP_LEN);
	assert_int_equal(gen_status(c, h, "a", 1, &p), -EINVAL);
	memset(p.stop[1], 0, COPRO_GEN_STOP_LEN);
	/* A prompt longer than the 256-token context: refused, or cut when asked. */
	memset(longp, 'q', sizeof(longp) - 1);
	for (size_t i = 0; i + 1 < sizeof(longp); i += 2)
		longp[i] = ' ';
	assert_int_equal(gen_status(c, h, longp, strlen(longp), &p), -E2BIG);
	p.flags |= COPRO_GEN_F_TRUNCATE;
	assert_int_equal(generate(c, h, longp, &p, &run), 0);
	assert_int_equal(run.status, 0);
	assert_int_equal(run.res.prompt_tokens, 255);
	assert_int_equal(run.np, 255);	/* the kept tail, as read */
	assert_int_equal(run.res.finish, COPRO_FINISH_LENGTH);
	assert_int_equal(run.n, 1);
	p.flags &= ~COPRO_GEN_F_TRUNCATE;
	/* max_tokens beyond the context: generation ends when the context is full. */
	p.max_tokens = 600;
	assert_int_equal(generate(c, h, "a", &p, &run), 0);
	assert_int_equal(run.res.finish, COPRO_FINISH_LENGTH);
	assert_int_equal(run.res.prompt_tokens + run.res.gen_tokens, 256);
	/* An empty text prompt is BOS alone: fine. */
	p.max_tokens = 4;
	assert_int_equal(generate(c, h, "", &p, &run), 0);
	assert_int_equal(run.status, 0);
	assert_int_equal(run.res.prompt_tokens, 1);
	/* Inference on a language model, generation on a tensor model: wrong signature. */
	assert_int_equal(copro_tensor_alloc(c, COPRO_DT_F32, 1, &d, &in), 0);
	assert_int_equal(copro_tensor_alloc(c, COPRO_DT_F32, 1, &d, &out), 0);
	r.model = h;
	r.n_in = 1;
	r.n_out = 1;
	r.in = ins;
	r.out = outs;
	assert_int_equal(copro_run(c, &r, 5 * SEC), COPRO_E_SIGNATURE);
	{
		struct copro_model_info mi;

		assert_int_equal(copro_lookup(c, "echo", &mi), 0);
		assert_int_equal(gen_status(c, mi.handle, "a", 1, &p), COPRO_E_SIGNATURE);
	}
	/* Nothing is left queued for anyone. */
	assert_int_equal(copro_poll(c, &cqe, 1), 0);
	copro_close(c);
	wait_idle_pool("tiny");
}

static void should_show_kv_and_prefix_cache_figures_in_status(void **state)
{
	struct copro_gen_params p;
	struct copro_client *c;
	static struct run r;
	static char prompt[400];
	uint32_t h;

	c = client(&h, "tiny");
	greedy(&p, 4);
	for (int i = 0; i < 60; i++)
		memcpy(prompt + i * 5, "abcd ", 5);
	assert_int_equal(generate(c, h, prompt, &p, &r), 0);
	assert_int_equal(generate(c, h, prompt, &p, &r), 0);
	/* The second run found the first's full blocks. */
	assert_true(r.res.cached_tokens >= 16);
	usleep(20000);
	assert_true(stat_of("tiny", "prefix_hits") >= 1);
	assert_true(stat_of("tiny", "kv_blocks") > 0);
	assert_true(stat_of("tiny", "kv_cached") > 0);
	assert_true(stat_of("tiny", "prefix_hit_rate") > 0);
	copro_close(c);
}

static void should_fail_the_step_and_degrade_the_model_when_its_device_fails(void **state)
{
	struct copro_gen_params p;
	struct copro_client *c;
	static struct run r;
	char err[256];
	uint32_t h, v;

	c = client(&h, "flaky");
	greedy(&p, 20);
	/* Step 3 fails: the requests in it end with the device's error... */
	assert_int_equal(generate(c, h, "a b", &p, &r), 0);
	assert_int_equal(r.status, -EIO);
	assert_int_equal(r.res.finish, COPRO_FINISH_ERROR);
	assert_int_equal(r.n, 2);	/* the tokens of steps 1 and 2 came */
	/* ...and a model pinned to its device refuses until it is loaded again. */
	assert_int_equal(generate(c, h, "a b", &p, &r), 0);
	assert_int_equal(r.status, -ENODEV);
	assert_int_equal(stat_of("flaky", "degraded"), 1);
	wait_idle_pool("flaky");
	assert_int_equal(copro_load(c, "flaky", NULL, NULL, &v, err, sizeof(err)), 0);
	greedy(&p, 1);
	assert_int_equal(generate(c, h, "a b", &p, &r), 0);
	assert_int_equal(r.status, 0);
	assert_int_equal(r.n, 1);
	assert_int_equal(stat_of("flaky", "degraded"), 0);
	copro_close(c);
}

static void should_serve_on_the_cpu_with_one_line_when_no_gpu_is_there(void **state)
{
	struct copro_cuda_dev dev;
	const char *why = NULL;
	char path[160], line[512];
	int found = 0;
	FILE *f;

	if (copro_cuda_devices(&dev, 1, &why) > 0) {
		print_message("skipped: a GPU is visible here (%s); this is the no-GPU path\n",
			      dev.name);
		skip();
	}
	/* device = auto (the default) with no GPU: the CPU, and the log says why. */
	snprintf(path, sizeof(path), "%s/coprod.log", dir);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (strstr(line, "model tiny: ") && strstr(line, "device cpu (auto: "))
			found++;
	fclose(f);
	assert_int_equal(found, 1);
	{
		struct copro_client *c = client(NULL, NULL);
		char buf[16384];

		assert_true(copro_status(c, buf, sizeof(buf)) > 0);
		assert_non_null(strstr(buf, "kind=llm device=cpu"));
		copro_close(c);
	}
}

static void should_load_and_unload_a_language_model_at_run_time(void **state)
{
	struct copro_client *c = client(NULL, NULL);
	struct copro_gen_params p;
	struct copro_gen_event ev;
	struct copro_model_info mi;
	struct copro_gen *g;
	char path[160], err[256];
	uint32_t v;
	int ret, n = 0;

	snprintf(path, sizeof(path), "%s/tiny.gguf", dir);
	/* A pool that cannot hold one sequence of the context: refused, with the reason. */
	ret = copro_load(c, "tiny2", path, "kv_cache_mib=1\ncontext=100000", &v, err, sizeof(err));
	assert_true(ret < 0);
	assert_non_null(strstr(err, "kv_cache_mib"));
	assert_int_equal(copro_lookup(c, "tiny2", &mi), COPRO_E_NOMODEL);
	/* Loaded while the daemon serves, then unloaded mid-generation: it finishes. */
	assert_int_equal(copro_load(c, "tiny2", path, "kv_cache_mib=2", &v, err, sizeof(err)), 0);
	assert_int_equal(copro_lookup(c, "tiny2", &mi), 0);
	greedy(&p, 60);
	assert_int_equal(copro_gen_start(c, mi.handle, "q r s", 5, &p, 0, &g), 0);
	assert_int_equal(copro_gen_next(g, &ev, 10 * SEC), 1);
	assert_int_equal(copro_unload(c, "tiny2", &v), 0);
	while ((ret = copro_gen_next(g, &ev, 10 * SEC)) == 1)
		n++;
	assert_int_equal(ret, 0);
	assert_int_equal(ev.status, 0);
	assert_int_equal(1 + n, 60);
	assert_int_equal(ev.result->finish, COPRO_FINISH_LENGTH);
	copro_gen_free(g);
	assert_int_equal(copro_lookup(c, "tiny2", &mi), COPRO_E_NOMODEL);
	copro_close(c);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_stream_the_reference_continuation),
		cmocka_unit_test(should_give_the_same_tokens_for_the_same_seed),
		cmocka_unit_test(should_batch_many_client_processes_without_changing_their_tokens),
		cmocka_unit_test(should_end_a_cancelled_generation_and_free_its_blocks),
		cmocka_unit_test(should_free_the_blocks_of_a_client_killed_mid_stream),
		cmocka_unit_test(should_refuse_bad_generation_requests),
		cmocka_unit_test(should_show_kv_and_prefix_cache_figures_in_status),
		cmocka_unit_test(should_load_and_unload_a_language_model_at_run_time),
		cmocka_unit_test(should_serve_on_the_cpu_with_one_line_when_no_gpu_is_there),
		cmocka_unit_test(should_fail_the_step_and_degrade_the_model_when_its_device_fails),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
