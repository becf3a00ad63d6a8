/*
 * db.c - PostgreSQL: a bounded pool of libpq connections with reconnect
 *
 * The pool holds at most [database] pool_size connections, made lazily on
 * first use. A caller that finds every connection busy waits on a condition
 * variable, never longer than its acquire timeout. A connection that breaks
 * (server restart, network cut, failover) is dropped when it is given back
 * and a new one is made on next use, so the server recovers on its own.
 *
 * While the database is away each new connection attempt could block for
 * connect_timeout; to keep requests failing fast with PLX_ERR_DB the pool
 * then allows one attempt in flight and at most one attempt per second,
 * process-wide. Everybody else is told "down" at once.
 *
 * Every statement goes through the asynchronous libpq calls with a client
 * deadline (statement_timeout plus a grace period): statement_timeout is
 * enforced by the server, which cannot help when the network has gone
 * silent; the deadline covers that case and the connection is dropped.
 *
 * Thread safety: the pool state is under one mutex; a connection is used
 * by one thread at a time (the one that acquired it), as libpq requires.
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "http.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define DB_POOL_MAX         1024
#define DB_RETRY_INTERVAL   1.0     /* seconds between attempts while down */
#define DB_DEADLINE_GRACE   5000    /* ms added to statement_timeout */
#define DB_URL_MAX          4096

struct plx_db_conn {
    PGconn *pg;
    bool    in_use;
    bool    broken;    /* drop on release */
};

