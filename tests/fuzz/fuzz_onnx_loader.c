// SPDX-License-Identifier: MIT
/*
 * fuzz_onnx_loader.c - libFuzzer harness for the ONNX loader and planner.
 *
 * Each input is a candidate .onnx file: it is loaded from memory, and what
 * loads is planned for its declared input shapes (a symbolic dim taken as
 * 1) and run once on zeroed inputs. Any crash, leak or sanitizer report is
 * a bug; refusing the input with an error is the expected outcome.
 *
 * Not built by the Makefile (tests/fuzz/ is outside tests/test_*.c). Build
 * and run from the repository root, after `make BUILD=build-onnx` has
 * generated build-onnx/gen/onnx.pb-c.[ch]:
 *
 *   clang -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined \
 *	-std=gnu11 -D_GNU_SOURCE -DCOPRO_PLAN_MAX_BYTES='((int64_t)256<<20)' \
 *	-Ikernels -Ibuild-onnx/gen $(pkg-config --cflags openblas) \
 *	tests/fuzz/fuzz_onnx_loader.c $(find kernels/onnx -name '*.c') build-onnx/gen/onnx.pb-c.c \
 *	-lprotobuf-c -lopenblas -lm -o build-onnx/fuzz_onnx_loader
 *   mkdir -p build-onnx/corpus && for d in /usr/share/libonnx-testdata/data/node/test_*; do \
 *	cp "$d/model.onnx" "build-onnx/corpus/${d##*node/}.onnx"; done
 *   OPENBLAS_NUM_THREADS=1 build-onnx/fuzz_onnx_loader -max_total_time=180 \
 *	-max_len=65536 -timeout=10 -rss_limit_mb=4096 build-onnx/corpus
 *
 * COPRO_PLAN_MAX_BYTES is lowered so that a mutated Expand or Reshape
 * cannot ask the planner for gigabytes: the planner must refuse it (-E2BIG),
 * and that refusal is exercised too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "onnx/graph.h"
#include "onnx/plan.h"

/* Inputs larger than this are not worth running (the planner is what is under test). */
#define FUZZ_MAX_INPUT_BYTES	(16 << 20)
#define FUZZ_MAX_IO		64

static void *zalloc64(int64_t bytes)
{
	size_t n = bytes > 0 ? ((size_t)bytes + 63) & ~(size_t)63 : 64;
	void *p = aligned_alloc(64, n);

	if (p)
		memset(p, 0, n);
	return p;
}

static void plan_and_run(const struct copro_graph *g)
{
	struct copro_kt in[FUZZ_MAX_IO], out[FUZZ_MAX_IO];
	struct copro_plan *p = NULL;
	char err[256];
	int i, d, ok = 1;

	if (g->n_inputs > FUZZ_MAX_IO || g->n_outputs > FUZZ_MAX_IO)
		return;
	memset(in, 0, sizeof(in));
	memset(out, 0, sizeof(out));
	for (i = 0; i < g->n_inputs; i++) {
		int64_t bytes;

		in[i] = g->values[g->inputs[i]].t;
		in[i].data = NULL;
		if (in[i].rank < 0)
			in[i].rank = 0;
		for (d = 0; d < in[i].rank; d++)
			in[i].dims[d] = in[i].dims[d] < 0 ? 1 : in[i].dims[d];
		bytes = copro_kt_bytes(&in[i]);
		if (bytes < 0 || bytes > FUZZ_MAX_INPUT_BYTES) {
			ok = 0;
			break;
		}
		in[i].data = zalloc64(bytes);
		if (!in[i].data) {
			ok = 0;
			break;
		}
	}
	if (ok && copro_plan_build(g, in, &p, err, sizeof(err)) == 0) {
		for (i = 0; i < g->n_outputs; i++) {
			out[i].data = zalloc64(copro_kt_bytes(copro_plan_output(p, i)));
			ok &= out[i].data != NULL;
		}
		if (ok)
			copro_plan_run(p, in, out);
		copro_plan_free(p);
	}
	for (i = 0; i < FUZZ_MAX_IO; i++) {
		free(in[i].data);
		free(out[i].data);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct copro_graph *g = NULL;
	char err[256];

	if (copro_graph_load_buf(data, size, &g, err, sizeof(err)) == 0) {
		plan_and_run(g);
		copro_graph_free(g);
	}
	return 0;
}
