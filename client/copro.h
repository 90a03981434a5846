/* SPDX-License-Identifier: MIT */
/*
 * copro.h - libcopro, the client library of the copro inference coprocessor.
 *
 * A client connects to coprod over its UNIX socket, receives a shared-memory
 * region of its own, allocates tensors in that region's arena, writes inputs
 * straight into them and submits requests through a lock-free ring. No
 * system call is made on the fast path unless one side sleeps.
 *
 * Thread safety: a struct copro_client is not thread-safe; use one per
 * thread, or serialise calls on it yourself. Distinct clients are fully
 * independent, in one process or many: the library has no global state.
 *
 * Errors: functions return 0 (or a count) on success and a negative code on
 * failure: either -errno (e.g. -EINVAL, -ETIMEDOUT, -EAGAIN) or one of the
 * COPRO_E_* codes below. copro_strerror() describes both. errno is not used.
 */
#ifndef COPRO_H
#define COPRO_H

#include <stddef.h>
#include <stdint.h>

#include "copro_abi.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (COPRO_E_*) are part of the ABI: see copro_abi.h. */

/* How a client waits for completions (struct copro_opts.idle). */
#define COPRO_IDLE_BLOCK	0	/* default: spin for spin_ns, then sleep on the doorbell */
#define COPRO_IDLE_SPIN		1	/* busy-poll: lowest latency, burns a CPU */
#define COPRO_IDLE_YIELD	2	/* spin, then sched_yield() between checks */
#define COPRO_IDLE_MAX		2

struct copro_client;

/* Connection options; zero fields take the defaults noted. */
struct copro_opts {
	uint32_t sq_entries;	/* default 256 */
	uint32_t cq_entries;	/* default 2 * sq_entries */
	uint64_t arena_bytes;	/* default 4 MiB */
	uint32_t idle;		/* COPRO_IDLE_*, default COPRO_IDLE_BLOCK */
	uint32_t spin_ns;	/* spin before sleeping/yielding; 0 = 20000, 1 = sleep at once */
	uint64_t resv[4];	/* must be zero */
};

/*
 * A tensor in the client's arena. data points into the shared region; the
 * other fields describe it. Filled by copro_tensor_alloc(); the caller may
 * change dims/rank afterwards as long as the byte size stays within bytes.
 */
struct copro_tensor {
	void *data;
	uint64_t offset;		/* arena-relative */
	uint64_t bytes;			/* allocated and described length */
	uint32_t dtype;			/* COPRO_DT_* */
	uint32_t rank;
	uint64_t dims[COPRO_MAX_RANK];
};

/* The form of one tensor a model expects: dtype 0, rank -1, dim -1 = any. */
struct copro_tensor_info {
	char name[32];
	uint32_t dtype;
	int32_t rank;
	int64_t dims[COPRO_MAX_RANK];
	uint32_t like_input;		/* 1: output mirrors the input of the same index */
};

/* What copro_lookup() tells about a model. */
struct copro_model_info {
	uint32_t handle;
	uint32_t version;
	uint32_t n_in;			/* entries of in[] */
	uint32_t n_out;			/* entries of out[] */
	uint32_t max_in;		/* most inputs a request may carry */
	uint32_t max_out;
	struct copro_tensor_info in[COPRO_MAX_TENSORS];
	struct copro_tensor_info out[COPRO_MAX_TENSORS];
};

/* One inference request. Tensor pointers must come from this client. */
struct copro_request {
	uint32_t model;			/* handle from copro_lookup() */
	uint16_t priority;		/* higher runs first */
	uint16_t n_in;
	uint16_t n_out;
	uint16_t resv0;
	uint32_t resv1;
	uint64_t user_data;		/* returned in the completion */
	uint64_t deadline_ns;		/* absolute CLOCK_MONOTONIC, 0 = none */
	const struct copro_tensor *const *in;
	const struct copro_tensor *const *out;
};

/* A completion: struct copro_cqe from copro_abi.h. */

int copro_default_socket(char *buf, size_t len);

int copro_connect(const char *socket_path, const struct copro_opts *opts,
		  struct copro_client **out);
void copro_close(struct copro_client *c);

int copro_lookup(struct copro_client *c, const char *name, struct copro_model_info *info);
int copro_ping(struct copro_client *c, uint64_t *rtt_ns);
int copro_status(struct copro_client *c, char *buf, size_t len);
/*
 * Generation with a language model (ABI 1.1; see copro_abi.h for the
 * parameters). One event per generated token, then a final one.
 */
struct copro_gen;

struct copro_gen_event {
	int32_t token;			/* the token's id; -1 in the final event */
	uint32_t index;			/* its place among the generated tokens */
	const char *text;		/* the text it completes (not NUL-terminated), */
	size_t len;			/* valid until copro_gen_free() */
	int done;			/* 1: the final event */
	int32_t status;			/* final: 0, or the code that ended it */
	const struct copro_gen_result *result;	/* final: counts and timings */
};

void copro_gen_params_init(struct copro_gen_params *p);
int copro_gen_start(struct copro_client *c, uint32_t model, const void *prompt, size_t len,
		    const struct copro_gen_params *p, uint16_t priority, struct copro_gen **out);
int copro_gen_next(struct copro_gen *g, struct copro_gen_event *ev, int64_t timeout_ns);
int copro_gen_cancel(struct copro_gen *g);
const struct copro_gen_result *copro_gen_result(const struct copro_gen *g);
int copro_gen_prompt_ids(const struct copro_gen *g, const int32_t **ids);
void copro_gen_free(struct copro_gen *g);

int copro_load(struct copro_client *c, const char *name, const char *path, const char *options,
	       uint32_t *version, char *err, size_t errlen);
int copro_unload(struct copro_client *c, const char *name, uint32_t *version);

int copro_tensor_alloc(struct copro_client *c, uint32_t dtype, uint32_t rank,
		       const uint64_t *dims, struct copro_tensor *t);
void copro_tensor_free(struct copro_client *c, struct copro_tensor *t);

int copro_submit(struct copro_client *c, const struct copro_request *reqs, unsigned int n);
int copro_poll(struct copro_client *c, struct copro_cqe *cqes, unsigned int max);
int copro_wait(struct copro_client *c, struct copro_cqe *cqes, unsigned int max,
	       int64_t timeout_ns);
int copro_run(struct copro_client *c, const struct copro_request *req, int64_t timeout_ns);
int copro_cancel(struct copro_client *c, uint64_t user_data);

const char *copro_strerror(int err);

#ifdef __cplusplus
}
#endif

#endif /* COPRO_H */
