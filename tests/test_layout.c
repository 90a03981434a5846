// SPDX-License-Identifier: MIT
/*
 * test_layout.c - region layout (shm/layout.c) and the ABI golden file.
 *
 * copro_layout_compute must round and clamp what a client asks for;
 * copro_layout_from_sb must accept what compute produced and refuse every
 * corruption of the superblock with the documented code, before the client
 * touches anything else in the region.
 *
 * The golden-file test prints the offset and size of every field the two
 * sides share (the region's structs and the control messages) and compares
 * the text with tests/abi_layout.golden, so a change to the ABI shows up as a
 * reviewed diff. COPRO_UPDATE_GOLDEN=1 rewrites the file from the build.
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

#include "copro_abi.h"
#include "layout.h"
#include "proto.h"

static int is_pow2(uint64_t v)
{
	return v && !(v & (v - 1));
}

/* ---- copro_layout_compute ----------------------------------------------------- */

static void should_compute_requested_power_of_two_sizes(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(256, 512, 4 << 20, &l), 0);
	assert_int_equal(l.sq_entries, 256);
	assert_int_equal(l.cq_entries, 512);
	assert_int_equal(l.arena_size, 4 << 20);
	assert_int_equal(l.sq.ring_entries, 256);
	assert_int_equal(l.cq.ring_entries, 512);
	assert_int_equal(l.sq.entry_size, sizeof(struct copro_sqe));
	assert_int_equal(l.cq.entry_size, sizeof(struct copro_cqe));
}

static void should_place_parts_in_order_without_overlap(void **state)
{
	struct copro_layout l;
	uint64_t sq_end, cq_end;

	assert_int_equal(copro_layout_compute(256, 512, 4 << 20, &l), 0);
	assert_int_equal(l.sq.off, COPRO_SB_SIZE);
	assert_int_equal(l.sq.tail, l.sq.off);
	assert_int_equal(l.sq.head, l.sq.off + COPRO_CACHELINE);
	assert_int_equal(l.sq.entries, l.sq.off + 2 * COPRO_CACHELINE);
	sq_end = l.sq.entries + (uint64_t)l.sq.ring_entries * l.sq.entry_size;
	assert_true(l.cq.off >= sq_end);
	assert_int_equal(l.cq.off % 4096, 0);
	assert_int_equal(l.cq.head, l.cq.off + COPRO_CACHELINE);
	cq_end = l.cq.entries + (uint64_t)l.cq.ring_entries * l.cq.entry_size;
	assert_true(l.arena_off >= cq_end);
	assert_int_equal(l.arena_off % 4096, 0);
	assert_int_equal(l.region_size, l.arena_off + l.arena_size);
	assert_int_equal(l.sq.resv[0] | l.sq.resv[1] | l.cq.resv[0] | l.cq.resv[1], 0);
}

static void should_round_ring_sizes_up_to_powers_of_two(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(3, 5, 1 << 20, &l), 0);
	assert_int_equal(l.sq_entries, 4);
	assert_int_equal(l.cq_entries, 8);
	assert_int_equal(copro_layout_compute(257, 1000, 1 << 20, &l), 0);
	assert_int_equal(l.sq_entries, 512);
	assert_int_equal(l.cq_entries, 1024);
	for (uint32_t sq = 1; sq <= 5000; sq += 37) {
		assert_int_equal(copro_layout_compute(sq, 0, 1 << 20, &l), 0);
		assert_true(is_pow2(l.sq_entries));
		assert_true(is_pow2(l.cq_entries));
		assert_true(l.sq_entries >= COPRO_SQ_MIN && l.sq_entries <= COPRO_SQ_MAX);
		assert_true(l.sq_entries >= sq || l.sq_entries == COPRO_SQ_MAX);
		assert_true(l.cq_entries >= l.sq_entries);
	}
}

