/* SPDX-License-Identifier: MIT */
/*
 * loop.h - coprod's control plane: one io_uring event loop for accept,
 * control messages, heartbeat timer, signals and the poller's notices.
 */
#ifndef COPRO_LOOP_H
#define COPRO_LOOP_H

#include <liburing.h>
#include <stdint.h>

#include "config.h"
#include "poller.h"
#include "registry.h"

struct copro_session;

struct copro_server {
	struct copro_config cfg;
	const char *config_path;	/* re-read on SIGHUP; may be NULL */
	struct copro_config overrides;	/* flags given on the command line win */
	uint32_t override_mask;

	struct io_uring ring;
	int listen_fd;
	int sig_pipe[2];		/* signal handlers write signal numbers here */
	int notify_efd;			/* the poller rings it when a session breaks */
	uint64_t epoch;
	uint64_t start_ns;
	uint64_t next_id;
	uint32_t n_sessions;
	uint8_t stopping;

	struct copro_registry reg;
	struct copro_poller poller;
	struct copro_session *sessions;	/* every connected client */

	uint64_t notify_buf;
	uint8_t sig_buf[16];		/* signal numbers read from sig_pipe */
	struct __kernel_timespec hb_ts;
};

/* Bits of override_mask: which config fields came from flags. */
#define COPRO_OVR_SOCKET	(1U << 0)
#define COPRO_OVR_IDLE		(1U << 1)
#define COPRO_OVR_LOG		(1U << 2)
#define COPRO_OVR_SPIN		(1U << 3)

/*
 * Binds the socket, blocks the signals the loop handles, starts the poller.
 * The caller has filled srv->cfg. Returns 0 or -errno (logged).
 */
int copro_server_init(struct copro_server *srv);
/* Serves until SIGTERM/SIGINT; returns the process exit status. */
int copro_server_run(struct copro_server *srv);
void copro_server_fini(struct copro_server *srv);

#endif
