// SPDX-License-Identifier: MIT
/*
 * tmodel.c - tensor models: load, plan per batch size, gather/run/scatter.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "admit.h"
#include "copro_abi.h"
#include "onnx/graph.h"
#include "onnx/plan.h"
#include "tmodel.h"

/* ONNX element type -> ABI dtype, 0 where the ABI has none. */
static uint8_t abi_dtype(int32_t k)
{
	switch (k) {
	case COPRO_K_F32:	return COPRO_DT_F32;
	case COPRO_K_F16:	return COPRO_DT_F16;
	case COPRO_K_BF16:	return COPRO_DT_BF16;
	case COPRO_K_I8:	return COPRO_DT_I8;
	case COPRO_K_U8:	return COPRO_DT_U8;
	case COPRO_K_I32:	return COPRO_DT_I32;
	case COPRO_K_I64:	return COPRO_DT_I64;
	default:		return 0;
	}
}

/*
 * Describes value v (whose first dim is the batch) as a signature entry and
 * returns the bytes of one row, or 0 with err set.
 */
static uint64_t describe(const struct copro_value *v, const struct copro_kt *shape,
			 struct copro_tensor_sig *sig, char *err, size_t errlen)
{
	uint64_t row = copro_k_dtype_size(shape->dtype);

	memset(sig, 0, sizeof(*sig));
	snprintf(sig->name, sizeof(sig->name), "%s", v->name);
	sig->dtype = abi_dtype(shape->dtype);
	if (!sig->dtype) {
		snprintf(err, errlen, "tensor '%s' is %s, which clients cannot send", v->name,
			 copro_k_dtype_name(shape->dtype));
		return 0;
	}
	if (shape->rank < 1) {
		snprintf(err, errlen, "tensor '%s' has no batch dimension", v->name);
		return 0;
	}
	sig->rank = (int8_t)shape->rank;
	for (int d = 0; d < COPRO_MAX_RANK; d++)
		sig->dims[d] = d < shape->rank ? shape->dims[d] : 0;
	sig->dims[0] = -1;
	for (int d = 1; d < shape->rank; d++)
		row *= (uint64_t)shape->dims[d];
	return row;
}

int copro_tmodel_load(const struct copro_model_config *mc, struct copro_tmodel **out, char *err,
		      size_t errlen)
{
	struct copro_plan_opts opts = COPRO_PLAN_OPTS_INIT;
	struct copro_kt in[COPRO_MAX_TENSORS];
	struct copro_tmodel *tm;
	int ret;

	tm = calloc(1, sizeof(*tm));
	if (!tm)
		return -ENOMEM;
	tm->max_batch = mc->max_batch;
	tm->reject_nonfinite = mc->reject_nonfinite;
	ret = copro_graph_load(mc->path, &tm->g, err, errlen);
	if (ret)
		goto fail;
	if (tm->g->n_inputs < 1 || tm->g->n_outputs < 1 ||
	    tm->g->n_inputs + tm->g->n_outputs > COPRO_MAX_TENSORS) {
		snprintf(err, errlen, "%d inputs and %d outputs: 1..%d tensors in all are served",
			 tm->g->n_inputs, tm->g->n_outputs, COPRO_MAX_TENSORS);
		ret = -ENOTSUP;
		goto fail;
	}
	tm->n_in = (uint16_t)tm->g->n_inputs;
	tm->n_out = (uint16_t)tm->g->n_outputs;
	for (int i = 0; i < tm->n_in; i++) {
		const struct copro_value *v = &tm->g->values[tm->g->inputs[i]];

		in[i] = v->t;
		in[i].data = NULL;
		for (int d = 1; d < in[i].rank; d++) {
			if (in[i].dims[d] < 0) {
				snprintf(err, errlen, "input '%s' has a symbolic dimension %d: "
					 "only the first (batch) may be", v->name, d);
				ret = -ENOTSUP;
				goto fail;
			}
		}
	}
	opts.precision = mc->precision;
	tm->plans = calloc(tm->max_batch + 1, sizeof(*tm->plans));
	if (!tm->plans) {
		ret = -ENOMEM;
		goto fail;
	}
	/* One plan per batch size: shapes, folding and buffers fixed for each. */
	for (uint32_t rows = 1; rows <= tm->max_batch; rows++) {
		for (int i = 0; i < tm->n_in; i++)
			if (in[i].rank)
				in[i].dims[0] = rows;
		ret = copro_plan_build_opts(tm->g, in, &opts, &tm->plans[rows], err, errlen);
		if (ret)
			goto fail;
	}
	for (int i = 0; i < tm->n_in + tm->n_out; i++) {
		int out_i = i - tm->n_in;
		const struct copro_value *v = &tm->g->values[i < tm->n_in ? tm->g->inputs[i] :
							      tm->g->outputs[out_i]];
		struct copro_kt shape = i < tm->n_in ? in[i] :
					*copro_plan_output(tm->plans[tm->max_batch], out_i);

		if (i >= tm->n_in && (shape.rank < 1 || shape.dims[0] != tm->max_batch)) {
			snprintf(err, errlen, "output '%s' does not follow the batch dimension",
				 v->name);
			ret = -ENOTSUP;
			goto fail;
		}
		tm->row_bytes[i] = describe(v, &shape, &tm->sig[i], err, errlen);
		if (!tm->row_bytes[i]) {
			ret = -ENOTSUP;
			goto fail;
		}
		*(i < tm->n_in ? &tm->in_max : &tm->out_max) += tm->row_bytes[i] * tm->max_batch;
		tm->buf[i] = aligned_alloc(64, (tm->row_bytes[i] * tm->max_batch + 63) & ~63ULL);
		if (!tm->buf[i]) {
			ret = -ENOMEM;
			goto fail;
		}
	}
	*out = tm;
	return 0;
fail:
	copro_tmodel_free(tm);
	return ret;
}

