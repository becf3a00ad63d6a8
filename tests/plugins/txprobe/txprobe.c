/*
 * txprobe: a test module for the database half of ABI 1.4 - transactions,
 * LISTEN/NOTIFY, durable events and the new job features - so the
 * integration tests can drive each from outside and read what happened
 * from its tables (txprobe.*) and from GET /api/v1/txprobe/state.
 *
 *   POST /api/v1/txprobe/commit    {"value", "fail", "commit_fail"}: db_tx
 *        inserting an item, emitting "txprobe.created" with event_emit_tx,
 *        a db_notify on "txprobe" and enqueueing a job on the transaction
 *        (unique_key "item:<value>"); "fail": the function then returns
 *        PLX_ERR_CONFLICT (409 rolled_back); "commit_fail": it breaks a
 *        deferred constraint, so COMMIT fails (409 rolled_back);
 *        "commit_kill": the session ends during COMMIT (503)
 *   POST /api/v1/txprobe/misuse    event_emit_tx and job_enqueue with a
 *        connection that is not in db_tx: both statuses
 *   POST /api/v1/txprobe/conflict  {"times", "iso"}: a REPEATABLE READ (or
 *        SERIALIZABLE) transaction whose row is updated from another
 *        connection during its first "times" runs: 40001, retried
 *   POST /api/v1/txprobe/emit      {"value"}: plx_event_emit, no transaction
 *   POST /api/v1/txprobe/notify    {"payload"}: db_notify at once
 *   POST /api/v1/txprobe/unique    {"key"}: a job with that unique_key
 *   POST /api/v1/txprobe/lease     a job that renews its lease, loses it,
 *                                  and records both answers
 *   POST /api/v1/txprobe/wake      a job that records which instance ran it
 *   GET  /api/v1/txprobe/state     in-process events, notifications and
 *                                  catch-ups seen by this instance
 *
 * and a recurring job "tick" every [txprobe] tick_seconds (default 1)
 * that records its start and end in txprobe.ticks.
 */
#include <plexus/module.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SEEN_MAX 256   /* values kept per list */

static plx_module_t *self;
static const char *instance = "?";

/* what this instance saw, bounded */
static struct {
    pthread_mutex_t lock;
    json_t *events;      /* values of in-process "txprobe.*" events */
    json_t *notifies;    /* payloads on channel "txprobe" */
    long    catchups;    /* NULL payloads */
} seen = { .lock = PTHREAD_MUTEX_INITIALIZER };

static void seen_add(json_t *list, const char *value)
{
    pthread_mutex_lock(&seen.lock);
    if (json_array_size(list) < SEEN_MAX)
        json_array_append_new(list, json_string(value ? value : ""));
    pthread_mutex_unlock(&seen.lock);
}

static void on_event(const char *topic, json_t *payload, void *arg)
{
    (void)topic;
    (void)arg;
    seen_add(seen.events, json_string_value(json_object_get(payload, "value")));
}

static void on_notify(const char *channel, const char *payload, void *arg)
{
    (void)channel;
    (void)arg;
    if (!payload) {
        pthread_mutex_lock(&seen.lock);
        seen.catchups++;
        pthread_mutex_unlock(&seen.lock);
        return;
    }
    seen_add(seen.notifies, payload);
}

static plx_status_t state(plx_request_t *r, void *arg)
{
    (void)arg;
    pthread_mutex_lock(&seen.lock);
    json_t *body = json_pack("{s:s, s:O, s:O, s:I}", "instance", instance,
                             "events", seen.events, "notifies", seen.notifies,
                             "catchups", (json_int_t)seen.catchups);
    pthread_mutex_unlock(&seen.lock);
    return plx_reply_json(r, 200, body);
}

/* The body's object and one string field of it, without the 1.4 field
 * readers (they belong to another part of the API): NULL when the core
 * or this function has answered 400. */
static json_t *body_object(plx_request_t *r)
{
    json_t *body = NULL;

    if (plx_request_json(r, &body) != PLX_OK)
        return NULL;
    if (!json_is_object(body)) {
        (void)plx_reply_problem(r, 400, "invalid_body", "expected an object");
        return NULL;
    }
    return body;
}

static const char *body_string(plx_request_t *r, json_t *body,
                               const char *name)
{
    const char *v = json_string_value(json_object_get(body, name));

    if (!v || !*v || strlen(v) > 400) {
        (void)plx_reply_problem(r, 400, "invalid_body", "\"%s\": expected "
                                "1 to 400 bytes of text", name);
        return NULL;
    }
    return v;
}

/* ---- transactions ---------------------------------------------------------- */

typedef struct commit_arg {
    const char *value;
    int         fail;
    int         commit_fail;
    int         commit_kill;
    int         runs;
} commit_arg_t;

