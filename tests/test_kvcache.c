// SPDX-License-Identifier: MIT
/*
 * test_kvcache.c - the paged KV block pool (server/kvcache.c): sharing of
 * prefix blocks, the never-the-last-token rule, copy-on-write, LRU
 * eviction, atomic failure and a randomized stress run with a checker.
 *
 * K/V contents stand for a real model's: the value stored at position p is
 * a function of the sequence's tokens [0, p] (a rolling hash), so reading a
 * position back checks that a cached, shared or copied block holds exactly
 * what that prefix would have computed.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>

#include "kvcache.h"

#define BT		16
#define ROW		(2 * 4)		/* n_kv_heads * head_dim */

static const struct copro_kv_geom geom = { .n_layers = 2, .n_kv_heads = 2, .head_dim = 4,
					   .block_tokens = BT };

static struct copro_kvc *pool(uint32_t n_blocks)
{
	struct copro_kvc *kvc;
	char err[256];

	assert_int_equal(copro_kvc_create(&kvc, &geom, n_blocks * copro_kvc_block_bytes(&geom),
					  err, sizeof(err)), 0);
	assert_int_equal(kvc->n_blocks, n_blocks);
	return kvc;
}

static uint64_t roll(uint64_t h, int32_t tok)
{
	h ^= (uint64_t)(uint32_t)tok + 0x9e3779b97f4a7c15ULL;
	h *= 0xff51afd7ed558ccdULL;
	return h ^ (h >> 29);
}

/* Element e of layer l's key (v = 0) or value (v = 1) for prefix hash h: exact in f32. */
static float kv_val(uint64_t h, uint32_t l, uint32_t e, int v)
{
	return (float)(roll(h, (int32_t)(l * 64 + e * 2 + v)) >> 40);
}

/* Writes positions [from, to) of seq's K/V as tokens[0..to) would make them. */
static void write_kv(struct copro_kvc *kvc, const struct copro_kvc_seq *seq,
		     const int32_t *tokens, uint32_t from, uint32_t to)
{
	uint64_t h = 0;
	float k[ROW], v[ROW];

	for (uint32_t p = 0; p < to; p++) {
		h = roll(h, tokens[p]);
		if (p < from)
			continue;
		for (uint32_t l = 0; l < geom.n_layers; l++) {
			for (uint32_t e = 0; e < ROW; e++) {
				k[e] = kv_val(h, l, e, 0);
				v[e] = kv_val(h, l, e, 1);
			}
			copro_kv_write(copro_kvc_view(kvc), l, seq->table, p, k, v);
		}
	}
}

/* Returns the number of positions in [0, to) whose K/V differ from tokens' prefix. */
static uint32_t bad_kv(const struct copro_kvc *kvc, const struct copro_kvc_seq *seq,
		       const int32_t *tokens, uint32_t to)
{
	const struct copro_kv_view *kv = copro_kvc_view(kvc);
	uint32_t bad = 0;
	uint64_t h = 0;

	for (uint32_t p = 0; p < to; p++) {
		uint32_t b = seq->table[p / BT], ok = 1;

		h = roll(h, tokens[p]);
		for (uint32_t l = 0; l < geom.n_layers; l++)
			for (uint32_t e = 0; e < ROW; e++) {
				uint32_t head = e / geom.head_dim, d = e % geom.head_dim;

				ok &= copro_kv_k_at(kv, l, b, head, p % BT)[d] == kv_val(h, l, e, 0);
				ok &= copro_kv_v_at(kv, l, b, head, p % BT)[d] == kv_val(h, l, e, 1);
			}
		bad += !ok;
	}
	return bad;
}

