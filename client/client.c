// SPDX-License-Identifier: MIT
/*
 * client.c - libcopro: connect, lookup, submit, reap.
 *
 * Life of a client: copro_connect() performs the HELLO handshake on the
 * daemon's SEQPACKET socket and receives the region memfd and two doorbell
 * eventfds; it maps the region, checks its superblock against the file size
 * and sets up private views of the two rings. From then on submit and reap
 * are loads and stores in shared memory; the only system calls are doorbells
 * when the other side sleeps, made through a small private io_uring that
 * also watches the socket for the daemon's death.
 */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <poll.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "copro.h"
#include "layout.h"
#include "proto.h"
#include "sockpath.h"
#include "arena.h"

#define DEF_SQ_ENTRIES		256
#define DEF_ARENA		(4ULL << 20)
#define DEF_SPIN_NS		20000
#define CTL_TIMEOUT_MS		5000
#define LOAD_TIMEOUT_MS		300000
#define DESC_SLOT		(COPRO_MAX_TENSORS * sizeof(struct copro_tensor_desc))

/* io_uring user_data tags of the client's private ring. */
#define TAG_HUP			1
#define TAG_CQ_POLL		2
#define TAG_DOORBELL		3

struct copro_client {
	int sock;			/* SEQPACKET control socket */
	int sq_efd;			/* doorbell we ring when the server sleeps */
	int cq_efd;			/* doorbell the server rings when we sleep */
	uint8_t *base;			/* the mapped region */
	size_t size;
	struct copro_sb *sb;
	struct copro_ring sq;		/* we produce */
	struct copro_ring cq;		/* we consume */
	uint8_t *arena;
	uint64_t arena_size;
	uint64_t desc_area;		/* bytes at arena start reserved for descriptors */
	struct copro_arena alloc;	/* tensor space after desc_area */

	struct io_uring uring;
	uint8_t cq_poll_armed;		/* multishot poll on cq_efd is live */
	uint8_t doorbell_queued;	/* an SQ doorbell write not yet submitted */
	uint8_t defer_doorbell;		/* copro_run: submit the doorbell with the wait */
	uint8_t dead;			/* socket hung up or region broken */
	uint32_t idle;
	uint32_t spin_ns;
	uint64_t seq;			/* control message sequence */

	/* Completions reaped by copro_run() for someone else, FIFO. */
	struct copro_cqe *stash;
	uint32_t stash_head, stash_len, stash_cap;

	/* Generations in flight; their completions are consumed as they are reaped. */
	struct copro_gen *gens;
	uint64_t gen_seq;
	uint8_t gen_wait;		/* copro_gen_next is waiting: return on progress */
	uint8_t gen_progress;		/* a generation completion was consumed */
};

/* user_data of the library's generation requests (see copro_gen_start). */
#define GEN_TAG			(1ULL << 63)

struct copro_gen {
	struct copro_client *c;
	struct copro_gen *next, *prev;
	uint64_t user_data;
	struct copro_tensor prompt, params, tokens, text, result, pids;
	uint32_t rows;			/* of tokens */
	uint32_t avail;			/* tokens the server says are written */
	uint32_t next_tok;		/* the next token event to give */
	uint32_t text_pos;		/* text bytes given so far */
	uint8_t final, delivered;
	int32_t status;
	struct copro_gen_result res;
};

static void gen_apply(struct copro_client *c, const struct copro_cqe *cqe);

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
	__builtin_ia32_pause();
#elif defined(__aarch64__)
	__asm__ volatile("yield");
#endif
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* ---- errors --------------------------------------------------------------- */

static const char *const copro_errs[] = {
	[1] = "daemon disconnected",
	[2] = "ABI version mismatch with the daemon",
	[3] = "protocol error",
	[4] = "no such model",
	[5] = "tensors do not match the model's signature",
	[6] = "tensor outside the arena",
	[7] = "malformed submission entry",
	[8] = "deadline cannot be met",
	[9] = "overloaded: queue full",
	[10] = "cancelled",
	[11] = "permission denied by daemon policy",
	[12] = "arena exhausted",
	[13] = "daemon is shutting down",
};

/*
 * Returns a static description of err, which may be a COPRO_E_* code or a
 * negative errno value. Never returns NULL; strerror() is not used because
 * it is not thread-safe.
 */
const char *copro_strerror(int err)
{
	int e = -err;

	if (err >= 0)
		return "success";
	if (e > COPRO_E_BASE && e <= COPRO_E_LAST)
		return copro_errs[e - COPRO_E_BASE];
	switch (e) {
	case EINVAL: return "invalid argument";
	case EAGAIN: return "resource temporarily unavailable (ring full)";
	case ETIMEDOUT: return "timed out";
	case ENOENT: return "no such file or directory";
	case ECONNREFUSED: return "connection refused";
	case ENOMEM: return "out of memory";
	case EPERM: return "operation not permitted";
	case EACCES: return "permission denied";
	case ENAMETOOLONG: return "name too long";
	case EPROTO: return "protocol error";
	case ENOSPC: return "no space left";
	case EBADF: return "bad file descriptor";
	case EMFILE: return "too many open files";
	case ECANCELED: return "operation cancelled";
	case ENOTSUP: return "not supported";
	case EFBIG: return "arena larger than the daemon allows (max_arena_mib)";
	case E2BIG: return "prompt longer than the model's context";
	case ERANGE: return "a value out of range (e.g. an index into a table)";
	case EDOM: return "non-finite output (the model rejects NaN/Inf)";
	case EILSEQ: return "input that cannot be tokenized";
	case ENODEV: return "no such device";
	case EIO: return "input/output error";
	default: return "unknown error";
	}
}

/* ---- socket path ------------------------------------------------------------ */

int copro_default_socket(char *buf, size_t len)
{
	return copro_sockpath_default(buf, len);
}

/* ---- control messages --------------------------------------------------------- */

/*
 * Sends one request and receives its reply into buf (up to len bytes), with
 * up to *nfds descriptors passed alongside. Returns the reply's length, or
 * COPRO_E_DISCONNECTED when the socket is gone, -ETIMEDOUT after
 * CTL_TIMEOUT_MS, COPRO_E_PROTO for a reply that does not match.
 */
