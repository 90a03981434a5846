// SPDX-License-Identifier: MIT
/*
 * tokenizer.c - SentencePiece BPE ("llama") and GPT-2 byte-level BPE
 * ("gpt2") tokenizers, following llama.cpp's llm_tokenizer_spm and
 * llm_tokenizer_bpe (with the gpt2 pre-tokenizer) so that the ids match
 * what llama.cpp feeds the same model, and a streaming detokenizer.
 *
 * Reading order: the hash map, UTF-8 scanning, construction, the merge
 * loop both tokenizers share, the llama encoder, the gpt2 pre-tokenizer
 * and encoder, then pieces and the detokenizer.
 *
 * Nothing here is quadratic in the text length: symbols form a linked list
 * over the text, candidate merges sit in a binary heap and are invalidated
 * lazily, and every piece or merge lookup is one probe sequence in an
 * open-addressing hash table.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "llm/tokenizer.h"

#define TOK_MAX_COUNT (1u << 30) /* vocab / merges; keeps map sizes in range */

struct copro_tok {
	int model;
	uint32_t n_vocab;
	int32_t bos, eos, unk;
	bool add_bos, add_space_prefix;
	char *raw;	 /* pieces as the vocabulary spells them */
	size_t *raw_off; /* (n_vocab + 1) piece i is raw[raw_off[i] .. raw_off[i + 1]) */
	char *dec;	 /* pieces as they decode (copro_tok_piece) */
	size_t *dec_off; /* (n_vocab + 1) */
	uint8_t *type;	 /* (n_vocab) COPRO_TOKT_* */
	float *score;	 /* (n_vocab) llama only */
	size_t max_raw, max_dec;
	uint32_t n_merges;
	char *mrg;	    /* gpt2 merge strings "left right" */
	size_t *mrg_off;    /* (n_merges + 1) */
	uint32_t *mrg_split; /* (n_merges) length of the left part */
	int32_t byte_tok[256]; /* id standing for a raw byte when no piece matches, -1 none */
	struct tok_map {
		uint32_t mask;	 /* slots - 1, slots a power of two */
		uint32_t *hash;	 /* (slots) */
		int32_t *val;	 /* (slots) key index, -1 empty */
		const char *blob; /* key v is blob[off[v] .. off[v + 1]) */
		const size_t *off;
	} pieces, merges;
};

