// SPDX-License-Identifier: MIT
/*
 * copro-infer - run one request of a model through coprod from the command
 * line. Inputs come as values, a CSV or a raw little-endian file; outputs
 * are printed or written raw.
 *
 * Reading order: options are parsed (syntax errors exit 2 before any
 * connection), the model's signature is looked up, every input is turned
 * into a host buffer with its final shape (signature errors exit 2), the
 * client reconnects if its arena is too small for them, and one request
 * carries all rows. Errors from the daemon exit 1.
 */
#include <errno.h>
#include <float.h>
#include <getopt.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "copro.h"

#define COPRO_VERSION	"0.1.0"

/* Raw files are the tensor's bytes as they lie in memory. */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "copro-infer reads and writes raw files as host memory: little-endian hosts only"
#endif

#define MAX_ARGS	COPRO_MAX_TENSORS
#define DEF_TIMEOUT_MS	10000

/* One --input, --shape or --output as given; name is NULL when omitted. */
struct arg {
	char *name;
	char *rest;
};

/* An input ready to send: host bytes and the final shape. */
struct input {
	void *data;			/* (count) elements of info->dtype */
	uint64_t count;
	uint32_t rank;
	uint64_t dims[COPRO_MAX_RANK];
};

/* The shape given by --shape for one input, if any. */
struct shape {
	int given;
	uint32_t rank;
	uint64_t dims[COPRO_MAX_RANK];
};

static const char *model;

static void usage(FILE *f)
{
	fprintf(f,
		"usage: copro-infer [-s PATH] -m MODEL [--input [NAME=]VALUES|@FILE.csv|FILE.bin]...\n"
		"                   [--shape [NAME=]D0,D1,...]... [--output NAME=FILE.bin]...\n"
		"                   [--timeout MS] [-h] [-V]\n"
		"\n"
		"Run one request of a model through coprod.\n"
		"\n"
		"  -s, --socket PATH     the daemon's socket (default: as coprod's)\n"
		"  -m, --model NAME      the model to run\n"
		"  -i, --input [NAME=]X  an input: comma-separated values, @FILE.csv (one row\n"
		"                        a line), or a raw little-endian FILE.bin (a name\n"
		"                        ending in .bin or holding a '/'); NAME may be left\n"
		"                        out when the model has one input\n"
		"      --shape [NAME=]D  the input's shape, overriding the model's\n"
		"  -o, --output NAME=F   write output NAME raw to F instead of printing it\n"
		"  -t, --timeout MS      how long to wait for the answer (default %d)\n"
		"  -h, --help            show this help\n"
		"  -V, --version         show the version\n",
		DEF_TIMEOUT_MS);
}

static const char *dtype_name(uint32_t dt)
{
	static const char *const names[COPRO_DT_MAX + 1] = {
		"any", "f32", "f16", "bf16", "i8", "u8", "i32", "i64"
	};

	return dt <= COPRO_DT_MAX ? names[dt] : "unknown";
}

/* Splits "NAME=REST" at the first '='; a spec without one has no name. */
static void split_arg(char *spec, struct arg *a)
{
	char *eq = strchr(spec, '=');

	if (eq) {
		*eq = '\0';
		a->name = spec;
		a->rest = eq + 1;
	} else {
		a->name = NULL;
		a->rest = spec;
	}
}

/* Parses "D0,D1,..." of positive dims; returns 0 or -1. */
static int parse_dims(const char *s, struct shape *sh)
{
	const char *p = s;

	sh->rank = 0;
	for (;;) {
		unsigned long long v;
		char *end;

		if (sh->rank == COPRO_MAX_RANK)
			return -1;
		errno = 0;
		v = strtoull(p, &end, 10);
		if (end == p || errno || v == 0 || *p == '-' || *p == '+')
			return -1;
		sh->dims[sh->rank++] = v;
		if (*end == '\0')
			break;
		if (*end != ',')
			return -1;
		p = end + 1;
	}
	sh->given = 1;
	return 0;
}

/* ---- values ------------------------------------------------------------ */

/*
 * Parses one value of dtype dt from [s, e) into *dst. Returns 0, or -1
 * after printing a one-line reason that names the input, the value (its
 * number idx + 1) and `at`, where it was read.
 */
