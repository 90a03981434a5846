// SPDX-License-Identifier: MIT
/*
 * test_config.c - coprod.conf (server/config.c): defaults, a full valid
 * file, every kind of bad line with the line it is reported on, and the
 * credential rules of copro_config_allows / copro_config_is_admin.
 *
 * Config files are written to mkstemp() files under $TMPDIR (or /tmp) and
 * removed again by each test.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "config.h"
#include "log.h"

/* Writes text to a new temporary file; path must hold PATH_MAX bytes. */
static void write_temp(char *path, size_t len, const char *text)
{
	const char *dir = getenv("TMPDIR");
	int fd;
	size_t n = strlen(text);

	if (!dir || !*dir)
		dir = "/tmp";
	assert_true((size_t)snprintf(path, len, "%s/copro-test-config.XXXXXX", dir) < len);
	fd = mkstemp(path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, n), (ssize_t)n);
	assert_int_equal(close(fd), 0);
}

/* Loads text as a config file over the defaults; returns copro_config_load's result. */
static int load_text(struct copro_config *cfg, const char *text)
{
	char path[4096];
	int ret;

	copro_config_defaults(cfg);
	write_temp(path, sizeof(path), text);
	ret = copro_config_load(cfg, path);
	unlink(path);
	return ret;
}

/* Expects text to be refused with -EINVAL on line, the message naming what. */
static void expect_error(const char *text, int line, const char *what)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, text), -EINVAL);
	if (cfg.errline != line)
		print_error("errmsg: %s\n", cfg.errmsg);
	assert_int_equal(cfg.errline, line);
	assert_true(cfg.errmsg[0] != '\0');
	if (what && !strstr(cfg.errmsg, what))
		fail_msg("errmsg '%s' does not mention '%s'", cfg.errmsg, what);
}

/* ---- defaults ------------------------------------------------------------------- */

static void should_fill_documented_defaults(void **state)
{
	struct copro_config cfg;

	setenv("COPRO_SOCKET", "/run/test/coprod.sock", 1);
	memset(&cfg, 0xa5, sizeof(cfg));
	copro_config_defaults(&cfg);
	unsetenv("COPRO_SOCKET");
	assert_string_equal(cfg.socket, "/run/test/coprod.sock");
	assert_int_equal(cfg.socket_mode, 0600);
	assert_int_equal(cfg.n_allow_uids, 0);
	assert_int_equal(cfg.n_allow_gids, 0);
	assert_int_equal(cfg.n_admin_uids, 0);
	assert_int_equal(cfg.max_clients, 256);
	assert_int_equal(cfg.max_arena_mib, 256);
	assert_int_equal(cfg.idle, COPRO_IDLE_SRV_SLEEP);
	assert_int_equal(cfg.spin_us, 50);
	assert_int_equal(cfg.heartbeat_ms, 100);
	assert_int_equal(cfg.log_level, COPRO_LOG_INFO);
	assert_int_equal(cfg.errline, 0);
	assert_string_equal(cfg.errmsg, "");
}

static void should_default_socket_like_the_client_library(void **state)
{
	struct copro_config cfg;
	char want[128];
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	char *saved = xdg ? strdup(xdg) : NULL;

	unsetenv("COPRO_SOCKET");
	unsetenv("XDG_RUNTIME_DIR");
	copro_config_defaults(&cfg);
	if (saved) {
		setenv("XDG_RUNTIME_DIR", saved, 1);
		free(saved);
	}
	snprintf(want, sizeof(want), "/tmp/coprod-%u.sock", (unsigned)getuid());
	assert_string_equal(cfg.socket, want);
}

static void should_parse_and_name_idle_modes(void **state)
{
	assert_int_equal(copro_idle_parse("spin"), COPRO_IDLE_SRV_SPIN);
	assert_int_equal(copro_idle_parse("yield"), COPRO_IDLE_SRV_YIELD);
	assert_int_equal(copro_idle_parse("sleep"), COPRO_IDLE_SRV_SLEEP);
	assert_int_equal(copro_idle_parse("fast"), -EINVAL);
	assert_int_equal(copro_idle_parse(""), -EINVAL);
	assert_string_equal(copro_idle_name(COPRO_IDLE_SRV_SPIN), "spin");
	assert_string_equal(copro_idle_name(COPRO_IDLE_SRV_YIELD), "yield");
	assert_string_equal(copro_idle_name(COPRO_IDLE_SRV_SLEEP), "sleep");
	assert_string_equal(copro_idle_name(99), "?");
}

/* ---- a full valid file ----------------------------------------------------------- */

