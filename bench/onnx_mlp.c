/* SPDX-License-Identifier: MIT */
/*
 * onnx_mlp.c - the demo fraud MLP in-process: copro's compiled plan beside
 * ONNX Runtime, on the same model, the same inputs, the same thread.
 *
 * The model is written by `copro-model mlp --in 32 --hidden 256,256 --out 1
 * --seed 1` into a temporary directory (or given with --model: any model
 * with one f32 input [N, F] and f32 outputs). Each engine gets:
 *
 *   latency     batch 1, every run timed on its own (CLOCK_MONOTONIC around
 *               the call, the same ~20 ns for both): p50, p99, mean
 *   throughput  batch 1, 8 and 64, runs back to back for a fixed time:
 *               inferences (rows) per second
 *
 * copro runs copro_plan_run() on a plan built for each batch size with
 * the daemon's options (COPRO_PLAN_OPTS_INIT: f32, fused; its own AVX-512
 * f32 kernel where the CPU has AVX-512F), and a second column, "copro
 * BLAS", runs the same plans on OpenBLAS (COPRO_PLAN_F_BLAS), the way
 * every f32 product ran before that kernel, as the baseline. ONNX
 * Runtime runs OrtApi::Run with input and output tensors bound once over the
 * very same buffers (its fastest in-process path: nothing allocated per
 * call, outputs written in place), in a session with one intra-op thread,
 * one inter-op thread, sequential execution and all graph optimizations.
 * copro's GEMMs run on one thread (OpenBLAS is set to one), so all use one
 * core.
 *
 * Measurements are taken in rounds: each round runs a share of every row for
 * every engine, in rotating order, so drift in the machine (a neighbour,
 * a frequency change) lands on both columns alike. Before measuring, the
 * outputs of both engines are compared (the tolerance of
 * tests/test_ort_reference.c); a disagreement stops the benchmark.
 *
 * ONNX Runtime is optional: `make ort` installs it (see tests/ort_dl.h for
 * where it is looked for); without it the ORT column reads "-". The
 * figures are one table; copro/ORT below 1 is faster in the latency rows
 * and above 1 is more throughput in the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <math.h>
#include <sched.h>
#include <spawn.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "onnx/graph.h"
#include "onnx/plan.h"
#include "../tests/ort_dl.h"

#define N_BATCH		3
#define N_ENG		3		/* copro, ONNX Runtime, copro on OpenBLAS */
#define MAX_BATCH	64
#define RTOL		1e-4		/* as tests/test_ort_reference.c, which says why */
#define ATOL		1e-5

extern char **environ;

static const int batches[N_BATCH] = { 1, 8, 64 };

struct opts {
	const char *copro_model;	/* path of the copro-model tool */
	const char *model;		/* a model to use instead of writing the MLP */
	uint64_t runs;			/* timed latency runs per engine */
	uint64_t warmup;		/* untimed runs per engine before them */
	int rounds;
	double secs;			/* throughput time per engine and batch size */
	int cpu;			/* pin to this CPU; -1: do not pin */
};

/* One engine's way to run a given batch row: copro's plan or an ORT binding. */
struct engine {
	const char *name;
	int present;
	struct copro_plan *plan[N_BATCH];
	struct copro_ort_bound bound[N_BATCH];
	uint64_t *lat;			/* (runs) latency samples, ns */
	uint64_t n_lat;
	uint64_t tput_rows[N_BATCH];	/* rows inferred in the throughput rows */
	uint64_t tput_ns[N_BATCH];
};

static struct copro_kt in_t[N_BATCH], out_t[N_BATCH];	/* shared by both engines */
static float *ort_out[N_BATCH];				/* ORT's outputs, checked against copro's */

static inline uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/* 64-byte aligned, so copro_plan_run() uses the buffer in place (C11 wants whole 64s). */
static void *alloc64(size_t n)
{
	return aligned_alloc(64, (n + 63) / 64 * 64 + 64);
}

