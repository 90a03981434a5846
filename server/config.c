// SPDX-License-Identifier: MIT
/*
 * config.c - coprod.conf parsing with libinih (Debian's libinih: a small,
 * well-kept INI reader, so the daemon does not carry its own parser).
 */
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "sockpath.h"
#include "log.h"

void copro_config_defaults(struct copro_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	if (copro_sockpath_default(cfg->socket, sizeof(cfg->socket)) < 0)
		snprintf(cfg->socket, sizeof(cfg->socket), "/tmp/coprod-%u.sock", (unsigned)getuid());
	cfg->socket_mode = 0600;
	cfg->max_clients = 256;
	cfg->max_arena_mib = 256;
	cfg->idle = COPRO_IDLE_SRV_SLEEP;
	cfg->spin_us = 50;
	cfg->heartbeat_ms = 100;
	cfg->log_level = COPRO_LOG_INFO;
	cfg->numa = COPRO_NUMA_AUTO;
}

int copro_idle_parse(const char *s)
{
	if (!strcmp(s, "spin"))
		return COPRO_IDLE_SRV_SPIN;
	if (!strcmp(s, "yield"))
		return COPRO_IDLE_SRV_YIELD;
	if (!strcmp(s, "sleep"))
		return COPRO_IDLE_SRV_SLEEP;
	return -EINVAL;
}

const char *copro_idle_name(uint32_t idle)
{
	static const char *const n[] = { "spin", "yield", "sleep" };

	return idle <= COPRO_IDLE_SRV_SLEEP ? n[idle] : "?";
}

/* Parses an unsigned integer in [lo, hi] in the given base; whole string. */
static int parse_uint(const char *s, int base, uint64_t lo, uint64_t hi, uint64_t *out)
{
	char *end;
	unsigned long long v;

	while (*s == ' ' || *s == '\t')
		s++;
	if (!*s || *s == '-')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	while (*end == ' ' || *end == '\t')
		end++;
	if (errno || *end || v < lo || v > hi)
		return -EINVAL;
	*out = v;
	return 0;
}

int copro_numa_parse(const char *s, int32_t *out)
{
	uint64_t v;

	if (!strcmp(s, "auto")) {
		*out = COPRO_NUMA_AUTO;
		return 0;
	}
	if (!strcmp(s, "off")) {
		*out = COPRO_NUMA_OFF;
		return 0;
	}
	if (parse_uint(s, 10, 0, COPRO_NUMA_MAX_NODE, &v))
		return -EINVAL;
	*out = (int32_t)v;
	return 0;
}

const char *copro_numa_name(int32_t numa, char *buf, size_t len)
{
	if (numa == COPRO_NUMA_AUTO)
		return "auto";
	if (numa == COPRO_NUMA_OFF)
		return "off";
	if (numa == COPRO_NUMA_INHERIT)
		return "inherit";
	snprintf(buf, len, "%d", (int)numa);
	return buf;
}

/*
 * Checks a device name: "auto", "cpu" or "cuda:N" with N in 0..255.
 * Whether the device exists is for the model's load to say.
 */
static int device_valid(const char *s)
{
	uint64_t v;

	if (!strcmp(s, "auto") || !strcmp(s, "cpu"))
		return 1;
	return !strncmp(s, "cuda:", 5) && s[5] >= '0' && s[5] <= '9' &&
	       !parse_uint(s + 5, 10, 0, 255, &v);
}

/* Parses "1000, 1001 ,0" into ids; an empty string clears the list. */
static int parse_ids(const char *s, uint32_t *ids, uint32_t *n)
{
	char buf[1024], *tok, *save;
	uint32_t k = 0;

	if (strlen(s) >= sizeof(buf))
		return -EINVAL;
	strcpy(buf, s);
	for (tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
		uint64_t v;

		if (k == COPRO_CFG_MAX_IDS || parse_uint(tok, 10, 0, UINT32_MAX - 1, &v))
			return -EINVAL;
		ids[k++] = (uint32_t)v;
	}
	*n = k;
	return 0;
}

