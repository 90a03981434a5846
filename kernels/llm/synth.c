// SPDX-License-Identifier: MIT
/*
 * Synthetic Llama GGUF files. The tensors are streamed: each is produced a
 * chunk of rows at a time by fill_rows() while the writer writes, so a
 * 100M-parameter model needs a megabyte or two of memory, not 400.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/gguf.h"
#include "llm/quant.h"
#include "llm/synth.h"

#define N_SPECIAL 3	/* <unk>, <s>, </s> */
#define N_BYTES 256	/* <0x00>..<0xFF> */
#define TOK_NORMAL 1
#define TOK_UNKNOWN 2
#define TOK_CONTROL 3
#define TOK_BYTE 6
#define SPACE "\xe2\x96\x81" /* U+2581, SentencePiece's word-start mark */
#define MAX_VOCAB (1u << 20)

void copro_llm_synth_defaults(struct copro_synth_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->dim = 64;
	o->n_layers = 2;
	o->n_heads = 4;
	o->n_kv_heads = 2;
	o->hidden = 192;
	o->vocab = 512;
	o->context = 256;
	o->type = COPRO_GGML_F32;
	o->seed = 1;
}

static int bad(char *err, size_t errlen, const char *msg)
{
	snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

/* Checks the shape options (the vocabulary file is checked when read). */
int copro_llm_synth_check(const struct copro_synth_opts *o, char *err, size_t errlen)
{
	if (!o->dim || !o->n_layers || !o->n_heads || !o->n_kv_heads || !o->hidden ||
	    !o->context)
		return bad(err, errlen, "dim, layers, heads, kv-heads, hidden and context must be > 0");
	if (o->dim > 65536 || o->hidden > 262144 || o->n_layers > 1024 || o->context > 1u << 24)
		return bad(err, errlen, "too large (dim <= 65536, hidden <= 262144, layers <= 1024)");
	if (o->dim % o->n_heads)
		return bad(err, errlen, "dim must be divisible by heads");
	if (o->n_heads % o->n_kv_heads)
		return bad(err, errlen, "heads must be divisible by kv-heads");
	if ((o->dim / o->n_heads) % 2)
		return bad(err, errlen, "head size (dim / heads) must be even for rotary embeddings");
	if (!copro_ggml_type_name(o->type))
		return bad(err, errlen, "type must be F32, F16, Q8_0 or Q4_0");
	if ((o->type == COPRO_GGML_Q8_0 || o->type == COPRO_GGML_Q4_0) &&
	    (o->dim % COPRO_QK || o->hidden % COPRO_QK))
		return bad(err, errlen, "quantized types need dim and hidden to be multiples of 32");
	if (!o->vocab_file && (o->vocab < N_SPECIAL + N_BYTES + 8 || o->vocab > MAX_VOCAB))
		return bad(err, errlen, "vocab must be between 267 and 1048576 (3 special tokens, "
			   "256 byte tokens, and some pieces)");
	return 0;
}

/* ---- weights ------------------------------------------------------------ */

static uint64_t splitmix64(uint64_t z)
{
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

static uint64_t fnv1a(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	while (*s)
		h = (h ^ (uint8_t)*s++) * 0x100000001b3ULL;
	return h;
}

static int is_norm(const char *name)
{
	size_t n = strlen(name);

	return n >= 12 && !strcmp(name + n - 12, "_norm.weight");
}

void copro_llm_synth_values(uint64_t seed, const char *name, uint64_t ne0, uint64_t first,
			    uint64_t n, float *out)
{
	uint64_t base = splitmix64(seed ^ fnv1a(name));
	float bound = is_norm(name) ? 0.1f : 1.0f / sqrtf((float)ne0);
	float center = is_norm(name) ? 1.0f : 0.0f;

	for (uint64_t i = 0; i < n; i++) {
		uint64_t z = splitmix64(base + (first + i + 1) * 0x9e3779b97f4a7c15ULL);
		float u = (float)(z >> 40) * 0x1p-24f; /* [0, 1) */

		out[i] = center + (2.0f * u - 1.0f) * bound;
	}
}

struct fill_ctx {
	char name[COPRO_GGUF_MAX_NAME];
	uint64_t seed, ne0;
	uint32_t type;
	float *row; /* (ne0) */
};

/* The writer's callback: rows of f32 values, converted to the tensor's type. */
static int fill_rows(void *arg, uint64_t row, uint64_t n_rows, void *dst)
{
	struct fill_ctx *c = arg;
	size_t rb = copro_ggml_row_bytes(c->type, c->ne0);

	for (uint64_t r = 0; r < n_rows; r++) {
		uint8_t *d = (uint8_t *)dst + r * rb;

		copro_llm_synth_values(c->seed, c->name, c->ne0, (row + r) * c->ne0, c->ne0, c->row);
		switch (c->type) {
		case COPRO_GGML_F32:
			memcpy(d, c->row, rb);
			break;
		case COPRO_GGML_F16:
			for (uint64_t i = 0; i < c->ne0; i++) {
				uint16_t h = copro_f32_to_f16(c->row[i]);

				memcpy(d + 2 * i, &h, 2);
			}
			break;
		case COPRO_GGML_Q8_0:
			copro_quantize_row_q8_0(c->row, (struct copro_block_q8_0 *)d, c->ne0);
			break;
		case COPRO_GGML_Q4_0:
			copro_quantize_row_q4_0(c->row, (struct copro_block_q4_0 *)d, c->ne0);
			break;
		default:
			return -EINVAL;
		}
	}
	return 0;
}

/* ---- vocabulary --------------------------------------------------------- */

struct vocab {
	uint32_t n;
	char **pieces;	 /* (n) */
	float *scores;	 /* (n) */
	int32_t *types;	 /* (n) */
};

static void vocab_free(struct vocab *v)
{
	if (v->pieces)
		for (uint32_t i = 0; i < v->n; i++)
			free(v->pieces[i]);
	free(v->pieces);
	free(v->scores);
	free(v->types);
}

static int vocab_alloc(struct vocab *v, uint32_t n)
{
	v->n = n;
	v->pieces = calloc(n, sizeof(*v->pieces));
	v->scores = calloc(n, sizeof(*v->scores));
	v->types = calloc(n, sizeof(*v->types));
	return v->pieces && v->scores && v->types ? 0 : -ENOMEM;
}

/* Sets the three special tokens and the 256 byte tokens, as llama.cpp's
 * converter writes them. */
static int vocab_fixed(struct vocab *v)
{
	static const char *const special[N_SPECIAL] = { "<unk>", "<s>", "</s>" };
	static const int32_t stype[N_SPECIAL] = { TOK_UNKNOWN, TOK_CONTROL, TOK_CONTROL };

	for (int i = 0; i < N_SPECIAL; i++) {
		free(v->pieces[i]);
		v->pieces[i] = strdup(special[i]);
		v->types[i] = stype[i];
		v->scores[i] = 0.0f;
		if (!v->pieces[i])
			return -ENOMEM;
	}
	for (int b = 0; b < N_BYTES; b++) {
		char p[8];

		snprintf(p, sizeof(p), "<0x%02X>", b);
		free(v->pieces[N_SPECIAL + b]);
		v->pieces[N_SPECIAL + b] = strdup(p);
		v->types[N_SPECIAL + b] = TOK_BYTE;
		v->scores[N_SPECIAL + b] = 0.0f;
		if (!v->pieces[N_SPECIAL + b])
			return -ENOMEM;
	}
	return 0;
}

/* Writes the k-th lowercase string in length-then-lexicographic order
 * ("a".."z", "aa".."zz", ...) into s. */
static void nth_word(uint64_t k, char *s)
{
	uint64_t span = 26;
	int len = 1;

	while (k >= span) {
		k -= span;
		span *= 26;
		len++;
	}
	s[len] = 0;
	for (int i = len - 1; i >= 0; i--) {
		s[i] = (char)('a' + k % 26);
		k /= 26;
	}
}

/* A vocabulary that needs no file: the fixed tokens, "▁", punctuation and
 * digits, then every lowercase string by length, each as a word start
 * ("▁ab") and as a continuation ("ab"), with scores falling as SentencePiece
 * scores fall. */
static int vocab_generate(struct vocab *v, uint32_t n)
{
	static const char punct[] = ".,!?'\"-:;()0123456789";
	uint32_t id = N_SPECIAL + N_BYTES;
	uint64_t k = 0;
	char buf[32];
	int ret;

	ret = vocab_alloc(v, n);
	if (ret)
		return ret;
	ret = vocab_fixed(v);
	if (ret)
		return ret;
	for (int i = -1; id < n && i < (int)sizeof(punct) - 1; i++) {
		if (i < 0)
			snprintf(buf, sizeof(buf), SPACE);
		else
			snprintf(buf, sizeof(buf), "%c", punct[i]);
		v->pieces[id++] = strdup(buf);
	}
	while (id < n) {
		char w[16];

		nth_word(k / 2, w);
		snprintf(buf, sizeof(buf), "%s%s", k % 2 ? "" : SPACE, w);
		v->pieces[id++] = strdup(buf);
		k++;
	}
	for (uint32_t i = N_SPECIAL + N_BYTES; i < n; i++) {
		if (!v->pieces[i])
			return -ENOMEM;
		v->types[i] = TOK_NORMAL;
		v->scores[i] = -(float)(i - (N_SPECIAL + N_BYTES));
	}
	return 0;
}

/* Reads a llama2.c tokenizer file: int32 max_token_length, then per token
 * float32 score, int32 length, bytes; the token count is what the file
 * holds. Its ids 0..2 are replaced by "<unk>", "<s>", "</s>" (llama2.c
 * writes "\n<s>\n") and 3..258 are the byte tokens. */
static int vocab_read(struct vocab *v, const char *path, uint32_t want, char *err,
		      size_t errlen)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
	long size;
	size_t off = 4;
	uint32_t n = 0;
	int ret = -EINVAL;

	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		return ret;
	}
	if (fseek(f, 0, SEEK_END) || (size = ftell(f)) < 0 || fseek(f, 0, SEEK_SET)) {
		ret = -EIO;
		snprintf(err, errlen, "%s: cannot read", path);
		goto out;
	}
	buf = malloc((size_t)size + 1);
	if (!buf || fread(buf, 1, (size_t)size, f) != (size_t)size) {
		ret = buf ? -EIO : -ENOMEM;
		snprintf(err, errlen, "%s: cannot read", path);
		goto out;
	}
	/* First pass: count and validate. */
	while (off < (size_t)size) {
		int32_t len;

		if ((size_t)size - off < 8)
			goto trunc;
		memcpy(&len, buf + off + 4, 4);
		if (len < 0 || (size_t)len > (size_t)size - off - 8)
			goto trunc;
		if (memchr(buf + off + 8, 0, (size_t)len)) {
			snprintf(err, errlen, "%s: token %u contains a NUL byte", path, n);
			goto out;
		}
		off += 8 + (size_t)len;
		if (++n > MAX_VOCAB) {
			snprintf(err, errlen, "%s: more than %u tokens", path, MAX_VOCAB);
			goto out;
		}
	}
	if (size < 4 || n < N_SPECIAL + N_BYTES) {
		snprintf(err, errlen, "%s: %u tokens, a llama vocabulary has at least %d", path, n,
			 N_SPECIAL + N_BYTES);
		goto out;
	}
	if (want && want != n) {
		snprintf(err, errlen, "%s has %u tokens but --vocab says %u", path, n, want);
		goto out;
	}
	ret = vocab_alloc(v, n);
	if (ret) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	off = 4;
	for (uint32_t i = 0; i < n; i++) {
		int32_t len;

		memcpy(&v->scores[i], buf + off, 4);
		memcpy(&len, buf + off + 4, 4);
		v->pieces[i] = strndup((const char *)buf + off + 8, (size_t)len);
		v->types[i] = TOK_NORMAL;
		off += 8 + (size_t)len;
		if (!v->pieces[i]) {
			ret = -ENOMEM;
			snprintf(err, errlen, "out of memory");
			goto out;
		}
	}
	ret = vocab_fixed(v);
	if (ret)
		snprintf(err, errlen, "out of memory");
	goto out;
trunc:
	snprintf(err, errlen, "%s: token %u runs past the end of the file: not a llama2.c "
		 "tokenizer file", path, n);
out:
	free(buf);
	fclose(f);
	return ret;
}

