/*
 * metrics.h - what the metrics module's files share (not installed)
 *
 * The module is split by concern: names.c says which names and label values
 * the text format and promtool accept; expose.c writes the text format;
 * registry.c keeps the families and series behind the metrics/1 service;
 * settings.c parses [metrics]; requests.c counts requests from the
 * request.end hook; collect.c writes what is read at scrape time (the
 * core's gauges, /proc); scrape.c answers GET /metrics; metrics.c is the
 * entry point. Everything but metrics.c, scrape.c and collect.c is pure
 * enough to unit-test without a core.
 */
#ifndef METRICS_METRICS_H
#define METRICS_METRICS_H

#include <plexus/module.h>
#include <plexus/metrics.h>

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define METRICS_VALUE_MAX     256          /* bytes of a label value kept */
#define METRICS_HELP_MAX      1024         /* bytes of help text kept */
#define METRICS_NAME_MAX      200          /* bytes of a metric or label name */
#define METRICS_MAX_FAMILIES  256          /* families in the registry */
#define METRICS_SERIES_LIMIT  100000       /* the highest max_series accepted */
#define METRICS_SHARDS        8            /* cells per counter/histogram series */
#define METRICS_OUTPUT_MAX    ((size_t)64 << 20)   /* bytes of one scrape */
#define METRICS_ALLOW_MAX     64           /* entries of [metrics] allow */
#define METRICS_OVERFLOW      "__overflow__"

typedef enum metrics_type {
    METRICS_COUNTER = 0,
    METRICS_GAUGE,
    METRICS_HISTOGRAM
} metrics_type_t;

/* ---- names.c ----------------------------------------------------------- */

const char *metrics_type_name(metrics_type_t t);
/* NULL when name is acceptable for a family of type t, else why not */
const char *metrics_name_problem(const char *name, metrics_type_t t);
/* NULL when label is an acceptable label name, else why not */
const char *metrics_label_problem(const char *label);
/* a name the module writes itself at scrape time (process_*, plexus_db_*) */
bool metrics_name_reserved(const char *name);
/* Copy in to out (at most max bytes plus NUL), cut on a character
 * boundary, with every byte that is not part of valid UTF-8 replaced by
 * '?'. NULL in gives "". Returns the length written. */
size_t metrics_text_clean(const char *in, char *out, size_t max);
/* true when metrics_text_clean would copy in unchanged */
bool metrics_text_is_clean(const char *in, size_t max);

/* ---- expose.c: the text format 0.0.4 ----------------------------------- */

#define METRICS_CONTENT_TYPE "text/plain; version=0.0.4; charset=utf-8"

/* A growing buffer with a ceiling: past max it stops growing and sets
 * failed, so one check at the end covers every write. */
typedef struct metrics_buf {
    char  *data;
    size_t len;
    size_t cap;
    size_t max;
    bool   failed;
} metrics_buf_t;

void metrics_buf_init(metrics_buf_t *b, size_t max);
void metrics_buf_free(metrics_buf_t *b);
void metrics_buf_put(metrics_buf_t *b, const char *s, size_t n);
void metrics_buf_puts(metrics_buf_t *b, const char *s);

/* v in the syntax Go's ParseFloat reads back exactly: "NaN", "+Inf",
 * "-Inf", integers without a point ("1027"), else the shortest of %.15g
 * to %.17g that round-trips ("0.1", "4.2", "1e-05"). Returns out. */
const char *metrics_format_double(double v, char out[40]);

/* "# HELP name help\n# TYPE name type\n", help escaped (\\ and \n) */
void metrics_put_header(metrics_buf_t *b, const char *name, const char *type,
                        const char *help);
/* name+suffix{names[i]="values[i]",...,le="le"} v\n; values escaped
 * (\\, \", \n) and cleaned; le NULL for none; nlabels may be 0 */
void metrics_put_sample(metrics_buf_t *b, const char *name, const char *suffix,
                        size_t nlabels, const char *const *names,
                        const char *const *values, const char *le, double v);

/* ---- registry.c: families, series and the metrics/1 service ------------- */

/* Before any family: the module (for log lines, may be NULL), the series
 * bound per family and the default histogram bounds. false: no memory. */
bool metrics_registry_setup(plx_module_t *self, size_t max_series,
                            const double *bounds, size_t nbounds);
/* Frees every family; handles given out are dangling afterwards, so this
 * runs only when nothing can call any more (the module is unloading). */
