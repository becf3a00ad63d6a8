/*
 * test_metrics.c - GET /metrics as Prometheus sees it, from a real plexusd
 *
 * One server (metrics, the example module, series_probe) takes the traffic
 * tests: each reads the counters before and after and asserts the exact
 * delta, also with requests from several threads at once, and the
 * exposition goes through `promtool check metrics`. Further servers, each
 * on its own database, show the settings: the series bound and buckets,
 * an address outside metrics.allow, a token, a bad value refusing to
 * start, and the module disabled (404, everything else working).
 *
 * Without promtool on PATH the promtool cases are skipped with a loud
 * line and the program exits 77 (if nothing failed); CI installs it
 * (Debian package prometheus).
 */
#include "config.h"

#include <math.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include <plexus/module.h>

#include "harness.h"
#include "pgtest.h"

#define ITEMS_ROUTE "/api/v1/example/items/{id}"
#define ITEMS_2XX   "route=\"" ITEMS_ROUTE "\",method=\"GET\",code_class=\"2xx\""
#define REQS        "plexus_http_requests_total"
#define DURATION    "plexus_http_request_duration_seconds"
#define TOKEN       "scrape-token-0123456789abcdef"
#define THREADS     8
#define PER_THREAD  50
#define WAIT_MS     10000

static plxt_server_t *srv;
static char dbname[64];
static bool promtool_missing;

static const char main_config[] =
    "[server]\nthreads = 64\n"
    "[ratelimit]\nenabled = no\n"
    "[database]\npool_size = 3\n"
    "[jobs]\nworkers = 2\npoll_interval = 100ms\nbackoff_base = 100ms\n"
    "backoff_max = 200ms\nmax_attempts = 3\n";

/* ---- helpers ------------------------------------------------------------------ */

static char metrics_path[4096], probe_path[4096];

static void module_paths(void)
{
    const char *b = getenv("PLX_BUILDDIR");

    snprintf(metrics_path, sizeof metrics_path, "%s/modules/metrics/.libs/metrics.so",
             b ? b : ".");
    snprintf(probe_path, sizeof probe_path,
             "%s/modules/metrics/tests/.libs/series_probe.so", b ? b : ".");
}

/* a server on a database of its own; db names the database to drop after */
static plxt_server_t *start(char db[64], const plxt_module_t *mods,
                            const char *config, const char *const *env)
{
    char *url = pgtest_db_create(db);
    plxt_server_t *s;

    if (!url)
        return NULL;
    plxt_server_opts_t o = { .db_url = url, .modules = mods, .config = config,
                             .env = env };
    s = plxt_server_start(&o);
    free(url);
    return s;
}

static void stop(plxt_server_t *s, const char *db)
{
    assert_int_equal(plxt_server_stop(s), 0);   /* ASan finds leaks at exit */
    pgtest_db_drop(db);
}

static void get(const plxt_server_t *s, const char *path,
                const char *const *headers, plxt_resp_t *resp)
{
    char url[2048];

    snprintf(url, sizeof url, "%s%s", s->url, path);
    if (plxt_http("GET", url, headers, NULL, resp) != 0)
        fail_msg("GET %s: no response: %s", path, resp->error);
}

/* the exposition text (malloc'd), after checking the answer's form */
static char *scrape(const plxt_server_t *s)
{
    plxt_resp_t resp;
    char *text;

    get(s, "/metrics", NULL, &resp);
    assert_int_equal(resp.status, 200);
    assert_string_equal(plxt_resp_header(&resp, "Content-Type"),
                        "text/plain; version=0.0.4; charset=utf-8");
    assert_true(resp.body_len > 0);
    assert_int_equal(resp.body[resp.body_len - 1], '\n');
    text = strdup(resp.body);
    plxt_resp_free(&resp);
    return text;
}

/* The value of the sample whose name and labels are exactly `sample`
 * (`name{l="v",...}` or `name`); NAN when there is none. */
