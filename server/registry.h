/* SPDX-License-Identifier: MIT */
/*
 * registry.h - the models coprod serves, by name and by handle.
 *
 * In this version the registry holds the built-in transport models, `echo`
 * and `noop`, and is immutable once the daemon runs; the poller reads it
 * without locks. Loading and unloading at run time come with tensor models.
 */
#ifndef COPRO_REGISTRY_H
#define COPRO_REGISTRY_H

#include <stdatomic.h>
#include <stdint.h>

#include "proto.h"

struct copro_job;
struct copro_tmodel;
struct copro_batcher;
struct copro_cache;

struct copro_model {
	char name[COPRO_NAME_MAX];
	uint32_t handle;
	uint32_t version;
	uint16_t n_in, n_out;		/* entries of sig[] for inputs, then outputs */
	uint16_t min_in, max_in;	/* how many inputs a request may carry */
	uint16_t min_out, max_out;
	uint16_t io_pairs;		/* 1: a request carries as many outputs as inputs */
	uint32_t max_rows;		/* >0: dim 0 is the batch; all tensors agree, <= this */
	struct copro_tmodel *tm;	/* tensor model, or NULL for a built-in */
	struct copro_batcher *batcher;	/* where its jobs go; NULL: run inline */
	struct copro_cache *cache;	/* response cache, or NULL */
	struct copro_tensor_sig sig[COPRO_MAX_TENSORS];
	/*
	 * Runs one admitted job on the client's arena (validated ranges only).
	 * Returns the completion's res: >= 0 or a negative code.
	 */
	int (*run)(const struct copro_model *m, const struct copro_job *job, uint8_t *arena);
	_Atomic uint64_t served;	/* completed requests; written by the poller only */
	_Atomic uint64_t failed;	/* refused at admission; poller only */
};

#define COPRO_MODELS_MAX	64

struct copro_registry {
	uint32_t n;
	struct copro_model models[COPRO_MODELS_MAX];
};

/* Fills a registry with the built-in models. */
void copro_registry_init(struct copro_registry *reg);
/*
 * Adds a tensor model under name, taking its signature from tm. Returns the
 * model, or NULL when the name is taken or the registry is full.
 */
struct copro_model *copro_registry_add(struct copro_registry *reg, const char *name,
				       struct copro_tmodel *tm);
const struct copro_model *copro_registry_find(const struct copro_registry *reg, const char *name);
/* Returns the model for a client-supplied handle, or NULL. */
struct copro_model *copro_registry_get(struct copro_registry *reg, uint32_t handle);

#endif