static int parse_value(const char *in, uint32_t dt, const char *s, const char *e,
		       void *dst, uint64_t idx, const char *at)
{
	char buf[128];
	size_t n;
	char *end;

	while (s < e && (*s == ' ' || *s == '\t'))
		s++;
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		e--;
	n = (size_t)(e - s);
	if (n == 0) {
		fprintf(stderr, "copro-infer: %s: value %llu is empty%s\n", in,
			(unsigned long long)idx + 1, at);
		return -1;
	}
	if (n >= sizeof(buf)) {
		fprintf(stderr, "copro-infer: %s: value %llu is not a number%s\n", in,
			(unsigned long long)idx + 1, at);
		return -1;
	}
	memcpy(buf, s, n);
	buf[n] = '\0';
	errno = 0;
	if (dt == COPRO_DT_F32) {
		double v = strtod(buf, &end);

		if (end == buf || *end) {
			fprintf(stderr, "copro-infer: %s: value %llu '%s' is not a number%s\n",
				in, (unsigned long long)idx + 1, buf, at);
			return -1;
		}
		/* NaN and infinities written out pass through; overflow does not. */
		if ((errno == ERANGE && fabs(v) > 1.0) || (isfinite(v) && fabs(v) > FLT_MAX)) {
			fprintf(stderr, "copro-infer: %s: value %llu '%s' is out of range for f32%s\n",
				in, (unsigned long long)idx + 1, buf, at);
			return -1;
		}
		*(float *)dst = (float)v;
		return 0;
	}
	if (dt == COPRO_DT_I8 || dt == COPRO_DT_U8 || dt == COPRO_DT_I32 || dt == COPRO_DT_I64) {
		static const long long lo[] = { [COPRO_DT_I8] = -128, [COPRO_DT_U8] = 0,
						[COPRO_DT_I32] = INT32_MIN,
						[COPRO_DT_I64] = INT64_MIN };
		static const long long hi[] = { [COPRO_DT_I8] = 127, [COPRO_DT_U8] = 255,
						[COPRO_DT_I32] = INT32_MAX,
						[COPRO_DT_I64] = INT64_MAX };
		long long v = strtoll(buf, &end, 10);

		if (end == buf || *end) {
			fprintf(stderr, "copro-infer: %s: value %llu '%s' is not an integer%s\n",
				in, (unsigned long long)idx + 1, buf, at);
			return -1;
		}
		if (errno == ERANGE || v < lo[dt] || v > hi[dt]) {
			fprintf(stderr, "copro-infer: %s: value %llu '%s' is out of range for %s%s\n",
				in, (unsigned long long)idx + 1, buf, dtype_name(dt), at);
			return -1;
		}
		switch (dt) {
		case COPRO_DT_I8:
			*(int8_t *)dst = (int8_t)v;
			break;
		case COPRO_DT_U8:
			*(uint8_t *)dst = (uint8_t)v;
			break;
		case COPRO_DT_I32:
			*(int32_t *)dst = (int32_t)v;
			break;
		default:
			*(int64_t *)dst = (int64_t)v;
			break;
		}
		return 0;
	}
	fprintf(stderr, "copro-infer: %s: %s inputs are read from raw files only\n", in,
		dtype_name(dt));
	return -1;
}

/* Counts the values of a comma-separated list (a list of n commas holds n + 1). */
static uint64_t count_values(const char *s)
{
	uint64_t n = 1;

	for (; *s; s++)
		n += *s == ',';
	return n;
}

/*
 * Parses the comma-separated list s, appending to in->data. Returns 0 or -1
 * after a message that ends with `at`, the place in a file ("" for none).
 */
static int parse_list(const char *name, uint32_t dt, const char *s, struct input *in,
		      const char *at)
{
	uint64_t n = count_values(s);
	size_t esz = copro_dtype_size(dt) ? copro_dtype_size(dt) : 1;
	void *p = realloc(in->data, (in->count + n) * esz);

	if (!p) {
		fprintf(stderr, "copro-infer: %s: out of memory\n", name);
		return -1;
	}
	in->data = p;
	/* Values are numbered from 1 in the list (in a CSV: in its line). */
	for (uint64_t k = 0;; k++) {
		const char *e = strchr(s, ',');

		if (!e)
			e = s + strlen(s);
		if (parse_value(name, dt, s, e, (char *)in->data + in->count * esz, k, at))
			return -1;
		in->count++;
		if (!*e)
			return 0;
		s = e + 1;
	}
}