/* Runs a whole prompt: match, append the rest, write and commit it. Returns tokens matched. */
static int prefill(struct copro_kvc *kvc, struct copro_kvc_seq *seq, const int32_t *tokens,
		   uint32_t n)
{
	int hit;

	assert_int_equal(copro_kvc_seq_init(kvc, seq), 0);
	hit = copro_kvc_seq_match_prefix(kvc, seq, tokens, n);
	assert_true(hit >= 0);
	assert_int_equal(copro_kvc_seq_append(kvc, seq, n - (uint32_t)hit), 0);
	write_kv(kvc, seq, tokens, (uint32_t)hit, n);
	assert_int_equal(copro_kvc_seq_commit(kvc, seq, tokens + hit, n - (uint32_t)hit), 0);
	assert_int_equal(bad_kv(kvc, seq, tokens, n), 0);
	return hit;
}

static void make_prompt(int32_t *t, uint32_t n, int32_t base)
{
	for (uint32_t i = 0; i < n; i++)
		t[i] = base + (int32_t)i;
}

static void check_counts(const struct copro_kvc *kvc, uint32_t used, uint32_t cached,
			 uint32_t free_)
{
	struct copro_kvc_stats st;

	assert_int_equal(copro_kvc_check(kvc), 0);
	copro_kvc_stats(kvc, &st);
	assert_int_equal(st.used, used);
	assert_int_equal(st.cached, cached);
	assert_int_equal(st.free, free_);
	assert_int_equal(st.used + st.cached + st.free, st.total);
	assert_int_equal(copro_kvc_free_blocks(kvc), cached + free_);
}

static void should_return_pool_to_idle_after_free(void **state)
{
	struct copro_kvc *kvc = pool(8);
	struct copro_kvc_seq a;
	int32_t t[50];

	check_counts(kvc, 0, 0, 8);
	assert_int_equal(copro_kvc_seq_init(kvc, &a), 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &a, 50), 0);
	assert_int_equal(a.n_blocks, 4);
	check_counts(kvc, 4, 0, 4);
	copro_kvc_seq_free(kvc, &a);	/* nothing committed: nothing hashed */
	check_counts(kvc, 0, 0, 8);

	make_prompt(t, 50, 1000);
	prefill(kvc, &a, t, 50);
	check_counts(kvc, 4, 0, 4);
	copro_kvc_seq_free(kvc, &a);	/* 3 full blocks stay findable */
	check_counts(kvc, 0, 3, 5);
	copro_kvc_destroy(kvc);
}

static void should_share_full_prefix_blocks(void **state)
{
	struct copro_kvc *kvc = pool(16);
	struct copro_kvc_seq a, b, c;
	struct copro_kvc_stats st;
	int32_t t[50], u[50];

	make_prompt(t, 50, 7);
	assert_int_equal(prefill(kvc, &a, t, 50), 0);
	assert_int_equal(prefill(kvc, &b, t, 50), 48);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(b.table[i], a.table[i]);
		assert_int_equal(kvc->blocks[a.table[i]].ref, 2);
	}
	/* the partial block is never shared */
	assert_int_not_equal(b.table[3], a.table[3]);
	assert_int_equal(kvc->blocks[a.table[3]].ref, 1);
	check_counts(kvc, 5, 0, 11);
	copro_kvc_stats(kvc, &st);
	assert_int_equal(st.q_tokens, 100);
	assert_int_equal(st.hit_tokens, 48);
	assert_int_equal(st.q_blocks, 6);
	assert_int_equal(st.hit_blocks, 3);

	/* a prompt that diverges in block 1 shares block 0 only */
	memcpy(u, t, sizeof(u));
	u[20] = -1;
	assert_int_equal(prefill(kvc, &c, u, 50), 16);
	assert_int_equal(c.table[0], a.table[0]);
	assert_int_equal(kvc->blocks[a.table[0]].ref, 3);
	assert_int_equal(kvc->blocks[a.table[1]].ref, 2);
	assert_int_equal(bad_kv(kvc, &a, t, 50), 0);

	copro_kvc_seq_free(kvc, &a);
	copro_kvc_seq_free(kvc, &b);
	copro_kvc_seq_free(kvc, &c);
	/* t's 3 blocks and u's blocks 1 and 2 */
	check_counts(kvc, 0, 5, 11);
	copro_kvc_destroy(kvc);
}

