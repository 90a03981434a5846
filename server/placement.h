/* SPDX-License-Identifier: MIT */
/*
 * placement.h - where a worker runs and where its memory lives: the CPUs
 * and the memory of its device's NUMA node (libnuma).
 *
 * A placement is resolved once, on the event loop thread, from a `numa`
 * setting (auto, a node number, or off) and a device ("cpu"; "cuda:N" once
 * the CUDA backend lands). Each worker thread then binds itself to the
 * node's CPUs and prefers the node for its allocations; the buffers made
 * for it before it runs (the KV pool, the clients' regions) are bound with
 * mbind() before anything touches them, so their first fault lands there.
 *
 * The memory policy is MPOL_PREFERRED, not MPOL_BIND: a full node spills
 * to another one instead of failing the fault, which for a shared client
 * region would be a SIGBUS and for a worker an OOM kill. A machine with
 * one node goes through the same calls and shows node 0.
 *
 * Failing to apply a placement (a cpuset that changed under us, a kernel
 * without NUMA system calls) is not fatal: the worker runs where the
 * kernel puts it, the failure is logged, and status shows what really
 * applied, read back from the kernel by the thread itself.
 */
#ifndef COPRO_PLACEMENT_H
#define COPRO_PLACEMENT_H

#include <pthread.h>
#include <sched.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct copro_place {
	int node;			/* NUMA node, or -1: no placement (numa = off) */
	cpu_set_t cpus;			/* the node's CPUs this process may use */
	char cpulist[64];		/* cpus as a list ("0-1,4"), "" when off */
	char device[16];		/* "cpu", "cuda:0" */
};

/*
 * What a thread's placement came to, read back from the kernel by the
 * thread itself (sched_getaffinity, get_mempolicy). Written by the new
 * thread before copro_place_spawn() returns, read by its creator after:
 * plain fields, ordered by the semaphore the two share.
 */
struct copro_placed {
	int32_t tid;			/* the thread's kernel id, for /proc/self/task */
	int32_t err;			/* 0, or -errno of the step that failed */
	int32_t policy;			/* MPOL_* of the thread, -1 when unknown */
	int32_t policy_node;		/* lowest node of the policy's mask, -1 if none */
	char cpulist[64];		/* the CPUs it may run on, as a list */
	char kind[8];			/* "poller", "batcher", "llm" */
};

/*
 * Resolves a placement for device under the numa setting (COPRO_NUMA_AUTO,
 * COPRO_NUMA_OFF or a node number). Devices: "cpu"; "auto", which is "cpu"
 * while the daemon has no GPU backend; "cuda:N", refused (there is no CUDA
 * backend yet). auto takes the node with the most CPUs this process may
 * use (the lowest such node on a tie: node 0 on a one-node machine); a
 * GPU device will take its PCI node (copro_place_pci_node). Returns 0, or
 * -EINVAL (bad device or setting), -ENODEV (no such node, a node without
 * CPUs we may use, no such device) or -ENOSYS (numa = N on a kernel
 * without NUMA), with a one-line reason in err.
 */
int copro_place_resolve(int numa, const char *device, struct copro_place *out, char *err,
			size_t errlen);

/*
 * Returns the NUMA node of PCI device busid ("0000:3b:00.0") from sysfs,
 * or -1 when the kernel does not know it, the device does not exist or
 * the bus id is malformed.
 */
int copro_place_pci_node(const char *busid);

/*
 * Binds the calling thread to p's CPUs and makes it prefer p's node for
 * its allocations. Does nothing when p->node is -1. Returns 0 or -errno
 * (the thread may then be half placed: affinity set, policy not).
 */
int copro_place_thread(const struct copro_place *p);

/*
 * Makes the pages of [addr, addr + len) that are not yet faulted in
 * prefer p's node. Call it on a fresh mapping before anything touches it:
 * pages already present stay where they are. addr must be page aligned.
 * Does nothing when p is NULL or p->node is -1. Returns 0 or -errno.
 */
int copro_place_memory(const struct copro_place *p, void *addr, size_t len);

/*
 * Reads back the calling thread's affinity and memory policy into rec
 * (rec->tid, cpulist, policy, policy_node; not err or kind).
 */
void copro_place_read(struct copro_placed *rec);

/*
 * Starts a thread named name (at most 15 bytes) that places itself with
 * p, records what applied in rec (kind is left to the caller), and then
 * runs fn(arg). Waits until the placement is done, so rec is complete on
 * return. A placement that fails is logged and the thread runs anyway.
 * Returns 0 or -errno from pthread_create.
 */
int copro_place_spawn(pthread_t *thread, const struct copro_place *p, const char *name,
		      struct copro_placed *rec, void *(*fn)(void *), void *arg);

/* The name of an MPOL_* mode for status: "default", "preferred", "bind", ... */
const char *copro_place_policy_name(int policy);

/*
 * Formats "device=D node=N cpus=C mempolicy=M" for status into buf: the
 * node p resolved to ("none" when off), and the CPUs and policy rec read
 * back. Returns what snprintf returns.
 */
int copro_place_format(const struct copro_place *p, const struct copro_placed *rec, char *buf,
		       size_t len);

/* Formats a CPU set as a list ("0-3,8"); "" when empty. */
void copro_place_cpulist(const cpu_set_t *set, char *buf, size_t len);

#endif
