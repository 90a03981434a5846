// SPDX-License-Identifier: MIT
/*
 * GGUF writer: key/values are serialized into a byte buffer as they are
 * added; tensors are recorded (name, shape, type, and either a pointer to
 * their bytes or a callback that produces them row by row) and their data is
 * streamed to the file at copro_gguf_write(), a chunk at a time, so a model
 * never has to be in memory whole. Output is GGUF v3 with the default
 * alignment of 32 (no general.alignment key is written).
 *
 * The writer checks what it needs to write a well-formed file (known types,
 * rows that fit the type's blocks) but not names: a test can write two
 * tensors with one name to see the reader refuse it.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "llm/gguf.h"

#define WRITE_CHUNK (1u << 20) /* bytes of tensor data produced at a time */

struct wtensor {
	char *name;
	uint32_t n_dims, type;
	uint64_t ne[COPRO_GGUF_MAX_DIMS];
	uint64_t rows;
	size_t row_bytes, nbytes;
	uint64_t offset;
	const void *data;
	copro_gguf_fill_fn fill;
	void *ctx;
};

struct copro_gguf_writer {
	uint8_t *kv;	/* serialized key/values */
	size_t kv_len, kv_cap;
	uint64_t n_kv;
	struct wtensor *t;
	uint64_t n_t, cap_t;
	int err;	/* first failure of an add_*, reported by write */
};

int copro_gguf_writer_new(struct copro_gguf_writer **out)
{
	*out = calloc(1, sizeof(**out));
	return *out ? 0 : -ENOMEM;
}

void copro_gguf_writer_free(struct copro_gguf_writer *w)
{
	if (!w)
		return;
	for (uint64_t i = 0; i < w->n_t; i++)
		free(w->t[i].name);
	free(w->t);
	free(w->kv);
	free(w);
}

/* Appends n bytes to the kv buffer, growing it geometrically. */
static int put(struct copro_gguf_writer *w, const void *p, size_t n)
{
	if (w->kv_len + n > w->kv_cap) {
		size_t cap = w->kv_cap ? w->kv_cap : 4096;
		uint8_t *kv;

		while (cap < w->kv_len + n)
			cap *= 2;
		kv = realloc(w->kv, cap);
		if (!kv)
			return -ENOMEM;
		w->kv = kv;
		w->kv_cap = cap;
	}
	memcpy(w->kv + w->kv_len, p, n);
	w->kv_len += n;
	return 0;
}

static int put_u32(struct copro_gguf_writer *w, uint32_t v)
{
	return put(w, &v, 4);
}

static int put_u64(struct copro_gguf_writer *w, uint64_t v)
{
	return put(w, &v, 8);
}

static int put_str(struct copro_gguf_writer *w, const char *s)
{
	size_t n = strlen(s);

	return put_u64(w, n) ?: put(w, s, n);
}

/* Starts a key/value: its key and type. Remembers the first failure so a
 * caller may add a batch of keys and check once, at write time. */
static int begin_kv(struct copro_gguf_writer *w, const char *key, uint32_t type)
{
	int ret = put_str(w, key) ?: put_u32(w, type);

	if (!ret)
		w->n_kv++;
	return ret;
}

static int done(struct copro_gguf_writer *w, int ret)
{
	if (ret && !w->err)
		w->err = ret;
	return ret;
}

int copro_gguf_add_u32(struct copro_gguf_writer *w, const char *key, uint32_t v)
{
	return done(w, begin_kv(w, key, COPRO_GGUF_U32) ?: put(w, &v, 4));
}

int copro_gguf_add_i32(struct copro_gguf_writer *w, const char *key, int32_t v)
{
	return done(w, begin_kv(w, key, COPRO_GGUF_I32) ?: put(w, &v, 4));
}

int copro_gguf_add_f32(struct copro_gguf_writer *w, const char *key, float v)
{
	return done(w, begin_kv(w, key, COPRO_GGUF_F32) ?: put(w, &v, 4));
}

