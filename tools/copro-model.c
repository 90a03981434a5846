// SPDX-License-Identifier: MIT
/*
 * copro-model - inspect ONNX and GGUF models and write small ones.
 *
 *   copro-model info FILE
 *   copro-model mlp --in N --hidden A,B,... --out M [--seed S] [--act relu|tanh]
 *                   [--final sigmoid|softmax|none] -o FILE
 *   copro-model synth -o FILE [--dim N --layers N --heads N --kv-heads N --hidden N
 *                   --vocab N --context N --type T --seed N --vocab-file PATH --untied]
 *
 * `mlp` writes the kind of model a fraud team exports from PyTorch: Gemm
 * layers (weights stored [out, in] with transB = 1, as torch.onnx.export
 * writes nn.Linear) with an activation between them, a symbolic batch
 * dimension "N", and seeded weights, so the project has its demo and test
 * models without any download. `synth` does the same for Llama: a
 * random-weight GGUF file named and shaped as llama.cpp writes one.
 */
#include <errno.h>
#include <getopt.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "onnx.pb-c.h"
#include "onnx/graph.h"
#include "onnx/ops.h"
#include "llm/gguf.h"
#include "llm/synth.h"

#define COPRO_VERSION	"0.1.0"
#define MAX_LAYERS	32

static void usage(FILE *f)
{
	fprintf(f,
		"usage: copro-model info FILE\n"
		"       copro-model mlp --in N --hidden A,B,... --out M -o FILE\n"
		"                       [--seed S] [--act relu|tanh] [--final sigmoid|softmax|none]\n"
		"       copro-model synth -o FILE [--dim N] [--layers N] [--heads N] [--kv-heads N]\n"
		"                       [--hidden N] [--vocab N] [--context N] [--type T] [--seed N]\n"
		"                       [--vocab-file PATH] [--untied]\n"
		"\n"
		"Inspect an ONNX or GGUF model, write a seeded multi-layer perceptron (ONNX),\n"
		"or write a random-weight Llama model (GGUF).\n"
		"\n"
		"  info FILE        ONNX: inputs, outputs, operators, parameters, unsupported ops;\n"
		"                   GGUF: version, alignment, every key and tensor, parameters\n"
		"  mlp              Gemm layers with an activation between them and a\n"
		"                   symbolic batch dimension N (defaults: --seed 1,\n"
		"                   --act relu, --final sigmoid)\n"
		"  synth            a Llama model as llama.cpp names it; defaults: --dim 64\n"
		"                   --layers 2 --heads 4 --kv-heads 2 --hidden 192 --vocab 512\n"
		"                   --context 256 --type F32 --seed 1, output tied to the\n"
		"                   embedding; --type F32|F16|Q8_0|Q4_0 for the matrices;\n"
		"                   --vocab-file takes a llama2.c tokenizer.bin's vocabulary\n"
		"  -h, --help       show this help\n"
		"  -V, --version    show the version\n");
}

/* ---- mlp ------------------------------------------------------------------- */

/* xorshift64*: reproducible weights from a seed, independent of libc. */
static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s >> 12;
	*s ^= *s << 25;
	*s ^= *s >> 27;
	return *s * 2685821657736338717ULL;
}

static float rng_uniform(uint64_t *s, float bound)
{
	return ((float)(rng_next(s) >> 40) / (float)(1 << 24) * 2.0f - 1.0f) * bound;
}

static Onnx__TensorProto *make_init(const char *name, int64_t d0, int64_t d1, uint64_t *rng,
				    float bound)
{
	Onnx__TensorProto *t = calloc(1, sizeof(*t));
	int64_t n = d0 * (d1 ? d1 : 1);

	onnx__tensor_proto__init(t);
	t->name = strdup(name);
	t->has_data_type = 1;
	t->data_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	t->n_dims = d1 ? 2 : 1;
	t->dims = calloc(2, sizeof(int64_t));
	t->dims[0] = d0;
	t->dims[1] = d1;
	t->n_float_data = (size_t)n;
	t->float_data = malloc((size_t)n * sizeof(float));
	for (int64_t i = 0; i < n; i++)
		t->float_data[i] = rng_uniform(rng, bound);
	return t;
}