static struct {
    pthread_mutex_t lock;
    pthread_cond_t  cond;          /* a connection was given back */
    bool            ready;         /* core_db_setup done */
    char           *url;
    int             size;
    long            acquire_ms;
    long            connect_ms;
    long            statement_ms;
    struct plx_db_conn *slots;
    /* reconnect rate limit: see the banner */
    bool            down;
    int             connecting;
    double          next_attempt;
    /* statistics */
    int             open;
    int             in_use;
    uint64_t        acquired;
    uint64_t        timeouts;
    double          wait_seconds;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

/* ---- connecting ---------------------------------------------------------- */

/* libpq wants whole seconds; 0 would mean "wait forever" */
static void connect_timeout_str(char out[24])
{
    long s = (pool.connect_ms + 999) / 1000;
    snprintf(out, 24, "%ld", s < 1 ? 1 : s);
}

/* Server notices go to our log instead of libpq's default stderr print:
 * WARNING as a warning, NOTICE and below at debug level. */
static void notice_receiver(void *arg, const PGresult *res)
{
    const char *sev = PQresultErrorField(res, PG_DIAG_SEVERITY_NONLOCALIZED);
    const char *msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    bool warn = sev && strcmp(sev, "WARNING") == 0;

    core_log(warn ? PLX_LOG_WARN : PLX_LOG_DEBUG, "core", NULL,
             "database %s: %s", warn ? "warning" : "notice", msg ? msg : "");
}

/* Make one connection with the configured URL. The URL is expanded in
 * place (expand_dbname), so it may be a URI or a key=value string; the
 * connect_timeout from the configuration comes after it and wins.
 * fallback_application_name names us unless the URL or PGAPPNAME says
 * otherwise. */
static PGconn *connect_raw(char *err, size_t errlen)
{
    char timeout[24];
    const char *keys[] = { "dbname", "connect_timeout",
                           "fallback_application_name", NULL };
    const char *vals[] = { pool.url, timeout, "plexusd", NULL };

    connect_timeout_str(timeout);
    PGconn *pg = PQconnectdbParams(keys, vals, 1);
    if (!pg) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (PQstatus(pg) != CONNECTION_OK) {
        snprintf(err, errlen, "%s", PQerrorMessage(pg));
        err[strcspn(err, "\n")] = '\0';
        PQfinish(pg);
        return NULL;
    }
    PQsetNoticeReceiver(pg, notice_receiver, NULL);
    return pg;
}

/* statement_timeout as a parameter of set_config: no SQL built by hand */
static bool set_statement_timeout(PGconn *pg, char *err, size_t errlen)
{
    char ms[32];
    const char *params[1] = { ms };

    snprintf(ms, sizeof ms, "%ld", pool.statement_ms);
    PGresult *res = PQexecParams(pg,
                                 "SELECT set_config('statement_timeout', $1, false)",
                                 1, NULL, params, NULL, NULL, 0);
    bool ok = PQresultStatus(res) == PGRES_TUPLES_OK;
    if (!ok) {
        snprintf(err, errlen, "cannot set statement_timeout: %s",
                 PQresultErrorMessage(res));
        err[strcspn(err, "\n")] = '\0';
    }
    PQclear(res);
    return ok;
}

static PGconn *connect_pooled(char *err, size_t errlen)
{
    PGconn *pg = connect_raw(err, errlen);

    if (!pg)
        return NULL;
    if (!set_statement_timeout(pg, err, errlen)
        || PQsetnonblocking(pg, 1) != 0) {
        PQfinish(pg);
        return NULL;
    }
    return pg;
}

PGconn *core_db_connect_direct(void)
{
    char err[512];

    if (!pool.ready) {
        LOG_ERROR("database not configured");
        return NULL;
    }
    PGconn *pg = connect_raw(err, sizeof err);
    if (!pg)
        LOG_ERROR("cannot connect to the database: %s", err);
    return pg;
}

/* ---- setup ---------------------------------------------------------------- */

static bool read_settings(core_config_t *cfg)
{
    const char *url = core_config_get(cfg, "database", "url");
    long size = core_config_int(cfg, "database", "pool_size");

    if (!url || !*url || strlen(url) >= DB_URL_MAX) {
        LOG_ERROR("database.url must be set and shorter than %d bytes",
                  DB_URL_MAX);
        return false;
    }
    if (size < 1 || size > DB_POOL_MAX) {
        LOG_ERROR("database.pool_size: expected 1 to %d, found %ld",
                  DB_POOL_MAX, size);
        return false;
    }
    pool.url = strdup(url);
    pool.size = (int)size;
    pool.acquire_ms = core_config_ms(cfg, "database", "acquire_timeout");
    pool.connect_ms = core_config_ms(cfg, "database", "connect_timeout");
    pool.statement_ms = core_config_ms(cfg, "database", "statement_timeout");
    if (pool.acquire_ms < 0)
        pool.acquire_ms = 0;
    if (pool.statement_ms < 0)
        pool.statement_ms = 0;
    return pool.url != NULL;
}

bool core_db_setup(core_config_t *cfg)
{
    pthread_condattr_t attr;

    if (pool.ready)
        core_db_shutdown();
    if (!cfg || !read_settings(cfg))
        return false;
    pool.slots = calloc((size_t)pool.size, sizeof *pool.slots);
    if (!pool.slots) {
        free(pool.url);
        pool.url = NULL;
        return false;
    }
    /* waits are measured on the monotonic clock: a wall-clock jump must
     * not turn a 5 s wait into an hour */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&pool.cond, &attr);
    pthread_condattr_destroy(&attr);
    pool.down = false;
    pool.connecting = 0;
    pool.next_attempt = 0;
    pool.open = pool.in_use = 0;
    pool.acquired = pool.timeouts = 0;
    pool.wait_seconds = 0;
    pool.ready = true;
    return true;
}

/* Close every idle connection. Connections still borrowed are a caller's
 * bug at this point; they are closed and the slots freed only if none is
 * left, so a late release cannot touch freed memory. */
void core_db_shutdown(void)
{
    int busy = 0;

    pthread_mutex_lock(&pool.lock);
    if (!pool.ready) {
        pthread_mutex_unlock(&pool.lock);
        return;
    }
    for (int i = 0; i < pool.size; i++) {
        struct plx_db_conn *c = &pool.slots[i];
        if (c->in_use) {
            busy++;
            continue;
        }
        if (c->pg)
            PQfinish(c->pg);
        c->pg = NULL;
    }
    pool.ready = false;
    pthread_cond_broadcast(&pool.cond);
    pthread_mutex_unlock(&pool.lock);
    if (busy > 0) {
        LOG_WARN("database pool shut down with %d connection%s still in use",
                 busy, busy == 1 ? "" : "s");
        return;
    }
    pthread_cond_destroy(&pool.cond);
    free(pool.slots);
    pool.slots = NULL;
    free(pool.url);
    pool.url = NULL;
}

/* ---- acquire and release ------------------------------------------------- */

/* An idle connection whose server went away has a FATAL message and then
 * EOF waiting on its socket. libpq reads without blocking here; the
 * message is parsed by PQisBusy (as a notice, since no query runs) and
 * the EOF, which may only show on the next read, marks it bad. Anything
 * quieter is found by the next statement. */
