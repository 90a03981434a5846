// SPDX-License-Identifier: MIT
/*
 * registry.c - built-in models and lookup.
 *
 * `echo` copies each input tensor into the output of the same index and
 * `noop` does nothing: together they measure the transport alone.
 */
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

static struct copro_model *add(struct copro_registry *reg, const char *name)
{
	struct copro_model *m = &reg->models[reg->n];

	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	/* Handles start at 1 so that a zeroed SQE names no model. */
	m->handle = ++reg->n;
	m->version = 1;
	return m;
}

void copro_registry_init(struct copro_registry *reg)
{
	struct copro_model *m;

	memset(reg, 0, sizeof(*reg));

	m = add(reg, "echo");
	m->n_in = 1;
	m->n_out = 1;
	m->min_in = m->min_out = 1;
	m->max_in = m->max_out = COPRO_MAX_TENSORS / 2;
	m->io_pairs = 1;
	sig_any(&m->sig[0], "input", COPRO_SIG_F_VARIADIC);
	sig_any(&m->sig[1], "output", COPRO_SIG_F_VARIADIC | COPRO_SIG_F_LIKE_INPUT);
	m->run = echo_run;

	m = add(reg, "noop");
	m->n_in = 1;
	m->n_out = 1;
	m->min_in = m->min_out = 0;
	m->max_in = m->max_out = COPRO_MAX_TENSORS;
	sig_any(&m->sig[0], "input", COPRO_SIG_F_VARIADIC);
	sig_any(&m->sig[1], "output", COPRO_SIG_F_VARIADIC);
	m->run = noop_run;
}

const struct copro_model *copro_registry_find(const struct copro_registry *reg, const char *name)
{
	for (uint32_t i = 0; i < reg->n; i++)
		if (!strcmp(reg->models[i].name, name))
			return &reg->models[i];
	return NULL;
}

struct copro_model *copro_registry_get(struct copro_registry *reg, uint32_t handle)
{
	if (handle == 0 || handle > reg->n)
		return NULL;
	return &reg->models[handle - 1];
}

struct copro_model *copro_registry_add(struct copro_registry *reg, const char *name,
				       struct copro_tmodel *tm)
{
	struct copro_model *m;

	if (copro_registry_find(reg, name) || reg->n == COPRO_MODELS_MAX ||
	    strlen(name) >= COPRO_NAME_MAX)
		return NULL;
	m = add(reg, name);
	m->n_in = m->min_in = m->max_in = tm->n_in;
	m->n_out = m->min_out = m->max_out = tm->n_out;
	memcpy(m->sig, tm->sig, sizeof(m->sig));
	m->max_rows = tm->max_batch;
	m->tm = tm;
	return m;
}
