/* SPDX-License-Identifier: MIT */
/* log.h - one-line log messages on stderr: "coprod: LEVEL: message". */
#ifndef COPRO_LOG_H
#define COPRO_LOG_H

#define COPRO_LOG_ERROR	0
#define COPRO_LOG_WARN	1
#define COPRO_LOG_INFO	2
#define COPRO_LOG_DEBUG	3

extern int copro_log_level;

void copro_log(int level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Parses "error|warn|info|debug"; returns the level or -EINVAL. */
int copro_log_parse(const char *s);

#define log_err(...)	copro_log(COPRO_LOG_ERROR, __VA_ARGS__)
#define log_warn(...)	copro_log(COPRO_LOG_WARN, __VA_ARGS__)
#define log_info(...)	copro_log(COPRO_LOG_INFO, __VA_ARGS__)
#define log_debug(...)	copro_log(COPRO_LOG_DEBUG, __VA_ARGS__)

#endif
