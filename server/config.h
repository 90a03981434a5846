/* SPDX-License-Identifier: MIT */
/*
 * config.h - coprod configuration: defaults, coprod.conf (INI) and flags.
 */
#ifndef COPRO_CONFIG_H
#define COPRO_CONFIG_H

#include <stdint.h>
#include <sys/types.h>

#define COPRO_IDLE_SRV_SPIN	0
#define COPRO_IDLE_SRV_YIELD	1
#define COPRO_IDLE_SRV_SLEEP	2

#define COPRO_CFG_MAX_IDS	32

struct copro_config {
	char socket[108];
	uint32_t socket_mode;
	uint32_t n_allow_uids, n_allow_gids, n_admin_uids;
	uint32_t allow_uids[COPRO_CFG_MAX_IDS];
	uint32_t allow_gids[COPRO_CFG_MAX_IDS];
	uint32_t admin_uids[COPRO_CFG_MAX_IDS];
	uint32_t max_clients;
	uint64_t max_arena_mib;
	uint32_t idle;			/* COPRO_IDLE_SRV_* */
	uint32_t spin_us;
	uint32_t heartbeat_ms;
	int log_level;
	char errmsg[256];		/* why copro_config_load failed */
	int errline;			/* on this line (0: opening the file) */
};

/* Fills in the defaults (the socket from copro_default_socket()). */
void copro_config_defaults(struct copro_config *cfg);

/*
 * Reads an INI file over *cfg. Unknown sections or keys and bad values are
 * errors: returns 0, -ENOENT when the file cannot be opened, or -EINVAL with
 * cfg->errline and cfg->errmsg saying where and why.
 */
int copro_config_load(struct copro_config *cfg, const char *path);

/* Parses one key of the [server] section; used by the loader and by flags. */
int copro_config_set(struct copro_config *cfg, const char *key, const char *value);

/* Parses "spin|yield|sleep"; returns COPRO_IDLE_SRV_* or -EINVAL. */
int copro_idle_parse(const char *s);
const char *copro_idle_name(uint32_t idle);

/* Whether a peer with these credentials may connect / administer. */
int copro_config_allows(const struct copro_config *cfg, uid_t uid, gid_t gid);
int copro_config_is_admin(const struct copro_config *cfg, uid_t uid);

#endif