static plx_status_t commit_fn(plx_db_conn_t *c, void *argp)
{
    commit_arg_t *a = argp;
    const char *params[1] = { a->value };
    plx_status_t st;

    a->runs++;
    st = plx_db_exec(c, "INSERT INTO txprobe.items (value) VALUES ($1)", 1,
                     params, NULL);
    if (st != PLX_OK)
        return st;
    json_t *payload = json_pack("{s:s}", "value", a->value);
    st = plx_event_emit_tx(c, "txprobe.created", payload);
    json_decref(payload);
    if (st != PLX_OK)
        return st;
    st = plx_db_notify(c, "txprobe", a->value);
    if (st != PLX_OK)
        return st;
    char key[256];
    snprintf(key, sizeof key, "item:%s", a->value);
    plx_job_opts_t o = { .size = sizeof o, .conn = c, .unique_key = key };
    st = plx_job_enqueue(self, "txprobe.noop", NULL, &o, NULL);
    if (st != PLX_OK)
        return st;
    if (a->commit_kill)
        return plx_db_exec(c, "INSERT INTO txprobe.doomed VALUES (1)", 0,
                           NULL, NULL);
    if (a->commit_fail) {
        params[0] = "same";
        for (int i = 0; i < 2 && st == PLX_OK; i++)
            st = plx_db_exec(c, "INSERT INTO txprobe.deferred VALUES ($1)", 1,
                             params, NULL);
        return st;
    }
    return a->fail ? PLX_ERR_CONFLICT : PLX_OK;
}

static plx_status_t commit(plx_request_t *r, void *arg)
{
    commit_arg_t a = { 0 };
    json_t *body;
    plx_status_t st;

    (void)arg;
    if (!(body = body_object(r)) || !(a.value = body_string(r, body, "value")))
        return PLX_OK;
    a.fail = json_is_true(json_object_get(body, "fail"));
    a.commit_fail = json_is_true(json_object_get(body, "commit_fail"));
    a.commit_kill = json_is_true(json_object_get(body, "commit_kill"));
    st = plx_db_tx(r, PLX_TX_READ_COMMITTED, commit_fn, &a);
    if (st == PLX_ERR_CONFLICT)
        return plx_reply_problem(r, 409, "rolled_back", "rolled back after "
                                 "%d run(s)", a.runs);
    if (st != PLX_OK)
        return st;
    return plx_reply_json(r, 200, json_pack("{s:i}", "runs", a.runs));
}

typedef struct conflict_arg {
    int times;   /* runs that meet a concurrent update */
    int runs;
} conflict_arg_t;

/* Read the counter (the snapshot is taken), have another connection
 * change it, then update it here: under REPEATABLE READ or SERIALIZABLE
 * that is 40001 "could not serialize access due to concurrent update". */
static plx_status_t conflict_fn(plx_db_conn_t *c, void *argp)
{
    conflict_arg_t *a = argp;
    plx_status_t st;

    a->runs++;
    st = plx_db_exec(c, "SELECT n FROM txprobe.counter WHERE id = 1", 0,
                     NULL, NULL);
    if (st != PLX_OK)
        return st;
    if (a->runs <= a->times) {
        plx_db_res_t *res = NULL;
        st = plx_db_query(NULL, "UPDATE txprobe.counter SET n = n + 100"
                          " WHERE id = 1", 0, NULL, &res);
        plx_db_free(res);
        if (st != PLX_OK)
            return st;
    }
    return plx_db_exec(c, "UPDATE txprobe.counter SET n = n + 1 WHERE id = 1",
                       0, NULL, NULL);
}

static plx_status_t conflict(plx_request_t *r, void *arg)
{
    conflict_arg_t a = { 0 };
    json_t *body;

    (void)arg;
    if (!(body = body_object(r)))
        return PLX_OK;
    json_int_t times = json_integer_value(json_object_get(body, "times"));
    const char *isos = json_string_value(json_object_get(body, "iso"));
    int iso = isos && strcmp(isos, "serializable") == 0;
    a.times = times < 0 ? 0 : times > 10 ? 10 : (int)times;
    plx_status_t st = plx_db_tx(r, iso == 1 ? PLX_TX_SERIALIZABLE
                                            : PLX_TX_REPEATABLE_READ,
                                conflict_fn, &a);
    return plx_reply_json(r, 200, json_pack("{s:s, s:i}", "status",
                                            plx_status_str(st), "runs",
                                            a.runs));
}

