/* SPDX-License-Identifier: MIT */
/*
 * admit.h - turning a client's submission entry into a job the server trusts.
 *
 * Admission works on private copies only: the caller copies the SQE out of
 * shared memory first, and admission copies the descriptor table out of the
 * arena before it looks at any field. The client may rewrite the shared
 * bytes at any moment; nothing here reads them twice.
 */
#ifndef COPRO_ADMIT_H
#define COPRO_ADMIT_H

#include <stdatomic.h>
#include <stdint.h>

#include "copro_abi.h"

struct copro_model;
struct copro_registry;
struct copro_session;

/* Job states: a queued job can be cancelled until someone claims it to run. */
#define COPRO_JOB_FREE		0
#define COPRO_JOB_QUEUED	1
#define COPRO_JOB_RUNNING	2
#define COPRO_JOB_CANCELLED	3

struct copro_job {
	struct copro_sqe sqe;					/* private copy */
	struct copro_tensor_desc desc[COPRO_MAX_TENSORS];	/* n_in inputs, then n_out outputs */
	struct copro_model *model;

	/* Set when the job is queued to a model's batcher instead of run inline. */
	struct copro_session *s;	/* whose CQ gets the completion */
	uint8_t *arena;			/* the session's arena, mapped until the job is done */
	int32_t res;			/* the completion's result, set by the worker */
	uint32_t rows;			/* batch rows this job carries */
	_Atomic uint32_t state;		/* COPRO_JOB_*: who may still cancel it */
	uint8_t *priv;			/* cache on: private inputs, then outputs */
	uint64_t key;			/* cache key of the private inputs */
	uint64_t admit_ns, start_ns, end_ns;
	struct copro_job *next;		/* free list of the job pool */
};

/*
 * Validates *sqe (already a private copy) against the arena of arena_size
 * bytes at arena and the registry, and fills *job. Returns 0, or the
 * completion code for the client: COPRO_E_BADSQE, COPRO_E_NOMODEL,
 * COPRO_E_RANGE or COPRO_E_SIGNATURE.
 */
int copro_admit(const struct copro_sqe *sqe, const uint8_t *arena, uint64_t arena_size,
		struct copro_registry *reg, struct copro_job *job);

/*
 * For an admitted COPRO_OP_GENERATE job: copies its parameters out of the
 * arena into *p and checks them (flags, reserved fields, max_tokens within
 * the tokens tensor, stop ids and strings, the prompt's dtype against
 * COPRO_GEN_F_IDS). Sampling ranges are the scheduler's to check. Returns
 * 0, -EINVAL or COPRO_E_SIGNATURE.
 */
int copro_admit_gen_params(const struct copro_job *job, const uint8_t *arena,
			   struct copro_gen_params *p);

/* Checks one descriptor: reserved fields, dtype, rank, range, size. */
int copro_desc_check(const struct copro_tensor_desc *d, uint64_t arena_size);

#endif
