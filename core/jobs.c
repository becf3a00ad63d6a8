/*
 * jobs.c - durable background jobs in plexus.jobs
 *
 * Modules register handlers by name (names are global: "example.record")
 * and enqueue jobs with a JSON payload. The rows live in PostgreSQL, so
 * any instance may run any job, and a crashed instance's jobs come back.
 *
 * A pool of [jobs] workers threads polls every poll_interval. Every
 * enqueue also NOTIFYs plexus.jobs (at COMMIT when it is part of a db_tx
 * transaction); the core's listener (listen.c) wakes an idle worker on
 * each notification, so a job enqueued on any instance starts at once
 * wherever a worker is free, and polling is only the fallback (a
 * notification lost while the listener reconnects, delayed jobs, retries).
 * A worker claims one due row in a single
 * autocommitted UPDATE ... WHERE id = (SELECT ... FOR UPDATE SKIP LOCKED
 * LIMIT 1): the row becomes running with attempts + 1 and a lease
 * (locked_until = now() + lease). The handler then runs with no
 * transaction and no connection held, and the outcome is written back:
 * done; queued again after min(backoff_base * 2^(attempts-1), backoff_max);
 * or dead once attempts reach max_attempts. A lease that expires (the
 * instance died, or the handler ran past the lease) makes the row
 * claimable again: delivery is at least once, handlers must be idempotent.
 *
 * Only rows whose handler is registered in this process are claimed; the
 * others stay queued for an instance that has them, and are logged once.
 *
 * A unique_key makes an enqueue idempotent: the partial unique index on
 * (handler, unique_key) lets the insert do nothing when the key exists,
 * and the caller learns the first job's id. Recurring jobs: see their
 * section below.
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "jobs.h"
#include "loader.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define JOB_NAME_MAX       128
#define JOB_PAYLOAD_MAX    (4u * 1024 * 1024)
#define JOB_ERROR_MAX      2000        /* bytes of last_error kept */
#define JOB_ATTEMPTS_MAX   1000
#define JOB_DELAY_MAX      (366 * 24 * 3600)
#define JOB_WORKERS_MAX    64
#define JOB_UNKNOWN_EVERY  60.0        /* seconds between unknown-handler scans */
#define JOB_UNKNOWN_MAX    64          /* handler names remembered as logged */
#define JOB_WHO_MAX        128
#define JOB_KEY_MAX        200         /* bytes of a unique_key */
#define JOB_RECURRING_MAX  256
#define JOB_CHANNEL        "plexus.jobs"   /* NOTIFYed by every enqueue */

typedef struct job_handler {
    plx_module_t *m;
    char         *name;
    plx_job_fn    fn;
    void         *arg;
} job_handler_t;

/* Valid during the handler call only. */
struct plx_job {
    char    id[37];
    char    handler[JOB_NAME_MAX];
    json_t *payload;       /* owned by the job, borrowed by the handler */
    int     attempt;       /* 1 for the first run */
    int     max_attempts;
    char   *error;         /* set by the handler, becomes last_error */
    const char *who;       /* the worker holding the lease */
    const struct job_recurring *recurring;   /* a recurring run, or NULL */
};

/* A recurring job (job_recurring_add), a row of plexus.recurring_jobs. */
typedef struct job_recurring {
    plx_module_t *m;
    char          module[64];
    char          name[JOB_NAME_MAX];
    int           every;         /* seconds */
    plx_job_fn    fn;
    void         *arg;
} job_recurring_t;

typedef struct job_settings {
    int  workers;
    long poll_ms;
    long lease_ms;
    long backoff_base_ms;
    long backoff_max_ms;
} job_settings_t;

static struct {
    pthread_mutex_t lock;        /* handlers, kicks, logged names */
    pthread_cond_t  wake;        /* an enqueue or stop */
    pthread_cond_t  rwake;       /* stop, for the recurring thread */
    job_handler_t  *handlers;
    size_t          nhandlers;
    pthread_t      *threads;
    int             nthreads;
    atomic_bool     stopping;
    unsigned        kicks;       /* pending wake-ups from enqueues */
    job_settings_t  set;
    char            instance[64];
    char           *logged[JOB_UNKNOWN_MAX];
    size_t          nlogged;
    /* recurring jobs: registered during init, read-only afterwards */
    job_recurring_t recurring[JOB_RECURRING_MAX];
    size_t          nrecurring;
    pthread_t       rthread;
    bool            rthread_on;
} jobs = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
};

static pthread_once_t wake_once = PTHREAD_ONCE_INIT;

/* outcomes recorded by this process since start, for core_stats */
static atomic_uint_fast64_t outcomes[3];

PLX_STATIC long core_jobs_backoff_ms(long base_ms, long max_ms, int attempts);

/* ---- pure helpers -------------------------------------------------------- */

/* min(base * 2^(attempts-1), max) without overflowing */
PLX_STATIC long core_jobs_backoff_ms(long base_ms, long max_ms, int attempts)
{
    long ms = base_ms > 0 ? base_ms : 0;

    if (max_ms < 0)
        max_ms = 0;
    for (int i = 1; i < attempts && ms < max_ms; i++)
        ms = ms > max_ms / 2 ? max_ms : ms * 2;
    return ms < max_ms ? ms : max_ms;
}

