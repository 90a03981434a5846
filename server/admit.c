// SPDX-License-Identifier: MIT
/*
 * admit.c - validation of submissions: every field a client wrote is
 * checked here, after it has been copied into private memory.
 */
#include <errno.h>
#include <string.h>

#include "admit.h"
#include "copro_abi.h"
#include "registry.h"

int copro_desc_check(const struct copro_tensor_desc *d, uint64_t arena_size)
{
	uint64_t elems = 1;
	uint32_t esz;

	if (d->flags || d->resv0 || d->resv1)
		return COPRO_E_BADSQE;
	esz = copro_dtype_size(d->dtype);
	if (!esz || d->rank > COPRO_MAX_RANK)
		return COPRO_E_SIGNATURE;
	if (d->offset > arena_size || d->length > arena_size - d->offset)
		return COPRO_E_RANGE;
	for (uint32_t i = 0; i < COPRO_MAX_RANK; i++) {
		if (i >= d->rank) {
			if (d->dims[i])
				return COPRO_E_SIGNATURE;
			continue;
		}
		if (d->dims[i] && elems > UINT64_MAX / d->dims[i])
			return COPRO_E_SIGNATURE;
		elems *= d->dims[i];
	}
	if (elems > UINT64_MAX / esz || elems * esz != d->length)
		return COPRO_E_SIGNATURE;
	return 0;
}

/* Does descriptor d have the form sig asks for? */
static int sig_match(const struct copro_tensor_sig *sig, const struct copro_tensor_desc *d)
{
	if (sig->dtype && sig->dtype != d->dtype)
		return 0;
	if (sig->rank >= 0 && sig->rank != d->rank)
		return 0;
	for (int i = 0; sig->rank >= 0 && i < sig->rank; i++)
		if (sig->dims[i] >= 0 && (uint64_t)sig->dims[i] != d->dims[i])
			return 0;
	return 1;
}

/* The signature entry that describes tensor i of a side with n_sig entries. */
static const struct copro_tensor_sig *sig_for(const struct copro_tensor_sig *sig, uint16_t n_sig,
					       uint32_t i)
{
	if (!n_sig)
		return NULL;
	if (i < n_sig)
		return &sig[i];
	return (sig[n_sig - 1].flags & COPRO_SIG_F_VARIADIC) ? &sig[n_sig - 1] : NULL;
}

static int signature_check(const struct copro_model *m, const struct copro_job *job)
{
	const struct copro_sqe *s = &job->sqe;

	if (s->n_in < m->min_in || s->n_in > m->max_in ||
	    s->n_out < m->min_out || s->n_out > m->max_out ||
	    (m->io_pairs && s->n_in != s->n_out))
		return COPRO_E_SIGNATURE;
	if (m->max_rows) {
		/* Dim 0 is the batch: every tensor carries the same 1..max_rows rows. */
		uint64_t rows = job->desc[0].rank ? job->desc[0].dims[0] : 0;

		if (rows < 1 || rows > m->max_rows)
			return COPRO_E_SIGNATURE;
		for (uint32_t i = 0; i < (uint32_t)s->n_in + s->n_out; i++)
			if (!job->desc[i].rank || job->desc[i].dims[0] != rows)
				return COPRO_E_SIGNATURE;
	}
	for (uint32_t i = 0; i < s->n_in; i++) {
		const struct copro_tensor_sig *sg = sig_for(m->sig, m->n_in, i);

		if (!sg || !sig_match(sg, &job->desc[i]))
			return COPRO_E_SIGNATURE;
	}
	for (uint32_t i = 0; i < s->n_out; i++) {
		const struct copro_tensor_sig *sg = sig_for(m->sig + m->n_in, m->n_out, i);
		const struct copro_tensor_desc *o = &job->desc[s->n_in + i];

		if (!sg || !sig_match(sg, o))
			return COPRO_E_SIGNATURE;
		if (sg->flags & COPRO_SIG_F_LIKE_INPUT) {
			const struct copro_tensor_desc *in = &job->desc[i];

			if (i >= s->n_in || in->dtype != o->dtype || in->rank != o->rank ||
			    memcmp(in->dims, o->dims, sizeof(in->dims)))
				return COPRO_E_SIGNATURE;
		}
	}
	return 0;
}