/*
 * ONNX Runtime leaks 14 bytes that ReleaseEnv does not give back (seen with
 * 1.30.0: an env with nothing else made leaks them too); keep that out of
 * LeakSanitizer's verdict when this program is built with SANITIZE=address.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libonnxruntime.so\n";
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* Nearest-rank percentile of n sorted samples. */
static uint64_t pct(const uint64_t *s, uint64_t n, double p)
{
	uint64_t k = (uint64_t)ceil(p * (double)n);

	if (k == 0)
		k = 1;
	if (k > n)
		k = n;
	return s[k - 1];
}

/* Threads of this process now (the Threads: line of /proc/self/status). */
static int n_threads(void)
{
	char line[256];
	FILE *f = fopen("/proc/self/status", "r");
	int n = -1;

	while (f && fgets(line, sizeof(line), f)) {
		if (sscanf(line, "Threads: %d", &n) == 1)
			break;
	}
	if (f)
		fclose(f);
	return n;
}

/* ---- the model -------------------------------------------------------------- */

/* Runs copro-model to write the fraud MLP into path. Returns 0 or -1. */
static int write_model(const char *tool, const char *path)
{
	char *argv[] = { (char *)tool, "mlp", "--in", "32", "--hidden", "256,256", "--out", "1",
			 "--seed", "1", "-o", (char *)path, NULL };
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int st, rc;

	/* Its "wrote ..." line would land above the table; the table names the model. */
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
	rc = posix_spawn(&pid, tool, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	if (rc != 0) {
		fprintf(stderr, "onnx_mlp: cannot run %s: %s (build it, or give --copro-model)\n",
			tool, strerror(rc));
		return -1;
	}
	if (waitpid(pid, &st, 0) < 0 || !WIFEXITED(st) || WEXITSTATUS(st) != 0) {
		fprintf(stderr, "onnx_mlp: %s mlp failed\n", tool);
		return -1;
	}
	return 0;
}

/* Deterministic features in [-4, 4): the same bytes for both engines. */
static void fill_features(float *x, int64_t n)
{
	uint32_t s = 12345;

	for (int64_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = (float)((int32_t)(s >> 8) % 4096) / 1024.0f;
	}
}

/* ---- running ---------------------------------------------------------------- */

static inline int run_once(struct engine *e, int b, char *err, size_t len)
{
	if (e->plan[b])
		return copro_plan_run(e->plan[b], &in_t[b], &out_t[b]);
	return copro_ort_run_bound(&e->bound[b], err, len);
}

/* Warm-up, then n_runs timed runs at batch 1 appended to e->lat. */
static int measure_latency(struct engine *e, uint64_t warm, uint64_t n_runs)
{
	char err[512];

	for (uint64_t i = 0; i < warm; i++) {
		if (run_once(e, 0, err, sizeof(err)))
			goto fail;
	}
	for (uint64_t i = 0; i < n_runs; i++) {
		uint64_t t0 = now_ns();

		if (run_once(e, 0, err, sizeof(err)))
			goto fail;
		e->lat[e->n_lat++] = now_ns() - t0;
	}
	return 0;
fail:
	fprintf(stderr, "onnx_mlp: %s at batch 1: %s\n", e->name, err);
	return -1;
}

/* Runs batch row b back to back for about secs (after a short warm-up). */
static int measure_tput(struct engine *e, int b, double secs)
{
	uint64_t budget = (uint64_t)(secs * 1e9), runs = 0, t0, t;
	char err[512];

	for (int i = 0; i < 200; i++) {
		if (run_once(e, b, err, sizeof(err)))
			goto fail;
	}
	t0 = now_ns();
	do {
		/* Eight runs between clock reads: the clock stays out of the figure. */
		for (int i = 0; i < 8; i++) {
			if (run_once(e, b, err, sizeof(err)))
				goto fail;
		}
		runs += 8;
		t = now_ns();
	} while (t - t0 < budget);
	e->tput_rows[b] += runs * (uint64_t)batches[b];
	e->tput_ns[b] += t - t0;
	return 0;
fail:
	fprintf(stderr, "onnx_mlp: %s at batch %d: %s\n", e->name, batches[b], err);
	return -1;
}

/*
 * Runs ORT once per batch into its own buffers and compares with copro's
 * outputs (already in out_t). Returns 0, or -1 after saying where they differ.
 */
static int check_outputs(struct engine *ort, int64_t width_out, double *max_abs)
{
	char err[512];

	*max_abs = 0;
	for (int b = 0; b < N_BATCH; b++) {
		int64_t n = (int64_t)batches[b] * width_out;

		if (copro_ort_run_bound(&ort->bound[b], err, sizeof(err))) {
			fprintf(stderr, "onnx_mlp: ONNX Runtime at batch %d: %s\n", batches[b], err);
			return -1;
		}
		for (int64_t i = 0; i < n; i++) {
			double c = ((const float *)out_t[b].data)[i], o = ort_out[b][i];
			double d = fabs(c - o);

			if (!(d <= ATOL + RTOL * fabs(o))) {
				fprintf(stderr, "onnx_mlp: outputs differ at batch %d, element %lld: "
					"copro %.9g, ONNX Runtime %.9g\n", batches[b], (long long)i,
					c, o);
				return -1;
			}
			if (d > *max_abs)
				*max_abs = d;
		}
	}
	return 0;
}

/* ---- the table ------------------------------------------------------------- */

/* One row: v[0] copro, v[1] ORT, v[2] copro on OpenBLAS, and the ratios. */
static void row(const char *label, const double *v, int have_o, const char *fmt)
{
	char cs[32], bs[32], os[32], rs[32], rb[32];

	snprintf(cs, sizeof(cs), fmt, v[0]);
	snprintf(bs, sizeof(bs), fmt, v[2]);
	snprintf(rb, sizeof(rb), "%.2f", v[2] > 0 ? v[0] / v[2] : 0.0);
	if (have_o) {
		snprintf(os, sizeof(os), fmt, v[1]);
		snprintf(rs, sizeof(rs), "%.2f", v[1] > 0 ? v[0] / v[1] : 0.0);
	} else {
		snprintf(os, sizeof(os), "-");
		snprintf(rs, sizeof(rs), "-");
	}
	printf("%-30s %12s %12s %12s %10s %10s\n", label, cs, bs, os, rs, rb);
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: onnx_mlp [--copro-model PATH] [--model FILE] [-n RUNS] [-w WARMUP]\n"
		"                [-r ROUNDS] [-t SECONDS] [--cpu N]\n"
		"\n"
		"The fraud MLP (32 -> 256 -> 256 -> 1) in-process: copro's plan beside ONNX\n"
		"Runtime (when installed: `make ort`; or COPRO_ORT_LIB=libonnxruntime.so).\n"
		"\n"
		"  --copro-model PATH  the tool that writes the model (default\n"
		"                      $BUILD/bin/copro-model, BUILD defaulting to build)\n"
		"  --model FILE        use this model (one f32 input [N, F]) instead\n"
		"  -n, --runs N        timed batch-1 runs per engine (default 20000)\n"
		"  -w, --warmup N      untimed runs before them (default 2000)\n"
		"  -r, --rounds N      interleaved rounds (default 5)\n"
		"  -t, --secs S        throughput time per engine and batch size (default 1.0)\n"
		"  --cpu N             pin to CPU N (default: not pinned)\n");
}

