// SPDX-License-Identifier: MIT
/*
 * test_precision.c - bf16 and int8 plans against the f32 plan on MLPs
 * written by copro-model, over a fixed set of 1000 seeded input rows.
 *
 * Every output is checked against an a-priori bound computed here, per
 * row and per output, from the model's own weights (in double, layer by
 * layer, next to the reference forward pass):
 *
 *   bf16: each rounding to bf16 is off by at most u = 2^-8 relative, so
 *     with x~ the layer's input as the plan saw it (|x~ - x| <= e) and
 *     d = e + u (|x| + e) the error of its bf16 copy,
 *       |z~_n - z_n| <= sum_k (1 + u) |w_kn| d_k + u sum_k |w_kn| |x_k|
 *   int8: rounding to the nearest of 255 steps is off by at most half a
 *     step: A / 254 for a row of activations whose largest magnitude is A
 *     (<= max|x| + max e), h_n = max_k |w_kn| / 254 for channel n, so
 *     with d = e + A / 254,
 *       |z~_n - z_n| <= sum_k (|w_kn| + h_n) d_k + h_n sum_k |x_k|
 *
 * plus, for both, f32 summation on both sides, (K + 2) 2^-23 sum |w| |x|
 * (and a 1e-6 floor for the flushed subnormals and the last roundings).
 * Relu and Tanh pass an error on unchanged at most (1-Lipschitz), the
 * final Sigmoid shrinks it by 4 (its slope is at most 1/4).
 *
 * That worst case adds every rounding error with the same sign; it
 * holds always and is far too loose to catch a subtle bug (0.47 on the
 * fraud model in bf16, where 3e-4 is measured). So each output is also
 * held to a statistical bound. To first order the output's error is a
 * linear function of the rounding errors at their sources (each weight,
 * each activation a layer reads), which are independent and uniform over
 * their half step, of variance at most
 *     bf16: u^2 v^2 / 3 for a value v
 *     int8: step^2 / 12, with step = max |x| / 127 of the row (0 for an
 *           exact zero, which Relu makes often) or max |w_n| / 127 of
 *           the channel
 * The error's variance is then the sum of (dy / d source)^2 times those,
 * with the sensitivities from a backward pass through the model (Relu's,
 * Tanh's and Sigmoid's own slopes), and the bound is 6 sigma plus the f32
 * sums. The headline bounds on the fraud model's sigmoid outputs, 5e-3
 * for bf16 and 1e-2 for int8, are 3x that bound's maximum there (1.4e-3
 * and 3.3e-3); the "figures:" lines print the measured deltas next to
 * both bounds. The wide model's bounds are checked on every fourth row
 * (a backward pass per output through 1024 x 1024 weights costs).
 *
 * Also: the two kernels of each precision (AVX-512 and plain C) agree;
 * a row's result does not depend on the batch it ran in; a run allocates
 * nothing; a NaN stays in its row; a layer with non-finite weights stays
 * f32. Speeds per precision are printed, never asserted.
 */
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
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "onnx/graph.h"
#include "onnx/plan.h"

/* ---------------------------------------------------------------------- */
/* Allocation counter                                                     */
/* ---------------------------------------------------------------------- */

#include "alloc_count.h"

/* ---------------------------------------------------------------------- */
/* Models and inputs                                                      */
/* ---------------------------------------------------------------------- */

#define ROWS		1000
#define MAX_LAYERS	4
#define MAX_WIDTH	1024

struct model {
	const char *name;
	const char *args;	/* copro-model mlp arguments */
	int in, out, layers;
	int tanh;		/* hidden activation Tanh, else Relu */
	int every;		/* rows whose bounds are checked: every this many */
	struct copro_graph *g;
	float *x;		/* (ROWS, in) */
	float *y32;		/* (ROWS, out) the f32 plan's outputs */
};

#define MODEL(NAME, ARGS, IN, OUT, TANH, EVERY)						\
	{ .name = NAME, .args = ARGS, .in = IN, .out = OUT, .layers = 3, .tanh = TANH,	\
	  .every = EVERY }

