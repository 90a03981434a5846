// SPDX-License-Identifier: MIT
/*
 * test_ort_reference.c - ONNX Runtime as a second correctness reference: the
 * same models and the same inputs through copro's plan and through ONNX
 * Runtime (opened at run time, see ort_dl.h), every output compared.
 *
 * The models: the demo fraud MLP (`copro-model mlp --in 32 --hidden 256,256
 * --out 1`, seed 1) and a softmax MLP (16 -> 64 -> 8) at several batch
 * sizes, and the ONNX node tests of the operators such models are made of
 * (Gemm, MatMul, Relu, Sigmoid, Softmax, LayerNormalization, and the
 * "_expanded" variants that spell some of them out in smaller ops). A node
 * test whose model copro refuses with -ENOTSUP is counted, not compared.
 *
 * Tolerance: |copro - ort| <= 1e-5 + 1e-4 * |ort|, exact for integer types.
 * Both sides compute in f32 but not in the same order: OpenBLAS and ONNX
 * Runtime's MLAS block and vectorize each dot product differently, fuse
 * multiply-adds differently, and use their own vectorized exp. The rounding
 * that leaves is a few ULP per operation, growing like sqrt(K) * 2^-24 over a
 * K-term sum (about 1e-6 relative for the MLP's 256-wide layers); 1e-4
 * leaves a wide margin for that while any real mistake (a transpose, a
 * broadcast, an axis) shows up at order 1. The absolute 1e-5 covers values
 * near zero, where a relative bound means nothing: sums that cancel, and
 * sigmoid and softmax outputs close to 0. This is tighter than the
 * conformance test's rtol 1e-3 because here two f32 implementations of one
 * graph are compared, not an implementation against stored numbers.
 *
 * Without ONNX Runtime every test calls skip() with a message saying how to
 * get it (`make ort`), and tests/run.sh counts them as skipped. With a
 * library that is there but does not pass ort_dl.h's checks, they fail.
 */
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "onnx/graph.h"
#include "onnx/plan.h"
#include "ort_dl.h"

#define TESTDATA_DIR	"/usr/share/libonnx-testdata/data/node"
#define RTOL		1e-4
#define ATOL		1e-5
#define MAX_IO		COPRO_ORT_MAX_IO

static struct copro_ort ort;
static int ort_rc;
static char ort_err[1024];
static char tmpdir[64];

/* What a comparison saw, for the figures line. */
struct agreement {
	int models, outputs;
	int64_t elements;
	double max_abs, max_rel;
};

/*
 * ONNX Runtime leaks 14 bytes that ReleaseEnv does not give back (seen with
 * 1.30.0: an env with nothing else made leaks them too); keep that out of
 * LeakSanitizer's verdict when this test is built with SANITIZE=address and
 * pointed at ONNX Runtime.
 */
const char *__lsan_default_suppressions(void);
const char *__lsan_default_suppressions(void)
{
	return "leak:libonnxruntime.so\n";
}

/* 64-byte aligned, so copro_plan_run() uses the buffer in place (C11 wants whole 64s). */
static void *alloc64(size_t n)
{
	return aligned_alloc(64, (n + 63) / 64 * 64 + 64);
}

/* ---- setup ----------------------------------------------------------------- */

static int open_ort(void **state)
{
	ort_rc = copro_ort_open(&ort, ort_err, sizeof(ort_err));
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/copro-ort-ref.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int close_ort(void **state)
{
	char path[sizeof(tmpdir) + 260];
	DIR *d = opendir(tmpdir);
	struct dirent *e;

	while (d && (e = readdir(d))) {
		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, e->d_name);
		unlink(path);
	}
	if (d)
		closedir(d);
	rmdir(tmpdir);
	if (ort_rc == 0)
		copro_ort_close(&ort);
	return 0;
}

