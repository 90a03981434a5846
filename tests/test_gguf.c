// SPDX-License-Identifier: MIT
/*
 * test_gguf.c - the GGUF reader on a real file (stories260K.gguf from the
 * shared models, skipped when absent), the writer and the synthetic Llama
 * models in a round trip for every element type, and the reader on bad
 * input: each kind of damage in its own test, crafted by writing a small
 * good file and patching the bytes that matter, plus every truncation of a
 * synthesized model. A bad file must come back as -EINVAL with a reason that
 * names what is wrong, never as a crash; the ASan build
 * (make SANITIZE=address,undefined) checks that no read strays.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "llm/gguf.h"
#include "llm/quant.h"
#include "llm/synth.h"

/* ---------------------------------------------------------------------- */
/* Helpers                                                                */
/* ---------------------------------------------------------------------- */

static char tmpdir[256];

static int setup_dir(void **state)
{
	const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_gguf.XXXXXX", base);
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) ? -1 : 0;
}

static void tmp_path(char *buf, size_t n, const char *name)
{
	snprintf(buf, n, "%s/%s", tmpdir, name);
}

static uint8_t *read_all(const char *path, size_t *size)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf;
	long n;

	assert_non_null(f);
	assert_int_equal(fseek(f, 0, SEEK_END), 0);
	n = ftell(f);
	assert_true(n >= 0);
	rewind(f);
	buf = malloc((size_t)n + 1);
	assert_non_null(buf);
	assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
	fclose(f);
	*size = (size_t)n;
	return buf;
}

