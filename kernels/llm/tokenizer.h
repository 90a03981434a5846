/* SPDX-License-Identifier: MIT */
/*
 * Tokenizers of GGUF Llama-family models: SentencePiece BPE ("llama") and
 * GPT-2 byte-level BPE ("gpt2"), built from the vocabulary arrays a GGUF
 * file stores under tokenizer.ggml.*, plus a streaming detokenizer that
 * never splits a UTF-8 character across two stream events.
 *
 * The tokenizer is immutable once created: encode, piece and the
 * detokenizer take it const, so any number of threads may share one.
 */
#ifndef COPRO_LLM_TOKENIZER_H
#define COPRO_LLM_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* tokenizer.ggml.model */
#define COPRO_TOK_LLAMA 1 /* "llama": SentencePiece BPE with byte fallback */
#define COPRO_TOK_GPT2 2  /* "gpt2": byte-level BPE with ranked merges */

/* tokenizer.ggml.token_type values (llama.cpp's llama_token_type). */
#define COPRO_TOKT_UNDEFINED 0 /* treated as normal */
#define COPRO_TOKT_NORMAL 1
#define COPRO_TOKT_UNKNOWN 2
#define COPRO_TOKT_CONTROL 3
#define COPRO_TOKT_USER_DEFINED 4
#define COPRO_TOKT_UNUSED 5
#define COPRO_TOKT_BYTE 6

struct copro_tok;

/*
 * What copro_tok_create copies; every pointer is borrowed for the call only.
 * Strings are pointer + length (GGUF strings are not NUL-terminated).
 *
 *   text/text_len  n_vocab pieces (tokenizer.ggml.tokens); a duplicate
 *                  piece is allowed, the last id spelling it wins (as in
 *                  llama.cpp), the others stay decodable.
 *   scores         n_vocab floats (tokenizer.ggml.scores); required for
 *                  llama, ignored (may be NULL) for gpt2.
 *   types          n_vocab COPRO_TOKT_* (tokenizer.ggml.token_type) or NULL:
 *                  then "<0xXX>" spellings are byte tokens, "<s>", "</s>"
 *                  and the bos/eos ids are control, "<unk>" and the unk id
 *                  unknown, everything else normal.
 *   merges         n_merges strings "left right" (tokenizer.ggml.merges),
 *                  rank = index; gpt2 only. The split is at the first space
 *                  after the first byte, as llama.cpp does.
 *   bos, eos, unk  ids or -1 for none.
 *   add_bos        the model's default for copro_tok_encode's add_bos.
 *   add_space_prefix  llama: prepend a space to the text (SentencePiece's
 *                  dummy prefix; GGUF default true). Ignored for gpt2.
 */
struct copro_tok_desc {
	int model; /* COPRO_TOK_* */
	uint32_t n_vocab;
	const char *const *text;
	const uint32_t *text_len;
	const float *scores;
	const int32_t *types;
	uint32_t n_merges;
	const char *const *merges;
	const uint32_t *merge_len;
	int32_t bos, eos, unk;
	bool add_bos, add_space_prefix;
};

/* COPRO_TOK_* for a tokenizer.ggml.model string, or -ENOTSUP. */
int copro_tok_model_parse(const char *name, size_t len);

/*
 * Build a tokenizer from d into *out. Returns 0, -ENOMEM, or -EINVAL with
 * a one-line reason in err (when err is not NULL): unknown model, n_vocab 0
 * (or n_vocab / n_merges over 2^30),
 * a missing array, an out-of-range bos/eos/unk or token type, add_bos
 * without a bos id, llama without scores, a byte-typed token not spelled
 * "<0xXX>", a gpt2 merge without a separating space.
 */
int copro_tok_create(const struct copro_tok_desc *d, struct copro_tok **out, char *err,
		     size_t errlen);
void copro_tok_destroy(struct copro_tok *t);

