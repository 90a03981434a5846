/* SPDX-License-Identifier: MIT */
/*
 * tmodel.h - a tensor model: an ONNX graph with one compiled plan per batch
 * size, its signature in ABI terms, and preallocated batch buffers.
 *
 * The first dimension of every graph input and output is the batch: a
 * request carries rows >= 1 of it, a batch concatenates the rows of several
 * requests (of several clients) along it, runs the plan for that many rows
 * and scatters the output rows back.
 */
#ifndef COPRO_TMODEL_H
#define COPRO_TMODEL_H

#include <stdint.h>

#include "config.h"
#include "proto.h"

struct copro_graph;
struct copro_plan;
struct copro_job;

struct copro_tmodel {
	struct copro_graph *g;
	uint32_t max_batch;
	struct copro_plan **plans;		/* [max_batch + 1], plans[rows] */
	uint16_t n_in, n_out;
	struct copro_tensor_sig sig[COPRO_MAX_TENSORS];	/* inputs, then outputs */
	uint64_t row_bytes[COPRO_MAX_TENSORS];	/* bytes of one batch row of each */
	void *buf[COPRO_MAX_TENSORS];		/* max_batch rows of each, 64-aligned */
	uint32_t reject_nonfinite;
	uint64_t in_max, out_max;		/* bytes of all inputs / outputs at max_batch */
};

/*
 * Loads path and plans it for 1..mc->max_batch rows. Returns 0 or a
 * negative code with a one-line reason in err (unsupported operator,
 * inputs without a batch dimension, dtypes the ABI cannot carry...).
 */
int copro_tmodel_load(const struct copro_model_config *mc, struct copro_tmodel **out, char *err,
		      size_t errlen);
void copro_tmodel_free(struct copro_tmodel *tm);

/* Rows a job carries (dim 0 of its first input); admission checked it. */
uint32_t copro_tmodel_rows(const struct copro_job *job);

/*
 * Runs jobs[0..n) as one batch of rows (their sum <= max_batch): gathers
 * every input from each job's arena into the batch buffers, runs the plan
 * for that many rows, scatters the outputs back. Sets each job's result:
 * left as it was on success (or -EDOM with reject_nonfinite), the plan's
 * error otherwise. When the batch fails, every job is run again alone,
 * so a request whose values are invalid (-ERANGE: a Gather index out of
 * range) fails without failing the requests batched with it.
 */
void copro_tmodel_run(struct copro_tmodel *tm, struct copro_job **jobs, uint32_t n,
		      uint32_t rows);

#endif