/*
 * A prompt of exactly 2 blocks reuses 1 and computes the other 16 tokens,
 * so the model still runs its last position and yields logits.
 */
static void should_never_take_last_token_from_cache(void **state)
{
	struct copro_kvc *kvc = pool(16);
	struct copro_kvc_seq a, s;
	int32_t t[33];

	make_prompt(t, 33, 500);
	prefill(kvc, &a, t, 32);
	assert_int_equal(kvc->blocks[a.table[1]].hashed, 1);
	assert_int_equal(prefill(kvc, &s, t, 32), 16);
	copro_kvc_seq_free(kvc, &s);
	assert_int_equal(prefill(kvc, &s, t, 33), 32);
	copro_kvc_seq_free(kvc, &s);
	assert_int_equal(prefill(kvc, &s, t, 17), 16);
	copro_kvc_seq_free(kvc, &s);
	assert_int_equal(prefill(kvc, &s, t, 16), 0);
	copro_kvc_seq_free(kvc, &s);
	assert_int_equal(copro_kvc_seq_init(kvc, &s), 0);
	assert_int_equal(copro_kvc_seq_match_prefix(kvc, &s, t, 1), 0);
	assert_int_equal(copro_kvc_seq_match_prefix(kvc, &s, t, 0), 0);
	copro_kvc_seq_free(kvc, &s);
	copro_kvc_seq_free(kvc, &a);
	copro_kvc_destroy(kvc);
}

static void should_copy_shared_partial_block_on_write(void **state)
{
	const struct copro_kv_view *kv;
	struct copro_kvc *kvc = pool(8);
	struct copro_kvc_seq a, b;
	struct copro_kvc_stats st;
	int32_t ta[21], tb[21];
	size_t bytes;
	float *snap_k, *snap_v;
	uint32_t shared;

	kv = copro_kvc_view(kvc);
	bytes = kv->block_stride * sizeof(float);
	make_prompt(ta, 21, 300);
	prefill(kvc, &a, ta, 20);
	assert_int_equal(copro_kvc_seq_init(kvc, &b), 0);
	assert_int_equal(copro_kvc_seq_fork(kvc, &b, &a), 0);
	shared = a.table[1];
	assert_int_equal(b.table[1], shared);
	assert_int_equal(kvc->blocks[shared].ref, 2);
	assert_int_equal(copro_kvc_blocks_needed(kvc, &b, 1), 1);	/* the copy */

	snap_k = malloc(bytes);
	snap_v = malloc(bytes);
	assert_non_null(snap_k);
	assert_non_null(snap_v);
	memcpy(snap_k, kv->k + shared * kv->block_stride, bytes);
	memcpy(snap_v, kv->v + shared * kv->block_stride, bytes);

	/* b writes position 20 with a token of its own */
	memcpy(tb, ta, sizeof(tb));
	tb[20] = -7;
	assert_int_equal(copro_kvc_seq_append(kvc, &b, 1), 0);
	assert_int_not_equal(b.table[1], shared);
	assert_int_equal(b.table[0], a.table[0]);
	assert_int_equal(kvc->blocks[shared].ref, 1);
	write_kv(kvc, &b, tb, 20, 21);
	assert_int_equal(copro_kvc_seq_commit(kvc, &b, tb + 20, 1), 0);
	assert_memory_equal(kv->k + shared * kv->block_stride, snap_k, bytes);
	assert_memory_equal(kv->v + shared * kv->block_stride, snap_v, bytes);
	assert_int_equal(bad_kv(kvc, &b, tb, 21), 0);	/* the copy carried 16..19 */
	assert_int_equal(bad_kv(kvc, &a, ta, 20), 0);

	/* a owns its block alone now: no second copy */
	assert_int_equal(copro_kvc_blocks_needed(kvc, &a, 1), 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &a, 1), 0);
	assert_int_equal(a.table[1], shared);
	copro_kvc_stats(kvc, &st);
	assert_int_equal(st.cow_copies, 1);

	free(snap_k);
	free(snap_v);
	copro_kvc_seq_free(kvc, &a);
	copro_kvc_seq_free(kvc, &b);
	check_counts(kvc, 0, 1, 7);
	copro_kvc_destroy(kvc);
}