/*
 * Tokenize len bytes of text (any bytes: invalid UTF-8 and NUL are
 * tokenized, never rejected), with the BOS id first when add_bos.
 *
 * Returns the number of ids the text needs, like snprintf: when it is
 * greater than cap only the first cap ids were stored, and the caller
 * retries with a larger array (ids may be NULL when cap is 0, to measure).
 * Negative on error: -EINVAL (add_bos without a bos id, NULL text with
 * len > 0), -E2BIG (len over INT32_MAX / 4, whose count might not fit the
 * return type), -ENOMEM, or -EILSEQ when a byte has neither a piece, a
 * byte token nor an unk id to stand for it.
 */
int copro_tok_encode(const struct copro_tok *t, const char *text, size_t len, bool add_bos,
		     int32_t *ids, size_t cap);

/*
 * The bytes token id decodes to, in *bytes / *len (owned by t; not
 * NUL-terminated, possibly an incomplete UTF-8 sequence): llama pieces
 * with U+2581 turned into spaces, gpt2 pieces through the byte-level map
 * reversed, byte tokens their byte, user-defined tokens their text, and
 * control, unknown and unused tokens nothing (llama.cpp's
 * llama_token_to_piece with special = false). Returns 0 or -EINVAL for an
 * id out of range.
 */
int copro_tok_piece(const struct copro_tok *t, int32_t id, const char **bytes, size_t *len);

int32_t copro_tok_bos(const struct copro_tok *t); /* -1 when none */
int32_t copro_tok_eos(const struct copro_tok *t); /* -1 when none */
uint32_t copro_tok_n_vocab(const struct copro_tok *t);
bool copro_tok_add_bos(const struct copro_tok *t); /* the model's default */
bool copro_tok_is_control(const struct copro_tok *t, int32_t id); /* false out of range */
size_t copro_tok_max_piece(const struct copro_tok *t); /* longest copro_tok_piece */

/*
 * Streaming detokenizer: feed ids one at a time, get text out in pieces
 * that each end on a UTF-8 character boundary. Plain data, no allocation;
 * one per stream.
 */
struct copro_detok {
	uint8_t pend[8];  /* an incomplete trailing UTF-8 sequence held back */
	uint32_t n_pend;  /* 0..3 */
	bool first;       /* no byte emitted yet and strip_space was asked */
};

/*
 * Start a stream. strip_space asks for SentencePiece's leading-space rule:
 * the space that add_space_prefix put in front of the text is dropped from
 * the first piece that yields any bytes (BOS and other control tokens
 * yield none, so the rule reaches past them). Use it when decoding a whole
 * encoded text (encode then decode gives the text back); leave it false
 * when streaming a continuation, such as the tokens generated after a
 * prompt, whose leading space is real. It has no effect for gpt2 or when
 * the model has add_space_prefix false.
 *
 * (llama.cpp differs in a corner: its llama_detokenize strips only when
 * the first id is not BOS; SentencePiece's DecodeIds, which we follow,
 * strips after BOS too.)
 */
void copro_detok_init(struct copro_detok *s, bool strip_space);

/*
 * Append token id to the stream and write to out the bytes that now form
 * complete UTF-8 characters, holding back an incomplete trailing sequence
 * (at most 3 bytes) for the next push. A byte that cannot start or
 * continue a valid sequence comes out as U+FFFD (one per maximal invalid
 * subpart, as Unicode recommends) rather than being held forever.
 *
 * Returns the number of bytes written, -EINVAL for an id out of range, or
 * -ENOSPC when cap is too small; in both error cases the stream is left
 * unchanged. A cap of 3 * (3 + copro_tok_max_piece(t)) is always enough.
 */
int copro_detok_push(const struct copro_tok *t, struct copro_detok *s, int32_t id, char *out,
		     size_t cap);

/*
 * End the stream: a held-back incomplete sequence comes out as one U+FFFD.
 * Returns the bytes written (0 or 3) or -ENOSPC (cap < 3 with bytes held,
 * stream unchanged). The stream is then as after copro_detok_init(false).
 */
int copro_detok_flush(struct copro_detok *s, char *out, size_t cap);

#endif
