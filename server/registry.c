// SPDX-License-Identifier: MIT
/*
 * registry.c - built-in models and lookup.
 *
 * `echo` copies each input tensor into the output of the same index and
 * `noop` does nothing: together they measure the transport alone.
 */
#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include "admit.h"
#include "copro_abi.h"
#include "registry.h"
#include "tmodel.h"

/* Copies input i to output i; ranges were validated at admission. */
static int echo_run(const struct copro_model *m, const struct copro_job *job, uint8_t *arena)
{
	uint64_t total = 0;

	for (uint32_t i = 0; i < job->sqe.n_in; i++) {
		const struct copro_tensor_desc *in = &job->desc[i];
		const struct copro_tensor_desc *out = &job->desc[job->sqe.n_in + i];

		memmove(arena + out->offset, arena + in->offset, in->length);
		total += in->length;
	}
	return total > INT32_MAX ? INT32_MAX : (int)total;
}

static int noop_run(const struct copro_model *m, const struct copro_job *job, uint8_t *arena)
{
	return 0;
}

static void sig_any(struct copro_tensor_sig *s, const char *name, uint16_t flags)
{
	memset(s, 0, sizeof(*s));
	snprintf(s->name, sizeof(s->name), "%s", name);
	s->dtype = 0;
	s->rank = -1;
	s->flags = flags;
	for (int i = 0; i < COPRO_MAX_RANK; i++)
		s->dims[i] = -1;
}

/* Adds a built-in model at start (before any other thread runs). */
static struct copro_model *add_builtin(struct copro_registry *reg)
{
	return copro_registry_reserve(reg);
}

static void publish_builtin(struct copro_registry *reg, struct copro_model *m, const char *name)
{
	struct copro_model *old;

	copro_registry_name(reg, m, name);
	copro_registry_publish(reg, m, &old);
}

void copro_registry_init(struct copro_registry *reg)
{
	struct copro_model *m;

	memset(reg, 0, sizeof(*reg));

	m = add_builtin(reg);
	m->n_in = 1;
	m->n_out = 1;
	m->min_in = m->min_out = 1;
	m->max_in = m->max_out = COPRO_MAX_TENSORS / 2;
	m->io_pairs = 1;
	sig_any(&m->sig[0], "input", COPRO_SIG_F_VARIADIC);
	sig_any(&m->sig[1], "output", COPRO_SIG_F_VARIADIC | COPRO_SIG_F_LIKE_INPUT);
	m->run = echo_run;
	publish_builtin(reg, m, "echo");

	m = add_builtin(reg);
	m->n_in = 1;
	m->n_out = 1;
	m->min_in = m->min_out = 0;
	m->max_in = m->max_out = COPRO_MAX_TENSORS;
	sig_any(&m->sig[0], "input", COPRO_SIG_F_VARIADIC);
	sig_any(&m->sig[1], "output", COPRO_SIG_F_VARIADIC);
	m->run = noop_run;
	publish_builtin(reg, m, "noop");
}

/* ---- the event loop's side ------------------------------------------------------- */

struct copro_model *copro_registry_reserve(struct copro_registry *reg)
{
	uint32_t n = atomic_load_explicit(&reg->n, memory_order_relaxed);

	for (uint32_t i = 0; i < COPRO_MODELS_MAX; i++) {
		struct copro_model *m = &reg->models[i];

		if (atomic_load_explicit(&m->state, memory_order_acquire) != COPRO_MODEL_FREE)
			continue;
		/* The poller skips FREE and LOADING slots: we may write it all. */
		memset(m, 0, offsetof(struct copro_model, state));
		memset(&m->inflight, 0, sizeof(*m) - offsetof(struct copro_model, inflight));
		atomic_store_explicit(&m->served, 0, memory_order_relaxed);
		atomic_store_explicit(&m->failed, 0, memory_order_relaxed);
		atomic_store_explicit(&m->state, COPRO_MODEL_LOADING, memory_order_relaxed);
		if (i >= n)
			/* Release: the poller's acquire of n sees a LOADING slot. */
			atomic_store_explicit(&reg->n, i + 1, memory_order_release);
		return m;
	}
	return NULL;
}

void copro_registry_release(struct copro_registry *reg, struct copro_model *m)
{
	m->tm = NULL;
	m->llm = NULL;
	m->batcher = NULL;
	m->cache = NULL;
	atomic_store_explicit(&m->state, COPRO_MODEL_FREE, memory_order_release);
}

void copro_registry_set_tmodel(struct copro_model *m, struct copro_tmodel *tm)
{
	m->n_in = m->min_in = m->max_in = tm->n_in;
	m->n_out = m->min_out = m->max_out = tm->n_out;
	memcpy(m->sig, tm->sig, sizeof(m->sig));
	m->max_rows = tm->max_batch;
	m->tm = tm;
}

