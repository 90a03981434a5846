// SPDX-License-Identifier: MIT
/*
 * test_placement.c - NUMA placement (server/placement.c): resolving
 * auto, a node and off; refusing nodes and devices that do not exist;
 * threads really bound (sched_getaffinity) and preferring the node
 * (get_mempolicy); a fresh mapping bound before its first touch; and a
 * real coprod whose poller and workers show their node in status and run
 * on its CPUs (/proc/PID/task), with the clients' regions bound there too
 * (/proc/PID/numa_maps).
 *
 * Everything runs through the same calls on a one-node machine, where the
 * node is 0. Where the process may use a single CPU, the narrowing tests
 * have nothing to narrow and say so.
 */
#include <errno.h>
#include <fcntl.h>
#include <numa.h>
#include <numaif.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"
#include "synth_llama.h"

#include "config.h"
#include "copro.h"
#include "placement.h"

#define MASK_BITS	1024
#define MASK_LONGS	(MASK_BITS / (8 * sizeof(unsigned long)))

static int mask_has(const unsigned long *mask, int node)
{
	return !!(mask[node / (8 * sizeof(unsigned long))] & (1UL << (node % (8 * sizeof(long)))));
}

static int mask_count(const unsigned long *mask)
{
	int n = 0;

	for (size_t i = 0; i < MASK_LONGS; i++)
		n += __builtin_popcountl(mask[i]);
	return n;
}

/* The CPUs of node that this process may use, computed independently of placement.c. */
static void expected_cpus(int node, cpu_set_t *out)
{
	struct bitmask *bm = numa_allocate_cpumask();
	cpu_set_t allowed;

	CPU_ZERO(out);
	assert_int_equal(sched_getaffinity(getpid(), sizeof(allowed), &allowed), 0);
	assert_int_equal(numa_node_to_cpus(node, bm), 0);
	for (int c = 0; c < CPU_SETSIZE && (unsigned int)c < bm->size; c++)
		if (numa_bitmask_isbitset(bm, (unsigned int)c) && CPU_ISSET(c, &allowed))
			CPU_SET(c, out);
	numa_free_cpumask(bm);
}

static int need_numa(void)
{
	if (numa_available() < 0) {
		skip();
		return 0;
	}
	return 1;
}

/* ---- resolving ----------------------------------------------------------------- */

static void should_resolve_auto_to_a_node_with_cpus_node_0_on_one_node(void **state)
{
	struct copro_place p;
	char err[160] = "";
	cpu_set_t want;

	if (!need_numa())
		return;
	assert_int_equal(copro_place_resolve(COPRO_NUMA_AUTO, "cpu", &p, err, sizeof(err)), 0);
	assert_true(p.node >= 0);
	if (numa_max_node() == 0)
		assert_int_equal(p.node, 0);
	assert_string_equal(p.device, "cpu");
	expected_cpus(p.node, &want);
	assert_true(CPU_COUNT(&want) > 0);
	assert_true(CPU_EQUAL(&p.cpus, &want));
	assert_true(p.cpulist[0] != '\0');
	/* auto for the device is the CPU backend while there is no GPU one */
	assert_int_equal(copro_place_resolve(COPRO_NUMA_AUTO, "auto", &p, err, sizeof(err)), 0);
	assert_string_equal(p.device, "cpu");
	assert_int_equal(copro_place_resolve(COPRO_NUMA_AUTO, NULL, &p, err, sizeof(err)), 0);
	assert_string_equal(p.device, "cpu");
}

static void should_resolve_node_0_to_its_cpus_this_process_may_use(void **state)
{
	struct copro_place p;
	char err[160] = "", list[64];
	cpu_set_t want;

	if (!need_numa())
		return;
	assert_int_equal(copro_place_resolve(0, "cpu", &p, err, sizeof(err)), 0);
	assert_int_equal(p.node, 0);
	expected_cpus(0, &want);
	assert_true(CPU_EQUAL(&p.cpus, &want));
	copro_place_cpulist(&want, list, sizeof(list));
	assert_string_equal(p.cpulist, list);
	print_message("node 0: cpus %s, numa_max_node %d\n", p.cpulist, numa_max_node());
}

