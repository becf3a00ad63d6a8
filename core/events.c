/*
 * events.c - events that must not be lost: durable subscriptions and the
 * outbox
 *
 * A durable subscription (registry.c keeps the table) turns each matching
 * event into one job for its handler, with the payload
 * {"id": event id, "topic", "payload", "emitted_at"}. The job's unique_key
 * is "<event id>:<handler>", so even an enqueue that is retried cannot
 * make a second job for the same event.
 *
 * plx_event_emit_tx(c, ...) inserts those jobs on c, inside the caller's
 * db_tx transaction, and queues the in-process delivery for after COMMIT
 * (core_db_after_commit): a rolled-back transaction leaves neither a job
 * nor a delivered event behind, and a committed one both. plx_event_emit
 * outside a transaction enqueues the jobs on statements of their own,
 * then calls the in-process subscribers.
 */
#include "config.h"
#include "core.h"
#include "db.h"
#include "jobs.h"
#include "registry.h"

#include <stdlib.h>
#include <string.h>

#define EVENT_KEY_MAX 200   /* plx_job_opts_t.unique_key's bound */

/* One job per matching durable subscription: on c inside its transaction,
 * or each on its own when c is NULL (then a failure is logged and the
 * others still go). */
static plx_status_t enqueue_durable(plx_db_conn_t *c, const char *topic,
                                    json_t *payload)
{
    size_t n = core_event_durable_count();
    char id[37], at[32], key[EVENT_KEY_MAX + 1];
    plx_status_t st = PLX_OK;
    json_t *body;

    if (n == 0)
        return PLX_OK;
    if (core_uuid_new(4, id) != PLX_OK)
        return PLX_ERR_INTERNAL;
    core_time_rfc3339(at);
    body = json_pack("{s:s, s:s, s:O?, s:s}", "id", id, "topic", topic,
                     "payload", payload, "emitted_at", at);
    if (!body)
        return PLX_ERR_NOMEM;
    for (size_t i = 0; i < n; i++) {
        const char *handler = core_event_durable_match(i, topic);
        if (!handler)
            continue;
        snprintf(key, sizeof key, "%s:%s", id, handler);
        plx_job_opts_t o = { .size = sizeof o, .conn = c, .unique_key = key };
        plx_status_t one = core_job_enqueue(NULL, handler, body, &o, NULL);
        if (one == PLX_OK || one == PLX_ERR_CONFLICT)
            continue;
        LOG_WARN("event \"%s\" (%s): cannot enqueue it for \"%s\": %s", topic,
                 id, handler, core_status_str(one));
        st = one;
        if (c)
            break;   /* the transaction fails as a whole */
    }
    json_decref(body);
    return st;
}

void core_event_publish(const char *topic, json_t *payload)
{
    if (core_event_topic_valid(topic))
        (void)enqueue_durable(NULL, topic, payload);
    core_event_emit(topic, payload);   /* it logs an invalid topic */
}

typedef struct pending_event {
    char    topic[72];
    json_t *payload;
} pending_event_t;

static void pending_deliver(void *arg)
{
    pending_event_t *p = arg;

    core_event_emit(p->topic, p->payload);
}

static void pending_free(void *arg)
{
    pending_event_t *p = arg;

    json_decref(p->payload);
    free(p);
}

plx_status_t core_event_emit_tx(plx_db_conn_t *c, const char *topic,
                                json_t *payload)
{
    pending_event_t *p;
    plx_status_t st;

    if (!core_db_in_tx(c) || !core_event_topic_valid(topic))
        return PLX_ERR_INVALID;
    st = enqueue_durable(c, topic, payload);
    if (st != PLX_OK)
        return st;
    p = calloc(1, sizeof *p);
    if (!p)
        return PLX_ERR_NOMEM;
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    /* a copy: the caller's payload may change or go before COMMIT */
    p->payload = payload ? json_deep_copy(payload) : NULL;
    if (payload && !p->payload) {
        free(p);
        return PLX_ERR_NOMEM;
    }
    st = core_db_after_commit(c, pending_deliver, pending_free, p);
    if (st != PLX_OK)
        pending_free(p);
    return st;
}