/* handler names go into a text[] literal and log lines: keep them plain */
static bool name_valid(const char *name)
{
    size_t len = name ? strlen(name) : 0;

    if (len == 0 || len >= JOB_NAME_MAX)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = name[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')
              || (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'
              || c == ':'))
            return false;
    }
    return true;
}

static const char *owner_name(plx_module_t *m)
{
    return m && m->name ? m->name : "core";
}

static void wake_init(void)
{
    pthread_condattr_t attr;

    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    pthread_cond_init(&jobs.wake, &attr);
    pthread_cond_init(&jobs.rwake, &attr);
    pthread_condattr_destroy(&attr);
}

/* now + ms on the monotonic clock, which the wake-up conditions use */
static struct timespec mono_deadline(long ms)
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

static void kick(void)
{
    pthread_once(&wake_once, wake_init);
    pthread_mutex_lock(&jobs.lock);
    if (jobs.kicks < 1000)
        jobs.kicks++;
    pthread_cond_signal(&jobs.wake);
    pthread_mutex_unlock(&jobs.lock);
}

/* ---- registry ------------------------------------------------------------ */

static const job_handler_t *find_locked(const char *name)
{
    for (size_t i = 0; i < jobs.nhandlers; i++)
        if (strcmp(jobs.handlers[i].name, name) == 0)
            return &jobs.handlers[i];
    return NULL;
}

static plx_status_t add_locked(plx_module_t *m, const char *name,
                               plx_job_fn fn, void *arg)
{
    const job_handler_t *old = find_locked(name);
    job_handler_t *grown;

    if (old) {
        LOG_ERROR("job handler \"%s\" of module \"%s\" is already registered "
                  "by module \"%s\"", name, owner_name(m), owner_name(old->m));
        return PLX_ERR_CONFLICT;
    }
    grown = realloc(jobs.handlers, (jobs.nhandlers + 1) * sizeof *grown);
    if (!grown)
        return PLX_ERR_NOMEM;
    jobs.handlers = grown;
    char *copy = strdup(name);
    if (!copy)
        return PLX_ERR_NOMEM;
    jobs.handlers[jobs.nhandlers++] = (job_handler_t){ m, copy, fn, arg };
    return PLX_OK;
}

plx_status_t core_job_handler_add(plx_module_t *m, const char *name,
                                  plx_job_fn fn, void *arg)
{
    plx_status_t st;

    if (!fn || !name_valid(name)) {
        LOG_ERROR("module \"%s\": invalid job handler name, expected 1 to %d "
                  "of [A-Za-z0-9._:-]", owner_name(m), JOB_NAME_MAX - 1);
        return PLX_ERR_INVALID;
    }
    pthread_mutex_lock(&jobs.lock);
    st = add_locked(m, name, fn, arg);
    pthread_mutex_unlock(&jobs.lock);
    return st;
}

static bool lookup(const char *name, plx_job_fn *fn, void **arg)
{
    pthread_mutex_lock(&jobs.lock);
    const job_handler_t *h = find_locked(name);
    if (h) {
        *fn = h->fn;
        *arg = h->arg;
    }
    pthread_mutex_unlock(&jobs.lock);
    return h != NULL;
}

/* the registered names as a text[] literal: {"a","b"}; caller frees.
 * Names are checked by name_valid, so nothing needs escaping. */
static char *names_literal(size_t *count)
{
    size_t cap, len = 0;
    char *buf;

    pthread_mutex_lock(&jobs.lock);
    *count = jobs.nhandlers;
    cap = 3 + jobs.nhandlers * (JOB_NAME_MAX + 3);
    buf = malloc(cap);
    if (buf) {
        buf[len++] = '{';
        for (size_t i = 0; i < jobs.nhandlers; i++)
            len += (size_t)snprintf(buf + len, cap - len, "%s\"%s\"",
                                    i ? "," : "", jobs.handlers[i].name);
        snprintf(buf + len, cap - len, "}");
    }
    pthread_mutex_unlock(&jobs.lock);
    return buf;
}

/* ---- enqueue ---------------------------------------------------------------- */

static int opt_delay(const plx_job_opts_t *o)
{
    if (!o || o->size < offsetof(plx_job_opts_t, delay_seconds)
                        + sizeof o->delay_seconds)
        return 0;
    return o->delay_seconds;
}

static int opt_max_attempts(const plx_job_opts_t *o)
{
    if (!o || o->size < offsetof(plx_job_opts_t, max_attempts)
                        + sizeof o->max_attempts)
        return 0;
    return o->max_attempts;
}

/* 1.4 fields, read only when the caller's struct has them */
static plx_db_conn_t *opt_conn(const plx_job_opts_t *o)
{
    if (!o || o->size < offsetof(plx_job_opts_t, conn) + sizeof o->conn)
        return NULL;
    return o->conn;
}