int copro_config_set(struct copro_config *cfg, const char *key, const char *value)
{
	uint64_t v;
	int r;

	if (!strcmp(key, "socket")) {
		if (!*value || strlen(value) >= sizeof(cfg->socket))
			return -EINVAL;
		strcpy(cfg->socket, value);
	} else if (!strcmp(key, "socket_mode")) {
		if (parse_uint(value, 8, 0, 0777, &v))
			return -EINVAL;
		cfg->socket_mode = (uint32_t)v;
	} else if (!strcmp(key, "allow_uids")) {
		return parse_ids(value, cfg->allow_uids, &cfg->n_allow_uids);
	} else if (!strcmp(key, "allow_gids")) {
		return parse_ids(value, cfg->allow_gids, &cfg->n_allow_gids);
	} else if (!strcmp(key, "admin_uids")) {
		return parse_ids(value, cfg->admin_uids, &cfg->n_admin_uids);
	} else if (!strcmp(key, "max_clients")) {
		if (parse_uint(value, 10, 1, 65536, &v))
			return -EINVAL;
		cfg->max_clients = (uint32_t)v;
	} else if (!strcmp(key, "max_arena_mib")) {
		if (parse_uint(value, 10, 1, 4096, &v))
			return -EINVAL;
		cfg->max_arena_mib = v;
	} else if (!strcmp(key, "idle")) {
		r = copro_idle_parse(value);
		if (r < 0)
			return r;
		cfg->idle = (uint32_t)r;
	} else if (!strcmp(key, "spin_us")) {
		if (parse_uint(value, 10, 0, 1000000, &v))
			return -EINVAL;
		cfg->spin_us = (uint32_t)v;
	} else if (!strcmp(key, "heartbeat_ms")) {
		if (parse_uint(value, 10, 10, 60000, &v))
			return -EINVAL;
		cfg->heartbeat_ms = (uint32_t)v;
	} else if (!strcmp(key, "log_level")) {
		r = copro_log_parse(value);
		if (r < 0)
			return r;
		cfg->log_level = r;
	} else if (!strcmp(key, "numa")) {
		return copro_numa_parse(value, &cfg->numa);
	} else {
		return -ENOENT;
	}
	return 0;
}

void copro_model_config_defaults(struct copro_model_config *m, const char *name)
{
	memset(m, 0, sizeof(*m));
	snprintf(m->name, sizeof(m->name), "%s", name);
	m->max_batch = 64;
	m->queue_depth = 1024;
	m->numa = COPRO_NUMA_INHERIT;
	snprintf(m->device, sizeof(m->device), "auto");
}

int copro_model_config_set(struct copro_model_config *m, const char *key, const char *value)
{
	uint64_t v;

	if (!strcmp(key, "path")) {
		if (!*value || strlen(value) >= sizeof(m->path))
			return -EINVAL;
		strcpy(m->path, value);
	} else if (!strcmp(key, "max_batch")) {
		if (parse_uint(value, 10, 1, 4096, &v))
			return -EINVAL;
		m->max_batch = (uint32_t)v;
	} else if (!strcmp(key, "max_delay_us")) {
		if (parse_uint(value, 10, 0, 1000000, &v))
			return -EINVAL;
		m->max_delay_us = (uint32_t)v;
	} else if (!strcmp(key, "preferred_batch")) {
		uint32_t ids[COPRO_CFG_MAX_IDS], n;

		if (parse_ids(value, ids, &n) || n > COPRO_CFG_MAX_PREFERRED)
			return -EINVAL;
		for (uint32_t i = 0; i < n; i++)
			if (!ids[i] || ids[i] > 4096)
				return -EINVAL;
		memcpy(m->preferred, ids, n * sizeof(ids[0]));
		m->n_preferred = n;
	} else if (!strcmp(key, "queue_depth")) {
		if (parse_uint(value, 10, 1, 65536, &v))
			return -EINVAL;
		m->queue_depth = (uint32_t)v;
	} else if (!strcmp(key, "precision")) {
		if (!strcmp(value, "f32"))
			m->precision = 0;
		else if (!strcmp(value, "bf16"))
			m->precision = 1;
		else if (!strcmp(value, "int8"))
			m->precision = 2;
		else
			return -EINVAL;
	} else if (!strcmp(key, "cache_mib")) {
		if (parse_uint(value, 10, 0, 65536, &v))
			return -EINVAL;
		m->cache_mib = (uint32_t)v;
	} else if (!strcmp(key, "kv_cache_mib")) {
		if (parse_uint(value, 10, 1, 1048576, &v))
			return -EINVAL;
		m->kv_cache_mib = (uint32_t)v;
	} else if (!strcmp(key, "block_tokens")) {
		if (parse_uint(value, 10, 1, 1024, &v))
			return -EINVAL;
		m->block_tokens = (uint32_t)v;
	} else if (!strcmp(key, "max_batched_tokens")) {
		if (parse_uint(value, 10, 1, 65536, &v))
			return -EINVAL;
		m->max_batched_tokens = (uint32_t)v;
	} else if (!strcmp(key, "max_seqs")) {
		if (parse_uint(value, 10, 1, 4096, &v))
			return -EINVAL;
		m->max_seqs = (uint32_t)v;
	} else if (!strcmp(key, "threads")) {
		if (parse_uint(value, 10, 1, 16, &v))
			return -EINVAL;
		m->threads = (uint32_t)v;
	} else if (!strcmp(key, "context")) {
		if (parse_uint(value, 10, 1, 1048576, &v))
			return -EINVAL;
		m->context = (uint32_t)v;
	} else if (!strcmp(key, "reject_nonfinite")) {
		if (parse_uint(value, 10, 0, 1, &v))
			return -EINVAL;
		m->reject_nonfinite = (uint32_t)v;
	} else if (!strcmp(key, "numa")) {
		return copro_numa_parse(value, &m->numa);
	} else if (!strcmp(key, "device")) {
		if (!device_valid(value))
			return -EINVAL;
		snprintf(m->device, sizeof(m->device), "%s", value);
	} else {
		return -ENOENT;
	}
	return 0;
}