static int ctl_call_ms(struct copro_client *c, struct copro_msg_hdr *req, void *buf, size_t len,
		       int *fds, int *nfds, int timeout_ms)
{
	union {
		char b[CMSG_SPACE(4 * sizeof(int))];
		struct cmsghdr align;
	} cbuf;
	struct iovec iov = { .iov_base = buf, .iov_len = len };
	struct msghdr mh = { .msg_iov = &iov, .msg_iovlen = 1 };
	struct copro_msg_hdr *rep = buf;
	struct pollfd pfd = { .fd = c->sock, .events = POLLIN };
	uint32_t type = req->type;
	struct cmsghdr *cm;
	ssize_t n;
	int ret, got = 0;

	req->seq = ++c->seq;
	if (send(c->sock, req, req->len, MSG_NOSIGNAL) != (ssize_t)req->len)
		return errno == EPIPE || errno == ECONNRESET ? COPRO_E_DISCONNECTED : -errno;
	do
		ret = poll(&pfd, 1, timeout_ms);
	while (ret < 0 && errno == EINTR);
	if (ret == 0)
		return -ETIMEDOUT;
	if (fds) {
		mh.msg_control = cbuf.b;
		mh.msg_controllen = sizeof(cbuf.b);
	}
	n = recvmsg(c->sock, &mh, MSG_CMSG_CLOEXEC);
	if (n <= 0)
		return COPRO_E_DISCONNECTED;
	for (cm = fds ? CMSG_FIRSTHDR(&mh) : NULL; cm; cm = CMSG_NXTHDR(&mh, cm)) {
		if (cm->cmsg_level == SOL_SOCKET && cm->cmsg_type == SCM_RIGHTS) {
			int k = (cm->cmsg_len - CMSG_LEN(0)) / sizeof(int);

			for (int i = 0; i < k; i++) {
				int fd;

				memcpy(&fd, CMSG_DATA(cm) + i * sizeof(int), sizeof(int));
				if (got < *nfds)
					fds[got++] = fd;
				else
					close(fd);
			}
		}
	}
	if (fds)
		*nfds = got;
	if ((size_t)n < sizeof(struct copro_msg_reply) || rep->len != (uint32_t)n ||
	    rep->type != (type | COPRO_MSG_REPLY) || rep->seq != req->seq) {
		for (int i = 0; fds && i < got; i++)
			close(fds[i]);
		if (fds)
			*nfds = 0;
		return COPRO_E_PROTO;
	}
	return (int)n;
}

static int ctl_call(struct copro_client *c, struct copro_msg_hdr *req, void *buf, size_t len,
		    int *fds, int *nfds)
{
	return ctl_call_ms(c, req, buf, len, fds, nfds, CTL_TIMEOUT_MS);
}

/* ---- connect / close ---------------------------------------------------------- */

static int uring_setup(struct copro_client *c)
{
	struct io_uring_sqe *sqe;
	int ret;

	ret = io_uring_queue_init(8, &c->uring, 0);
	if (ret < 0)
		return ret;
	/* Watch the socket: the daemon's death shows up as a completion here. */
	sqe = io_uring_get_sqe(&c->uring);
	io_uring_prep_poll_multishot(sqe, c->sock, POLLRDHUP | POLLHUP | POLLERR);
	io_uring_sqe_set_data64(sqe, TAG_HUP);
	ret = io_uring_submit(&c->uring);
	return ret < 0 ? ret : 0;
}