static const char *opt_unique_key(const plx_job_opts_t *o)
{
    if (!o || o->size < offsetof(plx_job_opts_t, unique_key)
                        + sizeof o->unique_key)
        return NULL;
    return o->unique_key;
}

static bool key_valid(const char *key)
{
    size_t len = strlen(key);

    return len > 0 && len <= JOB_KEY_MAX && core_utf8_valid(key, len);
}

static int default_max_attempts(void)
{
    long n = core_cfg ? core_config_int(core_cfg, "jobs", "max_attempts") : 5;
    return n >= 1 && n <= JOB_ATTEMPTS_MAX ? (int)n : 5;
}

static char *payload_text(json_t *payload, plx_status_t *st)
{
    char *text = json_dumps(payload ? payload : json_null(),
                            JSON_COMPACT | JSON_ENCODE_ANY);

    *st = PLX_OK;
    if (!text) {
        *st = PLX_ERR_INVALID;
        return NULL;
    }
    if (strlen(text) > JOB_PAYLOAD_MAX) {
        free(text);
        *st = PLX_ERR_TOO_LARGE;
        return NULL;
    }
    return text;
}

static void kick_cb(void *arg)
{
    (void)arg;
    kick();
}

/* The job a unique_key already names: its id into id_out. */
static void existing_id(plx_db_conn_t *c, const char *handler, const char *key,
                        char id_out[37])
{
    static const char sql[] = "SELECT id FROM plexus.jobs"
                              " WHERE handler = $1 AND unique_key = $2";
    const char *params[2] = { handler, key };
    plx_db_res_t *res = NULL;
    plx_status_t st = c ? core_db_exec(c, sql, 2, params, &res)
                        : core_db_query(NULL, sql, 2, params, &res);

    if (st == PLX_OK && id_out && core_db_rows(res) == 1)
        snprintf(id_out, 37, "%s", core_db_value(res, 0, 0));
    core_db_free(res);
}

/* payload is borrowed; id_out may be NULL. The insert NOTIFYs JOB_CHANNEL
 * (at COMMIT when it runs inside a transaction), which wakes an idle
 * worker of every instance. */
plx_status_t core_job_enqueue(plx_module_t *m, const char *handler,
                              json_t *payload, const plx_job_opts_t *opts,
                              char id_out[37])
{
    int delay = opt_delay(opts), max = opt_max_attempts(opts);
    plx_db_conn_t *conn = opt_conn(opts);
    const char *key = opt_unique_key(opts);
    char sdelay[16], smax[16];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (id_out)
        id_out[0] = '\0';
    if (!name_valid(handler) || delay < 0 || delay > JOB_DELAY_MAX || max < 0
        || max > JOB_ATTEMPTS_MAX || (key && !key_valid(key))
        || (conn && !core_db_in_tx(conn)))
        return PLX_ERR_INVALID;
    char *text = payload_text(payload, &st);
    if (!text)
        return st;
    snprintf(sdelay, sizeof sdelay, "%d", delay);
    snprintf(smax, sizeof smax, "%d", max ? max : default_max_attempts());
    const char *params[5] = { handler, text, smax, sdelay, key };
    static const char sql[] =
        "WITH ins AS (INSERT INTO plexus.jobs"
        " (handler, payload, max_attempts, run_at, unique_key)"
        " VALUES ($1, $2::jsonb, $3::integer,"
        " now() + make_interval(secs => $4::integer), $5)"
        " ON CONFLICT (handler, unique_key) WHERE unique_key IS NOT NULL"
        " DO NOTHING RETURNING id)"
        " SELECT id, pg_notify('" JOB_CHANNEL "', '') FROM ins";
    st = conn ? core_db_exec(conn, sql, 5, params, &res)
              : core_db_query(NULL, sql, 5, params, &res);
    free(text);
    if (st == PLX_OK && core_db_rows(res) == 0) {
        /* the key is taken: nothing was added */
        core_db_free(res);
        existing_id(conn, handler, key, id_out);
        return PLX_ERR_CONFLICT;
    }
    if (st == PLX_OK && id_out)
        snprintf(id_out, 37, "%s", core_db_value(res, 0, 0) ? core_db_value(res, 0, 0) : "");
    core_db_free(res);
    if (st != PLX_OK)
        return st;
    core_log(PLX_LOG_DEBUG, owner_name(m), NULL, "enqueued job \"%s\"", handler);
    if (delay == 0 && conn)
        (void)core_db_after_commit(conn, kick_cb, NULL, NULL);
    else if (delay == 0)
        kick();
    return PLX_OK;
}

/* ---- the job seen by a handler ------------------------------------------- */

json_t *core_job_payload(plx_job_t *job)
{
    return job ? job->payload : NULL;
}

const char *core_job_id(plx_job_t *job)
{
    return job ? job->id : NULL;
}

int core_job_attempt(plx_job_t *job)
{
    return job ? job->attempt : 0;
}

