// SPDX-License-Identifier: MIT
/*
 * placement.c - NUMA placement of worker threads and their memory with
 * libnuma (Debian's libnuma-dev): node and CPU discovery from libnuma,
 * binding with the plain system calls it wraps.
 */
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <numa.h>
#include <numaif.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "log.h"
#include "placement.h"
#include "cuda/cuda.h"

/* Node masks handed to the kernel: room for this many nodes. */
#define PLACE_MAX_NODES		1024
#define MASK_LONGS		(PLACE_MAX_NODES / (8 * sizeof(unsigned long)))
/* Mode flags get_mempolicy() may OR into the mode (MPOL_F_STATIC_NODES...). */
#define MPOL_MODE_BITS		((1 << 13) - 1)
#define LONG_BITS		(8 * sizeof(unsigned long))

void copro_place_cpulist(const cpu_set_t *set, char *buf, size_t len)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int c = 0; c < CPU_SETSIZE && n < len; c++) {
		int e = c;
		int w;

		if (!CPU_ISSET(c, set))
			continue;
		while (e + 1 < CPU_SETSIZE && CPU_ISSET(e + 1, set))
			e++;
		if (e == c)
			w = snprintf(buf + n, len - n, "%s%d", n ? "," : "", c);
		else
			w = snprintf(buf + n, len - n, "%s%d-%d", n ? "," : "", c, e);
		if (w < 0)
			break;
		n += (size_t)w;
		c = e;
	}
	if (n >= len && len > 4)
		strcpy(buf + len - 4, "...");	/* too many ranges to show: say so */
}

/*
 * Fills *out with the CPUs of node that this process may run on: the
 * node's CPUs (libnuma, from sysfs) intersected with the main thread's
 * affinity, which nothing in coprod narrows (workers narrow their own).
 * Returns how many there are, or -errno.
 */
static int node_cpus(int node, cpu_set_t *out)
{
	struct bitmask *bm = numa_allocate_cpumask();
	cpu_set_t allowed;
	int n = 0;

	if (!bm)
		return -ENOMEM;
	CPU_ZERO(out);
	if (sched_getaffinity(getpid(), sizeof(allowed), &allowed) < 0 ||
	    numa_node_to_cpus(node, bm) < 0) {
		int ret = -errno;

		numa_free_cpumask(bm);
		return ret ? ret : -EINVAL;
	}
	for (unsigned int c = 0; c < bm->size && c < CPU_SETSIZE; c++) {
		if (numa_bitmask_isbitset(bm, c) && CPU_ISSET(c, &allowed)) {
			CPU_SET(c, out);
			n++;
		}
	}
	numa_free_cpumask(bm);
	return n;
}

/* Whether node exists and this process may allocate memory there. */
static int node_usable(int node)
{
	return node >= 0 && node <= numa_max_node() &&
	       numa_bitmask_isbitset(numa_nodes_ptr, (unsigned int)node) &&
	       numa_bitmask_isbitset(numa_all_nodes_ptr, (unsigned int)node);
}

/* The usable node with the most CPUs we may use (the lowest on a tie), or -1. */
static int busiest_node(void)
{
	int best = -1, best_n = 0;

	for (int node = 0; node <= numa_max_node(); node++) {
		cpu_set_t set;
		int n;

		if (!node_usable(node))
			continue;
		n = node_cpus(node, &set);
		if (n > best_n) {
			best = node;
			best_n = n;
		}
	}
	return best;
}

int copro_place_pci_node(const char *busid)
{
	char path[128], buf[16];
	FILE *f;
	long v;
	char *end;

	/* Only "dddd:bb:dd.f"-like names: nothing that walks out of the directory. */
	if (!busid || !*busid || strlen(busid) > 32)
		return -1;
	for (const char *c = busid; *c; c++)
		if (!isxdigit((unsigned char)*c) && *c != ':' && *c != '.')
			return -1;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/numa_node", busid);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f)) {
		fclose(f);
		return -1;
	}
	fclose(f);
	errno = 0;
	v = strtol(buf, &end, 10);
	if (errno || end == buf || v < 0 || v > INT_MAX)
		return -1;
	return (int)v;
}