static struct model models[] = {
	MODEL("fraud MLP 32-256-256-1", "--in 32 --hidden 256,256 --out 1 --seed 1", 32, 1, 0, 1),
	MODEL("wide MLP 64-1024-1024-4", "--in 64 --hidden 1024,1024 --out 4 --seed 2", 64, 4, 0,
	      4),
	MODEL("odd MLP 45-100-37-3 tanh", "--in 45 --hidden 100,37 --out 3 --act tanh --seed 5",
	      45, 3, 1, 1),
};
#define N_MODELS	((int)(sizeof(models) / sizeof(models[0])))

static uint64_t rng = 0x9e3779b97f4a7c15ULL;

/* Uniform in [-1, 1). */
static float rndf(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)((rng >> 40) & 0xffffff) / (float)(1 << 23) - 1.0f;
}

static float *falloc(size_t n)
{
	float *p = aligned_alloc(64, (n * sizeof(float) + 63) & ~(size_t)63);

	assert_non_null(p);
	return p;
}

static struct copro_plan *build_flags(const struct copro_graph *g, int64_t rows, int64_t width,
				      uint32_t prec, uint32_t flags)
{
	struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { rows, width } };
	struct copro_plan_opts o = COPRO_PLAN_OPTS_INIT;
	struct copro_plan *p = NULL;
	char err[256];

	o.precision = prec;
	o.flags = flags;
	if (copro_plan_build_opts(g, &in, &o, &p, err, sizeof(err)))
		fail_msg("plan %s: %s", copro_prec_name(prec), err);
	return p;
}

/*
 * A plan in prec with the given flags; where this CPU has no AVX-512
 * kernel for prec (the plan stays f32 then), the plain C one, so the
 * checks below check a lowered plan on every machine.
 */
static struct copro_plan *build(const struct copro_graph *g, int64_t rows, int64_t width,
				uint32_t prec, uint32_t flags)
{
	struct copro_plan *p = build_flags(g, rows, width, prec, flags);

	if (prec != COPRO_PREC_F32 && !copro_plan_n_lowp(p) && !flags) {
		copro_plan_free(p);
		p = build_flags(g, rows, width, prec, COPRO_PLAN_F_PORTABLE);
	}
	return p;
}

/* Runs p over rows of x into y, checking that the run allocates nothing. */
static void run(struct copro_plan *p, const float *x, int64_t rows, int64_t width, float *y)
{
	struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { rows, width } };
	struct copro_kt out = { 0 };

	in.data = (void *)x;
	out.data = y;
	n_allocs = 0;
	counting = 1;
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	counting = 0;
	if (COUNT_ALLOCS && n_allocs)
		fail_msg("a run allocated %ld times", n_allocs);
}