/* Copied, cut to JOB_ERROR_MAX bytes on a character boundary. */
void core_job_error_set(plx_job_t *job, const char *message)
{
    size_t len;

    if (!job)
        return;
    free(job->error);
    job->error = NULL;
    if (!message)
        return;
    len = strlen(message);
    if (len > JOB_ERROR_MAX) {
        len = JOB_ERROR_MAX;
        while (len > 0 && ((unsigned char)message[len] & 0xc0) == 0x80)
            len--;
    }
    if (!core_utf8_valid(message, len)) {
        job->error = strdup("error message was not valid UTF-8");
        return;
    }
    job->error = strndup(message, len);
}

/* Extend the lease while this worker still holds the job: the row is
 * still running under our name and attempt (a recurring run: still ours).
 * An expired lease nobody took yet is still ours to extend. */
plx_status_t core_job_lease_renew(plx_job_t *job, int seconds)
{
    char secs[16], attempt[16];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (!job || !job->who || seconds < 1 || seconds > JOB_DELAY_MAX)
        return PLX_ERR_INVALID;
    snprintf(secs, sizeof secs, "%d", seconds);
    snprintf(attempt, sizeof attempt, "%d", job->attempt);
    if (job->recurring) {
        const char *params[4] = { job->recurring->module,
                                  job->recurring->name, job->who, secs };
        st = core_db_query(NULL,
            "UPDATE plexus.recurring_jobs"
            " SET locked_until = now() + make_interval(secs => $4::integer)"
            " WHERE module = $1 AND name = $2 AND locked_by = $3",
            4, params, &res);
    } else {
        const char *params[4] = { job->id, job->who, attempt, secs };
        st = core_db_query(NULL,
            "UPDATE plexus.jobs"
            " SET locked_until = now() + make_interval(secs => $4::integer),"
            " updated_at = now()"
            " WHERE id = $1 AND state = 'running' AND locked_by = $2"
            " AND attempts = $3::integer",
            4, params, &res);
    }
    if (st == PLX_OK && strcmp(core_db_affected(res), "1") != 0) {
        LOG_WARN("job \"%s\" (\"%s\") cannot renew its lease: another "
                 "worker holds it now", job->id, job->handler);
        st = PLX_ERR_GONE;
    }
    core_db_free(res);
    return st;
}

/* ---- claiming and finishing ------------------------------------------------ */

/* PLX_OK: *job filled; PLX_DECLINED: nothing due; else a database error */
static plx_status_t claim(const char *who, plx_job_t *job, char **payload)
{
    char lease[32];
    size_t count;
    char *names = names_literal(&count);
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (!names)
        return PLX_ERR_NOMEM;
    if (count == 0) {
        free(names);
        return PLX_DECLINED;
    }
    snprintf(lease, sizeof lease, "%.3f", (double)jobs.set.lease_ms / 1000.0);
    const char *params[3] = { lease, who, names };
    st = core_db_query(NULL,
        "UPDATE plexus.jobs SET state = 'running', attempts = attempts + 1,"
        " locked_until = now() + make_interval(secs => $1::double precision),"
        " locked_by = $2, updated_at = now()"
        " WHERE id = (SELECT id FROM plexus.jobs"
        "  WHERE handler = ANY($3::text[])"
        "  AND ((state = 'queued' AND run_at <= now())"
        "   OR (state = 'running' AND locked_until < now()))"
        "  ORDER BY run_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING id, handler, payload::text, attempts, max_attempts",
        3, params, &res);
    free(names);
    if (st != PLX_OK || core_db_rows(res) != 1) {
        core_db_free(res);
        return st == PLX_OK ? PLX_DECLINED : st;
    }
    snprintf(job->id, sizeof job->id, "%s", core_db_value(res, 0, 0));
    snprintf(job->handler, sizeof job->handler, "%s", core_db_value(res, 0, 1));
    *payload = strdup(core_db_value(res, 0, 2));
    job->attempt = (int)strtol(core_db_value(res, 0, 3), NULL, 10);
    job->max_attempts = (int)strtol(core_db_value(res, 0, 4), NULL, 10);
    core_db_free(res);
    return *payload ? PLX_OK : PLX_ERR_NOMEM;
}

typedef enum job_outcome { JOB_DONE, JOB_RETRY, JOB_DEAD } job_outcome_t;

static const char *const finish_sql[] = {
    [JOB_DONE] =
        "UPDATE plexus.jobs SET state = 'done', finished_at = now(),"
        " updated_at = now(), locked_until = NULL, locked_by = NULL"
        " WHERE id = $1 AND state = 'running' AND locked_by = $2"
        " AND attempts = $3::integer",
    [JOB_RETRY] =
        "UPDATE plexus.jobs SET state = 'queued', last_error = $4,"
        " run_at = now() + make_interval(secs => $5::double precision),"
        " updated_at = now(), locked_until = NULL, locked_by = NULL"
        " WHERE id = $1 AND state = 'running' AND locked_by = $2"
        " AND attempts = $3::integer",
    [JOB_DEAD] =
        "UPDATE plexus.jobs SET state = 'dead', last_error = $4,"
        " finished_at = now(), updated_at = now(), locked_until = NULL,"
        " locked_by = NULL"
        " WHERE id = $1 AND state = 'running' AND locked_by = $2"
        " AND attempts = $3::integer",
};

