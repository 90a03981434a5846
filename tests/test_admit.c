// SPDX-License-Identifier: MIT
/*
 * test_admit.c - admission of submissions (server/admit.c) against the
 * built-in registry, and the echo model's copy.
 *
 * Every test builds a submission the way a client would: descriptors at
 * DESC_OFF of a private arena, tensors further on, then one field broken.
 * Each bad input must come back with the completion code the contract names
 * for it (docs/CONTRACTS.md), never a crash and never acceptance.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "admit.h"
#include "copro_abi.h"
#include "registry.h"

#define ARENA_SIZE	(64 * 1024)
#define DESC_OFF	0
#define IN_OFF		4096
#define OUT_OFF		8192

struct fx {
	struct copro_registry reg;
	uint8_t *arena;			/* (ARENA_SIZE) bytes */
	uint32_t echo, noop;		/* handles */
	struct copro_sqe sqe;
	struct copro_tensor_desc desc[COPRO_MAX_TENSORS];
	struct copro_job job;
};

static int setup(void **state)
{
	struct fx *f = calloc(1, sizeof(*f));

	if (!f)
		return -1;
	f->arena = aligned_alloc(64, ARENA_SIZE);
	if (!f->arena) {
		free(f);
		return -1;
	}
	memset(f->arena, 0, ARENA_SIZE);
	copro_registry_init(&f->reg);
	f->echo = copro_registry_find(&f->reg, "echo")->handle;
	f->noop = copro_registry_find(&f->reg, "noop")->handle;
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fx *f = *state;

	free(f->arena);
	free(f);
	return 0;
}

/* A descriptor of dtype with the given dims, its length computed, at off. */
static struct copro_tensor_desc mkdesc(uint8_t dtype, uint8_t rank, const uint64_t *dims,
				       uint64_t off)
{
	struct copro_tensor_desc d;
	uint64_t n = 1;

	memset(&d, 0, sizeof(d));
	d.dtype = dtype;
	d.rank = rank;
	d.offset = off;
	for (uint8_t i = 0; i < rank && i < COPRO_MAX_RANK; i++) {
		d.dims[i] = dims[i];
		n *= dims[i];
	}
	d.length = n * copro_dtype_size(dtype);
	return d;
}

/* An echo request with one f32 (2, 3) input at IN_OFF and its output at OUT_OFF. */
static void echo_request(struct fx *f)
{
	static const uint64_t dims[] = { 2, 3 };

	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = COPRO_OP_INFER;
	f->sqe.model = f->echo;
	f->sqe.user_data = 42;
	f->sqe.desc_off = DESC_OFF;
	f->sqe.n_in = 1;
	f->sqe.n_out = 1;
	memset(f->desc, 0, sizeof(f->desc));
	f->desc[0] = mkdesc(COPRO_DT_F32, 2, dims, IN_OFF);
	f->desc[1] = mkdesc(COPRO_DT_F32, 2, dims, OUT_OFF);
}

/* Writes the descriptors into the arena at desc_off and admits the SQE. */
static int admit(struct fx *f)
{
	uint32_t n = (uint32_t)f->sqe.n_in + f->sqe.n_out;

	if (n > COPRO_MAX_TENSORS)
		n = COPRO_MAX_TENSORS;
	if (f->sqe.desc_off < ARENA_SIZE &&
	    n * sizeof(struct copro_tensor_desc) <= ARENA_SIZE - f->sqe.desc_off)
		memcpy(f->arena + f->sqe.desc_off, f->desc, n * sizeof(struct copro_tensor_desc));
	return copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job);
}

static int admit_echo_with(struct fx *f, void (*mutate)(struct fx *f))
{
	echo_request(f);
	mutate(f);
	return admit(f);
}

/* ---- accepted requests ----------------------------------------------------------- */

static void should_accept_valid_echo_request(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	assert_int_equal(admit(f), 0);
	assert_ptr_equal(f->job.model, copro_registry_get(&f->reg, f->echo));
	assert_memory_equal(&f->job.sqe, &f->sqe, sizeof(f->sqe));
	assert_memory_equal(f->job.desc, f->desc, 2 * sizeof(f->desc[0]));
}