static Onnx__ValueInfoProto *make_io(const char *name, int64_t features)
{
	Onnx__ValueInfoProto *v = calloc(1, sizeof(*v));
	Onnx__TypeProto *tp = calloc(1, sizeof(*tp));
	Onnx__TypeProto__Tensor *tt = calloc(1, sizeof(*tt));
	Onnx__TensorShapeProto *sh = calloc(1, sizeof(*sh));
	Onnx__TensorShapeProto__Dimension **d = calloc(2, sizeof(*d));

	onnx__value_info_proto__init(v);
	onnx__type_proto__init(tp);
	onnx__type_proto__tensor__init(tt);
	onnx__tensor_shape_proto__init(sh);
	for (int i = 0; i < 2; i++) {
		d[i] = calloc(1, sizeof(**d));
		onnx__tensor_shape_proto__dimension__init(d[i]);
	}
	d[0]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
	d[0]->dim_param = strdup("N");
	d[1]->value_case = ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
	d[1]->dim_value = features;
	sh->n_dim = 2;
	sh->dim = d;
	tt->has_elem_type = 1;
	tt->elem_type = ONNX__TENSOR_PROTO__DATA_TYPE__FLOAT;
	tt->shape = sh;
	tp->value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
	tp->tensor_type = tt;
	v->name = strdup(name);
	v->type = tp;
	return v;
}

static Onnx__NodeProto *make_node(const char *op, const char *name, const char **in, int n_in,
				  const char *out)
{
	Onnx__NodeProto *n = calloc(1, sizeof(*n));

	onnx__node_proto__init(n);
	n->op_type = strdup(op);
	n->name = strdup(name);
	n->n_input = (size_t)n_in;
	n->input = calloc((size_t)n_in, sizeof(char *));
	for (int i = 0; i < n_in; i++)
		n->input[i] = strdup(in[i]);
	n->n_output = 1;
	n->output = calloc(1, sizeof(char *));
	n->output[0] = strdup(out);
	return n;
}

static void add_int_attr(Onnx__NodeProto *n, const char *name, int64_t v)
{
	Onnx__AttributeProto *a = calloc(1, sizeof(*a));

	onnx__attribute_proto__init(a);
	a->name = strdup(name);
	a->has_type = 1;
	a->type = ONNX__ATTRIBUTE_PROTO__ATTRIBUTE_TYPE__INT;
	a->has_i = 1;
	a->i = v;
	n->attribute = realloc(n->attribute, (n->n_attribute + 1) * sizeof(*n->attribute));
	n->attribute[n->n_attribute++] = a;
}

static int parse_list(const char *s, int64_t *v, int max)
{
	char *end;
	int n = 0;

	while (*s) {
		long long x = strtoll(s, &end, 10);

		if (end == s || x < 1 || x > 1 << 20 || n == max)
			return -EINVAL;
		v[n++] = x;
		s = end;
		if (*s == ',')
			s++;
		else if (*s)
			return -EINVAL;
	}
	return n;
}

