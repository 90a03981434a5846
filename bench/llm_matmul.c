/* SPDX-License-Identifier: MIT */
/*
 * llm_matmul.c - the Llama weight matmul (kernels/llm/matmul.c) on decode
 * and batched shapes, for every weight type and every ISA path this CPU
 * has, beside OpenBLAS on the same matrix dequantized to f32.
 *
 *   decode   m = 1 token; n x k = 768 x 768, 2048 x 768, 32000 x 768
 *   batched  m = 4, 16, 64 tokens; n x k = 2048 x 768
 *
 * Each row runs copro_llm_matmul (x quantized inside the call for Q8_0 and
 * Q4_0, as a forward pass would) back to back for --ms milliseconds after
 * one warm-up call and prints:
 *
 *   GB/s      weight bytes read per second (the matrix once per call)
 *   GFLOP/s   2 m n k per call
 * Q8_0 and Q4_0 also run packed (rows "pk-avx2", "pk-512"): the matrix
 * repacked once by copro_llm_pack, then copro_llm_quantize_xs plus
 * copro_llm_matmul_packed per call.
 *
 *   vs BLAS   time of cblas_sgemv (m = 1) or cblas_sgemm (m > 1) on the f32
 *             matrix, measured just before on the same shape, divided by
 *             ours: above 1 is faster than OpenBLAS f32
 *
 * One thread (OpenBLAS too). Only 32000 x 768 is larger than the L3 of a
 * typical server core complex; the smaller shapes measure the cache, which
 * is what a forward pass sees for the layer it just streamed in only if
 * the whole model fits, so read their GB/s as compute speed.
 */
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cblas.h>

#include "llm/ops.h"

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static uint64_t rng = 88172645463325252ull;

static float frand(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return (float)(rng >> 40) / (float)(1 << 23) - 1.0f;
}

struct shape {
	size_t m, n, k;
};

static const struct shape shapes[] = {
	{ 1, 768, 768 },  { 1, 2048, 768 },  { 1, 32000, 768 },
	{ 4, 2048, 768 }, { 16, 2048, 768 }, { 64, 2048, 768 },
};

static const uint32_t types[] = { COPRO_GGML_F32, COPRO_GGML_F16, COPRO_GGML_Q8_0,
				  COPRO_GGML_Q4_0 };

/* Seconds per call of copro_llm_matmul (blas 0), of OpenBLAS (blas 1) or of
 * copro_llm_quantize_xs + copro_llm_matmul_packed (blas 2; w the packed
 * matrix, scratch the packed-x blocks). */
static double time_calls(int blas, uint32_t type, const void *w, const float *wf,
			 const struct shape *s, const float *x, float *y, void *scratch,
			 double budget)
{
	double t0 = 0, t;
	long iters = 0;

	do {
		if (iters == 1)
			t0 = now();
		if (blas == 2) {
			if (copro_llm_quantize_xs(x, s->m, s->k, scratch) ||
			    copro_llm_matmul_packed(w, scratch, s->m, y, 0, s->n)) {
				fprintf(stderr, "llm_matmul: copro_llm_matmul_packed failed\n");
				exit(1);
			}
		} else if (!blas) {
			if (copro_llm_matmul(type, w, s->n, s->k, x, s->m, y, 0, s->n, scratch)) {
				fprintf(stderr, "llm_matmul: copro_llm_matmul failed\n");
				exit(1);
			}
		} else if (s->m == 1) {
			cblas_sgemv(CblasRowMajor, CblasNoTrans, (int)s->n, (int)s->k, 1.0f, wf,
				    (int)s->k, x, 1, 0.0f, y, 1);
		} else {
			cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)s->m, (int)s->n,
				    (int)s->k, 1.0f, x, (int)s->k, wf, (int)s->k, 0.0f, y,
				    (int)s->n);
		}
		iters++;
		t = now();
	} while (iters < 2 || t - t0 < budget);
	return (t - t0) / (double)(iters - 1);
}

