/*
 * route_walk.h - try every route of a running server as hostile callers
 *
 * A route added tomorrow is covered without anyone writing a test for it:
 * the walk asks the server itself (`plexusd routes`) for its table, then
 * tries each route that is not public with
 *   - no credential, an expired token, and the token of a session that has
 *     logged out: 401;
 *   - an API key that holds none of the route's scopes: 403 (a route that
 *     names no scope is closed to keys);
 *   - a user who is not an admin, on admin routes: 403;
 *   - on routes with path parameters, every parameter set to the id of a
 *     team: a user outside that team, and a viewer of it on routes that
 *     change something, never get a 2xx.
 * WebSocket routes are tried with the upgrade handshake.
 *
 * The server must run with identity configured (plxt_identity_config) and
 * rate limits high enough for a few requests per route and caller.
 */
#ifndef PLXT_ROUTE_WALK_H
#define PLXT_ROUTE_WALK_H

#include "harness.h"

typedef struct plxt_walk_opts {
    /* "METHOD /pattern" of routes a viewer may use to change something
     * that is theirs (leaving a team), NULL-terminated; may be NULL */
    const char *const *viewer_may;
} plxt_walk_opts_t;

/* Walks every route of srv (whose database is db_conninfo) and fails the
 * test, naming the route and the caller, on the first that lets a caller
 * in. Returns the number of routes tried. */
int plxt_route_walk(plxt_server_t *srv, const char *db_conninfo,
                    const plxt_walk_opts_t *opts);

#endif