static int cmd_mlp(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "in", required_argument, NULL, 'i' },
		{ "hidden", required_argument, NULL, 'H' },
		{ "out", required_argument, NULL, 'O' },
		{ "seed", required_argument, NULL, 's' },
		{ "act", required_argument, NULL, 'a' },
		{ "final", required_argument, NULL, 'f' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	int64_t in = 0, out = 0, hidden[MAX_LAYERS];
	int n_hidden = 0, c;
	uint64_t rng = 1;
	const char *act = "Relu", *final = "Sigmoid", *path = NULL;
	Onnx__ModelProto model = ONNX__MODEL_PROTO__INIT;
	Onnx__GraphProto graph = ONNX__GRAPH_PROTO__INIT;
	Onnx__OperatorSetIdProto opset = ONNX__OPERATOR_SET_ID_PROTO__INIT;
	Onnx__OperatorSetIdProto *opsets[1] = { &opset };
	Onnx__NodeProto *nodes[2 * MAX_LAYERS + 2];
	Onnx__TensorProto *inits[2 * MAX_LAYERS + 2];
	Onnx__ValueInfoProto *gin[1], *gout[1];
	int64_t prev;
	size_t n_nodes = 0, n_inits = 0, len;
	uint8_t *buf;
	char cur[64];
	FILE *f;

	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'i':
		case 'O':
			prev = strtoll(optarg, &end, 10);
			if (*end || prev < 1 || prev > 1 << 20) {
				fprintf(stderr, "copro-model: bad size '%s'\n", optarg);
				return 2;
			}
			*(c == 'i' ? &in : &out) = prev;
			break;
		case 'H':
			n_hidden = parse_list(optarg, hidden, MAX_LAYERS - 1);
			if (n_hidden < 0) {
				fprintf(stderr, "copro-model: bad --hidden '%s' (e.g. 256,256)\n", optarg);
				return 2;
			}
			break;
		case 's':
			rng = strtoull(optarg, &end, 10);
			if (*end) {
				fprintf(stderr, "copro-model: bad seed '%s'\n", optarg);
				return 2;
			}
			rng = rng * 0x9e3779b97f4a7c15ULL + 1;	/* never zero */
			break;
		case 'a':
			if (!strcmp(optarg, "relu"))
				act = "Relu";
			else if (!strcmp(optarg, "tanh"))
				act = "Tanh";
			else {
				fprintf(stderr, "copro-model: bad --act '%s' (relu, tanh)\n", optarg);
				return 2;
			}
			break;
		case 'f':
			if (!strcmp(optarg, "sigmoid"))
				final = "Sigmoid";
			else if (!strcmp(optarg, "softmax"))
				final = "Softmax";
			else if (!strcmp(optarg, "none"))
				final = NULL;
			else {
				fprintf(stderr, "copro-model: bad --final '%s'\n", optarg);
				return 2;
			}
			break;
		case 'o':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
	}
	if (!in || !out || !path) {
		fprintf(stderr, "copro-model: mlp needs --in, --out and -o FILE\n");
		return 2;
	}

	prev = in;
	strcpy(cur, "x");
	for (int l = 0; l <= n_hidden; l++) {
		int64_t width = l < n_hidden ? hidden[l] : out;
		char w[32], b[32], y[64], name[32];
		const char *gemm_in[3] = { cur, w, b };
		/* Kaiming-uniform bound, as torch initialises nn.Linear weights. */
		float bound = 1.0f / sqrtf((float)prev);

		snprintf(w, sizeof(w), "fc%d.weight", l);
		snprintf(b, sizeof(b), "fc%d.bias", l);
		inits[n_inits++] = make_init(w, width, prev, &rng, bound);
		inits[n_inits++] = make_init(b, width, 0, &rng, bound);
		snprintf(y, sizeof(y), "fc%d", l);
		snprintf(name, sizeof(name), "Gemm_%d", l);
		nodes[n_nodes] = make_node("Gemm", name, gemm_in, 3, y);
		add_int_attr(nodes[n_nodes], "transB", 1);
		n_nodes++;
		snprintf(cur, sizeof(cur), "%s", y);
		if (l < n_hidden || final) {
			const char *op = l < n_hidden ? act : final;
			const char *a_in[1] = { y };
			char a_out[64];

			snprintf(a_out, sizeof(a_out), l < n_hidden ? "act%d" : "y", l);
			snprintf(name, sizeof(name), "%s_%d", op, l);
			nodes[n_nodes] = make_node(op, name, a_in, 1, a_out);
			if (!strcmp(op, "Softmax"))
				add_int_attr(nodes[n_nodes], "axis", 1);
			n_nodes++;
			snprintf(cur, sizeof(cur), "%s", a_out);
		}
		prev = width;
	}
	if (!final) {
		/* Name the last Gemm's output "y" so every MLP has the same output name. */
		free(nodes[n_nodes - 1]->output[0]);
		nodes[n_nodes - 1]->output[0] = strdup("y");
	}

	gin[0] = make_io("x", in);
	gout[0] = make_io("y", out);
	graph.name = "copro_mlp";
	graph.n_node = n_nodes;
	graph.node = nodes;
	graph.n_initializer = n_inits;
	graph.initializer = inits;
	graph.n_input = 1;
	graph.input = gin;
	graph.n_output = 1;
	graph.output = gout;
	opset.domain = "";
	opset.has_version = 1;
	opset.version = 13;
	model.has_ir_version = 1;
	model.ir_version = 7;
	model.producer_name = "copro-model";
	model.producer_version = COPRO_VERSION;
	model.n_opset_import = 1;
	model.opset_import = opsets;
	model.graph = &graph;

	len = onnx__model_proto__get_packed_size(&model);
	buf = malloc(len);
	if (!buf) {
		fprintf(stderr, "copro-model: out of memory\n");
		return 1;
	}
	onnx__model_proto__pack(&model, buf);
	f = fopen(path, "wb");
	if (!f || fwrite(buf, 1, len, f) != len || fclose(f)) {
		fprintf(stderr, "copro-model: cannot write %s: %s\n", path, strerror(errno));
		return 1;
	}
	free(buf);
	for (size_t i = 0; i < n_nodes; i++)
		onnx__node_proto__free_unpacked(nodes[i], NULL);
	for (size_t i = 0; i < n_inits; i++)
		onnx__tensor_proto__free_unpacked(inits[i], NULL);
	onnx__value_info_proto__free_unpacked(gin[0], NULL);
	onnx__value_info_proto__free_unpacked(gout[0], NULL);
	printf("wrote %s: %lld -> ", path, (long long)in);
	for (int l = 0; l < n_hidden; l++)
		printf("%lld -> ", (long long)hidden[l]);
	printf("%lld, %zu bytes\n", (long long)out, len);
	return 0;
}

