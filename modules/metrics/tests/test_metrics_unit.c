/*
 * test_metrics_unit.c - the metrics module without a server: the text
 * format writer (escaping, numbers, histogram buckets), the name rules,
 * the registry (series bound, exact counts under threads), [metrics]
 * parsing and matching, /proc parsing and the scrape-time families
 *
 * The module's files are linked in directly and see a fake API table that
 * records log lines and serves canned core stats and modules.
 */
#include "metrics.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

/* ---- the fake core ---------------------------------------------------------- */

const plx_api_t *plx_api;

static char logged[8192];
static plx_core_stats_t fake_stats;

static void fake_logv(plx_module_t *m, plx_request_t *r, plx_log_level_t level,
                      const char *fmt, va_list ap)
{
    size_t len = strlen(logged);

    if (len + 2 >= sizeof logged)
        return;
    vsnprintf(logged + len, sizeof logged - len - 1, fmt, ap);
    strcat(logged, "\n");
}

static const char *fake_module_name(plx_module_t *m)
{
    return (const char *)m;   /* the tests pass a name as the module */
}

static void fake_core_stats(plx_core_stats_t *out)
{
    uint32_t size = out->size;

    memcpy(out, &fake_stats, size < sizeof fake_stats ? size : sizeof fake_stats);
    out->size = size;
}

static plx_status_t fake_module_at(size_t i, plx_module_view_t *out)
{
    static const char *const names[] = { "metrics", "we\"ird\\" };
    static const char *const versions[] = { "1.0.0", "2.0\n" };

    if (i >= 2)
        return PLX_ERR_NOT_FOUND;
    out->name = names[i];
    out->version = versions[i];
    return PLX_OK;
}

static plx_api_t fake_api = {
    .size = sizeof(plx_api_t),
    .abi_major = 1,
    .abi_minor = 2,
    .core_version = "9.8.7",
    .logv = fake_logv,
    .module_name = fake_module_name,
    .core_stats = fake_core_stats,
    .module_at = fake_module_at,
};

#define MOD(name) ((plx_module_t *)(name))

static const double default_bounds[] = { 0.1, 1 };

static int setup(void **state)
{
    plx_api = &fake_api;
    logged[0] = '\0';
    if (!metrics_registry_setup(MOD("metrics"), 3, default_bounds, 2))
        return -1;
    return 0;
}

static int teardown(void **state)
{
    metrics_registry_free();
    return 0;
}

/* the registry's exposition, as a malloc'd string */
static char *exposition(void)
{
    metrics_buf_t b;

    metrics_buf_init(&b, METRICS_OUTPUT_MAX);
    metrics_registry_write(&b);
    assert_false(b.failed);
    if (!b.data)
        return strdup("");
    return b.data;
}

static void assert_contains(const char *hay, const char *needle)
{
    if (!strstr(hay, needle))
        fail_msg("expected \"%s\" in:\n%s", needle, hay);
}

/* ---- numbers ------------------------------------------------------------------- */

static void test_format_special(void **state)
{
    char out[40];

    assert_string_equal(metrics_format_double(NAN, out), "NaN");
    assert_string_equal(metrics_format_double(INFINITY, out), "+Inf");
    assert_string_equal(metrics_format_double(-INFINITY, out), "-Inf");
    assert_string_equal(metrics_format_double(0.0, out), "0");
    assert_string_equal(metrics_format_double(-0.0, out), "0");
}

static void test_format_integers(void **state)
{
    char out[40];

    assert_string_equal(metrics_format_double(1, out), "1");
    assert_string_equal(metrics_format_double(1027, out), "1027");
    assert_string_equal(metrics_format_double(-3, out), "-3");
    assert_string_equal(metrics_format_double(1e15, out), "1000000000000000");
    assert_string_equal(metrics_format_double(9007199254740991.0, out),
                        "9007199254740991");
}