static double sample_value(const char *text, const char *sample)
{
    size_t n = strlen(sample);

    for (const char *line = text; line && *line;) {
        if (strncmp(line, sample, n) == 0 && line[n] == ' ')
            return strtod(line + n + 1, NULL);
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return NAN;
}

/* absent counts as 0: a series appears on its first update */
static double value_or_zero(const char *text, const char *sample)
{
    double v = sample_value(text, sample);
    return isnan(v) ? 0 : v;
}

static double scrape_value(const plxt_server_t *s, const char *sample)
{
    char *text = scrape(s);
    double v = value_or_zero(text, sample);

    free(text);
    return v;
}

static void assert_value(const char *text, const char *sample, double want)
{
    double v = sample_value(text, sample);

    if (!(v == want))
        fail_msg("expected %s %g, found %g", sample, want, v);
}

static size_t lines_starting(const char *text, const char *prefix)
{
    size_t n = 0, len = strlen(prefix);

    for (const char *line = text; line && *line;) {
        if (strncmp(line, prefix, len) == 0)
            n++;
        line = strchr(line, '\n');
        line = line ? line + 1 : NULL;
    }
    return n;
}

static void expect_status(const plxt_server_t *s, const char *method,
                          const char *path, long status)
{
    char url[2048];
    plxt_resp_t resp;

    snprintf(url, sizeof url, "%s%s", s->url, path);
    if (plxt_http(method, url, NULL, NULL, &resp) != 0)
        fail_msg("%s %s: no response: %s", method, path, resp.error);
    if (resp.status != status)
        fail_msg("%s %s: expected %ld, found %ld", method, path, status, resp.status);
    plxt_resp_free(&resp);
}

static bool find_promtool(char *out, size_t len)
{
    const char *path = getenv("PATH");

    while (path && *path) {
        const char *end = strchr(path, ':');
        size_t n = end ? (size_t)(end - path) : strlen(path);
        snprintf(out, len, "%.*s/promtool", (int)n, path);
        if (access(out, X_OK) == 0)
            return true;
        path = end ? end + 1 : NULL;
    }
    return false;
}

/* `promtool check metrics` must accept text with no complaint at all */
static void assert_promtool_accepts(const char *text)
{
    char promtool[4096], file[] = "/tmp/plx-metrics-XXXXXX", cmd[8300];
    char *out = NULL;
    int fd, rc;

    if (!find_promtool(promtool, sizeof promtool)) {
        fprintf(stderr, "SKIP: promtool not found on PATH (Debian package "
                "prometheus): the exposition was NOT checked by promtool\n");
        promtool_missing = true;
        skip();
    }
    fd = mkstemp(file);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    snprintf(cmd, sizeof cmd, "'%s' check metrics < '%s'", promtool, file);
    const char *argv[] = { "/bin/sh", "-c", cmd, NULL };
    rc = plxt_run(argv, NULL, 30000, &out);
    unlink(file);
    if (rc != 0 || (out && *out))
        fail_msg("promtool check metrics: exit %d:\n%s", rc, out ? out : "");
    free(out);
}

/* ---- the main server ----------------------------------------------------------- */

static int group_setup(void **state)
{
    module_paths();
    const plxt_module_t mods[] = {
        { .name = "metrics", .path = metrics_path },
        { .name = "example" },
        { .name = "series_probe", .path = probe_path },
        { 0 },
    };

    srv = start(dbname, mods, main_config, NULL);
    return srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    pgtest_db_drop(dbname);
    return rc == 0 ? 0 : -1;
}

static void test_build_and_module_info(void **state)
{
    char *text = scrape(srv), sample[256];

    snprintf(sample, sizeof sample, "plexus_build_info{version=\"%s\",abi=\"%d.%d\"}",
             PACKAGE_VERSION, PLX_ABI_MAJOR, PLX_ABI_MINOR);
    assert_value(text, sample, 1);
    assert_value(text, "plexus_module_info{name=\"metrics\",version=\"1.0.0\"}", 1);
    assert_value(text, "plexus_module_info{name=\"example\",version=\"1.0.0\"}", 1);
    assert_value(text, "plexus_module_info{name=\"series_probe\",version=\"0.0.1\"}", 1);
    assert_int_equal(lines_starting(text, "plexus_module_info{"), 3);
    free(text);
}

/* N requests one after another: exact deltas, and the pattern as label */
static void test_exact_deltas(void **state)
{
    char *before = scrape(srv), *after, path[128];
    const int n = 30;

    for (int i = 0; i < n; i++) {
        snprintf(path, sizeof path, "/api/v1/example/items/seq-%d", i);
        expect_status(srv, "GET", path, 200);
    }
    after = scrape(srv);
    assert_value(after, REQS "{" ITEMS_2XX "}",
                 value_or_zero(before, REQS "{" ITEMS_2XX "}") + n);
    assert_value(after, DURATION "_count{" ITEMS_2XX "}",
                 value_or_zero(before, DURATION "_count{" ITEMS_2XX "}") + n);
    assert_value(after, DURATION "_bucket{" ITEMS_2XX ",le=\"+Inf\"}",
                 value_or_zero(before, DURATION "_bucket{" ITEMS_2XX ",le=\"+Inf\"}") + n);
    /* every bucket grew by at most n, and buckets are cumulative */
    double last = 0;
    static const char *const les[] = { "0.005", "0.01", "0.025", "0.05", "0.1",
                                       "0.25", "0.5", "1", "2.5", "5", "10", "+Inf" };
    for (size_t i = 0; i < sizeof les / sizeof les[0]; i++) {
        char sample[256];
        snprintf(sample, sizeof sample, DURATION "_bucket{" ITEMS_2XX ",le=\"%s\"}", les[i]);
        double a = sample_value(after, sample), d = a - value_or_zero(before, sample);
        assert_false(isnan(a));
        assert_true(d >= 0 && d <= n);
        assert_true(a >= last);
        last = a;
    }
    /* the raw path is nowhere: only the pattern */
    assert_null(strstr(after, "seq-"));
    assert_null(strstr(after, "/api/v1/example/items/seq"));
    free(before);
    free(after);
}

static void *client(void *arg)
{
    int id = (int)(intptr_t)arg, failures = 0;
    char url[256];

    for (int i = 0; i < PER_THREAD; i++) {
        plxt_resp_t resp;
        snprintf(url, sizeof url, "%s/api/v1/example/items/t%d-%d", srv->url, id, i);
        if (plxt_http("GET", url, NULL, NULL, &resp) != 0 || resp.status != 200)
            failures++;
        plxt_resp_free(&resp);
    }
    return (void *)(intptr_t)failures;
}

/* THREADS clients at once: not one request lost or counted twice */
static void test_exact_under_concurrency(void **state)
{
    char *before = scrape(srv), *after;
    pthread_t t[THREADS];
    const double n = THREADS * PER_THREAD;

    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, client, (void *)(intptr_t)i), 0);
    for (int i = 0; i < THREADS; i++) {
        void *failures;
        pthread_join(t[i], &failures);
        assert_int_equal((intptr_t)failures, 0);
    }
    after = scrape(srv);
    assert_value(after, REQS "{" ITEMS_2XX "}",
                 value_or_zero(before, REQS "{" ITEMS_2XX "}") + n);
    assert_value(after, DURATION "_count{" ITEMS_2XX "}",
                 value_or_zero(before, DURATION "_count{" ITEMS_2XX "}") + n);
    assert_value(after, DURATION "_bucket{" ITEMS_2XX ",le=\"+Inf\"}",
                 value_or_zero(before, DURATION "_bucket{" ITEMS_2XX ",le=\"+Inf\"}") + n);
    free(before);
    free(after);
}