/* ---- GGUF: info and synth --------------------------------------------------- */

/* Prints up to max bytes of a string value quoted, with control bytes and
 * quotes escaped so one key stays on one line. */
static void print_str(const char *s, size_t len, size_t max)
{
	putchar('"');
	for (size_t i = 0; i < len && i < max; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch == 0x7f)
			printf("\\x%02x", ch);
		else
			putchar(ch);
	}
	printf(len > max ? "\"..." : "\"");
}

/* Prints element i of a fixed-size array or scalar at p (unaligned). */
static void print_scalar(uint32_t type, const void *p)
{
	union {
		uint8_t u8;
		int8_t i8;
		uint16_t u16;
		int16_t i16;
		uint32_t u32;
		int32_t i32;
		uint64_t u64;
		int64_t i64;
		float f32;
		double f64;
	} v;

	memcpy(&v, p, type == COPRO_GGUF_U64 || type == COPRO_GGUF_I64 || type == COPRO_GGUF_F64 ?
		      8 : type == COPRO_GGUF_U32 || type == COPRO_GGUF_I32 || type == COPRO_GGUF_F32 ?
		      4 : type == COPRO_GGUF_U16 || type == COPRO_GGUF_I16 ? 2 : 1);
	switch (type) {
	case COPRO_GGUF_U8: printf("%u", v.u8); break;
	case COPRO_GGUF_I8: printf("%d", v.i8); break;
	case COPRO_GGUF_U16: printf("%u", v.u16); break;
	case COPRO_GGUF_I16: printf("%d", v.i16); break;
	case COPRO_GGUF_U32: printf("%u", v.u32); break;
	case COPRO_GGUF_I32: printf("%d", v.i32); break;
	case COPRO_GGUF_U64: printf("%llu", (unsigned long long)v.u64); break;
	case COPRO_GGUF_I64: printf("%lld", (long long)v.i64); break;
	case COPRO_GGUF_F32: printf("%g", v.f32); break;
	case COPRO_GGUF_F64: printf("%g", v.f64); break;
	case COPRO_GGUF_BOOL: printf("%s", v.u8 ? "true" : "false"); break;
	}
}

