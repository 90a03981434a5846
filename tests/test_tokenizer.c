// SPDX-License-Identifier: MIT
/*
 * test_tokenizer.c - the llama (SentencePiece BPE) and gpt2 (byte-level
 * BPE) tokenizers and the streaming detokenizer.
 *
 * The llama tests load llama2.c-format vocabularies from the shared model
 * directory ($COPRO_SHARED, else ../shared): models/tok512.bin (the
 * 512-token vocabulary of stories260K) and models/tokenizer.bin (Llama 2's
 * 32000 tokens), and check against llama.cpp's ids and text in
 * models/stories260K.reference.txt. Without that directory they skip with
 * a message. The gpt2 tests build a small byte-level vocabulary here.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "llm/tokenizer.h"

/* ---- helpers -------------------------------------------------------------- */

static const char *shared_dir(void)
{
	const char *s = getenv("COPRO_SHARED");

	return s && *s ? s : "../shared";
}

static char *read_file(const char *name, size_t *len)
{
	char path[1024];
	FILE *f;
	char *buf = NULL;
	long n;

	snprintf(path, sizeof(path), "%s/models/%s", shared_dir(), name);
	f = fopen(path, "rb");
	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (n = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc((size_t)n + 1);
		if (buf && fread(buf, 1, (size_t)n, f) != (size_t)n) {
			free(buf);
			buf = NULL;
		}
		if (buf) {
			buf[n] = 0;
			*len = (size_t)n;
		}
	}
	fclose(f);
	return buf;
}

/* A vocabulary held as the arrays a descriptor points at. */
struct vocab {
	uint32_t n;
	char **text;
	uint32_t *len;
	float *score;
	int32_t *type;
};

static void vocab_free(struct vocab *v)
{
	for (uint32_t i = 0; i < v->n; i++)
		free(v->text[i]);
	free(v->text);
	free(v->len);
	free(v->score);
	free(v->type);
	memset(v, 0, sizeof(*v));
}

static void vocab_add(struct vocab *v, const char *s, size_t n, float score, int32_t type)
{
	if ((v->n & (v->n - 1)) == 0) { /* grow at 0, 1, 2, 4, ...: doubling */
		size_t c = v->n ? 2 * (size_t)v->n : 1;

		v->text = realloc(v->text, c * sizeof(*v->text));
		v->len = realloc(v->len, c * sizeof(*v->len));
		v->score = realloc(v->score, c * sizeof(*v->score));
		v->type = realloc(v->type, c * sizeof(*v->type));
		assert_non_null(v->text);
		assert_non_null(v->len);
		assert_non_null(v->score);
		assert_non_null(v->type);
	}
	v->text[v->n] = malloc(n + 1);
	assert_non_null(v->text[v->n]);
	memcpy(v->text[v->n], s, n);
	v->len[v->n] = (uint32_t)n;
	v->score[v->n] = score;
	v->type[v->n] = type;
	v->n++;
}

/*
 * Load a llama2.c tokenizer file (int32 max_token_length, then per token
 * float32 score, int32 len, len bytes) back into GGUF spellings: llama2.c
 * exported spaces for U+2581 and wrapped <s> / </s> in newlines.
 */
static int load_llama2c(const char *name, struct vocab *v)
{
	size_t n, o = 4;
	char *buf = read_file(name, &n);

	memset(v, 0, sizeof(*v));
	if (!buf)
		return -ENOENT;
	while (o + 8 <= n) {
		float score;
		int32_t len;
		char piece[512];
		size_t k = 0;

		memcpy(&score, buf + o, 4);
		memcpy(&len, buf + o + 4, 4);
		o += 8;
		assert_true(len >= 0 && o + (size_t)len <= n && len < 128);
		if (len == 5 && !memcmp(buf + o, "\n<s>\n", 5)) {
			k = 3;
			memcpy(piece, "<s>", 3);
		} else if (len == 6 && !memcmp(buf + o, "\n</s>\n", 6)) {
			k = 4;
			memcpy(piece, "</s>", 4);
		} else {
			for (int32_t i = 0; i < len; i++) {
				if (buf[o + i] == ' ') {
					memcpy(piece + k, "\xe2\x96\x81", 3);
					k += 3;
				} else {
					piece[k++] = buf[o + i];
				}
			}
		}
		vocab_add(v, piece, k, score, 0);
		o += (size_t)len;
	}
	free(buf);
	return 0;
}

static struct copro_tok_desc llama_desc(const struct vocab *v)
{
	return (struct copro_tok_desc){
		.model = COPRO_TOK_LLAMA,
		.n_vocab = v->n,
		.text = (const char *const *)v->text,
		.text_len = v->len,
		.scores = v->score,
		.types = NULL, /* inferred: <0xXX> bytes, <s> </s> control, <unk> */
		.bos = 1,
		.eos = 2,
		.unk = 0,
		.add_bos = true,
		.add_space_prefix = true,
	};
}

static struct copro_tok *tok512, *tok32k;

static int load_shared(void **state)
{
	struct vocab v;
	struct copro_tok_desc d;
	char err[200];

	(void)state;
	if (load_llama2c("tok512.bin", &v) == 0) {
		assert_int_equal(v.n, 512);
		d = llama_desc(&v);
		assert_int_equal(copro_tok_create(&d, &tok512, err, sizeof(err)), 0);
		vocab_free(&v);
	}
	if (load_llama2c("tokenizer.bin", &v) == 0) {
		assert_int_equal(v.n, 32000);
		d = llama_desc(&v);
		assert_int_equal(copro_tok_create(&d, &tok32k, err, sizeof(err)), 0);
		vocab_free(&v);
	}
	return 0;
}

