/*
 * db.h - PostgreSQL: a bounded connection pool with reconnect
 *
 * Connections are made lazily and re-made when found broken; waiting for a
 * free one is bounded by [database] acquire_timeout. Each statement runs
 * with statement_timeout set on the connection. When the database is away
 * every call fails fast with PLX_ERR_DB and the HTTP layer answers 503 with
 * Retry-After; nothing needs restarting when it returns.
 */
#ifndef PLEXUS_DB_H
#define PLEXUS_DB_H

#include "conf.h"

#include <libpq-fe.h>

struct plx_db_res {
    PGresult *pg;
    char     *error;   /* message when the statement failed */
};

bool core_db_setup(core_config_t *cfg);   /* reads [database]; connects nothing */
void core_db_shutdown(void);
bool core_db_ping(int timeout_ms);        /* SELECT 1 through the pool */

/* Results: PLX_OK, and *out (if out is not NULL) holds the rows. On
 * PLX_ERR_CONFLICT (SQLSTATE class 23, a constraint violation) *out is set
 * too, with the server's message in core_db_error(); freed the same way.
 * Any other failure leaves *out NULL: PLX_ERR_DB (database away, pool
 * exhausted), PLX_ERR_TIMEOUT (statement_timeout), PLX_AGAIN (40001
 * serialization failure, 40P01 deadlock: run the transaction again),
 * PLX_ERR_INTERNAL (other SQL errors, logged with their SQLSTATE). core_db_query frees *out when r
 * ends; with r NULL, and always for core_db_exec, the caller frees it. */
plx_status_t core_db_query(plx_request_t *r, const char *sql, int n,
                           const char *const *params, plx_db_res_t **out);
plx_db_conn_t *core_db_acquire(int timeout_ms);
void core_db_release(plx_db_conn_t *c);
plx_status_t core_db_exec(plx_db_conn_t *c, const char *sql, int n,
                          const char *const *params, plx_db_res_t **out);
PGconn *core_db_pgconn(plx_db_conn_t *c);  /* for the migration runner, LISTEN */
int core_db_rows(const plx_db_res_t *res);
int core_db_cols(const plx_db_res_t *res);
const char *core_db_value(const plx_db_res_t *res, int row, int col);
int core_db_col(const plx_db_res_t *res, const char *name);
const char *core_db_affected(const plx_db_res_t *res);
const char *core_db_error(const plx_db_res_t *res);
void core_db_free(plx_db_res_t *res);

typedef struct core_db_stats {
    int    size;          /* configured maximum */
    int    open;          /* connections made */
    int    in_use;
    uint64_t acquired;    /* total successful acquisitions */
    uint64_t timeouts;    /* acquisitions that gave up */
    double wait_seconds;  /* total time spent waiting */
} core_db_stats_t;
void core_db_stats(core_db_stats_t *out);

/* A dedicated connection outside the pool (migrations, LISTEN). */
PGconn *core_db_connect_direct(void);

/* Transactions (db_tx): see plx_api_t. */
plx_status_t core_db_tx(plx_request_t *r, plx_isolation_t iso, plx_tx_fn fn,
                        void *arg);
/* c was handed out by core_db_tx and its function is running */
bool core_db_in_tx(const plx_db_conn_t *c);
/* Queue run(arg) for after the COMMIT of c's transaction (c inside
 * core_db_tx); drop(arg) (may be NULL) runs last whether it committed or
 * not, and frees arg. At most 1,024 per transaction: PLX_ERR_TOO_LARGE;
 * PLX_ERR_INVALID outside db_tx. Nothing is queued on failure. */
plx_status_t core_db_after_commit(plx_db_conn_t *c, void (*run)(void *arg),
                                  void (*drop)(void *arg), void *arg);

/* listen.c: LISTEN/NOTIFY over one core connection (see there) */
bool core_db_channel_valid(const char *channel);
plx_status_t core_db_listen(plx_module_t *m, const char *channel,
                            plx_notify_fn fn, void *arg);
plx_status_t core_db_notify(plx_db_conn_t *c, const char *channel,
                            const char *payload);
bool core_listen_start(void);   /* no-op when nothing listens */
void core_listen_stop(void);

#endif
