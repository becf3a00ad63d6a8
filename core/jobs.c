/*
 * jobs.c - durable background jobs in plexus.jobs
 *
 * Modules register handlers by name (names are global: "example.record")
 * and enqueue jobs with a JSON payload. The rows live in PostgreSQL, so
 * any instance may run any job, and a crashed instance's jobs come back.
 *
 * A pool of [jobs] workers threads polls every poll_interval (an enqueue in
 * this process wakes one early). A worker claims one due row in a single
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
};

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
    pthread_condattr_destroy(&attr);
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

/* payload is borrowed; id_out may be NULL */
plx_status_t core_job_enqueue(plx_module_t *m, const char *handler,
                              json_t *payload, const plx_job_opts_t *opts,
                              char id_out[37])
{
    int delay = opt_delay(opts), max = opt_max_attempts(opts);
    char sdelay[16], smax[16];
    plx_db_res_t *res = NULL;
    plx_status_t st;

    if (!name_valid(handler) || delay < 0 || delay > JOB_DELAY_MAX || max < 0
        || max > JOB_ATTEMPTS_MAX)
        return PLX_ERR_INVALID;
    char *text = payload_text(payload, &st);
    if (!text)
        return st;
    snprintf(sdelay, sizeof sdelay, "%d", delay);
    snprintf(smax, sizeof smax, "%d", max ? max : default_max_attempts());
    const char *params[4] = { handler, text, smax, sdelay };
    st = core_db_query(NULL,
        "INSERT INTO plexus.jobs (handler, payload, max_attempts, run_at)"
        " VALUES ($1, $2::jsonb, $3::integer,"
        " now() + make_interval(secs => $4::integer)) RETURNING id",
        4, params, &res);
    free(text);
    if (st == PLX_OK && id_out)
        snprintf(id_out, 37, "%s", core_db_value(res, 0, 0) ? core_db_value(res, 0, 0) : "");
    core_db_free(res);
    if (st != PLX_OK)
        return st;
    core_log(PLX_LOG_DEBUG, owner_name(m), NULL, "enqueued job \"%s\"", handler);
    if (delay == 0)
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
    struct timespec deadline;

    clock_gettime(CLOCK_MONOTONIC, &deadline);
    deadline.tv_sec += ms / 1000;
    deadline.tv_nsec += (ms % 1000) * 1000000L;
    if (deadline.tv_nsec >= 1000000000L) {
        deadline.tv_sec++;
        deadline.tv_nsec -= 1000000000L;
    }
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
    pthread_mutex_unlock(&jobs.lock);
    for (int i = 0; i < jobs.nthreads; i++)
        pthread_join(jobs.threads[i], NULL);
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