/*
 * Reads a CSV: one row a line, `width` values a row (0: any), blank lines
 * and lines starting with '#' skipped. Returns 0 or -1 after a message.
 */
static int read_csv(const char *name, uint32_t dt, const char *path, uint64_t width,
		    struct input *in)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;
	ssize_t len;
	unsigned long lineno = 0;
	char at[PATH_MAX + 32];
	int ret = 0;

	if (!f) {
		fprintf(stderr, "copro-infer: %s: cannot open %s: %s\n", name, path,
			strerror(errno));
		return -1;
	}
	while ((len = getline(&line, &cap, f)) >= 0) {
		char *s = line;

		lineno++;
		while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
			line[--len] = '\0';
		while (*s == ' ' || *s == '\t')
			s++;
		if (!*s || *s == '#')
			continue;
		if (width && count_values(s) != width) {
			fprintf(stderr, "copro-infer: %s: %s line %lu has %llu values, a row takes %llu\n",
				name, path, lineno, (unsigned long long)count_values(s),
				(unsigned long long)width);
			ret = -1;
			break;
		}
		snprintf(at, sizeof(at), " (%s line %lu)", path, lineno);
		if (parse_list(name, dt, s, in, at)) {
			ret = -1;
			break;
		}
	}
	if (!ret && ferror(f)) {
		fprintf(stderr, "copro-infer: %s: cannot read %s\n", name, path);
		ret = -1;
	}
	free(line);
	fclose(f);
	return ret;
}

/* Reads a raw file into in->data. Returns 0 or -1 after a message. */
static int read_raw(const char *name, uint32_t dt, const char *path, uint64_t row_bytes,
		    struct input *in)
{
	size_t esz = copro_dtype_size(dt);
	struct stat sb;
	FILE *f;
	int ret = -1;

	f = fopen(path, "rb");
	if (!f) {
		fprintf(stderr, "copro-infer: %s: cannot open %s: %s\n", name, path,
			strerror(errno));
		return -1;
	}
	if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
		fprintf(stderr, "copro-infer: %s: %s is not a regular file\n", name, path);
		goto out;
	}
	if (sb.st_size == 0 || (uint64_t)sb.st_size % row_bytes) {
		fprintf(stderr,
			"copro-infer: %s: %s holds %llu bytes, not a positive multiple of a row "
			"(%llu bytes of %s)\n", name, path, (unsigned long long)sb.st_size,
			(unsigned long long)row_bytes, dtype_name(dt));
		goto out;
	}
	in->data = malloc((size_t)sb.st_size);
	if (!in->data) {
		fprintf(stderr, "copro-infer: %s: out of memory for %s\n", name, path);
		goto out;
	}
	if (fread(in->data, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size) {
		fprintf(stderr, "copro-infer: %s: cannot read %s\n", name, path);
		goto out;
	}
	in->count = (uint64_t)sb.st_size / esz;
	ret = 0;
out:
	fclose(f);
	return ret;
}

/* ---- shapes ------------------------------------------------------------ */

/*
 * Gives `in` its shape: the --shape if one was given (its product must be
 * the element count), else the model's with its one free dimension (the
 * batch) taken from the count. Returns 0 or -1 after a message.
 */
static int resolve_shape(const struct copro_tensor_info *ti, const struct shape *sh,
			 struct input *in, const char *what)
{
	uint64_t known = 1, prod = 1;
	int free_dim = -1;

	if (sh->given) {
		for (uint32_t i = 0; i < sh->rank; i++)
			prod *= sh->dims[i];
		if (prod != in->count) {
			fprintf(stderr, "copro-infer: %s: --shape holds %llu elements, not the "
				"%llu %s\n", ti->name, (unsigned long long)prod,
				(unsigned long long)in->count, what);
			return -1;
		}
		in->rank = sh->rank;
		memcpy(in->dims, sh->dims, sizeof(in->dims));
		return 0;
	}
	if (ti->rank < 0) {
		in->rank = 1;
		in->dims[0] = in->count;
		return 0;
	}
	for (int i = 0; i < ti->rank; i++) {
		if (ti->dims[i] >= 0) {
			known *= (uint64_t)ti->dims[i];
			continue;
		}
		if (free_dim >= 0) {
			fprintf(stderr, "copro-infer: %s: the model leaves more than one dimension "
				"free; give --shape\n", ti->name);
			return -1;
		}
		free_dim = i;
	}
	if (free_dim < 0 ? in->count != known
			 : known == 0 || in->count == 0 || in->count % known) {
		fprintf(stderr, "copro-infer: %s: %llu %s; the model takes %s%llu\n",
			ti->name, (unsigned long long)in->count, what,
			free_dim < 0 ? "exactly " : "a multiple of ", (unsigned long long)known);
		return -1;
	}
	in->rank = (uint32_t)ti->rank;
	for (int i = 0; i < ti->rank; i++)
		in->dims[i] = i == free_dim ? in->count / known : (uint64_t)ti->dims[i];
	return 0;
}