int copro_gguf_add_bool(struct copro_gguf_writer *w, const char *key, int v)
{
	uint8_t b = !!v;

	return done(w, begin_kv(w, key, COPRO_GGUF_BOOL) ?: put(w, &b, 1));
}

int copro_gguf_add_str(struct copro_gguf_writer *w, const char *key, const char *s)
{
	return done(w, begin_kv(w, key, COPRO_GGUF_STRING) ?: put_str(w, s));
}

static int begin_arr(struct copro_gguf_writer *w, const char *key, uint32_t type, uint64_t n)
{
	return begin_kv(w, key, COPRO_GGUF_ARRAY) ?: put_u32(w, type) ?: put_u64(w, n);
}

int copro_gguf_add_arr_i32(struct copro_gguf_writer *w, const char *key, const int32_t *v,
			   uint64_t n)
{
	return done(w, begin_arr(w, key, COPRO_GGUF_I32, n) ?: put(w, v, n * 4));
}

int copro_gguf_add_arr_f32(struct copro_gguf_writer *w, const char *key, const float *v,
			   uint64_t n)
{
	return done(w, begin_arr(w, key, COPRO_GGUF_F32, n) ?: put(w, v, n * 4));
}

int copro_gguf_add_arr_str(struct copro_gguf_writer *w, const char *key,
			   const char *const *s, uint64_t n)
{
	int ret = begin_arr(w, key, COPRO_GGUF_STRING, n);

	for (uint64_t i = 0; !ret && i < n; i++)
		ret = put_str(w, s[i]);
	return done(w, ret);
}

static int add_tensor(struct copro_gguf_writer *w, const char *name, uint32_t n_dims,
		      const uint64_t *ne, uint32_t type, const void *data,
		      copro_gguf_fill_fn fill, void *ctx)
{
	struct wtensor *t;

	if (n_dims < 1 || n_dims > COPRO_GGUF_MAX_DIMS || !copro_ggml_type_name(type))
		return done(w, -EINVAL);
	if (w->n_t == w->cap_t) {
		uint64_t cap = w->cap_t ? 2 * w->cap_t : 64;

		t = realloc(w->t, cap * sizeof(*t));
		if (!t)
			return done(w, -ENOMEM);
		w->t = t;
		w->cap_t = cap;
	}
	t = &w->t[w->n_t];
	memset(t, 0, sizeof(*t));
	t->n_dims = n_dims;
	t->type = type;
	t->rows = 1;
	for (uint32_t d = 0; d < COPRO_GGUF_MAX_DIMS; d++) {
		t->ne[d] = d < n_dims ? ne[d] : 1;
		if (d)
			t->rows *= t->ne[d];
	}
	t->row_bytes = copro_ggml_row_bytes(type, t->ne[0]);
	if (!t->row_bytes || !t->rows)
		return done(w, -EINVAL);
	t->nbytes = t->row_bytes * t->rows;
	t->data = data;
	t->fill = fill;
	t->ctx = ctx;
	t->name = strdup(name);
	if (!t->name)
		return done(w, -ENOMEM);
	w->n_t++;
	return 0;
}

/* data must stay valid until copro_gguf_write(); it is not copied. */
int copro_gguf_add_tensor(struct copro_gguf_writer *w, const char *name, uint32_t n_dims,
			  const uint64_t *ne, uint32_t type, const void *data)
{
	return add_tensor(w, name, n_dims, ne, type, data, NULL, NULL);
}

int copro_gguf_add_tensor_fill(struct copro_gguf_writer *w, const char *name, uint32_t n_dims,
			       const uint64_t *ne, uint32_t type, copro_gguf_fill_fn fill,
			       void *ctx)
{
	return add_tensor(w, name, n_dims, ne, type, NULL, fill, ctx);
}

static int write_all(FILE *f, const void *p, size_t n)
{
	return fwrite(p, 1, n, f) == n ? 0 : -EIO;
}