static int free_shared(void **state)
{
	(void)state;
	copro_tok_destroy(tok512);
	copro_tok_destroy(tok32k);
	return 0;
}

#define NEED(tok, file)                                                                    \
	do {                                                                               \
		if (!(tok)) {                                                              \
			print_message("skipped: %s/models/" file " not found "             \
				      "(set COPRO_SHARED to the shared data directory)\n", \
				      shared_dir());                                       \
			skip();                                                            \
		}                                                                          \
	} while (0)

/* True when s[0..n) is complete, valid UTF-8 (no truncated tail). */
static bool utf8_complete(const char *s, size_t n)
{
	const uint8_t *p = (const uint8_t *)s;
	size_t i = 0;

	while (i < n) {
		uint8_t c = p[i];
		size_t need;
		uint8_t lo = 0x80, hi = 0xbf;

		if (c < 0x80) {
			i++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			need = 1;
		else if (c >= 0xe0 && c <= 0xef)
			need = 2, lo = c == 0xe0 ? 0xa0 : 0x80, hi = c == 0xed ? 0x9f : 0xbf;
		else if (c >= 0xf0 && c <= 0xf4)
			need = 3, lo = c == 0xf0 ? 0x90 : 0x80, hi = c == 0xf4 ? 0x8f : 0xbf;
		else
			return false;
		if (i + need >= n)
			return false;
		if (p[i + 1] < lo || p[i + 1] > hi)
			return false;
		for (size_t k = 2; k <= need; k++)
			if (p[i + k] < 0x80 || p[i + k] > 0xbf)
				return false;
		i += need + 1;
	}
	return true;
}

/*
 * Stream ids through a detokenizer into out (cap bytes), checking that
 * every event is complete UTF-8. Returns the text length; *held counts the
 * pushes that held bytes back (the events a naive decoder would split).
 */
static size_t stream_decode(const struct copro_tok *t, const int32_t *ids, size_t n,
			    bool strip, char *out, size_t cap, int *held)
{
	struct copro_detok s;
	size_t o = 0;
	char ev[256];
	int r;

	assert_true(sizeof(ev) >= 3 * (3 + copro_tok_max_piece(t)));
	copro_detok_init(&s, strip);
	if (held)
		*held = 0;
	for (size_t i = 0; i < n; i++) {
		r = copro_detok_push(t, &s, ids[i], ev, sizeof(ev));
		assert_true(r >= 0);
		assert_true(utf8_complete(ev, (size_t)r));
		if (held && s.n_pend)
			(*held)++;
		assert_true(o + (size_t)r <= cap);
		memcpy(out + o, ev, (size_t)r);
		o += (size_t)r;
	}
	r = copro_detok_flush(&s, ev, sizeof(ev));
	assert_true(r >= 0);
	assert_true(o + (size_t)r <= cap);
	memcpy(out + o, ev, (size_t)r);
	return o + (size_t)r;
}

/* Encode into a malloc'd array sized by a measuring call first. */
static int32_t *encode_all(const struct copro_tok *t, const char *s, size_t len, bool bos,
			   int *n)
{
	int32_t *ids;
	int m = copro_tok_encode(t, s, len, bos, NULL, 0);

	assert_true(m >= 0);
	ids = malloc(((size_t)m + 1) * sizeof(*ids));
	assert_non_null(ids);
	assert_int_equal(copro_tok_encode(t, s, len, bos, ids, (size_t)m), m);
	*n = m;
	return ids;
}

/* encode -> stream decode (stripping the prefix space) gives s back. */
static void assert_round_trip(const struct copro_tok *t, const char *s, size_t len,
			      int *held)
{
	int n;
	int32_t *ids = encode_all(t, s, len, copro_tok_bos(t) >= 0, &n);
	size_t cap = 3 * len + 16;
	char *out = malloc(cap);

	assert_non_null(out);
	size_t m = stream_decode(t, ids, (size_t)n, true, out, cap, held);
	assert_int_equal(m, len);
	assert_memory_equal(out, s, len);
	free(out);
	free(ids);
}

/* ---- the reference file --------------------------------------------------- */

struct ref {
	char *prompt, *gen_text;
	size_t prompt_len, gen_len;
	int32_t prompt_ids[64], gen_ids[128];
	int n_prompt_ids, n_gen_ids;
};

/* Parse the C-style quoted string at *p (which points at '"'). */
static char *unquote(const char *p, size_t *len)
{
	char *out = malloc(strlen(p) + 1);
	size_t o = 0;

	assert_non_null(out);
	assert_int_equal(*p, '"');
	for (p++; *p && *p != '"'; p++) {
		if (*p != '\\') {
			out[o++] = *p;
			continue;
		}
		switch (*++p) {
		case 'n': out[o++] = '\n'; break;
		case 't': out[o++] = '\t'; break;
		case 'r': out[o++] = '\r'; break;
		case 'x': {
			unsigned v;

			assert_int_equal(sscanf(p + 1, "%2x", &v), 1);
			out[o++] = (char)v;
			p += 2;
			break;
		}
		default: out[o++] = *p; break; /* \\ and \" */
		}
	}
	assert_int_equal(*p, '"');
	*len = o;
	return out;
}

static int parse_ids(const char *line, int32_t *ids, int cap)
{
	const char *p = strstr(line, ":");
	int n = 0;

	assert_non_null(p);
	for (p++;;) {
		char *end;
		long v = strtol(p, &end, 10);

		if (end == p)
			break;
		assert_true(n < cap);
		ids[n++] = (int32_t)v;
		p = end;
	}
	return n;
}

/* Read every prompt of stories260K.reference.txt; returns the count, -1 if absent. */
static int load_refs(struct ref *r, int cap)
{
	size_t len;
	char *buf = read_file("stories260K.reference.txt", &len), *line, *save = NULL;
	int n = -1;

	if (!buf)
		return -1;
	for (line = strtok_r(buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		if (!strncmp(line, "== prompt", 9)) {
			assert_true(n + 1 < cap);
			n++;
			memset(&r[n], 0, sizeof(r[n]));
			r[n].prompt = unquote(strchr(line, '"'), &r[n].prompt_len);
		} else if (n >= 0 && !strncmp(line, "prompt_ids", 10)) {
			r[n].n_prompt_ids = parse_ids(line, r[n].prompt_ids, 64);
		} else if (n >= 0 && !strncmp(line, "gen_ids", 7)) {
			r[n].n_gen_ids = parse_ids(line, r[n].gen_ids, 128);
		} else if (n >= 0 && !strncmp(line, "gen_text", 8)) {
			r[n].gen_text = unquote(strchr(line, '"'), &r[n].gen_len);
		}
	}
	free(buf);
	return n + 1;
}

static void free_refs(struct ref *r, int n)
{
	for (int i = 0; i < n; i++) {
		free(r[i].prompt);
		free(r[i].gen_text);
	}
}

/* ---- llama: reference --------------------------------------------------- */

static void llama_should_match_llama_cpp_prompt_ids(void **state)
{
	struct ref r[8];
	int n, i, k;

	(void)state;
	NEED(tok512, "tok512.bin");
	n = load_refs(r, 8);
	NEED(n >= 0 ? tok512 : NULL, "stories260K.reference.txt");
	assert_true(n >= 2);
	for (i = 0; i < n; i++) {
		int32_t ids[64];

		assert_true(r[i].n_prompt_ids >= 1);
		k = copro_tok_encode(tok512, r[i].prompt, r[i].prompt_len, true, ids, 64);
		assert_int_equal(k, r[i].n_prompt_ids);
		for (int j = 0; j < k; j++)
			assert_int_equal(ids[j], r[i].prompt_ids[j]);
	}
	free_refs(r, n);
}

static void llama_should_stream_reference_gen_text_exactly(void **state)
{
	struct ref r[8];
	char out[4096];
	int n, i;

	(void)state;
	NEED(tok512, "tok512.bin");
	n = load_refs(r, 8);
	NEED(n >= 0 ? tok512 : NULL, "stories260K.reference.txt");
	assert_true(n >= 2);
	for (i = 0; i < n; i++) {
		/* a continuation of the prompt: its leading space is real */
		size_t m = stream_decode(tok512, r[i].gen_ids, (size_t)r[i].n_gen_ids, false, out,
					 sizeof(out), NULL);

		assert_int_equal(r[i].n_gen_ids, 64);
		assert_int_equal(m, r[i].gen_len);
		assert_memory_equal(out, r[i].gen_text, m);
	}
	free_refs(r, n);
}

static void llama_should_encode_once_upon_a_time(void **state)
{
	int32_t ids[8];
	const int32_t want[] = { 1, 403, 407, 261, 378 };

	(void)state;
	NEED(tok512, "tok512.bin");
	assert_int_equal(copro_tok_encode(tok512, "Once upon a time", 16, true, ids, 8), 5);
	assert_memory_equal(ids, want, sizeof(want));
	assert_int_equal(copro_tok_encode(tok512, "Once upon a time", 16, false, ids, 8), 4);
	assert_memory_equal(ids, want + 1, 4 * sizeof(*ids));
}

static void llama_should_encode_hello_world_with_llama2_vocab(void **state)
{
	int32_t ids[8];

	(void)state;
	NEED(tok32k, "tokenizer.bin");
	assert_int_equal(copro_tok_encode(tok32k, "Hello world", 11, true, ids, 8), 3);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 15043); /* ▁Hello */
	assert_int_equal(ids[2], 3186);	 /* ▁world */
}

/* ---- llama: pieces and the leading space ---------------------------------- */

static void llama_pieces_should_decode_spaces_bytes_and_controls(void **state)
{
	const char *p;
	size_t n;

	(void)state;
	NEED(tok512, "tok512.bin");
	assert_int_equal(copro_tok_piece(tok512, 403, &p, &n), 0);
	assert_int_equal(n, 5);
	assert_memory_equal(p, " Once", 5);
	assert_int_equal(copro_tok_piece(tok512, 3 + 0xe6, &p, &n), 0); /* <0xE6> */
	assert_int_equal(n, 1);
	assert_int_equal((uint8_t)p[0], 0xe6);
	assert_int_equal(copro_tok_piece(tok512, 1, &p, &n), 0); /* <s> */
	assert_int_equal(n, 0);
	assert_int_equal(copro_tok_piece(tok512, 0, &p, &n), 0); /* <unk> */
	assert_int_equal(n, 0);
	assert_true(copro_tok_is_control(tok512, 1));
	assert_true(copro_tok_is_control(tok512, 2));
	assert_false(copro_tok_is_control(tok512, 403));
	assert_false(copro_tok_is_control(tok512, -1));
	assert_false(copro_tok_is_control(tok512, 512));
	assert_int_equal(copro_tok_bos(tok512), 1);
	assert_int_equal(copro_tok_eos(tok512), 2);
	assert_int_equal(copro_tok_n_vocab(tok512), 512);
	assert_true(copro_tok_add_bos(tok512));
}

static void llama_detok_should_strip_only_the_prefix_space_when_asked(void **state)
{
	const int32_t ids[] = { 1, 403, 407, 261, 378 };
	char out[64];
	size_t n;

	(void)state;
	NEED(tok512, "tok512.bin");
	n = stream_decode(tok512, ids, 5, true, out, sizeof(out), NULL);
	assert_int_equal(n, 16);
	assert_memory_equal(out, "Once upon a time", 16);
	n = stream_decode(tok512, ids + 1, 4, true, out, sizeof(out), NULL);
	assert_int_equal(n, 16);
	n = stream_decode(tok512, ids, 5, false, out, sizeof(out), NULL);
	assert_int_equal(n, 17);
	assert_memory_equal(out, " Once upon a time", 17);
}

static void llama_should_round_trip_text_that_starts_with_spaces(void **state)
{
	(void)state;
	NEED(tok512, "tok512.bin");
	assert_round_trip(tok512, " Once", 5, NULL);
	assert_round_trip(tok512, "   two  spaces\n\ttab ", 20, NULL);
}

/* ---- llama: UTF-8 through byte fallback ----------------------------------- */

static void llama_should_round_trip_multibyte_text_without_splitting_characters(void **state)
{
	static const char *texts[] = {
		"na\xc3\xafve caf\xc3\xa9",			 /* naïve café: ï has no piece */
		"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e",		 /* 日本語 */
		"party \xf0\x9f\x8e\x89!",			 /* 🎉 */
		"Lily said: \xc3\xa9t\xc3\xa9 \xe6\x97\xa5 \xf0\x9f\x8e\x89\xf0\x9f\x8e\x89 ok",
	};
	int held_total = 0;

	(void)state;
	NEED(tok512, "tok512.bin");
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++) {
		int n, held, bytes = 0;
		int32_t *ids = encode_all(tok512, texts[i], strlen(texts[i]), true, &n);

		for (int k = 0; k < n; k++)
			bytes += ids[k] >= 3 && ids[k] <= 258;
		assert_true(bytes >= 2); /* the non-ASCII went through byte tokens */
		free(ids);
		assert_round_trip(tok512, texts[i], strlen(texts[i]), &held);
		held_total += held;
	}
	assert_true(held_total > 0); /* some pushes really had to hold bytes back */
}

