// SPDX-License-Identifier: MIT
/*
 * test_infer.c - copro-infer against a real coprod serving a softmax MLP
 * written by copro-model: the same rows give the same numbers as values,
 * CSV and raw file, --output writes raw bytes, bad usage exits 2 with a
 * reason, daemon refusals exit 1.
 */
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
#include <unistd.h>

#include <cmocka.h>

#include "daemon.h"

#define IN	4
#define OUT	2
#define ROWS	5
#define MAX_BATCH 8

static char bindir[256], dir[64], sock[128], model[128];
static pid_t daemon_pid;
static float x[ROWS * IN];	/* (ROWS, IN): the rows every form sends */

/* Runs a shell command, output and errors into out; returns its exit status. */
static int run(char *out, size_t len, const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	size_t n = 0;
	FILE *p;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	strncat(cmd, " 2>&1", sizeof(cmd) - strlen(cmd) - 1);
	p = popen(cmd, "r");
	if (!p)
		return -1;
	if (out && len) {
		n = fread(out, 1, len - 1, p);
		out[n] = '\0';
	} else {
		char sink[4096];

		while (fread(sink, 1, sizeof(sink), p) > 0)
			;
	}
	st = pclose(p);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* Starts coprod on the config file conf; returns its pid or -1. */
static pid_t start_daemon(const char *conf)
{
	char log[160];
	int st;

	snprintf(log, sizeof(log), "%s/coprod.log", dir);
	return test_daemon_start(sock, conf, log, &st);
}

static int setup(void **state)
{
	const char *d = getenv("COPRO_COPROD");
	char conf[160], *slash;
	FILE *f;

	snprintf(bindir, sizeof(bindir), "%s", d ? d : "build/bin/coprod");
	slash = strrchr(bindir, '/');
	if (slash)
		*slash = '\0';
	strcpy(dir, "/tmp/copro-inf.XXXXXX");
	if (!mkdtemp(dir))
		return -1;
	snprintf(sock, sizeof(sock), "%s/coprod.sock", dir);
	snprintf(model, sizeof(model), "%s/cls.onnx", dir);
	if (run(NULL, 0, "%s/copro-model mlp --in %d --hidden 8 --out %d --final softmax "
		"--seed 5 -o %s", bindir, IN, OUT, model))
		return -1;
	snprintf(conf, sizeof(conf), "%s/coprod.conf", dir);
	f = fopen(conf, "w");
	if (!f)
		return -1;
	fprintf(f, "[server]\nidle = sleep\n\n[model.cls]\npath = %s\nmax_batch = %d\n",
		model, MAX_BATCH);
	fclose(f);
	/* Multiples of 1/8 in [-2, 2): exact in f32 and in decimal. */
	for (int i = 0; i < ROWS * IN; i++)
		x[i] = (float)((i * 7) % 32 - 16) / 8.0f;
	daemon_pid = start_daemon(conf);
	return daemon_pid > 0 ? 0 : -1;
}

static int teardown(void **state)
{
	return test_daemon_stop(daemon_pid, dir);
}

/* Runs copro-infer on the test daemon's model with extra arguments. */
static int infer(char *out, size_t len, const char *fmt, ...)
{
	char args[1536];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(args, sizeof(args), fmt, ap);
	va_end(ap);
	return run(out, len, "%s/copro-infer -s %s -m cls %s", bindir, sock, args);
}

/* Writes rows [0, rows) of x as comma-separated values into buf. */
static void values(char *buf, size_t len, int rows)
{
	size_t n = 0;

	buf[0] = '\0';
	for (int i = 0; i < rows * IN; i++)
		n += (size_t)snprintf(buf + n, len - n, "%s%.9g", i ? "," : "", x[i]);
}

/*
 * Parses printed output "y [R, 2]" then R lines of 2 values into y;
 * returns R, or -1 when the text is not that.
 */
static int parse_printed(const char *text, float *y, int max_rows)
{
	int rows, cols, used;
	const char *p;

	if (sscanf(text, "y [%d, %d]\n%n", &rows, &cols, &used) != 2 || cols != OUT ||
	    rows > max_rows)
		return -1;
	p = text + used;
	for (int i = 0; i < rows * OUT; i++) {
		char *end;

		y[i] = strtof(p, &end);
		if (end == p)
			return -1;
		p = end;
		while (*p == ',' || *p == ' ' || *p == '\n')
			p++;
	}
	return *p ? -1 : rows;
}

static void assert_softmax_rows(const float *y, int rows)
{
	for (int r = 0; r < rows; r++) {
		float s = y[r * OUT] + y[r * OUT + 1];

		assert_true(y[r * OUT] > 0.0f && y[r * OUT + 1] > 0.0f);
		assert_true(fabsf(s - 1.0f) < 1e-5f);
	}
}

static void write_file(const char *path, const void *data, size_t n)
{
	FILE *f = fopen(path, "wb");

	assert_non_null(f);
	assert_int_equal(fwrite(data, 1, n, f), n);
	assert_int_equal(fclose(f), 0);
}

static void should_give_the_same_numbers_from_values_csv_and_raw_files(void **state)
{
	char vals[1024], out[4096], csv[160], bin[160];
	float yv[ROWS * OUT], yc[ROWS * OUT], yb[ROWS * OUT];
	FILE *f;

	/* Values: all five rows, the input named. */
	values(vals, sizeof(vals), ROWS);
	assert_int_equal(infer(out, sizeof(out), "--input x=%s", vals), 0);
	assert_int_equal(parse_printed(out, yv, ROWS), ROWS);
	assert_softmax_rows(yv, ROWS);

	/* CSV: the first three rows, with a comment and a blank line. */
	snprintf(csv, sizeof(csv), "%s/rows.csv", dir);
	f = fopen(csv, "w");
	assert_non_null(f);
	fprintf(f, "# x0,x1,x2,x3\n");
	for (int r = 0; r < 3; r++) {
		for (int c = 0; c < IN; c++)
			fprintf(f, "%s%.9g", c ? ", " : "", x[r * IN + c]);
		fprintf(f, r == 1 ? "\n\n" : "\n");
	}
	fclose(f);
	assert_int_equal(infer(out, sizeof(out), "--input x=@%s", csv), 0);
	assert_int_equal(parse_printed(out, yc, ROWS), 3);
	assert_memory_equal(yc, yv, 3 * OUT * sizeof(float));

	/* Raw: five rows as numpy's tofile writes them, the name left out. */
	snprintf(bin, sizeof(bin), "%s/rows.bin", dir);
	write_file(bin, x, sizeof(x));
	assert_int_equal(infer(out, sizeof(out), "--input %s", bin), 0);
	assert_int_equal(parse_printed(out, yb, ROWS), ROWS);
	assert_memory_equal(yb, yv, sizeof(yv));
}

static void should_write_raw_outputs_that_match_the_printed_ones(void **state)
{
	char vals[1024], out[4096], path[160];
	float printed[ROWS * OUT], raw[ROWS * OUT + 1];
	struct stat sb;
	FILE *f;

	values(vals, sizeof(vals), ROWS);
	assert_int_equal(infer(out, sizeof(out), "--input x=%s", vals), 0);
	assert_int_equal(parse_printed(out, printed, ROWS), ROWS);

	snprintf(path, sizeof(path), "%s/y.bin", dir);
	assert_int_equal(infer(out, sizeof(out), "--input x=%s --output y=%s", vals, path), 0);
	assert_string_equal(out, "");	/* written, not printed */
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_size, ROWS * OUT * sizeof(float));
	f = fopen(path, "rb");
	assert_non_null(f);
	assert_int_equal(fread(raw, sizeof(float), ROWS * OUT + 1, f), ROWS * OUT);
	fclose(f);
	/* %.9g round-trips a float exactly. */
	assert_memory_equal(raw, printed, sizeof(printed));
	assert_softmax_rows(raw, ROWS);
}