/* a connection from db_acquire is not a db_tx transaction */
static plx_status_t misuse(plx_request_t *r, void *arg)
{
    plx_db_conn_t *c = plx_db_acquire(0);
    plx_status_t emit_st, enqueue_st;

    (void)arg;
    if (!c)
        return PLX_ERR_DB;
    emit_st = plx_event_emit_tx(c, "txprobe.created", NULL);
    plx_job_opts_t o = { .size = sizeof o, .conn = c };
    enqueue_st = plx_job_enqueue(self, "txprobe.noop", NULL, &o, NULL);
    plx_db_release(c);
    return plx_reply_json(r, 200, json_pack("{s:s, s:s}",
                                            "emit_tx", plx_status_str(emit_st),
                                            "enqueue", plx_status_str(enqueue_st)));
}

/* ---- events and notifications ---------------------------------------------- */

static plx_status_t emit(plx_request_t *r, void *arg)
{
    const char *value = NULL;
    json_t *body;

    (void)arg;
    if (!(body = body_object(r)) || !(value = body_string(r, body, "value")))
        return PLX_OK;
    json_t *payload = json_pack("{s:s}", "value", value);
    plx_event_emit("txprobe.created", payload);
    json_decref(payload);
    return plx_reply_json(r, 200, json_pack("{s:b}", "emitted", 1));
}

/* the durable subscriber: one row per job it was given */
static plx_status_t durable_job(plx_job_t *job, void *arg)
{
    json_t *p = plx_job_payload(job);
    const char *params[4] = {
        json_string_value(json_object_get(p, "id")),
        json_string_value(json_object_get(p, "topic")),
        json_string_value(json_object_get(json_object_get(p, "payload"),
                                          "value")),
        plx_job_id(job),
    };
    plx_db_res_t *res = NULL;

    (void)arg;
    if (!params[0] || !params[1]
        || !json_string_value(json_object_get(p, "emitted_at")))
        return PLX_ERR_INVALID;
    plx_status_t st = plx_db_query(NULL, "INSERT INTO txprobe.deliveries"
                                   " (event_id, topic, value, job_id)"
                                   " VALUES ($1, $2, $3, $4::uuid)",
                                   4, params, &res);
    plx_db_free(res);
    return st;
}

static plx_status_t notify(plx_request_t *r, void *arg)
{
    const char *payload = NULL;
    json_t *body;

    (void)arg;
    if (!(body = body_object(r))
        || !(payload = body_string(r, body, "payload")))
        return PLX_OK;
    plx_status_t st = plx_db_notify(NULL, "txprobe", payload);
    if (st != PLX_OK)
        return st;
    return plx_reply_json(r, 200, json_pack("{s:b}", "sent", 1));
}

/* ---- jobs ----------------------------------------------------------------- */

static plx_status_t noop_job(plx_job_t *job, void *arg)
{
    (void)job;
    (void)arg;
    return PLX_OK;
}

static plx_status_t unique(plx_request_t *r, void *arg)
{
    plx_job_opts_t o = { .size = sizeof o };
    char id[37] = "";
    json_t *body;

    (void)arg;
    if (!(body = body_object(r))
        || !(o.unique_key = json_string_value(json_object_get(body, "key"))))
        return body ? plx_reply_problem(r, 400, "invalid_body", "\"key\"")
                    : PLX_OK;
    plx_status_t st = plx_job_enqueue(self, "txprobe.noop", NULL, &o, id);
    if (st == PLX_ERR_CONFLICT)
        return plx_reply_json(r, 409, json_pack("{s:s}", "id", id));
    if (st == PLX_ERR_INVALID)
        return plx_reply_problem(r, 400, "invalid_key", "bad unique_key");
    if (st != PLX_OK)
        return st;
    return plx_reply_json(r, 201, json_pack("{s:s}", "id", id));
}

/* Renew (ours: PLX_OK), have the row taken by "another worker", renew
 * again (PLX_ERR_GONE), record both and the lease left after the first. */
static plx_status_t lease_job(plx_job_t *job, void *arg)
{
    const char *params[4] = { plx_job_id(job), NULL, NULL, NULL };
    plx_db_res_t *res = NULL;
    char lease[32] = "0";

    (void)arg;
    plx_status_t first = plx_job_lease_renew(job, 600);
    if (plx_db_query(NULL, "SELECT extract(epoch FROM locked_until - now())"
                     " FROM plexus.jobs WHERE id = $1::uuid", 1, params,
                     &res) == PLX_OK && plx_db_value(res, 0, 0))
        snprintf(lease, sizeof lease, "%s", plx_db_value(res, 0, 0));
    plx_db_free(res);
    res = NULL;
    if (plx_db_query(NULL, "UPDATE plexus.jobs SET locked_by = 'elsewhere/0'"
                     " WHERE id = $1::uuid", 1, params, &res) != PLX_OK)
        return PLX_ERR_DB;
    plx_db_free(res);
    res = NULL;
    plx_status_t second = plx_job_lease_renew(job, 600);
    params[1] = plx_status_str(first);
    params[2] = plx_status_str(second);
    params[3] = lease;
    plx_status_t st = plx_db_query(NULL, "INSERT INTO txprobe.lease_results"
                                   " VALUES ($1::uuid, $2, $3, $4::float8)",
                                   4, params, &res);
    plx_db_free(res);
    return st;
}

