/*
 * test_lifecycle.c - health endpoints and a graceful stop
 *
 * /health/live answers as long as the process does; /health/ready names its
 * components; /health summarises version, uptime and modules. SIGTERM with
 * a request in flight lets that request end properly and exits 0 within
 * server.shutdown_grace.
 */
#include "config.h"

#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "pgtest.h"

#define GRACE_MS 4000
#define WAIT_MS  10000

static plxt_server_t *srv;
static char dbname[64];
static char *db_url;

static const plxt_module_t mods[] = { { .name = "example" }, { 0 } };

static plxt_server_t *start_server(void)
{
    char cfg[128];

    snprintf(cfg, sizeof cfg, "[server]\nshutdown_grace = %dms\n", GRACE_MS);
    plxt_server_opts_t o = { .db_url = db_url, .modules = mods, .config = cfg };
    return plxt_server_start(&o);
}

static int group_setup(void **state)
{
    db_url = pgtest_db_create(dbname);
    if (!db_url)
        return -1;
    srv = start_server();
    return srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    pgtest_db_drop(dbname);
    free(db_url);
    return rc == 0 ? 0 : -1;
}

static json_t *get_json(const char *path, long want_status)
{
    plxt_resp_t resp;
    json_t *j;

    assert_int_equal(plxt_get(srv, path, &resp), 0);
    if (resp.status != want_status)
        fail_msg("GET %s: expected %ld, found %ld: %s", path, want_status,
                 resp.status, resp.body);
    assert_true(plxt_resp_type_is(&resp, "application/json"));
    j = plxt_resp_json(&resp);
    assert_non_null(j);
    plxt_resp_free(&resp);
    return j;
}

static void test_live(void **state)
{
    json_t *j = get_json("/health/live", 200);

    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    json_decref(j);
}

static void test_ready_names_components(void **state)
{
    static const char *const names[] = { "database", "migrations", "modules", "server" };
    json_t *j = get_json("/health/ready", 200);
    json_t *checks = json_object_get(j, "checks");

    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_true(json_is_object(checks));
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        json_t *c = json_object_get(checks, names[i]);
        if (!c)
            fail_msg("expected component \"%s\" in /health/ready", names[i]);
        assert_string_equal(json_string_value(json_object_get(c, "status")), "ok");
    }
    json_decref(j);
}

static void test_summary(void **state)
{
    json_t *j = get_json("/health", 200), *mods_j, *m;
    bool found = false;
    size_t i;

    assert_string_equal(json_string_value(json_object_get(j, "version")), PACKAGE_VERSION);
    assert_true(json_is_number(json_object_get(j, "uptime_seconds")));
    assert_true(json_number_value(json_object_get(j, "uptime_seconds")) >= 0);
    mods_j = json_object_get(j, "modules");
    assert_true(json_is_array(mods_j));
    json_array_foreach(mods_j, i, m) {
        const char *name = json_string_value(json_object_get(m, "name"));
        if (name && strcmp(name, "example") == 0) {
            found = true;
            assert_string_equal(json_string_value(json_object_get(m, "version")), "1.0.0");
        }
    }
    if (!found)
        fail_msg("expected module \"example\" in /health");
    json_decref(j);
}

static void test_uptime_grows(void **state)
{
    json_t *a = get_json("/health", 200), *b;
    double ua = json_number_value(json_object_get(a, "uptime_seconds"));

    plxt_sleep_ms(300);
    b = get_json("/health", 200);
    assert_true(json_number_value(json_object_get(b, "uptime_seconds")) > ua);
    json_decref(a);
    json_decref(b);
}

/* SIGTERM while a slow streamed response is in flight: it ends properly
 * (the body is terminated, the last event is "done" or the shutdown event,
 * never a cut connection), and the process exits 0 within the grace */
static void test_sigterm_lets_inflight_request_finish(void **state)
{
    plxt_server_t *s = start_server();
    plxt_stream_t *st;
    plxt_sse_event_t ev;
    char last[64] = "";
    int rc, ticks = 0;

    assert_non_null(s);
    st = plxt_stream_open(s->url, "/api/v1/example/stream?count=4&interval_ms=300",
                          NULL, WAIT_MS);
    assert_non_null(st);
    assert_int_equal(plxt_stream_status(st), 200);
    assert_int_equal(plxt_sse_next(st, &ev, WAIT_MS), 1);
    plxt_sse_event_free(&ev);

    double t0 = plxt_now_ms();
    assert_int_equal(plxt_server_signal(s, SIGTERM), 0);
    while ((rc = plxt_sse_next(st, &ev, WAIT_MS)) == 1) {
        if (!ev.is_comment)
            snprintf(last, sizeof last, "%s", ev.event);
        ticks += strcmp(ev.event, "tick") == 0;
        plxt_sse_event_free(&ev);
    }
    if (rc != 0)
        fail_msg("the in-flight stream was cut (rc %d) after SIGTERM", rc);
    assert_true(plxt_stream_ended(st));
    if (strcmp(last, "done") != 0 && strcmp(last, "shutdown") != 0)
        fail_msg("expected the stream to end with \"done\" or \"shutdown\", found \"%s\"",
                 last);
    plxt_stream_close(st);

    rc = plxt_server_wait(s, GRACE_MS + 5000);
    if (rc != 0)
        fail_msg("expected exit 0 within the grace, found %d after %.0f ms", rc,
                 plxt_now_ms() - t0);
    if (plxt_now_ms() - t0 > GRACE_MS + 2000)
        fail_msg("exit took %.0f ms, grace is %d ms", plxt_now_ms() - t0, GRACE_MS);
    assert_true(plxt_server_log_contains(s, "SIGTERM"));
    assert_int_equal(plxt_server_stop(s), 0);
}

static void test_stopped_server_refuses(void **state)
{
    plxt_server_t *s = start_server();
    plxt_resp_t resp;
    char url[128];

    assert_non_null(s);
    snprintf(url, sizeof url, "%s/health/live", s->url);
    assert_int_equal(plxt_server_signal(s, SIGTERM), 0);
    assert_int_equal(plxt_server_wait(s, GRACE_MS + 5000), 0);
    plxt_req_t req = { .url = url, .timeout_ms = 1000 };
    assert_int_not_equal(plxt_http_req(&req, &resp), 0);
    plxt_resp_free(&resp);
    assert_int_equal(plxt_server_stop(s), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_live),
        cmocka_unit_test(test_ready_names_components),
        cmocka_unit_test(test_summary),
        cmocka_unit_test(test_uptime_grows),
        cmocka_unit_test(test_sigterm_lets_inflight_request_finish),
        cmocka_unit_test(test_stopped_server_refuses),
    };

    plxt_require_postgres("test_lifecycle");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