static int write_pad(FILE *f, uint64_t off)
{
	static const uint8_t zero[COPRO_GGUF_DEFAULT_ALIGNMENT];
	uint64_t pad = (COPRO_GGUF_DEFAULT_ALIGNMENT - off % COPRO_GGUF_DEFAULT_ALIGNMENT) %
		       COPRO_GGUF_DEFAULT_ALIGNMENT;

	return write_all(f, zero, pad);
}

/* Streams one tensor's data: straight from its pointer, or a chunk of rows
 * at a time from its fill callback. */
static int write_tensor(FILE *f, struct wtensor *t, uint8_t *buf)
{
	uint64_t per = WRITE_CHUNK / t->row_bytes ? WRITE_CHUNK / t->row_bytes : 1;
	int ret;

	if (!t->fill)
		return write_all(f, t->data, t->nbytes);
	for (uint64_t r = 0; r < t->rows; r += per) {
		uint64_t n = t->rows - r < per ? t->rows - r : per;

		ret = t->fill(t->ctx, r, n, buf);
		if (!ret)
			ret = write_all(f, buf, n * t->row_bytes);
		if (ret)
			return ret;
	}
	return 0;
}

/*
 * Writes the file. Returns 0, or a negative errno with the reason in err:
 * the first error of an earlier add_* call, -EIO/-ENOSPC/... from the file
 * system, or a fill callback's error. A failed write removes the file.
 */
int copro_gguf_write(struct copro_gguf_writer *w, const char *path, char *err, size_t errlen)
{
	uint64_t off = 0, max_row = 0;
	uint8_t *buf = NULL;
	FILE *f = NULL;
	int ret;

	if (w->err) {
		snprintf(err, errlen, "building the file failed: %s", strerror(-w->err));
		return w->err;
	}
	for (uint64_t i = 0; i < w->n_t; i++) {
		w->t[i].offset = off;
		off += w->t[i].nbytes;
		off += (COPRO_GGUF_DEFAULT_ALIGNMENT - off % COPRO_GGUF_DEFAULT_ALIGNMENT) %
		       COPRO_GGUF_DEFAULT_ALIGNMENT;
		if (w->t[i].row_bytes > max_row)
			max_row = w->t[i].row_bytes;
	}
	buf = malloc(max_row > WRITE_CHUNK ? max_row : WRITE_CHUNK);
	if (!buf) {
		snprintf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	f = fopen(path, "wb");
	if (!f) {
		ret = -errno;
		snprintf(err, errlen, "cannot create %s: %s", path, strerror(errno));
		goto out_buf;
	}

	uint32_t version = 3;
	ret = write_all(f, "GGUF", 4) ?: write_all(f, &version, 4) ?:
	      write_all(f, &w->n_t, 8) ?: write_all(f, &w->n_kv, 8) ?:
	      write_all(f, w->kv, w->kv_len);
	off = 24 + w->kv_len;
	for (uint64_t i = 0; !ret && i < w->n_t; i++) {
		struct wtensor *t = &w->t[i];
		uint64_t len = strlen(t->name);

		ret = write_all(f, &len, 8) ?: write_all(f, t->name, len) ?:
		      write_all(f, &t->n_dims, 4) ?: write_all(f, t->ne, 8ull * t->n_dims) ?:
		      write_all(f, &t->type, 4) ?: write_all(f, &t->offset, 8);
		off += 8 + len + 4 + 8ull * t->n_dims + 4 + 8;
	}
	if (!ret)
		ret = write_pad(f, off);
	for (uint64_t i = 0; !ret && i < w->n_t; i++) {
		ret = write_tensor(f, &w->t[i], buf);
		/* pad between tensors, none after the last */
		if (!ret && i + 1 < w->n_t)
			ret = write_pad(f, w->t[i].nbytes);
	}
	if (ret)
		snprintf(err, errlen, "writing %s: %s", path, strerror(-ret));
	if (fclose(f) && !ret) {
		ret = -errno;
		snprintf(err, errlen, "writing %s: %s", path, strerror(errno));
	}
	if (ret)
		unlink(path);
out_buf:
	free(buf);
	return ret;
}
