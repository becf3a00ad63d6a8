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
 * Waiters are served in arrival order: each queues a node with its own
 * condition variable, only the head of the queue may take a connection,
 * and a newcomer queues behind anybody already waiting. Without that a
 * thread arriving just as a connection comes back could take it ahead of
 * one that has waited for ages, and the tail latency grows with the load.
 *
 * Each connection keeps a bounded cache of prepared statements keyed by
 * the statement text: planning is a large part of a short statement's
 * cost, and the same few texts run over and over. See "prepared
 * statements" below.
 *
 * Thread safety: the pool state is under one mutex; a connection is used
 * by one thread at a time (the one that acquired it), as libpq requires,
 * and so is its statement cache.
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
#define DB_STMT_CACHE       128     /* prepared statements per connection */
#define DB_TX_ATTEMPTS      5       /* runs of a db_tx function */
#define DB_AFTER_MAX        1024    /* after-commit items per transaction */

/* One prepared statement, named plx_<id> on the server. */
struct plx_stmt {
    char    *sql;      /* NULL: free entry */
    uint64_t hash;
    unsigned id;
    bool     ref;      /* clock bit: used since the hand last passed */
    bool     stale;    /* server says its plan changed shape: never reuse */
};

struct plx_stmt_cache {
    struct plx_stmt e[DB_STMT_CACHE];
    int      hand;     /* clock eviction */
    unsigned next_id;  /* unique per connection (session) */
};

/* Work queued by a transaction for after its COMMIT (db_tx): run is
 * called once it committed, drop always, last, to free arg. */
struct db_after {
    void (*run)(void *arg);
    void (*drop)(void *arg);
    void *arg;
    struct db_after *next;
};

struct plx_db_conn {
    PGconn *pg;
    bool    in_use;
    bool    broken;    /* drop on release */
    bool    in_tx;     /* handed to a db_tx function, inside its transaction */
    bool    retry;     /* 40001/40P01 seen since the transaction began */
    struct plx_stmt_cache stmts;   /* dies with pg */
    struct db_after *after, *after_tail;   /* in queue order */
    int     nafter;
};

/* A thread waiting for a connection; lives on its stack. */
struct db_waiter {
    pthread_cond_t    cond;
    struct db_waiter *next;
};

static struct {
    pthread_mutex_t lock;
    struct db_waiter *head, *tail; /* FIFO of waiting acquirers */
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

static void wake_head_locked(void);
static void stmt_cache_clear(struct plx_stmt_cache *sc);
PLX_STATIC plx_status_t core_db_sqlstate_status(const char *state);
PLX_STATIC long core_db_tx_pause_ms(int attempt, unsigned rnd);

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

/* Forget every prepared statement: the session that held them is gone. */
static void stmt_cache_clear(struct plx_stmt_cache *sc)
{
    for (int i = 0; i < DB_STMT_CACHE; i++)
        free(sc->e[i].sql);
    memset(sc, 0, sizeof *sc);
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
    pool.head = pool.tail = NULL;
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
        stmt_cache_clear(&c->stmts);
    }
    pool.ready = false;
    /* every waiter sees !ready and leaves the queue itself */
    for (struct db_waiter *w = pool.head; w; w = w->next)
        pthread_cond_signal(&w->cond);
    pthread_mutex_unlock(&pool.lock);
    if (busy > 0) {
        LOG_WARN("database pool shut down with %d connection%s still in use",
                 busy, busy == 1 ? "" : "s");
        return;
    }
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
    stmt_cache_clear(&c->stmts);
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
        wake_head_locked();   /* the next waiter learns "down" at once */
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

/* ---- the FIFO of waiters ------------------------------------------------- */

static void wake_head_locked(void)
{
    if (pool.head)
        pthread_cond_signal(&pool.head->cond);
}

static void enqueue_locked(struct db_waiter *w)
{
    pthread_condattr_t attr;

    /* waits are measured on the monotonic clock: a wall-clock jump must
     * not turn a 5 s wait into an hour */
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&w->cond, &attr);
    pthread_condattr_destroy(&attr);
    w->next = NULL;
    if (pool.tail)
        pool.tail->next = w;
    else
        pool.head = w;
    pool.tail = w;
}

/* Leave the queue (from anywhere in it: a waiter may time out). */
static void dequeue_locked(struct db_waiter *w)
{
    struct db_waiter **pp = &pool.head, *prev = NULL;

    while (*pp && *pp != w) {
        prev = *pp;
        pp = &(*pp)->next;
    }
    if (*pp)
        *pp = w->next;
    if (pool.tail == w)
        pool.tail = prev;
    pthread_cond_destroy(&w->cond);
}

