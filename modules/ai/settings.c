/*
 * settings.c - the [ai] section of plugins.d/ai.conf
 *
 * Read once in init through plx_config_get, which already applies the
 * environment (PLEXUS_AI_<KEY>, dots as underscores) and *_file keys, so
 * provider.openai.api_key may come from PLEXUS_AI_PROVIDER_OPENAI_API_KEY
 * or from the file named by provider.openai.api_key_file. Every bad value
 * is logged (key and value, never a key's secret) and init fails; all
 * problems are reported at once rather than the first one only.
 */
#include "config.h"

#include "ai.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define AI_PROVIDERS_MAX 32
#define AI_PROVIDER_NAME_MAX 64
#define AI_STRIP_MAX 32

ai_settings_t ai_cfg;

static const char *const kind_names[] = { "openai", "anthropic", "gemini" };
static const char *const default_urls[] = {
    "https://api.openai.com/v1",
    "https://api.anthropic.com",
    "https://generativelanguage.googleapis.com/v1beta",
};

typedef struct parse {
    plx_module_t *m;
    bool ok;
} parse_t;

static void bad(parse_t *p, const char *key, const char *value,
                const char *expected)
{
    plx_log(p->m, PLX_LOG_ERROR, "[ai] %s = \"%s\": %s", key, value, expected);
    p->ok = false;
}

static long get_long(parse_t *p, const char *key, long def, long min, long max)
{
    const char *v = plx_config_get(p->m, key);
    char expected[96];
    char *end;
    long n;

    if (!v)
        return def;
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        snprintf(expected, sizeof expected,
                 "expected an integer from %ld to %ld", min, max);
        bad(p, key, v, expected);
        return def;
    }
    return n;
}

/* an optional model name: NULL when unset */
static char *get_name(parse_t *p, const char *key)
{
    const char *v = plx_config_get(p->m, key);

    if (!v || !*v)
        return NULL;
    if (strlen(v) > AI_NAME_MAX) {
        bad(p, key, v, "expected a model name of at most 128 bytes");
        return NULL;
    }
    return strdup(v);
}

/* ---- lists: "a, b c" ------------------------------------------------------ */

/* the items of a comma or space separated list; *n of them. Caller frees
 * each and the array. */
static char **split_list(const char *s, size_t *n)
{
    size_t cap = 0;
    char **v = NULL;

    *n = 0;
    while (s && *s) {
        size_t len;
        while (*s == ',' || isspace((unsigned char)*s))
            s++;
        len = strcspn(s, ", \t\r\n");
        if (len == 0)
            break;
        if (*n == cap) {
            char **nv = realloc(v, (cap = cap ? cap * 2 : 4) * sizeof *v);
            if (!nv)
                break;
            v = nv;
        }
        v[(*n)++] = strndup(s, len);
        s += len;
    }
    return v;
}

static void free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

static bool name_ok(const char *s)
{
    size_t n = strlen(s);

    if (n == 0 || n > AI_PROVIDER_NAME_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        if (!islower((unsigned char)s[i]) && !isdigit((unsigned char)s[i])
            && s[i] != '_' && s[i] != '-')
            return false;
    }
    return true;
}

/* request field names: letters, digits, '_', and "messages.<field>" */
static bool field_ok(const char *s)
{
    if (!strncmp(s, "messages.", 9))
        s += 9;
    if (!*s || strlen(s) > 64)
        return false;
    for (; *s; s++) {
        if (!isalnum((unsigned char)*s) && *s != '_')
            return false;
    }
    return true;
}

/* ---- one provider --------------------------------------------------------- */

static const char *pkey(char *buf, size_t len, const char *name, const char *k)
{
    snprintf(buf, len, "provider.%s.%s", name, k);
    return buf;
}

static bool host_is(const char *url, const char *host)
{
    const char *h = strstr(url, "://");
    size_t n = strlen(host);

    if (!h)
        return false;
    h += 3;
    return !strncmp(h, host, n) && (h[n] == '\0' || h[n] == '/' || h[n] == ':');
}

