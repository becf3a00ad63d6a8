/*
 * router.h - route table: method + path pattern with {params}
 *
 * Pure data structure, no I/O, so the unit tests drive it directly. Patterns
 * are literal segments and {name} segments matching one non-empty segment;
 * a literal segment beats a parameter at the same depth. Built at init,
 * read-only once the server starts.
 */
#ifndef PLEXUS_ROUTER_H
#define PLEXUS_ROUTER_H

#include "core.h"

#define CORE_ROUTE_MAX_PARAMS 8

typedef struct core_route {
    char              *method;    /* "GET" ... or "WS" for WebSocket routes */
    char              *pattern;
    plx_module_t      *owner;
    plx_handler_fn     fn;
    const plx_ws_handlers_t *ws;  /* WebSocket routes */
    void              *arg;
    plx_auth_t         auth;
    char              *scope;
    char              *rate_class;
    char              *summary;
    char              *tag;
} core_route_t;

typedef struct core_router core_router_t;

typedef struct core_route_match {
    const core_route_t *route;   /* NULL: no route for this method */
    size_t              nparams;
    const char         *names[CORE_ROUTE_MAX_PARAMS];  /* borrowed from route */
    char               *values[CORE_ROUTE_MAX_PARAMS]; /* percent-decoded, caller frees with core_route_match_clear */
    /* when route is NULL but the path exists for other methods: "GET, POST" */
    char                allow[128];
    bool                path_known;
} core_route_match_t;

core_router_t *core_router_new(void);
void core_router_free(core_router_t *rt);
/* PLX_ERR_CONFLICT when the same method+pattern (or an equivalent one with
 * other parameter names) exists; *existing then names its owner route.
 * PLX_ERR_INVALID for a malformed pattern. Copies everything it keeps. */
plx_status_t core_router_add(core_router_t *rt, const core_route_t *route,
                             const core_route_t **existing);
/* path without query string; method "WS" matches WebSocket routes */
void core_router_match(const core_router_t *rt, const char *method,
                       const char *path, core_route_match_t *m);
void core_route_match_clear(core_route_match_t *m);
size_t core_router_count(const core_router_t *rt);
const core_route_t *core_router_at(const core_router_t *rt, size_t i);

#endif