static int setup(void **state)
{
	const char *coprod = getenv("COPRO_COPROD");
	char bindir[256], path[64], cmd[768], err[256], *slash;
	int fd, st, m;

	snprintf(bindir, sizeof(bindir), "%s", coprod ? coprod : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	for (m = 0; m < N_MODELS; m++) {
		struct model *md = &models[m];
		struct copro_plan *p;

		strcpy(path, "/tmp/copro-prec.XXXXXX");
		fd = mkstemp(path);
		if (fd < 0)
			return -1;
		close(fd);
		snprintf(cmd, sizeof(cmd), "%s/copro-model mlp %s -o %s >/dev/null", bindir,
			 md->args, path);
		st = system(cmd);
		if (!WIFEXITED(st) || WEXITSTATUS(st) != 0 ||
		    copro_graph_load(path, &md->g, err, sizeof(err))) {
			fprintf(stderr, "%s: %s\n", cmd, err);
			unlink(path);
			return -1;
		}
		unlink(path);
		/* Standardized features, as a fraud model sees them: about N(0, 1). */
		md->x = falloc((size_t)ROWS * md->in);
		for (int i = 0; i < ROWS * md->in; i++)
			md->x[i] = (rndf() + rndf() + rndf());
		md->y32 = falloc((size_t)ROWS * md->out);
		p = build(md->g, ROWS, md->in, COPRO_PREC_F32, 0);
		run(p, md->x, ROWS, md->in, md->y32);
		copro_plan_free(p);
	}
	return 0;
}

static int teardown(void **state)
{
	for (int m = 0; m < N_MODELS; m++) {
		copro_graph_free(models[m].g);
		free(models[m].x);
		free(models[m].y32);
	}
	return 0;
}

/* ---------------------------------------------------------------------- */
/* The reference and its error bound                                      */
/* ---------------------------------------------------------------------- */

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

/*
 * For one input row: worst[j] and stat[j] receive the worst-case and the
 * statistical bound on |y_prec - y_f32| of output j (see the top).
 *
 * The forward pass (in double) keeps, per layer, what the backward pass
 * needs: the layer's input x, the activation's slope, and the variance
 * each rounding adds: vx[k] for input k's rounding, vw[n] for channel
 * n's weights (summed over k), acc[n] for the f32 sums on both sides.
 * The backward pass, per output j, carries dy_j/dz down the layers and
 * adds up sensitivity^2 * variance: a first-order error analysis, exact
 * up to products of two roundings (2^-16 relative in bf16).
 */
static void row_bound(const struct model *md, const float *xrow, uint32_t prec, double *worst,
		      double *stat)
{
	static double x[MAX_LAYERS + 1][MAX_WIDTH], slope[MAX_LAYERS][MAX_WIDTH];
	static double vx[MAX_LAYERS][MAX_WIDTH], vw[MAX_LAYERS][MAX_WIDTH];
	static double acc[MAX_LAYERS][MAX_WIDTH], e[MAX_WIDTH], ez[MAX_WIDTH];
	static double dz[MAX_WIDTH], g[MAX_WIDTH];
	const float *w[MAX_LAYERS];
	int64_t width[MAX_LAYERS + 1];
	const double u = 1.0 / 256;
	const int L = md->layers;

	width[0] = md->in;
	for (int k = 0; k < md->in; k++) {
		x[0][k] = xrow[k];
		e[k] = 0;
	}
	for (int l = 0; l < L; l++) {
		char wn[32], bn[32];
		int64_t o, in, bo, bi;
		const float *bias;
		double amax = 0, emax = 0, A, sx, x2 = 0;

		snprintf(wn, sizeof(wn), "fc%d.weight", l);
		snprintf(bn, sizeof(bn), "fc%d.bias", l);
		w[l] = init_data(md->g, wn, &o, &in);	/* (out, in): transB = 1 */
		bias = init_data(md->g, bn, &bo, &bi);
		assert_int_equal(in, width[l]);
		assert_true(o <= MAX_WIDTH);
		width[l + 1] = o;
		for (int64_t k = 0; k < in; k++) {
			amax = fabs(x[l][k]) > amax ? fabs(x[l][k]) : amax;
			emax = e[k] > emax ? e[k] : emax;
			x2 += x[l][k] * x[l][k];
		}
		/* f32's own roundings in the scale: 1.001 covers them with room. */
		A = (amax + emax) / 254 * 1.001;
		sx = 2 * A;
		for (int64_t k = 0; k < in; k++)
			vx[l][k] = prec == COPRO_PREC_BF16 ? u * u / 3 * x[l][k] * x[l][k]
				 : x[l][k] == 0 ? 0 : sx * sx / 12;
		for (int64_t n = 0; n < o; n++) {
			const float *wr = w[l] + n * in;
			double s = bias[n], err = 0, wabs = 0, wmax = 0, w2x2 = 0, h;

			for (int64_t k = 0; k < in; k++) {
				s += wr[k] * x[l][k];
				wabs += fabs(wr[k]) * fabs(x[l][k]);
				wmax = fabs(wr[k]) > wmax ? fabs(wr[k]) : wmax;
				w2x2 += (double)wr[k] * wr[k] * x[l][k] * x[l][k];
			}
			h = wmax / 254 * 1.001;
			for (int64_t k = 0; k < in; k++) {
				double wk = fabs(wr[k]), d;

				if (prec == COPRO_PREC_BF16) {
					d = e[k] + u * (fabs(x[l][k]) + e[k]);
					err += (1 + u) * wk * d + u * wk * fabs(x[l][k]);
				} else {
					d = e[k] + A;
					err += (wk + h) * d + h * fabs(x[l][k]);
				}
			}
			acc[l][n] = (double)(in + 2) * 0x1p-23 * (wabs + fabs(bias[n])) + 1e-6;
			/* int8: the weight's step is 2h; its error times x_k, summed over k */
			if (prec == COPRO_PREC_BF16)
				vw[l][n] = u * u / 3 * w2x2;
			else
				vw[l][n] = 4 * h * h / 12 * x2;
			ez[n] = err + acc[l][n];
			if (l + 1 < L) {
				x[l + 1][n] = md->tanh ? tanh(s) : (s > 0 ? s : 0);
				slope[l][n] = md->tanh ? 1 - x[l + 1][n] * x[l + 1][n] : (s > 0);
			} else {
				x[l + 1][n] = 1 / (1 + exp(-s));
				slope[l][n] = x[l + 1][n] * (1 - x[l + 1][n]);
			}
		}
		for (int64_t n = 0; n < o; n++)
			e[n] = ez[n];
	}
	for (int64_t j = 0; j < width[L]; j++) {
		double var = 0, lin = 0;

		worst[j] = e[j] / 4;	/* Sigmoid: slope at most 1/4 */
		for (int64_t n = 0; n < width[L]; n++)
			dz[n] = n == j ? slope[L - 1][n] : 0;
		for (int l = L - 1; l >= 0; l--) {
			int64_t in = width[l], o = width[l + 1];

			for (int64_t k = 0; k < in; k++)
				g[k] = 0;
			for (int64_t n = 0; n < o; n++) {
				if (dz[n] == 0)
					continue;
				var += dz[n] * dz[n] * vw[l][n];
				lin += fabs(dz[n]) * acc[l][n];
				for (int64_t k = 0; k < in; k++)
					g[k] += dz[n] * w[l][n * in + k];
			}
			for (int64_t k = 0; k < in; k++) {
				var += g[k] * g[k] * vx[l][k];
				if (l > 0)
					dz[k] = g[k] * slope[l - 1][k];
			}
		}
		stat[j] = 6 * sqrt(var) + lin;
	}
}

/* ---------------------------------------------------------------------- */
/* Accuracy                                                               */
/* ---------------------------------------------------------------------- */

/* The headline bounds, on the fraud model's sigmoid outputs (see the top). */
#define FRAUD_BF16_MAX	5e-3
#define FRAUD_INT8_MAX	1e-2

static void check_accuracy(uint32_t prec)
{
	for (int m = 0; m < N_MODELS; m++) {
		struct model *md = &models[m];
		struct copro_plan *p = build(md->g, ROWS, md->in, prec, 0);
		float *y = falloc((size_t)ROWS * md->out);
		double dmax = 0, dsum = 0, bmax = 0, smax = 0, ssum = 0;
		double worst[MAX_WIDTH], stat[MAX_WIDTH];
		const char *kernel = copro_plan_kernel(p);

		assert_int_equal(copro_plan_n_lowp(p), md->layers);
		run(p, md->x, ROWS, md->in, y);
		for (int r = 0; r < ROWS; r++) {
			int check = r % md->every == 0;

			if (check)
				row_bound(md, md->x + r * md->in, prec, worst, stat);
			for (int j = 0; j < md->out; j++) {
				double yj = y[r * md->out + j], y32 = md->y32[r * md->out + j];
				double d = fabs(yj - y32);

				dmax = d > dmax ? d : dmax;
				dsum += d;
				if (!check)
					continue;
				if (!(d <= stat[j] && d <= worst[j]))
					fail_msg("%s %s row %d output %d: %.9g, f32 %.9g: "
						 "delta %.3g over the bound %.3g (worst %.3g)",
						 md->name, copro_prec_name(prec), r, j, yj, y32, d,
						 stat[j], worst[j]);
				bmax = worst[j] > bmax ? worst[j] : bmax;
				smax = stat[j] > smax ? stat[j] : smax;
				ssum += stat[j];
			}
		}
		printf("figures: %s %s (%s), %d rows: |delta| vs f32 max %.2e, mean %.2e; "
		       "statistical bound max %.2e, mean %.2e; worst case max %.2e\n",
		       copro_prec_name(prec), md->name, kernel, ROWS, dmax,
		       dsum / (ROWS * md->out), smax, ssum * md->every / (ROWS * md->out), bmax);
		if (m == 0) {
			double headline = FRAUD_INT8_MAX;

			if (prec == COPRO_PREC_BF16)
				headline = FRAUD_BF16_MAX;

			assert_true(smax < headline);
			assert_true(dmax < headline);
		}
		copro_plan_free(p);
		free(y);
	}
}

static void bf16_should_stay_within_its_bound_of_f32(void **state)
{
	check_accuracy(COPRO_PREC_BF16);
}

static void int8_should_stay_within_its_bound_of_f32(void **state)
{
	check_accuracy(COPRO_PREC_INT8);
}

/*
 * The plain C kernels against the AVX-512 ones (where the CPU has them):
 * int8's integer sums are equal, so only the last float roundings of the
 * epilogue may differ; bf16 sums the same products in another order.
 */
static void portable_kernels_should_agree_with_the_vector_ones(void **state)
{
	for (uint32_t prec = COPRO_PREC_BF16; prec <= COPRO_PREC_INT8; prec++) {
		for (int m = 0; m < N_MODELS; m += 2) {
			struct model *md = &models[m];
			struct copro_plan *pv = build(md->g, ROWS, md->in, prec, 0);
			struct copro_plan *pc = build(md->g, ROWS, md->in, prec,
						      COPRO_PLAN_F_PORTABLE);
			float *yv = falloc((size_t)ROWS * md->out);
			float *yc = falloc((size_t)ROWS * md->out);
			double dmax = 0, lim = prec == COPRO_PREC_INT8 ? 1e-5 : 1e-3;

			assert_string_equal(copro_plan_kernel(pc), "portable");
			run(pv, md->x, ROWS, md->in, yv);
			run(pc, md->x, ROWS, md->in, yc);
			for (int i = 0; i < ROWS * md->out; i++) {
				double d = fabs((double)yv[i] - yc[i]);

				dmax = d > dmax ? d : dmax;
			}
			printf("figures: %s %s: %s against portable kernel, max |delta| %.2e\n",
			       copro_prec_name(prec), md->name, copro_plan_kernel(pv), dmax);
			assert_true(dmax <= lim);
			copro_plan_free(pv);
			copro_plan_free(pc);
			free(yv);
			free(yc);
		}
	}
}

/*
 * Activations are quantized per row and each row is summed on its own,
 * so a row's outputs are the same bits whichever batch it ran in: a
 * request's answer does not depend on its neighbours (and a response
 * cache may keep it).
 */
static void a_row_should_not_depend_on_its_batch(void **state)
{
	struct model *md = &models[0];

	for (uint32_t prec = COPRO_PREC_BF16; prec <= COPRO_PREC_INT8; prec++) {
		for (uint32_t flags = 0; flags <= COPRO_PLAN_F_PORTABLE; flags++) {
			struct copro_plan *pb = build(md->g, ROWS, md->in, prec, flags);
			struct copro_plan *p1 = build(md->g, 1, md->in, prec, flags);
			struct copro_plan *p7 = build(md->g, 7, md->in, prec, flags);
			float *yb = falloc((size_t)ROWS * md->out), y1[8], y7[8];

			run(pb, md->x, ROWS, md->in, yb);
			for (int r = 0; r < 70; r++) {
				run(p1, md->x + r * md->in, 1, md->in, y1);
				assert_memory_equal(y1, yb + r * md->out, sizeof(float) * md->out);
			}
			run(p7, md->x + 7 * md->in, 7, md->in, y7);
			assert_memory_equal(y7, yb + 7 * md->out, sizeof(float) * 7 * md->out);
			copro_plan_free(pb);
			copro_plan_free(p1);
			copro_plan_free(p7);
			free(yb);
		}
	}
}

/* A NaN or Inf in a row makes that row's outputs NaN and leaves the others alone. */
static void a_non_finite_input_should_stay_in_its_row(void **state)
{
	struct model *md = &models[0];
	float *x = falloc(4 * (size_t)md->in), y[4], yref[4];

	for (uint32_t prec = COPRO_PREC_BF16; prec <= COPRO_PREC_INT8; prec++) {
		for (uint32_t flags = 0; flags <= COPRO_PLAN_F_PORTABLE; flags++) {
			struct copro_plan *p = build(md->g, 4, md->in, prec, flags);

			memcpy(x, md->x, 4 * (size_t)md->in * sizeof(float));
			run(p, x, 4, md->in, yref);
			x[1 * md->in + 3] = NAN;
			x[2 * md->in + 5] = INFINITY;
			run(p, x, 4, md->in, y);
			assert_true(isnan(y[1]));
			if (prec == COPRO_PREC_INT8)
				assert_true(isnan(y[2]));	/* bf16 may saturate instead */
			assert_memory_equal(&y[0], &yref[0], sizeof(float));
			assert_memory_equal(&y[3], &yref[3], sizeof(float));
			copro_plan_free(p);
		}
	}
	free(x);
}

/* Weights with an Inf cannot be scaled: that layer stays f32, the others are lowered. */
static void a_layer_with_non_finite_weights_should_stay_f32(void **state)
{
	struct model *md = &models[0];
	struct copro_value *w = NULL;
	struct copro_plan *p;
	float keep;

	for (int i = 0; i < md->g->n_values; i++)
		if (!strcmp(md->g->values[i].name, "fc1.weight"))
			w = &md->g->values[i];
	assert_non_null(w);
	keep = ((float *)w->t.data)[17];
	((float *)w->t.data)[17] = INFINITY;
	p = build(md->g, 8, md->in, COPRO_PREC_INT8, 0);
	assert_int_equal(copro_plan_n_lowp(p), 2);
	copro_plan_free(p);
	((float *)w->t.data)[17] = keep;
}

/* ---------------------------------------------------------------------- */
/* Speed (informational: printed, never asserted)                         */
/* ---------------------------------------------------------------------- */

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* Best of 5 rounds, in microseconds per run; a round is about 20 ms. */
static double time_plan(struct copro_plan *p, const float *x, int64_t rows, int64_t width,
			float *y)
{
	struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { rows, width } };
	struct copro_kt out = { 0 };
	double best = 1e30, t0;
	int iters = 1;

	in.data = (void *)x;
	out.data = y;
	t0 = now_us();
	copro_plan_run(p, &in, &out);
	t0 = now_us() - t0;
	iters = t0 > 0 ? (int)(20000 / t0) : 1000;
	iters = iters < 1 ? 1 : iters > 20000 ? 20000 : iters;
	for (int r = 0; r < 5; r++) {
		t0 = now_us();
		for (int i = 0; i < iters; i++)
			copro_plan_run(p, &in, &out);
		t0 = (now_us() - t0) / iters;
		best = t0 < best ? t0 : best;
	}
	return best;
}

