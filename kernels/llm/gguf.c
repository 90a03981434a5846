// SPDX-License-Identifier: MIT
/*
 * GGUF reader. The whole file is mapped read-only; the parser walks it with
 * a cursor that checks every read against the file size first, so a
 * truncated or hostile file ends in an error message, never a read past the
 * mapping. Counts are checked against the bytes left before anything is
 * allocated for them: every kv, string and tensor info takes at least a few
 * bytes of file, so a count of 2^60 cannot make us allocate 2^60 of anything.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "llm/gguf.h"

#define GGUF_MAGIC "GGUF"
#define GGUF_HEADER_BYTES 24 /* magic, version, n_tensors, n_kv */

struct cursor {
	const uint8_t *base;
	uint64_t off, size;
	char *err;
	size_t errlen;
};

static int fail(struct cursor *c, int ret, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Writes the reason into the caller's buffer and returns ret, so that every
 * error site is one line: `return fail(c, -EINVAL, "...")`. */
static int fail(struct cursor *c, int ret, const char *fmt, ...)
{
	va_list ap;

	if (c->err && c->errlen) {
		va_start(ap, fmt);
		vsnprintf(c->err, c->errlen, fmt, ap);
		va_end(ap);
	}
	return ret;
}

static uint64_t left(const struct cursor *c)
{
	return c->size - c->off;
}

/* Copies n bytes at the cursor and advances; -EINVAL naming `what` when the
 * file ends first. */
static int take(struct cursor *c, void *dst, uint64_t n, const char *what)
{
	if (n > left(c))
		return fail(c, -EINVAL, "%s at byte %llu: needs %llu bytes, file ends at %llu",
			    what, (unsigned long long)c->off, (unsigned long long)n,
			    (unsigned long long)c->size);
	memcpy(dst, c->base + c->off, n);
	c->off += n;
	return 0;
}

/* Reads a string's length and checks its bytes are in the file; returns
 * 0 with *off at the bytes and *len their count. */
static int take_str(struct cursor *c, uint64_t *off, uint64_t *len, const char *what)
{
	uint64_t n = 0;
	int ret = take(c, &n, 8, what);

	if (ret)
		return ret;
	if (n > left(c))
		return fail(c, -EINVAL,
			    "%s at byte %llu: string of %llu bytes runs past end of file (%llu bytes)",
			    what, (unsigned long long)(c->off - 8), (unsigned long long)n,
			    (unsigned long long)c->size);
	*off = c->off;
	*len = n;
	c->off += n;
	return 0;
}

/* Copies a key or tensor name into a NUL-terminated string. Embedded NULs
 * are refused: the name would silently be cut short for every lookup. */
static int dup_name(struct cursor *c, const char *what, char **out)
{
	uint64_t off, len;
	int ret = take_str(c, &off, &len, what);

	if (ret)
		return ret;
	if (memchr(c->base + off, 0, len))
		return fail(c, -EINVAL, "%s at byte %llu contains a NUL byte", what,
			    (unsigned long long)off);
	*out = strndup((const char *)c->base + off, len);
	if (!*out)
		return fail(c, -ENOMEM, "out of memory");
	return 0;
}

/* Size in the file of one scalar of a metadata type; 0 for string, array
 * and unknown types. */
static uint64_t scalar_size(uint32_t type)
{
	switch (type) {
	case COPRO_GGUF_U8:
	case COPRO_GGUF_I8:
	case COPRO_GGUF_BOOL:
		return 1;
	case COPRO_GGUF_U16:
	case COPRO_GGUF_I16:
		return 2;
	case COPRO_GGUF_U32:
	case COPRO_GGUF_I32:
	case COPRO_GGUF_F32:
		return 4;
	case COPRO_GGUF_U64:
	case COPRO_GGUF_I64:
	case COPRO_GGUF_F64:
		return 8;
	}
	return 0;
}

const char *copro_gguf_type_name(uint32_t type)
{
	static const char *const names[] = {
		"u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array",
		"u64", "i64", "f64",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : NULL;
}

/* Parses one key/value at the cursor into kv (whose key is already set). */
static int parse_value(struct cursor *c, struct copro_gguf_kv *kv)
{
	uint64_t off, len, sz;
	int ret;

	ret = take(c, &kv->type, 4, "value type");
	if (ret)
		return ret;
	kv->elem_type = kv->type;
	kv->count = 1;
	if (kv->type == COPRO_GGUF_STRING) {
		ret = take_str(c, &off, &len, kv->key);
		if (ret)
			return ret;
		kv->data = c->base + off;
		kv->count = len;
		return 0;
	}
	if (kv->type != COPRO_GGUF_ARRAY) {
		sz = scalar_size(kv->type);
		if (!sz)
			return fail(c, -EINVAL, "key '%s': unknown value type %u", kv->key, kv->type);
		if (sz > left(c))
			return fail(c, -EINVAL, "key '%s': value runs past end of file", kv->key);
		if (kv->type == COPRO_GGUF_BOOL && c->base[c->off] > 1)
			return fail(c, -EINVAL, "key '%s': bool value %u is neither 0 nor 1", kv->key,
				    c->base[c->off]);
		kv->data = c->base + c->off;
		c->off += sz;
		return 0;
	}

	ret = take(c, &kv->elem_type, 4, "array element type");
	if (!ret)
		ret = take(c, &kv->count, 8, "array length");
	if (ret)
		return ret;
	if (kv->elem_type == COPRO_GGUF_STRING) {
		uint64_t *offs;

		/* Each string takes at least its 8-byte length. */
		if (kv->count > left(c) / 8)
			return fail(c, -EINVAL,
				    "key '%s': array of %llu strings cannot fit in the %llu bytes left",
				    kv->key, (unsigned long long)kv->count,
				    (unsigned long long)left(c));
		offs = malloc((kv->count ? kv->count : 1) * sizeof(*offs));
		if (!offs)
			return fail(c, -ENOMEM, "out of memory");
		kv->str_off = offs;
		kv->data = NULL;
		for (uint64_t i = 0; i < kv->count; i++) {
			ret = take_str(c, &off, &len, kv->key);
			if (ret)
				return ret;
			offs[i] = off - 8; /* at the length, so one offset gives both */
		}
		return 0;
	}
	sz = scalar_size(kv->elem_type);
	if (!sz)
		return fail(c, -EINVAL, "key '%s': arrays of %s (type %u) are not supported",
			    kv->key, kv->elem_type == COPRO_GGUF_ARRAY ? "arrays" : "unknown type",
			    kv->elem_type);
	if (kv->count > left(c) / sz)
		return fail(c, -EINVAL,
			    "key '%s': array of %llu %s runs past end of file (%llu bytes left)",
			    kv->key, (unsigned long long)kv->count,
			    copro_gguf_type_name(kv->elem_type), (unsigned long long)left(c));
	kv->data = c->base + c->off;
	c->off += kv->count * sz;
	return 0;
}

static int cmp_kv_idx(const void *a, const void *b, void *arg)
{
	const struct copro_gguf_kv *kv = arg;

	return strcmp(kv[*(const uint32_t *)a].key, kv[*(const uint32_t *)b].key);
}

static int cmp_tensor_idx(const void *a, const void *b, void *arg)
{
	const struct copro_gguf_tensor *t = arg;

	return strcmp(t[*(const uint32_t *)a].name, t[*(const uint32_t *)b].name);
}

/* Parses one tensor info; checks what can be checked before the data
 * section's start is known (dims, type, size). */
static int parse_tensor_info(struct cursor *c, struct copro_gguf_tensor *t, uint64_t idx)
{
	char *name = NULL;
	uint64_t rows = 1;
	size_t row;
	int ret;

	ret = dup_name(c, "tensor name", &name);
	if (ret)
		return ret;
	t->name = name;
	if (strlen(name) >= COPRO_GGUF_MAX_NAME)
		return fail(c, -EINVAL, "tensor %llu: name '%.40s...' is %zu bytes (at most %d)",
			    (unsigned long long)idx, name, strlen(name), COPRO_GGUF_MAX_NAME - 1);
	ret = take(c, &t->n_dims, 4, "tensor dimension count");
	if (ret)
		return ret;
	if (t->n_dims < 1 || t->n_dims > COPRO_GGUF_MAX_DIMS)
		return fail(c, -EINVAL, "tensor '%s': %u dimensions (must be 1 to %d)", name,
			    t->n_dims, COPRO_GGUF_MAX_DIMS);
	for (int d = 0; d < COPRO_GGUF_MAX_DIMS; d++)
		t->ne[d] = 1;
	ret = take(c, t->ne, 8ull * t->n_dims, "tensor dimensions");
	if (!ret)
		ret = take(c, &t->type, 4, "tensor type");
	if (!ret)
		ret = take(c, &t->offset, 8, "tensor offset");
	if (ret)
		return ret;

	if (!copro_ggml_type_name(t->type))
		return fail(c, -EINVAL, "tensor '%s': unknown or unsupported type %u", name,
			    t->type);
	t->n_elems = 1;
	for (uint32_t d = 0; d < t->n_dims; d++) {
		if (t->ne[d] > INT64_MAX ||
		    (t->ne[d] && t->n_elems > (uint64_t)INT64_MAX / t->ne[d]))
			return fail(c, -EINVAL, "tensor '%s': element count overflows", name);
		t->n_elems *= t->ne[d];
		if (d && t->ne[d] && rows > (uint64_t)INT64_MAX / t->ne[d])
			return fail(c, -EINVAL, "tensor '%s': row count overflows", name);
		if (d)
			rows *= t->ne[d];
	}
	row = copro_ggml_row_bytes(t->type, t->ne[0]);
	if (!row && t->ne[0])
		return fail(c, -EINVAL, "tensor '%s': row of %llu elements does not fit type %s%s",
			    name, (unsigned long long)t->ne[0], copro_ggml_type_name(t->type),
			    t->type == COPRO_GGML_Q8_0 || t->type == COPRO_GGML_Q4_0 ?
			    " (needs a multiple of 32)" : "");
	if (rows && row > c->size / rows)
		return fail(c, -EINVAL, "tensor '%s': %llu rows of %zu bytes exceed the file (%llu bytes)",
			    name, (unsigned long long)rows, row, (unsigned long long)c->size);
	t->nbytes = row * rows;
	return 0;
}

/* Checks one tensor's placement once the data section start is known. */
static int place_tensor(struct cursor *c, struct copro_gguf *g, struct copro_gguf_tensor *t)
{
	uint64_t start;

	if (t->offset % g->alignment)
		return fail(c, -EINVAL, "tensor '%s': offset %llu is not a multiple of the alignment %u",
			    t->name, (unsigned long long)t->offset, g->alignment);
	if (g->data_offset > g->size || t->offset > g->size - g->data_offset)
		return fail(c, -EINVAL, "tensor '%s': data starts at byte %llu + %llu, past end of file (%llu bytes)",
			    t->name, (unsigned long long)g->data_offset,
			    (unsigned long long)t->offset, (unsigned long long)g->size);
	start = g->data_offset + t->offset;
	if (t->nbytes > g->size - start)
		return fail(c, -EINVAL, "tensor '%s': data ends at byte %llu past end of file (%llu bytes)",
			    t->name, (unsigned long long)(start + t->nbytes),
			    (unsigned long long)g->size);
	t->data = g->map + start;
	return 0;
}

/* Parses everything after the file is mapped. */
static int parse(struct cursor *c, struct copro_gguf *g)
{
	uint32_t *kv_idx = NULL;
	char magic[4];
	uint64_t pad;
	int ret;

	ret = take(c, magic, 4, "magic");
	if (ret)
		return ret;
	if (memcmp(magic, GGUF_MAGIC, 4))
		return fail(c, -EINVAL, "not a GGUF file (magic %02x %02x %02x %02x, want \"GGUF\")",
			    (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2],
			    (uint8_t)magic[3]);
	ret = take(c, &g->version, 4, "version");
	if (ret)
		return ret;
	if (g->version == 1)
		return fail(c, -EINVAL, "GGUF version 1 (32-bit counts) is not supported; "
			    "convert the file to version 3");
	if (!(g->version & 0xffff) && g->version)
		return fail(c, -EINVAL, "big-endian GGUF files are not supported");
	if (g->version != 2 && g->version != 3)
		return fail(c, -EINVAL, "unsupported GGUF version %u (2 and 3 are read)",
			    g->version);
	ret = take(c, &g->n_tensors, 8, "tensor count");
	if (!ret)
		ret = take(c, &g->n_kv, 8, "key/value count");
	if (ret)
		return ret;

	/* A kv takes at least 8 (key length) + 4 (type) + 1 bytes; a tensor
	 * info at least 8 + 4 + 8 + 4 + 8. */
	if (g->n_kv > left(c) / 13)
		return fail(c, -EINVAL, "%llu key/values cannot fit in a %llu-byte file",
			    (unsigned long long)g->n_kv, (unsigned long long)c->size);
	if (g->n_tensors > left(c) / 32 || g->n_tensors > UINT32_MAX)
		return fail(c, -EINVAL, "%llu tensors cannot fit in a %llu-byte file",
			    (unsigned long long)g->n_tensors, (unsigned long long)c->size);
	g->kv = calloc(g->n_kv ? g->n_kv : 1, sizeof(*g->kv));
	g->tensors = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*g->tensors));
	g->by_name = calloc(g->n_tensors ? g->n_tensors : 1, sizeof(*g->by_name));
	kv_idx = calloc(g->n_kv ? g->n_kv : 1, sizeof(*kv_idx));
	if (!g->kv || !g->tensors || !g->by_name || !kv_idx) {
		ret = fail(c, -ENOMEM, "out of memory");
		goto out;
	}

	for (uint64_t i = 0; i < g->n_kv; i++) {
		char *key = NULL;

		ret = dup_name(c, "key", &key);
		if (ret)
			goto out;
		g->kv[i].key = key;
		ret = parse_value(c, &g->kv[i]);
		if (ret)
			goto out;
		kv_idx[i] = (uint32_t)i;
	}
	qsort_r(kv_idx, g->n_kv, sizeof(*kv_idx), cmp_kv_idx, g->kv);
	for (uint64_t i = 1; i < g->n_kv; i++) {
		if (!strcmp(g->kv[kv_idx[i]].key, g->kv[kv_idx[i - 1]].key)) {
			ret = fail(c, -EINVAL, "duplicate key '%s'", g->kv[kv_idx[i]].key);
			goto out;
		}
	}

	g->alignment = COPRO_GGUF_DEFAULT_ALIGNMENT;
	ret = copro_gguf_get_u32(g, "general.alignment", &g->alignment);
	if (ret == -EINVAL || (!ret && (!g->alignment || (g->alignment & (g->alignment - 1))))) {
		ret = fail(c, -EINVAL, "general.alignment must be a power of two (u32)%s",
			   ret ? ", and is not a u32" : "");
		goto out;
	}

	for (uint64_t i = 0; i < g->n_tensors; i++) {
		ret = parse_tensor_info(c, &g->tensors[i], i);
		if (ret)
			goto out;
		g->by_name[i] = (uint32_t)i;
	}
	qsort_r(g->by_name, g->n_tensors, sizeof(*g->by_name), cmp_tensor_idx, g->tensors);
	for (uint64_t i = 1; i < g->n_tensors; i++) {
		if (!strcmp(g->tensors[g->by_name[i]].name, g->tensors[g->by_name[i - 1]].name)) {
			ret = fail(c, -EINVAL, "duplicate tensor name '%s'",
				   g->tensors[g->by_name[i]].name);
			goto out;
		}
	}

	/* c->off <= size < 2^63, so aligning up cannot wrap. */
	pad = (g->alignment - c->off % g->alignment) % g->alignment;
	g->data_offset = c->off + pad;
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		ret = place_tensor(c, g, &g->tensors[i]);
		if (ret)
			goto out;
	}
	ret = 0;