static void should_clamp_sq_to_min_and_max(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(1, 0, 1 << 20, &l), 0);
	assert_int_equal(l.sq_entries, COPRO_SQ_MIN);
	assert_int_equal(copro_layout_compute(COPRO_SQ_MAX + 1, 0, 1 << 20, &l), 0);
	assert_int_equal(l.sq_entries, COPRO_SQ_MAX);
	assert_int_equal(copro_layout_compute(UINT32_MAX, UINT32_MAX, 1 << 20, &l), 0);
	assert_int_equal(l.sq_entries, COPRO_SQ_MAX);
	assert_int_equal(l.cq_entries, COPRO_CQ_MAX);
}

static void should_default_cq_to_twice_sq(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(64, 0, 1 << 20, &l), 0);
	assert_int_equal(l.cq_entries, 128);
	assert_int_equal(copro_layout_compute(COPRO_SQ_MAX, 0, 1 << 20, &l), 0);
	assert_int_equal(l.cq_entries, 2 * COPRO_SQ_MAX);
}

static void should_raise_cq_to_at_least_sq(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(256, 16, 1 << 20, &l), 0);
	assert_int_equal(l.cq_entries, 256);
	assert_int_equal(copro_layout_compute(256, 1, 1 << 20, &l), 0);
	assert_int_equal(l.cq_entries, 256);
}

static void should_clamp_cq_to_max(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(16, COPRO_CQ_MAX + 1, 1 << 20, &l), 0);
	assert_int_equal(l.cq_entries, COPRO_CQ_MAX);
}

static void should_raise_arena_to_minimum_and_round_to_pages(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(16, 0, 1, &l), 0);
	assert_int_equal(l.arena_size, COPRO_ARENA_MIN);
	assert_int_equal(copro_layout_compute(16, 0, COPRO_ARENA_MIN + 1, &l), 0);
	assert_int_equal(l.arena_size, COPRO_ARENA_MIN + 4096);
}

static void should_accept_largest_arena(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(16, 0, COPRO_ARENA_MAX, &l), 0);
	assert_int_equal(l.arena_size, COPRO_ARENA_MAX);
	assert_int_equal(l.region_size, l.arena_off + COPRO_ARENA_MAX);
}

static void should_reject_oversized_arena(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(16, 0, COPRO_ARENA_MAX + 1, &l), -EINVAL);
	assert_int_equal(copro_layout_compute(16, 0, UINT64_MAX, &l), -EINVAL);
}

static void should_reject_zero_sizes(void **state)
{
	struct copro_layout l;

	assert_int_equal(copro_layout_compute(0, 0, 1 << 20, &l), -EINVAL);
	assert_int_equal(copro_layout_compute(0, 64, 1 << 20, &l), -EINVAL);
	assert_int_equal(copro_layout_compute(16, 0, 0, &l), -EINVAL);
}

/* ---- copro_layout_from_sb ------------------------------------------------------ */

struct sb_case {
	struct copro_layout l;
	struct copro_sb sb;
	uint64_t file_size;
};

/* A superblock as the server would publish it for 256/512 entries, 1 MiB arena. */
static void sb_case_init(struct sb_case *c)
{
	assert_int_equal(copro_layout_compute(256, 512, 1 << 20, &c->l), 0);
	memset(&c->sb, 0, sizeof(c->sb));
	copro_layout_to_sb(&c->l, &c->sb);
	c->sb.magic = COPRO_ABI_MAGIC;
	c->file_size = c->l.region_size;
}

static int sb_check(struct sb_case *c)
{
	struct copro_layout out;

	return copro_layout_from_sb(&c->sb, c->file_size, &out);
}

static void should_accept_computed_layout(void **state)
{
	struct sb_case c;
	struct copro_layout out;

	sb_case_init(&c);
	memset(&out, 0xff, sizeof(out));
	assert_int_equal(copro_layout_from_sb(&c.sb, c.file_size, &out), 0);
	assert_memory_equal(&out, &c.l, sizeof(out));
}