static void should_evict_least_recently_freed_first(void **state)
{
	struct copro_kvc *kvc = pool(4);
	struct copro_kvc_seq s, e;
	int32_t pa[17], pb[17], pc[17];

	make_prompt(pa, 17, 100);
	make_prompt(pb, 17, 200);
	make_prompt(pc, 17, 300);
	prefill(kvc, &s, pa, 17);
	copro_kvc_seq_free(kvc, &s);
	prefill(kvc, &s, pb, 17);
	copro_kvc_seq_free(kvc, &s);
	prefill(kvc, &s, pc, 17);
	copro_kvc_seq_free(kvc, &s);
	check_counts(kvc, 0, 3, 1);		/* LRU oldest first: a, b, c */

	/* a hit revives a: now b, c, a */
	assert_int_equal(prefill(kvc, &s, pa, 17), 16);
	copro_kvc_seq_free(kvc, &s);
	check_counts(kvc, 0, 3, 1);

	/* two fresh blocks: the free one, then b evicted */
	assert_int_equal(copro_kvc_seq_init(kvc, &e), 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &e, 32), 0);
	assert_int_equal(kvc->evictions, 1);
	check_counts(kvc, 2, 2, 0);
	assert_int_equal(copro_kvc_seq_init(kvc, &s), 0);
	assert_int_equal(copro_kvc_seq_match_prefix(kvc, &s, pb, 17), 0);
	copro_kvc_seq_free(kvc, &s);
	assert_int_equal(copro_kvc_seq_init(kvc, &s), 0);
	assert_int_equal(copro_kvc_seq_match_prefix(kvc, &s, pc, 17), 16);
	copro_kvc_seq_free(kvc, &s);
	assert_int_equal(copro_kvc_seq_init(kvc, &s), 0);
	assert_int_equal(copro_kvc_seq_match_prefix(kvc, &s, pa, 17), 16);
	copro_kvc_seq_free(kvc, &s);
	copro_kvc_seq_free(kvc, &e);
	copro_kvc_destroy(kvc);
}

/* One sequence's blocks go deepest first, so the surviving part is a prefix. */
static void should_evict_deepest_block_of_a_sequence_first(void **state)
{
	struct copro_kvc *kvc = pool(3);
	struct copro_kvc_seq s, x;
	int32_t t[49];

	make_prompt(t, 49, 40);
	prefill(kvc, &s, t, 48);
	copro_kvc_seq_free(kvc, &s);
	check_counts(kvc, 0, 3, 0);
	assert_int_equal(copro_kvc_seq_init(kvc, &x), 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &x, 1), 0);
	assert_int_equal(copro_kvc_seq_init(kvc, &s), 0);
	assert_int_equal(copro_kvc_seq_match_prefix(kvc, &s, t, 49), 32);
	copro_kvc_seq_free(kvc, &s);
	copro_kvc_seq_free(kvc, &x);
	copro_kvc_destroy(kvc);
}

