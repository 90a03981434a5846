/* SPDX-License-Identifier: MIT */
/*
 * registry.h - the models coprod serves: names, handles and versions.
 *
 * Two tables. A *name* entry is what a client looks up: its handle never
 * changes for the life of the daemon and always leads to the version that
 * serves now, so a client keeps its handle across `coproctl load` of a new
 * version. A *model* slot is one loaded version: its plans, batcher and
 * cache, and a state:
 *
 *   FREE -> LOADING -> SERVING -> DRAINING -> RETIRED -> FREE
 *
 * Threads. The event loop (control plane) is the only writer of the tables,
 * but for one transition: the poller moves a DRAINING version whose last job
 * has completed to RETIRED (and rings the loop's notify eventfd); the loop
 * then frees it. The poller reads without locks: a name's `serving` index
 * and a slot's `state` are atomics, stored with release after everything
 * they publish, loaded with acquire. A version is replaced or unloaded by
 * storing the new serving index first and the old slot's DRAINING state
 * second, so once the poller sees DRAINING it can no longer route a new
 * request to that version: its own count of jobs in flight then says when
 * nothing refers to it any more.
 */
#ifndef COPRO_REGISTRY_H
#define COPRO_REGISTRY_H

#include <stdatomic.h>
#include <stdint.h>

#include "config.h"
#include "placement.h"
#include "proto.h"

struct copro_job;
struct copro_tmodel;
struct copro_batcher;
struct copro_cache;
struct copro_llm;

#define COPRO_MODEL_FREE	0
#define COPRO_MODEL_LOADING	1	/* being filled by the loop; invisible */
#define COPRO_MODEL_SERVING	2	/* new requests go here */
#define COPRO_MODEL_DRAINING	3	/* replaced or unloaded: admitted jobs finish */
#define COPRO_MODEL_RETIRED	4	/* drained; the loop frees it */

struct copro_model {
	char name[COPRO_NAME_MAX];
	uint32_t handle;		/* of its name */
	uint32_t version;		/* 1, 2, ... per name */
	_Atomic uint32_t state;		/* COPRO_MODEL_* */
	uint32_t inflight;		/* admitted jobs not yet completed: poller only */
	uint16_t n_in, n_out;		/* entries of sig[] for inputs, then outputs */
	uint16_t min_in, max_in;	/* how many inputs a request may carry */
	uint16_t min_out, max_out;
	uint16_t io_pairs;		/* 1: a request carries as many outputs as inputs */
	uint32_t max_rows;		/* >0: dim 0 is the batch; all tensors agree, <= this */
	struct copro_tmodel *tm;	/* tensor model, or NULL for a built-in */
	struct copro_batcher *batcher;	/* where its jobs go; NULL: run inline */
	struct copro_cache *cache;	/* response cache, or NULL */
	struct copro_llm *llm;		/* language model, or NULL */
	struct copro_model_config cfg;	/* how it was loaded (tensor models) */
	struct copro_place place;	/* where its worker runs (set before it starts) */
	uint64_t loaded_ns;		/* CLOCK_MONOTONIC when it began serving */
	struct copro_tensor_sig sig[COPRO_MAX_TENSORS];
	/*
	 * Runs one admitted job on the client's arena (validated ranges only).
	 * Returns the completion's res: >= 0 or a negative code.
	 */
	int (*run)(const struct copro_model *m, const struct copro_job *job, uint8_t *arena);
	_Atomic uint64_t served;	/* completed requests; written by the poller only */
	_Atomic uint64_t failed;	/* refused at admission; poller only */
};

struct copro_model_name {
	char name[COPRO_NAME_MAX];
	uint32_t handle;		/* index + 1: handles start at 1, 0 names nothing */
	uint32_t versions;		/* the last version number given out */
	_Atomic int32_t serving;	/* slot of the serving version, or -1 */
};

#define COPRO_MODELS_MAX	64	/* loaded versions, draining ones included */
#define COPRO_NAMES_MAX		256	/* names ever served by one daemon */

struct copro_registry {
	_Atomic uint32_t n;		/* slots [0, n) may be in use */
	_Atomic uint32_t n_names;
	struct copro_model models[COPRO_MODELS_MAX];
	struct copro_model_name names[COPRO_NAMES_MAX];
};

/* Fills a registry with the built-in models (`echo`, `noop`). */
void copro_registry_init(struct copro_registry *reg);

/* ---- the event loop's side ---- */

/* Takes a FREE slot into LOADING, zeroed. Returns it, or NULL when all are in use. */
struct copro_model *copro_registry_reserve(struct copro_registry *reg);
/* Gives a LOADING or RETIRED slot back (its tm, batcher, cache already freed). */
void copro_registry_release(struct copro_registry *reg, struct copro_model *m);
/*
 * Gives a reserved slot a language model's signature: inputs prompt (U8 text
 * or I32 ids) and params, outputs tokens, text and result (copro_abi.h).
 */
void copro_registry_set_llm(struct copro_model *m, struct copro_llm *llm);
/* Takes signature, batch limit and tm from a tensor model into a reserved slot. */
void copro_registry_set_tmodel(struct copro_model *m, struct copro_tmodel *tm);
/*
 * Names the reserved slot m: the name's handle (a new name gets a new
 * entry, serving nothing yet) and its next version number. Returns 0,
 * -ENAMETOOLONG or -ENOSPC (no name entry left).
 */
int copro_registry_name(struct copro_registry *reg, struct copro_model *m, const char *name);
/*
 * Makes the named slot m the serving version of its name. The version it
 * replaces, if any, starts to drain and is returned in *old.
 */
void copro_registry_publish(struct copro_registry *reg, struct copro_model *m,
			    struct copro_model **old);
/*
 * Stops routing requests to name: its serving version starts to drain and
 * is returned in *old. Returns 0 or -ENOENT.
 */
int copro_registry_unpublish(struct copro_registry *reg, const char *name,
			     struct copro_model **old);
/* The serving version of name, or NULL. */
const struct copro_model *copro_registry_find(const struct copro_registry *reg, const char *name);

/* ---- the poller's side ---- */

/* Returns the serving version for a client-supplied handle, or NULL. */
struct copro_model *copro_registry_get(struct copro_registry *reg, uint32_t handle);
/* Returns slot i when it is SERVING or DRAINING (the poller's to run), else NULL. */
static inline struct copro_model *copro_registry_live(struct copro_registry *reg, uint32_t i)
{
	/* Acquire pairs with the release stores of the state in registry.c. */
	uint32_t st = atomic_load_explicit(&reg->models[i].state, memory_order_acquire);

	return st == COPRO_MODEL_SERVING || st == COPRO_MODEL_DRAINING ? &reg->models[i] : NULL;
}
/* Slots the poller must look at: [0, copro_registry_slots()). */
static inline uint32_t copro_registry_slots(struct copro_registry *reg)
{
	return atomic_load_explicit(&reg->n, memory_order_acquire);
}

#endif