/* no route: "unmatched", whatever the path; a 405 is unmatched too */
static void test_unmatched(void **state)
{
    static const char un404[] = REQS "{route=\"unmatched\",method=\"GET\",code_class=\"4xx\"}";
    static const char un405[] = REQS "{route=\"unmatched\",method=\"DELETE\",code_class=\"4xx\"}";
    char *before = scrape(srv), *after;

    expect_status(srv, "GET", "/no/such/path-7f3a", 404);
    expect_status(srv, "GET", "/another/unknown-9c1b?x=1", 404);
    expect_status(srv, "DELETE", "/api/v1/example/items/x", 405);
    after = scrape(srv);
    assert_value(after, un404, value_or_zero(before, un404) + 2);
    assert_value(after, un405, value_or_zero(before, un405) + 1);
    assert_null(strstr(after, "path-7f3a"));
    assert_null(strstr(after, "unknown-9c1b"));
    free(before);
    free(after);
}

static bool wait_value(const plxt_server_t *s, const char *sample, double want)
{
    double until = plxt_now_ms() + WAIT_MS;

    while (plxt_now_ms() < until) {
        if (scrape_value(s, sample) == want)
            return true;
        plxt_sleep_ms(50);
    }
    return false;
}

/* in flight, open streams and sockets: exact while they are open */
static void test_gauges_in_flight_streams_sockets(void **state)
{
    plxt_sse_event_t ev;
    plxt_stream_t *st;
    plxt_ws_t *ws;
    int status = 0;
    char *text;

    text = scrape(srv);
    assert_value(text, "plexus_http_requests_in_flight", 1);   /* this scrape */
    free(text);
    st = plxt_stream_open(srv->url, "/api/v1/example/stream?count=1000&interval_ms=50",
                          NULL, WAIT_MS);
    assert_non_null(st);
    assert_int_equal(plxt_sse_next(st, &ev, WAIT_MS), 1);
    plxt_sse_event_free(&ev);
    ws = plxt_ws_connect(srv->url, "/api/v1/example/ws", NULL, WAIT_MS, &status);
    assert_non_null(ws);
    assert_int_equal(status, 101);
    text = scrape(srv);
    assert_value(text, "plexus_sse_streams_open", 1);
    assert_value(text, "plexus_websocket_connections_open", 1);
    assert_value(text, "plexus_http_requests_in_flight", 2);   /* the stream too */
    free(text);
    plxt_stream_close(st);
    plxt_ws_free(ws);
    assert_true(wait_value(srv, "plexus_sse_streams_open", 0));
    assert_true(wait_value(srv, "plexus_websocket_connections_open", 0));
    assert_true(wait_value(srv, "plexus_http_requests_in_flight", 1));
}

