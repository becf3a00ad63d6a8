/*
 * test_dbtx.c - transactions, LISTEN/NOTIFY, durable events and the 1.4
 * job features through three real servers on one database
 *
 * The txprobe test module drives each API entry from a route and records
 * what happened in its tables (read here with libpq) and in
 * GET /api/v1/txprobe/state (what one instance saw in-process).
 *
 *   A  runs no job workers: whatever it enqueues runs on B or C
 *   B  reaches the database through a TCP proxy the test can cut; two
 *      workers that poll only every 10 s
 *   C  one worker, polling every 10 s
 *
 * So a job that runs within a second or two of its enqueue on A was woken
 * by a notification, and the recurring job runs on B and C together.
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

#include <libpq-fe.h>

#include "harness.h"
#include "pgtest.h"

#define WAIT_MS 15000

static plxt_server_t *srv_a, *srv_b, *srv_c;
static plxt_proxy_t *proxy;
static char dbname[64];
static char *db_url;
static PGconn *pg;

static const char *const json_hdrs[] = { "Content-Type: application/json",
                                         NULL };

static plxt_server_t *start(const char *instance, const char *url,
                            const char *jobs)
{
    const plxt_module_t mods[] = {
        { .name = "txprobe",
          .config = plxt_fmt("[txprobe]\ninstance = %s\ntick_seconds = 1\n",
                             instance) },
        { 0 },
    };
    plxt_server_opts_t o = {
        .db_url = url,
        .modules = mods,
        .config = plxt_fmt("[database]\npool_size = 4\nconnect_timeout = 2s\n"
                           "acquire_timeout = 2s\nstatement_timeout = 5s\n"
                           "[jobs]\nlease = 30s\nbackoff_base = 100ms\n%s",
                           jobs),
    };
    return plxt_server_start(&o);
}

static int group_setup(void **state)
{
    const char *host = getenv("PGHOST");
    const char *port = getenv("PGPORT");

    (void)state;
    db_url = pgtest_db_create(dbname);
    if (!db_url)
        return -1;
    proxy = plxt_proxy_start(host, port && *port ? atoi(port) : 5432);
    if (!proxy)
        return -1;
    char *proxied = plxt_proxy_conninfo(proxy, dbname);
    srv_a = start("a", db_url, "workers = 0\n");
    srv_b = srv_a ? start("b", proxied, "workers = 2\npoll_interval = 10s\n")
                  : NULL;
    srv_c = srv_b ? start("c", db_url, "workers = 1\npoll_interval = 10s\n")
                  : NULL;
    free(proxied);
    pg = PQconnectdb(db_url);
    return srv_c && PQstatus(pg) == CONNECTION_OK ? 0 : -1;
}

static int group_teardown(void **state)
{
    int rc = 0;

    (void)state;
    PQfinish(pg);
    rc |= plxt_server_stop(srv_a);
    rc |= plxt_server_stop(srv_b);
    rc |= plxt_server_stop(srv_c);
    plxt_proxy_stop(proxy);
    pgtest_db_drop(dbname);
    free(db_url);
    return rc == 0 ? 0 : -1;
}

/* ---- helpers ---------------------------------------------------------------- */

/* POST a JSON body; the parsed answer (a new reference) and its status */
static json_t *post(plxt_server_t *s, const char *path, const char *body,
                    long *status)
{
    plxt_resp_t resp;

    assert_int_equal(plxt_http("POST", plxt_fmt("%s%s", s->url, path),
                               json_hdrs, body ? body : "{}", &resp), 0);
    *status = resp.status;
    json_t *j = plxt_resp_json(&resp);
    if (!j)
        fail_msg("POST %s: %ld, not JSON: %s", path, resp.status, resp.body);
    plxt_resp_free(&resp);
    return j;
}