static plx_status_t wake_job(plx_job_t *job, void *arg)
{
    const char *params[2] = { plx_job_id(job), instance };
    plx_db_res_t *res = NULL;

    (void)arg;
    plx_status_t st = plx_db_query(NULL, "INSERT INTO txprobe.wakes"
                                   " (job_id, instance) VALUES ($1::uuid, $2)",
                                   2, params, &res);
    plx_db_free(res);
    return st;
}

static plx_status_t enqueue_route(plx_request_t *r, void *arg)
{
    char id[37];
    plx_status_t st = plx_job_enqueue(self, arg, NULL, NULL, id);

    if (st != PLX_OK)
        return st;
    return plx_reply_json(r, 202, json_pack("{s:s}", "id", id));
}

/* the recurring job: a row per run, with its start and end */
static plx_status_t tick(plx_job_t *job, void *arg)
{
    const char *params[1] = { instance };
    plx_db_res_t *res = NULL;
    struct timespec pause = { 0, 200 * 1000000L };

    (void)job;
    (void)arg;
    plx_status_t st = plx_db_query(NULL, "INSERT INTO txprobe.ticks (instance)"
                                   " VALUES ($1) RETURNING id::text", 1,
                                   params, &res);
    if (st != PLX_OK)
        return st;
    const char *id = plx_db_value(res, 0, 0);
    char idbuf[32];
    snprintf(idbuf, sizeof idbuf, "%s", id ? id : "0");
    plx_db_free(res);
    res = NULL;
    nanosleep(&pause, NULL);
    params[0] = idbuf;
    st = plx_db_query(NULL, "UPDATE txprobe.ticks SET ended_at ="
                      " clock_timestamp() WHERE id = $1::bigint", 1, params,
                      &res);
    plx_db_free(res);
    return st;
}

static char j_lease[] = "txprobe.lease", j_wake[] = "txprobe.wake";

static plx_status_t txprobe_init(plx_module_t *m)
{
    const plx_route_opts_t *o = PLX_ROUTE_OPTS(.rate_class = "none");
    const char *v = plx_config_get(m, "tick_seconds");
    int every = v ? atoi(v) : 1;

    self = m;
    if ((v = plx_config_get(m, "instance")) != NULL)
        instance = v;
    seen.events = json_array();
    seen.notifies = json_array();
    if (!seen.events || !seen.notifies)
        return PLX_ERR_NOMEM;
    if (plx_route_add(m, "POST", "/api/v1/txprobe/commit", commit, NULL, o)
        || plx_route_add(m, "POST", "/api/v1/txprobe/conflict", conflict, NULL, o)
        || plx_route_add(m, "POST", "/api/v1/txprobe/emit", emit, NULL, o)
        || plx_route_add(m, "POST", "/api/v1/txprobe/misuse", misuse, NULL, o)
        || plx_route_add(m, "POST", "/api/v1/txprobe/notify", notify, NULL, o)
        || plx_route_add(m, "POST", "/api/v1/txprobe/unique", unique, NULL, o)
        || plx_route_add(m, "POST", "/api/v1/txprobe/lease", enqueue_route,
                         j_lease, o)
        || plx_route_add(m, "POST", "/api/v1/txprobe/wake", enqueue_route,
                         j_wake, o)
        || plx_route_add(m, "GET", "/api/v1/txprobe/state", state, NULL, o))
        return PLX_ERR_INTERNAL;
    if (plx_event_subscribe(m, "txprobe.*", on_event, NULL)
        || plx_event_subscribe_durable(m, "txprobe.created", "txprobe.durable")
        || plx_db_listen(m, "txprobe", on_notify, NULL)
        || plx_job_handler_add(m, "txprobe.durable", durable_job, NULL)
        || plx_job_handler_add(m, "txprobe.noop", noop_job, NULL)
        || plx_job_handler_add(m, "txprobe.lease", lease_job, NULL)
        || plx_job_handler_add(m, "txprobe.wake", wake_job, NULL)
        || plx_job_recurring_add(m, "tick", every, tick, NULL)
        || plx_migrations_add(m, "sql"))
        return PLX_ERR_INTERNAL;
    return PLX_OK;
}

static void txprobe_stop(plx_module_t *m)
{
    (void)m;
    json_decref(seen.events);
    json_decref(seen.notifies);
    seen.events = seen.notifies = NULL;
}

PLX_MODULE(.name = "txprobe", .version = "1.0",
           .description = "probes transactions, notifications, durable "
                          "events and jobs",
           .init = txprobe_init, .stop = txprobe_stop);
