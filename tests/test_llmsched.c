// SPDX-License-Identifier: MIT
/*
 * test_llmsched.c - continuous batching over the paged KV cache, in
 * process: a sequence gives the same tokens alone or among 32 others of
 * other lengths; preempted sequences resume with the same tokens; long
 * prompts are chunked without stalling decoders; shared prefixes are
 * reused; cancel and finish return the pool to idle; every bad request
 * is refused with its reason; and, when the shared models are here, the
 * reference model's greedy continuation through the scheduler.
 */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvcache.h"
#include "llmsched.h"
#include "llm/llama.h"
#include "llm/quant.h"
#include "llm/synth.h"

#define MAXTOK	256

static char dir[64], q8_path[128];
static struct copro_llama *q8;

struct out {
	int32_t toks[MAXTOK];
	uint32_t n;
	char text[8192];
	size_t len;
	uint32_t finish;
	int done;
	struct copro_seq *seq;
};

static void on_token(void *owner, struct copro_seq *s, int32_t id, const char *text, size_t len)
{
	struct out *o = owner;

	assert_true(o->n < MAXTOK);
	o->toks[o->n++] = id;
	assert_true(o->len + len < sizeof(o->text));
	memcpy(o->text + o->len, text, len);
	o->len += len;
}

static void on_done(void *owner, struct copro_seq *s, const char *text, size_t len)
{
	struct out *o = owner;

	assert_false(o->done);
	memcpy(o->text + o->len, text, len);
	o->len += len;
	o->text[o->len] = '\0';
	o->finish = s->finish;
	o->done = 1;
}

static const struct copro_sched_ops ops = { .token = on_token, .done = on_done };

static int setup(void **state)
{
	struct copro_synth_opts o;
	char err[256];

	strcpy(dir, "/tmp/copro-sched.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	copro_llm_synth_defaults(&o);
	o.dim = 64;
	o.n_layers = 2;
	o.n_heads = 4;
	o.n_kv_heads = 2;
	o.hidden = 128;
	o.vocab = 320;
	o.context = 512;
	o.type = COPRO_GGML_Q8_0;
	o.seed = 7;
	snprintf(q8_path, sizeof(q8_path), "%s/q8.gguf", dir);
	if (copro_llm_synth(&o, q8_path, err, sizeof(err)) ||
	    copro_llama_load(q8_path, &q8, err, sizeof(err))) {
		fprintf(stderr, "setup: %s\n", err);
		return -1;
	}
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	copro_llama_free(q8);
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	return system(cmd) ? -1 : 0;
}

static struct copro_sched *sched(struct copro_llama *m, uint32_t kv_mib, uint32_t max_tokens,
				 uint32_t max_seqs)
{
	struct copro_llm_opts o = { .kv_cache_mib = kv_mib, .max_batched_tokens = max_tokens,
				    .max_seqs = max_seqs };
	struct copro_sched *s;
	char err[256];
	int ret = copro_sched_new(m, &o, &ops, &s, err, sizeof(err));

	if (ret)
		print_message("sched: %s\n", err);
	assert_int_equal(ret, 0);
	return s;
}

static void prompt_of(int32_t *p, uint32_t n, uint32_t seed)
{
	p[0] = 1;
	for (uint32_t i = 1; i < n; i++)
		p[i] = 3 + (int32_t)((i * 2654435761u + seed * 97u) % 300);
}

static struct copro_seq *submit(struct copro_sched *s, const int32_t *p, uint32_t n,
				uint32_t max_tokens, float temperature, uint64_t seed,
				uint16_t prio, struct out *o)
{
	struct copro_seq_req r = { .prompt = p, .n_prompt = n, .max_tokens = max_tokens,
				   .flags = COPRO_SEQ_F_IGNORE_EOS, .priority = prio, .owner = o };
	struct copro_seq *q;
	const char *why;

	r.sp = copro_sample_params_default();
	r.sp.temperature = temperature;
	r.sp.seed = seed;
	r.sp.repeat_penalty = 1.1f;
	memset(o, 0, sizeof(*o));
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), 0);
	o->seq = q;
	return q;
}

