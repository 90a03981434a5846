// SPDX-License-Identifier: MIT
/*
 * test_onnx_conformance.c - the ONNX backend node tests that Debian's
 * libonnx-testdata ships, run through the loader, the planner and the
 * operators: every directory under data/node/ holds a model.onnx and
 * test_data_set_0/{input,output}_N.pb TensorProtos.
 *
 * A directory whose model the runtime refuses with -ENOTSUP (load or plan
 * build: an operator, an attribute value or a dtype it does not handle) is
 * counted "unsupported" with its reason; there is no skip list, so an op
 * with a known limitation must say so in its infer(), never give a wrong
 * answer. Every other directory must pass: outputs are compared as ONNX's
 * backend test runner does, |actual - expected| <= atol + rtol * |expected|
 * with rtol 1e-3 and atol 1e-7 for floating types, NaN matching NaN, and
 * exactly for integer and bool types.
 *
 * COPRO_ONNX_TESTDATA overrides the directory; COPRO_ONNX_ONLY=substring
 * runs only the matching directories and prints why each is unsupported
 * (for debugging one op); COPRO_ONNX_ALL=1 lists every unsupported reason,
 * not only the top 20.
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
#include <sys/stat.h>
#include <time.h>

#include <cmocka.h>

#include "onnx/graph.h"
#include "onnx/ops.h"
#include "onnx/plan.h"

#define TESTDATA_DIR	"/usr/share/libonnx-testdata/data/node"
#define MAX_IO		32
#define RTOL		1e-3
#define ATOL		1e-7

enum { R_PASS, R_FAIL, R_UNSUP, R_BADDATA };

struct reason {
	char *key;
	int count;
};

struct report {
	int n_dirs, n_pass, n_fail, n_unsup, n_bad;
	char **failures;		/* "dir: why" */
	char **bad;			/* "dir: why": test data contradicting its model */
	struct reason *reasons;		/* unsupported reasons, grouped */
	int n_reasons;
	char **passed_ops;		/* op_types seen in passing directories */
	int n_passed_ops;
};