static void should_take_a_shape_that_overrides_the_models(void **state)
{
	char vals[1024], out[4096];
	float y[ROWS * OUT], ref[ROWS * OUT];

	values(vals, sizeof(vals), 2);
	assert_int_equal(infer(out, sizeof(out), "--input x=%s", vals), 0);
	assert_int_equal(parse_printed(out, ref, ROWS), 2);
	assert_int_equal(infer(out, sizeof(out), "--shape x=2,4 --input x=%s", vals), 0);
	assert_int_equal(parse_printed(out, y, ROWS), 2);
	assert_memory_equal(y, ref, 2 * OUT * sizeof(float));
}

/* Expects exit 2 and a message holding every one of the NULL-ended words. */
static void expect_usage_error(const char *args, ...)
{
	char out[4096];
	const char *word;
	va_list ap;
	int rc = infer(out, sizeof(out), "%s", args);

	if (rc != 2)
		print_error("copro-infer %s: exit %d, output: %s\n", args, rc, out);
	assert_int_equal(rc, 2);
	assert_non_null(strstr(out, "copro-infer: "));
	/* One line: the reason, nothing else. */
	assert_ptr_equal(strchr(out, '\n'), out + strlen(out) - 1);
	va_start(ap, args);
	while ((word = va_arg(ap, const char *))) {
		if (!strstr(out, word))
			print_error("copro-infer %s: '%s' not in: %s\n", args, word, out);
		assert_non_null(strstr(out, word));
	}
	va_end(ap);
}