static void should_leave_sequence_unchanged_on_enospc(void **state)
{
	struct copro_kvc *kvc = pool(4);
	struct copro_kvc_seq a, b, c;
	uint32_t table[3];
	int32_t t[40];

	make_prompt(t, 40, 9);
	prefill(kvc, &a, t, 40);			/* 3 blocks */
	memcpy(table, a.table, sizeof(table));
	assert_int_equal(copro_kvc_seq_init(kvc, &b), 0);
	assert_int_equal(copro_kvc_blocks_needed(kvc, &b, 20), 2);
	assert_int_equal(copro_kvc_seq_append(kvc, &b, 20), -ENOSPC);
	assert_int_equal(b.n_tokens, 0);
	assert_int_equal(b.n_blocks, 0);
	check_counts(kvc, 3, 0, 1);
	assert_int_equal(copro_kvc_seq_append(kvc, &a, 30), -ENOSPC);
	assert_int_equal(a.n_tokens, 40);
	assert_int_equal(a.n_blocks, 3);
	assert_memory_equal(a.table, table, sizeof(table));
	check_counts(kvc, 3, 0, 1);
	assert_int_equal(copro_kvc_seq_append(kvc, &b, 16), 0);	/* the last block */
	check_counts(kvc, 4, 0, 0);

	/* a fork of a's partial block cannot get its copy */
	assert_int_equal(copro_kvc_seq_init(kvc, &c), 0);
	assert_int_equal(copro_kvc_seq_fork(kvc, &c, &a), 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &c, 1), -ENOSPC);
	assert_int_equal(c.n_tokens, 40);
	assert_memory_equal(c.table, table, sizeof(table));
	assert_int_equal(kvc->blocks[table[2]].ref, 2);
	assert_int_equal(bad_kv(kvc, &c, t, 40), 0);
	check_counts(kvc, 4, 0, 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &a, UINT32_MAX), -EOVERFLOW);
	copro_kvc_seq_free(kvc, &a);
	copro_kvc_seq_free(kvc, &b);
	copro_kvc_seq_free(kvc, &c);
	check_counts(kvc, 0, 2, 2);
	copro_kvc_destroy(kvc);
}

static void should_refuse_pool_smaller_than_one_block(void **state)
{
	struct copro_kv_geom zero = geom;
	struct copro_kvc *kvc = (struct copro_kvc *)&zero;
	size_t bb = copro_kvc_block_bytes(&geom);
	char err[256] = "";

	assert_int_equal(bb, 2 * 2 * 2 * 4 * BT * sizeof(float));
	assert_int_equal(copro_kvc_create(&kvc, &geom, bb - 1, err, sizeof(err)), -ENOSPC);
	assert_null(kvc);
	assert_non_null(strstr(err, "holds no block"));
	assert_int_equal(copro_kvc_create(&kvc, &geom, 0, NULL, 0), -ENOSPC);
	zero.head_dim = 0;
	assert_int_equal(copro_kvc_create(&kvc, &zero, 1 << 20, err, sizeof(err)), -EINVAL);
	assert_int_equal(copro_kvc_create(&kvc, &geom, 2 * bb - 1, err, sizeof(err)), 0);
	assert_int_equal(kvc->n_blocks, 1);
	assert_int_equal(copro_kvc_view(kvc)->n_blocks, 1);
	assert_int_equal((uintptr_t)copro_kvc_view(kvc)->k % 64, 0);
	assert_int_equal((uintptr_t)copro_kvc_view(kvc)->v % 64, 0);
	copro_kvc_destroy(kvc);
	copro_kvc_destroy(NULL);
}

static void should_tolerate_double_free_and_empty_sequences(void **state)
{
	struct copro_kvc *kvc = pool(4);
	struct copro_kvc_seq s, z;
	int32_t t[4] = { 1, 2, 3, 4 };

	memset(&z, 0, sizeof(z));
	copro_kvc_seq_free(kvc, &z);
	assert_int_equal(copro_kvc_seq_init(kvc, &s), 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &s, 0), 0);
	assert_int_equal(copro_kvc_seq_commit(kvc, &s, t, 0), 0);
	assert_int_equal(copro_kvc_blocks_needed(kvc, &s, 0), 0);
	assert_int_equal(copro_kvc_seq_commit(kvc, &s, t, 1), -EINVAL);	/* nothing appended */
	copro_kvc_seq_free(kvc, &s);
	copro_kvc_seq_free(kvc, &s);
	check_counts(kvc, 0, 0, 4);

	assert_int_equal(copro_kvc_seq_init(kvc, &s), 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &s, 3), 0);
	assert_int_equal(copro_kvc_seq_commit(kvc, &s, t, 4), -EINVAL);	/* 3 appended */
	assert_int_equal(copro_kvc_seq_commit(kvc, &s, t, 3), 0);
	assert_int_equal(copro_kvc_seq_match_prefix(kvc, &s, t, 4), -EINVAL);	/* not empty */
	assert_int_equal(copro_kvc_seq_init(kvc, &z), 0);
	assert_int_equal(copro_kvc_seq_fork(kvc, &s, &z), -EINVAL);		/* dst not empty */
	copro_kvc_seq_free(kvc, &z);
	assert_int_equal(copro_kvc_seq_match_prefix(kvc, &z, t, 4), -EINVAL);	/* freed */
	copro_kvc_seq_free(kvc, &s);
	copro_kvc_seq_free(kvc, &s);
	check_counts(kvc, 0, 0, 4);
	copro_kvc_destroy(kvc);
}