/* Bytes of one row as the model sees it: the product of its fixed dims. */
static uint64_t row_elems(const struct copro_tensor_info *ti)
{
	uint64_t n = 1;

	for (int i = 0; i < ti->rank; i++)
		if (ti->dims[i] >= 0)
			n *= (uint64_t)ti->dims[i];
	return n;
}

/* Loads one input from its spec and gives it a shape; 0 or -1 after a message. */
static int load_input(const struct copro_tensor_info *ti, const struct shape *sh,
		      const char *spec, struct input *in)
{
	size_t len = strlen(spec);
	uint32_t dt = ti->dtype ? ti->dtype : COPRO_DT_F32;
	/* With a --shape given, rows are the caller's business, not the model's. */
	uint64_t width = sh->given || ti->rank < 0 ? 0 : row_elems(ti);

	if (spec[0] == '@') {
		if (read_csv(ti->name, dt, spec + 1, width, in))
			return -1;
		if (in->count == 0) {
			fprintf(stderr, "copro-infer: %s: %s holds no rows\n", ti->name, spec + 1);
			return -1;
		}
		return resolve_shape(ti, sh, in, "values in the CSV");
	}
	if (strchr(spec, '/') || (len >= 4 && !strcmp(spec + len - 4, ".bin"))) {
		uint64_t unit = copro_dtype_size(dt);

		if (!unit) {
			fprintf(stderr, "copro-infer: %s: unknown dtype %u\n", ti->name, dt);
			return -1;
		}
		if (read_raw(ti->name, dt, spec, sh->given ? unit : unit * (width ? width : 1), in))
			return -1;
		return resolve_shape(ti, sh, in, "values in the file");
	}
	if (parse_list(ti->name, dt, spec, in, ""))
		return -1;
	return resolve_shape(ti, sh, in, "values given");
}

/* ---- outputs ----------------------------------------------------------- */

static float f16_to_f32(uint16_t h)
{
	uint32_t sign = (uint32_t)(h >> 15) << 31, exp = (h >> 10) & 0x1f, man = h & 0x3ff;
	uint32_t bits;
	float f;

	if (exp == 0x1f) {
		bits = sign | 0x7f800000u | (man << 13);
	} else if (exp) {
		bits = sign | ((exp + 112) << 23) | (man << 13);
	} else {
		f = ldexpf((float)man, -24);	/* zero or subnormal */
		return sign ? -f : f;
	}
	memcpy(&f, &bits, sizeof(f));
	return f;
}

static float bf16_to_f32(uint16_t h)
{
	uint32_t bits = (uint32_t)h << 16;
	float f;

	memcpy(&f, &bits, sizeof(f));
	return f;
}

static void print_elem(const struct copro_tensor *t, uint64_t i)
{
	switch (t->dtype) {
	case COPRO_DT_F32:
		printf("%.9g", ((const float *)t->data)[i]);
		break;
	case COPRO_DT_F16:
		printf("%.9g", f16_to_f32(((const uint16_t *)t->data)[i]));
		break;
	case COPRO_DT_BF16:
		printf("%.9g", bf16_to_f32(((const uint16_t *)t->data)[i]));
		break;
	case COPRO_DT_I8:
		printf("%d", ((const int8_t *)t->data)[i]);
		break;
	case COPRO_DT_U8:
		printf("%u", ((const uint8_t *)t->data)[i]);
		break;
	case COPRO_DT_I32:
		printf("%d", ((const int32_t *)t->data)[i]);
		break;
	case COPRO_DT_I64:
		printf("%lld", (long long)((const int64_t *)t->data)[i]);
		break;
	}
}