static int map_region(struct copro_client *c, int memfd, uint64_t region_size)
{
	struct copro_layout l;
	struct stat st;
	int ret;

	if (fstat(memfd, &st) < 0)
		return -errno;
	if ((uint64_t)st.st_size != region_size || region_size < COPRO_SB_SIZE)
		return COPRO_E_PROTO;
	c->base = mmap(NULL, region_size, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (c->base == MAP_FAILED) {
		c->base = NULL;
		return -errno;
	}
	c->size = region_size;
	c->sb = (struct copro_sb *)c->base;
	/* Acquire pairs with the server's release store of magic, published last. */
	if (__atomic_load_n(&c->sb->magic, __ATOMIC_ACQUIRE) != COPRO_ABI_MAGIC)
		return COPRO_E_PROTO;
	ret = copro_layout_from_sb(c->sb, region_size, &l);
	if (ret == -EPROTONOSUPPORT)
		return COPRO_E_ABI;
	if (ret)
		return COPRO_E_PROTO;
	copro_ring_init(&c->sq, c->base, &l.sq);
	copro_ring_init(&c->cq, c->base, &l.cq);
	c->sq.local = copro_load_relaxed(c->sq.tail);
	c->sq.cached = copro_load_acquire(c->sq.head);
	c->cq.local = copro_load_relaxed(c->cq.head);
	c->cq.cached = c->cq.local;
	c->arena = c->base + l.arena_off;
	c->arena_size = l.arena_size;
	c->desc_area = (uint64_t)l.sq_entries * DESC_SLOT;
	if (c->desc_area >= c->arena_size)
		return COPRO_E_PROTO;
	return copro_arena_init(&c->alloc, c->desc_area, c->arena_size - c->desc_area);
}

int copro_connect(const char *path, const struct copro_opts *opts, struct copro_client **out)
{
	struct copro_opts o = { 0 };
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct copro_msg_hello hello = { 0 };
	struct copro_msg_hello_reply rep;
	char defpath[sizeof(sa.sun_path)];
	struct copro_client *c;
	int fds[3], nfds = 3;
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (opts)
		o = *opts;
	for (int i = 0; i < 4; i++)
		if (o.resv[i])
			return -EINVAL;
	if (o.idle > COPRO_IDLE_MAX)
		return -EINVAL;
	if (!o.sq_entries)
		o.sq_entries = DEF_SQ_ENTRIES;
	if (!o.arena_bytes)
		o.arena_bytes = DEF_ARENA;
	if (!o.spin_ns)
		o.spin_ns = DEF_SPIN_NS;
	if (o.sq_entries > COPRO_SQ_MAX || o.arena_bytes > COPRO_ARENA_MAX)
		return -EINVAL;
	if (!path) {
		ret = copro_default_socket(defpath, sizeof(defpath));
		if (ret < 0)
			return ret;
		path = defpath;
	}
	if (strlen(path) >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	strcpy(sa.sun_path, path);

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	c->sock = c->sq_efd = c->cq_efd = -1;
	c->idle = o.idle;
	c->spin_ns = o.spin_ns;

	c->sock = socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
	if (c->sock < 0) {
		ret = -errno;
		goto fail;
	}
	if (connect(c->sock, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		ret = -errno;
		goto fail;
	}

	hello.hdr.type = COPRO_MSG_HELLO;
	hello.hdr.len = sizeof(hello);
	hello.abi_major = COPRO_ABI_MAJOR;
	hello.abi_minor = COPRO_ABI_MINOR;
	hello.sq_entries = o.sq_entries;
	hello.cq_entries = o.cq_entries;
	/* Descriptor slots live at the start of the arena, on top of what was asked. */
	{
		uint32_t sq = o.sq_entries < COPRO_SQ_MIN ? COPRO_SQ_MIN : o.sq_entries;
		uint32_t p2 = 1;

		while (p2 < sq)
			p2 <<= 1;
		hello.arena_size = o.arena_bytes + (uint64_t)p2 * DESC_SLOT;
	}
	ret = ctl_call(c, &hello.hdr, &rep, sizeof(rep), fds, &nfds);
	if (ret < 0)
		goto fail;
	if (rep.r.status < 0) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		ret = rep.r.status;
		goto fail;
	}
	if ((size_t)ret < sizeof(rep) || nfds != 3) {
		for (int i = 0; i < nfds; i++)
			close(fds[i]);
		ret = COPRO_E_PROTO;
		goto fail;
	}
	c->sq_efd = fds[1];
	c->cq_efd = fds[2];
	ret = map_region(c, fds[0], rep.region_size);
	close(fds[0]);	/* the mapping keeps the memory */
	if (ret)
		goto fail;
	ret = uring_setup(c);
	if (ret)
		goto fail;
	*out = c;
	return 0;
fail:
	copro_close(c);
	return ret;
}

void copro_close(struct copro_client *c)
{
	if (!c)
		return;
	/*
	 * Shut the socket first: our io_uring's poll holds a reference to it,
	 * and the kernel drops that only when it tears the ring down, later.
	 * The daemon should see us go now, not then.
	 */
	if (c->sock >= 0)
		shutdown(c->sock, SHUT_RDWR);
	if (c->uring.ring_fd > 0)
		io_uring_queue_exit(&c->uring);
	if (c->base)
		munmap(c->base, c->size);
	if (c->sock >= 0)
		close(c->sock);
	if (c->sq_efd >= 0)
		close(c->sq_efd);
	if (c->cq_efd >= 0)
		close(c->cq_efd);
	/* Generations not freed by their owner die with the client. */
	while (c->gens) {
		struct copro_gen *g = c->gens;

		c->gens = g->next;
		free(g);
	}
	copro_arena_destroy(&c->alloc);
	free(c->stash);
	free(c);
}

/* ---- control verbs -------------------------------------------------------------- */

int copro_lookup(struct copro_client *c, const char *name, struct copro_model_info *info)
{
	struct copro_msg_lookup req = { 0 };
	struct copro_msg_lookup_reply rep;
	int ret;

	if (!c || !name || !info || strlen(name) >= COPRO_NAME_MAX)
		return -EINVAL;
	req.hdr.type = COPRO_MSG_LOOKUP;
	req.hdr.len = sizeof(req);
	strcpy(req.name, name);
	ret = ctl_call(c, &req.hdr, &rep, sizeof(rep), NULL, NULL);
	if (ret < 0)
		return ret;
	if (rep.r.status < 0)
		return rep.r.status;
	if ((size_t)ret < sizeof(rep) || rep.n_in + rep.n_out > COPRO_MAX_TENSORS)
		return COPRO_E_PROTO;
	memset(info, 0, sizeof(*info));
	info->handle = rep.handle;
	info->version = rep.version;
	info->n_in = rep.n_in;
	info->n_out = rep.n_out;
	info->max_in = rep.max_in;
	info->max_out = rep.max_out;
	for (unsigned int i = 0; i < rep.n_in + rep.n_out; i++) {
		const struct copro_tensor_sig *s = &rep.sig[i];
		struct copro_tensor_info *t = i < rep.n_in ? &info->in[i] : &info->out[i - rep.n_in];

		memcpy(t->name, s->name, sizeof(t->name));
		t->name[sizeof(t->name) - 1] = '\0';
		t->dtype = s->dtype;
		t->rank = s->rank;
		memcpy(t->dims, s->dims, sizeof(t->dims));
		t->like_input = !!(s->flags & COPRO_SIG_F_LIKE_INPUT);
	}
	return 0;
}

/* Copies a reply's reason into err, when the caller gave room for one. */
static void copy_errmsg(const struct copro_msg_reply *r, size_t got, char *err, size_t errlen)
{
	if (!err || !errlen)
		return;
	err[0] = '\0';
	if (got >= sizeof(*r))
		snprintf(err, errlen, "%.*s", (int)sizeof(r->errmsg), r->errmsg);
}

int copro_load(struct copro_client *c, const char *name, const char *path, const char *options,
	       uint32_t *version, char *err, size_t errlen)
{
	struct copro_msg_load *req;
	struct copro_msg_load_reply rep;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (!c || !name || !*name || strlen(name) >= COPRO_NAME_MAX ||
	    (path && strlen(path) >= COPRO_PATH_MAX) ||
	    (options && strlen(options) >= COPRO_OPTIONS_MAX))
		return -EINVAL;
	req = calloc(1, sizeof(*req));
	if (!req)
		return -ENOMEM;
	req->hdr.type = COPRO_MSG_LOAD;
	req->hdr.len = sizeof(*req);
	strcpy(req->name, name);
	if (path)
		strcpy(req->path, path);
	if (options)
		strcpy(req->options, options);
	memset(&rep, 0, sizeof(rep));
	/* Loading compiles the model's plans: allow it minutes, not seconds. */
	ret = ctl_call_ms(c, &req->hdr, &rep, sizeof(rep), NULL, NULL, LOAD_TIMEOUT_MS);
	free(req);
	if (ret < 0)
		return ret;
	copy_errmsg(&rep.r, (size_t)ret, err, errlen);
	if (rep.r.status < 0)
		return rep.r.status;
	if ((size_t)ret < sizeof(rep))
		return COPRO_E_PROTO;
	if (version)
		*version = rep.version;
	return 0;
}

int copro_unload(struct copro_client *c, const char *name, uint32_t *version)
{
	struct copro_msg_unload req = { 0 };
	struct copro_msg_unload_reply rep;
	int ret;

	if (!c || !name || !*name || strlen(name) >= COPRO_NAME_MAX)
		return -EINVAL;
	req.hdr.type = COPRO_MSG_UNLOAD;
	req.hdr.len = sizeof(req);
	strcpy(req.name, name);
	ret = ctl_call(c, &req.hdr, &rep, sizeof(rep), NULL, NULL);
	if (ret < 0)
		return ret;
	if (rep.r.status < 0)
		return rep.r.status;
	if ((size_t)ret < sizeof(rep))
		return COPRO_E_PROTO;
	if (version)
		*version = rep.version;
	return 0;
}

int copro_ping(struct copro_client *c, uint64_t *rtt_ns)
{
	struct copro_msg_hdr req = { .type = COPRO_MSG_PING, .len = sizeof(req) };
	struct copro_msg_ping_reply rep;
	uint64_t t0 = now_ns();
	int ret;

	if (!c)
		return -EINVAL;
	ret = ctl_call(c, &req, &rep, sizeof(rep), NULL, NULL);
	if (ret < 0)
		return ret;
	if (rep.r.status < 0)
		return rep.r.status;
	if (rtt_ns)
		*rtt_ns = now_ns() - t0;
	return 0;
}

int copro_status(struct copro_client *c, char *buf, size_t len)
{
	struct copro_msg_hdr req = { .type = COPRO_MSG_STATUS, .len = sizeof(req) };
	struct copro_msg_reply *rep;
	char *raw;
	int ret;
	size_t n;

	if (!c || (!buf && len))
		return -EINVAL;
	raw = malloc(COPRO_MSG_MAX);
	if (!raw)
		return -ENOMEM;
	ret = ctl_call(c, &req, raw, COPRO_MSG_MAX, NULL, NULL);
	if (ret < 0)
		goto out;
	rep = (struct copro_msg_reply *)raw;
	if (rep->status < 0) {
		ret = rep->status;
		goto out;
	}
	n = strnlen(raw + sizeof(*rep), ret - sizeof(*rep));
	if (len) {
		size_t k = n < len - 1 ? n : len - 1;

		memcpy(buf, raw + sizeof(*rep), k);
		buf[k] = '\0';
	}
	ret = (int)n;
out:
	free(raw);
	return ret;
}

/* ---- tensors --------------------------------------------------------------------- */

int copro_tensor_alloc(struct copro_client *c, uint32_t dtype, uint32_t rank,
		       const uint64_t *dims, struct copro_tensor *t)
{
	uint64_t bytes, off;
	uint32_t esz = copro_dtype_size(dtype);
	int ret;

	if (!c || !t || !esz || rank > COPRO_MAX_RANK || (rank && !dims))
		return -EINVAL;
	bytes = esz;
	for (uint32_t i = 0; i < rank; i++) {
		if (dims[i] && bytes > UINT64_MAX / dims[i])
			return -EINVAL;
		bytes *= dims[i];
	}
	ret = copro_arena_alloc(&c->alloc, bytes ? bytes : 1, &off);
	if (ret)
		return ret == -ENOMEM ? COPRO_E_NOMEM : ret;
	memset(t, 0, sizeof(*t));
	t->data = c->arena + off;
	t->offset = off;
	t->bytes = bytes;
	t->dtype = dtype;
	t->rank = rank;
	for (uint32_t i = 0; i < rank; i++)
		t->dims[i] = dims[i];
	return 0;
}

void copro_tensor_free(struct copro_client *c, struct copro_tensor *t)
{
	if (!c || !t || !t->data)
		return;
	copro_arena_free(&c->alloc, t->offset);
	t->data = NULL;
}

/* ---- submission ----------------------------------------------------------------------- */

/* Checks for the daemon's death without a system call (io_uring CQ is memory). */
static int check_alive(struct copro_client *c)
{
	struct io_uring_cqe *cqe;
	unsigned int head, n = 0;

	if (c->dead)
		return COPRO_E_DISCONNECTED;
	io_uring_for_each_cqe(&c->uring, head, cqe) {
		uint64_t tag = io_uring_cqe_get_data64(cqe);

		n++;
		if (tag == TAG_HUP)
			c->dead = 1;
		else if (tag == TAG_CQ_POLL && !(cqe->flags & IORING_CQE_F_MORE))
			c->cq_poll_armed = 0;
	}
	if (n)
		io_uring_cq_advance(&c->uring, n);
	if (__atomic_load_n(&c->sb->sq_flags, __ATOMIC_RELAXED) & COPRO_SQ_BROKEN)
		c->dead = 1;
	return c->dead ? COPRO_E_DISCONNECTED : 0;
}

static int tensor_ok(const struct copro_client *c, const struct copro_tensor *t)
{
	return t && t->data == c->arena + t->offset && t->offset < c->arena_size &&
	       t->bytes <= c->arena_size - t->offset && t->rank <= COPRO_MAX_RANK;
}

static void fill_desc(struct copro_tensor_desc *d, const struct copro_tensor *t)
{
	d->dtype = (uint8_t)t->dtype;
	d->rank = (uint8_t)t->rank;
	d->flags = 0;
	d->resv0 = 0;
	d->offset = t->offset;
	d->length = t->bytes;
	for (uint32_t i = 0; i < COPRO_MAX_RANK; i++)
		d->dims[i] = i < t->rank ? t->dims[i] : 0;
	d->resv1 = 0;
}

/*
 * Rings the server's doorbell if its poller said it is going to sleep.
 * copro_run() may defer the write to submit it with its own wait.
 */
static void maybe_ring_sq(struct copro_client *c)
{
	static const uint64_t one = 1;
	struct io_uring_sqe *sqe;

	/* Pairs with the poller's flag store + fence: see copro_fence(). */
	copro_fence();
	if (!(__atomic_load_n(&c->sb->sq_flags, __ATOMIC_RELAXED) & COPRO_SQ_NEED_WAKEUP))
		return;
	sqe = io_uring_get_sqe(&c->uring);
	if (!sqe) {
		check_alive(c);
		sqe = io_uring_get_sqe(&c->uring);
		if (!sqe)
			return;
	}
	io_uring_prep_write(sqe, c->sq_efd, &one, sizeof(one), 0);
	io_uring_sqe_set_data64(sqe, TAG_DOORBELL);
	sqe->flags |= IOSQE_CQE_SKIP_SUCCESS;
	/* copro_run() about to sleep submits this with its wait: one syscall. */
	if (c->defer_doorbell && c->idle == COPRO_IDLE_BLOCK) {
		c->doorbell_queued = 1;
		return;
	}
	io_uring_submit(&c->uring);
}

/* Submits a doorbell that copro_run() deferred, before any spinning. */
static void flush_doorbell(struct copro_client *c)
{
	if (c->doorbell_queued) {
		c->doorbell_queued = 0;
		io_uring_submit(&c->uring);
	}
}

static int prep_sqe(struct copro_client *c, const struct copro_request *r, uint32_t idx,
		    uint8_t opcode)
{
	struct copro_sqe *sqe = copro_ring_prod_slot(&c->sq, idx);
	uint32_t slot = (c->sq.local + idx) & c->sq.mask;
	uint64_t doff = (uint64_t)slot * DESC_SLOT;
	struct copro_tensor_desc *d = (struct copro_tensor_desc *)(c->arena + doff);
	unsigned int n = (unsigned int)r->n_in + r->n_out;

	if (n > COPRO_MAX_TENSORS || (r->n_in && !r->in) || (r->n_out && !r->out))
		return -EINVAL;
	for (unsigned int i = 0; i < r->n_in; i++)
		if (!tensor_ok(c, r->in[i]))
			return -EINVAL;
	for (unsigned int i = 0; i < r->n_out; i++)
		if (!tensor_ok(c, r->out[i]))
			return -EINVAL;
	for (unsigned int i = 0; i < r->n_in; i++)
		fill_desc(&d[i], r->in[i]);
	for (unsigned int i = 0; i < r->n_out; i++)
		fill_desc(&d[r->n_in + i], r->out[i]);

	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = opcode;
	sqe->priority = r->priority;
	sqe->model = r->model;
	sqe->user_data = r->user_data;
	sqe->deadline_ns = r->deadline_ns;
	sqe->desc_off = doff;
	sqe->n_in = r->n_in;
	sqe->n_out = r->n_out;
	return 0;
}

/*
 * Queues up to n requests and publishes them with one release store of the
 * SQ tail. Returns how many were queued; a request that fails the client-side
 * checks stops the batch there (-EINVAL if it was the first).
 */
int copro_submit(struct copro_client *c, const struct copro_request *reqs, unsigned int n)
{
	uint32_t space, i;
	int ret;

	if (!c || !reqs || !n)
		return -EINVAL;
	if (c->dead || (__atomic_load_n(&c->sb->sq_flags, __ATOMIC_RELAXED) & COPRO_SQ_BROKEN)) {
		c->dead = 1;
		return COPRO_E_DISCONNECTED;
	}
	space = copro_ring_space(&c->sq, n);
	if (space == 0) {
		ret = check_alive(c);
		return ret ? ret : -EAGAIN;
	}
	if (n > space)
		n = space;
	for (i = 0; i < n; i++) {
		ret = prep_sqe(c, &reqs[i], i, COPRO_OP_INFER);
		if (ret) {
			if (i == 0)
				return ret;
			break;
		}
	}
	/* Release pairs with the poller's acquire load of the SQ tail. */
	copro_ring_publish(&c->sq, i);
	maybe_ring_sq(c);
	return (int)i;
}

int copro_cancel(struct copro_client *c, uint64_t user_data)
{
	struct copro_sqe *sqe;

	if (!c)
		return -EINVAL;
	if (c->dead)
		return COPRO_E_DISCONNECTED;
	if (copro_ring_space(&c->sq, 1) == 0) {
		int ret = check_alive(c);

		return ret ? ret : -EAGAIN;
	}
	sqe = copro_ring_prod_slot(&c->sq, 0);
	memset(sqe, 0, sizeof(*sqe));
	sqe->opcode = COPRO_OP_CANCEL;
	sqe->user_data = user_data;
	sqe->aux = user_data;
	copro_ring_publish(&c->sq, 1);
	maybe_ring_sq(c);
	return 0;
}

/* ---- completion ------------------------------------------------------------------------ */

static unsigned int reap_ring(struct copro_client *c, struct copro_cqe *out, unsigned int max)
{
	uint32_t ready = copro_ring_ready(&c->cq);
	unsigned int n;

	if (ready == UINT32_MAX) {
		/* The server never does this; treat the region as corrupt. */
		c->dead = 1;
		return 0;
	}
	n = ready < max ? ready : max;
	for (unsigned int i = 0; i < n; i++)
		memcpy(&out[i], copro_ring_cons_slot(&c->cq, i), sizeof(*out));
	if (!n)
		return 0;
	/* Release pairs with the server's acquire load of the CQ head. */
	copro_ring_release(&c->cq, n);
	if (c->gens) {
		/* A generation's completions update it and are not handed out. */
		unsigned int k = 0;

		for (unsigned int i = 0; i < n; i++) {
			if (out[i].user_data & GEN_TAG) {
				/* A CANCEL's acknowledgement (NOTIF) is the library's too. */
				if (!(out[i].flags & COPRO_CQE_F_NOTIF))
					gen_apply(c, &out[i]);
				continue;
			}
			out[k++] = out[i];
		}
		n = k;
	}
	/*
	 * Entries still queued may be waiting for the CQ room we just made,
	 * with the poller asleep: ring if it said so (fence inside).
	 */
	if (c->sq.local != copro_load_relaxed(c->sq.head)) {
		uint8_t defer = c->defer_doorbell;

		c->defer_doorbell = 0;
		maybe_ring_sq(c);
		c->defer_doorbell = defer;
	}
	return n;
}

static unsigned int reap(struct copro_client *c, struct copro_cqe *out, unsigned int max,
			 int use_stash)
{
	unsigned int n = 0;

	while (use_stash && c->stash_len && n < max) {
		out[n++] = c->stash[c->stash_head];
		c->stash_head = (c->stash_head + 1) % c->stash_cap;
		c->stash_len--;
	}
	if (n < max)
		n += reap_ring(c, out + n, max - n);
	return n;
}

int copro_poll(struct copro_client *c, struct copro_cqe *cqes, unsigned int max)
{
	unsigned int n;

	if (!c || !cqes || !max)
		return -EINVAL;
	n = reap(c, cqes, max, 1);
	if (n)
		return (int)n;
	return check_alive(c);
}

/*
 * Sleeps on the CQ doorbell until the server rings it, the daemon dies, or
 * deadline (absolute, 0 = none) passes. Sets the WAITING flag first and
 * re-checks the ring after a full fence, so a completion published between
 * our last look and the flag store is never slept through.
 */
static int sleep_on_cq(struct copro_client *c, uint64_t deadline)
{
	struct __kernel_timespec ts;
	struct io_uring_cqe *cqe;
	struct io_uring_sqe *sqe;
	int ret;

	__atomic_store_n(&c->sb->cq_flags, COPRO_CQ_WAITING, __ATOMIC_RELAXED);
	/* Pairs with the server's fence between CQ tail publish and flag load. */
	copro_fence();
	if (c->cq.cached != c->cq.local || copro_load_acquire(c->cq.tail) != c->cq.local) {
		ret = 0;
		goto out;
	}
	if (!c->cq_poll_armed) {
		/*
		 * One multishot poll serves every sleep: each server write to the
		 * doorbell posts a completion. The eventfd is never read; a stale
		 * completion only means one spurious look at the ring.
		 */
		sqe = io_uring_get_sqe(&c->uring);
		if (!sqe) {
			ret = check_alive(c);
			goto out;
		}
		io_uring_prep_poll_multishot(sqe, c->cq_efd, POLLIN);
		io_uring_sqe_set_data64(sqe, TAG_CQ_POLL);
		c->cq_poll_armed = 1;
	}
	c->doorbell_queued = 0;
	if (deadline) {
		uint64_t now = now_ns();
		uint64_t left = deadline > now ? deadline - now : 0;

		ts.tv_sec = left / 1000000000ULL;
		ts.tv_nsec = left % 1000000000ULL;
		ret = io_uring_submit_and_wait_timeout(&c->uring, &cqe, 1, &ts, NULL);
	} else {
		ret = io_uring_submit_and_wait(&c->uring, 1);
	}
	if (ret < 0 && ret != -ETIME && ret != -EINTR) {
		ret = -EIO;
		goto out;
	}
	ret = check_alive(c);
out:
	__atomic_store_n(&c->sb->cq_flags, 0, __ATOMIC_RELAXED);
	return ret;
}

/*
 * Waits up to timeout_ns for completions with the client's idle strategy.
 * use_stash = 0 skips completions stashed by copro_run(), which is waiting
 * for one particular request.
 */
static int do_wait(struct copro_client *c, struct copro_cqe *cqes, unsigned int max,
		   int64_t timeout_ns, int use_stash)
{
	uint64_t start, deadline = 0, spin_until;
	unsigned int n, iter = 0;
	int ret;

	n = reap(c, cqes, max, use_stash);
	if (n)
		return (int)n;
	if (c->gen_wait && c->gen_progress)
		return 0;
	ret = check_alive(c);
	if (ret)
		return ret;
	if (timeout_ns == 0)
		return -ETIMEDOUT;
	start = now_ns();
	if (timeout_ns > 0)
		deadline = start + (uint64_t)timeout_ns;
	spin_until = c->idle == COPRO_IDLE_SPIN ? UINT64_MAX : start + c->spin_ns;
	if (c->idle == COPRO_IDLE_BLOCK && c->spin_ns < 1000) {
		/* No spin phase: sleep at once (submitting any deferred doorbell). */
		ret = sleep_on_cq(c, deadline);
		if (ret < 0) {
			n = reap(c, cqes, max, use_stash);
			return n ? (int)n : ret;
		}
	} else {
		flush_doorbell(c);
	}

	for (;;) {
		n = reap(c, cqes, max, use_stash);
		if (n)
			return (int)n;
		if (c->gen_wait && c->gen_progress)
			return 0;	/* copro_gen_next has an event to give */
		if ((++iter & 63) == 0) {
			uint64_t now = now_ns();

			ret = check_alive(c);
			if (ret) {
				n = reap(c, cqes, max, use_stash);
				return n ? (int)n : ret;
			}
			if (deadline && now >= deadline)
				return -ETIMEDOUT;
			if (now >= spin_until) {
				if (c->idle == COPRO_IDLE_YIELD) {
					sched_yield();
				} else if (c->idle == COPRO_IDLE_BLOCK) {
					ret = sleep_on_cq(c, deadline);
					if (ret < 0) {
						n = reap(c, cqes, max, use_stash);
						return n ? (int)n : ret;
					}
				}
			}
		}
		cpu_relax();
	}
}

int copro_wait(struct copro_client *c, struct copro_cqe *cqes, unsigned int max,
	       int64_t timeout_ns)
{
	if (!c || !cqes || !max)
		return -EINVAL;
	return do_wait(c, cqes, max, timeout_ns, 1);
}

static int stash_push(struct copro_client *c, const struct copro_cqe *cqe)
{
	if (c->stash_len == c->stash_cap) {
		uint32_t cap = c->stash_cap ? 2 * c->stash_cap : 64;
		struct copro_cqe *s = malloc(cap * sizeof(*s));

		if (!s)
			return -ENOMEM;
		for (uint32_t i = 0; i < c->stash_len; i++)
			s[i] = c->stash[(c->stash_head + i) % c->stash_cap];
		free(c->stash);
		c->stash = s;
		c->stash_cap = cap;
		c->stash_head = 0;
	}
	c->stash[(c->stash_head + c->stash_len) % c->stash_cap] = *cqe;
	c->stash_len++;
	return 0;
}

static int run_one(struct copro_client *c, const struct copro_request *req, int64_t timeout_ns)
{
	uint64_t deadline = 0;
	struct copro_cqe cqe;
	int ret;

	if (!c || !req)
		return -EINVAL;
	c->defer_doorbell = 1;
	ret = copro_submit(c, req, 1);
	c->defer_doorbell = 0;
	if (ret < 0)
		return ret;
	if (timeout_ns > 0)
		deadline = now_ns() + (uint64_t)timeout_ns;
	for (;;) {
		int64_t left = -1;

		/* Reap straight from the ring: the stash holds only other requests. */
		if (reap_ring(c, &cqe, 1)) {
			if (cqe.user_data == req->user_data && !(cqe.flags & COPRO_CQE_F_NOTIF))
				return cqe.res;
			ret = stash_push(c, &cqe);
			if (ret)
				return ret;
			continue;
		}
		if (deadline) {
			uint64_t now = now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			left = (int64_t)(deadline - now);
		} else if (timeout_ns == 0) {
			left = 0;
		}
		/* Wait on the ring only, so stashed completions do not satisfy us. */
		ret = do_wait(c, &cqe, 1, left, 0);
		if (ret < 0)
			return ret;
		if (cqe.user_data == req->user_data && !(cqe.flags & COPRO_CQE_F_NOTIF))
			return cqe.res;
		ret = stash_push(c, &cqe);
		if (ret)
			return ret;
	}
}

int copro_run(struct copro_client *c, const struct copro_request *req, int64_t timeout_ns)
{
	int ret;

	if (!c || !req)
		return -EINVAL;
	ret = run_one(c, req, timeout_ns);
	flush_doorbell(c);	/* a doorbell deferred for a wait that never slept */
	return ret;
}

/* ---- generation ------------------------------------------------------------------------ */

void copro_gen_params_init(struct copro_gen_params *p)
{
	if (!p)
		return;
	memset(p, 0, sizeof(*p));
	p->max_tokens = 128;
	p->temperature = 0.8f;
	p->top_k = 40;
	p->top_p = 0.95f;
	p->min_p = 0.05f;
	p->repeat_penalty = 1.0f;
	p->repeat_last_n = 64;
}

/* Takes a generation's completion: new counts, or its end. */
static void gen_apply(struct copro_client *c, const struct copro_cqe *cqe)
{
	struct copro_gen *g;

	for (g = c->gens; g && g->user_data != cqe->user_data; g = g->next)
		;
	if (!g || g->final)
		return;	/* freed already, or a stray: nothing to update */
	c->gen_progress = 1;
	if (cqe->flags & COPRO_CQE_F_MORE) {
		uint32_t n = cqe->res > 0 ? (uint32_t)cqe->res : 0;

		if (n > g->rows)
			n = g->rows;
		if (n > g->avail)
			g->avail = n;
		return;
	}
	/* The result was written before this entry was published. */
	memcpy(&g->res, g->result.data, sizeof(g->res));
	g->final = 1;
	g->status = cqe->res < 0 ? cqe->res : 0;
	if (!g->res.finish)
		g->res.finish = cqe->aux ? (uint32_t)cqe->aux :
			       cqe->res < 0 ? COPRO_FINISH_ERROR : COPRO_FINISH_STOP;
	if (cqe->res < 0 && !g->res.error)
		g->res.error = cqe->res;
	g->avail = g->res.gen_tokens < g->rows ? g->res.gen_tokens : g->rows;
	if (g->res.text_bytes > g->text.bytes)
		g->res.text_bytes = (uint32_t)g->text.bytes;
}

static void gen_free_tensors(struct copro_client *c, struct copro_gen *g)
{
	copro_tensor_free(c, &g->prompt);
	copro_tensor_free(c, &g->params);
	copro_tensor_free(c, &g->tokens);
	copro_tensor_free(c, &g->text);
	copro_tensor_free(c, &g->result);
	copro_tensor_free(c, &g->pids);
}

int copro_gen_start(struct copro_client *c, uint32_t model, const void *prompt, size_t len,
		    const struct copro_gen_params *p, uint16_t priority, struct copro_gen **out)
{
	const struct copro_tensor *ins[2], *outs[4];
	struct copro_request r = { 0 };
	struct copro_sqe *sqe;
	struct copro_gen *g;
	int ids, ret;
	uint64_t d;

	if (!c || !p || !out || (len && !prompt) || !p->max_tokens || p->max_tokens > (1u << 24))
		return -EINVAL;
	*out = NULL;
	if (c->dead)
		return COPRO_E_DISCONNECTED;
	if (!(c->sb->features & COPRO_FEAT_GENERATE))
		return -ENOTSUP;	/* a daemon older than ABI 1.1 */
	if (copro_ring_space(&c->sq, 1) == 0) {
		ret = check_alive(c);
		return ret ? ret : -EAGAIN;
	}
	ids = !!(p->flags & COPRO_GEN_F_IDS);
	g = calloc(1, sizeof(*g));
	if (!g)
		return -ENOMEM;
	g->c = c;
	g->rows = p->max_tokens;
	/* Tensors of zero elements cannot be described: an empty prompt is one byte short. */
	d = len ? len : 1;
	ret = copro_tensor_alloc(c, ids ? COPRO_DT_I32 : COPRO_DT_U8, 1, &d, &g->prompt);
	if (ret)
		goto fail;
	d = sizeof(struct copro_gen_params);
	ret = copro_tensor_alloc(c, COPRO_DT_U8, 1, &d, &g->params);
	if (ret)
		goto fail;
	{
		uint64_t dims[2] = { p->max_tokens, 2 };

		ret = copro_tensor_alloc(c, COPRO_DT_I32, 2, dims, &g->tokens);
		if (ret)
			goto fail;
	}
	/* Room for 32 bytes a token; more ends the text with COPRO_FINISH_LENGTH. */
	d = (uint64_t)p->max_tokens * 32 + 1024;
	ret = copro_tensor_alloc(c, COPRO_DT_U8, 1, &d, &g->text);
	if (ret)
		goto fail;
	d = sizeof(struct copro_gen_result);
	ret = copro_tensor_alloc(c, COPRO_DT_U8, 1, &d, &g->result);
	if (ret)
		goto fail;
	/* Room for the prompt's ids: a text prompt makes at most a token a byte, and BOS. */
	d = ids ? (len ? len : 1) : len + 3;
	ret = copro_tensor_alloc(c, COPRO_DT_I32, 1, &d, &g->pids);
	if (ret)
		goto fail;
	if (len)
		memcpy(g->prompt.data, prompt, len * (ids ? 4 : 1));
	else if (ids)
		goto inval;	/* token ids: at least one */
	memcpy(g->params.data, p, sizeof(*p));
	memset(g->result.data, 0, sizeof(struct copro_gen_result));
	g->user_data = GEN_TAG | ++c->gen_seq;
	ins[0] = &g->prompt;
	ins[1] = &g->params;
	outs[0] = &g->tokens;
	outs[1] = &g->text;
	outs[2] = &g->result;
	outs[3] = &g->pids;
	r.model = model;
	r.priority = priority;
	r.n_in = 2;
	r.n_out = 4;
	r.in = ins;
	r.out = outs;
	r.user_data = g->user_data;
	ret = prep_sqe(c, &r, 0, COPRO_OP_GENERATE);
	if (ret)
		goto fail;
	if (!len) {
		/* An empty text prompt: described as zero bytes of its one-byte tensor. */
		struct copro_tensor_desc *dd;

		sqe = copro_ring_prod_slot(&c->sq, 0);
		dd = (struct copro_tensor_desc *)(c->arena + sqe->desc_off);
		dd[0].dims[0] = 0;
		dd[0].length = 0;
	}
	g->next = c->gens;
	if (c->gens)
		c->gens->prev = g;
	c->gens = g;
	/* Release pairs with the poller's acquire load of the SQ tail. */
	copro_ring_publish(&c->sq, 1);
	maybe_ring_sq(c);
	*out = g;
	return 0;
inval:
	ret = -EINVAL;
fail:
	gen_free_tensors(c, g);
	free(g);
	return ret == -ENOMEM || ret == -ENOSPC ? COPRO_E_NOMEM : ret;
}

int copro_gen_next(struct copro_gen *g, struct copro_gen_event *ev, int64_t timeout_ns)
{
	struct copro_client *c;
	uint64_t deadline = 0;

	if (!g || !ev)
		return -EINVAL;
	c = g->c;
	if (timeout_ns > 0)
		deadline = now_ns() + (uint64_t)timeout_ns;
	for (;;) {
		struct copro_cqe cqe;
		int64_t left = -1;
		int n;

		memset(ev, 0, sizeof(*ev));
		if (g->next_tok < g->avail) {
			int32_t pair[2];
			uint32_t end;

			memcpy(pair, (uint8_t *)g->tokens.data + (uint64_t)g->next_tok * 8, 8);
			end = pair[1] < 0 ? 0 : (uint32_t)pair[1];
			if (end > g->text.bytes)
				end = (uint32_t)g->text.bytes;
			if (end < g->text_pos)
				end = g->text_pos;
			ev->token = pair[0];
			ev->index = g->next_tok++;
			ev->text = (const char *)g->text.data + g->text_pos;
			ev->len = end - g->text_pos;
			g->text_pos = end;
			return 1;
		}
		if (g->final) {
			uint32_t end = g->res.text_bytes > g->text_pos ? g->res.text_bytes : g->text_pos;

			ev->token = -1;
			ev->index = g->next_tok;
			ev->text = (const char *)g->text.data + g->text_pos;
			ev->len = end - g->text_pos;
			g->text_pos = end;
			ev->done = 1;
			ev->status = g->status;
			ev->result = &g->res;
			g->delivered = 1;
			return 0;
		}
		if (deadline) {
			uint64_t now = now_ns();

			if (now >= deadline)
				return -ETIMEDOUT;
			left = (int64_t)(deadline - now);
		} else if (timeout_ns == 0) {
			left = 0;
		}
		c->gen_wait = 1;
		c->gen_progress = 0;
		n = do_wait(c, &cqe, 1, left, 0);
		c->gen_wait = 0;
		if (n > 0) {
			/* Someone else's completion: keep it for copro_poll/wait. */
			if (stash_push(c, &cqe))
				return -ENOMEM;
			continue;
		}
		if (n < 0 && !c->gen_progress)
			return n;
	}
}

int copro_gen_cancel(struct copro_gen *g)
{
	if (!g)
		return -EINVAL;
	if (g->final)
		return 0;
	return copro_cancel(g->c, g->user_data);
}

int copro_gen_prompt_ids(const struct copro_gen *g, const int32_t **ids)
{
	uint32_t n;

	if (!g || !ids)
		return -EINVAL;
	if (!g->final)
		return -EAGAIN;	/* the count comes with the result */
	n = g->res.prompt_tokens;
	if (n > g->pids.bytes / 4)
		n = (uint32_t)(g->pids.bytes / 4);
	*ids = g->pids.data;
	return (int)n;
}

const struct copro_gen_result *copro_gen_result(const struct copro_gen *g)
{
	return g && g->final ? &g->res : NULL;
}

void copro_gen_free(struct copro_gen *g)
{
	struct copro_client *c;

	if (!g)
		return;
	c = g->c;
	if (!g->final && !c->dead) {
		struct copro_gen_event ev;
		uint64_t end = now_ns() + 10 * 1000000000ULL;

		/* The daemon writes into these tensors until it ends: end it first. */
		copro_gen_cancel(g);
		while (!g->final && now_ns() < end) {
			int ret = copro_gen_next(g, &ev, 1000000000LL);

			if (ret < 0 && ret != -ETIMEDOUT)
				break;
		}
	}
	if (g->prev)
		g->prev->next = g->next;
	else
		c->gens = g->next;
	if (g->next)
		g->next->prev = g->prev;
	/* Never reuse tensors a live daemon may still write to. */
	if (g->final || c->dead)
		gen_free_tensors(c, g);
	free(g);
}