/* Reads a whole file; returns a malloc'ed buffer or NULL. */
static void *slurp(const char *path, size_t *len)
{
	FILE *f = fopen(path, "rb");
	uint8_t *buf = NULL;
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

/*
 * Groups a reason by what it says, not where: drops the "(node NAME, opset
 * N)" parenthetical the planner and loader append.
 */
static void reason_key(const char *why, char *key, size_t len)
{
	const char *p = strstr(why, " (node ");
	size_t n = p ? (size_t)(p - why) : strlen(why);

	if (n >= len)
		n = len - 1;
	memcpy(key, why, n);
	key[n] = '\0';
	/* Also group "(tensor NAME)" style suffixes. */
	p = strstr(key, " (tensor ");
	if (p)
		key[p - key] = '\0';
}

static void add_reason(struct report *r, const char *why)
{
	char key[256];
	int i;

	reason_key(why, key, sizeof(key));
	for (i = 0; i < r->n_reasons; i++) {
		if (strcmp(r->reasons[i].key, key) == 0) {
			r->reasons[i].count++;
			return;
		}
	}
	r->reasons = realloc(r->reasons, (size_t)(r->n_reasons + 1) * sizeof(*r->reasons));
	assert_non_null(r->reasons);
	r->reasons[r->n_reasons].key = strdup(key);
	r->reasons[r->n_reasons].count = 1;
	r->n_reasons++;
}

static void add_passed_ops(struct report *r, const struct copro_graph *g)
{
	int i, j;

	for (i = 0; i < g->n_nodes; i++) {
		for (j = 0; j < r->n_passed_ops; j++) {
			if (strcmp(r->passed_ops[j], g->nodes[i].op_type) == 0)
				break;
		}
		if (j < r->n_passed_ops)
			continue;
		r->passed_ops = realloc(r->passed_ops,
					(size_t)(r->n_passed_ops + 1) * sizeof(char *));
		assert_non_null(r->passed_ops);
		r->passed_ops[r->n_passed_ops++] = strdup(g->nodes[i].op_type);
	}
}

static float half_to_float(uint16_t h)
{
	uint32_t s = (uint32_t)(h >> 15) << 31, e = (h >> 10) & 0x1f, m = h & 0x3ff;
	float f;

	if (e == 0)
		f = ldexpf((float)m, -24);
	else if (e == 31)
		f = m ? NAN : INFINITY;
	else
		f = ldexpf((float)(m | 0x400), (int)e - 25);
	return s ? -f : f;
}

static float bf16_to_float(uint16_t b)
{
	uint32_t u = (uint32_t)b << 16;
	float f;

	memcpy(&f, &u, sizeof(f));
	return f;
}

/* Element i of a floating tensor as a double. */
static double fval(const struct copro_kt *t, int64_t i)
{
	switch (t->dtype) {
	case COPRO_K_F32:
		return ((const float *)t->data)[i];
	case COPRO_K_F64:
		return ((const double *)t->data)[i];
	case COPRO_K_F16:
		return half_to_float(((const uint16_t *)t->data)[i]);
	default:
		return bf16_to_float(((const uint16_t *)t->data)[i]);
	}
}

static void shape_str(const struct copro_kt *t, char *buf, size_t len)
{
	size_t k = 0;
	int i;

	k += snprintf(buf, len, "%s[", copro_k_dtype_name(t->dtype));
	for (i = 0; i < t->rank && k < len; i++)
		k += snprintf(buf + k, len - k, i ? ",%lld" : "%lld", (long long)t->dims[i]);
	if (k < len)
		snprintf(buf + k, len - k, "]");
}

/* Compares output k; returns 0 or fills why. */
static int compare(int k, const struct copro_kt *got, const struct copro_kt *want, char *why,
		   size_t len)
{
	char s1[128], s2[128];
	int64_t n = copro_kt_numel(want), i;
	int i2;

	if (got->dtype != want->dtype || got->rank != want->rank)
		goto shape;
	for (i2 = 0; i2 < got->rank; i2++) {
		if (got->dims[i2] != want->dims[i2])
			goto shape;
	}
	if (want->dtype == COPRO_K_F32 || want->dtype == COPRO_K_F64 ||
	    want->dtype == COPRO_K_F16 || want->dtype == COPRO_K_BF16) {
		for (i = 0; i < n; i++) {
			double a = fval(got, i), e = fval(want, i);

			if (a == e || (isnan(a) && isnan(e)))
				continue;
			if (!(fabs(a - e) <= ATOL + RTOL * fabs(e))) {
				snprintf(why, len, "output %d element %lld: %.9g, expected %.9g", k,
					 (long long)i, a, e);
				return -1;
			}
		}
		return 0;
	}
	if (memcmp(got->data, want->data, (size_t)copro_kt_bytes(want)) != 0) {
		size_t es = copro_k_dtype_size(want->dtype);

		for (i = 0; i < n; i++) {
			if (memcmp((const char *)got->data + i * es,
				   (const char *)want->data + i * es, es) != 0)
				break;
		}
		snprintf(why, len, "output %d element %lld differs (exact compare, %s)", k,
			 (long long)i, copro_k_dtype_name(want->dtype));
		return -1;
	}
	return 0;
shape:
	shape_str(got, s1, sizeof(s1));
	shape_str(want, s2, sizeof(s2));
	snprintf(why, len, "output %d is %s, expected %s", k, s1, s2);
	return -1;
}

/* Loads the N-th input_N.pb / output_N.pb files until one is missing. */
static int load_pbs(const char *dir, const char *kind, struct copro_kt *t, char **names,
		    char *why, size_t len)
{
	char path[1024], err[256];
	int n;

	for (n = 0; n < MAX_IO; n++) {
		size_t sz;
		void *buf;
		int rc;

		snprintf(path, sizeof(path), "%s/test_data_set_0/%s_%d.pb", dir, kind, n);
		buf = slurp(path, &sz);
		if (!buf)
			break;
		rc = copro_tensor_decode(buf, sz, &t[n], &names[n], err, sizeof(err));
		free(buf);
		if (rc) {
			snprintf(why, len, "%s_%d.pb: %s", kind, n, err);
			return rc;
		}
	}
	return n;
}

/*
 * Runs one directory. Returns R_PASS, R_FAIL or R_UNSUP with why filled.
 * On R_PASS *gp receives the graph (the caller records its ops and frees it).
 */
static int run_dir(const char *dir, char *why, size_t len, struct copro_graph **gp)
{
	struct copro_kt in[MAX_IO] = { 0 }, want[MAX_IO] = { 0 }, order[MAX_IO] = { 0 };
	struct copro_kt got[MAX_IO] = { 0 };
	char *in_names[MAX_IO] = { 0 }, *out_names[MAX_IO] = { 0 };
	struct copro_graph *g = NULL;
	struct copro_plan *p = NULL;
	char path[1100], err[512];
	int n_in = 0, n_want = 0, rc, res = R_FAIL, k, j;

	*gp = NULL;
	snprintf(path, sizeof(path), "%s/model.onnx", dir);
	rc = copro_graph_load(path, &g, err, sizeof(err));
	if (rc) {
		snprintf(why, len, "load: %s", err);
		res = rc == -ENOTSUP ? R_UNSUP : R_FAIL;
		if (res == R_UNSUP)
			snprintf(why, len, "%s", err);
		goto out;
	}
	n_in = load_pbs(dir, "input", in, in_names, why, len);
	if (n_in < 0)
		goto out;
	n_want = load_pbs(dir, "output", want, out_names, why, len);
	if (n_want < 0)
		goto out;
	if (n_in != g->n_inputs || n_want != g->n_outputs) {
		snprintf(why, len, "test data has %d inputs and %d outputs, the model %d and %d",
			 n_in, n_want, g->n_inputs, g->n_outputs);
		goto out;
	}
	/* Feed inputs by name when the .pb files carry names, else in order. */
	for (k = 0; k < g->n_inputs; k++) {
		const char *name = g->values[g->inputs[k]].name;

		order[k] = in[k];
		for (j = 0; j < n_in; j++) {
			if (in_names[j] && strcmp(in_names[j], name) == 0) {
				order[k] = in[j];
				break;
			}
		}
	}
	/*
	 * ONNX 1.12's test data stores bfloat16 tensors as uint16 (its numpy
	 * helper had no bfloat16); the bits are the same, so relabel them.
	 */
	for (k = 0; k < g->n_inputs; k++) {
		if (order[k].dtype == COPRO_K_U16 &&
		    g->values[g->inputs[k]].t.dtype == COPRO_K_BF16)
			order[k].dtype = COPRO_K_BF16;
	}
	for (k = 0; k < g->n_outputs; k++) {
		if (want[k].dtype == COPRO_K_U16 &&
		    g->values[g->outputs[k]].t.dtype == COPRO_K_BF16)
			want[k].dtype = COPRO_K_BF16;
	}
	/*
	 * A few directories feed an input whose shape contradicts the model's
	 * own declaration; the runtime rightly refuses those (ONNX Runtime
	 * does too), and they are listed apart, by name, not skipped.
	 */
	for (k = 0; k < g->n_inputs; k++) {
		const struct copro_kt *d = &g->values[g->inputs[k]].t;
		int bad = d->rank >= 0 && d->rank != order[k].rank;

		for (j = 0; !bad && d->rank >= 0 && j < d->rank; j++)
			bad = d->dims[j] >= 0 && d->dims[j] != order[k].dims[j];
		if (bad) {
			char s1[128], s2[128];

			shape_str(&order[k], s1, sizeof(s1));
			shape_str(d, s2, sizeof(s2));
			snprintf(why, len, "input %s is %s in the test data, the model declares %s",
				 g->values[g->inputs[k]].name, s1, s2);
			res = R_BADDATA;
			goto out;
		}
	}
	rc = copro_plan_build(g, order, &p, err, sizeof(err));
	if (rc) {
		snprintf(why, len, "%s", err);
		res = rc == -ENOTSUP ? R_UNSUP : R_FAIL;
		if (res == R_FAIL)
			snprintf(why, len, "plan: %s (%s)", err, strerror(-rc));
		goto out;
	}
	for (k = 0; k < g->n_outputs; k++) {
		const struct copro_kt *t = copro_plan_output(p, k);
		int64_t bytes = copro_kt_bytes(t);

		got[k] = *t;
		got[k].data = aligned_alloc(64, bytes > 0 ? ((size_t)bytes + 63) & ~(size_t)63
							  : 64);
		assert_non_null(got[k].data);
		memset(got[k].data, 0xa5, bytes > 0 ? (size_t)bytes : 0);
	}
	rc = copro_plan_run(p, order, got);
	if (rc) {
		snprintf(why, len, "run: %s", strerror(-rc));
		goto out;
	}
	for (k = 0; k < g->n_outputs; k++) {
		if (compare(k, &got[k], &want[k], why, len))
			goto out;
	}
	res = R_PASS;
	*gp = g;
	g = NULL;
out:
	for (k = 0; k < MAX_IO; k++) {
		free(in[k].data);
		free(want[k].data);
		free(got[k].data);
		free(in_names[k]);
		free(out_names[k]);
	}
	copro_plan_free(p);
	copro_graph_free(g);
	return res;
}

static int cmp_reason(const void *a, const void *b)
{
	const struct reason *x = a, *y = b;

	return x->count != y->count ? y->count - x->count : strcmp(x->key, y->key);
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static void conformance_should_pass_every_supported_node_test(void **state)
{
	const char *base = getenv("COPRO_ONNX_TESTDATA");
	const char *only = getenv("COPRO_ONNX_ONLY");
	struct report r = { 0 };
	struct dirent **ents = NULL;
	struct timespec t0, t1;
	int n, i;
	size_t k;

	if (!base)
		base = TESTDATA_DIR;
	n = scandir(base, &ents, NULL, alphasort);
	if (n < 0) {
		print_message("skipped: %s not found (install libonnx-testdata)\n", base);
		skip();
	}
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (i = 0; i < n; i++) {
		char dir[1024], why[768];
		struct copro_graph *g = NULL;
		struct stat st;
		int res;

		if (strncmp(ents[i]->d_name, "test_", 5) != 0 ||
		    (only && !strstr(ents[i]->d_name, only)))
			continue;
		snprintf(dir, sizeof(dir), "%s/%s", base, ents[i]->d_name);
		if (stat(dir, &st) || !S_ISDIR(st.st_mode))
			continue;
		r.n_dirs++;
		why[0] = '\0';
		res = run_dir(dir, why, sizeof(why), &g);
		if (res == R_PASS) {
			r.n_pass++;
			add_passed_ops(&r, g);
			copro_graph_free(g);
		} else if (res == R_UNSUP) {
			r.n_unsup++;
			add_reason(&r, why);
			if (only)
				print_message("unsupported %s: %s\n", ents[i]->d_name, why);
		} else if (res == R_BADDATA) {
			char *f = NULL;

			assert_true(asprintf(&f, "%s: %s", ents[i]->d_name, why) > 0);
			r.bad = realloc(r.bad, (size_t)(r.n_bad + 1) * sizeof(char *));
			assert_non_null(r.bad);
			r.bad[r.n_bad++] = f;
		} else {
			char *f = NULL;

			r.n_fail++;
			assert_true(asprintf(&f, "%s: %s", ents[i]->d_name, why) > 0);
			r.failures = realloc(r.failures, (size_t)r.n_fail * sizeof(char *));
			assert_non_null(r.failures);
			r.failures[r.n_fail - 1] = f;
			print_message("FAIL %s\n", f);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	for (i = 0; i < n; i++)
		free(ents[i]);
	free(ents);

	qsort(r.reasons, (size_t)r.n_reasons, sizeof(*r.reasons), cmp_reason);
	print_message("\nunsupported reasons (top 20 of %d):\n", r.n_reasons);
	for (i = 0; i < r.n_reasons && (i < 20 || getenv("COPRO_ONNX_ALL")); i++)
		print_message("  %4d  %s\n", r.reasons[i].count, r.reasons[i].key);

	/* Registered operators that no passing node test exercised. */
	qsort(r.passed_ops, (size_t)r.n_passed_ops, sizeof(char *), cmp_name);
	print_message("\noperators with no passing node test:");
	for (k = 0; k < copro_n_ops; k++) {
		const char *name = copro_ops[k]->name;

		if (k > 0 && strcmp(name, copro_ops[k - 1]->name) == 0)
			continue;	/* one entry per opset where semantics changed */
		if (!bsearch(&name, r.passed_ops, (size_t)r.n_passed_ops, sizeof(char *), cmp_name))
			print_message(" %s", name);
	}
	/* Worded so that no CI parser takes it for a test runner's closing line. */
	print_message("\n\nfigures: ONNX node tests: %d directories; %d use only supported ops; "
		      "of those %d pass and %d fail (%d unsupported, %d with contradicting "
		      "test data; %.2f s)\n", r.n_dirs,
		      r.n_pass + r.n_fail, r.n_pass, r.n_fail, r.n_unsup, r.n_bad,
		      (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	if (r.n_bad) {
		print_message("%d directories whose test data contradict their model "
			      "(not counted as supported):\n", r.n_bad);
		for (i = 0; i < r.n_bad; i++)
			print_message("  %s\n", r.bad[i]);
	}
	if (r.n_fail) {
		print_message("failures:\n");
		for (i = 0; i < r.n_fail; i++)
			print_message("  %s\n", r.failures[i]);
	}
	for (i = 0; i < r.n_bad; i++)
		free(r.bad[i]);
	free(r.bad);
	for (i = 0; i < r.n_fail; i++)
		free(r.failures[i]);
	free(r.failures);
	for (i = 0; i < r.n_reasons; i++)
		free(r.reasons[i].key);
	free(r.reasons);
	for (i = 0; i < r.n_passed_ops; i++)
		free(r.passed_ops[i]);
	free(r.passed_ops);
	assert_int_equal(r.n_fail, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(conformance_should_pass_every_supported_node_test),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