/* Prints "NAME [d0, d1]", then dim 0 as rows of comma-separated values. */
static void print_output(const char *name, const struct copro_tensor *t)
{
	uint64_t rows = t->rank ? t->dims[0] : 1, cols = 1;

	printf("%s [", name);
	for (uint32_t i = 0; i < t->rank; i++)
		printf("%s%llu", i ? ", " : "", (unsigned long long)t->dims[i]);
	printf("]\n");
	for (uint32_t i = 1; i < t->rank; i++)
		cols *= t->dims[i];
	for (uint64_t r = 0; r < rows; r++) {
		for (uint64_t j = 0; j < cols; j++) {
			if (j)
				fputs(", ", stdout);
			print_elem(t, r * cols + j);
		}
		putchar('\n');
	}
}

static int write_output(const char *name, const char *path, const struct copro_tensor *t)
{
	FILE *f = fopen(path, "wb");

	if (!f) {
		fprintf(stderr, "copro-infer: %s: cannot open %s: %s\n", name, path,
			strerror(errno));
		return -1;
	}
	if (fwrite(t->data, 1, t->bytes, f) != t->bytes) {
		fclose(f);
		goto fail;
	}
	if (fclose(f))
		goto fail;
	return 0;
fail:
	fprintf(stderr, "copro-infer: %s: cannot write %s\n", name, path);
	return -1;
}

/*
 * Gives output j its dtype and shape: an output that mirrors an input takes
 * that input's; otherwise the batch (dim -1) is the first input's dim 0.
 * Returns 0 or -1 after a message.
 */
static int output_shape(const struct copro_model_info *mi, uint32_t j, const struct input *ins,
			uint32_t *dt, uint32_t *rank, uint64_t *dims)
{
	const struct copro_tensor_info *to = &mi->out[j];

	if (to->like_input && j < mi->n_in) {
		*dt = to->dtype ? to->dtype : (mi->in[j].dtype ? mi->in[j].dtype : COPRO_DT_F32);
		*rank = ins[j].rank;
		memcpy(dims, ins[j].dims, sizeof(ins[j].dims));
		return 0;
	}
	*dt = to->dtype ? to->dtype : COPRO_DT_F32;
	if (to->rank < 0)
		goto unknown;
	*rank = (uint32_t)to->rank;
	for (int i = 0; i < to->rank; i++) {
		if (to->dims[i] >= 0)
			dims[i] = (uint64_t)to->dims[i];
		else if (i == 0 && mi->n_in && ins[0].rank)
			dims[i] = ins[0].dims[0];
		else
			goto unknown;
	}
	return 0;
unknown:
	fprintf(stderr, "copro-infer: %s: the signature does not give output %s a shape\n",
		model, to->name);
	return -1;
}

/* ---- main -------------------------------------------------------------- */

/* Finds the tensor a name refers to; a missing name is the only one, if one. */
static int find_tensor(const struct copro_tensor_info *ts, uint32_t n, const char *name)
{
	if (!name)
		return n == 1 ? 0 : -1;
	for (uint32_t i = 0; i < n; i++)
		if (!strncmp(ts[i].name, name, sizeof(ts[i].name)))
			return (int)i;
	return -1;
}

