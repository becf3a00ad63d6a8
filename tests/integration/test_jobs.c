/*
 * test_jobs.c - durable jobs through a real server
 *
 * The example module enqueues "example.record" jobs from
 * POST /api/v1/example/jobs; its handler fails the first fail_times
 * attempts, then inserts a row into example.records. The test reads
 * plexus.jobs directly with libpq to check what the queue did: attempts,
 * final state, last error. Two servers with several workers each share the
 * database to show that a job is never run twice.
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

#define WAIT_MS      20000
#define MAX_ATTEMPTS 3
#define BURST        60

static plxt_server_t *srv;
static char dbname[64];
static char *db_url;

static const plxt_module_t mods[] = { { .name = "example" }, { 0 } };

/* fast retries so a test of three attempts takes a fraction of a second */
static const char *const jobs_config =
    "[jobs]\nworkers = 3\npoll_interval = 100ms\nbackoff_base = 100ms\n"
    "backoff_max = 400ms\nmax_attempts = 3\nlease = 30s\n";

static plxt_server_t *start_server(void)
{
    plxt_server_opts_t o = { .db_url = db_url, .modules = mods,
                             .config = jobs_config };
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

/* ---- helpers ---------------------------------------------------------------- */

/* POST a job; returns its id (caller frees) */
static char *enqueue(plxt_server_t *s, const char *message, int fail_times)
{
    static const char *const hdrs[] = { "Content-Type: application/json", NULL };
    char url[128], *body, *id;
    plxt_resp_t resp;

    json_t *j = json_pack("{s:s, s:i}", "message", message, "fail_times",
                          fail_times);
    body = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    snprintf(url, sizeof url, "%s/api/v1/example/jobs", s->url);
    assert_int_equal(plxt_http("POST", url, hdrs, body, &resp), 0);
    free(body);
    if (resp.status != 202)
        fail_msg("POST /api/v1/example/jobs: expected 202, found %ld: %s",
                 resp.status, resp.body);
    j = plxt_resp_json(&resp);
    assert_non_null(j);
    const char *v = json_string_value(json_object_get(j, "job_id"));
    assert_non_null(v);
    assert_int_equal(strlen(v), 36);
    id = strdup(v);
    json_decref(j);
    plxt_resp_free(&resp);
    return id;
}

/* the job's row: state, attempts, last_error (NULL as "-") */
typedef struct job_row {
    char state[16];
    int  attempts;
    char last_error[256];
} job_row_t;

static PGconn *db(void)
{
    PGconn *pg = PQconnectdb(db_url);
    assert_int_equal(PQstatus(pg), CONNECTION_OK);
    return pg;
}

static void job_read(PGconn *pg, const char *id, job_row_t *row)
{
    const char *params[1] = { id };
    PGresult *res = PQexecParams(pg,
        "SELECT state, attempts, coalesce(last_error, '-')"
        " FROM plexus.jobs WHERE id = $1::uuid", 1, NULL, params, NULL, NULL, 0);

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("job %s not found: %s", id, PQresultErrorMessage(res));
    snprintf(row->state, sizeof row->state, "%s", PQgetvalue(res, 0, 0));
    row->attempts = atoi(PQgetvalue(res, 0, 1));
    snprintf(row->last_error, sizeof row->last_error, "%s", PQgetvalue(res, 0, 2));
    PQclear(res);
}

/* wait until the job reaches a final state */
static void job_wait(const char *id, job_row_t *row)
{
    PGconn *pg = db();
    double until = plxt_now_ms() + WAIT_MS;

    for (;;) {
        job_read(pg, id, row);
        if (strcmp(row->state, "done") == 0 || strcmp(row->state, "dead") == 0)
            break;
        if (plxt_now_ms() > until)
            fail_msg("job %s still \"%s\" after %d ms (attempts %d)", id,
                     row->state, WAIT_MS, row->attempts);
        plxt_sleep_ms(50);
    }
    PQfinish(pg);
}

static long scalar(const char *sql, const char *param)
{
    PGconn *pg = db();
    const char *params[1] = { param };
    PGresult *res = PQexecParams(pg, sql, param ? 1 : 0, NULL, params, NULL,
                                 NULL, 0);
    long v;

    if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1)
        fail_msg("%s: %s", sql, PQresultErrorMessage(res));
    v = strtol(PQgetvalue(res, 0, 0), NULL, 10);
    PQclear(res);
    PQfinish(pg);
    return v;
}

