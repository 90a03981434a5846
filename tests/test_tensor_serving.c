// SPDX-License-Identifier: MIT
/*
 * test_tensor_serving.c - ONNX tensor models served by a real coprod to
 * real client processes: signature, results equal to the same plan run
 * in-process, batching across clients, bad shapes, overload, deadlines,
 * non-finite outputs, a client killed with queued work, a model that does
 * not load, a request with an index out of range batched with good ones.
 */
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"

#include "copro.h"
#include "onnx.pb-c.h"
#include "onnx/graph.h"
#include "onnx/plan.h"

#define IN	32
#define SEC	1000000000LL

static char bindir[256], dir[64], sock[128], model[128], embed[128];
static pid_t daemon_pid;

/* aligned_alloc wants a size that is a multiple of the alignment. */
static void *alloc64(size_t n)
{
	return aligned_alloc(64, (n + 63) & ~(size_t)63);
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

#define sh test_sh

/* Starts coprod on the config file conf; returns its pid, or -1 with its status in *st. */
static pid_t start_daemon(const char *conf, int *st)
{
	char log[160];

	snprintf(log, sizeof(log), "%s/coprod.log", dir);
	return test_daemon_start(sock, conf, log, st);
}

/*
 * The embedding model: y = Gather(emb, id), id (N) int64 categories, emb
 * (EMB_V, EMB_D) with emb[v][c] = v + c / 8 (exact in f32), y (N, EMB_D).
 * Written with the ONNX schema's own structs; returns 0 or -1.
 */
#define EMB_V	10
#define EMB_D	4

static float emb_value(int64_t v, int c)
{
	return (float)v + (float)c / 8.0f;
}

static int write_embed_model(const char *path)
{
	static float w[EMB_V * EMB_D];
	Onnx__ModelProto m = ONNX__MODEL_PROTO__INIT;
	Onnx__GraphProto g = ONNX__GRAPH_PROTO__INIT;
	Onnx__OperatorSetIdProto os = ONNX__OPERATOR_SET_ID_PROTO__INIT, *osp = &os;
	Onnx__NodeProto node = ONNX__NODE_PROTO__INIT, *nodep = &node;
	Onnx__TensorProto init = ONNX__TENSOR_PROTO__INIT, *initp = &init;
	Onnx__ValueInfoProto vi[2], *inp = &vi[0], *outp = &vi[1];
	Onnx__TypeProto type[2];
	Onnx__TypeProto__Tensor tt[2];
	Onnx__TensorShapeProto shape[2];
	Onnx__TensorShapeProto__Dimension dim[2][2], *dimp[2][2];
	char *node_in[2] = { "emb", "id" }, *node_out[1] = { "y" };
	int64_t init_dims[2] = { EMB_V, EMB_D };
	static const int32_t elem[2] = { COPRO_K_I64, COPRO_K_F32 };
	static const int ranks[2] = { 1, 2 };
	static char *names[2] = { "id", "y" };
	uint8_t *buf;
	size_t len;
	FILE *f;
	int ok;

	for (int v = 0; v < EMB_V; v++)
		for (int c = 0; c < EMB_D; c++)
			w[v * EMB_D + c] = emb_value(v, c);
	for (int i = 0; i < 2; i++) {
		vi[i] = (Onnx__ValueInfoProto)ONNX__VALUE_INFO_PROTO__INIT;
		type[i] = (Onnx__TypeProto)ONNX__TYPE_PROTO__INIT;
		tt[i] = (Onnx__TypeProto__Tensor)ONNX__TYPE_PROTO__TENSOR__INIT;
		shape[i] = (Onnx__TensorShapeProto)ONNX__TENSOR_SHAPE_PROTO__INIT;
		vi[i].name = names[i];
		vi[i].type = &type[i];
		type[i].value_case = ONNX__TYPE_PROTO__VALUE_TENSOR_TYPE;
		type[i].tensor_type = &tt[i];
		tt[i].has_elem_type = 1;
		tt[i].elem_type = elem[i];
		tt[i].shape = &shape[i];
		shape[i].n_dim = (size_t)ranks[i];
		shape[i].dim = dimp[i];
		for (int k = 0; k < ranks[i]; k++) {
			dim[i][k] = (Onnx__TensorShapeProto__Dimension)
				ONNX__TENSOR_SHAPE_PROTO__DIMENSION__INIT;
			if (k == 0) {
				dim[i][k].value_case =
					ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_PARAM;
				dim[i][k].dim_param = "N";
			} else {
				dim[i][k].value_case =
					ONNX__TENSOR_SHAPE_PROTO__DIMENSION__VALUE_DIM_VALUE;
				dim[i][k].dim_value = EMB_D;
			}
			dimp[i][k] = &dim[i][k];
		}
	}
	init.name = "emb";
	init.has_data_type = 1;
	init.data_type = COPRO_K_F32;
	init.n_dims = 2;
	init.dims = init_dims;
	init.has_raw_data = 1;
	init.raw_data.len = sizeof(w);
	init.raw_data.data = (uint8_t *)w;
	node.op_type = "Gather";
	node.name = "lookup";
	node.n_input = 2;
	node.input = node_in;
	node.n_output = 1;
	node.output = node_out;
	g.name = "embed";
	g.n_node = 1;
	g.node = &nodep;
	g.n_initializer = 1;
	g.initializer = &initp;
	g.n_input = 1;
	g.input = &inp;
	g.n_output = 1;
	g.output = &outp;
	os.domain = "";
	os.has_version = 1;
	os.version = 13;
	m.has_ir_version = 1;
	m.ir_version = 8;
	m.producer_name = "test_tensor_serving";
	m.n_opset_import = 1;
	m.opset_import = &osp;
	m.graph = &g;
	len = onnx__model_proto__get_packed_size(&m);
	buf = malloc(len);
	if (!buf)
		return -1;
	onnx__model_proto__pack(&m, buf);
	f = fopen(path, "wb");
	ok = f && fwrite(buf, 1, len, f) == len;
	if (f)
		ok = fclose(f) == 0 && ok;
	free(buf);
	return ok ? 0 : -1;
}

static int setup(void **state)
{
	const char *d = getenv("COPRO_COPROD");
	char conf[160];
	FILE *f;
	char *slash;
	int st;

	snprintf(bindir, sizeof(bindir), "%s", d ? d : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	strcpy(dir, "/tmp/copro-ts.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/coprod.sock", dir);
	snprintf(model, sizeof(model), "%s/fraud.onnx", dir);
	if (sh("%s/copro-model mlp --in %d --hidden 64,64 --out 1 --seed 3 -o %s >/dev/null",
	       bindir, IN, model))
		return -1;
	snprintf(embed, sizeof(embed), "%s/embed.onnx", dir);
	if (write_embed_model(embed))
		return -1;
	snprintf(conf, sizeof(conf), "%s/coprod.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[server]\nidle = sleep\n\n"
		   "[model.fraud]\npath = %s\nmax_batch = 64\n\n"
		   "[model.fraud_delay]\npath = %s\nmax_batch = 64\nmax_delay_us = 2000\n\n"
		   "[model.fraud_small]\npath = %s\nmax_batch = 4\nmax_delay_us = 200000\n"
		   "queue_depth = 4\n\n"
		   "[model.fraud_strict]\npath = %s\nreject_nonfinite = 1\n\n"
		   "[model.fraud_cached]\npath = %s\ncache_mib = 1\n\n"
		   "[model.embed]\npath = %s\nmax_batch = 16\nmax_delay_us = 5000\n",
		model, model, model, model, model, embed);
	fclose(f);
	daemon_pid = start_daemon(conf, &st);
	return daemon_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	return test_daemon_stop(daemon_pid, dir);
}

/* A client with one request's tensors for `rows` rows of `name`. */
struct cl {
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in, out;
};

static void cl_open(struct cl *k, const char *name, uint64_t rows, uint32_t idle)
{
	struct copro_opts o = { .idle = idle };
	uint64_t di[2] = { rows, IN }, dout[2] = { rows, 1 };

	assert_int_equal(copro_connect(sock, &o, &k->c), 0);
	assert_int_equal(copro_lookup(k->c, name, &k->mi), 0);
	assert_int_equal(copro_tensor_alloc(k->c, COPRO_DT_F32, 2, di, &k->in), 0);
	assert_int_equal(copro_tensor_alloc(k->c, COPRO_DT_F32, 2, dout, &k->out), 0);
}

static struct copro_request cl_req(struct cl *k, uint64_t user_data)
{
	static const struct copro_tensor *ins[1], *outs[1];
	struct copro_request r = { .model = k->mi.handle, .n_in = 1, .n_out = 1,
				   .user_data = user_data };

	ins[0] = &k->in;
	outs[0] = &k->out;
	r.in = ins;
	r.out = outs;
	return r;
}

static void fill(float *x, uint64_t rows, uint32_t seed)
{
	for (uint64_t i = 0; i < rows * IN; i++)
		x[i] = (float)((int)((i * 2654435761u + seed * 40503u) % 2001) - 1000) / 500.0f;
}

/* The same model planned in-process for `rows` rows. */
static void expected(const float *x, uint64_t rows, float *y)
{
	struct copro_graph *g;
	struct copro_plan *p;
	struct copro_kt in = { .dtype = COPRO_K_F32, .rank = 2, .dims = { (int64_t)rows, IN } };
	struct copro_kt out = { 0 };
	char err[256];
	float *xa = alloc64(rows * IN * sizeof(float));
	float *ya = alloc64(rows * sizeof(float));

	assert_int_equal(copro_graph_load(model, &g, err, sizeof(err)), 0);
	assert_int_equal(copro_plan_build(g, &in, &p, err, sizeof(err)), 0);
	memcpy(xa, x, rows * IN * sizeof(float));
	in.data = xa;
	out.data = ya;
	assert_int_equal(copro_plan_run(p, &in, &out), 0);
	memcpy(y, ya, rows * sizeof(float));
	copro_plan_free(p);
	copro_graph_free(g);
	free(xa);
	free(ya);
}

static void should_publish_the_model_signature(void **state)
{
	struct cl k;

	cl_open(&k, "fraud", 1, COPRO_IDLE_BLOCK);
	assert_int_equal(k.mi.n_in, 1);
	assert_int_equal(k.mi.n_out, 1);
	assert_int_equal(k.mi.in[0].dtype, COPRO_DT_F32);
	assert_int_equal(k.mi.in[0].rank, 2);
	assert_int_equal(k.mi.in[0].dims[0], -1);
	assert_int_equal(k.mi.in[0].dims[1], IN);
	assert_string_equal(k.mi.in[0].name, "x");
	assert_int_equal(k.mi.out[0].dims[0], -1);
	assert_int_equal(k.mi.out[0].dims[1], 1);
	copro_close(k.c);
}

static void should_equal_the_in_process_plan_for_any_rows(void **state)
{
	static const uint64_t rows_list[] = { 1, 5, 64 };

	for (unsigned int t = 0; t < 3; t++) {
		uint64_t rows = rows_list[t];
		float *y = malloc(rows * sizeof(float));
		struct cl k;
		struct copro_request r;

		cl_open(&k, "fraud", rows, COPRO_IDLE_BLOCK);
		fill(k.in.data, rows, (uint32_t)t);
		r = cl_req(&k, 7);
		assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
		expected(k.in.data, rows, y);
		/* The same plan code on the same bytes: the same bits. */
		assert_memory_equal(k.out.data, y, rows * sizeof(float));
		free(y);
		copro_close(k.c);
	}
}

/* Child: `count` requests at depth 8, each checked; exits 0 when all match. */
static void client_process(const char *name, int count, uint32_t seed)
{
	enum { DEPTH = 8 };
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in[DEPTH], out[DEPTH];
	const struct copro_tensor *ins[DEPTH][1], *outs[DEPTH][1];
	float ref[DEPTH];
	uint64_t di[2] = { 1, IN }, dout[2] = { 1, 1 };
	int sent = 0, got = 0;

	alarm(30);
	if (copro_connect(sock, &o, &c) || copro_lookup(c, name, &mi))
		_exit(2);
	for (int i = 0; i < DEPTH; i++) {
		if (copro_tensor_alloc(c, COPRO_DT_F32, 2, di, &in[i]) ||
		    copro_tensor_alloc(c, COPRO_DT_F32, 2, dout, &out[i]))
			_exit(3);
		fill(in[i].data, 1, seed + (uint32_t)i);
		expected(in[i].data, 1, &ref[i]);
		ins[i][0] = &in[i];
		outs[i][0] = &out[i];
	}
	while (got < count) {
		while (sent < count && sent - got < DEPTH) {
			int slot = sent % DEPTH;
			struct copro_request r = { .model = mi.handle, .n_in = 1, .n_out = 1,
						   .in = ins[slot], .out = outs[slot],
						   .user_data = (uint64_t)slot };

			if (copro_submit(c, &r, 1) != 1)
				_exit(4);
			sent++;
		}
		struct copro_cqe cqe;

		if (copro_wait(c, &cqe, 1, 5 * SEC) != 1 || cqe.res != 0)
			_exit(5);
		/*
		 * In a batch of several rows the GEMM runs as sgemm, alone as
		 * sgemv: the sums are ordered differently, so allow rounding.
		 */
		{
			float y = *(float *)out[cqe.user_data].data, e = ref[cqe.user_data];

			if (!(fabsf(y - e) <= 1e-6f + 1e-5f * fabsf(e)))
				_exit(6);
		}
		got++;
	}
	copro_close(c);
	_exit(0);
}

/* Reads "rows=R" and "batches=B" of a model from the status text. */
static void batch_stats(const char *name, uint64_t *batches, uint64_t *rows)
{
	struct copro_client *c;
	char buf[8192], key[96], *line;

	assert_int_equal(copro_connect(sock, NULL, &c), 0);
	assert_true(copro_status(c, buf, sizeof(buf)) > 0);
	copro_close(c);
	snprintf(key, sizeof(key), "model name=%s ", name);
	line = strstr(buf, key);
	assert_non_null(line);
	assert_non_null(strstr(line, "batches="));
	*batches = strtoull(strstr(line, "batches=") + 8, NULL, 10);
	*rows = strtoull(strstr(line, " rows=") + 6, NULL, 10);
}

static void should_batch_the_requests_of_several_client_processes(void **state)
{
	enum { K = 4, COUNT = 300 };
	uint64_t b0, r0, b1, r1;
	pid_t kids[K];

	batch_stats("fraud_delay", &b0, &r0);
	for (int i = 0; i < K; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			client_process("fraud_delay", COUNT, 100u * (uint32_t)i);
	}
	for (int i = 0; i < K; i++) {
		int st;

		waitpid(kids[i], &st, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	batch_stats("fraud_delay", &b1, &r1);
	assert_int_equal(r1 - r0, K * COUNT);
	/* 32 requests in flight and a 2 ms window: batches hold many rows. */
	print_message("fraud_delay: %llu rows in %llu batches\n",
		      (unsigned long long)(r1 - r0), (unsigned long long)(b1 - b0));
	assert_true((r1 - r0) >= 4 * (b1 - b0));
}

static void should_serve_many_processes_without_delay_too(void **state)
{
	enum { K = 3, COUNT = 500 };
	pid_t kids[K];

	for (int i = 0; i < K; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			client_process("fraud", COUNT, 7u * (uint32_t)i);
	}
	for (int i = 0; i < K; i++) {
		int st;

		waitpid(kids[i], &st, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
}

static void should_refuse_shapes_and_dtypes_the_model_does_not_take(void **state)
{
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in, out;
	const struct copro_tensor *ins[1] = { &in }, *outs[1] = { &out };
	static const struct {
		uint32_t dt;
		uint64_t in_rows, in_cols, out_rows, out_cols;
	} bad[] = {
		{ COPRO_DT_F32, 1, IN + 1, 1, 1 },	/* wrong feature count */
		{ COPRO_DT_I32, 1, IN, 1, 1 },		/* wrong dtype */
		{ COPRO_DT_F32, 65, IN, 65, 1 },	/* more rows than max_batch */
		{ COPRO_DT_F32, 0, IN, 0, 1 },		/* no rows */
		{ COPRO_DT_F32, 2, IN, 3, 1 },		/* output rows differ */
		{ COPRO_DT_F32, 1, IN, 1, 2 },		/* wrong output width */
	};

	assert_int_equal(copro_connect(sock, &o, &c), 0);
	assert_int_equal(copro_lookup(c, "fraud", &mi), 0);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		uint64_t di[2] = { bad[i].in_rows, bad[i].in_cols };
		uint64_t dout[2] = { bad[i].out_rows, bad[i].out_cols };
		struct copro_request r = { .model = mi.handle, .n_in = 1, .n_out = 1,
					   .in = ins, .out = outs, .user_data = i };

		assert_int_equal(copro_tensor_alloc(c, bad[i].dt, 2, di, &in), 0);
		assert_int_equal(copro_tensor_alloc(c, COPRO_DT_F32, 2, dout, &out), 0);
		assert_int_equal(copro_run(c, &r, 5 * SEC), COPRO_E_SIGNATURE);
		copro_tensor_free(c, &in);
		copro_tensor_free(c, &out);
	}
	copro_close(c);
}

static void should_refuse_at_once_when_the_queue_is_full(void **state)
{
	struct cl k;
	struct copro_request r[12];
	struct copro_cqe cqe;
	int overload = 0, ok = 0;
	uint64_t t0 = now_ns();

	/* fraud_small: 4 queued at most, batches of 4 rows, waits 200 ms for rows. */
	cl_open(&k, "fraud_small", 1, COPRO_IDLE_BLOCK);
	fill(k.in.data, 1, 1);
	for (int i = 0; i < 12; i++)
		r[i] = cl_req(&k, (uint64_t)i);
	assert_int_equal(copro_submit(k.c, r, 12), 12);
	for (int i = 0; i < 12; i++) {
		assert_int_equal(copro_wait(k.c, &cqe, 1, 5 * SEC), 1);
		if (cqe.res == COPRO_E_OVERLOAD)
			overload++;
		else if (cqe.res == 0)
			ok++;
		/* The refusals come first, long before any batch ran. */
		if (i == 0)
			assert_true(now_ns() - t0 < 100000000ULL);
	}
	assert_true(overload >= 8 - 4);
	assert_int_equal(ok + overload, 12);
	copro_close(k.c);
}

static void should_refuse_a_request_whose_deadline_passes_in_the_queue(void **state)
{
	struct cl k;
	struct copro_request r;

	cl_open(&k, "fraud_small", 1, COPRO_IDLE_BLOCK);
	fill(k.in.data, 1, 2);
	r = cl_req(&k, 1);
	r.deadline_ns = now_ns() + 5000000ULL;	/* 5 ms, the batch waits 200 ms */
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), COPRO_E_DEADLINE);
	r.deadline_ns = now_ns() - 1;
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), COPRO_E_DEADLINE);
	copro_close(k.c);
}

static void should_cancel_a_queued_request(void **state)
{
	struct cl k;
	struct copro_request r;
	struct copro_cqe cqe[2];
	uint64_t t0;
	int got = 0, notif = 0, cancelled = 0;

	/* fraud_small waits 200 ms for rows: the request sits in the queue. */
	cl_open(&k, "fraud_small", 1, COPRO_IDLE_BLOCK);
	fill(k.in.data, 1, 4);
	r = cl_req(&k, 99);
	t0 = now_ns();
	assert_int_equal(copro_submit(k.c, &r, 1), 1);
	usleep(20000);
	assert_int_equal(copro_cancel(k.c, 99), 0);
	while (got < 2) {
		int n = copro_wait(k.c, cqe + got, 2 - got, 5 * SEC);

		assert_true(n > 0);
		got += n;
	}
	for (int i = 0; i < 2; i++) {
		assert_int_equal(cqe[i].user_data, 99);
		if (cqe[i].flags & COPRO_CQE_F_NOTIF) {
			assert_int_equal(cqe[i].res, 0);
			notif++;
		} else {
			assert_int_equal(cqe[i].res, COPRO_E_CANCELLED);
			cancelled++;
		}
	}
	assert_int_equal(notif, 1);
	assert_int_equal(cancelled, 1);
	/* Handed back at once, not when the 200 ms batch window closed. */
	assert_true(now_ns() - t0 < 150000000ULL);
	/* Nothing left to cancel now. */
	assert_int_equal(copro_cancel(k.c, 99), 0);
	assert_int_equal(copro_wait(k.c, cqe, 1, 5 * SEC), 1);
	assert_true(cqe[0].flags & COPRO_CQE_F_NOTIF);
	assert_int_equal(cqe[0].res, -ENOENT);
	copro_close(k.c);
}

/* Reads "KEY=N" of a model's status line. */
static uint64_t model_stat(const char *name, const char *key)
{
	struct copro_client *c;
	char buf[8192], k[96], *line, *v;

	assert_int_equal(copro_connect(sock, NULL, &c), 0);
	assert_true(copro_status(c, buf, sizeof(buf)) > 0);
	copro_close(c);
	snprintf(k, sizeof(k), "model name=%s ", name);
	line = strstr(buf, k);
	assert_non_null(line);
	*strchrnul(line, '\n') = '\0';
	snprintf(k, sizeof(k), " %s=", key);
	v = strstr(line, k);
	assert_non_null(v);
	return strtoull(v + strlen(k), NULL, 10);
}

static void should_answer_repeated_inputs_from_the_cache(void **state)
{
	struct cl k;
	struct copro_request r;
	float first[3], again[3];
	uint64_t hits0 = model_stat("fraud_cached", "cache_hits");
	uint64_t rows0 = model_stat("fraud_cached", "rows");

	cl_open(&k, "fraud_cached", 3, COPRO_IDLE_BLOCK);
	fill(k.in.data, 3, 11);
	r = cl_req(&k, 1);
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	memcpy(first, k.out.data, sizeof(first));
	memset(k.out.data, 0, sizeof(first));
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	memcpy(again, k.out.data, sizeof(again));
	/* A hit returns the very same bytes and does not run the model. */
	assert_memory_equal(first, again, sizeof(first));
	assert_int_equal(model_stat("fraud_cached", "cache_hits"), hits0 + 1);
	assert_int_equal(model_stat("fraud_cached", "rows"), rows0 + 3);
	/* One changed byte is another key. */
	((float *)k.in.data)[5] += 1.0f;
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	assert_int_equal(model_stat("fraud_cached", "cache_hits"), hits0 + 1);
	assert_int_equal(model_stat("fraud_cached", "rows"), rows0 + 6);
	copro_close(k.c);
}

static void should_keep_the_cache_within_its_bytes(void **state)
{
	struct cl k;
	struct copro_request r;

	cl_open(&k, "fraud_cached", 1, COPRO_IDLE_SPIN);
	r = cl_req(&k, 1);
	/* ~230 bytes an entry: 8000 distinct rows overflow 1 MiB. */
	fill(k.in.data, 1, 5);
	for (uint32_t i = 0; i < 8000; i++) {
		((float *)k.in.data)[0] = (float)i;	/* distinct inputs */
		assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	}
	assert_true(model_stat("fraud_cached", "cache_evictions") > 0);
	assert_true(model_stat("fraud_cached", "cache_bytes") <= 1ULL << 20);
	copro_close(k.c);
}

static void should_pass_nan_through_unless_the_model_rejects_it(void **state)
{
	struct cl k, s;
	struct copro_request r;

	cl_open(&k, "fraud", 1, COPRO_IDLE_BLOCK);
	fill(k.in.data, 1, 3);
	((float *)k.in.data)[0] = NAN;
	r = cl_req(&k, 1);
	assert_int_equal(copro_run(k.c, &r, 5 * SEC), 0);
	assert_true(isnan(((float *)k.out.data)[0]));
	copro_close(k.c);

	cl_open(&s, "fraud_strict", 1, COPRO_IDLE_BLOCK);
	fill(s.in.data, 1, 3);
	((float *)s.in.data)[0] = NAN;
	r = cl_req(&s, 1);
	assert_int_equal(copro_run(s.c, &r, 5 * SEC), -EDOM);
	((float *)s.in.data)[0] = 0.5f;
	assert_int_equal(copro_run(s.c, &r, 5 * SEC), 0);
	copro_close(s.c);
}

/*
 * Child: `count` embedding lookups of `rows` rows at depth 4; when bad_every
 * is set, every bad_every-th request carries category EMB_V (one past the
 * table) in its middle row and must fail with -ERANGE, every other one
 * must come back exactly. Exits 0 when all did.
 */
static void embed_client(int count, uint64_t rows, int bad_every, uint32_t seed)
{
	enum { DEPTH = 4 };
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in[DEPTH], out[DEPTH];
	const struct copro_tensor *ins[DEPTH][1], *outs[DEPTH][1];
	uint64_t di[1] = { rows }, dout[2] = { rows, EMB_D };
	int sent = 0, got = 0, bad[DEPTH];

	alarm(30);
	if (copro_connect(sock, &o, &c) || copro_lookup(c, "embed", &mi))
		_exit(2);
	for (int i = 0; i < DEPTH; i++) {
		if (copro_tensor_alloc(c, COPRO_DT_I64, 1, di, &in[i]) ||
		    copro_tensor_alloc(c, COPRO_DT_F32, 2, dout, &out[i]))
			_exit(3);
		ins[i][0] = &in[i];
		outs[i][0] = &out[i];
	}
	while (got < count) {
		while (sent < count && sent - got < DEPTH) {
			int slot = sent % DEPTH;
			int64_t *id = in[slot].data;
			struct copro_request r = { .model = mi.handle, .n_in = 1, .n_out = 1,
						   .in = ins[slot], .out = outs[slot],
						   .user_data = (uint64_t)slot };

			for (uint64_t k = 0; k < rows; k++)	/* negative ones count from the end */
				id[k] = (int64_t)((seed + (uint32_t)sent * 7u + (uint32_t)k) %
						  (2 * EMB_V)) - EMB_V;
			bad[slot] = bad_every && sent % bad_every == 0;
			if (bad[slot])
				id[rows / 2] = EMB_V;
			memset(out[slot].data, 0xff, rows * EMB_D * sizeof(float));
			if (copro_submit(c, &r, 1) != 1)
				_exit(4);
			sent++;
		}
		struct copro_cqe cqe;
		int slot;

		if (copro_wait(c, &cqe, 1, 5 * SEC) != 1)
			_exit(5);
		slot = (int)cqe.user_data;
		if (bad[slot]) {
			if (cqe.res != -ERANGE)
				_exit(6);
		} else {
			const int64_t *id = in[slot].data;
			const float *y = out[slot].data;

			if (cqe.res != 0)
				_exit(7);
			for (uint64_t k = 0; k < rows; k++) {
				int64_t v = id[k] < 0 ? id[k] + EMB_V : id[k];

				for (int j = 0; j < EMB_D; j++)
					if (y[k * EMB_D + j] != emb_value(v, j))
						_exit(8);
			}
		}
		got++;
	}
	copro_close(c);
	_exit(0);
}

static void should_fail_only_the_request_with_an_index_out_of_range(void **state)
{
	enum { K = 4, COUNT = 60 };
	uint64_t b0, r0, b1, r1;
	pid_t kids[K];

	batch_stats("embed", &b0, &r0);
	/* One client sends a bad category in every third request; the rest are good. */
	for (int i = 0; i < K; i++) {
		kids[i] = fork();
		if (kids[i] == 0)
			embed_client(COUNT, 1 + (uint64_t)i, i == 0 ? 3 : 0, 11u * (uint32_t)i);
	}
	for (int i = 0; i < K; i++) {
		int st;

		waitpid(kids[i], &st, 0);
		assert_true(WIFEXITED(st));
		assert_int_equal(WEXITSTATUS(st), 0);
	}
	batch_stats("embed", &b1, &r1);
	print_message("embed: %llu rows in %llu batches\n", (unsigned long long)(r1 - r0),
		      (unsigned long long)(b1 - b0));
	/* 16 requests in flight and a 5 ms window: the bad ones shared batches. */
	assert_true((r1 - r0) >= 2 * (b1 - b0));
}

/*
 * The same in one client, deterministically: three requests published with
 * one store land in one batch; the middle one's category is out of range.
 */
static void should_answer_the_good_requests_of_a_batch_with_a_bad_one(void **state)
{
	struct copro_opts o = { .idle = COPRO_IDLE_BLOCK };
	struct copro_client *c;
	struct copro_model_info mi;
	struct copro_tensor in[3], out[3];
	const struct copro_tensor *ins[3][1], *outs[3][1];
	struct copro_request r[3];
	static const int64_t ids[3][2] = { { 1, -1 }, { 2, -11 }, { 0, 9 } };
	uint64_t di[1] = { 2 }, dout[2] = { 2, EMB_D };
	int seen = 0;

	assert_int_equal(copro_connect(sock, &o, &c), 0);
	assert_int_equal(copro_lookup(c, "embed", &mi), 0);
	for (int i = 0; i < 3; i++) {
		assert_int_equal(copro_tensor_alloc(c, COPRO_DT_I64, 1, di, &in[i]), 0);
		assert_int_equal(copro_tensor_alloc(c, COPRO_DT_F32, 2, dout, &out[i]), 0);
		memcpy(in[i].data, ids[i], sizeof(ids[i]));
		memset(out[i].data, 0xff, 2 * EMB_D * sizeof(float));
		ins[i][0] = &in[i];
		outs[i][0] = &out[i];
		r[i] = (struct copro_request){ .model = mi.handle, .n_in = 1, .n_out = 1,
					       .in = ins[i], .out = outs[i],
					       .user_data = (uint64_t)i };
	}
	assert_int_equal(copro_submit(c, r, 3), 3);
	for (int n = 0; n < 3; n++) {
		struct copro_cqe cqe;
		int i;

		assert_int_equal(copro_wait(c, &cqe, 1, 5 * SEC), 1);
		i = (int)cqe.user_data;
		seen |= 1 << i;
		if (i == 1) {
			assert_int_equal(cqe.res, -ERANGE);
			continue;
		}
		assert_int_equal(cqe.res, 0);
		for (int k = 0; k < 2; k++) {
			int64_t v = ids[i][k] < 0 ? ids[i][k] + EMB_V : ids[i][k];

			for (int j = 0; j < EMB_D; j++)
				assert_true(((float *)out[i].data)[k * EMB_D + j] ==
					    emb_value(v, j));
		}
	}
	assert_int_equal(seen, 7);
	copro_close(c);
}

static void should_survive_a_client_killed_with_queued_work(void **state)
{
	for (int round = 0; round < 20; round++) {
		pid_t kid = fork();

		if (kid == 0) {
			struct cl k;
			struct copro_request r[4];

			alarm(10);
			cl_open(&k, "fraud_small", 1, COPRO_IDLE_BLOCK);
			for (int i = 0; i < 4; i++)
				r[i] = cl_req(&k, (uint64_t)i);
			copro_submit(k.c, r, 4);
			raise(SIGKILL);
		}
		waitpid(kid, NULL, 0);
	}
	/* The queued work finishes into arenas that outlived their clients; others go on. */
	should_equal_the_in_process_plan_for_any_rows(state);
}

static void should_exit_with_a_reason_when_a_model_does_not_load(void **state)
{
	char conf[160], log[160], buf[4096] = "";
	FILE *f;
	int st = 0, n;
	pid_t pid;

	snprintf(conf, sizeof(conf), "%s/bad.conf", dir);
	f = fopen(conf, "w");
	assert_non_null(f);
	fprintf(f, "[model.broken]\npath = %s\n", conf);	/* not an ONNX file */
	fclose(f);
	{
		char saved[128];

		strcpy(saved, sock);
		snprintf(sock, sizeof(sock), "%s/bad.sock", dir);
		pid = start_daemon(conf, &st);
		strcpy(sock, saved);
	}
	assert_int_equal(pid, -1);
	assert_true(WIFEXITED(st));
	assert_int_equal(WEXITSTATUS(st), 1);
	snprintf(log, sizeof(log), "%s/coprod.log", dir);
	f = fopen(log, "r");
	assert_non_null(f);
	n = (int)fread(buf, 1, sizeof(buf) - 1, f);
	fclose(f);
	buf[n > 0 ? n : 0] = '\0';
	assert_non_null(strstr(buf, "model broken"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_publish_the_model_signature),
		cmocka_unit_test(should_equal_the_in_process_plan_for_any_rows),
		cmocka_unit_test(should_batch_the_requests_of_several_client_processes),
		cmocka_unit_test(should_serve_many_processes_without_delay_too),
		cmocka_unit_test(should_refuse_shapes_and_dtypes_the_model_does_not_take),
		cmocka_unit_test(should_refuse_at_once_when_the_queue_is_full),
		cmocka_unit_test(should_refuse_a_request_whose_deadline_passes_in_the_queue),
		cmocka_unit_test(should_cancel_a_queued_request),
		cmocka_unit_test(should_answer_repeated_inputs_from_the_cache),
		cmocka_unit_test(should_keep_the_cache_within_its_bytes),
		cmocka_unit_test(should_pass_nan_through_unless_the_model_rejects_it),
		cmocka_unit_test(should_fail_only_the_request_with_an_index_out_of_range),
		cmocka_unit_test(should_answer_the_good_requests_of_a_batch_with_a_bad_one),
		cmocka_unit_test(should_survive_a_client_killed_with_queued_work),
		cmocka_unit_test(should_exit_with_a_reason_when_a_model_does_not_load),
	};

	return cmocka_run_group_tests_name("tensor models through coprod", tests, setup, teardown);
}