/* Write the outcome back, guarded by our lease: if it expired and another
 * worker took the row, its run owns the row now. */
static void finish(const char *who, const plx_job_t *job, job_outcome_t out,
                   const char *error, double delay_s)
{
    char attempt[16], delay[32];
    const char *params[5] = { job->id, who, attempt, error, delay };
    int n = out == JOB_DONE ? 3 : out == JOB_DEAD ? 4 : 5;
    plx_db_res_t *res = NULL;

    snprintf(attempt, sizeof attempt, "%d", job->attempt);
    snprintf(delay, sizeof delay, "%.3f", delay_s);
    if (core_db_query(NULL, finish_sql[out], n, params, &res) != PLX_OK) {
        LOG_WARN("cannot record the outcome of job \"%s\" (\"%s\"); it runs "
                 "again when its lease expires", job->id, job->handler);
        return;
    }
    if (strcmp(core_db_affected(res), "1") != 0)
        LOG_WARN("job \"%s\" (\"%s\") lost its lease while running; another "
                 "worker has it now", job->id, job->handler);
    else
        atomic_fetch_add_explicit(&outcomes[out], 1, memory_order_relaxed);
    core_db_free(res);
}

static void settle(const char *who, const plx_job_t *job, plx_status_t st)
{
    char fallback[96];
    const char *error = job->error;
    long backoff;

    if (st == PLX_OK) {
        finish(who, job, JOB_DONE, NULL, 0);
        return;
    }
    if (!error) {
        snprintf(fallback, sizeof fallback, "handler returned \"%s\"",
                 core_status_str(st));
        error = fallback;
    }
    if (job->attempt >= job->max_attempts) {
        LOG_WARN("job \"%s\" (\"%s\") is dead after %d attempts: %s", job->id,
                 job->handler, job->attempt, error);
        finish(who, job, JOB_DEAD, error, 0);
        return;
    }
    backoff = core_jobs_backoff_ms(jobs.set.backoff_base_ms,
                                   jobs.set.backoff_max_ms, job->attempt);
    LOG_INFO("job \"%s\" (\"%s\") attempt %d of %d failed, retrying in %.3f s: %s",
             job->id, job->handler, job->attempt, job->max_attempts,
             (double)backoff / 1000.0, error);
    finish(who, job, JOB_RETRY, error, (double)backoff / 1000.0);
}

/* Run a claimed job. A row claimed after its last attempt's lease ran out
 * is not run again: it is dead. */
static void execute(const char *who, plx_job_t *job, const char *payload)
{
    plx_job_fn fn = NULL;
    void *arg = NULL;
    json_error_t jerr;
    plx_status_t st;

    if (job->attempt > job->max_attempts) {
        finish(who, job, JOB_DEAD, "lease expired during the last attempt", 0);
        return;
    }
    job->payload = json_loads(payload, JSON_DECODE_ANY, &jerr);
    if (!job->payload) {
        core_job_error_set(job, "payload is not valid JSON");
        st = PLX_ERR_INVALID;
    } else if (!lookup(job->handler, &fn, &arg)) {
        core_job_error_set(job, "handler not registered");
        st = PLX_ERR_INTERNAL;
    } else {
        LOG_DEBUG("running job \"%s\" (\"%s\") attempt %d", job->id,
                  job->handler, job->attempt);
        st = fn(job, arg);
    }
    settle(who, job, st);
    json_decref(job->payload);
    job->payload = NULL;
    free(job->error);
    job->error = NULL;
}

/* PLX_OK: ran one job; PLX_DECLINED: nothing due; else a database error */
static plx_status_t run_one(const char *who)
{
    plx_job_t job;
    char *payload = NULL;
    plx_status_t st;

    memset(&job, 0, sizeof job);
    job.who = who;
    st = claim(who, &job, &payload);
    if (st == PLX_OK)
        execute(who, &job, payload);
    free(payload);
    return st;
}

/* ---- jobs nobody here can run --------------------------------------------- */

static bool logged_locked(const char *name)
{
    for (size_t i = 0; i < jobs.nlogged; i++)
        if (strcmp(jobs.logged[i], name) == 0)
            return true;
    return false;
}

static void log_unknown(const char *name)
{
    bool fresh;

    pthread_mutex_lock(&jobs.lock);
    fresh = !logged_locked(name) && jobs.nlogged < JOB_UNKNOWN_MAX;
    if (fresh)
        jobs.logged[jobs.nlogged] = strdup(name);
    if (fresh && jobs.logged[jobs.nlogged])
        jobs.nlogged++;
    pthread_mutex_unlock(&jobs.lock);
    if (fresh)
        LOG_WARN("job handler \"%s\" is not registered in this process; its "
                 "jobs stay queued for an instance that has it", name);
}