out:
	free(kv_idx);
	return ret;
}

/*
 * Opens and validates a GGUF file. Returns 0 and *out, or a negative errno
 * with the reason in err: -ENOENT/-EACCES/... from open(), -EINVAL for a
 * file that is not a valid GGUF v2/v3 file, -ENOMEM.
 */
int copro_gguf_open(const char *path, struct copro_gguf **out, char *err, size_t errlen)
{
	struct cursor c = { .err = err, .errlen = errlen };
	struct copro_gguf *g;
	struct stat st;
	void *map;
	int fd, ret;

	*out = NULL;
	if (err && errlen)
		err[0] = 0;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		ret = -errno;
		return fail(&c, ret, "cannot open: %s", strerror(-ret));
	}
	if (fstat(fd, &st)) {
		ret = fail(&c, -errno, "cannot stat: %s", strerror(errno));
		goto err_fd;
	}
	if (!S_ISREG(st.st_mode)) {
		ret = fail(&c, -EINVAL, "not a regular file");
		goto err_fd;
	}
	if (st.st_size < GGUF_HEADER_BYTES) {
		ret = fail(&c, -EINVAL, "file is %lld bytes, shorter than the %d-byte GGUF header",
			   (long long)st.st_size, GGUF_HEADER_BYTES);
		goto err_fd;
	}
	map = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (map == MAP_FAILED) {
		ret = fail(&c, -errno, "cannot map: %s", strerror(errno));
		goto err_fd;
	}
	/* Advice only: large weights benefit from huge pages where the kernel
	 * supports them for file mappings; failure changes nothing. */
	madvise(map, (size_t)st.st_size, MADV_HUGEPAGE);
	close(fd);

	g = calloc(1, sizeof(*g));
	if (!g) {
		munmap(map, (size_t)st.st_size);
		return fail(&c, -ENOMEM, "out of memory");
	}
	g->map = map;
	g->size = (size_t)st.st_size;
	c.base = map;
	c.size = g->size;
	ret = parse(&c, g);
	if (ret) {
		copro_gguf_close(g);
		return ret;
	}
	*out = g;
	return 0;

