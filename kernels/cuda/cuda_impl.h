/* SPDX-License-Identifier: MIT */
/*
 * cuda_impl.h - what the .cu files share: the context, the one check macro
 * every CUDA and cuBLAS call goes through, and the GGUF block formats.
 * C++ (nvcc) only; not installed.
 */
#ifndef COPRO_CUDA_IMPL_H
#define COPRO_CUDA_IMPL_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>

#include <cublas_v2.h>
#include <cuda_runtime.h>

#include "cuda/cuda.h"

/* quant.h checks its block sizes with C11's _Static_assert; C++ spells it
 * static_assert with the same arguments. */
#ifndef _Static_assert
#define _Static_assert static_assert
#endif
extern "C" {
#include "llm/llama.h"
#include "llm/quant.h"
}

struct copro_cuda_ctx {
	int device;
	int broken;			/* a sticky error happened: refuse everything */
	cudaStream_t stream;
	cublasHandle_t blas;
	char err[320];			/* the last failure, "" if none */
};

/*
 * Records a failed call as "file:line: expr: message (name)" in c (which may
 * be NULL) and returns its negative code; returns 0 for success. Overloaded
 * for cudaError_t and cublasStatus_t, so COPRO_CK takes either.
 */
int copro_cuda_check_(struct copro_cuda_ctx *c, cudaError_t e, const char *expr,
		      const char *file, int line);
int copro_cuda_check_(struct copro_cuda_ctx *c, cublasStatus_t s, const char *expr,
		      const char *file, int line);

/* The check macro: evaluates a CUDA or cuBLAS call once, returns 0 or -errno. */
#define COPRO_CK(c, expr) copro_cuda_check_((c), (expr), #expr, __FILE__, __LINE__)

/* After a kernel launch: a bad configuration is reported here, a fault later. */
#define COPRO_CK_LAUNCH(c) COPRO_CK(c, cudaGetLastError())

/* Makes c's device current for this thread; -EIO if c is broken. */
int copro_cuda_enter(struct copro_cuda_ctx *c);

/* Records a message of the caller's own in c and returns code. */
int copro_cuda_fail(struct copro_cuda_ctx *c, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