static void should_refuse_a_node_that_does_not_exist_naming_it(void **state)
{
	struct copro_place p;
	char err[160] = "";

	if (!need_numa())
		return;
	if (numa_max_node() >= 99)
		skip();
	assert_int_equal(copro_place_resolve(99, "cpu", &p, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "99"));
	assert_int_equal(p.node, -1);
	assert_int_equal(copro_place_resolve(-7, "cpu", &p, err, sizeof(err)), -EINVAL);
}

static void should_resolve_off_to_no_node(void **state)
{
	struct copro_place p;
	char err[160] = "";

	assert_int_equal(copro_place_resolve(COPRO_NUMA_OFF, "cpu", &p, err, sizeof(err)), 0);
	assert_int_equal(p.node, -1);
	assert_string_equal(p.device, "cpu");
	assert_string_equal(p.cpulist, "");
}

static void should_refuse_bad_devices_and_cuda_without_a_gpu_backend(void **state)
{
	static const char *const bad[] = { "gpu", "cuda:", "cuda:x", "cuda:1x", "cuda:256",
					   "CPU", "" };
	struct copro_place p;
	char err[160];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		assert_int_equal(copro_place_resolve(COPRO_NUMA_AUTO, bad[i], &p, err,
						     sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "device"));
	}
	err[0] = '\0';
	assert_int_equal(copro_place_resolve(0, "cuda:3", &p, err, sizeof(err)), -ENODEV);
	assert_non_null(strstr(err, "no CUDA device 3"));
	assert_non_null(strstr(err, "device = cpu or auto"));
}

static void should_read_a_pci_node_or_minus_one(void **state)
{
	char path[160], buf[16];
	FILE *f;

	assert_int_equal(copro_place_pci_node("ffff:ff:1f.7"), -1);
	assert_int_equal(copro_place_pci_node("../../../../etc"), -1);
	assert_int_equal(copro_place_pci_node(""), -1);
	assert_int_equal(copro_place_pci_node(NULL), -1);
	/* A device of this machine, if it has one: what sysfs says, -1 for "unknown". */
	f = popen("ls /sys/bus/pci/devices 2>/dev/null | head -1", "r");
	assert_non_null(f);
	if (!fgets(buf, sizeof(buf), f)) {
		pclose(f);
		return;
	}
	pclose(f);
	buf[strcspn(buf, "\n")] = '\0';
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/numa_node", buf);
	f = fopen(path, "r");
	if (!f)
		return;
	{
		int v = -1;

		assert_int_equal(fscanf(f, "%d", &v), 1);
		fclose(f);
		assert_int_equal(copro_place_pci_node(buf), v < 0 ? -1 : v);
	}
}

static void should_format_cpu_lists_as_ranges(void **state)
{
	cpu_set_t s;
	char buf[64];

	CPU_ZERO(&s);
	copro_place_cpulist(&s, buf, sizeof(buf));
	assert_string_equal(buf, "");
	CPU_SET(0, &s);
	CPU_SET(1, &s);
	CPU_SET(2, &s);
	CPU_SET(5, &s);
	CPU_SET(7, &s);
	CPU_SET(8, &s);
	copro_place_cpulist(&s, buf, sizeof(buf));
	assert_string_equal(buf, "0-2,5,7-8");
	CPU_ZERO(&s);
	for (int c = 0; c < 200; c += 2)
		CPU_SET(c, &s);
	copro_place_cpulist(&s, buf, sizeof(buf));
	assert_int_equal(strlen(buf), sizeof(buf) - 1);
	assert_string_equal(buf + sizeof(buf) - 4, "...");
}

/* ---- threads --------------------------------------------------------------------- */

struct probe {
	const struct copro_place *p;
	int ret;
	cpu_set_t before, after;
	int mode_before, mode_after;
	unsigned long mask_after[MASK_LONGS];
};