/* a module's own families through metrics/1 */
static void test_service_families(void **state)
{
    plxt_resp_t resp;
    json_t *j;
    char *text;

    expect_status(srv, "GET", "/api/v1/series-probe/hit?value=a", 200);
    expect_status(srv, "GET", "/api/v1/series-probe/hit?value=b", 200);
    expect_status(srv, "GET", "/api/v1/series-probe/hit?value=a", 200);
    expect_status(srv, "GET", "/api/v1/series-probe/hit?value=q%22%5C%0A", 200);
    expect_status(srv, "GET", "/api/v1/series-probe/observe?size=50", 200);
    expect_status(srv, "GET", "/api/v1/series-probe/observe?size=5000", 200);
    get(srv, "/api/v1/series-probe/status", NULL, &resp);
    j = plxt_resp_json(&resp);
    assert_non_null(j);
    assert_true(json_is_true(json_object_get(j, "metrics")));
    assert_int_equal(json_integer_value(json_object_get(j, "refused")), 4);
    json_decref(j);
    plxt_resp_free(&resp);
    text = scrape(srv);
    assert_value(text, "series_probe_hits_total{value=\"a\"}", 2);
    assert_value(text, "series_probe_hits_total{value=\"b\"}", 1);
    assert_value(text, "series_probe_hits_total{value=\"q\\\"\\\\\\n\"}", 1);
    assert_value(text, "series_probe_size_bytes_bucket{kind=\"upload\",le=\"10\"}", 0);
    assert_value(text, "series_probe_size_bytes_bucket{kind=\"upload\",le=\"100\"}", 1);
    assert_value(text, "series_probe_size_bytes_bucket{kind=\"upload\",le=\"1000\"}", 1);
    assert_value(text, "series_probe_size_bytes_bucket{kind=\"upload\",le=\"+Inf\"}", 2);
    assert_value(text, "series_probe_size_bytes_sum{kind=\"upload\"}", 5050);
    assert_value(text, "series_probe_size_bytes_count{kind=\"upload\"}", 2);
    assert_value(text, "series_probe_level", 5000);
    free(text);
}