static void llama_should_round_trip_multibyte_text_with_llama2_vocab(void **state)
{
	const char *s = "Hello, w\xc3\xb6rld! \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e "
			"\xf0\x9f\x8e\x89\n\tdone.";

	(void)state;
	NEED(tok32k, "tokenizer.bin");
	assert_round_trip(tok32k, s, strlen(s), NULL);
}

/* ---- llama: bad input ----------------------------------------------------- */

static void llama_should_tokenize_invalid_utf8_as_bytes(void **state)
{
	const char s[] = "a\xff\xfe \xc3(\xe6\x97";
	size_t len = sizeof(s) - 1;
	char raw[64], out[64];
	size_t o = 0, m;
	int n;
	int32_t *ids;

	(void)state;
	NEED(tok512, "tok512.bin");
	ids = encode_all(tok512, s, len, false, &n);
	/* the raw pieces put the exact bytes back (after the prefix space) */
	for (int k = 0; k < n; k++) {
		const char *p;
		size_t pl;

		assert_int_equal(copro_tok_piece(tok512, ids[k], &p, &pl), 0);
		memcpy(raw + o, p, pl);
		o += pl;
	}
	assert_int_equal(o, len + 1);
	assert_int_equal(raw[0], ' ');
	assert_memory_equal(raw + 1, s, len);
	/* the stream turns each invalid part into U+FFFD, never holding forever */
	m = stream_decode(tok512, ids, (size_t)n, true, out, sizeof(out), NULL);
	assert_int_equal(m, 15);
	assert_memory_equal(out,
			    "a\xef\xbf\xbd\xef\xbf\xbd \xef\xbf\xbd(\xef\xbf\xbd", 15);
	free(ids);
}

