/*
 * jobs.h - durable jobs in PostgreSQL (plexus.jobs)
 *
 * Enqueue inserts a row; worker threads claim due rows with
 * FOR UPDATE SKIP LOCKED, run the handler outside the claiming transaction
 * (the row is leased with locked_until, so a crashed instance's jobs come
 * back), then mark done, or reschedule with exponential backoff, or dead after
 * max_attempts with the last error.
 */
#ifndef PLEXUS_JOBS_H
#define PLEXUS_JOBS_H

#include "conf.h"

plx_status_t core_job_handler_add(plx_module_t *m, const char *name,
                                  plx_job_fn fn, void *arg);
plx_status_t core_job_enqueue(plx_module_t *m, const char *handler,
                              json_t *payload, const plx_job_opts_t *opts,
                              char id_out[37]);
json_t *core_job_payload(plx_job_t *job);
const char *core_job_id(plx_job_t *job);
int core_job_attempt(plx_job_t *job);
void core_job_error_set(plx_job_t *job, const char *message);
plx_status_t core_job_lease_renew(plx_job_t *job, int seconds);
plx_status_t core_job_recurring_add(plx_module_t *m, const char *name,
                                    int every_seconds, plx_job_fn fn,
                                    void *arg);

/* [jobs] workers, poll_interval, ...; registers the wake-up channel with
 * core_db_listen, so it runs before core_listen_start */
bool core_jobs_start(core_config_t *cfg);
void core_jobs_stop(void);                 /* waits for running handlers */
/* outcomes written back by this process since start (core_stats): done,
 * queued again for a retry, dead */
void core_jobs_outcomes(uint64_t *done, uint64_t *retried, uint64_t *dead);

#endif
