/*
 * api_stub.c - the fake plx_api table of api_stub.h: a settings table
 * and a log kept in memory, nothing else
 */
#include "config.h"

#include "api_stub.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STUB_KEYS 128
#define STUB_LOG_MAX (64 * 1024)

const plx_api_t *plx_api;
int ai_stub_module_token;

static struct { char *key, *value; } conf[STUB_KEYS];
static char log_buf[STUB_LOG_MAX];
static size_t log_len;

static void stub_logv(plx_module_t *m, plx_request_t *r, plx_log_level_t level,
                      const char *fmt, va_list ap)
{
    static const char *const names[] = { "debug", "info", "warn", "error" };
    char line[2048];
    int n;

    (void)m; (void)r;
    vsnprintf(line, sizeof line, fmt, ap);
    if (getenv("AI_STUB_VERBOSE"))
        fprintf(stderr, "[%s] %s\n", names[level & 3], line);
    n = snprintf(log_buf + log_len, sizeof log_buf - log_len, "%s: %s\n",
                 names[level & 3], line);
    if (n > 0 && log_len + (size_t)n < sizeof log_buf)
        log_len += (size_t)n;
}

static const char *stub_config_get(plx_module_t *m, const char *key)
{
    (void)m;
    for (int i = 0; i < STUB_KEYS; i++) {
        if (conf[i].key && !strcmp(conf[i].key, key))
            return conf[i].value;
    }
    return NULL;
}

static plx_api_t stub_api = {
    .size = sizeof(plx_api_t),
    .abi_major = PLX_ABI_MAJOR,
    .abi_minor = PLX_ABI_MINOR,
    .core_version = "stub",
    .logv = stub_logv,
    .config_get = stub_config_get,
};

void ai_stub_config(const char *key, const char *value)
{
    int free_slot = -1;

    for (int i = 0; i < STUB_KEYS; i++) {
        if (conf[i].key && !strcmp(conf[i].key, key)) {
            free(conf[i].value);
            conf[i].value = value ? strdup(value) : NULL;
            return;
        }
        if (!conf[i].key && free_slot < 0)
            free_slot = i;
    }
    if (value && free_slot >= 0) {
        conf[free_slot].key = strdup(key);
        conf[free_slot].value = strdup(value);
    }
}

void ai_stub_config_reset(void)
{
    for (int i = 0; i < STUB_KEYS; i++) {
        free(conf[i].key);
        free(conf[i].value);
        conf[i].key = conf[i].value = NULL;
    }
}

const char *ai_stub_log(void)
{
    log_buf[log_len] = '\0';
    return log_buf;
}

void ai_stub_log_reset(void)
{
    log_len = 0;
    log_buf[0] = '\0';
}

plx_api_t *ai_stub_table(void)
{
    return &stub_api;
}

void ai_stub_install(void)
{
    plx_api = &stub_api;
    ai_stub_config_reset();
    ai_stub_log_reset();
}