static void should_work_on_private_copy_of_descriptors(void **state)
{
	struct fx *f = *state;
	struct copro_tensor_desc *shared = (struct copro_tensor_desc *)(f->arena + DESC_OFF);

	echo_request(f);
	assert_int_equal(admit(f), 0);
	/* The client rewrites the shared table after admission: the job keeps its copy. */
	shared[0].offset = ARENA_SIZE * 2;
	shared[1].length = 1;
	assert_int_equal(f->job.desc[0].offset, IN_OFF);
	assert_int_equal(f->job.desc[1].length, 24);
}

static void should_accept_echo_with_eight_pairs_of_mixed_dtypes(void **state)
{
	struct fx *f = *state;
	static const uint64_t dims[] = { 4, 4 };

	echo_request(f);
	f->sqe.n_in = f->sqe.n_out = 8;
	for (uint32_t i = 0; i < 8; i++) {
		uint8_t dt = (uint8_t)(1 + i % COPRO_DT_MAX);

		f->desc[i] = mkdesc(dt, 2, dims, IN_OFF + i * 256);
		f->desc[8 + i] = mkdesc(dt, 2, dims, OUT_OFF + i * 256);
	}
	assert_int_equal(admit(f), 0);
}

static void should_accept_noop_with_no_tensors(void **state)
{
	struct fx *f = *state;

	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = COPRO_OP_INFER;
	f->sqe.model = f->noop;
	assert_int_equal(admit(f), 0);
	assert_ptr_equal(f->job.model, copro_registry_get(&f->reg, f->noop));
}

static void should_accept_noop_with_sixteen_unrelated_tensors(void **state)
{
	struct fx *f = *state;
	static const uint64_t dims[] = { 3, 5, 7 };

	echo_request(f);
	f->sqe.model = f->noop;
	f->sqe.n_in = 10;
	f->sqe.n_out = 6;
	for (uint32_t i = 0; i < 16; i++)
		f->desc[i] = mkdesc((uint8_t)(1 + i % COPRO_DT_MAX), (uint8_t)(i % 4), dims,
				    IN_OFF + i * 1024);
	assert_int_equal(admit(f), 0);
}

static void should_accept_plain_nop(void **state)
{
	struct fx *f = *state;

	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = COPRO_OP_NOP;
	f->sqe.user_data = 7;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job), 0);
	assert_null(f->job.model);
}

static void should_accept_cancel_naming_its_target_in_aux(void **state)
{
	struct fx *f = *state;

	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = COPRO_OP_CANCEL;
	f->sqe.aux = 42;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job), 0);
	assert_int_equal(f->job.sqe.aux, 42);
}

static void should_accept_unaligned_descriptor_table(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->sqe.desc_off = 1001;
	assert_int_equal(admit(f), 0);
}

/* ---- bad SQE fields: COPRO_E_BADSQE --------------------------------------------- */

static void set_opcode_3(struct fx *f) { f->sqe.opcode = COPRO_OP_MAX + 1; }
static void set_opcode_255(struct fx *f) { f->sqe.opcode = 255; }
static void set_flags_1(struct fx *f) { f->sqe.flags = 1; }
static void set_flags_80(struct fx *f) { f->sqe.flags = 0x80; }
static void set_sqe_resv0(struct fx *f) { f->sqe.resv0 = 1; }
static void set_sqe_resv1_0(struct fx *f) { f->sqe.resv1[0] = 1; }
static void set_sqe_resv1_1(struct fx *f) { f->sqe.resv1[1] = 1ULL << 63; }
static void set_infer_aux(struct fx *f) { f->sqe.aux = 1; }
static void set_desc_flags(struct fx *f) { f->desc[0].flags = 1; }
static void set_desc_resv0(struct fx *f) { f->desc[1].resv0 = 1; }
static void set_desc_resv1(struct fx *f) { f->desc[0].resv1 = 1; }

static void should_reject_unknown_opcode(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_opcode_3), COPRO_E_BADSQE);
	assert_int_equal(admit_echo_with(*state, set_opcode_255), COPRO_E_BADSQE);
}

