/* SPDX-License-Identifier: MIT */
/*
 * poller.h - the data plane: one thread that drains every client's
 * submission ring, runs admitted work and posts completions.
 *
 * Idle strategy (Aeron's): after work it spins for spin_us, then either
 * keeps spinning (spin), calls sched_yield() between passes (yield) or
 * sleeps (sleep): it sets NEED_WAKEUP in every client's superblock, fences,
 * checks every ring once more, and only then blocks in io_uring on the
 * clients' SQ doorbells. Wake-ups it owes clients that sleep on their CQ
 * go out together in one io_uring_submit() per pass.
 */
#ifndef COPRO_POLLER_H
#define COPRO_POLLER_H

#include <liburing.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "placement.h"

struct copro_session;
struct copro_registry;
struct copro_config;
struct copro_model;

struct copro_poller_cmd {
	int op;				/* POLLER_ADD / POLLER_REMOVE */
	struct copro_session *s;
};

struct copro_poller {
	pthread_t thread;
	struct io_uring ring;
	int efd;			/* wakes the poller for commands */
	int notify_efd;			/* the poller rings this when a session breaks */
	struct copro_registry *reg;

	_Atomic uint32_t idle;		/* COPRO_IDLE_SRV_*, may change live */
	_Atomic uint32_t spin_ns;
	_Atomic uint32_t stop;		/* 1: drain and exit */
	_Atomic uint32_t sleeping;	/* 1: about to block; workers must wake us */

	pthread_mutex_t lock;		/* protects cmds */
	struct copro_poller_cmd *cmds;
	uint32_t n_cmds, cap_cmds;
	_Atomic uint32_t cmds_pending;

	/* poller-thread private */
	struct copro_session **sessions;
	uint32_t n_sessions, cap_sessions;
	uint32_t wakes_queued;

	/* where it runs: resolved by the loop, read back by the thread at its start */
	struct copro_place place;
	struct copro_placed placed;

	/* statistics, read by the loop */
	_Atomic uint64_t passes, sleeps, wakeups_sent, completed;
};

/*
 * Starts the poller thread over reg, placed with place (the clients'
 * regions are bound to the same node). Returns 0 or -errno.
 */
int copro_poller_start(struct copro_poller *p, struct copro_registry *reg, uint32_t idle,
		       uint32_t spin_us, int notify_efd, const struct copro_place *place);
/*
 * Gives a tensor model in a LOADING slot its batching worker and, when
 * m->cfg asks for one, its response cache, before it is published (event
 * loop thread; m->handle and m->version must be set). Returns 0 or -errno.
 */
int copro_poller_model_start(struct copro_poller *p, struct copro_model *m);
/* Stops m's worker and frees its cache: a slot the poller no longer runs. */
void copro_poller_model_stop(struct copro_model *m);
/* Hands a session with a region to the poller (event loop thread). */
int copro_poller_add(struct copro_poller *p, struct copro_session *s);
/* Asks the poller to stop serving s and free it (event loop thread). */
int copro_poller_remove(struct copro_poller *p, struct copro_session *s);
void copro_poller_set_idle(struct copro_poller *p, uint32_t idle, uint32_t spin_us);
/*
 * Stops the thread after one last pass (entries already in the rings are
 * served) and frees every session it still holds.
 */
void copro_poller_stop(struct copro_poller *p);

#endif
