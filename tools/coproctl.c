// SPDX-License-Identifier: MIT
/*
 * coproctl - operate a running coprod: ping, status, load, unload.
 */
#include <errno.h>
#include <getopt.h>
#include <limits.h>
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
		"  status              clients, rings, queue depths and models\n"
		"  load NAME [PATH] [KEY=VALUE ...]\n"
		"                      load PATH as model NAME, or as its next version when\n"
		"                      NAME is loaded (no PATH: the serving version's file again);\n"
		"                      KEY=VALUE as in a [model.NAME] section of coprod.conf(5),\n"
		"                      e.g. max_batch=32 precision=int8 cache_mib=16\n"
		"  unload NAME         stop serving NAME; requests already admitted finish\n");
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

/*
 * load NAME [PATH] [KEY=VALUE ...]. The second word is the path unless it
 * looks like an option (has '=' and no '/'). Relative paths are made
 * absolute here: coprod resolves them from its own directory otherwise.
 */
static int cmd_load(struct copro_client *c, int argc, char **argv)
{
	char options[1024] = "", abs[PATH_MAX], err[256];
	const char *path = NULL;
	size_t len = 0;
	uint32_t version = 0;
	int i = 2, ret;

	if (argc < 2) {
		fprintf(stderr, "coproctl: usage: load NAME [PATH] [KEY=VALUE ...]\n");
		return 2;
	}
	if (argc > 2 && (!strchr(argv[2], '=') || strchr(argv[2], '/'))) {
		path = argv[2];
		if (!realpath(path, abs)) {
			fprintf(stderr, "coproctl: %s: %s\n", path, strerror(errno));
			return 1;
		}
		path = abs;
		i = 3;
	}
	for (; i < argc; i++) {
		int n;

		if (!strchr(argv[i], '=')) {
			fprintf(stderr, "coproctl: option '%s' is not KEY=VALUE\n", argv[i]);
			return 2;
		}
		n = snprintf(options + len, sizeof(options) - len, "%s\n", argv[i]);
		if (n < 0 || (size_t)n >= sizeof(options) - len) {
			fprintf(stderr, "coproctl: options too long\n");
			return 2;
		}
		len += (size_t)n;
	}
	ret = copro_load(c, argv[1], path, options, &version, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "coproctl: load %s: %s%s%s\n", argv[1], copro_strerror(ret),
			err[0] ? ": " : "", err);
		return 1;
	}
	printf("%s: version %u serving\n", argv[1], version);
	return 0;
}

static int cmd_unload(struct copro_client *c, int argc, char **argv)
{
	uint32_t version = 0;
	int ret;

	if (argc != 2) {
		fprintf(stderr, "coproctl: usage: unload NAME\n");
		return 2;
	}
	ret = copro_unload(c, argv[1], &version);
	if (ret) {
		fprintf(stderr, "coproctl: unload %s: %s\n", argv[1], copro_strerror(ret));
		return 1;
	}
	printf("%s: version %u unloaded (admitted requests finish)\n", argv[1], version);
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
	if (strcmp(argv[optind], "ping") && strcmp(argv[optind], "status") &&
	    strcmp(argv[optind], "load") && strcmp(argv[optind], "unload")) {
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
	else if (!strcmp(argv[optind], "load"))
		ret = cmd_load(c, argc - optind, argv + optind);
	else if (!strcmp(argv[optind], "unload"))
		ret = cmd_unload(c, argc - optind, argv + optind);
	else
		ret = cmd_status(c, argc - optind);
	copro_close(c);
	return ret;
}