static const char full_conf[] =
	"; coprod.conf used by test_config\n"
	"[server]\n"
	"socket = /tmp/copro-test/daemon.sock\n"
	"socket_mode = 0660          ; octal file mode of the socket\n"
	"allow_uids = 1000, 1001 ,1002\n"
	"allow_gids = 100\n"
	"admin_uids = 0, 1000\n"
	"max_clients = 17\n"
	"max_arena_mib = 512\n"
	"idle = spin\n"
	"spin_us = 7\n"
	"heartbeat_ms = 250\n"
	"log_level = debug\n";

static void should_load_every_key_of_a_full_file(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, full_conf), 0);
	assert_string_equal(cfg.socket, "/tmp/copro-test/daemon.sock");
	assert_int_equal(cfg.socket_mode, 0660);
	assert_int_equal(cfg.n_allow_uids, 3);
	assert_int_equal(cfg.allow_uids[0], 1000);
	assert_int_equal(cfg.allow_uids[1], 1001);
	assert_int_equal(cfg.allow_uids[2], 1002);
	assert_int_equal(cfg.n_allow_gids, 1);
	assert_int_equal(cfg.allow_gids[0], 100);
	assert_int_equal(cfg.n_admin_uids, 2);
	assert_int_equal(cfg.admin_uids[0], 0);
	assert_int_equal(cfg.admin_uids[1], 1000);
	assert_int_equal(cfg.max_clients, 17);
	assert_int_equal(cfg.max_arena_mib, 512);
	assert_int_equal(cfg.idle, COPRO_IDLE_SRV_SPIN);
	assert_int_equal(cfg.spin_us, 7);
	assert_int_equal(cfg.heartbeat_ms, 250);
	assert_int_equal(cfg.log_level, COPRO_LOG_DEBUG);
	assert_int_equal(cfg.errline, 0);
}

static void should_keep_defaults_for_keys_not_in_file(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, "[server]\nidle = yield\n"), 0);
	assert_int_equal(cfg.idle, COPRO_IDLE_SRV_YIELD);
	assert_int_equal(cfg.max_clients, 256);
	assert_int_equal(cfg.spin_us, 50);
	assert_int_equal(cfg.socket_mode, 0600);
}

static void should_accept_empty_file(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, ""), 0);
	assert_int_equal(cfg.max_clients, 256);
}

static void should_clear_id_list_with_empty_value(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, "[server]\nallow_uids = 5, 6\nallow_uids =\n"), 0);
	assert_int_equal(cfg.n_allow_uids, 0);
}

static void should_accept_32_ids(void **state)
{
	struct copro_config cfg;
	char text[512] = "[server]\nallow_gids = 1";

	for (int i = 2; i <= COPRO_CFG_MAX_IDS; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), ",%d", i);
	strcat(text, "\n");
	assert_int_equal(load_text(&cfg, text), 0);
	assert_int_equal(cfg.n_allow_gids, COPRO_CFG_MAX_IDS);
	assert_int_equal(cfg.allow_gids[31], 32);
}

static void should_accept_value_boundaries(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, "[server]\n"
					 "socket_mode = 0777\n"
					 "max_clients = 1\n"
					 "spin_us = 0\n"
					 "heartbeat_ms = 10\n"
					 "max_arena_mib = 4096\n"
					 "allow_uids = 4294967294\n"), 0);
	assert_int_equal(cfg.socket_mode, 0777);
	assert_int_equal(cfg.max_clients, 1);
	assert_int_equal(cfg.spin_us, 0);
	assert_int_equal(cfg.heartbeat_ms, 10);
	assert_int_equal(cfg.max_arena_mib, 4096);
	assert_int_equal(cfg.allow_uids[0], 4294967294U);
}

/* ---- bad values and where they are reported ------------------------------------- */

static void should_reject_bad_octal_socket_mode(void **state)
{
	expect_error("[server]\nsocket_mode = 0800\n", 2, "socket_mode");
	expect_error("[server]\n\nsocket_mode = 01000\n", 3, "socket_mode");
	expect_error("[server]\nsocket_mode = rw\n", 2, "socket_mode");
}

static void should_reject_unknown_idle_mode(void **state)
{
	expect_error("[server]\nmax_clients = 8\nidle = fast\n", 3, "idle");
}

static void should_reject_negative_spin(void **state)
{
	expect_error("[server]\nspin_us = -1\n", 2, "spin_us");
	expect_error("[server]\nspin_us = 1000001\n", 2, "spin_us");
}

static void should_reject_zero_max_clients(void **state)
{
	expect_error("# comment\n[server]\n; another\nmax_clients = 0\n", 4, "max_clients");
}

