/*
 * names.c - which metric names, label names and label values are let in
 *
 * The text format itself allows [a-zA-Z_:][a-zA-Z0-9_:]* for metric names;
 * `promtool check metrics` (client_golang's promlint) is stricter and CI
 * runs it on our output, so a family is refused at registration for
 * anything promlint would report: a colon, camelCase, a type word in the
 * name, an abbreviated or non-base unit, a counter without _total or a
 * non-counter with it, and the suffixes a histogram's own series use.
 * Refusing at registration is the point: a module author sees the reason
 * in the log at start instead of a failed scrape in production.
 */
#include "metrics.h"

#include <string.h>

/* names collect.c and requests.c write: a module may not take them */
static const char *const reserved_names[] = {
    "plexus_http_requests_total", "plexus_http_request_duration_seconds",
    "plexus_http_requests_in_flight", "plexus_sse_streams_open",
    "plexus_websocket_connections_open", "plexus_db_pool_size",
    "plexus_db_pool_connections_open", "plexus_db_pool_in_use",
    "plexus_db_pool_acquired_total", "plexus_db_pool_wait_seconds_total",
    "plexus_db_pool_acquire_timeouts_total", "plexus_jobs_queued",
    "plexus_jobs_running", "plexus_jobs_completed_total",
    "plexus_metrics_series_dropped_total", "plexus_build_info",
    "plexus_module_info", "process_cpu_seconds_total",
    "process_resident_memory_bytes", "process_virtual_memory_bytes",
    "process_open_fds", "process_max_fds", "process_threads",
    "process_start_time_seconds",
};

/* promlint's unit words: a prefixed or non-base one is refused */
static const struct { const char *unit, *base; } units[] = {
    { "amperes", "amperes" }, { "bytes", "bytes" }, { "celsius", "celsius" },
    { "grams", "grams" }, { "joules", "joules" }, { "kelvin", "kelvin" },
    { "meters", "meters" }, { "metres", "metres" }, { "seconds", "seconds" },
    { "volts", "volts" }, { "minutes", "seconds" }, { "hours", "seconds" },
    { "days", "seconds" }, { "weeks", "seconds" }, { "kelvins", "kelvin" },
    { "fahrenheit", "celsius" }, { "rankine", "celsius" },
    { "inches", "meters" }, { "yards", "meters" }, { "miles", "meters" },
    { "bits", "bytes" }, { "calories", "joules" }, { "pounds", "grams" },
    { "ounces", "grams" },
};

static const char *const unit_prefixes[] = {
    "", "pico", "nano", "micro", "milli", "centi", "deci", "deca", "hecto",
    "kilo", "kibi", "mega", "mibi", "giga", "gibi", "tera", "tebi", "peta",
    "pebi",
};

static const char *const abbreviations[] = {
    "s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m",
    "h", "d",
};

static const char *const type_words[] = {
    "counter", "gauge", "histogram", "summary",
};

const char *metrics_type_name(metrics_type_t t)
{
    switch (t) {
    case METRICS_COUNTER:   return "counter";
    case METRICS_GAUGE:     return "gauge";
    case METRICS_HISTOGRAM: return "histogram";
    }
    return "untyped";
}

static bool ends_with(const char *s, size_t len, const char *suffix)
{
    size_t n = strlen(suffix);
    return len >= n && memcmp(s + len - n, suffix, n) == 0;
}

static char lower(char c)
{
    return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c;
}

