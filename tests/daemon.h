/* SPDX-License-Identifier: MIT */
/*
 * daemon.h - what the integration tests share to run a real coprod: start
 * one on a socket and a config file (never outliving the test), and run a
 * shell command. Header-only, static functions, like alloc_count.h.
 */
#ifndef COPRO_TEST_DAEMON_H
#define COPRO_TEST_DAEMON_H

#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/*
 * Starts coprod ($COPRO_COPROD, else build/bin/coprod) serving sock with
 * the config file conf, its standard error appended to log. Waits up to
 * 10 s for the socket. Returns the pid, or -1 with the daemon's wait
 * status in *st when it exited (or was killed for not coming up).
 */
static inline pid_t test_daemon_start(const char *sock, const char *conf, const char *log,
				      int *st)
{
	pid_t pid;

	*st = 0;
	pid = fork();
	if (pid == 0) {
		int fd;

		prctl(PR_SET_PDEATHSIG, SIGKILL);	/* never outlive a crashed test */
		fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
		dup2(fd, STDERR_FILENO);
		execl(getenv("COPRO_COPROD") ? getenv("COPRO_COPROD") : "build/bin/coprod",
		      "coprod", "-s", sock, "-c", conf, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 1000; i++) {
		struct stat sb;

		if (waitpid(pid, st, WNOHANG) == pid)
			return -1;
		if (stat(sock, &sb) == 0)
			return pid;
		usleep(10000);
	}
	kill(pid, SIGKILL);
	waitpid(pid, st, 0);
	return -1;
}

/*
 * Stops the daemon pid (if > 0) with SIGTERM and waits for it, then removes
 * the test directory dir. Returns 0 when the daemon exited with status 0
 * (or none ran) and dir is gone, else -1: a teardown that fails the group.
 */
static inline int test_daemon_stop(pid_t pid, const char *dir)
{
	char cmd[256];
	int st = 0;

	if (pid > 0) {
		kill(pid, SIGTERM);
		waitpid(pid, &st, 0);
	}
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd))
		return -1;
	return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : -1;
}

/* Runs a shell command; returns its exit status, or -1 when it did not exit. */
static inline int __attribute__((format(printf, 1, 2))) test_sh(const char *fmt, ...)
{
	char cmd[2048];
	va_list ap;
	int st;

	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

#endif
