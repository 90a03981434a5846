// SPDX-License-Identifier: MIT
/*
 * session.c - creating and destroying a client's region.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/mman.h>
#include <unistd.h>

#include "log.h"
#include "session.h"

struct copro_session *copro_session_new(int sock, uint64_t id)
{
	struct copro_session *s = calloc(1, sizeof(*s));

	if (!s)
		return NULL;
	s->id = id;
	s->sock = sock;
	s->memfd = s->sq_efd = s->cq_efd = -1;
	return s;
}

int copro_session_region(struct copro_session *s, const struct copro_layout *l,
			 uint64_t epoch, uint64_t features, const struct copro_place *place)
{
	char name[32];
	int ret;

	snprintf(name, sizeof(name), "copro-client-%llu", (unsigned long long)s->id);
	s->memfd = memfd_create(name, MFD_CLOEXEC | MFD_ALLOW_SEALING);
	if (s->memfd < 0)
		goto fail_errno;
	if (ftruncate(s->memfd, (off_t)l->region_size) < 0)
		goto fail_errno;
	/*
	 * Seal the size before anyone else sees the fd: a client that could
	 * shrink the file would make our next access to its region SIGBUS.
	 */
	if (fcntl(s->memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL) < 0)
		goto fail_errno;
	s->base = mmap(NULL, l->region_size, PROT_READ | PROT_WRITE, MAP_SHARED, s->memfd, 0);
	if (s->base == MAP_FAILED) {
		s->base = NULL;
		goto fail_errno;
	}
	/*
	 * Before the first write below: ftruncate only sized the file, so no
	 * page of it exists yet. The policy is the file's own (shmem keeps a
	 * shared policy), so the client's faults land on the node too.
	 */
	ret = copro_place_memory(place, s->base, l->region_size);
	if (ret)
		log_warn("client %llu: cannot bind its region to node %d: %s",
			 (unsigned long long)s->id, place->node, strerror(-ret));
	s->size = l->region_size;
	s->lay = *l;
	s->sb = (struct copro_sb *)s->base;
	s->arena = s->base + l->arena_off;
	copro_layout_to_sb(l, s->sb);
	s->sb->features = features;
	s->sb->server_epoch = epoch;
	s->sb->client_id = (uint32_t)s->id;
	/* Until the poller has this session, a client must ring to be seen. */
	s->sb->sq_flags = COPRO_SQ_NEED_WAKEUP;
	copro_ring_init(&s->sq, s->base, &l->sq);
	copro_ring_init(&s->cq, s->base, &l->cq);
	/* Release: every field above is visible before the magic is. */
	__atomic_store_n(&s->sb->magic, COPRO_ABI_MAGIC, __ATOMIC_RELEASE);

	s->sq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->sq_efd < 0)
		goto fail_errno;
	s->cq_efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (s->cq_efd < 0)
		goto fail_errno;
	return 0;

fail_errno:
	ret = -errno;
	if (s->base)
		munmap(s->base, s->size);
	s->base = NULL;
	s->sb = NULL;
	if (s->memfd >= 0)
		close(s->memfd);
	if (s->sq_efd >= 0)
		close(s->sq_efd);
	s->memfd = s->sq_efd = -1;
	return ret;
}

void copro_session_free(struct copro_session *s)
{
	if (!s)
		return;
	if (s->base)
		munmap(s->base, s->size);
	if (s->memfd >= 0)
		close(s->memfd);
	if (s->sq_efd >= 0)
		close(s->sq_efd);
	if (s->cq_efd >= 0)
		close(s->cq_efd);
	if (s->sock >= 0)
		close(s->sock);
	free(s);
}