void copro_registry_set_llm(struct copro_model *m, struct copro_llm *llm)
{
	static const char *const names[6] = { "prompt", "params", "tokens", "text", "result",
					      "prompt_ids" };
	static const uint8_t dtypes[6] = { 0, COPRO_DT_U8, COPRO_DT_I32, COPRO_DT_U8, COPRO_DT_U8,
					   COPRO_DT_I32 };
	static const int64_t dims[6] = { -1, sizeof(struct copro_gen_params), -1, -1,
					 sizeof(struct copro_gen_result), -1 };

	m->n_in = m->min_in = m->max_in = 2;
	/* prompt_ids is optional: 3 or 4 outputs */
	m->n_out = m->max_out = 4;
	m->min_out = 3;
	for (int i = 0; i < 6; i++) {
		struct copro_tensor_sig *s = &m->sig[i];

		sig_any(s, names[i], 0);
		s->dtype = dtypes[i];
		s->rank = 1;
		s->dims[0] = dims[i];
	}
	/* tokens: (n, 2) of id and text length after it */
	m->sig[2].rank = 2;
	m->sig[2].dims[1] = 2;
	m->max_rows = 0;
	m->llm = llm;
}

static struct copro_model_name *name_find(const struct copro_registry *reg, const char *name)
{
	uint32_t n = atomic_load_explicit(&reg->n_names, memory_order_relaxed);

	for (uint32_t i = 0; i < n; i++)
		if (!strcmp(reg->names[i].name, name))
			return (struct copro_model_name *)&reg->names[i];
	return NULL;
}

/*
 * Stores the new serving index (release: the poller that loads it sees the
 * slot filled), then marks the old version DRAINING (release: a poller that
 * sees DRAINING sees the new index too, so it routes nothing more to it).
 */
static void route(struct copro_model_name *e, struct copro_model *reg_models,
		  int32_t slot, struct copro_model **old)
{
	int32_t prev = atomic_load_explicit(&e->serving, memory_order_relaxed);

	atomic_store_explicit(&e->serving, slot, memory_order_release);
	*old = NULL;
	if (prev >= 0) {
		*old = &reg_models[prev];
		atomic_store_explicit(&(*old)->state, COPRO_MODEL_DRAINING, memory_order_release);
	}
}

int copro_registry_name(struct copro_registry *reg, struct copro_model *m, const char *name)
{
	struct copro_model_name *e;

	if (strlen(name) >= COPRO_NAME_MAX)
		return -ENAMETOOLONG;
	e = name_find(reg, name);
	if (!e) {
		uint32_t n = atomic_load_explicit(&reg->n_names, memory_order_relaxed);

		if (n == COPRO_NAMES_MAX)
			return -ENOSPC;
		e = &reg->names[n];
		snprintf(e->name, sizeof(e->name), "%s", name);
		e->handle = n + 1;
		e->versions = 0;
		atomic_store_explicit(&e->serving, -1, memory_order_relaxed);
		/* Release: a poller that sees the count sees the entry. */
		atomic_store_explicit(&reg->n_names, n + 1, memory_order_release);
	}
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->handle = e->handle;
	m->version = e->versions + 1;
	return 0;
}

void copro_registry_publish(struct copro_registry *reg, struct copro_model *m,
			    struct copro_model **old)
{
	struct copro_model_name *e = &reg->names[m->handle - 1];

	e->versions = m->version;
	atomic_store_explicit(&m->state, COPRO_MODEL_SERVING, memory_order_release);
	route(e, reg->models, (int32_t)(m - reg->models), old);
}

int copro_registry_unpublish(struct copro_registry *reg, const char *name,
			     struct copro_model **old)
{
	struct copro_model_name *e = name_find(reg, name);

	*old = NULL;
	if (!e || atomic_load_explicit(&e->serving, memory_order_relaxed) < 0)
		return -ENOENT;
	route(e, reg->models, -1, old);
	return 0;
}

const struct copro_model *copro_registry_find(const struct copro_registry *reg, const char *name)
{
	const struct copro_model_name *e = name_find(reg, name);
	int32_t slot;

	if (!e)
		return NULL;
	slot = atomic_load_explicit(&e->serving, memory_order_acquire);
	return slot < 0 ? NULL : &reg->models[slot];
}

/* ---- the poller's side ------------------------------------------------------------ */

struct copro_model *copro_registry_get(struct copro_registry *reg, uint32_t handle)
{
	int32_t slot;

	/* Acquire pairs with the release store of n_names in publish. */
	if (handle == 0 || handle > atomic_load_explicit(&reg->n_names, memory_order_acquire))
		return NULL;
	/* Acquire pairs with route()'s release: the slot is filled. */
	slot = atomic_load_explicit(&reg->names[handle - 1].serving, memory_order_acquire);
	return slot < 0 ? NULL : &reg->models[slot];
}
