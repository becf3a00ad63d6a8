/*
 * expose.c - the Prometheus text exposition format, version 0.0.4
 *
 * Lines end in '\n', the last one too. A family is "# HELP", "# TYPE", then
 * its samples, all together. In HELP text '\' and newline are escaped; in a
 * label value '\', '"' and newline. Values use Go's float syntax, which the
 * scraper parses with ParseFloat: NaN, +Inf, -Inf, and numbers that must
 * read back as the same double (so 0.1 is "0.1", never
 * "0.10000000000000001", and a count is "1027", never "1.027e+03").
 *
 * The writer never fails half-way: a buffer that would pass its ceiling
 * stops growing and remembers it, and the caller checks once at the end.
 */
#include "metrics.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BUF_FIRST 16384

void metrics_buf_init(metrics_buf_t *b, size_t max)
{
    memset(b, 0, sizeof *b);
    b->max = max;
}

void metrics_buf_free(metrics_buf_t *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}

static bool buf_reserve(metrics_buf_t *b, size_t n)
{
    size_t want, cap;
    char *grown;

    if (b->failed)
        return false;
    if (n > b->max || b->len > b->max - n) {
        b->failed = true;
        return false;
    }
    want = b->len + n + 1;   /* room for a NUL, so data is always a string */
    if (want <= b->cap)
        return true;
    cap = b->cap ? b->cap : BUF_FIRST;
    while (cap < want)
        cap *= 2;
    grown = realloc(b->data, cap);
    if (!grown) {
        b->failed = true;
        return false;
    }
    b->data = grown;
    b->cap = cap;
    return true;
}

void metrics_buf_put(metrics_buf_t *b, const char *s, size_t n)
{
    if (!buf_reserve(b, n))
        return;
    memcpy(b->data + b->len, s, n);
    b->len += n;
    b->data[b->len] = '\0';
}

void metrics_buf_puts(metrics_buf_t *b, const char *s)
{
    metrics_buf_put(b, s, strlen(s));
}

/* 2^53: every integer below it is exact in a double */
#define EXACT_INTEGERS 9007199254740992.0

const char *metrics_format_double(double v, char out[40])
{
    if (isnan(v))
        return strcpy(out, "NaN");
    if (isinf(v))
        return strcpy(out, v > 0 ? "+Inf" : "-Inf");
    if (v == 0)
        return strcpy(out, "0");   /* -0 too */
    if (v == floor(v) && fabs(v) < EXACT_INTEGERS) {
        snprintf(out, 40, "%.0f", v);
        return out;
    }
    for (int prec = 15; prec <= 17; prec++) {
        snprintf(out, 40, "%.*g", prec, v);
        if (strtod(out, NULL) == v)
            break;
    }
    return out;
}

/* escape: '\' and '\n' always, '"' too in a label value (quoted) */
static void put_escaped(metrics_buf_t *b, const char *s, bool quoted)
{
    const char *run = s;

    for (; *s; s++) {
        const char *esc = *s == '\\' ? "\\\\" : *s == '\n' ? "\\n"
                          : (quoted && *s == '"') ? "\\\"" : NULL;
        if (!esc)
            continue;
        metrics_buf_put(b, run, (size_t)(s - run));
        metrics_buf_put(b, esc, 2);
        run = s + 1;
    }
    metrics_buf_put(b, run, (size_t)(s - run));
}

/* text from elsewhere (help, another module's version) may be any bytes:
 * clean it unless it already is */
static void put_text(metrics_buf_t *b, const char *s, size_t max, bool quoted)
{
    char tmp[METRICS_HELP_MAX + 1];

    if (s && metrics_text_is_clean(s, max)) {
        put_escaped(b, s, quoted);
        return;
    }
    metrics_text_clean(s, tmp, max < METRICS_HELP_MAX ? max : METRICS_HELP_MAX);
    put_escaped(b, tmp, quoted);
}

void metrics_put_header(metrics_buf_t *b, const char *name, const char *type,
                        const char *help)
{
    metrics_buf_puts(b, "# HELP ");
    metrics_buf_puts(b, name);
    metrics_buf_put(b, " ", 1);
    put_text(b, help, METRICS_HELP_MAX, false);
    metrics_buf_puts(b, "\n# TYPE ");
    metrics_buf_puts(b, name);
    metrics_buf_put(b, " ", 1);
    metrics_buf_puts(b, type);
    metrics_buf_put(b, "\n", 1);
}

static void put_label(metrics_buf_t *b, bool first, const char *name,
                      const char *value)
{
    if (!first)
        metrics_buf_put(b, ",", 1);
    metrics_buf_puts(b, name);
    metrics_buf_put(b, "=\"", 2);
    put_text(b, value, METRICS_VALUE_MAX, true);
    metrics_buf_put(b, "\"", 1);
}

void metrics_put_sample(metrics_buf_t *b, const char *name, const char *suffix,
                        size_t nlabels, const char *const *names,
                        const char *const *values, const char *le, double v)
{
    char num[40];

    metrics_buf_puts(b, name);
    if (suffix)
        metrics_buf_puts(b, suffix);
    if (nlabels > 0 || le) {
        metrics_buf_put(b, "{", 1);
        for (size_t i = 0; i < nlabels; i++)
            put_label(b, i == 0, names[i], values[i]);
        if (le)
            put_label(b, nlabels == 0, "le", le);
        metrics_buf_put(b, "}", 1);
    }
    metrics_buf_put(b, " ", 1);
    metrics_buf_puts(b, metrics_format_double(v, num));
    metrics_buf_put(b, "\n", 1);
}