static bool is_alpha(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool is_digit(char c)
{
    return c >= '0' && c <= '9';
}

/* [a-zA-Z_][a-zA-Z0-9_]* of 1..METRICS_NAME_MAX bytes, not camelCase */
static const char *identifier_problem(const char *s)
{
    size_t len = s ? strlen(s) : 0;

    if (len == 0 || len > METRICS_NAME_MAX)
        return "expected 1 to 200 characters";
    if (!is_alpha(s[0]))
        return "expected a letter or '_' first";
    for (size_t i = 0; i < len; i++) {
        if (s[i] == ':')
            return "':' is reserved for recording rules";
        if (!is_alpha(s[i]) && !is_digit(s[i]))
            return "expected only letters, digits and '_'";
        if (i > 0 && s[i - 1] >= 'a' && s[i - 1] <= 'z' && s[i] >= 'A'
            && s[i] <= 'Z')
            return "expected snake_case, found camelCase";
    }
    return NULL;
}

/* does the lower-cased name hold "_word_" or end in "_word"? */
static bool has_word(const char *name, const char *word)
{
    size_t len = strlen(name), wl = strlen(word);

    for (size_t i = 0; i + wl + 1 <= len; i++) {
        if (name[i] != '_')
            continue;
        size_t j = 0;
        while (j < wl && lower(name[i + 1 + j]) == word[j])
            j++;
        if (j == wl && (i + 1 + wl == len || name[i + 1 + wl] == '_'))
            return true;
    }
    return false;
}

/* is one '_'-separated token of name exactly prefix+unit, and not base? */
static bool token_is_bad_unit(const char *tok, size_t n)
{
    for (size_t u = 0; u < sizeof units / sizeof units[0]; u++) {
        size_t ul = strlen(units[u].unit);
        for (size_t p = 0; p < sizeof unit_prefixes / sizeof unit_prefixes[0]; p++) {
            size_t pl = strlen(unit_prefixes[p]);
            if (pl + ul != n || memcmp(tok, unit_prefixes[p], pl) != 0
                || memcmp(tok + pl, units[u].unit, ul) != 0)
                continue;
            return pl > 0 || strcmp(units[u].unit, units[u].base) != 0;
        }
    }
    return false;
}

static bool has_bad_unit(const char *name)
{
    const char *p = name;

    while (*p) {
        size_t n = strcspn(p, "_");
        if (n > 0 && token_is_bad_unit(p, n))
            return true;
        p += n;
        if (*p == '_')
            p++;
    }
    return false;
}

static const char *suffix_problem(const char *name, metrics_type_t t)
{
    size_t len = strlen(name);

    if (t == METRICS_COUNTER && !ends_with(name, len, "_total"))
        return "a counter's name must end in \"_total\"";
    if (t != METRICS_COUNTER && ends_with(name, len, "_total"))
        return "only a counter's name may end in \"_total\"";
    if (ends_with(name, len, "_bucket") || ends_with(name, len, "_sum")
        || ends_with(name, len, "_count"))
        return "\"_bucket\", \"_sum\" and \"_count\" are the suffixes of a "
               "histogram's own series";
    return NULL;
}

const char *metrics_name_problem(const char *name, metrics_type_t t)
{
    const char *why = identifier_problem(name);

    if (why)
        return why;
    if ((why = suffix_problem(name, t)))
        return why;
    for (size_t i = 0; i < sizeof type_words / sizeof type_words[0]; i++)
        if (has_word(name, type_words[i]))
            return "a type word (counter, gauge, histogram, summary) does "
                   "not belong in the name";
    for (size_t i = 0; i < sizeof abbreviations / sizeof abbreviations[0]; i++)
        if (has_word(name, abbreviations[i]))
            return "abbreviated unit: spell it out (_seconds, _bytes)";
    if (has_bad_unit(name))
        return "expected a base unit (_seconds, _bytes, _meters, ...)";
    return NULL;
}

const char *metrics_label_problem(const char *label)
{
    const char *why = identifier_problem(label);

    if (why)
        return why;
    if (strncmp(label, "__", 2) == 0)
        return "names starting with \"__\" are reserved";
    if (strcmp(label, "le") == 0 || strcmp(label, "quantile") == 0)
        return "\"le\" and \"quantile\" are reserved for histograms and "
               "summaries";
    return NULL;
}

bool metrics_name_reserved(const char *name)
{
    for (size_t i = 0; i < sizeof reserved_names / sizeof reserved_names[0]; i++)
        if (strcmp(name, reserved_names[i]) == 0)
            return true;
    return false;
}

/* Length of the valid UTF-8 sequence at s (at most avail bytes), 0 if the
 * bytes there are not one: overlong forms, surrogates and code points past
 * U+10FFFF included. */
static size_t utf8_seq(const unsigned char *s, size_t avail)
{
    unsigned c = s[0];
    size_t n;
    unsigned cp, min;

    if (c < 0x80)
        return 1;
    if ((c & 0xe0) == 0xc0) { n = 2; cp = c & 0x1f; min = 0x80; }
    else if ((c & 0xf0) == 0xe0) { n = 3; cp = c & 0x0f; min = 0x800; }
    else if ((c & 0xf8) == 0xf0) { n = 4; cp = c & 0x07; min = 0x10000; }
    else return 0;
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

size_t metrics_text_clean(const char *in, char *out, size_t max)
{
    const unsigned char *s = (const unsigned char *)(in ? in : "");
    size_t len = strlen((const char *)s), i = 0, o = 0;

    while (i < len) {
        size_t n = utf8_seq(s + i, len - i);
        if (n == 0) {
            if (o + 1 > max)
                break;
            out[o++] = '?';
            i++;
            continue;
        }
        if (o + n > max)
            break;
        memcpy(out + o, s + i, n);
        o += n;
        i += n;
    }
    out[o] = '\0';
    return o;
}

bool metrics_text_is_clean(const char *in, size_t max)
{
    const unsigned char *s = (const unsigned char *)in;
    size_t i = 0;

    if (!in)
        return false;   /* NULL becomes "" */
    while (s[i]) {
        size_t n;
        if (s[i] < 0x80) {   /* the common case, without the length scan */
            i++;
        } else {
            n = utf8_seq(s + i, strnlen((const char *)s + i, 4));
            if (n == 0)
                return false;
            i += n;
        }
        if (i > max)
            return false;
    }
    return true;
}