static int parse_opts(int argc, char **argv, struct opts *o)
{
	static const struct option lo[] = {
		{ "copro-model", required_argument, NULL, 'M' },
		{ "model", required_argument, NULL, 'm' },
		{ "runs", required_argument, NULL, 'n' },
		{ "warmup", required_argument, NULL, 'w' },
		{ "rounds", required_argument, NULL, 'r' },
		{ "secs", required_argument, NULL, 't' },
		{ "cpu", required_argument, NULL, 'c' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	char *end;
	int ch;

	while ((ch = getopt_long(argc, argv, "n:w:r:t:h", lo, NULL)) != -1) {
		errno = 0;
		end = NULL;
		switch (ch) {
		case 'M':
			o->copro_model = optarg;
			break;
		case 'm':
			o->model = optarg;
			break;
		case 'n':
			o->runs = strtoull(optarg, &end, 10);
			if (o->runs == 0 || o->runs > 100000000)
				goto bad;
			break;
		case 'w':
			o->warmup = strtoull(optarg, &end, 10);
			if (o->warmup > 100000000)
				goto bad;
			break;
		case 'r':
			o->rounds = (int)strtol(optarg, &end, 10);
			if (o->rounds < 1 || o->rounds > 100)
				goto bad;
			break;
		case 't':
			o->secs = strtod(optarg, &end);
			if (!(o->secs > 0 && o->secs <= 600))
				goto bad;
			break;
		case 'c':
			o->cpu = (int)strtol(optarg, &end, 10);
			if (o->cpu < 0)
				goto bad;
			break;
		case 'h':
			usage(stdout);
			exit(0);
		default:
			usage(stderr);
			return -1;
		}
		if (end && (*end || errno))
			goto bad;
	}
	if (optind != argc)
		goto bad_arg;
	return 0;
bad:
	fprintf(stderr, "onnx_mlp: bad value '%s' for -%c\n", optarg, ch);
	return -1;
bad_arg:
	fprintf(stderr, "onnx_mlp: unexpected argument '%s'\n", argv[optind]);
	return -1;
}

int main(int argc, char **argv)
{
	struct opts o = { .runs = 20000, .warmup = 2000, .rounds = 5, .secs = 1.0, .cpu = -1 };
	/* ORT stays engine 1: its bindings live there. */
	struct engine eng[N_ENG] = { { .name = "copro", .present = 1 }, { .name = "ONNX Runtime" },
				     { .name = "copro BLAS", .present = 1 } };
	struct copro_plan_opts popts[N_ENG] = { COPRO_PLAN_OPTS_INIT, COPRO_PLAN_OPTS_INIT,
						COPRO_PLAN_OPTS_INIT };
	struct copro_ort ort = { 0 };
	struct copro_ort_session sess = { 0 };
	struct copro_graph *g = NULL;
	char tool[512], tmp[64] = "", path[128], err[1024];
	const char *in_name, *out_name, *build = getenv("BUILD");
	const char *ort_note = NULL;
	int64_t width_in, width_out;
	int ret = 1, ort_rc, threads_before = -1, threads_after = -1;
	double max_diff = 0;

	if (parse_opts(argc, argv, &o))
		return 2;
	if (o.cpu >= 0) {
		cpu_set_t set;

		CPU_ZERO(&set);
		CPU_SET(o.cpu, &set);
		if (sched_setaffinity(0, sizeof(set), &set)) {
			fprintf(stderr, "onnx_mlp: cannot pin to CPU %d: %s\n", o.cpu,
				strerror(errno));
			return 1;
		}
	}
	snprintf(tool, sizeof(tool), "%s/bin/copro-model", build && *build ? build : "build");
	if (o.copro_model)
		snprintf(tool, sizeof(tool), "%s", o.copro_model);

	/* The model, and copro's plans for every batch size. */
	if (o.model) {
		snprintf(path, sizeof(path), "%s", o.model);
	} else {
		snprintf(tmp, sizeof(tmp), "/tmp/copro-onnx-mlp.XXXXXX");
		if (!mkdtemp(tmp)) {
			perror("onnx_mlp: mkdtemp");
			return 1;
		}
		snprintf(path, sizeof(path), "%s/fraud.onnx", tmp);
		if (write_model(tool, path))
			goto out;
	}
	if (copro_graph_load(path, &g, err, sizeof(err))) {
		fprintf(stderr, "onnx_mlp: %s: %s\n", path, err);
		goto out;
	}
	if (g->n_inputs != 1 || g->n_outputs != 1 ||
	    g->values[g->inputs[0]].t.dtype != COPRO_K_F32 ||
	    g->values[g->inputs[0]].t.rank != 2 || g->values[g->inputs[0]].t.dims[1] <= 0) {
		fprintf(stderr, "onnx_mlp: %s: want one f32 input [N, F] and one output\n", path);
		goto out;
	}
	in_name = g->values[g->inputs[0]].name;
	out_name = g->values[g->outputs[0]].name;
	width_in = g->values[g->inputs[0]].t.dims[1];
	width_out = 0;
	for (int b = 0; b < N_BATCH; b++) {
		const struct copro_kt *ot;
		int64_t bytes;

		in_t[b] = (struct copro_kt){ .dtype = COPRO_K_F32, .rank = 2,
					     .dims = { batches[b], width_in } };
		popts[2].flags = COPRO_PLAN_F_BLAS;
		for (int e = 0; e < N_ENG; e += 2) {
			if (copro_plan_build_opts(g, &in_t[b], &popts[e], &eng[e].plan[b], err,
						  sizeof(err))) {
				fprintf(stderr, "onnx_mlp: plan at batch %d: %s\n", batches[b],
					err);
				goto out;
			}
		}
		ot = copro_plan_output(eng[0].plan[b], 0);
		bytes = copro_kt_bytes(ot);
		if (ot->dtype != COPRO_K_F32 || bytes <= 0 || ot->dims[0] != batches[b]) {
			fprintf(stderr, "onnx_mlp: want an f32 output [N, ...]\n");
			goto out;
		}
		width_out = copro_kt_numel(ot) / batches[b];
		out_t[b] = *ot;
		in_t[b].data = alloc64((size_t)(batches[b] * width_in) * 4);
		out_t[b].data = alloc64((size_t)bytes);
		ort_out[b] = alloc64((size_t)bytes);
		if (!in_t[b].data || !out_t[b].data || !ort_out[b]) {
			fprintf(stderr, "onnx_mlp: out of memory\n");
			goto out;
		}
		fill_features(in_t[b].data, batches[b] * width_in);
		if (copro_plan_run(eng[2].plan[b], &in_t[b], &out_t[b]) ||
		    copro_plan_run(eng[0].plan[b], &in_t[b], &out_t[b])) {
			fprintf(stderr, "onnx_mlp: copro run at batch %d failed\n", batches[b]);
			goto out;
		}
	}

	/* ONNX Runtime, when installed: a session and a binding per batch size. */
	ort_rc = copro_ort_open(&ort, err, sizeof(err));
	if (ort_rc == -ENOENT) {
		ort_note = "not installed, column skipped (`make ort` installs it)";
	} else if (ort_rc) {
		fprintf(stderr, "onnx_mlp: ONNX Runtime unusable: %s\n", err);
		ort_note = "unusable (see the error above), column skipped";
	} else {
		threads_before = n_threads();
		if (copro_ort_session_open(&ort, path, &sess, err, sizeof(err))) {
			fprintf(stderr, "onnx_mlp: ONNX Runtime: %s\n", err);
			goto out;
		}
		for (int b = 0; b < N_BATCH; b++) {
			struct copro_kt ot = out_t[b];

			/* Same inputs; outputs into ORT's own buffers, to check against copro's. */
			ot.data = ort_out[b];
			if (copro_ort_bind(&sess, &in_name, &in_t[b], 1, &out_name, &ot, 1,
					   &eng[1].bound[b], err, sizeof(err))) {
				fprintf(stderr, "onnx_mlp: ONNX Runtime at batch %d: %s\n",
					batches[b], err);
				goto out;
			}
		}
		if (check_outputs(&eng[1], width_out, &max_diff))
			goto out;
		threads_after = n_threads();
		eng[1].present = 1;
	}

	for (int e = 0; e < N_ENG; e++) {
		eng[e].lat = calloc(o.runs + (uint64_t)o.rounds, sizeof(uint64_t));
		if (!eng[e].lat) {
			fprintf(stderr, "onnx_mlp: out of memory\n");
			goto out;
		}
	}

	/* Rounds: every row of every engine, the engines in rotating order. */
	for (int r = 0; r < o.rounds; r++) {
		uint64_t share = o.runs / (uint64_t)o.rounds + (r < (int)(o.runs % o.rounds));

		for (int k = 0; k < N_ENG; k++) {
			struct engine *e = &eng[(k + r) % N_ENG];

			if (!e->present)
				continue;
			if (measure_latency(e, o.warmup / (uint64_t)o.rounds + 1, share))
				goto out;
			for (int b = 0; b < N_BATCH; b++) {
				if (measure_tput(e, b, o.secs / o.rounds))
					goto out;
			}
		}
	}

	/* The table. */
	printf("model:   %s: %s -> %s, f32 [N, %lld] -> [N, %lld]%s\n", path, in_name, out_name,
	       (long long)width_in, (long long)width_out,
	       o.model ? "" : " (copro-model mlp --in 32 --hidden 256,256 --out 1 --seed 1)");
	printf("copro:   compiled plan as coprod builds it (f32, fused), %d steps, arena %zu "
	       "bytes at batch 64; own AVX-512 f32 kernel where the CPU has it\n",
	       copro_plan_n_steps(eng[0].plan[0]),
	       copro_plan_arena_bytes(eng[0].plan[N_BATCH - 1]));
	printf("BLAS:    the same plans with COPRO_PLAN_F_BLAS: products on OpenBLAS, 1 thread\n");
	if (eng[1].present) {
		printf("ORT:     ONNX Runtime %s (%s); intra-op 1, inter-op 1, sequential, all "
		       "graph optimizations; I/O bound once; threads %d -> %d\n", ort.version,
		       ort.path, threads_before, threads_after);
		printf("check:   outputs agree at batch 1, 8, 64 (max |diff| %.2g)\n", max_diff);
	} else {
		printf("ORT:     %s\n", ort_note);
	}
	printf("runs:    latency %llu per engine after %llu warm-up; throughput %.2f s per "
	       "engine and batch; %d interleaved rounds%s\n", (unsigned long long)o.runs,
	       (unsigned long long)o.warmup, o.secs, o.rounds,
	       o.cpu >= 0 ? ", pinned" : "");
	printf("\n%-30s %12s %12s %12s %10s %10s\n", "", "copro", "copro BLAS", "ORT",
	       "copro/ORT", "copro/BLAS");
	{
		double p50[N_ENG], p99[N_ENG], mean[N_ENG];

		for (int e = 0; e < N_ENG; e++) {
			long double sum = 0;

			p50[e] = p99[e] = mean[e] = 0;
			if (!eng[e].present || !eng[e].n_lat)
				continue;
			qsort(eng[e].lat, eng[e].n_lat, sizeof(uint64_t), cmp_u64);
			for (uint64_t i = 0; i < eng[e].n_lat; i++)
				sum += eng[e].lat[i];
			p50[e] = (double)pct(eng[e].lat, eng[e].n_lat, 0.50) / 1e3;
			p99[e] = (double)pct(eng[e].lat, eng[e].n_lat, 0.99) / 1e3;
			mean[e] = (double)(sum / eng[e].n_lat) / 1e3;
		}
		row("latency batch 1, p50 (us)", p50, eng[1].present, "%.2f");
		row("latency batch 1, p99 (us)", p99, eng[1].present, "%.2f");
		row("latency batch 1, mean (us)", mean, eng[1].present, "%.2f");
	}
	for (int b = 0; b < N_BATCH; b++) {
		double t[N_ENG];
		char label[64];

		for (int e = 0; e < N_ENG; e++)
			t[e] = eng[e].tput_ns[b] ? (double)eng[e].tput_rows[b] * 1e9 /
							   (double)eng[e].tput_ns[b]
						 : 0;
		snprintf(label, sizeof(label), "throughput batch %d (inf/s)", batches[b]);
		row(label, t, eng[1].present, "%.0f");
	}
	printf("\ncopro/ORT, copro/BLAS: below 1 is faster in the latency rows, above 1 is "
	       "more throughput.\n");
	ret = 0;
out:
	for (int b = 0; b < N_BATCH; b++) {
		copro_ort_unbind(&eng[1].bound[b]);
		copro_plan_free(eng[0].plan[b]);
		copro_plan_free(eng[2].plan[b]);
		free(in_t[b].data);
		free(out_t[b].data);
		free(ort_out[b]);
	}
	for (int e = 0; e < N_ENG; e++)
		free(eng[e].lat);
	if (sess.sess)
		copro_ort_session_close(&sess);
	if (ort.api)
		copro_ort_close(&ort);
	copro_graph_free(g);
	if (tmp[0]) {
		unlink(path);
		rmdir(tmp);
	}
	return ret;
}
