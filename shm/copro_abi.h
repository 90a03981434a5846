/* SPDX-License-Identifier: MIT */
/*
 * copro_abi.h - the shared-memory ABI between coprod and its clients.
 *
 * This header is the one contract both sides map. Everything in it is
 * fixed-width, little-endian (the host's), pointer-free and padded by hand:
 * offsets are relative to the start of the region, never addresses.
 *
 * A client's region is one sealed memfd laid out as:
 *
 *   +--------------------+ 0
 *   | superblock         |  struct copro_sb, one 4 KiB page
 *   +--------------------+ sq.off
 *   | SQ producer line   |  u32 tail  (client writes, server reads)
 *   | SQ consumer line   |  u32 head  (server writes, client reads)
 *   | SQ entries         |  sq.ring_entries x struct copro_sqe (64 B)
 *   +--------------------+ cq.off
 *   | CQ producer line   |  u32 tail  (server writes, client reads)
 *   | CQ consumer line   |  u32 head  (client writes, server reads)
 *   | CQ entries         |  cq.ring_entries x struct copro_cqe (32 B)
 *   +--------------------+ arena_off
 *   | tensor arena       |  client-managed; tensor data and descriptors
 *   +--------------------+ region_size
 *
 * The superblock's offset table is authoritative: a client reads the offsets
 * instead of computing them, so a later server may move parts around.
 * Versioning: a change of ABI major is incompatible and refused at the
 * handshake; a minor bump only adds (new features bits, reserved fields
 * given meaning) and old peers keep working. Reserved fields are zero and
 * the server rejects a submission whose reserved fields are not.
 */
#ifndef COPRO_ABI_H
#define COPRO_ABI_H

#include <stddef.h>
#include <stdint.h>

#define COPRO_ABI_MAGIC		0x4d48534f52504f43ULL	/* "COPROSHM" */
#define COPRO_ABI_MAJOR		1
#define COPRO_ABI_MINOR		1	/* 1: COPRO_OP_GENERATE */

#define COPRO_CACHELINE		64
#define COPRO_SB_SIZE		4096
#define COPRO_MAX_RANK		8
#define COPRO_MAX_TENSORS	16	/* inputs + outputs of one request */
#define COPRO_ARENA_ALIGN	64

/*
 * Completion and call results: copro-specific error codes, negative like
 * -errno and outside its range. A completion's res is >= 0, one of these,
 * or a negative errno value.
 */
#define COPRO_E_BASE		1000
#define COPRO_E_DISCONNECTED	(-1001)	/* daemon gone or connection lost */
#define COPRO_E_ABI		(-1002)	/* ABI major mismatch with the daemon */
#define COPRO_E_PROTO		(-1003)	/* malformed message or region */
#define COPRO_E_NOMODEL		(-1004)	/* no such model / handle */
#define COPRO_E_SIGNATURE	(-1005)	/* tensors do not match the model */
#define COPRO_E_RANGE		(-1006)	/* tensor outside the arena */
#define COPRO_E_BADSQE		(-1007)	/* bad opcode, flags or reserved fields */
#define COPRO_E_DEADLINE	(-1008)	/* deadline passed or cannot be met */
#define COPRO_E_OVERLOAD	(-1009)	/* queue full: refused at once */
#define COPRO_E_CANCELLED	(-1010)	/* cancelled by the client */
#define COPRO_E_DENIED		(-1011)	/* credentials not allowed */
#define COPRO_E_NOMEM		(-1012)	/* arena exhausted */
#define COPRO_E_SHUTDOWN	(-1013)	/* daemon is draining */
#define COPRO_E_LAST		1013

/* Feature bits the server offers (copro_sb.features). */
#define COPRO_FEAT_NEED_WAKEUP	(1ULL << 0)	/* sq_flags NEED_WAKEUP protocol */
#define COPRO_FEAT_CQ_WAITING	(1ULL << 1)	/* cq_flags WAITING protocol */
#define COPRO_FEAT_CANCEL	(1ULL << 2)	/* COPRO_OP_CANCEL */
#define COPRO_FEAT_DEADLINE	(1ULL << 3)	/* sqe.deadline_ns honoured */
#define COPRO_FEAT_GENERATE	(1ULL << 4)	/* COPRO_OP_GENERATE (ABI 1.1) */

/* Server-written flags (copro_sb.sq_flags). */
#define COPRO_SQ_NEED_WAKEUP	(1U << 0)	/* poller sleeps: ring sq doorbell */
#define COPRO_SQ_BROKEN		(1U << 1)	/* protocol violation: session dead */