/* Skips the test when ONNX Runtime is not installed; fails when it is broken. */
static void need_ort(void)
{
	static int said;

	if (ort_rc == -ENOENT) {
		/* The whole reason once; tests/run.sh echoes every "skipped:" line. */
		print_message("skipped: %s\n", said++ ? "ONNX Runtime not found (see above)"
						      : ort_err);
		skip();
	}
	if (ort_rc)
		fail_msg("%s", ort_err);
}

/* ---- comparing ------------------------------------------------------------- */

static void shape_str(const struct copro_kt *t, char *buf, size_t len)
{
	size_t k = (size_t)snprintf(buf, len, "%s[", copro_k_dtype_name(t->dtype));

	for (int i = 0; i < t->rank && k < len; i++)
		k += (size_t)snprintf(buf + k, len - k, i ? ",%lld" : "%lld",
				      (long long)t->dims[i]);
	if (k < len)
		snprintf(buf + k, len - k, "]");
}

/*
 * Compares copro's output c with ONNX Runtime's o: same dtype and shape, and
 * values within the tolerance above (exactly for non-float types). Returns 0
 * or -1 with why filled; records the largest differences in a.
 */
static int agree(const struct copro_kt *c, const struct copro_kt *o, struct agreement *a,
		 char *why, size_t len)
{
	int64_t n = copro_kt_numel(o);
	char s1[128], s2[128];
	int i;

	if (c->dtype != o->dtype || c->rank != o->rank)
		goto shape;
	for (i = 0; i < c->rank; i++) {
		if (c->dims[i] != o->dims[i])
			goto shape;
	}
	a->outputs++;
	a->elements += n;
	if (o->dtype != COPRO_K_F32 && o->dtype != COPRO_K_F64) {
		if (memcmp(c->data, o->data, (size_t)copro_kt_bytes(o)) != 0) {
			snprintf(why, len, "%s values differ (exact compare)",
				 copro_k_dtype_name(o->dtype));
			return -1;
		}
		return 0;
	}
	for (int64_t k = 0; k < n; k++) {
		double x = o->dtype == COPRO_K_F32 ? ((const float *)c->data)[k]
						   : ((const double *)c->data)[k];
		double y = o->dtype == COPRO_K_F32 ? ((const float *)o->data)[k]
						   : ((const double *)o->data)[k];
		double d = fabs(x - y);

		if (x == y || (isnan(x) && isnan(y)))
			continue;
		if (!(d <= ATOL + RTOL * fabs(y))) {
			snprintf(why, len, "element %lld: copro %.9g, ONNX Runtime %.9g",
				 (long long)k, x, y);
			return -1;
		}
		if (d > a->max_abs)
			a->max_abs = d;
		if (fabs(y) > 1e-3 && d / fabs(y) > a->max_rel)
			a->max_rel = d / fabs(y);
	}
	return 0;
shape:
	shape_str(c, s1, sizeof(s1));
	shape_str(o, s2, sizeof(s2));
	snprintf(why, len, "copro gives %s, ONNX Runtime %s", s1, s2);
	return -1;
}

enum { SAME, DIFFERENT, UNSUPPORTED };

/*
 * Runs model through copro and ONNX Runtime on the same inputs and compares
 * every output. in[k] is fed as the graph input named in_names[k], or, when
 * in_names is NULL or in_names[k] is NULL, as graph input k. Returns SAME,
 * UNSUPPORTED (copro refuses the model with -ENOTSUP; why says why) or
 * DIFFERENT (why says how, including an error from either runtime).
 */