static void should_reject_out_of_range_numbers(void **state)
{
	expect_error("[server]\nmax_clients = 65537\n", 2, "max_clients");
	expect_error("[server]\nheartbeat_ms = 9\n", 2, "heartbeat_ms");
	expect_error("[server]\nmax_arena_mib = 0\n", 2, "max_arena_mib");
	expect_error("[server]\nmax_clients = 99999999999999999999999\n", 2, "max_clients");
	expect_error("[server]\nmax_clients = 12abc\n", 2, "max_clients");
}

static void should_reject_uid_with_a_letter(void **state)
{
	expect_error("[server]\nallow_uids = 1000, 10a1\n", 2, "allow_uids");
	expect_error("[server]\nadmin_uids = root\n", 2, "admin_uids");
	/* (uid_t)-1 means "no uid" to the kernel: not a valid entry. */
	expect_error("[server]\nallow_gids = 4294967295\n", 2, "allow_gids");
}

static void should_reject_33_ids(void **state)
{
	char text[512] = "[server]\nallow_uids = 1";

	for (int i = 2; i <= COPRO_CFG_MAX_IDS + 1; i++)
		snprintf(text + strlen(text), sizeof(text) - strlen(text), ",%d", i);
	strcat(text, "\n");
	expect_error(text, 2, "allow_uids");
}

static void should_reject_unknown_key(void **state)
{
	expect_error("[server]\nidle = spin\nturbo = 1\n", 3, "turbo");
}

static void should_reject_unknown_section(void **state)
{
	expect_error("[server]\nidle = spin\n[client]\nidle = spin\n", 4, "client");
}

static void should_reject_keys_outside_any_section(void **state)
{
	expect_error("idle = spin\n", 1, NULL);
}

static void should_reject_too_long_socket_path(void **state)
{
	char text[300];
	char path[120];

	memset(path, 'a', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	snprintf(text, sizeof(text), "[server]\nsocket = %s\n", path);
	expect_error(text, 2, "socket");
}

static void should_accept_socket_path_of_107_bytes(void **state)
{
	struct copro_config cfg;
	char text[300];
	char path[108];

	memset(path, 'b', sizeof(path) - 1);
	path[0] = '/';
	path[sizeof(path) - 1] = '\0';
	snprintf(text, sizeof(text), "[server]\nsocket = %s\n", path);
	assert_int_equal(load_text(&cfg, text), 0);
	assert_string_equal(cfg.socket, path);
}

static void should_reject_syntax_error(void **state)
{
	expect_error("[server]\nidle spin\n", 2, NULL);
}

/* Line and message must describe the same error when a file has several. */
static void should_report_message_for_the_reported_line(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, "[server]\nidle = fast\nmax_clients = 0\n"), -EINVAL);
	assert_int_equal(cfg.errline, 2);
	if (!strstr(cfg.errmsg, "idle"))
		fail_msg("errline is 2 (idle) but errmsg says: %s", cfg.errmsg);
}

static void should_fail_with_enoent_for_missing_file(void **state)
{
	struct copro_config cfg;

	copro_config_defaults(&cfg);
	assert_int_equal(copro_config_load(&cfg, "/nonexistent/copro/coprod.conf"), -ENOENT);
	assert_int_equal(cfg.errline, 0);
	assert_non_null(strstr(cfg.errmsg, "/nonexistent/copro/coprod.conf"));
}

/* config.h: errline is "0: opening the file", whatever a previous load left. */
static void should_report_line_zero_for_missing_file_after_failed_load(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, "[server]\n\nidle = fast\n"), -EINVAL);
	assert_int_equal(cfg.errline, 3);
	assert_int_equal(copro_config_load(&cfg, "/nonexistent/copro/coprod.conf"), -ENOENT);
	assert_int_equal(cfg.errline, 0);
}

static void should_set_single_keys_like_command_line_flags(void **state)
{
	struct copro_config cfg;

	copro_config_defaults(&cfg);
	assert_int_equal(copro_config_set(&cfg, "socket", "/tmp/x.sock"), 0);
	assert_string_equal(cfg.socket, "/tmp/x.sock");
	assert_int_equal(copro_config_set(&cfg, "socket", ""), -EINVAL);
	assert_int_equal(copro_config_set(&cfg, "idle", "yield"), 0);
	assert_int_equal(cfg.idle, COPRO_IDLE_SRV_YIELD);
	assert_int_equal(copro_config_set(&cfg, "log_level", "warn"), 0);
	assert_int_equal(cfg.log_level, COPRO_LOG_WARN);
	assert_int_equal(copro_config_set(&cfg, "log_level", "loud"), -EINVAL);
	assert_int_equal(copro_config_set(&cfg, "nosuchkey", "1"), -ENOENT);
}