/* Client-written flags (copro_sb.cq_flags). */
#define COPRO_CQ_WAITING	(1U << 0)	/* client sleeps: ring cq doorbell */

/* Element types of a tensor (copro_tensor_desc.dtype). 0 is invalid. */
#define COPRO_DT_F32		1
#define COPRO_DT_F16		2
#define COPRO_DT_BF16		3
#define COPRO_DT_I8		4
#define COPRO_DT_U8		5
#define COPRO_DT_I32		6
#define COPRO_DT_I64		7
#define COPRO_DT_MAX		7

/* Submission opcodes (copro_sqe.opcode). */
#define COPRO_OP_NOP		0	/* completes at once with res 0, no model */
#define COPRO_OP_INFER		1	/* run model on inputs into outputs */
#define COPRO_OP_CANCEL		2	/* cancel the request whose user_data is sqe.aux */
#define COPRO_OP_GENERATE	3	/* a language model continues a prompt (ABI 1.1) */
#define COPRO_OP_MAX		3

/* Submission flags (copro_sqe.flags). None defined yet: must be zero. */
#define COPRO_SQE_F_VALID	0x00U

/* Completion flags (copro_cqe.flags). */
#define COPRO_CQE_F_MORE	(1U << 0)	/* more completions follow for this request */
#define COPRO_CQE_F_NOTIF	(1U << 1)	/* acknowledges a CANCEL; user_data = its target */

/*
 * Where one ring lives: all fields are byte offsets from the region base,
 * except ring_entries (a power of two) and entry_size.
 */
struct copro_ring_off {
	uint32_t off;		/* start of the ring part (producer line) */
	uint32_t tail;		/* u32 tail, written by the producer */
	uint32_t head;		/* u32 head, written by the consumer */
	uint32_t entries;	/* first entry */
	uint32_t ring_entries;	/* number of entries, power of two */
	uint32_t entry_size;	/* bytes per entry */
	uint32_t resv[2];
};

/*
 * The superblock, at offset 0. Lines 0-2 are written once by the server
 * before the memfd is handed over and never again; line 3 is written by the
 * server only, line 4 by the client only, so neither side bounces the
 * other's cache line on the fast path.
 */
struct copro_sb {
	/* line 0: identity, read-only */
	uint64_t magic;		/* COPRO_ABI_MAGIC, stored last (release) */
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t sb_size;	/* sizeof(struct copro_sb) */
	uint64_t features;	/* COPRO_FEAT_* */
	uint64_t region_size;	/* bytes of the whole memfd */
	uint64_t server_epoch;	/* changes every time coprod starts */
	uint32_t client_id;	/* the server's name for this session */
	uint32_t resv0;
	uint64_t resv1[2];

	/* line 1: ring offset table, read-only */
	struct copro_ring_off sq;
	struct copro_ring_off cq;

	/* line 2: arena, read-only */
	uint64_t arena_off;
	uint64_t arena_size;
	uint64_t resv2[6];

	/* line 3: server-written, client-read */
	uint32_t sq_flags;	/* COPRO_SQ_* */
	uint32_t resv3;
	uint64_t heartbeat_ns;	/* server CLOCK_MONOTONIC, refreshed periodically */
	uint64_t resv4[6];

	/* line 4: client-written, server-read */
	uint32_t cq_flags;	/* COPRO_CQ_* */
	uint32_t resv5;
	uint64_t resv6[7];

	uint8_t pad[COPRO_SB_SIZE - 5 * COPRO_CACHELINE];
};

/*
 * A tensor in the arena. Data lives at [offset, offset + length) of the
 * arena (offsets are arena-relative). length must equal the product of dims
 * times the element size. Dims beyond rank are zero.
 */
struct copro_tensor_desc {
	uint8_t dtype;		/* COPRO_DT_* */
	uint8_t rank;		/* 0..COPRO_MAX_RANK */
	uint16_t flags;		/* must be zero */
	uint32_t resv0;		/* must be zero */
	uint64_t offset;	/* arena-relative, COPRO_ARENA_ALIGN aligned not required */
	uint64_t length;	/* bytes */
	uint64_t dims[COPRO_MAX_RANK];
	uint64_t resv1;		/* must be zero */
};

/*
 * A submission entry, 64 bytes. For COPRO_OP_INFER the arena holds, at
 * desc_off, n_in input descriptors followed by n_out output descriptors.
 * The server copies the entry and its descriptors out of shared memory
 * before it advances the SQ head, so the client may reuse both as soon as
 * the head has passed the entry.
 */
