/*
 * db_stub.c - the database entries of the fake plx_api table (api_stub.h)
 * over libpq, so the store layer is tested as the module's own code, with
 * nothing of the core linked in
 *
 * A small pool: db_acquire takes an idle connection (or opens one, with a
 * connect timeout and a statement timeout), db_release keeps it when it is
 * healthy and outside a transaction, else closes it. db_exec with no
 * connection runs the statement on one of its own. A failed statement maps
 * to a status the way the core documents it for modules: SQLSTATE class 23
 * is PLX_ERR_CONFLICT (with the result), 57014 PLX_ERR_TIMEOUT, a broken
 * connection or an out-of-resources class PLX_ERR_DB, anything else
 * PLX_ERR_INTERNAL.
 */
#include "config.h"

#include "api_stub.h"

#include <libpq-fe.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DB_IDLE_MAX 8

/* the core's pure encoders (core/encode.c), linked into this test */
int core_uuid_valid(const char *s);
int core_utf8_valid(const char *s, size_t len);
size_t core_utf8_repair(const char *in, size_t len, char *out, size_t cap);
long core_utf8_chars(const char *s, size_t len);

struct plx_db_conn {
    PGconn *pg;
};

struct plx_db_res {
    PGresult *pg;
    char affected[24];
    char *error;
};

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static plx_db_conn_t *idle[DB_IDLE_MAX];
static size_t nidle;
static char conninfo[1024];

static plx_db_conn_t *db_acquire(int timeout_ms)
{
    plx_db_conn_t *c = NULL;

    (void)timeout_ms;   /* bounded by connect_timeout instead */
    pthread_mutex_lock(&pool_lock);
    if (nidle > 0)
        c = idle[--nidle];
    pthread_mutex_unlock(&pool_lock);
    if (c && PQstatus(c->pg) == CONNECTION_OK)
        return c;
    if (c) {
        PQfinish(c->pg);
    } else if (!(c = calloc(1, sizeof *c))) {
        return NULL;
    }
    c->pg = PQconnectdb(conninfo);
    if (PQstatus(c->pg) != CONNECTION_OK) {
        PQfinish(c->pg);
        free(c);
        return NULL;
    }
    return c;
}

static void db_release(plx_db_conn_t *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&pool_lock);
    if (PQstatus(c->pg) == CONNECTION_OK && PQtransactionStatus(c->pg) == PQTRANS_IDLE
        && nidle < DB_IDLE_MAX) {
        idle[nidle++] = c;
        c = NULL;
    }
    pthread_mutex_unlock(&pool_lock);
    if (c) {
        PQfinish(c->pg);
        free(c);
    }
}

static void db_free(plx_db_res_t *res)
{
    if (!res)
        return;
    PQclear(res->pg);
    free(res->error);
    free(res);
}

static plx_status_t classify(PGconn *pg, const PGresult *r)
{
    const char *state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;

    if (!r || PQstatus(pg) != CONNECTION_OK || !state || strncmp(state, "08", 2) == 0
        || strncmp(state, "53", 2) == 0 || strncmp(state, "57P0", 4) == 0)
        return PLX_ERR_DB;
    if (strcmp(state, "57014") == 0)
        return PLX_ERR_TIMEOUT;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return PLX_AGAIN;   /* a serialization failure or deadlock: db_tx retries */
    if (strncmp(state, "23", 2) == 0)
        return PLX_ERR_CONFLICT;
    return PLX_ERR_INTERNAL;
}

static plx_status_t db_exec(plx_db_conn_t *c, const char *sql, int n,
                            const char *const *params, plx_db_res_t **out)
{
    plx_db_conn_t *own = NULL;
    plx_db_res_t *res;
    PGresult *r;
    ExecStatusType est;
    plx_status_t st = PLX_OK;

    if (out)
        *out = NULL;
    if (!c && !(c = own = db_acquire(0)))
        return PLX_ERR_DB;
    r = PQexecParams(c->pg, sql, n, NULL, params, NULL, NULL, 0);
    est = PQresultStatus(r);
    if (est != PGRES_COMMAND_OK && est != PGRES_TUPLES_OK) {
        st = classify(c->pg, r);
        if (getenv("AI_STUB_VERBOSE"))
            fprintf(stderr, "db_stub: %s: %s", sql, PQerrorMessage(c->pg));
    }
    if ((st == PLX_OK || st == PLX_ERR_CONFLICT) && out && (res = calloc(1, sizeof *res))) {
        res->pg = r;
        snprintf(res->affected, sizeof res->affected, "%s", PQcmdTuples(r));
        if (st != PLX_OK)
            res->error = strdup(PQresultErrorMessage(r));
        *out = res;
        r = NULL;
    }
    PQclear(r);
    db_release(own);
    return st;
}

