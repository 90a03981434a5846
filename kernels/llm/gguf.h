/* SPDX-License-Identifier: MIT */
/*
 * GGUF files: a validating reader over a read-only mmap, and a small writer.
 *
 * A GGUF file is a header (magic "GGUF", version, tensor count, key/value
 * count), the metadata key/values, the tensor infos (name, dims, type, offset
 * into the data section), then the data section, which starts at the next
 * multiple of general.alignment (default 32). Versions 2 and 3 are read
 * (both use 64-bit counts); version 1 (32-bit counts) is refused. Files are
 * little-endian.
 *
 * copro_gguf_open() checks every length, count and offset against the file
 * size before anything is used, so a caller may trust every pointer and size
 * in the structs below: string values and tensor data point into the mapping
 * and are in bounds. Keys and tensor names are copied and NUL-terminated.
 * Metadata in a GGUF file is not aligned: read array elements with memcpy.
 */
#ifndef COPRO_LLM_GGUF_H
#define COPRO_LLM_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "llm/quant.h"

#define COPRO_GGUF_DEFAULT_ALIGNMENT 32
#define COPRO_GGUF_MAX_DIMS 4
#define COPRO_GGUF_MAX_NAME 64 /* tensor names are shorter, as in GGML */

/* Metadata value types as stored in the file. */
enum copro_gguf_type {
	COPRO_GGUF_U8 = 0,
	COPRO_GGUF_I8 = 1,
	COPRO_GGUF_U16 = 2,
	COPRO_GGUF_I16 = 3,
	COPRO_GGUF_U32 = 4,
	COPRO_GGUF_I32 = 5,
	COPRO_GGUF_F32 = 6,
	COPRO_GGUF_BOOL = 7,
	COPRO_GGUF_STRING = 8,
	COPRO_GGUF_ARRAY = 9,
	COPRO_GGUF_U64 = 10,
	COPRO_GGUF_I64 = 11,
	COPRO_GGUF_F64 = 12,
};

struct copro_gguf_kv {
	const char *key;	 /* NUL-terminated copy */
	uint32_t type;		 /* enum copro_gguf_type */
	uint32_t elem_type;	 /* arrays: the elements' type (never ARRAY); else = type */
	uint64_t count;		 /* arrays: elements; strings: bytes; scalars: 1 */
	const void *data;	 /* scalar value, string bytes, or the array's first element
				  * (NULL for arrays of strings: use copro_gguf_arr_str) */
	const uint64_t *str_off; /* arrays of strings: file offset of each string's bytes */
};

struct copro_gguf_tensor {
	const char *name;	/* NUL-terminated copy, shorter than COPRO_GGUF_MAX_NAME */
	uint32_t n_dims;	/* 1..4 */
	uint32_t type;		/* enum copro_ggml_type */
	uint64_t ne[COPRO_GGUF_MAX_DIMS]; /* ne[0] = row length (GGML order); unused = 1 */
	uint64_t n_elems;
	uint64_t offset;	/* from the start of the data section */
	size_t nbytes;
	const void *data;	/* in the mapping, aligned to the file's alignment */
};

/* An open file. Every field is read-only for the caller. */
struct copro_gguf {
	const uint8_t *map;	/* the whole file, mapped read-only */
	size_t size;
	uint32_t version;	/* 2 or 3 */
	uint32_t alignment;	/* general.alignment or 32 */
	uint64_t data_offset;	/* start of the data section */
	uint64_t n_kv;
	struct copro_gguf_kv *kv;	  /* [n_kv], in file order */
	uint64_t n_tensors;
	struct copro_gguf_tensor *tensors; /* [n_tensors], in file order */
	uint32_t *by_name;		   /* [n_tensors] indices sorted by name */
};

/* ---- reader ------------------------------------------------------------- */

int copro_gguf_open(const char *path, struct copro_gguf **out, char *err, size_t errlen);
void copro_gguf_close(struct copro_gguf *g);

const char *copro_gguf_type_name(uint32_t type);
const struct copro_gguf_kv *copro_gguf_find(const struct copro_gguf *g, const char *key);

/* Typed getters: 0 on success, -ENOENT when the key is absent, -EINVAL when
 * its type does not convert or the value is out of the target's range. */
int copro_gguf_get_u32(const struct copro_gguf *g, const char *key, uint32_t *out);
int copro_gguf_get_u64(const struct copro_gguf *g, const char *key, uint64_t *out);
int copro_gguf_get_f32(const struct copro_gguf *g, const char *key, float *out);
int copro_gguf_get_bool(const struct copro_gguf *g, const char *key, int *out);
int copro_gguf_get_str(const struct copro_gguf *g, const char *key, const char **s, size_t *len);
int copro_gguf_get_arr(const struct copro_gguf *g, const char *key, uint32_t *elem_type,
		       uint64_t *count, const void **data);
int copro_gguf_arr_str(const struct copro_gguf *g, const struct copro_gguf_kv *kv, uint64_t i,
		       const char **s, size_t *len);

const struct copro_gguf_tensor *copro_gguf_tensor(const struct copro_gguf *g, const char *name);

/* ---- writer ------------------------------------------------------------- */

struct copro_gguf_writer;

/* Produces rows [row, row + n_rows) of a tensor (rows of ne[0] elements,
 * already in the tensor's type) into dst; 0 or a negative errno. The writer
 * asks for the rows of one tensor in order, tensor after tensor. */
typedef int (*copro_gguf_fill_fn)(void *ctx, uint64_t row, uint64_t n_rows, void *dst);

int copro_gguf_writer_new(struct copro_gguf_writer **out);
void copro_gguf_writer_free(struct copro_gguf_writer *w);

int copro_gguf_add_u32(struct copro_gguf_writer *w, const char *key, uint32_t v);
int copro_gguf_add_i32(struct copro_gguf_writer *w, const char *key, int32_t v);
int copro_gguf_add_f32(struct copro_gguf_writer *w, const char *key, float v);
int copro_gguf_add_bool(struct copro_gguf_writer *w, const char *key, int v);
int copro_gguf_add_str(struct copro_gguf_writer *w, const char *key, const char *s);
int copro_gguf_add_arr_i32(struct copro_gguf_writer *w, const char *key, const int32_t *v,
			   uint64_t n);
int copro_gguf_add_arr_f32(struct copro_gguf_writer *w, const char *key, const float *v,
			   uint64_t n);
int copro_gguf_add_arr_str(struct copro_gguf_writer *w, const char *key,
			   const char *const *s, uint64_t n);

int copro_gguf_add_tensor(struct copro_gguf_writer *w, const char *name, uint32_t n_dims,
			  const uint64_t *ne, uint32_t type, const void *data);
int copro_gguf_add_tensor_fill(struct copro_gguf_writer *w, const char *name, uint32_t n_dims,
			       const uint64_t *ne, uint32_t type, copro_gguf_fill_fn fill,
			       void *ctx);

int copro_gguf_write(struct copro_gguf_writer *w, const char *path, char *err, size_t errlen);

#endif