/* ---- who may connect and administer ---------------------------------------------- */

/* A uid that is neither root nor ours. */
static uid_t other_uid(void)
{
	return getuid() == 4242 ? 4243 : 4242;
}

static void should_always_allow_root(void **state)
{
	struct copro_config cfg;

	copro_config_defaults(&cfg);
	assert_true(copro_config_allows(&cfg, 0, 0));
	assert_true(copro_config_is_admin(&cfg, 0));
	cfg.n_allow_uids = 1;
	cfg.allow_uids[0] = 1000;
	cfg.n_allow_gids = 1;
	cfg.allow_gids[0] = 100;
	cfg.n_admin_uids = 1;
	cfg.admin_uids[0] = 1000;
	assert_true(copro_config_allows(&cfg, 0, 12345));
	assert_true(copro_config_is_admin(&cfg, 0));
}

static void should_allow_only_own_uid_when_lists_empty(void **state)
{
	struct copro_config cfg;

	copro_config_defaults(&cfg);
	assert_true(copro_config_allows(&cfg, getuid(), 12345));
	assert_false(copro_config_allows(&cfg, other_uid(), 12345));
	assert_false(copro_config_allows(&cfg, other_uid(), getgid()));
	assert_true(copro_config_is_admin(&cfg, getuid()));
	assert_false(copro_config_is_admin(&cfg, other_uid()));
}

static void should_allow_listed_uids(void **state)
{
	struct copro_config cfg;

	copro_config_defaults(&cfg);
	cfg.n_allow_uids = 2;
	cfg.allow_uids[0] = 1000;
	cfg.allow_uids[1] = 1001;
	assert_true(copro_config_allows(&cfg, 1000, 5));
	assert_true(copro_config_allows(&cfg, 1001, 5));
	assert_false(copro_config_allows(&cfg, 1002, 5));
	/* A list replaces "own uid only" (unless ours is listed). */
	if (getuid() != 0 && getuid() != 1000 && getuid() != 1001)
		assert_false(copro_config_allows(&cfg, getuid(), 5));
}

static void should_allow_listed_gids(void **state)
{
	struct copro_config cfg;

	copro_config_defaults(&cfg);
	cfg.n_allow_gids = 1;
	cfg.allow_gids[0] = 100;
	assert_true(copro_config_allows(&cfg, 4242, 100));
	assert_false(copro_config_allows(&cfg, 4242, 101));
	cfg.n_allow_uids = 1;
	cfg.allow_uids[0] = 4243;
	assert_true(copro_config_allows(&cfg, 4243, 101));
	assert_true(copro_config_allows(&cfg, 4242, 100));
	assert_false(copro_config_allows(&cfg, 4242, 101));
}

static void should_make_listed_uids_admins(void **state)
{
	struct copro_config cfg;

	copro_config_defaults(&cfg);
	cfg.n_admin_uids = 1;
	cfg.admin_uids[0] = 4242;
	assert_true(copro_config_is_admin(&cfg, 4242));
	assert_false(copro_config_is_admin(&cfg, 4243));
	if (getuid() != 0 && getuid() != 4242)
		assert_false(copro_config_is_admin(&cfg, getuid()));
}

static void should_apply_rules_loaded_from_file(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, full_conf), 0);
	assert_true(copro_config_allows(&cfg, 1001, 7));
	assert_true(copro_config_allows(&cfg, 5000, 100));
	assert_false(copro_config_allows(&cfg, 5000, 7));
	assert_true(copro_config_is_admin(&cfg, 1000));
	assert_false(copro_config_is_admin(&cfg, 1001));
}

/* ---- placement: numa and device ------------------------------------------------ */

static void should_default_numa_to_auto_and_models_to_the_server(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, "[model.m]\npath = /x\n"), 0);
	assert_int_equal(cfg.numa, COPRO_NUMA_AUTO);
	assert_int_equal(cfg.models[0].numa, COPRO_NUMA_INHERIT);
	assert_string_equal(cfg.models[0].device, "auto");
}

