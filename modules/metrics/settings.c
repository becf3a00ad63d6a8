/*
 * settings.c - the [metrics] section: who may scrape, histogram buckets,
 * the series bound
 *
 *   allow      = 127.0.0.1, ::1      addresses and CIDRs (IPv4, IPv6), or "any"
 *   token      =                     a Bearer token the scraper must send
 *                                    (or token_file, or PLEXUS_METRICS_TOKEN)
 *   buckets    = 0.005, 0.01, ...    request latency buckets, seconds
 *   max_series = 1000                label combinations per family
 *
 * A bad value stops the server at start with the key, what was expected
 * and what was found: a metrics endpoint silently open to the world, or
 * silently closed, is worse than a refusal to start. The parsers are pure
 * so the unit tests can reach every branch.
 */
#include "metrics.h"

#include <arpa/inet.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define ITEM_MAX 128   /* bytes of one list item */
#define TOKEN_MIN 16   /* shorter tokens are accepted with a warning */
#define TOKEN_MAX 4096

/* Next comma-separated item of *p, blanks trimmed, into item. false at
 * the end; *toolong when an item did not fit. */
static bool next_item(const char **p, char item[ITEM_MAX], bool *toolong)
{
    const char *s = *p, *end;
    size_t n;

    if (!*s)
        return false;
    end = strchr(s, ',');
    n = end ? (size_t)(end - s) : strlen(s);
    *p = end ? end + 1 : s + n;
    while (n > 0 && (*s == ' ' || *s == '\t')) {
        s++;
        n--;
    }
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    *toolong = n >= ITEM_MAX;
    n = *toolong ? ITEM_MAX - 1 : n;
    memcpy(item, s, n);
    item[n] = '\0';
    return true;
}

/* text of an address into 16 bytes, IPv4 mapped into IPv6 */
static bool addr_parse(const char *s, uint8_t out[16], bool *v4)
{
    static const uint8_t mapped[12] = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff };
    struct in_addr a4;

    *v4 = inet_pton(AF_INET, s, &a4) == 1;
    if (*v4) {
        memcpy(out, mapped, sizeof mapped);
        memcpy(out + 12, &a4, 4);
        return true;
    }
    return inet_pton(AF_INET6, s, out) == 1;
}

static bool net_parse(char *item, metrics_net_t *net)
{
    char *slash = strchr(item, '/'), *end;
    bool v4;
    long bits;

    if (slash)
        *slash = '\0';
    if (!addr_parse(item, net->addr, &v4))
        return false;
    net->prefix = 128;
    if (!slash)
        return true;
    errno = 0;
    bits = strtol(slash + 1, &end, 10);
    if (errno || end == slash + 1 || *end || bits < 0 || bits > (v4 ? 32 : 128))
        return false;
    net->prefix = (unsigned)bits + (v4 ? 96 : 0);
    return true;
}

bool metrics_allow_parse(const char *s, metrics_settings_t *out, char *err,
                         size_t errlen)
{
    char item[ITEM_MAX];
    bool toolong;

    out->allow_any = false;
    out->nallow = 0;
    while (s && next_item(&s, item, &toolong)) {
        if (strcasecmp(item, "any") == 0 && !toolong) {
            out->allow_any = true;
            continue;
        }
        if (out->nallow == METRICS_ALLOW_MAX) {
            snprintf(err, errlen, "expected at most %d entries", METRICS_ALLOW_MAX);
            return false;
        }
        if (toolong || !net_parse(item, &out->allow[out->nallow])) {
            snprintf(err, errlen, "expected an IPv4 or IPv6 address, a CIDR "
                     "such as 10.0.0.0/8, or \"any\"; found \"%.64s\"", item);
            return false;
        }
        out->nallow++;
    }
    if (!out->allow_any && out->nallow == 0) {
        snprintf(err, errlen, "expected at least one address, CIDR or "
                 "\"any\"; found none");
        return false;
    }
    return true;
}

static bool prefix_matches(const uint8_t *a, const uint8_t *net, unsigned bits)
{
    unsigned whole = bits / 8, rest = bits % 8;

    if (memcmp(a, net, whole) != 0)
        return false;
    if (rest == 0)
        return true;
    uint8_t mask = (uint8_t)(0xff << (8 - rest));
    return (a[whole] & mask) == (net[whole] & mask);
}

bool metrics_allow_match(const metrics_settings_t *s, const char *addr)
{
    uint8_t a[16];
    bool v4;

    if (s->allow_any)
        return true;
    if (!addr || !addr_parse(addr, a, &v4))
        return false;
    for (size_t i = 0; i < s->nallow; i++)
        if (prefix_matches(a, s->allow[i].addr, s->allow[i].prefix))
            return true;
    return false;
}

