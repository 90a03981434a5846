// SPDX-License-Identifier: MIT
/*
 * main.c - coprod: flags, configuration, daemonizing, then the event loop.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "loop.h"

#define COPRO_VERSION		"0.1.0"
#define DEFAULT_CONFIG		"/etc/copro/coprod.conf"

static void usage(FILE *f)
{
	fprintf(f,
		"usage: coprod [-c FILE] [-s PATH] [-i spin|yield|sleep] [--spin-us N] [-d] [-v] [-h] [-V]\n"
		"\n"
		"The copro inference coprocessor daemon: serves models to local clients\n"
		"through shared-memory rings.\n"
		"\n"
		"  -c, --config FILE   read this INI file (default " DEFAULT_CONFIG " if present)\n"
		"  -s, --socket PATH   listen on PATH (default: $COPRO_SOCKET, else\n"
		"                      $XDG_RUNTIME_DIR/coprod.sock, else /tmp/coprod-UID.sock)\n"
		"  -i, --idle MODE     poller idle strategy: spin, yield or sleep (default sleep)\n"
		"      --spin-us N     spin this long after work before yielding or sleeping\n"
		"                      (default 50)\n"
		"  -d, --daemonize     detach from the terminal (default: foreground)\n"
		"  -v, --verbose       log debug messages\n"
		"  -h, --help          show this help\n"
		"  -V, --version       show the version\n"
		"\n"
		"SIGTERM/SIGINT drain and exit 0; SIGHUP reloads the configuration file.\n");
}

static int daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	if (setsid() < 0)
		return -errno;
	pid = fork();
	if (pid < 0)
		return -errno;
	if (pid > 0)
		_exit(0);
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return chdir("/") < 0 ? -errno : 0;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "socket", required_argument, NULL, 's' },
		{ "idle", required_argument, NULL, 'i' },
		{ "spin-us", required_argument, NULL, 'S' },
		{ "daemonize", no_argument, NULL, 'd' },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ 0 }
	};
	static struct copro_server srv;
	const char *config = NULL, *sock = NULL, *spin = NULL;
	int idle = -1, verbose = 0, detach = 0, c, ret;

	while ((c = getopt_long(argc, argv, "c:s:i:dvhV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			config = optarg;
			break;
		case 's':
			sock = optarg;
			break;
		case 'i':
			idle = copro_idle_parse(optarg);
			if (idle < 0) {
				fprintf(stderr, "coprod: bad idle mode '%s' (spin, yield or sleep)\n",
					optarg);
				return 2;
			}
			break;
		case 'S':
			spin = optarg;
			break;
		case 'd':
			detach = 1;
			break;
		case 'v':
			verbose = 1;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf("coprod %s (ABI %d.%d)\n", COPRO_VERSION, COPRO_ABI_MAJOR,
			       COPRO_ABI_MINOR);
			return 0;
		default:
			usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		fprintf(stderr, "coprod: unexpected argument '%s'\n", argv[optind]);
		return 2;
	}

	copro_config_defaults(&srv.cfg);
	if (!config && access(DEFAULT_CONFIG, R_OK) == 0)
		config = DEFAULT_CONFIG;
	if (config) {
		ret = copro_config_load(&srv.cfg, config);
		if (ret) {
			if (srv.cfg.errline)
				fprintf(stderr, "coprod: %s:%d: %s\n", config, srv.cfg.errline,
					srv.cfg.errmsg);
			else if (ret == -ENOENT)
				fprintf(stderr, "coprod: cannot read config %s\n", config);
			else
				fprintf(stderr, "coprod: %s: %s\n", config, srv.cfg.errmsg);
			return 1;
		}
		srv.config_path = config;
	}
	if (sock) {
		if (copro_config_set(&srv.cfg, "socket", sock)) {
			fprintf(stderr, "coprod: bad socket path '%s'\n", sock);
			return 2;
		}
		srv.override_mask |= COPRO_OVR_SOCKET;
	}
	if (spin) {
		if (copro_config_set(&srv.cfg, "spin_us", spin)) {
			fprintf(stderr, "coprod: bad --spin-us '%s' (0..1000000)\n", spin);
			return 2;
		}
		srv.overrides.spin_us = srv.cfg.spin_us;
		srv.override_mask |= COPRO_OVR_SPIN;
	}
	if (idle >= 0) {
		srv.cfg.idle = (uint32_t)idle;
		srv.overrides.idle = (uint32_t)idle;
		srv.override_mask |= COPRO_OVR_IDLE;
	}
	if (verbose) {
		srv.cfg.log_level = COPRO_LOG_DEBUG;
		srv.overrides.log_level = COPRO_LOG_DEBUG;
		srv.override_mask |= COPRO_OVR_LOG;
	}
	copro_log_level = srv.cfg.log_level;

	if (detach && (ret = daemonize()) < 0) {
		fprintf(stderr, "coprod: cannot daemonize: %s\n", strerror(-ret));
		return 1;
	}
	ret = copro_server_init(&srv);
	if (ret) {
		fprintf(stderr, "coprod: cannot start on %s: %s\n", srv.cfg.socket, strerror(-ret));
		copro_server_fini(&srv);
		return 1;
	}
	ret = copro_server_run(&srv);
	copro_server_fini(&srv);
	return ret;
}