static void should_refuse_bad_usage_with_exit_2_and_a_reason(void **state)
{
	char args[512], path[160], csv[160];
	char odd[17] = { 0 };
	FILE *f;

	expect_usage_error("--input x=0.1,0.2,0.3", "x", "3 values", "multiple of 4", NULL);
	expect_usage_error("--input z=1,2,3,4", "z", "no such input", NULL);
	expect_usage_error("--input x=1,2,abc,4", "x", "abc", "not a number", NULL);
	expect_usage_error("--input x=1,2,1e99,4", "x", "1e99", "out of range", NULL);
	expect_usage_error("--input x=/nonexistent/rows.bin", "x", "/nonexistent/rows.bin", NULL);
	expect_usage_error("--input x=@/nonexistent/rows.csv", "x", "/nonexistent/rows.csv", NULL);
	expect_usage_error("--shape x=2,3 --input x=1,2,3,4", "x", "6 elements", NULL);
	expect_usage_error("--shape x=2,zero --input x=1,2,3,4", "--shape", NULL);
	expect_usage_error("--input x=1,2,3,4 --output q=out.bin", "q", "no such output", NULL);
	expect_usage_error("--input x=1,2,3,4 --input x=1,2,3,4", "x", "twice", NULL);
	expect_usage_error("", "input x not given", NULL);

	snprintf(path, sizeof(path), "%s/odd.bin", dir);
	write_file(path, odd, sizeof(odd));
	snprintf(args, sizeof(args), "--input x=%s", path);
	expect_usage_error(args, "x", "17 bytes", "16 bytes", NULL);

	snprintf(csv, sizeof(csv), "%s/short.csv", dir);
	f = fopen(csv, "w");
	assert_non_null(f);
	fprintf(f, "1,2,3,4\n1,2,3\n");
	fclose(f);
	snprintf(args, sizeof(args), "--input x=@%s", csv);
	expect_usage_error(args, "x", "line 2", "3 values", NULL);
	f = fopen(csv, "w");
	assert_non_null(f);
	fprintf(f, "1,2,3,4\n\n1,2,x3,4\n");
	fclose(f);
	expect_usage_error(args, "x", "value 3 'x3'", "not a number", "line 3", NULL);

	/* No model at all is caught before connecting. */
	assert_int_equal(run(NULL, 0, "%s/copro-infer -s %s --input 1,2,3,4", bindir, sock), 2);
}

static void should_exit_1_when_the_daemon_refuses(void **state)
{
	char out[4096], path[160];
	float big[(MAX_BATCH + 1) * IN] = { 0 };
	int rc;

	rc = run(out, sizeof(out), "%s/copro-infer -s %s -m nosuch --input 1,2,3,4", bindir, sock);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "copro-infer: nosuch: "));

	/* More rows than max_batch: the daemon answers COPRO_E_SIGNATURE. */
	snprintf(path, sizeof(path), "%s/big.bin", dir);
	write_file(path, big, sizeof(big));
	rc = infer(out, sizeof(out), "--input x=%s", path);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "copro-infer: cls: "));

	rc = run(out, sizeof(out), "%s/copro-infer -s %s/nosock -m cls --input 1,2,3,4",
		 bindir, dir);
	assert_int_equal(rc, 1);
	assert_non_null(strstr(out, "cannot connect"));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_give_the_same_numbers_from_values_csv_and_raw_files),
		cmocka_unit_test(should_write_raw_outputs_that_match_the_printed_ones),
		cmocka_unit_test(should_take_a_shape_that_overrides_the_models),
		cmocka_unit_test(should_refuse_bad_usage_with_exit_2_and_a_reason),
		cmocka_unit_test(should_exit_1_when_the_daemon_refuses),
	};

	return cmocka_run_group_tests_name("copro-infer through coprod", tests, setup, teardown);
}