static int compare_model(const char *model, const struct copro_kt *in, char *const *in_names,
			 int n_in, struct agreement *a, char *why, size_t len)
{
	struct copro_kt order[MAX_IO] = { 0 }, mine[MAX_IO] = { 0 }, theirs[MAX_IO] = { 0 };
	const char *names_in[MAX_IO], *names_out[MAX_IO];
	struct copro_ort_session s = { 0 };
	struct copro_graph *g = NULL;
	struct copro_plan *p = NULL;
	char err[768];
	int ret = DIFFERENT, rc, k, j;

	rc = copro_graph_load(model, &g, err, sizeof(err));
	if (rc) {
		snprintf(why, len, "copro load: %s", err);
		return rc == -ENOTSUP ? UNSUPPORTED : DIFFERENT;
	}
	if (g->n_inputs != n_in || g->n_inputs > MAX_IO || g->n_outputs > MAX_IO) {
		snprintf(why, len, "%d inputs given, the model has %d (and %d outputs)", n_in,
			 g->n_inputs, g->n_outputs);
		goto out;
	}
	for (k = 0; k < g->n_inputs; k++) {
		names_in[k] = g->values[g->inputs[k]].name;
		order[k] = in[k];
		for (j = 0; in_names && j < n_in; j++) {
			if (in_names[j] && !strcmp(in_names[j], names_in[k])) {
				order[k] = in[j];
				break;
			}
		}
	}
	for (k = 0; k < g->n_outputs; k++)
		names_out[k] = g->values[g->outputs[k]].name;

	rc = copro_plan_build(g, order, &p, err, sizeof(err));
	if (rc) {
		snprintf(why, len, "copro plan: %s", err);
		ret = rc == -ENOTSUP ? UNSUPPORTED : DIFFERENT;
		goto out;
	}
	for (k = 0; k < g->n_outputs; k++) {
		int64_t bytes = copro_kt_bytes(copro_plan_output(p, k));

		mine[k] = *copro_plan_output(p, k);
		mine[k].data = alloc64((size_t)(bytes > 0 ? bytes : 0));
		assert_non_null(mine[k].data);
	}
	rc = copro_plan_run(p, order, mine);
	if (rc) {
		snprintf(why, len, "copro run: %s", strerror(-rc));
		goto out;
	}

	rc = copro_ort_session_open(&ort, model, &s, err, sizeof(err));
	if (rc) {
		snprintf(why, len, "%s", err);
		goto out;
	}
	/* Both runtimes must see the same signature (as sets: ORT lists its own order). */
	if (s.n_in != g->n_inputs || s.n_out != g->n_outputs) {
		snprintf(why, len, "ONNX Runtime sees %d inputs and %d outputs, copro %d and %d",
			 s.n_in, s.n_out, g->n_inputs, g->n_outputs);
		goto out;
	}
	for (k = 0; k < s.n_in + s.n_out; k++) {
		const char *name = k < s.n_in ? s.in_names[k] : s.out_names[k - s.n_in];
		const char **list = k < s.n_in ? names_in : names_out;
		int n = k < s.n_in ? g->n_inputs : g->n_outputs;

		for (j = 0; j < n && strcmp(list[j], name); j++)
			;
		if (j == n) {
			snprintf(why, len, "ONNX Runtime lists %s \"%s\", which copro does not",
				 k < s.n_in ? "input" : "output", name);
			goto out;
		}
	}
	rc = copro_ort_run(&s, names_in, order, g->n_inputs, names_out, theirs, g->n_outputs,
			   err, sizeof(err));
	if (rc) {
		snprintf(why, len, "%s", err);
		goto out;
	}
	for (k = 0; k < g->n_outputs; k++) {
		char what[512];

		if (agree(&mine[k], &theirs[k], a, what, sizeof(what))) {
			snprintf(why, len, "output %s: %s", names_out[k], what);
			goto out;
		}
	}
	a->models++;
	ret = SAME;
out:
	for (k = 0; k < MAX_IO; k++) {
		free(mine[k].data);
		free(theirs[k].data);
	}
	copro_ort_session_close(&s);
	copro_plan_free(p);
	copro_graph_free(g);
	return ret;
}

/* ---- MLPs written by copro-model -------------------------------------------- */