/*
 * Parses a device name: "cpu" and "auto" give 0, "cuda:N" gives 1 and N.
 * Returns -EINVAL for anything else.
 */
static int parse_device(const char *device, int *index)
{
	char *end;
	long v;

	*index = -1;
	if (!strcmp(device, "cpu") || !strcmp(device, "auto"))
		return 0;
	if (strncmp(device, "cuda:", 5) || !isdigit((unsigned char)device[5]))
		return -EINVAL;
	errno = 0;
	v = strtol(device + 5, &end, 10);
	if (errno || *end || v > 255)
		return -EINVAL;
	*index = (int)v;
	return 1;
}

int copro_place_resolve(int numa, const char *device, struct copro_place *out, char *err,
			size_t errlen)
{
	int idx, kind, node, n, gpu_node;

	memset(out, 0, sizeof(*out));
	out->node = -1;
	kind = parse_device(device ? device : "auto", &idx);
	if (kind < 0) {
		snprintf(err, errlen, "bad device '%s' (auto, cpu or cuda:N)", device);
		return -EINVAL;
	}
	gpu_node = -1;
	if (kind == 1) {
		struct copro_cuda_dev devs[16];
		const char *why = NULL;
		int n_dev = copro_cuda_devices(devs, 16, &why);

		if (idx >= n_dev) {
			snprintf(err, errlen, "no CUDA device %d (%s): serving needs device = cpu "
				 "or auto", idx, n_dev > 0 ? "fewer devices" : why ? why : "none");
			return -ENODEV;
		}
		snprintf(out->device, sizeof(out->device), "cuda:%d", idx & 0xff);
		/* A worker sits next to its GPU: the device's node, from sysfs. */
		gpu_node = copro_cuda_numa_node(&devs[idx]);
	} else {
		/* auto was settled by the caller: here it is the CPU backend. */
		snprintf(out->device, sizeof(out->device), "cpu");
	}
	if (numa == COPRO_NUMA_OFF)
		return 0;
	if (numa != COPRO_NUMA_AUTO && numa < 0) {
		snprintf(err, errlen, "bad numa setting %d", numa);
		return -EINVAL;
	}
	if (numa_available() < 0) {
		if (numa == COPRO_NUMA_AUTO) {
			log_info("NUMA is not available on this kernel: workers are not placed");
			return 0;
		}
		snprintf(err, errlen, "numa = %d: NUMA is not available on this kernel "
			 "(use numa = auto or off)", numa);
		return -ENOSYS;
	}
	if (numa == COPRO_NUMA_AUTO && gpu_node >= 0 && node_usable(gpu_node)) {
		node = gpu_node;
	} else if (numa == COPRO_NUMA_AUTO) {
		node = busiest_node();
		if (node < 0) {
			log_warn("no NUMA node holds a CPU this process may use: "
				 "workers are not placed");
			return 0;
		}
	} else {
		node = numa;
		if (!node_usable(node)) {
			snprintf(err, errlen, "numa = %d: no such node this process may use "
				 "(nodes 0-%d)", node, numa_max_node());
			return -ENODEV;
		}
	}
	n = node_cpus(node, &out->cpus);
	if (n <= 0) {
		snprintf(err, errlen, "numa = %d: node %d has no CPU this process may use",
			 node, node);
		return n < 0 ? n : -ENODEV;
	}
	out->node = node;
	copro_place_cpulist(&out->cpus, out->cpulist, sizeof(out->cpulist));
	return 0;
}

int copro_place_thread(const struct copro_place *p)
{
	unsigned long mask[MASK_LONGS] = { 0 };
	int ret;

	if (!p || p->node < 0)
		return 0;
	ret = pthread_setaffinity_np(pthread_self(), sizeof(p->cpus), &p->cpus);
	if (ret)
		return -ret;
	mask[p->node / LONG_BITS] = 1UL << (p->node % LONG_BITS);
	/* maxnode counts one past the last bit, as libnuma passes it. */
	if (set_mempolicy(MPOL_PREFERRED, mask, PLACE_MAX_NODES + 1) < 0)
		return -errno;
	return 0;
}