/* one number from a query with text parameters */
static long long sql_num(const char *sql, int n, const char *const *params)
{
    PGresult *res = PQexecParams(pg, sql, n, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    long long v = atoll(PQgetvalue(res, 0, 0));
    PQclear(res);
    return v;
}

static long long deliveries(const char *value)
{
    const char *params[1] = { value };
    return sql_num("SELECT count(*) FROM txprobe.deliveries WHERE value = $1",
                   1, params);
}

static long long durable_jobs(const char *value)
{
    const char *params[1] = { value };
    return sql_num("SELECT count(*) FROM plexus.jobs WHERE handler ="
                   " 'txprobe.durable' AND payload->'payload'->>'value' = $1",
                   1, params);
}

/* does the instance's list ("events", "notifies") hold value? */
static bool seen(plxt_server_t *s, const char *list, const char *value)
{
    plxt_resp_t resp;
    bool found = false;

    assert_int_equal(plxt_get(s, "/api/v1/txprobe/state", &resp), 0);
    assert_int_equal(resp.status, 200);
    json_t *j = plxt_resp_json(&resp), *v;
    size_t i;
    json_array_foreach(json_object_get(j, list), i, v)
        if (strcmp(json_string_value(v), value) == 0)
            found = true;
    json_decref(j);
    plxt_resp_free(&resp);
    return found;
}

static long catchups(plxt_server_t *s)
{
    plxt_resp_t resp;

    assert_int_equal(plxt_get(s, "/api/v1/txprobe/state", &resp), 0);
    json_t *j = plxt_resp_json(&resp);
    long n = (long)json_integer_value(json_object_get(j, "catchups"));
    json_decref(j);
    plxt_resp_free(&resp);
    return n;
}

static void wait_seen(plxt_server_t *s, const char *list, const char *value)
{
    double until = plxt_now_ms() + WAIT_MS;

    while (!seen(s, list, value)) {
        if (plxt_now_ms() > until)
            fail_msg("%s never saw %s \"%s\"", s->url, list, value);
        plxt_sleep_ms(50);
    }
}

static void wait_deliveries(const char *value, long long n)
{
    double until = plxt_now_ms() + WAIT_MS;

    while (deliveries(value) < n) {
        if (plxt_now_ms() > until)
            fail_msg("durable event \"%s\" not delivered", value);
        plxt_sleep_ms(50);
    }
}

static long long item_jobs(const char *value)
{
    const char *params[1] = { value };
    return sql_num("SELECT count(*) FROM plexus.jobs WHERE handler ="
                   " 'txprobe.noop' AND unique_key = 'item:' || $1", 1, params);
}

static long long counter(void)
{
    return sql_num("SELECT n FROM txprobe.counter WHERE id = 1", 0, NULL);
}

/* ---- transactions and what they publish ------------------------------------ */

static void test_commit_publishes(void **state)
{
    long status;
    const char *params[1] = { "c1" };

    (void)state;
    json_t *j = post(srv_a, "/api/v1/txprobe/commit", "{\"value\":\"c1\"}",
                     &status);
    assert_int_equal(status, 200);
    assert_int_equal(json_integer_value(json_object_get(j, "runs")), 1);
    json_decref(j);
    assert_int_equal(sql_num("SELECT count(*) FROM txprobe.items"
                             " WHERE value = $1", 1, params), 1);
    /* in-process subscribers ran at COMMIT, before the answer */
    assert_true(seen(srv_a, "events", "c1"));
    /* the notification reaches every instance, A included */
    wait_seen(srv_b, "notifies", "c1");
    wait_seen(srv_c, "notifies", "c1");
    wait_seen(srv_a, "notifies", "c1");
    /* the durable subscriber got it as exactly one job */
    wait_deliveries("c1", 1);
    plxt_sleep_ms(300);
    assert_int_equal(deliveries("c1"), 1);
    assert_int_equal(durable_jobs("c1"), 1);
    /* the job enqueued on the transaction's connection exists */
    assert_int_equal(item_jobs("c1"), 1);
    /* and only in-process on the instance that emitted */
    assert_false(seen(srv_c, "events", "c1"));
}

static void test_rollback_publishes_nothing(void **state)
{
    long status;
    const char *params[1] = { "r1" };

    (void)state;
    json_t *j = post(srv_a, "/api/v1/txprobe/commit",
                     "{\"value\":\"r1\",\"fail\":true}", &status);
    assert_int_equal(status, 409);
    assert_string_equal(json_string_value(json_object_get(j, "code")),
                        "rolled_back");
    json_decref(j);
    /* a committed marker after it: once it has arrived everywhere, the
     * rolled-back one would have too */
    j = post(srv_a, "/api/v1/txprobe/commit", "{\"value\":\"r1-after\"}",
             &status);
    assert_int_equal(status, 200);
    json_decref(j);
    wait_seen(srv_b, "notifies", "r1-after");
    wait_seen(srv_c, "notifies", "r1-after");
    wait_deliveries("r1-after", 1);
    assert_int_equal(sql_num("SELECT count(*) FROM txprobe.items"
                             " WHERE value = $1", 1, params), 0);
    assert_false(seen(srv_a, "events", "r1"));
    assert_false(seen(srv_b, "notifies", "r1"));
    assert_false(seen(srv_c, "notifies", "r1"));
    assert_int_equal(durable_jobs("r1"), 0);
    assert_int_equal(deliveries("r1"), 0);
    assert_int_equal(item_jobs("r1"), 0);
    assert_int_equal(item_jobs("r1-after"), 1);
}

/* COMMIT itself fails (a deferred unique constraint): rolled back, the
 * constraint's status returned, nothing published */
static void test_failed_commit_publishes_nothing(void **state)
{
    long status;
    const char *params[1] = { "d1" };

    (void)state;
    json_t *j = post(srv_a, "/api/v1/txprobe/commit",
                     "{\"value\":\"d1\",\"commit_fail\":true}", &status);
    assert_int_equal(status, 409);
    assert_string_equal(json_string_value(json_object_get(j, "code")),
                        "rolled_back");
    json_decref(j);
    j = post(srv_a, "/api/v1/txprobe/commit", "{\"value\":\"d1-after\"}",
             &status);
    assert_int_equal(status, 200);
    json_decref(j);
    wait_seen(srv_b, "notifies", "d1-after");
    wait_deliveries("d1-after", 1);
    assert_int_equal(sql_num("SELECT count(*) FROM txprobe.items"
                             " WHERE value = $1", 1, params), 0);
    assert_int_equal(sql_num("SELECT count(*) FROM txprobe.deferred", 0,
                             NULL), 0);
    assert_false(seen(srv_a, "events", "d1"));
    assert_false(seen(srv_b, "notifies", "d1"));
    assert_int_equal(durable_jobs("d1"), 0);
    assert_int_equal(item_jobs("d1"), 0);
}

/* The session ends during COMMIT: the outcome cannot be known, so db_tx
 * says PLX_ERR_DB (503), drops the connection and publishes nothing;
 * the next transaction runs on a new connection. */
static void test_commit_outcome_unknown(void **state)
{
    long status;
    const char *params[1] = { "u1" };

    (void)state;
    json_t *j = post(srv_a, "/api/v1/txprobe/commit",
                     "{\"value\":\"u1\",\"commit_kill\":true}", &status);
    assert_int_equal(status, 503);
    json_decref(j);
    assert_true(plxt_server_log_wait(srv_a, "the outcome is unknown", 2000));
    j = post(srv_a, "/api/v1/txprobe/commit", "{\"value\":\"u1-after\"}",
             &status);
    assert_int_equal(status, 200);
    json_decref(j);
    wait_seen(srv_b, "notifies", "u1-after");
    /* here the server did roll it back */
    assert_int_equal(sql_num("SELECT count(*) FROM txprobe.items"
                             " WHERE value = $1", 1, params), 0);
    assert_false(seen(srv_a, "events", "u1"));
    assert_false(seen(srv_b, "notifies", "u1"));
}

/* the transactional entries refuse a connection that is not in db_tx */
static void test_outside_tx_refused(void **state)
{
    long status;

    (void)state;
    json_t *j = post(srv_a, "/api/v1/txprobe/misuse", NULL, &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(j, "emit_tx")),
                        "invalid input");
    assert_string_equal(json_string_value(json_object_get(j, "enqueue")),
                        "invalid input");
    json_decref(j);
}