static void read_kind(parse_t *p, ai_provider_t *pr)
{
    char key[160];
    const char *v = plx_config_get(p->m, pkey(key, sizeof key, pr->name, "type"));

    for (int k = 0; v && k < 3; k++) {
        if (!strcmp(v, kind_names[k])) {
            pr->kind = (ai_kind_t)k;
            return;
        }
    }
    bad(p, key, v ? v : "", "expected openai, anthropic or gemini");
}

static void read_url(parse_t *p, ai_provider_t *pr)
{
    char key[160];
    const char *v = plx_config_get(p->m, pkey(key, sizeof key, pr->name,
                                              "base_url"));
    size_t n;

    if (!v)
        v = default_urls[pr->kind];
    n = strlen(v);
    while (n > 0 && v[n - 1] == '/')
        n--;
    if ((strncmp(v, "http://", 7) && strncmp(v, "https://", 8)) || n < 9
        || n > 1024 || strpbrk(v, " \t\r\n?#")) {
        bad(p, key, v, "expected an http:// or https:// URL without query");
        return;
    }
    pr->base_url = strndup(v, n);
}

/* the key: printable ASCII only, since it goes into a header line. Its
 * value is never logged. */
static void read_key(parse_t *p, ai_provider_t *pr)
{
    char key[160];
    const char *v = plx_config_get(p->m, pkey(key, sizeof key, pr->name,
                                              "api_key"));

    if (!v || !*v)
        return;
    for (const char *c = v; *c; c++) {
        if (*c <= 0x20 || *c >= 0x7f) {
            plx_log(p->m, PLX_LOG_ERROR, "[ai] %s: the key holds a space or a "
                    "character that is not printable ASCII", key);
            p->ok = false;
            return;
        }
    }
    pr->api_key = strdup(v);
}

static void read_openai_fields(parse_t *p, ai_provider_t *pr)
{
    char key[160];
    const char *v;
    bool openai = pr->base_url && host_is(pr->base_url, "api.openai.com");
    bool groq = pr->base_url && host_is(pr->base_url, "api.groq.com");

    v = plx_config_get(p->m, pkey(key, sizeof key, pr->name, "max_tokens_field"));
    pr->legacy_max_tokens = !openai;
    if (v && !strcmp(v, "max_tokens"))
        pr->legacy_max_tokens = true;
    else if (v && !strcmp(v, "max_completion_tokens"))
        pr->legacy_max_tokens = false;
    else if (v)
        bad(p, key, v, "expected max_tokens or max_completion_tokens");

    /* Groq answers 400 to these (reference section 5) */
    v = plx_config_get(p->m, pkey(key, sizeof key, pr->name, "strip"));
    if (!v && groq)
        v = "logprobs, logit_bias, top_logprobs, n, messages.name";
    pr->strip = split_list(v, &pr->nstrip);
    if (pr->nstrip > AI_STRIP_MAX)
        bad(p, key, v, "expected at most 32 field names");
    for (size_t i = 0; i < pr->nstrip; i++) {
        if (!pr->strip[i] || !field_ok(pr->strip[i])) {
            bad(p, key, v, "expected request field names (letters, digits, "
                "'_'), or messages.<field>");
            break;
        }
    }
}

static void read_provider(parse_t *p, ai_provider_t *pr)
{
    char key[160];

    read_kind(p, pr);
    read_url(p, pr);
    read_key(p, pr);
    if (pr->kind == AI_KIND_OPENAI) {
        read_openai_fields(p, pr);
        return;
    }
    if (plx_config_get(p->m, pkey(key, sizeof key, pr->name, "max_tokens_field")))
        bad(p, key, plx_config_get(p->m, key), "only for providers of type openai");
    if (plx_config_get(p->m, pkey(key, sizeof key, pr->name, "strip")))
        bad(p, key, plx_config_get(p->m, key), "only for providers of type openai");
}

