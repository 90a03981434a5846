// SPDX-License-Identifier: MIT
/*
 * loop.c - the event loop: every control-plane event arrives as an io_uring
 * completion on one thread. The data plane (rings) is the poller's.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "copro_abi.h"
#include "layout.h"
#include "log.h"
#include "loop.h"
#include "proto.h"
#include "session.h"
#include "tmodel.h"
#include "llm.h"
#include "llm/llama.h"
#include "cuda/cuda.h"
#include "batcher.h"
#include "cache.h"

/* io_uring user_data tags; receives use the session pointer. */
#define TAG_ACCEPT	1
#define TAG_SIGNAL	2
#define TAG_TIMER	3
#define TAG_NOTIFY	4
#define TAG_CANCEL	5
#define TAG_MAX		4096

#define HELLO_TIMEOUT_NS	(5ULL * 1000000000ULL)
#define SERVER_FEATURES		(COPRO_FEAT_NEED_WAKEUP | COPRO_FEAT_CQ_WAITING | \
				 COPRO_FEAT_CANCEL | COPRO_FEAT_DEADLINE | COPRO_FEAT_GENERATE)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static struct io_uring_sqe *get_sqe(struct copro_server *srv)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&srv->ring);

	if (!sqe) {
		io_uring_submit(&srv->ring);
		sqe = io_uring_get_sqe(&srv->ring);
	}
	return sqe;
}

/* ---- arming ------------------------------------------------------------------ */

static void arm_accept(struct copro_server *srv)
{
	struct io_uring_sqe *sqe = get_sqe(srv);

	io_uring_prep_multishot_accept(sqe, srv->listen_fd, NULL, NULL, SOCK_CLOEXEC);
	io_uring_sqe_set_data64(sqe, TAG_ACCEPT);
}

static void arm_recv(struct copro_server *srv, struct copro_session *s)
{
	struct io_uring_sqe *sqe = get_sqe(srv);

	/* MSG_TRUNC: the result is the packet's real length, so we see oversize. */
	io_uring_prep_recv(sqe, s->sock, s->rbuf, sizeof(s->rbuf), MSG_TRUNC);
	io_uring_sqe_set_data(sqe, s);
}

static void arm_read(struct copro_server *srv, int fd, void *buf, size_t len, uint64_t tag)
{
	struct io_uring_sqe *sqe = get_sqe(srv);

	io_uring_prep_read(sqe, fd, buf, len, 0);
	io_uring_sqe_set_data64(sqe, tag);
}

static void arm_timer(struct copro_server *srv)
{
	struct io_uring_sqe *sqe = get_sqe(srv);
	uint64_t ns = (uint64_t)srv->cfg.heartbeat_ms * 1000000ULL;

	srv->hb_ts.tv_sec = ns / 1000000000ULL;
	srv->hb_ts.tv_nsec = ns % 1000000000ULL;
	io_uring_prep_timeout(sqe, &srv->hb_ts, 0, 0);
	io_uring_sqe_set_data64(sqe, TAG_TIMER);
}

/* ---- sessions ---------------------------------------------------------------- */

static void list_add(struct copro_server *srv, struct copro_session *s)
{
	s->next = srv->sessions;
	s->prev = NULL;
	if (srv->sessions)
		srv->sessions->prev = s;
	srv->sessions = s;
	srv->n_sessions++;
}

static void list_del(struct copro_server *srv, struct copro_session *s)
{
	if (s->prev)
		s->prev->next = s->next;
	else
		srv->sessions = s->next;
	if (s->next)
		s->next->prev = s->prev;
	srv->n_sessions--;
}

/*
 * Forgets a session whose socket has closed (its receive has completed, so
 * no operation of ours refers to it). A session the poller serves is freed
 * by the poller; one that never finished HELLO is freed here.
 */
static void close_session(struct copro_server *srv, struct copro_session *s)
{
	list_del(srv, s);
	log_debug("client %llu (pid %d) gone", (unsigned long long)s->id, (int)s->pid);
	if (s->hello_done) {
		if (copro_poller_remove(&srv->poller, s) < 0)
			log_err("cannot hand client %llu back to the poller; leaking it",
				(unsigned long long)s->id);
	} else {
		copro_session_free(s);
	}
}

/* Sends a reply, with fds if nfds > 0. Never blocks: a client that does not
 * read its replies loses its connection. */