static void should_report_utilization_and_admission(void **state)
{
	struct copro_kvc *kvc = pool(8);
	struct copro_kvc_seq a, b;
	struct copro_kvc_stats st;

	copro_kvc_stats(kvc, &st);
	assert_true(st.utilization == 0.0);
	assert_true(copro_kvc_can_admit(kvc, 96, 2));
	assert_false(copro_kvc_can_admit(kvc, 97, 2));
	assert_true(copro_kvc_can_admit(kvc, 128, 0));
	assert_false(copro_kvc_can_admit(kvc, 129, 0));
	assert_int_equal(copro_kvc_seq_init(kvc, &a), 0);
	assert_int_equal(copro_kvc_seq_append(kvc, &a, 20), 0);
	copro_kvc_stats(kvc, &st);
	assert_int_equal(st.live_slots, 20);
	assert_true(st.utilization == 20.0 / 32.0);
	/* a fork shares: the slots count once */
	assert_int_equal(copro_kvc_seq_init(kvc, &b), 0);
	assert_int_equal(copro_kvc_seq_fork(kvc, &b, &a), 0);
	copro_kvc_stats(kvc, &st);
	assert_int_equal(st.live_slots, 20);
	assert_false(copro_kvc_can_admit(kvc, 65, 2));
	copro_kvc_seq_free(kvc, &a);
	copro_kvc_seq_free(kvc, &b);
	copro_kvc_destroy(kvc);
}

/* ---- randomized stress ------------------------------------------------------ */

#define N_SEQ		12
#define MAX_TOK		160
#define STEPS		20000

struct live {
	int on;
	struct copro_kvc_seq s;
	int32_t tok[MAX_TOK];
	uint32_t n;
};

static uint64_t rs = 0x2545f4914f6cdd1dULL;

static uint32_t rnd(uint32_t n)
{
	rs ^= rs << 13;
	rs ^= rs >> 7;
	rs ^= rs << 17;
	return (uint32_t)((rs >> 11) % n);
}

/* Recounts every block's references from the live tables and compares. */
static void check_pool(const struct copro_kvc *kvc, const struct live *lv)
{
	static uint32_t refs[256];
	struct copro_kvc_stats st;

	assert_true(kvc->n_blocks <= 256);
	memset(refs, 0, sizeof(refs));
	for (int i = 0; i < N_SEQ; i++) {
		if (!lv[i].on)
			continue;
		assert_int_equal(lv[i].s.n_blocks, (lv[i].s.n_tokens + BT - 1) / BT);
		for (uint32_t j = 0; j < lv[i].s.n_blocks; j++)
			refs[lv[i].s.table[j]]++;
	}
	for (uint32_t b = 0; b < kvc->n_blocks; b++)
		assert_int_equal(kvc->blocks[b].ref, refs[b]);
	assert_int_equal(copro_kvc_check(kvc), 0);
	copro_kvc_stats(kvc, &st);
	assert_int_equal(st.used + st.cached + st.free, st.total);
	assert_int_equal(copro_kvc_free_blocks(kvc), st.cached + st.free);
}