/* Steps until idle; returns the steps taken. */
static uint32_t drain(struct copro_sched *s)
{
	uint32_t steps = 0;

	while (copro_sched_busy(s)) {
		assert_true(copro_sched_step(s) >= 0);
		assert_true(++steps < 100000);
	}
	return steps;
}

static void release(struct copro_sched *s, struct out *o, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		copro_sched_release(s, o[i].seq);
}

static void assert_idle(struct copro_sched *s)
{
	struct copro_sched_stats st;

	copro_sched_stats(s, &st);
	assert_int_equal(st.kv.used, 0);
	assert_int_equal(st.kv.used + st.kv.cached + st.kv.free, st.kv.total);
	assert_int_equal(copro_kvc_check(copro_sched_kvc(s)), 0);
}

/* ---- tests ------------------------------------------------------------------------ */

enum { N = 32 };

/* Each of N sequences run alone: its tokens, for comparison. */
static struct out solo[N];

static uint32_t len_of(int i)
{
	return 1 + (uint32_t)(i * 37 % 90);	/* 1 .. 90 prompt tokens */
}

static void run_solo(void)
{
	static int done;
	int32_t p[128];

	if (done)
		return;
	for (int i = 0; i < N; i++) {
		struct copro_sched *s = sched(q8, 8, 512, 64);

		prompt_of(p, len_of(i), (uint32_t)i);
		submit(s, p, len_of(i), 24 + (uint32_t)i % 9, i % 2 ? 0.8f : 0.0f, 1000u + (uint32_t)i,
		       0, &solo[i]);
		drain(s);
		assert_true(solo[i].done);
		assert_int_equal(solo[i].finish, COPRO_SEQ_LENGTH);
		release(s, &solo[i], 1);
		copro_sched_free(s);
	}
	done = 1;
}

static void should_give_the_same_tokens_alone_or_in_a_batch_of_32(void **state)
{
	struct copro_sched *s = sched(q8, 8, 512, 64);
	struct copro_sched_stats st;
	static struct out o[N];
	int32_t p[128];

	run_solo();
	for (int i = 0; i < N; i++) {
		prompt_of(p, len_of(i), (uint32_t)i);
		submit(s, p, len_of(i), 24 + (uint32_t)i % 9, i % 2 ? 0.8f : 0.0f, 1000u + (uint32_t)i,
		       0, &o[i]);
	}
	drain(s);
	copro_sched_stats(s, &st);
	print_message("figures: 32 sequences in %llu steps, %llu tokens computed\n",
		      (unsigned long long)st.steps, (unsigned long long)st.tokens_computed);
	/* Batched: far fewer steps than the sum of the solo runs. */
	assert_true(st.steps < 200);
	for (int i = 0; i < N; i++) {
		assert_true(o[i].done);
		assert_int_equal(o[i].n, solo[i].n);
		assert_memory_equal(o[i].toks, solo[i].toks, o[i].n * sizeof(int32_t));
		assert_string_equal(o[i].text, solo[i].text);
	}
	release(s, o, N);
	assert_idle(s);
	copro_sched_free(s);
}

static void should_give_the_same_tokens_on_two_threads(void **state)
{
	struct copro_llm_opts opt = { .kv_cache_mib = 8, .max_batched_tokens = 512,
				      .max_seqs = 64, .threads = 2 };
	struct copro_sched *s;
	static struct out o[N];
	int32_t p[128];
	char err[256];

	run_solo();
	assert_int_equal(copro_sched_new(q8, &opt, &ops, &s, err, sizeof(err)), 0);
	for (int i = 0; i < N; i++) {
		prompt_of(p, len_of(i), (uint32_t)i);
		submit(s, p, len_of(i), 24 + (uint32_t)i % 9, i % 2 ? 0.8f : 0.0f, 1000u + (uint32_t)i,
		       0, &o[i]);
	}
	drain(s);
	for (int i = 0; i < N; i++) {
		assert_int_equal(o[i].n, solo[i].n);
		assert_memory_equal(o[i].toks, solo[i].toks, o[i].n * sizeof(int32_t));
	}
	release(s, o, N);
	assert_idle(s);
	copro_sched_free(s);
}