/* Writes an MLP with copro-model (next to coprod, as test_mlp.c finds it) into path. */
static void write_mlp(const char *args, const char *name, char *path, size_t len)
{
	const char *coprod = getenv("COPRO_COPROD");
	char bindir[256], cmd[1024], *slash;
	int st;

	snprintf(bindir, sizeof(bindir), "%s", coprod ? coprod : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	snprintf(path, len, "%s/%s.onnx", tmpdir, name);
	snprintf(cmd, sizeof(cmd), "%s/copro-model mlp %s -o %s >/dev/null", bindir, args, path);
	st = system(cmd);
	if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
		fail_msg("could not write the model: %s", cmd);
}

/* Features spread over [-4, 4], different in every row and column. */
static void fill_features(float *x, int64_t n, uint32_t seed)
{
	uint32_t s = seed * 2654435761u + 1;

	for (int64_t i = 0; i < n; i++) {
		s = s * 1664525u + 1013904223u;
		x[i] = (float)((int32_t)(s >> 8) % 4096) / 1024.0f;
	}
}

static void check_mlp(const char *args, const char *name, int width, const int *batches,
		      int n_batches, struct agreement *a)
{
	char path[128], why[1024];

	write_mlp(args, name, path, sizeof(path));
	for (int b = 0; b < n_batches; b++) {
		struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2,
				       .dims = { batches[b], width } };
		int rc;

		in.data = alloc64((size_t)batches[b] * (size_t)width * 4);
		assert_non_null(in.data);
		fill_features(in.data, (int64_t)batches[b] * width, (uint32_t)b + 1);
		rc = compare_model(path, &in, NULL, 1, a, why, sizeof(why));
		free(in.data);
		if (rc != SAME)
			fail_msg("%s at batch %d: %s", name, batches[b], why);
	}
}

static void should_load_onnx_runtime_and_find_its_api_table_as_declared(void **state)
{
	need_ort();
	/* copro_ort_open() ran the version check and the slot probes. */
	print_message("figures: ONNX Runtime %s (package %s) from %s\n", ort.version,
		      ort.pkg_version[0] ? ort.pkg_version : "unknown", ort.path);
	assert_true(strncmp(ort.version, "1.", 2) == 0);
}

static void should_agree_with_onnx_runtime_on_the_fraud_mlp(void **state)
{
	static const int batches[] = { 1, 8, 64 };
	struct agreement a = { 0 };

	need_ort();
	check_mlp("--in 32 --hidden 256,256 --out 1 --seed 1", "fraud", 32, batches, 3, &a);
	assert_int_equal(a.models, 3);
	print_message("figures: ORT reference, fraud MLP 32-256-256-1 at batch 1/8/64: "
		      "max |diff| %.2g, max rel %.2g\n", a.max_abs, a.max_rel);
}

static void should_agree_with_onnx_runtime_on_a_softmax_mlp(void **state)
{
	static const int batches[] = { 1, 3, 64 };
	struct agreement a = { 0 };

	need_ort();
	check_mlp("--in 16 --hidden 64 --out 8 --seed 3 --final softmax", "softmax", 16, batches,
		  3, &a);
	assert_int_equal(a.models, 3);
	print_message("figures: ORT reference, softmax MLP 16-64-8 at batch 1/3/64: "
		      "max |diff| %.2g, max rel %.2g\n", a.max_abs, a.max_rel);
}

/* ---- ONNX node tests --------------------------------------------------------- */

static const char *const node_prefixes[] = {
	"test_gemm_", "test_matmul_", "test_relu", "test_sigmoid", "test_softmax_",
	"test_layer_normalization_",
};

static int node_selected(const struct dirent *e)
{
	for (size_t i = 0; i < sizeof(node_prefixes) / sizeof(node_prefixes[0]); i++) {
		if (!strncmp(e->d_name, node_prefixes[i], strlen(node_prefixes[i])))
			return 1;
	}
	return 0;
}

