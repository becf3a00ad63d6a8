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
void core_event_emit(const char *topic, json_t *payload);

plx_status_t core_service_register(plx_module_t *m, const char *name,
                                   unsigned version, const void *table);
const void *core_service_get(const char *name, unsigned version);

void core_registry_free(void);

#endif