err_fd:
	close(fd);
	return ret;
}

void copro_gguf_close(struct copro_gguf *g)
{
	if (!g)
		return;
	if (g->kv) {
		for (uint64_t i = 0; i < g->n_kv; i++) {
			free((void *)g->kv[i].key);
			free((void *)g->kv[i].str_off);
		}
	}
	if (g->tensors) {
		for (uint64_t i = 0; i < g->n_tensors; i++)
			free((void *)g->tensors[i].name);
	}
	free(g->kv);
	free(g->tensors);
	free(g->by_name);
	if (g->map)
		munmap((void *)g->map, g->size);
	free(g);
}

/* ---- lookups ------------------------------------------------------------ */

/* Returns the key/value named key, or NULL. A linear scan: files carry a few
 * dozen keys, and lookups happen at load time. */
const struct copro_gguf_kv *copro_gguf_find(const struct copro_gguf *g, const char *key)
{
	for (uint64_t i = 0; i < g->n_kv; i++)
		if (g->kv[i].key && !strcmp(g->kv[i].key, key))
			return &g->kv[i];
	return NULL;
}

/* Reads any integer scalar as a signed or unsigned 64-bit value; *neg says
 * which. -EINVAL for non-integers. */
static int kv_int(const struct copro_gguf_kv *kv, uint64_t *u, int *neg)
{
	int64_t s;

	*neg = 0;
	switch (kv->type) {
	case COPRO_GGUF_U8:
		*u = *(const uint8_t *)kv->data;
		return 0;
	case COPRO_GGUF_U16: {
		uint16_t v;

		memcpy(&v, kv->data, 2);
		*u = v;
		return 0;
	}
	case COPRO_GGUF_U32: {
		uint32_t v;

		memcpy(&v, kv->data, 4);
		*u = v;
		return 0;
	}
	case COPRO_GGUF_U64:
		memcpy(u, kv->data, 8);
		return 0;
	case COPRO_GGUF_I8:
		s = *(const int8_t *)kv->data;
		break;
	case COPRO_GGUF_I16: {
		int16_t v;

		memcpy(&v, kv->data, 2);
		s = v;
		break;
	}
	case COPRO_GGUF_I32: {
		int32_t v;

		memcpy(&v, kv->data, 4);
		s = v;
		break;
	}
	case COPRO_GGUF_I64:
		memcpy(&s, kv->data, 8);
		break;
	default:
		return -EINVAL;
	}
	*neg = s < 0;
	*u = (uint64_t)s;
	return 0;
}

