/*
 * test_database.c - a database that goes away and comes back
 *
 * plexusd talks to PostgreSQL through a TCP proxy the test controls. While
 * the proxy refuses and cuts connections, a route that needs the database
 * answers 503 problem+json with Retry-After, fast (the pool does not make
 * every request wait for a connect timeout), and /health/ready says the
 * database is the problem. When the proxy forwards again both recover
 * without restarting the server.
 */
#include "config.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "harness.h"
#include "pgtest.h"

#define RECOVER_MS   15000
#define FAST_MS      3000     /* a refused database must not cost more */

static plxt_server_t *srv;
static plxt_proxy_t *proxy;
static char dbname[64];
static char *direct_url;

static const plxt_module_t mods[] = { { .name = "example" }, { 0 } };

static int group_setup(void **state)
{
    const char *host = getenv("PGHOST");
    const char *port = getenv("PGPORT");
    char *url;

    direct_url = pgtest_db_create(dbname);
    if (!direct_url)
        return -1;
    proxy = plxt_proxy_start(host, port && *port ? atoi(port) : 5432);
    if (!proxy)
        return -1;
    url = plxt_proxy_conninfo(proxy, dbname);
    plxt_server_opts_t o = {
        .db_url = url,
        .modules = mods,
        .config = "[database]\npool_size = 4\nconnect_timeout = 2s\n"
                  "acquire_timeout = 1s\nstatement_timeout = 5s\n",
    };
    srv = plxt_server_start(&o);
    free(url);
    return srv ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = plxt_server_stop(srv);

    plxt_proxy_stop(proxy);
    pgtest_db_drop(dbname);
    free(direct_url);
    return rc == 0 ? 0 : -1;
}

static void get(const char *path, plxt_resp_t *resp)
{
    assert_int_equal(plxt_get(srv, path, resp), 0);
}

static void expect_db_ok(void)
{
    plxt_resp_t resp;

    get("/api/v1/example/db", &resp);
    if (resp.status != 200)
        fail_msg("GET /api/v1/example/db: expected 200, found %ld: %s",
                 resp.status, resp.body);
    json_t *j = plxt_resp_json(&resp);
    assert_non_null(j);
    assert_true(json_is_string(json_object_get(j, "now")));
    json_decref(j);
    plxt_resp_free(&resp);
}

/* /health/ready: 200 or 503, and the database component's status */
static long ready(char *db_status, size_t len)
{
    plxt_resp_t resp;
    long status;

    get("/health/ready", &resp);
    status = resp.status;
    json_t *j = plxt_resp_json(&resp);
    assert_non_null(j);
    json_t *db = json_object_get(json_object_get(j, "checks"), "database");
    snprintf(db_status, len, "%s",
             json_string_value(json_object_get(db, "status"))
                 ? json_string_value(json_object_get(db, "status")) : "(none)");
    json_decref(j);
    plxt_resp_free(&resp);
    return status;
}

/* poll until both the route and readiness answer 200 again */
static void wait_recovered(void)
{
    double until = plxt_now_ms() + RECOVER_MS;
    char db[32];

    for (;;) {
        plxt_resp_t resp;
        get("/api/v1/example/db", &resp);
        long st = resp.status;
        plxt_resp_free(&resp);
        if (st == 200 && ready(db, sizeof db) == 200)
            return;
        if (plxt_now_ms() > until)
            fail_msg("not recovered %d ms after the database came back "
                     "(db route %ld, ready database \"%s\")", RECOVER_MS, st, db);
        plxt_sleep_ms(200);
    }
}

static void expect_db_away(void)
{
    plxt_resp_t resp;
    double t0 = plxt_now_ms();

    get("/api/v1/example/db", &resp);
    double took = plxt_now_ms() - t0;
    if (resp.status != 503)
        fail_msg("database away: expected 503, found %ld: %s", resp.status,
                 resp.body);
    assert_true(plxt_resp_type_is(&resp, "application/problem+json"));
    assert_non_null(plxt_resp_header(&resp, "Retry-After"));
    json_t *j = plxt_resp_json(&resp);
    assert_non_null(j);
    assert_int_equal(json_integer_value(json_object_get(j, "status")), 503);
    assert_true(json_is_string(json_object_get(j, "code")));
    json_decref(j);
    plxt_resp_free(&resp);
    if (took > FAST_MS)
        fail_msg("database away: the 503 took %.0f ms, expected under %d ms",
                 took, FAST_MS);
}

static void test_database_up(void **state)
{
    char db[32];

    expect_db_ok();
    assert_int_equal(ready(db, sizeof db), 200);
    assert_string_equal(db, "ok");
}

static void test_refused_then_recovers(void **state)
{
    char db[32];

    expect_db_ok();   /* the pool holds live connections now */
    plxt_proxy_pause(proxy);
    for (int i = 0; i < 5; i++)
        expect_db_away();
    assert_int_equal(ready(db, sizeof db), 503);
    assert_string_equal(db, "fail");

    plxt_proxy_resume(proxy);
    wait_recovered();
    assert_int_equal(ready(db, sizeof db), 200);
    assert_string_equal(db, "ok");
}

/* many requests at once while the database is away: all answer, fast */
static void test_burst_while_away(void **state)
{
    double t0;

    plxt_proxy_pause(proxy);
    t0 = plxt_now_ms();
    for (int i = 0; i < 40; i++)
        expect_db_away();
    if (plxt_now_ms() - t0 > 40.0 * 250)
        fail_msg("40 requests against a missing database took %.0f ms",
                 plxt_now_ms() - t0);
    plxt_proxy_resume(proxy);
    wait_recovered();
}

/* the server saw it all without restarting: same process, log says so */
static void test_same_process(void **state)
{
    assert_false(srv->exited);
    assert_true(plxt_server_log_contains(srv, "database unavailable"));
    assert_true(plxt_server_log_contains(srv, "database reachable again"));
    expect_db_ok();
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_database_up),
        cmocka_unit_test(test_refused_then_recovers),
        cmocka_unit_test(test_burst_while_away),
        cmocka_unit_test(test_same_process),
    };

    plxt_require_postgres("test_database");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