static void should_resume_preempted_sequences_with_the_same_tokens(void **state)
{
	/* A pool of a few blocks: 32 sequences cannot all hold their context. */
	struct copro_llm_opts opt = { .kv_cache_mib = 1, .max_batched_tokens = 512, .max_seqs = 64,
				      .max_ctx = 128 };
	struct copro_sched_stats st;
	struct copro_sched *s;
	static struct out o[N];
	int32_t p[128];
	char err[256];

	run_solo();
	assert_int_equal(copro_sched_new(q8, &opt, &ops, &s, err, sizeof(err)), 0);
	for (int i = 0; i < N; i++) {
		prompt_of(p, len_of(i), (uint32_t)i);
		submit(s, p, len_of(i), 24 + (uint32_t)i % 9, i % 2 ? 0.8f : 0.0f, 1000u + (uint32_t)i,
		       (uint16_t)(i % 3), &o[i]);
	}
	drain(s);
	copro_sched_stats(s, &st);
	print_message("figures: %u KV blocks, %llu preemptions\n", st.kv.total,
		      (unsigned long long)st.preemptions);
	assert_true(st.preemptions > 0);
	for (int i = 0; i < N; i++) {
		assert_true(o[i].done);
		assert_int_equal(o[i].n, solo[i].n);
		assert_memory_equal(o[i].toks, solo[i].toks, o[i].n * sizeof(int32_t));
	}
	release(s, o, N);
	assert_idle(s);
	copro_sched_free(s);
}

static void should_chunk_long_prompts_without_stalling_decoders(void **state)
{
	struct copro_sched *s = sched(q8, 8, 16, 8);
	struct copro_sched_stats st;
	struct out a, b;
	int32_t p[300];
	uint32_t before;

	prompt_of(p, 5, 1);
	submit(s, p, 5, 40, 0.0f, 1, 0, &a);
	assert_true(copro_sched_step(s) > 0);	/* a's prompt */
	assert_int_equal(a.n, 1);
	prompt_of(p, 300, 2);
	submit(s, p, 300, 4, 0.0f, 2, 0, &b);
	/* b's 300 tokens go 15 a step beside a's one: a gets a token every step. */
	for (int i = 0; i < 10; i++) {
		before = a.n;
		assert_true(copro_sched_step(s) <= 16);
		copro_sched_stats(s, &st);
		assert_int_equal(st.last_step_tokens, 16);
		assert_int_equal(a.n, before + 1);
	}
	assert_int_equal(b.n, 0);
	drain(s);
	assert_int_equal(a.n, 40);
	assert_int_equal(b.n, 4);
	copro_sched_release(s, a.seq);
	copro_sched_release(s, b.seq);
	assert_idle(s);
	copro_sched_free(s);
}

static void should_reuse_a_shared_prompt_prefix(void **state)
{
	struct copro_sched *s = sched(q8, 8, 512, 8);
	struct copro_sched_stats st;
	struct out a, b, c;
	int32_t p[80];

	prompt_of(p, 80, 5);
	submit(s, p, 70, 8, 0.0f, 1, 0, &a);
	drain(s);
	/* Same first 64 tokens: 4 full blocks found in the cache. */
	p[66] = 9;
	submit(s, p, 80, 8, 0.0f, 1, 0, &b);
	drain(s);
	assert_int_equal(b.seq->n_cached, 64);
	copro_sched_stats(s, &st);
	assert_true(st.kv.hit_blocks >= 4);
	/* And the answer is the one computed from scratch. */
	{
		struct copro_sched *fresh = sched(q8, 8, 512, 8);

		submit(fresh, p, 80, 8, 0.0f, 1, 0, &c);
		drain(fresh);
		assert_int_equal(c.seq->n_cached, 0);
		assert_memory_equal(b.toks, c.toks, 8 * sizeof(int32_t));
		copro_sched_release(fresh, c.seq);
		copro_sched_free(fresh);
	}
	copro_sched_release(s, a.seq);
	copro_sched_release(s, b.seq);
	assert_idle(s);
	copro_sched_free(s);
}