static void test_serialization_retry(void **state)
{
    long status;
    long long before;

    (void)state;
    /* one conflict: rolled back, run again, committed */
    before = counter();
    json_t *j = post(srv_a, "/api/v1/txprobe/conflict", "{\"times\":1}",
                     &status);
    assert_int_equal(status, 200);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_int_equal(json_integer_value(json_object_get(j, "runs")), 2);
    json_decref(j);
    assert_int_equal(counter(), before + 100 + 1);

    /* the same under SERIALIZABLE, conflicting twice */
    before = counter();
    j = post(srv_a, "/api/v1/txprobe/conflict",
             "{\"times\":2,\"iso\":\"serializable\"}", &status);
    assert_string_equal(json_string_value(json_object_get(j, "status")), "ok");
    assert_int_equal(json_integer_value(json_object_get(j, "runs")), 3);
    json_decref(j);
    assert_int_equal(counter(), before + 200 + 1);

    /* always conflicting: five runs, then PLX_AGAIN, nothing of ours kept */
    before = counter();
    j = post(srv_a, "/api/v1/txprobe/conflict", "{\"times\":10}", &status);
    assert_string_equal(json_string_value(json_object_get(j, "status")),
                        "again");
    assert_int_equal(json_integer_value(json_object_get(j, "runs")), 5);
    json_decref(j);
    assert_int_equal(counter(), before + 500);
}