/* a job that fails once: one retried, then one done */
static void test_job_outcomes(void **state)
{
    static const char done[] = "plexus_jobs_completed_total{outcome=\"done\"}";
    static const char retried[] = "plexus_jobs_completed_total{outcome=\"retried\"}";
    static const char dead[] = "plexus_jobs_completed_total{outcome=\"dead\"}";
    char url[256], *before = scrape(srv), *after;
    plxt_resp_t resp;

    snprintf(url, sizeof url, "%s/api/v1/example/jobs", srv->url);
    assert_int_equal(plxt_http("POST", url,
                               (const char *const[]){ "Content-Type: application/json", NULL },
                               "{\"message\":\"metrics\",\"fail_times\":1}", &resp), 0);
    assert_int_equal(resp.status, 202);
    plxt_resp_free(&resp);
    assert_true(wait_value(srv, done, value_or_zero(before, done) + 1));
    after = scrape(srv);
    assert_value(after, retried, value_or_zero(before, retried) + 1);
    assert_value(after, dead, value_or_zero(before, dead));
    assert_false(isnan(sample_value(after, "plexus_jobs_queued")));
    assert_false(isnan(sample_value(after, "plexus_jobs_running")));
    free(before);
    free(after);
}

static void test_db_pool_and_process(void **state)
{
    char *before = scrape(srv), *after;
    double now = (double)time(NULL);

    expect_status(srv, "GET", "/api/v1/example/db", 200);
    after = scrape(srv);
    assert_value(after, "plexus_db_pool_size", 3);
    assert_true(sample_value(after, "plexus_db_pool_acquired_total")
                >= sample_value(before, "plexus_db_pool_acquired_total") + 1);
    assert_true(sample_value(after, "plexus_db_pool_connections_open") >= 1);
    assert_true(sample_value(after, "plexus_db_pool_wait_seconds_total") >= 0);
    assert_value(after, "plexus_db_pool_acquire_timeouts_total", 0);
    assert_true(sample_value(after, "process_open_fds") > 0);
    assert_true(sample_value(after, "process_max_fds") > 0);
    assert_true(sample_value(after, "process_threads") >= 64);
    assert_true(sample_value(after, "process_resident_memory_bytes") > 1e6);
    assert_true(sample_value(after, "process_virtual_memory_bytes") > 1e6);
    assert_true(sample_value(after, "process_cpu_seconds_total") >= 0);
    double started = sample_value(after, "process_start_time_seconds");
    assert_true(started > now - 600 && started <= now + 1);
    free(before);
    free(after);
}

/* last in the group: by now every family has rows */
static void test_promtool_accepts(void **state)
{
    char *text = scrape(srv);

    /* one TYPE line per family, HELP beside it */
    assert_int_equal(lines_starting(text, "# TYPE " REQS " "), 1);
    assert_int_equal(lines_starting(text, "# TYPE "), lines_starting(text, "# HELP "));
    assert_promtool_accepts(text);
    free(text);
}