static bool conn_alive(PGconn *pg)
{
    struct pollfd p = { .fd = PQsocket(pg), .events = POLLIN };
    PGnotify *n;

    if (PQstatus(pg) != CONNECTION_OK || p.fd < 0)
        return false;
    for (int i = 0; i < 3 && poll(&p, 1, 0) > 0; i++) {
        if (!PQconsumeInput(pg))
            return false;
        (void)PQisBusy(pg);
    }
    while ((n = PQnotifies(pg)) != NULL)
        PQfreemem(n);
    return PQstatus(pg) == CONNECTION_OK
        && PQtransactionStatus(pg) == PQTRANS_IDLE;
}

static void drop_locked(struct plx_db_conn *c)
{
    if (c->pg) {
        PQfinish(c->pg);
        pool.open--;
    }
    c->pg = NULL;
    c->broken = false;
}

/* an idle connection that still works, marked in use; NULL if none */
static struct plx_db_conn *take_idle_locked(void)
{
    for (int i = 0; i < pool.size; i++) {
        struct plx_db_conn *c = &pool.slots[i];
        if (c->in_use || !c->pg)
            continue;
        if (!conn_alive(c->pg)) {
            drop_locked(c);
            continue;
        }
        c->in_use = true;
        return c;
    }
    return NULL;
}

static struct plx_db_conn *empty_slot_locked(void)
{
    for (int i = 0; i < pool.size; i++)
        if (!pool.slots[i].in_use && !pool.slots[i].pg)
            return &pool.slots[i];
    return NULL;
}

static bool attempt_allowed_locked(double now)
{
    if (!pool.down)
        return true;
    return pool.connecting == 0 && now >= pool.next_attempt;
}

static void mark_down_locked(const char *why)
{
    if (!pool.down)
        LOG_ERROR("database unavailable: %s", why);
    pool.down = true;
}

/* Fill an empty slot. Called with the lock held; drops it while libpq
 * connects, which may take up to connect_timeout. */
static bool fill_slot_locked(struct plx_db_conn *c)
{
    char err[512];

    c->in_use = true;
    pool.connecting++;
    if (pool.down)
        pool.next_attempt = core_now() + DB_RETRY_INTERVAL;
    pthread_mutex_unlock(&pool.lock);
    PGconn *pg = connect_pooled(err, sizeof err);
    pthread_mutex_lock(&pool.lock);
    pool.connecting--;
    if (!pg) {
        c->in_use = false;
        pool.next_attempt = core_now() + DB_RETRY_INTERVAL;
        mark_down_locked(err);
        pthread_cond_broadcast(&pool.cond);
        return false;
    }
    if (pool.down)
        LOG_INFO("database reachable again");
    pool.down = false;
    c->pg = pg;
    c->broken = false;
    pool.open++;
    return true;
}