static void should_accept_every_computed_layout(void **state)
{
	static const uint32_t sqs[] = { 1, 2, 64, 1000, COPRO_SQ_MAX };
	static const uint64_t arenas[] = { 1, 1 << 20, 12345678, COPRO_ARENA_MAX };
	struct sb_case c;

	for (size_t i = 0; i < sizeof(sqs) / sizeof(sqs[0]); i++) {
		for (size_t j = 0; j < sizeof(arenas) / sizeof(arenas[0]); j++) {
			assert_int_equal(copro_layout_compute(sqs[i], 0, arenas[j], &c.l), 0);
			memset(&c.sb, 0, sizeof(c.sb));
			copro_layout_to_sb(&c.l, &c.sb);
			c.sb.magic = COPRO_ABI_MAGIC;
			c.file_size = c.l.region_size;
			assert_int_equal(sb_check(&c), 0);
		}
	}
}

static void should_write_identity_into_sb(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	assert_int_equal(c.sb.abi_major, COPRO_ABI_MAJOR);
	assert_int_equal(c.sb.abi_minor, COPRO_ABI_MINOR);
	assert_int_equal(c.sb.sb_size, sizeof(struct copro_sb));
	assert_int_equal(c.sb.region_size, c.l.region_size);
	assert_int_equal(c.sb.arena_off, c.l.arena_off);
	assert_int_equal(c.sb.arena_size, c.l.arena_size);
	assert_memory_equal(&c.sb.sq, &c.l.sq, sizeof(c.sb.sq));
	assert_memory_equal(&c.sb.cq, &c.l.cq, sizeof(c.sb.cq));
}

static void should_accept_newer_abi_minor(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.abi_minor = COPRO_ABI_MINOR + 1;
	assert_int_equal(sb_check(&c), 0);
}

static void should_reject_bad_magic(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.magic = 0;
	assert_int_equal(sb_check(&c), -EPROTO);
	c.sb.magic = COPRO_ABI_MAGIC ^ 1;
	assert_int_equal(sb_check(&c), -EPROTO);
}

static void should_reject_other_abi_major(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.abi_major = COPRO_ABI_MAJOR + 1;
	assert_int_equal(sb_check(&c), -EPROTONOSUPPORT);
	c.sb.abi_major = COPRO_ABI_MAJOR - 1;
	assert_int_equal(sb_check(&c), -EPROTONOSUPPORT);
}

static void should_reject_wrong_sb_size(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.sb_size = sizeof(struct copro_sb) + 64;
	assert_int_equal(sb_check(&c), -EPROTO);
	c.sb.sb_size = sizeof(struct copro_sb) - 64;
	assert_int_equal(sb_check(&c), -EPROTO);
}

static void should_reject_file_smaller_than_sb(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.region_size = c.file_size = sizeof(struct copro_sb) - 1;
	assert_int_equal(sb_check(&c), -EPROTO);
}

static void should_reject_region_size_other_than_file_size(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.file_size -= 4096;
	assert_int_equal(sb_check(&c), -EPROTO);
	c.file_size += 8192;
	assert_int_equal(sb_check(&c), -EPROTO);
}

static void should_reject_ring_entries_not_power_of_two(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.sq.ring_entries = 255;
	assert_int_equal(sb_check(&c), -EPROTO);
	sb_case_init(&c);
	c.sb.cq.ring_entries = 384;
	assert_int_equal(sb_check(&c), -EPROTO);
	sb_case_init(&c);
	c.sb.sq.ring_entries = 0;
	assert_int_equal(sb_check(&c), -EPROTO);
}

static void should_reject_wrong_entry_size(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.sq.entry_size = sizeof(struct copro_cqe);
	assert_int_equal(sb_check(&c), -EPROTO);
	sb_case_init(&c);
	c.sb.cq.entry_size = sizeof(struct copro_sqe);
	assert_int_equal(sb_check(&c), -EPROTO);
}