static void live_stop(struct copro_kvc *kvc, struct live *l)
{
	copro_kvc_seq_free(kvc, &l->s);
	l->on = 0;
}

/* Pages of [p, p + bytes) resident in memory. */
static size_t resident(void *p, size_t bytes)
{
	size_t page = (size_t)sysconf(_SC_PAGESIZE), n = (bytes + page - 1) / page, in = 0;
	unsigned char *vec = malloc(n);

	assert_non_null(vec);
	assert_int_equal(mincore(p, bytes, vec), 0);
	for (size_t i = 0; i < n; i++)
		in += vec[i] & 1;
	free(vec);
	return in;
}

static void should_fault_in_the_whole_pool_on_prefault(void **state)
{
	/* ~8 MiB of storage: 4 huge pages or 2048 small ones */
	struct copro_kvc *kvc = pool((uint32_t)((8u << 20) / copro_kvc_block_bytes(&geom)));
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	size_t pages = (kvc->mem_bytes + page - 1) / page;

	(void)state;
	assert_true(resident(kvc->mem, kvc->mem_bytes) < pages);	/* mapped lazily */
	assert_int_equal(copro_kvc_prefault(kvc), 0);
	assert_int_equal(resident(kvc->mem, kvc->mem_bytes), pages);
	/* the storage still reads as zero and the pool is untouched */
	for (size_t off = 0; off < kvc->mem_bytes; off += 4099)
		assert_int_equal(((uint8_t *)kvc->mem)[off], 0);
	assert_int_equal(kvc->n_free, kvc->n_blocks);
	assert_int_equal(copro_kvc_prefault(kvc), 0);	/* again: nothing changes */
	copro_kvc_destroy(kvc);
}

static void should_leave_a_pool_larger_than_memory_lazy(void **state)
{
	/* 4 MiB blocks, twice the machine's memory: mapped, never touched */
	static const struct copro_kv_geom big = { .n_layers = 32, .n_kv_heads = 8,
						  .head_dim = 128, .block_tokens = 16 };
	size_t twice = (size_t)sysconf(_SC_PHYS_PAGES) * (size_t)sysconf(_SC_PAGESIZE) * 2;
	struct copro_kvc *kvc;
	char err[256];

	(void)state;
	if (copro_kvc_create(&kvc, &big, twice, err, sizeof(err))) {
		skip();		/* no room for the mapping (32-bit, a ulimit): nothing to check */
		return;
	}
	assert_int_equal(copro_kvc_prefault(kvc), -ENOMEM);
	assert_int_equal(resident(kvc->mem, 64 << 20), 0);	/* not begun */
	copro_kvc_destroy(kvc);
}