void copro_tmodel_free(struct copro_tmodel *tm)
{
	if (!tm)
		return;
	for (uint32_t r = 0; tm->plans && r <= tm->max_batch; r++)
		copro_plan_free(tm->plans[r]);
	free(tm->plans);
	for (int i = 0; i < COPRO_MAX_TENSORS; i++)
		free(tm->buf[i]);
	copro_graph_free(tm->g);
	free(tm);
}

uint32_t copro_tmodel_rows(const struct copro_job *job)
{
	return (uint32_t)job->desc[0].dims[0];
}

/* Whether n floats are all finite (the reject_nonfinite option). */
static int all_finite(const float *v, uint64_t n)
{
	for (uint64_t i = 0; i < n; i++)
		if (!isfinite(v[i]))
			return 0;
	return 1;
}

/*
 * Runs jobs[0..n) as one plan of `rows` rows: gathers, runs, scatters.
 * Returns the plan's result; on failure nothing was scattered and no
 * job's result was touched (the caller decides who failed).
 */
static int run_batch(struct copro_tmodel *tm, struct copro_job **jobs, uint32_t n, uint32_t rows)
{
	struct copro_kt in[COPRO_MAX_TENSORS], out[COPRO_MAX_TENSORS];
	struct copro_plan *p = tm->plans[rows];
	uint64_t at;
	int ret;

	/*
	 * Gather: each job's rows, straight from its client's arena, or from
	 * its private copy when the cache keyed it (compute on what was hashed).
	 */
	for (int i = 0; i < tm->n_in; i++) {
		at = 0;
		for (uint32_t j = 0; j < n; j++) {
			const struct copro_tensor_desc *d = &jobs[j]->desc[i];
			const uint8_t *src = jobs[j]->arena + d->offset;

			if (jobs[j]->priv) {
				src = jobs[j]->priv;
				for (int k = 0; k < i; k++)
					src += jobs[j]->desc[k].length;
			}
			memcpy((uint8_t *)tm->buf[i] + at, src, d->length);
			at += d->length;
		}
		in[i] = tm->g->values[tm->g->inputs[i]].t;
		in[i].dims[0] = rows;
		in[i].data = tm->buf[i];
	}
	for (int o = 0; o < tm->n_out; o++) {
		memset(&out[o], 0, sizeof(out[o]));
		out[o].data = tm->buf[tm->n_in + o];
	}
	ret = copro_plan_run(p, in, out);
	if (ret)
		return ret;
	/* Scatter: each job's output rows, straight into its client's arena. */
	for (int o = 0; o < tm->n_out; o++) {
		at = 0;
		for (uint32_t j = 0; j < n; j++) {
			const struct copro_tensor_desc *d = &jobs[j]->desc[tm->n_in + o];
			const uint8_t *src = (const uint8_t *)tm->buf[tm->n_in + o] + at;

			if (tm->reject_nonfinite && tm->sig[tm->n_in + o].dtype == COPRO_DT_F32 &&
			    !all_finite((const float *)src, d->length / 4))
				jobs[j]->res = -EDOM;
			memcpy(jobs[j]->arena + d->offset, src, d->length);
			if (jobs[j]->priv) {
				/* The cache stores our copy, never the client's bytes. */
				uint8_t *dst = jobs[j]->priv + tm->in_max;

				for (int k = 0; k < o; k++)
					dst += jobs[j]->desc[tm->n_in + k].length;
				memcpy(dst, src, d->length);
			}
			at += d->length;
		}
	}
	return 0;
}

/*
 * A plan fails on data only for a request's own values (a Gather index
 * out of range: -ERANGE), so when a batch of several jobs fails, each is
 * run again alone: the request at fault gets the error, the others their
 * outputs. Costs one plan run per job, and only on that path.
 */
void copro_tmodel_run(struct copro_tmodel *tm, struct copro_job **jobs, uint32_t n,
		      uint32_t rows)
{
	int ret = run_batch(tm, jobs, n, rows);

	if (!ret)
		return;
	if (n == 1) {
		jobs[0]->res = ret;
		return;
	}
	for (uint32_t j = 0; j < n; j++) {
		ret = run_batch(tm, &jobs[j], 1, copro_tmodel_rows(jobs[j]));
		if (ret)
			jobs[j]->res = ret;
	}
}