static uint64_t scalar_bytes(uint32_t type)
{
	switch (type) {
	case COPRO_GGUF_U8: case COPRO_GGUF_I8: case COPRO_GGUF_BOOL: return 1;
	case COPRO_GGUF_U16: case COPRO_GGUF_I16: return 2;
	case COPRO_GGUF_U64: case COPRO_GGUF_I64: case COPRO_GGUF_F64: return 8;
	}
	return 4;
}

static int cmd_info_gguf(const char *path)
{
	struct copro_gguf *g;
	uint64_t params = 0, bytes = 0;
	char err[256];

	if (copro_gguf_open(path, &g, err, sizeof(err))) {
		fprintf(stderr, "copro-model: %s: %s\n", path, err);
		return 1;
	}
	printf("gguf %s: version %u, alignment %u, %llu keys, %llu tensors, data at byte %llu\n",
	       path, g->version, g->alignment, (unsigned long long)g->n_kv,
	       (unsigned long long)g->n_tensors, (unsigned long long)g->data_offset);
	printf("metadata:\n");
	for (uint64_t i = 0; i < g->n_kv; i++) {
		const struct copro_gguf_kv *kv = &g->kv[i];

		printf("  %-40s ", kv->key);
		if (kv->type == COPRO_GGUF_STRING) {
			printf("%-8s ", "string");
			print_str(kv->data, kv->count, 64);
		} else if (kv->type == COPRO_GGUF_ARRAY) {
			printf("%s[%llu] ", copro_gguf_type_name(kv->elem_type),
			       (unsigned long long)kv->count);
			for (uint64_t j = 0; j < kv->count && j < 5; j++) {
				const char *s;
				size_t len;

				printf("%s", j ? ", " : "");
				if (kv->elem_type == COPRO_GGUF_STRING) {
					copro_gguf_arr_str(g, kv, j, &s, &len);
					print_str(s, len, 24);
				} else {
					print_scalar(kv->elem_type, (const uint8_t *)kv->data +
						     j * scalar_bytes(kv->elem_type));
				}
			}
			printf(kv->count > 5 ? ", ...\n" : "\n");
			continue;
		} else {
			printf("%-8s ", copro_gguf_type_name(kv->type));
			print_scalar(kv->type, kv->data);
		}
		printf("\n");
	}
	printf("tensors:\n");
	for (uint64_t i = 0; i < g->n_tensors; i++) {
		const struct copro_gguf_tensor *t = &g->tensors[i];
		char dims[96];
		int n = 0;

		for (uint32_t d = 0; d < t->n_dims; d++)
			n += snprintf(dims + n, sizeof(dims) - (size_t)n, "%s%llu", d ? ", " : "",
				      (unsigned long long)t->ne[d]);
		printf("  %-40s %-5s [%s] %zu bytes\n", t->name, copro_ggml_type_name(t->type),
		       dims, t->nbytes);
		params += t->n_elems;
		bytes += t->nbytes;
	}
	printf("parameters: %llu (%llu bytes of tensor data)\n", (unsigned long long)params,
	       (unsigned long long)bytes);
	copro_gguf_close(g);
	return 0;
}

/* Parses a positive integer option no larger than max. */
static int parse_u32(const char *opt, const char *s, uint32_t max, uint32_t *out)
{
	char *end;
	unsigned long long v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || *end || *s == '-' || !v || v > max) {
		fprintf(stderr, "copro-model: bad %s '%s' (1 to %u)\n", opt, s, max);
		return -EINVAL;
	}
	*out = (uint32_t)v;
	return 0;
}