static void scan_unknown(void)
{
    size_t count;
    char *names = names_literal(&count);
    plx_db_res_t *res = NULL;

    if (!names)
        return;
    const char *params[1] = { names };
    plx_status_t st = core_db_query(NULL,
        "SELECT handler FROM plexus.jobs WHERE state = 'queued'"
        " AND run_at <= now() AND NOT (handler = ANY($1::text[])) LIMIT 100",
        1, params, &res);
    free(names);
    for (int i = 0; st == PLX_OK && i < core_db_rows(res); i++)
        log_unknown(core_db_value(res, i, 0));
    core_db_free(res);
}

/* ---- workers ---------------------------------------------------------------- */

static void wait_for_work(long ms)
{
    struct timespec deadline = mono_deadline(ms);

    pthread_mutex_lock(&jobs.lock);
    while (jobs.kicks == 0 && !atomic_load(&jobs.stopping))
        if (pthread_cond_timedwait(&jobs.wake, &jobs.lock, &deadline)
            == ETIMEDOUT)
            break;
    if (jobs.kicks > 0)
        jobs.kicks--;
    pthread_mutex_unlock(&jobs.lock);
}

static void *worker_main(void *arg)
{
    int idx = (int)(intptr_t)arg;
    char who[JOB_WHO_MAX];
    double next_scan = 0;

    snprintf(who, sizeof who, "%s/%d", jobs.instance, idx);
    while (!atomic_load(&jobs.stopping)) {
        plx_status_t st = run_one(who);
        if (st == PLX_OK)
            continue;
        if (idx == 0 && st == PLX_DECLINED && core_now() >= next_scan) {
            scan_unknown();
            next_scan = core_now() + JOB_UNKNOWN_EVERY;
        }
        wait_for_work(jobs.set.poll_ms);
    }
    return NULL;
}

/* ---- recurring jobs --------------------------------------------------------
 *
 * plexus.recurring_jobs holds one row per module and name with the next
 * time it is due. One thread per instance (when it runs workers) claims a
 * due row the way workers claim jobs: an UPDATE of the row found with
 * FOR UPDATE SKIP LOCKED, which leases it (locked_until, as a job) and
 * moves next_run_at to the first slot of the schedule after now. So two
 * instances never run it at once, each period fires once, and periods
 * missed while no instance ran are skipped rather than run in a burst.
 * The function runs with no transaction held; then the lease is released.
 */

plx_status_t core_job_recurring_add(plx_module_t *m, const char *name,
                                    int every_seconds, plx_job_fn fn,
                                    void *arg)
{
    const char *mod = owner_name(m);
    job_recurring_t *r;

    if (!fn || !name_valid(name) || every_seconds < 1
        || every_seconds > JOB_DELAY_MAX || strlen(mod) >= sizeof r->module) {
        LOG_ERROR("module \"%s\": job_recurring_add: expected a name of 1 to "
                  "%d of [A-Za-z0-9._:-], 1 to %d seconds and a function",
                  mod, JOB_NAME_MAX - 1, JOB_DELAY_MAX);
        return PLX_ERR_INVALID;
    }
    if (jobs.rthread_on) {
        LOG_ERROR("module \"%s\": job_recurring_add(\"%s\"): only during init",
                  mod, name);
        return PLX_ERR_INVALID;
    }
    for (size_t i = 0; i < jobs.nrecurring; i++)
        if (strcmp(jobs.recurring[i].module, mod) == 0
            && strcmp(jobs.recurring[i].name, name) == 0) {
            LOG_ERROR("module \"%s\": recurring job \"%s\" registered twice",
                      mod, name);
            return PLX_ERR_CONFLICT;
        }
    if (jobs.nrecurring >= JOB_RECURRING_MAX) {
        LOG_ERROR("module \"%s\": more than %d recurring jobs", mod,
                  JOB_RECURRING_MAX);
        return PLX_ERR_TOO_LARGE;
    }
    r = &jobs.recurring[jobs.nrecurring++];
    *r = (job_recurring_t){ .m = m, .every = every_seconds, .fn = fn,
                            .arg = arg };
    snprintf(r->module, sizeof r->module, "%s", mod);
    snprintf(r->name, sizeof r->name, "%s", name);
    return PLX_OK;
}

/* "{"module/name",...}": module names are plain and names pass
 * name_valid, so nothing needs escaping */
static char *recurring_literal(void)
{
    size_t cap = 3 + jobs.nrecurring * (sizeof jobs.recurring[0].module
                                        + JOB_NAME_MAX + 4), len = 0;
    char *buf = malloc(cap);

    if (!buf)
        return NULL;
    buf[len++] = '{';
    for (size_t i = 0; i < jobs.nrecurring; i++)
        len += (size_t)snprintf(buf + len, cap - len, "%s\"%s/%s\"",
                                i ? "," : "", jobs.recurring[i].module,
                                jobs.recurring[i].name);
    snprintf(buf + len, cap - len, "}");
    return buf;
}

