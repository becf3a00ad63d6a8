/*
 * event_probe.c - a test module that records every projects.* event, the
 * way a subscriber such as automation will see them, and shows what it saw
 *
 *   GET /api/v1/event-probe/events  ->  {"events":[{"topic","payload"},...]}
 *
 * Events are emitted on the request's thread before the answer is written,
 * so a test that has its response can read the event at once. The probe
 * keeps the last EVENTS_MAX; payloads are borrowed by the callback, hence
 * the deep copies.
 */
#include <plexus/module.h>

#include <pthread.h>
#include <string.h>

#define EVENTS_MAX 4096

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static json_t *events;   /* array of {"topic","payload"}, oldest first */

static void on_event(const char *topic, json_t *payload, void *arg)
{
    json_t *e = json_pack("{s:s, s:o}", "topic", topic,
                          "payload", json_deep_copy(payload));

    if (!e)
        return;
    pthread_mutex_lock(&lock);
    if (json_array_size(events) >= EVENTS_MAX)
        json_array_remove(events, 0);
    json_array_append_new(events, e);
    pthread_mutex_unlock(&lock);
}

static plx_status_t list_events(plx_request_t *r, void *arg)
{
    json_t *copy;

    pthread_mutex_lock(&lock);
    copy = json_deep_copy(events);
    pthread_mutex_unlock(&lock);
    if (!copy)
        return PLX_ERR_NOMEM;
    return plx_reply_json(r, 200, json_pack("{s:o}", "events", copy));
}

static plx_status_t probe_init(plx_module_t *m)
{
    if (!(events = json_array()))
        return PLX_ERR_NOMEM;
    if (plx_event_subscribe(m, "projects.*", on_event, NULL) != PLX_OK
        || plx_route_add(m, "GET", "/api/v1/event-probe/events", list_events, NULL,
                         PLX_ROUTE_OPTS(.summary = "events seen by the probe",
                                        .rate_class = "none")) != PLX_OK)
        return PLX_ERR_INTERNAL;
    return PLX_OK;
}

static void probe_stop(plx_module_t *m)
{
    pthread_mutex_lock(&lock);
    json_decref(events);
    events = NULL;
    pthread_mutex_unlock(&lock);
}

PLX_MODULE(.name = "event_probe", .version = "1.0.0",
           .description = "records projects.* events for the tests",
           .requires = PLX_REQUIRES("projects"),
           .init = probe_init, .stop = probe_stop);