int copro_gguf_get_u64(const struct copro_gguf *g, const char *key, uint64_t *out)
{
	const struct copro_gguf_kv *kv = copro_gguf_find(g, key);
	uint64_t v;
	int neg;

	if (!kv)
		return -ENOENT;
	if (kv_int(kv, &v, &neg) || neg)
		return -EINVAL;
	*out = v;
	return 0;
}

int copro_gguf_get_u32(const struct copro_gguf *g, const char *key, uint32_t *out)
{
	uint64_t v;
	int ret = copro_gguf_get_u64(g, key, &v);

	if (ret)
		return ret;
	if (v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

/* Accepts f32 and f64 (an f64 outside the float range is -EINVAL). */
int copro_gguf_get_f32(const struct copro_gguf *g, const char *key, float *out)
{
	const struct copro_gguf_kv *kv = copro_gguf_find(g, key);
	double d;

	if (!kv)
		return -ENOENT;
	if (kv->type == COPRO_GGUF_F32) {
		memcpy(out, kv->data, 4);
		return 0;
	}
	if (kv->type != COPRO_GGUF_F64)
		return -EINVAL;
	memcpy(&d, kv->data, 8);
	if (isfinite(d) && fabs(d) > 3.4028234663852886e38)
		return -EINVAL;
	*out = (float)d;
	return 0;
}

int copro_gguf_get_bool(const struct copro_gguf *g, const char *key, int *out)
{
	const struct copro_gguf_kv *kv = copro_gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != COPRO_GGUF_BOOL)
		return -EINVAL;
	*out = *(const uint8_t *)kv->data;
	return 0;
}

/* The string is not NUL-terminated: use *len. */
int copro_gguf_get_str(const struct copro_gguf *g, const char *key, const char **s, size_t *len)
{
	const struct copro_gguf_kv *kv = copro_gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != COPRO_GGUF_STRING)
		return -EINVAL;
	*s = kv->data;
	*len = kv->count;
	return 0;
}