/* Places itself with probe->p and reads back what the kernel says. */
static void *probe_main(void *arg)
{
	struct probe *pr = arg;
	unsigned long mask[MASK_LONGS];

	sched_getaffinity(0, sizeof(pr->before), &pr->before);
	get_mempolicy(&pr->mode_before, mask, MASK_BITS + 1, NULL, 0);
	pr->ret = copro_place_thread(pr->p);
	sched_getaffinity(0, sizeof(pr->after), &pr->after);
	memset(pr->mask_after, 0, sizeof(pr->mask_after));
	get_mempolicy(&pr->mode_after, pr->mask_after, MASK_BITS + 1, NULL, 0);
	return NULL;
}

static void run_probe(struct probe *pr, const struct copro_place *p)
{
	pthread_t t;

	memset(pr, 0, sizeof(*pr));
	pr->p = p;
	assert_int_equal(pthread_create(&t, NULL, probe_main, pr), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
}

static void should_bind_a_thread_to_the_node_cpus_and_prefer_its_memory(void **state)
{
	struct copro_place p;
	struct probe pr;
	char err[160];
	cpu_set_t want;

	if (!need_numa())
		return;
	assert_int_equal(copro_place_resolve(0, "cpu", &p, err, sizeof(err)), 0);
	run_probe(&pr, &p);
	assert_int_equal(pr.ret, 0);
	expected_cpus(0, &want);
	assert_true(CPU_EQUAL(&pr.after, &want));
	assert_int_equal(pr.mode_before, MPOL_DEFAULT);
	assert_int_equal(pr.mode_after, MPOL_PREFERRED);
	assert_true(mask_has(pr.mask_after, 0));
	assert_int_equal(mask_count(pr.mask_after), 1);
}

static void should_really_narrow_the_affinity_to_the_place(void **state)
{
	struct copro_place p;
	struct probe pr;
	char err[160];
	int first = -1;

	if (!need_numa())
		return;
	assert_int_equal(copro_place_resolve(0, "cpu", &p, err, sizeof(err)), 0);
	if (CPU_COUNT(&p.cpus) < 2) {
		print_message("one CPU on node 0: nothing to narrow\n");
		skip();
	}
	/* Keep only the node's first CPU: the thread must end on exactly that one. */
	for (int c = 0; c < CPU_SETSIZE && first < 0; c++)
		if (CPU_ISSET(c, &p.cpus))
			first = c;
	CPU_ZERO(&p.cpus);
	CPU_SET(first, &p.cpus);
	run_probe(&pr, &p);
	assert_int_equal(pr.ret, 0);
	assert_true(CPU_COUNT(&pr.before) > 1);
	assert_int_equal(CPU_COUNT(&pr.after), 1);
	assert_true(CPU_ISSET(first, &pr.after));
}

static void should_leave_an_unplaced_thread_as_it_was(void **state)
{
	struct copro_place p;
	struct probe pr;
	char err[160];

	assert_int_equal(copro_place_resolve(COPRO_NUMA_OFF, "cpu", &p, err, sizeof(err)), 0);
	run_probe(&pr, &p);
	assert_int_equal(pr.ret, 0);
	assert_true(CPU_EQUAL(&pr.before, &pr.after));
	assert_int_equal(pr.mode_after, pr.mode_before);
	assert_int_equal(pr.mode_after, MPOL_DEFAULT);
	run_probe(&pr, NULL);
	assert_int_equal(pr.ret, 0);
	assert_true(CPU_EQUAL(&pr.before, &pr.after));
}

struct spawned {
	char name[16];
	cpu_set_t cpus;
	int ran;
};

static void *spawned_main(void *arg)
{
	struct spawned *sp = arg;

	pthread_getname_np(pthread_self(), sp->name, sizeof(sp->name));
	sched_getaffinity(0, sizeof(sp->cpus), &sp->cpus);
	sp->ran = 1;
	return NULL;
}

static void should_spawn_a_named_placed_thread_and_record_what_applied(void **state)
{
	struct copro_placed rec;
	struct copro_place p;
	struct spawned sp = { .ran = 0 };
	pthread_t t;
	char err[160], line[192];

	if (!need_numa())
		return;
	assert_int_equal(copro_place_resolve(0, "cpu", &p, err, sizeof(err)), 0);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(copro_place_spawn(&t, &p, "copro-test", &rec, spawned_main, &sp), 0);
	/* Complete on return, before the thread's own function has necessarily run. */
	assert_true(rec.tid > 0);
	assert_int_equal(rec.err, 0);
	assert_int_equal(rec.policy, MPOL_PREFERRED);
	assert_int_equal(rec.policy_node, 0);
	assert_string_equal(rec.cpulist, p.cpulist);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(sp.ran, 1);
	assert_string_equal(sp.name, "copro-test");
	assert_true(CPU_EQUAL(&sp.cpus, &p.cpus));
	copro_place_format(&p, &rec, line, sizeof(line));
	snprintf(err, sizeof(err), "device=cpu node=0 cpus=%s mempolicy=preferred", p.cpulist);
	assert_string_equal(line, err);
}

static void should_format_an_unplaced_thread_as_node_none(void **state)
{
	struct copro_placed rec;
	struct copro_place p;
	struct spawned sp;
	pthread_t t;
	char err[160], line[192];

	assert_int_equal(copro_place_resolve(COPRO_NUMA_OFF, "auto", &p, err, sizeof(err)), 0);
	memset(&rec, 0, sizeof(rec));
	assert_int_equal(copro_place_spawn(&t, &p, "copro-off", &rec, spawned_main, &sp), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_int_equal(rec.policy, MPOL_DEFAULT);
	copro_place_format(&p, &rec, line, sizeof(line));
	assert_non_null(strstr(line, "device=cpu node=none cpus="));
	assert_non_null(strstr(line, " mempolicy=default"));
}

/* ---- memory ---------------------------------------------------------------------- */

/* Checks a mapping's policy, then that a touched page landed on node. */
static void expect_bound(void *mem, size_t len, int node)
{
	unsigned long mask[MASK_LONGS] = { 0 };
	int mode = -1, where = -1;

	assert_int_equal(get_mempolicy(&mode, mask, MASK_BITS + 1, mem, MPOL_F_ADDR), 0);
	assert_int_equal(mode, MPOL_PREFERRED);
	assert_true(mask_has(mask, node));
	assert_int_equal(mask_count(mask), 1);
	((volatile char *)mem)[len - 1] = 1;
	assert_int_equal(get_mempolicy(&where, NULL, 0, (char *)mem + len - 1,
				       MPOL_F_ADDR | MPOL_F_NODE), 0);
	assert_int_equal(where, node);
}

static void should_bind_a_fresh_mapping_before_its_first_touch(void **state)
{
	const size_t len = 4 << 20;
	struct copro_place p;
	char err[160];
	void *mem;
	int fd, mode = -1;

	if (!need_numa())
		return;
	assert_int_equal(copro_place_resolve(0, "cpu", &p, err, sizeof(err)), 0);
	/* Anonymous, like the KV pool. */
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(get_mempolicy(&mode, NULL, 0, mem, MPOL_F_ADDR), 0);
	assert_int_equal(mode, MPOL_DEFAULT);
	assert_int_equal(copro_place_memory(&p, mem, len), 0);
	expect_bound(mem, len, 0);
	munmap(mem, len);
	/* A shared memfd, like a client's region. */
	fd = memfd_create("copro-test", MFD_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(ftruncate(fd, (off_t)len), 0);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(copro_place_memory(&p, mem, len), 0);
	expect_bound(mem, len, 0);
	munmap(mem, len);
	close(fd);
}

static void should_leave_memory_alone_when_off(void **state)
{
	const size_t len = 1 << 20;
	struct copro_place p;
	char err[160];
	void *mem;
	int mode = -1;

	assert_int_equal(copro_place_resolve(COPRO_NUMA_OFF, "cpu", &p, err, sizeof(err)), 0);
	mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	assert_true(mem != MAP_FAILED);
	assert_int_equal(copro_place_memory(&p, mem, len), 0);
	assert_int_equal(copro_place_memory(NULL, mem, len), 0);
	assert_int_equal(get_mempolicy(&mode, NULL, 0, mem, MPOL_F_ADDR), 0);
	assert_int_equal(mode, MPOL_DEFAULT);
	munmap(mem, len);
}

/* ---- a real coprod ----------------------------------------------------------------- */

static char bindir[256], dir[64], sock[128], model[128], logpath[160], tiny[160];

#define sh test_sh

static int setup(void **state)
{
	const char *d = getenv("COPRO_COPROD");
	char *slash;

	snprintf(bindir, sizeof(bindir), "%s", d ? d : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	strcpy(dir, "/tmp/copro-place.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/coprod.sock", dir);
	snprintf(model, sizeof(model), "%s/mlp.onnx", dir);
	snprintf(logpath, sizeof(logpath), "%s/coprod.log", dir);
	snprintf(tiny, sizeof(tiny), "%s/tiny.gguf", dir);
	if (test_synth_tiny(tiny))
		return -1;
	return sh("%s/copro-model mlp --in 8 --hidden 8 --out 1 -o %s >/dev/null", bindir, model);
}

static int teardown(void **state)
{
	sh("rm -rf %s", dir);
	return 0;
}

/* Starts coprod on a config text; returns its pid, or -1 with its wait status in *st. */
static pid_t start_daemon(const char *conf_text, int *st)
{
	char conf[160];
	FILE *f;

	snprintf(conf, sizeof(conf), "%s/coprod.conf", dir);
	f = fopen(conf, "w");
	assert_non_null(f);
	fputs(conf_text, f);
	fclose(f);
	unlink(sock);
	truncate(logpath, 0);
	return test_daemon_start(sock, conf, logpath, st);
}

static void stop_daemon(pid_t pid)
{
	int st;

	kill(pid, SIGTERM);
	assert_int_equal(waitpid(pid, &st, 0), pid);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 0);
}

/* Copies the value of key= in line (up to a space) into out. */
static void field(const char *line, const char *key, char *out, size_t len)
{
	char k[32];
	const char *v;
	size_t n;

	snprintf(k, sizeof(k), " %s=", key);
	v = memmem(line, strcspn(line, "\n"), k, strlen(k));	/* this line only */
	if (!v)
		fail_msg("no %s in '%.200s'", key, line);
	v += strlen(k);
	n = strcspn(v, " \n");
	assert_true(n < len);
	memcpy(out, v, n);
	out[n] = '\0';
}

/* Finds the status line starting with prefix; fails when there is none. */
static const char *status_line(const char *text, const char *prefix)
{
	const char *l = strstr(text, prefix);

	if (!l)
		fail_msg("no line '%s' in status:\n%s", prefix, text);
	return l;
}

/* Finds the worker line of model name; fails when there is none. */
static const char *worker_line(const char *text, const char *name)
{
	char key[96];

	for (const char *l = strstr(text, "worker kind="); l; l = strstr(l + 1, "worker kind=")) {
		size_t n = strcspn(l, "\n");

		snprintf(key, sizeof(key), " model=%s ", name);
		if (memmem(l, n, key, strlen(key)))
			return l;
	}
	fail_msg("no worker line for model %s in status:\n%s", name, text);
	return NULL;
}

/* Reads "Cpus_allowed_list" and the name of thread tid of pid. */
static void task_info(pid_t pid, int tid, char *name, size_t nlen, char *cpus, size_t clen)
{
	char path[96], line[256];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/task/%d/comm", (int)pid, tid);
	f = fopen(path, "r");
	assert_non_null(f);
	assert_non_null(fgets(name, (int)nlen, f));
	name[strcspn(name, "\n")] = '\0';
	fclose(f);
	snprintf(path, sizeof(path), "/proc/%d/task/%d/status", (int)pid, tid);
	f = fopen(path, "r");
	assert_non_null(f);
	cpus[0] = '\0';
	while (fgets(line, sizeof(line), f))
		if (!strncmp(line, "Cpus_allowed_list:", 18))
			snprintf(cpus, clen, "%s", line + 18 + strspn(line + 18, " \t"));
	fclose(f);
	cpus[strcspn(cpus, "\n")] = '\0';
}

/*
 * Returns the numa_maps policy field of the daemon's mapping of the
 * client region (memfd "copro-client-N"), e.g. "prefer:0" or "default".
 */
static void region_policy(pid_t pid, char *out, size_t len)
{
	char path[64], line[1024];
	FILE *f;

	snprintf(path, sizeof(path), "/proc/%d/numa_maps", (int)pid);
	f = fopen(path, "r");
	assert_non_null(f);
	out[0] = '\0';
	while (fgets(line, sizeof(line), f)) {
		if (!strstr(line, "copro-client-"))
			continue;
		/* "<address> <policy> file=..." */
		sscanf(line, "%*s %63s", out);
		break;
	}
	fclose(f);
	if (!out[0])
		fail_msg("no client region in %s", path);
}

/*
 * Counts the daemon's mappings other than client regions whose policy
 * prefers node (numa_maps: "<address> prefer:N ..."): the KV pools.
 */
static int other_bound_mappings(pid_t pid, int node)
{
	char path[64], line[1024], want[32];
	FILE *f;
	int n = 0;

	snprintf(path, sizeof(path), "/proc/%d/numa_maps", (int)pid);
	snprintf(want, sizeof(want), " prefer:%d", node);
	f = fopen(path, "r");
	assert_non_null(f);
	while (fgets(line, sizeof(line), f))
		if (!strstr(line, "copro-client-") && strstr(line, want))
			n++;
	fclose(f);
	return n;
}

/* Checks one worker line against the thread it names. */
static void expect_worker(pid_t pid, const char *line, const char *comm, const char *node,
			  const char *cpus, const char *policy)
{
	char v[64], name[32], allowed[64];

	field(line, "node", v, sizeof(v));
	assert_string_equal(v, node);
	field(line, "device", v, sizeof(v));
	assert_string_equal(v, "cpu");
	field(line, "mempolicy", v, sizeof(v));
	assert_string_equal(v, policy);
	field(line, "cpus", v, sizeof(v));
	if (cpus)
		assert_string_equal(v, cpus);
	field(line, "tid", name, sizeof(name));
	task_info(pid, atoi(name), name, sizeof(name), allowed, sizeof(allowed));
	assert_string_equal(name, comm);
	/* What the thread read back is what the kernel shows from outside. */
	assert_string_equal(allowed, v);
}

static void should_place_the_daemon_workers_and_regions_on_node_0(void **state)
{
	struct copro_client *c;
	char conf[1024], text[16384], want[64], pol[64];
	cpu_set_t cpus;
	pid_t pid;
	int st;

	if (!need_numa())
		return;
	expected_cpus(0, &cpus);
	copro_place_cpulist(&cpus, want, sizeof(want));
	/* m inherits the server's node; u is explicitly unplaced. */
	snprintf(conf, sizeof(conf),
		 "[server]\nnuma = 0\n\n[model.m]\npath = %s\ndevice = cpu\n\n"
		 "[model.u]\npath = %s\nnuma = off\n", model, model);
	pid = start_daemon(conf, &st);
	assert_true(pid > 0);
	assert_int_equal(copro_connect(sock, NULL, &c), 0);
	assert_true(copro_status(c, text, sizeof(text)) > 0);
	expect_worker(pid, status_line(text, "worker kind=poller "), "copro-poller", "0", want,
		      "preferred");
	expect_worker(pid, worker_line(text, "m"), "copro-batch", "0", want, "preferred");
	/* A model's own numa = off overrides the server's node. */
	expect_worker(pid, worker_line(text, "u"), "copro-batch", "none", NULL, "default");
	/* The client's region, mapped by the daemon, prefers node 0 too. */
	region_policy(pid, pol, sizeof(pol));
	assert_string_equal(pol, "prefer:0");
	/* Tensor models bind no mapping of their own: first touch by placed threads. */
	assert_int_equal(other_bound_mappings(pid, 0), 0);
	copro_close(c);
	stop_daemon(pid);
}

static void should_place_a_language_model_worker_and_its_kv_pool(void **state)
{
	struct copro_client *c;
	char conf[1024], text[16384], want[64];
	cpu_set_t cpus;
	pid_t pid;
	int st;

	if (!need_numa())
		return;
	expected_cpus(0, &cpus);
	copro_place_cpulist(&cpus, want, sizeof(want));
	snprintf(conf, sizeof(conf), "[server]\nnuma = auto\n\n[model.tiny]\npath = %s\n"
		 "kv_cache_mib = 4\nnuma = 0\n", tiny);
	pid = start_daemon(conf, &st);
	assert_true(pid > 0);
	assert_int_equal(copro_connect(sock, NULL, &c), 0);
	assert_true(copro_status(c, text, sizeof(text)) > 0);
	expect_worker(pid, worker_line(text, "tiny"), "copro-llm", "0", want, "preferred");
	assert_non_null(strstr(worker_line(text, "tiny"), "worker kind=llm "));
	/* The KV pool's storage, bound before the worker wrote any of it. */
	assert_int_equal(other_bound_mappings(pid, 0), 1);
	copro_close(c);
	stop_daemon(pid);
}

static void should_show_node_none_and_default_policy_with_numa_off(void **state)
{
	struct copro_client *c;
	char conf[1024], text[16384], pol[64];
	pid_t pid;
	int st;

	snprintf(conf, sizeof(conf), "[server]\nnuma = off\n\n[model.m]\npath = %s\n", model);
	pid = start_daemon(conf, &st);
	assert_true(pid > 0);
	assert_int_equal(copro_connect(sock, NULL, &c), 0);
	assert_true(copro_status(c, text, sizeof(text)) > 0);
	expect_worker(pid, status_line(text, "worker kind=poller "), "copro-poller", "none", NULL,
		      "default");
	expect_worker(pid, status_line(text, "worker kind=batcher "), "copro-batch", "none",
		      NULL, "default");
	region_policy(pid, pol, sizeof(pol));
	assert_string_equal(pol, "default");
	copro_close(c);
	stop_daemon(pid);
}

/* Reads the daemon's log into buf. */
static void read_log(char *buf, size_t len)
{
	FILE *f = fopen(logpath, "r");
	size_t n;

	assert_non_null(f);
	n = fread(buf, 1, len - 1, f);
	buf[n] = '\0';
	fclose(f);
}

static void should_refuse_to_start_on_a_node_or_device_that_does_not_exist(void **state)
{
	char conf[1024], log[8192];
	pid_t pid;
	int st;

	if (!need_numa())
		return;
	if (numa_max_node() < 99) {
		pid = start_daemon("[server]\nnuma = 99\n", &st);
		assert_int_equal(pid, -1);
		assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
		read_log(log, sizeof(log));
		assert_non_null(strstr(log, "numa = 99"));
	}
	snprintf(conf, sizeof(conf), "[model.g]\npath = %s\ndevice = cuda:0\n", model);
	pid = start_daemon(conf, &st);
	assert_int_equal(pid, -1);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
	read_log(log, sizeof(log));
	assert_non_null(strstr(log, "no CUDA device 0"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_resolve_auto_to_a_node_with_cpus_node_0_on_one_node),
		cmocka_unit_test(should_resolve_node_0_to_its_cpus_this_process_may_use),
		cmocka_unit_test(should_refuse_a_node_that_does_not_exist_naming_it),
		cmocka_unit_test(should_resolve_off_to_no_node),
		cmocka_unit_test(should_refuse_bad_devices_and_cuda_without_a_gpu_backend),
		cmocka_unit_test(should_read_a_pci_node_or_minus_one),
		cmocka_unit_test(should_format_cpu_lists_as_ranges),
		cmocka_unit_test(should_bind_a_thread_to_the_node_cpus_and_prefer_its_memory),
		cmocka_unit_test(should_really_narrow_the_affinity_to_the_place),
		cmocka_unit_test(should_leave_an_unplaced_thread_as_it_was),
		cmocka_unit_test(should_spawn_a_named_placed_thread_and_record_what_applied),
		cmocka_unit_test(should_format_an_unplaced_thread_as_node_none),
		cmocka_unit_test(should_bind_a_fresh_mapping_before_its_first_touch),
		cmocka_unit_test(should_leave_memory_alone_when_off),
		cmocka_unit_test(should_place_the_daemon_workers_and_regions_on_node_0),
		cmocka_unit_test(should_place_a_language_model_worker_and_its_kv_pool),
		cmocka_unit_test(should_show_node_none_and_default_policy_with_numa_off),
		cmocka_unit_test(should_refuse_to_start_on_a_node_or_device_that_does_not_exist),
	};

	return cmocka_run_group_tests_name("NUMA placement", tests, setup, teardown);
}
