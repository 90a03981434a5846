/* SPDX-License-Identifier: MIT */
/*
 * proto.h - control messages on the daemon's UNIX socket.
 *
 * The socket is SOCK_SEQPACKET: one message per packet, boundaries kept.
 * Every message starts with struct copro_msg_hdr; len is the whole packet.
 * A client sends a request and reads exactly one reply; the hot path never
 * touches the socket. The first message must be HELLO; its reply carries
 * three descriptors with SCM_RIGHTS when status is 0: the region memfd,
 * the SQ doorbell eventfd (client writes) and the CQ doorbell eventfd
 * (server writes), in that order.
 */
#ifndef COPRO_PROTO_H
#define COPRO_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include "copro_abi.h"

#define COPRO_MSG_HELLO		1
#define COPRO_MSG_LOOKUP	2
#define COPRO_MSG_PING		3
#define COPRO_MSG_STATUS	4
#define COPRO_MSG_LOAD		5	/* admin: load a model or a new version of it */
#define COPRO_MSG_UNLOAD	6	/* admin: stop serving a model */
#define COPRO_MSG_REPLY		0x80	/* or-ed into the request type */

#define COPRO_MSG_MAX		65536	/* largest packet either side sends */
#define COPRO_NAME_MAX		64
#define COPRO_ERRMSG_MAX	160
#define COPRO_PATH_MAX		512
#define COPRO_OPTIONS_MAX	1024

struct copro_msg_hdr {
	uint32_t type;		/* COPRO_MSG_*, | COPRO_MSG_REPLY in replies */
	uint32_t len;		/* bytes of the whole message */
	uint64_t seq;		/* echoed in the reply */
};

struct copro_msg_hello {
	struct copro_msg_hdr hdr;
	uint16_t abi_major;
	uint16_t abi_minor;
	uint32_t flags;		/* must be zero */
	uint32_t sq_entries;	/* requested; the server may round or clamp */
	uint32_t cq_entries;	/* 0 = twice sq_entries */
	uint64_t arena_size;	/* requested bytes */
	uint64_t resv[2];
};

/* Common head of every reply: status 0 or a negative code, and a reason. */
struct copro_msg_reply {
	struct copro_msg_hdr hdr;
	int32_t status;
	uint32_t resv;
	char errmsg[COPRO_ERRMSG_MAX];	/* NUL-terminated when status != 0 */
};

struct copro_msg_hello_reply {
	struct copro_msg_reply r;
	uint16_t abi_major;	/* the server's */
	uint16_t abi_minor;
	uint32_t client_id;
	uint64_t features;
	uint64_t region_size;
};

struct copro_msg_lookup {
	struct copro_msg_hdr hdr;
	char name[COPRO_NAME_MAX];	/* NUL-terminated */
};

/* The expected form of one tensor: dtype 0 = any, rank -1 = any, dim -1 = any. */
struct copro_tensor_sig {
	char name[32];
	uint8_t dtype;
	int8_t rank;
	uint16_t flags;
	uint32_t resv;
	int64_t dims[COPRO_MAX_RANK];
};

/* Signature flags. */
#define COPRO_SIG_F_LIKE_INPUT	(1U << 0)	/* output i mirrors input i's dtype and dims */
#define COPRO_SIG_F_VARIADIC	(1U << 1)	/* this entry repeats 1..max times */

struct copro_msg_lookup_reply {
	struct copro_msg_reply r;
	uint32_t handle;
	uint32_t version;
	uint16_t n_in;		/* entries in sig[] for inputs */
	uint16_t n_out;		/* entries after them for outputs */
	uint16_t max_in;	/* most inputs a request may carry */
	uint16_t max_out;
	struct copro_tensor_sig sig[COPRO_MAX_TENSORS];
};

struct copro_msg_ping_reply {
	struct copro_msg_reply r;
	uint64_t server_epoch;
	uint64_t server_ns;	/* CLOCK_MONOTONIC when answered */
	uint32_t pid;
	uint32_t resv;
};

/* A STATUS reply is a copro_msg_reply followed by NUL-terminated text. */

/*
 * LOAD: name, the model file (empty: the serving version's file again) and
 * options as "key=value" lines, the keys of a [model.NAME] section of
 * coprod.conf(5); a new version of a loaded name starts from the serving
 * version's options. All three NUL-terminated.
 */
struct copro_msg_load {
	struct copro_msg_hdr hdr;
	char name[COPRO_NAME_MAX];
	char path[COPRO_PATH_MAX];
	char options[COPRO_OPTIONS_MAX];
};

struct copro_msg_load_reply {
	struct copro_msg_reply r;
	uint32_t handle;
	uint32_t version;	/* the version now serving */
	uint32_t replaced;	/* the version that now drains, 0 = none */
	uint32_t resv;
};

struct copro_msg_unload {
	struct copro_msg_hdr hdr;
	char name[COPRO_NAME_MAX];
};

struct copro_msg_unload_reply {
	struct copro_msg_reply r;
	uint32_t version;	/* the version that now drains */
	uint32_t resv;
};

_Static_assert(sizeof(struct copro_msg_hdr) == 16, "msg_hdr");
_Static_assert(sizeof(struct copro_msg_hello) == 56, "msg_hello");
_Static_assert(offsetof(struct copro_msg_hello, arena_size) == 32, "hello.arena_size");
_Static_assert(sizeof(struct copro_msg_reply) == 184, "msg_reply");
_Static_assert(sizeof(struct copro_msg_hello_reply) == 208, "hello_reply");
_Static_assert(offsetof(struct copro_msg_hello_reply, features) == 192, "hello_reply.features");
_Static_assert(sizeof(struct copro_tensor_sig) == 104, "tensor_sig");
_Static_assert(offsetof(struct copro_tensor_sig, dims) == 40, "tensor_sig.dims");
_Static_assert(sizeof(struct copro_msg_lookup) == 80, "msg_lookup");
_Static_assert(offsetof(struct copro_msg_lookup_reply, sig) == 200, "lookup_reply.sig");
_Static_assert(sizeof(struct copro_msg_ping_reply) == 208, "ping_reply");
_Static_assert(sizeof(struct copro_msg_load) == 1616, "msg_load");
_Static_assert(sizeof(struct copro_msg_load) <= 2048, "LOAD fits a session's receive buffer");
_Static_assert(offsetof(struct copro_msg_load, options) == 592, "load.options");
_Static_assert(sizeof(struct copro_msg_load_reply) == 200, "load_reply");
_Static_assert(sizeof(struct copro_msg_unload) == 80, "msg_unload");
_Static_assert(sizeof(struct copro_msg_unload_reply) == 192, "unload_reply");

#endif /* COPRO_PROTO_H */