static void should_return_the_pool_to_idle_when_sequences_are_cancelled(void **state)
{
	struct copro_sched *s = sched(q8, 8, 64, 16);
	struct copro_sched_stats st;
	static struct out o[12];
	int32_t p[100];

	for (int i = 0; i < 12; i++) {
		prompt_of(p, 20 + (uint32_t)i * 7, (uint32_t)i);
		submit(s, p, 20 + (uint32_t)i * 7, 200, 0.8f, (uint64_t)i, 0, &o[i]);
	}
	for (int i = 0; i < 6; i++)
		copro_sched_step(s);
	copro_sched_stats(s, &st);
	assert_true(st.kv.used > 0);
	for (int i = 0; i < 12; i += 2)
		copro_sched_cancel(s, o[i].seq);
	copro_sched_step(s);
	for (int i = 0; i < 12; i += 2) {
		assert_true(o[i].done);
		assert_int_equal(o[i].finish, COPRO_SEQ_CANCELLED);
	}
	for (int i = 1; i < 12; i += 2)
		copro_sched_cancel(s, o[i].seq);
	drain(s);
	release(s, o, 12);
	assert_idle(s);
	copro_sched_free(s);
}

static void should_end_on_eos_stop_ids_stop_strings_and_length(void **state)
{
	struct copro_sched *s = sched(q8, 8, 512, 8);
	struct copro_seq_req r = { 0 };
	struct copro_seq *q;
	struct out free_run, o;
	const char *why, *stops[1];
	int32_t p[10], stop_id;
	char stop[16];

	prompt_of(p, 10, 3);
	submit(s, p, 10, 30, 0.0f, 1, 0, &free_run);
	drain(s);
	assert_int_equal(free_run.finish, COPRO_SEQ_LENGTH);
	assert_int_equal(free_run.n, 30);
	/* A stop id: the run ends at its first occurrence, the id included. */
	stop_id = free_run.toks[5];
	r.prompt = p;
	r.n_prompt = 10;
	r.max_tokens = 30;
	r.flags = COPRO_SEQ_F_IGNORE_EOS;
	r.sp = copro_sample_params_default();
	r.sp.temperature = 0.0f;
	r.sp.repeat_penalty = 1.1f;
	r.sp.seed = 1;
	r.stop_ids = &stop_id;
	r.n_stop_ids = 1;
	r.owner = &o;
	memset(&o, 0, sizeof(o));
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), 0);
	drain(s);
	assert_int_equal(o.finish, COPRO_SEQ_STOP);
	for (uint32_t i = 0; i < o.n; i++)
		assert_int_equal(o.toks[i], free_run.toks[i]);
	assert_true(o.n <= 6);
	assert_int_equal(o.toks[o.n - 1], stop_id);
	copro_sched_release(s, q);
	/* A stop string from the middle of the free run's text: cut before it. */
	assert_true(free_run.len > 12);
	snprintf(stop, sizeof(stop), "%.3s", free_run.text + free_run.len / 2);
	stops[0] = stop;
	r.stop_ids = NULL;
	r.n_stop_ids = 0;
	r.stop_strs = stops;
	r.n_stop_strs = 1;
	memset(&o, 0, sizeof(o));
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), 0);
	drain(s);
	assert_int_equal(o.finish, COPRO_SEQ_STOP);
	assert_null(strstr(o.text, stop));
	assert_memory_equal(o.text, free_run.text, o.len);
	assert_ptr_equal(strstr(free_run.text, stop), free_run.text + o.len);
	copro_sched_release(s, q);
	/* EOS ends a run unless asked to go on. */
	r.stop_strs = NULL;
	r.n_stop_strs = 0;
	r.flags = 0;
	r.sp.temperature = 1.5f;
	r.sp.top_k = 0;
	r.sp.top_p = 1.0f;
	r.sp.min_p = 0.0f;
	r.max_tokens = 200;
	for (uint64_t seed = 0; seed < 64; seed++) {
		r.sp.seed = seed;
		memset(&o, 0, sizeof(o));
		assert_int_equal(copro_sched_submit(s, &r, &q, &why), 0);
		drain(s);
		copro_sched_release(s, q);
		if (o.finish == COPRO_SEQ_STOP)
			break;
	}
	assert_int_equal(o.finish, COPRO_SEQ_STOP);
	assert_int_equal(o.toks[o.n - 1], 2);	/* </s> */
	copro_sched_release(s, free_run.seq);
	assert_idle(s);
	copro_sched_free(s);
}