static int cmd_synth(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "dim", required_argument, NULL, 'd' },
		{ "layers", required_argument, NULL, 'l' },
		{ "heads", required_argument, NULL, 'n' },
		{ "kv-heads", required_argument, NULL, 'k' },
		{ "hidden", required_argument, NULL, 'H' },
		{ "vocab", required_argument, NULL, 'v' },
		{ "context", required_argument, NULL, 'c' },
		{ "type", required_argument, NULL, 't' },
		{ "seed", required_argument, NULL, 's' },
		{ "vocab-file", required_argument, NULL, 'V' },
		{ "untied", no_argument, NULL, 'u' },
		{ "output", required_argument, NULL, 'o' },
		{ "help", no_argument, NULL, 'h' },
		{ 0 }
	};
	struct copro_synth_opts o;
	const char *path = NULL;
	int vocab_set = 0, c, ret = 0;
	char err[256], *end;

	copro_llm_synth_defaults(&o);
	optind = 1;
	while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			ret = parse_u32("--dim", optarg, 65536, &o.dim);
			break;
		case 'l':
			ret = parse_u32("--layers", optarg, 1024, &o.n_layers);
			break;
		case 'n':
			ret = parse_u32("--heads", optarg, 65536, &o.n_heads);
			break;
		case 'k':
			ret = parse_u32("--kv-heads", optarg, 65536, &o.n_kv_heads);
			break;
		case 'H':
			ret = parse_u32("--hidden", optarg, 262144, &o.hidden);
			break;
		case 'v':
			ret = parse_u32("--vocab", optarg, 1u << 20, &o.vocab);
			vocab_set = 1;
			break;
		case 'c':
			ret = parse_u32("--context", optarg, 1u << 24, &o.context);
			break;
		case 't':
			if (!strcasecmp(optarg, "F32"))
				o.type = COPRO_GGML_F32;
			else if (!strcasecmp(optarg, "F16"))
				o.type = COPRO_GGML_F16;
			else if (!strcasecmp(optarg, "Q8_0"))
				o.type = COPRO_GGML_Q8_0;
			else if (!strcasecmp(optarg, "Q4_0"))
				o.type = COPRO_GGML_Q4_0;
			else {
				fprintf(stderr, "copro-model: bad --type '%s' (F32, F16, Q8_0, Q4_0)\n",
					optarg);
				ret = -EINVAL;
			}
			break;
		case 's':
			errno = 0;
			o.seed = strtoull(optarg, &end, 10);
			if (errno || end == optarg || *end) {
				fprintf(stderr, "copro-model: bad seed '%s'\n", optarg);
				ret = -EINVAL;
			}
			break;
		case 'V':
			o.vocab_file = optarg;
			break;
		case 'u':
			o.untied = 1;
			break;
		case 'o':
			path = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return 2;
		}
		if (ret)
			return 2;
	}
	if (optind < argc) {
		fprintf(stderr, "copro-model: synth: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}
	if (!path) {
		fprintf(stderr, "copro-model: synth needs -o FILE\n");
		return 2;
	}
	if (o.vocab_file && !vocab_set)
		o.vocab = 0; /* the file's size */
	if (copro_llm_synth_check(&o, err, sizeof(err))) {
		fprintf(stderr, "copro-model: synth: %s\n", err);
		return 2;
	}
	ret = copro_llm_synth(&o, path, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "copro-model: synth: %s\n", err);
		return ret == -EINVAL ? 2 : 1;
	}
	printf("wrote %s: llama, dim %u, %u layers, %u heads (%u kv), hidden %u, %s, %s output\n",
	       path, o.dim, o.n_layers, o.n_heads, o.n_kv_heads, o.hidden,
	       copro_ggml_type_name(o.type), o.untied ? "untied" : "tied");
	return 0;
}

