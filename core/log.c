/*
 * log.c - the core's logger: one JSON object per line on stderr
 *
 * Operators ship stderr to journald or a collector; a line per event with
 * fixed keys (ts, level, module, request_id, msg) parses without regexes.
 * Lines are formatted into a bounded stack buffer and written with one
 * write(2), so lines from different threads never interleave.
 */
#include "config.h"
#include "core.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define LOG_LINE_MAX 8192
#define LOG_MSG_MAX  4096

static plx_log_level_t log_min = PLX_LOG_INFO;

static const char *const level_names[] = { "debug", "info", "warn", "error" };

void core_log_setup(plx_log_level_t min_level)
{
    log_min = min_level;
}

bool core_log_enabled(plx_log_level_t level)
{
    return level >= log_min;
}

plx_log_level_t core_log_level_parse(const char *s, bool *ok)
{
    for (size_t i = 0; i < CORE_ARRAY_LEN(level_names); i++) {
        if (s && strcmp(s, level_names[i]) == 0) {
            *ok = true;
            return (plx_log_level_t)i;
        }
    }
    *ok = false;
    return PLX_LOG_INFO;
}

static const char *level_name(plx_log_level_t level)
{
    if ((unsigned)level >= CORE_ARRAY_LEN(level_names))
        return "error";
    return level_names[level];
}

static void write_line(const char *buf, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, buf, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        buf += n;
        len -= (size_t)n;
    }
}

void core_log_json(json_t *obj)
{
    char *s;
    size_t len;

    if (!obj)
        return;
    s = json_dumps(obj, JSON_COMPACT | JSON_ENSURE_ASCII | JSON_REAL_PRECISION(10));
    json_decref(obj);
    if (!s)
        return;
    len = strlen(s);
    if (len > LOG_LINE_MAX - 1)
        len = LOG_LINE_MAX - 1;   /* NB: a cut line is not valid JSON; cut lines are bugs */
    s[len] = '\n';
    write_line(s, len + 1);
    free(s);
}

void core_logv(plx_log_level_t level, const char *module,
               const char *request_id, const char *fmt, va_list ap)
{
    char msg[LOG_MSG_MAX];
    char ts[32];
    json_t *obj;

    if (!core_log_enabled(level))
        return;
    vsnprintf(msg, sizeof msg, fmt, ap);
    core_time_rfc3339(ts);
    obj = json_object();
    if (!obj)
        return;
    json_object_set_new(obj, "ts", json_string(ts));
    json_object_set_new(obj, "level", json_string(level_name(level)));
    json_object_set_new(obj, "module", json_string(module ? module : "core"));
    if (request_id)
        json_object_set_new(obj, "request_id", json_string(request_id));
    /* json_string refuses invalid UTF-8; keep the line rather than lose it */
    json_t *m = json_string(msg);
    if (!m)
        m = json_string("(message was not valid UTF-8)");
    json_object_set_new(obj, "msg", m);
    core_log_json(obj);
}

void core_log(plx_log_level_t level, const char *module,
              const char *request_id, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    core_logv(level, module, request_id, fmt, ap);
    va_end(ap);
}