static void llama_should_encode_empty_text_as_bos_or_nothing(void **state)
{
	int32_t ids[4] = { -7, -7, -7, -7 };

	(void)state;
	NEED(tok512, "tok512.bin");
	assert_int_equal(copro_tok_encode(tok512, "", 0, true, ids, 4), 1);
	assert_int_equal(ids[0], 1);
	assert_int_equal(copro_tok_encode(tok512, NULL, 0, false, ids, 4), 0);
	assert_int_equal(copro_tok_encode(tok512, NULL, 3, false, ids, 4), -EINVAL);
}

static void llama_should_reject_ids_out_of_range(void **state)
{
	struct copro_detok s;
	const char *p = NULL;
	size_t n = 0;
	char out[64];

	(void)state;
	NEED(tok512, "tok512.bin");
	assert_int_equal(copro_tok_piece(tok512, -1, &p, &n), -EINVAL);
	assert_int_equal(copro_tok_piece(tok512, 512, &p, &n), -EINVAL);
	assert_int_equal(copro_tok_piece(tok512, INT32_MAX, &p, &n), -EINVAL);
	copro_detok_init(&s, true);
	assert_int_equal(copro_detok_push(tok512, &s, 3 + 0xe6, out, sizeof(out)), 0);
	assert_int_equal(copro_detok_push(tok512, &s, 512, out, sizeof(out)), -EINVAL);
	assert_int_equal(copro_detok_push(tok512, &s, -5, out, sizeof(out)), -EINVAL);
	assert_int_equal(s.n_pend, 1); /* unchanged by the failures */
	assert_int_equal(copro_detok_flush(&s, out, sizeof(out)), 3);
	assert_memory_equal(out, "\xef\xbf\xbd", 3);
}