static plx_status_t db_query(plx_request_t *rq, const char *sql, int n,
                             const char *const *params, plx_db_res_t **out)
{
    (void)rq;
    return db_exec(NULL, sql, n, params, out);
}

/* The contract of plx_db_tx as the store relies on it: BEGIN at the
 * level, the function, COMMIT; PLX_AGAIN anywhere runs it again, a few
 * times; any other failure rolls back and is returned. */
static plx_status_t db_tx(plx_request_t *rq, plx_isolation_t iso, plx_tx_fn fn,
                          void *arg)
{
    static const char *const begin[] = {
        [PLX_TX_READ_COMMITTED] = "BEGIN ISOLATION LEVEL READ COMMITTED",
        [PLX_TX_REPEATABLE_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
        [PLX_TX_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
    };
    plx_status_t st = PLX_AGAIN;

    (void)rq;
    if ((unsigned)iso > PLX_TX_SERIALIZABLE || !fn)
        return PLX_ERR_INVALID;
    for (int attempt = 0; attempt < 5 && st == PLX_AGAIN; attempt++) {
        plx_db_conn_t *c = db_acquire(0);

        if (!c)
            return PLX_ERR_DB;
        st = db_exec(c, begin[iso], 0, NULL, NULL);
        if (st == PLX_OK)
            st = fn(c, arg);
        if (st == PLX_OK)
            st = db_exec(c, "COMMIT", 0, NULL, NULL);
        if (st != PLX_OK && PQtransactionStatus(c->pg) != PQTRANS_IDLE)
            (void)db_exec(c, "ROLLBACK", 0, NULL, NULL);
        db_release(c);
    }
    return st;
}

static int db_rows(const plx_db_res_t *res)
{
    return res ? PQntuples(res->pg) : 0;
}

static int db_cols(const plx_db_res_t *res)
{
    return res ? PQnfields(res->pg) : 0;
}

static const char *db_value(const plx_db_res_t *res, int row, int col)
{
    if (!res || row < 0 || col < 0 || row >= PQntuples(res->pg)
        || col >= PQnfields(res->pg) || PQgetisnull(res->pg, row, col))
        return NULL;
    return PQgetvalue(res->pg, row, col);
}

static int db_col(const plx_db_res_t *res, const char *name)
{
    return res ? PQfnumber(res->pg, name) : -1;
}

static const char *db_affected(const plx_db_res_t *res)
{
    return res ? res->affected : "";
}

static const char *db_error(const plx_db_res_t *res)
{
    return res && res->error ? res->error : "";
}

/* the store logs it beside its own message; the words are the core's
 * business, the test checks statuses */
static const char *status_str(plx_status_t st)
{
    return st == PLX_OK ? "ok" : "failed";
}

void ai_stub_db(const char *info)
{
    plx_api_t *api = ai_stub_table();

    snprintf(conninfo, sizeof conninfo, "%s connect_timeout=2 "
             "options='-c statement_timeout=10000'", info);
    api->db_query = db_query;
    api->db_acquire = db_acquire;
    api->db_release = db_release;
    api->db_exec = db_exec;
    api->db_rows = db_rows;
    api->db_cols = db_cols;
    api->db_value = db_value;
    api->db_col = db_col;
    api->db_affected = db_affected;
    api->db_error = db_error;
    api->db_free = db_free;
    api->db_tx = db_tx;
    api->uuid_valid = core_uuid_valid;
    api->utf8_valid = core_utf8_valid;
    api->utf8_repair = core_utf8_repair;
    api->utf8_chars = core_utf8_chars;
    api->status_str = status_str;
}

void ai_stub_db_close(void)
{
    pthread_mutex_lock(&pool_lock);
    while (nidle > 0) {
        plx_db_conn_t *c = idle[--nidle];
        PQfinish(c->pg);
        free(c);
    }
    pthread_mutex_unlock(&pool_lock);
}