static void test_format_fractions_round_trip(void **state)
{
    static const double values[] = {
        0.1, 4.2, 0.005, 2.5, 1e-05, 1.0 / 3.0, 6.02214076e23, 1e300,
        -0.25, 9007199254740993.0 * 4, 5e-324, 0.30000000000000004,
    };
    char out[40];

    assert_string_equal(metrics_format_double(0.1, out), "0.1");
    assert_string_equal(metrics_format_double(4.2, out), "4.2");
    assert_string_equal(metrics_format_double(0.005, out), "0.005");
    assert_string_equal(metrics_format_double(1e-05, out), "1e-05");
    for (size_t i = 0; i < sizeof values / sizeof values[0]; i++) {
        metrics_format_double(values[i], out);
        assert_true(strtod(out, NULL) == values[i]);
        assert_null(strchr(out, ' '));
    }
    /* the shortest that reads back: 0.1 + 0.2 needs all 17 digits */
    assert_string_equal(metrics_format_double(0.1 + 0.2, out),
                        "0.30000000000000004");
}

/* ---- escaping --------------------------------------------------------------------- */

static void test_escape_label_values(void **state)
{
    static const char *const names[] = { "a", "b" };
    static const char *const values[] = { "back\\slash \"q\"\nline", "plain" };
    metrics_buf_t b;

    metrics_buf_init(&b, 4096);
    metrics_put_sample(&b, "x_total", NULL, 2, names, values, NULL, 3);
    assert_string_equal(b.data,
        "x_total{a=\"back\\\\slash \\\"q\\\"\\nline\",b=\"plain\"} 3\n");
    metrics_buf_free(&b);
}

static void test_escape_help(void **state)
{
    metrics_buf_t b;

    metrics_buf_init(&b, 4096);
    metrics_put_header(&b, "x_total", "counter", "a \\ b\nc \"quoted\"");
    /* in HELP a quote stays as it is */
    assert_string_equal(b.data,
        "# HELP x_total a \\\\ b\\nc \"quoted\"\n# TYPE x_total counter\n");
    metrics_buf_free(&b);
}

static void test_clean_invalid_utf8_and_long_values(void **state)
{
    char out[METRICS_VALUE_MAX + 1], in[600];

    metrics_text_clean("ok\xff\xc3(\xc3\xa9", out, METRICS_VALUE_MAX);
    assert_string_equal(out, "ok?" "?(\xc3\xa9");
    assert_false(metrics_text_is_clean("ok\xff", 100));
    assert_false(metrics_text_is_clean("\xed\xa0\x80", 100));   /* a surrogate */
    assert_false(metrics_text_is_clean("\xc0\xaf", 100));       /* overlong '/' */
    assert_true(metrics_text_is_clean("caf\xc3\xa9", 100));
    /* 255 ASCII bytes then a 2-byte character: it does not fit in 256 */
    memset(in, 'a', 255);
    memcpy(in + 255, "\xc3\xa9zz", 5);
    assert_int_equal(metrics_text_clean(in, out, METRICS_VALUE_MAX), 255);
    assert_false(metrics_text_is_clean(in, METRICS_VALUE_MAX));
    metrics_text_clean(NULL, out, 10);
    assert_string_equal(out, "");
}

static void test_buffer_ceiling(void **state)
{
    metrics_buf_t b;

    metrics_buf_init(&b, 10);
    metrics_buf_puts(&b, "12345");
    metrics_buf_puts(&b, "67890");
    assert_false(b.failed);
    metrics_buf_puts(&b, "x");
    assert_true(b.failed);
    assert_int_equal(b.len, 10);
    metrics_buf_free(&b);
}

/* ---- names ---------------------------------------------------------------------- */

static void test_names_accepted(void **state)
{
    assert_null(metrics_name_problem("plexus_http_requests_total", METRICS_COUNTER));
    assert_null(metrics_name_problem("op_latency_seconds", METRICS_HISTOGRAM));
    assert_null(metrics_name_problem("queue_depth", METRICS_GAUGE));
    assert_null(metrics_name_problem("_x", METRICS_GAUGE));
    assert_null(metrics_name_problem("HTTP_total", METRICS_COUNTER));
    assert_null(metrics_name_problem("thermometers_total", METRICS_COUNTER));
    /* promlint reads a lone "b" as an abbreviation of bytes */
    assert_non_null(metrics_name_problem("a_b_seconds", METRICS_HISTOGRAM));
}