static void should_reject_unknown_flags(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_flags_1), COPRO_E_BADSQE);
	assert_int_equal(admit_echo_with(*state, set_flags_80), COPRO_E_BADSQE);
}

static void should_reject_sqe_resv0(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_sqe_resv0), COPRO_E_BADSQE);
}

static void should_reject_sqe_resv1_0(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_sqe_resv1_0), COPRO_E_BADSQE);
}

static void should_reject_sqe_resv1_1(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_sqe_resv1_1), COPRO_E_BADSQE);
}

static void should_reject_aux_on_infer(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_infer_aux), COPRO_E_BADSQE);
}

static void should_reject_desc_flags(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_desc_flags), COPRO_E_BADSQE);
}

static void should_reject_desc_resv0(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_desc_resv0), COPRO_E_BADSQE);
}

static void should_reject_desc_resv1(void **state)
{
	assert_int_equal(admit_echo_with(*state, set_desc_resv1), COPRO_E_BADSQE);
}

static void should_reject_more_than_sixteen_tensors(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->sqe.n_in = 9;
	f->sqe.n_out = 8;
	assert_int_equal(admit(f), COPRO_E_BADSQE);
	f->sqe.n_in = 17;
	f->sqe.n_out = 0;
	assert_int_equal(admit(f), COPRO_E_BADSQE);
	f->sqe.n_in = 0;
	f->sqe.n_out = 17;
	assert_int_equal(admit(f), COPRO_E_BADSQE);
	/* u16 + u16 must not wrap to something small. */
	f->sqe.n_in = UINT16_MAX;
	f->sqe.n_out = 1;
	assert_int_equal(admit(f), COPRO_E_BADSQE);
	f->sqe.n_in = UINT16_MAX;
	f->sqe.n_out = UINT16_MAX;
	assert_int_equal(admit(f), COPRO_E_BADSQE);
}

/* NOP and CANCEL carry no model and no tensors: any such field is a bad SQE. */
static void check_stray_fields(struct fx *f, uint8_t opcode)
{
	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = opcode;
	f->sqe.model = f->echo;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job),
			 COPRO_E_BADSQE);
	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = opcode;
	f->sqe.desc_off = 64;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job),
			 COPRO_E_BADSQE);
	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = opcode;
	f->sqe.n_in = 1;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job),
			 COPRO_E_BADSQE);
	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = opcode;
	f->sqe.n_out = 1;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job),
			 COPRO_E_BADSQE);
	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = opcode;
	f->sqe.priority = 1;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job),
			 COPRO_E_BADSQE);
	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = opcode;
	f->sqe.resv1[1] = 1;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job),
			 COPRO_E_BADSQE);
}

static void should_reject_nop_with_stray_fields(void **state)
{
	struct fx *f = *state;

	check_stray_fields(f, COPRO_OP_NOP);
	memset(&f->sqe, 0, sizeof(f->sqe));
	f->sqe.opcode = COPRO_OP_NOP;
	f->sqe.aux = 1;
	assert_int_equal(copro_admit(&f->sqe, f->arena, ARENA_SIZE, &f->reg, &f->job),
			 COPRO_E_BADSQE);
}

static void should_reject_cancel_with_stray_fields(void **state)
{
	check_stray_fields(*state, COPRO_OP_CANCEL);
}

/* ---- unknown models: COPRO_E_NOMODEL --------------------------------------------- */

static void should_reject_unknown_model_handles(void **state)
{
	struct fx *f = *state;
	const uint32_t bad[] = { 0, f->reg.n + 1, UINT32_MAX };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		echo_request(f);
		f->sqe.model = bad[i];
		assert_int_equal(admit(f), COPRO_E_NOMODEL);
		assert_null(f->job.model);
	}
}

/* ---- ranges: COPRO_E_RANGE ------------------------------------------------------- */