static void should_refuse_bad_requests_with_a_reason(void **state)
{
	struct copro_sched *s = sched(q8, 8, 512, 8);
	struct copro_seq_req r = { 0 };
	struct copro_seq *q;
	static int32_t p[600];
	int32_t bad_stop[COPRO_SEQ_STOP_IDS + 1] = { 0 };
	const char *why, *empty[1] = { "" };

	prompt_of(p, 600, 1);
	r.prompt = p;
	r.n_prompt = 10;
	r.max_tokens = 5;
	r.sp = copro_sample_params_default();
	r.n_prompt = 0;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -EINVAL);
	assert_non_null(strstr(why, "empty"));
	r.n_prompt = 10;
	r.max_tokens = 0;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -EINVAL);
	assert_non_null(strstr(why, "max_tokens"));
	r.max_tokens = 5;
	p[3] = 320;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -EINVAL);
	p[3] = -1;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -EINVAL);
	assert_non_null(strstr(why, "vocabulary"));
	p[3] = 5;
	r.sp.temperature = -1.0f;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -EINVAL);
	assert_non_null(strstr(why, "temperature"));
	r.sp.temperature = 0.0f;
	r.sp.top_p = 0.0f;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -EINVAL);
	r.sp.top_p = 1.0f;
	r.stop_ids = bad_stop;
	r.n_stop_ids = COPRO_SEQ_STOP_IDS + 1;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -EINVAL);
	r.n_stop_ids = 0;
	r.stop_strs = empty;
	r.n_stop_strs = 1;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -EINVAL);
	r.n_stop_strs = 0;
	/* A prompt as long as the context: refused, or its tail kept when asked. */
	r.n_prompt = 512;
	assert_int_equal(copro_sched_submit(s, &r, &q, &why), -E2BIG);
	assert_non_null(strstr(why, "context"));
	r.n_prompt = 600;
	r.flags = COPRO_SEQ_F_TRUNCATE | COPRO_SEQ_F_IGNORE_EOS;
	r.max_tokens = 1000000;		/* huge: clamped by the context */
	{
		struct out o = { 0 };

		r.owner = &o;
		assert_int_equal(copro_sched_submit(s, &r, &q, &why), 0);
		assert_int_equal(q->n_prompt, 511);
		assert_memory_equal(q->tokens, p + 600 - 511, 511 * sizeof(int32_t));
		drain(s);
		assert_int_equal(o.finish, COPRO_SEQ_LENGTH);
		assert_int_equal(o.n, 1);
		copro_sched_release(s, q);
	}
	assert_idle(s);
	copro_sched_free(s);
}

static void should_refuse_a_pool_too_small_for_one_sequence(void **state)
{
	struct copro_llm_opts o = { .kv_cache_mib = 1, .max_ctx = 100000 };
	struct copro_sched *s;
	char err[256];

	assert_int_equal(copro_sched_new(q8, &o, &ops, &s, err, sizeof(err)), -ENOSPC);
	print_message("%s\n", err);
	assert_non_null(strstr(err, "kv_cache_mib"));
}

static void should_continue_the_reference_model_through_the_scheduler(void **state)
{
	static const int32_t prompt[] = { 1, 403, 407, 261, 378 };
	static const int32_t ref[16] = { 432, 383, 286, 261, 376, 298, 315, 421,
					 395, 317, 426, 338, 401, 396, 267, 337 };
	const char *sh = getenv("COPRO_SHARED");
	struct copro_llm_opts opt = { .kv_cache_mib = 4, .max_ctx = 512 };
	char path[300], err[256];
	struct copro_llama *m;
	struct copro_sched *s;
	static struct out o[4];

	snprintf(path, sizeof(path), "%s/models/stories260K.gguf", sh ? sh : "../shared");
	if (access(path, R_OK)) {
		print_message("skipped: %s is absent (the shared test models are not here)\n", path);
		skip();
	}
	assert_int_equal(copro_llama_load(path, &m, err, sizeof(err)), 0);
	assert_int_equal(copro_sched_new(m, &opt, &ops, &s, err, sizeof(err)), 0);
	/* Four copies at once, the reference's greedy continuation in each. */
	for (int i = 0; i < 4; i++) {
		struct copro_seq_req r = { .prompt = prompt, .n_prompt = 5, .max_tokens = 16,
					   .flags = COPRO_SEQ_F_IGNORE_EOS, .owner = &o[i] };
		const char *why;

		r.sp = copro_sample_params_default();
		r.sp.temperature = 0.0f;
		r.sp.repeat_penalty = 1.0f;
		assert_int_equal(copro_sched_submit(s, &r, &o[i].seq, &why), 0);
	}
	drain(s);
	for (int i = 0; i < 4; i++) {
		assert_int_equal(o[i].n, 16);
		assert_memory_equal(o[i].toks, ref, sizeof(ref));
		assert_string_equal(o[i].text, ", there was a little girl named Lily. She loved to play");
	}
	release(s, o, 4);
	copro_sched_free(s);
	copro_llama_free(m);
}