static void should_stay_consistent_under_random_operations(void **state)
{
	static struct live lv[N_SEQ];
	static int32_t family[4][MAX_TOK];
	struct copro_kvc *kvc = pool(24);
	uint64_t hits = 0, cows = 0, nospc = 0;

	for (int f = 0; f < 4; f++)
		for (int i = 0; i < MAX_TOK; i++)
			family[f][i] = (int32_t)rnd(50000);
	memset(lv, 0, sizeof(lv));
	for (int step = 0; step < STEPS; step++) {
		struct live *l = &lv[rnd(N_SEQ)];
		uint32_t op = rnd(10);
		int ret;

		if (!l->on && op < 7) {
			/* new prompt: a family's prefix, sometimes diverging */
			uint32_t n = 1 + rnd(96), f = rnd(4), div = rnd(3) ? n : rnd(n);
			int hit;

			for (uint32_t i = 0; i < n; i++)
				l->tok[i] = i < div ? family[f][i] : (int32_t)rnd(50000);
			assert_int_equal(copro_kvc_seq_init(kvc, &l->s), 0);
			l->on = 1;
			hit = copro_kvc_seq_match_prefix(kvc, &l->s, l->tok, n);
			assert_true(hit >= 0 && (uint32_t)hit < n && hit % BT == 0);
			hits += hit > 0;
			assert_int_equal(bad_kv(kvc, &l->s, l->tok, (uint32_t)hit), 0);
			ret = copro_kvc_seq_append(kvc, &l->s, n - (uint32_t)hit);
			if (ret == -ENOSPC) {
				assert_int_equal(l->s.n_tokens, (uint32_t)hit);
				nospc++;
				live_stop(kvc, l);
			} else {
				assert_int_equal(ret, 0);
				write_kv(kvc, &l->s, l->tok, (uint32_t)hit, n);
				assert_int_equal(copro_kvc_seq_commit(kvc, &l->s, l->tok + hit,
								      n - (uint32_t)hit), 0);
				l->n = n;
			}
		} else if (!l->on) {
			/* fork a live sequence into this slot */
			struct live *src = &lv[rnd(N_SEQ)];

			if (src->on) {
				assert_int_equal(copro_kvc_seq_init(kvc, &l->s), 0);
				assert_int_equal(copro_kvc_seq_fork(kvc, &l->s, &src->s), 0);
				memcpy(l->tok, src->tok, sizeof(l->tok));
				l->n = src->n;
				l->on = 1;
			}
		} else if (op < 8 && l->n < MAX_TOK) {
			/* decode one token */
			uint32_t before = kvc->cow_copies, n_tok = l->s.n_tokens;

			l->tok[l->n] = (int32_t)rnd(50000);
			ret = copro_kvc_seq_append(kvc, &l->s, 1);
			if (ret == -ENOSPC) {
				assert_int_equal(l->s.n_tokens, n_tok);
				nospc++;
			} else {
				assert_int_equal(ret, 0);
				write_kv(kvc, &l->s, l->tok, l->n, l->n + 1);
				assert_int_equal(copro_kvc_seq_commit(kvc, &l->s, l->tok + l->n, 1),
						 0);
				l->n++;
				cows += kvc->cow_copies != before;
			}
			assert_int_equal(bad_kv(kvc, &l->s, l->tok, l->n), 0);
		} else {
			live_stop(kvc, l);
		}
		check_pool(kvc, lv);
		if (step % 200 == 0)
			for (int i = 0; i < N_SEQ; i++)
				if (lv[i].on)
					assert_int_equal(bad_kv(kvc, &lv[i].s, lv[i].tok, lv[i].n), 0);
	}
	/* the run must have exercised what it claims to */
	print_message("stress: %llu hits, %llu copies, %llu ENOSPC, %llu evictions\n",
		      (unsigned long long)hits, (unsigned long long)cows,
		      (unsigned long long)nospc, (unsigned long long)kvc->evictions);
	assert_true(hits > 100);
	assert_true(cows > 10);
	assert_true(nospc > 10);
	assert_true(kvc->evictions > 10);
	for (int i = 0; i < N_SEQ; i++)
		if (lv[i].on)
			live_stop(kvc, &lv[i]);
	check_pool(kvc, lv);
	assert_int_equal(copro_kvc_free_blocks(kvc), 24);
	copro_kvc_destroy(kvc);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_return_pool_to_idle_after_free),
		cmocka_unit_test(should_share_full_prefix_blocks),
		cmocka_unit_test(should_never_take_last_token_from_cache),
		cmocka_unit_test(should_copy_shared_partial_block_on_write),
		cmocka_unit_test(should_evict_least_recently_freed_first),
		cmocka_unit_test(should_evict_deepest_block_of_a_sequence_first),
		cmocka_unit_test(should_leave_sequence_unchanged_on_enospc),
		cmocka_unit_test(should_refuse_pool_smaller_than_one_block),
		cmocka_unit_test(should_tolerate_double_free_and_empty_sequences),
		cmocka_unit_test(should_report_utilization_and_admission),
		cmocka_unit_test(should_fault_in_the_whole_pool_on_prefault),
		cmocka_unit_test(should_leave_a_pool_larger_than_memory_lazy),
		cmocka_unit_test(should_stay_consistent_under_random_operations),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
