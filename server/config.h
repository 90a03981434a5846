/* SPDX-License-Identifier: MIT */
/*
 * config.h - coprod configuration: defaults, coprod.conf (INI) and flags.
 */
#ifndef COPRO_CONFIG_H
#define COPRO_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define COPRO_IDLE_SRV_SPIN	0
#define COPRO_IDLE_SRV_YIELD	1
#define COPRO_IDLE_SRV_SLEEP	2

#define COPRO_CFG_MAX_IDS	32
#define COPRO_CFG_MAX_MODELS	32
#define COPRO_CFG_MAX_PREFERRED	8

/* `numa` settings: a node number >= 0, or one of these. */
#define COPRO_NUMA_OFF		(-1)	/* no placement */
#define COPRO_NUMA_AUTO		(-2)	/* the node of the worker's device */
#define COPRO_NUMA_INHERIT	(-3)	/* a model's default: the [server] setting */
#define COPRO_NUMA_MAX_NODE	1023

/* A [model.NAME] section: an ONNX tensor model or a GGUF language model. */
struct copro_model_config {
	char name[64];
	char path[512];
	uint32_t max_batch;		/* rows per batch, default 64 */
	uint32_t max_delay_us;		/* wait for more rows, default 0: run at once */
	uint32_t n_preferred;
	uint32_t preferred[COPRO_CFG_MAX_PREFERRED];	/* run as soon as rows reach one */
	uint32_t queue_depth;		/* requests queued before COPRO_E_OVERLOAD, default 1024 */
	uint32_t precision;		/* COPRO_PREC_* of the kernels, default f32 */
	uint32_t reject_nonfinite;	/* 1: NaN/Inf outputs fail the request */
	uint32_t cache_mib;		/* response cache size, 0 = off */
	/* Language models (GGUF files); 0 takes the default. */
	uint32_t kv_cache_mib;		/* paged KV cache, default 64 */
	uint32_t block_tokens;		/* positions per KV block, default 16 */
	uint32_t max_batched_tokens;	/* tokens per forward step, default 512 */
	uint32_t max_seqs;		/* sequences running at once, default 64 */
	uint32_t context;		/* context length, default the model's */
	uint32_t threads;		/* forward-pass threads on the CPU, default 1 */
	/* Placement (placement.h). */
	int32_t numa;			/* COPRO_NUMA_*, or a node; default inherit */
	char device[16];		/* "auto" (default), "cpu" or "cuda:N" */
	int line;			/* where the section starts, for messages */
};

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
	int32_t numa;			/* COPRO_NUMA_AUTO (default), _OFF or a node */
	uint32_t n_models;
	struct copro_model_config models[COPRO_CFG_MAX_MODELS];
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

/* Fills a model section with its defaults (max_batch 64, queue_depth 1024). */
void copro_model_config_defaults(struct copro_model_config *m, const char *name);

/* Parses one key of a [model.NAME] section. */
int copro_model_config_set(struct copro_model_config *m, const char *key, const char *value);

/* Parses "spin|yield|sleep"; returns COPRO_IDLE_SRV_* or -EINVAL. */
int copro_idle_parse(const char *s);
const char *copro_idle_name(uint32_t idle);

/*
 * Parses a `numa` value: "auto", "off" or a node number 0..COPRO_NUMA_MAX_NODE
 * into *out (COPRO_NUMA_AUTO, COPRO_NUMA_OFF or the node). Returns 0 or -EINVAL.
 */
int copro_numa_parse(const char *s, int32_t *out);
/* Formats a `numa` setting back: "auto", "off", "inherit" or the node. */
const char *copro_numa_name(int32_t numa, char *buf, size_t len);

/* Whether a peer with these credentials may connect / administer. */
int copro_config_allows(const struct copro_config *cfg, uid_t uid, gid_t gid);
int copro_config_is_admin(const struct copro_config *cfg, uid_t uid);

#endif
