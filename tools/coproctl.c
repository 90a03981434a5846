// SPDX-License-Identifier: MIT
/*
 * coproctl - operate a running coprod: ping, status.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "copro.h"

#define COPRO_VERSION	"0.1.0"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: coproctl [-s PATH] [-h] [-V] COMMAND [ARGS]\n"
		"\n"
		"Operate a running coprod.\n"
		"\n"
		"  -s, --socket PATH   the daemon's socket (default: as coprod's)\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"commands:\n"
		"  ping [-n COUNT]     control-socket and ring round trips (default 5 each)\n"
		"  status              clients, rings, queue depths and models\n");
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static int cmd_ping(struct copro_client *c, int argc, char **argv)
{
	struct copro_model_info mi;
	struct copro_request req = { 0 };
	long count = 5;
	int ret;

	if (argc == 3 && !strcmp(argv[1], "-n")) {
		char *end;

		count = strtol(argv[2], &end, 10);
		if (*end || count < 1 || count > 1000000) {
			fprintf(stderr, "coproctl: bad count '%s'\n", argv[2]);
			return 2;
		}
	} else if (argc != 1) {
		fprintf(stderr, "coproctl: usage: ping [-n COUNT]\n");
		return 2;
	}
	for (long i = 0; i < count; i++) {
		uint64_t rtt;

		ret = copro_ping(c, &rtt);
		if (ret) {
			fprintf(stderr, "coproctl: ping: %s\n", copro_strerror(ret));
			return 1;
		}
		printf("control: seq=%ld time=%.1f us\n", i + 1, rtt / 1e3);
	}
	ret = copro_lookup(c, "noop", &mi);
	if (ret) {
		fprintf(stderr, "coproctl: lookup noop: %s\n", copro_strerror(ret));
		return 1;
	}
	req.model = mi.handle;
	for (long i = 0; i < count; i++) {
		uint64_t t0 = now_ns();

		req.user_data = (uint64_t)i + 1;
		ret = copro_run(c, &req, 5000000000LL);
		if (ret < 0) {
			fprintf(stderr, "coproctl: ring ping: %s\n", copro_strerror(ret));
			return 1;
		}
		printf("ring:    seq=%ld time=%.1f us\n", i + 1, (now_ns() - t0) / 1e3);
	}
	return 0;
}

static int cmd_status(struct copro_client *c, int argc)
{
	char *buf;
	int ret;

	if (argc != 1) {
		fprintf(stderr, "coproctl: usage: status\n");
		return 2;
	}
	buf = malloc(65536);
	if (!buf) {
		fprintf(stderr, "coproctl: out of memory\n");
		return 1;
	}
	ret = copro_status(c, buf, 65536);
	if (ret < 0) {
		fprintf(stderr, "coproctl: status: %s\n", copro_strerror(ret));
		free(buf);
		return 1;
	}
	fputs(buf, stdout);
	free(buf);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "socket", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	struct copro_opts o = { .sq_entries = 8, .arena_bytes = 64 << 10,
				.idle = COPRO_IDLE_BLOCK };
	char path[108];
	const char *sock = NULL;
	struct copro_client *c;
	int ch, ret;

	while ((ch = getopt_long(argc, argv, "+s:hV", opts, NULL)) != -1) {
		switch (ch) {
		case 's':
			sock = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("coproctl %s (ABI %d.%d)\n", COPRO_VERSION, COPRO_ABI_MAJOR,
			       COPRO_ABI_MINOR);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "coproctl: no command (try --help)\n");
		return 2;
	}
	if (strcmp(argv[optind], "ping") && strcmp(argv[optind], "status")) {
		fprintf(stderr, "coproctl: unknown command '%s' (try --help)\n", argv[optind]);
		return 2;
	}
	if (!sock) {
		ret = copro_default_socket(path, sizeof(path));
		if (ret < 0) {
			fprintf(stderr, "coproctl: default socket path: %s\n", copro_strerror(ret));
			return 1;
		}
		sock = path;
	}
	ret = copro_connect(sock, &o, &c);
	if (ret) {
		fprintf(stderr, "coproctl: cannot connect to %s: %s\n", sock, copro_strerror(ret));
		return 1;
	}
	if (!strcmp(argv[optind], "ping"))
		ret = cmd_ping(c, argc - optind, argv + optind);
	else
		ret = cmd_status(c, argc - optind);
	copro_close(c);
	return ret;
}