static void encode_should_report_needed_count_when_cap_is_small(void **state)
{
	int32_t ids[8] = { -7, -7, -7, -7, -7, -7, -7, -7 };

	(void)state;
	NEED(tok512, "tok512.bin");
	assert_int_equal(copro_tok_encode(tok512, "Once upon a time", 16, true, ids, 2), 5);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 403);
	assert_int_equal(ids[2], -7); /* nothing written past cap */
	assert_int_equal(copro_tok_encode(tok512, "Once upon a time", 16, true, NULL, 0), 5);
}

static void detok_should_refuse_small_cap_and_keep_its_state(void **state)
{
	struct copro_detok s;
	char out[16];

	(void)state;
	NEED(tok512, "tok512.bin");
	copro_detok_init(&s, true);
	assert_int_equal(copro_detok_push(tok512, &s, 403, out, 3), -ENOSPC);
	assert_true(s.first); /* the strip is still to come */
	assert_int_equal(copro_detok_push(tok512, &s, 403, out, 4), 4);
	assert_memory_equal(out, "Once", 4);
	/* "é" in two byte tokens: held, then a 2-byte event */
	assert_int_equal(copro_detok_push(tok512, &s, 3 + 0xc3, out, 0), 0);
	assert_int_equal(copro_detok_push(tok512, &s, 3 + 0xa9, out, 1), -ENOSPC);
	assert_int_equal(s.n_pend, 1);
	assert_int_equal(copro_detok_push(tok512, &s, 3 + 0xa9, out, 2), 2);
	assert_memory_equal(out, "\xc3\xa9", 2);
	assert_int_equal(copro_detok_push(tok512, &s, 3 + 0xe6, out, 0), 0);
	assert_int_equal(copro_detok_flush(&s, out, 2), -ENOSPC);
	assert_int_equal(copro_detok_flush(&s, out, 3), 3);
	assert_int_equal(copro_detok_flush(&s, out, 0), 0);
}

/* ---- llama: a synthetic vocabulary without byte tokens -------------------- */

static void make_tiny_llama(struct vocab *v)
{
	memset(v, 0, sizeof(*v));
	vocab_add(v, "<unk>", 5, 0, COPRO_TOKT_UNKNOWN);
	vocab_add(v, "<s>", 3, 0, COPRO_TOKT_CONTROL);
	vocab_add(v, "</s>", 4, 0, COPRO_TOKT_CONTROL);
	vocab_add(v, "\xe2\x96\x81", 3, -1, COPRO_TOKT_NORMAL); /* 3 ▁ */
	vocab_add(v, "a", 1, -2, COPRO_TOKT_NORMAL);		  /* 4 */
	vocab_add(v, "b", 1, -3, COPRO_TOKT_NORMAL);		  /* 5 */
	vocab_add(v, "\xe2\x96\x81" "a", 4, -4, COPRO_TOKT_NORMAL); /* 6 ▁a */
	vocab_add(v, "ab", 2, -5, COPRO_TOKT_NORMAL);		  /* 7 */
	vocab_add(v, "\xe2\x96\x81" "ab", 5, -0.5f, COPRO_TOKT_NORMAL); /* 8 ▁ab */
}

static void llama_should_use_unk_for_characters_without_piece_or_byte(void **state)
{
	struct vocab v;
	struct copro_tok_desc d;
	struct copro_tok *t;
	int32_t ids[16];
	char err[128];

	(void)state;
	make_tiny_llama(&v);
	d = llama_desc(&v);
	d.types = v.type;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), 0);
	/* "▁ab" wins by score over "▁a"+"b"; ☃ (3 bytes) is one unk a byte */
	assert_int_equal(copro_tok_encode(t, "ab \xe2\x98\x83" "b", 7, true, ids, 16), 7);
	assert_int_equal(ids[0], 1);
	assert_int_equal(ids[1], 8);
	assert_int_equal(ids[2], 3);
	assert_int_equal(ids[3], 0);
	assert_int_equal(ids[4], 0);
	assert_int_equal(ids[5], 0);
	assert_int_equal(ids[6], 5);
	copro_tok_destroy(t);

	d.unk = -1; /* and with no unk either, the text cannot be encoded */
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), 0);
	assert_int_equal(copro_tok_encode(t, "a\xe2\x98\x83", 4, true, ids, 16), -EILSEQ);
	assert_int_equal(copro_tok_encode(t, "a b", 3, true, ids, 16), 4);
	copro_tok_destroy(t);
	vocab_free(&v);
}

static void llama_should_merge_highest_score_first_and_leftmost_on_ties(void **state)
{
	struct vocab v;
	struct copro_tok_desc d;
	struct copro_tok *t;
	int32_t ids[16];
	char err[128];

	(void)state;
	memset(&v, 0, sizeof(v));
	vocab_add(&v, "<unk>", 5, 0, COPRO_TOKT_UNKNOWN);
	vocab_add(&v, "x", 1, -1, COPRO_TOKT_NORMAL);  /* 1 */
	vocab_add(&v, "xx", 2, -2, COPRO_TOKT_NORMAL); /* 2 */
	vocab_add(&v, "y", 1, -1, COPRO_TOKT_NORMAL);  /* 3 */
	vocab_add(&v, "xy", 2, -3, COPRO_TOKT_NORMAL); /* 4 */
	d = llama_desc(&v);
	d.types = v.type;
	d.bos = d.eos = -1;
	d.add_bos = false;
	d.add_space_prefix = false;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), 0);
	/* xxx: the leftmost xx wins the tie, then x; xxy: xx beats xy by score */
	assert_int_equal(copro_tok_encode(t, "xxx", 3, false, ids, 16), 2);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], 1);
	assert_int_equal(copro_tok_encode(t, "xxy", 3, false, ids, 16), 2);
	assert_int_equal(ids[0], 2);
	assert_int_equal(ids[1], 3);
	assert_int_equal(copro_tok_encode(t, "x", 1, true, ids, 16), -EINVAL); /* no bos */
	copro_tok_destroy(t);
	vocab_free(&v);
}