static void test_names_refused(void **state)
{
    static const struct { const char *name; metrics_type_t t; } bad[] = {
        { "", METRICS_GAUGE }, { "1abc", METRICS_GAUGE },
        { "a-b", METRICS_GAUGE }, { "a:b", METRICS_GAUGE },
        { "fooBar", METRICS_GAUGE }, { "requests", METRICS_COUNTER },
        { "depth_total", METRICS_GAUGE }, { "x_bucket", METRICS_GAUGE },
        { "x_count", METRICS_GAUGE }, { "x_sum", METRICS_HISTOGRAM },
        { "x_counter_total", METRICS_COUNTER }, { "x_gauge", METRICS_GAUGE },
        { "latency_ms", METRICS_HISTOGRAM }, { "size_kb", METRICS_GAUGE },
        { "latency_milliseconds", METRICS_HISTOGRAM },
        { "uptime_hours", METRICS_GAUGE }, { "x_s_total", METRICS_COUNTER },
        { "caf\xc3\xa9", METRICS_GAUGE },
    };

    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        if (!metrics_name_problem(bad[i].name, bad[i].t))
            fail_msg("expected \"%s\" to be refused", bad[i].name);
    assert_non_null(metrics_name_problem(NULL, METRICS_GAUGE));
}

static void test_label_names(void **state)
{
    assert_null(metrics_label_problem("route"));
    assert_null(metrics_label_problem("code_class"));
    assert_non_null(metrics_label_problem("le"));
    assert_non_null(metrics_label_problem("quantile"));
    assert_non_null(metrics_label_problem("__name__"));
    assert_non_null(metrics_label_problem("codeClass"));
    assert_non_null(metrics_label_problem("a b"));
    assert_non_null(metrics_label_problem(""));
}

/* every name the module writes itself passes its own rules */
static void test_reserved_names_are_valid(void **state)
{
    static const char *const counters[] = {
        "plexus_http_requests_total", "plexus_db_pool_acquired_total",
        "plexus_db_pool_wait_seconds_total", "plexus_db_pool_acquire_timeouts_total",
        "plexus_jobs_completed_total", "plexus_metrics_series_dropped_total",
        "process_cpu_seconds_total",
    };
    static const char *const gauges[] = {
        "plexus_http_requests_in_flight", "plexus_sse_streams_open",
        "plexus_websocket_connections_open", "plexus_db_pool_size",
        "plexus_db_pool_connections_open", "plexus_db_pool_in_use",
        "plexus_jobs_queued", "plexus_jobs_running", "plexus_build_info",
        "plexus_module_info", "process_resident_memory_bytes",
        "process_virtual_memory_bytes", "process_open_fds", "process_max_fds",
        "process_threads", "process_start_time_seconds",
    };

    for (size_t i = 0; i < sizeof counters / sizeof counters[0]; i++) {
        assert_null(metrics_name_problem(counters[i], METRICS_COUNTER));
        assert_true(metrics_name_reserved(counters[i]));
    }
    for (size_t i = 0; i < sizeof gauges / sizeof gauges[0]; i++) {
        assert_null(metrics_name_problem(gauges[i], METRICS_GAUGE));
        assert_true(metrics_name_reserved(gauges[i]));
    }
    assert_null(metrics_name_problem("plexus_http_request_duration_seconds",
                                     METRICS_HISTOGRAM));
    assert_false(metrics_name_reserved("mymod_things_total"));
}

/* ---- the registry ------------------------------------------------------------ */

static void test_histogram_cumulative_buckets(void **state)
{
    static const double bounds[] = { 0.1, 1 };
    plx_metric_t *h = metrics_family_new(MOD("t"), METRICS_HISTOGRAM,
                                         "t_latency_seconds", "Latency.",
                                         PLX_METRICS_LABELS("op"), bounds, 2);
    /* 0.1 exactly on a bound: le means "less than or equal" */
    static const double seen[] = { 0.05, 0.1, 0.5, 2, 3 };
    char *text, want[1024], sum[40];
    double total = 0;

    assert_non_null(h);
    for (size_t i = 0; i < sizeof seen / sizeof seen[0]; i++) {
        metrics_histogram_observe(h, PLX_METRICS_VALUES("read"), seen[i]);
        total += seen[i];
    }
    metrics_histogram_observe(h, PLX_METRICS_VALUES("read"), NAN);   /* ignored */
    text = exposition();
    snprintf(want, sizeof want,
        "# HELP t_latency_seconds Latency.\n"
        "# TYPE t_latency_seconds histogram\n"
        "t_latency_seconds_bucket{op=\"read\",le=\"0.1\"} 2\n"
        "t_latency_seconds_bucket{op=\"read\",le=\"1\"} 3\n"
        "t_latency_seconds_bucket{op=\"read\",le=\"+Inf\"} 5\n"
        "t_latency_seconds_sum{op=\"read\"} %s\n"
        "t_latency_seconds_count{op=\"read\"} 5\n",
        metrics_format_double(total, sum));
    assert_contains(text, want);
    free(text);
}