static void test_emit_outside_tx(void **state)
{
    long status;

    (void)state;
    json_t *j = post(srv_a, "/api/v1/txprobe/emit", "{\"value\":\"e1\"}",
                     &status);
    assert_int_equal(status, 200);
    json_decref(j);
    assert_true(seen(srv_a, "events", "e1"));
    wait_deliveries("e1", 1);
    plxt_sleep_ms(300);
    assert_int_equal(deliveries("e1"), 1);
    assert_int_equal(durable_jobs("e1"), 1);
    /* the job's payload is the documented envelope */
    const char *params[1] = { "e1" };
    assert_int_equal(sql_num("SELECT count(*) FROM plexus.jobs WHERE handler"
                             " = 'txprobe.durable' AND payload->>'topic' ="
                             " 'txprobe.created' AND payload ? 'emitted_at'"
                             " AND length(payload->>'id') = 36"
                             " AND unique_key = (payload->>'id') ||"
                             " ':txprobe.durable'"
                             " AND payload->'payload'->>'value' = $1",
                             1, params), 1);
}

/* ---- jobs --------------------------------------------------------------------- */

static void test_unique_key(void **state)
{
    long status;
    char first[37];

    (void)state;
    json_t *j = post(srv_a, "/api/v1/txprobe/unique", "{\"key\":\"k1\"}",
                     &status);
    assert_int_equal(status, 201);
    snprintf(first, sizeof first, "%s",
             json_string_value(json_object_get(j, "id")));
    assert_int_equal(strlen(first), 36);
    json_decref(j);

    /* the same key, from another instance: 409 naming the first job */
    j = post(srv_c, "/api/v1/txprobe/unique", "{\"key\":\"k1\"}", &status);
    assert_int_equal(status, 409);
    assert_string_equal(json_string_value(json_object_get(j, "id")), first);
    json_decref(j);

    j = post(srv_a, "/api/v1/txprobe/unique", "{\"key\":\"k2\"}", &status);
    assert_int_equal(status, 201);
    assert_string_not_equal(json_string_value(json_object_get(j, "id")), first);
    json_decref(j);

    char body[300];
    snprintf(body, sizeof body, "{\"key\":\"%0201d\"}", 7);
    j = post(srv_a, "/api/v1/txprobe/unique", body, &status);
    assert_int_equal(status, 400);
    json_decref(j);
    j = post(srv_a, "/api/v1/txprobe/unique", "{\"key\":\"\"}", &status);
    assert_int_equal(status, 400);
    json_decref(j);

    assert_int_equal(sql_num("SELECT count(*) FROM plexus.jobs WHERE handler"
                             " = 'txprobe.noop' AND unique_key = 'k1'", 0,
                             NULL), 1);
}

static void test_lease_renewal(void **state)
{
    long status;
    char id[37];
    double until = plxt_now_ms() + WAIT_MS;

    (void)state;
    json_t *j = post(srv_a, "/api/v1/txprobe/lease", NULL, &status);
    assert_int_equal(status, 202);
    snprintf(id, sizeof id, "%s", json_string_value(json_object_get(j, "id")));
    json_decref(j);
    const char *params[1] = { id };
    while (sql_num("SELECT count(*) FROM txprobe.lease_results"
                   " WHERE job_id = $1::uuid", 1, params) == 0) {
        if (plxt_now_ms() > until)
            fail_msg("the lease job did not run");
        plxt_sleep_ms(50);
    }
    PGresult *res = PQexecParams(pg, "SELECT first, second, lease_s FROM"
                                 " txprobe.lease_results WHERE job_id ="
                                 " $1::uuid", 1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQntuples(res), 1);
    /* renewed while held: 600 s from now instead of the 30 s lease */
    assert_string_equal(PQgetvalue(res, 0, 0), "ok");
    double lease = atof(PQgetvalue(res, 0, 2));
    assert_true(lease > 590 && lease <= 600.5);
    /* taken by another worker: gone */
    assert_string_equal(PQgetvalue(res, 0, 1), "peer gone");
    PQclear(res);
}

