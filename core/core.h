/*
 * core.h - declarations shared by the core's files, never by modules
 *
 * Every core .c includes config.h (autoconf) first, then this file. It pulls
 * in the public API with PLX_NO_WRAPPERS: the core implements the table, it
 * does not call through it. Subsystems keep their own header (http.h, db.h,
 * ...) for what only their neighbours need.
 */
#ifndef PLEXUS_CORE_H
#define PLEXUS_CORE_H

#define PLX_NO_WRAPPERS 1
#include "plexus/module.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>

/* file-local helpers become visible to unit tests */
#ifdef PLX_UNIT_TESTS
#define PLX_STATIC
#else
#define PLX_STATIC static
#endif

#define CORE_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- log.c: one JSON object per line on stderr ------------------------ */
void core_log_setup(plx_log_level_t min_level);
bool core_log_enabled(plx_log_level_t level);
void core_logv(plx_log_level_t level, const char *module,
               const char *request_id, const char *fmt, va_list ap);
void core_log(plx_log_level_t level, const char *module,
              const char *request_id, const char *fmt, ...) PLX_PRINTF(4, 5);
/* a pre-built JSON object (the access log); steals obj */
void core_log_json(json_t *obj);
plx_log_level_t core_log_level_parse(const char *s, bool *ok);

#define LOG_DEBUG(...) core_log(PLX_LOG_DEBUG, "core", NULL, __VA_ARGS__)
#define LOG_INFO(...)  core_log(PLX_LOG_INFO, "core", NULL, __VA_ARGS__)
#define LOG_WARN(...)  core_log(PLX_LOG_WARN, "core", NULL, __VA_ARGS__)
#define LOG_ERROR(...) core_log(PLX_LOG_ERROR, "core", NULL, __VA_ARGS__)

/* ---- util.c ------------------------------------------------------------ */
/* constant-time comparison of two byte strings (length leaks, content not) */
bool core_secure_equal(const void *a, size_t alen, const void *b, size_t blen);
/* random UUID v4 into out[37]; false if the kernel gave no randomness */
bool core_uuid_v4(char out[37]);
bool core_random_bytes(void *buf, size_t n);
/* monotonic seconds */
double core_now(void);
/* RFC 3339 UTC with milliseconds into out[32] */
void core_time_rfc3339(char out[32]);
/* valid UTF-8 without NUL? */
bool core_utf8_valid(const char *s, size_t len);
const char *core_status_str(plx_status_t st);
/* HTTP status a plx_status_t maps to when a handler did not answer */
int core_status_http(plx_status_t st);
/* read a whole small file (secrets, SQL) with a size bound; caller frees */
char *core_read_file(const char *path, size_t max, size_t *len_out);

/* stats.c: the core's counters for the metrics module; out->size set */
void core_stats(plx_core_stats_t *out);

/* the table handed to modules (api.c) */
const plx_api_t *core_api(void);

/* health.c: /health, /health/live, /health/ready */
bool core_health_register(void);
/* the server has finished starting (modules started, listening) */
void core_health_set_serving(bool serving);

#endif
