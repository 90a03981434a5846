/* SPDX-License-Identifier: MIT */
/*
 * session.h - one connected client: its socket, credentials and region.
 *
 * Ownership: the event loop creates a session at accept and owns its
 * socket; after a successful HELLO it hands the session to the poller,
 * which serves its rings. When the socket closes the loop unlinks the
 * session from its list and asks the poller to remove it; the poller frees
 * it (region, fds, memory), so the two threads never free the same thing.
 */
#ifndef COPRO_SESSION_H
#define COPRO_SESSION_H

#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "layout.h"
#include "placement.h"
#include "ring.h"

struct copro_session {
	/* Set at accept, read-only afterwards. */
	uint64_t id;
	int sock;
	pid_t pid;
	uid_t uid;
	gid_t gid;
	uint64_t accepted_ns;

	/* Set at HELLO, read-only afterwards. */
	int memfd, sq_efd, cq_efd;
	uint8_t *base;
	size_t size;
	struct copro_sb *sb;
	struct copro_layout lay;
	uint8_t *arena;

	/* Poller-private views of the rings (masks never read from shm). */
	struct copro_ring sq;
	struct copro_ring cq;
	uint32_t wake_pending;
	uint32_t inflight;		/* jobs queued to workers, each owning a CQ slot */
	uint8_t removed;		/* the loop let go of it; freed when inflight is 0 */

	/* Written by the poller, read by the loop for status. */
	_Atomic uint64_t served;
	_Atomic uint64_t errors;
	_Atomic uint32_t broken;	/* protocol violation: loop must drop it */

	/* Event-loop-private. */
	uint8_t hello_done;
	uint8_t closing;
	struct copro_session *next, *prev;
	char rbuf[2048];		/* control message receive buffer (largest: LOAD) */
};

struct copro_session *copro_session_new(int sock, uint64_t id);

/*
 * Creates the client's region for layout l: a sealed memfd (it can be neither
 * shrunk nor grown, so mapping it can never SIGBUS the server), the
 * superblock filled in and its magic published last, and two non-blocking
 * doorbell eventfds. The region's memory is bound to place's node (the
 * poller's, which serves it) before its first page is touched; place may
 * be NULL. Returns 0 or -errno; on failure nothing is left behind.
 */
int copro_session_region(struct copro_session *s, const struct copro_layout *l,
			 uint64_t epoch, uint64_t features, const struct copro_place *place);

/* Releases the region, every fd (socket included) and the session itself. */
void copro_session_free(struct copro_session *s);

#endif