static void test_histogram_default_bounds_and_no_labels(void **state)
{
    plx_metric_t *h = metrics_family_new(MOD("t"), METRICS_HISTOGRAM,
                                         "t_wait_seconds", "Wait.", NULL,
                                         NULL, 0);
    char *text;

    assert_non_null(h);
    text = exposition();   /* a family without labels shows from the start */
    assert_contains(text, "t_wait_seconds_bucket{le=\"0.1\"} 0\n"
                          "t_wait_seconds_bucket{le=\"1\"} 0\n"
                          "t_wait_seconds_bucket{le=\"+Inf\"} 0\n"
                          "t_wait_seconds_sum 0\nt_wait_seconds_count 0\n");
    free(text);
}

static void test_counter_gauge_values(void **state)
{
    plx_metric_t *c = metrics_family_new(MOD("t"), METRICS_COUNTER, "t_things_total",
                                         "Things.", PLX_METRICS_LABELS("kind"), NULL, 0);
    plx_metric_t *g = metrics_family_new(MOD("t"), METRICS_GAUGE, "t_level",
                                         "Level.", NULL, NULL, 0);
    char *text;

    metrics_counter_add(c, PLX_METRICS_VALUES("b"), 2);
    metrics_counter_add(c, PLX_METRICS_VALUES("a"), 0.5);
    metrics_counter_add(c, PLX_METRICS_VALUES("a"), -1);     /* ignored */
    metrics_counter_add(c, PLX_METRICS_VALUES("a"), NAN);    /* ignored */
    metrics_gauge_set(g, NULL, 10);
    metrics_gauge_add(g, NULL, -2.5);
    metrics_gauge_set(c, PLX_METRICS_VALUES("a"), 99);       /* wrong type: ignored */
    metrics_counter_add(NULL, NULL, 1);                      /* no family: ignored */
    text = exposition();
    /* series sorted by label value */
    assert_contains(text, "t_things_total{kind=\"a\"} 0.5\nt_things_total{kind=\"b\"} 2\n");
    assert_contains(text, "# TYPE t_level gauge\nt_level 7.5\n");
    free(text);
}

static void test_label_value_cleaned_and_escaped(void **state)
{
    plx_metric_t *c = metrics_family_new(MOD("t"), METRICS_COUNTER, "t_odd_total",
                                         "Odd.", PLX_METRICS_LABELS("v"), NULL, 0);
    char *text;

    metrics_counter_add(c, PLX_METRICS_VALUES("x\xffy\"\n"), 1);
    metrics_counter_add(c, PLX_METRICS_VALUES("x?y\"\n"), 1);   /* the same series */
    metrics_counter_add(c, PLX_METRICS_VALUES(NULL), 1);
    text = exposition();
    assert_contains(text, "t_odd_total{v=\"x?y\\\"\\n\"} 2\n");
    assert_contains(text, "t_odd_total{v=\"\"} 1\n");
    free(text);
}

static void test_refusals_logged(void **state)
{
    assert_null(metrics_family_new(MOD("mod_a"), METRICS_COUNTER, "t_x_total", "x",
                                   PLX_METRICS_LABELS("a", "a"), NULL, 0));
    assert_null(metrics_family_new(MOD("mod_a"), METRICS_COUNTER, "t_y_total", "x",
                                   PLX_METRICS_LABELS("a", "b", "c", "d", "e",
                                                      "f", "g", "h", "i"), NULL, 0));
    assert_null(metrics_family_new(MOD("mod_a"), METRICS_HISTOGRAM, "t_z_seconds",
                                   "x", NULL, (const double[]){ 1, 0.5 }, 2));
    assert_null(metrics_family_new(MOD("mod_a"), METRICS_GAUGE, "process_threads",
                                   "x", NULL, NULL, 0));
    assert_non_null(metrics_family_new(MOD("mod_a"), METRICS_GAUGE, "t_dup", "x",
                                       NULL, NULL, 0));
    assert_null(metrics_family_new(MOD("mod_b"), METRICS_GAUGE, "t_dup", "x",
                                   NULL, NULL, 0));
    assert_contains(logged, "metric \"t_x_total\" of module \"mod_a\" refused: "
                            "a label name is given twice");
    assert_contains(logged, "more than 8 label names");
    assert_contains(logged, "increasing order");
    assert_contains(logged, "belongs to the metrics module");
    assert_contains(logged, "metric \"t_dup\" of module \"mod_b\" refused: a "
                            "family of that name exists");
}

