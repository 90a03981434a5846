// SPDX-License-Identifier: MIT
/*
 * cuda_core.cu - discovery, contexts, the check macro's back end, device
 * memory and copies. Every entry point is extern "C" and returns 0 or a
 * negative errno; nothing here prints or aborts.
 */
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cuda_impl.h"

/* ---- the check macro's back end ------------------------------------------------ */

static int code_of(cudaError_t e)
{
	switch (e) {
	case cudaSuccess:
		return 0;
	case cudaErrorMemoryAllocation:
		return -ENOMEM;
	case cudaErrorInvalidValue:
	case cudaErrorInvalidDevicePointer:
	case cudaErrorInvalidConfiguration:
		return -EINVAL;
	case cudaErrorNoDevice:
	case cudaErrorInsufficientDriver:
	case cudaErrorInvalidDevice:
		return -ENODEV;
	case cudaErrorNotSupported:
		return -ENOTSUP;
	case cudaErrorHostMemoryAlreadyRegistered:
		return -EEXIST;
	case cudaErrorHostMemoryNotRegistered:
		return -ENOENT;
	default:
		return -EIO;
	}
}

/* Errors after which the CUDA context of the process is unusable. */
static bool sticky(cudaError_t e)
{
	switch (e) {
	case cudaErrorIllegalAddress:
	case cudaErrorLaunchFailure:
	case cudaErrorHardwareStackError:
	case cudaErrorIllegalInstruction:
	case cudaErrorMisalignedAddress:
	case cudaErrorInvalidAddressSpace:
	case cudaErrorInvalidPc:
	case cudaErrorAssert:
	case cudaErrorECCUncorrectable:
	case cudaErrorLaunchTimeout:
		return true;
	default:
		return false;
	}
}

int copro_cuda_check_(struct copro_cuda_ctx *c, cudaError_t e, const char *expr,
		      const char *file, int line)
{
	if (e == cudaSuccess)
		return 0;
	/* The runtime keeps the last error for cudaGetLastError(); clear it, or
	 * the next launch check would report this failure again. (A sticky
	 * error does not clear; c->broken takes care of those.) */
	(void)cudaGetLastError();
	if (c) {
		snprintf(c->err, sizeof(c->err), "%s:%d: %s: %s (%s)", file, line, expr,
			 cudaGetErrorString(e), cudaGetErrorName(e));
		if (sticky(e))
			c->broken = 1;
	}
	return code_of(e);
}

int copro_cuda_check_(struct copro_cuda_ctx *c, cublasStatus_t s, const char *expr,
		      const char *file, int line)
{
	if (s == CUBLAS_STATUS_SUCCESS)
		return 0;
	if (c)
		snprintf(c->err, sizeof(c->err), "%s:%d: %s: %s", file, line, expr,
			 cublasGetStatusString(s));
	switch (s) {
	case CUBLAS_STATUS_ALLOC_FAILED:
		return -ENOMEM;
	case CUBLAS_STATUS_INVALID_VALUE:
		return -EINVAL;
	case CUBLAS_STATUS_NOT_SUPPORTED:
	case CUBLAS_STATUS_ARCH_MISMATCH:
		return -ENOTSUP;
	default:
		return -EIO;
	}
}

int copro_cuda_fail(struct copro_cuda_ctx *c, int code, const char *fmt, ...)
{
	va_list ap;

	if (c) {
		va_start(ap, fmt);
		vsnprintf(c->err, sizeof(c->err), fmt, ap);
		va_end(ap);
	}
	return code;
}

int copro_cuda_enter(struct copro_cuda_ctx *c)
{
	if (!c)
		return -EINVAL;
	if (c->broken)
		return -EIO;	/* c->err still names the fault */
	return COPRO_CK(c, cudaSetDevice(c->device));
}

/* ---- discovery --------------------------------------------------------------------- */

extern "C" int copro_cuda_built(void)
{
	return 1;
}

extern "C" int copro_cuda_devices(struct copro_cuda_dev *out, int max, const char **why)
{
	int n = 0;
	cudaError_t e;

	if (why)
		*why = NULL;
	if (max < 0 || (max && !out))
		return -EINVAL;
	e = cudaGetDeviceCount(&n);
	if (e != cudaSuccess || n <= 0) {
		(void)cudaGetLastError();	/* do not leave it for the next call */
		if (why)
			*why = e != cudaSuccess ? cudaGetErrorString(e)
					       : "no CUDA device is visible";
		return 0;
	}
	for (int i = 0; i < n && i < max; i++) {
		struct copro_cuda_dev *d = &out[i];
		cudaDeviceProp p;

		memset(d, 0, sizeof(*d));
		d->index = i;
		if (cudaGetDeviceProperties(&p, i) == cudaSuccess) {
			snprintf(d->name, sizeof(d->name), "%s", p.name);
			d->total_mem = p.totalGlobalMem;
			d->cc_major = p.major;
			d->cc_minor = p.minor;
			d->n_sm = p.multiProcessorCount;
		}
		if (cudaDeviceGetPCIBusId(d->pci_bus_id, (int)sizeof(d->pci_bus_id), i) ==
		    cudaSuccess) {
			for (char *s = d->pci_bus_id; *s; s++)
				*s = (char)tolower((unsigned char)*s);
		}
		(void)cudaGetLastError();
	}
	return n;
}

extern "C" int copro_cuda_numa_node(const struct copro_cuda_dev *d)
{
	char path[96];
	int node = -1;
	FILE *f;

	if (!d || !d->pci_bus_id[0])
		return -1;
	snprintf(path, sizeof(path), "/sys/bus/pci/devices/%s/numa_node", d->pci_bus_id);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (fscanf(f, "%d", &node) != 1)
		node = -1;
	fclose(f);
	return node < 0 ? -1 : node;
}

