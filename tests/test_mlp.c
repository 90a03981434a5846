// SPDX-License-Identifier: MIT
/*
 * test_mlp.c - a model written by `copro-model mlp`, loaded, planned and run
 * for several batch sizes, against a double-precision reference computed
 * here from the model's own initializers.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "onnx/graph.h"
#include "onnx/plan.h"

static char path[64];

static int write_model(void **state)
{
	const char *coprod = getenv("COPRO_COPROD");
	char bindir[256], cmd[512];
	char *slash;
	int fd, st;

	snprintf(bindir, sizeof(bindir), "%s", coprod ? coprod : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	strcpy(path, "/tmp/copro-mlp.XXXXXX");
	fd = mkstemp(path);
	if (fd < 0)
		return -1;
	close(fd);
	snprintf(cmd, sizeof(cmd),
		 "%s/copro-model mlp --in 32 --hidden 64,48 --out 3 --seed 7 -o %s >/dev/null",
		 bindir, path);
	st = system(cmd);
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

static int remove_model(void **state)
{
	unlink(path);
	return 0;
}

static const float *init_data(const struct copro_graph *g, const char *name, int64_t *d0,
			      int64_t *d1)
{
	for (int i = 0; i < g->n_values; i++) {
		const struct copro_value *v = &g->values[i];

		if (v->is_const && !strcmp(v->name, name)) {
			*d0 = v->t.dims[0];
			*d1 = v->t.rank > 1 ? v->t.dims[1] : 1;
			return v->t.data;
		}
	}
	fail_msg("initializer %s missing", name);
	return NULL;
}

/* y = sigmoid(W2 relu(W1 relu(W0 x + b0) + b1) + b2), weights [out, in]. */
static void reference(const struct copro_graph *g, const float *x, int batch, double *y)
{
	double a[256], b[256];
	int64_t width = 32;

	for (int r = 0; r < batch; r++) {
		for (int k = 0; k < 32; k++)
			a[k] = x[r * 32 + k];
		width = 32;
		for (int l = 0; l < 3; l++) {
			char wn[32], bn[32];
			int64_t o, in, bo, bi;
			const float *w, *bias;

			snprintf(wn, sizeof(wn), "fc%d.weight", l);
			snprintf(bn, sizeof(bn), "fc%d.bias", l);
			w = init_data(g, wn, &o, &in);
			bias = init_data(g, bn, &bo, &bi);
			assert_int_equal(in, width);
			assert_int_equal(bo, o);
			for (int64_t j = 0; j < o; j++) {
				double s = bias[j];

				for (int64_t k = 0; k < in; k++)
					s += (double)w[j * in + k] * a[k];
				b[j] = l < 2 ? (s > 0 ? s : 0) : 1.0 / (1.0 + exp(-s));
			}
			memcpy(a, b, sizeof(double) * (size_t)o);
			width = o;
		}
		for (int64_t j = 0; j < width; j++)
			y[r * width + j] = a[j];
	}
}

static void should_match_the_reference_at_every_batch_size(void **state)
{
	static const int batches[] = { 1, 2, 7, 64 };
	struct copro_graph *g;
	char err[256];

	assert_int_equal(copro_graph_load(path, &g, err, sizeof(err)), 0);
	assert_int_equal(g->n_inputs, 1);
	assert_int_equal(g->n_outputs, 1);
	for (unsigned int bi = 0; bi < sizeof(batches) / sizeof(batches[0]); bi++) {
		int batch = batches[bi];
		struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { batch, 32 } };
		struct copro_kt out = { 0 };
		struct copro_plan *p;
		float *x = aligned_alloc(64, ((size_t)batch * 32 * sizeof(float) + 63) & ~(size_t)63);
		float *y = aligned_alloc(64, ((size_t)batch * 3 * sizeof(float) + 63) & ~(size_t)63);
		double *ref = malloc((size_t)batch * 3 * sizeof(double));
		int ret;

		for (int i = 0; i < batch * 32; i++)
			x[i] = (float)((i * 37 % 101) - 50) / 25.0f;
		ret = copro_plan_build(g, &in, &p, err, sizeof(err));
		if (ret)
			fail_msg("plan for batch %d: %s", batch, err);
		in.data = x;
		out.data = y;
		assert_int_equal(copro_plan_run(p, &in, &out), 0);
		assert_int_equal(out.rank, 2);
		assert_int_equal(out.dims[0], batch);
		assert_int_equal(out.dims[1], 3);
		reference(g, x, batch, ref);
		for (int i = 0; i < batch * 3; i++)
			if (fabs(y[i] - ref[i]) > 1e-5 + 1e-4 * fabs(ref[i]))
				fail_msg("batch %d, output %d: %g, reference %g", batch, i, y[i], ref[i]);
		copro_plan_free(p);
		free(x);
		free(y);
		free(ref);
	}
	copro_graph_free(g);
}

static void should_write_the_same_weights_for_the_same_seed(void **state)
{
	char cmd[512], other[64] = "/tmp/copro-mlp2.XXXXXX";
	const char *coprod = getenv("COPRO_COPROD");
	char bindir[256], *slash;
	int fd, st;

	snprintf(bindir, sizeof(bindir), "%s", coprod ? coprod : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	fd = mkstemp(other);
	assert_true(fd >= 0);
	close(fd);
	snprintf(cmd, sizeof(cmd),
		 "%s/copro-model mlp --in 32 --hidden 64,48 --out 3 --seed 7 -o %s >/dev/null"
		 " && cmp -s %s %s", bindir, other, path, other);
	st = system(cmd);
	unlink(other);
	assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_match_the_reference_at_every_batch_size),
		cmocka_unit_test(should_write_the_same_weights_for_the_same_seed),
	};

	return cmocka_run_group_tests_name("copro-model mlp", tests, write_model, remove_model);
}