struct copro_sqe {
	uint8_t opcode;		/* COPRO_OP_* */
	uint8_t flags;		/* COPRO_SQE_F_* */
	uint16_t priority;	/* higher runs first */
	uint32_t model;		/* handle from lookup */
	uint64_t user_data;	/* echoed in the completion */
	uint64_t deadline_ns;	/* absolute CLOCK_MONOTONIC; 0 = none */
	uint64_t desc_off;	/* arena-relative offset of descriptors */
	uint16_t n_in;
	uint16_t n_out;
	uint32_t resv0;		/* must be zero */
	uint64_t aux;		/* op-specific: CANCEL target user_data */
	uint64_t resv1[2];	/* must be zero */
};

/*
 * A completion entry, 32 bytes. res is >= 0 on success, a negative
 * COPRO_E_* or -errno code on failure.
 */
struct copro_cqe {
	uint64_t user_data;
	int32_t res;
	uint32_t flags;		/* COPRO_CQE_F_* */
	uint32_t queue_ns;	/* admitted -> started, saturating */
	uint32_t exec_ns;	/* started -> completed, saturating */
	uint64_t aux;		/* op-specific, zero for INFER */
};

/*
 * Generation (COPRO_OP_GENERATE, feature COPRO_FEAT_GENERATE). The arena
 * holds at desc_off, in this order (n_in 2, n_out 3 or 4):
 *
 *   in[0]   the prompt, rank 1: U8 UTF-8 text, or I32 token ids when
 *           params.flags has COPRO_GEN_F_IDS
 *   in[1]   U8 [sizeof(struct copro_gen_params)]: the parameters
 *   out[0]  I32 [n >= params.max_tokens, 2]: for each generated token, its
 *           id and the length of out[1] once its text is in (so a token's
 *           text is out[1] from the previous token's length to its own)
 *   out[1]  U8 [m]: the generated text, appended as it is decoded (whole
 *           UTF-8 characters only); generation ends with
 *           COPRO_FINISH_LENGTH when the next piece would not fit
 *   out[2]  U8 [sizeof(struct copro_gen_result)]: written before the last
 *           completion
 *   out[3]  optional (n_out 4), I32 [p]: the prompt's token ids as the model
 *           reads them (tokenized, BOS added, truncated), the first p of
 *           them, written before the first token's completion;
 *           result.prompt_tokens says how many there were
 *
 * Completions: while the sequence runs, entries flagged COPRO_CQE_F_MORE,
 * res = tokens written to out[0] so far, aux = bytes written to out[1] so
 * far. When the client's CQ is short of room, one entry covers several
 * tokens (no token is lost: they are all in out[0]). The last entry has no
 * MORE flag: res = tokens generated, or a negative code; aux = the
 * COPRO_FINISH_* reason. Everything the counts cover is in the arena
 * before the entry is published.
 */
#define COPRO_GEN_F_IDS		(1U << 0)	/* in[0] holds I32 token ids */
#define COPRO_GEN_F_NO_BOS	(1U << 1)	/* do not add BOS to a text prompt */
#define COPRO_GEN_F_IGNORE_EOS	(1U << 2)	/* generate through EOS */
#define COPRO_GEN_F_TRUNCATE	(1U << 3)	/* keep the prompt's tail if too long */
#define COPRO_GEN_F_VALID	0x0fU

#define COPRO_GEN_STOP_IDS	8
#define COPRO_GEN_STOP_STRS	4
#define COPRO_GEN_STOP_LEN	32	/* bytes per stop string, NUL included */

struct copro_gen_params {
	uint32_t max_tokens;	/* >= 1 */
	uint32_t flags;		/* COPRO_GEN_F_* */
	float temperature;	/* 0 = greedy; [0, 100] */
	uint32_t top_k;		/* 0 = off */
	float top_p;		/* (0, 1]; 1 = off */
	float min_p;		/* [0, 1); 0 = off */
	float repeat_penalty;	/* > 0; 1 = off */
	uint32_t repeat_last_n;	/* tokens penalized; 0 = off */
	uint64_t seed;		/* same seed, same tokens */
	uint32_t n_stop_ids;	/* <= COPRO_GEN_STOP_IDS */
	int32_t stop_ids[COPRO_GEN_STOP_IDS];
	uint32_t resv0;		/* must be zero */
	char stop[COPRO_GEN_STOP_STRS][COPRO_GEN_STOP_LEN];	/* NUL-terminated; "" unused */
	uint64_t resv1[6];	/* must be zero */
};