/* ---- contexts ---------------------------------------------------------------------- */

extern "C" int copro_cuda_ctx_new(int device, struct copro_cuda_ctx **out, char *err,
				  size_t errlen)
{
	struct copro_cuda_ctx *c;
	const char *why;
	int n, ret;

	*out = NULL;
	n = copro_cuda_devices(NULL, 0, &why);
	if (device < 0 || device >= n) {
		if (n == 0)
			snprintf(err, errlen, "no CUDA device: %s", why);
		else
			snprintf(err, errlen, "CUDA device %d does not exist (%d found)", device,
				 n);
		return -ENODEV;
	}
	c = (struct copro_cuda_ctx *)calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	c->device = device;
	if ((ret = COPRO_CK(c, cudaSetDevice(device))) ||
	    (ret = COPRO_CK(c, cudaStreamCreateWithFlags(&c->stream, cudaStreamNonBlocking))))
		goto fail;
	if ((ret = COPRO_CK(c, cublasCreate(&c->blas))))
		goto fail_stream;
	if ((ret = COPRO_CK(c, cublasSetStream(c->blas, c->stream))) ||
	    (ret = COPRO_CK(c, cublasSetMathMode(c->blas, CUBLAS_DEFAULT_MATH))))
		goto fail_blas;
	c->err[0] = '\0';
	*out = c;
	return 0;
fail_blas:
	cublasDestroy(c->blas);
fail_stream:
	cudaStreamDestroy(c->stream);
fail:
	snprintf(err, errlen, "%s", c->err);
	free(c);
	return ret;
}

extern "C" void copro_cuda_ctx_free(struct copro_cuda_ctx *c)
{
	if (!c)
		return;
	if (cudaSetDevice(c->device) == cudaSuccess) {
		cudaStreamSynchronize(c->stream);
		cublasDestroy(c->blas);
		cudaStreamDestroy(c->stream);
	}
	(void)cudaGetLastError();
	free(c);
}

extern "C" int copro_cuda_ctx_device(const struct copro_cuda_ctx *c)
{
	return c ? c->device : -1;
}

extern "C" const char *copro_cuda_last_error(const struct copro_cuda_ctx *c)
{
	return c ? c->err : "no context";
}

extern "C" int copro_cuda_sync(struct copro_cuda_ctx *c)
{
	int ret = copro_cuda_enter(c);

	return ret ? ret : COPRO_CK(c, cudaStreamSynchronize(c->stream));
}

extern "C" int copro_cuda_mem_info(struct copro_cuda_ctx *c, size_t *free_b, size_t *total_b)
{
	size_t f = 0, t = 0;
	int ret = copro_cuda_enter(c);

	if (ret || (ret = COPRO_CK(c, cudaMemGetInfo(&f, &t))))
		return ret;
	if (free_b)
		*free_b = f;
	if (total_b)
		*total_b = t;
	return 0;
}

/* ---- memory and copies -------------------------------------------------------------- */

extern "C" int copro_cuda_alloc(struct copro_cuda_ctx *c, size_t n, void **out)
{
	int ret;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if ((ret = copro_cuda_enter(c)) || !n)
		return ret;
	return COPRO_CK(c, cudaMalloc(out, n));
}

extern "C" void copro_cuda_free(struct copro_cuda_ctx *c, void *p)
{
	if (!c || !p)
		return;
	/* cudaFree waits for the device; in a broken context it only reports. */
	if (cudaSetDevice(c->device) == cudaSuccess)
		COPRO_CK(c, cudaFree(p));
}

static int copy(struct copro_cuda_ctx *c, void *dst, const void *src, size_t n,
		cudaMemcpyKind kind)
{
	int ret = copro_cuda_enter(c);

	if (ret || !n)
		return ret;
	if (!dst || !src)
		return -EINVAL;
	return COPRO_CK(c, cudaMemcpyAsync(dst, src, n, kind, c->stream));
}

extern "C" int copro_cuda_h2d(struct copro_cuda_ctx *c, void *dst, const void *src, size_t n)
{
	return copy(c, dst, src, n, cudaMemcpyHostToDevice);
}

extern "C" int copro_cuda_d2h(struct copro_cuda_ctx *c, void *dst, const void *src, size_t n)
{
	return copy(c, dst, src, n, cudaMemcpyDeviceToHost);
}

extern "C" int copro_cuda_d2d(struct copro_cuda_ctx *c, void *dst, const void *src, size_t n)
{
	return copy(c, dst, src, n, cudaMemcpyDeviceToDevice);
}

extern "C" int copro_cuda_memset(struct copro_cuda_ctx *c, void *dst, int byte, size_t n)
{
	int ret = copro_cuda_enter(c);

	if (ret || !n)
		return ret;
	if (!dst)
		return -EINVAL;
	return COPRO_CK(c, cudaMemsetAsync(dst, byte, n, c->stream));
}

extern "C" int copro_cuda_host_register(struct copro_cuda_ctx *c, void *p, size_t n)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!p || !n)
		return -EINVAL;
	/* Portable: pinned for every device, not only c's. */
	return COPRO_CK(c, cudaHostRegister(p, n, cudaHostRegisterPortable));
}

extern "C" int copro_cuda_host_unregister(struct copro_cuda_ctx *c, void *p)
{
	int ret = copro_cuda_enter(c);

	if (ret)
		return ret;
	if (!p)
		return -EINVAL;
	return COPRO_CK(c, cudaHostUnregister(p));
}