static void list_names(const struct copro_tensor_info *ts, uint32_t n)
{
	for (uint32_t i = 0; i < n; i++)
		fprintf(stderr, "%s%.*s", i ? ", " : "", (int)sizeof(ts[i].name), ts[i].name);
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "model", required_argument, NULL, 'm' },
		{ "input", required_argument, NULL, 'i' },
		{ "shape", required_argument, NULL, 'S' },
		{ "output", required_argument, NULL, 'o' },
		{ "timeout", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	struct arg in_args[MAX_ARGS], shape_args[MAX_ARGS], out_args[MAX_ARGS];
	struct shape shape_of[MAX_ARGS] = { 0 };
	struct shape parsed[MAX_ARGS];
	struct input ins[COPRO_MAX_TENSORS] = { 0 };
	const char *out_path[COPRO_MAX_TENSORS] = { 0 };
	struct copro_tensor tin[COPRO_MAX_TENSORS], tout[COPRO_MAX_TENSORS];
	const struct copro_tensor *pin[COPRO_MAX_TENSORS], *pout[COPRO_MAX_TENSORS];
	struct copro_opts o = { .sq_entries = 8, .arena_bytes = 1 << 20 };
	struct copro_model_info mi;
	struct copro_request req = { 0 };
	int n_in_args = 0, n_shape_args = 0, n_out_args = 0;
	long timeout_ms = DEF_TIMEOUT_MS;
	struct copro_client *c = NULL;
	uint32_t out_dt[COPRO_MAX_TENSORS], out_rank[COPRO_MAX_TENSORS];
	uint64_t out_dims[COPRO_MAX_TENSORS][COPRO_MAX_RANK] = { { 0 } };
	uint64_t need = 0;
	const char *sock = NULL;
	char path[108];
	int ch, ret, status = 1;

	while ((ch = getopt_long(argc, argv, "s:m:i:o:t:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'm':
			model = optarg;
			break;
		case 'i':
		case 'S':
		case 'o': {
			int *n = ch == 'i' ? &n_in_args : ch == 'S' ? &n_shape_args : &n_out_args;
			struct arg *a = ch == 'i' ? in_args : ch == 'S' ? shape_args : out_args;

			if (*n == MAX_ARGS) {
				fprintf(stderr, "copro-infer: more than %d --%s options\n", MAX_ARGS,
					ch == 'i' ? "input" : ch == 'S' ? "shape" : "output");
				return 2;
			}
			split_arg(optarg, &a[*n]);
			if (ch == 'o' && (!a[*n].name || !*a[*n].name || !*a[*n].rest)) {
				fprintf(stderr, "copro-infer: --output takes NAME=FILE\n");
				return 2;
			}
			if (ch == 'S' && parse_dims(a[*n].rest, &parsed[*n])) {
				fprintf(stderr, "copro-infer: bad --shape '%s': positive dims "
					"D0,D1,... (at most %d)\n", a[*n].rest, COPRO_MAX_RANK);
				return 2;
			}
			(*n)++;
			break;
		}
		case 't': {
			char *end;

			timeout_ms = strtol(optarg, &end, 10);
			if (end == optarg || *end || timeout_ms < 1 || timeout_ms > 86400000) {
				fprintf(stderr, "copro-infer: bad timeout '%s'\n", optarg);
				return 2;
			}
			break;
		}
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("copro-infer %s (ABI %d.%d)\n", COPRO_VERSION, COPRO_ABI_MAJOR,
			       COPRO_ABI_MINOR);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "copro-infer: unexpected argument '%s' (try --help)\n", argv[optind]);
		return 2;
	}
	if (!model || !*model) {
		fprintf(stderr, "copro-infer: no model (-m MODEL; try --help)\n");
		return 2;
	}
	if (!sock) {
		ret = copro_default_socket(path, sizeof(path));
		if (ret < 0) {
			fprintf(stderr, "copro-infer: default socket path: %s\n", copro_strerror(ret));
			return 1;
		}
		sock = path;
	}
	ret = copro_connect(sock, &o, &c);
	if (ret) {
		fprintf(stderr, "copro-infer: cannot connect to %s: %s\n", sock, copro_strerror(ret));
		return 1;
	}
	ret = copro_lookup(c, model, &mi);
	if (ret) {
		fprintf(stderr, "copro-infer: %s: %s\n", model, copro_strerror(ret));
		goto out;
	}
	if (mi.n_in > COPRO_MAX_TENSORS || mi.n_out > COPRO_MAX_TENSORS ||
	    mi.n_in + mi.n_out > COPRO_MAX_TENSORS) {
		fprintf(stderr, "copro-infer: %s: signature of %u inputs and %u outputs is too large\n",
			model, mi.n_in, mi.n_out);
		goto out;
	}

	/* Match the named options to the signature: all usage errors, exit 2. */
	status = 2;
	for (int k = 0; k < n_shape_args; k++) {
		int i = find_tensor(mi.in, mi.n_in, shape_args[k].name);

		if (i < 0 || shape_of[i].given) {
			fprintf(stderr, "copro-infer: --shape %s: %s (inputs: ", shape_args[k].name ?
				shape_args[k].name : "without a name", i < 0 ?
				"no such input" : "given twice");
			list_names(mi.in, mi.n_in);
			fprintf(stderr, ")\n");
			goto out;
		}
		shape_of[i] = parsed[k];
	}
	for (int k = 0; k < n_out_args; k++) {
		int j = find_tensor(mi.out, mi.n_out, out_args[k].name);

		if (j < 0 || out_path[j]) {
			fprintf(stderr, "copro-infer: --output %s: %s (outputs: ", out_args[k].name,
				j < 0 ? "no such output" : "given twice");
			list_names(mi.out, mi.n_out);
			fprintf(stderr, ")\n");
			goto out;
		}
		out_path[j] = out_args[k].rest;
	}
	{
		int seen[COPRO_MAX_TENSORS] = { 0 };

		for (int k = 0; k < n_in_args; k++) {
			int i = find_tensor(mi.in, mi.n_in, in_args[k].name);

			if (i < 0 || seen[i]) {
				if (!in_args[k].name)
					fprintf(stderr, "copro-infer: --input without a name: the model "
						"has %u inputs (", mi.n_in);
				else
					fprintf(stderr, "copro-infer: --input %s: %s (inputs: ",
						in_args[k].name, i < 0 ? "no such input" : "given twice");
				list_names(mi.in, mi.n_in);
				fprintf(stderr, ")\n");
				goto out;
			}
			seen[i] = 1;
			if (load_input(&mi.in[i], &shape_of[i], in_args[k].rest, &ins[i]))
				goto out;
		}
		for (uint32_t i = 0; i < mi.n_in; i++) {
			if (!seen[i]) {
				fprintf(stderr, "copro-infer: input %.*s not given (--input %.*s=...)\n",
					(int)sizeof(mi.in[i].name), mi.in[i].name,
					(int)sizeof(mi.in[i].name), mi.in[i].name);
				goto out;
			}
		}
	}
	status = 1;

	/* Size the arena for every tensor, each rounded to the arena's alignment. */
	for (uint32_t i = 0; i < mi.n_in; i++)
		need += (ins[i].count * copro_dtype_size(mi.in[i].dtype ? mi.in[i].dtype
							 : COPRO_DT_F32) + 63) & ~63ULL;
	for (uint32_t j = 0; j < mi.n_out; j++) {
		uint64_t n;

		if (output_shape(&mi, j, ins, &out_dt[j], &out_rank[j], out_dims[j]))
			goto out;
		n = copro_dtype_size(out_dt[j]);
		for (uint32_t d = 0; d < out_rank[j]; d++)
			n *= out_dims[j][d];
		need += (n + 63) & ~63ULL;
	}
	need += 64 << 10;	/* the library's own slack */
	if (need > o.arena_bytes) {
		copro_close(c);
		c = NULL;
		o.arena_bytes = need;
		ret = copro_connect(sock, &o, &c);
		if (!ret)
			ret = copro_lookup(c, model, &mi);
		if (ret) {
			fprintf(stderr, "copro-infer: %s: %s\n", model, copro_strerror(ret));
			goto out;
		}
	}

	for (uint32_t i = 0; i < mi.n_in; i++) {
		uint32_t dt = mi.in[i].dtype ? mi.in[i].dtype : COPRO_DT_F32;

		ret = copro_tensor_alloc(c, dt, ins[i].rank, ins[i].dims, &tin[i]);
		if (ret) {
			fprintf(stderr, "copro-infer: %s: input %s: %s\n", model, mi.in[i].name,
				copro_strerror(ret));
			goto out;
		}
		memcpy(tin[i].data, ins[i].data, tin[i].bytes);
		pin[i] = &tin[i];
	}
	for (uint32_t j = 0; j < mi.n_out; j++) {
		ret = copro_tensor_alloc(c, out_dt[j], out_rank[j], out_dims[j], &tout[j]);
		if (ret) {
			fprintf(stderr, "copro-infer: %s: output %s: %s\n", model, mi.out[j].name,
				copro_strerror(ret));
			goto out;
		}
		pout[j] = &tout[j];
	}
	req.model = mi.handle;
	req.n_in = (uint16_t)mi.n_in;
	req.n_out = (uint16_t)mi.n_out;
	req.in = pin;
	req.out = pout;
	req.user_data = 1;
	ret = copro_run(c, &req, (int64_t)timeout_ms * 1000000);
	if (ret < 0) {
		fprintf(stderr, "copro-infer: %s: %s\n", model, copro_strerror(ret));
		goto out;
	}
	for (uint32_t j = 0; j < mi.n_out; j++) {
		if (out_path[j]) {
			if (write_output(mi.out[j].name, out_path[j], &tout[j]))
				goto out;
		} else {
			print_output(mi.out[j].name, &tout[j]);
		}
	}
	status = fflush(stdout) ? 1 : 0;
out:
	/* Tensors go with the client's region; only host buffers need freeing. */
	for (uint32_t i = 0; i < COPRO_MAX_TENSORS; i++)
		free(ins[i].data);
	if (c)
		copro_close(c);
	return status;
}