static void should_reject_head_and_tail_on_one_cache_line(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.sq.head = c.sb.sq.tail + 4;
	assert_int_equal(sb_check(&c), -EPROTO);
	sb_case_init(&c);
	c.sb.cq.tail = c.sb.cq.head + 8;
	assert_int_equal(sb_check(&c), -EPROTO);
}

static void should_reject_misaligned_ring_offsets(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.sq.off += 4;
	c.sb.sq.tail += 4;
	assert_int_equal(sb_check(&c), -EPROTO);
	sb_case_init(&c);
	c.sb.cq.head += 2;
	assert_int_equal(sb_check(&c), -EPROTO);
	sb_case_init(&c);
	c.sb.cq.entries += 4;
	assert_int_equal(sb_check(&c), -EPROTO);
}

static void should_reject_sq_entries_outside_file(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	/* 2^20 SQEs of 64 bytes end far past the end of the file. */
	c.sb.sq.ring_entries = 1U << 20;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_cq_index_outside_file(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.cq.head = (uint32_t)c.file_size;
	assert_int_equal(sb_check(&c), -ERANGE);
	sb_case_init(&c);
	c.sb.cq.tail = (uint32_t)c.file_size + COPRO_CACHELINE;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_ring_index_before_its_part(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.sq.tail = c.sb.sq.off - COPRO_CACHELINE;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_ring_inside_superblock(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.sq.off = 0;
	c.sb.sq.tail = 0;
	c.sb.sq.head = COPRO_CACHELINE;
	c.sb.sq.entries = 2 * COPRO_CACHELINE;
	c.sb.sq.ring_entries = 2;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_arena_outside_file(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.arena_size += 1;
	assert_int_equal(sb_check(&c), -ERANGE);
	sb_case_init(&c);
	c.sb.arena_off = c.file_size + 4096;
	assert_int_equal(sb_check(&c), -ERANGE);
	sb_case_init(&c);
	/* arena_off + arena_size wraps around 2^64. */
	c.sb.arena_size = UINT64_MAX - 100;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_arena_inside_superblock(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.arena_off = 64;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_empty_arena(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.arena_size = 0;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_sq_overlapping_cq(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	/* The CQ starts on the SQ's last entry page. */
	c.sb.cq.off = c.sb.sq.off + 4096;
	c.sb.cq.tail = c.sb.cq.off;
	c.sb.cq.head = c.sb.cq.off + COPRO_CACHELINE;
	c.sb.cq.entries = c.sb.cq.off + 2 * COPRO_CACHELINE;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_cq_overlapping_sq(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	/* The SQ moved after the CQ's start. */
	c.sb.sq.off = c.sb.cq.off + 4096;
	c.sb.sq.tail = c.sb.sq.off;
	c.sb.sq.head = c.sb.sq.off + COPRO_CACHELINE;
	c.sb.sq.entries = c.sb.sq.off + 2 * COPRO_CACHELINE;
	assert_int_equal(sb_check(&c), -ERANGE);
}

static void should_reject_arena_overlapping_rings(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.arena_off = c.sb.cq.entries;
	c.sb.arena_size = c.file_size - c.sb.arena_off;
	assert_int_equal(sb_check(&c), -ERANGE);
	sb_case_init(&c);
	c.sb.arena_off = c.sb.sq.off;
	c.sb.arena_size = c.file_size - c.sb.arena_off;
	assert_int_equal(sb_check(&c), -ERANGE);
	sb_case_init(&c);
	/* The arena stops one byte into the CQ's first line. */
	c.sb.arena_off = sizeof(struct copro_sb);
	c.sb.arena_size = c.sb.cq.off + 1 - c.sb.arena_off;
	assert_int_equal(sb_check(&c), -ERANGE);
}

/*
 * The ring's index words are part of the ring: a tail placed in the arena, or
 * entries laid over the index words, mean two parts share bytes, which the
 * checker promises to refuse ("rings not overlapping").
 */
static void should_reject_ring_index_inside_arena(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.sq.tail = (uint32_t)c.sb.arena_off;
	assert_true(sb_check(&c) < 0);
}

static void should_reject_ring_entries_over_index_words(void **state)
{
	struct sb_case c;

	sb_case_init(&c);
	c.sb.cq.entries = c.sb.cq.tail;
	assert_true(sb_check(&c) < 0);
}

/* ---- ABI golden file ------------------------------------------------------------ */

struct abi_row {
	const char *type;	/* NULL for a whole-struct size row */
	const char *field;
	size_t off;
	size_t size;
};

#define FIELD(t, f)	{ #t, #f, offsetof(struct t, f), sizeof(((struct t *)0)->f) }
#define STRUCT(t)	{ #t, NULL, 0, sizeof(struct t) }

static const struct abi_row abi_rows[] = {
	STRUCT(copro_sb),
	FIELD(copro_sb, magic),
	FIELD(copro_sb, abi_major),
	FIELD(copro_sb, abi_minor),
	FIELD(copro_sb, sb_size),
	FIELD(copro_sb, features),
	FIELD(copro_sb, region_size),
	FIELD(copro_sb, server_epoch),
	FIELD(copro_sb, client_id),
	FIELD(copro_sb, resv0),
	FIELD(copro_sb, resv1),
	FIELD(copro_sb, sq),
	FIELD(copro_sb, cq),
	FIELD(copro_sb, arena_off),
	FIELD(copro_sb, arena_size),
	FIELD(copro_sb, resv2),
	FIELD(copro_sb, sq_flags),
	FIELD(copro_sb, resv3),
	FIELD(copro_sb, heartbeat_ns),
	FIELD(copro_sb, resv4),
	FIELD(copro_sb, cq_flags),
	FIELD(copro_sb, resv5),
	FIELD(copro_sb, resv6),
	FIELD(copro_sb, pad),

	STRUCT(copro_ring_off),
	FIELD(copro_ring_off, off),
	FIELD(copro_ring_off, tail),
	FIELD(copro_ring_off, head),
	FIELD(copro_ring_off, entries),
	FIELD(copro_ring_off, ring_entries),
	FIELD(copro_ring_off, entry_size),
	FIELD(copro_ring_off, resv),

	STRUCT(copro_gen_params),
	FIELD(copro_gen_params, max_tokens),
	FIELD(copro_gen_params, flags),
	FIELD(copro_gen_params, temperature),
	FIELD(copro_gen_params, top_k),
	FIELD(copro_gen_params, top_p),
	FIELD(copro_gen_params, min_p),
	FIELD(copro_gen_params, repeat_penalty),
	FIELD(copro_gen_params, repeat_last_n),
	FIELD(copro_gen_params, seed),
	FIELD(copro_gen_params, n_stop_ids),
	FIELD(copro_gen_params, stop_ids),
	FIELD(copro_gen_params, resv0),
	FIELD(copro_gen_params, stop),
	FIELD(copro_gen_params, resv1),

	STRUCT(copro_gen_result),
	FIELD(copro_gen_result, finish),
	FIELD(copro_gen_result, error),
	FIELD(copro_gen_result, prompt_tokens),
	FIELD(copro_gen_result, gen_tokens),
	FIELD(copro_gen_result, cached_tokens),
	FIELD(copro_gen_result, text_bytes),
	FIELD(copro_gen_result, ttft_ns),
	FIELD(copro_gen_result, tpot_ns),
	FIELD(copro_gen_result, total_ns),
	FIELD(copro_gen_result, preemptions),
	FIELD(copro_gen_result, resv0),
	FIELD(copro_gen_result, resv1),

	STRUCT(copro_sqe),
	FIELD(copro_sqe, opcode),
	FIELD(copro_sqe, flags),
	FIELD(copro_sqe, priority),
	FIELD(copro_sqe, model),
	FIELD(copro_sqe, user_data),
	FIELD(copro_sqe, deadline_ns),
	FIELD(copro_sqe, desc_off),
	FIELD(copro_sqe, n_in),
	FIELD(copro_sqe, n_out),
	FIELD(copro_sqe, resv0),
	FIELD(copro_sqe, aux),
	FIELD(copro_sqe, resv1),

	STRUCT(copro_cqe),
	FIELD(copro_cqe, user_data),
	FIELD(copro_cqe, res),
	FIELD(copro_cqe, flags),
	FIELD(copro_cqe, queue_ns),
	FIELD(copro_cqe, exec_ns),
	FIELD(copro_cqe, aux),

	STRUCT(copro_tensor_desc),
	FIELD(copro_tensor_desc, dtype),
	FIELD(copro_tensor_desc, rank),
	FIELD(copro_tensor_desc, flags),
	FIELD(copro_tensor_desc, resv0),
	FIELD(copro_tensor_desc, offset),
	FIELD(copro_tensor_desc, length),
	FIELD(copro_tensor_desc, dims),
	FIELD(copro_tensor_desc, resv1),

	STRUCT(copro_msg_hdr),
	FIELD(copro_msg_hdr, type),
	FIELD(copro_msg_hdr, len),
	FIELD(copro_msg_hdr, seq),

	STRUCT(copro_msg_hello),
	FIELD(copro_msg_hello, hdr),
	FIELD(copro_msg_hello, abi_major),
	FIELD(copro_msg_hello, abi_minor),
	FIELD(copro_msg_hello, flags),
	FIELD(copro_msg_hello, sq_entries),
	FIELD(copro_msg_hello, cq_entries),
	FIELD(copro_msg_hello, arena_size),
	FIELD(copro_msg_hello, resv),

	STRUCT(copro_msg_reply),
	FIELD(copro_msg_reply, hdr),
	FIELD(copro_msg_reply, status),
	FIELD(copro_msg_reply, resv),
	FIELD(copro_msg_reply, errmsg),

	STRUCT(copro_msg_hello_reply),
	FIELD(copro_msg_hello_reply, r),
	FIELD(copro_msg_hello_reply, abi_major),
	FIELD(copro_msg_hello_reply, abi_minor),
	FIELD(copro_msg_hello_reply, client_id),
	FIELD(copro_msg_hello_reply, features),
	FIELD(copro_msg_hello_reply, region_size),

	STRUCT(copro_msg_lookup),
	FIELD(copro_msg_lookup, hdr),
	FIELD(copro_msg_lookup, name),

	STRUCT(copro_tensor_sig),
	FIELD(copro_tensor_sig, name),
	FIELD(copro_tensor_sig, dtype),
	FIELD(copro_tensor_sig, rank),
	FIELD(copro_tensor_sig, flags),
	FIELD(copro_tensor_sig, resv),
	FIELD(copro_tensor_sig, dims),

	STRUCT(copro_msg_lookup_reply),
	FIELD(copro_msg_lookup_reply, r),
	FIELD(copro_msg_lookup_reply, handle),
	FIELD(copro_msg_lookup_reply, version),
	FIELD(copro_msg_lookup_reply, n_in),
	FIELD(copro_msg_lookup_reply, n_out),
	FIELD(copro_msg_lookup_reply, max_in),
	FIELD(copro_msg_lookup_reply, max_out),
	FIELD(copro_msg_lookup_reply, sig),

	STRUCT(copro_msg_ping_reply),
	FIELD(copro_msg_ping_reply, r),
	FIELD(copro_msg_ping_reply, server_epoch),
	FIELD(copro_msg_ping_reply, server_ns),
	FIELD(copro_msg_ping_reply, pid),
	FIELD(copro_msg_ping_reply, resv),
};

#define GOLDEN_MAX	(64 * 1024)

/*
 * Prints the layout table as text: a "struct NAME size N" line opening each
 * struct, then "NAME.FIELD offset O size S" per field. Returns the length.
 */
static size_t abi_print(char *buf, size_t len)
{
	size_t n = 0;

	n += (size_t)snprintf(buf + n, len - n,
		"# copro ABI layout: every shared field's offset and size in bytes.\n"
		"# Generated by tests/test_layout.c; after a reviewed ABI change, regenerate\n"
		"# with COPRO_UPDATE_GOLDEN=1 build/tests/test_layout (from the source tree).\n");
	for (size_t i = 0; i < sizeof(abi_rows) / sizeof(abi_rows[0]); i++) {
		const struct abi_row *r = &abi_rows[i];

		assert_true(n < len);
		if (!r->field)
			n += (size_t)snprintf(buf + n, len - n, "%sstruct %s size %zu\n",
					      i ? "\n" : "", r->type, r->size);
		else
			n += (size_t)snprintf(buf + n, len - n, "%s.%s offset %zu size %zu\n",
					      r->type, r->field, r->off, r->size);
	}
	assert_true(n < len);
	return n;
}

static void golden_path(char *buf, size_t len)
{
	const char *dir = getenv("COPRO_SRCDIR");

	if (!dir || !*dir)
		dir = ".";
	assert_true((size_t)snprintf(buf, len, "%s/tests/abi_layout.golden", dir) < len);
}

/* Splits text into at most max lines in place; returns the count. */
static size_t split_lines(char *text, char **lines, size_t max)
{
	size_t n = 0;
	char *p = text;

	while (*p && n < max) {
		char *nl = strchr(p, '\n');

		lines[n++] = p;
		if (!nl)
			break;
		*nl = '\0';
		p = nl + 1;
	}
	return n;
}

/*
 * Prints a line diff of golden (a) against the build (b) on stderr, in the
 * form of `diff -u` hunks without headers: "-" lines are only in the golden
 * file, "+" lines only in this build. Longest common subsequence, which is
 * plenty for a few hundred lines.
 */
static void print_diff(char *a_text, char *b_text)
{
	enum { MAXL = 1024 };
	char **a = calloc(MAXL, sizeof(*a)), **b = calloc(MAXL, sizeof(*b));
	size_t na, nb, i, j;
	uint16_t *lcs;

	assert_non_null(a);
	assert_non_null(b);
	na = split_lines(a_text, a, MAXL);
	nb = split_lines(b_text, b, MAXL);
	lcs = calloc((na + 1) * (nb + 1), sizeof(*lcs));
	assert_non_null(lcs);
#define L(x, y) lcs[(x) * (nb + 1) + (y)]
	for (i = na; i-- > 0;)
		for (j = nb; j-- > 0;)
			L(i, j) = !strcmp(a[i], b[j]) ? L(i + 1, j + 1) + 1 :
				  L(i + 1, j) > L(i, j + 1) ? L(i + 1, j) : L(i, j + 1);
	fprintf(stderr, "--- tests/abi_layout.golden\n+++ this build\n");
	i = j = 0;
	while (i < na || j < nb) {
		int in_hunk = 0;

		if (i < na && j < nb && !strcmp(a[i], b[j])) {
			i++;
			j++;
			continue;
		}
		/* One hunk: deletions first, then additions, up to the next common line. */
		while (i < na || j < nb) {
			if (i < na && j < nb && !strcmp(a[i], b[j]))
				break;
			if (!in_hunk++)
				fprintf(stderr, "@@ golden line %zu, build line %zu @@\n",
					i + 1, j + 1);
			if (i < na && (j == nb || L(i + 1, j) >= L(i, j + 1)))
				fprintf(stderr, "-%s\n", a[i++]);
			else
				fprintf(stderr, "+%s\n", b[j++]);
		}
	}
#undef L
	free(lcs);
	free(a);
	free(b);
}

static void should_match_abi_golden_file(void **state)
{
	static char now[GOLDEN_MAX], golden[GOLDEN_MAX + 1];
	char path[4096];
	size_t n, g;
	const char *update = getenv("COPRO_UPDATE_GOLDEN");
	FILE *f;

	n = abi_print(now, GOLDEN_MAX);
	golden_path(path, sizeof(path));

	if (update && !strcmp(update, "1")) {
		f = fopen(path, "w");
		if (!f)
			fail_msg("cannot write %s: %s", path, strerror(errno));
		assert_int_equal(fwrite(now, 1, n, f), n);
		assert_int_equal(fclose(f), 0);
		fprintf(stderr, "wrote %s (%zu bytes)\n", path, n);
		return;
	}

	f = fopen(path, "r");
	if (!f)
		fail_msg("cannot read %s: %s (set COPRO_SRCDIR to the source tree)", path,
			 strerror(errno));
	g = fread(golden, 1, GOLDEN_MAX + 1, f);
	fclose(f);
	assert_true(g <= GOLDEN_MAX);
	golden[g] = '\0';
	if (g != n || memcmp(golden, now, n)) {
		fprintf(stderr, "ABI layout differs from %s:\n", path);
		print_diff(golden, now);
		fprintf(stderr, "If the change is intended (and the ABI version bumped), "
				"regenerate with COPRO_UPDATE_GOLDEN=1.\n");
		fail_msg("ABI layout does not match the golden file");
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_compute_requested_power_of_two_sizes),
		cmocka_unit_test(should_place_parts_in_order_without_overlap),
		cmocka_unit_test(should_round_ring_sizes_up_to_powers_of_two),
		cmocka_unit_test(should_clamp_sq_to_min_and_max),
		cmocka_unit_test(should_default_cq_to_twice_sq),
		cmocka_unit_test(should_raise_cq_to_at_least_sq),
		cmocka_unit_test(should_clamp_cq_to_max),
		cmocka_unit_test(should_raise_arena_to_minimum_and_round_to_pages),
		cmocka_unit_test(should_accept_largest_arena),
		cmocka_unit_test(should_reject_oversized_arena),
		cmocka_unit_test(should_reject_zero_sizes),
		cmocka_unit_test(should_accept_computed_layout),
		cmocka_unit_test(should_accept_every_computed_layout),
		cmocka_unit_test(should_write_identity_into_sb),
		cmocka_unit_test(should_accept_newer_abi_minor),
		cmocka_unit_test(should_reject_bad_magic),
		cmocka_unit_test(should_reject_other_abi_major),
		cmocka_unit_test(should_reject_wrong_sb_size),
		cmocka_unit_test(should_reject_file_smaller_than_sb),
		cmocka_unit_test(should_reject_region_size_other_than_file_size),
		cmocka_unit_test(should_reject_ring_entries_not_power_of_two),
		cmocka_unit_test(should_reject_wrong_entry_size),
		cmocka_unit_test(should_reject_head_and_tail_on_one_cache_line),
		cmocka_unit_test(should_reject_misaligned_ring_offsets),
		cmocka_unit_test(should_reject_sq_entries_outside_file),
		cmocka_unit_test(should_reject_cq_index_outside_file),
		cmocka_unit_test(should_reject_ring_index_before_its_part),
		cmocka_unit_test(should_reject_ring_inside_superblock),
		cmocka_unit_test(should_reject_arena_outside_file),
		cmocka_unit_test(should_reject_arena_inside_superblock),
		cmocka_unit_test(should_reject_empty_arena),
		cmocka_unit_test(should_reject_sq_overlapping_cq),
		cmocka_unit_test(should_reject_cq_overlapping_sq),
		cmocka_unit_test(should_reject_arena_overlapping_rings),
		cmocka_unit_test(should_reject_ring_index_inside_arena),
		cmocka_unit_test(should_reject_ring_entries_over_index_words),
		cmocka_unit_test(should_match_abi_golden_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