/* Finds or starts the [model.NAME] section; NULL when the name is bad or too many. */
static struct copro_model_config *model_section(struct copro_config *cfg, const char *name)
{
	struct copro_model_config *m;

	if (!*name || strlen(name) >= sizeof(m->name))
		return NULL;
	for (uint32_t i = 0; i < cfg->n_models; i++)
		if (!strcmp(cfg->models[i].name, name))
			return &cfg->models[i];
	if (cfg->n_models == COPRO_CFG_MAX_MODELS)
		return NULL;
	m = &cfg->models[cfg->n_models++];
	copro_model_config_defaults(m, name);
	return m;
}

static int ini_cb(void *user, const char *section, const char *name, const char *value)
{
	struct copro_config *cfg = user;
	int r;

	if (!strncmp(section, "model.", 6)) {
		struct copro_model_config *m = model_section(cfg, section + 6);

		if (!m) {
			if (!cfg->errmsg[0])
				snprintf(cfg->errmsg, sizeof(cfg->errmsg),
					 "bad model section [%s] (name 1..63 bytes, at most %d models)",
					 section, COPRO_CFG_MAX_MODELS);
			return 0;
		}
		r = copro_model_config_set(m, name, value);
	} else if (strcmp(section, "server")) {
		if (cfg->errmsg[0])
			return 0;
		snprintf(cfg->errmsg, sizeof(cfg->errmsg), "unknown section [%s]", section);
		return 0;
	} else {
		r = copro_config_set(cfg, name, value);
	}
	/* inih keeps going after an error and reports the first bad line: keep its message. */
	if (r && cfg->errmsg[0])
		return 0;
	if (r == -ENOENT)
		snprintf(cfg->errmsg, sizeof(cfg->errmsg), "unknown key '%s'", name);
	else if (r)
		snprintf(cfg->errmsg, sizeof(cfg->errmsg), "bad value '%s' for '%s'", value, name);
	return r == 0;
}

int copro_config_load(struct copro_config *cfg, const char *path)
{
	FILE *f = fopen(path, "r");
	int line;

	cfg->errmsg[0] = '\0';
	cfg->errline = 0;
	if (!f) {
		snprintf(cfg->errmsg, sizeof(cfg->errmsg), "%s: cannot open", path);
		return -ENOENT;
	}
	line = ini_parse_file(f, ini_cb, cfg);
	fclose(f);
	cfg->errline = line;
	if (line) {
		if (!cfg->errmsg[0])
			snprintf(cfg->errmsg, sizeof(cfg->errmsg), "syntax error");
		return -EINVAL;
	}
	for (uint32_t i = 0; i < cfg->n_models; i++) {
		if (!cfg->models[i].path[0]) {
			snprintf(cfg->errmsg, sizeof(cfg->errmsg), "model '%s' has no path",
				 cfg->models[i].name);
			return -EINVAL;
		}
	}
	return 0;
}

static int in_list(const uint32_t *ids, uint32_t n, uint32_t id)
{
	for (uint32_t i = 0; i < n; i++)
		if (ids[i] == id)
			return 1;
	return 0;
}

int copro_config_allows(const struct copro_config *cfg, uid_t uid, gid_t gid)
{
	if (uid == 0)
		return 1;
	if (!cfg->n_allow_uids && !cfg->n_allow_gids)
		return uid == getuid();
	return in_list(cfg->allow_uids, cfg->n_allow_uids, uid) ||
	       in_list(cfg->allow_gids, cfg->n_allow_gids, gid);
}

int copro_config_is_admin(const struct copro_config *cfg, uid_t uid)
{
	if (uid == 0 || (!cfg->n_admin_uids && uid == getuid()))
		return 1;
	return in_list(cfg->admin_uids, cfg->n_admin_uids, uid);
}