/* *data is NULL for arrays of strings (read them with copro_gguf_arr_str)
 * and otherwise points at count unaligned elements of *elem_type. */
int copro_gguf_get_arr(const struct copro_gguf *g, const char *key, uint32_t *elem_type,
		       uint64_t *count, const void **data)
{
	const struct copro_gguf_kv *kv = copro_gguf_find(g, key);

	if (!kv)
		return -ENOENT;
	if (kv->type != COPRO_GGUF_ARRAY)
		return -EINVAL;
	*elem_type = kv->elem_type;
	*count = kv->count;
	*data = kv->data;
	return 0;
}

/* Element i of an array of strings, in O(1). -EINVAL when kv is not an
 * array of strings, -ERANGE when i is past its end. */
int copro_gguf_arr_str(const struct copro_gguf *g, const struct copro_gguf_kv *kv, uint64_t i,
		       const char **s, size_t *len)
{
	uint64_t n;

	if (kv->type != COPRO_GGUF_ARRAY || kv->elem_type != COPRO_GGUF_STRING)
		return -EINVAL;
	if (i >= kv->count)
		return -ERANGE;
	memcpy(&n, g->map + kv->str_off[i], 8);
	*s = (const char *)g->map + kv->str_off[i] + 8;
	*len = n;
	return 0;
}

/* Returns the tensor named name, or NULL: a binary search of the sorted
 * index built at open. */
const struct copro_gguf_tensor *copro_gguf_tensor(const struct copro_gguf *g, const char *name)
{
	uint64_t lo = 0, hi = g->n_tensors;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct copro_gguf_tensor *t = &g->tensors[g->by_name[mid]];
		int cmp = strcmp(name, t->name);

		if (!cmp)
			return t;
		if (cmp < 0)
			hi = mid;
		else
			lo = mid + 1;
	}
	return NULL;
}