/* Wake the head only if a slot is free (an idle connection or room for
 * one): otherwise the next release wakes it, and a pointless wakeup costs
 * a context switch per acquisition under load. */
static void wake_head_if_free_locked(void)
{
    for (int i = 0; pool.head && i < pool.size; i++)
        if (!pool.slots[i].in_use) {
            wake_head_locked();
            return;
        }
}

static void leave_queue_locked(struct db_waiter *w, bool *queued)
{
    if (!*queued)
        return;
    dequeue_locked(w);
    *queued = false;
    wake_head_if_free_locked();
}

/* The acquisition loop. Only the head of the queue, or a newcomer that
 * finds nobody waiting, may take a connection: an idle live one first,
 * else a new one in an empty slot (unless the database is down and an
 * attempt is not due). Everybody else waits on their own condition
 * variable until a release wakes the head or the deadline passes.
 * Whoever leaves the queue passes the turn on, so no wakeup is lost. */
static struct plx_db_conn *acquire_locked(long timeout_ms)
{
    struct timespec deadline = deadline_after(timeout_ms);
    struct plx_db_conn *c = NULL;
    struct db_waiter w;
    bool queued = false;

    while (pool.ready) {
        if (queued ? pool.head == &w : pool.head == NULL) {
            c = take_idle_locked();
            if (c)
                break;
            c = empty_slot_locked();
            if (c && !attempt_allowed_locked(core_now())) {
                c = NULL;
                break;   /* down, and no attempt due: fail fast */
            }
            if (c) {
                /* fill_slot_locked drops the lock while connecting:
                 * reserve the slot and hand the turn on first */
                c->in_use = true;
                leave_queue_locked(&w, &queued);
                return fill_slot_locked(c) ? c : NULL;
            }
        }
        if (!queued) {
            enqueue_locked(&w);
            queued = true;
        }
        if (pthread_cond_timedwait(&w.cond, &pool.lock, &deadline)
            == ETIMEDOUT) {
            pool.timeouts++;
            break;
        }
    }
    leave_queue_locked(&w, &queued);
    return c;
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
    if (c->in_tx) {
        /* db_tx gives it back itself, after COMMIT or ROLLBACK */
        LOG_ERROR("a db_tx function released its connection; ignored");
        return;
    }
    reset_transaction(c);
    pthread_mutex_lock(&pool.lock);
    if (c->broken || !pool.ready)
        drop_locked(c);
    c->in_use = false;
    pool.in_use--;
    wake_head_locked();
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

/* Collect the results of the command just sent, bounded by deadline.
 * Returns the last result, an error result in preference to a later one;
 * NULL on a connection problem or a timeout (*timed_out). */
static PGresult *collect_bounded(PGconn *pg, double deadline, bool *timed_out)
{
    PGresult *last = NULL, *res;

    *timed_out = false;
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

/* Like PQexecParams but bounded by deadline; see collect_bounded. */
static PGresult *exec_bounded(PGconn *pg, const char *sql, int n,
                              const char *const *params, double deadline,
                              bool *timed_out)
{
    *timed_out = false;
    if (!PQsendQueryParams(pg, sql, n, NULL, params, NULL, NULL, 0))
        return NULL;
    return collect_bounded(pg, deadline, timed_out);
}

/* ---- prepared statements --------------------------------------------------
 *
 * Planning a short statement costs about as much as running it, and a
 * request runs the same few texts over and over (the session check, then
 * the handler's statement). So each pooled connection prepares a text the
 * first time it runs it there, as plx_<n>, and afterwards only binds and
 * executes. Parameter types stay unspecified, as with PQsendQueryParams,
 * so the server infers the same types and the results are the same.
 *
 * The cache is bounded (DB_STMT_CACHE entries, clock eviction with a
 * DEALLOCATE of the victim) and dies with the connection. Two answers mean
 * the server's copy is no good: 26000 (it does not exist, e.g. after a
 * DISCARD ALL) and 0A000 "cached plan must not change result type" (a
 * table's columns changed under a SELECT *). The entry is dropped and,
 * outside a transaction, the statement is prepared and run once more;
 * inside one the transaction has already failed, so the error stands.
 */

/* FNV-1a: cheap, and a hash match is always confirmed with strcmp */
static uint64_t stmt_hash(const char *sql)
{
    uint64_t h = 14695981039346656037ULL;

    for (const unsigned char *p = (const unsigned char *)sql; *p; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return h;
}

static void stmt_name(unsigned id, char out[24])
{
    snprintf(out, 24, "plx_%u", id);
}

static struct plx_stmt *stmt_find(struct plx_stmt_cache *sc, const char *sql,
                                  uint64_t hash)
{
    for (int i = 0; i < DB_STMT_CACHE; i++) {
        struct plx_stmt *e = &sc->e[i];
        if (e->sql && !e->stale && e->hash == hash && strcmp(e->sql, sql) == 0)
            return e;
    }
    return NULL;
}

static void stmt_forget(struct plx_stmt *e)
{
    free(e->sql);
    memset(e, 0, sizeof *e);
}

/* Drop the server's copy of a statement. Only outside a transaction: an
 * error (it may already be gone) would abort the caller's transaction.
 * Errors are otherwise ignored; false only if the connection failed. */
static bool stmt_deallocate(PGconn *pg, unsigned id, double deadline,
                            bool *timed_out)
{
    char name[24], sql[40];

    stmt_name(id, name);
    snprintf(sql, sizeof sql, "DEALLOCATE %s", name);
    PGresult *res = exec_bounded(pg, sql, 0, NULL, deadline, timed_out);
    bool ok = res != NULL;
    PQclear(res);
    return ok;
}

/* A free entry, evicting one if need be (clock: pass over and clear the
 * recently used, take the first that was not; stale ones go first).
 * NULL when none can be had: the cache is full inside a transaction, or
 * the connection failed (*failed). */
static struct plx_stmt *stmt_slot(struct plx_db_conn *c, double deadline,
                                  bool *failed, bool *timed_out)
{
    struct plx_stmt_cache *sc = &c->stmts;
    struct plx_stmt *e;

    *failed = false;
    for (int i = 0; i < DB_STMT_CACHE; i++)
        if (!sc->e[i].sql)
            return &sc->e[i];
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return NULL;
    for (;;) {
        e = &sc->e[sc->hand];
        sc->hand = (sc->hand + 1) % DB_STMT_CACHE;
        if (!e->ref || e->stale)
            break;
        e->ref = false;
    }
    if (!stmt_deallocate(c->pg, e->id, deadline, timed_out)) {
        *failed = true;
        return NULL;
    }
    stmt_forget(e);
    return e;
}

static PGresult *run_prepared(PGconn *pg, unsigned id, int n,
                              const char *const *params, double deadline,
                              bool *timed_out)
{
    char name[24];

    *timed_out = false;
    stmt_name(id, name);
    if (!PQsendQueryPrepared(pg, name, n, params, NULL, NULL, 0))
        return NULL;
    return collect_bounded(pg, deadline, timed_out);
}

/* A miss: prepare the text into a free entry, then run it. Without an
 * entry to spare (full, inside a transaction) it runs unprepared. A
 * failed prepare returns its error: the same the statement would give. */
static PGresult *prepare_and_run(struct plx_db_conn *c, const char *sql,
                                 uint64_t hash, int n,
                                 const char *const *params, double deadline,
                                 bool *timed_out)
{
    bool failed;
    struct plx_stmt *e = stmt_slot(c, deadline, &failed, timed_out);
    char name[24];
    char *copy;

    if (failed)
        return NULL;
    if (!e || !(copy = strdup(sql)))
        return exec_bounded(c->pg, sql, n, params, deadline, timed_out);
    unsigned id = c->stmts.next_id++;
    stmt_name(id, name);
    if (!PQsendPrepare(c->pg, name, sql, n, NULL)) {
        free(copy);
        *timed_out = false;
        return NULL;
    }
    PGresult *res = collect_bounded(c->pg, deadline, timed_out);
    if (!res || PQresultStatus(res) != PGRES_COMMAND_OK) {
        free(copy);
        return res;
    }
    PQclear(res);
    *e = (struct plx_stmt){ .sql = copy, .hash = hash, .id = id, .ref = true };
    return run_prepared(c->pg, id, n, params, deadline, timed_out);
}

/* 26000, or 0A000 "cached plan must not change result type": the
 * server's prepared statement is gone or unusable */
static bool stmt_invalid(const PGresult *res)
{
    const char *state, *msg;

    if (!res || PQresultStatus(res) != PGRES_FATAL_ERROR)
        return false;
    state = PQresultErrorField(res, PG_DIAG_SQLSTATE);
    msg = PQresultErrorField(res, PG_DIAG_MESSAGE_PRIMARY);
    if (state && strcmp(state, "26000") == 0)
        return true;
    return state && strcmp(state, "0A000") == 0 && msg
        && strstr(msg, "cached plan must not change result type") != NULL;
}

/* Run a statement through the connection's cache; see the section banner. */
static PGresult *exec_cached(struct plx_db_conn *c, const char *sql, int n,
                             const char *const *params, double deadline,
                             bool *timed_out)
{
    uint64_t hash = stmt_hash(sql);
    struct plx_stmt *e = stmt_find(&c->stmts, sql, hash);

    if (!e)
        return prepare_and_run(c, sql, hash, n, params, deadline, timed_out);
    e->ref = true;
    PGresult *res = run_prepared(c->pg, e->id, n, params, deadline, timed_out);
    if (!stmt_invalid(res))
        return res;
    /* 0A000: the server still holds it; keep the entry, marked stale, until
     * the clock evicts it with a DEALLOCATE (possible only outside a
     * transaction). 26000: there is nothing to deallocate. */
    if (strcmp(PQresultErrorField(res, PG_DIAG_SQLSTATE), "26000") == 0)
        stmt_forget(e);
    else
        e->stale = true;
    if (PQtransactionStatus(c->pg) != PQTRANS_IDLE)
        return res;
    PQclear(res);
    return prepare_and_run(c, sql, hash, n, params, deadline, timed_out);
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

/* The status of an error the server reported on a connection that still
 * works. 40001 (serialization failure) and 40P01 (deadlock) are worth a
 * retry of the whole transaction: PLX_AGAIN. */
PLX_STATIC plx_status_t core_db_sqlstate_status(const char *state)
{
    if (!state)
        return PLX_ERR_DB;
    if (strcmp(state, "40001") == 0 || strcmp(state, "40P01") == 0)
        return PLX_AGAIN;
    if (sqlstate_is(state, "53"))     /* out of connections, memory, disk */
        return PLX_ERR_DB;
    if (strcmp(state, "57014") == 0)  /* statement_timeout */
        return PLX_ERR_TIMEOUT;
    if (sqlstate_is(state, "23"))     /* integrity constraint violation */
        return PLX_ERR_CONFLICT;
    return PLX_ERR_INTERNAL;
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
    return core_db_sqlstate_status(state);
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
                          : st == PLX_AGAIN ? PLX_LOG_INFO : PLX_LOG_WARN;

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
    PGresult *pg = exec_cached(c, sql, n, params, deadline, &timed_out);
    plx_status_t st;

    if (result_ok(pg))
        return give_result(pg, out);
    st = classify(c->pg, pg, &broken);
    if (timed_out) {
        broken = true;
        st = PLX_ERR_DB;
    }
    if (st == PLX_AGAIN)
        c->retry = true;
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

/* ---- transactions (db_tx) -------------------------------------------------
 *
 * BEGIN at the isolation level, the caller's function, COMMIT, on one
 * pooled connection. A serialization failure or deadlock (40001, 40P01)
 * in any statement, COMMIT included, marks the connection (c->retry):
 * the transaction is rolled back and the function runs again after a
 * short random pause, DB_TX_ATTEMPTS runs in all. What a transaction
 * queues for after its COMMIT (in-process events) lives on the
 * connection and is dropped with every rollback, so a retried or failed
 * transaction publishes nothing.
 */

static const char *const begin_sql[] = {
    [PLX_TX_READ_COMMITTED] = "BEGIN ISOLATION LEVEL READ COMMITTED",
    [PLX_TX_REPEATABLE_READ] = "BEGIN ISOLATION LEVEL REPEATABLE READ",
    [PLX_TX_SERIALIZABLE] = "BEGIN ISOLATION LEVEL SERIALIZABLE",
};

bool core_db_in_tx(const plx_db_conn_t *c)
{
    return c && c->in_tx;
}

plx_status_t core_db_after_commit(plx_db_conn_t *c, void (*run)(void *arg),
                                  void (*drop)(void *arg), void *arg)
{
    struct db_after *a;

    if (!c || !c->in_tx || !run)
        return PLX_ERR_INVALID;
    if (c->nafter >= DB_AFTER_MAX)
        return PLX_ERR_TOO_LARGE;
    a = calloc(1, sizeof *a);
    if (!a)
        return PLX_ERR_NOMEM;
    *a = (struct db_after){ .run = run, .drop = drop, .arg = arg };
    if (c->after_tail)
        c->after_tail->next = a;
    else
        c->after = a;
    c->after_tail = a;
    c->nafter++;
    return PLX_OK;
}

/* Detach the queue; the caller runs (or not) and frees it. */
static struct db_after *after_take(struct plx_db_conn *c)
{
    struct db_after *a = c->after;

    c->after = c->after_tail = NULL;
    c->nafter = 0;
    return a;
}

static void after_finish(struct db_after *a, bool committed)
{
    while (a) {
        struct db_after *next = a->next;
        if (committed)
            a->run(a->arg);
        if (a->drop)
            a->drop(a->arg);
        free(a);
        a = next;
    }
}

/* A pause before run attempt + 1: random in [5, 25] ms times attempt, so
 * two transactions that collided do not collide again in step. */
PLX_STATIC long core_db_tx_pause_ms(int attempt, unsigned rnd)
{
    if (attempt < 1)
        attempt = 1;
    return (5 + (long)(rnd % 21)) * attempt;
}

static void tx_pause(int attempt)
{
    unsigned rnd = 0;
    long ms;

    if (!core_random_bytes(&rnd, sizeof rnd))
        rnd = (unsigned)(core_now() * 1e6);
    ms = core_db_tx_pause_ms(attempt, rnd);
    struct timespec ts = { .tv_sec = ms / 1000,
                           .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* Roll back whatever is open; a connection that cannot is dropped. */
static void tx_rollback(struct plx_db_conn *c, const char *rid)
{
    if (c->broken || !c->pg || PQstatus(c->pg) != CONNECTION_OK) {
        c->broken = true;
        return;
    }
    if (PQtransactionStatus(c->pg) == PQTRANS_IDLE)
        return;
    if (exec_on(c, rid, "ROLLBACK", 0, NULL, statement_deadline(), NULL)
        != PLX_OK)
        c->broken = true;
}

/* One run: BEGIN, fn, COMMIT. *unknown: the connection broke during
 * COMMIT, so whether it committed cannot be told. */
static plx_status_t tx_attempt(struct plx_db_conn *c, const char *rid,
                               plx_isolation_t iso, plx_tx_fn fn, void *arg,
                               bool *unknown)
{
    plx_db_res_t *res = NULL;
    plx_status_t st;

    *unknown = false;
    c->retry = false;
    st = exec_on(c, rid, begin_sql[iso], 0, NULL, statement_deadline(), NULL);
    if (st != PLX_OK)
        return st;
    c->in_tx = true;
    st = fn(c, arg);
    c->in_tx = false;
    if (c->broken || PQstatus(c->pg) != CONNECTION_OK) {
        /* never committed: the server rolls back a session it lost */
        c->broken = true;
        return st != PLX_OK ? st : PLX_ERR_DB;
    }
    if (st == PLX_OK && PQtransactionStatus(c->pg) != PQTRANS_INTRANS) {
        /* a statement failed and fn went on as if not: COMMIT would
         * only answer ROLLBACK */
        core_log(PLX_LOG_WARN, "core", rid, "db_tx: the transaction failed "
                 "but its function returned OK; rolled back");
        st = PLX_ERR_DB;
    }
    if (st != PLX_OK || c->retry) {
        tx_rollback(c, rid);
        return c->retry ? PLX_AGAIN : st;
    }
    st = exec_on(c, rid, "COMMIT", 0, NULL, statement_deadline(), &res);
    if (st == PLX_OK && strcmp(PQcmdStatus(res->pg), "COMMIT") != 0)
        st = PLX_ERR_DB;
    core_db_free(res);
    if (st == PLX_OK)
        return PLX_OK;
    if (c->broken) {
        *unknown = true;
        return PLX_ERR_DB;
    }
    /* the server refused the COMMIT and ended the transaction */
    tx_rollback(c, rid);
    return st;
}

plx_status_t core_db_tx(plx_request_t *r, plx_isolation_t iso, plx_tx_fn fn,
                        void *arg)
{
    const char *rid = r ? core_request_id(r) : NULL;
    struct db_after *after;
    plx_status_t st;
    bool unknown;

    if (!fn || (int)iso < 0 || (int)iso >= (int)CORE_ARRAY_LEN(begin_sql))
        return PLX_ERR_INVALID;
    struct plx_db_conn *c = core_db_acquire(0);
    if (!c)
        return PLX_ERR_DB;
    for (int attempt = 1;; attempt++) {
        st = tx_attempt(c, rid, iso, fn, arg, &unknown);
        if (st == PLX_OK)
            break;
        after_finish(after_take(c), false);
        if (unknown) {
            core_log(PLX_LOG_ERROR, "core", rid, "db_tx: the connection broke "
                     "during COMMIT; the outcome is unknown");
            break;
        }
        if (!c->retry || c->broken)
            break;
        if (attempt >= DB_TX_ATTEMPTS) {
            core_log(PLX_LOG_WARN, "core", rid, "db_tx: still conflicting "
                     "after %d attempts, giving up", attempt);
            st = PLX_AGAIN;
            break;
        }
        tx_pause(attempt);
    }
    after = after_take(c);
    c->retry = false;
    core_db_release(c);
    after_finish(after, st == PLX_OK);
    return st;
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