static void should_parse_numa_and_device_keys(void **state)
{
	struct copro_config cfg;

	assert_int_equal(load_text(&cfg, "[server]\nnuma = 0\n"
				   "[model.a]\npath = /a\nnuma = off\ndevice = cpu\n"
				   "[model.b]\npath = /b\nnuma = auto\ndevice = cuda:1\n"
				   "[model.c]\npath = /c\nnuma = 1023\n"), 0);
	assert_int_equal(cfg.numa, 0);
	assert_int_equal(cfg.models[0].numa, COPRO_NUMA_OFF);
	assert_string_equal(cfg.models[0].device, "cpu");
	assert_int_equal(cfg.models[1].numa, COPRO_NUMA_AUTO);
	/* Parsed and kept: whether cuda:1 exists is for the load to say. */
	assert_string_equal(cfg.models[1].device, "cuda:1");
	assert_int_equal(cfg.models[2].numa, 1023);
	assert_int_equal(load_text(&cfg, "[server]\nnuma = off\n"), 0);
	assert_int_equal(cfg.numa, COPRO_NUMA_OFF);
}

static void should_reject_bad_numa_and_device_values(void **state)
{
	expect_error("[server]\nnuma = 1024\n", 2, "numa");
	expect_error("[server]\nnuma = -1\n", 2, "numa");
	expect_error("[server]\nnuma = yes\n", 2, "numa");
	expect_error("[server]\nnuma =\n", 2, "numa");
	expect_error("[model.m]\npath = /x\nnuma = 0x1\n", 3, "numa");
	expect_error("[model.m]\npath = /x\ndevice = gpu\n", 3, "device");
	expect_error("[model.m]\npath = /x\ndevice = cuda:\n", 3, "device");
	expect_error("[model.m]\npath = /x\ndevice = cuda:256\n", 3, "device");
	expect_error("[model.m]\npath = /x\ndevice = cuda:-1\n", 3, "device");
	/* device is a model key only: the poller always runs on the CPU. */
	expect_error("[server]\ndevice = cpu\n", 2, "device");
}

static void should_name_numa_settings(void **state)
{
	char buf[16];
	int32_t v;

	assert_string_equal(copro_numa_name(COPRO_NUMA_AUTO, buf, sizeof(buf)), "auto");
	assert_string_equal(copro_numa_name(COPRO_NUMA_OFF, buf, sizeof(buf)), "off");
	assert_string_equal(copro_numa_name(COPRO_NUMA_INHERIT, buf, sizeof(buf)), "inherit");
	assert_string_equal(copro_numa_name(7, buf, sizeof(buf)), "7");
	assert_int_equal(copro_numa_parse("7", &v), 0);
	assert_int_equal(v, 7);
	assert_int_equal(copro_numa_parse("inherit", &v), -EINVAL);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(should_fill_documented_defaults),
		cmocka_unit_test(should_default_socket_like_the_client_library),
		cmocka_unit_test(should_parse_and_name_idle_modes),
		cmocka_unit_test(should_load_every_key_of_a_full_file),
		cmocka_unit_test(should_keep_defaults_for_keys_not_in_file),
		cmocka_unit_test(should_accept_empty_file),
		cmocka_unit_test(should_clear_id_list_with_empty_value),
		cmocka_unit_test(should_accept_32_ids),
		cmocka_unit_test(should_accept_value_boundaries),
		cmocka_unit_test(should_reject_bad_octal_socket_mode),
		cmocka_unit_test(should_reject_unknown_idle_mode),
		cmocka_unit_test(should_reject_negative_spin),
		cmocka_unit_test(should_reject_zero_max_clients),
		cmocka_unit_test(should_reject_out_of_range_numbers),
		cmocka_unit_test(should_reject_uid_with_a_letter),
		cmocka_unit_test(should_reject_33_ids),
		cmocka_unit_test(should_reject_unknown_key),
		cmocka_unit_test(should_reject_unknown_section),
		cmocka_unit_test(should_reject_keys_outside_any_section),
		cmocka_unit_test(should_reject_too_long_socket_path),
		cmocka_unit_test(should_accept_socket_path_of_107_bytes),
		cmocka_unit_test(should_reject_syntax_error),
		cmocka_unit_test(should_report_message_for_the_reported_line),
		cmocka_unit_test(should_fail_with_enoent_for_missing_file),
		cmocka_unit_test(should_report_line_zero_for_missing_file_after_failed_load),
		cmocka_unit_test(should_set_single_keys_like_command_line_flags),
		cmocka_unit_test(should_always_allow_root),
		cmocka_unit_test(should_allow_only_own_uid_when_lists_empty),
		cmocka_unit_test(should_allow_listed_uids),
		cmocka_unit_test(should_allow_listed_gids),
		cmocka_unit_test(should_make_listed_uids_admins),
		cmocka_unit_test(should_apply_rules_loaded_from_file),
		cmocka_unit_test(should_default_numa_to_auto_and_models_to_the_server),
		cmocka_unit_test(should_parse_numa_and_device_keys),
		cmocka_unit_test(should_reject_bad_numa_and_device_values),
		cmocka_unit_test(should_name_numa_settings),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