static struct timespec deadline_after(long ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

/* The acquisition loop: an idle live connection first, else a new one in
 * an empty slot (unless the database is down and an attempt is not due),
 * else wait for a release until the deadline. */
static struct plx_db_conn *acquire_locked(long timeout_ms)
{
    struct timespec deadline = deadline_after(timeout_ms);

    for (;;) {
        if (!pool.ready)
            return NULL;
        struct plx_db_conn *c = take_idle_locked();
        if (c)
            return c;
        c = empty_slot_locked();
        if (c) {
            if (!attempt_allowed_locked(core_now()))
                return NULL;
            return fill_slot_locked(c) ? c : NULL;
        }
        if (pthread_cond_timedwait(&pool.cond, &pool.lock, &deadline)
            == ETIMEDOUT) {
            pool.timeouts++;
            return NULL;
        }
    }
}

plx_db_conn_t *core_db_acquire(int timeout_ms)
{
    double t0 = core_now();
    long wait = timeout_ms > 0 ? timeout_ms : pool.acquire_ms;

    pthread_mutex_lock(&pool.lock);
    struct plx_db_conn *c = acquire_locked(wait);
    pool.wait_seconds += core_now() - t0;
    if (c) {
        pool.in_use++;
        pool.acquired++;
    }
    pthread_mutex_unlock(&pool.lock);
    return c;
}

/* A connection given back inside a transaction (a caller's early return)
 * is rolled back; one whose state is unknown is dropped. */
static void reset_transaction(struct plx_db_conn *c)
{
    PGTransactionStatusType ts;

    if (c->broken || !c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = true;
        return;
    }
    ts = PQtransactionStatus(c->pg);
    if (ts == PQTRANS_IDLE)
        return;
    if (ts != PQTRANS_INTRANS && ts != PQTRANS_INERROR) {
        c->broken = true;
        return;
    }
    LOG_WARN("database connection released inside a transaction, rolling back");
    plx_db_res_t *res = NULL;
    if (core_db_exec(c, "ROLLBACK", 0, NULL, &res) != PLX_OK)
        c->broken = true;
    core_db_free(res);
}

void core_db_release(plx_db_conn_t *c)
{
    if (!c)
        return;
    reset_transaction(c);
    pthread_mutex_lock(&pool.lock);
    if (c->broken || !pool.ready)
        drop_locked(c);
    c->in_use = false;
    pool.in_use--;
    pthread_cond_signal(&pool.cond);
    pthread_mutex_unlock(&pool.lock);
}

PGconn *core_db_pgconn(plx_db_conn_t *c)
{
    return c ? c->pg : NULL;
}

/* ---- running statements -------------------------------------------------- */

static bool result_ok(const PGresult *res)
{
    if (!res)
        return false;
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_TUPLES_OK || st == PGRES_COMMAND_OK
        || st == PGRES_EMPTY_QUERY;
}

/* COPY is not supported through the pool: the connection is left in a
 * state only the caller could end, so it is reported and dropped */
static bool result_is_copy(const PGresult *res)
{
    ExecStatusType st = PQresultStatus(res);
    return st == PGRES_COPY_IN || st == PGRES_COPY_OUT
        || st == PGRES_COPY_BOTH;
}

/* Wait until the socket is ready for events or the deadline passes. */
static bool wait_socket(PGconn *pg, short events, double deadline)
{
    struct pollfd p = { .fd = PQsocket(pg), .events = events };

    for (;;) {
        double left = deadline - core_now();
        if (left <= 0)
            return false;
        int n = poll(&p, 1, (int)(left * 1000) + 1);
        if (n > 0)
            return true;
        if (n < 0 && errno != EINTR)
            return false;
    }
}

static bool flush_bounded(PGconn *pg, double deadline)
{
    for (;;) {
        int f = PQflush(pg);
        if (f == 0)
            return true;
        if (f < 0 || !wait_socket(pg, POLLOUT | POLLIN, deadline))
            return false;
        if (!PQconsumeInput(pg))
            return false;
    }
}

/* Like PQexecParams but bounded by deadline. Returns the last result, an
 * error result in preference to a later one; NULL on a connection problem
 * or a timeout (*timed_out). */
static PGresult *exec_bounded(PGconn *pg, const char *sql, int n,
                              const char *const *params, double deadline,
                              bool *timed_out)
{
    PGresult *last = NULL, *res;

    *timed_out = false;
    if (!PQsendQueryParams(pg, sql, n, NULL, params, NULL, NULL, 0))
        return NULL;
    if (!flush_bounded(pg, deadline)) {
        *timed_out = core_now() >= deadline;
        return NULL;
    }
    for (;;) {
        while (PQisBusy(pg)) {
            if (!wait_socket(pg, POLLIN, deadline)) {
                *timed_out = true;
                PQclear(last);
                return NULL;
            }
            if (!PQconsumeInput(pg)) {
                PQclear(last);
                return NULL;
            }
        }
        res = PQgetResult(pg);
        if (!res)
            return last;
        if (result_is_copy(res)) {
            PQclear(last);
            return res;
        }
        if (last && PQresultStatus(last) == PGRES_FATAL_ERROR) {
            PQclear(res);
            continue;
        }
        PQclear(last);
        last = res;
    }
}

static bool sqlstate_is(const char *state, const char *prefix)
{
    return state && strncmp(state, prefix, strlen(prefix)) == 0;
}

/* SQLSTATEs that say "this connection is no good": connection exceptions,
 * the server shutting down, and a read-only server (after a failover we
 * may be talking to a standby; a new connection finds the new primary). */
static bool sqlstate_breaks_connection(const char *state)
{
    return sqlstate_is(state, "08") || sqlstate_is(state, "57P0")
        || sqlstate_is(state, "25006");
}

/* Map a failed statement to a status. *broken: drop the connection. */
static plx_status_t classify(PGconn *pg, const PGresult *res, bool *broken)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    *broken = PQstatus(pg) != CONNECTION_OK;
    if (!res)
        return PLX_ERR_DB;
    if (PQresultStatus(res) == PGRES_BAD_RESPONSE) {
        *broken = true;
        return PLX_ERR_DB;
    }
    if (*broken || !state || sqlstate_breaks_connection(state)) {
        *broken = true;
        return PLX_ERR_DB;
    }
    if (sqlstate_is(state, "53"))     /* out of connections, memory, disk */
        return PLX_ERR_DB;
    if (strcmp(state, "57014") == 0)  /* statement_timeout */
        return PLX_ERR_TIMEOUT;
    if (sqlstate_is(state, "23"))     /* integrity constraint violation */
        return PLX_ERR_CONFLICT;
    return PLX_ERR_INTERNAL;
}