static void read_providers(parse_t *p)
{
    const char *v = plx_config_get(p->m, "providers");
    size_t total, n;
    char **names = split_list(v, &total);

    n = total;
    if (n > AI_PROVIDERS_MAX) {
        bad(p, "providers", v, "expected at most 32 providers");
        n = AI_PROVIDERS_MAX;
    }
    ai_cfg.providers = n ? calloc(n, sizeof *ai_cfg.providers) : NULL;
    for (size_t i = 0; i < n && ai_cfg.providers; i++) {
        if (!names[i] || !name_ok(names[i])) {
            bad(p, "providers", v, "expected names of a-z, 0-9, '_' and '-', "
                "at most 64 characters each");
            break;
        }
        if (ai_provider_find(names[i])) {
            bad(p, "providers", v, "a provider is listed twice");
            break;
        }
        ai_cfg.providers[i].name = strdup(names[i]);
        ai_cfg.nproviders = i + 1;
        read_provider(p, &ai_cfg.providers[i]);
    }
    free_list(names, total);
}

/* ---- the section ---------------------------------------------------------- */

static void read_numbers(parse_t *p)
{
    ai_cfg.connect_timeout_ms = get_long(p, "connect_timeout_ms", 5000, 1, 600000);
    ai_cfg.first_token_timeout_ms =
        get_long(p, "first_token_timeout_ms", 60000, 1, 3600000);
    ai_cfg.idle_timeout_ms = get_long(p, "idle_timeout_ms", 30000, 1, 3600000);
    ai_cfg.total_timeout_ms = get_long(p, "total_timeout_ms", 600000, 1, 86400000);
    ai_cfg.max_retries = (int)get_long(p, "max_retries", 2, 0, 10);
    ai_cfg.retry_base_ms = get_long(p, "retry_base_ms", 500, 0, 600000);
    ai_cfg.retry_max_ms = get_long(p, "retry_max_ms", 8000, 0, 3600000);
    ai_cfg.default_max_tokens = get_long(p, "default_max_tokens", 1024, 1, 10000000);
    ai_cfg.max_output_tokens = get_long(p, "max_output_tokens", 16384, 1, 10000000);
    ai_cfg.reservation_ttl_s = get_long(p, "reservation_ttl_s", 900, 10, 604800);
    ai_cfg.max_response_bytes = (size_t)get_long(p, "max_response_bytes",
                                                  8L << 20, 4096, 1L << 30);
    ai_cfg.ws_max_streams = (int)get_long(p, "ws_max_streams", 4, 1, 256);
}

/* relations between keys, each reported against the key that breaks it */
static void check_relations(parse_t *p)
{
    char v[32];

    if (ai_cfg.retry_max_ms < ai_cfg.retry_base_ms) {
        snprintf(v, sizeof v, "%ld", ai_cfg.retry_max_ms);
        bad(p, "retry_max_ms", v, "expected at least retry_base_ms");
    }
    if (ai_cfg.default_max_tokens > ai_cfg.max_output_tokens) {
        snprintf(v, sizeof v, "%ld", ai_cfg.default_max_tokens);
        bad(p, "default_max_tokens", v, "expected at most max_output_tokens");
    }
}

bool ai_settings_load(plx_module_t *m)
{
    parse_t p = { .m = m, .ok = true };

    ai_settings_free();
    read_numbers(&p);
    check_relations(&p);
    ai_cfg.default_model = get_name(&p, "default_model");
    ai_cfg.default_embedding_model = get_name(&p, "default_embedding_model");
    read_providers(&p);
    /* no provider is valid: the gateway says so when it starts */
    return p.ok;
}

static void provider_free(ai_provider_t *pr)
{
    free(pr->name);
    free(pr->base_url);
    if (pr->api_key) {
        /* do not leave the key in freed memory */
        volatile char *k = pr->api_key;
        while (*k)
            *k++ = 0;
        free(pr->api_key);
    }
    free_list(pr->strip, pr->nstrip);
}

void ai_settings_free(void)
{
    for (size_t i = 0; i < ai_cfg.nproviders; i++)
        provider_free(&ai_cfg.providers[i]);
    free(ai_cfg.providers);
    free(ai_cfg.default_model);
    free(ai_cfg.default_embedding_model);
    memset(&ai_cfg, 0, sizeof ai_cfg);
}

const ai_provider_t *ai_provider_find(const char *name)
{
    for (size_t i = 0; name && i < ai_cfg.nproviders; i++) {
        if (ai_cfg.providers[i].name && !strcmp(ai_cfg.providers[i].name, name))
            return &ai_cfg.providers[i];
    }
    return NULL;
}