int copro_place_memory(const struct copro_place *p, void *addr, size_t len)
{
	unsigned long mask[MASK_LONGS] = { 0 };

	if (!p || p->node < 0 || !len)
		return 0;
	mask[p->node / LONG_BITS] = 1UL << (p->node % LONG_BITS);
	if (mbind(addr, len, MPOL_PREFERRED, mask, PLACE_MAX_NODES + 1, 0) < 0)
		return -errno;
	return 0;
}

void copro_place_read(struct copro_placed *rec)
{
	unsigned long mask[MASK_LONGS] = { 0 };
	cpu_set_t set;
	int mode;

	rec->tid = (int32_t)gettid();
	rec->cpulist[0] = '\0';
	if (sched_getaffinity(0, sizeof(set), &set) == 0)
		copro_place_cpulist(&set, rec->cpulist, sizeof(rec->cpulist));
	rec->policy = rec->policy_node = -1;
	if (get_mempolicy(&mode, mask, PLACE_MAX_NODES + 1, NULL, 0) < 0)
		return;
	rec->policy = mode & MPOL_MODE_BITS;
	for (int i = 0; i < PLACE_MAX_NODES; i++) {
		if (mask[i / LONG_BITS] & (1UL << (i % LONG_BITS))) {
			rec->policy_node = i;
			break;
		}
	}
}

/* What a new thread needs until it has placed itself (the creator's stack). */
struct spawn_ctx {
	const struct copro_place *p;
	const char *name;
	struct copro_placed *rec;
	void *(*fn)(void *);
	void *arg;
	sem_t done;
};

static void *spawn_main(void *arg)
{
	struct spawn_ctx *ctx = arg;
	void *(*fn)(void *) = ctx->fn;
	void *fn_arg = ctx->arg;
	struct copro_placed *rec = ctx->rec;
	int ret;

	pthread_setname_np(pthread_self(), ctx->name);
	ret = copro_place_thread(ctx->p);
	if (ret)
		log_warn("%s: cannot place on node %d (cpus %s): %s; running unplaced",
			 ctx->name, ctx->p->node, ctx->p->cpulist, strerror(-ret));
	rec->err = ret;
	copro_place_read(rec);
	/* Posting hands rec to the creator; ctx is gone after this. */
	sem_post(&ctx->done);
	return fn(fn_arg);
}

int copro_place_spawn(pthread_t *thread, const struct copro_place *p, const char *name,
		      struct copro_placed *rec, void *(*fn)(void *), void *arg)
{
	struct spawn_ctx ctx = { .p = p, .name = name, .rec = rec, .fn = fn, .arg = arg };
	int ret;

	if (sem_init(&ctx.done, 0, 0) < 0)
		return -errno;
	ret = pthread_create(thread, NULL, spawn_main, &ctx);
	if (!ret)
		while (sem_wait(&ctx.done) < 0 && errno == EINTR)
			;
	sem_destroy(&ctx.done);
	return -ret;
}

const char *copro_place_policy_name(int policy)
{
	static const char *const n[] = { "default", "preferred", "bind", "interleave", "local",
					 "preferred_many", "weighted_interleave" };

	if (policy < 0 || policy >= (int)(sizeof(n) / sizeof(n[0])))
		return "unknown";
	return n[policy];
}

int copro_place_format(const struct copro_place *p, const struct copro_placed *rec, char *buf,
		       size_t len)
{
	char node[16];

	if (p->node >= 0)
		snprintf(node, sizeof(node), "%d", p->node);
	else
		snprintf(node, sizeof(node), "none");
	if (rec->err)
		return snprintf(buf, len, "device=%s node=%s cpus=%s mempolicy=%s place_errno=%d",
				p->device, node, rec->cpulist[0] ? rec->cpulist : "?",
				copro_place_policy_name(rec->policy), -rec->err);
	return snprintf(buf, len, "device=%s node=%s cpus=%s mempolicy=%s", p->device, node,
			rec->cpulist[0] ? rec->cpulist : "?",
			copro_place_policy_name(rec->policy));
}