static void write_all(const char *path, const void *buf, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(buf, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

/* Offset just past the (first) occurrence of a length-prefixed string s in
 * the file: where a key's type or a tensor info's n_dims is. */
static size_t after_str(const uint8_t *buf, size_t size, const char *s)
{
	size_t n = strlen(s);
	uint64_t len = n;

	for (size_t i = 0; i + 8 + n <= size; i++)
		if (!memcmp(buf + i, &len, 8) && !memcmp(buf + i + 8, s, n))
			return i + 8 + n;
	fail_msg("'%s' not found in the file", s);
	return 0;
}

static void put_u32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static void put_u64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static float a_data[8] = { 1, 2, 3, 4, 5, 6, 7, 8 }; // (2, 4)
static struct copro_block_q8_0 b_data[2];	       // (2, 32) as Q8_0

/* Writes a small file with a key of each kind the writer makes and two
 * tensors: "a.weight" F32 [4, 2] and "b.weight" Q8_0 [32, 2]. extra adds a
 * key (for the alignment tests) and dup names both tensors "a.weight". */
static void write_small(const char *path, const char *extra_key, uint32_t extra_val, int dup)
{
	static const int32_t ints[3] = { 1, -2, 3 };
	static const float floats[2] = { 0.5f, -1.5f };
	static const char *const strs[3] = { "a", "", "hello" };
	struct copro_gguf_writer *w;
	uint64_t ne_a[2] = { 4, 2 }, ne_b[2] = { 32, 2 };
	float x[64];
	char err[256];

	for (int i = 0; i < 64; i++)
		x[i] = (float)(i - 32) / 16.0f;
	copro_quantize_row_q8_0(x, b_data, 64);
	assert_int_equal(copro_gguf_writer_new(&w), 0);
	assert_int_equal(copro_gguf_add_str(w, "general.architecture", "llama"), 0);
	assert_int_equal(copro_gguf_add_str(w, "general.name", "small"), 0);
	assert_int_equal(copro_gguf_add_u32(w, "test.u32", 7), 0);
	assert_int_equal(copro_gguf_add_i32(w, "test.neg", -5), 0);
	assert_int_equal(copro_gguf_add_i32(w, "test.pos", 9), 0);
	assert_int_equal(copro_gguf_add_f32(w, "test.f32", 0.25f), 0);
	assert_int_equal(copro_gguf_add_bool(w, "test.bool", 1), 0);
	assert_int_equal(copro_gguf_add_arr_i32(w, "test.ints", ints, 3), 0);
	assert_int_equal(copro_gguf_add_arr_f32(w, "test.floats", floats, 2), 0);
	assert_int_equal(copro_gguf_add_arr_str(w, "test.strs", strs, 3), 0);
	if (extra_key)
		assert_int_equal(copro_gguf_add_u32(w, extra_key, extra_val), 0);
	assert_int_equal(copro_gguf_add_tensor(w, "a.weight", 2, ne_a, COPRO_GGML_F32, a_data), 0);
	assert_int_equal(copro_gguf_add_tensor(w, dup ? "a.weight" : "b.weight", 2, ne_b,
					       COPRO_GGML_Q8_0, b_data), 0);
	assert_int_equal(copro_gguf_write(w, path, err, sizeof(err)), 0);
	copro_gguf_writer_free(w);
}

/* Opens path expecting -EINVAL with a reason containing want. */
static void expect_invalid(const char *path, const char *want)
{
	struct copro_gguf *g = (void *)1;
	char err[256] = "";
	int ret = copro_gguf_open(path, &g, err, sizeof(err));

	if (ret != -EINVAL || !strstr(err, want))
		fail_msg("open returned %d \"%s\", wanted -EINVAL with \"%s\"", ret, err, want);
	assert_null(g);
}

/* Writes the small file, lets patch() damage it, and expects the reader to
 * refuse it with a reason containing want. */
static void damaged(void (*patch)(uint8_t *buf, size_t *size), const char *want)
{
	char path[300];
	size_t size;
	uint8_t *buf;

	tmp_path(path, sizeof(path), "damaged.gguf");
	write_small(path, NULL, 0, 0);
	buf = read_all(path, &size);
	patch(buf, &size);
	write_all(path, buf, size);
	free(buf);
	expect_invalid(path, want);
}

static void small_synth_opts(struct copro_synth_opts *o, uint32_t type)
{
	copro_llm_synth_defaults(o);
	o->dim = 64;
	o->n_layers = 2;
	o->n_heads = 4;
	o->n_kv_heads = 2;
	o->hidden = 96;
	o->vocab = 300;
	o->context = 128;
	o->type = type;
	o->seed = 42;
}

/* ---------------------------------------------------------------------- */
/* The real model                                                         */
/* ---------------------------------------------------------------------- */

static int shared_path(char *buf, size_t n, const char *file)
{
	const char *dir = getenv("COPRO_SHARED") ? getenv("COPRO_SHARED") : "../shared";

	snprintf(buf, n, "%s/models/%s", dir, file);
	return access(buf, R_OK);
}

static void check_shape(const struct copro_gguf *g, const char *name, uint32_t n_dims,
			uint64_t ne0, uint64_t ne1, uint32_t type)
{
	const struct copro_gguf_tensor *t = copro_gguf_tensor(g, name);

	if (!t)
		fail_msg("tensor '%s' missing", name);
	assert_int_equal(t->n_dims, n_dims);
	assert_int_equal(t->ne[0], ne0);
	assert_int_equal(t->ne[1], ne1);
	assert_int_equal(t->type, type);
	assert_int_equal(t->nbytes, copro_ggml_row_bytes(type, ne0) * ne1);
	assert_int_equal((uintptr_t)t->data % g->alignment, 0);
}

static void should_read_stories260k_metadata_and_shapes(void **state)
{
	const struct copro_gguf_kv *kv;
	struct copro_gguf *g;
	char path[512], err[256];
	const char *s;
	size_t len;
	uint32_t u, et;
	uint64_t count;
	const void *data;
	float f;

	if (shared_path(path, sizeof(path), "stories260K.gguf")) {
		printf("skipped: %s not found (set COPRO_SHARED to the shared directory)\n", path);
		skip();
	}
	assert_int_equal(copro_gguf_open(path, &g, err, sizeof(err)), 0);
	assert_true(g->version == 2 || g->version == 3);
	assert_int_equal(g->alignment, 32);
	assert_int_equal(copro_gguf_get_str(g, "general.architecture", &s, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(s, "llama", 5);
	assert_int_equal(copro_gguf_get_u32(g, "llama.embedding_length", &u), 0);
	assert_int_equal(u, 64);
	assert_int_equal(copro_gguf_get_u32(g, "llama.block_count", &u), 0);
	assert_int_equal(u, 5);
	assert_int_equal(copro_gguf_get_u32(g, "llama.feed_forward_length", &u), 0);
	assert_int_equal(u, 172);
	assert_int_equal(copro_gguf_get_u32(g, "llama.attention.head_count", &u), 0);
	assert_int_equal(u, 8);
	assert_int_equal(copro_gguf_get_u32(g, "llama.attention.head_count_kv", &u), 0);
	assert_int_equal(u, 4);
	assert_int_equal(copro_gguf_get_u32(g, "tokenizer.ggml.seperator_token_id", &u), 0);
	assert_int_equal(u, 4294967295u);
	assert_int_equal(copro_gguf_get_f32(g, "llama.rope.freq_base", &f), -ENOENT);
	assert_int_equal(copro_gguf_get_f32(g, "llama.attention.layer_norm_rms_epsilon", &f), 0);
	assert_true(f > 0 && f < 1e-3f);

	assert_int_equal(copro_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &data), 0);
	assert_int_equal(et, COPRO_GGUF_STRING);
	assert_int_equal(count, 512);
	assert_null(data);
	kv = copro_gguf_find(g, "tokenizer.ggml.tokens");
	assert_non_null(kv);
	assert_int_equal(copro_gguf_arr_str(g, kv, 1, &s, &len), 0);
	assert_int_equal(len, 3);
	assert_memory_equal(s, "<s>", 3);
	assert_int_equal(copro_gguf_arr_str(g, kv, 3, &s, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(s, "<0x00>", 6);
	assert_int_equal(copro_gguf_arr_str(g, kv, 512, &s, &len), -ERANGE);
	assert_int_equal(copro_gguf_get_arr(g, "tokenizer.ggml.scores", &et, &count, &data), 0);
	assert_int_equal(et, COPRO_GGUF_F32);
	assert_int_equal(count, 512);

	check_shape(g, "token_embd.weight", 2, 64, 512, COPRO_GGML_F32);
	check_shape(g, "output_norm.weight", 1, 64, 1, COPRO_GGML_F32);
	for (int l = 0; l < 5; l++) {
		char name[64];

		snprintf(name, sizeof(name), "blk.%d.attn_q.weight", l);
		check_shape(g, name, 2, 64, 64, COPRO_GGML_F32);
		snprintf(name, sizeof(name), "blk.%d.attn_k.weight", l);
		check_shape(g, name, 2, 64, 32, COPRO_GGML_F32);
		snprintf(name, sizeof(name), "blk.%d.attn_v.weight", l);
		check_shape(g, name, 2, 64, 32, COPRO_GGML_F32);
		snprintf(name, sizeof(name), "blk.%d.ffn_gate.weight", l);
		check_shape(g, name, 2, 64, 172, COPRO_GGML_F32);
		snprintf(name, sizeof(name), "blk.%d.ffn_down.weight", l);
		check_shape(g, name, 2, 172, 64, COPRO_GGML_F32);
		snprintf(name, sizeof(name), "blk.%d.attn_norm.weight", l);
		check_shape(g, name, 1, 64, 1, COPRO_GGML_F32);
	}
	assert_null(copro_gguf_tensor(g, "blk.5.attn_q.weight"));
	copro_gguf_close(g);
}

/* ---------------------------------------------------------------------- */
/* Writer and reader                                                      */
/* ---------------------------------------------------------------------- */

static void should_read_back_every_kind_of_key_and_tensor(void **state)
{
	const struct copro_gguf_kv *kv;
	const struct copro_gguf_tensor *t;
	struct copro_gguf *g;
	char path[300], err[256];
	const char *s;
	size_t len;
	uint32_t u, et;
	uint64_t count, u64;
	const void *data;
	float f, x[64], y[64];
	int32_t i32;
	int b;

	tmp_path(path, sizeof(path), "small.gguf");
	write_small(path, NULL, 0, 0);
	assert_int_equal(copro_gguf_open(path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->version, 3);
	assert_int_equal(g->n_kv, 10);
	assert_int_equal(g->n_tensors, 2);
	assert_int_equal(copro_gguf_get_u32(g, "test.u32", &u), 0);
	assert_int_equal(u, 7);
	assert_int_equal(copro_gguf_get_u32(g, "test.pos", &u), 0); /* i32 >= 0 converts */
	assert_int_equal(u, 9);
	assert_int_equal(copro_gguf_get_u32(g, "test.neg", &u), -EINVAL);
	assert_int_equal(copro_gguf_get_u64(g, "test.neg", &u64), -EINVAL);
	assert_int_equal(copro_gguf_get_u32(g, "test.f32", &u), -EINVAL);
	assert_int_equal(copro_gguf_get_u32(g, "test.missing", &u), -ENOENT);
	assert_int_equal(copro_gguf_get_f32(g, "test.f32", &f), 0);
	assert_true(f == 0.25f);
	assert_int_equal(copro_gguf_get_f32(g, "test.u32", &f), -EINVAL);
	assert_int_equal(copro_gguf_get_bool(g, "test.bool", &b), 0);
	assert_int_equal(b, 1);
	assert_int_equal(copro_gguf_get_bool(g, "test.u32", &b), -EINVAL);
	assert_int_equal(copro_gguf_get_str(g, "general.name", &s, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(s, "small", 5);
	assert_int_equal(copro_gguf_get_str(g, "test.u32", &s, &len), -EINVAL);

	assert_int_equal(copro_gguf_get_arr(g, "test.ints", &et, &count, &data), 0);
	assert_int_equal(et, COPRO_GGUF_I32);
	assert_int_equal(count, 3);
	memcpy(&i32, (const char *)data + 4, 4);
	assert_int_equal(i32, -2);
	assert_int_equal(copro_gguf_get_arr(g, "test.floats", &et, &count, &data), 0);
	assert_int_equal(et, COPRO_GGUF_F32);
	memcpy(&f, (const char *)data + 4, 4);
	assert_true(f == -1.5f);
	assert_int_equal(copro_gguf_get_arr(g, "test.u32", &et, &count, &data), -EINVAL);
	kv = copro_gguf_find(g, "test.strs");
	assert_non_null(kv);
	assert_int_equal(copro_gguf_arr_str(g, kv, 0, &s, &len), 0);
	assert_int_equal(len, 1);
	assert_memory_equal(s, "a", 1);
	assert_int_equal(copro_gguf_arr_str(g, kv, 1, &s, &len), 0);
	assert_int_equal(len, 0);
	assert_int_equal(copro_gguf_arr_str(g, kv, 2, &s, &len), 0);
	assert_int_equal(len, 5);
	assert_memory_equal(s, "hello", 5);
	assert_int_equal(copro_gguf_arr_str(g, kv, 3, &s, &len), -ERANGE);
	assert_int_equal(copro_gguf_arr_str(g, copro_gguf_find(g, "test.ints"), 0, &s, &len),
			 -EINVAL);

	t = copro_gguf_tensor(g, "a.weight");
	assert_non_null(t);
	assert_int_equal(t->type, COPRO_GGML_F32);
	assert_int_equal(t->n_elems, 8);
	assert_memory_equal(t->data, a_data, sizeof(a_data));
	t = copro_gguf_tensor(g, "b.weight");
	assert_non_null(t);
	assert_int_equal(t->type, COPRO_GGML_Q8_0);
	assert_int_equal(t->nbytes, sizeof(b_data));
	assert_int_equal((t->data - (const void *)g->map) % 32, 0);
	copro_dequantize_row(t->type, t->data, y, 64);
	copro_dequantize_row(COPRO_GGML_Q8_0, b_data, x, 64);
	assert_memory_equal(x, y, sizeof(x));
	assert_null(copro_gguf_tensor(g, "c.weight"));
	copro_gguf_close(g);
}

static void should_open_version_2(void **state)
{
	struct copro_gguf *g;
	char path[300], err[256];
	size_t size;
	uint8_t *buf;

	tmp_path(path, sizeof(path), "v2.gguf");
	write_small(path, NULL, 0, 0);
	buf = read_all(path, &size);
	put_u32(buf + 4, 2);
	write_all(path, buf, size);
	free(buf);
	assert_int_equal(copro_gguf_open(path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->version, 2);
	copro_gguf_close(g);
}

/* ---------------------------------------------------------------------- */
/* Synthetic models                                                       */
/* ---------------------------------------------------------------------- */

/* Largest error dequantization may add to values whose block maximum is
 * amax: half a step, plus the scale's own rounding to f16. Q4_0's scale is
 * set by the signed maximum, so the far end of the range may clip by a
 * whole step. */
static float tolerance(uint32_t type, float x, float amax)
{
	switch (type) {
	case COPRO_GGML_F32:
		return 0.0f;
	case COPRO_GGML_F16:
		return fabsf(x) * 0x1p-11f + 0x1p-24f;
	case COPRO_GGML_Q8_0:
		return amax / 127.0f * 0.5f + amax * 0x1p-10f;
	default:
		return amax / 8.0f + amax * 0x1p-10f;
	}
}

static void check_synth_tensor(const struct copro_gguf *g, const struct copro_synth_opts *o,
			       const char *name, uint32_t n_dims, uint64_t ne0, uint64_t ne1,
			       uint32_t type)
{
	const struct copro_gguf_tensor *t;
	size_t rb = copro_ggml_row_bytes(type, ne0);
	float *want = malloc(ne0 * sizeof(float)), *got = malloc(ne0 * sizeof(float));

	assert_non_null(want);
	assert_non_null(got);
	check_shape(g, name, n_dims, ne0, ne1, type);
	t = copro_gguf_tensor(g, name);
	for (uint64_t r = 0; r < ne1; r++) {
		copro_llm_synth_values(o->seed, name, ne0, r * ne0, ne0, want);
		copro_dequantize_row(type, (const uint8_t *)t->data + r * rb, got, ne0);
		for (uint64_t b = 0; b < ne0; b += COPRO_QK) {
			float amax = 0;
			uint64_t end = b + COPRO_QK < ne0 ? b + COPRO_QK : ne0;

			for (uint64_t i = b; i < end; i++)
				amax = fmaxf(amax, fabsf(want[i]));
			for (uint64_t i = b; i < end; i++)
				if (fabsf(got[i] - want[i]) > tolerance(type, want[i], amax))
					fail_msg("%s[%llu][%llu]: %g, generated %g (%s)", name,
						 (unsigned long long)r, (unsigned long long)i,
						 got[i], want[i], copro_ggml_type_name(type));
		}
	}
	free(want);
	free(got);
}

static void synth_round_trip(uint32_t type, int untied)
{
	static const char *const blk[] = { "attn_q", "attn_k", "attn_v", "attn_output",
					   "ffn_gate", "ffn_up", "ffn_down" };
	struct copro_synth_opts o;
	struct copro_gguf *g;
	char path[300], err[256], name[64];
	const char *s;
	size_t len;
	uint32_t u, et;
	uint64_t count;
	const void *data;
	int32_t tt;

	small_synth_opts(&o, type);
	o.untied = untied;
	tmp_path(path, sizeof(path), "synth.gguf");
	if (copro_llm_synth(&o, path, err, sizeof(err)))
		fail_msg("synth: %s", err);
	if (copro_gguf_open(path, &g, err, sizeof(err)))
		fail_msg("open: %s", err);

	assert_int_equal(copro_gguf_get_str(g, "general.architecture", &s, &len), 0);
	assert_memory_equal(s, "llama", len);
	assert_int_equal(copro_gguf_get_u32(g, "llama.embedding_length", &u), 0);
	assert_int_equal(u, 64);
	assert_int_equal(copro_gguf_get_u32(g, "llama.rope.dimension_count", &u), 0);
	assert_int_equal(u, 16);
	assert_int_equal(copro_gguf_get_u32(g, "llama.attention.head_count_kv", &u), 0);
	assert_int_equal(u, 2);
	assert_int_equal(copro_gguf_get_u32(g, "llama.vocab_size", &u), 0);
	assert_int_equal(u, 300);
	assert_int_equal(copro_gguf_get_arr(g, "tokenizer.ggml.tokens", &et, &count, &data), 0);
	assert_int_equal(count, 300);
	assert_int_equal(copro_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &count, &data), 0);
	assert_int_equal(et, COPRO_GGUF_I32);
	memcpy(&tt, (const char *)data + 4 * 3, 4);
	assert_int_equal(tt, 6); /* <0x00> is a byte token */
	memcpy(&tt, (const char *)data + 4 * 1, 4);
	assert_int_equal(tt, 3);

	assert_int_equal(g->n_tensors, 1 + 9 * 2 + 1 + !!untied);
	check_synth_tensor(g, &o, "token_embd.weight", 2, 64, 300, type);
	check_synth_tensor(g, &o, "output_norm.weight", 1, 64, 1, COPRO_GGML_F32);
	if (untied)
		check_synth_tensor(g, &o, "output.weight", 2, 64, 300, type);
	else
		assert_null(copro_gguf_tensor(g, "output.weight"));
	for (int l = 0; l < 2; l++) {
		const uint64_t shape[7][2] = { { 64, 64 }, { 64, 32 }, { 64, 32 }, { 64, 64 },
					       { 64, 96 }, { 64, 96 }, { 96, 64 } };

		for (int i = 0; i < 7; i++) {
			snprintf(name, sizeof(name), "blk.%d.%s.weight", l, blk[i]);
			check_synth_tensor(g, &o, name, 2, shape[i][0], shape[i][1], type);
		}
		snprintf(name, sizeof(name), "blk.%d.attn_norm.weight", l);
		check_synth_tensor(g, &o, name, 1, 64, 1, COPRO_GGML_F32);
		snprintf(name, sizeof(name), "blk.%d.ffn_norm.weight", l);
		check_synth_tensor(g, &o, name, 1, 64, 1, COPRO_GGML_F32);
	}
	copro_gguf_close(g);
}

static void should_round_trip_synth_f32_untied(void **state)
{
	synth_round_trip(COPRO_GGML_F32, 1);
}

static void should_round_trip_synth_f16(void **state)
{
	synth_round_trip(COPRO_GGML_F16, 0);
}

static void should_round_trip_synth_q8_0(void **state)
{
	synth_round_trip(COPRO_GGML_Q8_0, 0);
}

static void should_round_trip_synth_q4_0_untied(void **state)
{
	synth_round_trip(COPRO_GGML_Q4_0, 1);
}

static void should_write_the_same_bytes_for_the_same_seed(void **state)
{
	struct copro_synth_opts o;
	char p1[300], p2[300], err[256];
	size_t n1, n2;
	uint8_t *b1, *b2;

	small_synth_opts(&o, COPRO_GGML_Q4_0);
	tmp_path(p1, sizeof(p1), "seed1.gguf");
	tmp_path(p2, sizeof(p2), "seed2.gguf");
	assert_int_equal(copro_llm_synth(&o, p1, err, sizeof(err)), 0);
	assert_int_equal(copro_llm_synth(&o, p2, err, sizeof(err)), 0);
	b1 = read_all(p1, &n1);
	b2 = read_all(p2, &n2);
	assert_int_equal(n1, n2);
	assert_memory_equal(b1, b2, n1);
	free(b2);
	o.seed++;
	assert_int_equal(copro_llm_synth(&o, p2, err, sizeof(err)), 0);
	b2 = read_all(p2, &n2);
	assert_int_equal(n1, n2);
	assert_memory_not_equal(b1, b2, n1);
	free(b1);
	free(b2);
}

static void should_take_the_vocabulary_from_a_llama2c_tokenizer(void **state)
{
	const struct copro_gguf_kv *kv;
	struct copro_synth_opts o;
	struct copro_gguf *g;
	char tok[512], path[300], err[256];
	const char *s;
	size_t len;
	uint32_t u, et;
	uint64_t count;
	const void *data;
	int32_t tt;

	if (shared_path(tok, sizeof(tok), "tok512.bin")) {
		printf("skipped: %s not found (set COPRO_SHARED to the shared directory)\n", tok);
		skip();
	}
	small_synth_opts(&o, COPRO_GGML_F32);
	o.vocab = 0;
	o.vocab_file = tok;
	tmp_path(path, sizeof(path), "tok.gguf");
	if (copro_llm_synth(&o, path, err, sizeof(err)))
		fail_msg("synth: %s", err);
	assert_int_equal(copro_gguf_open(path, &g, err, sizeof(err)), 0);
	assert_int_equal(copro_gguf_get_u32(g, "llama.vocab_size", &u), 0);
	assert_int_equal(u, 512);
	kv = copro_gguf_find(g, "tokenizer.ggml.tokens");
	assert_non_null(kv);
	assert_int_equal(kv->count, 512);
	assert_int_equal(copro_gguf_arr_str(g, kv, 2, &s, &len), 0);
	assert_int_equal(len, 4);
	assert_memory_equal(s, "</s>", 4);
	assert_int_equal(copro_gguf_arr_str(g, kv, 3 + 0x41, &s, &len), 0);
	assert_int_equal(len, 6);
	assert_memory_equal(s, "<0x41>", 6);
	assert_int_equal(copro_gguf_get_arr(g, "tokenizer.ggml.token_type", &et, &count, &data), 0);
	memcpy(&tt, (const char *)data + 4 * 258, 4);
	assert_int_equal(tt, 6);
	memcpy(&tt, (const char *)data + 4 * 259, 4);
	assert_int_equal(tt, 1);
	check_shape(g, "token_embd.weight", 2, 64, 512, COPRO_GGML_F32);
	copro_gguf_close(g);

	o.vocab = 1000; /* disagrees with the file */
	assert_int_equal(copro_llm_synth(&o, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "512 tokens"));
}

static void should_refuse_bad_synth_options(void **state)
{
	struct copro_synth_opts o;
	char path[300], err[256];

	tmp_path(path, sizeof(path), "never.gguf");
	small_synth_opts(&o, COPRO_GGML_F32);
	o.n_heads = 5;
	assert_int_equal(copro_llm_synth(&o, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "divisible by heads"));
	small_synth_opts(&o, COPRO_GGML_F32);
	o.n_kv_heads = 3;
	assert_int_equal(copro_llm_synth(&o, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "divisible by kv-heads"));
	small_synth_opts(&o, COPRO_GGML_Q8_0);
	o.hidden = 100;
	assert_int_equal(copro_llm_synth(&o, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "multiples of 32"));
	small_synth_opts(&o, COPRO_GGML_F32);
	o.vocab = 100;
	assert_int_equal(copro_llm_synth(&o, path, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "vocab"));
	small_synth_opts(&o, 3);
	assert_int_equal(copro_llm_synth(&o, path, err, sizeof(err)), -EINVAL);
	small_synth_opts(&o, COPRO_GGML_F32);
	o.vocab_file = "/nonexistent/tokenizer.bin";
	assert_int_equal(copro_llm_synth(&o, path, err, sizeof(err)), -ENOENT);
	assert_int_equal(access(path, F_OK), -1);
}

/* ---------------------------------------------------------------------- */
/* Bad input                                                              */
/* ---------------------------------------------------------------------- */

static void patch_magic(uint8_t *buf, size_t *size)
{
	memcpy(buf, "GGML", 4);
}

static void should_reject_bad_magic(void **state)
{
	damaged(patch_magic, "not a GGUF file");
}

static void patch_v1(uint8_t *buf, size_t *size)
{
	put_u32(buf + 4, 1);
}

static void should_reject_version_1(void **state)
{
	damaged(patch_v1, "version 1");
}

static void patch_v4(uint8_t *buf, size_t *size)
{
	put_u32(buf + 4, 4);
}

static void should_reject_unknown_version(void **state)
{
	damaged(patch_v4, "unsupported GGUF version 4");
}

static void should_reject_empty_and_missing_files(void **state)
{
	struct copro_gguf *g;
	char path[300], err[256];

	tmp_path(path, sizeof(path), "empty.gguf");
	write_all(path, "", 0);
	expect_invalid(path, "shorter than the 24-byte GGUF header");
	tmp_path(path, sizeof(path), "missing.gguf");
	assert_int_equal(copro_gguf_open(path, &g, err, sizeof(err)), -ENOENT);
	assert_null(g);
	assert_non_null(strstr(err, "cannot open"));
	assert_int_equal(copro_gguf_open(tmpdir, &g, err, sizeof(err)), -EINVAL);
}

/* Every prefix of a whole synthesized model must fail to open, cleanly. */
static void should_reject_every_truncation(void **state)
{
	struct copro_synth_opts o;
	struct copro_gguf *g;
	char path[300], err[256];
	struct stat st;
	int fd;

	copro_llm_synth_defaults(&o);
	o.dim = 8;
	o.n_heads = 2;
	o.n_kv_heads = 1;
	o.hidden = 16;
	o.n_layers = 1;
	o.vocab = 267;
	tmp_path(path, sizeof(path), "trunc.gguf");
	assert_int_equal(copro_llm_synth(&o, path, err, sizeof(err)), 0);
	assert_int_equal(copro_gguf_open(path, &g, err, sizeof(err)), 0);
	copro_gguf_close(g);
	fd = open(path, O_RDWR);
	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_true(st.st_size > 4000);
	for (off_t n = st.st_size - 1; n >= 0; n--) {
		int ret;

		assert_int_equal(ftruncate(fd, n), 0);
		err[0] = 0;
		ret = copro_gguf_open(path, &g, err, sizeof(err));
		if (ret != -EINVAL || g || !err[0])
			fail_msg("prefix of %lld bytes: open returned %d (\"%s\")", (long long)n,
				 ret, err);
	}
	close(fd);
}

static void patch_string_len(uint8_t *buf, size_t *size)
{
	/* general.name's value: u32 type, then the u64 length */
	put_u64(buf + after_str(buf, *size, "general.name") + 4, 1ull << 40);
}

static void should_reject_string_length_past_eof(void **state)
{
	damaged(patch_string_len, "runs past end of file");
}

static void patch_array_count(uint8_t *buf, size_t *size)
{
	/* test.ints: u32 ARRAY, u32 element type, u64 count */
	put_u64(buf + after_str(buf, *size, "test.ints") + 8, 1ull << 62);
}

static void should_reject_huge_array_count(void **state)
{
	damaged(patch_array_count, "array of 4611686018427387904 i32 runs past end of file");
}

static void patch_string_array_count(uint8_t *buf, size_t *size)
{
	put_u64(buf + after_str(buf, *size, "test.strs") + 8, UINT64_MAX);
}

static void should_reject_huge_string_array_count(void **state)
{
	damaged(patch_string_array_count, "strings cannot fit");
}

static void patch_value_type(uint8_t *buf, size_t *size)
{
	put_u32(buf + after_str(buf, *size, "test.u32"), 13);
}

static void should_reject_unknown_value_type(void **state)
{
	damaged(patch_value_type, "key 'test.u32': unknown value type 13");
}

static void patch_n_dims(uint8_t *buf, size_t *size)
{
	put_u32(buf + after_str(buf, *size, "b.weight"), 5);
}

static void should_reject_five_dimensions(void **state)
{
	damaged(patch_n_dims, "tensor 'b.weight': 5 dimensions");
}

/* b.weight's info: n_dims, ne[2], type, offset */
#define B_TYPE (4 + 16)
#define B_OFFSET (4 + 16 + 4)

static void patch_type(uint8_t *buf, size_t *size)
{
	put_u32(buf + after_str(buf, *size, "b.weight") + B_TYPE, 99);
}

static void should_reject_unknown_tensor_type(void **state)
{
	damaged(patch_type, "tensor 'b.weight': unknown or unsupported type 99");
}

static void patch_type_q4_1(uint8_t *buf, size_t *size)
{
	put_u32(buf + after_str(buf, *size, "b.weight") + B_TYPE, 3); /* Q4_1 */
}

static void should_reject_a_type_copro_does_not_run(void **state)
{
	damaged(patch_type_q4_1, "unsupported type 3");
}

static void patch_offset_far(uint8_t *buf, size_t *size)
{
	put_u64(buf + after_str(buf, *size, "b.weight") + B_OFFSET, 1ull << 20);
}

static void should_reject_tensor_data_past_eof(void **state)
{
	damaged(patch_offset_far, "tensor 'b.weight': data starts at byte");
}

static void patch_offset_end(uint8_t *buf, size_t *size)
{
	/* Keep the offset but cut the file: b.weight's last byte is gone. */
	*size -= 1;
}

static void should_reject_tensor_data_ending_past_eof(void **state)
{
	damaged(patch_offset_end, "tensor 'b.weight': data ends at byte");
}

static void patch_offset_misaligned(uint8_t *buf, size_t *size)
{
	size_t at = after_str(buf, *size, "b.weight") + B_OFFSET;
	uint64_t off;

	memcpy(&off, buf + at, 8);
	put_u64(buf + at, off + 4);
}

static void should_reject_misaligned_tensor_offset(void **state)
{
	damaged(patch_offset_misaligned, "is not a multiple of the alignment 32");
}

static void patch_q8_row(uint8_t *buf, size_t *size)
{
	put_u64(buf + after_str(buf, *size, "b.weight") + 4, 33); /* ne[0] */
}

static void should_reject_a_row_that_does_not_fit_its_blocks(void **state)
{
	damaged(patch_q8_row, "row of 33 elements does not fit type Q8_0");
}

static void patch_huge_dims(uint8_t *buf, size_t *size)
{
	size_t at = after_str(buf, *size, "b.weight") + 4;

	put_u64(buf + at, 1ull << 32);
	put_u64(buf + at + 8, 1ull << 32);
}

static void should_reject_element_counts_that_overflow(void **state)
{
	damaged(patch_huge_dims, "tensor 'b.weight'");
}

static void should_reject_duplicate_tensor_names(void **state)
{
	char path[300];

	tmp_path(path, sizeof(path), "dup.gguf");
	write_small(path, NULL, 0, 1);
	expect_invalid(path, "duplicate tensor name 'a.weight'");
}

static void should_reject_duplicate_keys(void **state)
{
	char path[300];

	tmp_path(path, sizeof(path), "dupkey.gguf");
	write_small(path, "test.u32", 8, 0);
	expect_invalid(path, "duplicate key 'test.u32'");
}

static void should_reject_non_power_of_two_alignment(void **state)
{
	char path[300];

	tmp_path(path, sizeof(path), "align.gguf");
	write_small(path, "general.alignment", 24, 0);
	expect_invalid(path, "general.alignment must be a power of two");
	write_small(path, "general.alignment", 0, 0);
	expect_invalid(path, "general.alignment must be a power of two");
}

static void patch_nul_in_key(uint8_t *buf, size_t *size)
{
	buf[after_str(buf, *size, "test.u32") - 3] = 0;
}

static void should_reject_a_nul_byte_in_a_key(void **state)
{
	damaged(patch_nul_in_key, "contains a NUL byte");
}

static void patch_bool(uint8_t *buf, size_t *size)
{
	buf[after_str(buf, *size, "test.bool") + 4] = 2;
}

static void should_reject_a_bool_that_is_not_0_or_1(void **state)
{
	damaged(patch_bool, "bool value 2");
}

static void patch_counts(uint8_t *buf, size_t *size)
{
	put_u64(buf + 8, UINT64_MAX);
}

static void should_reject_a_tensor_count_the_file_cannot_hold(void **state)
{
	damaged(patch_counts, "tensors cannot fit");
}

static void patch_nested(uint8_t *buf, size_t *size)
{
	put_u32(buf + after_str(buf, *size, "test.ints") + 4, COPRO_GGUF_ARRAY);
}

static void should_reject_nested_arrays(void **state)
{
	damaged(patch_nested, "arrays of arrays");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_read_stories260k_metadata_and_shapes),
		cmocka_unit_test(should_read_back_every_kind_of_key_and_tensor),
		cmocka_unit_test(should_open_version_2),
		cmocka_unit_test(should_round_trip_synth_f32_untied),
		cmocka_unit_test(should_round_trip_synth_f16),
		cmocka_unit_test(should_round_trip_synth_q8_0),
		cmocka_unit_test(should_round_trip_synth_q4_0_untied),
		cmocka_unit_test(should_write_the_same_bytes_for_the_same_seed),
		cmocka_unit_test(should_take_the_vocabulary_from_a_llama2c_tokenizer),
		cmocka_unit_test(should_refuse_bad_synth_options),
		cmocka_unit_test(should_reject_bad_magic),
		cmocka_unit_test(should_reject_version_1),
		cmocka_unit_test(should_reject_unknown_version),
		cmocka_unit_test(should_reject_empty_and_missing_files),
		cmocka_unit_test(should_reject_every_truncation),
		cmocka_unit_test(should_reject_string_length_past_eof),
		cmocka_unit_test(should_reject_huge_array_count),
		cmocka_unit_test(should_reject_huge_string_array_count),
		cmocka_unit_test(should_reject_unknown_value_type),
		cmocka_unit_test(should_reject_five_dimensions),
		cmocka_unit_test(should_reject_unknown_tensor_type),
		cmocka_unit_test(should_reject_a_type_copro_does_not_run),
		cmocka_unit_test(should_reject_tensor_data_past_eof),
		cmocka_unit_test(should_reject_tensor_data_ending_past_eof),
		cmocka_unit_test(should_reject_misaligned_tensor_offset),
		cmocka_unit_test(should_reject_a_row_that_does_not_fit_its_blocks),
		cmocka_unit_test(should_reject_element_counts_that_overflow),
		cmocka_unit_test(should_reject_duplicate_tensor_names),
		cmocka_unit_test(should_reject_duplicate_keys),
		cmocka_unit_test(should_reject_non_power_of_two_alignment),
		cmocka_unit_test(should_reject_a_nul_byte_in_a_key),
		cmocka_unit_test(should_reject_a_bool_that_is_not_0_or_1),
		cmocka_unit_test(should_reject_a_tensor_count_the_file_cannot_hold),
		cmocka_unit_test(should_reject_nested_arrays),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
