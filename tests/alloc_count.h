/* SPDX-License-Identifier: MIT */
/*
 * alloc_count.h - counts malloc/calloc/realloc calls while `counting` is
 * set, by defining them in the test program itself (glibc's __malloc_hook
 * is gone). Include it in exactly one file of a test program. Off under
 * ASan and TSan, which bring their own allocators.
 */
#ifndef COPRO_ALLOC_COUNT_H
#define COPRO_ALLOC_COUNT_H

#include <stddef.h>

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define COUNT_ALLOCS 0
#else
#define COUNT_ALLOCS 1
extern void *__libc_malloc(size_t n);
extern void *__libc_calloc(size_t n, size_t k);
extern void *__libc_realloc(void *p, size_t n);
extern void __libc_free(void *p);
#endif
static volatile int counting;
static volatile long n_allocs;

#if COUNT_ALLOCS
void *malloc(size_t n)
{
	if (counting)
		n_allocs++;
	return __libc_malloc(n);
}

void *calloc(size_t n, size_t k)
{
	if (counting)
		n_allocs++;
	return __libc_calloc(n, k);
}

void *realloc(void *p, size_t n)
{
	if (counting)
		n_allocs++;
	return __libc_realloc(p, n);
}

void free(void *p)
{
	__libc_free(p);
}
#endif

#endif