static void should_reject_descriptor_table_outside_arena(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->sqe.desc_off = ARENA_SIZE;
	assert_int_equal(admit(f), COPRO_E_RANGE);
	f->sqe.desc_off = ARENA_SIZE + 4096;
	assert_int_equal(admit(f), COPRO_E_RANGE);
	/* Starts inside, ends one descriptor past the end. */
	f->sqe.desc_off = ARENA_SIZE - sizeof(struct copro_tensor_desc);
	assert_int_equal(admit(f), COPRO_E_RANGE);
	f->sqe.desc_off = ARENA_SIZE - 2 * sizeof(struct copro_tensor_desc) + 1;
	assert_int_equal(admit(f), COPRO_E_RANGE);
}

static void should_reject_descriptor_table_offset_that_overflows(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->sqe.desc_off = UINT64_MAX;
	assert_int_equal(admit(f), COPRO_E_RANGE);
	f->sqe.desc_off = UINT64_MAX - sizeof(struct copro_tensor_desc) + 1;
	assert_int_equal(admit(f), COPRO_E_RANGE);
}

static void should_accept_descriptor_table_ending_at_arena_end(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->sqe.desc_off = ARENA_SIZE - 2 * sizeof(struct copro_tensor_desc);
	assert_int_equal(admit(f), 0);
}

static void should_reject_tensor_offset_past_the_end(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->desc[0].offset = ARENA_SIZE + 64;
	assert_int_equal(admit(f), COPRO_E_RANGE);
	echo_request(f);
	f->desc[1].offset = ARENA_SIZE;
	assert_int_equal(admit(f), COPRO_E_RANGE);
	echo_request(f);
	f->desc[1].offset = UINT64_MAX;
	assert_int_equal(admit(f), COPRO_E_RANGE);
}

static void should_reject_offset_plus_length_overflow(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	/* offset + length wraps to a small number: must not pass as in range. */
	f->desc[0].offset = 64;
	f->desc[0].length = UINT64_MAX - 32;
	assert_int_equal(admit(f), COPRO_E_RANGE);
	echo_request(f);
	f->desc[1].offset = UINT64_MAX - 10;
	f->desc[1].length = 24;
	assert_int_equal(admit(f), COPRO_E_RANGE);
}

static void should_accept_tensor_ending_exactly_at_arena_end(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->desc[1].offset = ARENA_SIZE - f->desc[1].length;
	assert_int_equal(admit(f), 0);
}

static void should_reject_tensor_ending_one_byte_past_arena_end(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->desc[1].offset = ARENA_SIZE - f->desc[1].length + 1;
	assert_int_equal(admit(f), COPRO_E_RANGE);
}

/* ---- descriptors that do not describe a tensor: COPRO_E_SIGNATURE ---------------- */

