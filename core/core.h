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
bool core_random_bytes(void *buf, size_t n);
/* monotonic seconds */
double core_now(void);
/* RFC 3339 UTC with milliseconds into out[32] */
void core_time_rfc3339(char out[32]);
const char *core_status_str(plx_status_t st);
/* HTTP status a plx_status_t maps to when a handler did not answer */
int core_status_http(plx_status_t st);
/* read a whole small file (secrets, SQL) with a size bound; caller frees */
char *core_read_file(const char *path, size_t max, size_t *len_out);

/* ---- encode.c: base64, hex, UUIDs, UTF-8; the API's 1.4 encodings, with
 * the contracts written at their entries in plexus/module.h ------------- */
size_t core_base64_encode(plx_b64_t variant, const void *in, size_t len,
                          char *out, size_t cap);
plx_status_t core_base64_decode(plx_b64_t variant, const char *in, size_t len,
                                void *out, size_t cap, size_t *out_len);
size_t core_hex_encode(const void *in, size_t len, char *out, size_t cap);
plx_status_t core_hex_decode(const char *in, size_t len, void *out, size_t cap,
                             size_t *out_len);
int core_uuid_valid(const char *s);
plx_status_t core_uuid_parse(const char *s, uint8_t out[16]);
void core_uuid_format(const uint8_t in[16], char out[37]);
/* version 4 or 7; PLX_ERR_INTERNAL when the kernel gave no randomness */
plx_status_t core_uuid_new(int version, char out[37]);
/* valid UTF-8 without NUL (C strings would cut at it) */
int core_utf8_valid(const char *s, size_t len);
size_t core_utf8_repair(const char *in, size_t len, char *out, size_t cap);
long core_utf8_chars(const char *s, size_t len);

/* stats.c: the core's counters for the metrics module; out->size set */
void core_stats(plx_core_stats_t *out);

/* the table handed to modules (api.c) */
const plx_api_t *core_api(void);

/* health.c: /health, /health/live, /health/ready */
bool core_health_register(void);
/* the server has finished starting (modules started, listening) */
void core_health_set_serving(bool serving);

#endif