/* ---- servers of their own ------------------------------------------------------- */

/* max_series = 5: 20 values make 5 series and 15 overflowed updates; the
 * latency buckets are the configured ones */
static void test_series_bound_and_buckets(void **state)
{
    const plxt_module_t mods[] = {
        { .name = "metrics", .path = metrics_path,
          .config = "[metrics]\nmax_series = 5\nbuckets = 0.1, 0.5\n" },
        { .name = "series_probe", .path = probe_path },
        { 0 },
    };
    char db[64], path[128], *text;
    plxt_server_t *s = start(db, mods, "[ratelimit]\nenabled = no\n", NULL);

    assert_non_null(s);
    for (int i = 0; i < 20; i++) {
        snprintf(path, sizeof path, "/api/v1/series-probe/hit?value=user-%02d", i);
        expect_status(s, "GET", path, 200);
    }
    text = scrape(s);
    assert_int_equal(lines_starting(text, "series_probe_hits_total{"), 6);
    for (int i = 0; i < 5; i++) {
        snprintf(path, sizeof path, "series_probe_hits_total{value=\"user-%02d\"}", i);
        assert_value(text, path, 1);
    }
    assert_value(text, "series_probe_hits_total{value=\"__overflow__\"}", 15);
    assert_value(text, "plexus_metrics_series_dropped_total{family=\"series_probe_hits_total\"}", 15);
    assert_int_equal(lines_starting(text, DURATION "_bucket{route=\"/api/v1/series-probe/hit\""), 3);
    assert_value(text, DURATION "_bucket{route=\"/api/v1/series-probe/hit\","
                       "method=\"GET\",code_class=\"2xx\",le=\"0.5\"}", 20);
    assert_value(text, DURATION "_bucket{route=\"/api/v1/series-probe/hit\","
                       "method=\"GET\",code_class=\"2xx\",le=\"+Inf\"}", 20);
    assert_promtool_accepts(text);
    free(text);
    stop(s, db);
}

static void assert_problem(const plxt_resp_t *resp, long status, const char *code)
{
    json_t *j = plxt_resp_json(resp);

    assert_int_equal(resp->status, status);
    assert_true(plxt_resp_type_is(resp, "application/problem+json"));
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "code")), code);
    json_decref(j);
}

/* a client outside metrics.allow: 403, and nothing else is refused */
static void test_address_not_allowed(void **state)
{
    const plxt_module_t mods[] = {
        { .name = "metrics", .path = metrics_path,
          .config = "[metrics]\nallow = 192.0.2.0/24, 2001:db8::/32\n" },
        { 0 },
    };
    char db[64];
    plxt_server_t *s = start(db, mods, NULL, NULL);
    plxt_resp_t resp;

    assert_non_null(s);
    get(s, "/metrics", NULL, &resp);
    assert_problem(&resp, 403, "forbidden");
    assert_null(strstr(resp.body, "plexus_"));
    plxt_resp_free(&resp);
    expect_status(s, "GET", "/health/live", 200);
    stop(s, db);
}

/* a token from the environment: none 401, wrong 403, right 200 */
static void test_bearer_token(void **state)
{
    const plxt_module_t mods[] = { { .name = "metrics", .path = metrics_path }, { 0 } };
    const char *const env[] = { "PLEXUS_METRICS_TOKEN=" TOKEN, NULL };
    char db[64];
    plxt_server_t *s = start(db, mods, NULL, env);
    plxt_resp_t resp;

    assert_non_null(s);
    get(s, "/metrics", NULL, &resp);
    assert_problem(&resp, 401, "unauthenticated");
    assert_non_null(plxt_resp_header(&resp, "WWW-Authenticate"));
    plxt_resp_free(&resp);
    get(s, "/metrics", (const char *const[]){ "Authorization: Bearer wrong-token", NULL },
        &resp);
    assert_problem(&resp, 403, "forbidden");
    plxt_resp_free(&resp);
    get(s, "/metrics", (const char *const[]){ "Authorization: Bearer " TOKEN "x", NULL },
        &resp);
    assert_problem(&resp, 403, "forbidden");
    plxt_resp_free(&resp);
    get(s, "/metrics", (const char *const[]){ "Authorization: Bearer " TOKEN, NULL },
        &resp);
    assert_int_equal(resp.status, 200);
    assert_non_null(strstr(resp.body, "# TYPE plexus_build_info gauge\n"));
    plxt_resp_free(&resp);
    stop(s, db);
}