static void test_histogram_trailing_inf_bound(void **state)
{
    plx_metric_t *h = metrics_family_new(MOD("t"), METRICS_HISTOGRAM, "t_body_bytes",
                                         "x", NULL, (const double[]){ 1, INFINITY }, 2);
    char *text;

    assert_non_null(h);
    metrics_histogram_observe(h, NULL, 5);
    text = exposition();
    assert_contains(text, "t_body_bytes_bucket{le=\"1\"} 0\nt_body_bytes_bucket{le=\"+Inf\"} 1\n");
    free(text);
}

/* max_series is 3 in setup: the fourth value on goes to __overflow__ */
static void test_series_bound(void **state)
{
    plx_metric_t *c = metrics_family_new(MOD("t"), METRICS_COUNTER, "t_hits_total",
                                         "Hits.", PLX_METRICS_LABELS("user", "kind"),
                                         NULL, 0);
    char value[32], *text;

    for (int i = 0; i < 10; i++) {
        snprintf(value, sizeof value, "u%d", i);
        metrics_counter_add(c, PLX_METRICS_VALUES(value, "k"), 1);
    }
    metrics_counter_add(c, PLX_METRICS_VALUES("u1", "k"), 1);   /* known: not dropped */
    text = exposition();
    assert_contains(text, "t_hits_total{user=\"u0\",kind=\"k\"} 1\n"
                          "t_hits_total{user=\"u1\",kind=\"k\"} 2\n"
                          "t_hits_total{user=\"u2\",kind=\"k\"} 1\n"
                          "t_hits_total{user=\"__overflow__\",kind=\"__overflow__\"} 7\n");
    assert_null(strstr(text, "u3"));
    assert_contains(text, "# TYPE plexus_metrics_series_dropped_total counter\n"
                          "plexus_metrics_series_dropped_total{family=\"t_hits_total\"} 7\n");
    free(text);
}

/* ---- exact under threads ------------------------------------------------------ */

#define THREADS 8
#define ADDS    20000

typedef struct work {
    plx_metric_t *c, *h, *wide;
    int id;
} work_t;

static void *hammer(void *arg)
{
    work_t *w = arg;
    char value[16];

    for (int i = 0; i < ADDS; i++) {
        metrics_counter_add(w->c, PLX_METRICS_VALUES("GET"), 1);
        metrics_histogram_observe(w->h, PLX_METRICS_VALUES("GET"),
                                  (i % 4) * 0.5);   /* 0, 0.5, 1, 1.5 */
        snprintf(value, sizeof value, "v%d", (i + w->id) % 5);
        metrics_counter_add(w->wide, PLX_METRICS_VALUES(value), 1);
    }
    return NULL;
}