static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	void *buf = NULL;
	long sz;

	if (!f)
		return NULL;
	if (fseek(f, 0, SEEK_END) == 0 && (sz = ftell(f)) >= 0 && fseek(f, 0, SEEK_SET) == 0) {
		buf = malloc(sz ? (size_t)sz : 1);
		if (buf && fread(buf, 1, (size_t)sz, f) != (size_t)sz) {
			free(buf);
			buf = NULL;
		}
		*len = (size_t)sz;
	}
	fclose(f);
	return buf;
}

/* Loads test_data_set_0/input_N.pb until one is missing; returns the count or -1. */
static int load_inputs(const char *dir, struct copro_kt *t, char **names, char *why, size_t len)
{
	char path[1100], err[256];
	int n;

	for (n = 0; n < MAX_IO; n++) {
		size_t sz;
		void *buf;
		int rc;

		snprintf(path, sizeof(path), "%s/test_data_set_0/input_%d.pb", dir, n);
		buf = slurp(path, &sz);
		if (!buf)
			break;
		rc = copro_tensor_decode(buf, sz, &t[n], &names[n], err, sizeof(err));
		free(buf);
		if (rc) {
			snprintf(why, len, "input_%d.pb: %s", n, err);
			return -1;
		}
	}
	return n;
}

static void should_agree_with_onnx_runtime_on_the_onnx_node_tests(void **state)
{
	const char *base = getenv("COPRO_ONNX_TESTDATA");
	struct agreement a = { 0 };
	struct dirent **ents = NULL;
	int n, n_unsup = 0, n_diff = 0;

	need_ort();
	if (!base)
		base = TESTDATA_DIR;
	n = scandir(base, &ents, node_selected, alphasort);
	if (n <= 0) {
		print_message("skipped: no node tests under %s (install libonnx-testdata)\n", base);
		skip();
	}
	for (int i = 0; i < n; i++) {
		struct copro_kt in[MAX_IO] = { 0 };
		char *names[MAX_IO] = { 0 };
		char dir[768], model[800], why[1024];
		int n_in, rc;

		snprintf(dir, sizeof(dir), "%s/%s", base, ents[i]->d_name);
		snprintf(model, sizeof(model), "%s/model.onnx", dir);
		n_in = load_inputs(dir, in, names, why, sizeof(why));
		rc = n_in < 0 ? DIFFERENT : compare_model(model, in, names, n_in, &a, why,
							  sizeof(why));
		if (rc == UNSUPPORTED) {
			n_unsup++;
			print_message("    %s: not compared, copro refuses it: %s\n",
				      ents[i]->d_name, why);
		} else if (rc == DIFFERENT) {
			n_diff++;
			print_message("    %s: %s\n", ents[i]->d_name, why);
		}
		for (int k = 0; k < MAX_IO; k++) {
			free(in[k].data);
			free(names[k]);
		}
		free(ents[i]);
	}
	free(ents);
	print_message("figures: ORT reference, node tests (gemm, matmul, relu, sigmoid, softmax, "
		      "layer_normalization): %d of %d agree, %d differ, %d unsupported by copro; "
		      "max |diff| %.2g, max rel %.2g\n", a.models, n, n_diff, n_unsup, a.max_abs,
		      a.max_rel);
	if (n_diff)
		fail_msg("%d node tests differ between copro and ONNX Runtime (listed above)",
			 n_diff);
	assert_true(a.models > 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_load_onnx_runtime_and_find_its_api_table_as_declared),
		cmocka_unit_test(should_agree_with_onnx_runtime_on_the_fraud_mlp),
		cmocka_unit_test(should_agree_with_onnx_runtime_on_a_softmax_mlp),
		cmocka_unit_test(should_agree_with_onnx_runtime_on_the_onnx_node_tests),
	};

	return cmocka_run_group_tests_name("ONNX Runtime reference", tests, open_ort, close_ort);
}