int copro_admit(const struct copro_sqe *sqe, const uint8_t *arena, uint64_t arena_size,
		struct copro_registry *reg, struct copro_job *job)
{
	uint32_t n;
	uint64_t bytes;
	int ret;

	job->sqe = *sqe;
	job->model = NULL;
	sqe = &job->sqe;
	if (sqe->opcode > COPRO_OP_MAX || (sqe->flags & ~COPRO_SQE_F_VALID) || sqe->resv0 ||
	    sqe->resv1[0] || sqe->resv1[1])
		return COPRO_E_BADSQE;
	if (sqe->opcode != COPRO_OP_INFER && sqe->opcode != COPRO_OP_GENERATE) {
		if (sqe->model || sqe->desc_off || sqe->n_in || sqe->n_out || sqe->priority ||
		    (sqe->opcode == COPRO_OP_NOP && sqe->aux))
			return COPRO_E_BADSQE;
		return 0;
	}
	n = (uint32_t)sqe->n_in + sqe->n_out;
	if (n > COPRO_MAX_TENSORS)
		return COPRO_E_BADSQE;
	job->model = copro_registry_get(reg, sqe->model);
	if (!job->model)
		return COPRO_E_NOMODEL;
	if (sqe->aux)
		return COPRO_E_BADSQE;
	bytes = (uint64_t)n * sizeof(struct copro_tensor_desc);
	if (sqe->desc_off > arena_size || bytes > arena_size - sqe->desc_off)
		return COPRO_E_RANGE;
	/* Copy first: the client may be rewriting these bytes right now. */
	memcpy(job->desc, arena + sqe->desc_off, bytes);
	for (uint32_t i = 0; i < n; i++) {
		ret = copro_desc_check(&job->desc[i], arena_size);
		if (ret)
			return ret;
	}
	/* A language model generates; a tensor model infers. */
	if ((sqe->opcode == COPRO_OP_GENERATE) != (job->model->llm != NULL))
		return COPRO_E_SIGNATURE;
	ret = signature_check(job->model, job);
	if (ret || sqe->opcode != COPRO_OP_GENERATE)
		return ret;
	/* The prompt is text or token ids; nothing else. */
	if (job->desc[0].dtype != COPRO_DT_U8 && job->desc[0].dtype != COPRO_DT_I32)
		return COPRO_E_SIGNATURE;
	return 0;
}

int copro_admit_gen_params(const struct copro_job *job, const uint8_t *arena,
			   struct copro_gen_params *p)
{
	const struct copro_tensor_desc *prompt = &job->desc[0], *tokens = &job->desc[2];

	/* Copy first, then check the copy: the client may be rewriting it. */
	memcpy(p, arena + job->desc[1].offset, sizeof(*p));
	if ((p->flags & ~COPRO_GEN_F_VALID) || p->resv0)
		return -EINVAL;
	for (uint32_t i = 0; i < sizeof(p->resv1) / sizeof(p->resv1[0]); i++)
		if (p->resv1[i])
			return -EINVAL;
	if (!p->max_tokens || p->max_tokens > tokens->dims[0] ||
	    p->n_stop_ids > COPRO_GEN_STOP_IDS)
		return -EINVAL;
	for (uint32_t i = 0; i < COPRO_GEN_STOP_STRS; i++)
		if (!memchr(p->stop[i], '\0', COPRO_GEN_STOP_LEN))
			return -EINVAL;
	if ((prompt->dtype == COPRO_DT_I32) != !!(p->flags & COPRO_GEN_F_IDS))
		return COPRO_E_SIGNATURE;
	return 0;
}