static void test_exact_counts_under_threads(void **state)
{
    static const double bounds[] = { 0.5, 1 };
    work_t w[THREADS];
    pthread_t t[THREADS];
    char *text, want[512];
    plx_metric_t *c = metrics_family_new(MOD("t"), METRICS_COUNTER, "t_req_total",
                                         "x", PLX_METRICS_LABELS("method"), NULL, 0);
    plx_metric_t *h = metrics_family_new(MOD("t"), METRICS_HISTOGRAM, "t_req_seconds",
                                         "x", PLX_METRICS_LABELS("method"), bounds, 2);
    plx_metric_t *wide = metrics_family_new(MOD("t"), METRICS_COUNTER, "t_wide_total",
                                            "x", PLX_METRICS_LABELS("v"), NULL, 0);

    for (int i = 0; i < THREADS; i++) {
        w[i] = (work_t){ c, h, wide, i };
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    text = exposition();
    snprintf(want, sizeof want, "t_req_total{method=\"GET\"} %d\n", THREADS * ADDS);
    assert_contains(text, want);
    /* a quarter each of 0, 0.5, 1, 1.5: le=0.5 half, le=1 three quarters */
    snprintf(want, sizeof want,
             "t_req_seconds_bucket{method=\"GET\",le=\"0.5\"} %d\n"
             "t_req_seconds_bucket{method=\"GET\",le=\"1\"} %d\n"
             "t_req_seconds_bucket{method=\"GET\",le=\"+Inf\"} %d\n"
             "t_req_seconds_sum{method=\"GET\"} %d\n"
             "t_req_seconds_count{method=\"GET\"} %d\n",
             THREADS * ADDS / 2, THREADS * ADDS * 3 / 4, THREADS * ADDS,
             THREADS * ADDS * 3 / 4, THREADS * ADDS);
    assert_contains(text, want);
    /* 5 values raced for 3 places: exactly 3 series, and nothing lost */
    double total = 0;
    int series = 0;
    for (const char *p = text; (p = strstr(p, "\nt_wide_total{")); p++) {
        total += strtod(strchr(p, '}') + 1, NULL);
        series++;
    }
    assert_int_equal(series, 4);   /* 3 and the overflow one */
    assert_true(total == (double)THREADS * ADDS);
    free(text);
}

/* ---- settings ------------------------------------------------------------------ */

static void test_allow_parse_and_match(void **state)
{
    metrics_settings_t s;
    char err[256];

    assert_true(metrics_allow_parse("127.0.0.1, ::1, 10.0.0.0/8,2001:db8::/32",
                                    &s, err, sizeof err));
    assert_int_equal(s.nallow, 4);
    assert_true(metrics_allow_match(&s, "127.0.0.1"));
    assert_true(metrics_allow_match(&s, "::ffff:127.0.0.1"));
    assert_true(metrics_allow_match(&s, "::1"));
    assert_true(metrics_allow_match(&s, "10.255.1.2"));
    assert_true(metrics_allow_match(&s, "2001:db8:1::5"));
    assert_false(metrics_allow_match(&s, "127.0.0.2"));
    assert_false(metrics_allow_match(&s, "11.0.0.1"));
    assert_false(metrics_allow_match(&s, "2001:db9::1"));
    assert_false(metrics_allow_match(&s, "not an address"));
    assert_false(metrics_allow_match(&s, NULL));

    assert_true(metrics_allow_parse("192.168.1.128/25", &s, err, sizeof err));
    assert_true(metrics_allow_match(&s, "192.168.1.200"));
    assert_false(metrics_allow_match(&s, "192.168.1.127"));

    assert_true(metrics_allow_parse("any", &s, err, sizeof err));
    assert_true(metrics_allow_match(&s, "203.0.113.9"));
}

static void test_allow_parse_errors(void **state)
{
    metrics_settings_t s;
    char err[256];

    assert_false(metrics_allow_parse("", &s, err, sizeof err));
    assert_string_equal(err, "expected at least one address, CIDR or \"any\"; found none");
    assert_false(metrics_allow_parse("localhost", &s, err, sizeof err));
    assert_contains(err, "found \"localhost\"");
    assert_false(metrics_allow_parse("10.0.0.0/33", &s, err, sizeof err));
    assert_false(metrics_allow_parse("10.0.0.0/", &s, err, sizeof err));
    assert_false(metrics_allow_parse("::1/129", &s, err, sizeof err));
    assert_false(metrics_allow_parse("1.2.3.4/8x", &s, err, sizeof err));
}

static void test_buckets_parse(void **state)
{
    double b[PLX_METRICS_MAX_BUCKETS];
    size_t n;
    char err[256];

    assert_true(metrics_buckets_parse(METRICS_DEFAULT_BUCKETS, b, &n, err, sizeof err));
    assert_int_equal(n, 11);
    assert_true(b[0] == 0.005 && b[10] == 10);
    assert_true(metrics_buckets_parse("0.1, 1, +Inf", b, &n, err, sizeof err));
    assert_int_equal(n, 2);
    assert_false(metrics_buckets_parse("1, 0.5", b, &n, err, sizeof err));
    assert_contains(err, "increasing order");
    assert_false(metrics_buckets_parse("1, 1", b, &n, err, sizeof err));
    assert_false(metrics_buckets_parse("0.1, x", b, &n, err, sizeof err));
    assert_false(metrics_buckets_parse("+Inf, 1", b, &n, err, sizeof err));
    assert_false(metrics_buckets_parse("", b, &n, err, sizeof err));
    assert_false(metrics_buckets_parse("1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,"
                                       "18,19,20,21,22,23,24,25,26,27,28,29,30,31,"
                                       "32,33", b, &n, err, sizeof err));
}

static void test_max_series_and_token(void **state)
{
    size_t n;
    char err[256];

    assert_true(metrics_max_series_parse("1000", &n, err, sizeof err));
    assert_int_equal(n, 1000);
    assert_false(metrics_max_series_parse("0", &n, err, sizeof err));
    assert_false(metrics_max_series_parse("100001", &n, err, sizeof err));
    assert_false(metrics_max_series_parse("12abc", &n, err, sizeof err));
    assert_true(metrics_token_valid("abc-DEF_123.~+/=", err, sizeof err));
    assert_false(metrics_token_valid("has space", err, sizeof err));
    assert_false(metrics_token_valid("", err, sizeof err));
}

static void test_secret_and_bearer(void **state)
{
    assert_true(metrics_secret_equal("s3cret", 6, "s3cret", 6));
    assert_false(metrics_secret_equal("s3creT", 6, "s3cret", 6));
    assert_false(metrics_secret_equal("s3cre", 5, "s3cret", 6));
    assert_false(metrics_secret_equal("s3cretx", 7, "s3cret", 6));
    assert_false(metrics_secret_equal("", 0, "s3cret", 6));
    assert_true(metrics_bearer_matches("Bearer s3cret", "s3cret"));
    assert_true(metrics_bearer_matches("bearer   s3cret ", "s3cret"));
    assert_false(metrics_bearer_matches("Bearers3cret", "s3cret"));
    assert_false(metrics_bearer_matches("Basic s3cret", "s3cret"));
    assert_false(metrics_bearer_matches("Bearer wrong", "s3cret"));
    assert_false(metrics_bearer_matches(NULL, "s3cret"));
}

/* ---- requests, /proc, scrape-time families --------------------------------------- */

static void test_request_labels(void **state)
{
    assert_string_equal(metrics_method_label("GET"), "GET");
    assert_string_equal(metrics_method_label("PATCH"), "PATCH");
    assert_string_equal(metrics_method_label("PROPFIND"), "other");
    assert_string_equal(metrics_method_label("get"), "other");
    assert_string_equal(metrics_method_label(NULL), "other");
    assert_string_equal(metrics_code_class(101), "1xx");
    assert_string_equal(metrics_code_class(204), "2xx");
    assert_string_equal(metrics_code_class(404), "4xx");
    assert_string_equal(metrics_code_class(599), "5xx");
    assert_string_equal(metrics_code_class(600), "other");
    assert_string_equal(metrics_code_class(0), "other");
}

static void test_request_end_hook(void **state)
{
    plx_request_end_t end = { .size = sizeof end, .status = 404, .seconds = 0.3,
                              .method = "BREW", .route = NULL };
    char *text;

    assert_true(metrics_requests_setup(MOD("metrics")));
    assert_int_equal(metrics_on_request_end(NULL, &end, NULL), PLX_OK);
    end = (plx_request_end_t){ .size = sizeof end, .status = 200, .seconds = 0.05,
                               .method = "GET", .route = "/items/{id}" };
    assert_int_equal(metrics_on_request_end(NULL, &end, NULL), PLX_OK);
    assert_int_equal(metrics_on_request_end(NULL, NULL, NULL), PLX_OK);
    text = exposition();
    assert_contains(text, "plexus_http_requests_total{route=\"/items/{id}\","
                          "method=\"GET\",code_class=\"2xx\"} 1\n"
                          "plexus_http_requests_total{route=\"unmatched\","
                          "method=\"other\",code_class=\"4xx\"} 1\n");
    assert_contains(text, "plexus_http_request_duration_seconds_bucket{route="
                          "\"unmatched\",method=\"other\",code_class=\"4xx\","
                          "le=\"0.1\"} 0\n");
    assert_contains(text, "plexus_http_request_duration_seconds_bucket{route="
                          "\"/items/{id}\",method=\"GET\",code_class=\"2xx\","
                          "le=\"0.1\"} 1\n");
    free(text);
}

static void test_proc_stat_parse(void **state)
{
    /* a command name with a space and a ')' in it */
    static const char line[] =
        "4242 (plexus d) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 50 0 0 "
        "20 0 37 0 12345 21990354505728 7600 18446744073709551615 1 1 0 0 0 "
        "0 0 4096 0 0 0 0 17 1 0 0 0 0 0\n";
    metrics_proc_t p;

    assert_true(metrics_proc_stat_parse(line, 100, 4096, 1700000000, &p));
    assert_true(p.cpu_seconds == 3.0);
    assert_true(p.threads == 37);
    assert_true(p.virtual_bytes == 21990354505728.0);
    assert_true(p.resident_bytes == 7600.0 * 4096);
    assert_true(p.start_time == 1700000000 + 123.45);
    assert_false(metrics_proc_stat_parse("garbage", 100, 4096, 0, &p));
    assert_false(metrics_proc_stat_parse("1 (x) S 1 2", 100, 4096, 0, &p));
}

static void test_collect_families(void **state)
{
    metrics_buf_t b;

    memset(&fake_stats, 0, sizeof fake_stats);
    fake_stats.start_time = 1700000000.5;
    fake_stats.requests_in_flight = 3;
    fake_stats.ws_open = 2;
    fake_stats.db_pool_size = 4;
    fake_stats.db_wait_seconds = 0.25;
    fake_stats.jobs_done = 7;
    fake_stats.jobs_retried = 1;
    fake_stats.jobs_queued = -1;   /* the database is away */
    fake_stats.jobs_running = -1;
    metrics_buf_init(&b, METRICS_OUTPUT_MAX);
    metrics_collect_write(&b);
    assert_false(b.failed);
    assert_contains(b.data, "plexus_build_info{version=\"9.8.7\",abi=\"1.2\"} 1\n");
    assert_contains(b.data, "plexus_module_info{name=\"metrics\",version=\"1.0.0\"} 1\n"
                            "plexus_module_info{name=\"we\\\"ird\\\\\",version=\"2.0\\n\"} 1\n");
    assert_contains(b.data, "plexus_http_requests_in_flight 3\n");
    assert_contains(b.data, "plexus_websocket_connections_open 2\n");
    assert_contains(b.data, "plexus_db_pool_size 4\n");
    assert_contains(b.data, "plexus_db_pool_wait_seconds_total 0.25\n");
    assert_contains(b.data, "plexus_jobs_completed_total{outcome=\"dead\"} 0\n"
                            "plexus_jobs_completed_total{outcome=\"done\"} 7\n"
                            "plexus_jobs_completed_total{outcome=\"retried\"} 1\n");
    assert_null(strstr(b.data, "plexus_jobs_queued"));
    assert_contains(b.data, "# TYPE process_cpu_seconds_total counter\n");
    assert_contains(b.data, "# TYPE process_open_fds gauge\n");
    assert_contains(b.data, "# TYPE process_start_time_seconds gauge\n");
    assert_int_equal(b.data[b.len - 1], '\n');
    metrics_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_special),
        cmocka_unit_test(test_format_integers),
        cmocka_unit_test(test_format_fractions_round_trip),
        cmocka_unit_test(test_escape_label_values),
        cmocka_unit_test(test_escape_help),
        cmocka_unit_test(test_clean_invalid_utf8_and_long_values),
        cmocka_unit_test(test_buffer_ceiling),
        cmocka_unit_test(test_names_accepted),
        cmocka_unit_test(test_names_refused),
        cmocka_unit_test(test_label_names),
        cmocka_unit_test(test_reserved_names_are_valid),
        cmocka_unit_test_setup_teardown(test_histogram_cumulative_buckets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_default_bounds_and_no_labels, setup, teardown),
        cmocka_unit_test_setup_teardown(test_counter_gauge_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_label_value_cleaned_and_escaped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refusals_logged, setup, teardown),
        cmocka_unit_test_setup_teardown(test_histogram_trailing_inf_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_series_bound, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exact_counts_under_threads, setup, teardown),
        cmocka_unit_test(test_allow_parse_and_match),
        cmocka_unit_test(test_allow_parse_errors),
        cmocka_unit_test(test_buckets_parse),
        cmocka_unit_test(test_max_series_and_token),
        cmocka_unit_test(test_secret_and_bearer),
        cmocka_unit_test(test_request_labels),
        cmocka_unit_test_setup_teardown(test_request_end_hook, setup, teardown),
        cmocka_unit_test(test_proc_stat_parse),
        cmocka_unit_test_setup_teardown(test_collect_families, setup, teardown),
    };

    plx_api = &fake_api;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