static void usage(void)
{
	fprintf(stderr, "usage: llm_matmul [--ms N]   (milliseconds per row, default 120)\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = { { "ms", required_argument, NULL, 'm' },
					      { "help", no_argument, NULL, 'h' },
					      { 0 } };
	double budget = 0.12;
	int c;

	while ((c = getopt_long(argc, argv, "m:h", opts, NULL)) != -1) {
		if (c == 'm') {
			budget = atof(optarg) / 1000.0;
		} else {
			usage();
			return c == 'h' ? 0 : 2;
		}
	}
	openblas_set_num_threads(1);

	printf("llm matmul, one thread: y (m, n) = x (m, k) W^T; best path here: %s\n",
	       copro_llm_isa_name(copro_llm_isa()));
	printf("%-17s %-5s %-7s %10s %8s %9s %8s\n", "shape m x n x k", "type", "path",
	       "us/call", "GB/s", "GFLOP/s", "vs BLAS");
	for (size_t si = 0; si < sizeof(shapes) / sizeof(shapes[0]); si++) {
		const struct shape *s = &shapes[si];
		float *wf = malloc(s->n * s->k * sizeof(float));
		float *x = malloc(s->m * s->k * sizeof(float));
		float *y = malloc(s->m * s->n * sizeof(float));
		char name[32];

		if (!wf || !x || !y)
			return 1;
		for (size_t i = 0; i < s->n * s->k; i++)
			wf[i] = frand() * 0.1f;
		for (size_t i = 0; i < s->m * s->k; i++)
			x[i] = frand();
		snprintf(name, sizeof(name), "%zu x %zu x %zu", s->m, s->n, s->k);
		for (size_t ti = 0; ti < 4; ti++) {
			uint32_t type = types[ti];
			size_t rb = copro_ggml_row_bytes(type, s->k);
			uint8_t *w = malloc(s->n * rb);
			float *wd = malloc(s->n * s->k * sizeof(float));
			void *scratch = malloc(copro_llm_matmul_scratch(type, s->m, s->k) + 1);
			double flop = 2.0 * (double)(s->m * s->n * s->k);

			if (!w || !wd || !scratch)
				return 1;
			for (size_t j = 0; j < s->n; j++) {
				const float *r = wf + j * s->k;
				uint8_t *o = w + j * rb;

				if (type == COPRO_GGML_F32)
					memcpy(o, r, rb);
				else if (type == COPRO_GGML_F16)
					for (size_t i = 0; i < s->k; i++)
						((uint16_t *)o)[i] = copro_f32_to_f16(r[i]);
				else if (type == COPRO_GGML_Q8_0)
					copro_quantize_row_q8_0(r, (void *)o, s->k);
				else
					copro_quantize_row_q4_0(r, (void *)o, s->k);
				copro_dequantize_row(type, o, wd + j * s->k, s->k);
			}
			double tb = time_calls(1, type, NULL, wd, s, x, y, NULL, budget);

			printf("%-17s %-5s %-7s %10.1f %8.2f %9.2f %8s\n", name,
			       copro_ggml_type_name(type), s->m == 1 ? "sgemv" : "sgemm", tb * 1e6,
			       (double)(s->n * s->k * 4) / tb * 1e-9, flop / tb * 1e-9, "1.00");
			for (int isa = COPRO_LLM_ISA_SCALAR; isa <= COPRO_LLM_ISA_AVX512; isa++) {
				if (copro_llm_set_isa(isa))
					continue;
				double tc = time_calls(0, type, w, NULL, s, x, y, scratch, budget);

				printf("%-17s %-5s %-7s %10.1f %8.2f %9.2f %8.2f\n", name,
				       copro_ggml_type_name(type), copro_llm_isa_name(isa),
				       tc * 1e6, (double)(s->n * rb) / tc * 1e-9,
				       flop / tc * 1e-9, tb / tc);
			}
			struct copro_llm_packed *pk;
			void *xs = malloc(s->m * (s->k / 32) * sizeof(struct copro_block_q8_x));

			if ((type == COPRO_GGML_Q8_0 || type == COPRO_GGML_Q4_0) && xs &&
			    !copro_llm_pack(type, w, s->n, s->k, &pk)) {
				for (int isa = COPRO_LLM_ISA_AVX2; isa <= COPRO_LLM_ISA_AVX512; isa++) {
					char path[16];

					if (copro_llm_set_isa(isa))
						continue;
					double tc = time_calls(2, type, pk, NULL, s, x, y, xs, budget);

					snprintf(path, sizeof(path), "pk-%s", isa == COPRO_LLM_ISA_AVX2 ? "avx2" : "512");
					printf("%-17s %-5s %-7s %10.1f %8.2f %9.2f %8.2f\n", name,
					       copro_ggml_type_name(type), path, tc * 1e6,
					       (double)copro_llm_pack_bytes(pk) / tc * 1e-9,
					       flop / tc * 1e-9, tb / tc);
				}
				copro_llm_pack_free(pk);
			}
			free(xs);
			free(scratch);
			free(wd);
			free(w);
		}
		free(y);
		free(x);
		free(wf);
	}
	return 0;
}