/* Tells a GGUF file from an ONNX one by its first four bytes. */
static int is_gguf(const char *path)
{
	char magic[4];
	FILE *f = fopen(path, "rb");
	int yes;

	if (!f)
		return 0; /* let the ONNX loader report the error */
	yes = fread(magic, 1, 4, f) == 4 && !memcmp(magic, "GGUF", 4);
	fclose(f);
	return yes;
}

/* ---- info ------------------------------------------------------------------ */

static void print_value(const struct copro_value *v)
{
	printf("  %-24s %-8s [", v->name, copro_k_dtype_name(v->t.dtype));
	for (int d = 0; d < v->t.rank; d++) {
		if (v->t.dims[d] < 0)
			printf("%s%s", d ? ", " : "", v->dim_names && v->dim_names[d] ?
			       v->dim_names[d] : "?");
		else
			printf("%s%lld", d ? ", " : "", (long long)v->t.dims[d]);
	}
	printf("]\n");
}

static int cmd_info(int argc, char **argv)
{
	struct copro_graph *g;
	char err[256];
	int64_t params = 0;
	int ret, unsupported = 0;

	if (argc != 2) {
		fprintf(stderr, "copro-model: usage: info FILE\n");
		return 2;
	}
	if (is_gguf(argv[1]))
		return cmd_info_gguf(argv[1]);
	ret = copro_graph_load(argv[1], &g, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "copro-model: %s: %s\n", argv[1], err);
		return 1;
	}
	printf("model %s: producer %s, ir_version %lld, opset %d\n", argv[1],
	       g->producer[0] ? g->producer : "?", (long long)g->ir_version, g->opset);
	printf("inputs:\n");
	for (int i = 0; i < g->n_inputs; i++)
		print_value(&g->values[g->inputs[i]]);
	printf("outputs:\n");
	for (int i = 0; i < g->n_outputs; i++)
		print_value(&g->values[g->outputs[i]]);
	for (int i = 0; i < g->n_values; i++)
		if (g->values[i].is_const)
			params += copro_kt_numel(&g->values[i].t);
	printf("parameters: %lld\n", (long long)params);
	printf("operators:\n");
	for (int i = 0; i < g->n_nodes; i++) {
		const char *op = g->nodes[i].op_type;
		int seen = 0, count = 0;

		for (int j = 0; j < i; j++)
			seen |= !strcmp(g->nodes[j].op_type, op);
		if (seen)
			continue;
		for (int j = i; j < g->n_nodes; j++)
			count += !strcmp(g->nodes[j].op_type, op);
		if (g->nodes[i].domain[0] || !copro_op_find(op, g->nodes[i].opset)) {
			printf("  %-24s %4d  UNSUPPORTED (opset %d%s%s)\n", op, count,
			       g->nodes[i].opset, g->nodes[i].domain[0] ? ", domain " : "",
			       g->nodes[i].domain);
			unsupported++;
		} else {
			printf("  %-24s %4d\n", op, count);
		}
	}
	printf("%s\n", unsupported ? "some operators are not supported: this model cannot be served"
				   : "every operator is supported");
	copro_graph_free(g);
	return unsupported ? 3 : 0;
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "-h") || !strcmp(argv[1], "--help")) {
		usage(argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	if (!strcmp(argv[1], "-V") || !strcmp(argv[1], "--version")) {
		printf("copro-model %s\n", COPRO_VERSION);
		return 0;
	}
	if (!strcmp(argv[1], "mlp"))
		return cmd_mlp(argc - 1, argv + 1);
	if (!strcmp(argv[1], "info"))
		return cmd_info(argc - 1, argv + 1);
	if (!strcmp(argv[1], "synth"))
		return cmd_synth(argc - 1, argv + 1);
	fprintf(stderr, "copro-model: unknown command '%s' (try --help)\n", argv[1]);
	return 2;
}