/* ---- the model ---------------------------------------------------------- */

static int add_metadata(struct copro_gguf_writer *w, const struct copro_synth_opts *o,
			const struct vocab *v)
{
	uint32_t file_type = o->type == COPRO_GGML_F32 ? 0 : o->type == COPRO_GGML_F16 ? 1 :
			     o->type == COPRO_GGML_Q4_0 ? 2 : 7; /* llama_ftype MOSTLY_* */

	copro_gguf_add_str(w, "general.architecture", "llama");
	copro_gguf_add_str(w, "general.name", o->name ? o->name : "copro-synth");
	copro_gguf_add_u32(w, "general.file_type", file_type);
	copro_gguf_add_u32(w, "llama.context_length", o->context);
	copro_gguf_add_u32(w, "llama.embedding_length", o->dim);
	copro_gguf_add_u32(w, "llama.block_count", o->n_layers);
	copro_gguf_add_u32(w, "llama.feed_forward_length", o->hidden);
	copro_gguf_add_u32(w, "llama.rope.dimension_count", o->dim / o->n_heads);
	copro_gguf_add_u32(w, "llama.attention.head_count", o->n_heads);
	copro_gguf_add_u32(w, "llama.attention.head_count_kv", o->n_kv_heads);
	copro_gguf_add_f32(w, "llama.attention.layer_norm_rms_epsilon",
			   o->norm_eps > 0 ? o->norm_eps : 1e-5f);
	copro_gguf_add_f32(w, "llama.rope.freq_base",
			   o->rope_freq_base > 0 ? o->rope_freq_base : 10000.0f);
	copro_gguf_add_u32(w, "llama.vocab_size", v->n);
	copro_gguf_add_str(w, "tokenizer.ggml.model", "llama");
	copro_gguf_add_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v->pieces, v->n);
	copro_gguf_add_arr_f32(w, "tokenizer.ggml.scores", v->scores, v->n);
	copro_gguf_add_arr_i32(w, "tokenizer.ggml.token_type", v->types, v->n);
	copro_gguf_add_u32(w, "tokenizer.ggml.bos_token_id", 1);
	copro_gguf_add_u32(w, "tokenizer.ggml.eos_token_id", 2);
	copro_gguf_add_u32(w, "tokenizer.ggml.unknown_token_id", 0);
	copro_gguf_add_bool(w, "tokenizer.ggml.add_bos_token", 1);
	return copro_gguf_add_bool(w, "tokenizer.ggml.add_eos_token", 0);
}