/* Make sure every registered row exists; its schedule is kept. */
static bool recurring_register(void)
{
    for (size_t i = 0; i < jobs.nrecurring; i++) {
        char every[16];
        const job_recurring_t *r = &jobs.recurring[i];
        const char *params[3] = { r->module, r->name, every };

        snprintf(every, sizeof every, "%d", r->every);
        if (core_db_query(NULL,
                "INSERT INTO plexus.recurring_jobs (module, name, every_seconds)"
                " VALUES ($1, $2, $3::integer) ON CONFLICT (module, name)"
                " DO UPDATE SET every_seconds = EXCLUDED.every_seconds",
                3, params, NULL) != PLX_OK)
            return false;
    }
    return true;
}

static const job_recurring_t *recurring_find(const char *module,
                                             const char *name)
{
    for (size_t i = 0; i < jobs.nrecurring; i++)
        if (strcmp(jobs.recurring[i].module, module) == 0
            && strcmp(jobs.recurring[i].name, name) == 0)
            return &jobs.recurring[i];
    return NULL;
}

/* Claim and run one due recurring job. PLX_OK: ran one; PLX_DECLINED:
 * none due; else a database error. */
static plx_status_t recurring_run_one(const char *who, const char *keys)
{
    char lease[32], error[96];
    plx_db_res_t *res = NULL;
    plx_job_t job;
    plx_status_t st;

    snprintf(lease, sizeof lease, "%.3f", (double)jobs.set.lease_ms / 1000.0);
    const char *params[3] = { lease, who, keys };
    st = core_db_query(NULL,
        "UPDATE plexus.recurring_jobs r SET"
        " locked_until = now() + make_interval(secs => $1::double precision),"
        " locked_by = $2,"
        " next_run_at = r.next_run_at + make_interval(secs => r.every_seconds"
        "  * (floor(extract(epoch FROM now() - r.next_run_at)"
        "  / r.every_seconds) + 1))"
        " WHERE (r.module, r.name) = (SELECT module, name"
        "  FROM plexus.recurring_jobs"
        "  WHERE module || '/' || name = ANY($3::text[])"
        "  AND next_run_at <= now()"
        "  AND (locked_until IS NULL OR locked_until < now())"
        "  ORDER BY next_run_at LIMIT 1 FOR UPDATE SKIP LOCKED)"
        " RETURNING r.module, r.name",
        3, params, &res);
    if (st != PLX_OK || core_db_rows(res) != 1) {
        core_db_free(res);
        return st == PLX_OK ? PLX_DECLINED : st;
    }
    const job_recurring_t *r = recurring_find(core_db_value(res, 0, 0),
                                              core_db_value(res, 0, 1));
    core_db_free(res);
    if (!r)
        return PLX_ERR_INTERNAL;
    memset(&job, 0, sizeof job);
    if (core_uuid_new(4, job.id) != PLX_OK)
        return PLX_ERR_INTERNAL;
    snprintf(job.handler, sizeof job.handler, "%s", r->name);
    job.attempt = job.max_attempts = 1;
    job.who = who;
    job.recurring = r;
    LOG_DEBUG("running recurring job \"%s/%s\"", r->module, r->name);
    st = r->fn(&job, r->arg);
    if (st != PLX_OK && !job.error) {
        snprintf(error, sizeof error, "returned \"%s\"", core_status_str(st));
        core_job_error_set(&job, error);
    }
    if (st != PLX_OK)
        core_log(PLX_LOG_WARN, r->module, NULL, "recurring job \"%s\" failed: "
                 "%s", r->name, job.error ? job.error : "");
    const char *done[4] = { r->module, r->name, who, job.error };
    if (core_db_query(NULL,
            "UPDATE plexus.recurring_jobs SET locked_until = NULL,"
            " locked_by = NULL, last_run_at = now(), last_error = $4"
            " WHERE module = $1 AND name = $2 AND locked_by = $3",
            4, done, NULL) != PLX_OK)
        LOG_WARN("cannot release recurring job \"%s/%s\"; it is free again "
                 "when its lease expires", r->module, r->name);
    free(job.error);
    return PLX_OK;
}

/* ms until the next recurring job may be due, in [20, 5000] */
static long recurring_wait_ms(const char *keys)
{
    plx_db_res_t *res = NULL;
    const char *params[1] = { keys };
    long ms = 5000;

    if (core_db_query(NULL,
            "SELECT extract(epoch FROM min(greatest(next_run_at,"
            " coalesce(locked_until, next_run_at))) - now())"
            " FROM plexus.recurring_jobs"
            " WHERE module || '/' || name = ANY($1::text[])",
            1, params, &res) == PLX_OK && core_db_value(res, 0, 0)) {
        double s = strtod(core_db_value(res, 0, 0), NULL);
        ms = s * 1000.0 < 5000.0 ? (long)(s * 1000.0) + 1 : 5000;
    }
    core_db_free(res);
    return ms < 20 ? 20 : ms;
}