static void should_report_the_speed_of_each_precision(void **state)
{
	static const int64_t batches[] = { 1, 64 };

	for (int m = 0; m < 2; m++) {
		struct model *md = &models[m];

		for (int bi = 0; bi < 2; bi++) {
			int64_t rows = batches[bi];
			float *y = falloc((size_t)rows * md->out);
			char line[512];
			size_t k = 0;

			k += snprintf(line + k, sizeof(line) - k, "%s batch %lld, us per run:",
				      md->name, (long long)rows);
			for (uint32_t prec = COPRO_PREC_F32; prec <= COPRO_PREC_INT8; prec++) {
				for (uint32_t flags = 0; flags <= COPRO_PLAN_F_PORTABLE; flags++) {
					struct copro_plan *p;

					if (prec == COPRO_PREC_F32 && flags)
						continue;
					p = build_flags(md->g, rows, md->in, prec, flags);
					k += snprintf(line + k, sizeof(line) - k, " %s/%s %.2f",
						      copro_prec_name(prec), copro_plan_kernel(p),
						      time_plan(p, md->x, rows, md->in, y));
					copro_plan_free(p);
				}
			}
			printf("figures: %s\n", line);
			free(y);
		}
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(bf16_should_stay_within_its_bound_of_f32),
		cmocka_unit_test(int8_should_stay_within_its_bound_of_f32),
		cmocka_unit_test(portable_kernels_should_agree_with_the_vector_ones),
		cmocka_unit_test(a_row_should_not_depend_on_its_batch),
		cmocka_unit_test(a_non_finite_input_should_stay_in_its_row),
		cmocka_unit_test(a_layer_with_non_finite_weights_should_stay_f32),
		cmocka_unit_test(should_report_the_speed_of_each_precision),
	};

	return cmocka_run_group_tests_name("lower precision", tests, setup, teardown);
}