/* Records one tensor with its fill context (c points into an array sized
 * for every tensor of the model). */
static int add(struct copro_gguf_writer *w, struct fill_ctx *c, const struct copro_synth_opts *o,
	       const char *name, uint64_t ne0, uint64_t ne1, float *row)
{
	uint64_t ne[2] = { ne0, ne1 };

	snprintf(c->name, sizeof(c->name), "%s", name);
	c->seed = o->seed;
	c->ne0 = ne0;
	c->type = ne1 > 1 ? o->type : COPRO_GGML_F32; /* norms stay F32 */
	c->row = row;
	return copro_gguf_add_tensor_fill(w, c->name, ne1 > 1 ? 2 : 1, ne, c->type, fill_rows, c);
}

/*
 * Writes a random-weight Llama model to path. Returns 0, or a negative
 * errno with the reason in err (-EINVAL for bad options or a bad vocabulary
 * file, -ENOMEM, or the file system's error).
 */
int copro_llm_synth(const struct copro_synth_opts *o, const char *path, char *err,
		    size_t errlen)
{
	static const char *const blk[] = { "attn_norm", "attn_q", "attn_k", "attn_v",
					   "attn_output", "ffn_norm", "ffn_gate", "ffn_up",
					   "ffn_down" };
	struct copro_gguf_writer *w = NULL;
	struct vocab v = { 0 };
	struct fill_ctx *ctx = NULL;
	uint32_t kv_dim, n_t = 0;
	float *row = NULL;
	int ret;

	ret = copro_llm_synth_check(o, err, errlen);
	if (ret)
		return ret;
	kv_dim = o->dim / o->n_heads * o->n_kv_heads;
	if (o->vocab_file)
		ret = vocab_read(&v, o->vocab_file, o->vocab, err, errlen);
	else if ((ret = vocab_generate(&v, o->vocab)))
		snprintf(err, errlen, "out of memory");
	if (ret)
		goto out;

	ctx = calloc(9ull * o->n_layers + 3, sizeof(*ctx));
	row = malloc((o->dim > o->hidden ? o->dim : o->hidden) * sizeof(*row)); // (max(dim, hidden))
	ret = ctx && row ? copro_gguf_writer_new(&w) : -ENOMEM;
	if (ret) {
		snprintf(err, errlen, "out of memory");
		goto out;
	}
	add_metadata(w, o, &v);

	add(w, &ctx[n_t++], o, "token_embd.weight", o->dim, v.n, row);
	for (uint32_t l = 0; l < o->n_layers; l++) {
		/* (ne0, ne1) of each block tensor, in blk[] order: ne0 is the
		 * input width, ne1 the output rows. */
		const uint64_t shape[9][2] = {
			{ o->dim, 1 }, { o->dim, o->dim }, { o->dim, kv_dim }, { o->dim, kv_dim },
			{ o->dim, o->dim }, { o->dim, 1 }, { o->dim, o->hidden },
			{ o->dim, o->hidden }, { o->hidden, o->dim },
		};

		for (int i = 0; i < 9; i++) {
			char name[COPRO_GGUF_MAX_NAME];

			snprintf(name, sizeof(name), "blk.%u.%s.weight", l, blk[i]);
			add(w, &ctx[n_t++], o, name, shape[i][0], shape[i][1], row);
		}
	}
	add(w, &ctx[n_t++], o, "output_norm.weight", o->dim, 1, row);
	if (o->untied)
		add(w, &ctx[n_t++], o, "output.weight", o->dim, v.n, row);
	ret = copro_gguf_write(w, path, err, errlen);
out:
	copro_gguf_writer_free(w);
	free(row);
	free(ctx);
	vocab_free(&v);
	return ret;
}