/* the attempt recorded for message through GET /api/v1/example/records */
static long recorded_attempt(const char *message)
{
    plxt_resp_t resp;
    long attempt = -1;

    assert_int_equal(plxt_get(srv, "/api/v1/example/records", &resp), 0);
    assert_int_equal(resp.status, 200);
    json_t *j = plxt_resp_json(&resp);
    json_t *rec;
    size_t i;
    assert_non_null(j);
    json_array_foreach(json_object_get(j, "records"), i, rec) {
        if (strcmp(json_string_value(json_object_get(rec, "message")) ?: "",
                   message) == 0) {
            json_t *a = json_object_get(rec, "attempt");
            attempt = json_is_integer(a) ? (long)json_integer_value(a)
                                         : strtol(json_string_value(a) ?: "-1",
                                                  NULL, 10);
        }
    }
    json_decref(j);
    plxt_resp_free(&resp);
    return attempt;
}

/* ---- tests -------------------------------------------------------------------- */

static void test_enqueue_and_record(void **state)
{
    job_row_t row;
    char *id = enqueue(srv, "first", 0);

    job_wait(id, &row);
    assert_string_equal(row.state, "done");
    assert_int_equal(row.attempts, 1);
    assert_string_equal(row.last_error, "-");
    assert_int_equal(recorded_attempt("first"), 1);
    free(id);
}

static void test_retries_then_done(void **state)
{
    job_row_t row;
    char *id = enqueue(srv, "third time lucky", 2);

    job_wait(id, &row);
    assert_string_equal(row.state, "done");
    assert_int_equal(row.attempts, 3);
    /* the last failure is kept for the operator */
    assert_non_null(strstr(row.last_error, "failing on purpose"));
    assert_int_equal(recorded_attempt("third time lucky"), 3);
    free(id);
}

static void test_dead_after_max_attempts(void **state)
{
    job_row_t row;
    char *id = enqueue(srv, "never", MAX_ATTEMPTS + 2);

    job_wait(id, &row);
    assert_string_equal(row.state, "dead");
    assert_int_equal(row.attempts, MAX_ATTEMPTS);
    assert_non_null(strstr(row.last_error, "failing on purpose"));
    assert_int_equal(recorded_attempt("never"), -1);
    assert_int_equal(scalar("SELECT count(*) FROM plexus.jobs WHERE id = $1::uuid"
                            " AND finished_at IS NOT NULL AND locked_by IS NULL",
                            id), 1);
    free(id);
}

/* Two servers, three workers each, one queue: every job runs exactly once. */
static void test_never_twice(void **state)
{
    plxt_server_t *second = start_server();
    char msg[32];
    char *ids[BURST];
    job_row_t row;

    assert_non_null(second);
    for (int i = 0; i < BURST; i++) {
        snprintf(msg, sizeof msg, "burst-%03d", i);
        ids[i] = enqueue(i % 2 ? second : srv, msg, 0);
    }
    for (int i = 0; i < BURST; i++) {
        job_wait(ids[i], &row);
        assert_string_equal(row.state, "done");
        assert_int_equal(row.attempts, 1);
        free(ids[i]);
    }
    assert_int_equal(scalar("SELECT count(*) FROM example.records"
                            " WHERE message LIKE 'burst-%'", NULL), BURST);
    assert_int_equal(scalar("SELECT count(DISTINCT message) FROM example.records"
                            " WHERE message LIKE 'burst-%'", NULL), BURST);
    assert_int_equal(plxt_server_stop(second), 0);
}

static void test_invalid_body(void **state)
{
    static const char *const hdrs[] = { "Content-Type: application/json", NULL };
    char url[128];
    plxt_resp_t resp;

    snprintf(url, sizeof url, "%s/api/v1/example/jobs", srv->url);
    assert_int_equal(plxt_http("POST", url, hdrs, "{\"message\":1}", &resp), 0);
    assert_int_equal(resp.status, 400);
    plxt_resp_free(&resp);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_enqueue_and_record),
        cmocka_unit_test(test_retries_then_done),
        cmocka_unit_test(test_dead_after_max_attempts),
        cmocka_unit_test(test_never_twice),
        cmocka_unit_test(test_invalid_body),
    };

    plxt_require_postgres("test_jobs");
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
