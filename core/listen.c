/*
 * listen.c - LISTEN/NOTIFY: one core listener thread for the process
 *
 * Modules (and the core's job queue) register channels with db_listen
 * during init. Once the server starts, one thread holds a dedicated
 * connection outside the pool (core_db_connect_direct), LISTENs on every
 * registered channel and calls the channel's callbacks for each
 * notification, on that thread.
 *
 * When the connection is lost (the database restarts, the network is cut)
 * the thread makes a new one, waiting 100 ms, then twice as long each
 * failure up to 5 s. Notifications sent meanwhile are gone, so after the
 * new connection LISTENs again, every callback is called once with
 * payload NULL: "catch up from the tables". A connection that goes silent
 * without an error is found by a SELECT 1 every LISTEN_PING_S seconds of
 * quiet, answered within LISTEN_PING_WAIT_S or the connection is dropped.
 *
 * NOTIFY goes through pg_notify($1, $2), which PostgreSQL itself delivers
 * at COMMIT when it runs inside a transaction and not at all on rollback:
 * a db_notify on a db_tx connection therefore needs no queue of its own,
 * and a retried transaction's first try notifies nobody.
 *
 * Threads: registration on the main thread before core_listen_start;
 * afterwards the table is read-only and only the listener reads it.
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "loader.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define LISTEN_CHANNEL_MAX   63      /* PostgreSQL's NAMEDATALEN - 1 */
#define LISTEN_MAX           256     /* registrations, all channels */
#define LISTEN_PAYLOAD_MAX   7900    /* bytes; the server's limit is 8000 */
#define LISTEN_BACKOFF_MIN   100     /* ms */
#define LISTEN_BACKOFF_MAX   5000
#define LISTEN_PING_S        30.0
#define LISTEN_PING_WAIT_S   10.0

typedef struct listen_reg {
    char          channel[LISTEN_CHANNEL_MAX + 1];
    plx_notify_fn fn;
    void         *arg;
} listen_reg_t;

static struct {
    listen_reg_t regs[LISTEN_MAX];
    size_t       n;
    bool         started;      /* registrations closed */
    pthread_t    thread;
    int          wake[2];      /* self-pipe: stop */
    atomic_bool  stopping;
} lsn = { .wake = { -1, -1 } };

/* [a-z0-9_.], 1 to 63 bytes: also what keeps LISTEN's identifier plain */
bool core_db_channel_valid(const char *channel)
{
    size_t n = channel ? strlen(channel) : 0;

    if (n == 0 || n > LISTEN_CHANNEL_MAX)
        return false;
    for (size_t i = 0; i < n; i++) {
        char ch = channel[i];
        if (!((ch >= 'a' && ch <= 'z') || (ch >= '0' && ch <= '9')
              || ch == '_' || ch == '.'))
            return false;
    }
    return true;
}

static const char *owner(plx_module_t *m)
{
    return m && m->name ? m->name : "core";
}

plx_status_t core_db_listen(plx_module_t *m, const char *channel,
                            plx_notify_fn fn, void *arg)
{
    if (!fn || !core_db_channel_valid(channel)) {
        core_log(PLX_LOG_ERROR, owner(m), NULL, "db_listen: expected a "
                 "channel of 1 to %d of [a-z0-9_.] and a function, found "
                 "\"%.80s\"", LISTEN_CHANNEL_MAX, channel ? channel : "");
        return PLX_ERR_INVALID;
    }
    if (lsn.started) {
        core_log(PLX_LOG_ERROR, owner(m), NULL, "db_listen(\"%s\"): only "
                 "during init", channel);
        return PLX_ERR_INVALID;
    }
    if (lsn.n >= LISTEN_MAX) {
        core_log(PLX_LOG_ERROR, owner(m), NULL, "db_listen(\"%s\"): more than "
                 "%d registrations", channel, LISTEN_MAX);
        return PLX_ERR_TOO_LARGE;
    }
    listen_reg_t *reg = &lsn.regs[lsn.n++];
    snprintf(reg->channel, sizeof reg->channel, "%s", channel);
    reg->fn = fn;
    reg->arg = arg;
    return PLX_OK;
}

plx_status_t core_db_notify(plx_db_conn_t *c, const char *channel,
                            const char *payload)
{
    static const char sql[] = "SELECT pg_notify($1, $2)";
    size_t len = payload ? strlen(payload) : 0;

    if (!core_db_channel_valid(channel) || len > LISTEN_PAYLOAD_MAX
        || (payload && !core_utf8_valid(payload, len)))
        return PLX_ERR_INVALID;
    const char *params[2] = { channel, payload ? payload : "" };
    if (c)
        return core_db_exec(c, sql, 2, params, NULL);
    return core_db_query(NULL, sql, 2, params, NULL);
}

/* ---- the listener thread ---------------------------------------------------- */

static void dispatch(const char *channel, const char *payload)
{
    for (size_t i = 0; i < lsn.n; i++)
        if (strcmp(lsn.regs[i].channel, channel) == 0)
            lsn.regs[i].fn(channel, payload, lsn.regs[i].arg);
}

static void catch_up(void)
{
    LOG_INFO("listening again after losing the database; callbacks catch up");
    for (size_t i = 0; i < lsn.n; i++)
        lsn.regs[i].fn(lsn.regs[i].channel, NULL, lsn.regs[i].arg);
}

/* Sleep ms unless stopped; false when stopping. */
static bool nap(long ms)
{
    struct pollfd p = { .fd = lsn.wake[0], .events = POLLIN };

    if (atomic_load(&lsn.stopping))
        return false;
    (void)poll(&p, 1, (int)ms);
    return !atomic_load(&lsn.stopping);
}

