/*
 * collect.c - what is read when /metrics is scraped, not counted as it
 * happens: the core's gauges (through plx_core_stats), the process (from
 * /proc, the way client libraries do it on Linux), the build and the
 * loaded modules
 *
 * Each family is written whole right here, so nothing of this file sits on
 * a request's path. A source that cannot be read (no /proc, the database
 * away for the job queue depth) leaves its families out rather than
 * reporting a made-up 0.
 */
#include "metrics.h"

#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

#define STAT_LINE_MAX 4096
#define MODULES_MAX   1024

static void gauge(metrics_buf_t *b, const char *name, const char *help, double v)
{
    metrics_put_header(b, name, "gauge", help);
    metrics_put_sample(b, name, NULL, 0, NULL, NULL, NULL, v);
}

static void counter(metrics_buf_t *b, const char *name, const char *help,
                    double v)
{
    metrics_put_header(b, name, "counter", help);
    metrics_put_sample(b, name, NULL, 0, NULL, NULL, NULL, v);
}

/* ---- the core --------------------------------------------------------------- */

static void write_jobs(metrics_buf_t *b, const plx_core_stats_t *st)
{
    static const char *const outcome[] = { "outcome", NULL };

    if (st->jobs_queued >= 0)
        gauge(b, "plexus_jobs_queued", "Jobs waiting to run, all instances "
              "(delayed ones included).", (double)st->jobs_queued);
    if (st->jobs_running >= 0)
        gauge(b, "plexus_jobs_running", "Jobs running now, all instances.",
              (double)st->jobs_running);
    metrics_put_header(b, "plexus_jobs_completed_total", "counter",
                       "Job runs this process finished, by outcome: done, "
                       "retried (queued again) or dead.");
    metrics_put_sample(b, "plexus_jobs_completed_total", NULL, 1, outcome,
                       (const char *const[]){ "dead" }, NULL, (double)st->jobs_dead);
    metrics_put_sample(b, "plexus_jobs_completed_total", NULL, 1, outcome,
                       (const char *const[]){ "done" }, NULL, (double)st->jobs_done);
    metrics_put_sample(b, "plexus_jobs_completed_total", NULL, 1, outcome,
                       (const char *const[]){ "retried" }, NULL,
                       (double)st->jobs_retried);
}

static void write_db(metrics_buf_t *b, const plx_core_stats_t *st)
{
    gauge(b, "plexus_db_pool_size", "Connections the database pool may open.",
          st->db_pool_size);
    gauge(b, "plexus_db_pool_connections_open", "Connections the pool has open.",
          st->db_pool_open);
    gauge(b, "plexus_db_pool_in_use", "Pool connections lent out now.",
          st->db_pool_in_use);
    counter(b, "plexus_db_pool_acquired_total", "Connections lent out by "
            "the pool since start.", (double)st->db_acquired);
    counter(b, "plexus_db_pool_wait_seconds_total", "Time spent waiting for "
            "a free pool connection.", st->db_wait_seconds);
    counter(b, "plexus_db_pool_acquire_timeouts_total", "Waits for a pool "
            "connection that gave up.", (double)st->db_acquire_timeouts);
}

static void write_core(metrics_buf_t *b, const plx_core_stats_t *st)
{
    gauge(b, "plexus_http_requests_in_flight", "HTTP requests being handled "
          "now (this scrape included).", (double)st->requests_in_flight);
    gauge(b, "plexus_sse_streams_open", "Server-Sent Events streams open.",
          (double)st->sse_open);
    gauge(b, "plexus_websocket_connections_open", "WebSocket connections open.",
          (double)st->ws_open);
    write_db(b, st);
    write_jobs(b, st);
}

/* ---- the process ------------------------------------------------------------ */

bool metrics_proc_stat_parse(const char *line, long ticks, long page_size,
                             double boot_time, metrics_proc_t *out)
{
    /* the command name may hold spaces and ')': fields start after the last */
    const char *p = line ? strrchr(line, ')') : NULL;
    unsigned long utime, stime, vsize;
    unsigned long long start;
    long threads, rss;

    if (!p || ticks <= 0 || page_size <= 0)
        return false;
    /* fields 3..24: state ppid pgrp session tty tpgid flags minflt cminflt
     * majflt cmajflt utime stime cutime cstime priority nice num_threads
     * itrealvalue starttime vsize rss */
    if (sscanf(p + 1, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu"
               " %*d %*d %*d %*d %ld %*d %llu %lu %ld",
               &utime, &stime, &threads, &start, &vsize, &rss) != 6)
        return false;
    out->cpu_seconds = (double)(utime + stime) / (double)ticks;
    out->threads = (double)threads;
    out->virtual_bytes = (double)vsize;
    out->resident_bytes = (double)rss * (double)page_size;
    out->start_time = boot_time > 0 ? boot_time + (double)start / (double)ticks : 0;
    return true;
}