static void test_wakeup_latency(void **state)
{
    (void)state;
    for (int i = 0; i < 3; i++) {
        long status;
        char id[37];
        json_t *j = post(srv_a, "/api/v1/txprobe/wake", NULL, &status);
        double t0 = plxt_now_ms();

        assert_int_equal(status, 202);
        snprintf(id, sizeof id, "%s",
                 json_string_value(json_object_get(j, "id")));
        json_decref(j);
        const char *params[1] = { id };
        /* B and C poll every 10 s; A runs no workers */
        while (sql_num("SELECT count(*) FROM txprobe.wakes"
                       " WHERE job_id = $1::uuid", 1, params) == 0) {
            if (plxt_now_ms() - t0 > 3000)
                fail_msg("job %s enqueued on A did not run within 3 s", id);
            plxt_sleep_ms(20);
        }
        assert_int_equal(sql_num("SELECT count(*) FROM txprobe.wakes WHERE"
                                 " job_id = $1::uuid AND instance IN ('b','c')",
                                 1, params), 1);
        plxt_sleep_ms(200);
    }
}

static void test_recurring_once_per_period(void **state)
{
    (void)state;
    PGresult *res = PQexec(pg, "SELECT now()");
    char since[64];
    snprintf(since, sizeof since, "%s", PQgetvalue(res, 0, 0));
    PQclear(res);
    plxt_sleep_ms(5500);

    const char *params[1] = { since };
    res = PQexecParams(pg,
        "SELECT extract(epoch FROM started_at), extract(epoch FROM ended_at),"
        " instance FROM txprobe.ticks WHERE started_at >= $1::timestamptz"
        " AND ended_at IS NOT NULL ORDER BY started_at",
        1, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(res), PGRES_TUPLES_OK);
    int n = PQntuples(res);
    /* one a second over 5.5 s, give or take the edges and a busy machine */
    if (n < 3 || n > 7)
        fail_msg("%d runs of a 1 s recurring job in 5.5 s", n);
    for (int i = 1; i < n; i++) {
        double prev_start = atof(PQgetvalue(res, i - 1, 0));
        double prev_end = atof(PQgetvalue(res, i - 1, 1));
        double start = atof(PQgetvalue(res, i, 0));
        /* never two at once, and never twice in one period (a run may
         * start late, by a poll or a busy machine, the next one on time) */
        if (start < prev_end)
            fail_msg("run %d started before run %d ended", i, i - 1);
        if (start - prev_start < 0.5)
            fail_msg("runs %d and %d only %.3f s apart", i - 1, i,
                     start - prev_start);
    }
    PQclear(res);
}

/* ---- LISTEN/NOTIFY across instances, and catching up ----------------------- */

static void test_notify_and_catch_up(void **state)
{
    long status;

    (void)state;
    json_t *j = post(srv_c, "/api/v1/txprobe/notify",
                     "{\"payload\":\"n1\"}", &status);
    assert_int_equal(status, 200);
    json_decref(j);
    wait_seen(srv_a, "notifies", "n1");
    wait_seen(srv_b, "notifies", "n1");
    assert_int_equal(catchups(srv_a), 0);
    assert_int_equal(catchups(srv_b), 0);

    /* B's database goes away; what is sent meanwhile is lost to B */
    plxt_proxy_pause(proxy);
    plxt_sleep_ms(500);
    j = post(srv_a, "/api/v1/txprobe/notify", "{\"payload\":\"n-lost\"}",
             &status);
    assert_int_equal(status, 200);
    json_decref(j);
    plxt_sleep_ms(300);
    plxt_proxy_resume(proxy);

    /* B listens again and tells its callbacks to catch up */
    double until = plxt_now_ms() + WAIT_MS;
    while (catchups(srv_b) < 1) {
        if (plxt_now_ms() > until)
            fail_msg("B did not catch up after the database came back");
        plxt_sleep_ms(100);
    }
    assert_false(seen(srv_b, "notifies", "n-lost"));
    j = post(srv_a, "/api/v1/txprobe/notify", "{\"payload\":\"n2\"}",
             &status);
    assert_int_equal(status, 200);
    json_decref(j);
    wait_seen(srv_b, "notifies", "n2");
    /* nobody else lost anything */
    assert_int_equal(catchups(srv_a), 0);
    assert_int_equal(catchups(srv_c), 0);
}

int main(void)
{
    plxt_require_postgres("test_dbtx");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_commit_publishes),
        cmocka_unit_test(test_rollback_publishes_nothing),
        cmocka_unit_test(test_failed_commit_publishes_nothing),
        cmocka_unit_test(test_commit_outcome_unknown),
        cmocka_unit_test(test_outside_tx_refused),
        cmocka_unit_test(test_serialization_retry),
        cmocka_unit_test(test_emit_outside_tx),
        cmocka_unit_test(test_unique_key),
        cmocka_unit_test(test_lease_renewal),
        cmocka_unit_test(test_wakeup_latency),
        cmocka_unit_test(test_recurring_once_per_period),
        cmocka_unit_test(test_notify_and_catch_up),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