/* LISTEN on each distinct channel. The name cannot be a parameter; it is
 * checked by core_db_channel_valid and quoted as an identifier. */
static bool listen_all(PGconn *pg)
{
    for (size_t i = 0; i < lsn.n; i++) {
        bool seen = false;
        for (size_t j = 0; j < i && !seen; j++)
            seen = strcmp(lsn.regs[i].channel, lsn.regs[j].channel) == 0;
        if (seen)
            continue;
        char *id = PQescapeIdentifier(pg, lsn.regs[i].channel,
                                      strlen(lsn.regs[i].channel));
        char sql[LISTEN_CHANNEL_MAX * 2 + 16];
        if (!id)
            return false;
        snprintf(sql, sizeof sql, "LISTEN %s", id);
        PQfreemem(id);
        PGresult *res = PQexec(pg, sql);
        bool ok = PQresultStatus(res) == PGRES_COMMAND_OK;
        if (!ok)
            LOG_WARN("LISTEN %s failed: %s", lsn.regs[i].channel,
                     PQresultErrorMessage(res));
        PQclear(res);
        if (!ok)
            return false;
    }
    return PQsetnonblocking(pg, 1) == 0;
}

static void drain(PGconn *pg)
{
    PGnotify *n;

    while ((n = PQnotifies(pg)) != NULL) {
        dispatch(n->relname, n->extra);
        PQfreemem(n);
    }
}

/* Consume whatever arrived: false when the connection is gone. Results of
 * our own ping are read and dropped here too. */
static bool consume(PGconn *pg, bool *ping_answered)
{
    PGresult *res;

    if (!PQconsumeInput(pg))
        return false;
    while (!PQisBusy(pg) && (res = PQgetResult(pg)) != NULL) {
        if (PQresultStatus(res) == PGRES_TUPLES_OK)
            *ping_answered = true;
        PQclear(res);
    }
    drain(pg);
    return PQstatus(pg) == CONNECTION_OK;
}

/* Serve one connection until it fails or we stop. */
static void serve(PGconn *pg)
{
    struct pollfd p[2] = {
        { .fd = PQsocket(pg), .events = POLLIN },
        { .fd = lsn.wake[0], .events = POLLIN },
    };
    double quiet_since = core_now(), ping_sent = 0;
    bool answered = false;

    while (!atomic_load(&lsn.stopping)) {
        int rc = poll(p, 2, 1000);
        if (rc < 0 && errno != EINTR)
            return;
        if (rc > 0 && p[0].revents) {
            if (!consume(pg, &answered))
                return;
            quiet_since = core_now();
        }
        if (answered) {
            ping_sent = 0;
            answered = false;
        }
        double now = core_now();
        if (ping_sent > 0 && now - ping_sent > LISTEN_PING_WAIT_S) {
            LOG_WARN("listening connection does not answer; reconnecting");
            return;
        }
        if (ping_sent == 0 && now - quiet_since > LISTEN_PING_S) {
            if (!PQsendQuery(pg, "SELECT 1") || PQflush(pg) < 0)
                return;
            ping_sent = now;
        }
    }
}

static void *listener_main(void *unused)
{
    long backoff = LISTEN_BACKOFF_MIN;
    bool first = true;

    (void)unused;
    while (!atomic_load(&lsn.stopping)) {
        PGconn *pg = core_db_connect_direct();
        bool served = pg && listen_all(pg);

        if (served) {
            /* not the first attempt: something may have been missed */
            if (!first)
                catch_up();
            serve(pg);
            if (!atomic_load(&lsn.stopping))
                LOG_WARN("listening connection lost; reconnecting");
        }
        first = false;
        if (pg)
            PQfinish(pg);
        backoff = served ? LISTEN_BACKOFF_MIN
                : backoff * 2 > LISTEN_BACKOFF_MAX ? LISTEN_BACKOFF_MAX
                : backoff * 2;
        if (!nap(served ? LISTEN_BACKOFF_MIN : backoff))
            break;
    }
    return NULL;
}

bool core_listen_start(void)
{
    int rc;

    lsn.started = true;
    if (lsn.n == 0)
        return true;
    if (pipe(lsn.wake) != 0) {
        LOG_ERROR("listener: pipe: %s", strerror(errno));
        return false;
    }
    for (int i = 0; i < 2; i++)
        fcntl(lsn.wake[i], F_SETFD, FD_CLOEXEC);
    atomic_store(&lsn.stopping, false);
    rc = pthread_create(&lsn.thread, NULL, listener_main, NULL);
    if (rc != 0) {
        LOG_ERROR("cannot start the listener thread: %s", strerror(rc));
        close(lsn.wake[0]);
        close(lsn.wake[1]);
        lsn.wake[0] = lsn.wake[1] = -1;
        return false;
    }
    LOG_INFO("listening on %zu channel registration%s", lsn.n,
             lsn.n == 1 ? "" : "s");
    return true;
}

void core_listen_stop(void)
{
    if (lsn.wake[1] >= 0) {
        atomic_store(&lsn.stopping, true);
        if (write(lsn.wake[1], "x", 1) < 0)
            LOG_WARN("listener: cannot wake the thread: %s", strerror(errno));
        pthread_join(lsn.thread, NULL);
        close(lsn.wake[0]);
        close(lsn.wake[1]);
        lsn.wake[0] = lsn.wake[1] = -1;
    }
    lsn.n = 0;
    lsn.started = false;
}