static void *recurring_main(void *unused)
{
    char who[JOB_WHO_MAX];
    char *keys = recurring_literal();
    bool registered = false;

    (void)unused;
    snprintf(who, sizeof who, "%s/recurring", jobs.instance);
    while (keys && !atomic_load(&jobs.stopping)) {
        long ms = 1000;
        if (!registered)
            registered = recurring_register();
        if (registered) {
            if (recurring_run_one(who, keys) == PLX_OK)
                continue;
            ms = recurring_wait_ms(keys);
        }
        struct timespec deadline = mono_deadline(ms);
        pthread_mutex_lock(&jobs.lock);
        while (!atomic_load(&jobs.stopping)
               && pthread_cond_timedwait(&jobs.rwake, &jobs.lock, &deadline)
                  != ETIMEDOUT)
            ;
        pthread_mutex_unlock(&jobs.lock);
    }
    free(keys);
    return NULL;
}

static void on_jobs_notify(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    (void)payload;
    (void)arg;
    kick();
}

static bool read_settings(core_config_t *cfg, job_settings_t *s)
{
    long workers = core_config_int(cfg, "jobs", "workers");

    if (workers < 0 || workers > JOB_WORKERS_MAX) {
        LOG_ERROR("jobs.workers: expected 0 to %d, found %ld", JOB_WORKERS_MAX,
                  workers);
        return false;
    }
    s->workers = (int)workers;
    s->poll_ms = core_config_ms(cfg, "jobs", "poll_interval");
    s->lease_ms = core_config_ms(cfg, "jobs", "lease");
    s->backoff_base_ms = core_config_ms(cfg, "jobs", "backoff_base");
    s->backoff_max_ms = core_config_ms(cfg, "jobs", "backoff_max");
    if (s->poll_ms < 10)
        s->poll_ms = 10;
    if (s->lease_ms < 1000) {
        LOG_ERROR("jobs.lease: expected at least 1s, found %ld ms", s->lease_ms);
        return false;
    }
    return true;
}

bool core_jobs_start(core_config_t *cfg)
{
    char host[48] = "localhost";

    if (jobs.threads)
        return true;
    if (!cfg || !read_settings(cfg, &jobs.set))
        return false;
    pthread_once(&wake_once, wake_init);
    gethostname(host, sizeof host - 1);
    host[sizeof host - 1] = '\0';
    snprintf(jobs.instance, sizeof jobs.instance, "%s:%ld", host,
             (long)getpid());
    atomic_store(&jobs.stopping, false);
    jobs.threads = calloc((size_t)jobs.set.workers + 1, sizeof *jobs.threads);
    if (!jobs.threads)
        return false;
    for (int i = 0; i < jobs.set.workers; i++) {
        int rc = pthread_create(&jobs.threads[i], NULL, worker_main,
                                (void *)(intptr_t)i);
        if (rc != 0) {
            LOG_ERROR("cannot start job worker %d: %s", i, strerror(rc));
            core_jobs_stop();
            return false;
        }
        jobs.nthreads++;
    }
    if (jobs.nthreads > 0
        && core_db_listen(NULL, JOB_CHANNEL, on_jobs_notify, NULL) != PLX_OK) {
        core_jobs_stop();
        return false;
    }
    if (jobs.nthreads > 0 && jobs.nrecurring > 0) {
        int rc = pthread_create(&jobs.rthread, NULL, recurring_main, NULL);
        if (rc != 0) {
            LOG_ERROR("cannot start the recurring job thread: %s",
                      strerror(rc));
            core_jobs_stop();
            return false;
        }
        jobs.rthread_on = true;
    }
    LOG_INFO("%d job worker%s started", jobs.nthreads,
             jobs.nthreads == 1 ? "" : "s");
    return true;
}

void core_jobs_outcomes(uint64_t *done, uint64_t *retried, uint64_t *dead)
{
    *done = atomic_load_explicit(&outcomes[JOB_DONE], memory_order_relaxed);
    *retried = atomic_load_explicit(&outcomes[JOB_RETRY], memory_order_relaxed);
    *dead = atomic_load_explicit(&outcomes[JOB_DEAD], memory_order_relaxed);
}

/* Wakes every worker and waits for them: a running handler finishes
 * first. Safe to call when never started. */
void core_jobs_stop(void)
{
    if (!jobs.threads)
        return;
    pthread_once(&wake_once, wake_init);
    atomic_store(&jobs.stopping, true);
    pthread_mutex_lock(&jobs.lock);
    pthread_cond_broadcast(&jobs.wake);
    pthread_cond_broadcast(&jobs.rwake);
    pthread_mutex_unlock(&jobs.lock);
    for (int i = 0; i < jobs.nthreads; i++)
        pthread_join(jobs.threads[i], NULL);
    if (jobs.rthread_on)
        pthread_join(jobs.rthread, NULL);
    jobs.rthread_on = false;
    free(jobs.threads);
    jobs.threads = NULL;
    jobs.nthreads = 0;
    pthread_mutex_lock(&jobs.lock);
    for (size_t i = 0; i < jobs.nlogged; i++)
        free(jobs.logged[i]);
    jobs.nlogged = 0;
    jobs.kicks = 0;
    pthread_mutex_unlock(&jobs.lock);
}