static void llama_should_map_a_duplicate_piece_to_its_last_id(void **state)
{
	struct vocab v;
	struct copro_tok_desc d;
	struct copro_tok *t;
	int32_t ids[4];
	const char *p;
	size_t n;
	char err[128];

	(void)state;
	make_tiny_llama(&v);
	vocab_add(&v, "a", 1, -9, COPRO_TOKT_NORMAL); /* 9: "a" again, as llama.cpp allows */
	d = llama_desc(&v);
	d.types = v.type;
	d.add_space_prefix = false;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), 0);
	assert_int_equal(copro_tok_encode(t, "a", 1, false, ids, 4), 1);
	assert_int_equal(ids[0], 9);
	assert_int_equal(copro_tok_piece(t, 4, &p, &n), 0); /* the first still decodes */
	assert_int_equal(n, 1);
	assert_int_equal(p[0], 'a');
	copro_tok_destroy(t);
	vocab_free(&v);
}

/* ---- descriptors ---------------------------------------------------------- */

static void create_should_reject_an_empty_vocabulary(void **state)
{
	struct vocab v;
	struct copro_tok_desc d;
	struct copro_tok *t = (struct copro_tok *)&d;
	char err[128] = "";

	(void)state;
	make_tiny_llama(&v);
	d = llama_desc(&v);
	d.n_vocab = 0;
	d.bos = d.eos = d.unk = -1;
	d.add_bos = false;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	assert_null(t);
	assert_non_null(strstr(err, "vocabulary size"));
	vocab_free(&v);
}

static void create_should_reject_bos_out_of_range(void **state)
{
	struct vocab v;
	struct copro_tok_desc d;
	struct copro_tok *t;
	char err[128] = "";

	(void)state;
	make_tiny_llama(&v);
	d = llama_desc(&v);
	d.bos = (int32_t)v.n;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bos"));
	d.bos = -2;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	d.bos = 1;
	d.unk = 1000;
	assert_int_equal(copro_tok_create(&d, &t, NULL, 0), -EINVAL);
	vocab_free(&v);
}

static void create_should_reject_a_gpt2_merge_without_a_space(void **state)
{
	const char *text[] = { "a", "b", "ab" };
	const uint32_t len[] = { 1, 1, 2 };
	const char *merges[] = { "a b", "ab" };
	const uint32_t mlen[] = { 3, 2 };
	struct copro_tok_desc d = {
		.model = COPRO_TOK_GPT2, .n_vocab = 3, .text = text, .text_len = len,
		.n_merges = 2, .merges = merges, .merge_len = mlen,
		.bos = -1, .eos = -1, .unk = -1,
	};
	struct copro_tok *t;
	char err[128] = "";

	(void)state;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "merge 1"));
	d.n_merges = 1;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), 0);
	copro_tok_destroy(t);
	merges[0] = " ab"; /* the split is after the first byte: " ab" has none */
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
}

static void create_should_reject_other_malformed_descriptors(void **state)
{
	struct vocab v;
	struct copro_tok_desc d;
	struct copro_tok *t;
	char err[128] = "";

	(void)state;
	make_tiny_llama(&v);
	d = llama_desc(&v);
	d.model = 7;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "model 7"));
	d = llama_desc(&v);
	d.scores = NULL;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "scores"));
	d = llama_desc(&v);
	d.bos = -1; /* add_bos stays true */
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	d = llama_desc(&v);
	d.text = NULL;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	d = llama_desc(&v);
	d.types = v.type;
	v.type[4] = 9;
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "type 9"));
	v.type[4] = COPRO_TOKT_BYTE; /* "a" is no <0xXX> spelling */
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "byte token 4"));
	assert_int_equal(copro_tok_create(NULL, &t, err, sizeof(err)), -EINVAL);
	assert_int_equal(copro_tok_model_parse("llama", 5), COPRO_TOK_LLAMA);
	assert_int_equal(copro_tok_model_parse("gpt2", 4), COPRO_TOK_GPT2);
	assert_int_equal(copro_tok_model_parse("bert", 4), -ENOTSUP);
	assert_int_equal(copro_tok_model_parse("gpt", 3), -ENOTSUP);
	vocab_free(&v);
}

/* ---- gpt2 ----------------------------------------------------------------- */

static const char *gpt2_merges[] = {
	"\xc4\xa0 t",	   /* 0 Ġ t */
	"h e",		   /* 1 */
	"\xc4\xa0t he",	   /* 2 Ġt he */
	"a t",		   /* 3 */
	"\xc4\xa0" "c at", /* 4 Ġc at */
	"\xc4\xa0 c",	   /* 5 Ġ c */
	"\xc4\xa0 o",	   /* 6 Ġ o */
	"\xc4\xa0o k",	   /* 7 Ġo k */
	"' s",		   /* 8 */
	"c 1",		   /* 9 merges only if a word wrongly spans "abc123" */
	"1 2",		   /* 10 */
	"n '",		   /* 11 merges only if "don't" is wrongly one word */
	"\xc4\xa0 \xc4\xa0", /* 12 Ġ Ġ */
};

/* Ids 0..255: byte b's mapped character; then the merged pieces. */
enum {
	G_T = 256, G_HE, G_THE, G_AT, G_CAT, G_C, G_O, G_OK, G_S, G_C1, G_12, G_NQ, G_SPSP, G_EOT,
};