static plx_db_res_t *wrap_result(PGresult *pg)
{
    plx_db_res_t *res = calloc(1, sizeof *res);

    if (!res) {
        PQclear(pg);
        return NULL;
    }
    res->pg = pg;
    return res;
}

/* The primary message only: DETAIL lines may quote row values. */
static char *error_message(PGconn *pg, const PGresult *res)
{
    const char *msg = res ? PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY)
                          : NULL;
    char *copy;

    if (!msg)
        msg = PQerrorMessage(pg);
    if (!msg || !*msg)
        msg = "unknown database error";
    copy = strdup(msg);
    if (copy)
        copy[strcspn(copy, "\n")] = '\0';
    return copy;
}

static void log_failure(const char *request_id, plx_status_t st,
                        PGconn *pg, const PGresult *res, bool timed_out)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;
    char *msg = error_message(pg, res);
    plx_log_level_t level = st == PLX_ERR_INTERNAL ? PLX_LOG_ERROR
                                                   : PLX_LOG_WARN;

    if (timed_out)
        core_log(level, "core", request_id,
                 "database statement got no answer in time, dropping the connection");
    else
        core_log(level, "core", request_id, "database statement failed (%s): %s",
                 state ? state : "no sqlstate", msg ? msg : "out of memory");
    free(msg);
}

/* The deadline on the client side: the server's statement_timeout plus a
 * grace period, so the server normally reports 57014 first. */
static double statement_deadline(void)
{
    long ms = pool.statement_ms > 0 ? pool.statement_ms + DB_DEADLINE_GRACE
                                    : 10L * 60 * 1000;
    return core_now() + (double)ms / 1000.0;
}

/* hand a successful result to the caller, or free it */
static plx_status_t give_result(PGresult *pg, plx_db_res_t **out)
{
    plx_db_res_t *res = wrap_result(pg);

    if (!res)
        return PLX_ERR_NOMEM;
    if (out)
        *out = res;
    else
        core_db_free(res);
    return PLX_OK;
}

/* a constraint violation: the result goes back with the server's message */
static void give_conflict(PGconn *conn, PGresult *pg, plx_db_res_t **out)
{
    char *msg = error_message(conn, pg);
    plx_db_res_t *res = wrap_result(pg);

    if (res)
        res->error = msg;
    else
        free(msg);
    *out = res;
}

static void mark_broken(struct plx_db_conn *c, bool timed_out)
{
    c->broken = true;
    pthread_mutex_lock(&pool.lock);
    mark_down_locked(timed_out ? "statement timed out on the client side"
                               : "connection lost");
    pthread_mutex_unlock(&pool.lock);
}

static plx_status_t exec_on(struct plx_db_conn *c, const char *request_id,
                            const char *sql, int n, const char *const *params,
                            double deadline, plx_db_res_t **out)
{
    bool timed_out, broken;
    PGresult *pg = exec_bounded(c->pg, sql, n, params, deadline, &timed_out);
    plx_status_t st;

    if (result_ok(pg))
        return give_result(pg, out);
    st = classify(c->pg, pg, &broken);
    if (timed_out) {
        broken = true;
        st = PLX_ERR_DB;
    }
    if (st != PLX_ERR_CONFLICT)
        log_failure(request_id, st, c->pg, pg, timed_out);
    if (broken)
        mark_broken(c, timed_out);
    if (st == PLX_ERR_CONFLICT && out) {
        give_conflict(c->pg, pg, out);
        return st;
    }
    PQclear(pg);
    return st;
}