static int send_reply(struct copro_session *s, void *msg, size_t len, const int *fds, int nfds)
{
	union {
		char b[CMSG_SPACE(3 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = msg, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };

	if (nfds) {
		struct cmsghdr *cm;

		memset(&cbuf, 0, sizeof(cbuf));
		mh.msg_control = cbuf.b;
		mh.msg_controllen = CMSG_SPACE(nfds * sizeof(int));
		cm = CMSG_FIRSTHDR(&mh);
		cm->cmsg_level = SOL_SOCKET;
		cm->cmsg_type = SCM_RIGHTS;
		cm->cmsg_len = CMSG_LEN(nfds * sizeof(int));
		memcpy(CMSG_DATA(cm), fds, nfds * sizeof(int));
	}
	if (sendmsg(s->sock, &mh, MSG_NOSIGNAL | MSG_DONTWAIT) != (ssize_t)len)
		return -errno;
	return 0;
}

static void reply_init(struct copro_msg_reply *r, uint32_t type, uint64_t seq, size_t len,
		       int status, const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void reply_init(struct copro_msg_reply *r, uint32_t type, uint64_t seq, size_t len,
		       int status, const char *fmt, ...)
{
	va_list ap;

	memset(r, 0, len);
	r->hdr.type = type | COPRO_MSG_REPLY;
	r->hdr.len = (uint32_t)len;
	r->hdr.seq = seq;
	r->status = status;
	if (fmt) {
		va_start(ap, fmt);
		vsnprintf(r->errmsg, sizeof(r->errmsg), fmt, ap);
		va_end(ap);
	}
}

/* Sends an error reply; returns -1 so callers can `return reply_error(...)` to drop. */
static int reply_error(struct copro_session *s, uint32_t type, uint64_t seq, int status,
		       const char *why)
{
	struct copro_msg_reply r;

	reply_init(&r, type, seq, sizeof(r), status, "%s", why);
	send_reply(s, &r, sizeof(r), NULL, 0);
	log_info("client %llu (pid %d uid %d): %s", (unsigned long long)s->id, (int)s->pid,
		 (int)s->uid, why);
	return -1;
}

/* ---- models ---------------------------------------------------------------------- */

/*
 * Loads a tensor model as the next version of mc->name and starts serving
 * it; the version it replaces drains (its admitted requests finish) and is
 * freed once the poller retires it. Returns 0 with the new slot in *out, or
 * a negative code with a one-line reason in err.
 */
static int load_model(struct copro_server *srv, const struct copro_model_config *mc,
		      struct copro_model **out, uint32_t *replaced, char *err, size_t errlen)
{
	const char *device, *auto_why = NULL;
	int gguf;
	struct copro_model *m, *old;
	struct copro_tmodel *tm;
	int ret;

	*replaced = 0;
	m = copro_registry_reserve(&srv->reg);
	if (!m) {
		snprintf(err, errlen, "too many models loaded (%d versions, draining ones included)",
			 COPRO_MODELS_MAX);
		return -ENOSPC;
	}
	ret = copro_registry_name(&srv->reg, m, mc->name);
	if (ret) {
		snprintf(err, errlen, "%s", ret == -ENOSPC ? "too many model names" :
					    "model name too long");
		goto release;
	}
	m->cfg = *mc;
	gguf = copro_llm_is_gguf(mc->path);
	/*
	 * device = auto: a language model goes to the first GPU when there is
	 * one; tensor models run on the CPU (no GPU path for ONNX yet).
	 */
	device = mc->device;
	if (!strcmp(device, "auto")) {
		struct copro_cuda_dev dev;
		const char *why = NULL;

		if (!gguf) {
			device = "cpu";
			auto_why = "tensor models run on the CPU";
		} else if (copro_cuda_devices(&dev, 1, &why) > 0) {
			device = "cuda:0";
		} else {
			device = "cpu";
			auto_why = why ? why : "no GPU";
		}
	}
	/* Placement first: a device that does not exist is refused before the file is read. */
	ret = copro_place_resolve(mc->numa == COPRO_NUMA_INHERIT ? srv->cfg.numa : mc->numa,
				  device, &m->place, err, errlen);
	if (ret)
		goto release;
	if (gguf) {
		struct copro_llm *llm;
		int gpu = strncmp(m->place.device, "cuda:", 5) ? -1 : atoi(m->place.device + 5);

		ret = copro_llm_load(mc, gpu, &llm, err, errlen);
		if (ret && gpu >= 0 && !strcmp(mc->device, "auto")) {
			/* auto: a GPU that cannot take the model leaves it to the CPU. */
			log_warn("model %s: %s: %s; serving on the CPU", mc->name, m->place.device,
				 err);
			auto_why = "the GPU could not take it";
			ret = copro_place_resolve(mc->numa == COPRO_NUMA_INHERIT ? srv->cfg.numa :
						  mc->numa, "cpu", &m->place, err, errlen);
			if (!ret)
				ret = copro_llm_load(mc, -1, &llm, err, errlen);
		}
		if (ret)
			goto release;
		copro_llm_place(llm, &m->place);
		copro_registry_set_llm(m, llm);
	} else {
		ret = copro_tmodel_load(mc, &tm, err, errlen);
		if (ret)
			goto release;
		copro_registry_set_tmodel(m, tm);
	}
	ret = copro_poller_model_start(&srv->poller, m);
	if (ret) {
		snprintf(err, errlen, "cannot start its worker: %s", strerror(-ret));
		copro_tmodel_free(m->tm);
		copro_llm_free(m->llm);
		goto release;
	}
	m->loaded_ns = now_ns();
	{
		char nb[16], node[16];
		int32_t numa = mc->numa == COPRO_NUMA_INHERIT ? srv->cfg.numa : mc->numa;

		snprintf(node, sizeof(node), "%d", m->place.node);
		log_info("model %s: numa %s, device %s%s%s%s, node %s, cpus %s", mc->name,
			 copro_numa_name(numa, nb, sizeof(nb)), m->place.device,
			 auto_why ? " (auto: " : "", auto_why ? auto_why : "", auto_why ? ")" : "",
			 m->place.node >= 0 ? node : "none",
			 m->place.node >= 0 ? m->place.cpulist : "any");
	}
	copro_registry_publish(&srv->reg, m, &old);
	if (old)
		*replaced = old->version;
	if (m->llm)
		log_info("model %s version %u: %s, language model, %u layers, dim %u, vocab %u, "
			 "context %u, %u KV blocks%s", mc->name, m->version, mc->path,
			 m->llm->m->hp.n_layers, m->llm->m->hp.dim, m->llm->m->hp.vocab,
			 m->llm->ctx, atomic_load(&m->llm->kv_total),
			 old ? "; the previous version drains" : "");
	else
		log_info("model %s version %u: %s, %u inputs, %u outputs, max_batch %u, "
			 "max_delay_us %u%s", mc->name, m->version, mc->path, m->tm->n_in,
			 m->tm->n_out, mc->max_batch, mc->max_delay_us,
			 old ? "; the previous version drains" : "");
	*out = m;
	return 0;
release:
	copro_registry_release(&srv->reg, m);
	return ret;
}

/* Frees the versions the poller has retired (drained and unreachable). */
static void free_retired(struct copro_server *srv)
{
	for (uint32_t i = 0, n = copro_registry_slots(&srv->reg); i < n; i++) {
		struct copro_model *m = &srv->reg.models[i];

		/* Acquire pairs with the poller's release of RETIRED. */
		if (atomic_load_explicit(&m->state, memory_order_acquire) != COPRO_MODEL_RETIRED)
			continue;
		log_info("model %s version %u: drained, unloaded", m->name, m->version);
		copro_poller_model_stop(m);
		copro_tmodel_free(m->tm);
		copro_llm_free(m->llm);
		copro_registry_release(&srv->reg, m);
	}
}

/* ---- control messages ---------------------------------------------------------- */

static int do_hello(struct copro_server *srv, struct copro_session *s, size_t n)
{
	const struct copro_msg_hello *h = (const void *)s->rbuf;
	struct copro_msg_hello_reply rep;
	struct copro_layout lay;
	char why[COPRO_ERRMSG_MAX];
	int fds[3], ret;

	if (n != sizeof(*h))
		return reply_error(s, COPRO_MSG_HELLO, h->hdr.seq, COPRO_E_PROTO,
				   "malformed HELLO (wrong size)");
	if (h->abi_major != COPRO_ABI_MAJOR) {
		snprintf(why, sizeof(why), "ABI mismatch: client ABI %u.%u, server ABI %u.%u",
			 h->abi_major, h->abi_minor, COPRO_ABI_MAJOR, COPRO_ABI_MINOR);
		return reply_error(s, COPRO_MSG_HELLO, h->hdr.seq, COPRO_E_ABI, why);
	}
	if (h->flags || h->resv[0] || h->resv[1])
		return reply_error(s, COPRO_MSG_HELLO, h->hdr.seq, COPRO_E_PROTO,
				   "HELLO with non-zero reserved fields");
	if (!copro_config_allows(&srv->cfg, s->uid, s->gid)) {
		snprintf(why, sizeof(why), "uid %d gid %d not allowed", (int)s->uid, (int)s->gid);
		return reply_error(s, COPRO_MSG_HELLO, h->hdr.seq, COPRO_E_DENIED, why);
	}
	if (srv->n_sessions > srv->cfg.max_clients)
		return reply_error(s, COPRO_MSG_HELLO, h->hdr.seq, COPRO_E_OVERLOAD,
				   "too many clients (max_clients)");
	if (h->arena_size > srv->cfg.max_arena_mib << 20) {
		snprintf(why, sizeof(why), "arena of %llu bytes exceeds max_arena_mib %llu",
			 (unsigned long long)h->arena_size,
			 (unsigned long long)srv->cfg.max_arena_mib);
		return reply_error(s, COPRO_MSG_HELLO, h->hdr.seq, -EFBIG, why);
	}
	ret = copro_layout_compute(h->sq_entries, h->cq_entries, h->arena_size, &lay);
	if (ret)
		return reply_error(s, COPRO_MSG_HELLO, h->hdr.seq, -EINVAL,
				   "bad ring or arena sizes");
	ret = copro_session_region(s, &lay, srv->epoch, SERVER_FEATURES, &srv->poller.place);
	if (ret) {
		snprintf(why, sizeof(why), "cannot create region: %s", strerror(-ret));
		return reply_error(s, COPRO_MSG_HELLO, h->hdr.seq, -ENOMEM, why);
	}

	reply_init(&rep.r, COPRO_MSG_HELLO, h->hdr.seq, sizeof(rep), 0, NULL);
	rep.abi_major = COPRO_ABI_MAJOR;
	rep.abi_minor = COPRO_ABI_MINOR;
	rep.client_id = (uint32_t)s->id;
	rep.features = SERVER_FEATURES;
	rep.region_size = lay.region_size;
	fds[0] = s->memfd;
	fds[1] = s->sq_efd;
	fds[2] = s->cq_efd;
	ret = send_reply(s, &rep, sizeof(rep), fds, 3);
	/* Our mapping keeps the memory; the client has its own descriptor now. */
	close(s->memfd);
	s->memfd = -1;
	if (ret) {
		log_info("client %llu: HELLO reply failed: %s", (unsigned long long)s->id,
			 strerror(-ret));
		return -1;
	}
	ret = copro_poller_add(&srv->poller, s);
	if (ret) {
		log_err("client %llu: cannot hand to poller: %s", (unsigned long long)s->id,
			strerror(-ret));
		return -1;
	}
	s->hello_done = 1;
	log_debug("client %llu (pid %d uid %d): sq %u cq %u arena %llu", (unsigned long long)s->id,
		  (int)s->pid, (int)s->uid, lay.sq_entries, lay.cq_entries,
		  (unsigned long long)lay.arena_size);
	return 0;
}

static int do_lookup(struct copro_server *srv, struct copro_session *s, size_t n)
{
	const struct copro_msg_lookup *q = (const void *)s->rbuf;
	struct copro_msg_lookup_reply rep;
	const struct copro_model *m;

	if (n != sizeof(*q) || !memchr(q->name, '\0', sizeof(q->name)))
		return reply_error(s, COPRO_MSG_LOOKUP, q->hdr.seq, COPRO_E_PROTO,
				   "malformed LOOKUP");
	m = copro_registry_find(&srv->reg, q->name);
	if (!m) {
		struct copro_msg_reply r;

		reply_init(&r, COPRO_MSG_LOOKUP, q->hdr.seq, sizeof(r), COPRO_E_NOMODEL,
			   "no model named '%s'", q->name);
		return send_reply(s, &r, sizeof(r), NULL, 0) ? -1 : 0;
	}
	reply_init(&rep.r, COPRO_MSG_LOOKUP, q->hdr.seq, sizeof(rep), 0, NULL);
	rep.handle = m->handle;
	rep.version = m->version;
	rep.n_in = m->n_in;
	rep.n_out = m->n_out;
	rep.max_in = m->max_in;
	rep.max_out = m->max_out;
	memcpy(rep.sig, m->sig, sizeof(rep.sig));
	return send_reply(s, &rep, sizeof(rep), NULL, 0) ? -1 : 0;
}

static int do_ping(struct copro_server *srv, struct copro_session *s)
{
	const struct copro_msg_hdr *q = (const void *)s->rbuf;
	struct copro_msg_ping_reply rep;

	reply_init(&rep.r, COPRO_MSG_PING, q->seq, sizeof(rep), 0, NULL);
	rep.server_epoch = srv->epoch;
	rep.server_ns = now_ns();
	rep.pid = (uint32_t)getpid();
	return send_reply(s, &rep, sizeof(rep), NULL, 0) ? -1 : 0;
}

/* Appends printf output to a bounded buffer, tracking the length. */
static void __attribute__((format(printf, 4, 5)))
bprintf(char *buf, size_t cap, size_t *len, const char *fmt, ...)
{
	va_list ap;
	int n;

	if (*len >= cap)
		return;
	va_start(ap, fmt);
	n = vsnprintf(buf + *len, cap - *len, fmt, ap);
	va_end(ap);
	if (n > 0)
		*len = *len + (size_t)n < cap ? *len + (size_t)n : cap;
}

/*
 * Appends one "worker" line per thread that serves: the poller, then each
 * model's batching or generation worker, with where it was placed and
 * what the thread read back of its CPUs and memory policy.
 */
static void status_workers(struct copro_server *srv, char *text, size_t cap, size_t *len)
{
	char where[192];

	copro_place_format(&srv->poller.place, &srv->poller.placed, where, sizeof(where));
	bprintf(text, cap, len, "worker kind=poller tid=%d model=- %s\n",
		(int)srv->poller.placed.tid, where);
	for (uint32_t i = 0, nm = copro_registry_slots(&srv->reg); i < nm; i++) {
		struct copro_model *m = &srv->reg.models[i];
		uint32_t st = atomic_load(&m->state);
		const struct copro_placed *pl;

		if (st == COPRO_MODEL_FREE || st == COPRO_MODEL_LOADING)
			continue;
		if (m->batcher)
			pl = &m->batcher->placed;
		else if (m->llm && m->llm->started)
			pl = &m->llm->placed;
		else
			continue;	/* a built-in model runs on the poller */
		copro_place_format(&m->place, pl, where, sizeof(where));
		bprintf(text, cap, len, "worker kind=%s tid=%d model=%s version=%u %s\n",
			pl->kind, (int)pl->tid, m->name, m->version, where);
	}
}

static int do_status(struct copro_server *srv, struct copro_session *s)
{
	const struct copro_msg_hdr *q = (const void *)s->rbuf;
	struct copro_msg_reply *rep;
	size_t cap = COPRO_MSG_MAX - sizeof(*rep), len = 0;
	uint64_t now = now_ns();
	char *text;
	int ret;

	rep = malloc(COPRO_MSG_MAX);
	if (!rep)
		return reply_error(s, COPRO_MSG_STATUS, q->seq, -ENOMEM, "out of memory");
	reply_init(rep, COPRO_MSG_STATUS, q->seq, sizeof(*rep), 0, NULL);
	text = (char *)(rep + 1);
	bprintf(text, cap, &len, "pid %d\nepoch %llu\nuptime_s %.3f\nsocket %s\n", (int)getpid(),
		(unsigned long long)srv->epoch, (now - srv->start_ns) / 1e9, srv->cfg.socket);
	bprintf(text, cap, &len, "idle %s\nspin_us %u\nclients %u\nmax_clients %u\n",
		copro_idle_name(atomic_load(&srv->poller.idle)), srv->cfg.spin_us,
		srv->n_sessions, srv->cfg.max_clients);
	bprintf(text, cap, &len, "poller passes=%llu sleeps=%llu wakeups=%llu completed=%llu\n",
		(unsigned long long)atomic_load(&srv->poller.passes),
		(unsigned long long)atomic_load(&srv->poller.sleeps),
		(unsigned long long)atomic_load(&srv->poller.wakeups_sent),
		(unsigned long long)atomic_load(&srv->poller.completed));
	for (struct copro_session *c = srv->sessions; c; c = c->next) {
		uint32_t sqd = 0, cqd = 0;

		if (c->hello_done) {
			/* Racy snapshots of the shared indices: fine for a status line. */
			sqd = copro_load_relaxed(c->sq.tail) - copro_load_relaxed(c->sq.head);
			cqd = copro_load_relaxed(c->cq.tail) - copro_load_relaxed(c->cq.head);
		}
		bprintf(text, cap, &len,
			"client id=%llu pid=%d uid=%d state=%s sq=%u cq=%u arena=%llu "
			"sq_depth=%u cq_depth=%u served=%llu errors=%llu\n",
			(unsigned long long)c->id, (int)c->pid, (int)c->uid,
			atomic_load(&c->broken) ? "broken" : c->hello_done ? "active" : "handshake",
			c->lay.sq_entries, c->lay.cq_entries, (unsigned long long)c->lay.arena_size,
			sqd, cqd, (unsigned long long)atomic_load(&c->served),
			(unsigned long long)atomic_load(&c->errors));
	}
	for (uint32_t i = 0, nm = copro_registry_slots(&srv->reg); i < nm; i++) {
		static const char *const states[] = { "free", "loading", "serving", "draining",
						      "retired" };
		struct copro_model *m = &srv->reg.models[i];
		uint32_t st = atomic_load(&m->state);

		if (st == COPRO_MODEL_FREE || st == COPRO_MODEL_LOADING)
			continue;
		bprintf(text, cap, &len,
			"model name=%s handle=%u version=%u state=%s served=%llu failed=%llu",
			m->name, m->handle, m->version, states[st],
			(unsigned long long)atomic_load(&m->served),
			(unsigned long long)atomic_load(&m->failed));
		if (m->tm)
			bprintf(text, cap, &len, " path=%s precision=%s", m->cfg.path,
				m->cfg.precision == 2 ? "int8" : m->cfg.precision == 1 ? "bf16" : "f32");
		if (m->llm) {
			struct copro_llm *l = m->llm;
			uint64_t lk = atomic_load(&l->kv_q_blocks), h = atomic_load(&l->kv_hit_blocks);

			bprintf(text, cap, &len,
				" path=%s kind=llm device=%s degraded=%u context=%u running=%u "
				"waiting=%u steps=%llu "
				"tokens=%llu generated=%llu preemptions=%llu kv_blocks=%u "
				"kv_block_tokens=%u kv_used=%u kv_cached=%u kv_free=%u "
				"kv_utilization=%.3f prefix_hits=%llu prefix_lookups=%llu "
				"prefix_hit_rate=%.3f", m->cfg.path, l->device,
				atomic_load(&l->degraded), l->ctx,
				atomic_load(&l->st_running), atomic_load(&l->st_waiting),
				(unsigned long long)atomic_load(&l->st_steps),
				(unsigned long long)atomic_load(&l->st_tokens),
				(unsigned long long)atomic_load(&l->st_generated),
				(unsigned long long)atomic_load(&l->st_preemptions),
				atomic_load(&l->kv_total), l->block_tokens, atomic_load(&l->kv_used),
				atomic_load(&l->kv_cached), atomic_load(&l->kv_free),
				atomic_load(&l->kv_util_ppm) / 1e6, (unsigned long long)h,
				(unsigned long long)lk, lk ? (double)h / (double)lk : 0.0);
		}
		if (m->batcher) {
			struct copro_batcher *b = m->batcher;
			uint64_t nb = atomic_load(&b->batches), rows = atomic_load(&b->rows);

			bprintf(text, cap, &len,
				" max_batch=%u max_delay_us=%llu batches=%llu rows=%llu "
				"avg_batch=%.2f expired=%llu",
				b->max_batch, (unsigned long long)(b->max_delay_ns / 1000),
				(unsigned long long)nb, (unsigned long long)rows,
				nb ? (double)rows / nb : 0.0,
				(unsigned long long)atomic_load(&b->expired));
		}
		if (m->cache) {
			struct copro_cache *c = m->cache;

			bprintf(text, cap, &len,
				" cache_hits=%llu cache_misses=%llu cache_entries=%llu "
				"cache_bytes=%llu cache_evictions=%llu",
				(unsigned long long)atomic_load(&c->hits),
				(unsigned long long)atomic_load(&c->misses),
				(unsigned long long)atomic_load(&c->entries),
				(unsigned long long)atomic_load(&c->used_bytes),
				(unsigned long long)atomic_load(&c->evictions));
		}
		bprintf(text, cap, &len, "\n");
	}
	status_workers(srv, text, cap, &len);
	if (len >= cap)
		len = cap - 1;
	text[len] = '\0';
	rep->hdr.len = (uint32_t)(sizeof(*rep) + len + 1);
	ret = send_reply(s, rep, sizeof(*rep) + len + 1, NULL, 0);
	free(rep);
	return ret ? -1 : 0;
}

/*
 * Parses LOAD options: "key=value" lines (or ';'-separated) with the keys of
 * a [model.NAME] section. Returns 0 or -EINVAL with the reason in why.
 */
static int parse_options(struct copro_model_config *mc, char *opts, char *why, size_t whylen)
{
	char *save = NULL;

	for (char *kv = strtok_r(opts, "\n;", &save); kv; kv = strtok_r(NULL, "\n;", &save)) {
		char *eq = strchr(kv, '=');
		int ret;

		while (*kv == ' ' || *kv == '\t')
			kv++;
		if (!*kv)
			continue;
		if (!eq) {
			snprintf(why, whylen, "option '%.60s' is not key=value", kv);
			return -EINVAL;
		}
		*eq = '\0';
		if (!strcmp(kv, "path")) {
			snprintf(why, whylen, "give the path as the path argument, not an option");
			return -EINVAL;
		}
		ret = copro_model_config_set(mc, kv, eq + 1);
		if (ret) {
			snprintf(why, whylen, ret == -ENOENT ? "unknown option '%.40s'" :
				 "bad value '%.60s' for option '%.40s'",
				 ret == -ENOENT ? kv : eq + 1, kv);
			return -EINVAL;
		}
	}
	return 0;
}

static int do_load(struct copro_server *srv, struct copro_session *s, size_t n)
{
	struct copro_msg_load *q = (void *)s->rbuf;
	struct copro_msg_load_reply rep;
	struct copro_model_config mc;
	const struct copro_model *cur;
	struct copro_model *m;
	char why[COPRO_ERRMSG_MAX];
	uint32_t replaced;
	int ret;

	if (n != sizeof(*q) || !memchr(q->name, '\0', sizeof(q->name)) ||
	    !memchr(q->path, '\0', sizeof(q->path)) ||
	    !memchr(q->options, '\0', sizeof(q->options)))
		return reply_error(s, COPRO_MSG_LOAD, q->hdr.seq, COPRO_E_PROTO, "malformed LOAD");
	if (!copro_config_is_admin(&srv->cfg, s->uid)) {
		snprintf(why, sizeof(why), "uid %d may not load models (admin_uids)", (int)s->uid);
		goto refuse_denied;
	}
	cur = copro_registry_find(&srv->reg, q->name);
	if (cur && !cur->tm && !cur->llm) {
		snprintf(why, sizeof(why), "'%s' is a built-in model", q->name);
		ret = -EPERM;
		goto refuse;
	}
	if (!q->name[0] || strlen(q->name) >= sizeof(mc.name)) {
		snprintf(why, sizeof(why), "bad model name");
		ret = -EINVAL;
		goto refuse;
	}
	/* A new version starts from the serving one's options and file. */
	if (cur)
		mc = cur->cfg;
	else
		copro_model_config_defaults(&mc, q->name);
	if (q->path[0]) {
		snprintf(mc.path, sizeof(mc.path), "%s", q->path);
	} else if (!cur) {
		snprintf(why, sizeof(why), "no model '%s' is loaded: give its file", q->name);
		ret = COPRO_E_NOMODEL;
		goto refuse;
	}
	ret = parse_options(&mc, q->options, why, sizeof(why));
	if (ret)
		goto refuse;
	ret = load_model(srv, &mc, &m, &replaced, why, sizeof(why));
	if (ret)
		goto refuse;
	reply_init(&rep.r, COPRO_MSG_LOAD, q->hdr.seq, sizeof(rep), 0, NULL);
	rep.handle = m->handle;
	rep.version = m->version;
	rep.replaced = replaced;
	rep.resv = 0;
	return send_reply(s, &rep, sizeof(rep), NULL, 0) ? -1 : 0;
refuse_denied:
	ret = COPRO_E_DENIED;
refuse:
	{
		struct copro_msg_reply r;

		reply_init(&r, COPRO_MSG_LOAD, q->hdr.seq, sizeof(r), ret, "%s", why);
		log_info("client %llu (pid %d uid %d): load %s: %s", (unsigned long long)s->id,
			 (int)s->pid, (int)s->uid, q->name, why);
		return send_reply(s, &r, sizeof(r), NULL, 0) ? -1 : 0;
	}
}

static int do_unload(struct copro_server *srv, struct copro_session *s, size_t n)
{
	const struct copro_msg_unload *q = (const void *)s->rbuf;
	struct copro_msg_unload_reply rep;
	const struct copro_model *cur;
	struct copro_model *old;
	struct copro_msg_reply r;
	int ret;

	if (n != sizeof(*q) || !memchr(q->name, '\0', sizeof(q->name)))
		return reply_error(s, COPRO_MSG_UNLOAD, q->hdr.seq, COPRO_E_PROTO,
				   "malformed UNLOAD");
	if (!copro_config_is_admin(&srv->cfg, s->uid)) {
		reply_init(&r, COPRO_MSG_UNLOAD, q->hdr.seq, sizeof(r), COPRO_E_DENIED,
			   "uid %d may not unload models (admin_uids)", (int)s->uid);
		return send_reply(s, &r, sizeof(r), NULL, 0) ? -1 : 0;
	}
	cur = copro_registry_find(&srv->reg, q->name);
	if (cur && !cur->tm && !cur->llm) {
		reply_init(&r, COPRO_MSG_UNLOAD, q->hdr.seq, sizeof(r), -EPERM,
			   "'%s' is a built-in model", q->name);
		return send_reply(s, &r, sizeof(r), NULL, 0) ? -1 : 0;
	}
	ret = copro_registry_unpublish(&srv->reg, q->name, &old);
	if (ret) {
		reply_init(&r, COPRO_MSG_UNLOAD, q->hdr.seq, sizeof(r), COPRO_E_NOMODEL,
			   "no model named '%s'", q->name);
		return send_reply(s, &r, sizeof(r), NULL, 0) ? -1 : 0;
	}
	log_info("model %s version %u: unloading; admitted requests finish", old->name,
		 old->version);
	reply_init(&rep.r, COPRO_MSG_UNLOAD, q->hdr.seq, sizeof(rep), 0, NULL);
	rep.version = old->version;
	rep.resv = 0;
	return send_reply(s, &rep, sizeof(rep), NULL, 0) ? -1 : 0;
}

/*
 * Handles one control message of n bytes in s->rbuf. Returns 0 to keep the
 * connection, -1 to drop it (the client was told why when we could).
 */
static int handle_msg(struct copro_server *srv, struct copro_session *s, size_t n)
{
	const struct copro_msg_hdr *h = (const void *)s->rbuf;
	char why[COPRO_ERRMSG_MAX];

	if (n < sizeof(*h) || n > sizeof(s->rbuf))
		return reply_error(s, 0, 0, COPRO_E_PROTO, "truncated or oversized message");
	if (h->len != n)
		return reply_error(s, h->type & ~COPRO_MSG_REPLY, h->seq, COPRO_E_PROTO,
				   "message length does not match its header");
	if (!s->hello_done && h->type != COPRO_MSG_HELLO)
		return reply_error(s, h->type & ~COPRO_MSG_REPLY, h->seq, COPRO_E_PROTO,
				   "the first message must be HELLO");
	switch (h->type) {
	case COPRO_MSG_HELLO:
		if (s->hello_done)
			return reply_error(s, h->type, h->seq, COPRO_E_PROTO, "second HELLO");
		return do_hello(srv, s, n);
	case COPRO_MSG_LOOKUP:
		return do_lookup(srv, s, n);
	case COPRO_MSG_PING:
		return do_ping(srv, s);
	case COPRO_MSG_STATUS:
		return do_status(srv, s);
	case COPRO_MSG_LOAD:
		return do_load(srv, s, n);
	case COPRO_MSG_UNLOAD:
		return do_unload(srv, s, n);
	default:
		snprintf(why, sizeof(why), "unknown message type %u", h->type);
		return reply_error(s, h->type & ~COPRO_MSG_REPLY, h->seq, COPRO_E_PROTO, why);
	}
}

static void on_accept(struct copro_server *srv, int fd)
{
	struct ucred cred;
	socklen_t len = sizeof(cred);
	struct copro_session *s;

	if (srv->stopping) {
		close(fd);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) {
		log_warn("SO_PEERCRED: %s", strerror(errno));
		close(fd);
		return;
	}
	s = copro_session_new(fd, ++srv->next_id);
	if (!s) {
		log_err("out of memory accepting a client");
		close(fd);
		return;
	}
	s->pid = cred.pid;
	s->uid = cred.uid;
	s->gid = cred.gid;
	s->accepted_ns = now_ns();
	list_add(srv, s);
	arm_recv(srv, s);
}

/* Heartbeat: refresh every region's heartbeat, drop stalled handshakes. */
static void on_timer(struct copro_server *srv)
{
	uint64_t now = now_ns();

	for (struct copro_session *s = srv->sessions; s; s = s->next) {
		if (s->hello_done)
			__atomic_store_n(&s->sb->heartbeat_ns, now, __ATOMIC_RELAXED);
		else if (!s->closing && now - s->accepted_ns > HELLO_TIMEOUT_NS) {
			log_info("client %llu (pid %d): no HELLO in time; closing",
				 (unsigned long long)s->id, (int)s->pid);
			s->closing = 1;
			shutdown(s->sock, SHUT_RDWR);
		}
	}
	arm_timer(srv);
}

/*
 * The poller found a broken session (shut its socket so its receive ends)
 * or retired a drained model version (free it).
 */
static void on_notify(struct copro_server *srv)
{
	free_retired(srv);
	for (struct copro_session *s = srv->sessions; s; s = s->next) {
		if (atomic_load(&s->broken) && !s->closing) {
			s->closing = 1;
			shutdown(s->sock, SHUT_RDWR);
		}
	}
	arm_read(srv, srv->notify_efd, &srv->notify_buf, sizeof(srv->notify_buf), TAG_NOTIFY);
}

static void reload(struct copro_server *srv)
{
	struct copro_config cfg;

	if (!srv->config_path) {
		log_info("SIGHUP: no config file to reload");
		return;
	}
	copro_config_defaults(&cfg);
	if (copro_config_load(&cfg, srv->config_path)) {
		log_err("SIGHUP: %s:%d: %s; keeping the old configuration", srv->config_path,
			cfg.errline, cfg.errmsg);
		return;
	}
	if (srv->override_mask & COPRO_OVR_IDLE)
		cfg.idle = srv->overrides.idle;
	if (srv->override_mask & COPRO_OVR_SPIN)
		cfg.spin_us = srv->overrides.spin_us;
	if (srv->override_mask & COPRO_OVR_LOG)
		cfg.log_level = srv->overrides.log_level;
	if (strcmp(cfg.socket, srv->cfg.socket) && !(srv->override_mask & COPRO_OVR_SOCKET))
		log_warn("SIGHUP: socket cannot change without a restart");
	srv->cfg.idle = cfg.idle;
	srv->cfg.spin_us = cfg.spin_us;
	srv->cfg.max_clients = cfg.max_clients;
	srv->cfg.max_arena_mib = cfg.max_arena_mib;
	srv->cfg.heartbeat_ms = cfg.heartbeat_ms;
	srv->cfg.log_level = cfg.log_level;
	memcpy(srv->cfg.allow_uids, cfg.allow_uids, sizeof(cfg.allow_uids));
	memcpy(srv->cfg.allow_gids, cfg.allow_gids, sizeof(cfg.allow_gids));
	memcpy(srv->cfg.admin_uids, cfg.admin_uids, sizeof(cfg.admin_uids));
	srv->cfg.n_allow_uids = cfg.n_allow_uids;
	srv->cfg.n_allow_gids = cfg.n_allow_gids;
	srv->cfg.n_admin_uids = cfg.n_admin_uids;
	copro_log_level = cfg.log_level;
	copro_poller_set_idle(&srv->poller, cfg.idle, cfg.spin_us);
	log_info("SIGHUP: configuration reloaded (idle %s, spin_us %u)",
		 copro_idle_name(cfg.idle), cfg.spin_us);
}

static void on_signal(struct copro_server *srv, int n)
{
	for (int i = 0; i < n; i++) {
		switch (srv->sig_buf[i]) {
		case SIGHUP:
			reload(srv);
			break;
		case SIGTERM:
		case SIGINT:
			log_info("%s: draining", srv->sig_buf[i] == SIGTERM ? "SIGTERM" : "SIGINT");
			srv->stopping = 1;
			return;
		}
	}
	arm_read(srv, srv->sig_pipe[0], srv->sig_buf, sizeof(srv->sig_buf), TAG_SIGNAL);
}

static int sig_write_fd = -1;

static void on_signal_handler(int signo)
{
	uint8_t b = (uint8_t)signo;
	int saved = errno;

	if (write(sig_write_fd, &b, 1) < 0) {
		/* Pipe full: the loop has many signals to read already. */
	}
	errno = saved;
}

/* ---- setup ----------------------------------------------------------------------- */

/*
 * Binds the listening socket. A socket file left by a dead daemon is
 * replaced; one with a live daemon behind it is an error.
 */
static int bind_socket(struct copro_server *srv)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old_mask;
	int fd, ret;

	if (strlen(srv->cfg.socket) >= sizeof(sa.sun_path)) {
		log_err("socket path too long: %s", srv->cfg.socket);
		return -ENAMETOOLONG;
	}
	strcpy(sa.sun_path, srv->cfg.socket);
	fd = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0) {
		log_err("%s: another coprod is already serving there", srv->cfg.socket);
		close(fd);
		return -EADDRINUSE;
	}
	if (errno == ECONNREFUSED)
		unlink(srv->cfg.socket);
	/* The socket file is born with the right mode: no window with umask's. */
	old_mask = umask(~srv->cfg.socket_mode & 0777);
	ret = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	umask(old_mask);
	if (ret < 0) {
		ret = -errno;
		log_err("bind %s: %s", srv->cfg.socket, strerror(errno));
		close(fd);
		return ret;
	}
	if (listen(fd, 128) < 0) {
		ret = -errno;
		log_err("listen %s: %s", srv->cfg.socket, strerror(-ret));
		close(fd);
		unlink(srv->cfg.socket);
		return ret;
	}
	srv->listen_fd = fd;
	return 0;
}

/* Loads every [model.NAME] of the configuration; any failure stops the start. */
static int load_models(struct copro_server *srv)
{
	for (uint32_t i = 0; i < srv->cfg.n_models; i++) {
		const struct copro_model_config *mc = &srv->cfg.models[i];
		struct copro_model *m;
		uint32_t replaced;
		char err[256];
		int ret;

		if (copro_registry_find(&srv->reg, mc->name)) {
			log_err("model %s: the name is taken", mc->name);
			return -EEXIST;
		}
		ret = load_model(srv, mc, &m, &replaced, err, sizeof(err));
		if (ret) {
			log_err("model %s: %s: %s", mc->name, mc->path, err);
			return ret;
		}
	}
	return 0;
}

int copro_server_init(struct copro_server *srv)
{
	int ret;

	srv->listen_fd = srv->notify_efd = -1;
	srv->sig_pipe[0] = srv->sig_pipe[1] = -1;
	srv->start_ns = now_ns();
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		srv->epoch = ((uint64_t)ts.tv_sec << 20) ^ (uint64_t)ts.tv_nsec ^
			     ((uint64_t)getpid() << 40);
	}
	copro_registry_init(&srv->reg);
	signal(SIGPIPE, SIG_IGN);
	/* Three descriptors per client: allow as many as the hard limit lets us. */
	{
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	/*
	 * Signals reach the loop through a self-pipe: the handler only writes
	 * the signal number (async-signal-safe), whatever thread it runs on.
	 * Unlike a signalfd with blocked signals this also holds when a thread
	 * we did not create (a sanitizer's) leaves them unblocked.
	 */
	if (pipe2(srv->sig_pipe, O_CLOEXEC | O_NONBLOCK) < 0)
		return -errno;
	sig_write_fd = srv->sig_pipe[1];
	{
		struct sigaction sa = { .sa_handler = on_signal_handler };

		sigemptyset(&sa.sa_mask);
		sa.sa_flags = SA_RESTART;
		sigaction(SIGTERM, &sa, NULL);
		sigaction(SIGINT, &sa, NULL);
		sigaction(SIGHUP, &sa, NULL);
	}
	srv->notify_efd = eventfd(0, EFD_CLOEXEC);
	if (srv->notify_efd < 0)
		return -errno;
	ret = io_uring_queue_init(256, &srv->ring, 0);
	if (ret < 0) {
		log_err("io_uring: %s", strerror(-ret));
		return ret;
	}
	{
		struct copro_place place;
		char err[160];

		/* The data plane and the clients' regions: the server's node for the CPU. */
		ret = copro_place_resolve(srv->cfg.numa, "cpu", &place, err, sizeof(err));
		if (ret) {
			log_err("%s", err);
			goto fail_ring;
		}
		if (place.node >= 0)
			log_info("poller: numa %s, node %d, cpus %s",
				 copro_numa_name(srv->cfg.numa, err, sizeof(err)), place.node,
				 place.cpulist);
		else
			log_info("poller: numa %s, not placed",
				 copro_numa_name(srv->cfg.numa, err, sizeof(err)));
		ret = copro_poller_start(&srv->poller, &srv->reg, srv->cfg.idle, srv->cfg.spin_us,
					 srv->notify_efd, &place);
	}
	if (ret) {
		log_err("poller: %s", strerror(-ret));
		goto fail_ring;
	}
	/* Models before the socket: a daemon that cannot serve them never shows one. */
	ret = load_models(srv);
	if (!ret)
		ret = bind_socket(srv);
	if (ret) {
		copro_poller_stop(&srv->poller);
		goto fail_ring;
	}
	return 0;
fail_ring:
	io_uring_queue_exit(&srv->ring);
	srv->ring.ring_fd = -1;
	return ret;
}

int copro_server_run(struct copro_server *srv)
{
	arm_accept(srv);
	arm_read(srv, srv->sig_pipe[0], srv->sig_buf, sizeof(srv->sig_buf), TAG_SIGNAL);
	arm_read(srv, srv->notify_efd, &srv->notify_buf, sizeof(srv->notify_buf), TAG_NOTIFY);
	arm_timer(srv);
	log_info("serving on %s (idle %s, pid %d)", srv->cfg.socket,
		 copro_idle_name(srv->cfg.idle), (int)getpid());

	while (!srv->stopping) {
		struct io_uring_cqe *cqe;
		unsigned int head, n = 0;
		int ret;

		ret = io_uring_submit_and_wait(&srv->ring, 1);
		if (ret < 0 && ret != -EINTR) {
			log_err("io_uring wait: %s", strerror(-ret));
			return 1;
		}
		io_uring_for_each_cqe(&srv->ring, head, cqe) {
			uint64_t tag = io_uring_cqe_get_data64(cqe);
			int res = cqe->res;

			n++;
			switch (tag) {
			case TAG_ACCEPT:
				if (res >= 0)
					on_accept(srv, res);
				else if (res != -ECANCELED)
					log_warn("accept: %s", strerror(-res));
				if (!(cqe->flags & IORING_CQE_F_MORE) && !srv->stopping)
					arm_accept(srv);
				break;
			case TAG_SIGNAL:
				if (res > 0)
					on_signal(srv, res);
				else
					arm_read(srv, srv->sig_pipe[0], srv->sig_buf,
						 sizeof(srv->sig_buf), TAG_SIGNAL);
				break;
			case TAG_TIMER:
				on_timer(srv);
				break;
			case TAG_NOTIFY:
				on_notify(srv);
				break;
			case TAG_CANCEL:
				break;
			default: {
				struct copro_session *s = (struct copro_session *)(uintptr_t)tag;

				if (res <= 0 || handle_msg(srv, s, (size_t)res) < 0)
					close_session(srv, s);
				else
					arm_recv(srv, s);
				break;
			}
			}
		}
		io_uring_cq_advance(&srv->ring, n);
	}

	/* Drain: no new clients; the poller finishes what is in the rings. */
	close(srv->listen_fd);
	srv->listen_fd = -1;
	unlink(srv->cfg.socket);
	/*
	 * Forget every session before the poller frees the ones it serves;
	 * free here only those that never reached it.
	 */
	while (srv->sessions) {
		struct copro_session *s = srv->sessions;

		list_del(srv, s);
		if (!s->hello_done)
			copro_session_free(s);
	}
	copro_poller_stop(&srv->poller);
	log_info("stopped");
	return 0;
}

void copro_server_fini(struct copro_server *srv)
{
	/* The poller has stopped every worker: the plans are ours to free. */
	for (uint32_t i = 0, n = copro_registry_slots(&srv->reg); i < n; i++) {
		copro_tmodel_free(srv->reg.models[i].tm);
		srv->reg.models[i].tm = NULL;
		copro_llm_free(srv->reg.models[i].llm);
		srv->reg.models[i].llm = NULL;
	}
	if (srv->ring.ring_fd > 0)
		io_uring_queue_exit(&srv->ring);
	if (srv->listen_fd >= 0) {
		close(srv->listen_fd);
		unlink(srv->cfg.socket);
	}
	for (int i = 0; i < 2; i++)
		if (srv->sig_pipe[i] >= 0)
			close(srv->sig_pipe[i]);
	if (srv->notify_efd >= 0)
		close(srv->notify_efd);
}
