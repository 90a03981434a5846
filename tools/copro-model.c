// SPDX-License-Identifier: MIT
/*
 * copro-model - inspect ONNX models and write small ones.
 *
 *   copro-model info FILE
 *   copro-model mlp --in N --hidden A,B,... --out M [--seed S] [--act relu|tanh]
 *                   [--final sigmoid|softmax|none] -o FILE
 *
 * `mlp` writes the kind of model a fraud team exports from PyTorch: Gemm
 * layers (weights stored [out, in] with transB = 1, as torch.onnx.export
 * writes nn.Linear) with an activation between them, a symbolic batch
 * dimension "N", and seeded weights, so the project has its demo and test
 * models without any download.
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

#define COPRO_VERSION	"0.1.0"
#define MAX_LAYERS	32

static void usage(FILE *f)
{
	fprintf(f,
		"usage: copro-model info FILE\n"
		"       copro-model mlp --in N --hidden A,B,... --out M -o FILE\n"
		"                       [--seed S] [--act relu|tanh] [--final sigmoid|softmax|none]\n"
		"\n"
		"Inspect an ONNX model, or write a seeded multi-layer perceptron.\n"
		"\n"
		"  info FILE        inputs, outputs, operators, parameters, unsupported ops\n"
		"  mlp              Gemm layers with an activation between them and a\n"
		"                   symbolic batch dimension N (defaults: --seed 1,\n"
		"                   --act relu, --final sigmoid)\n"
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
	fprintf(stderr, "copro-model: unknown command '%s' (try --help)\n", argv[1]);
	return 2;
}
