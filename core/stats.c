/*
 * stats.c - the core's counters, gathered for the metrics module
 *
 * The metrics module lives outside the core and sees it only through the
 * API table; plx_core_stats() is its one window onto the HTTP layer, the
 * database pool and the job queue. Everything here is read at scrape time:
 * the counters themselves live with their subsystems (atomics in http.c and
 * jobs.c, the pool's own figures in db.c), so this file adds nothing to any
 * request's path.
 *
 * The caller's struct may be older (shorter) than ours: out->size says how
 * much of it exists, and a field past it is never written.
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "http.h"
#include "jobs.h"

#include <stdlib.h>
#include <time.h>

/* wall-clock time the process started, taken before main() runs */
static double process_start;

__attribute__((constructor)) static void stats_mark_start(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    process_start = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* does field f of the caller's struct exist? */
#define FITS(out, f) \
    ((out)->size >= offsetof(plx_core_stats_t, f) + sizeof((out)->f))
#define SET(out, f, v)           \
    do {                         \
        if (FITS(out, f))        \
            (out)->f = (v);      \
    } while (0)

/* Jobs waiting and running across every instance. Both counts use the
 * partial indexes on state, so the done and dead rows do not slow a
 * scrape. -1 when the database cannot tell. */
static void jobs_depth(int64_t *queued, int64_t *running)
{
    plx_db_res_t *res = NULL;
    plx_status_t st = core_db_query(NULL,
        "SELECT (SELECT count(*) FROM plexus.jobs WHERE state = 'queued'),"
        " (SELECT count(*) FROM plexus.jobs WHERE state = 'running')",
        0, NULL, &res);

    *queued = *running = -1;
    if (st == PLX_OK && core_db_rows(res) == 1) {
        *queued = strtoll(core_db_value(res, 0, 0), NULL, 10);
        *running = strtoll(core_db_value(res, 0, 1), NULL, 10);
    }
    core_db_free(res);
}

static void fill_db(plx_core_stats_t *out)
{
    core_db_stats_t db;

    core_db_stats(&db);
    SET(out, db_pool_size, db.size);
    SET(out, db_pool_open, db.open);
    SET(out, db_pool_in_use, db.in_use);
    SET(out, db_acquired, db.acquired);
    SET(out, db_acquire_timeouts, db.timeouts);
    SET(out, db_wait_seconds, db.wait_seconds);
}

static void fill_jobs(plx_core_stats_t *out)
{
    uint64_t done, retried, dead;
    int64_t queued, running;

    core_jobs_outcomes(&done, &retried, &dead);
    SET(out, jobs_done, done);
    SET(out, jobs_retried, retried);
    SET(out, jobs_dead, dead);
    if (!FITS(out, jobs_queued))
        return;   /* spare the database a query nobody reads */
    jobs_depth(&queued, &running);
    SET(out, jobs_queued, queued);
    SET(out, jobs_running, running);
}

void core_stats(plx_core_stats_t *out)
{
    if (!out || out->size < sizeof(out->size))
        return;
    SET(out, start_time, process_start);
    SET(out, requests_in_flight, (uint64_t)core_http_in_flight());
    SET(out, sse_open, (uint64_t)core_sse_open_count());
    SET(out, ws_open, (uint64_t)core_ws_open_count());
    fill_db(out);
    fill_jobs(out);
}