/*
 * Run one statement on an acquired connection. Parameters are text (NULL
 * for SQL NULL). On PLX_OK *out (if out is not NULL) is a result the
 * caller frees with core_db_free. On PLX_ERR_CONFLICT (SQLSTATE class 23)
 * *out is set as well, carrying the server's message in core_db_error(),
 * and must be freed likewise. On any other failure *out is NULL.
 */
plx_status_t core_db_exec(plx_db_conn_t *c, const char *sql, int n,
                          const char *const *params, plx_db_res_t **out)
{
    if (out)
        *out = NULL;
    if (!c || !c->pg || !sql || n < 0 || (n > 0 && !params))
        return PLX_ERR_INVALID;
    if (c->broken)
        return PLX_ERR_DB;
    return exec_on(c, NULL, sql, n, params, statement_deadline(), out);
}

static void res_cleanup(void *arg)
{
    core_db_free(arg);
}

/*
 * One statement on a pooled connection, given back at once. With r, the
 * result is freed when the request ends; with r NULL the caller frees it.
 * *out follows core_db_exec: set on PLX_OK and on PLX_ERR_CONFLICT.
 */
plx_status_t core_db_query(plx_request_t *r, const char *sql, int n,
                           const char *const *params, plx_db_res_t **out)
{
    const char *rid = r ? core_request_id(r) : NULL;
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (out)
        *out = NULL;
    if (!sql || n < 0 || (n > 0 && !params))
        return PLX_ERR_INVALID;
    struct plx_db_conn *c = core_db_acquire(0);
    if (!c)
        return PLX_ERR_DB;
    st = exec_on(c, rid, sql, n, params, statement_deadline(), &res);
    core_db_release(c);
    if (!res)
        return st;
    if (r && core_request_cleanup_add(r, res_cleanup, res) != PLX_OK) {
        core_db_free(res);
        return PLX_ERR_NOMEM;
    }
    if (out)
        *out = res;
    else if (!r)
        core_db_free(res);
    return st;
}

bool core_db_ping(int timeout_ms)
{
    long ms = timeout_ms > 0 ? timeout_ms : pool.acquire_ms;
    double deadline = core_now() + (double)ms / 1000.0;
    struct plx_db_conn *c = core_db_acquire((int)ms);
    plx_status_t st;

    if (!c)
        return false;
    st = exec_on(c, NULL, "SELECT 1", 0, NULL, deadline, NULL);
    core_db_release(c);
    return st == PLX_OK;
}

/* ---- results --------------------------------------------------------------- */

int core_db_rows(const plx_db_res_t *res)
{
    return res && res->pg ? PQntuples(res->pg) : 0;
}

int core_db_cols(const plx_db_res_t *res)
{
    return res && res->pg ? PQnfields(res->pg) : 0;
}

/* borrowed; valid until core_db_free(res). NULL for SQL NULL or out of range */
const char *core_db_value(const plx_db_res_t *res, int row, int col)
{
    if (!res || !res->pg || row < 0 || col < 0 || row >= PQntuples(res->pg)
        || col >= PQnfields(res->pg))
        return NULL;
    if (PQgetisnull(res->pg, row, col))
        return NULL;
    return PQgetvalue(res->pg, row, col);
}

int core_db_col(const plx_db_res_t *res, const char *name)
{
    return res && res->pg && name ? PQfnumber(res->pg, name) : -1;
}

const char *core_db_affected(const plx_db_res_t *res)
{
    return res && res->pg ? PQcmdTuples(res->pg) : "";
}

const char *core_db_error(const plx_db_res_t *res)
{
    return res ? res->error : NULL;
}

void core_db_free(plx_db_res_t *res)
{
    if (!res)
        return;
    PQclear(res->pg);
    free(res->error);
    free(res);
}

void core_db_stats(core_db_stats_t *out)
{
    pthread_mutex_lock(&pool.lock);
    out->size = pool.size;
    out->open = pool.open;
    out->in_use = pool.in_use;
    out->acquired = pool.acquired;
    out->timeouts = pool.timeouts;
    out->wait_seconds = pool.wait_seconds;
    pthread_mutex_unlock(&pool.lock);
}