void metrics_registry_free(void);
plx_metric_t *metrics_family_new(plx_module_t *m, metrics_type_t type,
                                 const char *name, const char *help,
                                 const char *const *label_names,
                                 const double *bounds, size_t nbounds);
void metrics_counter_add(plx_metric_t *c, const char *const *values, double v);
void metrics_gauge_set(plx_metric_t *g, const char *const *values, double v);
void metrics_gauge_add(plx_metric_t *g, const char *const *values, double v);
void metrics_histogram_observe(plx_metric_t *h, const char *const *values,
                               double v);
/* every family with at least one series, in registration order */
void metrics_registry_write(metrics_buf_t *b);
/* the table registered as service "metrics" version 1 */
extern const plx_metrics_v1_t metrics_service;

/* ---- settings.c: [metrics] -------------------------------------------- */

typedef struct metrics_net {
    uint8_t  addr[16];   /* IPv4 as ::ffff:a.b.c.d */
    unsigned prefix;     /* bits, 0..128 */
} metrics_net_t;

typedef struct metrics_settings {
    plx_module_t *self;                        /* for log lines */
    bool          allow_any;
    metrics_net_t allow[METRICS_ALLOW_MAX];
    size_t        nallow;
    char         *token;                       /* NULL: no token asked */
    double        buckets[PLX_METRICS_MAX_BUCKETS];
    size_t        nbuckets;
    size_t        max_series;
} metrics_settings_t;

#define METRICS_DEFAULT_ALLOW   "127.0.0.1, ::1"
#define METRICS_DEFAULT_BUCKETS \
    "0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10"
#define METRICS_DEFAULT_MAX_SERIES 1000

/* Parsers: true on success; on failure err holds what was expected and
 * what was found. */
bool metrics_allow_parse(const char *s, metrics_settings_t *out, char *err,
                         size_t errlen);
bool metrics_buckets_parse(const char *s, double *out, size_t *n, char *err,
                           size_t errlen);
bool metrics_max_series_parse(const char *s, size_t *out, char *err,
                              size_t errlen);
bool metrics_token_valid(const char *s, char *err, size_t errlen);
/* is the client address (dotted IPv4 or IPv6 text) allowed? */
bool metrics_allow_match(const metrics_settings_t *s, const char *addr);
/* constant-time in the content of the strings (the lengths may leak) */
bool metrics_secret_equal(const char *given, size_t given_len,
                          const char *want, size_t want_len);
/* does an Authorization header carry the token as a Bearer credential? */
bool metrics_bearer_matches(const char *header, const char *token);
/* Read and check every key of [metrics]; false (logged) on a bad value.
 * out->token is malloc'd: free with metrics_settings_clear. */
bool metrics_settings_load(plx_module_t *m, metrics_settings_t *out);
void metrics_settings_clear(metrics_settings_t *s);

/* ---- requests.c: per-request families ---------------------------------- */

bool metrics_requests_setup(plx_module_t *m);
plx_status_t metrics_on_request_end(plx_request_t *r, void *data, void *arg);
/* "GET", ..., or "other" for a method outside the standard set */
const char *metrics_method_label(const char *method);
/* "1xx" .. "5xx", "other" outside 100..599 */
const char *metrics_code_class(int status);

/* ---- collect.c: read at scrape time ------------------------------------ */

typedef struct metrics_proc {
    double cpu_seconds;     /* user + system */
    double resident_bytes;
    double virtual_bytes;
    double threads;
    double start_time;      /* unix seconds; 0 when unknown */
} metrics_proc_t;

/* Parse the one line of /proc/self/stat; ticks per second, page size and
 * the boot time (btime of /proc/stat) turn it into units. */
bool metrics_proc_stat_parse(const char *line, long ticks, long page_size,
                             double boot_time, metrics_proc_t *out);
/* the core's gauges, the process, build and module info */
void metrics_collect_write(metrics_buf_t *b);

/* ---- scrape.c: GET /metrics -------------------------------------------- */

#define METRICS_PATH "/metrics"

/* the route handler; arg is the settings, borrowed for the process */
plx_status_t metrics_scrape(plx_request_t *r, void *arg);
/* the same as a request.begin hook for GET /metrics, used when a token is
 * set (see scrape.c); PLX_DECLINED for every other request */
plx_status_t metrics_scrape_early(plx_request_t *r, void *data, void *arg);

#endif