/* How a generation ended (the last completion's aux, result.finish). */
#define COPRO_FINISH_STOP	1	/* EOS, a stop token or a stop string */
#define COPRO_FINISH_LENGTH	2	/* max_tokens, the context or out[1] is full */
#define COPRO_FINISH_CANCELLED	3
#define COPRO_FINISH_ERROR	4	/* res says why */

struct copro_gen_result {
	uint32_t finish;	/* COPRO_FINISH_* */
	int32_t error;		/* 0, or the code that ended it */
	uint32_t prompt_tokens;
	uint32_t gen_tokens;
	uint32_t cached_tokens;	/* prompt tokens found in the prefix cache */
	uint32_t text_bytes;
	uint64_t ttft_ns;	/* admitted -> first token */
	uint64_t tpot_ns;	/* mean time per output token after the first */
	uint64_t total_ns;	/* admitted -> last token */
	uint32_t preemptions;
	uint32_t resv0;
	uint64_t resv1;
};

/* Compile-time layout checks: the ABI must not move by accident. */
#define COPRO_ABI_CHECK(type, field, off, size)					\
	_Static_assert(offsetof(struct type, field) == (off),			\
		       #type "." #field " offset");				\
	_Static_assert(sizeof(((struct type *)0)->field) == (size),		\
		       #type "." #field " size")

COPRO_ABI_CHECK(copro_ring_off, off, 0, 4);
COPRO_ABI_CHECK(copro_ring_off, tail, 4, 4);
COPRO_ABI_CHECK(copro_ring_off, head, 8, 4);
COPRO_ABI_CHECK(copro_ring_off, entries, 12, 4);
COPRO_ABI_CHECK(copro_ring_off, ring_entries, 16, 4);
COPRO_ABI_CHECK(copro_ring_off, entry_size, 20, 4);
COPRO_ABI_CHECK(copro_ring_off, resv, 24, 8);
_Static_assert(sizeof(struct copro_ring_off) == 32, "copro_ring_off size");

COPRO_ABI_CHECK(copro_gen_params, max_tokens, 0, 4);
COPRO_ABI_CHECK(copro_gen_params, flags, 4, 4);
COPRO_ABI_CHECK(copro_gen_params, temperature, 8, 4);
COPRO_ABI_CHECK(copro_gen_params, top_k, 12, 4);
COPRO_ABI_CHECK(copro_gen_params, top_p, 16, 4);
COPRO_ABI_CHECK(copro_gen_params, min_p, 20, 4);
COPRO_ABI_CHECK(copro_gen_params, repeat_penalty, 24, 4);
COPRO_ABI_CHECK(copro_gen_params, repeat_last_n, 28, 4);
COPRO_ABI_CHECK(copro_gen_params, seed, 32, 8);
COPRO_ABI_CHECK(copro_gen_params, n_stop_ids, 40, 4);
COPRO_ABI_CHECK(copro_gen_params, stop_ids, 44, 32);
COPRO_ABI_CHECK(copro_gen_params, resv0, 76, 4);
COPRO_ABI_CHECK(copro_gen_params, stop, 80, 128);
COPRO_ABI_CHECK(copro_gen_params, resv1, 208, 48);
_Static_assert(sizeof(struct copro_gen_params) == 256, "copro_gen_params size");

COPRO_ABI_CHECK(copro_gen_result, finish, 0, 4);
COPRO_ABI_CHECK(copro_gen_result, error, 4, 4);
COPRO_ABI_CHECK(copro_gen_result, prompt_tokens, 8, 4);
COPRO_ABI_CHECK(copro_gen_result, gen_tokens, 12, 4);
COPRO_ABI_CHECK(copro_gen_result, cached_tokens, 16, 4);
COPRO_ABI_CHECK(copro_gen_result, text_bytes, 20, 4);
COPRO_ABI_CHECK(copro_gen_result, ttft_ns, 24, 8);
COPRO_ABI_CHECK(copro_gen_result, tpot_ns, 32, 8);
COPRO_ABI_CHECK(copro_gen_result, total_ns, 40, 8);
COPRO_ABI_CHECK(copro_gen_result, preemptions, 48, 4);
COPRO_ABI_CHECK(copro_gen_result, resv0, 52, 4);
COPRO_ABI_CHECK(copro_gen_result, resv1, 56, 8);
_Static_assert(sizeof(struct copro_gen_result) == 64, "copro_gen_result size");

COPRO_ABI_CHECK(copro_sb, magic, 0, 8);
COPRO_ABI_CHECK(copro_sb, abi_major, 8, 2);
COPRO_ABI_CHECK(copro_sb, abi_minor, 10, 2);
COPRO_ABI_CHECK(copro_sb, sb_size, 12, 4);
COPRO_ABI_CHECK(copro_sb, features, 16, 8);
COPRO_ABI_CHECK(copro_sb, region_size, 24, 8);
COPRO_ABI_CHECK(copro_sb, server_epoch, 32, 8);
COPRO_ABI_CHECK(copro_sb, client_id, 40, 4);
COPRO_ABI_CHECK(copro_sb, resv0, 44, 4);
COPRO_ABI_CHECK(copro_sb, resv1, 48, 16);
COPRO_ABI_CHECK(copro_sb, sq, 64, 32);
COPRO_ABI_CHECK(copro_sb, cq, 96, 32);
COPRO_ABI_CHECK(copro_sb, arena_off, 128, 8);
COPRO_ABI_CHECK(copro_sb, arena_size, 136, 8);
COPRO_ABI_CHECK(copro_sb, resv2, 144, 48);
COPRO_ABI_CHECK(copro_sb, sq_flags, 192, 4);
COPRO_ABI_CHECK(copro_sb, resv3, 196, 4);
COPRO_ABI_CHECK(copro_sb, heartbeat_ns, 200, 8);
COPRO_ABI_CHECK(copro_sb, resv4, 208, 48);
COPRO_ABI_CHECK(copro_sb, cq_flags, 256, 4);
COPRO_ABI_CHECK(copro_sb, resv5, 260, 4);
COPRO_ABI_CHECK(copro_sb, resv6, 264, 56);
COPRO_ABI_CHECK(copro_sb, pad, 320, COPRO_SB_SIZE - 320);
_Static_assert(sizeof(struct copro_sb) == COPRO_SB_SIZE, "copro_sb size");

COPRO_ABI_CHECK(copro_tensor_desc, dtype, 0, 1);
COPRO_ABI_CHECK(copro_tensor_desc, rank, 1, 1);
COPRO_ABI_CHECK(copro_tensor_desc, flags, 2, 2);
COPRO_ABI_CHECK(copro_tensor_desc, resv0, 4, 4);
COPRO_ABI_CHECK(copro_tensor_desc, offset, 8, 8);
COPRO_ABI_CHECK(copro_tensor_desc, length, 16, 8);
COPRO_ABI_CHECK(copro_tensor_desc, dims, 24, 64);
COPRO_ABI_CHECK(copro_tensor_desc, resv1, 88, 8);
_Static_assert(sizeof(struct copro_tensor_desc) == 96, "copro_tensor_desc size");

COPRO_ABI_CHECK(copro_sqe, opcode, 0, 1);
COPRO_ABI_CHECK(copro_sqe, flags, 1, 1);
COPRO_ABI_CHECK(copro_sqe, priority, 2, 2);
COPRO_ABI_CHECK(copro_sqe, model, 4, 4);
COPRO_ABI_CHECK(copro_sqe, user_data, 8, 8);
COPRO_ABI_CHECK(copro_sqe, deadline_ns, 16, 8);
COPRO_ABI_CHECK(copro_sqe, desc_off, 24, 8);
COPRO_ABI_CHECK(copro_sqe, n_in, 32, 2);
COPRO_ABI_CHECK(copro_sqe, n_out, 34, 2);
COPRO_ABI_CHECK(copro_sqe, resv0, 36, 4);
COPRO_ABI_CHECK(copro_sqe, aux, 40, 8);
COPRO_ABI_CHECK(copro_sqe, resv1, 48, 16);
_Static_assert(sizeof(struct copro_sqe) == 64, "copro_sqe size");

COPRO_ABI_CHECK(copro_cqe, user_data, 0, 8);
COPRO_ABI_CHECK(copro_cqe, res, 8, 4);
COPRO_ABI_CHECK(copro_cqe, flags, 12, 4);
COPRO_ABI_CHECK(copro_cqe, queue_ns, 16, 4);
COPRO_ABI_CHECK(copro_cqe, exec_ns, 20, 4);
COPRO_ABI_CHECK(copro_cqe, aux, 24, 8);
_Static_assert(sizeof(struct copro_cqe) == 32, "copro_cqe size");

/* Bytes per element of a dtype, or 0 for an invalid dtype. */
static inline uint32_t copro_dtype_size(uint32_t dtype)
{
	static const uint8_t sz[COPRO_DT_MAX + 1] = { 0, 4, 2, 2, 1, 1, 4, 8 };

	return dtype <= COPRO_DT_MAX ? sz[dtype] : 0;
}

#endif /* COPRO_ABI_H */