static void tok_err(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void tok_err(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- hash map: bytes -> index ------------------------------------------- */

/* FNV-1a; seeded with the running value so a key can be hashed in parts. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *s = p;

	while (n--)
		h = (h ^ *s++) * 1099511628211ULL;
	return h;
}

#define FNV_SEED 1469598103934665603ULL

static uint32_t fold(uint64_t h)
{
	return (uint32_t)(h ^ (h >> 32));
}

/* Size m for n keys at most half full. Returns 0 or -ENOMEM. */
static int map_init(struct tok_map *m, uint32_t n, const char *blob, const size_t *off)
{
	uint32_t slots = 16;

	while (slots < 2 * (uint64_t)n)
		slots <<= 1;
	m->mask = slots - 1;
	m->blob = blob;
	m->off = off;
	m->hash = malloc(slots * sizeof(*m->hash));
	m->val = malloc(slots * sizeof(*m->val));
	if (!m->hash || !m->val)
		return -ENOMEM;
	memset(m->val, 0xff, slots * sizeof(*m->val));
	return 0;
}

static void map_free(struct tok_map *m)
{
	free(m->hash);
	free(m->val);
}

static bool map_key_is(const struct tok_map *m, int32_t v, const char *s, size_t n)
{
	size_t o = m->off[v];

	return m->off[v + 1] - o == n && !memcmp(m->blob + o, s, n);
}

/*
 * Insert key v (its bytes are already in the blob). When an equal key is
 * present, replace decides who wins: pieces take the last id (llama.cpp's
 * token_to_id[word] = i), merges keep the first rank (its emplace).
 */
static void map_insert(struct tok_map *m, int32_t v, bool replace)
{
	const char *s = m->blob + m->off[v];
	size_t n = m->off[v + 1] - m->off[v];
	uint32_t h = fold(fnv(FNV_SEED, s, n)), i;

	for (i = h & m->mask; m->val[i] >= 0; i = (i + 1) & m->mask) {
		if (m->hash[i] == h && map_key_is(m, m->val[i], s, n)) {
			if (replace)
				m->val[i] = v;
			return;
		}
	}
	m->hash[i] = h;
	m->val[i] = v;
}

/* The index whose key is s[0..n), or -1. */
static int32_t map_find(const struct tok_map *m, const char *s, size_t n)
{
	uint32_t h = fold(fnv(FNV_SEED, s, n)), i;

	for (i = h & m->mask; m->val[i] >= 0; i = (i + 1) & m->mask)
		if (m->hash[i] == h && map_key_is(m, m->val[i], s, n))
			return m->val[i];
	return -1;
}

/* The rank of merge "a b" split after a, or -1, without building the string. */
static int32_t map_find_pair(const struct copro_tok *t, const char *a, size_t na, const char *b,
			     size_t nb)
{
	const struct tok_map *m = &t->merges;
	uint64_t h64 = fnv(fnv(fnv(FNV_SEED, a, na), " ", 1), b, nb);
	uint32_t h = fold(h64), i;

	for (i = h & m->mask; m->val[i] >= 0; i = (i + 1) & m->mask) {
		int32_t v = m->val[i];
		const char *k = m->blob + m->off[v];

		if (m->hash[i] != h || t->mrg_split[v] != na || m->off[v + 1] - m->off[v] != na + 1 + nb)
			continue;
		if (!memcmp(k, a, na) && !memcmp(k + na + 1, b, nb))
			return v;
	}
	return -1;
}

/* ---- UTF-8 ---------------------------------------------------------------- */

/* Bytes seen as one run though they may live in two buffers (held + new). */
struct bytes2 {
	const uint8_t *a, *b;
	size_t na, nb;
};

static uint8_t b2_at(const struct bytes2 *v, size_t i)
{
	return i < v->na ? v->a[i] : v->b[i - v->na];
}

/*
 * Scan the character at i of v (n bytes in all). Returns its length (1..4)
 * with the code point in *cp; -k when the k bytes from i are a maximal
 * invalid subpart (a byte that cannot start a sequence, or a valid prefix
 * cut short by a byte that cannot continue it: Unicode's rule for where
 * one U+FFFD goes); 0 when the bytes from i to n are a valid prefix that
 * more bytes could complete.
 */
static int utf8_scan(const struct bytes2 *v, size_t i, size_t n, uint32_t *cp)
{
	uint8_t c = b2_at(v, i), lo = 0x80, hi = 0xbf;
	uint32_t val;
	int need, k;

	if (c < 0x80) {
		*cp = c;
		return 1;
	}
	if (c >= 0xc2 && c <= 0xdf) {
		need = 1;
		val = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		val = c & 0x0f;
		lo = c == 0xe0 ? 0xa0 : 0x80; /* no overlong forms */
		hi = c == 0xed ? 0x9f : 0xbf; /* no surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		val = c & 0x07;
		lo = c == 0xf0 ? 0x90 : 0x80;
		hi = c == 0xf4 ? 0x8f : 0xbf; /* nothing above U+10FFFF */
	} else {
		return -1;
	}
	for (k = 1; k <= need; k++) {
		uint8_t x;

		if (i + k >= n)
			return 0;
		x = b2_at(v, i + k);
		if (x < (k == 1 ? lo : 0x80) || x > (k == 1 ? hi : 0xbf))
			return -k;
		val = val << 6 | (x & 0x3f);
	}
	*cp = val;
	return need + 1;
}

/* ---- GPT-2 byte-level map ------------------------------------------------- */

/*
 * GPT-2's bytes_to_unicode: printable Latin-1 bytes stand for themselves,
 * the 68 others (0x00-0x20, 0x7f-0xa0, 0xad) for U+0100.. in byte order.
 */
static uint32_t gpt2_byte_cp(uint8_t b)
{
	if (b <= 0x20)
		return 256 + b;
	if (b >= 0x7f && b <= 0xa0)
		return 256 + 33 + (b - 0x7f);
	if (b == 0xad)
		return 256 + 67;
	return b;
}

/* The byte code point cp stands for, or -1. */
static int gpt2_cp_byte(uint32_t cp)
{
	if (cp < 256)
		return gpt2_byte_cp((uint8_t)cp) == cp ? (int)cp : -1;
	if (cp < 256 + 33)
		return (int)(cp - 256);
	if (cp < 256 + 67)
		return (int)(cp - 256 - 33 + 0x7f);
	if (cp == 256 + 67)
		return 0xad;
	return -1;
}

/* Write the UTF-8 form of a mapped byte (1 or 2 bytes). Returns its length. */
static size_t gpt2_byte_utf8(uint8_t b, char *out)
{
	uint32_t cp = gpt2_byte_cp(b);

	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	out[0] = (char)(0xc0 | cp >> 6);
	out[1] = (char)(0x80 | (cp & 0x3f));
	return 2;
}

/* ---- construction --------------------------------------------------------- */

int copro_tok_model_parse(const char *name, size_t len)
{
	if (len == 5 && !memcmp(name, "llama", 5))
		return COPRO_TOK_LLAMA;
	if (len == 4 && !memcmp(name, "gpt2", 4))
		return COPRO_TOK_GPT2;
	return -ENOTSUP;
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* The byte a "<0xXX>" spelling names, or -1 for any other spelling. */
static int byte_spelling(const char *s, size_t n)
{
	if (n != 6 || memcmp(s, "<0x", 3) || s[5] != '>' || hexval(s[3]) < 0 || hexval(s[4]) < 0)
		return -1;
	return hexval(s[3]) << 4 | hexval(s[4]);
}

static bool spelled(const char *s, size_t n, const char *lit)
{
	return n == strlen(lit) && !memcmp(s, lit, n);
}

static bool id_ok(int32_t id, uint32_t n)
{
	return id == -1 || (id >= 0 && (uint32_t)id < n);
}

/* Check everything about d that does not need the copies. 0 or -EINVAL. */
static int desc_check(const struct copro_tok_desc *d, char *err, size_t errlen)
{
	uint32_t i;

	if (d->model != COPRO_TOK_LLAMA && d->model != COPRO_TOK_GPT2) {
		tok_err(err, errlen, "unknown tokenizer model %d", d->model);
		return -EINVAL;
	}
	if (d->n_vocab == 0 || d->n_vocab > TOK_MAX_COUNT) {
		tok_err(err, errlen, "vocabulary size %u out of range", d->n_vocab);
		return -EINVAL;
	}
	if (!d->text || !d->text_len) {
		tok_err(err, errlen, "no token texts");
		return -EINVAL;
	}
	for (i = 0; i < d->n_vocab; i++) {
		if (!d->text[i] && d->text_len[i]) {
			tok_err(err, errlen, "token %u has no text", i);
			return -EINVAL;
		}
	}
	if (d->model == COPRO_TOK_LLAMA && !d->scores) {
		tok_err(err, errlen, "llama tokenizer without scores");
		return -EINVAL;
	}
	if (!id_ok(d->bos, d->n_vocab) || !id_ok(d->eos, d->n_vocab) ||
	    !id_ok(d->unk, d->n_vocab)) {
		tok_err(err, errlen, "bos %d / eos %d / unk %d outside the %u-token vocabulary",
			d->bos, d->eos, d->unk, d->n_vocab);
		return -EINVAL;
	}
	if (d->add_bos && d->bos < 0) {
		tok_err(err, errlen, "add_bos without a bos token");
		return -EINVAL;
	}
	if (d->types) {
		for (i = 0; i < d->n_vocab; i++) {
			if (d->types[i] < 0 || d->types[i] > COPRO_TOKT_BYTE) {
				tok_err(err, errlen, "token %u has type %d", i, d->types[i]);
				return -EINVAL;
			}
		}
	}
	if (d->model != COPRO_TOK_GPT2)
		return 0;
	if (d->n_merges > TOK_MAX_COUNT || (d->n_merges && (!d->merges || !d->merge_len))) {
		tok_err(err, errlen, "%u merges but no merge array", d->n_merges);
		return -EINVAL;
	}
	for (i = 0; i < d->n_merges; i++) {
		const char *s = d->merges[i];
		uint32_t n = d->merge_len[i];

		if (n < 3 || !s || !memchr(s + 1, ' ', n - 1)) {
			tok_err(err, errlen, "merge %u \"%.*s\" is not \"left right\"", i,
				s ? (int)(n > 64 ? 64 : n) : 0, s ? s : "");
			return -EINVAL;
		}
	}
	return 0;
}

/* The type of token i when the file gives none (see copro_tok_desc). */
static uint8_t infer_type(const struct copro_tok_desc *d, uint32_t i)
{
	const char *s = d->text[i];
	uint32_t n = d->text_len[i];

	if ((int32_t)i == d->unk || spelled(s, n, "<unk>"))
		return COPRO_TOKT_UNKNOWN;
	if ((int32_t)i == d->bos || (int32_t)i == d->eos || spelled(s, n, "<s>") ||
	    spelled(s, n, "</s>"))
		return COPRO_TOKT_CONTROL;
	if (d->model == COPRO_TOK_LLAMA && byte_spelling(s, n) >= 0)
		return COPRO_TOKT_BYTE;
	return COPRO_TOKT_NORMAL;
}

/*
 * Write what normal piece s[0..n) decodes to into out (never longer than
 * n). Returns the length. llama turns U+2581 into a space; gpt2 maps each
 * code point back to its byte, copying any other bytes through.
 */
static size_t decode_normal(int model, const char *s, size_t n, char *out)
{
	struct bytes2 v = { (const uint8_t *)s, NULL, n, 0 };
	size_t i = 0, o = 0;

	while (i < n) {
		uint32_t cp;
		int r;

		if (model == COPRO_TOK_LLAMA) {
			if (n - i >= 3 && !memcmp(s + i, "\xe2\x96\x81", 3)) {
				out[o++] = ' ';
				i += 3;
			} else {
				out[o++] = s[i++];
			}
			continue;
		}
		r = utf8_scan(&v, i, n, &cp);
		if (r > 0 && gpt2_cp_byte(cp) >= 0) {
			out[o++] = (char)gpt2_cp_byte(cp);
			i += (size_t)r;
		} else {
			r = r > 0 ? r : 1;
			memcpy(out + o, s + i, (size_t)r);
			o += (size_t)r;
			i += (size_t)r;
		}
	}
	return o;
}

/* Copy the pieces, types and scores, and decode every piece. 0 or -EINVAL. */
static int copy_vocab(struct copro_tok *t, const struct copro_tok_desc *d, char *err,
		      size_t errlen)
{
	size_t o = 0, od = 0;
	uint32_t i;

	for (i = 0; i < d->n_vocab; i++) {
		const char *s = d->text[i];
		size_t n = d->text_len[i];
		int b;

		t->raw_off[i] = o;
		t->dec_off[i] = od;
		if (n)
			memcpy(t->raw + o, s, n);
		o += n;
		t->type[i] = (uint8_t)(d->types ? d->types[i] : infer_type(d, i));
		if (t->score)
			t->score[i] = d->scores[i];
		if (n > t->max_raw)
			t->max_raw = n;
		switch (t->type[i]) {
		case COPRO_TOKT_UNDEFINED:
		case COPRO_TOKT_NORMAL:
			od += decode_normal(t->model, s, n, t->dec + od);
			break;
		case COPRO_TOKT_USER_DEFINED:
			if (n)
				memcpy(t->dec + od, s, n);
			od += n;
			break;
		case COPRO_TOKT_BYTE:
			b = byte_spelling(s, n);
			if (b < 0) {
				tok_err(err, errlen, "byte token %u is spelled \"%.*s\", not <0xXX>",
					i, (int)(n > 64 ? 64 : n), s);
				return -EINVAL;
			}
			t->dec[od++] = (char)b;
			break;
		default: /* control, unknown, unused: no text (special = false) */
			break;
		}
		if (od - t->dec_off[i] > t->max_dec)
			t->max_dec = od - t->dec_off[i];
	}
	t->raw_off[d->n_vocab] = o;
	t->dec_off[d->n_vocab] = od;
	return 0;
}

/*
 * The id that stands for raw byte b when a symbol is not a piece. llama:
 * "<0xXX>", else the one-byte piece (llama.cpp's byte_to_token); gpt2: the
 * piece of b's mapped character.
 */
static int32_t find_byte_tok(const struct copro_tok *t, uint8_t b)
{
	static const char hex[] = "0123456789ABCDEF";
	char s[6];
	int32_t id;

	if (t->model == COPRO_TOK_GPT2) {
		size_t n = gpt2_byte_utf8(b, s);

		return map_find(&t->pieces, s, n);
	}
	s[0] = '<';
	s[1] = '0';
	s[2] = 'x';
	s[3] = hex[b >> 4];
	s[4] = hex[b & 15];
	s[5] = '>';
	id = map_find(&t->pieces, s, 6);
	if (id < 0)
		id = map_find(&t->pieces, (const char *)&b, 1);
	return id;
}

/* Copy the merges into one blob and index them by string. 0 or -ENOMEM. */
static int copy_merges(struct copro_tok *t, const struct copro_tok_desc *d)
{
	size_t total = 0, o = 0;
	uint32_t i;
	int res;

	for (i = 0; i < d->n_merges; i++)
		total += d->merge_len[i];
	t->n_merges = d->n_merges;
	t->mrg = malloc(total ? total : 1);
	t->mrg_off = malloc((d->n_merges + 1) * sizeof(*t->mrg_off));
	t->mrg_split = malloc((d->n_merges ? d->n_merges : 1) * sizeof(*t->mrg_split));
	if (!t->mrg || !t->mrg_off || !t->mrg_split)
		return -ENOMEM;
	for (i = 0; i < d->n_merges; i++) {
		const char *s = d->merges[i];
		const char *sp = memchr(s + 1, ' ', d->merge_len[i] - 1);

		t->mrg_off[i] = o;
		t->mrg_split[i] = (uint32_t)(sp - s);
		memcpy(t->mrg + o, s, d->merge_len[i]);
		o += d->merge_len[i];
	}
	t->mrg_off[d->n_merges] = o;
	res = map_init(&t->merges, d->n_merges, t->mrg, t->mrg_off);
	if (res)
		return res;
	for (i = 0; i < d->n_merges; i++)
		map_insert(&t->merges, (int32_t)i, false);
	return 0;
}

int copro_tok_create(const struct copro_tok_desc *d, struct copro_tok **out, char *err,
		     size_t errlen)
{
	struct copro_tok *t;
	size_t total = 0;
	uint32_t i, n;
	int res;

	if (!d || !out) {
		tok_err(err, errlen, "no descriptor");
		return -EINVAL;
	}
	*out = NULL;
	res = desc_check(d, err, errlen);
	if (res)
		return res;
	n = d->n_vocab;
	for (i = 0; i < n; i++)
		total += d->text_len[i];

	res = -ENOMEM;
	t = calloc(1, sizeof(*t));
	if (!t)
		goto fail;
	t->model = d->model;
	t->n_vocab = n;
	t->bos = d->bos;
	t->eos = d->eos;
	t->unk = d->unk;
	t->add_bos = d->add_bos;
	t->add_space_prefix = d->model == COPRO_TOK_LLAMA && d->add_space_prefix;
	t->raw = malloc(total ? total : 1);
	t->dec = malloc(total ? total : 1); /* a decoded piece is never longer */
	t->raw_off = malloc((n + 1) * sizeof(*t->raw_off));
	t->dec_off = malloc((n + 1) * sizeof(*t->dec_off));
	t->type = malloc(n);
	if (d->model == COPRO_TOK_LLAMA)
		t->score = malloc(n * sizeof(*t->score));
	if (!t->raw || !t->dec || !t->raw_off || !t->dec_off || !t->type ||
	    (d->model == COPRO_TOK_LLAMA && !t->score))
		goto fail_tok;
	res = copy_vocab(t, d, err, errlen);
	if (res)
		goto fail_tok;

	res = map_init(&t->pieces, n, t->raw, t->raw_off);
	if (res)
		goto fail_tok;
	for (i = 0; i < n; i++)
		if (t->raw_off[i + 1] > t->raw_off[i]) /* an empty piece never matches */
			map_insert(&t->pieces, (int32_t)i, true);
	if (d->model == COPRO_TOK_GPT2) {
		res = copy_merges(t, d);
		if (res)
			goto fail_tok;
	}
	for (i = 0; i < 256; i++)
		t->byte_tok[i] = find_byte_tok(t, (uint8_t)i);
	*out = t;
	return 0;

fail_tok:
	copro_tok_destroy(t);
fail:
	if (res == -ENOMEM)
		tok_err(err, errlen, "out of memory");
	return res;
}

void copro_tok_destroy(struct copro_tok *t)
{
	if (!t)
		return;
	map_free(&t->merges);
	free(t->mrg_split);
	free(t->mrg_off);
	free(t->mrg);
	map_free(&t->pieces);
	free(t->score);
	free(t->type);
	free(t->dec_off);
	free(t->raw_off);
	free(t->dec);
	free(t->raw);
	free(t);
}

/* ---- the merge loop ------------------------------------------------------- */

/* A run of text being merged; rstart/rn are the raw bytes (gpt2 only). */
struct sym {
	uint32_t start, n; /* in the buffer being merged */
	uint32_t rstart, rn;
	int32_t prev, next; /* -1 at the ends */
};

/* A candidate merge of symbols left and right, of size bytes in all. */
struct bigram {
	double key; /* higher merges first: llama score, gpt2 -rank */
	int32_t left, right;
	uint32_t size;
};

struct enc {
	const struct copro_tok *t;
	int32_t *ids;
	size_t cap, n; /* n counts every id, stored or not */
	const char *buf;
	struct sym *sym;     /* (buffer length) */
	struct bigram *heap; /* (3 * buffer length) enough for every push */
	size_t n_heap;
};

static void emit(struct enc *e, int32_t id)
{
	if (e->n < e->cap)
		e->ids[e->n] = id;
	e->n++;
}

/* The higher score wins; on a tie the leftmost, as llama.cpp's comparators. */
static bool better(const struct bigram *a, const struct bigram *b)
{
	return a->key > b->key || (a->key == b->key && a->left < b->left);
}

static void heap_push(struct enc *e, struct bigram g)
{
	size_t i = e->n_heap++;

	while (i > 0 && better(&g, &e->heap[(i - 1) / 2])) {
		e->heap[i] = e->heap[(i - 1) / 2];
		i = (i - 1) / 2;
	}
	e->heap[i] = g;
}

static struct bigram heap_pop(struct enc *e)
{
	struct bigram top = e->heap[0], last = e->heap[--e->n_heap];
	size_t i = 0, n = e->n_heap;

	for (;;) {
		size_t c = 2 * i + 1;

		if (c >= n)
			break;
		if (c + 1 < n && better(&e->heap[c + 1], &e->heap[c]))
			c++;
		if (!better(&e->heap[c], &last))
			break;
		e->heap[i] = e->heap[c];
		i = c;
	}
	if (n)
		e->heap[i] = last;
	return top;
}

/* Queue the merge of symbols l and r if the vocabulary has it. */
static void try_bigram(struct enc *e, int32_t l, int32_t r)
{
	const struct copro_tok *t = e->t;
	const struct sym *a, *b;
	struct bigram g;
	int32_t v;

	if (l < 0 || r < 0)
		return;
	a = &e->sym[l];
	b = &e->sym[r];
	g.left = l;
	g.right = r;
	g.size = a->n + b->n;
	if (t->model == COPRO_TOK_LLAMA) {
		if (g.size > t->max_raw) /* no piece is that long */
			return;
		v = map_find(&t->pieces, e->buf + a->start, g.size);
		if (v < 0)
			return;
		g.key = t->score[v];
	} else {
		v = map_find_pair(t, e->buf + a->start, a->n, e->buf + b->start, b->n);
		if (v < 0)
			return;
		g.key = -(double)v;
	}
	heap_push(e, g);
}

/*
 * Merge symbols 0..n-1 (linked in order) until no queued pair is left.
 * A queued pair is stale when either side was merged since: sizes only
 * grow, so both sides unchanged is exactly "n + n equals the size queued"
 * with neither side emptied.
 */
static void merge_all(struct enc *e, uint32_t n)
{
	uint32_t i;

	e->n_heap = 0;
	for (i = 1; i < n; i++)
		try_bigram(e, (int32_t)i - 1, (int32_t)i);
	while (e->n_heap) {
		struct bigram g = heap_pop(e);
		struct sym *l = &e->sym[g.left], *r = &e->sym[g.right];

		if (!l->n || !r->n || l->n + r->n != g.size)
			continue;
		l->n += r->n;
		l->rn += r->rn;
		r->n = 0;
		l->next = r->next;
		if (r->next >= 0)
			e->sym[r->next].prev = g.left;
		try_bigram(e, l->prev, g.left);
		try_bigram(e, g.left, l->next);
	}
}

/* Emit the id standing for raw byte b: its byte token, else unk. */
static int emit_byte(struct enc *e, uint8_t b)
{
	int32_t id = e->t->byte_tok[b];

	if (id < 0)
		id = e->t->unk;
	if (id < 0)
		return -EILSEQ;
	emit(e, id);
	return 0;
}

/* ---- llama (SentencePiece BPE) -------------------------------------------- */

/*
 * llm_tokenizer_spm: spaces become U+2581 (and one leads the text when
 * add_space_prefix), the text splits into characters, pairs merge by piece
 * score (leftmost on ties), and a symbol that is no piece falls back to
 * byte tokens, else unk.
 *
 * One deliberate difference: llama.cpp sizes a character by its lead byte
 * alone, so an invalid byte such as 0xff swallows the next three bytes
 * into one symbol (turning a following space into byte tokens of U+2581,
 * which then decode as "\u2581", not " "). Here each byte that is not part
 * of a valid sequence is a symbol of its own; on valid UTF-8 the two agree.
 */
static int encode_llama(struct enc *e, const char *text, size_t len)
{
	const struct copro_tok *t = e->t;
	size_t i, n = 0, cap = 3 * len + 3;
	struct bytes2 v;
	char *buf;
	int32_t s;
	int res = 0;

	buf = malloc(cap);
	e->sym = malloc(cap * sizeof(*e->sym));
	if (!buf || !e->sym) {
		res = -ENOMEM;
		goto out;
	}
	if (t->add_space_prefix) {
		memcpy(buf, "\xe2\x96\x81", 3);
		n = 3;
	}
	for (i = 0; i < len; i++) {
		if (text[i] == ' ') {
			memcpy(buf + n, "\xe2\x96\x81", 3);
			n += 3;
		} else {
			buf[n++] = text[i];
		}
	}
	e->buf = buf;

	v = (struct bytes2){ (const uint8_t *)buf, NULL, n, 0 };
	s = 0;
	for (i = 0; i < n; s++) {
		uint32_t cp;
		int r = utf8_scan(&v, i, n, &cp);
		size_t cl = r > 0 ? (size_t)r : 1;

		e->sym[s] = (struct sym){ (uint32_t)i, (uint32_t)cl, 0, 0, s - 1, -1 };
		if (s > 0)
			e->sym[s - 1].next = s;
		i += cl;
	}
	e->heap = malloc((3 * (size_t)s + 1) * sizeof(*e->heap)); /* every push merge_all makes */
	if (!e->heap) {
		res = -ENOMEM;
		goto out;
	}
	merge_all(e, (uint32_t)s);

	for (s = 0; s >= 0 && res == 0; s = e->sym[s].next) {
		const struct sym *y = &e->sym[s];
		int32_t id = map_find(&t->pieces, buf + y->start, y->n);

		if (id >= 0) {
			emit(e, id);
			continue;
		}
		for (i = 0; i < y->n && res == 0; i++)
			res = emit_byte(e, (uint8_t)buf[y->start + i]);
	}
out:
	free(e->heap);
	free(e->sym);
	free(buf);
	return res;
}

/* ---- gpt2 (byte-level BPE) ------------------------------------------------ */

enum { CLS_NONE, CLS_LETTER, CLS_NUMBER, CLS_SPACE, CLS_OTHER };

/*
 * Non-ASCII code points that are not letters for the pre-tokenizer: a
 * small table of Unicode White_Space, number (Nd/Nl/No) and punctuation,
 * symbol and mark ranges that text commonly holds (Latin-1, combining
 * marks, general punctuation, currency, arrows/math/box drawing, CJK
 * punctuation, fullwidth forms, emoji). Everything else non-ASCII counts
 * as a letter: exact for the scripts' letters, approximate for the rest
 * of Unicode's symbols, and llama.cpp's full tables would only move the
 * boundary between two words, never lose a byte.
 */
static const struct {
	uint32_t lo, hi;
	uint8_t cls;
} cp_ranges[] = {
	{ 0x80, 0x84, CLS_OTHER },	{ 0x85, 0x85, CLS_SPACE },     { 0x86, 0x9f, CLS_OTHER },
	{ 0xa0, 0xa0, CLS_SPACE },	{ 0xa1, 0xa9, CLS_OTHER },     { 0xab, 0xb1, CLS_OTHER },
	{ 0xb2, 0xb3, CLS_NUMBER },	{ 0xb4, 0xb4, CLS_OTHER },     { 0xb6, 0xb8, CLS_OTHER },
	{ 0xb9, 0xb9, CLS_NUMBER },	{ 0xbb, 0xbb, CLS_OTHER },     { 0xbc, 0xbe, CLS_NUMBER },
	{ 0xbf, 0xbf, CLS_OTHER },	{ 0xd7, 0xd7, CLS_OTHER },     { 0xf7, 0xf7, CLS_OTHER },
	{ 0x2c2, 0x2c5, CLS_OTHER },	{ 0x2d2, 0x2df, CLS_OTHER },   { 0x300, 0x36f, CLS_OTHER },
	{ 0x660, 0x669, CLS_NUMBER },	{ 0x6f0, 0x6f9, CLS_NUMBER },  { 0x966, 0x96f, CLS_NUMBER },
	{ 0x1680, 0x1680, CLS_SPACE },	{ 0x2000, 0x200a, CLS_SPACE }, { 0x200b, 0x2027, CLS_OTHER },
	{ 0x2028, 0x2029, CLS_SPACE },	{ 0x202a, 0x202e, CLS_OTHER }, { 0x202f, 0x202f, CLS_SPACE },
	{ 0x2030, 0x205e, CLS_OTHER },	{ 0x205f, 0x205f, CLS_SPACE }, { 0x2060, 0x206f, CLS_OTHER },
	{ 0x2070, 0x2070, CLS_NUMBER }, { 0x2074, 0x2079, CLS_NUMBER }, { 0x207a, 0x207e, CLS_OTHER },
	{ 0x2080, 0x2089, CLS_NUMBER }, { 0x208a, 0x208e, CLS_OTHER }, { 0x20a0, 0x20ff, CLS_OTHER },
	{ 0x2150, 0x2182, CLS_NUMBER }, { 0x2190, 0x245f, CLS_OTHER }, { 0x2460, 0x249b, CLS_NUMBER },
	{ 0x249c, 0x24e9, CLS_OTHER },	{ 0x24ea, 0x24ff, CLS_NUMBER }, { 0x2500, 0x2775, CLS_OTHER },
	{ 0x2776, 0x2793, CLS_NUMBER }, { 0x2794, 0x2bff, CLS_OTHER }, { 0x2e00, 0x2e7f, CLS_OTHER },
	{ 0x3000, 0x3000, CLS_SPACE },	{ 0x3001, 0x3004, CLS_OTHER }, { 0x3007, 0x3007, CLS_NUMBER },
	{ 0x3008, 0x3020, CLS_OTHER },	{ 0x3021, 0x3029, CLS_NUMBER }, { 0x3030, 0x3030, CLS_OTHER },
	{ 0xfe00, 0xfe6f, CLS_OTHER },	{ 0xfeff, 0xfeff, CLS_OTHER }, { 0xff01, 0xff0f, CLS_OTHER },
	{ 0xff10, 0xff19, CLS_NUMBER }, { 0xff1a, 0xff20, CLS_OTHER }, { 0xff3b, 0xff40, CLS_OTHER },
	{ 0xff5b, 0xff65, CLS_OTHER },	{ 0x1d7ce, 0x1d7ff, CLS_NUMBER }, { 0x1f000, 0x1faff, CLS_OTHER },
	{ 0xe0000, 0xe007f, CLS_OTHER },
};

static uint8_t cp_class(uint32_t cp)
{
	size_t lo = 0, hi = sizeof(cp_ranges) / sizeof(cp_ranges[0]);

	if (cp < 0x80) {
		if ((cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z'))
			return CLS_LETTER;
		if (cp >= '0' && cp <= '9')
			return CLS_NUMBER;
		if (cp == ' ' || (cp >= '\t' && cp <= '\r'))
			return CLS_SPACE;
		return CLS_OTHER;
	}
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;

		if (cp < cp_ranges[mid].lo)
			hi = mid;
		else if (cp > cp_ranges[mid].hi)
			lo = mid + 1;
		else
			return cp_ranges[mid].cls;
	}
	return CLS_LETTER;
}

/* One pre-tokenizer unit: a character, or one byte of invalid UTF-8. */
struct cpt {
	uint32_t off, cp;
	uint8_t cls;
};

/* BPE one pre-tokenized word (raw bytes) and emit its ids. 0 or -EILSEQ. */
static int bpe_word(struct enc *e, char *mbuf, const uint8_t *w, size_t n)
{
	size_t i, m = 0;
	int32_t s;
	int res = 0;

	for (i = 0; i < n; i++) {
		size_t k = gpt2_byte_utf8(w[i], mbuf + m);

		e->sym[i] = (struct sym){ (uint32_t)m, (uint32_t)k, (uint32_t)i, 1,
					  (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1 };
		m += k;
	}
	e->buf = mbuf;
	merge_all(e, (uint32_t)n);
	for (s = 0; s >= 0 && res == 0; s = e->sym[s].next) {
		const struct sym *y = &e->sym[s];
		int32_t id = map_find(&e->t->pieces, mbuf + y->start, y->n);

		if (id >= 0) {
			emit(e, id);
			continue;
		}
		for (i = 0; i < y->rn && res == 0; i++)
			res = emit_byte(e, w[y->rstart + i]);
	}
	return res;
}

/*
 * Split text by GPT-2's pattern
 *   's|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+
 * hand-matched as llama.cpp's unicode_regex_split_custom_gpt2 does, and
 * BPE each word. A byte of invalid UTF-8 is a unit of its own classed as
 * punctuation (llama.cpp would see U+FFFD there, same class), so every
 * byte survives to the byte-level map.
 */
static int encode_gpt2(struct enc *e, const char *text, size_t len)
{
	struct bytes2 v = { (const uint8_t *)text, NULL, len, 0 };
	struct cpt *c = NULL;
	char *mbuf = NULL;
	size_t m = 0, pos, prev = 0, i;
	int res = -ENOMEM;

	c = malloc((len + 1) * sizeof(*c));
	mbuf = malloc(2 * len + 1);
	e->sym = malloc((len + 1) * sizeof(*e->sym));
	e->heap = malloc(3 * (len + 1) * sizeof(*e->heap));
	if (!c || !mbuf || !e->sym || !e->heap)
		goto out;
	for (i = 0; i < len; m++) {
		uint32_t cp;
		int r = utf8_scan(&v, i, len, &cp);

		c[m].off = (uint32_t)i;
		if (r > 0) {
			c[m].cp = cp;
			c[m].cls = cp_class(cp);
			i += (size_t)r;
		} else {
			c[m].cp = 0xfffd;
			c[m].cls = CLS_OTHER;
			i++;
		}
	}
	c[m].off = (uint32_t)len; /* sentinel: the end of the last unit */

#define CP(p) ((p) < m ? c[p].cp : 0xffffffffu)
#define CLS(p) ((p) < m ? c[p].cls : CLS_NONE)
#define WORD(end)                                                                          \
	do {                                                                               \
		if ((end) > prev) {                                                        \
			res = bpe_word(e, mbuf, (const uint8_t *)text + c[prev].off,       \
				       c[end].off - c[prev].off);                          \
			if (res)                                                           \
				goto out;                                                  \
		}                                                                          \
		prev = (end);                                                              \
	} while (0)

	res = 0;
	for (pos = 0; pos < m;) {
		uint32_t cp = CP(pos), n1 = CP(pos + 1), n2 = CP(pos + 2);
		uint8_t f = cp == ' ' ? CLS(pos + 1) : CLS(pos);
		size_t nws = 0;

		if (cp == '\'' && (n1 == 's' || n1 == 't' || n1 == 'm' || n1 == 'd')) {
			pos += 2;
			WORD(pos);
			continue;
		}
		if (cp == '\'' && ((n1 == 'r' && n2 == 'e') || (n1 == 'v' && n2 == 'e') ||
				   (n1 == 'l' && n2 == 'l'))) {
			pos += 3;
			WORD(pos);
			continue;
		}
		if (f == CLS_LETTER || f == CLS_NUMBER || f == CLS_OTHER) {
			pos += cp == ' ';
			while (CLS(pos) == f)
				pos++;
			WORD(pos);
			continue;
		}
		while (CLS(pos + nws) == CLS_SPACE)
			nws++;
		if (nws > 1 && pos + nws < m) { /* \s+(?!\S): leave the last one */
			pos += nws - 1;
			WORD(pos);
			continue;
		}
		pos += nws ? nws : 1;
		WORD(pos);
	}
#undef WORD
#undef CLS
#undef CP
out:
	free(e->heap);
	free(e->sym);
	free(mbuf);
	free(c);
	return res;
}

int copro_tok_encode(const struct copro_tok *t, const char *text, size_t len, bool add_bos,
		     int32_t *ids, size_t cap)
{
	struct enc e = { .t = t, .ids = ids, .cap = ids ? cap : 0 };
	int res = 0;

	if (!t || (!text && len) || (add_bos && t->bos < 0))
		return -EINVAL;
	if (len > INT32_MAX / 4) /* 3 ids a byte at most, plus the prefix */
		return -E2BIG;
	if (add_bos)
		emit(&e, t->bos);
	if (len && t->model == COPRO_TOK_LLAMA)
		res = encode_llama(&e, text, len);
	else if (len)
		res = encode_gpt2(&e, text, len);
	return res ? res : (int)e.n;
}

/* ---- pieces and the detokenizer ------------------------------------------- */

int copro_tok_piece(const struct copro_tok *t, int32_t id, const char **bytes, size_t *len)
{
	if (!t || id < 0 || (uint32_t)id >= t->n_vocab)
		return -EINVAL;
	*bytes = t->dec + t->dec_off[id];
	*len = t->dec_off[id + 1] - t->dec_off[id];
	return 0;
}

int32_t copro_tok_bos(const struct copro_tok *t)
{
	return t->bos;
}

int32_t copro_tok_eos(const struct copro_tok *t)
{
	return t->eos;
}

uint32_t copro_tok_n_vocab(const struct copro_tok *t)
{
	return t->n_vocab;
}

bool copro_tok_add_bos(const struct copro_tok *t)
{
	return t->add_bos;
}

bool copro_tok_is_control(const struct copro_tok *t, int32_t id)
{
	return id >= 0 && (uint32_t)id < t->n_vocab && t->type[id] == COPRO_TOKT_CONTROL;
}

size_t copro_tok_max_piece(const struct copro_tok *t)
{
	return t->max_dec;
}

void copro_detok_init(struct copro_detok *s, bool strip_space)
{
	memset(s, 0, sizeof(*s));
	s->first = strip_space;
}

static const char replacement[3] = { '\xef', '\xbf', '\xbd' }; /* U+FFFD */

int copro_detok_push(const struct copro_tok *t, struct copro_detok *s, int32_t id, char *out,
		     size_t cap)
{
	struct bytes2 v;
	const char *p;
	size_t len, total, i = 0, o = 0;
	uint8_t keep[8];
	bool nonempty;

	if (copro_tok_piece(t, id, &p, &len))
		return -EINVAL;
	nonempty = len > 0;
	if (s->first && nonempty && t->add_space_prefix && p[0] == ' ') {
		p++;
		len--;
	}
	v = (struct bytes2){ s->pend, (const uint8_t *)p, s->n_pend, len };
	total = s->n_pend + len;
	while (i < total) {
		uint32_t cp;
		int r = utf8_scan(&v, i, total, &cp);

		if (r == 0)
			break; /* an incomplete tail: hold it */
		if (o + (r > 0 ? (size_t)r : 3) > cap)
			return -ENOSPC;
		if (r > 0) {
			for (int k = 0; k < r; k++)
				out[o++] = (char)b2_at(&v, i + k);
			i += (size_t)r;
		} else {
			memcpy(out + o, replacement, 3);
			o += 3;
			i += (size_t)-r;
		}
	}
	/* the tail may come from pend itself: copy it out before overwriting */
	for (size_t k = i; k < total; k++)
		keep[k - i] = b2_at(&v, k);
	memcpy(s->pend, keep, total - i);
	s->n_pend = (uint32_t)(total - i);
	if (nonempty)
		s->first = false;
	return (int)o;
}

int copro_detok_flush(struct copro_detok *s, char *out, size_t cap)
{
	int n = 0;

	if (s->n_pend) {
		if (cap < 3)
			return -ENOSPC;
		memcpy(out, replacement, 3);
		n = 3;
	}
	copro_detok_init(s, false);
	return n;
}