static void should_fail_only_the_step_whose_forward_pass_fails(void **state)
{
	struct copro_llm_opts opt = { .kv_cache_mib = 8, .max_batched_tokens = 4,
				      .max_seqs = 8, .fail_step = 3 };
	struct copro_sched *s;
	struct out a, b, c;
	int32_t p[8];
	char err[256];
	int ret, failed = 0;

	assert_int_equal(copro_sched_new(q8, &opt, &ops, &s, err, sizeof(err)), 0);
	prompt_of(p, 2, 1);
	submit(s, p, 2, 10, 0.0f, 1, 0, &a);
	prompt_of(p, 8, 2);
	submit(s, p, 8, 10, 0.0f, 1, 0, &b);	/* its prompt waits for budget */
	while (copro_sched_busy(s)) {
		ret = copro_sched_step(s);
		if (ret < 0) {
			assert_int_equal(ret, -EIO);
			failed++;
		}
	}
	assert_int_equal(failed, 1);
	/* a was in step 3: it ended with the error; b, or part of it, ran on. */
	assert_int_equal(a.finish, COPRO_SEQ_ERROR);
	assert_int_equal(a.seq->error, -EIO);
	assert_true(b.finish == COPRO_SEQ_ERROR || b.finish == COPRO_SEQ_LENGTH);
	/* Later requests run. */
	prompt_of(p, 3, 3);
	submit(s, p, 3, 5, 0.0f, 1, 0, &c);
	drain(s);
	assert_int_equal(c.finish, COPRO_SEQ_LENGTH);
	assert_int_equal(c.n, 5);
	/* Failing everything at once ends every sequence and frees every block. */
	copro_sched_release(s, a.seq);
	copro_sched_release(s, b.seq);
	copro_sched_release(s, c.seq);
	prompt_of(p, 8, 4);
	submit(s, p, 8, 50, 0.0f, 1, 0, &a);
	submit(s, p, 8, 50, 0.0f, 1, 0, &b);
	copro_sched_step(s);
	assert_int_equal(copro_sched_fail_all(s, -ENODEV), 2);
	assert_int_equal(a.finish, COPRO_SEQ_ERROR);
	assert_int_equal(b.seq->error, -ENODEV);
	assert_false(copro_sched_busy(s));
	copro_sched_release(s, a.seq);
	copro_sched_release(s, b.seq);
	assert_idle(s);
	copro_sched_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_give_the_same_tokens_alone_or_in_a_batch_of_32),
		cmocka_unit_test(should_give_the_same_tokens_on_two_threads),
		cmocka_unit_test(should_resume_preempted_sequences_with_the_same_tokens),
		cmocka_unit_test(should_chunk_long_prompts_without_stalling_decoders),
		cmocka_unit_test(should_reuse_a_shared_prompt_prefix),
		cmocka_unit_test(should_return_the_pool_to_idle_when_sequences_are_cancelled),
		cmocka_unit_test(should_end_on_eos_stop_ids_stop_strings_and_length),
		cmocka_unit_test(should_refuse_bad_requests_with_a_reason),
		cmocka_unit_test(should_refuse_a_pool_too_small_for_one_sequence),
		cmocka_unit_test(should_continue_the_reference_model_through_the_scheduler),
		cmocka_unit_test(should_fail_only_the_step_whose_forward_pass_fails),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