static void utf8_put(struct vocab *v, uint32_t cp)
{
	char s[2];

	if (cp < 0x80) {
		s[0] = (char)cp;
		vocab_add(v, s, 1, 0, COPRO_TOKT_NORMAL);
	} else {
		s[0] = (char)(0xc0 | cp >> 6);
		s[1] = (char)(0x80 | (cp & 0x3f));
		vocab_add(v, s, 2, 0, COPRO_TOKT_NORMAL);
	}
}

static struct copro_tok *make_gpt2(struct vocab *v)
{
	static const char *pieces[] = {
		"\xc4\xa0t", "he", "\xc4\xa0the", "at", "\xc4\xa0" "cat", "\xc4\xa0" "c",
		"\xc4\xa0o", "\xc4\xa0ok", "'s", "c1", "12", "n'", "\xc4\xa0\xc4\xa0",
	};
	uint32_t mlen[sizeof(gpt2_merges) / sizeof(gpt2_merges[0])];
	struct copro_tok_desc d;
	struct copro_tok *t;
	char err[128];
	uint32_t extra = 256 + 33 + 34; /* GPT-2's bytes_to_unicode, written out here */

	memset(v, 0, sizeof(*v));
	for (uint32_t b = 0; b < 256; b++) {
		bool printable = (b >= '!' && b <= '~') || (b >= 0xa1 && b <= 0xac) || b >= 0xae;

		if (printable)
			utf8_put(v, b);
		else if (b <= 0x20)
			utf8_put(v, 256 + b);
		else if (b < 0xa1)
			utf8_put(v, 256 + 33 + (b - 0x7f));
		else
			utf8_put(v, extra); /* 0xad */
	}
	for (size_t i = 0; i < sizeof(pieces) / sizeof(pieces[0]); i++)
		vocab_add(v, pieces[i], strlen(pieces[i]), 0, COPRO_TOKT_NORMAL);
	vocab_add(v, "<|endoftext|>", 13, 0, COPRO_TOKT_CONTROL);
	assert_int_equal(v->n, G_EOT + 1);
	for (size_t i = 0; i < sizeof(mlen) / sizeof(mlen[0]); i++)
		mlen[i] = (uint32_t)strlen(gpt2_merges[i]);
	d = (struct copro_tok_desc){
		.model = COPRO_TOK_GPT2, .n_vocab = v->n,
		.text = (const char *const *)v->text, .text_len = v->len, .types = v->type,
		.n_merges = sizeof(mlen) / sizeof(mlen[0]), .merges = gpt2_merges,
		.merge_len = mlen, .bos = G_EOT, .eos = G_EOT, .unk = -1,
		.add_bos = false, .add_space_prefix = true, /* ignored for gpt2 */
	};
	assert_int_equal(copro_tok_create(&d, &t, err, sizeof(err)), 0);
	return t;
}

static void assert_ids(const struct copro_tok *t, const char *s, const int32_t *want, int n)
{
	int32_t ids[64];
	int k = copro_tok_encode(t, s, strlen(s), false, ids, 64);

	if (k != n)
		print_message("\"%s\": %d ids, want %d\n", s, k, n);
	assert_int_equal(k, n);
	for (int i = 0; i < n; i++) {
		if (ids[i] != want[i])
			print_message("\"%s\": id %d is %d, want %d\n", s, i, ids[i], want[i]);
		assert_int_equal(ids[i], want[i]);
	}
}

#define IDS(...) ((const int32_t[]){ __VA_ARGS__ }), \
	(int)(sizeof((const int32_t[]){ __VA_ARGS__ }) / sizeof(int32_t))

static void gpt2_should_pretokenize_and_merge_by_rank(void **state)
{
	struct vocab v;
	struct copro_tok *t = make_gpt2(&v);

	(void)state;
	assert_ids(t, "the cat's 123 dogs!!  ok\n\nbye the",
		   IDS('t', G_HE, G_CAT, G_S, ' ', G_12, '3', ' ', 'd', 'o', 'g', 's', '!', '!',
		       ' ', G_OK, '\n', '\n', 'b', 'y', 'e', G_THE));
	copro_tok_destroy(t);
	vocab_free(&v);
}

static void gpt2_should_split_contractions_numbers_and_spaces(void **state)
{
	struct vocab v;
	struct copro_tok *t = make_gpt2(&v);

	(void)state;
	/* "don" | "'t": the n ' merge must not happen */
	assert_ids(t, "don't", IDS('d', 'o', 'n', '\'', 't'));
	assert_ids(t, "I'm we'll they're I've he'd",
		   IDS('I', '\'', 'm', ' ', 'w', 'e', '\'', 'l', 'l', G_THE, 'y', '\'', 'r', 'e',
		       ' ', 'I', '\'', 'v', 'e', ' ', G_HE, '\'', 'd'));
	/* letters stop at digits: no c 1 merge */
	assert_ids(t, "abc123", IDS('a', 'b', 'c', G_12, '3'));
	/* \s+(?!\S): the last space of a run joins the word after it */
	assert_ids(t, "a   b", IDS('a', G_SPSP, ' ', 'b'));
	assert_ids(t, "a  ", IDS('a', G_SPSP));
	assert_ids(t, "Hi, 3.14!", IDS('H', 'i', ',', ' ', '3', '.', '1', '4', '!'));
	/* 'S is not a contraction (the pattern is case-sensitive) */
	assert_ids(t, "X'S", IDS('X', '\'', 'S'));
	copro_tok_destroy(t);
	vocab_free(&v);
}

