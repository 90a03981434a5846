// SPDX-License-Identifier: MIT
/*
 * test_sockpath.c - the default socket path (shm/sockpath.c), shared by
 * coprod and libcopro: $COPRO_SOCKET, else $XDG_RUNTIME_DIR/coprod.sock,
 * else /tmp/coprod-UID.sock; too long for the buffer or for a sockaddr_un is
 * -ENAMETOOLONG; a NULL buffer is -EINVAL.
 *
 * Each test sets the two variables it cares about; the setup saves the
 * caller's environment and the teardown puts it back.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include <cmocka.h>

#include "copro.h"
#include "sockpath.h"

#define SUN_PATH_MAX	sizeof(((struct sockaddr_un *)0)->sun_path)	/* 108 */

struct saved_env {
	char *copro_socket;
	char *xdg;
};

static char *dup_env(const char *name)
{
	const char *v = getenv(name);

	return v ? strdup(v) : NULL;
}

static void restore_env(const char *name, char *v)
{
	if (v)
		setenv(name, v, 1);
	else
		unsetenv(name);
	free(v);
}

static int setup(void **state)
{
	struct saved_env *s = calloc(1, sizeof(*s));

	if (!s)
		return -1;
	s->copro_socket = dup_env("COPRO_SOCKET");
	s->xdg = dup_env("XDG_RUNTIME_DIR");
	unsetenv("COPRO_SOCKET");
	unsetenv("XDG_RUNTIME_DIR");
	*state = s;
	return 0;
}

static int teardown(void **state)
{
	struct saved_env *s = *state;

	restore_env("COPRO_SOCKET", s->copro_socket);
	restore_env("XDG_RUNTIME_DIR", s->xdg);
	free(s);
	return 0;
}

/* A string of n characters: "/" then 'x's. */
static char *long_path(size_t n)
{
	char *p = malloc(n + 1);

	assert_non_null(p);
	memset(p, 'x', n);
	p[0] = '/';
	p[n] = '\0';
	return p;
}

static void should_use_copro_socket_when_set(void **state)
{
	char buf[256];

	setenv("COPRO_SOCKET", "/run/custom/copro.sock", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)), 22);
	assert_string_equal(buf, "/run/custom/copro.sock");
}

static void should_use_xdg_runtime_dir_when_only_it_is_set(void **state)
{
	char buf[256];

	setenv("XDG_RUNTIME_DIR", "/run/user/1000", 1);
	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)),
			 (int)strlen("/run/user/1000/coprod.sock"));
	assert_string_equal(buf, "/run/user/1000/coprod.sock");
}

static void should_ignore_empty_copro_socket(void **state)
{
	char buf[256];

	setenv("COPRO_SOCKET", "", 1);
	setenv("XDG_RUNTIME_DIR", "/run/user/7", 1);
	assert_true(copro_sockpath_default(buf, sizeof(buf)) > 0);
	assert_string_equal(buf, "/run/user/7/coprod.sock");
}

static void should_fall_back_to_tmp_with_uid(void **state)
{
	char buf[256], want[64];
	int n = snprintf(want, sizeof(want), "/tmp/coprod-%u.sock", (unsigned)getuid());

	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)), n);
	assert_string_equal(buf, want);
	/* An empty XDG_RUNTIME_DIR counts as unset. */
	setenv("XDG_RUNTIME_DIR", "", 1);
	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)), n);
	assert_string_equal(buf, want);
}

static void should_accept_path_of_107_bytes(void **state)
{
	char buf[256];
	char *p = long_path(SUN_PATH_MAX - 1);

	setenv("COPRO_SOCKET", p, 1);
	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)), SUN_PATH_MAX - 1);
	assert_string_equal(buf, p);
	free(p);
}

static void should_reject_copro_socket_too_long_for_sockaddr(void **state)
{
	char buf[256];
	char *p = long_path(SUN_PATH_MAX);

	/* 108 bytes plus the NUL do not fit sun_path, even though buf is larger. */
	setenv("COPRO_SOCKET", p, 1);
	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)), -ENAMETOOLONG);
	free(p);
}

static void should_reject_xdg_path_too_long_for_sockaddr(void **state)
{
	char buf[256];
	/* 96 + strlen("/coprod.sock") = 108 bytes: one too many. */
	char *p = long_path(SUN_PATH_MAX - 12);

	setenv("XDG_RUNTIME_DIR", p, 1);
	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)), -ENAMETOOLONG);
	free(p);
	p = long_path(SUN_PATH_MAX - 13);
	setenv("XDG_RUNTIME_DIR", p, 1);
	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)), SUN_PATH_MAX - 1);
	free(p);
}

static void should_reject_path_longer_than_buffer(void **state)
{
	char buf[64];

	setenv("COPRO_SOCKET", "/run/custom/copro.sock", 1);
	assert_int_equal(copro_sockpath_default(buf, 16), -ENAMETOOLONG);
	/* Exactly the length of the path leaves no room for the NUL. */
	assert_int_equal(copro_sockpath_default(buf, 22), -ENAMETOOLONG);
	setenv("COPRO_SOCKET", "/a/b.sock", 1);
	assert_int_equal(copro_sockpath_default(buf, 10), 9);
	assert_string_equal(buf, "/a/b.sock");
}

static void should_reject_tmp_fallback_longer_than_buffer(void **state)
{
	char buf[8];

	assert_int_equal(copro_sockpath_default(buf, sizeof(buf)), -ENAMETOOLONG);
}

static void should_reject_null_buffer(void **state)
{
	assert_int_equal(copro_sockpath_default(NULL, 108), -EINVAL);
	setenv("COPRO_SOCKET", "/x.sock", 1);
	assert_int_equal(copro_sockpath_default(NULL, 108), -EINVAL);
}

static void should_answer_the_same_through_libcopro(void **state)
{
	char a[256], b[256];

	setenv("XDG_RUNTIME_DIR", "/run/user/99", 1);
	assert_int_equal(copro_default_socket(a, sizeof(a)), copro_sockpath_default(b, sizeof(b)));
	assert_string_equal(a, b);
	assert_int_equal(copro_default_socket(NULL, 10), -EINVAL);
}

#define T(name)	cmocka_unit_test_setup_teardown(name, setup, teardown)

int main(void)
{
	const struct CMUnitTest tests[] = {
		T(should_use_copro_socket_when_set),
		T(should_use_xdg_runtime_dir_when_only_it_is_set),
		T(should_ignore_empty_copro_socket),
		T(should_fall_back_to_tmp_with_uid),
		T(should_accept_path_of_107_bytes),
		T(should_reject_copro_socket_too_long_for_sockaddr),
		T(should_reject_xdg_path_too_long_for_sockaddr),
		T(should_reject_path_longer_than_buffer),
		T(should_reject_tmp_fallback_longer_than_buffer),
		T(should_reject_null_buffer),
		T(should_answer_the_same_through_libcopro),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
