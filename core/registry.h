/*
 * registry.h - hooks, events and services
 *
 * Hooks are named points; registrations are sorted once, after every
 * module's init (core_hooks_sort), by position and then by the before/after
 * module names (a cycle is a startup error naming the modules), ties in
 * registration (config) order. Events and services are plain tables.
 * All of it is written during init on the main thread and read-only after.
 */
#ifndef PLEXUS_REGISTRY_H
#define PLEXUS_REGISTRY_H

#include "core.h"

#include <stdio.h>

plx_status_t core_hook_add(plx_module_t *m, const char *name, plx_hook_fn fn,
                           void *arg, const plx_hook_order_t *order);
bool core_hooks_sort(void);
/* Runs name's hooks in order: PLX_OK and PLX_DECLINED go on, any other
 * status stops the run and is returned. Before core_hooks_sort() the order
 * is registration order. No hooks: PLX_OK. */
plx_status_t core_hook_run(const char *name, plx_request_t *r, void *data);
/* Set by the HTTP layer: for request.begin the run also stops (PLX_OK)
 * once answered(r) is true, i.e. a hook has replied. Set during init. */
void core_hooks_set_answered_check(bool (*answered)(plx_request_t *));
bool core_hook_has(const char *name);
/* one line per hook point: "request.begin: auth, ratelimit, example" */
void core_hooks_dump(FILE *out);

plx_status_t core_event_subscribe(plx_module_t *m, const char *topic,
                                  plx_event_fn fn, void *arg);
/* in-process subscribers only; the API's event_emit is core_event_publish
 * (events.c), which enqueues the durable subscriptions as well */
void core_event_emit(const char *topic, json_t *payload);
bool core_event_topic_valid(const char *topic);

/* Durable subscriptions (init only): matching events become jobs for
 * handler. core_event_durable_match(i, topic) is the handler of the i-th
 * subscription (0 .. core_event_durable_count() - 1) when it matches
 * topic, else NULL; borrowed for the process lifetime. */
plx_status_t core_event_subscribe_durable(plx_module_t *m, const char *topic,
                                          const char *handler);
size_t core_event_durable_count(void);
const char *core_event_durable_match(size_t i, const char *topic);

/* events.c: plx_event_emit (in-process now, durable as jobs) and
 * plx_event_emit_tx (both at the COMMIT of c's db_tx) */
void core_event_publish(const char *topic, json_t *payload);
plx_status_t core_event_emit_tx(plx_db_conn_t *c, const char *topic,
                                json_t *payload);

plx_status_t core_service_register(plx_module_t *m, const char *name,
                                   unsigned version, const void *table);
const void *core_service_get(const char *name, unsigned version);

void core_registry_free(void);

#endif