static void gpt2_should_round_trip_bytes_and_unicode(void **state)
{
	static const char *texts[] = {
		"the cat's 123 dogs!!  ok\n\nbye the",
		"caf\xc3\xa9 \xf0\x9f\x8e\x89! \xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e\t\r\n x",
		"\x01\x7f\xc2\xa0\xc2\xad nbsp",
		" leading space kept",
	};
	struct vocab v;
	struct copro_tok *t = make_gpt2(&v);
	int32_t ids[4];

	(void)state;
	for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); i++)
		assert_round_trip(t, texts[i], strlen(texts[i]), NULL);
	assert_int_equal(copro_tok_encode(t, "", 0, false, ids, 4), 0);
	assert_int_equal(copro_tok_encode(t, "", 0, true, ids, 4), 1);
	assert_int_equal(ids[0], G_EOT);
	assert_true(copro_tok_is_control(t, G_EOT));
	copro_tok_destroy(t);
	vocab_free(&v);
}

static void gpt2_should_keep_invalid_utf8_bytes(void **state)
{
	const char s[] = "ok\xff\xc3 x\xe6\x97";
	struct vocab v;
	struct copro_tok *t = make_gpt2(&v);
	int32_t ids[32];
	char raw[32];
	size_t o = 0;
	int n;

	(void)state;
	n = copro_tok_encode(t, s, sizeof(s) - 1, false, ids, 32);
	assert_true(n > 0 && n <= 32);
	for (int k = 0; k < n; k++) {
		const char *p;
		size_t pl;

		assert_int_equal(copro_tok_piece(t, ids[k], &p, &pl), 0);
		memcpy(raw + o, p, pl);
		o += pl;
	}
	assert_int_equal(o, sizeof(s) - 1);
	assert_memory_equal(raw, s, o);
	copro_tok_destroy(t);
	vocab_free(&v);
}

/* ---- long input ----------------------------------------------------------- */

/* About n bytes of story-like text with some non-ASCII; caller frees. */
static char *long_text(size_t n, size_t *len)
{
	static const char *words[] = {
		"Once", "upon", "a", "time,", "there", "was", "little", "girl", "named",
		"Lily.", "She", "loved", "caf\xc3\xa9", "\xe6\x97\xa5\xe6\x9c\xac",
		"\xf0\x9f\x8e\x89", "123", "don't", "\n", "  ", "park!",
	};
	char *s = malloc(n + 64);
	size_t o = 0;
	uint32_t x = 12345;

	assert_non_null(s);
	while (o < n) {
		const char *w;

		x = x * 1103515245u + 12345u;
		w = words[(x >> 16) % (sizeof(words) / sizeof(words[0]))];
		memcpy(s + o, w, strlen(w));
		o += strlen(w);
		s[o++] = ' ';
	}
	*len = o - 1; /* no trailing space */
	return s;
}

static void encode_should_handle_200kb_texts(void **state)
{
	size_t len;
	char *s = long_text(200 * 1024, &len);
	struct vocab v;
	struct copro_tok *g = make_gpt2(&v);
	char *run = malloc(200 * 1024);

	(void)state;
	assert_non_null(run);
	assert_round_trip(g, s, len, NULL);
	assert_round_trip(g, "x", 1, NULL);
	memset(run, 'a', 200 * 1024); /* one 200 KB word */
	assert_round_trip(g, run, 200 * 1024, NULL);
	copro_tok_destroy(g);
	vocab_free(&v);
	if (tok32k) {
		assert_round_trip(tok32k, s, len, NULL);
		assert_round_trip(tok32k, run, 200 * 1024, NULL);
	}
	if (tok512)
		assert_round_trip(tok512, s, len, NULL);
	free(run);
	free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(llama_should_match_llama_cpp_prompt_ids),
		cmocka_unit_test(llama_should_stream_reference_gen_text_exactly),
		cmocka_unit_test(llama_should_encode_once_upon_a_time),
		cmocka_unit_test(llama_should_encode_hello_world_with_llama2_vocab),
		cmocka_unit_test(llama_pieces_should_decode_spaces_bytes_and_controls),
		cmocka_unit_test(llama_detok_should_strip_only_the_prefix_space_when_asked),
		cmocka_unit_test(llama_should_round_trip_text_that_starts_with_spaces),
		cmocka_unit_test(llama_should_round_trip_multibyte_text_without_splitting_characters),
		cmocka_unit_test(llama_should_round_trip_multibyte_text_with_llama2_vocab),
		cmocka_unit_test(llama_should_tokenize_invalid_utf8_as_bytes),
		cmocka_unit_test(llama_should_encode_empty_text_as_bos_or_nothing),
		cmocka_unit_test(llama_should_reject_ids_out_of_range),
		cmocka_unit_test(encode_should_report_needed_count_when_cap_is_small),
		cmocka_unit_test(detok_should_refuse_small_cap_and_keep_its_state),
		cmocka_unit_test(llama_should_use_unk_for_characters_without_piece_or_byte),
		cmocka_unit_test(llama_should_merge_highest_score_first_and_leftmost_on_ties),
		cmocka_unit_test(llama_should_map_a_duplicate_piece_to_its_last_id),
		cmocka_unit_test(create_should_reject_an_empty_vocabulary),
		cmocka_unit_test(create_should_reject_bos_out_of_range),
		cmocka_unit_test(create_should_reject_a_gpt2_merge_without_a_space),
		cmocka_unit_test(create_should_reject_other_malformed_descriptors),
		cmocka_unit_test(gpt2_should_pretokenize_and_merge_by_rank),
		cmocka_unit_test(gpt2_should_split_contractions_numbers_and_spaces),
		cmocka_unit_test(gpt2_should_round_trip_bytes_and_unicode),
		cmocka_unit_test(gpt2_should_keep_invalid_utf8_bytes),
		cmocka_unit_test(encode_should_handle_200kb_texts),
	};

	return cmocka_run_group_tests(tests, load_shared, free_shared);
}