/* btime of /proc/stat: when the machine booted, unix seconds */
static double boot_time(void)
{
    char line[256];
    double t = 0;
    FILE *f = fopen("/proc/stat", "re");

    if (!f)
        return 0;
    while (fgets(line, sizeof line, f))
        if (strncmp(line, "btime ", 6) == 0) {
            t = strtod(line + 6, NULL);
            break;
        }
    fclose(f);
    return t;
}

static bool proc_read(metrics_proc_t *out)
{
    char line[STAT_LINE_MAX];
    FILE *f = fopen("/proc/self/stat", "re");
    bool ok;

    if (!f)
        return false;
    ok = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    return ok && metrics_proc_stat_parse(line, sysconf(_SC_CLK_TCK),
                                         sysconf(_SC_PAGESIZE), boot_time(), out);
}

/* -1 when /proc/self/fd cannot be read */
static double open_fds(void)
{
    DIR *d = opendir("/proc/self/fd");
    struct dirent *e;
    double n = 0;

    if (!d)
        return -1;
    while ((e = readdir(d)))
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n - 1;   /* not the one opendir holds */
}

static void write_process(metrics_buf_t *b, double fallback_start)
{
    metrics_proc_t p = { 0 };
    struct rlimit rl;
    double fds = open_fds();

    if (proc_read(&p)) {
        counter(b, "process_cpu_seconds_total", "User and system CPU time "
                "spent.", p.cpu_seconds);
        gauge(b, "process_resident_memory_bytes", "Resident memory size.",
              p.resident_bytes);
        gauge(b, "process_virtual_memory_bytes", "Virtual memory size.",
              p.virtual_bytes);
        gauge(b, "process_threads", "Threads in the process.", p.threads);
    }
    if (fds >= 0)
        gauge(b, "process_open_fds", "Open file descriptors.", fds);
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur != RLIM_INFINITY)
        gauge(b, "process_max_fds", "Most file descriptors the process may "
              "open.", (double)rl.rlim_cur);
    gauge(b, "process_start_time_seconds", "When the process started, unix "
          "seconds.", p.start_time > 0 ? p.start_time : fallback_start);
}

/* ---- build and modules ---------------------------------------------------- */

static void write_build(metrics_buf_t *b)
{
    static const char *const names[] = { "version", "abi" };
    char abi[24];

    snprintf(abi, sizeof abi, "%u.%u", (unsigned)plx_api->abi_major,
             (unsigned)plx_api->abi_minor);
    metrics_put_header(b, "plexus_build_info", "gauge", "The running core: "
                       "its version and plugin ABI. Always 1.");
    metrics_put_sample(b, "plexus_build_info", NULL, 2, names,
                       (const char *const[]){ plx_api->core_version, abi },
                       NULL, 1);
}

static void write_modules(metrics_buf_t *b)
{
    static const char *const names[] = { "name", "version" };
    plx_module_view_t v;

    if (!PLX_API_HAS(plx_api, module_at))
        return;
    metrics_put_header(b, "plexus_module_info", "gauge", "Loaded modules and "
                       "their versions. Always 1.");
    for (size_t i = 0; i < MODULES_MAX; i++) {
        memset(&v, 0, sizeof v);
        v.size = sizeof v;
        if (plx_module_at(i, &v) != PLX_OK)
            break;
        metrics_put_sample(b, "plexus_module_info", NULL, 2, names,
                           (const char *const[]){ v.name, v.version }, NULL, 1);
    }
}

void metrics_collect_write(metrics_buf_t *b)
{
    plx_core_stats_t st;

    memset(&st, 0, sizeof st);
    st.size = sizeof st;
    st.jobs_queued = st.jobs_running = -1;
    plx_core_stats(&st);
    write_build(b);
    write_modules(b);
    write_core(b, &st);
    write_process(b, st.start_time);
}