bool metrics_buckets_parse(const char *s, double *out, size_t *n, char *err,
                           size_t errlen)
{
    char item[ITEM_MAX], *end;
    bool toolong;

    *n = 0;
    while (s && next_item(&s, item, &toolong)) {
        double v = strtod(item, &end);
        if (toolong || end == item || *end || !isfinite(v)) {
            if (!toolong && (strcasecmp(item, "+inf") == 0
                             || strcasecmp(item, "inf") == 0) && !*s)
                break;   /* +Inf last: it is implied anyway */
            snprintf(err, errlen, "expected finite numbers of seconds; found "
                     "\"%.64s\"", item);
            return false;
        }
        if (*n == PLX_METRICS_MAX_BUCKETS) {
            snprintf(err, errlen, "expected at most %d bounds",
                     PLX_METRICS_MAX_BUCKETS);
            return false;
        }
        if (*n > 0 && !(v > out[*n - 1])) {
            snprintf(err, errlen, "expected bounds in increasing order; found "
                     "%.64s after %g", item, out[*n - 1]);
            return false;
        }
        out[(*n)++] = v;
    }
    if (*n == 0) {
        snprintf(err, errlen, "expected at least one bound; found none");
        return false;
    }
    return true;
}

bool metrics_max_series_parse(const char *s, size_t *out, char *err,
                              size_t errlen)
{
    char *end;
    long v;

    errno = 0;
    v = s ? strtol(s, &end, 10) : 0;
    if (!s || errno || end == s || *end || v < 1 || v > METRICS_SERIES_LIMIT) {
        snprintf(err, errlen, "expected a whole number from 1 to %d; found "
                 "\"%.64s\"", METRICS_SERIES_LIMIT, s ? s : "");
        return false;
    }
    *out = (size_t)v;
    return true;
}

/* RFC 6750 b64token: what may follow "Bearer " */
static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
           || (c >= '0' && c <= '9') || strchr("-._~+/=", c) != NULL;
}

bool metrics_token_valid(const char *s, char *err, size_t errlen)
{
    size_t len = s ? strlen(s) : 0;

    if (len == 0 || len > TOKEN_MAX) {
        snprintf(err, errlen, "expected 1 to %d characters; found %zu",
                 TOKEN_MAX, len);
        return false;
    }
    for (size_t i = 0; i < len; i++) {
        if (!token_char(s[i])) {
            snprintf(err, errlen, "expected only letters, digits and "
                     "-._~+/= (a Bearer token); found byte 0x%02x at %zu",
                     (unsigned char)s[i], i);
            return false;
        }
    }
    return true;
}

/* The loop runs over the wanted token whatever was given, and every byte
 * is compared, so the time says nothing about where a guess went wrong. */
bool metrics_secret_equal(const char *given, size_t given_len,
                          const char *want, size_t want_len)
{
    volatile unsigned char diff = given_len != want_len;

    for (size_t i = 0; i < want_len; i++) {
        unsigned char g = i < given_len ? (unsigned char)given[i] : 0;
        diff |= g ^ (unsigned char)want[i];
    }
    return diff == 0;
}

bool metrics_bearer_matches(const char *header, const char *token)
{
    const char *p = header;

    if (!p || !token || strncasecmp(p, "Bearer", 6) != 0)
        return false;
    p += 6;
    if (*p != ' ' && *p != '\t')
        return false;
    while (*p == ' ' || *p == '\t')
        p++;
    size_t len = strlen(p);
    while (len > 0 && (p[len - 1] == ' ' || p[len - 1] == '\t'))
        len--;
    return metrics_secret_equal(p, len, token, strlen(token));
}

/* ---- reading the section -------------------------------------------------- */

static bool bad(plx_module_t *m, const char *key, const char *err)
{
    plx_log(m, PLX_LOG_ERROR, "metrics.%s: %s", key, err);
    return false;
}

static bool load_token(plx_module_t *m, metrics_settings_t *out)
{
    const char *token = plx_config_get(m, "token");
    char err[256];

    if (!token || !*token)
        return true;
    if (!metrics_token_valid(token, err, sizeof err))
        return bad(m, "token", err);
    if (strlen(token) < TOKEN_MIN)
        plx_log(m, PLX_LOG_WARN, "metrics.token is shorter than %d "
                "characters: easy to guess", TOKEN_MIN);
    out->token = strdup(token);
    return out->token != NULL;
}

bool metrics_settings_load(plx_module_t *m, metrics_settings_t *out)
{
    const char *allow = plx_config_get(m, "allow");
    const char *buckets = plx_config_get(m, "buckets");
    const char *max = plx_config_get(m, "max_series");
    char err[256];

    memset(out, 0, sizeof *out);
    out->self = m;
    out->max_series = METRICS_DEFAULT_MAX_SERIES;
    if (!metrics_allow_parse(allow ? allow : METRICS_DEFAULT_ALLOW, out, err,
                             sizeof err))
        return bad(m, "allow", err);
    if (!metrics_buckets_parse(buckets ? buckets : METRICS_DEFAULT_BUCKETS,
                               out->buckets, &out->nbuckets, err, sizeof err))
        return bad(m, "buckets", err);
    if (max && !metrics_max_series_parse(max, &out->max_series, err, sizeof err))
        return bad(m, "max_series", err);
    if (!load_token(m, out))
        return false;
    if (out->allow_any && !out->token)
        plx_log(m, PLX_LOG_WARN, "metrics.allow is \"any\" and no token is "
                "set: every client can read /metrics");
    return true;
}

void metrics_settings_clear(metrics_settings_t *s)
{
    free(s->token);
    s->token = NULL;
}