/* load = no: /metrics is a 404, the rest works, instrumented modules too */
static void test_disabled(void **state)
{
    const plxt_module_t mods[] = {
        { .name = "metrics", .path = metrics_path, .no_load = true },
        { .name = "series_probe", .path = probe_path },
        { 0 },
    };
    char db[64];
    plxt_server_t *s = start(db, mods, NULL, NULL);
    plxt_resp_t resp;
    json_t *j;

    assert_non_null(s);
    expect_status(s, "GET", "/metrics", 404);
    expect_status(s, "GET", "/health/live", 200);
    get(s, "/api/v1/series-probe/hit?value=x", NULL, &resp);
    assert_int_equal(resp.status, 200);
    j = plxt_resp_json(&resp);
    assert_true(json_is_false(json_object_get(j, "metrics")));
    json_decref(j);
    plxt_resp_free(&resp);
    expect_status(s, "GET", "/api/v1/series-probe/observe?size=3", 200);
    stop(s, db);
}

/* a bad [metrics] value stops the server at start, naming the key */
static void test_bad_setting_refuses_start(void **state)
{
    const plxt_module_t mods[] = {
        { .name = "metrics", .path = metrics_path,
          .config = "[metrics]\nallow = localhost\n" },
        { 0 },
    };
    char db[64], *url = pgtest_db_create(db);
    plxt_server_t *s;
    int rc;

    assert_non_null(url);
    plxt_server_opts_t o = { .db_url = url, .modules = mods, .no_wait = true };
    s = plxt_server_start(&o);
    free(url);
    assert_non_null(s);
    rc = plxt_server_wait(s, 20000);
    assert_true(rc > 0 && rc < 128);
    assert_true(plxt_server_log_contains(s, "metrics.allow: expected an IPv4 or "
                                            "IPv6 address"));
    plxt_server_stop(s);
    pgtest_db_drop(db);
}

int main(void)
{
    const struct CMUnitTest traffic[] = {
        cmocka_unit_test(test_build_and_module_info),
        cmocka_unit_test(test_exact_deltas),
        cmocka_unit_test(test_exact_under_concurrency),
        cmocka_unit_test(test_unmatched),
        cmocka_unit_test(test_gauges_in_flight_streams_sockets),
        cmocka_unit_test(test_service_families),
        cmocka_unit_test(test_job_outcomes),
        cmocka_unit_test(test_db_pool_and_process),
        cmocka_unit_test(test_promtool_accepts),
    };
    const struct CMUnitTest settings[] = {
        cmocka_unit_test(test_series_bound_and_buckets),
        cmocka_unit_test(test_address_not_allowed),
        cmocka_unit_test(test_bearer_token),
        cmocka_unit_test(test_disabled),
        cmocka_unit_test(test_bad_setting_refuses_start),
    };
    int failed;

    plxt_require_postgres("test_metrics");
    module_paths();
    failed = cmocka_run_group_tests_name("traffic", traffic, group_setup,
                                         group_teardown);
    failed += cmocka_run_group_tests_name("settings", settings, NULL, NULL);
    if (failed == 0 && promtool_missing) {
        fprintf(stderr, "SKIP: test_metrics passed, but without promtool the "
                "exposition was not checked: install the prometheus package\n");
        return 77;
    }
    return failed;
}