static void should_reject_length_not_matching_dims(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->desc[0].length -= 1;
	f->desc[1].length -= 1;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	echo_request(f);
	f->desc[0].length += 4;
	f->desc[1].length += 4;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	echo_request(f);
	f->desc[0].length = 6;	/* element count instead of bytes */
	f->desc[1].length = 6;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_reject_dims_product_overflow(void **state)
{
	struct fx *f = *state;
	static const uint64_t dims[] = { 1ULL << 32, 1ULL << 32, 2 };

	echo_request(f);
	f->desc[0] = mkdesc(COPRO_DT_U8, 3, dims, IN_OFF);
	f->desc[1] = f->desc[0];
	f->desc[1].offset = OUT_OFF;
	/* The wrapped product is 0: claim length 0 so only the overflow check can refuse. */
	f->desc[0].length = f->desc[1].length = 0;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	f->desc[0].length = f->desc[1].length = 64;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_reject_byte_size_overflow(void **state)
{
	struct fx *f = *state;
	static const uint64_t dims[] = { 1ULL << 62 };

	echo_request(f);
	/* 2^62 elements fit a u64; 2^62 * 4 bytes wraps to 0. */
	f->desc[0] = mkdesc(COPRO_DT_F32, 1, dims, IN_OFF);
	f->desc[1] = f->desc[0];
	f->desc[1].offset = OUT_OFF;
	f->desc[0].length = f->desc[1].length = 0;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_reject_rank_nine(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->desc[0].rank = COPRO_MAX_RANK + 1;
	f->desc[1].rank = COPRO_MAX_RANK + 1;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	echo_request(f);
	f->desc[1].rank = 255;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_accept_rank_eight(void **state)
{
	struct fx *f = *state;
	static const uint64_t dims[] = { 1, 2, 1, 3, 1, 2, 1, 2 };

	echo_request(f);
	f->desc[0] = mkdesc(COPRO_DT_I64, 8, dims, IN_OFF);
	f->desc[1] = mkdesc(COPRO_DT_I64, 8, dims, OUT_OFF);
	assert_int_equal(f->desc[0].length, 24 * 8);
	assert_int_equal(admit(f), 0);
}

static void should_accept_rank_zero_scalar(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->desc[0] = mkdesc(COPRO_DT_I32, 0, NULL, IN_OFF);
	f->desc[1] = mkdesc(COPRO_DT_I32, 0, NULL, OUT_OFF);
	assert_int_equal(f->desc[0].length, 4);
	assert_int_equal(admit(f), 0);
}

static void should_reject_bad_dtypes(void **state)
{
	struct fx *f = *state;
	static const uint8_t bad[] = { 0, COPRO_DT_MAX + 1, 255 };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		echo_request(f);
		f->desc[0].dtype = f->desc[1].dtype = bad[i];
		assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	}
}

static void should_reject_dims_beyond_rank(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->desc[0].dims[2] = 1;
	f->desc[1].dims[2] = 1;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	echo_request(f);
	f->desc[1].dims[COPRO_MAX_RANK - 1] = 5;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_accept_zero_sized_tensor(void **state)
{
	struct fx *f = *state;
	static const uint64_t dims[] = { 3, 0, 1ULL << 40 };

	echo_request(f);
	f->desc[0] = mkdesc(COPRO_DT_F16, 3, dims, IN_OFF);
	f->desc[1] = mkdesc(COPRO_DT_F16, 3, dims, ARENA_SIZE);	/* empty, at the very end */
	assert_int_equal(f->desc[0].length, 0);
	assert_int_equal(admit(f), 0);
}

static void should_reject_echo_output_dtype_mismatch(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->desc[1].dtype = COPRO_DT_I32;	/* same element size as f32 */
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_reject_echo_output_shape_mismatch(void **state)
{
	struct fx *f = *state;
	static const uint64_t t[] = { 3, 2 }, flat[] = { 6 };

	echo_request(f);
	f->desc[1] = mkdesc(COPRO_DT_F32, 2, t, OUT_OFF);	/* same bytes, transposed */
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	echo_request(f);
	f->desc[1] = mkdesc(COPRO_DT_F32, 1, flat, OUT_OFF);	/* same bytes, other rank */
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_reject_echo_with_unpaired_tensors(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->sqe.n_in = 2;
	f->sqe.n_out = 1;
	f->desc[2] = f->desc[1];
	f->desc[1] = f->desc[0];
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	echo_request(f);
	f->sqe.n_in = 1;
	f->sqe.n_out = 2;
	f->desc[2] = f->desc[1];
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
	echo_request(f);
	f->sqe.n_in = 1;
	f->sqe.n_out = 0;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_reject_echo_without_tensors(void **state)
{
	struct fx *f = *state;

	echo_request(f);
	f->sqe.n_in = 0;
	f->sqe.n_out = 0;
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

static void should_reject_echo_with_more_than_eight_pairs(void **state)
{
	struct fx *f = *state;
	static const uint64_t dims[] = { 4 };

	echo_request(f);
	f->sqe.n_in = 9;
	f->sqe.n_out = 7;
	for (uint32_t i = 0; i < 16; i++)
		f->desc[i] = mkdesc(COPRO_DT_U8, 1, dims, IN_OFF + 64 * i);
	assert_int_equal(admit(f), COPRO_E_SIGNATURE);
}

/* ---- copro_desc_check on its own ------------------------------------------------ */

static void should_check_a_lone_descriptor(void **state)
{
	static const uint64_t dims[] = { 16 };
	struct copro_tensor_desc d = mkdesc(COPRO_DT_BF16, 1, dims, 0);

	assert_int_equal(copro_desc_check(&d, 32), 0);
	assert_int_equal(copro_desc_check(&d, 31), COPRO_E_RANGE);
	assert_int_equal(copro_desc_check(&d, 0), COPRO_E_RANGE);
	d.offset = 1;
	assert_int_equal(copro_desc_check(&d, 33), 0);
	/* Reserved fields are checked before anything else. */
	d.dtype = 0;
	d.resv1 = 1;
	assert_int_equal(copro_desc_check(&d, 33), COPRO_E_BADSQE);
}

/* ---- the echo model's run ------------------------------------------------------- */

static void fill_pattern(uint8_t *p, size_t n, uint8_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)(seed + i * 7);
}

static void should_copy_each_input_into_its_output(void **state)
{
	struct fx *f = *state;
	static const uint64_t d0[] = { 2, 3 }, d1[] = { 100 };
	uint8_t expect0[24], expect1[100];
	struct copro_model *m;

	echo_request(f);
	f->sqe.n_in = f->sqe.n_out = 2;
	f->desc[0] = mkdesc(COPRO_DT_F32, 2, d0, IN_OFF);
	f->desc[1] = mkdesc(COPRO_DT_U8, 1, d1, IN_OFF + 64);
	f->desc[2] = mkdesc(COPRO_DT_F32, 2, d0, OUT_OFF);
	f->desc[3] = mkdesc(COPRO_DT_U8, 1, d1, OUT_OFF + 256);
	fill_pattern(f->arena + IN_OFF, 24, 1);
	fill_pattern(f->arena + IN_OFF + 64, 100, 50);
	memcpy(expect0, f->arena + IN_OFF, 24);
	memcpy(expect1, f->arena + IN_OFF + 64, 100);
	memset(f->arena + OUT_OFF, 0xee, 512);
	assert_int_equal(admit(f), 0);
	m = f->job.model;
	assert_non_null(m);
	assert_non_null(m->run);
	assert_int_equal(m->run(m, &f->job, f->arena), 124);
	assert_memory_equal(f->arena + OUT_OFF, expect0, 24);
	assert_memory_equal(f->arena + OUT_OFF + 256, expect1, 100);
	/* Bytes between and after the outputs are untouched. */
	assert_int_equal(f->arena[OUT_OFF + 24], 0xee);
	assert_int_equal(f->arena[OUT_OFF + 255], 0xee);
	assert_int_equal(f->arena[OUT_OFF + 356], 0xee);
	/* The inputs are unchanged. */
	assert_memory_equal(f->arena + IN_OFF, expect0, 24);
}

/* Echo of (n) u8 from in_off to out_off in one arena; returns the model's res. */
static int run_echo_u8(struct fx *f, uint64_t n, uint64_t in_off, uint64_t out_off)
{
	const uint64_t dims[] = { n };
	struct copro_model *m;
	int ret;

	echo_request(f);
	f->desc[0] = mkdesc(COPRO_DT_U8, 1, dims, in_off);
	f->desc[1] = mkdesc(COPRO_DT_U8, 1, dims, out_off);
	ret = admit(f);
	assert_int_equal(ret, 0);
	m = f->job.model;
	return m->run(m, &f->job, f->arena);
}

static void should_copy_overlapping_ranges_forward(void **state)
{
	struct fx *f = *state;
	uint8_t expect[256];

	fill_pattern(f->arena + IN_OFF, 256, 3);
	memcpy(expect, f->arena + IN_OFF, 256);
	/* Output starts 64 bytes into the input: a forward memcpy would smear. */
	assert_int_equal(run_echo_u8(f, 256, IN_OFF, IN_OFF + 64), 256);
	assert_memory_equal(f->arena + IN_OFF + 64, expect, 256);
}

static void should_copy_overlapping_ranges_backward(void **state)
{
	struct fx *f = *state;
	uint8_t expect[256];

	fill_pattern(f->arena + IN_OFF, 256, 9);
	memcpy(expect, f->arena + IN_OFF, 256);
	assert_int_equal(run_echo_u8(f, 256, IN_OFF, IN_OFF - 1), 256);
	assert_memory_equal(f->arena + IN_OFF - 1, expect, 256);
}

static void should_leave_identical_ranges_unchanged(void **state)
{
	struct fx *f = *state;
	uint8_t expect[128];

	fill_pattern(f->arena + IN_OFF, 128, 5);
	memcpy(expect, f->arena + IN_OFF, 128);
	assert_int_equal(run_echo_u8(f, 128, IN_OFF, IN_OFF), 128);
	assert_memory_equal(f->arena + IN_OFF, expect, 128);
}

static void should_copy_nothing_for_zero_sized_tensor(void **state)
{
	struct fx *f = *state;

	memset(f->arena + OUT_OFF, 0xab, 64);
	assert_int_equal(run_echo_u8(f, 0, IN_OFF, OUT_OFF), 0);
	assert_int_equal(f->arena[OUT_OFF], 0xab);
}

static void should_run_noop_without_touching_the_arena(void **state)
{
	struct fx *f = *state;
	struct copro_model *m;
	uint8_t before[1024];

	echo_request(f);
	f->sqe.model = f->noop;
	fill_pattern(f->arena + IN_OFF, sizeof(before), 11);
	memcpy(before, f->arena + IN_OFF, sizeof(before));
	assert_int_equal(admit(f), 0);
	m = f->job.model;
	assert_int_equal(m->run(m, &f->job, f->arena), 0);
	assert_memory_equal(f->arena + IN_OFF, before, sizeof(before));
}

#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(should_accept_valid_echo_request),
		T(should_work_on_private_copy_of_descriptors),
		T(should_accept_echo_with_eight_pairs_of_mixed_dtypes),
		T(should_accept_noop_with_no_tensors),
		T(should_accept_noop_with_sixteen_unrelated_tensors),
		T(should_accept_plain_nop),
		T(should_accept_cancel_naming_its_target_in_aux),
		T(should_accept_unaligned_descriptor_table),
		T(should_reject_unknown_opcode),
		T(should_reject_unknown_flags),
		T(should_reject_sqe_resv0),
		T(should_reject_sqe_resv1_0),
		T(should_reject_sqe_resv1_1),
		T(should_reject_aux_on_infer),
		T(should_reject_desc_flags),
		T(should_reject_desc_resv0),
		T(should_reject_desc_resv1),
		T(should_reject_more_than_sixteen_tensors),
		T(should_reject_nop_with_stray_fields),
		T(should_reject_cancel_with_stray_fields),
		T(should_reject_unknown_model_handles),
		T(should_reject_descriptor_table_outside_arena),
		T(should_reject_descriptor_table_offset_that_overflows),
		T(should_accept_descriptor_table_ending_at_arena_end),
		T(should_reject_tensor_offset_past_the_end),
		T(should_reject_offset_plus_length_overflow),
		T(should_accept_tensor_ending_exactly_at_arena_end),
		T(should_reject_tensor_ending_one_byte_past_arena_end),
		T(should_reject_length_not_matching_dims),
		T(should_reject_dims_product_overflow),
		T(should_reject_byte_size_overflow),
		T(should_reject_rank_nine),
		T(should_accept_rank_eight),
		T(should_accept_rank_zero_scalar),
		T(should_reject_bad_dtypes),
		T(should_reject_dims_beyond_rank),
		T(should_accept_zero_sized_tensor),
		T(should_reject_echo_output_dtype_mismatch),
		T(should_reject_echo_output_shape_mismatch),
		T(should_reject_echo_with_unpaired_tensors),
		T(should_reject_echo_without_tensors),
		T(should_reject_echo_with_more_than_eight_pairs),
		T(should_check_a_lone_descriptor),
		T(should_copy_each_input_into_its_output),
		T(should_copy_overlapping_ranges_forward),
		T(should_copy_overlapping_ranges_backward),
		T(should_leave_identical_ranges_unchanged),
		T(should_copy_nothing_for_zero_sized_tensor),
		T(should_run_noop_without_touching_the_arena),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
